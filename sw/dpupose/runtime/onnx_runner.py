"""`OnnxRunner`: a subgraph on the CPU with ONNX Runtime (float32 NCHW tensors, as in the ONNX file).

Used for the CPU subgraphs of a split plan, and by the `cpu` backend for every subgraph (a DPU subgraph's
QDQ file then runs in float, with its Q/DQ pairs simulating the int8 rounding). Loads with onnxruntime
only: the `onnx` package is not needed on the board.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dpupose.errors import DataError, ModelFileError
from dpupose.runtime.base import Runner, TensorInfo

# ONNX Runtime's type strings -> numpy dtype names.
ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
}


def _layout(rank: int) -> str:
    return "NCHW" if rank == 4 else "NCDEFG"[:rank] if rank <= 6 else "N" * rank


def _info(arg: object) -> TensorInfo:
    name = arg.name  # type: ignore[attr-defined]
    dims = tuple(d if isinstance(d, int) and d > 0 else 1 for d in arg.shape)  # type: ignore[attr-defined]
    dtype = ORT_TYPES.get(arg.type)  # type: ignore[attr-defined]
    if dtype is None:
        raise ModelFileError(f"tensor {name!r} has type {arg.type}, which the runtime does not exchange")  # type: ignore[attr-defined]
    return TensorInfo(name, dims, dtype, None, _layout(len(dims)))


class OnnxRunner(Runner):
    """ONNX Runtime on the CPU. `threads` sets intra-op threads (None: ONNX Runtime's default); `model`, the
    file's bytes when they have been read already (the path then only names it)."""

    def __init__(self, path: str | Path, threads: int | None = None, model: bytes | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if model is None and not self.path.is_file():
            raise ModelFileError(f"ONNX file {self.path} is missing")
        if threads is not None and threads < 1:
            raise ValueError("threads must be at least 1")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.inter_op_num_threads = 1
        if threads is not None:
            opts.intra_op_num_threads = threads
        try:
            source = str(self.path) if model is None else model
            self._session = ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for corrupt files
            raise ModelFileError(f"ONNX Runtime cannot load {self.path}: {str(exc).splitlines()[0]}") from None
        self._inputs = [_info(a) for a in self._session.get_inputs()]
        self._outputs = [_info(a) for a in self._session.get_outputs()]
        self.threads = threads

    @property
    def inputs(self) -> list[TensorInfo]:
        return list(self._inputs)

    @property
    def outputs(self) -> list[TensorInfo]:
        return list(self._outputs)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._session is None:
            raise RuntimeError("runner is closed")
        ort_feeds = {}
        for info in self._inputs:
            if info.name not in feeds:
                raise DataError(f"{self.path.name}: missing input {info.name!r}")
            x = np.asarray(feeds[info.name])
            if x.dtype != np.dtype(info.dtype):
                x = x.astype(info.dtype)
            if x.ndim != len(info.shape) or tuple(x.shape[1:]) != tuple(info.shape[1:]):
                raise DataError(
                    f"{self.path.name}: input {info.name!r} has shape {x.shape}, expected {info.any_batch()}"
                )
            ort_feeds[info.name] = x
        names = [o.name for o in self._outputs]
        return dict(zip(names, self._session.run(names, ort_feeds)))

    def close(self) -> None:
        self._session = None
