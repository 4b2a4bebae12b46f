"""Tiny split plans for runtime tests: QDQ DPU subgraphs and float CPU subgraphs built with onnx.helper.

The tiny pose model (input 32 x 32, 16 joints, 8 x 8 heatmaps):

    image -Q/DQ(5)-> Conv 3->8 s2 + ReLU -Q/DQ(4)-> feat            DPU subgraph "dpu0"
    feat -> Sigmoid -> feat2                                          CPU subgraph "cpu0" (not a DPU op)
    feat2 -Q/DQ(7)-> Conv 8->16 s2 -Q/DQ(3)-> logits                  DPU subgraph "dpu1"
    logits -> flat softmax -> heatmaps, DSNT -> coords                CPU subgraph "head"

`QdqInt8Runner` is a small stand-in for the DPU emulator: the int8 NHWC interface of a DPU runner on a
QDQ file, computed by ONNX Runtime (dequantize -> run -> quantize half up).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from dpupose.runtime.base import Runner, TensorInfo, dequantize_int8, quantize_to_int8
from dpupose.split.plan import BoundaryTensor, InputSpec, ModelInfo, OutputNames, Plan, Subgraph, save_plan

FAKES = Path(__file__).parent / "fakes"
S = 32  # input size
J = 16
H = S // 4  # heatmap side
FP = {"image": 5, "feat": 4, "feat2": 7, "logits": 3}
FINGERPRINT = "0x101000016010404"
OPSET = 17


def pixel_centres(n: int) -> np.ndarray:
    return (2 * np.arange(n) + 1) / n - 1


def _weights(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "w0": rng.integers(-20, 21, (8, 3, 3, 3)).astype(np.int8),
        "b0": rng.integers(-10, 11, (8,)).astype(np.int8),
        "w1": rng.integers(-20, 21, (J, 8, 3, 3)).astype(np.int8),
        "b1": rng.integers(-10, 11, (J,)).astype(np.int8),
    }


class _G:
    """Nodes and initializers of one graph."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def qdq(self, x: str, fp: int, out: str) -> str:
        s = self.const(f"{out}_scale", np.array(2.0**-fp, np.float32))
        z = self.const(f"{out}_zp", np.array(0, np.int8))
        self.nodes.append(helper.make_node("QuantizeLinear", [x, s, z], [f"{out}_q"]))
        self.nodes.append(helper.make_node("DequantizeLinear", [f"{out}_q", s, z], [out]))
        return out

    def const_dq(self, name: str, q: np.ndarray, fp: int) -> str:
        self.const(f"{name}_int8", q)
        s = self.const(f"{name}_scale", np.array(2.0**-fp, np.float32))
        z = self.const(f"{name}_zp", np.array(0, np.int8))
        self.nodes.append(helper.make_node("DequantizeLinear", [f"{name}_int8", s, z], [name]))
        return name

    def conv(self, x: str, w: str, b: str, out: str) -> str:
        self.nodes.append(helper.make_node("Conv", [x, w, b], [out], kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4))
        return out


def _dpu0(g: _G, w: dict) -> None:
    x = g.qdq("image", FP["image"], "image_dq")
    y = g.conv(x, g.const_dq("w0", w["w0"], 6), g.const_dq("b0", w["b0"], 5), "conv0")
    g.nodes.append(helper.make_node("Relu", [y], ["relu0"]))
    g.qdq("relu0", FP["feat"], "feat")


def _cpu0(g: _G) -> None:
    g.nodes.append(helper.make_node("Sigmoid", ["feat"], ["feat2"]))


def _dpu1(g: _G, w: dict) -> None:
    x = g.qdq("feat2", FP["feat2"], "feat2_dq")
    y = g.conv(x, g.const_dq("w1", w["w1"], 6), g.const_dq("b1", w["b1"], 4), "conv1")
    g.qdq(y, FP["logits"], "logits")


def _head(g: _G, logits_const: np.ndarray | None = None) -> None:
    grid = np.array([[pixel_centres(H)[k % H], pixel_centres(H)[k // H]] for k in range(H * H)], np.float32)
    g.const("flat_shape", np.array([1, J, H * H], np.int64))
    g.const("map_shape", np.array([1, J, H, H], np.int64))
    g.const("grid", grid)
    g.nodes += [
        helper.make_node("Reshape", ["logits", "flat_shape"], ["flat"]),
        helper.make_node("Softmax", ["flat"], ["flat_sm"], axis=-1),
        helper.make_node("Reshape", ["flat_sm", "map_shape"], ["heatmaps"]),
        helper.make_node("MatMul", ["flat_sm", "grid"], ["coords"]),
    ]


def _vi(name: str, shape: tuple[int, ...]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


SHAPES = {
    "image": (1, 3, S, S),
    "feat": (1, 8, S // 2, S // 2),
    "feat2": (1, 8, S // 2, S // 2),
    "logits": (1, J, H, H),
    "heatmaps": (1, J, H, H),
    "coords": (1, J, 2),
}


def save_model(g: _G, inputs: list[str], outputs: list[str], path: Path) -> Path:
    graph = helper.make_graph(
        g.nodes, path.stem, [_vi(n, SHAPES[n]) for n in inputs], [_vi(n, SHAPES[n]) for n in outputs], g.inits
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _bt(name: str, device: str) -> BoundaryTensor:
    shape = SHAPES[name]
    if device == "dpu":
        n, c, h, w = shape
        return BoundaryTensor(name, (n, h, w, c), "NHWC", "int8", FP[name])
    return BoundaryTensor(name, shape, "NCHW" if len(shape) == 4 else "NJC", "float32", None)


def write_split_plan(folder: Path, seed: int = 0, fingerprint: str = FINGERPRINT, xmodel: bool = False) -> Plan:
    """dpu0 -> cpu0 -> dpu1 -> head in `folder`; with xmodel=True also a fake xmodel holding both DPU parts."""
    folder.mkdir(parents=True, exist_ok=True)
    w = _weights(seed)
    g = _G()
    _dpu0(g, w)
    save_model(g, ["image"], ["feat"], folder / "dpu0.onnx")
    g = _G()
    _cpu0(g)
    save_model(g, ["feat"], ["feat2"], folder / "cpu0.onnx")
    g = _G()
    _dpu1(g, w)
    save_model(g, ["feat2"], ["logits"], folder / "dpu1.onnx")
    g = _G()
    _head(g)
    save_model(g, ["logits"], ["heatmaps", "coords"], folder / "head.onnx")
    xm = {}
    if xmodel:
        write_xmodel(folder / "tiny.xmodel", int(fingerprint, 0))
        xm = {"xmodel": "tiny.xmodel"}
    subgraphs = (
        Subgraph(
            "dpu0",
            "dpu",
            "dpu0.onnx",
            (_bt("image", "dpu"),),
            (_bt("feat", "dpu"),),
            **xm,
            xmodel_subgraph="subgraph_conv0" if xmodel else None,
        ),
        Subgraph(
            "cpu0",
            "cpu",
            "cpu0.onnx",
            (_bt("feat", "cpu"),),
            (_bt("feat2", "cpu"),),
            reason="Sigmoid: not a DPU operator",
        ),
        Subgraph(
            "dpu1",
            "dpu",
            "dpu1.onnx",
            (_bt("feat2", "dpu"),),
            (_bt("logits", "dpu"),),
            **xm,
            xmodel_subgraph="subgraph_conv1" if xmodel else None,
        ),
        Subgraph(
            "head",
            "cpu",
            "head.onnx",
            (_bt("logits", "cpu"),),
            (_bt("heatmaps", "cpu"), _bt("coords", "cpu")),
            reason="Softmax",
        ),
    )
    plan = Plan(
        fingerprint=fingerprint,
        dpu_config="u96v2-b1600-pynq",
        model=ModelInfo("tiny", S, "0" * 64),
        input=InputSpec("image", SHAPES["image"]),
        outputs=OutputNames("coords", "heatmaps"),
        subgraphs=subgraphs,
        generated_by="tests/tinyplan.py",
    )
    save_plan(plan, folder)
    return plan


def write_xmodel(path: Path, fingerprint: int | None, batch: int = 1, fp_shift: int = 0) -> Path:
    """A fake xmodel with the two DPU parts (xmodel tensor names differ from the plan's, as in real ones)."""
    sys.path.insert(0, str(FAKES))
    try:
        import fakeboard
    finally:
        sys.path.remove(str(FAKES))

    def t(name: str, onnx_name: str) -> dict:
        n, c, h, w = SHAPES[onnx_name]
        return {"name": name, "dims": [batch, h, w, c], "fix_point": FP[onnx_name] + fp_shift, "onnx_name": onnx_name}

    return fakeboard.write_fake_xmodel(
        path,
        [
            {"name": "subgraph_image", "device": "CPU"},
            {
                "name": "subgraph_conv0",
                "device": "DPU",
                "fingerprint": fingerprint,
                "onnx": "dpu0.onnx",
                "inputs": [t("tiny__image_fix", "image")],
                "outputs": [t("tiny__conv0_fix", "feat")],
            },
            {"name": "subgraph_sigmoid", "device": "CPU"},
            {
                "name": "subgraph_conv1",
                "device": "DPU",
                "fingerprint": fingerprint,
                "onnx": "dpu1.onnx",
                "inputs": [t("tiny__sigmoid_fix", "feat2")],
                "outputs": [t("tiny__conv1_fix", "logits")],
            },
            {"name": "subgraph_head", "device": "CPU"},
        ],
    )


def write_unsplit_model(path: Path, seed: int = 0) -> Path:
    """The same network as one ONNX graph (the reference the split run must match)."""
    w = _weights(seed)
    g = _G()
    _dpu0(g, w)
    _cpu0(g)
    _dpu1(g, w)
    _head(g)
    return save_model(g, ["image"], ["heatmaps", "coords"], path)


def write_constant_plan(folder: Path, peaks: list[tuple[int, int]], height: float = 60.0) -> Plan:
    """A CPU-only plan whose heatmaps are one-hot (softmax of `height` at heatmap pixel (x, y) per joint),
    whatever the image: for checking the geometry of post-processing."""
    folder.mkdir(parents=True, exist_ok=True)
    logits = np.zeros((1, J, H, H), np.float32)
    for j, (x, y) in enumerate(peaks):
        logits[0, j, y, x] = height
    g = _G()
    g.const("zero", np.array(0.0, np.float32))
    g.const("pattern", logits)
    g.nodes += [
        helper.make_node("ReduceMean", ["image"], ["mean"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["pattern", "nothing"], ["logits"]),
    ]
    _head(g)
    save_model(g, ["image"], ["heatmaps", "coords"], folder / "all.onnx")
    plan = Plan(
        fingerprint=FINGERPRINT,
        dpu_config="u96v2-b1600-pynq",
        model=ModelInfo("constant", S, "1" * 64),
        input=InputSpec("image", SHAPES["image"]),
        outputs=OutputNames("coords", "heatmaps"),
        subgraphs=(
            Subgraph("all", "cpu", "all.onnx", (_bt("image", "cpu"),), (_bt("heatmaps", "cpu"), _bt("coords", "cpu"))),
        ),
    )
    save_plan(plan, folder)
    return plan


class QdqInt8Runner(Runner):
    """A DPU runner stand-in: int8 NHWC in/out on a QDQ file (fix points from its boundary Q/DQ scales,
    plus `fp_shift`, like an xmodel compiled with other fix points)."""

    def __init__(self, path: str | Path, fp_shift: int = 0) -> None:
        import onnxruntime as ort

        model = onnx.load(str(path))
        inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}

        def fp_of(scale_name: str) -> int:
            return int(round(-np.log2(float(inits[scale_name])))) + fp_shift

        def info(vi: onnx.ValueInfoProto, fp: int) -> TensorInfo:
            n, c, h, w = (d.dim_value for d in vi.type.tensor_type.shape.dim)
            return TensorInfo(vi.name, (n, h, w, c), "int8", fp, "NHWC")

        q_of = {n.input[0]: n for n in model.graph.node if n.op_type == "QuantizeLinear"}
        dq_to = {n.output[0]: n for n in model.graph.node if n.op_type == "DequantizeLinear"}
        self._inputs = [info(vi, fp_of(q_of[vi.name].input[1])) for vi in model.graph.input]
        self._outputs = [info(vi, fp_of(dq_to[vi.name].input[1])) for vi in model.graph.output]
        self._session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.calls = 0

    @property
    def inputs(self) -> list[TensorInfo]:
        return list(self._inputs)

    @property
    def outputs(self) -> list[TensorInfo]:
        return list(self._outputs)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls += 1
        ort_feeds = {}
        for i in self._inputs:
            x = feeds[i.name]
            assert x.dtype == np.int8 and x.shape[1:] == i.shape[1:], (x.dtype, x.shape, i.shape)
            ort_feeds[i.name] = dequantize_int8(x, i.fix_point).transpose(0, 3, 1, 2).copy()
        ys = self._session.run([o.name for o in self._outputs], ort_feeds)
        return {
            o.name: quantize_to_int8(y, o.fix_point).transpose(0, 2, 3, 1).copy() for o, y in zip(self._outputs, ys)
        }


def make_overlay(folder: Path, fingerprint: int | None = int(FINGERPRINT, 0)) -> Path:
    """An overlay folder as `make hw` leaves it (placeholder bitstream files, arch.json unless None)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("dpu.bit", "dpu.hwh", "dpu.xclbin"):
        (folder / name).write_bytes(b"\0")
    if fingerprint is not None:
        (folder / "arch.json").write_text(json.dumps({"fingerprint": f"0x{fingerprint:x}"}))
    return folder
