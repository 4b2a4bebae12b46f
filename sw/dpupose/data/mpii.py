"""MPII Human Pose data roots: `images/`, `annot/train.json` + `annot/valid.json` (common converters) and/or
the official `mpii_human_pose_v1_u12_1.mat` at the root.

With JSON files, records come from them and, when the .mat is present too, each record's head box is taken
from the matching .mat person (same image, nearest `objpos`). With the .mat alone, its `img_train` flags give
the split; the official release has no joints for test images, so validation is then a fixed hold-out of
every tenth training image (sorted by name), and the loader says so.

MPII's coordinates are MATLAB's (the top-left pixel's centre is (1, 1)) in the .mat and in the converters'
JSON files alike; records leave here in 0-based pixel coordinates, with the crop centre moved 15 * scale px
below `objpos`, as HRNet's and pytorch-pose's loaders do. A root written by `dpupose data synth` (it holds
synthetic.json) is 0-based with true centres already and is read as it is.
"""

from __future__ import annotations

import logging
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dpupose.data.joints import NUM_JOINTS
from dpupose.data.records import PoseRecord, head_size_from_box, load_json_records
from dpupose.errors import DataError, EmptySplitError
from dpupose.fsio import not_a_folder, what_is_at

log = logging.getLogger(__name__)

MAT_NAME = "mpii_human_pose_v1_u12_1.mat"
SPLIT_FILES = {"train": "train.json", "valid": "valid.json"}
HOLDOUT_EVERY = 10
SYNTH_MARKER = "synthetic.json"  # written by `dpupose data synth`: coordinates already 0-based
# objpos is near the torso; the usual crop centre sits 15 px (at scale 1) lower to keep the feet in.
CENTRE_SHIFT_Y = 15.0


@dataclass
class MatPerson:
    image: str
    train: bool
    objpos: np.ndarray | None
    scale: float | None
    head_box: tuple[float, float, float, float] | None
    joints: np.ndarray  # (16, 2), -1 where not annotated
    visible: np.ndarray  # (16,) bool


def _items(x: object) -> list:
    """MATLAB struct arrays load as arrays, single structs as objects, empties as empty arrays."""
    if x is None:
        return []
    if isinstance(x, np.ndarray):
        return list(x.ravel())
    return [x]


def _scalar(x: object) -> float | None:
    """The one finite number `x` holds, or None (empty, several, not a number, NaN or infinite)."""
    try:
        arr = np.asarray(x, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        return None
    return float(arr[0]) if arr.size == 1 and np.isfinite(arr[0]) else None


def read_mat(path: str | Path) -> list[MatPerson]:
    """Every annotated person of the official MPII .mat (RELEASE struct)."""
    try:
        from scipy.io import loadmat
    except ImportError as exc:  # pragma: no cover - scipy is a host dependency
        raise DataError("reading the MPII .mat needs scipy: pip install scipy") from exc
    try:
        mat = loadmat(str(path), struct_as_record=False, squeeze_me=True)
    except Exception as exc:  # scipy raises several types for damaged files
        raise DataError(
            f"{path} is not a readable MATLAB file ({exc}): download and unpack the official annotation again, or "
            "lay the root out as annot/train.json + annot/valid.json instead (docs/training.md, Data)"
        ) from None
    if "RELEASE" not in mat:
        raise DataError(f"{path} has no RELEASE struct: is it mpii_human_pose_v1_u12_1.mat?")
    release = mat["RELEASE"]
    annolist = _items(release.annolist)
    flags = np.asarray(release.img_train).ravel()
    people: list[MatPerson] = []
    for i, anno in enumerate(annolist):
        name = str(anno.image.name)
        for rect in _items(getattr(anno, "annorect", None)):
            fields = set(getattr(rect, "_fieldnames", []))
            box = None
            if {"x1", "y1", "x2", "y2"} <= fields:
                vals = [_scalar(getattr(rect, k)) for k in ("x1", "y1", "x2", "y2")]
                if all(v is not None for v in vals) and head_size_from_box(vals) > 0:  # type: ignore[arg-type]
                    box = tuple(vals)  # type: ignore[assignment]
            objpos = None
            if "objpos" in fields and hasattr(rect.objpos, "x"):
                xy = [_scalar(rect.objpos.x), _scalar(rect.objpos.y)]
                objpos = None if None in xy else np.array(xy, np.float32)
            joints = np.full((NUM_JOINTS, 2), -1.0, np.float32)
            visible = np.zeros(NUM_JOINTS, bool)
            if "annopoints" in fields and hasattr(rect.annopoints, "point"):
                for pt in _items(rect.annopoints.point):
                    jid, x, y = (_scalar(getattr(pt, k, None)) for k in ("id", "x", "y"))
                    # A point without a joint id or coordinates is not an annotation (as unannotated).
                    if jid is not None and x is not None and y is not None and 0 <= jid < NUM_JOINTS:
                        joints[int(jid)] = (x, y)
                        visible[int(jid)] = True
            people.append(
                MatPerson(
                    image=name,
                    train=bool(flags[i]) if i < flags.size else False,
                    objpos=objpos,
                    scale=_scalar(rect.scale) if "scale" in fields else None,  # None, or <= 0: not usable
                    head_box=box,
                    joints=joints,
                    visible=visible,
                )
            )
    return people


def _records_from_mat(people: list[MatPerson], split: str, other: set[str] | None = None) -> list[PoseRecord]:
    """The split's records from the .mat. `other`: the images of the other split's JSON file, when there is
    one; none of them is taken, and the split is then every training image but those (no hold-out)."""
    usable = [p for p in people if p.visible.any() and p.objpos is not None and p.scale is not None and p.scale > 0]
    if other:
        usable = [p for p in usable if p.image not in other]
    train = [p for p in usable if p.train]
    test = [p for p in usable if not p.train]
    if split == "valid" and test:
        chosen = test
    elif other is not None:
        chosen = train
    else:
        names = sorted({p.image for p in train})
        held = set(names[::HOLDOUT_EVERY])
        if split == "valid":
            log.info(
                "the .mat has no joints for test images: validating on every %dth training image",
                HOLDOUT_EVERY,
            )
            chosen = [p for p in train if p.image in held]
        else:
            chosen = [p for p in train if p.image not in held] if not test else train
    out = []
    for p in chosen:
        rec = PoseRecord(p.image, p.objpos.copy(), float(p.scale), p.joints.copy(), p.visible.copy())
        if p.head_box is not None:
            rec.head_size = head_size_from_box(p.head_box)
            rec.head_size_source = "mat"
        out.append(rec)
    return out


def _attach_mat_head_boxes(records: list[PoseRecord], people: list[MatPerson]) -> int:
    by_image: dict[str, list[MatPerson]] = {}
    for p in people:
        if p.head_box is not None and p.objpos is not None:
            by_image.setdefault(p.image, []).append(p)
    matched = 0
    for rec in records:
        if rec.head_size_source == "head_box":
            continue
        cands = by_image.get(rec.image)
        if not cands:
            continue
        best = min(cands, key=lambda p: float(np.linalg.norm(p.objpos - rec.center)))
        rec.head_size = head_size_from_box(best.head_box)
        rec.head_size_source = "mat"
        matched += 1
    return matched


def _from_matlab(records: list[PoseRecord]) -> None:
    """MPII's 1-based MATLAB coordinates -> 0-based pixels; the crop centre moved down by 15 * scale px."""
    for rec in records:
        rec.joints = rec.joints - 1.0
        rec.center = (rec.center + np.array([-1.0, CENTRE_SHIFT_Y * rec.scale - 1.0])).astype(np.float32)


def load_split(root: str | Path, split: str) -> list[PoseRecord]:
    """Records of one split ('train' or 'valid') of an MPII-layout data root."""
    root = Path(root)
    if split not in SPLIT_FILES:
        raise DataError(f"unknown split {split!r}; use 'train' or 'valid'")
    if not root.is_dir():
        raise DataError(f"data root {root} {not_a_folder(root)}; give the folder holding images/ and annot/")
    json_path = root / "annot" / SPLIT_FILES[split]
    mat_path = root / MAT_NAME
    # Each is there but of the wrong kind: said as such, not as images "missing" or no annotations found.
    for path, folder, what in (
        (root / "images", True, "the folder holding the annotated images"),
        (root / "annot", True, "the folder holding train.json and valid.json"),
        (json_path, False, f"the {split} split's JSON annotation file"),
        (mat_path, False, "the official MPII .mat annotation file"),
    ):
        if os.path.lexists(path) and not (path.is_dir() if folder else path.is_file()):
            raise DataError(
                f"{path} is {what_is_at(path)}, not a {'folder' if folder else 'file'}: it must be {what}; "
                f"move it away or replace it (check --data-root)"
            )
    people = read_mat(mat_path) if mat_path.is_file() else None
    nested = _nested_mat(root) if people is None else None
    if nested is not None:
        # The official zip unpacks to mpii_human_pose_v1_u12_2/: unpacked into the root, its .mat is a folder
        # down, where it is not read (JSON records then lose its head boxes, a .mat-only root finds nothing).
        advice = (
            f"{nested} is a folder too deep to be read: move it into the data root "
            f"(mv {shlex.quote(str(nested))} {shlex.quote(str(root))})"
        )
        if not json_path.is_file():
            raise EmptySplitError(f"{root} has neither annot/{SPLIT_FILES[split]} nor {MAT_NAME}; {advice}")
        log.warning("%s; until then the %s split's head sizes are not its head boxes", advice, split)
    if json_path.is_file():
        records = load_json_records(json_path)
        if people is not None:
            # Both there: the JSON file gives the records, the .mat only head boxes; said, as either could win.
            matched = _attach_mat_head_boxes(records, people)
            log.info(
                "%s split: records from annot/%s; %s gives head boxes only (to %d of its %d records)",
                split,
                json_path.name,
                MAT_NAME,
                matched,
                len(records),
            )
        if not (root / SYNTH_MARKER).is_file():
            _from_matlab(records)
    elif people is not None:
        # The other split's JSON file, if there is one, holds images the .mat also lists (HRNet's valid.json
        # is part of MPII's training set): they are left out of this split, which would otherwise share them.
        other_path = root / "annot" / SPLIT_FILES["valid" if split == "train" else "train"]
        other = {r.image for r in load_json_records(other_path)} if other_path.is_file() else None
        records = _records_from_mat(people, split, other)
        if other is not None:
            log.info(
                "%s split: %d records from %s, leaving out the %d images of annot/%s",
                split,
                len(records),
                MAT_NAME,
                len(other),
                other_path.name,
            )
        _from_matlab(records)
    else:
        parent = root.resolve().parent
        if (parent / "annot").is_dir() or (parent / MAT_NAME).is_file():
            # --data-root named images/ or annot/ inside the root, the commonest slip
            raise EmptySplitError(
                f"{root} has neither annot/{SPLIT_FILES[split]} nor {MAT_NAME}, but the folder above it has "
                f"{'annot/' if (parent / 'annot').is_dir() else MAT_NAME}: give --data-root "
                f"{shlex.quote(str(parent))}, the folder that holds images/ and the annotations"
            )
        raise EmptySplitError(
            f"{root} has neither annot/{SPLIT_FILES[split]} nor {MAT_NAME}; "
            "lay it out as images/ + annot/train.json + annot/valid.json, or put the official .mat at its root"
        )
    if not records:
        source = f"annot/{SPLIT_FILES[split]}" if json_path.is_file() else MAT_NAME
        raise EmptySplitError(
            f"{root}: the {split} split holds no person records (none in {source}): add some there, or give a "
            f"--data-root whose {split} split has them"
        )
    for rec in records:
        rec.resolve_head_size()
    return records


def _nested_mat(root: Path) -> Path | None:
    """The official .mat one folder below `root` (where unpacking its zip into the root puts it), if there."""
    try:
        found = sorted(root.glob(f"*/{MAT_NAME}"))
    except OSError:
        return None
    return next((f for f in found if f.is_file()), None)


# What each PoseRecord.head_size_source means, in the words the commands print.
HEAD_SIZE_SOURCES = {
    "head_box": "from the records' head_box",
    "mat": "from the .mat's head boxes",
    "segment": "from the upper-neck to head-top distance (no head box)",
    "none": "without one (no head box, and the upper neck or head top unannotated: left out of PCKh)",
}


def head_size_counts(records: list[PoseRecord]) -> dict[str, int]:
    """How many records took their head size from each source ('head_box', 'mat', 'segment', 'none')."""
    counts: dict[str, int] = {}
    for r in records:
        counts[r.head_size_source] = counts.get(r.head_size_source, 0) + 1
    return dict(sorted(counts.items()))


def describe_head_sizes(records: list[PoseRecord]) -> str:
    """'12 from the records' head_box, 3 from the upper-neck to head-top distance (no head box)': where PCKh's
    reference came from, for the output to say."""
    return ", ".join(f"{n} {HEAD_SIZE_SOURCES.get(k, f'from {k}')}" for k, n in head_size_counts(records).items())
