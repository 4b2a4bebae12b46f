"""ONNX graph -> the list of layers the DPU would run, for the performance model (host only, onnx).

Accepts FP32 graphs and QDQ graphs (QuantizeLinear/DequantizeLinear are skipped: the graph is read as its
float ops). Shapes come from ONNX shape inference; a symbolic batch dimension is taken as 1.

Each node is classified:
- a DPU layer with a cost, where the operator rules (dpupose.dpu.ops.dpu_support, as the split asks them) put it on the
  DPU, otherwise not a DPU op with their reason: Conv (groups = 1 or depthwise) and ConvTranspose (their kernel, stride,
  pad, channel and weight-bank limits; a conv of more than 256 x ICP channels is also listed in DpuGraph.too_wide; a
  depthwise ConvTranspose is an ALU layer of kind "dwdeconv", as a bilinear Resize's, and fuses no activation either),
  Gemm/MatMul with a constant weight (fully connected, one per row: a MatMul's rows are its every dimension before
  the last; not with transA),
  MaxPool/AveragePool/GlobalAveragePool/GlobalMaxPool (kernel, stride, the ALU engine's pads, a global pool's H and W),
  Add/Mul (element-wise, the eltwise engine: two activations of one shape, no broadcast, no constant operand; a Mul by a
  constant, where the rules take it (one value or one per channel): a 1x1 depthwise conv on the ALU, vai_q_pytorch's
  filter_eltwise, of kind "dwconv", or over the ALU's 256 x ICP channels the eltwise mult it falls back to),
  DepthToSpace (pixel shuffle, data movement, where the configuration's depth_to_space_on_dpu puts it on the DPU), Pad
  (data movement, the load engine's pad-fix, where the rules take it: mode 'constant', value 0, H and W only);
- Resize/Upsample where the operator rules put it on the DPU (dpupose.dpu.ops, at the model's opset;
  otherwise not a DPU op): nearest, data movement; bilinear at scale s, the transposed depthwise conv with
  fixed weights that the compiler makes of it (vai_q_pytorch's DPU op filter: kernel 2s, stride s), an
  ALU layer of kind "dwdeconv";
- HardSigmoid (relu6(x + 3) / 6; other alpha/beta: not a DPU op) and HardSwish are never fused (VART's
  DPUCZDX8G target factory fuses relu, leaky_relu and relu_six only): a HardSigmoid is one ALU hsigmoid
  layer, a HardSwish two layers of the node's name, the ALU hsigmoid and the eltwise mult x * hsigmoid(x);
  on IP v3.x (extract_layers' ip; its targets have no hsigmoid and an eltwise engine that adds only) neither,
  nor an element-wise Mul, is a DPU op;
- fused, no cost: Relu, Clip (ReLU6), LeakyRelu where the operator rules fuse them after the op before
  them (its engine's activations at the walk's IP: dpupose.dpu.ops.activation_support, as the split asks; an op whose
  activation they do not fuse is not a DPU op, nor is an activation with nothing to fuse into);
  BatchNormalization folded into the conv or fully connected layer whose float output it reads (through
  Identity / Dropout), Identity, Dropout, Q/DQ, Concat;
- BatchNormalization otherwise (it reads a quantized tensor, or another op's output): the operator rules'
  1x1 depthwise conv on the ALU engine, of kind "dwconv", C weights and C biases, as a Mul by a constant (over
  their 256 x ICP channels, not a DPU op);
- layout, no cost: Flatten/Reshape/Squeeze/Unsqueeze when the producer is on the DPU (the operator rules'
  reshape-fix, whatever reads it), unless an activation follows it (reshape-fix fuses none: both CPU ops);
- "not a DPU op" (a standard ONNX op the DPU does not run: Softmax, ReduceSum, Sigmoid, ...): excluded,
  and so is everything downstream of it, so an estimate covers the DPU part of a whole model;
- unknown (an op ONNX itself does not define, e.g. a custom domain): an error by default, or a
  conservative estimate when asked for, listed in the estimate's warnings.

API: load_model(path_or_proto) -> onnx.ModelProto; extract_layers(model, cfg, unknown="error", ip="4.0") -> DpuGraph
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpupose.dpu.config import DpuConfig
from dpupose.dpu.ops import (
    DEFAULT_IP,
    FUSED_ACTIVATION_OPS,
    HARD_ACTIVATION_OPS,
    GraphInfo,
    activation_support,
    attr,
    check_ip,
    dpu_support,
    engine_of,
    hard_activation_support,
    image_batch,
    max_alu_channels,
    max_conv_channels,
    model_opset,
    resize_support,
)
from dpupose.errors import ModelFileError, size_not_fixed
from dpupose.formats import NOT_PARSED
from dpupose.fsio import not_a_file

COSTED_OPS = {
    "Conv", "ConvTranspose", "Gemm", "MatMul", "MaxPool", "AveragePool", "GlobalAveragePool",
    "GlobalMaxPool", "Add", "Mul", "HardSigmoid", "HardSwish", "DepthToSpace", "Resize", "Upsample", "Pad",
}  # fmt: skip
FUSED_OPS = {
    "Relu", "Clip", "LeakyRelu", "BatchNormalization", "Identity", "Dropout",
    "QuantizeLinear", "DequantizeLinear", "Concat",
}  # fmt: skip
LAYOUT_OPS = {"Flatten", "Reshape", "Squeeze", "Unsqueeze"}
PASS_THROUGH = {"Identity", "Dropout"}
FOLDED_OPS = {"BatchNormalization", "Identity", "Dropout"}  # passed over between an op and its activation
QDQ_OPS = {"QuantizeLinear", "DequantizeLinear"}
FC_OPS = {"Gemm", "MatMul"}
CONV_OPS = {"Conv", "ConvTranspose"}
POOL_OPS = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"}


def rules_key(cfg: DpuConfig) -> tuple[Any, ...]:
    """What the operator rules (dpupose.dpu.ops) read of a configuration: the channel and weight-bank limits
    (ICP), the engines' activations, pixel shuffle, softmax. Configurations alike in these walk a model alike
    (`extract_layers`), so a walk may be reused for them, and only for them. The rules' reasons name no
    configuration (a shared walk's reasons would carry the first one's name into another's)."""
    return (cfg.icp, cfg.conv_activations, cfg.alu_activations, cfg.depth_to_space_on_dpu, cfg.softmax)


@dataclass(frozen=True)
class Layer:
    """One DPU layer. Shapes are NCHW (a 2-D tensor (N, C) is read as (N, C, 1, 1))."""

    name: str
    op: str  # ONNX op type
    kind: str  # conv, dwconv, gconv, deconv, dwdeconv, fc, pool, gap, hsigmoid, eltwise, move, unknown
    inputs: tuple[tuple[int, int, int, int], ...]  # non-constant inputs
    output: tuple[int, int, int, int]
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    groups: int = 1
    weight_bytes: int = 0  # INT8 weights + bias read from DDR

    @property
    def macs(self) -> int:
        n, c, h, w = self.output
        kh, kw = self.kernel
        if self.kind == "deconv":  # ceil(K / stride) taps per output pixel and axis, as its cycles
            sh, sw = self.stride
            return n * h * w * c * math.ceil(kh / sh) * math.ceil(kw / sw) * self.inputs[0][1]
        if self.kind in ("conv", "gconv", "fc"):
            cin = self.inputs[0][1]
            return n * h * w * c * kh * kw * cin // self.groups
        if self.kind == "dwconv":
            return n * h * w * c * kh * kw
        if self.kind == "dwdeconv":  # ceil(K / stride) taps per output pixel and axis
            sh, sw = self.stride
            return n * h * w * c * math.ceil(kh / sh) * math.ceil(kw / sw)
        return 0


@dataclass
class DpuGraph:
    layers: list[Layer] = field(default_factory=list)
    excluded: list[tuple[str, str, str]] = field(default_factory=list)  # (node, op, reason)
    unknown: list[tuple[str, str]] = field(default_factory=list)  # (node, op) estimated conservatively
    too_wide: list[str] = field(default_factory=list)  # convs the rules refuse for more than 256 x ICP channels
    batch: int = 1  # images per run: the image input's first dimension (a symbolic one is 1), the layers' batch

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)


def load_model(model: Any) -> Any:
    """An onnx.ModelProto from a path or a ModelProto; ModelFileError if it is not ONNX."""
    import onnx

    if isinstance(model, onnx.ModelProto):
        return model
    path = Path(model)
    if path.is_dir():
        from dpupose.formats import onnx_in_folder

        instead = onnx_in_folder(path, whole=False)
        if instead is not None:
            raise ModelFileError(f"{path} is {instead}")
    if not path.is_file():
        raise ModelFileError(f"{path}: {not_a_file(path)}; give an ONNX file")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # protobuf raises several unrelated types for garbage input
        _refuse_not_onnx(path)
        raise ModelFileError(f"{path}: not an ONNX model ({NOT_PARSED}); give an ONNX file") from None
    if not proto.graph.node:
        _refuse_not_onnx(path)
        raise ModelFileError(f"{path}: not an ONNX model (no graph nodes); give an .onnx file")
    return proto


def _refuse_not_onnx(path: Path) -> None:
    """ModelFileError saying where the ONNX file is, for a PyTorch checkpoint or a split plan given instead."""
    from dpupose.formats import not_onnx

    kind = not_onnx(path)
    if kind == "checkpoint":
        raise ModelFileError(
            f"{path} is a PyTorch checkpoint, not ONNX: export the network to ONNX (torch.onnx.export); for "
            f"dpupose's own, `dpupose quantize --checkpoint {path} --out DIR` writes DIR/model_fp32.onnx and "
            "DIR/model_qdq.onnx"
        )
    if kind == "plan":
        raise ModelFileError(
            f"{path} is a split plan, not a model: give one of its subgraph files (the plan's dpuN.onnx) or the "
            "whole model it was split from"
        )


def _shape4(dims: list[int] | tuple[int, ...]) -> tuple[int, int, int, int]:
    d = [max(1, int(x)) for x in dims]
    if len(d) == 4:
        return (d[0], d[1], d[2], d[3])
    if len(d) == 2:
        return (d[0], d[1], 1, 1)
    if len(d) == 3:
        return (d[0], d[1], d[2], 1)
    if len(d) == 1:
        return (1, d[0], 1, 1)
    return (1, math.prod(d) if d else 1, 1, 1)


def _attr(node: Any, name: str, default: Any) -> Any:
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def declared_sizes(vi: Any) -> tuple[int | str, ...]:
    """A graph input's sizes as declared: each fixed size, else its symbol ('?' where it has none)."""
    dims = vi.type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims)


def check_fixed_input(vi: Any, source: str = "") -> None:
    """Refuse a graph input (an ONNX ValueInfoProto) of a symbolic (or zero) size past the batch, as
    torch.onnx.export's dynamic_axes for a height, width or channel count writes it, naming the input, its sizes
    and those axes; `source` ('FILE: ', or '') leads the message. One refusal for `dpu estimate`/`compare` and
    `dpupose split`, worded as the emulator's (errors.size_not_fixed)."""
    dims = vi.type.tensor_type.shape.dim
    shown = declared_sizes(vi)
    symbols = [str(s) for d, s in zip(dims[1:], shown[1:]) if not d.HasField("dim_value") or d.dim_value <= 0]
    if symbols:
        raise ModelFileError(size_not_fixed(source, vi.name, shown, symbols))


class _Walker:
    def __init__(self, model: Any, cfg: DpuConfig, unknown: str, ip: str = DEFAULT_IP, source: str = "") -> None:
        import onnx

        self.onnx = onnx
        self.cfg = cfg
        self.ip = check_ip(ip)  # the DPUCZDX8G IP version the rules are asked at (IP v3.x: no hsigmoid, no mult)
        self.unknown_policy = unknown
        try:
            model = onnx.shape_inference.infer_shapes(model)
        except Exception as exc:
            raise ModelFileError(f"ONNX shape inference failed: {exc}") from None
        g = model.graph
        self.graph = g
        self.opset = model_opset(model)
        self.shapes: dict[str, list[int]] = {}
        initializers = {init.name for init in g.initializer}
        for vi in g.input:
            dims = vi.type.tensor_type.shape.dim
            if vi.name in initializers or len(dims) < 2:
                continue
            # The batch may be symbolic (it is taken as 1); the other sizes decide every layer's cost.
            check_fixed_input(vi, source)
        for vi in [*g.input, *g.value_info, *g.output]:
            t = vi.type.tensor_type
            if t.HasField("shape"):
                self.shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else 1 for d in t.shape.dim]
        self.const: set[str] = set()
        self.const_protos: dict[str, Any] = {}  # initializers and Constant nodes' values (TensorProto)
        for init in g.initializer:
            self.shapes[init.name] = list(init.dims)
            self.const.add(init.name)
            self.const_protos[init.name] = init
        for node in g.node:  # known before the walk reaches them: an op's activation may read one after it
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            if node.op_type == "Constant" and value is not None:
                self.const.add(node.output[0])
                self.const_protos[node.output[0]] = value
        self.consumers: dict[str, list[Any]] = {}
        self.producer: dict[str, Any] = {o: node for node in g.node for o in node.output if o}
        for node in g.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        graph_inputs = {i.name for i in g.input} - self.const
        self.on_dpu: dict[str, bool] = dict.fromkeys(graph_inputs, True)
        self.graph_outputs = {o.name for o in g.output}
        # the model's batch (a symbolic one is 1), which a fully connected layer's rows are judged per image of
        self.batch = image_batch(self.shapes, [i.name for i in g.input if i.name not in self.const])
        self.chained: set[int] = set()  # id() of the activations (and folded ops) fused into a DPU op
        self.result = DpuGraph(batch=self.batch)

    def shape(self, name: str) -> list[int]:
        if name not in self.shapes:
            raise ModelFileError(f"ONNX shape inference gave no shape for tensor {name!r}")
        return self.shapes[name]

    def walk(self) -> DpuGraph:
        for node in self.graph.node:
            self.visit(node)
        if self.result.unknown and self.unknown_policy == "error":
            ops = sorted({f"{op} (node {name})" for name, op in self.result.unknown})
            raise ModelFileError(
                f"the performance model does not know op(s): {', '.join(ops)}; "
                "re-run with --allow-unknown to estimate them conservatively"
            )
        return self.result

    def visit(self, node: Any) -> None:
        op = node.op_type
        dyn = [i for i in node.input if i and i not in self.const]
        if op == "Constant" or not dyn:
            self.const.update(node.output)
            return
        name = node.name or f"{op}_{len(self.result.layers)}"
        capable = op in FUSED_OPS or op in LAYOUT_OPS or op in COSTED_OPS
        if not capable and self.known(node):
            self.exclude(node, name, "not a DPU op")
            return
        if not all(self.on_dpu.get(i, False) for i in dyn):
            self.exclude(node, name, "after a CPU op" if capable else "unknown op, after a CPU op")
            return
        if op in FUSED_ACTIVATION_OPS:
            if id(node) in self.chained:  # fused into the op before it, which the rules let it be
                self.mark(node, True)
            else:  # nothing to fuse into: the operator rules' standalone activation
                self.exclude(node, name, f"not a DPU op ({dpu_support(node, self.info(node), self.cfg)[1]})")
        elif op == "BatchNormalization" and id(node) not in self.chained and not self.after_conv(dyn[0]):
            self.batch_norm(node, name, dyn)
        elif op in FUSED_OPS or op in LAYOUT_OPS:  # a layout op: on the DPU whenever its producer is (the rules)
            self.accept(node, name, [])
        elif op in HARD_ACTIVATION_OPS:
            self.hard_activation(node, name, dyn)
        elif op in ("Resize", "Upsample"):
            self.resize(node, name, dyn)
        elif op == "DepthToSpace" and not self.cfg.depth_to_space_on_dpu:
            self.exclude(node, name, "not a DPU op in this configuration (depth_to_space_on_dpu = false)")
        elif (
            op in COSTED_OPS
            and self.nonempty_output(node, name) is not None
            and (refused := self.refused(node)) is not None
        ):
            # the operator rules' test, as the split asks it: a conv's limits (kernel, stride, pads, channels,
            # the weight banks), a pool's (kernel, stride, the ALU engine's pads, a global pool's H and W), a Mul
            # by a constant's broadcast (one value, or one per channel as ONNX broadcasts it), an element-wise
            # Add or Mul's operands (two activations of one shape), a fully connected layer's (a constant
            # weight, no transA), a DepthToSpace's, a Pad's (constant 0 on H and W)
            if op in CONV_OPS and self.too_wide(node, dyn):
                self.result.too_wide.append(name)
            self.exclude(node, name, f"not a DPU op ({refused})")
        elif op in COSTED_OPS:
            layer = self.layer(node, name, dyn)
            if layer is None:
                self.exclude(node, name, "not a DPU op (no constant weight)")
            else:
                self.accept(node, name, [layer])
        else:
            self.result.unknown.append((name, op))
            ins = tuple(_shape4(self.shape(i)) for i in dyn)
            # Shape inference knows nothing of a custom op: assume it keeps its first input's shape.
            known = node.output[0] in self.shapes
            out = _shape4(self.shape(node.output[0])) if known else ins[0]
            self.result.layers.append(Layer(name, op, "unknown", ins, out, kernel=(3, 3)))
            self.mark(node, True)

    def after_conv(self, tensor: str) -> bool:
        """Whether `tensor` is a conv's or fully connected layer's float output (through Identity / Dropout, no
        Q/DQ pair between): a batch norm reading it is folded into that layer's weights and bias."""
        node = self.producer.get(tensor)
        while node is not None and node.op_type in PASS_THROUGH:
            node = self.producer.get(node.input[0])
        return node is not None and (node.op_type in CONV_OPS or node.op_type in FC_OPS)

    def batch_norm(self, node: Any, name: str, dyn: list[str]) -> None:
        """A batch norm not folded into a conv (it reads a quantized tensor, or another op's output): the
        operator rules' 1x1 depthwise conv on the ALU engine, C weights and C biases, as a Mul by a constant."""
        refused = self.refused(node)
        if refused is not None:
            self.exclude(node, name, f"not a DPU op ({refused})")
            return
        out = _shape4(self.nonempty_output(node, name))
        x = _shape4(self.shape(dyn[0]))
        self.accept(node, name, [Layer(name, node.op_type, "dwconv", (x,), out, (1, 1), (1, 1), out[1], 2 * out[1])])

    def hard_activation(self, node: Any, name: str, dyn: list[str]) -> None:
        """A hard sigmoid: one ALU hsigmoid layer. A hard swish: that, then the eltwise mult of its input by
        the hsigmoid's result (both layers named after the node, so a split costs them to its unit)."""
        op = node.op_type
        on_dpu, why = hard_activation_support(node, self.ip)  # the operator rules' decision: the two cannot part
        if not on_dpu:
            self.exclude(node, name, f"not a DPU op ({why})")
            return
        x = _shape4(self.shape(dyn[0]))
        out = _shape4(self.shape(node.output[0]))
        layers = [Layer(name, op, "hsigmoid", (x,), out)]
        if op == "HardSwish":
            layers.append(Layer(name, op, "eltwise", (x, out), out))
        self.accept(node, name, layers)

    def resize(self, node: Any, name: str, dyn: list[str]) -> None:
        """A Resize / Upsample where the operator rules put it on the DPU (else not a DPU op): nearest, data
        movement; bilinear at scale s, a transposed depthwise conv, kernel 2s, stride s, with C * (2s)**2
        fixed int8 weights (vai_q_pytorch's DPU op filter)."""
        x, y = self.shape(dyn[0]), self.shape(node.output[0])
        info = self.info(node)
        on_dpu, why = resize_support(node, info, self.cfg)  # the operator rules' decision, so the two cannot part
        if not on_dpu:
            self.exclude(node, name, f"not a DPU op ({why})")
            return
        if attr(node, "mode", "nearest") != "linear":
            self.accept(node, name, [Layer(name, node.op_type, "move", (_shape4(x),), _shape4(y))])
            return
        ins, out = (_shape4(x),), _shape4(y)
        s = out[2] // ins[0][2]
        kernel, c = (2 * s, 2 * s), out[1]
        layer = Layer(name, node.op_type, "dwdeconv", ins, out, kernel, (s, s), c, c * kernel[0] * kernel[1])
        self.accept(node, name, [layer])

    def accept(self, node: Any, name: str, layers: list[Layer]) -> None:
        """Put `node` on the DPU with its `layers`, unless an activation the split would fuse into it (the
        single consumers after it, over folded batch norms and no-ops) is one the operator rules do not
        fuse after its engine: then it is not a DPU op either, as the split puts the two on the CPU."""
        if node.op_type not in QDQ_OPS and id(node) not in self.chained:
            chain = self.fused_chain(node)
            if chain:
                info = self.info(node, *chain)
                engine = engine_of(node, info, self.cfg)
                for act in chain:
                    if act.op_type not in FUSED_ACTIVATION_OPS:
                        continue
                    ok, why = activation_support(act, engine, self.cfg, info, self.ip)
                    if not ok:
                        self.exclude(node, name, f"not a DPU op (its fused activation cannot run on the DPU: {why})")
                        return
                self.chained.update(id(c) for c in chain)
        self.result.layers.extend(layers)
        self.mark(node, True)

    def fused_chain(self, node: Any) -> list[Any]:
        """The activations the split fuses into `node` (each the one consumer of the tensor before it, which is
        no model output), with the folded batch norms and no-ops between them."""
        chain: list[Any] = []
        out = node.output[0]
        while True:
            cons = self.consumers.get(out, [])
            if len(cons) != 1 or out in self.graph_outputs:
                break
            nxt = cons[0]
            if nxt.op_type not in FUSED_ACTIVATION_OPS and nxt.op_type not in FOLDED_OPS:
                break
            chain.append(nxt)
            out = nxt.output[0]
        while chain and chain[-1].op_type not in FUSED_ACTIVATION_OPS:
            chain.pop()  # a folded op after the last activation is an op of its own
        return chain

    def info(self, *nodes: Any) -> GraphInfo:
        """What the operator rules read about `nodes`: their tensors' shapes, which inputs are constants (with
        the values of initializers and Constant nodes; None for one computed from constants) and the opset."""
        names = {t for n in nodes for t in [*n.input, *n.output] if t}
        shapes = {t: tuple(self.shapes[t]) for t in names if t in self.shapes}
        constants = {t: self.value(t) for t in names if t in self.const}
        return GraphInfo(shapes, constants, opset=self.opset, batch=self.batch)

    def value(self, name: str) -> Any:
        from onnx import numpy_helper

        proto = self.const_protos.get(name)
        return None if proto is None else numpy_helper.to_array(proto)

    def refused(self, node: Any) -> str | None:
        """The operator rules' reason for putting `node` on the CPU, or None when they put it on the DPU."""
        ok, why = dpu_support(node, self.info(node), self.cfg, self.ip)
        return None if ok else why

    def too_wide(self, node: Any, dyn: list[str]) -> bool:
        """Whether conv `node` has more than 256 x ICP input or output channels (max_conv_channels, which the
        operator rules hold dense, transposed and depthwise convs to)."""
        channels = [self.shapes[t][1] for t in (dyn[0], node.output[0]) if len(self.shapes.get(t, [])) == 4]
        return any(c > max_conv_channels(self.cfg) for c in channels)

    def known(self, node: Any) -> bool:
        domain = node.domain or ""
        if domain not in ("", "ai.onnx"):
            return False
        return bool(self.onnx.defs.has(node.op_type))

    def mark(self, node: Any, dpu: bool) -> None:
        for o in node.output:
            self.on_dpu[o] = dpu

    def exclude(self, node: Any, name: str, reason: str) -> None:
        self.result.excluded.append((name, node.op_type, reason))
        self.mark(node, False)

    def nonempty_output(self, node: Any, name: str) -> list[int]:
        """`node`'s output shape; ModelFileError if it is empty (no runtime runs the model, DPU or CPU)."""
        raw = self.shape(node.output[0])
        if any(d <= 0 for d in raw):
            raise ModelFileError(
                f"node {name} ({node.op_type}) has an empty output ({'x'.join(map(str, raw))}): a kernel larger "
                "than its padded input? No runtime can run this model; check the export"
            )
        return raw

    def layer(self, node: Any, name: str, dyn: list[str]) -> Layer | None:
        op = node.op_type
        out = _shape4(self.nonempty_output(node, name))
        ins = tuple(_shape4(self.shape(i)) for i in dyn)
        if op in ("Conv", "ConvTranspose"):
            w = self.shape(node.input[1])
            if node.input[1] in dyn:
                return None
            groups = int(_attr(node, "group", 1))
            kernel = (int(w[2]), int(w[3])) if len(w) == 4 else (int(w[2]), 1)
            strides = [*_attr(node, "strides", [1, 1]), 1]
            cin = ins[0][1]
            kind = "deconv" if op == "ConvTranspose" else "conv"
            if op == "Conv" and groups > 1:
                kind = "dwconv" if groups == cin and out[1] % cin == 0 else "gconv"
            elif op == "ConvTranspose" and groups > 1:  # depthwise (the rules take no other grouped one): ALU
                kind = "dwdeconv"
            wbytes = math.prod(w) + out[1]  # INT8 weights + bias
            return Layer(name, op, kind, ins, out, kernel, (strides[0], strides[1]), groups, wbytes)
        if op in FC_OPS:
            if len(node.input) < 2 or node.input[1] in dyn:
                return None
            w = self.shape(node.input[1])
            # A fully connected layer per row: Gemm's rows are its input's N, MatMul's every dimension before its
            # last (a (1, 4, 37) input by a (37, 25) weight is 4 rows of 37 -> 25, not one layer of 148 -> 100; a
            # 1-D weight gives one output per row)
            x, y = [max(1, d) for d in self.shape(dyn[0])], [max(1, d) for d in self.shape(node.output[0])]
            cout = y[-1] if len(w) > 1 and y else 1
            rows = math.prod(y) // cout
            return Layer(name, op, "fc", ((rows, x[-1], 1, 1),), (rows, cout, 1, 1), weight_bytes=math.prod(w))
        if op in ("MaxPool", "AveragePool"):
            k = [*_attr(node, "kernel_shape", [1, 1]), 1]
            s = [*_attr(node, "strides", [1, 1]), 1]
            return Layer(name, op, "pool", ins, out, (k[0], k[1]), (s[0], s[1]))
        if op in ("GlobalAveragePool", "GlobalMaxPool"):
            return Layer(name, op, "gap", ins, out, (ins[0][2], ins[0][3]), (ins[0][2], ins[0][3]))
        if op == "Mul" and len(dyn) == 1 and out[1] <= max_alu_channels(self.cfg):
            # by a constant (one the operator rules take): vai_q_pytorch's DPU op filter (filter_eltwise) makes
            # it a 1x1 depthwise conv on the ALU engine, C weights and C biases; over the ALU's 256 x ICP
            # channels that check fails and it falls back to the eltwise engine's mult (below)
            return Layer(name, op, "dwconv", ins, out, (1, 1), (1, 1), out[1], 2 * out[1])
        if op in ("Add", "Mul"):
            return Layer(name, op, "eltwise", ins, out)
        # DepthToSpace, Pad: data movement through the load/save engines (a Pad: pad-fix, what the rules take).
        return Layer(name, op, "move", ins, out)


QOPERATOR_OPS = ("ConvInteger", "MatMulInteger", "DynamicQuantizeLinear")


def qoperator_node(model: Any) -> str | None:
    """'QLinearConv 'name'' for the first node of ONNX Runtime's QOperator format (int8 operators that quantize
    their own output, QLinear*, and the integer-only ConvInteger / MatMulInteger), None when there is none."""
    for node in model.graph.node:
        if node.domain in ("", "ai.onnx", "com.microsoft") and (
            node.op_type.startswith("QLinear") or node.op_type in QOPERATOR_OPS
        ):
            return f"{node.op_type} {node.name or node.output[0]!r}"
    return None


def extract_layers(model: Any, cfg: DpuConfig, unknown: str = "error", ip: str = DEFAULT_IP) -> DpuGraph:
    """The DPU layers of `model` (path or ModelProto) under `cfg`'s rules on DPUCZDX8G IP version `ip` (IP v3.x
    has no hsigmoid and no eltwise mult: a hard activation and an element-wise Mul are not DPU ops there).

    unknown: "error" raises ModelFileError naming ops ONNX does not define; "conservative" costs them
    as a heavy ALU pass plus their DDR traffic and lists them in DpuGraph.unknown.
    """
    if unknown not in ("error", "conservative"):
        raise ValueError(f"unknown must be 'error' or 'conservative', got {unknown!r}")
    proto = load_model(model)
    qop = qoperator_node(proto)
    if qop is not None:
        raise ModelFileError(
            f"{qop} is ONNX Runtime's QOperator format, whose int8 operators are not DPU layers: give the FP32 "
            "model, or quantize it in QDQ format (quantize_static(..., quant_format=QuantFormat.QDQ))"
        )
    source = f"{model}: " if isinstance(model, (str, Path)) else ""  # names the file in an input's refusal
    return _Walker(proto, cfg, unknown, ip, source).walk()
