"""Small hand-built ONNX graphs for the DPU performance-model tests (onnx.helper, no torch)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _model(nodes, inputs, outputs, inits=(), opset: int = OPSET) -> onnx.ModelProto:
    graph = helper.make_graph(list(nodes), "g", list(inputs), list(outputs), list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _vi(name: str, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def conv_transpose(cin: int, cout: int, hw: int, k: int, stride: int, pad: int, groups: int = 1):
    """x (1, cin, hw, hw) -> ConvTranspose(k, stride, pads, groups) -> y ((hw - 1) * stride + k - 2 * pad square)."""
    w = numpy_helper.from_array(np.zeros((cin, cout // groups, k, k), np.float32), "w")
    b = numpy_helper.from_array(np.zeros(cout, np.float32), "b")
    out = (hw - 1) * stride + k - 2 * pad
    node = helper.make_node(
        "ConvTranspose", ["x", "w", "b"], ["y"], name="deconv", kernel_shape=[k, k], strides=[stride] * 2,
        pads=[pad] * 4, group=groups,
    )  # fmt: skip
    return _model([node], [_vi("x", (1, cin, hw, hw))], [_vi("y", (1, cout, out, out))], [w, b])


def conv(cin: int, cout: int, hw: int, k: int, stride: int = 1, groups: int = 1, relu6: bool = True):
    """x (1, cin, hw, hw) -> Conv(k, stride, pad k//2, groups) [-> Clip(0, 6)] -> y."""
    w = numpy_helper.from_array(np.zeros((cout, cin // groups, k, k), np.float32), "w")
    b = numpy_helper.from_array(np.zeros(cout, np.float32), "b")
    out = (hw + 2 * (k // 2) - k) // stride + 1
    nodes = [
        helper.make_node(
            "Conv",
            ["x", "w", "b"],
            ["c" if relu6 else "y"],
            name="conv",
            kernel_shape=[k, k],
            strides=[stride, stride],
            pads=[k // 2] * 4,
            group=groups,
        )
    ]
    inits = [w, b]
    if relu6:
        inits += [
            numpy_helper.from_array(np.array(0, np.float32), "lo"),
            numpy_helper.from_array(np.array(6, np.float32), "hi"),
        ]
        nodes.append(helper.make_node("Clip", ["c", "lo", "hi"], ["y"], name="relu6"))
    return _model(nodes, [_vi("x", (1, cin, hw, hw))], [_vi("y", (1, cout, out, out))], inits)


def add(c: int, hw: int):
    """Two inputs added element-wise."""
    nodes = [helper.make_node("Add", ["a", "b"], ["y"], name="add")]
    return _model(nodes, [_vi("a", (1, c, hw, hw)), _vi("b", (1, c, hw, hw))], [_vi("y", (1, c, hw, hw))])


def resize(c: int, hw: int, scale: int, mode: str = "linear", opset: int = OPSET, **attrs):
    """x (1, c, hw, hw) -> Resize(mode) by constant scales [1, 1, scale, scale] -> y, at `opset`."""
    scales = numpy_helper.from_array(np.array([1, 1, scale, scale], np.float32), "scales")
    inputs = ["x", "scales"] if opset < 11 else ["x", "", "scales"]
    nodes = [helper.make_node("Resize", inputs, ["y"], name="up", mode=mode, **attrs)]
    out = (1, c, hw * scale, hw * scale)
    return _model(nodes, [_vi("x", (1, c, hw, hw))], [_vi("y", out)], [scales], opset)


def depth_to_space(c: int, hw: int, block: int = 2, mode: str = "CRD"):
    """x (1, c, hw, hw) -> DepthToSpace(block, mode; CRD as torch's PixelShuffle exports) -> y."""
    nodes = [helper.make_node("DepthToSpace", ["x"], ["y"], name="d2s", blocksize=block, mode=mode)]
    out = (1, c // block**2, hw * block, hw * block)
    return _model(nodes, [_vi("x", (1, c, hw, hw))], [_vi("y", out)])


def qdq_conv(cin: int, cout: int, hw: int, k: int):
    """The `conv` graph in QDQ form: int8 weights through DequantizeLinear, Q/DQ on the activations."""
    w = numpy_helper.from_array(np.zeros((cout, cin, k, k), np.int8), "w_q")
    scale = numpy_helper.from_array(np.array(1 / 64, np.float32), "s")
    zp = numpy_helper.from_array(np.array(0, np.int8), "zp")
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["xq"], name="qx"),
        helper.make_node("DequantizeLinear", ["xq", "s", "zp"], ["xd"], name="dqx"),
        helper.make_node("DequantizeLinear", ["w_q", "s", "zp"], ["w"], name="dqw"),
        helper.make_node("Conv", ["xd", "w"], ["c"], name="conv", kernel_shape=[k, k], pads=[k // 2] * 4),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("QuantizeLinear", ["r", "s", "zp"], ["rq"], name="qy"),
        helper.make_node("DequantizeLinear", ["rq", "s", "zp"], ["y"], name="dqy"),
    ]
    return _model(nodes, [_vi("x", (1, cin, hw, hw))], [_vi("y", (1, cout, hw, hw))], [w, scale, zp])


def custom_op(c: int, hw: int):
    """A Conv followed by an op from a custom domain that ONNX does not define."""
    model = conv(c, c, hw, 1, relu6=False)
    node = helper.make_node("FancyNorm", ["y"], ["z"], name="fancy", domain="com.example")
    model.graph.node.append(node)
    model.graph.output[0].CopyFrom(_vi("z", (1, c, hw, hw)))
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    return model


def hard_activation(op: str, c: int, hw: int, **attrs):
    """One HardSigmoid or HardSwish of an input x (1, c, hw, hw)."""
    nodes = [helper.make_node(op, ["x"], ["y"], name="hard", **attrs)]
    return _model(nodes, [_vi("x", (1, c, hw, hw))], [_vi("y", (1, c, hw, hw))])


def mul_const(c: int, hw: int, shape=None):
    """x (1, c, hw, hw) times a constant of `shape` (default [1, c, 1, 1], one value per channel)."""
    shape = shape if shape is not None else (1, c, 1, 1)
    k = numpy_helper.from_array(np.full(shape, 0.5, np.float32), "k")
    nodes = [helper.make_node("Mul", ["x", "k"], ["y"], name="mul")]
    return _model(nodes, [_vi("x", (1, c, hw, hw))], [_vi("y", (1, c, hw, hw))], [k])


def batch_norm(c: int, hw: int, after: str = "input"):
    """A BatchNormalization of (1, c, hw, hw) reading the graph's input x ("input"), a 1x1 conv's float output
    ("conv": folded into it) or that conv's output through a Q/DQ pair ("qdq": a quantized tensor)."""
    inits = [numpy_helper.from_array(np.full(c, v, np.float32), n) for n, v in (("s", 2), ("b", 1), ("m", 0), ("v", 1))]
    nodes, x = [], "x"
    if after in ("conv", "qdq"):
        inits += [numpy_helper.from_array(np.zeros((c, c, 1, 1), np.float32), "w")]
        nodes.append(helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[1, 1]))
        x = "c"
    if after == "qdq":
        inits += [
            numpy_helper.from_array(np.array(2.0**-4, np.float32), "qs"),
            numpy_helper.from_array(np.array(0, np.int8), "qz"),
        ]
        nodes.append(helper.make_node("QuantizeLinear", ["c", "qs", "qz"], ["cq"], name="c/quantize"))
        nodes.append(helper.make_node("DequantizeLinear", ["cq", "qs", "qz"], ["cd"], name="c/dequantize"))
        x = "cd"
    nodes.append(helper.make_node("BatchNormalization", [x, "s", "b", "m", "v"], ["y"], name="bn"))
    return _model(nodes, [_vi("x", (1, c, hw, hw))], [_vi("y", (1, c, hw, hw))], inits)
