"""INT8 predictors for `dpupose eval --engine int8-emulated|int8-ort` (host side).

A predictor maps ImageNet-normalized float32 images (N, 3, S, S) to (coords (N, 16, 2), heatmaps): the
DPU part runs from `dpu_part_qdq.onnx` (bit-accurate emulator, or ONNX Runtime's own QDQ arithmetic on the
same file, ties rounded to even) on int8 NHWC tensors, then the float CPU part (flat softmax + DSNT in
numpy, as on the board).

Without `--quantized DIR` the checkpoint is quantized once with the default calibration (100 training
samples of the evaluated data set) and cached under build/cache/quantized/<checkpoint hash>-<data>-v<dpupose version>/.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dpupose.errors import DpuposeError, ModelFileError, UsageError
from dpupose.fsio import cache_lock, read_own_json, sha256_file

log = logging.getLogger(__name__)

ENGINES = ("fp32", "int8-emulated", "int8-ort")
CACHE = Path("build") / "cache" / "quantized"
DEFAULT_NUM_CALIB = 100

Predictor = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def cached_quantization(checkpoint: str | Path, data: str, data_root: str | Path | None, cache: Path = CACHE) -> Path:
    """The `dpupose quantize` folder for this checkpoint and calibration set, made on first use."""
    from dpupose import __version__
    from dpupose.data.sources import load_data
    from dpupose.quant.pipeline import SUMMARY, QuantizeConfig, quantize

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise UsageError(f"checkpoint {checkpoint} not found")
    key = sha256_file(checkpoint)[:16]
    if data_root is not None:
        key += "-" + hashlib.sha256(str(Path(data_root).resolve()).encode()).hexdigest()[:8]
    out = cache / f"{key}-{data}-v{__version__}"  # another version's quantizer: not reused after an update
    if (out / SUMMARY).is_file():
        return out
    with cache_lock(out):  # another eval quantizing it at once: wait for it, then use its folder
        if (out / SUMMARY).is_file():
            return out
        n = DEFAULT_NUM_CALIB
        if data_root is not None:  # a small data set calibrates on all of its training split
            try:
                n = min(n, len(load_data(data, "train", data_root).records))
            except DpuposeError as exc:
                raise type(exc)(
                    f"the int8 engines quantize the checkpoint first, calibrating on the train split: {exc} "
                    "(or pass --quantized DIR from `dpupose quantize`)"
                ) from None
        log.info("quantizing %s once (calibration: %d %s samples) into %s", checkpoint, n, data, out)
        quantize(QuantizeConfig(checkpoint=checkpoint, out=out, calib_data=data, data_root=data_root, num_calib=n))
    return out


def int8_predictor(quantized: str | Path, engine: str) -> Predictor:
    """Predictor running a `dpupose quantize` folder's DPU part with `engine` (int8-emulated | int8-ort)."""
    from dpupose.eval.dsnt_np import dsnt, flat_softmax
    from dpupose.runtime.base import dequantize_int8, quantize_to_int8
    from dpupose.runtime.emulator import EmulatorRunner, QdqOrtRunner

    path = Path(quantized) / "dpu_part_qdq.onnx"
    if not path.is_file():
        # Read only as a regular file (read_own_json): a FIFO at its name would wait for a writer for ever.
        summary = read_own_json(Path(quantized) / "summary.json")
        engine_used = summary.get("engine") if isinstance(summary, dict) else None
        if engine_used == "vai_q":  # its DPU part is DpuPart_int.xmodel, for the board's DPU only
            raise ModelFileError(
                f"--quantized {quantized} was quantized with --engine vai_q, whose DPU part is the compiled "
                "DpuPart_int.xmodel that only the board's DPU runs; the int8 engines run the dpu_part_qdq.onnx of "
                "a folder from `dpupose quantize --engine native` (the default)"
            )
        raise ModelFileError(f"{path} not found; --quantized must be a `dpupose quantize` output folder, copied whole")
    if engine not in ("int8-emulated", "int8-ort"):
        raise UsageError(f"unknown INT8 engine {engine!r}")
    # int8-ort: ONNX Runtime's own arithmetic (ties to even), not the emulator's fast path, which rounds as
    # the DPU does and would repeat int8-emulated.
    runner = EmulatorRunner(path) if engine == "int8-emulated" else QdqOrtRunner(path, round_ties_up=False)
    (inp,) = runner.inputs
    (out,) = runner.outputs

    def predict(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = quantize_to_int8(np.asarray(images).transpose(0, 2, 3, 1), inp.fix_point)
        logits = dequantize_int8(runner.run({inp.name: x})[out.name], out.fix_point).transpose(0, 3, 1, 2)
        heatmaps = flat_softmax(logits)
        return dsnt(heatmaps).astype(np.float32), heatmaps.astype(np.float32)

    return predict
