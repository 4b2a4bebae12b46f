"""dpupose.dpu.ops: the IP v4 operator rules, each limit on both sides of its boundary."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
from onnx import helper

from dpupose.dpu.config import load_config
from dpupose.dpu.ops import (
    ALU_ENGINE,
    CONV_ENGINE,
    ELTWISE_ENGINE,
    LINEAR_RESIZE_ENGINE,
    TRANSPOSED_DW_ENGINE,
    GraphInfo,
    activation_support,
    dpu_support,
    engine_of,
)

CFG = load_config("u96v2-b1600-pynq")  # B1600: ICP = 10, conv LeakyReLU, no softmax kernel


def info(shapes: dict, consts: tuple[str, ...] = (), on_dpu: bool | None = True) -> GraphInfo:
    constants = {c: np.zeros(shapes[c], np.float32) for c in consts}
    constants.setdefault("sc", np.ones(4, np.float32))  # the resizes' scales: a constant (the rules read the shapes)
    return GraphInfo(shapes, constants, lambda _t: on_dpu)


def conv(k: int = 3, s: int = 1, cin: int = 8, cout: int = 8, group: int = 1, pads: int | None = None, dil: int = 1):
    p = (k - 1) // 2 if pads is None else pads
    node = helper.make_node(
        "Conv", ["x", "w"], ["y"], kernel_shape=[k, k], strides=[s, s], pads=[p] * 4, group=group, dilations=[dil] * 2
    )
    shapes = {"x": (1, cin, 32, 32), "w": (cout, cin // group, k, k), "y": (1, cout, 32 // s, 32 // s)}
    return node, info(shapes, ("w",))


@pytest.mark.parametrize(
    ("kwargs", "ok", "words"),
    [
        ({"k": 16}, True, "conv 16x16"),
        ({"k": 17}, False, "kernel [17, 17] outside 1-16"),
        ({"s": 8}, True, "s8"),
        ({"s": 9}, False, "stride [9, 9] outside 1-8"),
        ({"cin": 2560, "k": 1}, True, "conv engine"),
        ({"cin": 2561, "k": 1}, False, "exceeds 256 x ICP = 2560"),
        # the weight bank (vai_q_pytorch's DPU op filter, check_conv_weights_bank_depth; VART's target factory:
        # CONVW 2048 deep, ICP wide, OCP banks): 3 * 3 * ceil(C_in / 10) <= 2048 on the B1600
        ({"cin": 2270, "cout": 8}, True, "conv 3x3 s1 (conv engine)"),
        ({"cin": 2271, "cout": 8}, False, "take 2052 rows of the 2048-deep weight bank"),
        ({"cin": 810, "cout": 8, "k": 5}, True, "conv 5x5 s1 (conv engine)"),  # 25 * 81 = 2025
        ({"cin": 811, "cout": 8, "k": 5}, False, "take 2050 rows of the 2048-deep weight bank"),  # 25 * 82
        # depthwise (check_dwconv_weights_bank_depth: DWCONVW, ICP wide): kernel_h * kernel_w <= 2048
        ({"cin": 8, "cout": 8, "group": 8, "k": 45, "pads": 0}, True, "depthwise conv 45x45"),
        ({"cin": 8, "cout": 8, "group": 8, "k": 46, "pads": 0}, False, "take 2116 rows of the 2048-deep depthwise"),
        # depthwise channels (filter_depthwise_conv2d: check_load_jump_write on C_in, check_save_jump_read on
        # C_out, 256 x the ALU engine's channel_parallel, ICP = 10 on the B1600)
        ({"cin": 2560, "cout": 2560, "group": 2560}, True, "depthwise conv 3x3"),
        ({"cin": 2561, "cout": 2561, "group": 2561}, False, "depthwise conv with 2561 -> 2561 channels exceeds 256 x"),
        ({"cin": 1280, "cout": 2560, "group": 1280}, True, "depthwise conv 3x3"),  # channel multiplier 2
        ({"cin": 1281, "cout": 2562, "group": 1281}, False, "1281 -> 2562 channels exceeds 256 x ICP = 2560"),
        ({"k": 3, "pads": 2}, True, "conv 3x3"),
        ({"k": 3, "pads": 3}, False, "pad 3 exceeds the dilated kernel - 1 = 2"),
        ({"k": 3, "pads": 3, "dil": 2}, True, "conv 3x3"),
        # UG1414's DPUCZDX8G table: each pad 0 to (kernel - 1) x dilation; vai_q_pytorch's check_pad (a check
        # shared by every target) would take (kernel - 1) x dilation + 1, the dilated kernel itself
        ({"k": 3, "pads": 4, "dil": 2}, True, "conv 3x3"),
        ({"k": 3, "pads": 5, "dil": 2}, False, "pad 5 exceeds the dilated kernel - 1 = 4"),
        ({"k": 5, "pads": 4}, True, "conv 5x5"),
        ({"k": 5, "pads": 5}, False, "pad 5 exceeds the dilated kernel - 1 = 4"),
        ({"cin": 8, "cout": 8, "group": 8, "k": 5}, True, "depthwise conv 5x5"),
        ({"cin": 8, "cout": 8, "group": 8, "k": 33, "pads": 16}, False, "top/left pads [16, 16] exceed 15"),
        ({"cin": 8, "cout": 8, "group": 2}, False, "grouped Conv (groups=2)"),
    ],
)
def test_conv_limits(kwargs, ok, words):
    node, gi = conv(**kwargs)
    supported, reason = dpu_support(node, gi, CFG)
    assert supported is ok and words in reason


# VART's DPUCZDX8G ISA1 target factory gives the ALU engine a pad_limit (pad_left, pad_top 0-15; pad_right,
# pad_bottom 0-255) and vai_q_pytorch's DPU op filter checks it on a depthwise conv and a pool
# (check_pad_with_limit). ONNX pads: top, left, bottom, right.
@pytest.mark.parametrize(
    ("pads", "ok", "words"),
    [
        ((15, 15, 255, 255), True, ""),
        ((0, 0, 256, 0), False, "bottom/right pads [256, 0] exceed 255 (the ALU engine's pad_limit)"),
        ((0, 0, 0, 256), False, "bottom/right pads [0, 256] exceed 255 (the ALU engine's pad_limit)"),
        ((16, 0, 0, 0), False, "top/left pads [16, 0] exceed 15 (the ALU engine's pad_limit)"),
        ((0, 16, 0, 0), False, "top/left pads [0, 16] exceed 15 (the ALU engine's pad_limit)"),
        ((0, 0, -1, 0), False, "negative pads [0, 0, -1, 0]"),
    ],
)
@pytest.mark.parametrize("op", ["depthwise", "MaxPool", "AveragePool"])
def test_the_alu_engines_pad_limit(op, pads, ok, words):
    out = (1, 8, 32 + pads[0] + pads[2] - 2, 32 + pads[1] + pads[3] - 2)
    if op == "depthwise":
        node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], pads=list(pads), group=8)
        gi = info({"x": (1, 8, 32, 32), "w": (8, 1, 3, 3), "y": out}, ("w",))
        what = "depthwise conv"
    else:
        node = helper.make_node(op, ["x"], ["y"], kernel_shape=[3, 3], pads=list(pads))
        gi = info({"x": (1, 8, 32, 32), "y": out})
        what = op
    supported, reason = dpu_support(node, gi, CFG)
    assert supported is ok, reason
    assert (words in reason and reason.startswith(what)) if not ok else "ALU engine" in reason


def test_conv_needs_a_constant_weight():
    node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3])
    assert dpu_support(node, info({"x": (1, 8, 8, 8), "w": (8, 8, 3, 3), "y": (1, 8, 6, 6)}), CFG)[0] is False


def test_engines_and_fused_activations():
    dense, gi = conv()
    dw, gi_dw = conv(cin=8, cout=8, group=8)
    assert engine_of(dense, gi) == CONV_ENGINE and engine_of(dw, gi_dw) == ALU_ENGINE
    leaky_ok = helper.make_node("LeakyRelu", ["y"], ["z"], alpha=26 / 256)
    leaky_bad = helper.make_node("LeakyRelu", ["y"], ["z"], alpha=0.1)
    assert activation_support(leaky_ok, CONV_ENGINE, CFG)[0]
    ok, why = activation_support(leaky_bad, CONV_ENGINE, CFG)
    assert not ok and "slope 0.1" in why and "26/256" in why
    # u96v2-b1600-pynq builds LeakyReLU into the conv engine only.
    ok, why = activation_support(leaky_ok, ALU_ENGINE, CFG)
    assert not ok and "built without it" in why
    relu6 = helper.make_node("Clip", ["y", "lo", "hi"], ["z"])
    consts = GraphInfo({}, {"lo": np.array(0.0), "hi": np.array(6.0)})
    assert activation_support(relu6, ALU_ENGINE, CFG, consts) == (True, "ReLU6 (fused)")
    clip4 = GraphInfo({}, {"lo": np.array(0.0), "hi": np.array(4.0)})
    assert not activation_support(relu6, ALU_ENGINE, CFG, clip4)[0]
    standalone = helper.make_node("Relu", ["x"], ["y"])
    ok, why = dpu_support(standalone, info({"x": (1, 8, 8, 8), "y": (1, 8, 8, 8)}), CFG)
    assert not ok and "standalone" in why


def test_element_wise_ops_fuse_relu_only():
    # VART's target factory for DPUCZDX8G IP v4 (create_target_DPUCZDX8G_ISA1.cpp, Vitis AI 2.5) gives
    # the eltwise engine one nonlinear type, relu, for every configuration; ReLU6 and LeakyReLU exist on
    # the conv and ALU engines only.
    shapes = {"a": (1, 8, 8, 8), "b": (1, 8, 8, 8), "c": (1, 8, 1, 1), "y": (1, 8, 8, 8)}
    add = helper.make_node("Add", ["a", "b"], ["y"])
    mul = helper.make_node("Mul", ["a", "b"], ["y"])
    mul_c = helper.make_node("Mul", ["a", "c"], ["y"])
    assert engine_of(add, info(shapes)) == ELTWISE_ENGINE
    assert engine_of(mul, info(shapes)) == ELTWISE_ENGINE
    assert engine_of(mul_c, info(shapes, ("c",))) == ALU_ENGINE  # a 1x1 depthwise conv
    consts = GraphInfo({}, {"lo": np.array(0.0), "hi": np.array(6.0), "inf": np.array(np.inf)})
    relu = helper.make_node("Relu", ["y"], ["z"])
    clip_relu = helper.make_node("Clip", ["y", "lo", "inf"], ["z"])
    relu6 = helper.make_node("Clip", ["y", "lo", "hi"], ["z"])
    leaky = helper.make_node("LeakyRelu", ["y"], ["z"], alpha=26 / 256)
    full = dataclasses.replace(CFG, alu_activations=CFG.conv_activations)  # leaky on every engine
    assert activation_support(relu, ELTWISE_ENGINE, full, consts) == (True, "ReLU (fused)")
    assert activation_support(clip_relu, ELTWISE_ENGINE, full, consts) == (True, "ReLU (fused)")
    ok, why = activation_support(relu6, ELTWISE_ENGINE, full, consts)
    assert not ok and "ReLU6" in why and "eltwise engine fuses ReLU only" in why
    assert not activation_support(leaky, ELTWISE_ENGINE, full, consts)[0]
    assert activation_support(relu6, ALU_ENGINE, full, consts)[0]  # after a depthwise conv it fuses


def test_softmax_stays_on_the_cpu_even_with_the_softmax_kernel():
    # VART's DPUCZDX8G target has no softmax engine (the fingerprint has no softmax bit): the compiler keeps
    # Softmax in a CPU subgraph; the softmax kernel is the Vitis AI Library's to call, not the xmodel's.
    node = helper.make_node("Softmax", ["x"], ["y"], axis=-1)
    gi = info({"x": (1, 16, 3136), "y": (1, 16, 3136)})
    ok, why = dpu_support(node, gi, CFG)
    assert not ok and "no softmax engine" in why and "Vitis AI Library" not in why
    ok, why = dpu_support(node, gi, dataclasses.replace(CFG, softmax=True))
    assert not ok and "softmax kernel (softmax = true) is called by the Vitis AI Library" in why


def test_depth_to_space_is_a_configuration_switch():
    node = helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=2, mode="CRD")
    gi = info({"x": (1, 32, 7, 7), "y": (1, 8, 14, 14)})
    assert dpu_support(node, gi, CFG)[0]
    ok, why = dpu_support(node, gi, dataclasses.replace(CFG, depth_to_space_on_dpu=False))
    assert not ok and "depth_to_space_on_dpu = false" in why


@pytest.mark.parametrize(
    ("attrs", "opset", "ok"),
    [({"mode": "CRD"}, 17, True), ({"mode": "DCR"}, 17, False), ({}, 17, False), ({}, 0, False),
     ({"mode": "CRD"}, 10, False)],  # DepthToSpace-1 has no mode: DCR, whatever the node says
)  # fmt: skip
def test_depth_to_space_is_the_dpu_s_pixel_shuffle_in_crd_mode_only(attrs, opset, ok):
    # XIR's pixel-shuffle-fix is PyTorch's PixelShuffle (VART's cpu-runner pixel_shuffle.cpp reads input channel
    # c * r * r + i * r + j): ONNX's CRD. DCR, ONNX's default and TensorFlow's order, is not it
    node = helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=2, **attrs)
    gi = dataclasses.replace(info({"x": (1, 32, 7, 7), "y": (1, 8, 14, 14)}), opset=opset)
    supported, reason = dpu_support(node, gi, CFG)
    assert supported is ok, reason
    if not ok:
        assert reason.startswith("DepthToSpace in mode 'DCR': the DPU's pixel shuffle (XIR pixel-shuffle-fix")


@pytest.mark.parametrize(("channels", "ok"), [(2560, True), (2561, False)])
def test_a_batch_norm_takes_the_alu_engine_s_256_x_icp_channels(channels, ok):
    # a standalone batch norm is a 1x1 depthwise conv on the ALU engine (VART's target factory has no batch norm
    # op), so vai_q_pytorch's depthwise channel check applies: 256 x the ALU's channel_parallel, ICP (10 here)
    node = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"])
    shape = (1, channels, 4, 4)
    gi = info({"x": shape, "y": shape, **{k: (channels,) for k in "sbmv"}}, tuple("sbmv"))
    supported, reason = dpu_support(node, gi, CFG)
    assert supported is ok, reason
    assert ok or reason.startswith("BatchNormalization of 2561 channels exceeds 256 x ICP = 2560 (the ALU engine's")


def test_reasons_name_no_configuration_so_a_shared_walk_fits_each():
    # dpu compare and dpu calibrate walk a model once for configurations alike in graph.rules_key, so a
    # reason that named the configuration would carry the first one's name into the others' exclusions.
    from dpu_onnx import depth_to_space

    from dpupose.dpu.graph import extract_layers, rules_key

    a = dataclasses.replace(CFG, name="first-dpu", depth_to_space_on_dpu=False)
    b = dataclasses.replace(a, name="second-dpu")
    assert rules_key(a) == rules_key(b)
    leaky = helper.make_node("LeakyRelu", ["y"], ["z"], alpha=26 / 256)
    d2s = helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=2, mode="CRD")
    gi = info({"x": (1, 32, 7, 7), "y": (1, 8, 14, 14)})
    for support in (
        lambda cfg: activation_support(leaky, ALU_ENGINE, cfg),  # B1600: LeakyReLU on the conv engine only
        lambda cfg: dpu_support(d2s, gi, cfg),
    ):
        (ok_a, why_a), (ok_b, why_b) = support(a), support(b)
        assert not ok_a and not ok_b and why_a == why_b
        assert "first-dpu" not in why_a and "second-dpu" not in why_b
    ok, why = activation_support(leaky, ALU_ENGINE, a)
    assert why == "LeakyRelu after the alu engine: the DPU is built without it (alu_activations = relu_relu6)"
    # The walk's exclusions: one walk serves both.
    model = depth_to_space(32, 7)
    walk_a, walk_b = extract_layers(model, a).excluded, extract_layers(model, b).excluded
    assert walk_a == walk_b and walk_a and not any("-dpu" in reason for _, _, reason in walk_a)


# vai_q_pytorch's DPU op filter (filter_pool) with VART's DPUCZDX8G ISA1 target factory's alu_limit: each kernel
# side 1-256, a global pool's kernel its input's H x W (each side, not their product); each stride 1-256, not
# checked where the kernel covers the whole input and the output is one pixel.
@pytest.mark.parametrize(
    ("op", "kernel", "stride", "x", "ok", "words"),
    [
        ("MaxPool", [2, 2], [256, 256], (1, 8, 32, 32), True, "MaxPool 2x2 (ALU engine)"),
        ("MaxPool", [2, 2], [257, 1], (1, 8, 32, 32), False, "MaxPool stride [257, 1] outside 1-256 (the ALU"),
        ("AveragePool", [3, 3], [1, 300], (1, 8, 32, 32), False, "AveragePool stride [1, 300] outside 1-256"),
        ("AveragePool", [32, 32], [300, 300], (1, 8, 32, 32), True, "AveragePool 32x32 (ALU engine)"),
        ("MaxPool", [32, 16], [300, 300], (1, 8, 32, 32), False, "stride [300, 300] outside 1-256"),
        ("MaxPool", [256, 1], [1, 1], (1, 8, 256, 4), True, "MaxPool 256x1 (ALU engine)"),
        ("MaxPool", [1, 257], [1, 1], (1, 8, 4, 257), False, "MaxPool kernel [1, 257] outside 1-256"),
        ("GlobalAveragePool", None, None, (1, 8, 16, 17), True, "GlobalAveragePool (ALU engine)"),
        ("GlobalMaxPool", None, None, (1, 8, 256, 256), True, "GlobalMaxPool (ALU engine)"),
        ("GlobalAveragePool", None, None, (1, 8, 257, 1), False, "over 257x1: its kernel, the input's H x W, exceeds"),
        ("GlobalMaxPool", None, None, (1, 8, 2, 257), False, "over 2x257: its kernel, the input's H x W, exceeds 256"),
    ],
)
def test_pool_kernel_and_stride_limits_are_the_alu_engines(op, kernel, stride, x, ok, words):
    attrs = {} if kernel is None else {"kernel_shape": kernel, "strides": stride}
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    supported, reason = dpu_support(node, info({"x": x, "y": (1, 8, 1, 1)}), CFG)
    assert supported is ok and words in reason, reason


# The kernel covers the input, but the pads (top/left up to 15, bottom/right up to 255, the ALU engine's
# pad_limit) leave room for a second window where the stride is under the padded span (ONNX: floor((H + pads -
# kernel) / stride) + 1, or with ceil_mode rounded up, less a window starting in the end padding); only a
# one-pixel output goes unchecked. `out` is the output's H and W, which ONNX Runtime must give too (it takes
# pads under the kernel only, so the kernel and the input are 256 x 256).
@pytest.mark.parametrize(
    ("attrs", "out", "ok"),
    [
        ({"strides": [300, 300]}, (1, 1), True),
        ({"strides": [257, 257], "pads": [15, 0, 255, 0]}, (2, 1), False),  # 256 + 270 - 256 = 270 >= 257
        ({"strides": [300, 257], "pads": [0, 15, 0, 255]}, (1, 2), False),
        ({"strides": [271, 271], "pads": [15, 15, 255, 255]}, (1, 1), True),  # 270 < 271
        ({"strides": [257, 300], "pads": [15, 0, 255, 0], "ceil_mode": 1}, (2, 1), False),  # ceil: 3, less 1
        ({"strides": [300, 300], "pads": [0, 0, 1, 1], "ceil_mode": 1}, (1, 1), True),  # the 2nd starts in pad
        ({"strides": [300, 300], "auto_pad": "SAME_UPPER"}, (1, 1), True),  # ceil(256 / 300)
    ],
)
def test_pool_stride_goes_unchecked_only_for_one_output_pixel(attrs, out, ok):
    import onnxruntime as ort

    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[256, 256], **attrs)
    supported, reason = dpu_support(node, info({"x": (1, 1, 256, 256), "y": (1, 1, *out)}), CFG)
    assert supported is ok, reason
    if not ok:
        assert f"MaxPool stride {attrs['strides']} outside 1-256" in reason
    f32 = onnx.TensorProto.FLOAT
    graph = helper.make_graph(
        [node],
        "pool",
        [helper.make_tensor_value_info("x", f32, [1, 1, 256, 256])],
        [helper.make_empty_tensor_value_info("y")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"x": np.zeros((1, 1, 256, 256), np.float32)})
    assert y.shape[2:] == out


# auto_pad SAME_* pads a pool as ONNX says: total (ceil(64 / 1) - 1) * 1 + k - 64 = k - 1, the odd pixel at the
# end (UPPER) or the beginning (LOWER); the ALU engine takes top/left pads up to 15, bottom/right up to 255.
# The pad-limit check read only the pads attribute, so these pads were taken as 0.
@pytest.mark.parametrize(
    ("auto_pad", "kernel", "ok", "words"),
    [
        ("SAME_UPPER", 32, True, "MaxPool 32x32"),  # total 31: 15 | 16
        ("SAME_UPPER", 34, False, "top/left pads [16, 16] exceed 15"),  # total 33: 16 | 17
        ("SAME_LOWER", 32, False, "top/left pads [16, 16] exceed 15"),  # total 31: 16 | 15
        ("SAME_LOWER", 31, True, "MaxPool 31x31"),  # total 30: 15 | 15
        ("VALID", 34, True, "MaxPool 34x34"),
    ],
)
def test_pool_auto_pad_pads_are_checked_against_the_alu_pad_limit(auto_pad, kernel, ok, words):
    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[kernel, kernel], auto_pad=auto_pad)
    supported, reason = dpu_support(node, info({"x": (1, 8, 64, 64), "y": (1, 8, 64, 64)}), CFG)
    assert supported is ok and words in reason, reason


def test_eltwise_pools_resize_concat_and_the_rest():
    shapes = {"a": (1, 8, 8, 8), "b": (1, 8, 8, 8), "c": (1, 8, 1, 1), "s": (1, 8, 4, 4), "y": (1, 8, 8, 8)}
    add = helper.make_node("Add", ["a", "b"], ["y"])
    # the engine the reason names is the one engine_of gives (VART's target factory: eltwise add and mult)
    assert dpu_support(add, info(shapes), CFG) == (True, "element-wise Add (eltwise engine)")
    mul2 = helper.make_node("Mul", ["a", "b"], ["y"])
    assert dpu_support(mul2, info(shapes), CFG) == (True, "element-wise Mul (eltwise engine)")
    bcast = info({**shapes, "b": (1, 8, 1, 8)})
    assert not dpu_support(add, bcast, CFG)[0]
    mul_c = helper.make_node("Mul", ["a", "c"], ["y"])
    ok, why = dpu_support(mul_c, info(shapes, ("c",)), CFG)
    assert ok and "depthwise" in why
    pool = helper.make_node("MaxPool", ["a"], ["y"], kernel_shape=[3, 3])
    assert dpu_support(pool, info(shapes), CFG)[0]
    big = helper.make_node("AveragePool", ["a"], ["y"], kernel_shape=[257, 1])
    assert not dpu_support(big, info(shapes), CFG)[0]
    up = {"a": (1, 8, 4, 4), "y": (1, 8, 12, 12)}
    near = helper.make_node("Resize", ["a", "", "sc"], ["y"], mode="nearest")
    assert dpu_support(near, info(up), CFG)[0]
    lin3 = helper.make_node("Resize", ["a", "", "sc"], ["y"], mode="linear")
    ok, why = dpu_support(lin3, info(up), CFG)
    assert not ok and "scale 3x3" in why
    lin2 = helper.make_node("Resize", ["a", "", "sc"], ["y"], mode="linear")
    assert dpu_support(lin2, info({"a": (1, 8, 4, 4), "y": (1, 8, 8, 8)}), CFG) == (
        True,
        "Resize bilinear x2 (transposed depthwise conv, ALU engine)",
    )
    # vai_q_pytorch's DPU op filter (after the compiler's partition pass): with half-pixel centres 2 or 4,
    # without (asymmetric) 2, 4 or 8; other mappings and unequal scales on the CPU; no activation fused
    x8 = info({"a": (1, 8, 2, 2), "y": (1, 8, 16, 16)})
    ok, why = dpu_support(lin2, x8, CFG)
    assert not ok and why == "bilinear Resize at scale 8x8 (only 2, 4 with half_pixel, the same on H and W)"
    asym = helper.make_node(
        "Resize", ["a", "", "sc"], ["y"], mode="linear", coordinate_transformation_mode="asymmetric"
    )
    assert dpu_support(asym, x8, CFG)[0]
    crop = helper.make_node(
        "Resize", ["a", "", "sc"], ["y"], mode="linear", coordinate_transformation_mode="tf_crop_and_resize"
    )
    ok, why = dpu_support(crop, info({"a": (1, 8, 4, 4), "y": (1, 8, 8, 8)}), CFG)
    assert not ok and "coordinate_transformation_mode 'tf_crop_and_resize'" in why
    assert not dpu_support(lin2, info({"a": (1, 8, 4, 4), "y": (1, 8, 8, 16)}), CFG)[0]
    gi = info({"a": (1, 8, 4, 4), "y": (1, 8, 8, 8)})
    assert engine_of(lin2, gi) == LINEAR_RESIZE_ENGINE and engine_of(near, gi) == "upsample-fix"
    ok, why = activation_support(helper.make_node("Relu", ["y"], ["z"]), LINEAR_RESIZE_ENGINE, CFG, gi)
    assert not ok and "Relu after a bilinear Resize: the compiler runs that as a transposed depthwise conv" in why
    corners = helper.make_node(
        "Resize", ["a", "", "sc"], ["y"], mode="nearest", coordinate_transformation_mode="align_corners"
    )
    assert not dpu_support(corners, info(up), CFG)[0]
    cat_c = helper.make_node("Concat", ["a", "b"], ["y"], axis=1)
    cat_h = helper.make_node("Concat", ["a", "b"], ["y"], axis=2)
    assert dpu_support(cat_c, info(shapes, on_dpu=False), CFG)[0]
    assert dpu_support(cat_h, info(shapes, on_dpu=True), CFG)[0]
    assert not dpu_support(cat_h, info(shapes, on_dpu=False), CFG)[0]
    reshape = helper.make_node("Reshape", ["a", "shape"], ["y"])
    assert dpu_support(reshape, info({**shapes, "shape": (2,)}, ("shape",), on_dpu=True), CFG)[0]
    assert not dpu_support(reshape, info({**shapes, "shape": (2,)}, ("shape",), on_dpu=False), CFG)[0]
    for op in ("Sigmoid", "Tanh", "Exp", "ReduceMax"):
        ok, why = dpu_support(helper.make_node(op, ["a"], ["y"]), info(shapes), CFG)
        assert not ok and f"{op} is not a DPU operator" in why
    flat = helper.make_node("Add", ["p", "q"], ["r"])
    ok, why = dpu_support(flat, info({"p": (1, 32), "q": (1, 32), "r": (1, 32)}), CFG)
    assert not ok and "4-D" in why
    custom = helper.make_node("Foo", ["a"], ["y"], domain="com.example")
    assert not dpu_support(custom, info(shapes), CFG)[0]


def test_hard_activations_are_dpu_ops_of_their_own_never_fused():
    # VART's target factory for DPUCZDX8G (create_target_DPUCZDX8G_ISA1.cpp, Vitis AI 2.5-3.5): the conv and ALU
    # engines' nonlinear types are relu, leaky_relu and relu_six; hsigmoid is an ALU op type of its own
    # (add_alu_type(Target::Alu::hsigmoid)), and the eltwise engine has add and mult. So a hard sigmoid is an ALU
    # op and a hard swish an ALU hsigmoid and an eltwise mult, whatever they follow.
    full = dataclasses.replace(CFG, alu_activations=CFG.conv_activations)
    hsig = helper.make_node("HardSigmoid", ["y"], ["z"], alpha=1 / 6, beta=0.5)
    hswish = helper.make_node("HardSwish", ["y"], ["z"])
    for node in (hsig, hswish):
        for engine in (CONV_ENGINE, ALU_ENGINE, ELTWISE_ENGINE):
            ok, why = activation_support(node, engine, full)
            assert not ok, (node.op_type, engine)
    ok, why = activation_support(hswish, CONV_ENGINE, full)
    assert "relu, leaky_relu and relu_six" in why and "target factory" in why
    gi = info({"y": (1, 8, 8, 8), "z": (1, 8, 8, 8)})
    assert dpu_support(hsig, gi, CFG) == (True, "hard sigmoid relu6(x + 3) / 6 (ALU engine hsigmoid)")
    assert dpu_support(hswish, gi, CFG) == (
        True,
        "hard swish x * hsigmoid(x) (ALU engine hsigmoid + eltwise engine mult)",
    )
    assert engine_of(hsig, gi) == ALU_ENGINE and engine_of(hswish, gi) == ELTWISE_ENGINE
    # ONNX's default HardSigmoid (0.2 x + 0.5) is not the DPU's relu6(x + 3) / 6: CPU, saying why.
    default = helper.make_node("HardSigmoid", ["y"], ["z"])
    ok, why = dpu_support(default, gi, CFG)
    assert not ok and "HardSigmoid(alpha=0.2, beta=0.5) is not the DPU's hsigmoid relu6(x + 3) / 6" in why
    # Not 4-D: CPU as every other op.
    assert not dpu_support(hswish, info({"y": (1, 8), "z": (1, 8)}), CFG)[0]


def _resize_model(opset: int, scale: int, **attrs):
    """A float model: x (1, 8, 2, 2) -> Resize linear by constant scales [1, 1, s, s] -> y, at `opset`."""
    from onnx import TensorProto, numpy_helper

    scales = numpy_helper.from_array(np.array([1, 1, scale, scale], np.float32), "scales")
    inputs = ["x", "scales"] if opset < 11 else ["x", "", "scales"]
    node = helper.make_node("Resize", inputs, ["y"], name="up", mode="linear", **attrs)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 2, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 2 * scale, 2 * scale])
    graph = helper.make_graph([node], "up", [x], [y], [scales])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize(
    ("opset", "scale", "attrs", "ok"),
    [
        # Resize-10 has no coordinate_transformation_mode: x_in = x_out / scale, asymmetric: 2, 4 or 8
        (10, 8, {}, True),
        (10, 4, {}, True),
        # from Resize-11 on the attribute decides, default half_pixel: 2 or 4
        (13, 8, {}, False),
        (11, 8, {}, False),
        (13, 4, {}, True),
        (13, 8, {"coordinate_transformation_mode": "asymmetric"}, True),
        (13, 2, {"coordinate_transformation_mode": "align_corners"}, False),
    ],
)
def test_a_resize_is_read_at_the_model_s_opset(opset, scale, attrs, ok):
    from dpupose.split.graph import analyze

    g = analyze(_resize_model(opset, scale, **attrs))
    node = next(n for n in g.nodes if n.op_type == "Resize")
    supported, why = dpu_support(node, g.info(), CFG)
    assert supported is ok
    if ok:
        assert why == f"Resize bilinear x{scale} (transposed depthwise conv, ALU engine)"
    elif opset >= 11 and not attrs:
        assert why == "bilinear Resize at scale 8x8 (only 2, 4 with half_pixel, the same on H and W)"


def test_resize_10_and_upsample_have_no_coordinate_mapping_attribute():
    # an attribute Resize-10 and Upsample do not define means nothing there (the ONNX spec): asymmetric
    x8 = {"a": (1, 8, 2, 2), "y": (1, 8, 16, 16)}
    stray = helper.make_node("Resize", ["a", "sc"], ["y"], mode="linear", coordinate_transformation_mode="half_pixel")
    assert dpu_support(stray, dataclasses.replace(info(x8), opset=10), CFG)[0]
    assert not dpu_support(stray, dataclasses.replace(info(x8), opset=13), CFG)[0]
    corners = helper.make_node(
        "Resize", ["a", "sc"], ["y"], mode="linear", coordinate_transformation_mode="align_corners"
    )
    assert dpu_support(corners, dataclasses.replace(info(x8), opset=10), CFG)[0]
    upsample = helper.make_node("Upsample", ["a", "sc"], ["y"], mode="linear")
    assert dpu_support(upsample, dataclasses.replace(info(x8), opset=9), CFG)[0]
    # an opset not known (0) reads as the newest: the attribute's default, half_pixel
    assert not dpu_support(helper.make_node("Resize", ["a", "", "sc"], ["y"], mode="linear"), info(x8), CFG)[0]


def deconv(k=4, s=2, cin=8, cout=8, pads=1, group=1, dil=1, **attrs):
    node = helper.make_node(
        "ConvTranspose", ["x", "w"], ["y"], kernel_shape=[k, k], strides=[s, s], pads=[pads] * 4, group=group,
        dilations=[dil] * 2, **attrs,
    )  # fmt: skip
    shapes = {"x": (1, cin, 8, 8), "w": (cin, cout // group, k, k), "y": (1, cout, 16, 16)}
    return node, info(shapes, ("w",))


@pytest.mark.parametrize(
    ("kwargs", "ok", "words"),
    [
        # vai_q_pytorch's DPU op filter, filter_transpose_conv2d / check_transposed_kernel: kernel // stride in
        # 1-16, and kernel // stride + 1 too unless the stride divides the kernel; no stride limit of its own
        ({}, True, "transposed conv 4x4 s2 (conv engine)"),
        ({"k": 1, "s": 2, "pads": 0}, False, "kernel // stride outside 1-16"),
        ({"k": 2, "s": 2, "pads": 0}, True, "transposed conv 2x2 s2"),
        ({"k": 16, "s": 1, "pads": 0}, True, "transposed conv 16x16 s1"),
        ({"k": 17, "s": 1, "pads": 0}, False, "kernel // stride outside 1-16"),
        ({"k": 32, "s": 2, "pads": 0}, True, "transposed conv 32x32 s2"),
        ({"k": 33, "s": 2, "pads": 0}, False, "kernel // stride outside 1-16"),  # 16, and 17 for the remainder
        ({"k": 16, "s": 16, "pads": 0}, True, "s16"),
        # check_pad(pad, kernel): 0 to the kernel
        ({"k": 3, "s": 2, "pads": 3}, True, "transposed conv 3x3"),
        ({"k": 3, "s": 2, "pads": 4}, False, "pads [4, 4, 4, 4] outside 0 to the kernel"),
        # C_in, C_out <= 256 x ICP (10 on the B1600); the weight bank: 4 * 4 * ceil(C_in / 10) <= 2048
        ({"cin": 1280, "cout": 8}, True, "conv engine"),
        ({"cin": 1281, "cout": 8}, False, "take 2064 rows of the 2048-deep weight bank"),
        ({"k": 1, "s": 1, "pads": 0, "cin": 2561}, False, "exceeds 256 x ICP = 2560"),
        ({"cout": 2561}, False, "exceeds 256 x ICP = 2560"),
        ({"group": 2}, False, "grouped ConvTranspose (groups=2) is neither dense"),
        ({"group": 8, "cout": 16}, False, "grouped ConvTranspose (groups=8) is neither dense"),  # channel x2
        ({"output_padding": [1, 1]}, False, "output_padding or output_shape"),
        ({"output_shape": [16, 16]}, False, "output_padding or output_shape"),
        ({"dil": 2}, False, "dilated ConvTranspose"),
    ],
)
def test_conv_transpose_limits_are_the_dpu_op_filter_s(kwargs, ok, words):
    node, gi = deconv(**kwargs)
    supported, reason = dpu_support(node, gi, CFG)
    assert supported is ok and words in reason, reason
    if kwargs.get("group", 1) == 1:
        assert engine_of(node, gi) == CONV_ENGINE  # its activations are the conv engine's


@pytest.mark.parametrize(
    ("kwargs", "ok", "words"),
    [
        # vai_q_pytorch's DPU op filter, filter_transpose_depthwise_conv2d: check_transposed_kernel at the ALU
        # engine's alu_limit (kernel 1-256), C <= 256 x ICP (check_load_jump_write), check_pad_with_limit on
        # the ALU engine's pad_limit (top/left 0-15, bottom/right 0-255); no output_padding
        ({}, True, "transposed depthwise conv 4x4 s2 (ALU engine)"),
        ({"k": 3, "s": 1, "pads": 1}, True, "transposed depthwise conv 3x3 s1"),
        ({"k": 1, "s": 2, "pads": 0}, False, "kernel // stride outside 1-256"),
        ({"k": 257, "s": 1, "pads": 0}, False, "kernel // stride outside 1-256 (the ALU engine's alu_limit)"),
        ({"k": 513, "s": 2, "pads": 0}, False, "kernel // stride outside 1-256"),  # 256, and 257 for the rest
        # the depthwise weight bank (DWCONVW, 2048 deep), which holds the kernel as a depthwise conv's
        ({"k": 45, "s": 1, "pads": 0}, True, "transposed depthwise conv 45x45 s1"),  # 2025 rows
        ({"k": 46, "s": 1, "pads": 0}, False, "weights 46x46 take 2116 rows of the 2048-deep depthwise weight bank"),
        ({"k": 45, "s": 3, "pads": 0}, True, "transposed depthwise conv 45x45 s3"),  # the whole kernel, any stride
        ({"k": 46, "s": 23, "pads": 0}, False, "take 2116 rows of the 2048-deep depthwise weight bank"),
        ({"k": 256, "s": 1, "pads": 0}, False, "take 65536 rows of the 2048-deep depthwise weight bank"),
        ({"k": 255, "s": 2, "pads": 0}, False, "take 65025 rows"),  # kernel // stride 127, and 128: in alu_limit
        ({"k": 16, "s": 16, "pads": 15}, True, "s16"),
        ({"k": 16, "s": 16, "pads": 16}, False, "top/left pads [16, 16] exceed 15"),
        ({"cin": 2560, "cout": 2560}, True, "ALU engine"),
        ({"cin": 2561, "cout": 2561}, False, "depthwise ConvTranspose of 2561 channels exceeds 256 x ICP = 2560"),
        ({"output_padding": [1, 1]}, False, "output_padding or output_shape"),
        ({"dil": 2}, False, "dilated ConvTranspose"),
    ],
)
def test_depthwise_conv_transpose_limits_are_the_dpu_op_filter_s(kwargs, ok, words):
    kwargs = {"group": kwargs.get("cin", 8), **kwargs}
    node, gi = deconv(**kwargs)
    supported, reason = dpu_support(node, gi, CFG)
    assert supported is ok and words in reason, reason
    assert engine_of(node, gi) == TRANSPOSED_DW_ENGINE  # the ALU engine's, fusing no activation


@pytest.mark.parametrize(
    ("kernel", "ok"),
    [((8, 256), True), ((9, 228), False), ((1, 256), True), ((2048, 1), False), ((256, 1), True)],
)
def test_a_depthwise_conv_transpose_s_kernel_is_held_to_the_depthwise_weight_bank(kernel, ok):
    # VART's DPUCZDX8G target factory: the ALU engine's one weight bank is DWCONVW (2048 deep, ICP wide) and its
    # op types have a dwconv and no transposed one; the stride-1 depthwise conv a transposed one becomes (the
    # cpu-runner's tdwconv.cpp) keeps the whole KH x KW there, one row per tap: 8 x 256 = 2048 fits, 9 x 228 =
    # 2052 does not (a kernel of 2048 is past the alu_limit's 256 first), at any stride
    node = helper.make_node(
        "ConvTranspose", ["x", "w"], ["y"], kernel_shape=list(kernel), strides=[1, 1], pads=[0] * 4, group=8
    )
    supported, reason = dpu_support(node, info({"x": (1, 8, 8, 8), "w": (8, 1, *kernel)}, ("w",)), CFG)
    assert supported is ok, reason
    if not ok and kernel[0] < 2048:
        assert reason == (
            f"depthwise ConvTranspose weights {kernel[0]}x{kernel[1]} take {kernel[0] * kernel[1]} rows of the "
            "2048-deep depthwise weight bank (kernel_h * kernel_w; the ALU engine keeps them there as a depthwise "
            "conv's)"
        )
    # a depthwise Conv of that kernel is held to the same bank
    dw = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=list(kernel), pads=[0] * 4, group=8)
    dw_ok, _ = dpu_support(dw, info({"x": (1, 8, 300, 300), "w": (8, 1, *kernel)}, ("w",)), CFG)
    assert dw_ok is (ok and max(kernel) <= 256)


def test_no_activation_is_fused_into_a_depthwise_conv_transpose():
    # vai_q_pytorch's DPU op filter, check_nonlinear's table of the activations each conv op fuses: ReLU, ReLU6,
    # PReLU and LeakyReLU for CONVTRANSPOSE2D and DEPTHWISE_CONV2D, none for DEPTHWISE_CONVTRANSPOSE2D (as for a
    # bilinear resize, which becomes one). Every activation after it is refused, even with LeakyReLU on every
    # engine; a dense ConvTranspose's and a depthwise Conv's still fuse
    full = dataclasses.replace(CFG, alu_activations=CFG.conv_activations)
    consts = GraphInfo({}, {"lo": np.array(0.0), "hi": np.array(6.0)})
    dw, gi = deconv(group=8)
    assert dpu_support(dw, gi, CFG)[0]  # the op itself is a DPU op
    for act in (
        helper.make_node("Relu", ["y"], ["z"]),
        helper.make_node("Clip", ["y", "lo", "hi"], ["z"]),
        helper.make_node("LeakyRelu", ["y"], ["z"], alpha=26 / 256),
    ):
        assert activation_support(act, engine_of(dw, gi), full, consts) == (
            False,
            f"{act.op_type} after a depthwise ConvTranspose: the DPU's transposed depthwise conv fuses no "
            "activation (vai_q_pytorch's DPU op filter lists none for it)",
        )
        dense, gi_dense = deconv()
        assert activation_support(act, engine_of(dense, gi_dense), full, consts)[0]
        dwconv, gi_dwconv = conv(cin=8, cout=8, group=8)
        assert activation_support(act, engine_of(dwconv, gi_dwconv), full, consts)[0]


@pytest.mark.parametrize(
    ("pads", "ok"),
    [((0, 0, 255, 255), True), ((0, 0, 256, 255), False), ((0, 0, 255, 256), False), ((15, 0, 0, 0), True),
     ((0, 16, 0, 0), False), ((0, -1, 0, 0), False)],
)  # fmt: skip
def test_depthwise_conv_transpose_pads_are_the_alu_engine_s_each_side(pads, ok):
    node = helper.make_node(
        "ConvTranspose", ["x", "w"], ["y"], kernel_shape=[4, 4], strides=[2, 2], pads=list(pads), group=8
    )
    shapes = {"x": (1, 8, 200, 200), "w": (8, 1, 4, 4)}
    supported, reason = dpu_support(node, info(shapes, ("w",)), CFG)
    assert supported is ok, reason
    assert ok or "the ALU engine's pad" in reason, reason


@pytest.mark.parametrize(
    ("c", "ok", "words"),
    [
        ((8, 1, 1), True, "per-channel constant"),
        ((1, 8, 1, 1), True, "per-channel constant"),
        ((), True, "scalar constant"),
        ((1,), True, "scalar constant"),
        ((1, 1, 1, 1), True, "scalar constant"),
        # ONNX broadcasts on the right: [1, 1, 1, C] and [C] run along W (W == C here), not along the channels
        ((1, 1, 1, 8), False, "shape [1, 1, 1, 8]: ONNX broadcasts along W of the [1, 8, 5, 8] input"),
        ((8,), False, "shape [8]: ONNX broadcasts along W"),
        ((1, 1, 5, 1), False, "broadcasts along H"),
        ((8, 5, 1), False, "broadcasts along C, H"),
        ((1, 1, 8, 1, 1), False, "changes the tensor's rank"),
        ((4, 1, 1), False, "one value or one per channel"),  # 4 values for 8 channels
    ],
)
def test_a_mul_by_a_constant_is_per_channel_only_along_c_as_onnx_broadcasts_it(c, ok, words):
    # the DPU's Mul by a constant is a 1x1 depthwise conv (vai_q_pytorch's filter_eltwise): one value per channel
    node = helper.make_node("Mul", ["a", "c"], ["y"])
    gi = info({"a": (1, 8, 5, 8), "c": c, "y": (1, 8, 5, 8)}, ("c",))
    supported, reason = dpu_support(node, gi, CFG)
    assert supported is ok and words in reason, reason
    assert engine_of(node, gi) == ALU_ENGINE


def test_a_mul_by_a_constant_of_unknown_shape_is_not_taken_for_a_scalar():
    node = helper.make_node("Mul", ["a", "c"], ["y"])
    gi = GraphInfo({"a": (1, 8, 5, 8), "y": (1, 8, 5, 8)}, {"c": np.ones((1, 1, 1, 8), np.float32)})
    ok, reason = dpu_support(node, gi, CFG)  # the value's shape is read when the graph's is not known
    assert not ok and "shape [1, 1, 1, 8]" in reason
    ok, reason = dpu_support(node, GraphInfo({"a": (1, 8, 5, 8)}, {"c": None}), CFG)
    assert not ok and "unknown shape" in reason


@pytest.mark.parametrize(("name", "icp"), [("u96v2-b1600-pynq", 10), ("u96v2-b512", 8)])
def test_a_bilinear_resize_takes_256_x_icp_channels(name, icp):
    # filter_upsample turns it into a transposed depthwise conv, which filter_transpose_depthwise_conv2d
    # checks with check_load_jump_write: C <= 256 x the ALU engine's channel_parallel (ICP)
    cfg = load_config(name)
    assert cfg.icp == icp
    node = helper.make_node("Resize", ["a", "", "sc"], ["y"], mode="linear")
    for c, ok in ((256 * icp, True), (256 * icp + 1, False)):
        supported, reason = dpu_support(node, info({"a": (1, c, 4, 4), "y": (1, c, 8, 8)}), cfg)
        assert supported is ok, reason
    assert reason == (
        f"bilinear Resize of {256 * icp + 1} channels exceeds 256 x ICP = {256 * icp} (the ALU engine's, which runs "
        "it as a transposed depthwise conv)"
    )


@pytest.mark.parametrize(
    ("node", "shapes", "xir"),
    [
        (
            helper.make_node("MaxPool", ["a"], ["y"], kernel_shape=[2, 2], strides=[2, 2]),
            {"y": (1, 8, 4, 4)},
            "pool-fix",
        ),
        (helper.make_node("AveragePool", ["a"], ["y"], kernel_shape=[2, 2]), {"y": (1, 8, 7, 7)}, "pool-fix"),
        (helper.make_node("GlobalAveragePool", ["a"], ["y"]), {"y": (1, 8, 1, 1)}, "pool-fix"),
        (helper.make_node("Concat", ["a", "b"], ["y"], axis=1), {"b": (1, 8, 8, 8), "y": (1, 16, 8, 8)}, "concat-fix"),
        (helper.make_node("Resize", ["a", "", "sc"], ["y"], mode="nearest"), {"y": (1, 8, 16, 16)}, "upsample-fix"),
        (
            helper.make_node("DepthToSpace", ["a"], ["y"], blocksize=2, mode="CRD"),
            {"y": (1, 2, 16, 16)},
            "pixel-shuffle-fix",
        ),
        (helper.make_node("Flatten", ["a"], ["y"]), {"y": (1, 512, 1, 1)}, "reshape-fix"),
    ],
)
def test_no_activation_is_fused_into_an_op_whose_xir_op_has_no_nonlinear(node, shapes, xir):
    # Vitis AI's XIR (built_in_ops.cpp): only the conv ops and eltwise-fix have a "nonlinear" attribute; pool-fix,
    # concat-fix, upsample-fix, pixel-shuffle-fix and reshape-fix have none, though VART's target factory gives
    # the ALU engine (which runs the pools) relu, leaky_relu and relu_six for its depthwise convs
    gi = info({"a": (1, 8, 8, 8), **shapes})
    assert dpu_support(node, gi, CFG)[0]  # the op itself is a DPU op
    assert engine_of(node, gi) == xir
    full = dataclasses.replace(CFG, alu_activations=CFG.conv_activations)  # leaky on every engine
    consts = GraphInfo({}, {"lo": np.array(0.0), "hi": np.array(6.0)})
    for act in (
        helper.make_node("Relu", ["y"], ["z"]),
        helper.make_node("Clip", ["y", "lo", "hi"], ["z"]),
        helper.make_node("LeakyRelu", ["y"], ["z"], alpha=26 / 256),
    ):
        ok, why = activation_support(act, engine_of(node, gi), full, consts)
        assert not ok and why.startswith(f"{act.op_type} after ") and f"XIR's {xir} has no nonlinear" in why
    # the conv ops' still fuse
    dw, gi_dw = conv(cin=8, cout=8, group=8)
    assert activation_support(helper.make_node("Relu", ["y"], ["z"]), engine_of(dw, gi_dw), full)[0]


@pytest.mark.parametrize(("c", "engine", "relu6"), [(2560, ALU_ENGINE, True), (2561, ELTWISE_ENGINE, False)])
def test_a_mul_by_a_constant_over_the_alus_channels_is_the_eltwise_mult(c, engine, relu6):
    # vai_q_pytorch's filter_eltwise makes a Mul by a constant a 1x1 depthwise conv, whose channel check
    # (256 x ICP, 2560 on the B1600) fails above that: it falls back to the eltwise mult, which fuses ReLU only
    node = helper.make_node("Mul", ["a", "c"], ["y"])
    gi = GraphInfo(
        {"a": (1, c, 4, 4), "c": (c, 1, 1), "y": (1, c, 4, 4)},
        {"c": np.ones((c, 1, 1), np.float32), "lo": np.array(0.0), "hi": np.array(6.0)},
    )
    assert dpu_support(node, gi, CFG)[0]
    assert engine_of(node, gi, CFG) == engine
    clip = helper.make_node("Clip", ["y", "lo", "hi"], ["z"])
    ok, why = activation_support(clip, engine_of(node, gi, CFG), CFG, gi)
    assert ok is relu6, why
    assert activation_support(helper.make_node("Relu", ["y"], ["z"]), engine_of(node, gi, CFG), CFG, gi)[0]


def test_a_gemm_s_bias_is_a_constant():
    # XIR's fully connected layer adds a constant bias; a C computed on the way (the emulator refuses one too)
    # leaves the Gemm to the CPU
    node = helper.make_node("Gemm", ["x", "w", "c"], ["y"])
    shapes = {"x": (1, 4), "w": (4, 3), "c": (1, 3), "y": (1, 3)}
    assert dpu_support(node, info(shapes, ("w", "c")), CFG) == (True, "fully connected (conv engine)")
    assert dpu_support(node, info(shapes, ("w",)), CFG) == (
        False,
        "Gemm with a C that is not constant (a fully connected layer's bias is a constant)",
    )


def test_a_layout_op_the_emulator_cannot_read_is_not_put_on_the_dpu():
    # the emulator refuses a Squeeze without axes and a shape or axes that are not constants; the rules put neither
    # on the DPU: a Squeeze without axes removes the batch axis of one image (its output never keeps it first and
    # 1), and a computed shape is a tensor the DPU does not produce (Shape and its arithmetic run on the CPU)
    squeeze = helper.make_node("Squeeze", ["a"], ["y"])
    for x, y in (((1, 8, 1, 1), (8,)), ((1, 1, 1, 1), ()), ((1, 1, 8, 1), (8,))):
        ok, why = dpu_support(squeeze, GraphInfo({"a": x, "y": y}, {}, lambda _t: True), CFG)
        assert not ok and "moves the batch axis from the front" in why
    reshape = helper.make_node("Reshape", ["a", "shape"], ["y"])
    computed = GraphInfo({"a": (1, 8, 2, 2), "shape": (2,), "y": (1, 32)}, {}, lambda t: t == "a")
    assert dpu_support(reshape, computed, CFG) == (False, "Reshape of a tensor the DPU does not produce")


@pytest.mark.parametrize(
    ("case", "rows", "reshape"),
    [("gemm", 0, "dpu"), ("gemm_bias", 0, "dpu"), ("matmul", 0, "dpu"), ("gemm_rows", [16, 64], "cpu"),
     ("matmul_rows", [2, 8, 64], "dpu")],
)  # fmt: skip
def test_a_fully_connected_layer_s_rows_are_judged_at_the_model_s_fixed_batch(case, rows, reshape):
    # a model exported with a fixed batch of 2: the rules read its shapes as batch 1, so the flattened c1 (2, 512)
    # was '2 rows of one image at batch 1' and every ordinary Gemm / MatMul went to the CPU (and out of dpu
    # estimate's walk); rows are now per image of the image input's batch, by the rules and the walk alike
    from split_models import op_model

    from dpupose.dpu.graph import extract_layers
    from dpupose.split.assign import assign
    from dpupose.split.graph import analyze

    model = op_model(case, batch=2)
    g = analyze(model)
    a = assign(g, CFG)
    device = {u.name: (a.devices[u.index], a.reasons[u.index]) for u in g.units}
    walk = extract_layers(model, CFG)
    fc = [(layer.inputs, layer.output) for layer in walk.layers if layer.name == "mid"]
    op = "Gemm" if case.startswith("gemm") else "MatMul"
    assert device["mid/flatten"][0] == reshape
    if not rows:
        assert device["mid"] == ("dpu", "fully connected (conv engine)")
        assert fc == [(((2, 512, 1, 1),), (2, 256, 1, 1))]  # two images, one row each
        return
    why = (
        f"{op} of an input of {rows} at batch 2 (8 rows of one image): XIR's fully connected layer (inner-product) "
        "takes each image as one vector"
    )
    assert device["mid"] == ("cpu", why)
    assert fc == [] and ("mid", op, f"not a DPU op ({why})") in walk.excluded
    if reshape == "cpu":  # (2, 8, 8, 8) to (16, 64): the batch axis moved, as (1, 8, 8, 8) to (8, 64) at batch 1
        assert device["mid/flatten"][1] == (
            "Reshape of [2, 8, 8, 8] to [16, 64] (batch 2) moves the batch axis from the front: an image's values "
            "would not be its own, and the DPU runs a layout op on each image"
        )


@pytest.mark.parametrize(
    ("shape", "batch", "rows"),
    [((1, 64), 1, None), ((2, 64), 2, None), ((2, 1, 64), 2, None), ((2, 64), 1, "2 rows"), ((8, 64), 2, "4 rows"),
     ((2, 3, 64), 2, "3 rows"), ((1, 2, 64), 2, "its first axis is not the batch"), ((64,), 2, "no batch axis")],
)  # fmt: skip
def test_fc_rows_refusal_counts_rows_per_image_of_the_batch(shape, batch, rows):
    from dpupose.runtime.dpu_ops import fc_rows_refusal

    why = fc_rows_refusal(shape, batch)
    assert (why is None) == (rows is None)
    if rows is not None:
        assert why.startswith(f"an input of {list(shape)} at batch {batch} ({rows}")


@pytest.mark.parametrize("ip", ["3.3", "3.4", "4.0", "4.1"])
def test_the_rules_put_no_hard_activation_or_eltwise_mult_on_ip_v3(ip):
    # IP v3.x's VART targets (expired_targets/DPUCZDX8G_ISA0_*.prototxt, Xilinx/Vitis-AI b2b227921b66) have no
    # hsigmoid op and an eltwise engine of elew_type add only; IP v4's (create_target_DPUCZDX8G_ISA1.cpp) both. The
    # rules took IP v4's op set at every version: they now say which IP lacks what, and take an Add at either
    v3 = ip.startswith("3.")
    gi = info({"y": (1, 8, 8, 8), "z": (1, 8, 8, 8)})
    lacks = (
        f"on DPUCZDX8G IP v{ip}: its VART targets (DPUCZDX8G_ISA0_*) have no hsigmoid op (its pool and dwconv "
        "engines have none)"
    )
    hsig = helper.make_node("HardSigmoid", ["y"], ["z"], alpha=1 / 6, beta=0.5)
    hswish = helper.make_node("HardSwish", ["y"], ["z"])
    mul = helper.make_node("Mul", ["y", "y"], ["z"])
    add = helper.make_node("Add", ["y", "y"], ["z"])
    if v3:
        assert dpu_support(hsig, gi, CFG, ip) == (False, f"HardSigmoid {lacks}")
        assert dpu_support(hswish, gi, CFG, ip) == (
            False, f"HardSwish {lacks} and an eltwise engine that adds only (elew_type add, no mult)"
        )  # fmt: skip
        assert dpu_support(mul, gi, CFG, ip) == (
            False,
            f"an element-wise Mul of two activations on DPUCZDX8G IP v{ip}: its VART targets (DPUCZDX8G_ISA0_*) have "
            "an eltwise engine that adds only (elew_type add, no mult)",
        )
    else:
        assert dpu_support(hsig, gi, CFG, ip) == (True, "hard sigmoid relu6(x + 3) / 6 (ALU engine hsigmoid)")
        assert dpu_support(hswish, gi, CFG, ip)[0] and dpu_support(mul, gi, CFG, ip)[0]
    assert dpu_support(add, gi, CFG, ip) == (True, "element-wise Add (eltwise engine)")
    # a Mul by a per-channel constant is the ALU's 1x1 depthwise conv at either IP
    per_channel = helper.make_node("Mul", ["y", "c"], ["z"])
    assert dpu_support(per_channel, info({"y": (1, 8, 8, 8), "c": (1, 8, 1, 1), "z": (1, 8, 8, 8)}, ("c",)), CFG, ip)[0]


def test_an_unknown_ip_version_is_refused_by_the_rules():
    from dpupose.errors import ConfigError

    with pytest.raises(ConfigError, match=r"unknown DPUCZDX8G IP version '3\.0'"):
        dpu_support(helper.make_node("HardSwish", ["y"], ["z"]), info({"y": (1, 8, 8, 8)}), CFG, "3.0")


def _pool_node(op: str, kernel=None, stride=None, pads=None, hw=(32, 32)):
    attrs = {} if kernel is None else {"kernel_shape": kernel, "strides": stride or [1, 1], "pads": pads or [0] * 4}
    return helper.make_node(op, ["x"], ["y"], **attrs), info({"x": (1, 8, *hw), "y": (1, 8, 1, 1)})


def _dw_node(k: int, s: int = 1, pads: int = 0):
    node, gi = conv(k=k, s=s, group=8, pads=pads)
    return node, gi


def _dw_deconv_node(k: int, s: int, pads: int):
    return deconv(k=k, s=s, pads=pads, group=8)


# Each limit where IP v3.x's targets (Xilinx/Vitis-AI b2b227921b66, src/vai_runtime/target_factory/
# expired_targets/DPUCZDX8G_ISA0_<ARCH>_{MAX,MAX_BG2}.prototxt: a dwconv engine of dwconv_limit kernel_size 1-16,
# stride 1-8; a pool engine of max_limit kernel_size 1-8, avg_limit 2-8, stride 1-8; no pad_limit) are tighter than
# IP v4's ALU engine (create_target_DPUCZDX8G_ISA1.cpp: alu_limit 1-256, pad_limit 0-15 / 0-255), at its last
# value (on the DPU at every IP) and its first value past (on the CPU at 3.3 and 3.4, with a reason naming the
# version; on the DPU at 4.0 and 4.1). The rules took IP v4's limits at every version.
V3_LIMITS = [
    # (the value at the v3.x limit, the first value past it, the v3.x reason's words)
    (("MaxPool", [8, 8]), ("MaxPool", [9, 9]), "MaxPool kernel [9, 9] outside 1-8 (DPUCZDX8G IP v{ip}'s pool engine"),
    (("AveragePool", [8, 8]), ("AveragePool", [9, 9]), "AveragePool kernel [9, 9] outside 2-8 (DPUCZDX8G IP v{ip}"),
    (("AveragePool", [2, 2]), ("AveragePool", [1, 1]), "AveragePool kernel [1, 1] outside 2-8"),
    (("AveragePool", [3, 3]), ("AveragePool", [3, 2]), "AveragePool kernel [3, 2] is not square (DPUCZDX8G IP v{ip}"),
    (("MaxPool", [2, 2], [8, 8]), ("MaxPool", [2, 2], [9, 9]), "MaxPool stride [9, 9] outside 1-8 (DPUCZDX8G IP v{ip}"),
    (("AveragePool", [2, 2], [1, 8]), ("AveragePool", [2, 2], [1, 9]), "AveragePool stride [1, 9] outside 1-8"),
    (("MaxPool", [3, 3], [1, 1], [3] * 4), ("MaxPool", [3, 3], [1, 1], [3, 3, 4, 3]),
     "MaxPool pads [3, 3, 4, 3] exceed the kernel [3, 3] (DPUCZDX8G IP v{ip}: its DPUCZDX8G_ISA0 targets have no "
     "pad_limit)"),
    (("GlobalMaxPool", None, None, None, (8, 8)), ("GlobalMaxPool", None, None, None, (8, 9)),
     "GlobalMaxPool over 8x9: its kernel, the input's H x W, exceeds 8 on a side (DPUCZDX8G IP v{ip}'s pool"),
    (("GlobalAveragePool", None, None, None, (8, 8)), ("GlobalAveragePool", None, None, None, (9, 9)),
     "GlobalAveragePool over 9x9: its kernel, the input's H x W, is outside 2-8 on a side"),
    (("GlobalAveragePool", None, None, None, (2, 2)), ("GlobalAveragePool", None, None, None, (1, 1)),
     "GlobalAveragePool over 1x1: its kernel, the input's H x W, is outside 2-8 on a side"),
    (("GlobalAveragePool", None, None, None, (7, 7)), ("GlobalAveragePool", None, None, None, (7, 8)),
     "GlobalAveragePool over 7x8: its kernel, the input's H x W, is not square"),
    ((16,), (17,), "depthwise kernel [17, 17] / stride [1, 1] outside 1-16 / 1-8 (DPUCZDX8G IP v{ip}'s dwconv engine"),
    ((3, 8, 1), (3, 9, 1), "depthwise kernel [3, 3] / stride [9, 9] outside 1-16 / 1-8"),
    ((3, 1, 2), (3, 1, 3), "depthwise conv pads [3, 3, 3, 3] exceed the dilated kernel - 1 [2, 2] (DPUCZDX8G IP v{ip}"),
    ((16, 1, 0, "t"), (17, 1, 0, "t"),
     "depthwise ConvTranspose kernel [17, 17] / stride [1, 1]: kernel // stride outside 1-16 (DPUCZDX8G IP v{ip}'s "
     "dwconv engine: the dwconv_limit of its DPUCZDX8G_ISA0 targets)"),
    ((4, 2, 4, "t"), (4, 2, 5, "t"), "depthwise ConvTranspose pads [5, 5, 5, 5] exceed the kernel [4, 4]"),
]  # fmt: skip


def _v3_case(spec):
    if isinstance(spec[0], str):
        op, kernel, *rest = spec
        stride, pads, hw = [*rest, None, None, None][:3]
        return _pool_node(op, kernel, stride, pads, hw or (32, 32))
    if spec[-1] == "t":
        return _dw_deconv_node(*spec[:3])
    return _dw_node(*spec)


@pytest.mark.parametrize(("at", "past", "words"), V3_LIMITS)
@pytest.mark.parametrize("ip", ["3.3", "3.4", "4.0", "4.1"])
def test_ip_v3_has_its_own_tighter_depthwise_and_pool_limits(ip, at, past, words):
    node, gi = _v3_case(at)
    assert dpu_support(node, gi, CFG, ip)[0], dpu_support(node, gi, CFG, ip)
    node, gi = _v3_case(past)
    supported, reason = dpu_support(node, gi, CFG, ip)
    if ip.startswith("3."):
        assert not supported and words.format(ip=ip) in reason, reason
    else:
        assert supported, reason


@pytest.mark.parametrize("ip", ["3.3", "3.4", "4.0", "4.1"])
def test_conv_and_conv_transpose_limits_are_the_same_at_every_ip(ip):
    # conv_limit (kernel_size 1-16, stride 1-8) and the channel and weight-bank limits are alike in the ISA0
    # targets and IP v4's: a dense conv and a transposed one are judged as before at every version
    for kwargs, ok in (({"k": 16}, True), ({"k": 17}, False), ({"s": 8}, True), ({"s": 9}, False)):
        node, gi = conv(**kwargs)
        assert dpu_support(node, gi, CFG, ip) == dpu_support(node, gi, CFG) and dpu_support(node, gi, CFG)[0] is ok
    for kwargs, ok in (({"k": 32, "s": 2, "pads": 0}, True), ({"k": 33, "s": 2, "pads": 0}, False)):
        node, gi = deconv(**kwargs)
        assert dpu_support(node, gi, CFG, ip) == dpu_support(node, gi, CFG) and dpu_support(node, gi, CFG)[0] is ok


@pytest.mark.parametrize(
    ("ip", "dw", "pool"), [("3.4", "dwconv engine", "pool engine"), ("4.0", "ALU engine", "ALU engine")]
)
def test_a_depthwise_conv_s_and_a_pool_s_reason_names_the_ip_s_engine(ip, dw, pool):
    # IP v3.x ran depthwise convs on a dwconv engine and pools on a pool engine (DPUCZDX8G_ISA0_*.prototxt's
    # dwconv_engine, pool_engine), which IP v4 merged into its ALU engine: a reason at 3.4 said "ALU engine"
    assert dpu_support(*_dw_node(3, 1, 1), CFG, ip) == (True, f"depthwise conv 3x3 s1 ({dw})")
    assert dpu_support(*_dw_deconv_node(4, 2, 1), CFG, ip) == (True, f"transposed depthwise conv 4x4 s2 ({dw})")
    assert dpu_support(*_pool_node("MaxPool", [3, 3]), CFG, ip) == (True, f"MaxPool 3x3 ({pool})")
    assert dpu_support(*_pool_node("GlobalAveragePool", hw=(7, 7)), CFG, ip) == (True, f"GlobalAveragePool ({pool})")


@pytest.mark.parametrize("ip", ["3.3", "3.4", "4.0", "4.1"])
def test_ip_v3_dwconv_engine_fuses_relu_and_relu6_only(ip):
    # IP v3.x runs a depthwise conv (and the 1x1 one a BatchNormalization or a Mul by a constant becomes) on its
    # dwconv engine, whose nonlinear_type every DPUCZDX8G_ISA0_<ARCH>_{MAX,MAX_BG2} target (Xilinx/Vitis-AI
    # b2b227921b66, expired_targets/) lists as relu and relu_six: no leaky_relu, whatever the ALU setting. IP v4's
    # ALU engine fuses a LeakyReLU where the configuration builds it in (alu_activations), as before
    full = dataclasses.replace(CFG, alu_activations=CFG.conv_activations)  # leaky on every engine
    consts = GraphInfo({}, {"lo": np.array(0.0), "hi": np.array(6.0), "inf": np.array(np.inf)})
    dw, gi = conv(cin=8, cout=8, group=8)
    assert engine_of(dw, gi) == ALU_ENGINE
    bn = helper.make_node("BatchNormalization", ["a", "s", "b", "m", "v"], ["y"])
    assert engine_of(bn, info({"a": (1, 8, 4, 4), "y": (1, 8, 4, 4)})) == ALU_ENGINE
    relu = helper.make_node("Relu", ["y"], ["z"])
    relu6 = helper.make_node("Clip", ["y", "lo", "hi"], ["z"])
    clip_relu = helper.make_node("Clip", ["y", "lo", "inf"], ["z"])
    leaky = helper.make_node("LeakyRelu", ["y"], ["z"], alpha=26 / 256)
    assert activation_support(relu, ALU_ENGINE, full, consts, ip) == (True, "ReLU (fused)")
    assert activation_support(relu6, ALU_ENGINE, full, consts, ip) == (True, "ReLU6 (fused)")
    assert activation_support(clip_relu, ALU_ENGINE, full, consts, ip) == (True, "ReLU (fused)")
    if ip.startswith("3."):
        assert activation_support(leaky, ALU_ENGINE, full, consts, ip) == (
            False,
            f"LeakyRelu after a depthwise conv on DPUCZDX8G IP v{ip}: its dwconv engine fuses relu and relu_six "
            "only (the nonlinear_type of its DPUCZDX8G_ISA0 targets)",
        )
    else:
        assert activation_support(leaky, ALU_ENGINE, full, consts, ip) == (True, "LeakyReLU 26/256 (fused)")
    assert activation_support(leaky, ALU_ENGINE, CFG, consts, ip) == (
        False,
        "LeakyRelu after the alu engine: the DPU is built without it (alu_activations = relu_relu6)"
        if ip.startswith("4.")
        else f"LeakyRelu after a depthwise conv on DPUCZDX8G IP v{ip}: its dwconv engine fuses relu and relu_six "
        "only (the nonlinear_type of its DPUCZDX8G_ISA0 targets)",
    )
    # the conv engine's and the eltwise engine's are those of IP v4 at both: LeakyReLU after a dense conv, ReLU
    # only after an element-wise op; a LeakyReLU of another slope is refused for its slope
    assert activation_support(leaky, CONV_ENGINE, CFG, consts, ip) == (True, "LeakyReLU 26/256 (fused)")
    assert activation_support(relu, ELTWISE_ENGINE, CFG, consts, ip) == (True, "ReLU (fused)")
    assert not activation_support(relu6, ELTWISE_ENGINE, CFG, consts, ip)[0]
    other = helper.make_node("LeakyRelu", ["y"], ["z"], alpha=0.1)
    assert activation_support(other, ALU_ENGINE, full, consts, ip) == (
        False,
        "LeakyRelu slope 0.1: the DPU's slope is 26/256 = 0.1015625",
    )


@pytest.mark.parametrize("ip", ["3.3", "3.4", "4.0", "4.1"])
def test_ip_v3_pool_engine_fuses_relu(ip):
    # IP v3.x's pool engine lists nonlinear_type relu in every DPUCZDX8G_ISA0 target (expired_targets/, MAX,
    # MAX_BG2 and MIN alike), so a ReLU (or a Clip(0, inf)) after a max, average or global pool fuses there, and
    # nothing else does; IP v4 has no pool engine (its ALU engine runs the pools, and no Xilinx tool fuses an
    # activation into one: XIR's pool-fix has no nonlinear attribute) and fuses none, as before
    full = dataclasses.replace(CFG, alu_activations=CFG.conv_activations)  # leaky on every engine
    consts = GraphInfo({}, {"lo": np.array(0.0), "hi": np.array(6.0), "inf": np.array(np.inf)})
    pools = [
        (helper.make_node("MaxPool", ["a"], ["y"], kernel_shape=[2, 2], strides=[2, 2]), (1, 8, 4, 4)),
        (helper.make_node("AveragePool", ["a"], ["y"], kernel_shape=[2, 2], strides=[2, 2]), (1, 8, 4, 4)),
        (helper.make_node("GlobalAveragePool", ["a"], ["y"]), (1, 8, 1, 1)),
    ]
    relu = helper.make_node("Relu", ["y"], ["z"])
    clip_relu = helper.make_node("Clip", ["y", "lo", "inf"], ["z"])
    others = [
        ("ReLU6", helper.make_node("Clip", ["y", "lo", "hi"], ["z"])),
        ("LeakyRelu", helper.make_node("LeakyRelu", ["y"], ["z"], alpha=26 / 256)),
        ("HardSigmoid", helper.make_node("HardSigmoid", ["y"], ["z"], alpha=1 / 6)),
    ]
    for pool, out in pools:
        gi = info({"a": (1, 8, 8, 8), "y": out})
        assert dpu_support(pool, gi, CFG, ip)[0]
        engine = engine_of(pool, gi)
        assert engine == "pool-fix"
        for act in (relu, clip_relu):
            got = activation_support(act, engine, full, consts, ip)
            if ip.startswith("3."):
                assert got == (True, "ReLU (fused)")
            else:
                assert got == (
                    False,
                    "Relu after a pool: the DPU fuses no activation into it (XIR's pool-fix has no nonlinear "
                    "attribute; only the conv ops and eltwise-fix have one)"
                    if act is relu
                    else "Clip after a pool: the DPU fuses no activation into it (XIR's pool-fix has no nonlinear "
                    "attribute; only the conv ops and eltwise-fix have one)",
                )
        for label, act in others:
            ok, why = activation_support(act, engine, full, consts, ip)
            assert not ok
            if ip.startswith("3."):
                assert why == (
                    f"{label} after a pool on DPUCZDX8G IP v{ip}: its pool engine fuses relu only (the "
                    "nonlinear_type of its DPUCZDX8G_ISA0 targets)"
                )
            else:
                assert why.startswith(f"{act.op_type} after a pool: the DPU fuses no activation into it")
    # the other ops whose XIR op has no nonlinear attribute fuse none at either
    concat = helper.make_node("Concat", ["a", "b"], ["y"], axis=1)
    assert not activation_support(relu, engine_of(concat, info({"a": (1, 8, 8, 8)})), full, consts, ip)[0]
