"""CPU-side INT8: ONNX Runtime static quantization of a CPU subgraph (the study's "INT8 + INT8" row).

`quantize_cpu_subgraph(fp32_path, out_path, calib_feeds)` calibrates on the given feeds (dicts of the
subgraph's float inputs, e.g. dequantized DPU outputs) and writes a QDQ model for ONNX Runtime's CPU
kernels: int8 activations and weights, per-tensor, MinMax calibration. The output is written atomically.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from dpupose.errors import DataError, ModelFileError
from dpupose.fsio import atomic_path


def quantize_cpu_subgraph(
    fp32_path: str | Path,
    out_path: str | Path,
    calib_feeds: Iterable[dict[str, np.ndarray]],
    per_channel: bool = False,
) -> Path:
    """Static INT8 (QDQ) version of a float CPU subgraph; returns out_path."""
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    fp32_path = Path(fp32_path)
    out_path = Path(out_path)
    if not fp32_path.is_file():
        raise ModelFileError(f"CPU subgraph {fp32_path} not found")
    try:
        sess = ort.InferenceSession(str(fp32_path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelFileError(f"{fp32_path} does not load in ONNX Runtime: {exc}") from None
    names = [i.name for i in sess.get_inputs()]
    feeds = list(calib_feeds)
    if not feeds:
        raise DataError("no calibration feeds for the CPU subgraph; give at least one batch")
    for i, feed in enumerate(feeds):
        if sorted(feed) != sorted(names):
            raise DataError(f"calibration feed {i} has inputs {sorted(feed)}, the subgraph takes {sorted(names)}")
        for name, arr in feed.items():
            if not np.all(np.isfinite(arr)):
                raise DataError(f"calibration feed {i}: input {name!r} contains NaN or infinity")

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it: Iterator[dict[str, np.ndarray]] = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            feed = next(self._it, None)
            return None if feed is None else {k: np.asarray(v, np.float32) for k, v in feed.items()}

    # quantize_static writes <stem>-inferred.onnx beside the model it reads: read a private copy, so that
    # nothing is written into the user's plan or quantized folder (which may also be read-only).
    with tempfile.TemporaryDirectory(prefix="dpupose-ort-int8-") as scratch, atomic_path(out_path) as tmp:
        source = Path(scratch) / "model.onnx"
        shutil.copyfile(fp32_path, source)
        quantize_static(
            str(source),
            str(tmp),
            _Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
        )
    return out_path
