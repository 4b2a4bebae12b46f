"""Person records in the MPII JSON layout (dpupose.data.records): what a record may hold and what is read
from it, checked field by field against hand-worked values."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from dpupose.data.joints import NUM_JOINTS
from dpupose.data.records import (
    SEGMENT_FACTOR,
    PoseRecord,
    load_json_records,
    missing_image_hint,
    parse_record,
)
from dpupose.errors import DataError


def person(**kw) -> dict:
    rec = {
        "image": "a.jpg",
        "center": [100.0, 120.0],
        "scale": 1.2,
        "joints": [[50.0 + 5 * j, 60.0 + 4 * j] for j in range(NUM_JOINTS)],
        "joints_vis": [1] * NUM_JOINTS,
    }
    rec.update(kw)
    return rec


def refused(raw: object) -> str:
    with pytest.raises(ValueError) as e:
        parse_record(raw)
    return str(e.value)


def test_visibility_is_the_annotation_flag_and_non_negative_coordinates():
    joints = [[50.0 + 5 * j, 60.0 + 4 * j] for j in range(NUM_JOINTS)]
    joints[0], joints[1], joints[2] = [0.0, 5.0], [5.0, 0.0], [-0.5, 5.0]  # 0 is a pixel; below it, unannotated
    vis = [1] * NUM_JOINTS
    vis[3], vis[4] = 0, 2  # any flag above 0 is annotated
    rec = parse_record(person(joints=joints, joints_vis=vis))
    assert list(np.flatnonzero(~rec.visible)) == [2, 3]
    without = parse_record({k: v for k, v in person(joints=joints).items() if k != "joints_vis"})
    assert list(np.flatnonzero(~without.visible)) == [2]  # no joints_vis: every joint with coordinates


def test_a_null_head_box_is_no_box_and_a_segment_of_no_length_gives_no_head_size():
    rec = parse_record(person(head_box=None))
    assert rec.head_size is None and rec.head_size_source == "none"
    rec.resolve_head_size()  # joints 8 and 9 are (90, 92) and (95, 96): 5 and 4 apart
    assert rec.head_size == pytest.approx(SEGMENT_FACTOR * math.hypot(5, 4)) and rec.head_size_source == "segment"
    joints = [[10.0, 10.0]] * NUM_JOINTS  # upper neck and head top at one point
    point = parse_record(person(joints=joints))
    point.resolve_head_size()
    assert point.head_size is None and point.head_size_source == "none"


def test_a_head_size_already_given_is_kept():
    rec = PoseRecord("a.jpg", np.zeros(2), 1.0, np.arange(32, dtype=np.float32).reshape(16, 2), np.ones(16, bool))
    rec.head_size, rec.head_size_source = 12.5, "mat"
    rec.resolve_head_size()
    assert (rec.head_size, rec.head_size_source) == (12.5, "mat")


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"scale": True}, "'scale' must be a positive number, got True"),  # JSON true is no number
        ({"center": [True, 1]}, "'center' must hold finite numbers, got True"),
        ({"scale": 0}, "'scale' must be a positive number, got 0"),
        ({"scale": 0.00099}, "'scale' (person height / 200 px) must be between 0.001 and 10000, got 0.00099"),
        ({"scale": 10000.5}, "'scale' (person height / 200 px) must be between 0.001 and 10000, got 10000.5"),
        ({"center": [1, 2, 3]}, "'center' must be a list of 2 numbers"),
        ({"center": [1e6 + 1, 2]}, "'center' must hold pixel coordinates, within 1e+06 of 0, got 1000001.0"),
        # a repr of 40 characters is shown whole, one of 41 cut to 37 and '...'
        ({"center": [10**39, 2]}, f"'center' must hold pixel coordinates, within 1e+06 of 0, got {10**39}"),
        ({"center": [10**40, 2]}, f"'center' must hold pixel coordinates, within 1e+06 of 0, got 1{'0' * 36}..."),
        ({"joint_self": [], "joints": None}, "'joints' must be a list of 16 [x, y] pairs"),  # joints: HRNet's layout
    ],
)
def test_a_field_out_of_its_bounds_is_named(patch: dict, message: str):
    assert refused(person(**patch)) == message


def test_the_bounds_themselves_are_taken():
    rec = parse_record(person(scale=0.001, center=[1e6, -1e6], joints=[[1e6, 0.0]] * NUM_JOINTS))
    assert rec.scale == 0.001 and rec.center.tolist() == [1e6, -1e6] and rec.visible.all()
    assert parse_record(person(scale=10000)).scale == 10000
    assert parse_record(person(joint_self=[[0, 0, 1]] * NUM_JOINTS)).joints[1].tolist() == [55.0, 64.0]


def test_a_record_that_is_no_object_and_a_file_that_is_no_list_are_refused(tmp_path: Path):
    assert refused([1, 2]) == "a record must be a JSON object"
    path = tmp_path / "valid.json"
    path.write_text(json.dumps([person(), ["a.jpg"]]))
    with pytest.raises(DataError) as e:
        load_json_records(path)
    assert str(e.value) == (
        f"{path}: record 1: a record must be a JSON object; correct that record (counting from 0) or remove it"
    )
    path.write_text(json.dumps({"records": [person()]}))
    with pytest.raises(DataError) as e:
        load_json_records(path)
    assert str(e.value) == f"{path} must hold a JSON list of person records"


def test_an_annotation_file_missing_or_not_utf_8_is_one_line(tmp_path: Path):
    gone = tmp_path / "train.json"
    with pytest.raises(DataError) as e:
        load_json_records(gone)
    assert str(e.value) == f"annotation file {gone} not found"
    latin = tmp_path / "valid.json"
    latin.write_bytes(b'[{"image": "caf\xe9.jpg"}]')  # Latin-1, as an old converter might write it
    with pytest.raises(DataError) as e:
        load_json_records(latin)
    assert str(e.value).startswith(f"{latin} is not valid JSON ('utf-8' codec can't decode byte 0xe9")
    assert str(e.value).endswith("); re-create it with your MPII converter")


def test_the_missing_image_hint_is_given_only_when_the_last_part_is_there(tmp_path: Path):
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.jpg").write_bytes(b"jpeg")
    assert missing_image_hint(images, "images/a.jpg") == (
        f"; {images / 'a.jpg'} is there: image names are read inside images/, so drop the folders before the file "
        "name from the records' 'image' (images/a.jpg -> a.jpg)"
    )
    assert missing_image_hint(images, "images/b.jpg") == ""  # not there either
    assert missing_image_hint(images, "a.jpg") == ""  # the name is its last part already
    (images / "c.jpg").mkdir()
    assert missing_image_hint(images, "x/c.jpg") == ""  # a folder is no image
