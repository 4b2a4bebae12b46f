"""torch module -> QGraph: trace with torch.fx, fold BatchNorm into convolutions, fuse activations.

The traced graph may contain Conv2d, BatchNorm2d (after a conv), ReLU / ReLU6 / LeakyReLU (after a conv or
an add), additions and PixelShuffle (what the DPU part of the pose model uses), and Hardsigmoid / Hardswish,
which the DPU does not fuse (VART's DPUCZDX8G target factory: hsigmoid is an ALU op of its own): each is an
op of its own after the op it reads, so that op's output is quantized (a Q/DQ pair) before it, as vai_q does
for an op the DPU does not fuse. An activation after one is fused into it as the DPU fuses it: a ReLU after a
hard swish (its eltwise mult's ReLU), a ReLU, ReLU6 or LeakyReLU after a hard sigmoid (the ALU engine's); any
other is refused, and so is an activation after a pixel shuffle (XIR's pixel-shuffle-fix fuses none: put it
before, into the conv, as the pose model's decoder does). A LeakyReLU must have the DPU's slope 26/256; 0.1
is accepted and replaced by 26/256 (as vai_q_pytorch does). Anything else cannot run on the DPU and raises
QuantizationError naming the layer.
"""

from __future__ import annotations

import logging
import operator

import numpy as np
import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from dpupose.errors import QuantizationError
from dpupose.quant.ir import INPUT_NAME, OUTPUT_NAME, AddOp, ConvOp, DepthToSpaceOp, HardActOp, Op, QGraph

log = logging.getLogger(__name__)

LEAKY_SLOPE = 26 / 256
_RELU_FUNCS = (F.relu, torch.relu)
_ADD_FUNCS = (operator.add, operator.iadd, torch.add)
_HARD_MODULES = ((nn.Hardsigmoid, "hsigmoid"), (nn.Hardswish, "hswish"))
_HARD_FUNCS = {F.hardsigmoid: "hsigmoid", F.hardswish: "hswish"}
# The activations the DPU fuses after each: a hard swish's last op is the eltwise engine's mult, which fuses a
# ReLU only; a hard sigmoid's ALU engine fuses relu, relu_six and leaky_relu (VART's DPUCZDX8G target factory)
HARD_FUSED_ACTIVATIONS = {"hswish": ("relu",), "hsigmoid": ("relu", "relu6", "leaky")}
_ACT_TEXT = {"relu": "ReLU", "relu6": "ReLU6", "leaky": "LeakyReLU"}


def _pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _activation_of(module: nn.Module, where: str) -> str | None:
    if isinstance(module, nn.ReLU):
        return "relu"
    if isinstance(module, nn.ReLU6):
        return "relu6"
    if isinstance(module, nn.Hardtanh) and module.min_val == 0.0 and module.max_val == 6.0:
        return "relu6"
    if isinstance(module, nn.LeakyReLU):
        slope = module.negative_slope
        if abs(slope - LEAKY_SLOPE) < 1e-7:
            return "leaky"
        if abs(slope - 0.1) < 1e-7:
            log.info("%s: LeakyReLU slope 0.1 becomes the DPU's 26/256", where)
            return "leaky"
        raise QuantizationError(f"{where}: LeakyReLU slope {slope}; the DPU only has 26/256 (or 0.1)")
    return None


def _module_name(node: fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    return next(reversed(stack)) if stack else ""


class _Builder:
    def __init__(self, gm: fx.GraphModule) -> None:
        self.gm = gm
        self.modules = dict(gm.named_modules())
        self.ops: list[Op] = []
        self.tensor_of: dict[fx.Node, str] = {}  # fx node -> QGraph tensor name
        self.op_of: dict[str, Op] = {}
        self.names: set[str] = {INPUT_NAME}

    def unique(self, name: str) -> str:
        base, i = name, 1
        while name in self.names:
            i += 1
            name = f"{base}.{i}"
        self.names.add(name)
        return name

    def tensor(self, arg: object, where: str) -> str:
        if not isinstance(arg, fx.Node) or arg not in self.tensor_of:
            raise QuantizationError(f"{where}: input {arg!r} is not a tensor the DPU part computes")
        return self.tensor_of[arg]

    def fusable(self, node: fx.Node, where: str) -> Op:
        """The op whose output `node` is, when `node` feeds only the current layer (for folding)."""
        name = self.tensor(node, where)
        op = self.op_of.get(name)
        if op is None or len(node.users) != 1:
            raise QuantizationError(f"{where}: must directly follow a conv/add whose output it alone uses")
        return op

    def add_op(self, node: fx.Node, op: Op) -> None:
        self.ops.append(op)
        self.op_of[op.name] = op
        self.tensor_of[node] = op.name

    def conv(self, node: fx.Node, mod: nn.Conv2d, where: str) -> None:
        if mod.padding_mode != "zeros" or isinstance(mod.padding, str):
            raise QuantizationError(f"{where}: only explicit zero padding runs on the DPU")
        ph, pw = _pair(mod.padding)
        w = mod.weight.detach().double().cpu().numpy()
        b = None if mod.bias is None else mod.bias.detach().double().cpu().numpy()
        op = ConvOp(
            name=self.unique(node.target),
            input=self.tensor(node.args[0], where),
            weight=w,
            bias=b,
            stride=_pair(mod.stride),
            pads=(ph, pw, ph, pw),
            dilation=_pair(mod.dilation),
            groups=mod.groups,
        )
        self.add_op(node, op)

    def batchnorm(self, node: fx.Node, mod: nn.BatchNorm2d, where: str) -> None:
        op = self.fusable(node.args[0], where)
        if not isinstance(op, ConvOp) or op.act != "none":
            raise QuantizationError(f"{where}: BatchNorm must follow a convolution to be folded")
        if mod.running_mean is None or mod.running_var is None:
            raise QuantizationError(f"{where}: BatchNorm without running statistics cannot be folded")
        mean = mod.running_mean.detach().double().cpu().numpy()
        var = mod.running_var.detach().double().cpu().numpy()
        gamma = mod.weight.detach().double().cpu().numpy() if mod.affine else np.ones_like(mean)
        beta = mod.bias.detach().double().cpu().numpy() if mod.affine else np.zeros_like(mean)
        scale = gamma / np.sqrt(var + mod.eps)
        op.weight = op.weight * scale[:, None, None, None]
        bias = op.bias if op.bias is not None else np.zeros_like(mean)
        op.bias = (bias - mean) * scale + beta
        self.tensor_of[node] = op.name

    def activation(self, node: fx.Node, act: str, where: str) -> None:
        op = self.fusable(node.args[0], where)
        if isinstance(op, HardActOp) and op.act == "none" and act not in HARD_FUSED_ACTIVATIONS[op.kind]:
            raise QuantizationError(
                f"{where}: a {_ACT_TEXT[act]} after a hard swish has no DPU mapping: the hard swish's eltwise mult "
                "fuses a ReLU only (a hard sigmoid takes a ReLU, ReLU6 or LeakyReLU(26/256)); use a ReLU there or "
                "none"
            )
        if isinstance(op, DepthToSpaceOp):
            raise QuantizationError(
                f"{where}: a {_ACT_TEXT[act]} after a pixel shuffle has no DPU mapping: the DPU fuses no activation "
                "into one (XIR's pixel-shuffle-fix has no nonlinear attribute); put the activation before the pixel "
                "shuffle, fused into the conv before it, as the pose model's decoder does (a pixel shuffle only moves "
                "values, so an activation of each value gives the same result there)"
            )
        if op.act != "none":
            raise QuantizationError(f"{where}: a second activation cannot be fused")
        op.act = act
        self.tensor_of[node] = op.name

    def add(self, node: fx.Node, where: str) -> None:
        if len(node.args) != 2 or node.kwargs.get("alpha", 1) != 1:
            raise QuantizationError(f"{where}: only a plain sum of two tensors maps to the DPU's add")
        a = self.tensor(node.args[0], where)
        b = self.tensor(node.args[1], where)
        scope = _module_name(node)
        self.add_op(node, AddOp(self.unique(f"{scope}.add" if scope else node.name), a, b))

    def hard_activation(self, node: fx.Node, kind: str, where: str) -> None:
        """A hard sigmoid or hard swish: an op of its own reading the previous op's quantized output."""
        name = self.unique(node.target if node.op == "call_module" else node.name)
        self.add_op(node, HardActOp(name, self.tensor(node.args[0], where), kind))

    def pixel_shuffle(self, node: fx.Node, block: int, where: str) -> None:
        name = self.unique(node.target if node.op == "call_module" else node.name)
        self.add_op(node, DepthToSpaceOp(name, self.tensor(node.args[0], where), block, "CRD"))

    def visit(self, node: fx.Node) -> None:
        where = f"layer {node.target if node.op == 'call_module' else node.name}"
        if node.op == "call_module":
            mod = self.modules[node.target]
            act = _activation_of(mod, where)
            if isinstance(mod, nn.Conv2d):
                self.conv(node, mod, where)
            elif isinstance(mod, nn.BatchNorm2d):
                self.batchnorm(node, mod, where)
            elif act is not None:
                self.activation(node, act, where)
            elif isinstance(mod, nn.PixelShuffle):
                self.pixel_shuffle(node, mod.upscale_factor, where)
            elif any(isinstance(mod, cls) for cls, _ in _HARD_MODULES):
                self.hard_activation(node, next(k for cls, k in _HARD_MODULES if isinstance(mod, cls)), where)
            elif isinstance(mod, (nn.Identity, nn.Dropout)):
                self.tensor_of[node] = self.tensor(node.args[0], where)
            else:
                raise QuantizationError(f"{where}: {type(mod).__name__} has no DPU mapping in this quantizer")
        elif node.op == "call_function":
            if node.target in _ADD_FUNCS:
                self.add(node, where)
            elif node.target in _RELU_FUNCS:
                self.activation(node, "relu", where)
            elif node.target is F.relu6:
                self.activation(node, "relu6", where)
            elif node.target is F.pixel_shuffle:
                self.pixel_shuffle(node, int(node.args[1]), where)
            elif node.target in _HARD_FUNCS:
                self.hard_activation(node, _HARD_FUNCS[node.target], where)
            else:
                raise QuantizationError(f"{where}: function {node.target} has no DPU mapping here")
        elif node.op == "call_method" and node.target in ("relu", "relu_"):
            self.activation(node, "relu", where)
        elif node.op == "call_method" and node.target in ("add", "add_"):
            self.add(node, where)
        else:
            raise QuantizationError(f"{where}: {node.op} {node.target} has no DPU mapping here")


def build_qgraph(module: nn.Module, input_shape: tuple[int, int, int]) -> QGraph:
    """Trace `module` (image -> logits, eval mode) into a QGraph with BatchNorm folded."""
    module = module.eval()
    try:
        gm = fx.symbolic_trace(module)
    except Exception as exc:  # torch.fx raises many kinds for untraceable code
        raise QuantizationError(f"cannot trace the DPU part with torch.fx: {exc}") from exc
    b = _Builder(gm)
    output_node = None
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            if b.tensor_of:
                raise QuantizationError("the DPU part must take exactly one input (the image)")
            b.tensor_of[node] = INPUT_NAME
        elif node.op == "output":
            output_node = node.args[0]
        elif node.op != "get_attr":
            b.visit(node)
    if not isinstance(output_node, fx.Node) or output_node not in b.tensor_of:
        raise QuantizationError("the DPU part must return one tensor computed on the DPU")
    last = b.op_of.get(b.tensor_of[output_node])
    if last is None or last is not b.ops[-1]:
        raise QuantizationError("the DPU part's output must be its last operation")
    for op in b.ops:  # rename the output tensor to `logits`, in consumers too
        for attr in ("input", "a", "b"):
            if getattr(op, attr, None) == last.name:
                setattr(op, attr, OUTPUT_NAME)
    last.name = OUTPUT_NAME
    for op in b.ops:
        if isinstance(op, ConvOp):
            op.weight = op.weight.astype(np.float32)
            op.bias = None if op.bias is None else op.bias.astype(np.float32)
    return QGraph(ops=b.ops, input_shape=tuple(input_shape))
