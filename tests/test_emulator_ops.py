"""The emulator's concat, resize, and pools on tiny QDQ models: against ONNX Runtime running the same file,
within the rounding each rule implies (the integers themselves are checked by hand in
tests/test_dpu_reference.py)."""

import math
import re
from fractions import Fraction

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from dpupose.errors import ModelFileError
from dpupose.quant.torch_ref import TorchQdqReference
from dpupose.runtime import dpu_ops
from dpupose.runtime.emulator import EmulatorRunner, QdqOrtRunner
from dpupose.runtime.qdq_graph import NotEmulated

OPSET = 17


class Model:
    """inputs x0, x1... (float, NCHW) -Q/DQ-> the op's nodes -> Q/DQ -> y."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []

    def const(self, name: str, value) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def const_dq(self, name: str, value: np.ndarray, fp: int) -> str:
        """An int8 constant (weights, a Mul's factor) behind its DequantizeLinear."""
        s = self.const(f"{name}_scale", np.array(2.0**-fp, np.float32))
        z = self.const(f"{name}_zp", np.array(0, np.int8))
        self.nodes.append(helper.make_node("DequantizeLinear", [self.const(name, value), s, z], [f"{name}_dq"]))
        return f"{name}_dq"

    def qdq(self, x: str, fp: int, name: str) -> str:
        s = self.const(f"{name}_scale", np.array(2.0**-fp, np.float32))
        z = self.const(f"{name}_zp", np.array(0, np.int8))
        self.nodes.append(helper.make_node("QuantizeLinear", [x, s, z], [f"{name}_int8"], name=f"{name}/q"))
        self.nodes.append(helper.make_node("DequantizeLinear", [f"{name}_int8", s, z], [name], name=f"{name}/dq"))
        return name

    def input(self, shape, fp: int) -> str:
        name = f"x{len(self.inputs)}"
        self.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape)))
        return self.qdq(name, fp, f"{name}_dq")

    def op(self, op: str, inputs: list[str], **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, ["y_float"], name="op", **attrs))
        return "y_float"

    def build(self, fp_out: int, shape, opset: int = OPSET) -> bytes:
        self.qdq("y_float", fp_out, "y")
        out = helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))
        graph = helper.make_graph(self.nodes, "op", self.inputs, [out], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model.SerializeToString()


def feeds(runner, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {i.name: rng.integers(-128, 128, i.shape, dtype=np.int16).astype(np.int8) for i in runner.inputs}


def torch_ref(model: bytes, x: dict[str, np.ndarray], fps: list[int]) -> np.ndarray:
    """The float64 torch interpreter of the same file (dpupose.quant.torch_ref), int8 NHWC."""
    ref = TorchQdqReference(onnx.load_from_string(model))
    nchw = {k: v.transpose(0, 3, 1, 2) if v.ndim == 4 else v for k, v in x.items()}
    floats = {k: v.astype(np.float64) * 2.0**-fp for (k, v), fp in zip(nchw.items(), fps)}
    return ref.trace(floats)["y_int8"].astype(np.int64)


def ort_plain(model: bytes, x: dict[str, np.ndarray]) -> np.ndarray:
    """ONNX Runtime on the file as written (ties to even), as int8 NHWC."""
    runner = QdqOrtRunner(model, round_ties_up=False)
    return runner.run(x)["y"].astype(np.int64)


def test_concat_equals_onnx_runtime_up_to_its_ties(tmp_path):
    # Channel concat of inputs at fix points 6, 3 and 4 into 4: x0 drops 2 bits (ties), x1 gains one.
    m = Model()
    xs = [m.input((1, c, 5, 6), fp) for c, fp in ((3, 6), (2, 3), (4, 4))]
    m.op("Concat", xs, axis=1)
    model = m.build(4, (1, 9, 5, 6))
    emu = EmulatorRunner(model)
    x = feeds(emu)
    y = emu.run(x)["y"].astype(np.int64)
    assert y.shape == (1, 5, 6, 9)
    # by the rule: x0 / 4 rounded half up, x1 * 2 saturated, x2 as it is
    x0, x1, x2 = (x[f"x{i}"].astype(np.int64) for i in range(3))
    np.testing.assert_array_equal(y[..., :3], np.floor(x0 / 4 + 0.5))
    np.testing.assert_array_equal(y[..., 3:5], np.clip(x1 * 2, -128, 127))
    np.testing.assert_array_equal(y[..., 5:], x2)
    # ONNX Runtime rounds x0's ties (x0 = 2 mod 4) to even: one LSB down there at most, nowhere else
    plain = ort_plain(model, x)
    diff = y - plain
    ties = np.zeros_like(y, dtype=bool)
    ties[..., :3] = x0 % 4 == 2
    assert set(np.unique(diff[ties])) <= {0, 1} and np.any(diff[ties] == 1)
    assert np.all(diff[~ties] == 0)
    # the fast path's tie offsets round them up as the DPU does, and so does the torch interpreter
    np.testing.assert_array_equal(EmulatorRunner(model, exact=False).run(x)["y"], y)
    np.testing.assert_array_equal(torch_ref(model, x, [6, 3, 4]), y)


def test_concat_along_height_and_a_negative_axis():
    m = Model()
    a, b = m.input((1, 2, 3, 4), 5), m.input((1, 2, 2, 4), 5)
    m.op("Concat", [a, b], axis=-2)
    model = m.build(5, (1, 2, 5, 4))
    emu = EmulatorRunner(model)
    x = feeds(emu, 1)
    np.testing.assert_array_equal(emu.run(x)["y"], np.concatenate([x["x0"], x["x1"]], axis=1))
    np.testing.assert_array_equal(emu.run(x)["y"], ort_plain(model, x))


@pytest.mark.parametrize(
    ("op", "attrs", "extra", "out_hw"),
    [
        ("Concat", {"axis": 1}, "second", (3, 4)),
        ("MaxPool", {"kernel_shape": [1, 1]}, None, (3, 4)),
        ("AveragePool", {"kernel_shape": [1, 1]}, None, (3, 4)),
        ("Resize", {"mode": "nearest"}, "scales", (6, 8)),
        ("DepthToSpace", {"blocksize": 1, "mode": "CRD"}, None, (3, 4)),
        ("Pad", {}, "pads", (5, 6)),
    ],
)
def test_a_data_movement_op_with_an_activation_is_not_emulated(op, attrs, extra, out_hw):
    # the DPU fuses no activation into these (XIR's pool-fix, concat-fix, upsample-fix, pixel-shuffle-fix and
    # pad-fix have no nonlinear attribute); the emulator ran them as if the ReLU were not there. The operator rules put
    # the op and its ReLU on the CPU (the tensor between them is not quantized), and dpu estimate leaves it out
    from dpupose.dpu.config import load_config
    from dpupose.dpu.graph import extract_layers
    from dpupose.split.assign import CPU, assign
    from dpupose.split.graph import analyze

    m = Model()
    inputs = [m.input((1, 2, 3, 4), 5)]
    if extra == "second":
        inputs.append(m.input((1, 2, 3, 4), 5))
    elif extra == "scales":
        inputs += ["", m.const("scales", np.array([1, 1, 2, 2], np.float32))]
    elif extra == "pads":
        inputs.append(m.const("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)))
    m.nodes.append(helper.make_node(op, inputs, ["pre"], name="pre", **attrs))
    m.op("Relu", ["pre"])
    model = m.build(5, (1, 2 * len(inputs) if extra == "second" else 2, *out_hw))
    with pytest.raises(NotEmulated, match=f"does not run {op} \\(with activation relu\\)"):
        EmulatorRunner(model)
    cfg = load_config("u96v2-b1600-pynq")
    g = analyze(onnx.load_from_string(model))
    a = assign(g, cfg)
    k = next(u.index for u in g.units if u.name == "pre")
    assert a.devices[k] == CPU and "its fused activation cannot run on the DPU: Relu after " in a.reasons[k]
    assert "has no nonlinear attribute" in a.reasons[k]
    walked = extract_layers(onnx.load_from_string(model), cfg)
    assert not any(layer.name == "pre" for layer in walked.layers)
    assert any(name == "pre" and "has no nonlinear attribute" in why for name, _, why in walked.excluded)


@pytest.mark.parametrize(
    ("attrs", "opset", "mode"),
    [({"mode": "CRD"}, OPSET, "CRD"), ({"mode": "DCR"}, OPSET, "DCR"), ({}, OPSET, "DCR"), ({}, 10, "DCR")],
)
def test_only_a_crd_pixel_shuffle_is_emulated_and_on_the_dpu(attrs, opset, mode):
    # XIR's pixel-shuffle-fix is PyTorch's PixelShuffle (VART's cpu-runner pixel_shuffle.cpp: input channel
    # c * r * r + i * r + j), ONNX's CRD; DCR (ONNX's default, and DepthToSpace-1's only mode) is another order,
    # which the emulator ran as ONNX does and the operator rules put on the DPU
    from dpupose.dpu.config import load_config
    from dpupose.split.assign import CPU, assign
    from dpupose.split.graph import analyze

    m = Model()
    m.op("DepthToSpace", [m.input((1, 8, 3, 4), 5)], blocksize=2, **attrs)
    model = m.build(5, (1, 2, 6, 8), opset)
    g = analyze(onnx.load_from_string(model))
    a = assign(g, load_config("u96v2-b1600-pynq"))
    k = next(u.index for u in g.units if u.op == "DepthToSpace")
    if mode == "DCR":
        with pytest.raises(NotEmulated, match="DepthToSpace in mode 'DCR': the DPU's pixel shuffle .* ONNX's CRD"):
            EmulatorRunner(model)
        assert a.devices[k] == CPU and a.reasons[k].startswith("DepthToSpace in mode 'DCR'")
        return
    assert a.devices[k] != CPU
    emu = EmulatorRunner(model)
    x = feeds(emu, 3)
    y = emu.run(x)["y"]
    # out[h, w, c] = in[h // 2, w // 2, 4 c + 2 (h % 2) + w % 2], the cpu-runner's index; and ONNX Runtime's CRD
    for h, w, c in np.ndindex(6, 8, 2):
        assert y[0, h, w, c] == x["x0"][0, h // 2, w // 2, 4 * c + 2 * (h % 2) + w % 2]
    np.testing.assert_array_equal(y, ort_plain(model, x))


def _resize(fp_in, fp_out, scales, opset=OPSET, **attrs) -> bytes:
    m = Model()
    x = m.input((1, 3, 4, 5), fp_in)
    scales_input = [m.const("scales", np.array(scales, np.float32))]
    m.op("Resize", [x] + ([""] if opset >= 11 else []) + scales_input, mode="nearest", **attrs)
    return m.build(fp_out, (1, 3, 4 * int(scales[2]), 5 * int(scales[3])), opset)


@pytest.mark.parametrize(
    "attrs",
    [
        {},  # ONNX's default: half_pixel, round_prefer_floor
        {"coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"},
        {"coordinate_transformation_mode": "tf_half_pixel_for_nn", "nearest_mode": "floor"},
        {"coordinate_transformation_mode": "pytorch_half_pixel", "nearest_mode": "round_prefer_ceil"},
    ],
)
def test_nearest_resize_is_onnx_runtime_s(attrs):
    for scales in ([1, 1, 2, 2], [1, 1, 3, 2], [1, 1, 4, 4]):
        model = _resize(4, 4, scales, **attrs)
        emu = EmulatorRunner(model)
        x = feeds(emu, 2)
        y = emu.run(x)["y"]
        np.testing.assert_array_equal(y, ort_plain(model, x))
        np.testing.assert_array_equal(y, np.repeat(np.repeat(x["x0"], scales[2], axis=1), scales[3], axis=2))
        np.testing.assert_array_equal(torch_ref(model, x, [4]), y)


def test_resize_10_is_read_too():
    for scales in ([1, 1, 2, 2], [1, 1, 3, 4]):
        model = _resize(4, 4, scales, opset=10)
        emu = EmulatorRunner(model)
        x = feeds(emu, 3)
        np.testing.assert_array_equal(emu.run(x)["y"], ort_plain(model, x))
        np.testing.assert_array_equal(torch_ref(model, x, [4]), emu.run(x)["y"])


def test_nearest_resize_with_a_fix_point_change_rounds_as_the_dpu():
    model = _resize(5, 3, [1, 1, 2, 2])
    emu = EmulatorRunner(model)
    x = feeds(emu, 4)
    y = emu.run(x)["y"].astype(np.int64)
    up = np.repeat(np.repeat(x["x0"].astype(np.int64), 2, axis=1), 2, axis=2)
    np.testing.assert_array_equal(y, np.floor(up / 4 + 0.5))  # half up
    diff = y - ort_plain(model, x)  # ONNX Runtime: ties (up = 2 mod 4) to even
    ties = up % 4 == 2
    assert np.all(diff[~ties] == 0) and set(np.unique(diff[ties])) == {0, 1}
    np.testing.assert_array_equal(EmulatorRunner(model, exact=False).run(x)["y"], y)


@pytest.mark.parametrize(
    ("scales", "attrs", "message"),
    [
        ([1, 1, 4, 4], {"coordinate_transformation_mode": "asymmetric"}, "does not take output pixel x from input"),
        ([1, 1, 2, 2], {"coordinate_transformation_mode": "half_pixel", "nearest_mode": "floor"}, "floor"),
        ([1, 1, 1.5, 1.5], {}, "a whole number of times"),
        ([1, 2, 2, 2], {}, "a whole number of times"),
        ([1, 1, 2, 2], {"mode": "cubic"}, "nearest-neighbour and bilinear resizes, not mode 'cubic'"),
        (
            [1, 1, 8, 8],
            {"mode": "linear"},
            "scales 8x8: the DPU's bilinear resize with half-pixel centres is by 2 or 4",
        ),
        ([1, 1, 3, 3], {"mode": "linear", "coordinate_transformation_mode": "asymmetric"}, "is by 2 or 4 or 8"),
        ([1, 1, 2, 4], {"mode": "linear"}, "scales 2x4: .* the same on H and W"),
        ([1, 1, 2, 2], {"mode": "linear", "coordinate_transformation_mode": "align_corners"}, "'align_corners' is not"),
    ],
)
def test_other_resizes_are_not_emulated(scales, attrs, message):
    m = Model()
    x = m.input((1, 2, 4, 4), 4)
    m.op("Resize", [x, "", m.const("scales", np.array(scales, np.float32))], **{"mode": "nearest", **attrs})
    model = m.build(4, (1, int(2 * scales[1]), int(4 * scales[2]), int(4 * scales[3])))
    with pytest.raises(NotEmulated, match=message):
        EmulatorRunner(model)


def _nearest(scales, computed=False, hw=(4, 4), **attrs) -> bytes:
    """x (1, 2, H, W) -> Resize nearest by `scales` (an initializer, or one passed through an Identity: a
    tensor the graph computes) -> y."""
    m = Model()
    x = m.input((1, 2, *hw), 4)
    sc = m.const("scales", np.array(scales, np.float32))
    if computed:
        m.nodes.append(helper.make_node("Identity", [sc], ["scales_computed"], name="scales/identity"))
        sc = "scales_computed"
    m.op("Resize", [x, "", sc], **{"mode": "nearest", **attrs})
    out = (1, 2, int(hw[0] * scales[2]), int(hw[1] * scales[3]))
    return m.build(4, out)


@pytest.mark.parametrize(
    ("scales", "computed", "attrs", "on_dpu", "why"),
    [
        ([1, 1, 2, 2], False, {}, True, ""),
        ([1, 1, 3, 2], False, {"coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}, True, ""),
        ([1, 1, 1.5, 1.5], False, {}, False, "nearest Resize at scale 1.5x1.5 of a [1, 2, 4, 4] input: the DPU's"),
        ([1, 1, 2, 1.5], False, {}, False, "nearest Resize at scale 2x1.5"),
        ([1, 1, 2, 2], True, {}, False, "Resize whose scales are not a constant (an initializer or Constant node)"),
        (
            [1, 1, 4, 4],
            False,
            {"coordinate_transformation_mode": "asymmetric"},
            False,
            "nearest Resize with coordinate_transformation_mode 'asymmetric' and nearest_mode 'round_prefer_floor'",
        ),
        ([1, 1, 2, 2], False, {"nearest_mode": "floor"}, False, "from input pixel floor(x / scale)"),
    ],
)
def test_the_rules_put_a_nearest_resize_on_the_dpu_exactly_when_the_emulator_runs_it(
    scales, computed, attrs, on_dpu, why
):
    # vai_q_pytorch's DPU op filter (filter_upsample) refuses align_corners only, leaving the scale to the XIR
    # upsample-fix (output = input x scale) that repeats each pixel; a fractional or computed scale, or a
    # mapping other than floor(x / scale), went to the DPU by the rules and was refused by the emulator
    from dpupose.dpu.config import load_config
    from dpupose.dpu.graph import extract_layers
    from dpupose.dpu.ops import dpu_support
    from dpupose.split.graph import analyze

    model = _nearest(scales, computed, **attrs)
    cfg = load_config("u96v2-b1600-pynq")
    g = analyze(onnx.load_from_string(model))
    node = next(n for n in g.nodes if n.op_type == "Resize")
    ok, reason = dpu_support(node, g.info(), cfg)
    assert ok is on_dpu and why in reason, reason
    # dpu estimate's graph walk asks the same rule
    walked = extract_layers(onnx.load_from_string(model), cfg)
    assert any(layer.name == "op" for layer in walked.layers) is on_dpu
    if on_dpu:
        emu = EmulatorRunner(model)
        x = feeds(emu, 1)
        np.testing.assert_array_equal(emu.run(x)["y"], ort_plain(model, x))
    else:  # refused for the Resize, not for anything else of the model
        with pytest.raises(ModelFileError, match="^Resize 'op': "):
            emu = EmulatorRunner(model)
            emu.run(feeds(emu, 1))


def test_a_nearest_resize_of_more_channels_than_the_load_engine_takes_goes_to_the_cpu():
    # filter_upsample's check_load_jump_write: C <= 256 x ICP of the load engine (ICP 10 on the B1600)
    from dpupose.dpu.config import load_config
    from dpupose.dpu.ops import GraphInfo, dpu_support

    cfg = load_config("u96v2-b1600-pynq")
    node = helper.make_node("Resize", ["a", "", "sc"], ["y"], mode="nearest")
    for c, ok in ((2560, True), (2561, False)):
        gi = GraphInfo({"a": (1, c, 2, 2), "y": (1, c, 4, 4)}, {"sc": np.array([1, 1, 2, 2], np.float32)})
        supported, reason = dpu_support(node, gi, cfg)
        assert supported is ok, reason
    assert reason == "nearest Resize of 2561 channels exceeds 256 x ICP = 2560 (the load engine's)"


def _bilinear(fp_in, fp_out, s, opset=OPSET, act=None, **attrs) -> bytes:
    m = Model()
    x = m.input((1, 3, 4, 5), fp_in)
    scales = [m.const("scales", np.array([1, 1, s, s], np.float32))]
    inputs = [x] + ([""] if opset >= 11 else []) + scales
    if act is None:
        m.op("Resize", inputs, mode="linear", **attrs)
    else:
        m.nodes.append(helper.make_node("Resize", inputs, ["up"], name="up", mode="linear", **attrs))
        m.op(act, ["up"])
    return m.build(fp_out, (1, 3, 4 * s, 5 * s), opset)


def _bilinear_closed_form(x: np.ndarray, s: int, half_pixel: bool) -> np.ndarray:
    """ONNX Resize linear (and the cpu-runner's BILINEAR) in exact rationals, loop by loop: source coordinate
    (o + 1/2) / s - 1/2 or o / s, its two neighbours clamped to the input, weighted by the fraction."""

    def taps(n):
        out = []
        for o in range(n * s):
            src = (Fraction(2 * o + 1, 2 * s) - Fraction(1, 2)) if half_pixel else Fraction(o, s)
            low = src.numerator // src.denominator
            out.append((min(max(low, 0), n - 1), min(max(low + 1, 0), n - 1), src - low))
        return out

    _, h, w, c = x.shape
    y = np.empty((1, h * s, w * s, c), dtype=object)
    for i, (t, b, fy) in enumerate(taps(h)):
        for j, (left, r, fx) in enumerate(taps(w)):
            top = x[0, t, left] * (1 - fx) + x[0, t, r] * fx
            bottom = x[0, b, left] * (1 - fx) + x[0, b, r] * fx
            y[0, i, j] = top * (1 - fy) + bottom * fy
    return y


@pytest.mark.parametrize(
    ("fp_in", "fp_out", "s", "attrs"),
    [
        (4, 4, 2, {}),  # ONNX's default, half_pixel: PyTorch's align_corners=False too
        (4, 2, 2, {"coordinate_transformation_mode": "pytorch_half_pixel"}),
        (5, 3, 4, {}),
        (4, 5, 4, {}),  # a finer output: no ties
        (4, 1, 8, {"coordinate_transformation_mode": "asymmetric"}),
        (3, 3, 2, {"coordinate_transformation_mode": "asymmetric"}),
    ],
)
def test_bilinear_resize_is_the_exact_mix_rounded_half_up(fp_in, fp_out, s, attrs):
    model = _bilinear(fp_in, fp_out, s, **attrs)
    emu = EmulatorRunner(model)
    x = feeds(emu, s + fp_out)
    y = emu.run(x)["y"].astype(np.int64)
    half = attrs.get("coordinate_transformation_mode", "half_pixel") != "asymmetric"
    v = _bilinear_closed_form(x["x0"].astype(np.int64), s, half) * 2 ** (fp_out - fp_in)
    expected = np.vectorize(lambda q: min(max((q + Fraction(1, 2)).__floor__(), -128), 127))(v)
    np.testing.assert_array_equal(y, expected.astype(np.int64))
    np.testing.assert_array_equal(torch_ref(model, x, [fp_in]), y)
    # ONNX Runtime's interpolation is exact for these power-of-two fractions: it rounds the same values,
    # ties to even, which the fast path's offsets round up
    even = np.vectorize(lambda q: min(max(round(q), -128), 127))(v)  # Python's round: ties to even
    np.testing.assert_array_equal(ort_plain(model, x), even.astype(np.int64))
    assert fp_out >= fp_in or np.any(expected != even)
    np.testing.assert_array_equal(EmulatorRunner(model, exact=False).run(x)["y"], y)


def test_bilinear_resize_10_is_asymmetric():
    model = _bilinear(4, 2, 8, opset=10)
    emu = EmulatorRunner(model)
    x = feeds(emu, 5)
    y = emu.run(x)["y"]
    np.testing.assert_array_equal(
        y, EmulatorRunner(_bilinear(4, 2, 8, coordinate_transformation_mode="asymmetric")).run(x)["y"]
    )
    np.testing.assert_array_equal(torch_ref(model, x, [4]), y)
    np.testing.assert_array_equal(EmulatorRunner(model, exact=False).run(x)["y"], y)


@pytest.mark.parametrize(("opset", "s"), [(10, 8), (10, 4), (13, 8), (13, 4)])
def test_the_operator_rules_and_the_emulator_read_a_resize_at_the_model_s_opset(opset, s):
    # Resize-10 has no coordinate_transformation_mode (asymmetric: x8 runs on the DPU); Resize-13
    # default to half_pixel (x8 does not): the rules put on the DPU exactly what the emulator runs
    from dpupose.dpu.config import load_config
    from dpupose.dpu.ops import dpu_support
    from dpupose.split.graph import analyze

    model = _bilinear(4, 2, s, opset)
    g = analyze(onnx.load_from_string(model))
    node = next(n for n in g.nodes if n.op_type == "Resize")
    on_dpu, _ = dpu_support(node, g.info(), load_config("u96v2-b1600-pynq"))
    assert on_dpu is (opset == 10 or s == 4)
    if not on_dpu:
        with pytest.raises(NotEmulated, match=f"scales {s}x{s}: the DPU's bilinear resize with half-pixel centres"):
            EmulatorRunner(model)
        return
    emu = EmulatorRunner(model)
    x = feeds(emu, s)
    y = emu.run(x)["y"].astype(np.int64)
    v = _bilinear_closed_form(x["x0"].astype(np.int64), s, opset >= 11) * 2 ** (2 - 4)
    expected = np.vectorize(lambda q: min(max((q + Fraction(1, 2)).__floor__(), -128), 127))(v)
    np.testing.assert_array_equal(y, expected.astype(np.int64))
    even = np.vectorize(lambda q: min(max(round(q), -128), 127))(v)  # ONNX Runtime: exact, ties to even
    np.testing.assert_array_equal(ort_plain(model, x), even.astype(np.int64))


def test_an_activation_after_a_bilinear_resize_is_not_emulated():
    # the compiler's transposed depthwise conv for it fuses none (the operator rules put it on the CPU)
    with pytest.raises(NotEmulated, match="a bilinear resize fuses no activation .*, not relu"):
        EmulatorRunner(_bilinear(4, 4, 2, act="Relu"))


def _resize_axes(mode: str, axes: list[int], by: str, values: list[int], out_hw: tuple[int, int], **attrs) -> bytes:
    """x (1, 2, 4, 4) -> Resize-18 (opset 18) with `axes`, by `values` ("scales" or "sizes") for those axes."""
    m = Model()
    x = m.input((1, 2, 4, 4), 4)
    if by == "scales":
        inputs = [x, "", m.const("scales", np.array(values, np.float32))]
    else:
        inputs = [x, "", "", m.const("sizes", np.array(values, np.int64))]
    m.op("Resize", inputs, mode=mode, axes=axes, **attrs)
    return m.build(4, (1, 2, *out_hw), opset=18)


@pytest.mark.parametrize(
    ("mode", "axes", "by", "values", "out_hw"),
    [
        ("nearest", [2, 3], "scales", [2, 3], (8, 12)),
        ("nearest", [-1, -2], "scales", [3, 2], (8, 12)),  # W 3 times, H twice: the scales in the axes' order
        ("nearest", [0, 1, 3, 2], "scales", [1, 1, 3, 2], (8, 12)),
        ("nearest", [3, 2], "sizes", [12, 8], (8, 12)),
        ("linear", [2, 3], "scales", [2, 2], (8, 8)),
        ("linear", [-2, -1], "sizes", [16, 16], (16, 16)),
    ],
)
def test_a_resize_with_axes_is_read_in_the_axes_order(mode, axes, by, values, out_hw):
    # Resize-18's axes name the axes its scales or sizes are for, in that order, the others unchanged: the
    # emulator refused any axes though the operator rules (which read the shapes) put such a resize on the DPU
    from dpupose.dpu.config import load_config
    from dpupose.dpu.ops import dpu_support
    from dpupose.split.graph import analyze

    model = _resize_axes(mode, axes, by, values, out_hw)
    g = analyze(onnx.load_from_string(model))
    node = next(n for n in g.nodes if n.op_type == "Resize")
    ok, reason = dpu_support(node, g.info(), load_config("u96v2-b1600-pynq"))
    assert ok, reason
    emu = EmulatorRunner(model)
    x = feeds(emu, 3)
    y = emu.run(x)["y"]
    assert y.shape == (1, *out_hw, 2)
    sh, sw = out_hw[0] // 4, out_hw[1] // 4
    if mode == "nearest":  # the pixels repeated, as ONNX Runtime's
        np.testing.assert_array_equal(y, np.repeat(np.repeat(x["x0"], sh, axis=1), sw, axis=2))
        np.testing.assert_array_equal(y, ort_plain(model, x))
    else:  # the same integers as the bilinear resize by scales [1, 1, s, s], within ONNX Runtime's ties of it
        m = Model()
        xin = m.input((1, 2, 4, 4), 4)
        m.op("Resize", [xin, "", m.const("scales", np.array([1, 1, sh, sw], np.float32))], mode="linear")
        np.testing.assert_array_equal(y, EmulatorRunner(m.build(4, (1, 2, *out_hw))).run(x)["y"])
        assert np.abs(y.astype(np.int64) - ort_plain(model, x)).max() <= 1
    np.testing.assert_array_equal(torch_ref(model, x, [4]), y)


def test_a_resize_with_fewer_scales_than_axes_is_not_emulated():
    with pytest.raises(NotEmulated, match=r"2 scales for axes \[0, 1, 2, 3\]"):
        EmulatorRunner(_resize_axes("nearest", [0, 1, 2, 3], "scales", [2, 2], (8, 8)))


def _resize_sizes(mode, sizes, opset, fp_in=4, fp_out=4, hw=(4, 5), **attrs) -> bytes:
    """x (1, 3, H, W) -> Resize(mode) to constant `sizes` -> y; opset 11's scales is an empty tensor (it must
    be given there), from 13 on it is left out."""
    m = Model()
    x = m.input((1, 3, *hw), fp_in)
    roi = m.const("roi", np.zeros(0, np.float32)) if opset == 11 else ""
    scales = m.const("scales", np.zeros(0, np.float32)) if opset == 11 else ""
    m.op("Resize", [x, roi, scales, m.const("sizes", np.array(sizes, np.int64))], mode=mode, **attrs)
    return m.build(fp_out, tuple(sizes), opset)


@pytest.mark.parametrize("opset", [11, 13, 18])
@pytest.mark.parametrize(
    ("mode", "s", "attrs"),
    [
        ("nearest", (2, 3), {}),
        ("nearest", (4, 4), {"coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}),
        ("linear", (2, 2), {}),
        ("linear", (4, 4), {"coordinate_transformation_mode": "pytorch_half_pixel"}),
        ("linear", (8, 8), {"coordinate_transformation_mode": "asymmetric"}),
    ],
)
def test_a_resize_by_sizes_at_whole_multiples_is_the_resize_by_those_scales(opset, mode, s, attrs):
    # sizes [1, 3, 4 sh, 5 sw]: ONNX's scales are sizes / input, sh and sw, and the coordinate mapping is the
    # same; the operator rules put it on the DPU as that resize, and the emulator runs it as that
    from dpupose.dpu.config import load_config
    from dpupose.dpu.ops import dpu_support
    from dpupose.split.graph import analyze

    fp_out = 2 if mode == "linear" else 4
    model = _resize_sizes(mode, [1, 3, 4 * s[0], 5 * s[1]], opset, fp_out=fp_out, **attrs)
    g = analyze(onnx.load_from_string(model))
    node = next(n for n in g.nodes if n.op_type == "Resize")
    assert dpu_support(node, g.info(), load_config("u96v2-b1600-pynq"))[0]
    emu = EmulatorRunner(model)
    x = feeds(emu, sum(s))
    y = emu.run(x)["y"].astype(np.int64)
    assert y.shape == (1, 4 * s[0], 5 * s[1], 3)
    m = Model()  # the same resize by constant scales
    xin = m.input((1, 3, 4, 5), 4)
    roi = m.const("roi", np.zeros(0, np.float32)) if opset == 11 else ""
    m.op("Resize", [xin, roi, m.const("scales", np.array([1, 1, *s], np.float32))], mode=mode, **attrs)
    by_scales = m.build(fp_out, (1, 3, 4 * s[0], 5 * s[1]), opset)
    np.testing.assert_array_equal(y, EmulatorRunner(by_scales).run(x)["y"])
    if mode == "nearest":
        np.testing.assert_array_equal(y, np.repeat(np.repeat(x["x0"], s[0], axis=1), s[1], axis=2))
        np.testing.assert_array_equal(ort_plain(model, x), y)
    else:  # the exact mix, half up; ONNX Runtime's is exact too and rounds it to even
        half = attrs.get("coordinate_transformation_mode", "half_pixel") != "asymmetric"
        v = _bilinear_closed_form(x["x0"].astype(np.int64), s[0], half) * 2 ** (fp_out - 4)
        expected = np.vectorize(lambda q: min(max((q + Fraction(1, 2)).__floor__(), -128), 127))(v)
        np.testing.assert_array_equal(y, expected.astype(np.int64))
        even = np.vectorize(lambda q: min(max(round(q), -128), 127))(v)
        np.testing.assert_array_equal(ort_plain(model, x), even.astype(np.int64))
        assert np.any(expected != even)
    np.testing.assert_array_equal(torch_ref(model, x, [4]), y)
    np.testing.assert_array_equal(EmulatorRunner(model, exact=False).run(x)["y"], y)


@pytest.mark.parametrize(
    ("mode", "sizes", "why"),
    [
        ("nearest", [1, 3, 6, 10], "not a whole multiple of its H and W"),  # H x 1.5
        ("linear", [1, 3, 8, 15], "bilinear Resize at scale 2x3 (only 2, 4 with half_pixel"),  # whole, unequal
        ("nearest", [1, 6, 8, 10], "not a whole multiple of its H and W (the DPU resizes by a whole number, N and C"),
    ],
)
def test_a_resize_by_other_sizes_goes_to_the_cpu_and_is_not_emulated(mode, sizes, why):
    from dpupose.dpu.config import load_config
    from dpupose.dpu.ops import dpu_support
    from dpupose.split.graph import analyze

    model = _resize_sizes(mode, sizes, 13)
    g = analyze(onnx.load_from_string(model))
    node = next(n for n in g.nodes if n.op_type == "Resize")
    on_dpu, reason = dpu_support(node, g.info(), load_config("u96v2-b1600-pynq"))
    assert not on_dpu and why in reason, reason
    emu = EmulatorRunner(model)  # the scales are known with the input: refused when it runs
    with pytest.raises(ModelFileError, match="by whole multiples of its H and W|by one scale on H and W"):
        emu.run(feeds(emu))
    # the fast path (ONNX Runtime, which resizes by any sizes) refuses it too, when loaded: the subgraph's
    # input shapes are static, so the scales are known then
    with pytest.raises(ModelFileError, match="by whole multiples of its H and W|by one scale on H and W"):
        EmulatorRunner(model, exact=False)


def test_a_resize_by_sizes_whose_width_alone_is_not_a_whole_multiple_is_refused_when_it_runs():
    # H x 2 but W 5 -> 12 (x 2.4): not the resize by 2 x 2 (whose output would be 10 wide), refused by the
    # emulator once the input's shape is known, as the operator rules keep it on the CPU
    from dpupose.dpu.config import load_config
    from dpupose.dpu.ops import dpu_support
    from dpupose.split.graph import analyze

    for mode in ("nearest", "linear"):
        model = _resize_sizes(mode, [1, 3, 8, 12], 13)
        g = analyze(onnx.load_from_string(model))
        node = next(n for n in g.nodes if n.op_type == "Resize")
        assert not dpu_support(node, g.info(), load_config("u96v2-b1600-pynq"))[0]
        emu = EmulatorRunner(model)
        with pytest.raises(ModelFileError, match=r"sizes \[1, 3, 8, 12\] .* by whole multiples of its H and W"):
            emu.run(feeds(emu))


def test_a_resize_given_sizes_and_scales_or_another_aspect_policy_is_not_emulated():
    m = Model()
    x = m.input((1, 2, 4, 4), 4)
    scales, sizes = m.const("scales", np.array([1, 1, 2, 2], np.float32)), m.const("sizes", np.array([1, 2, 8, 8]))
    m.op("Resize", [x, m.const("roi", np.zeros(0, np.float32)), scales, sizes], mode="nearest")
    with pytest.raises(NotEmulated, match="both scales and sizes"):
        EmulatorRunner(m.build(4, (1, 2, 8, 8), opset=11))
    with pytest.raises(NotEmulated, match="keep_aspect_ratio_policy"):
        EmulatorRunner(_resize_sizes("nearest", [1, 3, 8, 10], 18, keep_aspect_ratio_policy="not_larger"))


def _pool(op, fp_in, fp_out, hw, out_hw, **attrs) -> bytes:
    m = Model()
    x = m.input((1, 4, *hw), fp_in)
    m.op(op, [x], **attrs)
    return m.build(fp_out, (1, 4, *out_hw))


def _windows(x, k, s, pads, reduce, pad_value=0):
    """Each k x k window (stride s, pads top, left, bottom, right) of the int8 NHWC x reduced over its
    pixels by `reduce` (np.max, np.sum), by a loop: the independent expectation of the pool tests."""
    t, left, b, r = pads
    xp = np.pad(x.astype(np.int64), ((0, 0), (t, b), (left, r), (0, 0)), constant_values=pad_value)
    oh, ow = (xp.shape[1] - k) // s + 1, (xp.shape[2] - k) // s + 1
    return np.array(
        [[reduce(xp[0, i * s : i * s + k, j * s : j * s + k], axis=(0, 1)) for j in range(ow)] for i in range(oh)]
    )[None]


def _windows_max(x, k, s, pads):
    return _windows(x, k, s, pads, np.max, pad_value=-1000)  # a pad never wins


def test_max_pool_equals_onnx_runtime():
    # 3 x 3, stride 2, pads 1 (a MobileNet / ResNet stem's) on 7 x 9: every window by a loop
    model = _pool("MaxPool", 4, 4, (7, 9), (4, 5), kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    emu = EmulatorRunner(model)
    for seed in range(3):
        x = feeds(emu, seed)
        y = emu.run(x)["y"]
        np.testing.assert_array_equal(y, _windows_max(x["x0"], 3, 2, (1, 1, 1, 1)))
        np.testing.assert_array_equal(y, ort_plain(model, x))
        np.testing.assert_array_equal(torch_ref(model, x, [4]), y)
    # 2 x 2, stride 2 on an odd size (the last row and column dropped), asymmetric pads
    model = _pool("MaxPool", 4, 4, (7, 9), (4, 4), kernel_shape=[2, 2], strides=[2, 2], pads=[1, 0, 0, 0])
    x = feeds(EmulatorRunner(model), 5)
    np.testing.assert_array_equal(EmulatorRunner(model).run(x)["y"], ort_plain(model, x))


def test_max_pool_of_unequal_kernel_strides_and_pads_equals_onnx_runtime():
    # kernel 2 x 3, strides 1 down and 2 across, pads top 1, left 1, bottom 0, right 0 on 5 x 6: the
    # padded 6 x 7 gives (6 - 2) / 1 + 1 = 5 rows and (7 - 3) // 2 + 1 = 3 columns; ONNX Runtime's max is
    # exact, so equal
    model = _pool("MaxPool", 4, 4, (5, 6), (5, 3), kernel_shape=[2, 3], strides=[1, 2], pads=[1, 1, 0, 0])
    emu = EmulatorRunner(model)
    x = feeds(emu, 10)
    y = emu.run(x)["y"]
    assert y.shape == (1, 5, 3, 4)
    np.testing.assert_array_equal(y, ort_plain(model, x))
    np.testing.assert_array_equal(torch_ref(model, x, [4]), y)


def test_max_pool_with_a_fix_point_change_rounds_as_the_dpu():
    model = _pool("MaxPool", 5, 4, (6, 6), (3, 3), kernel_shape=[2, 2], strides=[2, 2])
    emu = EmulatorRunner(model)
    x = feeds(emu, 6)
    y = emu.run(x)["y"].astype(np.int64)
    m = _windows_max(x["x0"], 2, 2, (0, 0, 0, 0))
    np.testing.assert_array_equal(y, np.floor(m / 2 + 0.5))
    diff = y - ort_plain(model, x)  # ties (odd maxima) to even in ONNX Runtime
    assert np.all(diff[m % 2 == 0] == 0) and set(np.unique(diff[m % 2 == 1])) == {0, 1}
    np.testing.assert_array_equal(EmulatorRunner(model, exact=False).run(x)["y"], y)


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"ceil_mode": 1}, "ceil_mode"),
        ({"dilations": [2, 2]}, "dilated"),
        ({"pads": [2, 2, 2, 2]}, "not smaller than the kernel"),
        ({"auto_pad": "SAME_UPPER"}, "auto_pad"),
    ],
)
def test_other_max_pools_are_not_emulated(attrs, message):
    m = Model()
    x = m.input((1, 2, 6, 6), 4)
    m.op("MaxPool", [x], kernel_shape=[2, 2], **attrs)
    with pytest.raises(NotEmulated, match=message):
        EmulatorRunner(m.build(4, (1, 2, 5, 5)))


def _window_sums(x, k, s, pads):
    return _windows(x, k, s, pads, np.sum)  # a pad counts as a 0 pixel


def test_average_pool_of_a_power_of_two_kernel_is_onnx_runtime_s_but_at_ties():
    model = _pool("AveragePool", 4, 3, (6, 8), (3, 4), kernel_shape=[2, 2], strides=[2, 2])
    emu = EmulatorRunner(model)
    x = feeds(emu, 7)
    y = emu.run(x)["y"].astype(np.int64)
    sums = _window_sums(x["x0"], 2, 2, (0, 0, 0, 0))
    np.testing.assert_array_equal(y, np.floor(sums / 8 + 0.5))  # 1/4 exactly, then one bit dropped
    diff = y - ort_plain(model, x)
    ties = sums % 8 == 4
    assert np.all(diff[~ties] == 0) and set(np.unique(diff[ties])) == {0, 1}
    np.testing.assert_array_equal(torch_ref(model, x, [4]), y)
    # the fast path is ONNX Runtime's mean as it is (no tie offsets at an average pool)
    np.testing.assert_array_equal(EmulatorRunner(model, exact=False).run(x)["y"], ort_plain(model, x))


def test_average_pool_3x3_uses_7_64_and_differs_from_onnx_runtime_by_that_only():
    model = _pool("AveragePool", 4, 4, (5, 6), (5, 6), kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=1)
    emu = EmulatorRunner(model)
    x = feeds(emu, 8)
    y = emu.run(x)["y"].astype(np.int64)
    sums = _window_sums(x["x0"], 3, 1, (1, 1, 1, 1))
    np.testing.assert_array_equal(y, np.floor(sums * 7 / 64 + 0.5))
    np.testing.assert_array_equal(torch_ref(model, x, [4]), y)
    # ONNX Runtime takes sum / 9: the values differ by |sum| / 576 before rounding, each rounding by 1/2 more
    diff = np.abs(y - ort_plain(model, x))
    assert np.all(diff <= np.floor(np.abs(sums) / 576 + 1)) and np.any(diff > 0)


@pytest.mark.parametrize(("hw", "factor", "shift"), [((4, 4), 1, 4), ((7, 7), 21, 10), ((3, 5), 17, 8)])
def test_global_average_pool(hw, factor, shift):
    # 3 x 5: 17/256 (first reached at shift 8; the reference may keep an equal fraction at a later shift)
    model = _pool("GlobalAveragePool", 4, 5, hw, (1, 1))
    emu = EmulatorRunner(model)
    x = feeds(emu, 9)
    y = emu.run(x)["y"].astype(np.int64)
    sums = x["x0"].astype(np.int64).sum(axis=(1, 2), keepdims=True)
    np.testing.assert_array_equal(y, np.clip(np.floor(sums * factor * 2.0 ** (1 - shift) + 0.5), -128, 127))
    np.testing.assert_array_equal(torch_ref(model, x, [4]), y)
    pixels = hw[0] * hw[1]
    bound = np.floor(np.abs(sums) * abs(factor / 2**shift - 1 / pixels) * 2 + 1)
    assert np.all(np.abs(y - ort_plain(model, x)) <= bound)


def test_an_average_pool_over_more_than_256_pixels_is_the_dpu_s_reciprocal_too():
    # 17 x 17 = 289 pixels was refused ("the emulator averages up to 256 pixels") though the operator rules put a
    # pool of kernel sides up to 256 on the DPU; Xilinx's references search the same factor / 2**shift for any
    # kernel (cpu-runner pool_fix.cpp, vai_q_pytorch's get_avgpool_dpu_coeff): 113 / 2**15 for 289 pixels
    assert dpu_ops.avgpool_factors(17, 17) == (113, 15)
    m = Model()
    x = m.input((1, 2, 17, 17), 4)
    m.op("AveragePool", [x], kernel_shape=[17, 17])
    model = m.build(5, (1, 2, 1, 1))
    emu = EmulatorRunner(model)
    xin = feeds(emu, 4)
    sums = xin["x0"].astype(np.int64).sum(axis=(1, 2), keepdims=True)
    y = emu.run(xin)["y"].astype(np.int64)
    np.testing.assert_array_equal(y, np.clip(np.floor(sums * 113 * 2.0 ** (1 - 15) + 0.5), -128, 127))
    np.testing.assert_array_equal(torch_ref(model, xin, [4]), y)
    # a kernel side over the ALU engine's 256 is not the DPU's (the operator rules put it on the CPU)
    m = Model()
    x = m.input((1, 2, 1, 257), 4)
    m.op("AveragePool", [x], kernel_shape=[1, 257])
    with pytest.raises(NotEmulated, match="kernel 1x257: the DPU's pool kernel is 1 to 256 a side"):
        EmulatorRunner(m.build(4, (1, 2, 1, 1)))


def test_a_large_global_average_pool_rounds_its_product_to_float32_as_the_reference():
    # a 9 x 229 map (2061 pixels, factor 127 / 2**18): the cpu-runner multiplies the sum by the factor in float32,
    # exact below 2**24 only. A sum of 147585 is 71.49999 exactly, 71; its float32 product is 71.5, which DPURound
    # takes to 72 (ONNX Runtime's exact mean, 71.6, gives 72 as well)
    assert dpu_ops.avgpool_factors(9, 229) == (127, 18)
    assert 147585 * 127 / 2**18 < 71.5 and np.float32(147585) * np.float32(127 / 2**18) == np.float32(71.5)
    model = _pool("GlobalAveragePool", 4, 4, (9, 229), (1, 1))
    emu = EmulatorRunner(model)
    x = feeds(emu, 2)
    ch = np.full(9 * 229, 71, np.int8)
    ch[: 147585 - 71 * 9 * 229] = 72  # 1254 pixels of 72, the rest 71: the sum 147585
    x["x0"][0, :, :, 0] = ch.reshape(9, 229)
    y = emu.run(x)["y"].astype(np.int64)
    assert y[0, 0, 0, 0] == 72
    sums = x["x0"].astype(np.int64).sum(axis=(1, 2), keepdims=True)
    product = (sums.astype(np.float32) * np.float32(127 / 2**18)).astype(np.float64)
    np.testing.assert_array_equal(y, np.clip(np.floor(product + 0.5), -128, 127))
    np.testing.assert_array_equal(torch_ref(model, x, [4]), y)


def test_a_padded_average_pool_without_count_include_pad_is_not_emulated():
    m = Model()
    x = m.input((1, 2, 6, 6), 4)
    m.op("AveragePool", [x], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    with pytest.raises(NotEmulated, match="count_include_pad 0 is not emulated"):
        EmulatorRunner(m.build(4, (1, 2, 6, 6)))


def test_a_global_average_pool_too_large_for_the_dpu_is_one_error_naming_it():
    """Its window is the whole map, whose size a hand-made file tells only when it runs: a 257 x 2 map (a side
    over the DPU's 256) stopped the run with a ValueError traceback."""
    from dpupose.errors import ModelFileError

    emu = EmulatorRunner(_pool("GlobalAveragePool", 4, 5, (257, 2), (1, 1)))
    with pytest.raises(ModelFileError, match=r"^DPU step avgpool at 'y_float': average pool over 257x2 pixels") as e:
        emu.run(feeds(emu))
    # bench and the notebook's PoseSession meet it too: not --backend alone, which only dpupose run has
    assert str(e.value).endswith('run this model with the cpu backend (dpupose run --backend cpu; backend="cpu" in '
                                 "PoseSession)")  # fmt: skip
    # the fast path (ONNX Runtime, which averages any map) refuses it too, when loaded: the file's input shape
    # is static, so the window is known then; 256 x 2 still loads and runs
    with pytest.raises(ModelFileError, match=r"^DPU step avgpool at 'y_float': average pool over 257x2 pixels"):
        EmulatorRunner(_pool("GlobalAveragePool", 4, 5, (257, 2), (1, 1)), exact=False)
    fast = EmulatorRunner(_pool("GlobalAveragePool", 4, 5, (256, 2), (1, 1)), exact=False)
    assert fast.run(feeds(fast))["y"].shape == (1, 1, 1, 4)


def all_int8(shape_nhwc) -> np.ndarray:
    """Every int8 value once, as an NHWC tensor of 256 elements."""
    return np.arange(-128, 128, dtype=np.int16).astype(np.int8).reshape(shape_nhwc)


def _hard_sigmoid(fp_in, fp_out, alpha=1 / 6, beta=0.5) -> bytes:
    m = Model()
    x = m.input((1, 4, 8, 8), fp_in)
    m.op("HardSigmoid", [x], alpha=alpha, beta=beta)
    return m.build(fp_out, (1, 4, 8, 8))


@pytest.mark.parametrize(("fp_in", "fp_out"), [(4, 7), (5, 8), (0, 7), (7, 7)])
def test_hard_sigmoid_is_2731_over_2_14_and_onnx_runtime_s_within_one_lsb(fp_in, fp_out):
    model = _hard_sigmoid(fp_in, fp_out)
    emu = EmulatorRunner(model)
    x = {"x0": all_int8((1, 8, 8, 4))}
    y = emu.run(x)["y"].astype(np.int64)
    # the DPU's relu6(x + 3) * 2731 / 2**14 (exact in float64), half up, saturated
    xr = x["x0"].astype(np.float64) * 2.0**-fp_in
    dpu = np.clip(xr + 3, 0, 6) * 2731 / 2**14 * 2.0**fp_out
    np.testing.assert_array_equal(y, np.clip(np.floor(dpu + 0.5), -128, 127))
    np.testing.assert_array_equal(torch_ref(model, x, [fp_in]), y)
    # ONNX Runtime takes 1/6: at most 6 * (2731 / 2**14 - 1/6) = 2**-13.4 apart, 0.02 LSB at fp_out 8, so the
    # results differ by one LSB at most, and only where the DPU's value is that close to a rounding step
    exact = np.clip(xr / 6 + 0.5, 0, 1) * 2.0**fp_out
    plain = ort_plain(model, x)
    diff = y - plain
    near = np.abs(exact - np.floor(exact) - 0.5) < 0.02
    assert np.all(np.abs(diff) <= 1) and np.all(diff[~near] == 0)
    # the fast path is ONNX Runtime as it is (no tie offset: 1/6 is on no grid)
    np.testing.assert_array_equal(EmulatorRunner(model, exact=False).run(x)["y"], plain)


@pytest.mark.parametrize(
    ("act", "attrs", "bounds"),
    [("Relu", {}, None), ("LeakyRelu", {"alpha": 26 / 256}, None), ("Clip", {}, (0.0, 6.0))],
)
def test_an_activation_after_a_hard_sigmoid_is_the_identity_on_it(act, attrs, bounds):
    # The operator rules fuse it (the ALU engine's relu, leaky_relu, relu_six; VART's DPUCZDX8G target
    # factory): the hard sigmoid's result is never negative and at most 1, so each of them leaves it as it is.
    import dataclasses

    from dpupose.dpu.config import load_config
    from dpupose.dpu.ops import GraphInfo, activation_support, engine_of

    fp_in, fp_out = 4, 7
    m = Model()
    x = m.input((1, 4, 8, 8), fp_in)
    hsig = helper.make_node("HardSigmoid", [x], ["hsig"], name="hsig", alpha=1 / 6, beta=0.5)
    m.nodes.append(hsig)
    extra = [m.const(k, np.array(v, np.float32)) for k, v in zip(("lo", "hi"), bounds or ())]
    m.op(act, ["hsig", *extra], **attrs)
    act_node = m.nodes[-1]
    model = m.build(fp_out, (1, 4, 8, 8))
    cfg = load_config("u96v2-b1600-pynq")
    cfg = dataclasses.replace(cfg, alu_activations=cfg.conv_activations)  # LeakyReLU on the ALU engine too
    gi = GraphInfo({}, {"lo": np.array(0.0), "hi": np.array(6.0)})
    assert activation_support(act_node, engine_of(hsig, gi), cfg, gi)[0]
    x = {"x0": all_int8((1, 8, 8, 4))}
    y = EmulatorRunner(model).run(x)["y"].astype(np.int64)
    # the hard sigmoid alone, as above: relu6(x + 3) * 2731 / 2**14, half up, saturated
    xr = x["x0"].astype(np.float64) * 2.0**-fp_in
    dpu = np.clip(xr + 3, 0, 6) * 2731 / 2**14 * 2.0**fp_out
    np.testing.assert_array_equal(y, np.clip(np.floor(dpu + 0.5), -128, 127))
    assert y.min() == 0 and y.max() == 127  # both ends reached: the activation has something to leave alone
    np.testing.assert_array_equal(torch_ref(model, x, [fp_in]), y)
    np.testing.assert_array_equal(y, EmulatorRunner(_hard_sigmoid(fp_in, fp_out)).run(x)["y"])
    # ONNX Runtime runs the activation after its exact hard sigmoid: the hard sigmoid's bound above
    exact = np.clip(xr / 6 + 0.5, 0, 1) * 2.0**fp_out
    diff = y - ort_plain(model, x)
    near = np.abs(exact - np.floor(exact) - 0.5) < 0.02
    assert np.all(np.abs(diff) <= 1) and np.all(diff[~near] == 0)
    np.testing.assert_array_equal(EmulatorRunner(model, exact=False).run(x)["y"], ort_plain(model, x))


@pytest.mark.parametrize(
    ("fp_in", "fp_out", "alpha", "beta", "message"),
    [
        (4, 6, 1 / 6, 0.5, "output fix points of 7 or more"),
        (11, 7, 1 / 6, 0.5, "input fix points 0 to 10"),
        (4, 7, 0.2, 0.5, r"HardSigmoid\(alpha=0.2, beta=0.5\) is not the DPU's relu6"),
        (4, 7, 1 / 6, 0.4, r"HardSigmoid\(alpha=0.166667, beta=0.4\) is not the DPU's relu6"),
    ],
)
def test_other_hard_sigmoids_are_not_emulated(fp_in, fp_out, alpha, beta, message):
    with pytest.raises(NotEmulated, match=message):
        EmulatorRunner(_hard_sigmoid(fp_in, fp_out, alpha, beta))


def test_a_hard_sigmoid_reading_a_conv_without_a_q_dq_pair_is_not_emulated():
    m = Model()
    x = m.input((1, 2, 4, 4), 4)
    w = m.const_dq("w", np.ones((2, 2, 1, 1), np.int8), 6)
    m.nodes.append(helper.make_node("Conv", [x, w], ["conv"], name="conv"))
    m.op("HardSigmoid", ["conv"], alpha=1 / 6, beta=0.5)
    with pytest.raises(NotEmulated, match=r"reading a Conv's result directly is not emulated: .* \(hsigmoid_in\)"):
        EmulatorRunner(m.build(7, (1, 2, 4, 4)))


def _hard_swish(fp_in, fp_out, act: str | None = None, **act_attrs) -> bytes:
    m = Model()
    x = m.input((1, 4, 8, 8), fp_in)
    if act is None:
        m.op("HardSwish", [x])
    else:  # the activation between the hard swish and its Q: fused
        m.nodes.append(helper.make_node("HardSwish", [x], ["hswish"], name="hswish"))
        m.op(act, ["hswish"], **act_attrs)
    return m.build(fp_out, (1, 4, 8, 8))


@pytest.mark.parametrize(("fp_in", "fp_out"), [(4, 4), (5, 5), (4, 5), (6, 4), (0, 3)])
def test_hard_swish_is_x_times_the_hard_sigmoid_at_fix_point_7(fp_in, fp_out):
    model = _hard_swish(fp_in, fp_out)
    emu = EmulatorRunner(model)
    x = {"x0": all_int8((1, 8, 8, 4))}
    y = emu.run(x)["y"].astype(np.int64)
    # h = relu6(x + 3) * 2731 / 2**14 at 2**-7 (half up, at most 127), then x h at fp_out: exact in float64
    xi = x["x0"].astype(np.float64)
    h = np.minimum(np.floor(np.clip(xi * 2.0**-fp_in + 3, 0, 6) * 2731 / 2**14 * 128 + 0.5), 127)
    np.testing.assert_array_equal(y, np.clip(np.floor(xi * h * 2.0 ** (fp_out - fp_in - 7) + 0.5), -128, 127))
    np.testing.assert_array_equal(torch_ref(model, x, [fp_in]), y)
    # ONNX Runtime's x * hardsigmoid(x) is x (h - e) with |e| <= 1/128 (h's rounding, or 127/128 for 1):
    # |x| 2**(fp_out - fp_in) / 128 LSB apart before the two roundings, half an LSB each
    plain = ort_plain(model, x)
    bound = np.floor(np.abs(xi) * 2.0 ** (fp_out - fp_in) / 128 + 1)
    assert np.all(np.abs(y - plain) <= bound)
    np.testing.assert_array_equal(EmulatorRunner(model, exact=False).run(x)["y"], plain)


def test_hard_swish_of_3_and_more_is_x_times_127_128():
    # 127 at fix point 4 (7.94): ONNX Runtime gives 127, the DPU's hard sigmoid saturates at 127/128: 126
    model = _hard_swish(4, 4)
    x = {"x0": np.full((1, 8, 8, 4), 127, np.int8)}
    assert np.all(EmulatorRunner(model).run(x)["y"] == 126) and np.all(ort_plain(model, x) == 127)


@pytest.mark.parametrize(("fp_in", "fp_out"), [(4, 4), (4, 6), (6, 4)])
def test_a_relu_after_a_hard_swish_is_the_mults_relu_before_rounding(fp_in, fp_out):
    # the eltwise engine's mult fuses relu (VART's DPUCZDX8G target factory): max(0, x h) rounded, x h as above
    model = _hard_swish(fp_in, fp_out, "Relu")
    x = {"x0": all_int8((1, 8, 8, 4))}
    y = EmulatorRunner(model).run(x)["y"].astype(np.int64)
    xi = x["x0"].astype(np.float64)
    h = np.minimum(np.floor(np.clip(xi * 2.0**-fp_in + 3, 0, 6) * 2731 / 2**14 * 128 + 0.5), 127)
    v = np.maximum(xi * h * 2.0 ** (fp_out - fp_in - 7), 0)
    np.testing.assert_array_equal(y, np.clip(np.floor(v + 0.5), -128, 127))
    assert np.all(y >= 0) and np.any(xi * h < 0)
    np.testing.assert_array_equal(torch_ref(model, x, [fp_in]), y)
    # ONNX Runtime: the hard swish's bound above (a ReLU moves no value further apart)
    plain = ort_plain(model, x)
    assert np.all(np.abs(y - plain) <= np.floor(np.abs(xi) * 2.0 ** (fp_out - fp_in) / 128 + 1))
    np.testing.assert_array_equal(EmulatorRunner(model, exact=False).run(x)["y"], plain)


def test_what_the_emulator_says_it_runs_after_a_hard_activation_is_what_it_runs():
    # EMULATED (and runtime.md, which repeats it) names every activation the emulator takes after each
    import re
    from pathlib import Path

    from dpupose.runtime.qdq_graph import EMULATED

    names = {"Relu": "ReLU", "Clip": "ReLU6", "LeakyRelu": "LeakyReLU of slope 26/256"}
    taken: dict[str, list[str]] = {"HardSigmoid": [], "HardSwish": []}
    for op in taken:
        for act, attrs in (("Relu", {}), ("Clip", {}), ("LeakyRelu", {"alpha": 26 / 256})):
            m = Model()
            x = m.input((1, 4, 8, 8), 4)
            extra = {"alpha": 1 / 6, "beta": 0.5} if op == "HardSigmoid" else {}
            m.nodes.append(helper.make_node(op, [x], ["h"], name="h", **extra))
            bounds = (
                [m.const(k, np.array(v, np.float32)) for k, v in (("lo", 0.0), ("hi", 6.0))] if act == "Clip" else []
            )
            m.op(act, ["h", *bounds], **attrs)
            try:
                EmulatorRunner(m.build(7, (1, 4, 8, 8)))
            except NotEmulated:
                continue
            taken[op].append(names[act])
    assert taken == {"HardSigmoid": ["ReLU", "ReLU6", "LeakyReLU of slope 26/256"], "HardSwish": ["ReLU"]}
    clause = (
        f"hard sigmoids (with a {', '.join(taken['HardSigmoid'][:-1])} or {taken['HardSigmoid'][-1]} after one) and "
        f"hard swishes (with a {taken['HardSwish'][0]} after one)"
    )
    assert clause in EMULATED
    runtime_md = (Path(__file__).resolve().parents[1] / "docs" / "runtime.md").read_text()
    assert clause in re.sub(r"\s+", " ", runtime_md)


def test_other_activations_after_a_hard_swish_are_not_emulated():
    # the eltwise engine has no other activation: the operator rules put these on the CPU
    with pytest.raises(NotEmulated, match="a hard swish fuses a ReLU only, not leaky"):
        EmulatorRunner(_hard_swish(4, 4, "LeakyRelu", alpha=26 / 256))
    m = Model()
    x = m.input((1, 4, 8, 8), 4)
    m.nodes.append(helper.make_node("HardSwish", [x], ["hswish"], name="hswish"))
    m.op("Clip", ["hswish", m.const("lo", np.array(0.0, np.float32)), m.const("hi", np.array(6.0, np.float32))])
    with pytest.raises(NotEmulated, match="a hard swish fuses a ReLU only, not relu6"):
        EmulatorRunner(m.build(4, (1, 4, 8, 8)))


def test_other_hard_swishes_are_not_emulated():
    with pytest.raises(NotEmulated, match="hard swish from input fix points 0 to 10"):
        EmulatorRunner(_hard_swish(11, 7))
    m = Model()
    x = m.input((1, 2, 4, 4), 4)
    w = m.const_dq("w", np.ones((2, 2, 1, 1), np.int8), 6)
    m.nodes.append(helper.make_node("Conv", [x, w], ["conv"], name="conv"))
    m.op("HardSwish", ["conv"])
    with pytest.raises(
        NotEmulated, match=r"reading a Conv's result directly is not emulated: the DPU fuses no hard swish"
    ):
        EmulatorRunner(m.build(4, (1, 2, 4, 4)))


def _mul(c: np.ndarray, fp_in: int, fp_c: int, fp_out: int, act: str | None = None) -> bytes:
    m = Model()
    x = m.input((1, 4, 16, 16), fp_in)
    c_dq = m.const_dq("c", c, fp_c)
    if act is None:
        m.op("Mul", [x, c_dq])
    else:
        m.nodes.append(helper.make_node("Mul", [c_dq, x], ["mul"], name="mul"))  # the constant first
        m.op(act, ["mul"])
    return m.build(fp_out, (1, 4, 16, 16))


@pytest.mark.parametrize(
    ("c", "fp_c", "fp_out", "act"),
    [
        (np.array([[[64]], [[-3]], [[127]], [[-128]]], np.int8), 6, 4, None),  # per channel, [C, 1, 1]
        (np.array([5, 17, -9, 1], np.int8).reshape(1, 4, 1, 1), 3, 5, None),  # [1, C, 1, 1], gains bits
        (np.array(3, np.int8), 2, 4, None),  # one value
        (np.array([[[64]], [[-3]], [[127]], [[-128]]], np.int8), 6, 4, "Relu"),
    ],
)
def test_mul_by_a_constant_is_onnx_runtime_s_but_at_ties(c, fp_c, fp_out, act):
    fp_in = 4
    model = _mul(c, fp_in, fp_c, fp_out, act)
    emu = EmulatorRunner(model)
    x = {"x0": np.ascontiguousarray(np.repeat(all_int8((1, 16, 16, 1)), 4, axis=3))}  # each value in each channel
    y = emu.run(x)["y"].astype(np.int64)
    # x c * 2**(fp_out - fp_in - fp_c), half up, saturated: exact in float64
    v = x["x0"].astype(np.float64) * c.astype(np.float64).reshape(-1) * 2.0 ** (fp_out - fp_in - fp_c)
    if act == "Relu":
        v = np.maximum(v, 0)
    np.testing.assert_array_equal(y, np.clip(np.floor(v + 0.5), -128, 127))
    np.testing.assert_array_equal(torch_ref(model, x, [fp_in]), y)
    # ONNX Runtime's product is exact: it differs only at the ties (to even), one LSB down; the fast path's
    # tie offsets round them up
    diff = y - ort_plain(model, x)
    ties = v - np.floor(v) == 0.5
    assert np.all(diff[~ties] == 0) and set(np.unique(diff[ties])) <= {0, 1}
    assert fp_out - fp_in - fp_c >= 0 or np.any(diff[ties] == 1)
    np.testing.assert_array_equal(EmulatorRunner(model, exact=False).run(x)["y"], y)


@pytest.mark.parametrize(
    ("shape", "message"),
    [((4, 8, 1), r"shape \[4, 8, 1\]"), ((1, 1, 8, 1), r"shape \[1, 1, 8, 1\]"), ((2, 4, 1, 1), r"\[2, 4, 1, 1\]")],
)
def test_a_mul_by_another_constant_is_not_emulated(shape, message):
    with pytest.raises(NotEmulated, match=f"{message}: the emulator runs a Mul by one value or one per channel"):
        EmulatorRunner(_mul(np.ones(shape, np.int8), 4, 6, 4))


def _mul2(fp0: int, fp1: int, fp_out: int, act: str | None = None, shape1=(1, 4, 16, 16), **act_attrs) -> bytes:
    m = Model()
    a, b = m.input((1, 4, 16, 16), fp0), m.input(shape1, fp1)
    if act is None:
        m.op("Mul", [a, b])
    else:
        m.nodes.append(helper.make_node("Mul", [a, b], ["mul"], name="mul"))
        m.op(act, ["mul"], **act_attrs)
    return m.build(fp_out, (1, 4, 16, 16))


@pytest.mark.parametrize(
    ("fp0", "fp1", "fp_out", "act"),
    [(4, 3, 5, None), (6, 7, 2, None), (1, 1, 4, None), (5, 2, 3, None), (4, 4, 4, "Relu")],
)
def test_mul_of_two_activations_is_onnx_runtime_s_but_at_ties(fp0, fp1, fp_out, act):
    model = _mul2(fp0, fp1, fp_out, act)
    emu = EmulatorRunner(model)
    x = feeds(emu, seed=fp0 + fp1)
    x["x0"] = np.ascontiguousarray(np.repeat(all_int8((1, 16, 16, 1)), 4, axis=3))  # each value against others
    y = emu.run(x)["y"].astype(np.int64)
    # the eltwise engine's mult: a b * 2**(fp_out - fp0 - fp1), the ReLU before rounding, half up, saturated
    v = x["x0"].astype(np.float64) * x["x1"].astype(np.float64) * 2.0 ** (fp_out - fp0 - fp1)
    if act == "Relu":
        v = np.maximum(v, 0)
    np.testing.assert_array_equal(y, np.clip(np.floor(v + 0.5), -128, 127))
    np.testing.assert_array_equal(torch_ref(model, x, [fp0, fp1]), y)
    # ONNX Runtime's product is exact (15 bits): it rounds the same values, ties to even, which the fast
    # path's offsets round up
    np.testing.assert_array_equal(ort_plain(model, x), np.clip(np.rint(v), -128, 127))
    assert fp_out - fp0 - fp1 >= 0 or np.any(v - np.floor(v) == 0.5)
    np.testing.assert_array_equal(EmulatorRunner(model, exact=False).run(x)["y"], y)


def test_other_muls_of_two_activations_are_not_emulated():
    # the eltwise engine fuses ReLU only (the operator rules put the others on the CPU)
    with pytest.raises(NotEmulated, match="a Mul of two activations fuses a ReLU only, not leaky"):
        EmulatorRunner(_mul2(4, 4, 4, "LeakyRelu", alpha=26 / 256))
    # shapes that broadcast: the DPU multiplies equal shapes (the rules put it on the CPU); known at run time
    emu = EmulatorRunner(_mul2(4, 4, 4, shape1=(1, 1, 16, 16)))
    with pytest.raises(ModelFileError, match=r"DPU step emul at 'y_float': .* the DPU multiplies equal shapes; run"):
        emu.run(feeds(emu))
    m = Model()  # a float constant, not quantized
    m.op("Mul", [m.input((1, 2, 4, 4), 4), m.const("c", np.array(0.5, np.float32))])
    with pytest.raises(NotEmulated, match="runs a Mul of an activation by a constant .* or of two dequantized"):
        EmulatorRunner(m.build(4, (1, 2, 4, 4)))


def _conv_transpose(fp_in, fp_w, fp_b, fp_out, k, s, pads, act=None, seed=0, **attrs) -> tuple[bytes, dict]:
    """x (1, 3, 5, 6) -> ConvTranspose(3 -> 4, k x k, stride s, pads; with group 3: depthwise, 3 -> 3) [-> Relu,
    LeakyRelu 26/256 or Clip(0, 6)] -> y; the int8 weight and bias."""
    rng = np.random.default_rng(seed)
    m = Model()
    x = m.input((1, 3, 5, 6), fp_in)
    cout = 3 if attrs.get("group", 1) == 3 else 4
    w = rng.integers(-128, 128, (3, cout // attrs.get("group", 1), k, k)).astype(np.int8)
    b = rng.integers(-128, 128, (cout,)).astype(np.int8)
    inputs = [x, m.const_dq("w", w, fp_w), m.const_dq("b", b, fp_b)]
    t, left, bottom, r = pads
    oh, ow = (5 - 1) * s + k - t - bottom, (6 - 1) * s + k - left - r
    node_attrs = {"strides": [s, s], "pads": list(pads), **attrs}
    if act is None:
        m.op("ConvTranspose", inputs, **node_attrs)
    else:
        m.nodes.append(helper.make_node("ConvTranspose", inputs, ["pre"], name="pre", **node_attrs))
        if act == "Clip":
            m.op(act, ["pre", m.const("lo", np.array(0, np.float32)), m.const("hi", np.array(6, np.float32))])
        else:
            m.op(act, ["pre"], **({"alpha": 26 / 256} if act == "LeakyRelu" else {}))
    return m.build(fp_out, (1, cout, oh, ow)), {"w": w, "b": b}


def _conv_transpose_closed_form(x, w, b, s, pads, fp_in, fp_w, fp_b, fp_out, act, group=1) -> np.ndarray:
    """ONNX ConvTranspose by its definition in exact rationals, loop by loop: input pixel (i, j) adds x w[.., u, v]
    to output (i s + u - top, j s + v - left) (with groups: input channel c to the outputs of its group only,
    w[c, o mod C_out/g]); then the bias, the activation, half up, saturated."""
    _, h, wd, _ = x.shape
    cin, cog, k, _ = w.shape
    cout, cig = cog * group, cin // group
    t, left, bottom, r = pads
    oh, ow = (h - 1) * s + k - t - bottom, (wd - 1) * s + k - left - r
    acc = np.zeros((oh, ow, cout), dtype=object)
    for i in range(h):
        for j in range(wd):
            for u in range(k):
                for v in range(k):
                    y, z = i * s + u - t, j * s + v - left
                    if 0 <= y < oh and 0 <= z < ow:
                        for o in range(cout):
                            cs = range(o // cog * cig, (o // cog + 1) * cig)  # the input channels of o's group
                            acc[y, z, o] += sum(int(x[0, i, j, c]) * int(w[c, o % cog, u, v]) for c in cs)
    out = np.empty_like(acc)
    for idx in np.ndindex(acc.shape):
        v = Fraction(acc[idx], 2 ** (fp_in + fp_w)) + Fraction(int(b[idx[2]]), 2**fp_b)
        v = v * 2**fp_out
        if act == "Relu":
            v = max(v, 0)
        elif act == "LeakyRelu":
            v = v * Fraction(26, 256) if v < 0 else v
        elif act == "Clip":
            v = min(max(v, 0), 6 * 2**fp_out)
        out[idx] = min(max((v + Fraction(1, 2)).__floor__(), -128), 127)
    return out[None].astype(np.int64)


@pytest.mark.parametrize(
    ("fp_in", "fp_w", "fp_b", "fp_out", "k", "s", "pads", "act"),
    [
        (4, 7, 5, 3, 4, 2, (1, 1, 1, 1), None),  # SimpleBaseline's deconv: 4x4, stride 2, pads 1
        (5, 6, 6, 2, 3, 2, (0, 1, 2, 0), "Relu"),  # uneven pads
        (3, 7, 4, 1, 2, 2, (0, 0, 0, 0), "LeakyRelu"),
        (4, 6, 6, 4, 3, 1, (2, 0, 0, 2), "Clip"),  # ReLU6 at fp_out 4: the cap at 96 steps
        (4, 7, 5, 3, 4, 2, (4, 4, 4, 4), None),  # a pad as large as the kernel: the dilated input cropped
        (4, 7, 5, 3, 4, 2, (5, 0, 4, 5), "Relu"),  # cropped unevenly: 2 rows on top, 1 below, 2 columns right
    ],
)
def test_conv_transpose_is_its_definition_rounded_half_up(fp_in, fp_w, fp_b, fp_out, k, s, pads, act):
    model, c = _conv_transpose(fp_in, fp_w, fp_b, fp_out, k, s, pads, act, seed=k + s)
    emu = EmulatorRunner(model)
    x = feeds(emu, k + s)
    y = emu.run(x)["y"].astype(np.int64)
    expected = _conv_transpose_closed_form(x["x0"], c["w"], c["b"], s, pads, fp_in, fp_w, fp_b, fp_out, act)
    np.testing.assert_array_equal(y, expected)
    assert len(np.unique(y)) > 10  # not saturated to one value
    np.testing.assert_array_equal(torch_ref(model, x, [fp_in]), y)
    np.testing.assert_array_equal(EmulatorRunner(model, exact=False).run(x)["y"], y)
    # ONNX Runtime's float32 sums are exact here (int8 products, |sum| < 2**24): it rounds the same values,
    # ties to even, one LSB below the DPU's half up at a tie and nowhere else
    diff = y - ort_plain(model, x)
    assert set(np.unique(diff)) <= {0, 1}


@pytest.mark.parametrize(
    ("fp_in", "fp_w", "fp_b", "fp_out", "k", "s", "pads"),
    [
        (4, 7, 5, 3, 4, 2, (1, 1, 1, 1)),  # 4x4, stride 2, pads 1
        (5, 6, 6, 2, 3, 2, (0, 1, 2, 0)),  # uneven pads
        (3, 7, 4, 1, 2, 2, (0, 0, 0, 0)),
        (4, 6, 6, 4, 3, 1, (2, 0, 0, 2)),  # stride 1
        (4, 7, 5, 3, 3, 3, (0, 2, 1, 0)),  # stride 3: two zeros between the input's pixels
        (4, 7, 5, 3, 4, 2, (5, 0, 4, 5)),  # pads beyond kernel - 1: the dilated input cropped
    ],
)
def test_depthwise_conv_transpose_is_its_definition_rounded_half_up(fp_in, fp_w, fp_b, fp_out, k, s, pads):
    # VART's cpu-runner transposed-depthwise-conv2d-fix (tdwconv.cpp, tdwconv_fix.hpp): each channel's input
    # dilated by the stride, padded by kernel - 1 - pad, a depthwise conv of stride 1 with dwconv-fix's rounding
    # (no activation fused), which is the ONNX definition's exact sum rounded half up
    model, c = _conv_transpose(fp_in, fp_w, fp_b, fp_out, k, s, pads, seed=k + s + 1, group=3)
    emu = EmulatorRunner(model)
    x = feeds(emu, k + s)
    y = emu.run(x)["y"].astype(np.int64)
    expected = _conv_transpose_closed_form(x["x0"], c["w"], c["b"], s, pads, fp_in, fp_w, fp_b, fp_out, None, 3)
    np.testing.assert_array_equal(y, expected)
    assert y.shape[3] == 3 and len(np.unique(y)) > 10  # depthwise: 3 channels out; not saturated to one value
    np.testing.assert_array_equal(torch_ref(model, x, [fp_in]), y)
    np.testing.assert_array_equal(EmulatorRunner(model, exact=False).run(x)["y"], y)
    # ONNX Runtime's float32 sums are exact (int8 products): the same values rounded ties to even, one LSB below
    # the DPU's half up at a tie and nowhere else
    diff = y - ort_plain(model, x)
    assert set(np.unique(diff)) <= {0, 1}


@pytest.mark.parametrize(("act", "name"), [("Relu", "relu"), ("LeakyRelu", "leaky"), ("Clip", "relu6")])
def test_an_activation_after_a_depthwise_conv_transpose_is_not_emulated(act, name):
    # vai_q_pytorch's DPU op filter lists no activation fused into a transposed depthwise conv (the operator rules
    # put it and its activation on the CPU); the dense one fuses the conv engine's
    model, _ = _conv_transpose(4, 7, 5, 3, 4, 2, (1, 1, 1, 1), act, group=3)
    with pytest.raises(NotEmulated, match=f"a depthwise transposed conv fuses no activation .*, not {name}$"):
        EmulatorRunner(model)
    EmulatorRunner(_conv_transpose(4, 7, 5, 3, 4, 2, (1, 1, 1, 1), act)[0])


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"group": 3, "cout": 6}, "a grouped transposed conv .group 3. that is not depthwise"),  # 2 per channel
        ({"output_padding": [1, 1]}, "output_padding or output_shape is not emulated"),
        ({"dilations": [2, 2]}, "a dilated transposed conv is not emulated"),
    ],
)
def test_other_transposed_convs_are_not_emulated(attrs, message):
    m = Model()
    x = m.input((1, 3, 5, 5), 4)
    attrs = dict(attrs)
    cout = attrs.pop("cout", 4)
    w = m.const_dq("w", np.ones((3, cout // attrs.get("group", 1), 3, 3), np.int8), 6)
    m.op("ConvTranspose", [x, w], strides=[2, 2], pads=[1, 1, 1, 1], **attrs)
    extra = attrs.get("output_padding", [0, 0])[0] + 2 * (attrs.get("dilations", [1])[0] - 1)
    with pytest.raises(NotEmulated, match=message):
        EmulatorRunner(m.build(4, (1, cout, 9 + extra, 9 + extra)))


def _half_pixel_symmetric_source(o: int, n_in: int, scale: int) -> Fraction:
    """Resize-19's half_pixel_symmetric source coordinate of output o, by the ONNX spec's formula: output_width
    = scale * n_in, adjustment = floor(output_width) / output_width, offset = n_in / 2 * (1 - adjustment),
    x_original = offset + (o + 0.5) / scale - 0.5."""
    out = Fraction(scale * n_in)
    adjustment = Fraction(math.floor(out)) / out
    offset = Fraction(n_in, 2) * (1 - adjustment)
    return offset + (o + Fraction(1, 2)) / scale - Fraction(1, 2)


@pytest.mark.parametrize(
    ("mode", "s", "by"), [("linear", 2, "scales"), ("linear", 4, "sizes"), ("nearest", 3, "scales")]
)
def test_half_pixel_symmetric_is_half_pixel_at_a_whole_number_scale(mode, s, by):
    # Resize-19's half_pixel_symmetric equals half_pixel when the scale is a whole number: the spec's formula
    # gives each output half_pixel's source, and ONNX Runtime's result for the file is the half_pixel file's
    from dpupose.dpu.config import load_config
    from dpupose.dpu.ops import dpu_support
    from dpupose.split.graph import analyze

    for n_in in (4, 5):
        for o in range(n_in * s):
            assert _half_pixel_symmetric_source(o, n_in, s) == Fraction(2 * o + 1, 2 * s) - Fraction(1, 2)

    def model(ctm: str) -> bytes:
        if by == "sizes":
            return _resize_sizes(mode, [1, 3, 4 * s, 5 * s], 19, fp_out=2, coordinate_transformation_mode=ctm)
        m = Model()
        x = m.input((1, 3, 4, 5), 4)
        m.op("Resize", [x, "", m.const("scales", np.array([1, 1, s, s], np.float32))], mode=mode,
             coordinate_transformation_mode=ctm)  # fmt: skip
        return m.build(2, (1, 3, 4 * s, 5 * s), 19)

    symmetric, half = model("half_pixel_symmetric"), model("half_pixel")
    g = analyze(onnx.load_from_string(symmetric))
    node = next(n for n in g.nodes if n.op_type == "Resize")
    assert dpu_support(node, g.info(), load_config("u96v2-b1600-pynq"))[0]  # on the DPU as half_pixel is
    emu = EmulatorRunner(symmetric)
    x = feeds(emu, s)
    y = emu.run(x)["y"]
    np.testing.assert_array_equal(y, EmulatorRunner(half).run(x)["y"])
    np.testing.assert_array_equal(ort_plain(symmetric, x), ort_plain(half, x))
    if mode == "linear":  # the closed form of half_pixel, half up; ONNX Runtime's exact mix, ties to even
        v = _bilinear_closed_form(x["x0"].astype(np.int64), s, True) * 2 ** (2 - 4)
        expected = np.vectorize(lambda q: min(max((q + Fraction(1, 2)).__floor__(), -128), 127))(v)
        np.testing.assert_array_equal(y, expected.astype(np.int64))
        even = np.vectorize(lambda q: min(max(round(q), -128), 127))(v)
        np.testing.assert_array_equal(ort_plain(symmetric, x), even.astype(np.int64))
    else:
        up = np.repeat(np.repeat(x["x0"].astype(np.int64), s, axis=1), s, axis=2)
        np.testing.assert_array_equal(y, np.floor(up / 4 + 0.5))
    np.testing.assert_array_equal(torch_ref(symmetric, x, [4]), y)
    np.testing.assert_array_equal(EmulatorRunner(symmetric, exact=False).run(x)["y"], y)


def test_half_pixel_symmetric_x8_bilinear_stays_on_the_cpu_as_half_pixel_s():
    from dpupose.dpu.config import load_config
    from dpupose.dpu.ops import dpu_support
    from dpupose.split.graph import analyze

    m = Model()
    x = m.input((1, 3, 4, 5), 4)
    m.op("Resize", [x, "", m.const("scales", np.array([1, 1, 8, 8], np.float32))], mode="linear",
         coordinate_transformation_mode="half_pixel_symmetric")  # fmt: skip
    model = m.build(2, (1, 3, 32, 40), 19)
    g = analyze(onnx.load_from_string(model))
    node = next(n for n in g.nodes if n.op_type == "Resize")
    on_dpu, why = dpu_support(node, g.info(), load_config("u96v2-b1600-pynq"))
    assert (
        not on_dpu and why == "bilinear Resize at scale 8x8 (only 2, 4 with half_pixel_symmetric, the same on H and W)"
    )
    with pytest.raises(NotEmulated, match="scales 8x8: the DPU's bilinear resize with half-pixel centres is by 2 or 4"):
        EmulatorRunner(model)


@pytest.mark.parametrize(
    ("shape", "on_dpu"),
    [((4, 1, 1), True), ((1, 4, 1, 1), True), ((1,), True), ((1, 1, 1, 4), False), ((4,), False)],
)
def test_the_rules_put_a_mul_by_a_constant_on_the_dpu_exactly_when_the_emulator_runs_it(shape, on_dpu):
    # x is (1, 4, 3, 4): W == C, so a [1, 1, 1, C] or [C] constant has C values but ONNX broadcasts it along W
    from dpupose.dpu.config import load_config
    from dpupose.dpu.graph import extract_layers
    from dpupose.dpu.ops import dpu_support
    from dpupose.split.graph import analyze

    m = Model()
    x = m.input((1, 4, 3, 4), 4)
    m.op("Mul", [x, m.const_dq("c", np.arange(1, 1 + math.prod(shape), dtype=np.int8).reshape(shape), 6)])
    model = m.build(4, (1, 4, 3, 4))
    cfg = load_config("u96v2-b1600-pynq")
    g = analyze(onnx.load_from_string(model))
    node = next(n for n in g.nodes if n.op_type == "Mul")
    ok, reason = dpu_support(node, g.info(), cfg)
    assert ok is on_dpu, reason
    walked = extract_layers(onnx.load_from_string(model), cfg)
    assert any(layer.name == "op" for layer in walked.layers) is on_dpu
    if on_dpu:
        emu = EmulatorRunner(model)
        xs = feeds(emu, 2)
        v = xs["x0"].astype(np.float64).transpose(0, 3, 1, 2) * np.arange(1, 1 + math.prod(shape)).reshape(shape)
        ref = np.clip(np.floor(v * 2.0**-6 + 0.5), -128, 127).transpose(0, 2, 3, 1)  # fp 4 * fp 6 -> fp 4
        np.testing.assert_array_equal(emu.run(xs)["y"], ref)
    else:
        assert "broadcasts along W" in reason
        with pytest.raises(NotEmulated, match=r"the emulator runs a Mul by one value or one per channel"):
            EmulatorRunner(model)


def _pad(fp_in, fp_out, pads, opset=OPSET, hw=(4, 5), computed=False, **attrs) -> bytes:
    """x (1, 3, H, W) -> Pad by `pads` (ONNX order, all four axes or those of an 'axes' attribute-free
    input list given in attrs["axes"]), Pad-2's attributes below opset 11 -> y."""
    m = Model()
    x = m.input((1, 3, *hw), fp_in)
    axes = attrs.pop("axes", None)
    value = attrs.pop("value", None)
    if opset < 11:
        m.op("Pad", [x], pads=list(pads), **({} if value is None else {"value": value}), **attrs)
    else:
        ins = [x, m.const("pads", np.array(pads, np.int64))]
        if computed:
            m.nodes.append(helper.make_node("Identity", ["pads"], ["pads_computed"], name="pads/identity"))
            ins[1] = "pads_computed"
        if value is not None or axes is not None:
            ins.append("" if value is None else m.const("value", np.array(value, np.float32)))
        if axes is not None:
            ins.append(m.const("axes", np.array(axes, np.int64)))
        m.op("Pad", ins, **attrs)
    full = [0] * 8
    for i, a in enumerate(axes if axes is not None else range(4)):
        full[a % 4], full[a % 4 + 4] = pads[i], pads[i + len(pads) // 2]
    out = [n + full[a] + full[a + 4] for a, n in enumerate((1, 3, *hw))]
    return m.build(fp_out, out, opset)


def _pad_closed_form(x: np.ndarray, t: int, left: int, b: int, r: int, fp_in: int, fp_out: int) -> np.ndarray:
    """int8 0 around the NHWC input, then moved to fp_out: x * 2**(fp_out - fp_in) rounded half up, saturated."""
    y = np.zeros((x.shape[0], x.shape[1] + t + b, x.shape[2] + left + r, x.shape[3]), np.int64)
    y[:, t : t + x.shape[1], left : left + x.shape[2]] = x
    return np.clip(np.floor(y * 2.0 ** (fp_out - fp_in) + 0.5), -128, 127).astype(np.int64)


@pytest.mark.parametrize(
    ("pads", "opset", "axes", "tlbr"),
    [
        ([0, 0, 1, 1, 0, 0, 1, 1], OPSET, None, (1, 1, 1, 1)),  # TensorFlow's SAME before a 3x3 conv
        ([0, 0, 2, 0, 0, 0, 1, 3], OPSET, None, (2, 0, 1, 3)),  # SAME before a stride-2 conv: more after
        ([0, 0, 3, 1, 0, 0, 0, 2], 10, None, (3, 1, 0, 2)),  # Pad-2: pads and value are attributes
        ([1, 2, 0, 3], 18, [-2, 3], (1, 2, 0, 3)),  # Pad-18: pads of H and W only, by 'axes'
    ],
)
@pytest.mark.parametrize(("fp_in", "fp_out"), [(4, 4), (6, 4), (3, 4)])
def test_a_constant_pad_of_zero_is_the_input_with_int8_zeros_around_it(pads, opset, axes, tlbr, fp_in, fp_out):
    # pad-fix (VART's cpu-runner) copies the int8 input and fills the pad with int8 0, which is 0.0 at any fix
    # point; a Q after it at another fix point moves it there as a requant does (ties up, saturated)
    model = _pad(fp_in, fp_out, pads, opset, axes=axes)
    emu = EmulatorRunner(model)
    x = feeds(emu, 5)
    y = emu.run(x)["y"].astype(np.int64)
    np.testing.assert_array_equal(y, _pad_closed_form(x["x0"], *tlbr, fp_in, fp_out))
    np.testing.assert_array_equal(torch_ref(model, x, [fp_in]), y)
    np.testing.assert_array_equal(EmulatorRunner(model, exact=False).run(x)["y"], y)
    # ONNX Runtime rounds ties to even: one LSB down at most, where the input drops bits on a tie only
    diff = y - ort_plain(model, x)
    ties = np.zeros_like(y, dtype=bool)
    if fp_in > fp_out:
        t, left = tlbr[0], tlbr[1]
        h, w = x["x0"].shape[1:3]
        ties[:, t : t + h, left : left + w] = x["x0"] % 2 ** (fp_in - fp_out) == 2 ** (fp_in - fp_out - 1)
        assert np.any(diff[ties] == 1)
    assert set(np.unique(diff[ties])) <= {0, 1}
    assert np.all(diff[~ties] == 0)


@pytest.mark.parametrize(
    ("pads", "attrs", "computed", "opset", "why"),
    [
        ([0, 0, 1, 1, 0, 0, 1, 1], {}, False, OPSET, None),
        ([0, 0, 1, 1, 0, 0, 1, 1], {"value": 0.0}, False, OPSET, None),
        ([0, 0, 1, 1, 0, 0, 1, 1], {"value": 0.0}, False, 10, None),
        ([0, 0, 1, 1, 0, 0, 1, 1], {"value": 0.5}, False, OPSET, "Pad with value 0.5: the DPU's pad-fix fills int8 0"),
        ([0, 0, 1, 1, 0, 0, 1, 1], {"value": -1.0}, False, 10, "Pad with value -1: the DPU's pad-fix fills int8 0"),
        ([0, 0, 1, 1, 0, 0, 1, 1], {"mode": "reflect"}, False, OPSET, "Pad in mode 'reflect': the DPU pads in XIR"),
        # 'edge' with pads of 0 or 1 is XIR's SYMMETRIC (the mirrored edge pixel is the edge pixel); 2 is not
        ([0, 0, 1, 1, 0, 0, 1, 1], {"mode": "edge"}, False, OPSET, None),
        ([0, 0, 1, 1, 0, 0, 1, 1], {"mode": "edge"}, False, 10, None),
        ([0, 0, 0, 1, 0, 0, 1, 0], {"mode": "edge", "value": 0.5}, False, OPSET, None),  # edge reads no value
        ([0, 0, 2, 0, 0, 0, 1, 1], {"mode": "edge"}, False, OPSET, "Pad in mode 'edge' with pads [2, 0, 1, 1]"),
        ([0, 0, 1, 1, 0, 0, 1, 1], {"mode": "wrap"}, False, 19, "Pad in mode 'wrap'"),
        ([0, 1, 0, 0, 0, 0, 0, 0], {}, False, OPSET, "Pad of the batch or channel axis"),
        ([1, 0, 0, 0, 0, 0, 0, 0], {}, False, OPSET, "Pad of the batch or channel axis"),
        ([0, 0, -1, 0, 0, 0, 0, 1], {}, False, OPSET, "Pad with negative pads [0, 0, -1, 0, 0, 0, 0, 1] (a crop)"),
        ([0, 0, 1, 1, 0, 0, 1, 1], {}, True, OPSET, "Pad whose pads input is not a constant"),
    ],
)
def test_the_rules_put_a_pad_on_the_dpu_exactly_when_the_emulator_runs_it(pads, attrs, computed, opset, why):
    # vai_q_pytorch's DPU op filter (filter_pad) takes XIR's CONSTANT and SYMMETRIC modes; VART's pad-fix pads H
    # and W only and fills a constant pad with int8 0 whatever its value. ONNX's reflect leaves the edge pixel
    # out of the mirror and edge repeats it, neither of which is SYMMETRIC; every Pad went to the CPU before
    from dpupose.dpu.config import load_config
    from dpupose.dpu.graph import extract_layers
    from dpupose.dpu.ops import dpu_support
    from dpupose.split.graph import analyze

    model = _pad(4, 4, pads, opset, computed=computed, **attrs)
    cfg = load_config("u96v2-b1600-pynq")
    g = analyze(onnx.load_from_string(model))
    node = next(n for n in g.nodes if n.op_type == "Pad")
    ok, reason = dpu_support(node, g.info(), cfg)
    assert ok is (why is None) and (why is None or reason.startswith(why)), reason
    walked = extract_layers(onnx.load_from_string(model), cfg)
    assert [layer.kind for layer in walked.layers if layer.name == "op"] == (["move"] if ok else [])
    if ok:
        emu = EmulatorRunner(model)
        x = feeds(emu, 1)
        np.testing.assert_array_equal(emu.run(x)["y"], ort_plain(model, x))
    else:  # the emulator refuses it with the rules' reason: one reader of a Pad's mode, pads, value and axes
        with pytest.raises(NotEmulated, match=re.escape(reason)):
            EmulatorRunner(model)


@pytest.mark.parametrize("tlbr", [(1, 1, 1, 1), (1, 0, 0, 1), (0, 1, 1, 0), (0, 0, 1, 0), (1, 1, 0, 0), (0, 0, 0, 0)])
@pytest.mark.parametrize(("fp_in", "fp_out", "opset"), [(4, 4, OPSET), (3, 4, OPSET), (5, 5, 10)])
def test_an_edge_pad_of_one_is_the_dpu_s_symmetric_pad_and_equals_onnx_runtime(tlbr, fp_in, fp_out, opset):
    # ONNX 'edge' with each H and W pad 0 or 1 repeats the edge pixel once, which is what XIR pad-fix's SYMMETRIC
    # mirror gives there (VART's cpu-runner pad-fix: before the input, index pad - 1 - min(h, pad - 1)); the rules
    # left it to the CPU as not SYMMETRIC. It is now on the DPU, a copy of values (no arithmetic): ONNX Runtime's
    # int8 exactly, where the Q after it keeps the fix point or gains bits (no rounding), and np.pad's edge mode
    t, left, b, r = tlbr
    model = _pad(fp_in, fp_out, [0, 0, t, left, 0, 0, b, r], opset, mode="edge")
    emu = EmulatorRunner(model)
    for seed in range(3):
        x = feeds(emu, seed)
        y = emu.run(x)["y"].astype(np.int64)
        edge = np.pad(x["x0"].astype(np.int64), ((0, 0), (t, b), (left, r), (0, 0)), mode="edge")
        np.testing.assert_array_equal(y, np.clip(edge * 2 ** (fp_out - fp_in), -128, 127))
        np.testing.assert_array_equal(y, ort_plain(model, x))
        np.testing.assert_array_equal(EmulatorRunner(model, exact=False).run(x)["y"], y)
        np.testing.assert_array_equal(torch_ref(model, x, [fp_in]), y)  # deploy-check --against torch's reference


def test_pad_fix_symmetric_mirrors_with_the_edge_pixel():
    # XIR's pad-fix annotation (built_in_ops.cpp): [[1, 2], [3, 4]] padded [0, 1, 1, 0] (one column before, one
    # row after) in SYMMETRIC is [[1, 1, 2], [3, 3, 4], [3, 3, 4]]; a pad of 2 takes rows 1, 0 | 0, 1 (VART's
    # cpu-runner pad-fix), not 'edge''s 0, 0 and not 'reflect''s 2, 1
    from dpupose.runtime.dpu_ops import pad_symmetric

    x = np.array([[1, 2], [3, 4]], np.int8).reshape(1, 2, 2, 1)
    np.testing.assert_array_equal(pad_symmetric(x, (0, 1, 1, 0))[0, ..., 0], [[1, 1, 2], [3, 3, 4], [3, 3, 4]])
    col = np.arange(3, dtype=np.int8).reshape(1, 3, 1, 1)
    np.testing.assert_array_equal(pad_symmetric(col, (2, 0, 3, 0))[0, :, 0, 0], [1, 0, 0, 1, 2, 2, 1, 0])


def test_a_pad_of_more_channels_than_the_load_engine_takes_goes_to_the_cpu():
    # filter_pad's check_load_jump_write: C <= 256 x the load engine's channel_parallel (ICP, 10 on the B1600)
    from dpupose.dpu.config import load_config
    from dpupose.dpu.ops import GraphInfo, dpu_support

    cfg = load_config("u96v2-b1600-pynq")
    node = helper.make_node("Pad", ["a", "p"], ["y"], mode="constant")
    pads = {"p": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)}
    for c, ok in ((2560, True), (2561, False)):
        gi = GraphInfo({"a": (1, c, 2, 2), "y": (1, c, 4, 4)}, pads)
        supported, reason = dpu_support(node, gi, cfg)
        assert supported is ok, reason
    assert reason == "Pad of 2561 channels: over the load engine's 256 x ICP = 2560"


def _fc_by_hand(act: str | None) -> bytes:
    """x (1, 2, 1, 2) at fix point 1 -> Flatten -> Gemm (transB) by a (4, 4) weight at 2 with a bias at 3 [-> act]
    -> y (1, 4) at 1."""
    m = Model()
    x = m.input((1, 2, 1, 2), 1)
    w = np.array([[0, 1, 0, 0], [0, 0, 1, 1], [2, -1, 1, 3], [127, 127, 127, 0]], np.int8)
    wq = m.const_dq("w", w, 2)
    bq = m.const_dq("b", np.array([8, 1, -3, 0], np.int8), 3)
    m.nodes.append(helper.make_node("Flatten", [x], ["flat"], name="flatten"))
    out = "y_float" if act is None else "fc"
    m.nodes.append(helper.make_node("Gemm", ["flat", wq, bq], [out], name="op", transB=1))
    if act is not None:
        m.nodes.append(helper.make_node(act, ["fc"], ["y_float"], name="act"))
    return m.build(1, (1, 4))


@pytest.mark.parametrize(("act", "expected"), [(None, [3, 0, -3, 127]), ("Relu", [3, 0, 0, 127])])
def test_a_fully_connected_layer_is_the_conv_engine_s_sum_on_onnx_s_flatten_order(act, expected):
    # the emulator refused a Gemm / MatMul (and the Flatten before it) though the operator rules put it on the DPU.
    # By hand: x in NCHW is channel 0 (1, 2) and channel 1 (3, -4), Flatten's order [1, 2, 3, -4] (NHWC's would be
    # [1, 3, 2, -4]); the products at 2**-3 are [2, -1, 2 - 2 + 3 - 12, 127 * 6] = [2, -1, -9, 762], the bias (at
    # 2**-3 as well) makes [10, 0, -12, 762], and fix point 1 divides by 4: [2.5, 0, -3, 190.5], rounded half up
    # and saturated [3, 0, -3, 127] (a ReLU first: -3 -> 0). ONNX Runtime rounds the tie 2.5 to even, 2.
    model = _fc_by_hand(act)
    emu = EmulatorRunner(model)
    assert [(i.shape, i.layout) for i in emu.outputs] == [((1, 4), "NC")]
    x = {"x0": np.array([[[[1, 3], [2, -4]]]], np.int8)}  # NHWC
    y = emu.run(x)["y"]
    assert y.dtype == np.int8 and y.tolist() == [expected]
    assert ort_plain(model, x).tolist() == [[2, *expected[1:]]]
    np.testing.assert_array_equal(EmulatorRunner(model, exact=False).run(x)["y"], y)  # its tie offset: up
    np.testing.assert_array_equal(torch_ref(model, x, [1]), y)
    # the kernel on its own: the rows in ONNX's order, the weight as MatMul reads it (K, N)
    w = np.array([[0, 1, 0, 0], [0, 0, 1, 1], [2, -1, 1, 3], [127, 127, 127, 0]], np.int8).T
    rows = np.array([[1, 2, 3, -4]], np.int8)
    b = np.array([8, 1, -3, 0], np.int8)
    got = dpu_ops.fully_connected(rows, w, b, fp_in=1, fp_w=2, fp_b=3, fp_out=1, act="relu" if act else "none")
    assert got.tolist() == [expected]


def _fc_model(case: str) -> tuple[bytes, list[int]]:
    """Fully connected layers the operator rules put on the DPU, through the layout ops before them, random int8."""
    rng = np.random.default_rng(7)
    m = Model()
    ints = lambda *shape: rng.integers(-128, 128, shape).astype(np.int8)
    small = lambda *shape: rng.integers(-4, 5, shape).astype(np.int8)  # weights: sums that drop a few bits
    if case == "reshape_gemm":  # (1, 8, 3, 5) -> Reshape [0, -1] -> Gemm (120 -> 24) with a bias (shift_bias 1), ReLU
        x = m.input((1, 8, 3, 5), 4)
        m.nodes.append(helper.make_node("Reshape", [x, m.const("shape", np.array([0, -1], np.int64))], ["flat"]))
        ins = ["flat", m.const_dq("w", small(120, 24), 9), m.const_dq("b", ints(24), 12)]
        m.nodes.append(helper.make_node("Gemm", ins, ["fc"], name="op"))
        m.nodes.append(helper.make_node("Relu", ["fc"], ["y_float"]))
        return m.build(8, (1, 24)), [4]
    if case == "squeeze_gemm":  # (1, 6, 1, 1) -> Squeeze -> Gemm transB (6 -> 5), a (1, 5) bias 1 bit finer than sums
        x = m.input((1, 6, 1, 1), 5)
        m.nodes.append(helper.make_node("Squeeze", [x, m.const("axes", np.array([3, 2], np.int64))], ["flat"]))
        ins = ["flat", m.const_dq("w", small(5, 6), 7), m.const_dq("b", ints(1, 5), 13)]
        m.nodes.append(helper.make_node("Gemm", ins, ["y_float"], name="op", transB=1))
        return m.build(9, (1, 5)), [5]
    if case == "matmul_leaky":  # (1, 1, 37) by a (37, 25) weight: one row, with a LeakyReLU of 26/256
        x = m.input((1, 1, 37), 3)
        m.nodes.append(helper.make_node("MatMul", [x, m.const_dq("w", small(37, 25), 8)], ["fc"], name="op"))
        m.nodes.append(helper.make_node("LeakyRelu", ["fc"], ["y_float"], alpha=26 / 256))
        return m.build(7, (1, 1, 25)), [3]
    # "unsqueeze_flatten_matmul": (1, 2, 3, 2) -> Unsqueeze [2] -> Flatten -> MatMul by a vector (12,): one value
    x = m.input((1, 2, 3, 2), 4)
    m.nodes.append(helper.make_node("Unsqueeze", [x, m.const("axes", np.array([2], np.int64))], ["five"]))
    m.nodes.append(helper.make_node("Flatten", ["five"], ["flat"]))
    m.nodes.append(helper.make_node("MatMul", ["flat", m.const_dq("w", small(12), 6)], ["y_float"], name="op"))
    return m.build(6, (1,)), [4]


FC_CASES = ["reshape_gemm", "squeeze_gemm", "matmul_leaky", "unsqueeze_flatten_matmul"]


@pytest.mark.parametrize("case", FC_CASES)
def test_fully_connected_layers_equal_onnx_semantics_rounded_as_the_dpu(case):
    # against ONNX Runtime on the same QDQ file (ties to even: one LSB, only where the exact value is a tie) and
    # the float64 torch interpreter (the DPU's rounding: every value); the fast path's offsets round ties up
    model, fps = _fc_model(case)
    emu = EmulatorRunner(model)
    ys, diffs = [], []
    for seed in range(40):
        x = feeds(emu, seed)
        y = emu.run(x)["y"].astype(np.int64)
        np.testing.assert_array_equal(y, torch_ref(model, x, fps))
        diffs.append(y - ort_plain(model, x))
        np.testing.assert_array_equal(EmulatorRunner(model, exact=False).run(x)["y"], y)
        ys.append(y)
    assert set(np.unique(diffs)) == {0, 1}  # ties, and only ties, differ
    assert np.mean(np.abs(ys) >= 127) < 0.2  # mostly within range: the sums, not the saturation, are compared


def test_a_batch_of_images_is_multiplied_image_by_image():
    model, _ = _fc_model("reshape_gemm")
    emu = EmulatorRunner(model)
    x = {"x0": np.concatenate([feeds(emu, s)["x0"] for s in range(3)])}
    y = emu.run(x)["y"]
    assert y.shape == (3, 24)
    for i in range(3):
        np.testing.assert_array_equal(y[i : i + 1], emu.run({"x0": x["x0"][i : i + 1]})["y"])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"transA": 1}, "a Gemm with transA is not a fully connected layer"),
        ({"alpha": 0.5}, "a Gemm with alpha 0.5 and beta 1"),
        ({"beta": 2.0}, "a Gemm with alpha 1 and beta 2"),
        ("bias_rows", r"C of shape \[2, 4\]: XIR's fully connected layer adds one bias value per output \(4\)"),
        ("activations", "a weight that is an int8 initializer behind a DequantizeLinear"),
    ],
)
def test_other_gemms_are_not_emulated(edit, message):
    m = Model()
    x = m.input((2, 4), 3)
    if edit == "activations":  # a product of two activations: not a fully connected layer
        m.op("MatMul", [x, m.input((4, 4), 3)])
    else:
        bias = np.ones((2, 4) if edit == "bias_rows" else (4,), np.int8)
        m.op(
            "Gemm",
            [x, m.const_dq("w", np.ones((4, 4), np.int8), 4), m.const_dq("b", bias, 4)],
            **(edit if isinstance(edit, dict) else {}),
        )
    with pytest.raises(NotEmulated, match=message):
        EmulatorRunner(m.build(3, (2, 4)))


@pytest.mark.parametrize(
    ("attrs", "bias", "on_dpu"),
    [
        ({}, None, True),
        ({}, (3,), True),
        ({}, (1, 3), True),
        ({}, (1,), True),  # one value for every output
        ({"beta": 2.0}, None, True),  # beta scales C, and there is none
        ({"alpha": 0.5}, None, False),
        ({"alpha": 2.0}, (3,), False),
        ({"beta": 0.5}, (3,), False),
        ({"beta": 0.0}, (3,), False),
        ({}, (2, 3), False),  # a bias of its own for each of two rows
        ({}, (2, 1), False),
        ({"transB": 1}, (3,), True),
    ],
)
def test_the_rules_put_a_gemm_on_the_dpu_exactly_when_the_emulator_runs_it(attrs, bias, on_dpu):
    # the operator rules put every Gemm of a constant weight (without transA) on the DPU, though XIR's fully
    # connected layer has no alpha or beta and one bias value per output, and the emulator refused those; both
    # now give the same reason (dpu_ops.gemm_refusal), and dpu estimate's walk asks the rules
    from dpupose.dpu.config import load_config
    from dpupose.dpu.graph import extract_layers
    from dpupose.dpu.ops import dpu_support
    from dpupose.split.graph import analyze

    rows = 2 if bias is not None and bias[0] == 2 else 1
    m = Model()
    x = m.input((rows, 4), 3)
    w = np.arange(-6, 6, dtype=np.int8).reshape((3, 4) if attrs.get("transB") else (4, 3))
    ins = [x, m.const_dq("w", w, 4)]
    if bias is not None:
        ins.append(m.const_dq("b", np.arange(math.prod(bias), dtype=np.int8).reshape(bias), 7))
    m.op("Gemm", ins, **attrs)
    model = m.build(3, (rows, 3))
    cfg = load_config("u96v2-b1600-pynq")
    g = analyze(onnx.load_from_string(model))
    node = next(n for n in g.nodes if n.op_type == "Gemm")
    ok, reason = dpu_support(node, g.info(), cfg)
    assert ok is on_dpu, reason
    walked = extract_layers(onnx.load_from_string(model), cfg)
    assert any(layer.name == "op" for layer in walked.layers) is on_dpu
    if on_dpu:
        emu = EmulatorRunner(model)
        x = feeds(emu, 2)
        y = emu.run(x)["y"].astype(np.int64)
        np.testing.assert_array_equal(y, torch_ref(model, x, [3]))
        assert np.abs(y - ort_plain(model, x)).max() <= 1  # ONNX Runtime's ties to even
    else:
        assert reason.startswith("Gemm with ")
        with pytest.raises(NotEmulated, match=re.escape(f"Gemm 'op': a {reason}")):
            EmulatorRunner(model)


def _rows_model(case: str) -> bytes:
    """A Gemm / MatMul by a constant (4, 3) weight of `case`'s input: "one_row" (1, 4); "gemm_rows" a graph input
    of (8, 4) at batch 1, as a plan's DPU subgraph declares the (8, 4) a CPU Reshape made of one image; "matmul_rows"
    (1, 2, 4); "matmul_4d" a (1, 2, 2, 4) map; "after_conv" a 1x1 conv's (1, 4, 2, 2) reshaped to (1, 4, 4) on
    the DPU (a step's output: its rows are known only when it runs)."""
    m = Model()
    w = m.const_dq("w", np.arange(-6, 6, dtype=np.int8).reshape(4, 3), 4)
    shape = {"one_row": (1, 4), "gemm_rows": (8, 4), "matmul_rows": (1, 2, 4), "matmul_4d": (1, 2, 2, 4)}
    if case == "after_conv":
        eye = m.const_dq("eye", np.eye(4, dtype=np.int8).reshape(4, 4, 1, 1), 0)
        m.nodes.append(helper.make_node("Conv", [m.input((1, 4, 2, 2), 3), eye], ["c_float"], kernel_shape=[1, 1]))
        c = m.qdq("c_float", 3, "c")
        m.nodes.append(helper.make_node("Reshape", [c, m.const("shape", np.array([0, 4, 4], np.int64))], ["rows"]))
        x, out = "rows", (1, 4, 3)
    else:
        x, out = m.input(shape[case], 3), (*shape[case][:-1], 3)
    m.nodes.append(helper.make_node("Gemm" if case in ("one_row", "gemm_rows") else "MatMul", [x, w], ["y_float"]))
    m.nodes[-1].name = "op"
    return m.build(3, out)


@pytest.mark.parametrize(
    ("case", "why"),
    [
        ("one_row", None),
        ("gemm_rows", "Gemm of an input of [8, 4] at batch 1 (8 rows of one image): XIR's fully connected layer"),
        ("matmul_rows", "MatMul of an input of [1, 2, 4] at batch 1 (2 rows of one image)"),
        ("matmul_4d", "MatMul of an input of [1, 2, 2, 4] at batch 1 (4 rows of one image)"),
        ("after_conv", "MatMul of an input of [1, 4, 4] at batch 1 (4 rows of one image)"),
    ],
)
def test_the_rules_put_a_fully_connected_layer_on_the_dpu_exactly_when_the_emulator_runs_it(case, why):
    # a Gemm / MatMul of more than one row of one image (a CPU Reshape's (8, 4) at batch 1, whose rows the emulator
    # ran as 8 images; several rows after the batch axis; a 4-D map) was put on the DPU, though XIR's inner-product
    # takes each image as one vector: the rules leave it to the CPU and the emulator refuses it, both with
    # dpu_ops.fc_rows_refusal's reason: a graph input's declared rows when it loads, a step's when it runs
    from dpupose.dpu.config import load_config
    from dpupose.dpu.graph import extract_layers
    from dpupose.dpu.ops import dpu_support
    from dpupose.split.graph import analyze

    model = _rows_model(case)
    cfg = load_config("u96v2-b1600-pynq")
    g = analyze(onnx.load_from_string(model))
    node = next(n for n in g.nodes if n.name == "op")
    ok, reason = dpu_support(node, g.info(), cfg)
    assert ok is (why is None) and (why is None or reason.startswith(why)), reason
    walked = extract_layers(onnx.load_from_string(model), cfg)
    assert any(layer.name == "op" for layer in walked.layers) is ok
    if ok:
        emu = EmulatorRunner(model)
        x = feeds(emu, 3)
        np.testing.assert_array_equal(emu.run(x)["y"].astype(np.int64), torch_ref(model, x, [3]))
    elif case == "after_conv":  # refused when it runs, and by the fast path when it loads a file of static shapes
        emu = EmulatorRunner(model)
        refused = re.escape(f"DPU step fc at 'y_float': a {reason}; run this model with the cpu backend")
        with pytest.raises(ModelFileError, match=refused):
            emu.run(feeds(emu, 3))
        with pytest.raises(ModelFileError, match=re.escape(f"a {reason}")):
            EmulatorRunner(model, exact=False)
    else:
        with pytest.raises(NotEmulated, match=re.escape(f"{node.op_type} 'op': a {reason}")):
            EmulatorRunner(model)


def test_a_reshape_that_moves_the_batch_axis_is_refused_when_it_runs():
    m = Model()
    x = m.input((1, 4, 2, 2), 3)
    m.op("Reshape", [x, m.const("shape", np.array([4, 4], np.int64))])
    model = m.build(3, (4, 4))
    refused = r"a reshape of one image of \[1, 4, 2, 2\] to \[4, 4\]: the emulator runs a"
    with pytest.raises(ModelFileError, match=refused):
        EmulatorRunner(model).run({"x0": np.zeros((1, 2, 2, 4), np.int8)})
    with pytest.raises(ModelFileError, match="keeps the batch axis first; run this model with the cpu backend"):
        EmulatorRunner(model, exact=False)  # the fast path refuses it when it loads a file of static shapes


@pytest.mark.parametrize(
    ("op", "arg", "out", "on_dpu"),
    [
        ("Reshape", [1, -1], (1, 16), True),
        ("Reshape", [0, 2, 8], (1, 2, 8), True),
        ("Reshape", [4, 4], (4, 4), False),
        ("Reshape", [16, 1], (16, 1), False),
        ("Reshape", [-1], (16,), False),
        ("Flatten", 1, (1, 16), True),
        ("Flatten", 2, (4, 4), False),
        ("Unsqueeze", [1], (1, 1, 4, 2, 2), True),
        ("Squeeze", [0], (4, 2, 2), False),
    ],
)
def test_the_rules_put_a_layout_op_on_the_dpu_exactly_when_the_emulator_runs_it(op, arg, out, on_dpu):
    # a layout op that moves the batch axis from the front (its output on one image not of batch 1) was put on the
    # DPU by the operator rules, which the emulator refused when it ran (split warned to use --backend cpu); the
    # rules now leave it to the CPU, deciding with the emulator's own check (dpu_ops.layout_moves_batch)
    from dpupose.dpu.config import load_config
    from dpupose.split.assign import CPU, assign
    from dpupose.split.graph import analyze

    m = Model()
    eye = m.const_dq("w", np.eye(4, dtype=np.int8).reshape(4, 4, 1, 1), 0)  # a DPU op before it: the input itself
    m.nodes.append(helper.make_node("Conv", [m.input((1, 4, 2, 2), 3), eye], ["c_float"], kernel_shape=[1, 1]))
    x = m.qdq("c_float", 3, "c")
    if op == "Flatten":
        m.op(op, [x], axis=arg)
    else:
        m.op(op, [x, m.const("arg", np.array(arg, np.int64))])
    model = m.build(3, out)
    g = analyze(onnx.load_from_string(model))
    a = assign(g, load_config("u96v2-b1600-pynq"))
    k = next(u.index for u in g.units if u.op == op)
    assert (a.devices[k] != CPU) is on_dpu, a.reasons[k]
    x = {"x0": np.arange(16, dtype=np.int8).reshape(1, 2, 2, 4)}  # NHWC
    if on_dpu:
        y = EmulatorRunner(model).run(x)["y"]
        np.testing.assert_array_equal(y, x["x0"].transpose(0, 3, 1, 2).reshape(out))  # ONNX's order, fix point kept
        return
    moves = f"{op} of [1, 4, 2, 2] to {list(out)} (batch 1) moves the batch axis from the front: an image's values"
    assert a.reasons[k].startswith(moves)
    with pytest.raises(ModelFileError, match="the emulator runs a layout op that keeps the batch axis first"):
        EmulatorRunner(model).run(x)


def test_a_reshape_with_its_own_quantization_keeps_onnx_s_order():
    # DQ -> Reshape (1, 4, 2, 3) to (1, 2, 12) -> Q at another fix point: reshape-fix then the requantization
    m = Model()
    x = m.input((1, 4, 2, 3), 5)
    m.op("Reshape", [x, m.const("shape", np.array([1, 2, 12], np.int64))])
    model = m.build(4, (1, 2, 12))
    emu = EmulatorRunner(model)
    xin = feeds(emu)
    y = emu.run(xin)["y"].astype(np.int64)
    expected = np.floor(xin["x0"].transpose(0, 3, 1, 2).reshape(1, 2, 12) / 2 + 0.5)
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(y, torch_ref(model, xin, [5]))


# ---- the torch reference (dpupose.quant.torch_ref) on what the cases above left out (a mutation audit) --------
@pytest.mark.parametrize("op", ["Conv", "ConvTranspose"])
def test_the_torch_reference_floors_a_bias_finer_than_the_accumulator_one_bit_below_it(op):
    # x at fp 0 times a weight of 1 at fp 0: sums on the integers; a bias of 7 at fp 3 (0.875) floors to 0.5 on
    # the accumulator's grid plus one bit, so the output at fp 1 is 2x + 1 (2x + 2 with the bias as it is, 2x
    # with it floored to the integers)
    m = Model()
    x = m.input((1, 1, 2, 3), 0)
    w = m.const_dq("w", np.ones((1, 1, 1, 1), np.int8), 0)
    b = m.const_dq("b", np.array([7], np.int8), 3)
    m.op(op, [x, w, b], kernel_shape=[1, 1])
    model = m.build(1, (1, 1, 2, 3))
    feed = {"x0": np.array([-3, -2, -1, 0, 1, 2], np.int8).reshape(1, 2, 3, 1)}
    want = 2 * feed["x0"].astype(np.int64) + 1
    np.testing.assert_array_equal(torch_ref(model, feed, [0]), want)
    np.testing.assert_array_equal(EmulatorRunner(model).run(feed)["y"], want)


def test_the_torch_reference_truncates_an_add_input_two_bits_below_the_coarser():
    # x0 at fp 6 plus x1 at fp 2 into fp 6: x0 is truncated to 2**-4 first, floor(x0 / 4) / 16, so the output
    # is 4 floor(x0 / 4) + 16 x1 steps (15/64 + 1/4 gives 28, not 31 exactly nor 24 truncated to 2**-3)
    m = Model()
    m.op("Add", [m.input((1, 1, 1, 4), 6), m.input((1, 1, 1, 4), 2)])
    model = m.build(6, (1, 1, 1, 4))
    feed = {"x0": np.array([15, -15, 63, 1], np.int8).reshape(1, 1, 4, 1), "x1": np.array([1, 1, -2, 0], np.int8)}
    feed["x1"] = feed["x1"].reshape(1, 1, 4, 1)
    want = np.array([28, 0, 28, 0]).reshape(1, 1, 4, 1)
    np.testing.assert_array_equal(torch_ref(model, feed, [6, 2]), want)
    np.testing.assert_array_equal(EmulatorRunner(model).run(feed)["y"], want)


def test_the_torch_reference_pads_a_conv_top_left_bottom_right_as_onnx_orders_them():
    # pads [1, 0, 0, 1]: a row above and a column on the right (the same counts either way round per axis)
    rng = np.random.default_rng(3)
    m = Model()
    x = m.input((1, 2, 5, 6), 4)
    w = m.const_dq("w", rng.integers(-128, 128, (3, 2, 3, 3)).astype(np.int8), 7)
    m.op("Conv", [x, w], kernel_shape=[3, 3], pads=[1, 0, 0, 1])
    model = m.build(2, (1, 3, 4, 5))
    emu = EmulatorRunner(model)
    feed = feeds(emu, 3)
    y = emu.run(feed)["y"].astype(np.int64)
    assert y.shape == (1, 4, 5, 3) and len(np.unique(y)) > 10
    np.testing.assert_array_equal(torch_ref(model, feed, [4]), y)
    assert set(np.unique(y - ort_plain(model, feed))) <= {0, 1}  # ONNX Runtime: ties to even, no other change


def test_the_torch_reference_reads_a_depth_to_space_without_a_mode_as_onnx_s_default_dcr():
    m = Model()
    m.op("DepthToSpace", [m.input((1, 8, 3, 4), 5)], blocksize=2)
    model = m.build(5, (1, 2, 6, 8))
    import onnxruntime as ort

    feed = {"x0": np.random.default_rng(0).integers(-128, 128, (1, 3, 4, 8)).astype(np.int8)}
    x = feed["x0"].transpose(0, 3, 1, 2).astype(np.float32) / 2**5
    (y,) = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"x0": x})
    want = np.round(y * 2**5).astype(np.int64).transpose(0, 2, 3, 1)  # a permutation: exact
    assert len(np.unique(want)) > 10
    np.testing.assert_array_equal(torch_ref(model, feed, [5]), want)


def test_the_torch_reference_refuses_a_resize_by_sizes_that_are_not_whole_multiples():
    model = _resize_sizes("nearest", [1, 3, 6, 10], 13)  # 6 rows of 4
    ref = TorchQdqReference(onnx.load_from_string(model))
    with pytest.raises(ModelFileError, match=r"a resize to 6x10 of \(4, 5\): not a whole multiple"):
        ref.trace({"x0": np.zeros((1, 3, 4, 5))})


def test_the_torch_reference_concatenates_along_the_axis_the_node_names():
    # along H (axis 2) at one fix point: the int8 values side by side, as the emulator puts them
    m = Model()
    m.op("Concat", [m.input((1, 3, 2, 5), 4), m.input((1, 3, 4, 5), 4)], axis=2)
    model = m.build(4, (1, 3, 6, 5))
    emu = EmulatorRunner(model)
    feed = feeds(emu, 1)
    want = np.concatenate([feed["x0"], feed["x1"]], axis=1).astype(np.int64)  # NHWC: H is axis 1
    np.testing.assert_array_equal(emu.run(feed)["y"], want)
    np.testing.assert_array_equal(torch_ref(model, feed, [4, 4]), want)


def test_the_torch_reference_reads_the_opset_of_the_ai_onnx_domain_by_its_long_name():
    # a model importing the default domain as "ai.onnx" (the emulator's reader takes that name too): at opset
    # 17 a bilinear resize without a coordinate mode is half_pixel, not the asymmetric mapping of opset 10
    model = onnx.load_from_string(_bilinear(4, 4, 2))
    model.opset_import[0].domain = "ai.onnx"
    model = model.SerializeToString()
    emu = EmulatorRunner(model)
    x = feeds(emu, 6)
    v = _bilinear_closed_form(x["x0"].astype(np.int64), 2, True)
    want = np.vectorize(lambda q: min(max((q + Fraction(1, 2)).__floor__(), -128), 127))(v).astype(np.int64)
    np.testing.assert_array_equal(emu.run(x)["y"], want)
    np.testing.assert_array_equal(torch_ref(model, x, [4]), want)


def test_the_torch_reference_pools_a_kernel_of_other_height_and_width_padded_on_two_sides():
    # a 2 x 4 window (8 pixels: the reciprocal is 1/8 exactly), stride (2, 4), a padded row on top and a padded
    # column on the right (count_include_pad: a pad is a 0 pixel)
    model = _pool("AveragePool", 4, 4, (5, 7), (3, 2), kernel_shape=[2, 4], strides=[2, 4], pads=[1, 0, 0, 1],
                  count_include_pad=1)  # fmt: skip
    emu = EmulatorRunner(model)
    x = feeds(emu, 9)
    padded = np.pad(x["x0"][0].astype(np.int64), ((1, 0), (0, 1), (0, 0)))  # H, W, C
    windows = [[padded[2 * i : 2 * i + 2, 4 * j : 4 * j + 4] for j in range(2)] for i in range(3)]
    sums = np.array([[w.sum(axis=(0, 1)) for w in row] for row in windows])
    want = np.floor(sums[None] / 8 + 0.5).astype(np.int64)
    np.testing.assert_array_equal(emu.run(x)["y"], want)
    np.testing.assert_array_equal(torch_ref(model, x, [4]), want)


LAYOUT_CASES = [  # (spec as the emulator's parser reads the node, the input's shape at batch 1)
    (("reshape", (0, -1), 0), (1, 2, 3, 4)),
    (("reshape", (1, 4, -1), 0), (1, 2, 3, 4)),
    (("reshape", (0, 0, 12), 0), (1, 2, 3, 4)),
    (("reshape", (1, 24), 1), (1, 2, 3, 4)),
    (("flatten", 0), (1, 2, 3, 4)),
    (("flatten", 2), (1, 2, 3, 4)),
    (("flatten", 4), (1, 2, 3, 4)),
    (("flatten", -1), (1, 2, 3, 4)),
    (("flatten", -4), (1, 2, 3, 4)),
    (("squeeze", (2,)), (1, 2, 1, 4)),
    (("squeeze", (-2, 0)), (1, 2, 1, 4)),
    (("unsqueeze", (1,)), (1, 8)),
    (("unsqueeze", (-1, 1)), (1, 8)),
    (("unsqueeze", (0, 3)), (1, 8)),
]


def _onnx_layout(spec: tuple, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The output shape ONNX's reference implementation gives the layout op `spec` on zeros of `shape`."""
    from onnx.reference import ReferenceEvaluator

    kind, inputs, inits, attrs = spec[0], ["x"], [], {}
    if kind == "reshape":
        inputs.append("s")
        inits.append(numpy_helper.from_array(np.array(spec[1], np.int64), "s"))
        attrs["allowzero"] = spec[2]
    elif kind == "flatten":
        attrs["axis"] = spec[1]
    else:
        inputs.append("a")
        inits.append(numpy_helper.from_array(np.array(spec[1], np.int64), "a"))
    node = helper.make_node(kind.capitalize(), inputs, ["y"], **attrs)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    model = helper.make_model(
        helper.make_graph([node], "g", [x], [y], inits), opset_imports=[helper.make_opsetid("", 19)]
    )
    return tuple(ReferenceEvaluator(model).run(None, {"x": np.zeros(shape, np.float32)})[0].shape)


@pytest.mark.parametrize(("spec", "shape"), LAYOUT_CASES)
def test_a_layout_op_s_shape_is_onnx_s(spec, shape):
    # the emulator works out a layout op's output shape itself (dpu_ops.layout_shape): 0 copies the input's size
    # (unless allowzero), -1 takes what is left, a negative axis counts from the end of the input (Flatten,
    # Squeeze) or of the output (Unsqueeze); checked against ONNX's reference implementation
    assert dpu_ops.layout_shape(spec, shape) == _onnx_layout(spec, shape)


@pytest.mark.parametrize(
    ("spec", "shape", "refusal"),
    [
        # allowzero: 0 is a size of 0, not the input's 1
        (("reshape", (0, 24), 1), (1, 2, 3, 4), "a Reshape of [1, 2, 3, 4] (24 values) to [0, 24]"),
        (("reshape", (2, -1, -1), 0), (1, 2, 3, 4), "a Reshape to [2, -1, -1]"),  # two -1s
        (("reshape", (1, 5, -1), 0), (1, 2, 3, 4), "a Reshape of [1, 2, 3, 4] to [1, 5, -1]"),  # 24 not rows of 5
        (("reshape", (1, 25), 0), (1, 2, 3, 4), "a Reshape of [1, 2, 3, 4] (24 values) to [1, 25]"),
        (("squeeze", (1,)), (1, 2, 1, 4), "a Squeeze of axes [1] of [1, 2, 1, 4]"),  # an axis that is not 1
        (("squeeze", (4,)), (1, 2, 1, 4), "a Squeeze of axes [4] of [1, 2, 1, 4]"),
        (("unsqueeze", (1, 1)), (1, 8), "an Unsqueeze at axes [1, 1] of a 2-D input"),  # an axis twice
        # the same axis of the 4-D output, twice
        (("unsqueeze", (1, -3)), (1, 8), "an Unsqueeze at axes [1, -3] of a 2-D input"),
        (("unsqueeze", (3,)), (1, 8), "an Unsqueeze at axes [3] of a 2-D input"),
    ],
)
def test_a_layout_op_onnx_refuses_is_refused(spec, shape, refusal):
    """Refused by the check for that fault, in its words: any ValueError had passed (two -1s let through were
    still refused, by the later check of the number of values, and called a Reshape of the wrong size)."""
    with pytest.raises(Exception):  # noqa: B017 (whichever error the reference raises)
        _onnx_layout(spec, shape)
    with pytest.raises(ValueError) as refused:
        dpu_ops.layout_shape(spec, shape)
    assert str(refused.value) == refusal


def test_layout_ops_run_on_each_image_of_a_batch():
    # the emulator works a layout op out on one image (batch 1) and applies it to each: a Reshape to [1, -1] of a
    # batch of 3 gives each image's values as its own row (on the whole batch it would be one row of all three)
    x = np.arange(3 * 2 * 3 * 4).reshape(3, 2, 3, 4)
    y = dpu_ops.apply_layout(x, [("reshape", (1, -1), 0)])
    np.testing.assert_array_equal(y, x.reshape(3, 24))
    y = dpu_ops.apply_layout(x, [("flatten", 1), ("unsqueeze", (1,)), ("reshape", (0, 0, 6, 4), 0)])
    np.testing.assert_array_equal(y, x.reshape(3, 1, 6, 4))
    with pytest.raises(ValueError, match=r"a reshape of one image of \[1, 2, 3, 4\] to \[2, 12\]"):
        dpu_ops.apply_layout(x, [("reshape", (2, 12), 0)])


@pytest.mark.parametrize("axis", [5, -5])
def test_a_flatten_outside_its_input_s_axes_is_refused(axis):
    # ONNX's Flatten takes an axis in [-r, r] of an input of rank r
    with pytest.raises(ValueError, match=f"a Flatten at axis {axis} of a 4-D input"):
        dpu_ops.layout_shape(("flatten", axis), (1, 2, 3, 4))


def test_a_gemm_of_rows_that_are_not_a_matrix_is_refused_when_it_runs():
    # ONNX's Gemm multiplies a matrix: a (1, 1, 8) input (one row, so the rows rule lets it through) is refused,
    # not taken as a MatMul's rows
    m = Model()
    x = m.input((1, 1, 8), 3)
    m.op("Gemm", [x, m.const_dq("w", np.ones((8, 3), np.int8), 0)])
    model = m.build(3, (1, 1, 3))
    with pytest.raises(ModelFileError, match=r"a Gemm of a 3-D input \[1, 1, 8\]: ONNX's Gemm multiplies a matrix"):
        EmulatorRunner(model).run({"x0": np.zeros((1, 1, 8), np.int8)})


def test_a_large_average_pool_rounds_its_ties_half_up_after_the_fix_point_change():
    # a 9 x 229 window (factor 127 / 2**18, the float32 path) over one pixel of v and zeros: v * 127 / 2**18 times
    # 2**(fp_out - fp_in), exact in float32 here, then DPURound (half toward +infinity: -63.5 -> -63, 63.5 -> 64;
    # numpy's round would give -64 and 64) and saturation; the closed form in exact fractions
    vs = np.arange(-6, 7)
    x = np.zeros((1, 9, 229, vs.size), np.int8)
    x[0, 4, 100, :] = vs
    for fp_in, fp_out in ((0, 16), (0, 17), (3, 21), (2, 2), (19, 1)):
        y = dpu_ops.avg_pool(x, (9, 229), (1, 1), (0, 0, 0, 0), fp_in, fp_out)
        exact = [Fraction(int(v) * 127, 2**18) * Fraction(2) ** (fp_out - fp_in) for v in vs]
        expected = [max(-128, min(127, math.floor(e + Fraction(1, 2)))) for e in exact]
        assert y.reshape(-1).tolist() == expected, (fp_in, fp_out)
    assert dpu_ops.avg_pool(x, (9, 229), (1, 1), (0, 0, 0, 0), 0, 17).reshape(-1).tolist()[5:8] == [-63, 0, 64]


def test_a_resize_with_an_axis_twice_or_a_size_of_zero_is_not_emulated():
    with pytest.raises(NotEmulated, match=r"axes \[2, 2\]: the emulator resizes a 4-D tensor, each axis once"):
        EmulatorRunner(_resize_axes("nearest", [2, 2], "scales", [2, 2], (8, 4)))
    with pytest.raises(NotEmulated, match=r"sizes \[0, 8\] for axes \[2, 3\]"):
        EmulatorRunner(_resize_axes("nearest", [2, 3], "sizes", [0, 8], (0, 8)))
