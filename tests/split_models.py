"""Small whole-model QDQ pose graphs for the partitioner tests, built with onnx.helper.

    image (1, 3, 16, 16) -Q/DQ-> conv1 3->8 s2 + ReLU -Q/DQ-> [middle] -> conv2 8->8 (+ act) -Q/DQ->
    conv3 8->16 s2 -Q/DQ-> logits (1, 16, 4, 4) -> flat softmax -> heatmaps, DSNT (MatMul) -> coords

`middle` puts something between conv1 and conv3 that the DPU cannot run:
- "sigmoid": DQ -> Sigmoid -> Q/DQ -> conv2 + ReLU (Sigmoid is not a DPU op);
- "leaky": conv2 fused with LeakyRelu(0.2) (the DPU's slope is 26/256);
- "leaky_ok": conv2 fused with LeakyRelu(26/256) (everything runs on the DPU);
- "none": conv2 + ReLU;
- "skip": "sigmoid" plus a residual Add(c1, c2) after conv2, so the second DPU subgraph also reads the
  first one's output directly (int8 DPU -> DPU across the CPU subgraph);
- "pool": a MaxPool 3x3 between conv1 and conv2 (a DPU op the emulator runs);
- "mul": c1 times a per-channel int8 constant between conv1 and conv2 (a DPU op, a 1x1 depthwise conv on
  the ALU, that the emulator runs);
- "hswish": conv2 + ReLU -Q/DQ-> HardSwish -Q/DQ-> (the DPU's ALU hsigmoid and eltwise mult, which the
  emulator runs; the Q/DQ pair before it gives its input's fix point, as `dpupose quantize` writes it);
- "hswish_fused": conv2 -> HardSwish with no Q/DQ pair between (the DPU fuses no hard activation, and its
  input fix point is not stated: conv2 and the hard swish run on the CPU);
- "bilinear": a bilinear Resize x2 of c1 given by its output `sizes` (whole multiples of c1's H and W: the
  resize by scales 2, a DPU op the emulator runs), conv2 then stride 2;
- "pool_ceil": a MaxPool 3x3 of c1 with ceil_mode 1 (stride 1: the same output as floor mode; a DPU op that
  the emulator does not run);
- "bilinear_scales": a bilinear Resize x2 of c1 by constant scales (half_pixel: a DPU op the emulator
  runs), conv2 then stride 2; "bilinear_relu": the same with a ReLU after the resize (no activation is
  fused into the DPU's bilinear resize: both run on the CPU);
- "deconv": a ConvTranspose 8->8 of c1, 4x4 at stride 2 with pads 1 (SimpleBaseline's deconv head), with a
  ReLU (the conv engine's transposed conv, which the emulator runs), conv2 then stride 2;
- "dwdeconv": a depthwise ConvTranspose (group 8) of c1, 4x4 at stride 2 with pads 1 (the ALU engine's
  transposed depthwise conv, which the emulator runs), conv2 then stride 2; "dwdeconv_relu": the same with
  a ReLU after it (no activation is fused into the DPU's transposed depthwise conv: both run on the CPU);
- "mul2": c1 times itself, with a ReLU (the eltwise engine's mult, which the emulator runs);
- "hswish_relu": conv2 -Q/DQ-> HardSwish -> ReLU -Q/DQ-> (the ReLU fused into the hard swish's eltwise mult);
- "requant": c1 requantized to another fix point (DequantizeLinear -> QuantizeLinear) before conv2.
Weights are small random int8 values with power-of-two scales, as `dpupose quantize` writes them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

S = 16
J = 16
H = S // 4
OPSET = 17
FP = {"image": 5, "c1": 4, "mid": 6, "c2": 4, "sum": 4, "rq": 5, "logits": 3}


def pixel_centres(n: int) -> np.ndarray:
    return (2 * np.arange(n) + 1) / n - 1


class Builder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, name: str | None = None, **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], name=name or output, **attrs))
        return output

    def qdq(self, x: str, fp: int, name: str) -> str:
        s = self.const(f"{name}_scale", np.array(2.0**-fp, np.float32))
        z = self.const(f"{name}_zp", np.array(0, np.int8))
        self.node("QuantizeLinear", [x, s, z], f"{name}_int8", name=f"{name}/quantize")
        return self.node("DequantizeLinear", [f"{name}_int8", s, z], name, name=f"{name}/dequantize")

    def param(self, name: str, q: np.ndarray, fp: int) -> str:
        self.const(f"{name}_int8", q)
        s = self.const(f"{name}_scale", np.array(2.0**-fp, np.float32))
        z = self.const(f"{name}_zp", np.array(0, np.int8))
        return self.node("DequantizeLinear", [f"{name}_int8", s, z], name, name=f"{name}/dequantize")

    def conv(self, x: str, name: str, cin: int, cout: int, stride: int, rng: np.random.Generator) -> str:
        w = self.param(f"{name}.weight", rng.integers(-40, 41, (cout, cin, 3, 3)).astype(np.int8), 7)
        b = self.param(f"{name}.bias", rng.integers(-20, 21, (cout,)).astype(np.int8), 6)
        return self.node(
            "Conv", [x, w, b], f"{name}_conv", name=name, kernel_shape=[3, 3], strides=[stride] * 2, pads=[1] * 4
        )

    def model(
        self, name: str, heat: int, image_batch: int | str = 1, out_batch: int | str = 1, image: int = S
    ) -> onnx.ModelProto:
        """The checked model of these nodes: image (image_batch, 3, image, image) in, coords (out_batch, J, 2) and
        heatmaps (out_batch, J, heat, heat) out."""
        graph = helper.make_graph(
            self.nodes,
            name,
            [helper.make_tensor_value_info("image", TensorProto.FLOAT, [image_batch, 3, image, image])],
            [
                helper.make_tensor_value_info("coords", TensorProto.FLOAT, [out_batch, J, 2]),
                helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT, [out_batch, J, heat, heat]),
            ],
            self.inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tests")
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model

    def stem(self, rng: np.random.Generator) -> str:
        """image -Q/DQ-> conv1 (3 -> 8, stride 2) + ReLU -Q/DQ-> c1, every model's start; returns "c1"."""
        x = self.qdq("image", FP["image"], "image_dq")
        y = self.conv(x, "conv1", 3, 8, 2, rng)
        self.node("Relu", [y], "conv1_float", name="conv1/relu")
        return self.qdq("conv1_float", FP["c1"], "c1")

    def head(self, logits: str) -> None:
        grid = np.array([[pixel_centres(H)[k % H], pixel_centres(H)[k // H]] for k in range(H * H)], np.float32)
        self.const("flat_shape", np.array([1, J, H * H], np.int64))
        self.const("map_shape", np.array([1, J, H, H], np.int64))
        self.const("grid", grid)
        self.node("Reshape", [logits, "flat_shape"], "flat", name="head/flatten")
        self.node("Softmax", ["flat"], "flat_sm", name="head/softmax", axis=-1)
        self.node("Reshape", ["flat_sm", "map_shape"], "heatmaps", name="head/heatmaps")
        self.node("MatMul", ["flat_sm", "grid"], "coords", name="head/dsnt")


def build(middle: str = "none", seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    b = Builder()
    x = c1 = b.stem(rng)
    if middle in ("sigmoid", "skip"):
        b.node("Sigmoid", [x], "mid_float", name="mid/sigmoid")
        x = b.qdq("mid_float", FP["mid"], "mid")
    elif middle in ("pool", "pool_ceil"):
        ceil = {"ceil_mode": 1} if middle == "pool_ceil" else {}
        b.node("MaxPool", [x], "pool_float", name="mid/pool", kernel_shape=[3, 3], pads=[1] * 4, **ceil)
        x = b.qdq("pool_float", FP["c1"], "pool")
    elif middle == "mul":
        scale = b.param("mid.scale", rng.integers(-100, 101, (1, 8, 1, 1)).astype(np.int8), 6)
        b.node("Mul", [x, scale], "mul_float", name="mid/mul")
        x = b.qdq("mul_float", FP["c1"], "mul")
    elif middle == "requant":
        x = b.qdq(x, FP["rq"], "rq")
    elif middle == "bilinear":
        b.const("mid_sizes", np.array([1, 8, S, S], np.int64))
        b.node("Resize", [x, "", "", "mid_sizes"], "up_float", name="mid/resize", mode="linear")
        x = b.qdq("up_float", FP["c1"], "up")
    elif middle in ("bilinear_scales", "bilinear_relu"):
        b.const("mid_scales", np.array([1, 1, 2, 2], np.float32))
        b.node("Resize", [x, "", "mid_scales"], "up_float", name="mid/resize", mode="linear")
        if middle == "bilinear_relu":
            b.node("Relu", ["up_float"], "up_relu", name="mid/relu")
        x = b.qdq("up_relu" if middle == "bilinear_relu" else "up_float", FP["c1"], "up")
    elif middle == "deconv":
        w = b.param("mid.weight", rng.integers(-40, 41, (8, 8, 4, 4)).astype(np.int8), 7)
        bias = b.param("mid.bias", rng.integers(-20, 21, (8,)).astype(np.int8), 6)
        b.node("ConvTranspose", [x, w, bias], "deconv_float", name="mid/deconv", strides=[2, 2], pads=[1] * 4)
        b.node("Relu", ["deconv_float"], "deconv_relu", name="mid/deconv_relu")
        x = b.qdq("deconv_relu", FP["c1"], "deconv")
    elif middle in ("dwdeconv", "dwdeconv_relu"):
        w = b.param("mid.weight", rng.integers(-60, 61, (8, 1, 4, 4)).astype(np.int8), 6)
        bias = b.param("mid.bias", rng.integers(-20, 21, (8,)).astype(np.int8), 6)
        b.node("ConvTranspose", [x, w, bias], "deconv_float", name="mid/deconv", strides=[2, 2], pads=[1] * 4, group=8)
        if middle == "dwdeconv_relu":
            b.node("Relu", ["deconv_float"], "deconv_relu", name="mid/deconv_relu")
        x = b.qdq("deconv_relu" if middle == "dwdeconv_relu" else "deconv_float", FP["c1"], "deconv")
    elif middle == "mul2":
        b.node("Mul", [x, x], "mul_float", name="mid/mul")
        b.node("Relu", ["mul_float"], "mul_relu", name="mid/mul_relu")
        x = b.qdq("mul_relu", FP["c1"], "mul")
    y = b.conv(x, "conv2", 8, 8, 2 if middle.startswith("bilinear") or middle.endswith("deconv") else 1, rng)
    if middle == "hswish_fused":
        b.node("HardSwish", [y], "conv2_float", name="conv2/hswish")
    elif middle == "hswish":
        b.node("Relu", [y], "conv2_relu", name="conv2/relu")
        x = b.qdq("conv2_relu", FP["c2"], "c2_in")
        b.node("HardSwish", [x], "conv2_float", name="mid/hswish")
    elif middle == "hswish_relu":  # conv2 without a ReLU: the hard swish's negative values reach its ReLU
        x = b.qdq(y, FP["c2"], "c2_in")
        b.node("HardSwish", [x], "hswish_float", name="mid/hswish")
        b.node("Relu", ["hswish_float"], "conv2_float", name="mid/hswish_relu")
    elif middle in ("leaky", "leaky_ok"):
        alpha = 0.2 if middle == "leaky" else 26 / 256
        b.node("LeakyRelu", [y], "conv2_float", name="conv2/leaky", alpha=alpha)
    else:
        b.node("Relu", [y], "conv2_float", name="conv2/relu")
    x = b.qdq("conv2_float", FP["c2"], "c2")
    if middle == "skip":
        b.node("Add", [c1, x], "sum_float", name="skip/add")
        x = b.qdq("sum_float", FP["sum"], "sum")
    y = b.conv(x, "conv3", 8, J, 2, rng)
    b.qdq(y, FP["logits"], "logits")
    b.head("logits")
    model = b.model(f"qdq_{middle}", H, image_batch="batch")
    return model


def conv_heatmaps_model(path: Path) -> Path:
    """build("none") whose heatmaps output is conv3's DequantizeLinear output `logits` itself (no Reshape of
    the softmax after it), as a SimpleBaseline-style network's last 1 x 1 conv gives its heatmaps; coords are
    the soft-argmax of them."""
    model = build("none")
    model.graph.node.remove(next(n for n in model.graph.node if n.name == "head/heatmaps"))
    next(o for o in model.graph.output if o.name == "heatmaps").name = "logits"
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def extra_output_model(path: Path) -> Path:
    """build("none") that also outputs c2, conv2's quantized result (8 x 8 x 8), which conv3 reads on the DPU: a
    model output made on the DPU that is neither the coords nor the heatmaps."""
    model = build("none")
    model.graph.output.append(helper.make_tensor_value_info("c2", TensorProto.FLOAT, [1, 8, H * 2, H * 2]))
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def dpu_heatmaps_model(path: Path, seed: int = 0) -> Path:
    """image -> conv1 + ReLU -> conv2 + ReLU -Q/DQ-> c2, then two 3x3 convs of c2 to J channels at stride 2 on
    the DPU: conv3's logits give the coords (flat softmax and DSNT on the CPU), conv4's quantized result is the
    heatmaps output itself, which no op reads (a DPU output that is a plan output and no CPU subgraph's input)."""
    rng = np.random.default_rng(seed)
    b = Builder()
    c1 = b.stem(rng)
    b.node("Relu", [b.conv(c1, "conv2", 8, 8, 1, rng)], "conv2_float", name="conv2/relu")
    c2 = b.qdq("conv2_float", FP["c2"], "c2")
    b.qdq(b.conv(c2, "conv3", 8, J, 2, rng), FP["logits"], "logits")
    b.qdq(b.conv(c2, "conv4", 8, J, 2, rng), FP["logits"], "heatmaps")
    grid = np.array([[pixel_centres(H)[k % H], pixel_centres(H)[k // H]] for k in range(H * H)], np.float32)
    b.const("flat_shape", np.array([1, J, H * H], np.int64))
    b.const("grid", grid)
    b.node("Reshape", ["logits", "flat_shape"], "flat", name="head/flatten")
    b.node("Softmax", ["flat"], "flat_sm", name="head/softmax", axis=-1)
    b.node("MatMul", ["flat_sm", "grid"], "coords", name="head/dsnt")
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(b.model("qdq_dpu_heatmaps", H), str(path))
    return path


def read_heatmaps_model(path: Path, seed: int = 0) -> Path:
    """build("none") without conv2, whose heatmaps (the head's flat softmax, reshaped on the CPU) are quantized
    (Q/DQ pair "heatmaps", a model output) and read by a MaxPool 3x3 (stride 1, pads 1: a DPU op), whose quantized
    result gives the coords (flattened, DSNT MatMul): a quantized model output made on the CPU that a DPU
    subgraph reads too, so both subgraphs hold its Q/DQ pair."""
    rng = np.random.default_rng(seed)
    b = Builder()
    c1 = b.stem(rng)
    b.qdq(b.conv(c1, "conv3", 8, J, 2, rng), FP["logits"], "logits")
    grid = np.array([[pixel_centres(H)[k % H], pixel_centres(H)[k // H]] for k in range(H * H)], np.float32)
    b.const("flat_shape", np.array([1, J, H * H], np.int64))
    b.const("map_shape", np.array([1, J, H, H], np.int64))
    b.const("grid", grid)
    b.node("Reshape", ["logits", "flat_shape"], "flat", name="head/flatten")
    b.node("Softmax", ["flat"], "flat_sm", name="head/softmax", axis=-1)
    b.node("Reshape", ["flat_sm", "map_shape"], "heatmaps_float", name="head/heatmaps")
    heat = b.qdq("heatmaps_float", 7, "heatmaps")
    b.node("MaxPool", [heat], "pool_float", name="head/pool", kernel_shape=[3, 3], pads=[1] * 4)
    pooled = b.qdq("pool_float", 7, "pooled")
    b.node("Reshape", [pooled, "flat_shape"], "pooled_flat", name="head/pool_flatten")
    b.node("MatMul", ["pooled_flat", "grid"], "coords", name="head/dsnt")
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(b.model("qdq_read_heatmaps", H), str(path))
    return path


def two_scales_model(path: Path, seed: int = 0) -> Path:
    """build("sigmoid")'s mid_float (a CPU Sigmoid of c1) quantized twice: at 2**-6 ("mid") for conv2 + ReLU, and
    at 2**-7 ("mid_b") for an Add of it and the Sigmoid of conv2's quantized result (a second CPU op), so the Add
    and conv3 after it are a DPU subgraph of their own that reads the same float tensor at another scale."""
    rng = np.random.default_rng(seed)
    b = Builder()
    c1 = b.stem(rng)
    b.node("Sigmoid", [c1], "mid_float", name="mid/sigmoid")
    mid = b.qdq("mid_float", 6, "mid")
    b.node("Relu", [b.conv(mid, "conv2", 8, 8, 1, rng)], "conv2_float", name="conv2/relu")
    c2 = b.qdq("conv2_float", FP["c2"], "c2")
    b.node("Sigmoid", [c2], "gate_float", name="gate/sigmoid")
    gate = b.qdq("gate_float", 7, "gate")
    mid_b = b.qdq("mid_float", 7, "mid_b")
    b.node("Add", [gate, mid_b], "sum_float", name="skip/add")
    x = b.qdq("sum_float", FP["sum"], "sum")
    b.qdq(b.conv(x, "conv3", 8, J, 2, rng), FP["logits"], "logits")
    b.head("logits")
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(b.model("qdq_two_scales", H), str(path))
    return path


def image_twice_model(path: Path, second_fp: int | None = None, seed: int = 0) -> Path:
    """image -Q/DQ-> conv1 (3 -> 3, stride 1) + ReLU -Q/DQ-> c1 -> Sigmoid (CPU) -Q/DQ-> mid, then an Add of mid
    and the image on the DPU, conv3 (3 -> J, stride 4) and the head: the image feeds two DPU subgraphs, dpu0
    (conv1) and dpu1 (the Add, after the CPU's sigmoid). The Add reads the image at conv1's fix point (its
    DequantizeLinear output itself), or with second_fp from a second Q/DQ pair of it at that fix point."""
    rng = np.random.default_rng(seed)
    b = Builder()
    image = b.qdq("image", FP["image"], "image_dq")
    b.node("Relu", [b.conv(image, "conv1", 3, 3, 1, rng)], "conv1_float", name="conv1/relu")
    c1 = b.qdq("conv1_float", FP["c1"], "c1")
    b.node("Sigmoid", [c1], "mid_float", name="mid/sigmoid")
    mid = b.qdq("mid_float", FP["mid"], "mid")
    second = image if second_fp is None else b.qdq("image", second_fp, "image_b")
    b.node("Add", [mid, second], "sum_float", name="skip/add")
    x = b.qdq("sum_float", FP["sum"], "sum")
    b.qdq(b.conv(x, "conv3", 3, J, 4, rng), FP["logits"], "logits")
    b.head("logits")
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(b.model("qdq_image_twice", H), str(path))
    return path


def two_readers_model(path: Path, seed: int = 0) -> Path:
    """image -> conv1 + ReLU -> conv3 (8 -> J, stride 2) -Q/DQ-> logits on the DPU, the heatmaps output itself;
    a Sigmoid of the logits on the CPU -Q/DQ-> gate, conv4 (J -> J) of it on the DPU -Q/DQ-> g4, and a Sub of
    the logits and g4 on the CPU, whose flat softmax gives the coords (DSNT): the logits, a plan output made on
    the DPU, are read by two CPU subgraphs, cpu0 (the sigmoid) and cpu1 (the Sub and the head)."""
    rng = np.random.default_rng(seed)
    b = Builder()
    c1 = b.stem(rng)
    logits = b.qdq(b.conv(c1, "conv3", 8, J, 2, rng), FP["logits"], "logits")
    b.node("Sigmoid", [logits], "gate_float", name="gate/sigmoid")
    gate = b.qdq("gate_float", 7, "gate")
    w = b.param("conv4.weight", rng.integers(-40, 41, (J, J, 3, 3)).astype(np.int8), 7)
    bias = b.param("conv4.bias", rng.integers(-20, 21, (J,)).astype(np.int8), 6)
    b.node("Conv", [gate, w, bias], "conv4_float", name="conv4", kernel_shape=[3, 3], pads=[1] * 4)
    g4 = b.qdq("conv4_float", FP["logits"], "g4")
    b.node("Sub", [logits, g4], "diff", name="head/sub")
    b.head("diff")
    model = b.model("qdq_two_readers", H)
    model.graph.node.remove(next(n for n in model.graph.node if n.name == "head/heatmaps"))
    next(o for o in model.graph.output if o.name == "heatmaps").name = "logits"
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def save(middle: str, path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(build(middle, seed), str(path))
    return path


def float_model(path: Path) -> Path:
    """The same network without any Q/DQ node (weights as float): a model the partitioner must refuse."""
    model = build("none")
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    b = Builder()
    rename: dict[str, str] = {}
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear":
            rename[node.output[0]] = rename.get(node.input[0], node.input[0])
            continue
        if node.op_type == "DequantizeLinear":
            src = node.input[0]
            if src in inits:
                scale = float(inits[node.input[1]])
                b.const(node.output[0], (inits[src].astype(np.float32) * scale).astype(np.float32))
            else:
                rename[node.output[0]] = rename.get(src, src)
            continue
        n = onnx.NodeProto()
        n.CopyFrom(node)
        for i, t in enumerate(n.input):
            n.input[i] = rename.get(t, t)
        b.nodes.append(n)
    for name in ("flat_shape", "map_shape", "grid"):
        b.const(name, inits[name])
    graph = helper.make_graph(b.nodes, "float", list(model.graph.input), list(model.graph.output), b.inits)
    fmodel = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tests")
    fmodel.ir_version = 8
    onnx.checker.check_model(fmodel)
    onnx.save(fmodel, str(path))
    return path


def qoperator_model(path: Path) -> Path:
    """image -Q-> QLinearConv 3->16 -DQ-> heatmaps (1, 16, S, S), coords by a MatMul: ONNX Runtime's QOperator
    format (int8 operators), power-of-two scales and zero points 0, pose outputs, so only the format is wrong."""
    rng = np.random.default_rng(0)
    b = Builder()
    s_in = b.const("in_scale", np.array(2.0**-5, np.float32))
    s_w = b.const("w_scale", np.array(2.0**-7, np.float32))
    s_out = b.const("out_scale", np.array(2.0**-4, np.float32))
    zp = b.const("zp", np.array(0, np.int8))
    w = b.const("w_int8", rng.integers(-40, 41, (J, 3, 3, 3)).astype(np.int8))
    b.node("QuantizeLinear", ["image", s_in, zp], "image_int8", name="image/quantize")
    b.node("QLinearConv", ["image_int8", s_in, zp, w, s_w, zp, s_out, zp], "conv_int8", name="conv", pads=[1] * 4)
    b.node("DequantizeLinear", ["conv_int8", s_out, zp], "heatmaps", name="out/dequantize")
    b.const("flat_shape", np.array([1, J, S * S], np.int64))
    b.const("grid", np.zeros((S * S, 2), np.float32))
    b.node("Reshape", ["heatmaps", "flat_shape"], "flat", name="head/flatten")
    b.node("MatMul", ["flat", "grid"], "coords", name="head/dsnt")
    model = b.model("qoperator", S)
    onnx.save(model, str(path))
    return path


def conv_limit_model(
    op: str = "Conv",
    cin: int = 8,
    cout: int = 8,
    k: int = 3,
    stride: int = 1,
    pads: tuple[int, int, int, int] | None = None,
    group: int = 1,
    seed: int = 0,
) -> onnx.ModelProto:
    """image -> conv1 (3 -> 8, stride 2) -> [a 1x1 conv 8 -> cin] -> the conv under test `op` (cin -> cout, a
    k x k kernel, `stride`, `pads`, default k // 2 each, `group`; or a MaxPool / AveragePool of cin channels,
    then cout = cin) with a ReLU (none after a pool or a depthwise ConvTranspose, which fuse none) -> a 3x3
    conv to J channels -> the head, with every tensor between ops quantized: a model whose one conv sits over
    or under an operator-rule limit, for comparing the split's units with the estimate's layers."""
    rng = np.random.default_rng(seed)
    b = Builder()
    x = b.stem(rng)
    if cin != 8:
        w = b.param("pre.weight", rng.integers(-40, 41, (cin, 8, 1, 1)).astype(np.int8), 7)
        b.node("Conv", [x, w], "pre_conv", name="pre", kernel_shape=[1, 1])
        b.node("Relu", ["pre_conv"], "pre_float", name="pre/relu")
        x = b.qdq("pre_float", FP["c1"], "pre")
    pads = pads if pads is not None else (k // 2,) * 4
    attrs = {"kernel_shape": [k, k], "strides": [stride] * 2, "pads": list(pads)}
    if op in ("MaxPool", "AveragePool"):
        b.node(op, [x], "mid_conv", name="mid", **attrs)
    else:
        shape = (cin, cout // group, k, k) if op == "ConvTranspose" else (cout, cin // group, k, k)
        w = b.param("mid.weight", rng.integers(-40, 41, shape).astype(np.int8), 7)
        b.node(op, [x, w], "mid_conv", name="mid", group=group, **attrs)
    if op in ("MaxPool", "AveragePool") or (op == "ConvTranspose" and group > 1):  # they fuse no activation
        x = b.qdq("mid_conv", FP["mid"], "mid_q")
    else:
        b.node("Relu", ["mid_conv"], "mid_float", name="mid/relu")
        x = b.qdq("mid_float", FP["mid"], "mid_q")
    side = S // 2
    if op == "ConvTranspose":
        side = (side - 1) * stride + k - pads[0] - pads[2]
    else:
        side = (side + pads[0] + pads[2] - k) // stride + 1
    y = b.conv(x, "conv3", cout, J, 1, rng)
    b.qdq(y, FP["logits"], "logits")
    _head_from(b, "logits", side)
    model = b.model(f"qdq_{op}_limit", side)
    return model


def _head_from(b: Builder, logits: str, side: int, batch: int = 1) -> None:
    """The flat softmax and DSNT head on `logits` (batch, J, side, side), as build()'s."""
    grid = np.array([[pixel_centres(side)[i % side], pixel_centres(side)[i // side]] for i in range(side * side)])
    b.const("flat_shape", np.array([batch, J, side * side], np.int64))
    b.const("map_shape", np.array([batch, J, side, side], np.int64))
    b.const("grid", grid.astype(np.float32))
    b.node("Reshape", [logits, "flat_shape"], "flat", name="head/flatten")
    b.node("Softmax", ["flat"], "flat_sm", name="head/softmax", axis=-1)
    b.node("Reshape", ["flat_sm", "map_shape"], "heatmaps", name="head/heatmaps")
    b.node("MatMul", ["flat_sm", "grid"], "coords", name="head/dsnt")


# The op under test of op_model(case) after conv1's c1 (1, 8, 8, 8): whether the operator rules put it on the
# DPU (on the B1600) is the test's, not the builder's.
OP_CASES = (
    "add", "add_broadcast", "add_const", "add_relu6", "mul_broadcast",
    "gemm", "gemm_transA", "gemm_bias", "gemm_alpha", "gemm_beta", "gemm_bias_rows", "gemm_rows",
    "matmul", "matmul_rows", "matmul_batched",
    "pad", "pad_value", "pad_reflect", "pad_edge", "pad_edge2", "pad_channel",
    "pad_crop",
    "pad_relu", "depth_to_space", "depth_to_space_dcr", "depth_to_space_relu", "bn", "bn_relu", "bn_2560", "bn_2561",
    "reshape", "reshape_relu", "unsqueeze",
)  # fmt: skip


def op_model(case: str, seed: int = 0, batch: int = 1) -> onnx.ModelProto:
    """image -> conv1 (3 -> 8, stride 2) + ReLU -> `case` (OP_CASES) named "mid" -> a 3x3 conv to J channels (or,
    after a fully connected "mid" of J x 16 outputs, its result itself) -> the head, every tensor between ops
    quantized: "add" c1 + c1; "add_broadcast" c1 + its global average (1, 8, 1, 1); "add_const" c1 + a
    per-channel constant; "add_relu6" c1 + c1 then ReLU6; "mul_broadcast" c1 times its global average;
    "gemm" / "matmul" the flattened c1 by a constant (512, 256) weight, "gemm_transA" c1 reshaped to (512, 1) by
    the same weight with transA, "gemm_bias" with an int8 bias C of 256 values, "gemm_alpha" with alpha 0.5,
    "gemm_beta" with that bias and beta 2, "gemm_bias_rows" c1 reshaped to (8, 64) by a (64, 32) weight with a
    bias C of (8, 32) (one row each), "gemm_rows" c1 reshaped to (8, 64) by that weight without a bias,
    "matmul_rows" c1 reshaped to (1, 8, 64) (8 rows of one image) by that weight, "matmul_batched" the
    flattened c1 by a constant (2, 512, 128) weight (a batched product, (2, 1, 128));
    "pad" a constant Pad of 1 on H and W (of 0), "pad_value" of 0.5, "pad_reflect" and "pad_edge" in those
    modes, "pad_edge2" in mode edge of 2 on H and W, "pad_channel" also of 1 on C (before and after), "pad_crop"
    of -1 on H and W, "pad_relu" with a ReLU after it; "depth_to_space" a DepthToSpace of
    block 2 (CRD, as torch's PixelShuffle exports), "depth_to_space_dcr" in mode DCR, "depth_to_space_relu"
    with a ReLU after it; "bn" a
    BatchNormalization of the quantized c1 (not folded into conv1), "bn_relu" with a ReLU after it, "bn_2560" /
    "bn_2561" of that many channels (the channel concat "pre" of two 1x1 convs of c1, 1280 channels and the
    rest, each within a conv's 256 x ICP on the B1600); "reshape" a
    Reshape of c1 to its own shape, "reshape_relu" with a ReLU after it, "unsqueeze" an Unsqueeze of c1 to 5-D
    then (quantized) a Squeeze "mid/squeeze" back. `batch` is the image's fixed first dimension (every reshape
    keeps it: a fully connected case's rows are per image)."""
    rng = np.random.default_rng(seed)
    b = Builder()
    c1 = b.stem(rng)
    channels, side = 8, S // 2
    if case in ("add", "add_relu6"):
        b.node("Add", [c1, c1], "mid_float", name="mid")
        if case == "add_relu6":
            b.const("six", np.array(6.0, np.float32))
            b.const("zero", np.array(0.0, np.float32))
            b.node("Clip", ["mid_float", "zero", "six"], "mid_act", name="mid/relu6")
    elif case in ("add_broadcast", "mul_broadcast"):
        b.node("GlobalAveragePool", [c1], "gap_float", name="gap")
        gap = b.qdq("gap_float", FP["c1"], "gap")
        b.node("Add" if case == "add_broadcast" else "Mul", [c1, gap], "mid_float", name="mid")
    elif case == "add_const":
        bias = b.param("mid.bias", rng.integers(-20, 21, (1, 8, 1, 1)).astype(np.int8), 4)
        b.node("Add", [c1, bias], "mid_float", name="mid")
    elif case.startswith(("gemm", "matmul")):
        flat_in, shape = [batch, -1], (8 * side * side, J * 16)
        if case == "matmul_batched":
            shape = (2, 8 * side * side, J * 8)
        elif case == "gemm_transA":
            flat_in = [8 * side * side, 1]
        elif case in ("gemm_bias_rows", "gemm_rows"):
            flat_in, shape = [8 * batch, -1], (side * side, J * 2)
        elif case == "matmul_rows":
            flat_in, shape = [batch, 8, -1], (side * side, J * 2)
        w = b.param("mid.weight", rng.integers(-40, 41, shape).astype(np.int8), 9)
        b.const("flat_in_shape", np.array(flat_in, np.int64))
        b.node("Reshape", [c1, "flat_in_shape"], "flat_float", name="mid/flatten")
        flat = b.qdq("flat_float", FP["c1"], "flat_in")
        ins, attrs = [flat, w], {"transA": 1} if case == "gemm_transA" else {}
        if case in ("gemm_bias", "gemm_beta", "gemm_bias_rows"):
            rows = (8, shape[1]) if case == "gemm_bias_rows" else (shape[1],)
            ins.append(b.param("mid.bias", rng.integers(-60, 61, rows).astype(np.int8), 12))
        attrs.update({"gemm_alpha": {"alpha": 0.5}, "gemm_beta": {"beta": 2.0}}.get(case, {}))
        b.node("Gemm" if case.startswith("gemm") else "MatMul", ins, "mid_float", name="mid", **attrs)
        b.qdq("mid_float", FP["logits"], "logits_flat")
        b.const("logits_shape", np.array([batch, J, 4, 4], np.int64))
        b.node("Reshape", ["logits_flat", "logits_shape"], "logits", name="mid/unflatten")
        channels, side = 0, 4
    elif case.startswith("pad"):
        hw = {"pad_crop": -1, "pad_edge2": 2}.get(case, 1)
        c = 1 if case == "pad_channel" else 0
        b.const("mid_pads", np.array([0, c, hw, hw, 0, c, hw, hw], np.int64))
        ins = [c1, "mid_pads"]
        if case == "pad_value":
            b.const("mid_value", np.array(0.5, np.float32))
            ins.append("mid_value")
        mode = {"pad_reflect": "reflect", "pad_edge": "edge", "pad_edge2": "edge"}.get(case, "constant")
        b.node("Pad", ins, "mid_float", name="mid", mode=mode)
        if case == "pad_relu":
            b.node("Relu", ["mid_float"], "mid_act", name="mid/relu")
        side += 2 * hw
        channels += 2 * c
    elif case in ("depth_to_space", "depth_to_space_dcr", "depth_to_space_relu"):
        mode = "DCR" if case == "depth_to_space_dcr" else "CRD"
        b.node("DepthToSpace", [c1], "mid_float", name="mid", blocksize=2, mode=mode)
        if case == "depth_to_space_relu":
            b.node("Relu", ["mid_float"], "mid_act", name="mid/relu")
        channels, side = 2, side * 2
    elif case in ("bn", "bn_relu", "bn_2560", "bn_2561"):
        x = c1
        if case.startswith("bn_25"):
            channels = int(case[3:])
            parts = []
            for name, width in (("pre_a", 1280), ("pre_b", channels - 1280)):
                w = b.param(f"{name}.weight", rng.integers(-40, 41, (width, 8, 1, 1)).astype(np.int8), 7)
                b.node("Conv", [c1, w], f"{name}_float", name=name, kernel_shape=[1, 1])
                parts.append(b.qdq(f"{name}_float", FP["c1"], name))
            b.node("Concat", parts, "pre_float", name="pre", axis=1)
            x = b.qdq("pre_float", FP["c1"], "pre_q")
        params = [
            b.const(f"mid.{k}", v.astype(np.float32))
            for k, v in (
                ("scale", rng.uniform(0.5, 2.0, channels)),
                ("bias", rng.uniform(-1.0, 1.0, channels)),
                ("mean", rng.uniform(-0.5, 0.5, channels)),
                ("var", rng.uniform(0.5, 2.0, channels)),
            )
        ]
        b.node("BatchNormalization", [x, *params], "mid_float", name="mid")
        if case == "bn_relu":
            b.node("Relu", ["mid_float"], "mid_act", name="mid/relu")
    elif case in ("reshape", "reshape_relu"):
        b.const("mid_shape", np.array([1, channels, side, side], np.int64))
        b.node("Reshape", [c1, "mid_shape"], "mid_float", name="mid")
        if case == "reshape_relu":
            b.node("Relu", ["mid_float"], "mid_act", name="mid/relu")
    elif case == "unsqueeze":
        b.const("mid_axes", np.array([0], np.int64))
        b.node("Unsqueeze", [c1, "mid_axes"], "mid_5d", name="mid")
        five = b.qdq("mid_5d", FP["c1"], "mid_5d_q")
        b.node("Squeeze", [five, "mid_axes"], "mid_float", name="mid/squeeze")
    else:
        raise ValueError(f"unknown case {case!r}")
    if channels:
        acts = ("add_relu6", "depth_to_space_relu", "pad_relu", "bn_relu", "reshape_relu")
        out = "mid_act" if case in acts else "mid_float"
        x = b.qdq(out, FP["mid"], "mid_q")
        y = b.conv(x, "conv3", channels, J, 1, rng)
        b.qdq(y, FP["logits"], "logits")
    _head_from(b, "logits", side, batch)
    model = b.model(f"qdq_{case}", side, image_batch=batch, out_batch=batch)
    return model


def global_pool_model(side: int, batch: int | str = 1, seed: int = 0) -> onnx.ModelProto:
    """image (batch, 3, 2 side, 2 side) -> conv1 (3 -> 8, stride 2) + ReLU -> a GlobalAveragePool "mid" of its
    side x side map -> a 3x3 conv to J channels (1 x 1 logits) -> the head, every tensor between ops quantized
    (a named batch is symbolic, as `dpupose quantize` writes the image's)."""
    rng = np.random.default_rng(seed)
    b = Builder()
    c1 = b.stem(rng)
    b.node("GlobalAveragePool", [c1], "mid_float", name="mid")
    x = b.qdq("mid_float", FP["mid"], "mid_q")
    b.qdq(b.conv(x, "conv3", 8, J, 1, rng), FP["logits"], "logits")
    _head_from(b, "logits", 1)
    model = b.model("qdq_global_pool", 1, image_batch=batch, out_batch=batch, image=2 * side)
    return model
