"""Read a DPU subgraph in QDQ ONNX form into a list of integer steps for the emulator.

The QDQ conventions (written by `dpupose quantize`, cut only at Q/DQ boundaries by the partitioner):
- every activation is QuantizeLinear -> DequantizeLinear with scale 2**-fp and an int8 zero point 0;
- weights are int8 initializers -> DequantizeLinear (scale 2**-fp_w); a bias is an int8 initializer ->
  DequantizeLinear with its own power-of-two scale (the DPU's int8 bias, not ONNX's usual int32 bias);
- a fused activation (Relu, Clip 0..6, LeakyRelu alpha = 26/256) sits between a Conv/Add and its Q;
- graph inputs are float tensors consumed by QuantizeLinear; graph outputs come out of DequantizeLinear.

Each QuantizeLinear that does not quantize a graph input is one DPU step: the Conv / ConvTranspose / Add /
DepthToSpace / Concat / Pad / nearest or bilinear Resize / MaxPool / (Global)AveragePool / HardSigmoid /
HardSwish / Mul / Gemm / MatMul / Reshape / Flatten / Squeeze / Unsqueeze (or a bare DequantizeLinear, i.e. a
change of fix position) feeding it, with the fused activation; a Gemm or MatMul may read its input through
layout ops with no Q/DQ pair between. Step tensors are named by the Q node's int8 output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dpupose.errors import ModelFileError, shortlist
from dpupose.runtime import dpu_ops
from dpupose.runtime.onnx_lite import Graph, Node, load_model

ACT_OPS = ("Relu", "Clip", "LeakyRelu")
LAYOUT_OPS = ("Reshape", "Flatten", "Squeeze", "Unsqueeze")  # XIR reshape-fix: data movement only
# Resize-11 coordinate mappings that take output pixel x from input pixel floor(x / s) at every integer
# scale s: x_in = (x + 1/2) / s - 1/2 is floor(x / s) plus a fraction in (-1/2, 1/2), which either rounding
# takes to floor(x / s); x / s and (x + 1/2) / s have floor(x / s) as their floor. Resize-19's
# half_pixel_symmetric adds an offset centre * (1 - floor(in * s) / (in * s)), 0 at a whole-number scale s:
# there it is half_pixel.
FLOOR_MAPPINGS = {
    ("half_pixel", "round_prefer_floor"),
    ("half_pixel", "round_prefer_ceil"),
    ("pytorch_half_pixel", "round_prefer_floor"),
    ("pytorch_half_pixel", "round_prefer_ceil"),
    ("half_pixel_symmetric", "round_prefer_floor"),
    ("half_pixel_symmetric", "round_prefer_ceil"),
    ("asymmetric", "floor"),
    ("tf_half_pixel_for_nn", "floor"),
}
# Resize-11 coordinate mappings of a bilinear resize the DPU runs -> whether they are half-pixel centred
# (the cpu-runner's half_pixel_centers); pytorch_half_pixel is half_pixel for every output size above 1, and
# half_pixel_symmetric at every whole-number scale (see FLOOR_MAPPINGS).
LINEAR_MAPPINGS = {"half_pixel": True, "pytorch_half_pixel": True, "half_pixel_symmetric": True, "asymmetric": False}
LEAKY_ALPHA = 26 / 256


class NotEmulated(ModelFileError):
    """A DPU subgraph with an op the emulator does not run (see EMULATED): the plan is sound, and ONNX
    Runtime (`--backend cpu`) runs it."""


# What the emulator runs, for the messages that refuse a subgraph with anything else.
EMULATED = (
    "convolutions, depthwise convolutions, transposed convolutions (dense, or depthwise with no activation), "
    "element-wise adds, concats, nearest-neighbour and bilinear upsampling by whole numbers (constant scales, or "
    "sizes that are whole multiples of the input's), max and average pools, pixel shuffles (mode CRD), constant "
    "pads of 0 and 'edge' pads of 0 or 1 on H and W, Muls by a scalar or per-channel constant, element-wise Muls of "
    "two activations, and hard sigmoids (with a ReLU, ReLU6 or LeakyReLU of slope 26/256 after one) and hard "
    "swishes (with a ReLU after one) of a dequantized activation, fully connected layers (Gemm, MatMul by a "
    "constant weight) and the reshapes, flattens, squeezes and unsqueezes that keep the batch axis"
)


class NotADpuSubgraph(ModelFileError):
    """A graph input or output that is not at a Q/DQ boundary: a whole model, or a CPU subgraph."""


@dataclass
class Boundary:
    """A graph input or output: the float name the ONNX graph uses and the int8 tensor behind it."""

    name: str
    tensor: str  # int8 tensor name inside the program
    fix_point: int
    shape_nchw: tuple[int | str, ...]


@dataclass
class Step:
    kind: str  # "conv", or one of emulator.RUN_STEP_KINDS ("add", "concat", "hsigmoid"...)
    out: str  # int8 tensor (Q output)
    fp_out: int
    inputs: list[str]  # int8 tensors
    fps_in: list[int]
    label: str  # the float tensor the Q quantizes, for reports
    act: str = "none"
    # conv: int8 (O, C/g, KH, KW), transposed (C, O, KH, KW); fc: int8 (K, N); mul: int8 (1,) or (C,)
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None  # conv, fc: int8 (O,)
    fp_w: int | None = None
    fp_b: int | None = None
    attrs: dict = field(default_factory=dict)


@dataclass
class Program:
    inputs: list[Boundary]
    outputs: list[Boundary]
    steps: list[Step]
    fix_points: dict[str, int]  # every int8 tensor -> fix position


def scale_to_fix_point(scale: np.ndarray, where: str) -> int:
    """2**-fp -> fp; anything that is not one exact power of two is an error."""
    values = np.asarray(scale, dtype=np.float64).reshape(-1)
    if values.size != 1:
        raise ModelFileError(
            f"{where}: per-channel scales are not DPU quantization, which has one power-of-two scale per tensor "
            "(docs/split.md, A model of your own)"
        )
    s = float(values[0])
    if not s > 0 or not math.isfinite(s):
        raise ModelFileError(f"{where}: scale {s} is not positive")
    mant, exp = math.frexp(s)
    if mant != 0.5:
        raise ModelFileError(
            f"{where}: scale {s:g} is not a power of two, and DPU scales are 2**-fix_point: quantize dpupose's "
            "network with `dpupose quantize`, a network of your own to QDQ with per-tensor power-of-two scales "
            "(docs/split.md, A model of your own)"
        )
    return -(exp - 1)


class _Parser:
    def __init__(self, graph: Graph) -> None:
        self.g = graph
        self.inits = dict(graph.initializers)
        self.producer: dict[str, Node] = {}
        self.consumers: dict[str, list[Node]] = {}
        self.used: set[int] = set()
        self.input_shapes: dict[str, tuple[int | str, ...]] = {}  # a graph input's int8 tensor -> its declared shape
        for node in graph.nodes:
            # A Constant node is an initializer written as a node: torch.onnx.export gives a ReLU6's
            # Clip bounds so, and the partitioner copies such nodes into every subgraph that reads them.
            if node.op_type == "Constant" and isinstance(node.attrs.get("value"), np.ndarray):
                self.inits[node.outputs[0]] = node.attrs["value"]
                self.used.add(id(node))
            for t in node.outputs:
                self.producer[t] = node
            for t in node.inputs:
                if t:
                    self.consumers.setdefault(t, []).append(node)
        self.fix: dict[str, int] = {}  # int8 tensor -> fp
        self.act_dq: dict[str, tuple[str, int]] = {}  # DQ float output -> (int8 tensor, fp)
        self.const_dq: dict[str, tuple[np.ndarray, int]] = {}  # DQ float output -> (int8 array, fp)

    def qparams(self, node: Node) -> int:
        where = f"{node.op_type} {node.name or node.outputs[0]!r}"
        if len(node.inputs) < 2 or node.inputs[1] not in self.inits:
            raise ModelFileError(f"{where}: scale must be an initializer")
        fp = scale_to_fix_point(self.inits[node.inputs[1]], where)
        if len(node.inputs) < 3 or not node.inputs[2] or node.inputs[2] not in self.inits:
            raise ModelFileError(f"{where}: needs an int8 zero point initializer (0)")
        zp = self.inits[node.inputs[2]]
        if zp.dtype != np.int8 or np.any(zp != 0):
            raise ModelFileError(f"{where}: zero point must be int8 0 (symmetric DPU quantization)")
        if node.attrs.get("axis", 1) != 1 and np.asarray(self.inits[node.inputs[1]]).size != 1:
            raise ModelFileError(f"{where}: per-axis quantization is not supported")
        return fp

    def mark(self, node: Node) -> None:
        self.used.add(id(node))

    def parse(self) -> Program:
        g = self.g
        # Constants: int8 initializer -> DequantizeLinear (weights, biases).
        for node in g.nodes:
            if node.op_type == "DequantizeLinear" and node.inputs[0] in self.inits:
                arr = self.inits[node.inputs[0]]
                if arr.dtype != np.int8:
                    raise ModelFileError(f"constant {node.inputs[0]!r} must be int8, got {arr.dtype}")
                self.const_dq[node.outputs[0]] = (arr, self.qparams(node))
                self.mark(node)
        inputs = []
        graph_inputs = {vi.name: vi for vi in g.inputs}
        for vi in g.inputs:
            qs = self.consumers.get(vi.name, [])
            if len(qs) != 1 or qs[0].op_type != "QuantizeLinear":
                raise NotADpuSubgraph(
                    f"graph input {vi.name!r} must be consumed by exactly one QuantizeLinear "
                    "(DPU subgraphs start at a Q/DQ boundary)"
                )
            q = qs[0]
            fp = self.qparams(q)
            self.fix[q.outputs[0]] = fp
            self.mark(q)
            inputs.append(Boundary(vi.name, q.outputs[0], fp, vi.shape))
            self.input_shapes[q.outputs[0]] = tuple(vi.shape)
        steps = []
        for node in g.nodes:
            if node.op_type == "QuantizeLinear" and node.inputs[0] not in graph_inputs:
                steps.append(self.step_for(node))
                self.mark(node)
            elif node.op_type == "DequantizeLinear" and node.inputs[0] not in self.inits:
                src = node.inputs[0]
                if src not in self.fix:
                    raise ModelFileError(f"DequantizeLinear of {src!r}, which no QuantizeLinear made")
                fp = self.qparams(node)
                if fp != self.fix[src]:
                    raise ModelFileError(f"Q/DQ pair of {src!r} has different scales ({self.fix[src]} vs {fp})")
                self.act_dq[node.outputs[0]] = (src, fp)
                self.mark(node)
        outputs = []
        for vi in g.outputs:
            if vi.name not in self.act_dq:
                raise NotADpuSubgraph(f"graph output {vi.name!r} must come out of a DequantizeLinear")
            src, fp = self.act_dq[vi.name]
            outputs.append(Boundary(vi.name, src, fp, vi.shape))
        stray = [n for n in g.nodes if id(n) not in self.used]
        if stray:
            names = shortlist([f"{n.op_type} {n.name or n.outputs[0]!r}" for n in stray])
            raise ModelFileError(f"nodes outside the DPU's Q/DQ patterns: {names}")
        return Program(inputs, outputs, steps, dict(self.fix))

    def act_input(self, name: str, where: str) -> tuple[str, int]:
        if name not in self.act_dq:
            raise ModelFileError(f"{where}: input {name!r} is not a dequantized activation")
        return self.act_dq[name]

    def layout_input(self, name: str, where: str) -> tuple[str, int, list[tuple]]:
        """(int8 tensor, fix point, layout ops) of an input that is a dequantized activation or one through
        Reshape / Flatten / Squeeze / Unsqueeze nodes (each read by this one consumer): the layout ops in the
        order they apply (`dpu_ops.layout_shape`)."""
        specs = []
        while name not in self.act_dq:
            node = self.producer.get(name)
            if node is None or node.op_type not in LAYOUT_OPS:
                raise ModelFileError(f"{where}: input {name!r} is not a dequantized activation")
            self.single_use(name, where)
            self.mark(node)
            specs.append(self.layout_spec(node))
            name = node.inputs[0]
        src, fp = self.act_dq[name]
        return src, fp, specs[::-1]

    def layout_spec(self, node: Node) -> tuple:
        """A layout op as `dpu_ops.layout_shape` takes it: its shape or axes constant (Squeeze-13 and Unsqueeze-13
        on take the axes as an input, before as an attribute)."""
        op = node.op_type
        what = f"{op} {node.name or node.outputs[0]!r}"
        if op == "Flatten":
            return ("flatten", int(node.attrs.get("axis", 1)))
        if op == "Reshape":
            if len(node.inputs) < 2 or node.inputs[1] not in self.inits:
                raise NotEmulated(f"{what}: the emulator takes a Reshape to a constant shape")
            shape = tuple(int(d) for d in np.asarray(self.inits[node.inputs[1]]).reshape(-1))
            return ("reshape", shape, int(node.attrs.get("allowzero", 0)))
        if self.g.opset >= 13 or "axes" not in node.attrs:
            name = node.inputs[1] if len(node.inputs) > 1 else ""
            if not name or name not in self.inits:
                raise NotEmulated(f"{what}: the emulator takes a {op} with constant axes")
            axes = tuple(int(a) for a in np.asarray(self.inits[name]).reshape(-1))
        else:
            axes = tuple(int(a) for a in node.attrs["axes"])
        return (op.lower(), axes)

    def fc(self, node: Node, out: str, fp_out: int, label: str, act: str, where: str) -> Step:
        """A fully connected layer (`dpu_ops.FcKernel`): a Gemm (transA 0, alpha and beta 1; transB either) or a
        MatMul of an activation, through any layout ops, by an int8 weight behind its DequantizeLinear, 2-D (or
        a MatMul's 1-D vector, one output per row), with a Gemm's int8 bias C of one value per output, and the
        conv engine's fused activation. The weight is kept as MatMul reads it, (K, N)."""
        op = node.op_type
        what = f"{op} {node.name or node.outputs[0]!r}"
        if len(node.inputs) < 2 or node.inputs[1] not in self.const_dq:
            raise NotEmulated(
                f"{what}: the emulator runs a fully connected layer, by a weight that is an int8 initializer behind "
                "a DequantizeLinear"
            )
        w, fp_w = self.const_dq[node.inputs[1]]
        vector = op == "MatMul" and w.ndim == 1
        if vector:
            w = w.reshape(-1, 1)
        if w.ndim != 2:
            raise NotEmulated(f"{what}: a weight of shape {list(w.shape)}: a fully connected layer's is one matrix")
        b = fp_b = None
        if op == "Gemm":
            if int(node.attrs.get("transA", 0)):
                raise NotEmulated(f"{what}: a Gemm with transA is not a fully connected layer")
            alpha, beta = float(node.attrs.get("alpha", 1.0)), float(node.attrs.get("beta", 1.0))
            has_c = len(node.inputs) > 2 and bool(node.inputs[2])
            if int(node.attrs.get("transB", 0)):
                w = w.T
            if has_c and node.inputs[2] not in self.const_dq:
                raise NotEmulated(f"{what}: its C must be an int8 initializer behind a DequantizeLinear (the bias)")
            if has_c:
                b, fp_b = self.const_dq[node.inputs[2]]
            why = dpu_ops.gemm_refusal(alpha, beta, None if b is None else b.shape, w.shape[1])
            if why is not None:  # the operator rules' reason, which puts such a Gemm on the CPU
                raise NotEmulated(f"{what}: a Gemm with {why}")
            if b is not None:
                b = np.full(w.shape[1], b.reshape(-1)[0], dtype=b.dtype) if b.size == 1 else b.reshape(-1)
        src, fp_in, layout = self.layout_input(node.inputs[0], where)
        why = self.rows_refusal(src, layout)
        if why is not None:  # the operator rules' reason, which puts such a layer on the CPU
            raise NotEmulated(f"{what}: a {op} of {why}")
        attrs = {"layout": layout, "vector": vector, "gemm": op == "Gemm"}
        return Step("fc", out, fp_out, [src], [fp_in], label, act, np.ascontiguousarray(w), b, fp_w, fp_b, attrs)

    def rows_refusal(self, src: str, layout: list[tuple]) -> str | None:
        """dpu_ops.fc_rows_refusal of a fully connected layer's input where it is a graph input (through `layout`)
        whose declared shape is known but for a symbolic batch (1): a plan's subgraph declares its inputs at batch 1,
        so a CPU Reshape's (8, 64) comes in as 8 rows of one image, which the emulator, running the batch one image
        at a time, would take for 8 images. Rows of a step's output are checked when it runs
        (emulator.fully_connected), one image at a time."""
        declared = self.input_shapes.get(src)
        if declared is None or not all(isinstance(d, int) and d > 0 for d in declared[1:]):
            return None
        shape = tuple(d if isinstance(d, int) and d > 0 else 1 for d in declared[:1]) + tuple(declared[1:])
        try:
            for spec in layout:
                shape = dpu_ops.layout_shape(spec, shape)  # type: ignore[arg-type]
        except ValueError:
            return None  # a layout op that does not fit: refused when it runs, with its own reason
        return dpu_ops.fc_rows_refusal(shape)

    def single_use(self, tensor: str, where: str) -> None:
        if len(self.consumers.get(tensor, [])) != 1:
            raise ModelFileError(f"{where}: intermediate float tensor {tensor!r} must have one consumer")

    def step_for(self, q: Node) -> Step:
        fp_out = self.qparams(q)
        label = q.inputs[0]
        where = f"QuantizeLinear of {label!r}"
        node = self.producer.get(label)
        if node is None:
            raise ModelFileError(f"{where}: nothing produces its input")
        act = "none"
        if node.op_type in ACT_OPS:
            act = self.activation(node, where)
            self.single_use(label, where)
            self.mark(node)
            node = self.producer.get(node.inputs[0])
            if node is None:
                raise ModelFileError(f"{where}: activation without a producer")
        if node.op_type != "DequantizeLinear":  # a requant may share its DQ with other consumers
            self.single_use(node.outputs[0], where)
        self.mark(node)
        out = q.outputs[0]
        self.fix[out] = fp_out
        op = node.op_type
        if op in ("Conv", "ConvTranspose"):
            return self.conv(node, out, fp_out, label, act)
        if op == "Add":
            srcs = [self.act_input(t, where) for t in node.inputs]
            return Step("add", out, fp_out, [s for s, _ in srcs], [f for _, f in srcs], label, act)
        if op == "Concat" and act == "none":
            srcs = [self.act_input(t, where) for t in node.inputs]
            attrs = {"axis": int(node.attrs.get("axis", 1))}
            return Step("concat", out, fp_out, [s for s, _ in srcs], [f for _, f in srcs], label, attrs=attrs)
        if op == "MaxPool" and act == "none":
            src, fp = self.act_input(node.inputs[0], where)
            attrs = self.pool_attrs(node, f"{op} {node.name or node.outputs[0]!r}")
            return Step("maxpool", out, fp_out, [src], [fp], label, attrs=attrs)
        if op in ("AveragePool", "GlobalAveragePool") and act == "none":
            src, fp = self.act_input(node.inputs[0], where)
            what = f"{op} {node.name or node.outputs[0]!r}"
            if op == "GlobalAveragePool":
                attrs = {"kernel": None, "stride": (1, 1), "pads": (0, 0, 0, 0)}
            else:
                attrs = self.pool_attrs(node, what)
                if any(attrs["pads"]) and not int(node.attrs.get("count_include_pad", 0)):
                    raise NotEmulated(
                        f"{what}: a padded average pool with count_include_pad 0 is not emulated (the DPU divides "
                        "every window by the whole kernel: count_include_pad 1)"
                    )
                kh, kw = attrs["kernel"]
                if max(kh, kw) > dpu_ops.MAX_ALU_KERNEL:
                    raise NotEmulated(
                        f"{what}: kernel {kh}x{kw}: the DPU's pool kernel is 1 to {dpu_ops.MAX_ALU_KERNEL} a side"
                    )
            return Step("avgpool", out, fp_out, [src], [fp], label, attrs=attrs)
        if op in ("Gemm", "MatMul"):
            return self.fc(node, out, fp_out, label, act, where)
        if op in LAYOUT_OPS and act == "none":
            src, fp, layout = self.layout_input(node.outputs[0], where)
            return Step("reshape", out, fp_out, [src], [fp], label, attrs={"layout": layout})
        if op == "Mul":
            return self.mul(node, out, fp_out, label, act, where)
        if op in ("HardSigmoid", "HardSwish"):
            return self.hard_sigmoid(node, out, fp_out, label, act, where)
        if op == "Resize" and node.attrs.get("mode", "nearest") == "linear":
            return self.linear_resize(node, out, fp_out, label, act, where)
        if op == "Resize" and act == "none":
            src, fp = self.act_input(node.inputs[0], where)
            attrs = self.nearest_scale(node, f"{op} {node.name or node.outputs[0]!r}")
            return Step("resize", out, fp_out, [src], [fp], label, attrs=attrs)
        if op == "Pad" and act == "none":
            src, fp = self.act_input(node.inputs[0], where)
            attrs = self.pad_hw(node, f"{op} {node.name or node.outputs[0]!r}")
            return Step("pad", out, fp_out, [src], [fp], label, attrs=attrs)
        if op in ("DepthToSpace", "DequantizeLinear") and act == "none":
            src, fp = self.act_input(node.outputs[0] if op == "DequantizeLinear" else node.inputs[0], where)
            if op == "DequantizeLinear":
                return Step("requant", out, fp_out, [src], [fp], label)
            mode = dpu_ops.depth_to_space_mode(node.attrs.get("mode"), self.g.opset)
            refused = dpu_ops.pixel_shuffle_refusal(mode)
            if refused is not None:
                raise NotEmulated(f"{where}: {refused}")
            attrs = {"block": int(node.attrs["blocksize"]), "mode": mode}
            return Step("depth_to_space", out, fp_out, [src], [fp], label, attrs=attrs)
        raise NotEmulated(f"{where}: the emulator does not run {op} (with activation {act})")

    def mul(self, node: Node, out: str, fp_out: int, label: str, act: str, where: str) -> Step:
        """A Mul of a dequantized activation by an int8 constant behind its DequantizeLinear: one value, or
        one per channel (shape [C, 1, 1] or [1, C, 1, 1]); `dpu_ops.mul_const`. Or of two dequantized
        activations, the eltwise engine's mult (with the ReLU it fuses); `dpu_ops.eltwise_mul`."""
        op = f"Mul {node.name or node.outputs[0]!r}"
        consts = [t for t in node.inputs if t in self.const_dq]
        acts = [t for t in node.inputs if t not in self.const_dq]
        if len(node.inputs) == 2 and all(t in self.act_dq for t in acts) and not consts:
            if act not in dpu_ops.ELTWISE_ACTIVATIONS:
                raise NotEmulated(
                    f"{op}: a Mul of two activations fuses a ReLU only, not {act} (the eltwise engine's only "
                    "activation: VART's DPUCZDX8G target factory)"
                )
            srcs = [self.act_dq[t] for t in acts]
            return Step("emul", out, fp_out, [s for s, _ in srcs], [f for _, f in srcs], label, act)
        if len(node.inputs) != 2 or len(consts) != 1:
            raise NotEmulated(
                f"{op}: the emulator runs a Mul of an activation by a constant (an int8 initializer behind a "
                "DequantizeLinear) or of two dequantized activations only"
            )
        c, fp_c = self.const_dq[consts[0]]
        shape = tuple(c.shape)
        per_channel = len(shape) in (3, 4) and shape[-2:] == (1, 1) and (len(shape) == 3 or shape[0] == 1)
        if c.size != 1 and not per_channel:
            raise NotEmulated(
                f"{op}: a constant of shape {list(shape)}: the emulator runs a Mul by one value or one per channel "
                "(shape [C, 1, 1] or [1, C, 1, 1])"
            )
        src, fp = self.act_input(acts[0], where)
        return Step("mul", out, fp_out, [src], [fp], label, act, weight=c.reshape(-1), fp_w=fp_c)

    def hard_sigmoid(self, node: Node, out: str, fp_out: int, label: str, act: str, where: str) -> Step:
        """A hard sigmoid or hard swish of a dequantized activation (XIR hard-sigmoid-fix, the ALU's
        hsigmoid; a hard swish multiplies its input by that at fix point 7 on the eltwise engine, which
        fuses a ReLU that follows): the DPU's relu6(x + 3) / 6, at the fix points `dpu_ops.hard_sigmoid`
        and `dpu_ops.hard_swish` emulate. A hard sigmoid's activation (the ALU engine's ReLU, ReLU6 or
        LeakyReLU, which the operator rules fuse) is the identity on its result, which is never negative
        and at most 1, below 6."""
        op = f"{node.op_type} {node.name or node.outputs[0]!r}"
        swish = node.op_type == "HardSwish"
        what = "hard swish" if swish else "hard sigmoid"
        src_name = node.inputs[0]
        if src_name not in self.act_dq:
            producer = self.producer.get(src_name)
            after = f" reading a {producer.op_type}'s result directly" if producer is not None else ""
            raise NotEmulated(
                f"{op}{after} is not emulated: the DPU fuses no {what} into an op (VART's DPUCZDX8G target "
                "factory); its ALU hsigmoid reads its input at a fix point (hsigmoid_in) that only a "
                "QuantizeLinear/DequantizeLinear pair before it states; put one between them"
            )
        if swish and act not in dpu_ops.ELTWISE_ACTIVATIONS:
            raise NotEmulated(
                f"{where}: a hard swish fuses a ReLU only, not {act} (its last op is the eltwise engine's mult, whose "
                "only activation is relu: VART's DPUCZDX8G target factory)"
            )
        if not swish:
            alpha, beta = float(node.attrs.get("alpha", 0.2)), float(node.attrs.get("beta", 0.5))
            if not dpu_ops.is_hard_sigmoid(alpha, beta):
                raise NotEmulated(
                    f"{op}: HardSigmoid(alpha={alpha:g}, beta={beta:g}) is not the DPU's relu6(x + 3) / 6"
                )
        src, fp = self.act_dq[src_name]
        if not 0 <= fp <= dpu_ops.HSIGMOID_MAX_FP_IN:
            raise NotEmulated(
                f"{op}: input fix point {fp}: the emulator runs a {what} from input fix points 0 to "
                f"{dpu_ops.HSIGMOID_MAX_FP_IN} (where Xilinx's reference is exact)"
            )
        if not swish and fp_out < dpu_ops.HSIGMOID_MIN_FP_OUT:
            raise NotEmulated(
                f"{op}: output fix point {fp_out}: the emulator runs a hard sigmoid to output fix points of "
                f"{dpu_ops.HSIGMOID_MIN_FP_OUT} or more (below, Xilinx's references disagree on the cap at 1)"
            )
        return Step("hswish" if swish else "hsigmoid", out, fp_out, [src], [fp], label, act)

    def pool_attrs(self, node: Node, where: str) -> dict:
        """kernel, stride and pads (top, left, bottom, right) of a 2-D pool the emulator runs: explicit pads
        each smaller than the kernel (every window then holds an input pixel), no dilation, floor mode."""
        kernel = tuple(int(k) for k in node.attrs.get("kernel_shape", []))
        if len(kernel) != 2:
            raise NotEmulated(f"{where}: the emulator runs 2-D pools only (kernel_shape {list(kernel)})")
        if len(node.outputs) > 1 and node.outputs[1]:
            raise NotEmulated(f"{where}: the emulator does not give a max pool's indices")
        if node.attrs.get("auto_pad", "NOTSET") not in ("NOTSET", ""):
            raise NotEmulated(f"{where}: auto_pad is not emulated; use explicit pads")
        if int(node.attrs.get("ceil_mode", 0)):
            raise NotEmulated(f"{where}: ceil_mode is not emulated (only floor mode)")
        if any(int(d) != 1 for d in node.attrs.get("dilations", [1, 1])):
            raise NotEmulated(f"{where}: a dilated pool is not emulated")
        t, left, b, r = (int(p) for p in node.attrs.get("pads", [0, 0, 0, 0]))
        if max(t, b) >= kernel[0] or max(left, r) >= kernel[1]:
            raise NotEmulated(f"{where}: pads {[t, left, b, r]} not smaller than the kernel {list(kernel)}")
        stride = tuple(int(s) for s in node.attrs.get("strides", [1, 1]))
        return {"kernel": kernel, "stride": stride, "pads": (t, left, b, r)}

    def linear_resize(self, node: Node, out: str, fp_out: int, label: str, act: str, where: str) -> Step:
        """A bilinear Resize the DPU runs (vai_q_pytorch's DPU op filter, after the compiler's partition
        pass: a transposed depthwise conv with fixed weights): one whole-number scale s on H and W, 2 or 4
        with half-pixel centres (half_pixel, pytorch_half_pixel), 2, 4 or 8 without (asymmetric, and
        opset 10's Resize), no align_corners, no fused activation; `dpu_ops.resize_bilinear`."""
        what = f"Resize {node.name or node.outputs[0]!r}"
        if act != "none":
            raise NotEmulated(
                f"{what}: a bilinear resize fuses no activation (the compiler's transposed depthwise conv for it "
                f"takes none: vai_q_pytorch's DPU op filter), not {act}"
            )
        half_pixel = False
        if self.g.opset >= 11:
            ctm = node.attrs.get("coordinate_transformation_mode", "half_pixel")
            if ctm not in LINEAR_MAPPINGS:
                raise NotEmulated(
                    f"{what}: a bilinear resize with coordinate_transformation_mode {ctm!r} is not the DPU's "
                    f"(it has {', '.join(sorted(LINEAR_MAPPINGS))})"
                )
            half_pixel = LINEAR_MAPPINGS[ctm]
        src, fp = self.act_input(node.inputs[0], where)
        by = self.resize_scales(node, what)
        if "sizes" in by:  # the scale is known with the input's shape: `emulator.resize_scale`
            return Step("resize_linear", out, fp_out, [src], [fp], label, attrs={**by, "half_pixel": half_pixel})
        sh, sw = by["scale"]
        allowed = dpu_ops.LINEAR_RESIZE_SCALES[half_pixel]
        if sh != sw or sh not in allowed:
            centres = "with" if half_pixel else "without"
            raise NotEmulated(
                f"{what}: scales {sh}x{sw}: the DPU's bilinear resize {centres} half-pixel centres is by "
                f"{' or '.join(map(str, allowed))}, the same on H and W"
            )
        attrs = {"scale": sh, "half_pixel": half_pixel}
        return Step("resize_linear", out, fp_out, [src], [fp], label, attrs=attrs)

    def resize_scales(self, node: Node, where: str) -> dict:
        """{"scale": (sh, sw)} of a Resize by constant whole-number scales [1, 1, sh, sw], or {"sizes": (N, C,
        H, W)} of one by constant `sizes` (Resize-11 on), which is that resize where H and W are whole
        multiples of the input's (the operator rules put any other on the CPU): the scales are known with the
        input's shape, when it runs (`emulator.resize_scale`). Resize-18's `axes` name the axes the scales or
        sizes are given for, in that order; the others keep their size (scale 1)."""
        axes = None
        if self.g.opset >= 11:
            if "axes" in node.attrs:
                axes = self.resize_axes(node, where)
            if len(node.inputs) > 3 and node.inputs[3]:
                return self.resize_sizes(node, where, axes)
            name = node.inputs[2] if len(node.inputs) > 2 else ""
        else:  # Resize-10: scales the second input
            name = node.inputs[1] if len(node.inputs) > 1 else ""
        if name not in self.inits:
            raise NotEmulated(f"{where}: the emulator takes a resize by constant scales")
        scales = [float(s) for s in np.asarray(self.inits[name]).reshape(-1)]
        if axes is not None:
            if len(scales) != len(axes):
                raise NotEmulated(f"{where}: {len(scales)} scales for axes {list(axes)}")
            full = [1.0] * 4
            for a, s in zip(axes, scales):
                full[a] = s
            scales = full
        if len(scales) != 4 or scales[:2] != [1.0, 1.0] or not all(s >= 1 and s == int(s) for s in scales[2:]):
            raise NotEmulated(
                f"{where}: scales {scales}: the emulator runs a resize that repeats each pixel a whole number of "
                "times along H and W (scales [1, 1, sh, sw])"
            )
        return {"scale": (int(scales[2]), int(scales[3]))}

    def resize_axes(self, node: Node, where: str) -> list[int]:
        """Resize-18's `axes` of a 4-D input, each once, as 0 to 3."""
        axes = [int(a) for a in node.attrs["axes"]]
        full = [a + 4 if a < 0 else a for a in axes]
        if any(not 0 <= a < 4 for a in full) or len(set(full)) != len(full):
            raise NotEmulated(f"{where}: axes {axes}: the emulator resizes a 4-D tensor, each axis once")
        return full

    def resize_sizes(self, node: Node, where: str, axes: list[int] | None = None) -> dict:
        """{"sizes": (N, C, H, W)} of a Resize by constant `sizes` with no scales (an empty one, as Resize-11
        requires, or none) and the default keep_aspect_ratio_policy "stretch"; with `axes`, the sizes of those
        axes, None for the others (which keep the input's)."""
        scales = node.inputs[2] if len(node.inputs) > 2 else ""
        if scales and (scales not in self.inits or np.asarray(self.inits[scales]).size):
            raise NotEmulated(f"{where}: a resize given both scales and sizes is not emulated")
        if node.attrs.get("keep_aspect_ratio_policy", "stretch") != "stretch":
            raise NotEmulated(f"{where}: keep_aspect_ratio_policy other than 'stretch' is not emulated")
        if node.inputs[3] not in self.inits:
            raise NotEmulated(f"{where}: the emulator takes a resize by constant scales or sizes")
        sizes = [int(s) for s in np.asarray(self.inits[node.inputs[3]]).reshape(-1)]
        if axes is not None:
            if len(sizes) != len(axes) or min(sizes, default=1) < 1:
                raise NotEmulated(f"{where}: sizes {sizes} for axes {list(axes)}")
            full: list[int | None] = [None] * 4
            for a, s in zip(axes, sizes):
                full[a] = s
            return {"sizes": tuple(full)}
        if len(sizes) != 4 or min(sizes) < 1:
            raise NotEmulated(f"{where}: sizes {sizes}: the emulator takes the four sizes [N, C, H, W]")
        return {"sizes": tuple(sizes)}

    def pad_hw(self, node: Node, where: str) -> dict:
        """{"pads": (top, left, bottom, right), "mode": XIR's CONSTANT or SYMMETRIC} of a Pad where the DPU runs it
        (`dpu_ops.pad_hw`: mode 'constant' with value 0, or 'edge' with every pad 0 or 1, H and W only): Pad-2's
        attributes, or from Pad-11 on its constant inputs (`dpu_ops.pad_args`)."""
        read = dpu_ops.pad_args(self.g.opset, node.attrs.get, node.inputs, self.inits.get)
        if isinstance(read, str):
            raise NotEmulated(f"{where}: {read}")
        mode, pads, value, axes = read
        hw = dpu_ops.pad_hw(mode, pads, value, axes)
        if isinstance(hw, str):
            raise NotEmulated(f"{where}: {hw}")
        return {"pads": hw, "mode": dpu_ops.pad_xir_mode(mode)}

    def nearest_scale(self, node: Node, where: str) -> dict:
        """{"scale": (sh, sw)} (or {"sizes": ...}, `resize_scales`) of a nearest-neighbour Resize the DPU's
        upsample computes: constant integer scales, and a coordinate mapping that takes output pixel x from
        input pixel floor(x / s), as VART's cpu-runner resize does for NEAREST without align_corners (for
        integer scales, with or without half_pixel_centers). Anything else is not emulated."""
        mode = node.attrs.get("mode", "nearest")
        if mode != "nearest":
            raise NotEmulated(f"{where}: the emulator runs nearest-neighbour and bilinear resizes, not mode {mode!r}")
        if self.g.opset >= 11:
            ctm = node.attrs.get("coordinate_transformation_mode", "half_pixel")
            nearest = node.attrs.get("nearest_mode", "round_prefer_floor")
            if (ctm, nearest) not in FLOOR_MAPPINGS:
                raise NotEmulated(
                    f"{where}: coordinate_transformation_mode {ctm!r} with nearest_mode {nearest!r} does not take "
                    "output pixel x from input pixel floor(x / scale), as the DPU's upsample does"
                )
        # Resize-10: x_in = x / s, nearest as floor for an upsampling
        return self.resize_scales(node, where)

    def activation(self, node: Node, where: str) -> str:
        if node.op_type == "Relu":
            return "relu"
        if node.op_type == "LeakyRelu":
            alpha = float(node.attrs.get("alpha", 0.01))
            if np.float32(alpha) != np.float32(LEAKY_ALPHA):
                raise ModelFileError(f"{where}: LeakyRelu alpha {alpha}; the DPU's slope is 26/256")
            return "leaky"
        # Clip: opset >= 11 takes min/max as inputs, older opsets as attributes.
        lo = node.attrs.get("min")
        hi = node.attrs.get("max")
        if len(node.inputs) > 1 and node.inputs[1]:
            lo = float(self.inits[node.inputs[1]])
        if len(node.inputs) > 2 and node.inputs[2]:
            hi = float(self.inits[node.inputs[2]])
        if lo == 0.0 and hi == 6.0:
            return "relu6"
        if lo == 0.0 and (hi is None or math.isinf(hi)):
            return "relu"
        raise ModelFileError(f"{where}: Clip({lo}, {hi}) is neither ReLU nor ReLU6")

    def conv(self, node: Node, out: str, fp_out: int, label: str, act: str) -> Step:
        """A Conv, or a ConvTranspose (`dpu_ops.DeconvKernel`: the conv engine's transposed conv, groups 1, or
        the ALU engine's transposed depthwise conv, groups = C_in = C_out; no output_padding, output_shape or
        dilation, as the operator rules and vai_q_pytorch's DPU op filter take it), with its fused
        activation (none after a depthwise ConvTranspose: the operator rules put one with an activation on the
        CPU)."""
        where = f"{node.op_type} {node.name or node.outputs[0]!r}"
        src, fp_in = self.act_input(node.inputs[0], where)
        if node.inputs[1] not in self.const_dq:
            raise ModelFileError(f"{where}: weights must be an int8 initializer behind a DequantizeLinear")
        w, fp_w = self.const_dq[node.inputs[1]]
        b = fp_b = None
        if len(node.inputs) > 2 and node.inputs[2]:
            if node.inputs[2] not in self.const_dq:
                raise ModelFileError(f"{where}: bias must be an int8 initializer behind a DequantizeLinear")
            b, fp_b = self.const_dq[node.inputs[2]]
        if node.attrs.get("auto_pad", "NOTSET") not in ("NOTSET", ""):
            raise ModelFileError(f"{where}: auto_pad is not supported; use explicit pads")
        if w.ndim != 4:
            raise ModelFileError(f"{where}: only 2-D convolutions run on the DPU")
        pads = tuple(int(p) for p in node.attrs.get("pads", [0, 0, 0, 0]))
        attrs = {
            "stride": tuple(int(s) for s in node.attrs.get("strides", [1, 1])),
            "pads": pads,
            "dilation": tuple(int(d) for d in node.attrs.get("dilations", [1, 1])),
            "groups": int(node.attrs.get("group", 1)),
        }
        if node.op_type == "ConvTranspose":
            g = attrs["groups"]
            if g != 1 and (g != w.shape[0] or w.shape[1] != 1):
                raise NotEmulated(
                    f"{where}: a grouped transposed conv (group {g}) that is not depthwise is not emulated; the "
                    "emulator runs a dense one (groups 1, the conv engine's) or a depthwise one (groups = input "
                    "channels = output channels, the ALU engine's)"
                )
            if g != 1 and act != "none":
                raise NotEmulated(
                    f"{where}: a depthwise transposed conv fuses no activation (vai_q_pytorch's DPU op filter lists "
                    f"none for the ALU engine's transposed depthwise conv), not {act}"
                )
            if any(int(p) for p in node.attrs.get("output_padding", [])) or "output_shape" in node.attrs:
                raise NotEmulated(
                    f"{where}: output_padding or output_shape is not emulated (the DPU takes neither: "
                    "vai_q_pytorch's DPU op filter); give explicit pads"
                )
            if attrs["dilation"] != (1, 1):
                raise NotEmulated(
                    f"{where}: a dilated transposed conv is not emulated (Xilinx's CPU reference pads it by kernel "
                    "- 1 - pad, the ONNX spec by dilation x (kernel - 1) - pad)"
                )
            attrs["transposed"] = True
        return Step("conv", out, fp_out, [src], [fp_in], label, act, w, b, fp_w, fp_b, attrs)


def load_program(path_or_model: str | Path | bytes | object) -> Program:
    """Parse a DPU-subgraph QDQ ONNX (path, bytes or onnx.ModelProto) into a Program."""
    return _Parser(load_model(path_or_model)).parse()
