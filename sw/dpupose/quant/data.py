"""Calibration images for the quantizer: `calibration_batches(kind, data_root, n, input_size)`.

`synthetic` and `mpii` come from the project's data package (person crops, ImageNet-normalized, with
their joint labels) when it is installed; without it, `synthetic` falls back to a small deterministic
generator of figure-like images (limbs as bright capsules on textured backgrounds), enough to calibrate
ranges but without labels. Asking for more samples than the source holds is an error, never a silent
shortfall.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dpupose.errors import DataError, UsageError

log = logging.getLogger(__name__)

CALIB_KINDS = ("synthetic", "mpii")
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)  # RGB
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


@dataclass
class CalibBatch:
    images: np.ndarray  # (N, 3, S, S) float32, ImageNet-normalized
    targets: np.ndarray | None = None  # (N, 16, 2) normalized joint coordinates
    visible: np.ndarray | None = None  # (N, 16)
    head_sizes: np.ndarray | None = None  # (N,) crop pixels, -1 if unknown


def _data_package() -> bool:
    try:
        return importlib.util.find_spec("dpupose.data.sources") is not None
    except ModuleNotFoundError:
        return False


def _figure_image(rng: np.random.Generator, size: int) -> np.ndarray:
    """One RGB float image in [0, 1]: smooth background plus a random stick figure of capsules."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    img = np.empty((size, size, 3), np.float32)
    for c in range(3):
        a, b, ph = rng.uniform(0.5, 4.0, 3)
        img[..., c] = 0.5 + 0.25 * np.sin(a * 6.28 * xx + ph) * np.cos(b * 6.28 * yy)
    img += rng.normal(0, 0.04, img.shape).astype(np.float32)
    # Joints: a torso and four two-segment limbs around a random centre.
    centre = rng.uniform(0.35, 0.65, 2)
    scale = rng.uniform(0.15, 0.3)
    offset = np.array([0.0, scale * 0.6])
    hip = centre + offset
    neck = centre - offset
    segments = [(neck, hip)]
    for root in (neck, neck, hip, hip):
        mid = root + rng.normal(0, scale * 0.5, 2)
        end = mid + rng.normal(0, scale * 0.5, 2)
        segments += [(root, mid), (mid, end)]
    colour = rng.uniform(0, 1, 3).astype(np.float32)
    radius = scale * 0.12
    pts = np.stack([xx, yy], axis=-1)
    for a, b in segments:
        ab = b - a
        t = np.clip(((pts - a) @ ab) / max(float(ab @ ab), 1e-6), 0, 1)
        d = np.linalg.norm(pts - (a + t[..., None] * ab), axis=-1)
        img[d < radius] = colour
    head = np.linalg.norm(pts - (neck - offset / 2), axis=-1) < scale * 0.25
    img[head] = colour * 0.8
    return np.clip(img, 0, 1)


def _fallback_synthetic(n: int, size: int, batch_size: int, seed: int) -> Iterator[CalibBatch]:
    rng = np.random.default_rng(seed)
    for start in range(0, n, batch_size):
        imgs = [_figure_image(rng, size) for _ in range(min(batch_size, n - start))]
        arr = (np.stack(imgs) - IMAGENET_MEAN) / IMAGENET_STD
        yield CalibBatch(np.ascontiguousarray(arr.transpose(0, 3, 1, 2), dtype=np.float32))


def _from_data_package(kind: str, data_root: Path | None, n: int, size: int, batch_size: int, seed: int):
    from dpupose.data.sources import load_data
    from dpupose.eval.evaluate import iter_batches

    split = load_data(kind, "train", data_root, count=n if kind == "synthetic" else None, seed=seed)
    records = split.records
    if len(records) < n:
        raise DataError(
            f"the {kind} calibration set has only {len(records)} samples but --num-calib asks for {n}; "
            "lower --num-calib or point --data-root at a larger set"
        )
    rng = np.random.default_rng(seed)
    chosen = [records[i] for i in sorted(rng.choice(len(records), size=n, replace=False))]
    for images, targets, visible, heads in iter_batches(chosen, split.image_dir, size, batch_size):
        yield CalibBatch(images.astype(np.float32), targets, visible, heads)


def calibration_samples(
    kind: str,
    data_root: str | Path | None,
    n: int,
    input_size: int,
    batch_size: int = 8,
    seed: int = 0,
) -> Iterator[CalibBatch]:
    """Batches of exactly n calibration samples in total (with labels when the source has them)."""
    if kind not in CALIB_KINDS:
        raise UsageError(f"unknown calibration data {kind!r}; use one of: {', '.join(CALIB_KINDS)}")
    if n < 1:
        raise UsageError(f"--num-calib must be at least 1, got {n}")
    root = Path(data_root) if data_root is not None else None
    if _data_package():
        source = _from_data_package(kind, root, n, input_size, batch_size, seed)
    elif kind == "synthetic":
        log.info("data package not installed: calibrating on generated figure images (no labels)")
        source = _fallback_synthetic(n, input_size, batch_size, seed)
    else:
        raise DataError("MPII calibration needs the dpupose data package (dpupose.data), not installed here")
    total = 0
    for batch in source:
        total += len(batch.images)
        yield batch
    if total < n:
        raise DataError(f"the calibration source gave {total} samples, fewer than --num-calib {n}")


def calibration_batches(
    kind: str, data_root: str | Path | None, n: int, input_size: int, batch_size: int = 8, seed: int = 0
) -> Iterator[np.ndarray]:
    """float32 (N, 3, S, S) ImageNet-normalized batches, n samples in total."""
    for batch in calibration_samples(kind, data_root, n, input_size, batch_size, seed):
        yield batch.images
