"""Person records in the common MPII JSON layout (HRNet / mmpose converters), with validation.

One record per person: `image`, `center` [x, y], `scale` (person height / 200 px), `joints` 16 x [x, y],
`joints_vis` 16 x 0/1, and optionally `head_box` [x1, y1, x2, y2]. Board-safe: numpy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from dpupose.data.joints import HEAD_JOINTS, NUM_JOINTS
from dpupose.errors import DataError
from dpupose.fsio import loads_json

# MPII's head size: 0.6 x the head box diagonal. Without a box, a square box whose side is the
# upper-neck -> head-top segment is assumed: 0.6 * sqrt(2) * segment.
HEAD_BOX_FACTOR = 0.6
SEGMENT_FACTOR = 0.6 * math.sqrt(2.0)
# What a record's pixel coordinates and scale can be: no image OpenCV reads is a million pixels wide (JPEG's
# limit is 65,535), and a scale outside these bounds is a person under 0.2 px or over 2,000,000 px tall. Beyond
# them a record is damaged: a joint at 1e300 overflowed the float32 joints to inf (NaN metrics), a centre at
# 1e30 gave errors of 1e28 that broke the table, with no word of which record.
MAX_COORD = 1e6
MIN_SCALE, MAX_SCALE = 1e-3, 1e4


@dataclass
class PoseRecord:
    image: str
    center: np.ndarray  # (2,) pixels
    scale: float  # person height / 200 px
    joints: np.ndarray  # (16, 2) pixels
    visible: np.ndarray  # (16,) bool: annotated
    head_size: float | None = None  # pixels (0.6 x head box diagonal)
    head_size_source: str = "none"  # "head_box", "mat", "segment" or "none"

    def resolve_head_size(self) -> None:
        """Fill head_size from the upper-neck -> head-top segment if no box gave it."""
        if self.head_size is not None:
            return
        a, b = HEAD_JOINTS
        if self.visible[a] and self.visible[b]:
            seg = float(np.linalg.norm(self.joints[a] - self.joints[b]))
            if seg > 0:
                self.head_size = SEGMENT_FACTOR * seg
                self.head_size_source = "segment"


def head_size_from_box(box: list[float] | np.ndarray) -> float:
    x1, y1, x2, y2 = (float(v) for v in box)
    return HEAD_BOX_FACTOR * math.hypot(x2 - x1, y2 - y1)


def _finite(v: object) -> float | None:
    """`v` as a float when it is a finite number (not a bool), else None. An integer too large for a float
    (JSON has no limit: 1e400 written out) is not one; math.isfinite raised OverflowError on it."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    try:
        f = float(v)
    except OverflowError:
        return None
    return f if math.isfinite(f) else None


def _shown(v: object) -> str:
    """`v` for a message: its repr, cut to 40 characters (a 400-digit integer)."""
    text = repr(v)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _number_list(value: object, length: int, what: str, pixels: bool = True) -> list[float]:
    if not isinstance(value, list) or len(value) != length:
        raise ValueError(f"'{what}' must be a list of {length} numbers")
    out = []
    for v in value:
        f = _finite(v)
        if f is None:
            raise ValueError(f"'{what}' must hold finite numbers, got {_shown(v)}")
        if pixels and abs(f) > MAX_COORD:
            raise ValueError(f"'{what}' must hold pixel coordinates, within {MAX_COORD:g} of 0, got {_shown(v)}")
        out.append(f)
    return out


def parse_record(raw: object) -> PoseRecord:
    """One JSON record -> PoseRecord; ValueError says which field is wrong."""
    if not isinstance(raw, dict):
        raise ValueError("a record must be a JSON object")
    if "joint_self" in raw and "joints" not in raw:
        raise ValueError(
            "this is pytorch-pose's mpii_annotations.json layout (joint_self, objpos, scale_provided), which is "
            "not read; use HRNet's annot/train.json and valid.json, or put the official .mat at the root"
        )
    for key in ("image", "center", "scale", "joints"):
        if key not in raw:
            raise ValueError(f"missing field '{key}'")
    if not isinstance(raw["image"], str) or not raw["image"]:
        raise ValueError("'image' must be a file name")
    center = _number_list(raw["center"], 2, "center")
    scale = _finite(raw["scale"])
    if scale is None or not scale > 0:
        raise ValueError(f"'scale' must be a positive number, got {_shown(raw['scale'])}")
    if not MIN_SCALE <= scale <= MAX_SCALE:
        raise ValueError(
            f"'scale' (person height / 200 px) must be between {MIN_SCALE:g} and {MAX_SCALE:g}, got {_shown(scale)}"
        )
    joints = raw["joints"]
    if not isinstance(joints, list) or len(joints) != NUM_JOINTS:
        raise ValueError(f"'joints' must be a list of {NUM_JOINTS} [x, y] pairs")
    pts = np.array([_number_list(p, 2, "joints[i]") for p in joints], dtype=np.float32)
    vis_raw = raw.get("joints_vis", [1] * NUM_JOINTS)
    vis = np.array(_number_list(vis_raw, NUM_JOINTS, "joints_vis", pixels=False), dtype=np.float32) > 0
    # Converters mark unannotated joints with negative coordinates.
    vis &= (pts[:, 0] >= 0) & (pts[:, 1] >= 0)
    rec = PoseRecord(raw["image"], np.array(center, np.float32), scale, pts, vis)
    if raw.get("head_box") is not None:
        box = _number_list(raw["head_box"], 4, "head_box")
        if not head_size_from_box(box) > 0:
            raise ValueError(f"'head_box' must be [x1, y1, x2, y2] of a head, not a point, got {box!r}")
        rec.head_size = head_size_from_box(box)
        rec.head_size_source = "head_box"
    return rec


def load_json_records(path: str | Path) -> list[PoseRecord]:
    path = Path(path)
    try:
        raw = loads_json(path.read_text())
    except FileNotFoundError:
        raise DataError(f"annotation file {path} not found") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); re-create it with your MPII converter") from None
    if not isinstance(raw, list):
        raise DataError(f"{path} must hold a JSON list of person records")
    records = []
    for i, item in enumerate(raw):
        try:
            records.append(parse_record(item))
        except ValueError as exc:
            raise DataError(f"{path}: record {i}: {exc}; correct that record (counting from 0) or remove it") from None
    return records


def missing_image_hint(image_dir: Path, name: str) -> str:
    """'; IMAGE_DIR/a.jpg is there: ...' when a missing record image `name` (images/a.jpg, say: a converter
    that wrote names from the root) is in `image_dir` under its last part; else ''."""
    flat = PurePosixPath(name).name
    if flat and flat != name and (image_dir / flat).is_file():
        return (
            f"; {image_dir / flat} is there: image names are read inside images/, so drop the folders before "
            f"the file name from the records' 'image' ({name} -> {flat})"
        )
    return ""


def check_images(records: list[PoseRecord], image_dir: Path) -> None:
    """Fail before any work starts when annotated images are missing."""
    missing = [r.image for r in records if not (image_dir / r.image).is_file()]
    if missing:
        raise DataError(
            f"{len(missing)} of {len(records)} annotated images are missing from {image_dir} "
            f"(first: {missing[0]}); check --data-root (images/ must hold every annotated image)"
            + missing_image_hint(image_dir, missing[0])
        )


def read_rgb(path: Path) -> np.ndarray:
    """An annotated image as RGB, or a DataError saying what to do (torch-free: `deploy-check` and `eval`'s
    int8 engines read their images so, where a base install has no torch)."""
    from dpupose.runtime.imagefile import read_bgr

    try:
        img = read_bgr(path)
    except FileNotFoundError:
        img = None
    except OSError as exc:
        raise DataError(
            f"image {path} cannot be read ({exc.strerror or exc}): make it readable, or replace it"
        ) from None
    if img is None:
        if not path.exists():
            raise DataError(f"image {path} is missing; check --data-root (images/ must hold every annotated image)")
        # Not "remove it": its record stays, and the next run stops on the image as missing.
        raise DataError(
            f"image {path} cannot be decoded (damaged, or not an image): replace it with a good copy, or take its "
            "record out of the annotations (`dpupose data check` counts every such image)"
        )
    return img[..., ::-1]
