"""A whole-model QDQ ONNX graph read as units and Q/DQ pairs, the granularity the partitioner assigns.

- A **Q/DQ pair** quantizes one activation: float tensor -> QuantizeLinear -> int8 -> DequantizeLinear(s)
  -> float tensor(s) its consumers read. Its scale is 2**-fix_point (power of two, zero point 0).
- A **unit** is one operator with its fused activation chain (Conv -> Relu, Add -> Clip...) and the
  constants it reads (int8 weights behind DequantizeLinear, Constant nodes). A HardSigmoid or HardSwish
  is a unit of its own: the DPU does not fuse it (dpupose.dpu.ops). Units are what goes to the DPU
  or the CPU; Q/DQ pairs follow the op they quantize (see dpupose.split.assign).
- Constant nodes (all inputs constant) belong to no unit: extraction copies them into every subgraph
  that reads them.

Shapes are static with batch 1 (ONNX shape inference with data propagation, then ONNX Runtime for any
tensor inference leaves unknown). Host only (onnx).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dpupose.dpu.graph import qoperator_node
from dpupose.dpu.ops import FUSED_ACTIVATION_OPS, GraphInfo, image_batch, model_opset
from dpupose.errors import ModelFileError, shortlist
from dpupose.formats import NOT_PARSED
from dpupose.fsio import not_a_file

QUANT_OPS = ("QuantizeLinear", "DequantizeLinear")


@dataclass
class QPair:
    """One activation's QuantizeLinear and its DequantizeLinear(s)."""

    tensor: str  # the float tensor the Q quantizes
    q: int  # node index of the QuantizeLinear
    dqs: list[int]  # node indices of its DequantizeLinear(s)
    outputs: list[str]  # the DQ outputs (float)
    fix_point: int
    producer: int | None = None  # unit index that makes `tensor`; None: a graph input (or a requant DQ)


@dataclass
class Unit:
    """One operator and its fused activations."""

    index: int
    name: str  # the main node's name
    op: str
    main: int  # node index of the main op
    nodes: list[int]  # main + fused activations, in graph order
    output: str  # the float tensor after the fused chain
    inputs: list[str]  # non-constant input tensors (from outside the unit)
    fused: list[int] = field(default_factory=list)  # activation node indices
    requant: bool = False  # a DequantizeLinear -> QuantizeLinear change of fix point (no node of its own)


@dataclass
class QdqGraph:
    model: Any  # onnx.ModelProto (nodes named, batch-1 shapes inferred)
    nodes: list[Any]
    units: list[Unit]
    pairs: list[QPair]
    constants: dict[str, np.ndarray | None]  # constant tensor -> value (None if not evaluated)
    const_nodes: set[int]  # nodes whose inputs are all constant (folded; copied where needed)
    shapes: dict[str, tuple[int, ...]]
    dtypes: dict[str, int]  # tensor -> onnx.TensorProto element type, where known
    producer: dict[str, int]  # tensor -> node index
    consumers: dict[str, list[int]]  # tensor -> node indices
    unit_of_node: dict[int, int]
    pair_of_dq_output: dict[str, int]  # DQ output tensor -> pair index
    pairs_of_tensor: dict[str, list[int]]  # float tensor -> pairs quantizing it
    graph_inputs: list[str]
    graph_outputs: list[str]
    quantized: bool  # has activation Q/DQ pairs at all

    def info(self, on_dpu: Any = None) -> GraphInfo:
        return GraphInfo(
            self.shapes,
            self.constants,
            on_dpu or (lambda _t: None),
            model_opset(self.model),
            image_batch(self.shapes, self.graph_inputs),
        )

    def unit_by_name(self, name: str) -> Unit | None:
        """The unit holding node `name`, or producing tensor `name` (a Q/DQ node maps to its producer)."""
        idx = next((i for i, n in enumerate(self.nodes) if n.name == name), None)
        if idx is None:
            idx = self.producer.get(name)
        if idx is None:
            return self.units[0] if name in self.graph_inputs and self.units else None
        if idx in self.unit_of_node:
            return self.units[self.unit_of_node[idx]]
        for p in self.pairs:
            if idx == p.q or idx in p.dqs:
                return self.units[p.producer] if p.producer is not None else self.units[0]
        return None

    def macs(self, unit: Unit) -> int:
        """Multiply-accumulates of a unit's main op (0 for ops without a weight)."""
        node = self.nodes[unit.main]
        out = self.shapes.get(node.output[0])
        if out is None:
            return 0
        if node.op_type in ("Conv", "ConvTranspose") and len(node.input) > 1:
            w = self.shapes.get(node.input[1])
            if w is None:
                return 0
            if node.op_type == "ConvTranspose":
                x = self.shapes.get(node.input[0]) or out
                return math.prod(x) * math.prod(w[1:])
            return math.prod(out) * math.prod(w[1:])
        if node.op_type in ("Gemm", "MatMul") and len(node.input) > 1:
            a = self.shapes.get(node.input[0])
            if a is None:
                return 0
            return math.prod(out) * a[-1]
        return 0


QUANTIZED_MODEL = "give the model_qdq.onnx written by `dpupose quantize`"
QDQ_CONVENTIONS = "quantize the model as docs/quantization.md (QDQ conventions) says"


def load_onnx(path: str | Path) -> Any:
    import onnx

    path = Path(path)
    if path.is_dir():
        from dpupose.formats import onnx_in_folder

        instead = onnx_in_folder(path, whole=True)
        if instead is not None:
            raise ModelFileError(f"{path} is {instead}")
    if not path.is_file():
        raise ModelFileError(f"{path}: {not_a_file(path)}; {QUANTIZED_MODEL}")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # protobuf raises several unrelated types on garbage
        _refuse_not_onnx(path)
        raise ModelFileError(f"{path}: not an ONNX model ({NOT_PARSED}); {QUANTIZED_MODEL}") from None
    if not model.graph.node:
        _refuse_not_onnx(path)
        raise ModelFileError(f"{path}: not an ONNX model (it has no nodes); {QUANTIZED_MODEL}")
    _load_external_data(model, path)
    return model


def _refuse_not_onnx(path: Path) -> None:
    """ModelFileError saying what to do, for a file that is not ONNX but one of the files a newcomer gives in
    its place: the checkpoint (quantize it first) or a plan (split its source model)."""
    from dpupose.formats import not_onnx

    kind = not_onnx(path)
    if kind == "checkpoint":
        raise ModelFileError(
            f"{path} is a PyTorch checkpoint, not ONNX: quantize it first, `dpupose quantize --checkpoint {path} "
            "--out DIR`, and split DIR/model_qdq.onnx"
        )
    if kind == "plan":
        raise ModelFileError(
            f"{path} is a split plan, not a model: split the model_qdq.onnx written by `dpupose quantize`"
        )


def _load_external_data(model: Any, path: Path) -> None:
    """The tensors an ONNX file keeps in files beside it (onnx.save(..., save_as_external_data=True)), read in;
    a missing file is one error naming it."""
    from onnx import external_data_helper as ext

    tensors = [*model.graph.initializer]
    tensors += [a.t for n in model.graph.node for a in n.attribute if a.HasField("t")]
    locations = [ext.ExternalDataInfo(t).location for t in tensors if ext.uses_external_data(t)]
    if not locations:
        return
    missing = sorted({loc for loc in locations if not (path.parent / loc).is_file()})
    if missing:
        raise ModelFileError(
            f"{path} keeps its weights in {missing[0]!r} beside it (ONNX external data), which is not there: put "
            "that file next to the model as it was saved"
        )
    try:
        ext.load_external_data_for_model(model, str(path.parent))
    except Exception as exc:
        raise ModelFileError(f"{path}: cannot read its external data ({str(exc).splitlines()[0]})") from None


def _name_nodes(model: Any) -> None:
    used = {n.name for n in model.graph.node if n.name}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in used:
                name += "_"
            node.name = name
            used.add(name)


def _batch_one(model: Any) -> Any:
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    inits = {t.name for t in m.graph.initializer}
    for vi in m.graph.input:
        if vi.name in inits:
            continue
        dims = vi.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].ClearField("dim_param")
            dims[0].dim_value = 1
    del m.graph.value_info[:]
    return m


def _dims(vi: Any) -> tuple[int, ...] | None:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    dims = []
    for d in t.shape.dim:
        if not d.HasField("dim_value") or d.dim_value <= 0:
            return None
        dims.append(int(d.dim_value))
    return tuple(dims)


def infer_shapes(model: Any) -> tuple[dict[str, tuple[int, ...]], dict[str, int]]:
    """Static shapes (batch 1) and element types of every tensor of `model`."""
    import onnx

    m = _batch_one(model)
    try:
        inferred = onnx.shape_inference.infer_shapes(m, data_prop=True)
    except Exception as exc:
        raise ModelFileError(f"ONNX shape inference failed: {exc}") from None
    shapes: dict[str, tuple[int, ...]] = {}
    dtypes: dict[str, int] = {}
    for vi in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        if vi.type.tensor_type.elem_type:
            dtypes[vi.name] = vi.type.tensor_type.elem_type
        d = _dims(vi)
        if d is not None:
            shapes[vi.name] = d
    for t in m.graph.initializer:
        shapes[t.name] = tuple(int(x) for x in t.dims)
        dtypes[t.name] = t.data_type
    missing = [o for n in m.graph.node for o in n.output if o and o not in shapes]
    if missing:
        shapes.update(_shapes_by_running(m, missing))
    return shapes, dtypes


def _shapes_by_running(model: Any, names: list[str]) -> dict[str, tuple[int, ...]]:
    """Shapes shape inference could not give, from one ONNX Runtime run on zeros."""
    import onnx
    import onnxruntime as ort

    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for name in names:
        if name not in have:
            m.graph.output.append(onnx.helper.ValueInfoProto(name=name))
    inits = {t.name for t in m.graph.initializer}
    feeds = {}
    for vi in m.graph.input:
        if vi.name in inits:
            continue
        d = _dims(vi)
        if d is None:
            raise ModelFileError(
                f"graph input {vi.name!r} needs a static shape (batch may be symbolic): export the model with "
                "the input size it will run at (e.g. 1x3x224x224)"
            )
        feeds[vi.name] = np.zeros(d, np.float32)
    try:
        sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        outs = sess.run(names, feeds)
    except Exception as exc:
        raise ModelFileError(f"cannot work out tensor shapes ({str(exc).splitlines()[0]})") from None
    return {n: tuple(int(x) for x in np.shape(v)) for n, v in zip(names, outs)}


def _constants(model: Any) -> tuple[dict[str, np.ndarray | None], set[int]]:
    """Constant tensors (initializers, Constant nodes, nodes of constants only) and the constant nodes."""
    from onnx import numpy_helper

    consts: dict[str, np.ndarray | None] = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    const_nodes: set[int] = set()
    for i, node in enumerate(model.graph.node):
        ins = [t for t in node.input if t]
        if node.op_type == "Constant":
            value = next((a for a in node.attribute if a.name == "value"), None)
            consts[node.output[0]] = numpy_helper.to_array(value.t) if value is not None else None
            const_nodes.add(i)
        elif ins and all(t in consts for t in ins):
            const_nodes.add(i)
            value = None
            if node.op_type == "DequantizeLinear" and all(consts.get(t) is not None for t in ins):
                value = _dequantized(node, consts[ins[0]], consts[ins[1]], consts[ins[2]] if len(ins) > 2 else 0)
            for o in node.output:
                consts[o] = value
    return consts, const_nodes


def _dequantized(node: Any, q: Any, s: Any, z: Any) -> np.ndarray | None:
    """The value of a DequantizeLinear of constants; a per-axis scale (1-D) applies along `axis` (default 1).

    None for what this does not model (a blocked scale): the scale checks then name the tensor."""
    q = np.asarray(q, np.float32)
    s, z = np.asarray(s, np.float32), np.asarray(z, np.float32)
    if s.ndim == 1 and s.size > 1 and q.ndim > 1:
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1) % q.ndim
        shape = [1] * q.ndim
        shape[axis] = -1
        s, z = s.reshape(shape), (z.reshape(shape) if z.size > 1 else z)
    try:
        return (q - z) * s
    except ValueError:
        return None


def fix_point_of(scale: np.ndarray | None, where: str) -> int:
    """2**-fp -> fp; a scale that is not one power of two is refused (the DPU's quantization)."""
    from dpupose.runtime.qdq_graph import scale_to_fix_point

    if scale is None:
        raise ModelFileError(f"{where}: the scale must be a constant")
    return scale_to_fix_point(scale, where)


def _check_constant_dq(node: Any, consts: dict[str, np.ndarray | None]) -> None:
    """A weight's or bias's DequantizeLinear: one power-of-two scale and a zero point 0, as the DPU's."""
    where = f"DequantizeLinear {node.name!r} (of {node.input[0]!r})"
    q = consts.get(node.input[0])
    if q is not None and np.asarray(q).dtype != np.int8:
        raise ModelFileError(
            f"{where}: the constant is {np.asarray(q).dtype}, but the DPU's weights and biases are int8, each with a "
            "power-of-two scale of its own (not ONNX's int32 bias at input scale x weight scale; docs/split.md, "
            "A model of your own)"
        )
    fix_point_of(consts.get(node.input[1]) if len(node.input) > 1 else None, where)
    zp = consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if zp is not None and np.any(np.asarray(zp) != 0):
        raise ModelFileError(f"{where}: the zero point must be 0 (symmetric DPU quantization)")


def analyze(model: Any, inferred: tuple[dict[str, tuple[int, ...]], dict[str, int]] | None = None) -> QdqGraph:
    """Units, Q/DQ pairs, constants and shapes of a (QDQ) ONNX model. The model's nodes get names.

    inferred: what infer_shapes(model) gave, when the caller has it already."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    _name_nodes(m)
    qop = qoperator_node(m)
    if qop is not None:
        raise ModelFileError(
            f"{qop} is ONNX Runtime's QOperator format; the split reads QDQ models only: quantize in QDQ format "
            "(quant_format=QuantFormat.QDQ) with per-tensor power-of-two scales (docs/split.md, A model of your own)"
        )
    nodes = list(m.graph.node)
    consts, const_nodes = _constants(m)
    shapes, dtypes = inferred if inferred is not None else infer_shapes(m)
    producer: dict[str, int] = {}
    consumers: dict[str, list[int]] = {}
    for i, node in enumerate(nodes):
        for t in node.output:
            producer[t] = i
        for t in node.input:
            if t:
                consumers.setdefault(t, []).append(i)
    graph_inputs = [vi.name for vi in m.graph.input if vi.name not in consts]
    graph_outputs = [vi.name for vi in m.graph.output]

    # Activation Q/DQ pairs.
    pairs: list[QPair] = []
    in_pair: set[int] = set()
    for i, node in enumerate(nodes):
        if node.op_type == "DequantizeLinear" and i in const_nodes:
            _check_constant_dq(node, consts)
        if node.op_type != "QuantizeLinear" or i in const_nodes:
            continue
        where = f"QuantizeLinear {node.name!r}"
        fp = fix_point_of(consts.get(node.input[1]) if len(node.input) > 1 else None, where)
        zp = consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if zp is None or np.asarray(zp).dtype != np.int8 or np.any(np.asarray(zp) != 0):
            raise ModelFileError(f"{where}: the zero point must be an int8 0 (symmetric DPU quantization)")
        dqs = [c for c in consumers.get(node.output[0], []) if nodes[c].op_type == "DequantizeLinear"]
        others = [nodes[c].name for c in consumers.get(node.output[0], []) if c not in dqs]
        if others:
            raise ModelFileError(
                f"{where}: its int8 output feeds {shortlist([repr(n) for n in others])} (only DequantizeLinear may "
                f"read it): {QDQ_CONVENTIONS}"
            )
        for d in dqs:
            dfp = fix_point_of(consts.get(nodes[d].input[1]), f"DequantizeLinear {nodes[d].name!r}")
            if dfp != fp:
                raise ModelFileError(
                    f"Q/DQ pair of {node.input[0]!r} has two scales (2**-{fp} and 2**-{dfp}): {QDQ_CONVENTIONS}"
                )
        pairs.append(QPair(node.input[0], i, dqs, [nodes[d].output[0] for d in dqs], fp))
        in_pair.update([i, *dqs])
    stray_q = [n.name for i, n in enumerate(nodes) if n.op_type in QUANT_OPS and i not in in_pair | const_nodes]
    if stray_q:
        raise ModelFileError(
            f"Q/DQ nodes outside the activation Q -> DQ pattern: "
            f"{shortlist([repr(n) for n in stray_q])}: {QDQ_CONVENTIONS}"
        )
    pair_of_dq_output = {o: k for k, p in enumerate(pairs) for o in p.outputs}
    pairs_of_tensor: dict[str, list[int]] = {}
    for k, p in enumerate(pairs):
        pairs_of_tensor.setdefault(p.tensor, []).append(k)

    # Units: every other node, activations fused into a single-consumer producer.
    units: list[Unit] = []
    unit_of_node: dict[int, int] = {}
    for i, node in enumerate(nodes):
        if i in const_nodes or i in in_pair or i in unit_of_node:
            continue
        chain = [i]
        out = node.output[0]
        while True:
            cons = consumers.get(out, [])
            if len(cons) != 1 or out in graph_outputs:
                break
            if nodes[cons[0]].op_type not in FUSED_ACTIVATION_OPS:
                break
            chain.append(cons[0])
            out = nodes[cons[0]].output[0]
        k = len(units)
        inside = {t for c in chain for t in nodes[c].output}
        ins = []
        for c in chain:
            for t in nodes[c].input:
                if t and t not in consts and t not in inside and t not in ins:
                    ins.append(t)
        units.append(Unit(k, node.name, node.op_type, i, chain, out, ins, chain[1:]))
        for c in chain:
            unit_of_node[c] = k
    # Requantization: a Q reading another pair's DQ output is a unit of its own (no node).
    for p in pairs:
        src = producer.get(p.tensor)
        if src is None:
            continue
        if src in unit_of_node:
            p.producer = unit_of_node[src]
        elif p.tensor in pair_of_dq_output:
            k = len(units)
            name = nodes[p.q].name  # the requantizing QuantizeLinear
            units.append(Unit(k, name, "Requantize", p.q, [], p.tensor, [p.tensor], requant=True))
            p.producer = k
    units.sort(key=lambda u: u.main)
    remap = {u.index: k for k, u in enumerate(units)}
    for k, u in enumerate(units):
        u.index = k
    unit_of_node = {n: remap[u] for n, u in unit_of_node.items()}
    for p in pairs:
        if p.producer is not None:
            p.producer = remap[p.producer]
    return QdqGraph(
        model=m,
        nodes=nodes,
        units=units,
        pairs=pairs,
        constants=consts,
        const_nodes=const_nodes,
        shapes=shapes,
        dtypes=dtypes,
        producer=producer,
        consumers=consumers,
        unit_of_node=unit_of_node,
        pair_of_dq_output=pair_of_dq_output,
        pairs_of_tensor=pairs_of_tensor,
        graph_inputs=graph_inputs,
        graph_outputs=graph_outputs,
        quantized=bool(pairs),
    )
