"""Runs a QGraph in torch, in one of three modes (host only):

- "float": no quantization (calibration observes every activation through `observer`);
- "fake": DPU fake quantization. In float64 it is exact: int8-valued tensors times powers of two, sums of
  at most 2**25 * K steps, all exactly representable, rounding half up on the exact values; biases aligned
  like the DPU (floor to 2**-(fp_in + fp_w + 1)) and add inputs truncated to two guard bits below the
  smaller input position, as the DPU's eltwise unit does. So it must equal the emulator bit for bit.
- "qat": fake quantization with straight-through rounding and learned log2 thresholds (TQT-style): the
  fix position of each tensor is fp = 7 - ceil(t), t a trainable scalar; gradients pass through round and
  ceil unchanged inside the int8 range.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dpupose.quant.fixpos import round_half_away, round_half_up
from dpupose.quant.ir import AddOp, ConvOp, DepthToSpaceOp, FixPoints, HardActOp, QGraph
from dpupose.runtime.dpu_ops import HSIGMOID_NUMERATOR, HSIGMOID_SHIFT, HSWISH_SIGMOID_FP

LEAKY_SLOPE = 26 / 256
MODES = ("float", "fake", "qat")


def _key(name: str) -> str:
    return name.replace(".", "__")


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        return torch.floor(x + 0.5)

    @staticmethod
    def backward(ctx, g: Tensor) -> Tensor:  # type: ignore[override]
        return g


class _CeilSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        return torch.ceil(x)

    @staticmethod
    def backward(ctx, g: Tensor) -> Tensor:  # type: ignore[override]
        return g


def learned_fix_point(t: Tensor) -> int:
    """The fix position a learned log2 threshold stands for: 7 - ceil(t)."""
    return 7 - int(torch.ceil(t.detach()).item())


def ste_fake_quantize(x: Tensor, log2_t: Tensor) -> Tensor:
    """Fake-quantize with a learned power-of-two threshold 2**ceil(log2_t) (= 128 steps)."""
    scale = torch.pow(2.0, _CeilSTE.apply(log2_t) - 7.0)
    q = torch.clamp(_RoundSTE.apply(x / scale), -128.0, 127.0)
    return q * scale


class QuantNet(nn.Module):
    """QGraph executor; see the module docstring for the modes."""

    def __init__(self, graph: QGraph, fix: FixPoints | None = None) -> None:
        super().__init__()
        self.graph = graph
        self.fix = fix
        self.mode = "float"
        self.observer: Callable[[str, Tensor], None] | None = None
        self.weights = nn.ParameterDict()
        self.biases = nn.ParameterDict()
        for op in graph.convs():
            self.weights[_key(op.name)] = nn.Parameter(torch.from_numpy(op.weight.copy()))
            if op.bias is not None:
                self.biases[_key(op.name)] = nn.Parameter(torch.from_numpy(op.bias.copy()))
        self.thresholds = nn.ParameterDict()  # QAT: "a:<tensor>", "w:<conv>", "b:<conv>" -> log2 t

    # ---- configuration -------------------------------------------------------------------------
    def set_mode(self, mode: str) -> QuantNet:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        if mode != "float" and self.fix is None:
            raise ValueError("quantized modes need fix points")
        if mode == "qat" and not len(self.thresholds):
            self.init_thresholds()
        self.mode = mode
        return self

    def init_thresholds(self) -> None:
        """Start every learned threshold in the middle of its current fix position's interval."""
        assert self.fix is not None
        for name, fp in self.fix.activations.items():
            self.thresholds["a_" + _key(name)] = nn.Parameter(torch.tensor(6.5 - fp))
        for name, fp in self.fix.weights.items():
            self.thresholds["w_" + _key(name)] = nn.Parameter(torch.tensor(6.5 - fp))
        for name, fp in self.fix.biases.items():
            self.thresholds["b_" + _key(name)] = nn.Parameter(torch.tensor(6.5 - fp))

    def learned_fix_points(self) -> FixPoints:
        """The positions the QAT thresholds currently stand for."""
        assert self.fix is not None
        out = self.fix.copy()
        for table, prefix in ((out.activations, "a_"), (out.weights, "w_"), (out.biases, "b_")):
            for name in table:
                table[name] = learned_fix_point(self.thresholds[prefix + _key(name)])
        return out

    def to_graph(self) -> QGraph:
        """A copy of the graph with the current (possibly fine-tuned) float weights."""
        g = self.graph.copy()
        for op in g.convs():
            op.weight = self.weights[_key(op.name)].detach().float().cpu().numpy().copy()
            if op.bias is not None:
                op.bias = self.biases[_key(op.name)].detach().float().cpu().numpy().copy()
        return g

    # ---- quantization of one tensor ------------------------------------------------------------
    def _act(self, name: str, y: Tensor) -> Tensor:
        if self.mode == "float":
            if self.observer is not None:
                self.observer(name, y)
            return y
        if self.mode == "qat":
            return ste_fake_quantize(y, self.thresholds["a_" + _key(name)].to(y.dtype))
        fp = self.fix.activations[name]
        return torch.clamp(round_half_up(y * 2.0**fp), -128, 127) * 2.0**-fp

    def _param(self, kind: str, name: str, p: Tensor) -> Tensor:
        if self.mode == "float":
            return p
        if self.mode == "qat":
            return ste_fake_quantize(p, self.thresholds[kind + "_" + _key(name)].to(p.dtype))
        table = self.fix.weights if kind == "w" else self.fix.biases
        fp = table[name]
        return torch.clamp(round_half_away(p * 2.0**fp), -128, 127) * 2.0**-fp

    # ---- execution -----------------------------------------------------------------------------
    def _conv(self, op: ConvOp, x: Tensor) -> Tensor:
        w = self._param("w", op.name, self.weights[_key(op.name)].to(x.dtype))
        b = None
        if op.bias is not None:
            b = self._param("b", op.name, self.biases[_key(op.name)].to(x.dtype))
            if self.mode == "fake":  # the DPU floors the bias to 2**-(fp_in + fp_w + 1)
                acc_fp = self.fix.activations[op.input] + self.fix.weights[op.name] + 1
                b = torch.floor(b * 2.0**acc_fp) * 2.0**-acc_fp
        top, left, bottom, right = op.pads
        if top == bottom and left == right:
            padding: tuple[int, int] = (top, left)
        else:
            x = F.pad(x, (left, right, top, bottom))
            padding = (0, 0)
        y = F.conv2d(x, w, b, op.stride, padding, op.dilation, op.groups)
        return self._activate(op.act, y)

    @staticmethod
    def _activate(act: str, y: Tensor) -> Tensor:
        if act == "relu":
            return F.relu(y)
        if act == "relu6":
            return torch.clamp(y, 0.0, 6.0)
        if act == "leaky":
            return torch.where(y < 0, y * LEAKY_SLOPE, y)
        return y

    def _add(self, op: AddOp, a: Tensor, b: Tensor) -> Tensor:
        if self.mode == "fake":  # the DPU keeps two guard bits below the smaller input position
            guard = min(self.fix.activations[op.a], self.fix.activations[op.b]) + 2
            a = torch.floor(a * 2.0**guard) * 2.0**-guard
            b = torch.floor(b * 2.0**guard) * 2.0**-guard
        return self._activate(op.act, a + b)

    def _hard(self, op: HardActOp, x: Tensor) -> Tensor:
        """relu6(x + 3) / 6 in float mode; in the quantized modes the DPU's hard sigmoid, relu6(x + 3) * 2731 /
        2**14, and a hard swish multiplies x by it fixed at 2**-7 (rounded half up, saturated), as
        vai_q_pytorch's Hardswish does. Its fused activation (a hard swish's ReLU, the eltwise mult's; a hard
        sigmoid's ReLU, ReLU6 or LeakyReLU, the identity on its value in [0, 1]) comes before the output's
        rounding, as on the DPU."""
        if self.mode == "float":
            h = torch.clamp(x + 3.0, 0.0, 6.0) / 6.0
        else:
            h = torch.clamp(x + 3.0, 0.0, 6.0) * (HSIGMOID_NUMERATOR * 2.0**-HSIGMOID_SHIFT)
        if op.kind == "hsigmoid":
            return self._activate(op.act, h)
        if self.mode != "float":
            step = 2.0**HSWISH_SIGMOID_FP
            h = torch.clamp(_RoundSTE.apply(h * step), max=step - 1) / step
        return self._activate(op.act, x * h)

    def forward(self, x: Tensor, trace: dict[str, Tensor] | None = None) -> Tensor:
        """image (N, 3, S, S) -> logits; `trace` (if given) receives every tensor as quantized."""
        env = {self.graph.input: self._act(self.graph.input, x)}
        for op in self.graph.ops:
            if isinstance(op, ConvOp):
                y = self._conv(op, env[op.input])
            elif isinstance(op, AddOp):
                y = self._add(op, env[op.a], env[op.b])
            elif isinstance(op, DepthToSpaceOp):
                y = self._activate(op.act, F.pixel_shuffle(env[op.input], op.block))
            elif isinstance(op, HardActOp):
                y = self._hard(op, env[op.input])
            else:
                raise TypeError(f"unknown op {op!r}")
            env[op.name] = self._act(op.name, y)
        if trace is not None:
            trace.update(env)
        return env[self.graph.output]
