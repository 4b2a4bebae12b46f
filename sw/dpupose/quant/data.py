"""Calibration images for the quantizer: `calibration_batches(kind, data_root, n, input_size)`.

Samples come from the project's data sets (dpupose.data): person crops at the model's input size,
ImageNet-normalized, with their joint labels, drawn without replacement from the training split (MPII
with --data-root, or the synthetic set, generated and cached on first use). Asking for more samples than
the split holds is an error, never a silent shortfall.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dpupose.errors import DataError, DpuposeError, UsageError

CALIB_KINDS = ("synthetic", "mpii")
SYNTHETIC_POOL = 256  # generated synthetic training scenes to draw calibration samples from (cached)


@dataclass
class CalibBatch:
    images: np.ndarray  # (N, 3, S, S) float32, ImageNet-normalized
    targets: np.ndarray | None = None  # (N, 16, 2) normalized joint coordinates
    visible: np.ndarray | None = None  # (N, 16)
    head_sizes: np.ndarray | None = None  # (N,) crop pixels, -1 if unknown


@dataclass
class CalibrationSet:
    records: list  # the chosen PoseRecords
    image_dir: Path

    def batches(self, input_size: int, batch_size: int = 8) -> Iterator[CalibBatch]:
        from dpupose.eval.evaluate import iter_batches

        for images, targets, visible, heads in iter_batches(self.records, self.image_dir, input_size, batch_size):
            yield CalibBatch(np.ascontiguousarray(images, dtype=np.float32), targets, visible, heads)


def open_calibration_set(
    kind: str,
    data_root: str | Path | None,
    n: int,
    seed: int = 0,
    split: str = "train",
    count_option: str = "--num-calib",
) -> CalibrationSet:
    """Choose n samples of `split` (generating the synthetic set on first use). Call it before torch or
    OpenCV start worker threads: the synthetic generator forks worker processes."""
    from dpupose.data.sources import load_data

    if kind not in CALIB_KINDS:
        raise UsageError(f"unknown calibration data {kind!r}; use one of: {', '.join(CALIB_KINDS)}")
    if n < 1:
        raise UsageError(f"{count_option} must be at least 1, got {n}")
    count = max(n, SYNTHETIC_POOL) if kind == "synthetic" and data_root is None else None
    try:
        source = load_data(kind, split, data_root, count=count)
    except DpuposeError as exc:  # say that it is the calibration samples that are missing
        raise type(exc)(f"calibration samples (the {split} split of the {kind} data): {exc}") from None
    records = source.records
    if len(records) < n:
        raise DataError(
            f"the {kind} {split} split has only {len(records)} samples but {n} were asked for calibration; "
            f"lower {count_option} or use a larger data set"
        )
    rng = np.random.default_rng(seed)
    chosen = [records[i] for i in sorted(rng.choice(len(records), size=n, replace=False))]
    return CalibrationSet(chosen, source.image_dir)


def calibration_batches(
    kind: str,
    data_root: str | Path | None,
    n: int,
    input_size: int,
    batch_size: int = 8,
    seed: int = 0,
    count_option: str = "--num-calib",
) -> Iterator[np.ndarray]:
    """float32 (N, 3, S, S) ImageNet-normalized batches, n samples in total."""
    for batch in open_calibration_set(kind, data_root, n, seed, count_option=count_option).batches(
        input_size, batch_size
    ):
        yield batch.images
