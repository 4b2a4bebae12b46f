"""The quantizer's model of a DPU graph: fused operations on named tensors, plus their fix positions.

A `QGraph` is what the DPU will run after BatchNorm folding and activation fusion: convolutions (with
their fused ReLU/ReLU6/LeakyReLU), element-wise adds, pixel shuffles and hard sigmoids / hard swishes, in
topological order. A hard sigmoid or hard swish is never fused into the op before it (VART's DPUCZDX8G
target factory fuses relu, leaky_relu and relu_six only; hsigmoid is an ALU op of its own): it is an op
reading that op's quantized output, so its input gets a fix position (and a Q/DQ pair) of its own; an
activation after it is fused into it as the DPU fuses it (a hard swish's ReLU, the eltwise mult's; a hard
sigmoid's ReLU, ReLU6 or LeakyReLU, the ALU engine's), quantized once after it. Tensor
names are the op names (module paths such as `backbone.features.3.conv.0.0`); the graph input is `image`
and the graph output `logits`. Weights are float here; `FixPoints` says how each tensor is quantized.
numpy only: the torch side builds and executes it (quant/fuse.py, quant/fakequant.py).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

INPUT_NAME = "image"
OUTPUT_NAME = "logits"


@dataclass
class ConvOp:
    name: str  # also the name of its output tensor
    input: str
    weight: np.ndarray  # float32 (O, C/groups, KH, KW), BatchNorm folded in
    bias: np.ndarray | None  # float32 (O,)
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, left, bottom, right
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    act: str = "none"  # none | relu | relu6 | leaky

    @property
    def inputs(self) -> list[str]:
        return [self.input]


@dataclass
class AddOp:
    name: str
    a: str
    b: str
    act: str = "none"

    @property
    def inputs(self) -> list[str]:
        return [self.a, self.b]


@dataclass
class DepthToSpaceOp:
    name: str
    input: str
    block: int = 2
    mode: str = "CRD"  # PyTorch's PixelShuffle
    act: str = "none"

    @property
    def inputs(self) -> list[str]:
        return [self.input]


@dataclass
class HardActOp:
    """A hard sigmoid relu6(x + 3) / 6 (the ALU's hsigmoid, as relu6(x + 3) * 2731 / 2**14) or a hard swish
    x * hsigmoid(x) (that, fixed at 2**-7, then an eltwise mult)."""

    name: str
    input: str
    kind: str = "hsigmoid"  # hsigmoid | hswish
    act: str = "none"  # none | relu (either kind) | relu6 | leaky (hsigmoid only)

    @property
    def inputs(self) -> list[str]:
        return [self.input]


Op = ConvOp | AddOp | DepthToSpaceOp | HardActOp


@dataclass
class QGraph:
    ops: list[Op]
    input_shape: tuple[int, int, int]  # C, H, W of one sample
    input: str = INPUT_NAME
    output: str = OUTPUT_NAME

    def op(self, name: str) -> Op:
        for op in self.ops:
            if op.name == name:
                return op
        raise KeyError(name)

    def producer(self, tensor: str) -> Op | None:
        for op in self.ops:
            if op.name == tensor:
                return op
        return None

    def consumers(self, tensor: str) -> list[Op]:
        return [op for op in self.ops if tensor in op.inputs]

    def tensors(self) -> list[str]:
        """Every activation tensor in topological order, the input first."""
        return [self.input] + [op.name for op in self.ops]

    def convs(self) -> list[ConvOp]:
        return [op for op in self.ops if isinstance(op, ConvOp)]

    def copy(self) -> QGraph:
        return copy.deepcopy(self)


@dataclass
class FixPoints:
    """Fix positions (real = int8 * 2**-fp) of activations, weights and biases."""

    activations: dict[str, int] = field(default_factory=dict)
    weights: dict[str, int] = field(default_factory=dict)  # conv name -> fp
    biases: dict[str, int] = field(default_factory=dict)  # conv name -> fp

    def copy(self) -> FixPoints:
        return FixPoints(dict(self.activations), dict(self.weights), dict(self.biases))

    def to_json(self, graph: QGraph) -> dict:
        """The fix_points.json document (format dpupose-fix-points/1)."""
        layers = []
        for op in graph.ops:
            fps_in = [self.activations[t] for t in op.inputs]
            entry: dict = {
                "name": op.name,
                "op": op.kind if isinstance(op, HardActOp) else type(op).__name__.removesuffix("Op").lower(),
                "inputs": op.inputs,
                "input_fix_points": fps_in,
                "output_fix_point": self.activations[op.name],
                "act": op.act,
            }
            if isinstance(op, ConvOp):
                fw = self.weights[op.name]
                entry["weights_fix_point"] = fw
                entry["bias_fix_point"] = self.biases.get(op.name)
                entry["shift_cut"] = fps_in[0] + fw - self.activations[op.name]
                if op.name in self.biases:
                    entry["shift_bias"] = fps_in[0] + fw - self.biases[op.name]
            elif isinstance(op, AddOp):
                lo = min(fps_in)
                entry["shift_read"] = [f - lo for f in fps_in]
                entry["shift_write"] = lo - self.activations[op.name]
            layers.append(entry)
        return {
            "format": "dpupose-fix-points/1",
            "input": {"name": graph.input, "fix_point": self.activations[graph.input]},
            "output": {"name": graph.output, "fix_point": self.activations[graph.output]},
            "activations": {t: self.activations[t] for t in graph.tensors()},
            "weights": dict(self.weights),
            "biases": dict(self.biases),
            "layers": layers,
        }
