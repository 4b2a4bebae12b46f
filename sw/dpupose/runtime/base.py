"""The one interface for anything that executes a subgraph (DPU via VART, DPU emulator, ONNX Runtime).

Tensor conventions, shared by every runner:
- DPU runners (VART, emulator) exchange int8 arrays in NHWC layout, as VART does; a tensor's real value
  is int8 * 2**(-fix_point).
- CPU runners (ONNX Runtime) exchange the ONNX graph's own tensors (float32, NCHW for images).
The split executor converts between the two at subgraph boundaries using the plan's layouts and fix points.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

# How to run a plan whose DPU part the DPU backend cannot (the emulator lacks an op, no compiled xmodel), as
# messages shared by `dpupose run`, bench and the notebook's PoseSession say it: each names its own way.
CPU_BACKEND = 'the cpu backend (dpupose run --backend cpu; backend="cpu" in PoseSession)'


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # batch first; NHWC for DPU tensors
    dtype: str  # numpy dtype name: "int8" for DPU tensors, "float32" for CPU tensors
    fix_point: int | None = None  # DPU tensors only: real = int8 * 2**-fix_point
    layout: str = "NCHW"  # "NHWC" for DPU tensors

    def any_batch(self) -> str:
        """The shape with any batch, as a message gives it: (N, 16, 32, 3)."""
        return f"({', '.join(['N', *map(str, self.shape[1:])])})"


class Runner(ABC):
    """Executes one subgraph. Use as a context manager or call close()."""

    @property
    @abstractmethod
    def inputs(self) -> list[TensorInfo]: ...

    @property
    @abstractmethod
    def outputs(self) -> list[TensorInfo]: ...

    @abstractmethod
    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run on one batch: input name -> array, returns output name -> array."""

    def close(self) -> None:  # noqa: B027 - optional for runners that hold nothing
        """Release what the runner holds (DPU runner, session)."""

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def quantize_to_int8(x: np.ndarray, fix_point: int) -> np.ndarray:
    """float -> int8 at a DPU input boundary.

    The DPU's input quantization rounds half up (floor(x * 2**fp + 0.5)) and saturates to [-128, 127].
    """
    scaled = np.floor(np.asarray(x, dtype=np.float64) * (2.0**fix_point) + 0.5)
    return np.clip(scaled, -128, 127).astype(np.int8)


def dequantize_int8(q: np.ndarray, fix_point: int) -> np.ndarray:
    """int8 -> float32: q * 2**-fix_point (exact in float32)."""
    return q.astype(np.float32) * np.float32(2.0 ** (-fix_point))
