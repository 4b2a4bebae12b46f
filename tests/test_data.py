"""Annotation formats, crops, flips and the synthetic generator."""

from __future__ import annotations

import errno
import json
import logging
import math
import shlex
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import mat_struct, mat_struct_array, write_mpii_json
from scipy.io import savemat

from dpupose.data.joints import FLIP_PAIRS, NUM_JOINTS, flip_permutation
from dpupose.data.mpii import MAT_NAME, describe_head_sizes, head_size_counts, load_split, read_mat
from dpupose.data.records import SEGMENT_FACTOR, load_json_records
from dpupose.data.synthetic import render_scene
from dpupose.data.transforms import (
    Augment,
    crop_matrix,
    crop_person,
    from_normalized,
    letterbox,
    to_normalized,
)
from dpupose.errors import DataError


def person(image="a.jpg", head_box=None, **kw):
    rec = {
        "image": image,
        "center": [100.0, 120.0],
        "scale": 1.2,
        "joints": [[50.0 + 5 * j, 60.0 + 4 * j] for j in range(NUM_JOINTS)],
        "joints_vis": [1] * NUM_JOINTS,
    }
    if head_box is not None:
        rec["head_box"] = head_box
    rec.update(kw)
    return rec


def test_json_records_head_size_from_box_and_segment(tmp_path):
    recs = [person(head_box=[0, 0, 30, 40]), person()]
    write_mpii_json(tmp_path, recs)
    out = load_split(tmp_path, "valid")
    assert out[0].head_size_source == "head_box"
    assert out[0].head_size == pytest.approx(0.6 * 50.0)
    # No box: from the upper-neck (8) -> head-top (9) segment: (5, 4) apart.
    assert out[1].head_size_source == "segment"
    assert out[1].head_size == pytest.approx(SEGMENT_FACTOR * math.hypot(5, 4))


def test_negative_joints_are_not_annotated(tmp_path):
    rec = person()
    rec["joints"][3] = [-1, -1]
    rec["joints"][4] = [20, -1]  # either coordinate negative
    write_mpii_json(tmp_path, [rec])
    (r,) = load_split(tmp_path, "valid")
    assert list(np.flatnonzero(~r.visible)) == [3, 4]


def test_no_head_size_from_a_segment_with_an_unannotated_end(tmp_path):
    rec = person()
    rec["joints"][9] = [-1, -1]  # head top not annotated; upper neck is
    write_mpii_json(tmp_path, [rec])
    (r,) = load_split(tmp_path, "valid")
    assert r.head_size is None and r.head_size_source == "none"


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"scale": -1}, "record 1: 'scale' must be a positive number"),
        ({"scale": float("inf")}, "record 1: 'scale' must be a positive number"),  # JSON Infinity
        ({"head_box": [10, 10, 10, 10]}, r"record 1: 'head_box' must be \[x1, y1, x2, y2\] of a head, not a point"),
        ({"joints": [[0, 0]] * 3}, "record 1: 'joints' must be a list of 16"),
        ({"center": [1, "x"]}, "record 1: 'center' must hold finite numbers"),
        ({"image": ""}, "record 1: 'image' must be a file name"),
        # JSON integers too large for a float (1e400 written out): math.isfinite's OverflowError was a traceback
        (
            {"scale": 10**400},
            r"record 1: 'scale' must be a positive number, got 1000000000000000000000000000000000000\.\.\.; correct",
        ),
        ({"center": [10**400, 1]}, r"record 1: 'center' must hold finite numbers, got 10{36}\.\.\.; correct"),
        ({"joints": [[0, 0]] * 15 + [[1, -(10**400)]]}, r"record 1: 'joints\[i\]' must hold finite numbers"),
        # Finite, but no image's: a joint at 1e300 became inf in float32 (NaN metrics, no error), a centre at 1e30
        # gave a Euclidean error of 1e28, scales of 1e30 or 1e-30 crops of no use
        ({"joints": [[0, 0]] * 15 + [[1e300, 1]]}, r"'joints\[i\]' must hold pixel coordinates, within 1e\+06 of 0"),
        ({"center": [1e30, -1e30]}, r"record 1: 'center' must hold pixel coordinates, within 1e\+06 of 0, got 1e\+30"),
        ({"head_box": [0, 0, 2e6, 10]}, r"record 1: 'head_box' must hold pixel coordinates"),
        ({"scale": 1e30}, r"record 1: 'scale' \(person height / 200 px\) must be between 0.001 and 10000, got 1e\+30"),
        ({"scale": 1e-30}, r"record 1: 'scale' \(person height / 200 px\) must be between 0.001 and 10000"),
    ],
)
def test_malformed_record_names_the_record(tmp_path, patch, message):
    write_mpii_json(tmp_path, [person(), person(**patch)])
    with pytest.raises(DataError, match=message):
        load_split(tmp_path, "valid")


def test_missing_field_and_bad_json(tmp_path):
    bad = person()
    del bad["center"]
    path = write_mpii_json(tmp_path, [bad])
    with pytest.raises(DataError, match="record 0: missing field 'center'"):
        load_json_records(path)
    path.write_text("[{")
    with pytest.raises(DataError, match="not valid JSON"):
        load_json_records(path)


def test_empty_and_missing_roots(tmp_path):
    write_mpii_json(tmp_path, [])
    with pytest.raises(DataError) as info:
        load_split(tmp_path, "valid")
    assert str(info.value) == (
        f"{tmp_path}: the valid split holds no person records (none in annot/valid.json): add some there, or give "
        "a --data-root whose valid split has them"
    )
    with pytest.raises(DataError, match="neither annot/train.json nor"):
        load_split(tmp_path, "train")
    with pytest.raises(DataError, match="does not exist"):
        load_split(tmp_path / "nope", "train")


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("images", "file", r"/images is a file, not a folder: it must be the folder holding the annotated images"),
        ("annot", "file", r"/annot is a file, not a folder: it must be the folder holding train\.json"),
        ("annot/valid.json", "folder", r"/valid\.json is a folder, not a file: it must be the valid split's JSON"),
        ("annot/valid.json", "link", r"/valid\.json is a symbolic link that leads nowhere \(to /\S*/nothing\), not a "),
        ("images", "fifo", r"/images is a FIFO, not a folder: it must be the folder holding the annotated images"),
        ("images", "file link", r"/images is a link to notes\.txt, not a folder: it must be the folder holding the"),
        (MAT_NAME, "folder", rf"/{MAT_NAME} is a folder, not a file: it must be the official MPII \.mat"),
    ],
)
def test_a_root_entry_of_the_wrong_kind_is_named_as_such(tmp_path, name, make, message):
    """images/ as a file was reported as every image missing, annot/valid.json as a folder as a root that 'has
    neither annot/valid.json nor' the .mat (for `data check`, a split that is fine to lack). What is there is
    said in the words the data root itself is (fsio.what_is_at), not in a second set ('a link to nothing',
    'neither a file nor a folder (a device, a FIFO or a socket)', a link to a file called 'a file')."""
    import os
    import shutil

    root = tmp_path / "root"
    for split in ("train", "valid"):
        write_mpii_json(root, [person()], split)
    (root / "images").mkdir()
    path = root / name
    shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    (root / "notes.txt").touch()
    makers = {
        "file": path.touch,
        "folder": path.mkdir,
        "fifo": lambda: os.mkfifo(path),
        "file link": lambda: path.symlink_to("notes.txt"),
    }
    makers.get(make, lambda: path.symlink_to(tmp_path / "nothing"))()
    split = "valid" if "valid" in name else "train"
    with pytest.raises(DataError, match=message) as info:
        load_split(root, split)
    assert type(info.value) is DataError  # not EmptySplitError, which `data check` takes for a split not given
    assert str(info.value).endswith("move it away or replace it (check --data-root)")


def test_an_empty_synthetic_root_is_answered_with_a_command_that_pastes_as_it_is(tmp_path):
    from dpupose.data.sources import load_data

    root = tmp_path / "my data $x"
    root.mkdir()
    with pytest.raises(DataError) as exc:
        load_data("synthetic", "valid", root)
    command = str(exc.value).rpartition("`")[0].rpartition("`")[2]
    assert shlex.split(command) == ["dpupose", "data", "synth", "--out", str(root)]


def test_a_synthetic_data_root_of_the_wrong_folder_is_not_answered_with_mpii_s_layout(synth_root, tmp_path):
    # --data synthetic --data-root build/q (a quantize folder) was told to lay it out as images/ + annot/*.json
    # or put MPII's .mat there; a synthetic root's images/ folder is named with the root, as before.
    from dpupose.data.sources import load_data

    other = tmp_path / "q"
    other.mkdir()
    (other / "summary.json").write_text("{}")
    with pytest.raises(DataError) as exc:
        load_data("synthetic", "valid", other)
    assert str(exc.value) == (
        f"{other} is not a synthetic data root (no synthetic.json, no annot/valid.json): give the folder "
        "`dpupose data synth --out DIR` wrote, or leave out --data-root (a generated set is cached under build/data/)"
    )
    with pytest.raises(DataError) as exc:
        load_data("synthetic", "train", synth_root / "images")
    assert (
        str(exc.value)
        == f"{synth_root / 'images'} is not a synthetic data root but a folder inside one: give {synth_root}"
    )
    with pytest.raises(DataError, match=r"has neither annot/valid\.json nor mpii_human_pose"):  # as MPII: as before
        load_data("mpii", "valid", other)


def test_a_synthetic_root_s_inside_folder_given_as_dot_or_through_a_link_is_answered_with_the_root(
    synth_root, tmp_path, monkeypatch
):
    # images/ given as "." or through a link was answered with its spelling's parent: "give .", the very folder
    # refused, or the folder that holds the link; a spelling whose parent is the root still names it so
    from dpupose.data.sources import load_data

    link = tmp_path / "elsewhere" / "imgs"
    link.parent.mkdir()
    link.symlink_to(synth_root / "images")
    monkeypatch.chdir(synth_root / "images")
    for given, root in ((".", synth_root.resolve()), (link, synth_root.resolve()), ("../images", "..")):
        with pytest.raises(DataError) as exc:
            load_data("synthetic", "valid", given)
        assert str(exc.value) == f"{given} is not a synthetic data root but a folder inside one: give {root}"


def _write_mat(root, people_per_image, train_flags):
    annolist = []
    for name, people in people_per_image:
        rects = []
        for p in people:
            points = mat_struct_array(
                [{"id": j, "x": float(x), "y": float(y), "is_visible": 1} for j, (x, y) in p["joints"].items()]
            )
            rects.append(
                {
                    "x1": p["box"][0],
                    "y1": p["box"][1],
                    "x2": p["box"][2],
                    "y2": p["box"][3],
                    "scale": p["scale"],
                    # None: an empty objpos ([]), as the .mat has for some people
                    "objpos": np.array([]) if p["objpos"] is None else mat_struct(x=p["objpos"][0], y=p["objpos"][1]),
                    "annopoints": mat_struct(point=points),
                }
            )
        annolist.append({"image": mat_struct(name=name), "annorect": mat_struct_array(rects)})
    release = mat_struct(annolist=mat_struct_array(annolist), img_train=np.array([train_flags], dtype=np.uint8))
    savemat(root / MAT_NAME, {"RELEASE": release})


def test_official_mat_is_read_and_split_by_img_train(tmp_path):
    p1 = {"box": [10, 10, 40, 50], "scale": 2.0, "objpos": [100, 150], "joints": {0: (90, 200), 9: (100, 40)}}
    p2 = {"box": [200, 10, 224, 42], "scale": 1.5, "objpos": [210, 150], "joints": {8: (210, 60), 9: (212, 30)}}
    p3 = {"box": [0, 0, 3, 4], "scale": 1.0, "objpos": [5, 5], "joints": {1: (5, 6)}}
    _write_mat(tmp_path, [("img1.jpg", [p1, p2]), ("img2.jpg", [p3])], [1, 0])
    people = read_mat(tmp_path / MAT_NAME)
    assert [p.image for p in people] == ["img1.jpg", "img1.jpg", "img2.jpg"]
    assert people[0].visible.sum() == 2 and tuple(people[0].joints[9]) == (100, 40)
    train = load_split(tmp_path, "train")
    valid = load_split(tmp_path, "valid")
    assert len(train) == 2 and len(valid) == 1
    assert valid[0].image == "img2.jpg"
    assert train[1].head_size == pytest.approx(0.6 * math.hypot(24, 32))
    assert train[1].head_size_source == "mat"


def test_mat_points_without_an_id_or_a_coordinate_are_unannotated(tmp_path):
    # Empty MATLAB fields ([]) in a point: not a NaN joint marked visible, not a traceback.
    points = mat_struct_array(
        [
            {"id": 0, "x": 90.0, "y": 200.0, "is_visible": 1},
            {"id": 3, "x": np.array([]), "y": 23.0, "is_visible": 1},
            {"id": np.array([]), "x": 5.0, "y": 6.0, "is_visible": 1},
            {"id": 9, "x": 100.0, "y": np.nan, "is_visible": 1},
        ]
    )
    rect = {"x1": 10, "y1": 10, "x2": 40, "y2": 50, "scale": 2.0, "objpos": mat_struct(x=100, y=150)}
    rect["annopoints"] = mat_struct(point=points)
    bad_scale = {**rect, "scale": -1.0}
    annolist = [{"image": mat_struct(name="a.jpg"), "annorect": mat_struct_array([rect, bad_scale])}]
    release = mat_struct(annolist=mat_struct_array(annolist), img_train=np.array([[1]], dtype=np.uint8))
    savemat(tmp_path / MAT_NAME, {"RELEASE": release})
    person_, negative = read_mat(tmp_path / MAT_NAME)
    assert list(np.flatnonzero(person_.visible)) == [0]
    assert np.isfinite(person_.joints).all()
    (rec,) = load_split(tmp_path, "valid")  # one image, held out; the person with a negative scale is not usable
    assert rec.scale == 2.0 and negative.scale == -1.0


def test_mat_joints_marked_occluded_are_still_annotated(tmp_path):
    # is_visible = 0 means "annotated but occluded": PCKh counts every annotated joint.
    points = mat_struct_array(
        [{"id": 0, "x": 90.0, "y": 200.0, "is_visible": 1}, {"id": 5, "x": 80.0, "y": 190.0, "is_visible": 0}]
    )
    rect = {"x1": 10, "y1": 10, "x2": 40, "y2": 50, "scale": 2.0, "objpos": mat_struct(x=100, y=150)}
    rect["annopoints"] = mat_struct(point=points)
    annolist = [{"image": mat_struct(name="a.jpg"), "annorect": mat_struct_array([rect])}]
    release = mat_struct(annolist=mat_struct_array(annolist), img_train=np.array([[1]], dtype=np.uint8))
    savemat(tmp_path / MAT_NAME, {"RELEASE": release})
    (p,) = read_mat(tmp_path / MAT_NAME)
    assert list(np.flatnonzero(p.visible)) == [0, 5] and tuple(p.joints[5]) == (80, 190)


def test_json_records_take_head_boxes_from_the_mat(tmp_path):
    p1 = {"box": [10, 10, 40, 50], "scale": 2.0, "objpos": [100, 150], "joints": {0: (90, 200)}}
    p2 = {"box": [0, 0, 6, 8], "scale": 2.0, "objpos": [300, 150], "joints": {0: (290, 200)}}
    _write_mat(tmp_path, [("img1.jpg", [p1, p2])], [1])
    write_mpii_json(tmp_path, [person(image="img1.jpg", center=[295, 149])])
    (rec,) = load_split(tmp_path, "valid")
    assert rec.head_size_source == "mat"
    assert rec.head_size == pytest.approx(0.6 * 10.0)


def test_mat_head_boxes_of_no_size_or_without_objpos_are_not_used(tmp_path):
    # A box of no size is no head (PCKh would divide by 0): the upper neck (8) to head top (9) segment, 8 px
    one = {"joints": {0: (5, 6), 8: (5, 10), 9: (5, 2)}, "box": (5, 5, 5, 5), "scale": 1.0, "objpos": (5, 5)}
    _write_mat(tmp_path, [("a.jpg", [one])], [1])
    (rec,) = load_split(tmp_path, "valid")
    assert rec.head_size_source == "segment" and rec.head_size == pytest.approx(0.6 * math.sqrt(2) * 8)
    # A person with a head box but no objpos cannot be matched to a JSON record by position: the one with
    # an objpos gives the box (6 x 8: 0.6 * 10)
    no_pos = {"box": [10, 10, 40, 50], "scale": 2.0, "objpos": None, "joints": {0: (90, 200)}}
    placed = {"box": [0, 0, 6, 8], "scale": 2.0, "objpos": [300, 150], "joints": {0: (290, 200)}}
    _write_mat(tmp_path, [("img1.jpg", [no_pos, placed])], [1])
    write_mpii_json(tmp_path, [person(image="img1.jpg", center=[101, 151])])
    (rec,) = load_split(tmp_path, "valid")
    assert rec.head_size_source == "mat" and rec.head_size == pytest.approx(6.0)


def test_not_a_mat_file(tmp_path):
    (tmp_path / MAT_NAME).write_bytes(b"garbage")
    with pytest.raises(DataError, match="not a readable MATLAB file .*: download and unpack the official annotation"):
        load_split(tmp_path, "train")


def test_normalized_coordinates_round_trip_and_pixel_centres():
    assert to_normalized(np.array([[0.0, 223.0]]), 224) == pytest.approx(np.array([[-1 + 1 / 224, 1 - 1 / 224]]))
    xy = np.random.default_rng(0).uniform(0, 223, (16, 2))
    assert from_normalized(to_normalized(xy, 224), 224) == pytest.approx(xy, abs=1e-4)


def test_crop_matrix_maps_centre_to_crop_centre_and_scales():
    m = crop_matrix(np.array([300.0, 200.0]), 400.0, 224, rotation_deg=90.0)
    centre = m[:, :2] @ [300, 200] + m[:, 2]
    assert centre == pytest.approx([111.5, 111.5])
    right = m[:, :2] @ [400, 200] + m[:, 2]  # 100 px right of centre, rotated 90 degrees counter-clockwise
    assert right == pytest.approx([111.5, 111.5 - 56.0])


def test_crop_keeps_joints_on_the_painted_pixels():
    img = np.zeros((300, 400, 3), np.uint8)
    joints = np.array([[120.0 + 10 * j, 80.0 + 7 * j] for j in range(NUM_JOINTS)], np.float32)
    for x, y in joints:
        cv2.circle(img, (int(x), int(y)), 3, (255, 255, 255), -1)
    rng = np.random.default_rng(3)
    checked = 0
    for _ in range(5):
        crop, pts, vis, _ = crop_person(
            img, np.array([200.0, 150.0]), 1.2, joints, np.ones(16, bool), 128, rng, Augment()
        )
        for (x, y), v in zip(pts, vis, strict=True):
            if v and 2 <= x < 126 and 2 <= y < 126:
                assert crop[int(round(y)), int(round(x))].max() > 100
                checked += 1
    # The joints span about 150 x 105 pixels about the box's centre, a box 300 pixels a side (225 to 375 under the
    # scale augmentation, turned up to 30 degrees): each is in each crop, visible, so each is checked.
    assert checked == 5 * NUM_JOINTS


def test_flip_swaps_left_and_right_and_mirrors():
    perm = flip_permutation()
    for a, b in FLIP_PAIRS:
        assert perm[a] == b and perm[b] == a
    assert perm[6] == 6 and perm[9] == 9
    img = np.zeros((200, 200, 3), np.uint8)
    joints = np.array([[50.0 + j, 100.0] for j in range(NUM_JOINTS)], np.float32)
    aug = Augment(scale=0, rotation_deg=0, shift=0, flip=True, colour=0)
    rng = np.random.default_rng(0)
    visible = np.ones(16, bool)
    visible[15] = False  # l_wrist not annotated
    plain, p0, v0, _ = crop_person(img, np.array([100.0, 100.0]), 0.8, joints, visible, 200)
    for _ in range(8):  # until the coin lands on flip
        crop, p1, v1, _ = crop_person(img, np.array([100.0, 100.0]), 0.8, joints, visible, 200, rng, aug)
        if not np.allclose(p1, p0):
            break
    # Flipped joint i sits where original joint perm[i] was, mirrored.
    assert p1[:, 0] == pytest.approx(199 - p0[perm, 0], abs=1e-3)
    assert p1[:, 1] == pytest.approx(p0[perm, 1], abs=1e-3)
    # and its visibility goes with it: the unannotated left wrist is the flipped image's right wrist.
    assert list(np.flatnonzero(~v0)) == [15] and list(np.flatnonzero(~v1)) == [10]


def test_letterbox_maps_frame_corners():
    frame = np.zeros((120, 200, 3), np.uint8)
    out, m = letterbox(frame, 100)
    assert out.shape == (100, 100, 3)
    # The frame's outer pixel edges land on the crop's edges (x = -0.5 is the left edge of pixel 0).
    assert (m[:, :2] @ [-0.5, -0.5] + m[:, 2]) == pytest.approx([-0.5, 19.5])
    assert (m[:, :2] @ [199.5, 119.5] + m[:, 2]) == pytest.approx([99.5, 79.5])


def test_letterbox_centres_a_tall_frame_between_bars_left_and_right():
    """A 200-high, 120-wide frame in 100 x 100: scaled by 1/2 to 60 x 100, with 20 px bars left and right (the
    test above, of a wide frame, has bars only above and below)."""
    out, m = letterbox(np.full((200, 120, 3), 200, np.uint8), 100)
    assert (m[:, :2] @ [-0.5, -0.5] + m[:, 2]) == pytest.approx([19.5, -0.5])
    assert (m[:, :2] @ [119.5, 199.5] + m[:, 2]) == pytest.approx([79.5, 99.5])
    assert (out[:, 20:80] == 200).all() and not out[:, :20].any() and not out[:, 80:].any()


def _augmented_geometry(seed: int, aug: Augment, size: int = 32):
    """One augmented crop of three joints: at the person's centre c, at c + (100, 0) and at c + (0, 100), scale
    0.4 (a 100 px crop side). Returns (crop side over the unaugmented side, rotation in degrees counter-
    clockwise, the crop centre's offset from c in crop sides, crop pixels per image pixel as crop_person
    returned it and as read from the joints)."""
    centre = np.array([40.0, 40.0])
    joints = np.zeros((NUM_JOINTS, 2), np.float32)
    joints[:] = centre
    joints[1] += (100.0, 0.0)
    joints[2] += (0.0, 100.0)
    rng = np.random.default_rng([seed, 0, 0])
    _, pts, _, px_scale = crop_person(np.zeros((80, 80, 3), np.uint8), centre, 0.4, joints, np.ones(16, bool), size,
                                      rng, aug)  # fmt: skip
    pts = pts.astype(np.float64)
    dx, dy = (pts[1] - pts[0]) / 100, (pts[2] - pts[0]) / 100  # s (cos a, -sin a) and s (sin a, cos a)
    s = math.hypot(*dx)
    assert math.hypot(*dy) == pytest.approx(s, rel=1e-5) and dx @ dy == pytest.approx(0, abs=1e-5 * s * s)
    angle = math.degrees(math.atan2(-dx[1], dx[0]))
    # pts[0] = half + s R(a) (c - crop centre): the crop centre is c - R(-a) (pts[0] - half) / s
    half = (size - 1) / 2
    rotated_back = np.array([[dx[0], dy[0]], [dx[1], dy[1]]]) / s  # R(a), columns the images of x and y
    offset = -(rotated_back.T @ (pts[0] - half)) / s
    side = size / s
    return side / 100.0, angle, offset / side, px_scale, s


def test_augmentation_draws_within_its_documented_ranges():
    """Augment's ranges, read back from where three joints land: the crop side times 2**U(-0.25, 0.25), a
    rotation of N(0, 15) degrees clipped to +-30 on 60% of samples, the centre moved by up to 8% of the side
    on each axis. 400 samples of a fixed seed: each bound holds, and each is nearly reached."""
    aug = Augment(flip=False, colour=0)
    got = [_augmented_geometry(seed, aug) for seed in range(400)]
    factors = np.array([g[0] for g in got])
    angles = np.array([g[1] for g in got])
    offsets = np.array([g[2] for g in got])
    for g in got:
        assert g[3] == pytest.approx(g[4], rel=1e-5)  # the crop pixels per image pixel returned
    assert factors.min() >= 2**-0.25 - 1e-6 and factors.max() <= 2**0.25 + 1e-6
    assert factors.min() < 2**-0.23 and factors.max() > 2**0.23
    assert np.abs(angles).max() == pytest.approx(30.0, abs=1e-3)  # the clipped draws (4.6% of N(0, 15)) sit on 30
    rotated = np.abs(angles) > 1e-3
    assert 0.53 < rotated.mean() < 0.67  # 60%: 0.6 +- 2.9 standard deviations of 400 draws
    assert np.abs(offsets).max() <= 0.08 + 1e-6 and np.abs(offsets).max() > 0.075
    # a flip on half the samples
    flips = Augment(scale=0, rotation_deg=0, shift=0, flip=True, colour=0)
    flipped = [_flipped(seed, flips) for seed in range(400)]
    assert 0.43 < np.mean(flipped) < 0.57


def _flipped(seed: int, aug: Augment) -> bool:
    joints = np.array([[10.0 + j, 20.0] for j in range(NUM_JOINTS)], np.float32)
    rng = np.random.default_rng([seed, 0, 0])
    _, pts, _, _ = crop_person(np.zeros((40, 40, 3), np.uint8), np.array([20.0, 20.0]), 0.16, joints,
                               np.ones(16, bool), 40, rng, aug)  # fmt: skip
    return bool(pts[0, 0] > 19.5)  # r_ankle at 10 - 0.5 as given; flipped, the mirrored l_ankle: 39 - 14.5


def test_a_joint_half_a_pixel_past_the_crop_s_edge_pixels_is_still_inside():
    """A joint is inside the S-pixel crop from -0.5 to S - 0.5 (the outer edges of its edge pixels) on both axes.
    Scale 0.5 gives a 125 px side, so a 125 px crop around (62, 62) is the image itself: a joint stays where it
    is."""
    edges = [-0.5, -0.51, 124.5, 124.51, 0.0, 124.0]
    joints = np.full((NUM_JOINTS, 2), 62.0, np.float32)
    for j, v in enumerate(edges):
        joints[j] = (v, 62.0)
        joints[j + len(edges)] = (62.0, v)
    _, pts, vis, px_scale = crop_person(np.zeros((125, 125, 3), np.uint8), np.array([62.0, 62.0]), 0.5, joints,
                                        np.ones(16, bool), 125)  # fmt: skip
    assert px_scale == 1.0 and np.array_equal(pts, joints)
    inside = [True, False, True, False, True, True]
    assert vis.tolist() == inside + inside + [True] * (NUM_JOINTS - 2 * len(edges))


def test_colour_jitter_of_a_flat_image_is_its_brightness_factor_saturated_at_255():
    """On a flat grey image saturation and contrast change nothing: the result is the value times the third
    factor drawn (brightness), truncated to uint8 and held at 255, not wrapped around."""
    from dpupose.data.transforms import colour_jitter

    seen = set()
    for seed in range(12):
        for value in (40, 230):
            rng = np.random.default_rng(seed)
            draws = np.random.default_rng(seed)
            draws.uniform(0.7, 1.3)
            draws.uniform(0.7, 1.3)
            brightness = draws.uniform(0.7, 1.3)
            expected = min(255, int(np.float32(value) * np.float32(brightness)))
            got = colour_jitter(np.full((3, 4, 3), value, np.uint8), rng, 0.3)
            assert np.array_equal(got, np.full((3, 4, 3), expected, np.uint8)), (seed, value, brightness)
            seen.add(expected == 255)
    assert seen == {True, False}  # some were held at 255


def _dataset_record(image: str, head_size: float = 10.0, visible=None):
    from dpupose.data.records import PoseRecord

    joints = np.array([[49.5 + j, 49.5 - j] for j in range(NUM_JOINTS)], np.float32)
    joints[1] = (0.0, 0.0)
    vis = np.ones(NUM_JOINTS, bool) if visible is None else visible
    return PoseRecord(image, np.array([49.5, 49.5], np.float32), 0.4, joints, vis, head_size=head_size)


def test_a_dataset_item_is_the_rgb_crop_with_its_joints_and_head_size_in_crop_pixels(tmp_path):
    """A 100 x 100 image, red on its left half and blue on its right (written as OpenCV's BGR), scale 0.4 (a 100
    px side) around its centre, at 50 px: the crop is the image halved, red channel first, so a crop pixel
    x is image pixel 2x + 0.5. Joint 0 at the centre is (0, 0) in DSNT coordinates, joint 1 at image (0, 0) is
    crop (-0.25, -0.25): (2 * -0.25 + 1) / 50 - 1 = -0.99; the head size of 10 image px is 5 crop px."""
    from dpupose.data.dataset import PoseDataset
    from dpupose.data.transforms import IMAGENET_MEAN, IMAGENET_STD

    image = np.zeros((100, 100, 3), np.uint8)
    image[:, :50] = (0, 0, 255)
    image[:, 50:] = (255, 0, 0)
    cv2.imwrite(str(tmp_path / "a.png"), image)
    item = PoseDataset([_dataset_record("a.png")], tmp_path, 50)[0]
    red = (np.array([1.0, 0, 0], np.float32) - IMAGENET_MEAN) / IMAGENET_STD
    blue = (np.array([0, 0, 1.0], np.float32) - IMAGENET_MEAN) / IMAGENET_STD
    got = item["image"].numpy()
    assert got.shape == (3, 50, 50) and got.dtype == np.float32
    np.testing.assert_allclose(got[:, :, :24], np.broadcast_to(red[:, None, None], (3, 50, 24)), atol=1e-6)
    np.testing.assert_allclose(got[:, :, 25:], np.broadcast_to(blue[:, None, None], (3, 50, 25)), atol=1e-6)
    target = item["target"].numpy()
    np.testing.assert_allclose(target[0], [0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(target[1], [-0.99, -0.99], atol=1e-6)
    np.testing.assert_allclose(target[2], [2 / 50, -2 / 50], atol=1e-6)  # 2 image px right and up: 1 crop px
    assert item["head_size"].item() == 5.0 and item["index"].item() == 0
    assert item["visible"].tolist() == item["annotated"].tolist() == [1.0] * NUM_JOINTS
    # no head size: -1, as the metrics read it
    assert PoseDataset([_dataset_record("a.png", head_size=0.0)], tmp_path, 50)[0]["head_size"].item() == -1.0


def test_an_augmented_item_is_a_function_of_the_seed_the_epoch_and_its_index(tmp_path):
    """A run resumed after a kill sees the samples an uninterrupted one would: the same (seed, epoch, index)
    gives the same item, whatever was read before it; another epoch, seed or index another."""
    from dpupose.data.dataset import PoseDataset

    cv2.imwrite(str(tmp_path / "a.png"), np.random.default_rng(0).integers(0, 256, (100, 100, 3), dtype=np.uint8))
    records = [_dataset_record("a.png"), _dataset_record("a.png")]  # the same record twice

    def item(seed: int, epoch: int, index: int) -> np.ndarray:
        data = PoseDataset(records, tmp_path, 32, Augment(), seed=seed)
        data.set_epoch(epoch)
        return np.concatenate([data[index]["image"].numpy().ravel(), data[index]["target"].numpy().ravel()])

    first = item(3, 1, 0)
    assert np.array_equal(item(3, 1, 0), first)
    data = PoseDataset(records, tmp_path, 32, Augment(), seed=3)
    data.set_epoch(5)
    _ = data[1], data[0]  # other items read first
    data.set_epoch(1)
    assert np.array_equal(np.concatenate([data[0]["image"].numpy().ravel(), data[0]["target"].numpy().ravel()]), first)
    for other in (item(3, 2, 0), item(4, 1, 0), item(3, 1, 1), item(1, 3, 0)):
        assert not np.array_equal(other, first)


def test_an_augmented_item_counts_the_annotated_joints_of_the_flipped_crop(tmp_path):
    """With augmentation the annotated joints are those inside the crop, swapped with the flip: the left
    wrist (15) left unannotated is, flipped, the right wrist (10)."""
    from dpupose.data.dataset import PoseDataset

    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((100, 100, 3), np.uint8))
    visible = np.ones(NUM_JOINTS, bool)
    visible[15] = False
    joints_near = _dataset_record("a.png", visible=visible)
    joints_near.joints[:] = (49.5, 49.5)  # every joint well inside any crop the augmentation draws
    data = PoseDataset([joints_near], tmp_path, 32, Augment(rotation_deg=0, scale=0, shift=0, colour=0), seed=0)
    seen = set()
    for epoch in range(8):
        data.set_epoch(epoch)
        item = data[0]
        assert item["annotated"].tolist() == item["visible"].tolist()
        seen.add(tuple(np.flatnonzero(item["annotated"].numpy() == 0)))
    assert seen == {(15,), (10,)}


def test_an_image_that_cannot_be_decoded_and_one_gone_missing_are_told_apart(tmp_path):
    from dpupose.data.dataset import PoseDataset

    with pytest.raises(DataError, match=r"^the data set is empty$"):
        PoseDataset([], tmp_path, 32)
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((100, 100, 3), np.uint8))
    (tmp_path / "b.png").write_bytes(b"no image")
    data = PoseDataset([_dataset_record("a.png"), _dataset_record("b.png")], tmp_path, 32)
    with pytest.raises(DataError) as info:
        data[1]
    assert str(info.value) == (
        f"image {tmp_path / 'b.png'} cannot be decoded (damaged, or not an image): replace it with a good copy, or "
        "take its record out of the annotations (`dpupose data check` counts every such image)"
    )
    (tmp_path / "a.png").unlink()  # after the check when the set was opened
    with pytest.raises(DataError) as info:
        data[0]
    assert str(info.value) == (
        f"image {tmp_path / 'a.png'} is missing; check --data-root (images/ must hold every annotated image)"
    )


def test_synthetic_scenes_are_deterministic_and_splits_disjoint():
    a_img, a_rec = render_scene(5, "valid", 3, 96)
    b_img, b_rec = render_scene(5, "valid", 3, 96)
    assert np.array_equal(a_img, b_img) and a_rec == b_rec
    c_img, _ = render_scene(5, "train", 3, 96)
    assert not np.array_equal(a_img, c_img)


def test_synthetic_root_uses_the_mpii_path(synth_root):
    train = load_split(synth_root, "train")
    valid = load_split(synth_root, "valid")
    assert len(train) == 24 and len(valid) == 12
    for rec in valid:
        assert rec.head_size_source == "head_box" and rec.head_size > 0
        assert (synth_root / "images" / rec.image).is_file()
        # The head box is the square on the head segment: head size = 0.6 * sqrt(2) * segment.
        seg = np.linalg.norm(rec.joints[9] - rec.joints[8])
        assert rec.head_size == pytest.approx(SEGMENT_FACTOR * seg, rel=0.02)


def test_a_head_box_written_corner_to_corner_either_way_is_a_head(tmp_path):
    write_mpii_json(tmp_path, [person(head_box=[30, 40, 0, 0])])  # x2 < x1: the same box
    (rec,) = load_split(tmp_path, "valid")
    assert rec.head_size == pytest.approx(0.6 * 50.0) and rec.head_size_source == "head_box"


# The official .mat as MATLAB writes it: every struct array carries the union of its fields, an absent
# value is [] (0x0 double), a struct array of one element is a 1x1 struct, text is char.
def _empty():
    return np.zeros((0, 0))


def _point(jid, x, y, vis):
    return {"id": jid, "x": x, "y": y, "is_visible": vis}


def _release_like_the_official_file(tmp_path):
    full = mat_struct_array(
        [
            _point(0, 620.0, 394.0, np.array([[1.0]])),
            _point(8, 637.0201, 189.8183, _empty()),  # neck and head top carry no visibility
            _point(9, 695.9799, 108.1817, _empty()),
            _point(12, 601.0, 167.0, "1"),  # visibility as text
            _point(15, 688.0, 313.0, "0"),
        ]
    )
    one_point = mat_struct(x=np.array([[50.0]]), y=np.array([[60.0]]), id=np.array([[3]], np.uint8), is_visible="1")
    rect_fields = ("x1", "y1", "x2", "y2", "annopoints", "scale", "objpos")

    def rect(**kw):
        return {k: kw.get(k, _empty()) for k in rect_fields}

    box = {"x1": 627.0, "y1": 100.0, "x2": 706.0, "y2": 198.0}
    train_multi = mat_struct_array(
        [
            rect(**box, annopoints=mat_struct(point=full), scale=3.021046, objpos=mat_struct(x=594.0, y=257.0)),
            rect(
                x1=40.0,
                y1=30.0,
                x2=60.0,
                y2=50.0,
                annopoints=mat_struct(point=one_point),
                scale=1.5,
                objpos=mat_struct(x=55.0, y=120.0),
            ),
            rect(x1=300.0, y1=30.0, x2=320.0, y2=50.0),  # a head box only: no scale, objpos or joints
        ]
    )
    people_only = mat_struct_array([{"scale": 2.0, "objpos": mat_struct(x=10.0, y=20.0)}])
    annolist = mat_struct_array(
        [
            {
                "image": mat_struct(name="015601864.jpg"),
                "annorect": train_multi,
                "frame_sec": _empty(),
                "vididx": _empty(),
            },
            {
                "image": mat_struct(name="015599452.jpg"),
                "annorect": people_only,
                "frame_sec": 11.0,
                "vididx": 1.0,
            },  # a training image whose people carry no joints
            {
                "image": mat_struct(name="005808361.jpg"),
                "annorect": people_only,
                "frame_sec": _empty(),
                "vididx": _empty(),
            },  # a test image: scale and objpos only
            {
                "image": mat_struct(name="086617615.jpg"),
                "annorect": _empty(),
                "frame_sec": _empty(),
                "vididx": _empty(),
            },  # nobody annotated
        ]
    )
    act = mat_struct_array([{"cat_name": "sports", "act_name": "curling", "act_id": 1.0}] * 4)
    act = act.reshape(4, 1)
    single = np.empty((4, 1), dtype=object)
    for i, v in enumerate([np.array([[1.0]]), _empty(), _empty(), _empty()]):
        single[i, 0] = v
    videos = np.empty((1, 1), dtype=object)
    videos[0, 0] = "aAOusnrSsHI"
    release = mat_struct(
        annolist=annolist,
        img_train=np.array([[1.0, 1.0, 0.0, 1.0]]),
        version="12",
        single_person=single,
        act=act,
        video_list=videos,
    )
    savemat(tmp_path / MAT_NAME, {"RELEASE": release})


def test_the_official_mat_nesting_and_its_quirks(tmp_path):
    _release_like_the_official_file(tmp_path)
    people = read_mat(tmp_path / MAT_NAME)
    annotated = [p for p in people if p.visible.any()]
    assert [p.image for p in annotated] == ["015601864.jpg", "015601864.jpg"]
    full, single = annotated
    # Ids 0..15 index MPII's joint order directly; text, empty and numeric is_visible all mean annotated.
    assert list(np.flatnonzero(full.visible)) == [0, 8, 9, 12, 15]
    assert full.joints[9] == pytest.approx([695.9799, 108.1817])
    assert full.head_box == (627.0, 100.0, 706.0, 198.0) and full.scale == pytest.approx(3.021046)
    # A person with one point: `point` is a struct, not an array of them.
    assert list(np.flatnonzero(single.visible)) == [3] and tuple(single.joints[3]) == (50, 60)
    # People without scale / objpos / joints are read but not usable; the test image's person has no joints.
    assert sum(1 for p in people if not p.visible.any()) == 3


def test_mat_records_are_in_0_based_pixels_with_the_usual_crop_centre(tmp_path):
    _release_like_the_official_file(tmp_path)
    # No test image has joints: both training people's image is the one held out (every tenth, sorted).
    (full, single) = load_split(tmp_path, "valid")
    assert full.joints[0] == pytest.approx([619.0, 393.0])  # MATLAB (620, 394) -> 0-based
    assert full.center == pytest.approx([593.0, 256.0 + 15 * 3.021046])
    assert single.joints[3] == pytest.approx([49.0, 59.0]) and single.center == pytest.approx([54.0, 119.0 + 22.5])
    assert full.head_size_source == "mat" and full.head_size == pytest.approx(0.6 * math.hypot(79, 98))


# The first record of the converters' annot/train.json (HRNet's download), as it is in the file.
HRNET_FIRST_RECORD = {
    "joints_vis": [1] * 16,
    "joints": [
        [620.0, 394.0], [616.0, 269.0], [573.0, 185.0], [647.0, 188.0], [661.0, 221.0], [656.0, 231.0],
        [610.0, 187.0], [647.0, 176.0], [637.0201, 189.8183], [695.9799, 108.1817], [606.0, 217.0],
        [553.0, 161.0], [601.0, 167.0], [692.0, 185.0], [693.0, 240.0], [688.0, 313.0],
    ],
    "image": "015601864.jpg",
    "scale": 3.021046,
    "center": [594.0, 257.0],
}  # fmt: skip


def test_converter_json_is_moved_to_0_based_pixels(tmp_path):
    write_mpii_json(tmp_path, [HRNET_FIRST_RECORD], "train")
    (rec,) = load_split(tmp_path, "train")
    assert rec.joints == pytest.approx(np.array(HRNET_FIRST_RECORD["joints"]) - 1)
    assert rec.center == pytest.approx([593.0, 256.0 + 15 * 3.021046])
    assert rec.scale == pytest.approx(3.021046) and rec.visible.all()


def test_a_1_based_joint_lands_on_its_pixel_in_the_crop(tmp_path):
    # A bright pixel at 0-based (x, y) = (40, 70), annotated the MATLAB way as (41, 71): the crop must
    # put the joint where the pixel went.
    img = np.zeros((160, 120, 3), np.uint8)
    img[70, 40] = 255
    rec = person(image="dot.jpg", center=[61.0, 81.5], scale=0.5)  # 0-based (60, 88) after the shift
    rec["joints"][0] = [41.0, 71.0]
    write_mpii_json(tmp_path, [rec])
    (r,) = load_split(tmp_path, "valid")
    crop, pts, _vis, _ = crop_person(img, r.center, r.scale, r.joints, r.visible, 125)  # 1 px per px
    y, x = np.unravel_index(np.argmax(crop[..., 0]), crop.shape[:2])
    assert crop[y, x, 0] == 255 and tuple(pts[0]) == pytest.approx((x, y), abs=1e-4)


def test_a_synthetic_root_is_read_as_written(synth_root):
    import json

    raw = json.loads((synth_root / "annot" / "valid.json").read_text())
    recs = load_split(synth_root, "valid")
    assert np.array([r.joints for r in recs]) == pytest.approx(np.array([x["joints"] for x in raw]))
    assert np.array([r.center for r in recs]) == pytest.approx(np.array([x["center"] for x in raw]))


def test_pytorch_pose_records_are_refused_by_name(tmp_path):
    # pytorch-pose's mpii_annotations.json entry layout, put where HRNet's records belong.
    rec = {
        "dataset": "MPI",
        "isValidation": 0.0,
        "img_paths": "015601864.jpg",
        "objpos": [594.0, 257.0],
        "joint_self": [[x, y, 1.0] for x, y in HRNET_FIRST_RECORD["joints"]],
        "scale_provided": 3.021,
    }
    write_mpii_json(tmp_path, [rec], "train")
    with pytest.raises(DataError, match=r"record 0: this is pytorch-pose's mpii_annotations.json layout"):
        load_split(tmp_path, "train")


def test_the_generation_bar_times_the_whole_generation(tmp_path, monkeypatch):
    """The bar of a cached synthetic set starts with the generation: created at the first finished chunk, it
    showed the chunk as rendered in no time (931 img/s for a set that took 10 s) and a too short time left."""
    import time

    from dpupose import progress
    from dpupose.data.sources import synthetic_root

    bars = []

    class Recording(progress.Progress):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            bars.append(self)

    monkeypatch.setattr(progress, "Progress", Recording)
    t0 = time.monotonic()
    synthetic_root("valid", 4, cache=tmp_path)
    elapsed = time.monotonic() - t0
    (bar,) = bars
    assert bar.count == bar.total == 4
    assert bar.start - t0 < 0.5 * elapsed, (bar.start - t0, elapsed)


def test_a_synthetic_scene_that_cannot_be_written_stops_the_generation(tmp_path, small_fs):
    """cv2.imwrite returns False where the image cannot be written (a full disk, a missing folder), and the
    generator went on: the set was kept, with annotations for images it did not hold."""
    from dpupose.data.synthetic import _render_chunk

    records = _render_chunk((0, "valid", 0, 2, 64, str(tmp_path)))
    assert [r["image"] for r in records] == ["valid_000000.jpg", "valid_000001.jpg"]
    image, _ = render_scene(0, "valid", 1, 64)  # the bytes cv2.imwrite wrote: the cached sets stay as they were
    ok, expected = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 70 + 7919 % 26])
    assert ok and (tmp_path / "valid_000001.jpg").read_bytes() == expected.tobytes()
    with pytest.raises(FileNotFoundError) as info:
        _render_chunk((0, "valid", 0, 2, 64, str(tmp_path / "missing")))
    assert info.value.filename == str(tmp_path / "missing" / "valid_000000.jpg")

    from conftest import fill

    fs = small_fs(256)
    fill(fs)
    with pytest.raises(OSError) as info:
        _render_chunk((0, "valid", 0, 2, 64, str(fs)))
    assert (info.value.errno, info.value.filename) == (errno.ENOSPC, str(fs / "valid_000000.jpg"))


def test_generation_keeps_a_few_chunks_submitted_and_writes_the_same_set(tmp_path, monkeypatch):
    """All chunks were submitted at once (pool.map): for the largest count, 10 million tasks held in memory
    before the first scene was rendered. At most two per process are submitted now, and how the scenes are
    cut into chunks changes no byte of the set."""
    import filecmp

    from dpupose.data import synthetic

    spec = synthetic.SynthSpec(seed=3, num_train=10, num_valid=3, image_size=64)
    whole = synthetic.generate(tmp_path / "whole", spec, workers=1)  # one chunk per split
    futures, in_flight = [], []

    class Recording(synthetic.ProcessPoolExecutor):
        def submit(self, fn, /, *args, **kwargs):
            futures.append(super().submit(fn, *args, **kwargs))
            in_flight.append(sum(not f.done() for f in futures))
            return futures[-1]

    monkeypatch.setattr(synthetic, "ProcessPoolExecutor", Recording)
    monkeypatch.setattr(synthetic, "CHUNK", 2)
    cut = synthetic.generate(tmp_path / "cut", spec, workers=1)
    assert len(in_flight) == 5 + 2  # chunks of 2 scenes: 5 of the 10 training, 2 of the 3 validation scenes
    assert max(in_flight) <= synthetic.CHUNKS_PER_WORKER
    names = sorted(p.relative_to(whole).as_posix() for p in whole.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(cut).as_posix() for p in cut.rglob("*") if p.is_file())
    assert len(names) == 10 + 3 + 3
    assert filecmp.cmpfiles(whole, cut, names, shallow=False)[0] == names


def test_an_interrupted_generation_stops_at_the_scenes_under_way(tmp_path, monkeypatch):
    """Ctrl-C or SIGTERM (or an error such as a full disk) waited until the pool's processes had rendered the
    chunks handed to them, up to three of 200 scenes (a minute on 2 cores), before the unfinished set was
    removed. The scenes under way end the generation now; its workers are gone before the temporary folder
    is removed (one still writing would leave files in it)."""
    import multiprocessing
    import shutil

    from dpupose.data import synthetic

    monkeypatch.setattr(synthetic, "CHUNK", 4)
    removed = []
    rmtree = shutil.rmtree

    def recording_rmtree(path, *args, **kwargs):
        images = sorted((Path(path) / "images").glob("*.jpg"))
        removed.append((Path(path).name, len(images), multiprocessing.active_children()))
        rmtree(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", recording_rmtree)

    def interrupt(done: int, total: int) -> None:
        if done:  # the first chunk is in
            raise KeyboardInterrupt

    spec = synthetic.SynthSpec(seed=0, num_train=400, num_valid=0, image_size=64)
    with pytest.raises(KeyboardInterrupt):
        synthetic.generate(tmp_path / "root", spec, workers=1, progress=interrupt)
    ((name, rendered, workers),) = removed
    assert name.startswith(".root.") and name.endswith(".tmp")
    assert 4 <= rendered <= 4 * synthetic.CHUNKS_PER_WORKER  # the first chunk and at most the one under way
    assert workers == []
    assert list(tmp_path.iterdir()) == []


def test_an_earlier_root_of_a_million_scenes_and_more_is_replaced(tmp_path):
    """Scene 1,000,000 is train_1000000.jpg (seven digits): an earlier root that held it was refused as a
    folder holding a file the generator did not write."""
    from dpupose.data import synthetic
    from dpupose.errors import UsageError

    spec = synthetic.SynthSpec(seed=1, num_train=1, num_valid=1, image_size=64)
    root = synthetic.generate(tmp_path / "root", spec, workers=1)
    (root / "images" / "train_000000.jpg").rename(root / "images" / "train_1000000.jpg")
    synthetic.generate(root, spec, workers=1)
    assert sorted(p.name for p in (root / "images").iterdir()) == ["train_000000.jpg", "valid_000000.jpg"]
    # A file of the user's there still stops it, one named as one.
    for name in ("train_12345.jpg", "train_1000000.png", "mytrain_000000.jpg"):
        (root / "images" / name).write_bytes(b"mine")
        with pytest.raises(UsageError, match=rf"images/ also holds {name}, .*: move it elsewhere"):
            synthetic.generate(root, spec, workers=1)
        (root / "images" / name).unlink()


def test_synthetic_joints_are_unannotated_only_outside_the_image():
    """docs/training.md: as in MPII, occluded joints are annotated and only joints outside the image are not."""
    size, outside = 64, 0
    for i in range(60):
        _, rec = render_scene(2, "train", i, size)
        pts = np.array(rec["joints"])
        inside = (pts >= 0).all(axis=1) & (pts < size).all(axis=1)
        assert rec["joints_vis"] == inside.astype(int).tolist()
        outside += int((~inside).sum())
        # The head box: the square on the head segment, centred on it.
        x1, y1, x2, y2 = rec["head_box"]
        segment = np.linalg.norm(pts[9] - pts[8])
        assert (x2 - x1, y2 - y1) == pytest.approx((segment, segment), abs=0.02)
        assert ((x1 + x2) / 2, (y1 + y2) / 2) == pytest.approx(tuple((pts[8] + pts[9]) / 2), abs=0.02)
    assert outside > 0  # scenes of this seed do have joints outside the image


def test_a_synthetic_root_without_its_marker_is_refused_not_read_as_mpii(synth_root, tmp_path):
    """--data synthetic with a root that lost synthetic.json (images/ and annot/ copied alone) read its records
    as MPII's, 1 px off and the crop centre 15 x scale px lower, and eval scored the shifted points."""
    import shutil

    from dpupose.data.sources import load_data

    copy = tmp_path / "copy"
    shutil.copytree(synth_root / "annot", copy / "annot")
    (copy / "images").mkdir()
    with pytest.raises(DataError, match=r"is given as synthetic data but has no synthetic\.json .*\(--data mpii"):
        load_data("synthetic", "valid", copy)
    shutil.copy(synth_root / "synthetic.json", copy)
    records = load_data("synthetic", "valid", copy).records
    assert [r.joints.tolist() for r in records] == [r.joints.tolist() for r in load_split(synth_root, "valid")]
    # The same annotations as MPII's are the 0-based points moved by one pixel, as --data mpii reads them
    (copy / "synthetic.json").unlink()
    mpii = load_data("mpii", "valid", copy).records
    assert np.allclose(mpii[0].joints, records[0].joints - 1.0)


def test_head_size_sources_are_said_in_words(tmp_path):
    """data check, train and eval say where PCKh's head sizes came from in words a user can act on, not the
    internal labels ('segment 2, none 1')."""
    no_neck = person(joints_vis=[1] * 8 + [0] + [1] * 7)
    write_mpii_json(tmp_path, [person(head_box=[0, 0, 30, 40]), person(), person(), no_neck])
    records = load_split(tmp_path, "valid")
    assert head_size_counts(records) == {"head_box": 1, "none": 1, "segment": 2}
    assert describe_head_sizes(records) == (
        "1 from the records' head_box, 1 without one (no head box, and the upper neck or head top unannotated: "
        "left out of PCKh), 2 from the upper-neck to head-top distance (no head box)"
    )


@pytest.mark.parametrize(("inner", "annotation"), [("images", "json"), ("annot", "json"), ("images", "mat")])
def test_a_data_root_given_as_its_images_or_annot_folder_names_the_root(tmp_path, inner, annotation):
    """--data-root ROOT/images (the folder the pictures are in) said only that the layout was missing."""
    root = tmp_path / "my mpii"
    (root / "images").mkdir(parents=True)
    if annotation == "json":
        write_mpii_json(root, [person()], "train")
    else:
        one = {"joints": {0: (5, 6)}, "box": (0, 0, 9, 9), "scale": 1.0, "objpos": (5, 5)}
        _write_mat(root, [("a.jpg", [one])], [1])
    with pytest.raises(DataError) as info:
        load_split(root / inner, "train")
    text = str(info.value)
    assert "but the folder above it has" in text
    assert shlex.split(text.split("give --data-root ")[1].split(",")[0]) == [str(root)]


def test_a_split_from_the_mat_leaves_out_the_images_of_the_other_splits_json(tmp_path):
    """annot/valid.json with the .mat but no train.json: the training split came from the .mat's training
    images, which hold valid.json's (HRNet's valid.json is part of MPII's training set), so the run trained on
    its own validation images."""
    names = [f"{i:03d}.jpg" for i in range(20)]
    one = {"joints": {0: (5, 6), 8: (5, 10), 9: (5, 2)}, "box": (0, 0, 9, 9), "scale": 1.0, "objpos": (5, 5)}
    _write_mat(tmp_path, [(n, [one]) for n in names], [1] * 20)
    write_mpii_json(tmp_path, [person(image=n) for n in names[:4]], "valid")
    train = load_split(tmp_path, "train")
    assert sorted(r.image for r in train) == names[4:]  # all the others: no hold-out of every tenth
    (tmp_path / "annot" / "valid.json").rename(tmp_path / "annot" / "train.json")
    valid = load_split(tmp_path, "valid")
    assert sorted(r.image for r in valid) == names[4:]


def test_a_mat_with_annotated_test_images_validates_on_them_beside_the_other_split_s_json(tmp_path):
    # The validation split from the .mat is its annotated test images when it has any, with train.json
    # beside it as without (not the .mat's training images less train.json's)
    train_names = [f"t{i:02d}.jpg" for i in range(12)]
    test_names = ["v0.jpg", "v1.jpg"]
    one = {"joints": {0: (5, 6), 8: (5, 10), 9: (5, 2)}, "box": (0, 0, 9, 9), "scale": 1.0, "objpos": (5, 5)}
    _write_mat(tmp_path, [(n, [one]) for n in train_names + test_names], [1] * 12 + [0, 0])
    write_mpii_json(tmp_path, [person(image=n) for n in train_names[:4]], "train")
    assert sorted(r.image for r in load_split(tmp_path, "valid")) == test_names


def test_json_and_the_mat_together_say_which_gives_what(tmp_path, caplog):
    one = {"joints": {0: (5, 6)}, "box": (0, 0, 30, 40), "scale": 1.0, "objpos": (101, 121)}
    _write_mat(tmp_path, [("a.jpg", [one]), ("z.jpg", [one])], [1, 1])
    write_mpii_json(tmp_path, [person(), person(image="b.jpg"), person(head_box=[0, 0, 3, 4])], "train")
    with caplog.at_level(logging.INFO, logger="dpupose.data.mpii"):
        records = load_split(tmp_path, "train")
    assert len(records) == 3  # the JSON file's, not the .mat's two
    assert f"train split: records from annot/train.json; {MAT_NAME} gives head boxes only (to 1 of its 3 records)" in (
        caplog.text
    )


def test_the_mat_a_folder_down_where_its_zip_unpacks_is_named_with_the_move(tmp_path, caplog):
    """The official zip unpacks to mpii_human_pose_v1_u12_2/: unpacked into the root, its .mat was not found,
    and beside JSON files it was passed over without a word, PCKh taking the neck-head distance."""
    root = tmp_path / "my mpii"
    deep = root / "mpii_human_pose_v1_u12_2"
    deep.mkdir(parents=True)
    one = {"joints": {0: (5, 6), 8: (5, 10), 9: (5, 2)}, "box": (0, 0, 9, 9), "scale": 1.0, "objpos": (5, 5)}
    _write_mat(deep, [("a.jpg", [one])], [1])
    with pytest.raises(DataError) as info:
        load_split(root, "train")
    move = str(info.value).split("(mv ")[1].rstrip(")")
    assert shlex.split(move) == [str(deep / MAT_NAME), str(root)]
    write_mpii_json(root, [person()], "train")
    with caplog.at_level(logging.WARNING, logger="dpupose.data.mpii"):
        (rec,) = load_split(root, "train")
    assert rec.head_size_source == "segment"
    assert f"{deep / MAT_NAME} is a folder too deep to be read: move it into the data root" in caplog.text
    (deep / MAT_NAME).rename(root / MAT_NAME)  # moved as said: read
    (rec,) = load_split(root, "train")
    assert rec.head_size_source == "mat"
    # a copy left a folder down beside the one at the root is not the root's concern: read without a word
    shutil.copy(root / MAT_NAME, deep / MAT_NAME)
    (root / "annot" / "train.json").unlink()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dpupose.data.mpii"):
        (rec,) = load_split(root, "valid")  # its one training image, held out
    assert rec.head_size_source == "mat" and "too deep" not in caplog.text


def test_image_names_written_from_the_root_are_answered_with_the_names_to_write(synth_root, tmp_path):
    """A converter that wrote 'images/a.jpg' (from the root, not inside images/): every image was 'missing'
    with no word that each one was right there."""
    import shutil

    from dpupose.data.dataset import check_images

    root = tmp_path / "root"
    shutil.copytree(synth_root, root)
    records = load_split(root, "valid")
    for r in records:
        r.image = f"images/{r.image}"
    first = records[0].image.split("/")[1]
    with pytest.raises(DataError) as info:
        check_images(records, root / "images")
    assert str(info.value).endswith(
        f"; {root / 'images' / first} is there: image names are read inside images/, so drop the folders before "
        f"the file name from the records' 'image' (images/{first} -> {first})"
    )
    records[0].image = "elsewhere/nothing.jpg"  # not there under its last part either: no hint
    with pytest.raises(DataError) as info:
        check_images(records[:1], root / "images")
    assert "is there" not in str(info.value)


def test_the_first_validation_scene_is_the_one_the_shipped_figures_were_measured_on():
    """The synthetic validation set is fixed: every figure in the model card was measured on it. Its first
    scene's record (default seed and size) as generated when the card was written; the record's box is the
    joints' box, its scale 1.15 x the box's longer side / 200 px, its head box the square on the head segment."""
    _, rec = render_scene(0, "valid", 0, 256)
    joints = [[110.26, 157.0], [127.3, 125.24], [136.78, 120.8], [158.72, 120.89], [178.77, 141.73],
              [184.23, 166.84], [147.84, 119.22], [148.2, 70.08], [148.28, 59.49], [145.38, 38.8],
              [126.33, 118.85], [126.84, 98.33], [130.86, 72.01], [165.5, 72.98], [165.78, 92.97],
              [168.16, 114.36]]  # fmt: skip
    assert rec == {
        "center": [147.24, 102.82],
        "scale": 0.7362,
        "joints": joints,
        "joints_vis": [1] * 16,
        "head_box": [136.39, 38.7, 157.27, 59.59],
    }
    pts = np.array(joints)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    assert rec["center"] == pytest.approx((lo + hi) / 2, abs=0.01)
    assert rec["scale"] * 200 == pytest.approx(1.15 * (hi - lo).max(), abs=0.02)


def test_the_first_validation_scenes_pixels_are_the_ones_the_shipped_figures_were_measured_on():
    """The synthetic validation set is fixed to the pixel, not only its records (the test above): six scenes'
    channel means and the mean grey of each 32 x 32 block, as rendered by the generator the model card's
    figures were measured with (tests/data/synthetic/README.md). A part drawn in another order, shade or shape,
    a face or its eyes left out, moves a block by far more than the 0.02 allowed."""
    golden = json.loads((Path(__file__).parent / "data" / "synthetic" / "first_valid_scenes.json").read_text())
    assert list(golden) == [f"valid_{i:06d}" for i in (0, 1, 2, 3, 16, 31)]
    for name in golden:
        image, _ = render_scene(0, "valid", int(name[6:]), 256)
        f = image.astype(np.float64)
        np.testing.assert_allclose(f.mean(axis=(0, 1)), golden[name]["channel_means"], atol=0.02, err_msg=name)
        grey = f.mean(axis=2).reshape(8, 32, 8, 32).mean(axis=(1, 3))
        np.testing.assert_allclose(grey, golden[name]["grey_blocks"], atol=0.02, err_msg=name)


def test_the_projection_turns_3d_up_into_image_up_and_rolls_about_the_centre():
    from dpupose.data.synthetic import _project

    points = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 5.0]])  # depth is dropped: orthographic
    extra = np.array([[0.0, 2.0, 0.0]])
    pts, more = _project(points, 10.0, np.array([50.0, 50.0]), 0.0, extra)
    # (x, y) -> (10 x, -10 y): the box (0..10, -20..0) centred on (50, 50)
    np.testing.assert_allclose(pts, [[45.0, 60.0], [55.0, 40.0]])
    np.testing.assert_allclose(more, [[45.0, 40.0]])
    rolled, _ = _project(points, 10.0, np.array([50.0, 50.0]), np.pi / 2)
    # a quarter turn of (0, 0) and (10, -20): (u, v) -> (-v, u), giving (0, 0) and (20, 10), box centred
    np.testing.assert_allclose(rolled, [[40.0, 45.0], [60.0, 55.0]], atol=1e-12)


def test_each_synthetic_scene_is_written_at_its_own_jpeg_quality(tmp_path):
    from dpupose.data.synthetic import _render_chunk

    records = _render_chunk((4, "valid", 2, 4, 64, str(tmp_path)))
    assert [r["image"] for r in records] == ["valid_000002.jpg", "valid_000003.jpg"]
    for i, quality in ((2, 70 + (2 * 7919 + 4) % 26), (3, 70 + (3 * 7919 + 4) % 26)):
        image, rec = render_scene(4, "valid", i, 64)
        ok, buf = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        assert (tmp_path / f"valid_{i:06d}.jpg").read_bytes() == buf.tobytes()
        assert records[i - 2] == {"image": f"valid_{i:06d}.jpg", **rec}
    assert (70 + (2 * 7919 + 4) % 26, 70 + (3 * 7919 + 4) % 26) == (78, 93)  # two different qualities


@pytest.mark.parametrize(
    ("a", "b", "r"),
    [((16.0, 16.0), (28.0, 32.0), 5.0), ((10.3, 40.7), (50.2, 12.9), 7.5), ((30.0, 30.0), (30.0, 30.0), 6.0)],
)
def test_a_capsule_covers_its_area(a, b, r):
    """A capsule of radius r around a segment of length L covers pi r^2 + 2 r L; the pixels rasterized hold at
    least that and at most half its perimeter (2 pi r + 2 L) more, the boundary pixels."""
    from dpupose.data.render import capsule_mask

    mask = np.zeros((64, 64), np.uint8)
    capsule_mask(mask, np.array(a), np.array(b), r, r)
    length = math.dist(a, b)
    area = math.pi * r * r + 2 * r * length
    assert area <= (mask > 0).sum() <= area + math.pi * r + length
    # every pixel within r - 1 of the segment is covered, none farther than r + 1
    yy, xx = np.mgrid[0:64, 0:64].astype(float)
    p, d = np.stack([xx, yy], -1), np.array(b) - np.array(a)
    t = np.clip(((p - a) @ d) / max(d @ d, 1e-12), 0, 1)
    dist = np.linalg.norm(p - (np.array(a) + t[..., None] * d), axis=-1)
    assert mask[dist <= r - 1].all() and not mask[dist > r + 1].any()


def test_a_synthetic_root_of_other_settings_is_generated_again_and_one_of_the_same_reused(tmp_path, monkeypatch):
    from dpupose.data import synthetic

    spec = synthetic.SynthSpec(seed=1, num_train=1, num_valid=1, image_size=64)
    root = synthetic.ensure(tmp_path / "root", spec)
    more = synthetic.SynthSpec(seed=1, num_train=1, num_valid=2, image_size=64)
    synthetic.ensure(root, more)
    assert sorted(p.name for p in (root / "images").iterdir()) == ["train_000000.jpg", "valid_000000.jpg",
                                                                    "valid_000001.jpg"]  # fmt: skip
    assert json.loads((root / "synthetic.json").read_text())["num_valid"] == 2
    monkeypatch.setattr(synthetic, "generate", lambda *a, **k: pytest.fail("generated a root it had"))
    assert synthetic.ensure(root, more) == root


def test_a_cached_synthetic_root_is_reused_only_whole_and_of_the_same_seed_and_version(tmp_path, monkeypatch):
    """Scene i is the same in every root of one seed and generator version, so a larger whole one serves a smaller
    request; one of another seed or version, one without its synthetic.json (cut short) or a folder whose count is
    not a number is not taken."""
    from dpupose.data import sources
    from dpupose.data.synthetic import SynthSpec

    version = SynthSpec().version
    made = []

    def generate(root, spec, split):
        made.append((root.name, spec.seed, spec.num_train, spec.num_valid))
        root.mkdir(parents=True)
        (root / "synthetic.json").write_text("{}")

    monkeypatch.setattr(sources, "_generate_synthetic", generate)

    def cached(*names, whole=True):
        cache = tmp_path / f"cache{len(list(tmp_path.iterdir()))}"
        for name in names:
            (cache / name).mkdir(parents=True)
            if whole:
                (cache / name / "synthetic.json").write_text("{}")
        return cache

    cache = cached(f"synthetic-valid-s0-n8-v{version}")
    assert sources.synthetic_root("valid", 4, cache=cache) == cache / f"synthetic-valid-s0-n8-v{version}"
    assert sources.synthetic_root("valid", 8, cache=cache) == cache / f"synthetic-valid-s0-n8-v{version}"
    assert made == []
    # a larger root cut short (no synthetic.json) sorts first ("n16" < "n8") and is passed over
    cut = cached(f"synthetic-valid-s0-n16-v{version}", whole=False)
    (cut / f"synthetic-valid-s0-n8-v{version}").mkdir()
    (cut / f"synthetic-valid-s0-n8-v{version}" / "synthetic.json").write_text("{}")
    assert sources.synthetic_root("valid", 4, cache=cut) == cut / f"synthetic-valid-s0-n8-v{version}"
    for others in (
        (f"synthetic-valid-s1-n8-v{version}", f"synthetic-train-s0-n8-v{version}"),  # another seed, another split
        (f"synthetic-valid-s0-n8-v{version - 1}", f"synthetic-valid-s0-n8-v{version}0"),  # other versions
        (f"synthetic-valid-s0-n0x-v{version}", f"synthetic-valid-s0-n-9-v{version}"),  # no count
    ):
        cache = cached(*others)
        made.clear()
        assert sources.synthetic_root("valid", 4, cache=cache) == cache / f"synthetic-valid-s0-n4-v{version}"
        assert made == [(f"synthetic-valid-s0-n4-v{version}", 0, 0, 4)], others
    cache = cached(f"synthetic-valid-s0-n8-v{version}")
    made.clear()
    assert sources.synthetic_root("train", 4, seed=0, cache=cache) == cache / f"synthetic-train-s0-n4-v{version}"
    assert made == [(f"synthetic-train-s0-n4-v{version}", 0, 4, 0)]


def test_load_data_asks_for_the_documented_synthetic_set_and_cuts_only_synthetic_records(
    synth_root, tmp_path, monkeypatch
):
    """--data synthetic without --data-root: 20,000 training and 1,000 validation scenes by default (docs/training.md),
    of the seed given; count cuts a synthetic root's records, never MPII's (train says --num-train is ignored for
    it); an unknown data set is named."""
    from dpupose.data import sources
    from dpupose.errors import UsageError

    asked = []

    def synthetic_root(split, count, seed=0, cache=None):
        asked.append((split, count, seed))
        return synth_root

    monkeypatch.setattr(sources, "synthetic_root", synthetic_root)
    sources.load_data("synthetic", "train", None)
    sources.load_data("synthetic", "valid", None, seed=5)
    sources.load_data("synthetic", "valid", None, 3, seed=2)
    assert asked == [("train", 20000, 0), ("valid", 1000, 5), ("valid", 3, 2)]
    everything = load_split(synth_root, "valid")
    assert len(everything) == 12
    five = sources.load_data("synthetic", "valid", synth_root, count=5).records
    assert [r.image for r in five] == [r.image for r in everything[:5]]
    mpii = tmp_path / "mpii"
    shutil.copytree(synth_root / "annot", mpii / "annot")
    (mpii / "images").mkdir()
    assert len(sources.load_data("mpii", "valid", mpii, count=5).records) == 12
    with pytest.raises(UsageError) as exc:
        sources.load_data("coco", "valid", mpii)
    assert str(exc.value) == "unknown data set 'coco'; use one of: synthetic, mpii"


@pytest.mark.parametrize(
    ("code", "strerror"),
    [
        (errno.EROFS, "Read-only file system"),
        (errno.EACCES, "Permission denied"),  # another user's checkout
        (errno.EPERM, "Operation not permitted"),
    ],
)
def test_a_synthetic_set_that_cannot_be_cached_in_the_current_folder_says_where_and_what_to_do(
    tmp_path, monkeypatch, code, strerror
):
    """eval (no output of its own) run from a read-only folder was told 'build/data/... is on a read-only file
    system: write elsewhere', a folder the user never gave. A cached set found there is still used (cache_lock)."""
    from dpupose.data import sources
    from dpupose.errors import DataError

    def read_only(entry):
        raise OSError(code, strerror, str(entry))

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sources, "cache_lock", read_only)
    with pytest.raises(DataError) as info:
        sources.synthetic_root("valid", 2)
    assert str(info.value) == (
        "the generated synthetic valid set is kept in build/data/ under the current folder, which cannot be "
        f"written ({strerror}): run the command from a folder you can write, or give --data-root a set "
        "that `dpupose data synth --out DIR` wrote"
    )


def test_a_synthetic_set_that_cannot_be_cached_for_another_reason_is_that_error(tmp_path, monkeypatch):
    """A full disk is no fault of the folder chosen: it is reported as it is, not as a folder that cannot be
    written."""
    from dpupose.data import sources

    def full(entry):
        raise OSError(errno.ENOSPC, "No space left on device", str(entry))

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sources, "cache_lock", full)
    with pytest.raises(OSError) as info:
        sources.synthetic_root("valid", 2)
    assert info.value.errno == errno.ENOSPC and type(info.value) is OSError
