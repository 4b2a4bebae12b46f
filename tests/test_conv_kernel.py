"""The emulator's prepared convolutions (`dpu_ops.ConvKernel`: float32/float64 matrix products and tap
sums, exact below a bound worked out from each layer's weights) against the int64 implementation they
replaced (`dpu_ops_int64`, kept unchanged), integer for integer: random layers with the edge cases of
each path, the float32 bound at its limit, and every tensor of the shipped DPU subgraph."""

from __future__ import annotations

import dpu_ops_int64
import numpy as np
import pytest
from quant_helpers import rand_int8
from shipped_docs import MODEL_DIR

from dpupose.runtime import dpu_ops
from dpupose.runtime.emulator import EmulatorRunner

# (C, O, K, stride, pads, dilation, groups, act, fp_in, fp_w, fp_b, fp_out, width, path)
# width: the input's; path: the arithmetic the kernel must pick for the layer.
LAYERS = {
    "depthwise s1 relu6 cap": (16, 16, 3, (1, 1), (1, 1, 1, 1), (1, 1), 16, "relu6", 5, 7, 9, 4, 9, "float32"),
    "depthwise s2 odd width": (8, 8, 3, (2, 2), (1, 1, 1, 1), (1, 1), 8, "none", 5, 6, 8, 5, 11, "float32"),
    "depthwise s2 asymmetric": (6, 6, 3, (2, 2), (0, 1, 1, 0), (1, 1), 6, "relu6", 5, 7, 8, 3, 10, "float32"),
    "depthwise s2 pads after": (6, 6, 3, (2, 2), (0, 0, 1, 1), (1, 1), 6, "none", 5, 7, 8, 6, 10, "float32"),
    "depthwise 5x5 s3 dilated": (5, 5, 5, (2, 3), (2, 3, 1, 4), (1, 2), 5, "relu", 4, 6, 7, 4, 13, "float32"),
    "depthwise x2 shift_cut<0": (6, 12, 3, (1, 1), (1, 1, 1, 1), (1, 1), 6, "none", 3, 2, 2, 7, 8, "float32"),
    "depthwise leaky s2 dilated": (4, 4, 3, (2, 2), (2, 2, 2, 2), (2, 2), 4, "leaky", 5, 7, 6, 5, 9, "float32"),
    "conv 3x3 s1 bias floored": (4, 6, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, "none", 4, 5, 12, 3, 7, "float32"),
    "conv 3x3 s2 relu": (4, 6, 3, (2, 2), (1, 1, 1, 1), (1, 1), 1, "relu", 4, 6, 4, 3, 9, "float32"),
    "conv 3x3 stem s2": (3, 8, 3, (2, 2), (1, 1, 1, 1), (1, 1), 1, "relu6", 5, 7, 9, 4, 12, "float32"),
    # leaky: 26 n must fit too, which here it does not in float32
    "conv dilated asymmetric": (4, 5, 3, (1, 2), (2, 0, 1, 3), (2, 2), 1, "leaky", 5, 7, 6, 5, 10, "float64"),
    "conv 1x1 relu6 saturates": (4, 6, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1, "relu6", 4, 7, None, 6, 6, "float32"),
    "conv 1x1 s2": (8, 5, 1, (2, 2), (0, 0, 0, 0), (1, 1), 1, "none", 5, 7, 9, 6, 7, "float32"),
    "conv 1x1 padded": (3, 4, 1, (1, 1), (1, 0, 0, 2), (1, 1), 1, "relu", 5, 6, 7, 5, 5, "float32"),
    "grouped leaky shift_bias -1": (4, 4, 3, (1, 2), (1, 0, 1, 2), (1, 1), 2, "leaky", 6, 6, 13, 8, 8, "float32"),
    "grouped 1x1": (6, 9, 1, (1, 1), (0, 0, 0, 0), (1, 1), 3, "relu6", 5, 6, 8, 4, 5, "float32"),
    "one input channel": (1, 4, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, "none", 5, 6, 8, 5, 6, "float32"),
    "leaky shift_cut<0": (3, 4, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, "leaky", 1, 1, 3, 6, 6, "float32"),
    "leaky s+8 = 0": (2, 3, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1, "leaky", 0, 0, 1, 9, 6, "float32"),
    "leaky s+8 < 0": (2, 3, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1, "leaky", 0, 0, 1, 10, 6, "float32"),
    "relu shift_cut<0": (3, 4, 3, (2, 2), (1, 1, 1, 1), (1, 1), 1, "relu", 2, 1, 3, 6, 7, "float32"),
    "relu6 fp_out 2": (4, 4, 3, (1, 1), (1, 1, 1, 1), (1, 1), 4, "relu6", 4, 3, 5, 2, 6, "float32"),
    # A bias far to the left (shift_bias 20): sums up to 2**28, beyond float32's 24 bits.
    "bias shift 20": (4, 6, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, "relu", 12, 12, 4, 4, 6, "float64"),
    "depthwise bias shift 20": (4, 4, 3, (2, 2), (1, 1, 1, 1), (1, 1), 4, "leaky", 12, 12, 4, 4, 7, "float64"),
    # shift_bias 54: the aligned bias reaches 2**61, beyond float64's 53 bits: int64 as before.
    "bias shift 54": (4, 6, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, "none", 30, 30, 6, 5, 6, "int64"),
}
PATHS = {"float32": np.float32, "float64": np.float64, "int64": None}
# Layers whose shift_cut is negative multiply the sums: small values keep some outputs off the int8 ends.
AMPLITUDE = {"depthwise x2 shift_cut<0": 3, "leaky shift_cut<0": 2, "leaky s+8 = 0": 1, "leaky s+8 < 0": 1}
AMPLITUDE["relu shift_cut<0"] = 2


def _layer(name: str, seed: int, extreme: bool):
    c, o, k, stride, pads, dilation, groups, act, fp_in, fp_w, fp_b, fp_out, width, path = LAYERS[name]
    rng = np.random.default_rng(seed)
    amp = 128
    if extreme:  # every value at the int8 range's ends: the largest sums, saturation both ways
        x = rng.choice(np.array([-128, 127], dtype=np.int8), size=(2, 7, width, c))
        w = rng.choice(np.array([-128, 127], dtype=np.int8), size=(o, c // groups, k, k))
    else:
        amp = AMPLITUDE.get(name, amp)
        x = rng.integers(-amp, min(amp + 1, 128), size=(2, 7, width, c)).astype(np.int8)
        w = rng.integers(-amp, min(amp + 1, 128), size=(o, c // groups, k, k)).astype(np.int8)
    b = None if fp_b is None else rng.integers(-amp, min(amp + 1, 128), size=o).astype(np.int8)
    kwargs = dict(
        fp_in=fp_in, fp_w=fp_w, fp_b=fp_b, fp_out=fp_out,
        stride=stride, pads=pads, dilation=dilation, groups=groups, act=act,
    )  # fmt: skip
    return x, w, b, kwargs, path


@pytest.mark.parametrize("extreme", [False, True], ids=["random", "extreme"])
@pytest.mark.parametrize("name", list(LAYERS))
def test_conv_kernel_gives_the_int64_implementations_integers(name, extreme):
    x, w, b, kwargs, path = _layer(name, list(LAYERS).index(name), extreme)
    want = dpu_ops_int64.conv2d(x, w, b, **kwargs)
    kernel = dpu_ops.ConvKernel(w, b, **kwargs)
    if not extreme:  # extreme weights raise the bound: another path, maybe
        assert kernel.dtype is PATHS[path]
    got = kernel(x)
    assert got.dtype == np.int8 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(kernel(x[1:]), want[1:])  # prepared once, run again: the same
    np.testing.assert_array_equal(dpu_ops.conv2d(x, w, b, **kwargs), want)
    if not extreme:
        assert len(np.unique(want)) > 2  # not all one value, nor only the int8 range's ends


@pytest.mark.parametrize("rows", [1, 2])
@pytest.mark.parametrize("name", [name for name in LAYERS if name.startswith("depthwise")])
def test_depthwise_sums_formed_in_blocks_of_rows_are_the_same(name, rows, monkeypatch):
    # A depthwise layer forms its sums a block of output rows at a time; blocks of 1 or 2 rows here (the
    # last one shorter), with strides, dilation and padding at the block edges.
    x, w, b, kwargs, _ = _layer(name, list(LAYERS).index(name), False)
    want = dpu_ops_int64.conv2d(x, w, b, **kwargs)
    row_bytes = x.shape[0] * want.shape[2] * want.shape[3] * 4
    monkeypatch.setattr(dpu_ops, "DEPTHWISE_BLOCK_BYTES", rows * row_bytes * (2 if "bias shift" in name else 1))
    kernel = dpu_ops.ConvKernel(w, b, **kwargs)
    assert kernel.depthwise and want.shape[1] > rows
    np.testing.assert_array_equal(kernel(x), want)


def test_the_cases_reach_what_they_are_for():
    # The relu6 cap, both saturations and a floored bias are in the cases above, checked on the reference.
    x, w, b, kwargs, _ = _layer("depthwise s1 relu6 cap", 0, True)
    assert (dpu_ops_int64.conv2d(x, w, b, **kwargs) == 96).any()
    x, w, b, kwargs, _ = _layer("conv 1x1 relu6 saturates", 10, True)
    assert (dpu_ops_int64.conv2d(x, w, b, **{**kwargs, "act": "none"}) == -128).any()
    assert (dpu_ops_int64.conv2d(x, w, b, **{**kwargs, "act": "none"}) == 127).any()


def _one_by_one(taps_each: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """A 1x1 conv whose sum is 2 * taps_each * (127 * 127) + ... : half its taps 127 x 127 (odd products),
    half -128 x -128, so n = 2 * acc + 1 is odd and as large as the weights allow."""
    c = 2 * taps_each
    x = np.array([127] * taps_each + [-128] * taps_each, dtype=np.int8).reshape(1, 1, 1, c)
    w = x.reshape(1, c, 1, 1).copy()
    return x, w, dict(fp_in=0, fp_w=0, fp_b=None, fp_out=0)  # s = 1: u = (2 * acc + 1) / 2


@pytest.mark.parametrize(("taps_each", "path"), [(250, np.float32), (260, np.float64)])
def test_float32_is_used_exactly_up_to_its_24_bits(taps_each, path):
    # 128 * sum|w| bounds the sum: 250 + 250 taps give n <= 16320001 < 2**24 (float32), 260 + 260 give
    # 16972801 > 2**24 (float64). The sums reached are odd and close to those bounds, where float32 would
    # drop the last bit above 2**24; the accumulated value (before rounding, which hides low bits) is exact.
    x, w, kwargs = _one_by_one(taps_each)
    kernel = dpu_ops.ConvKernel(w, None, **kwargs)
    assert kernel.dtype is path
    acc = taps_each * (127 * 127 + 128 * 128)
    assert (2 * acc + 1) % 2 == 1 and (2 * acc + 1 > 2**24) == (path is np.float64)
    u = kernel._accumulate(x)
    assert u.dtype == path
    assert int(u.reshape(-1)[0] * 2) == 2 * acc + 1
    assert kernel(x).reshape(-1).tolist() == [127]  # saturates, as the int64 rules say
    assert dpu_ops_int64.conv2d(x, w, None, **kwargs).reshape(-1).tolist() == [127]


def test_the_shipped_dpu_part_gives_every_integer_of_the_int64_implementation():
    runner = EmulatorRunner(MODEL_DIR / "split" / "dpu0.onnx")
    (info,) = runner.inputs
    # docs/quantization.md: every layer of the shipped model fits float32 (its speed rests on that)
    convs = [s for s in runner.program.steps if s.kind == "conv"]
    kernels = [
        dpu_ops.ConvKernel(
            s.weight, s.bias, fp_in=s.fps_in[0], fp_w=s.fp_w, fp_b=s.fp_b, fp_out=s.fp_out, stride=s.attrs["stride"],
            pads=s.attrs["pads"], dilation=s.attrs["dilation"], groups=s.attrs["groups"], act=s.act,
        )
        for s in convs
    ]  # fmt: skip
    assert convs and all(k.dtype is np.float32 for k in kernels)
    rng = np.random.default_rng(0)
    # random int8, and a smooth image-like input (large uniform areas, as in photographs)
    noise = rand_int8(rng, (1, *info.shape[1:]))
    yy, xx = np.mgrid[0 : info.shape[1], 0 : info.shape[2]]
    smooth = np.stack([np.sin(xx / 17.0 + c) * np.cos(yy / 23.0) * 120 for c in range(info.shape[3])], axis=-1)
    for x in (noise, smooth[None].astype(np.int8)):
        got = runner.trace({info.name: x})
        want = dpu_ops_int64.run_program(runner.program, {info.name: x})
        assert list(got) == list(want)
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
        assert len(np.unique(got[runner.program.outputs[0].tensor])) > 10


@pytest.mark.parametrize("fp_out", [-60, 71])
def test_shifts_beyond_the_normal_float_range_stay_in_int64(fp_out):
    # s = fp_in + fp_w - fp_out + 1 = 66 or -65: a scale 2**-s whose values float32's normal range may
    # not hold; such a layer keeps the int64 arithmetic whatever its bound.
    w = np.ones((1, 1, 1, 1), dtype=np.int8)
    kernel = dpu_ops.ConvKernel(w, None, fp_in=2, fp_w=3, fp_b=None, fp_out=fp_out)
    assert abs(kernel.s) > dpu_ops.MAX_FLOAT_SHIFT
    assert kernel.dtype is None
    assert dpu_ops.ConvKernel(w, None, fp_in=2, fp_w=3, fp_b=None, fp_out=5).dtype is np.float32


def test_inputs_and_weights_the_bound_does_not_cover_are_refused():
    # The float path is exact only because |x| <= 128 (int8) and the bound is taken from integer weights:
    # an int16 input (values up to 32767) would pass the float32 path unchecked and lose low bits, and float
    # weights would be truncated into the bound. Both are refused instead of computed inexactly.
    w = np.full((1, 2, 1, 1), 127, dtype=np.int8)
    kernel = dpu_ops.ConvKernel(w, None, fp_in=0, fp_w=0, fp_b=None, fp_out=0)
    assert kernel.dtype is np.float32
    with pytest.raises(ValueError, match="conv input must be int8, not int16"):
        kernel(np.full((1, 1, 1, 2), 30000, dtype=np.int16))
    with pytest.raises(ValueError, match="must be integer arrays"):
        dpu_ops.ConvKernel(w.astype(np.float32) / 2, None, fp_in=0, fp_w=0, fp_b=None, fp_out=0)
    with pytest.raises(ValueError, match="must be integer arrays"):
        dpu_ops.ConvKernel(w, np.array([0.5]), fp_in=0, fp_w=0, fp_b=0, fp_out=0)


def test_the_bound_counts_an_input_of_minus_128():
    # |x| <= 128, not 127: 512 taps of -128 x -128 sum to 2**23, so n + h = 2**24 + 1 (s = 1), one bit
    # past float32's significand; a bound of 127 * sum|w| (2**24 - 2**17 + 1) would pick float32 and
    # accumulate u = 2**23 + 1/2 as 2**23.
    x = np.full((1, 1, 1, 512), -128, dtype=np.int8)
    w = np.full((1, 512, 1, 1), -128, dtype=np.int8)
    kernel = dpu_ops.ConvKernel(w, None, fp_in=0, fp_w=0, fp_b=None, fp_out=0)
    assert kernel.bound == 2**24 + 1 and kernel.dtype is np.float64
    assert float(kernel._accumulate(x).reshape(-1)[0]) == 2**23 + 0.5


def test_a_prepared_conv_refuses_shapes_it_cannot_run():
    with pytest.raises(ValueError, match=r"conv shapes do not match: weights \(5, 2, 3, 3\), groups 2"):
        dpu_ops.ConvKernel(np.zeros((5, 2, 3, 3), np.int8), None, fp_in=0, fp_w=0, fp_b=None, fp_out=0, groups=2)
    dense = dpu_ops.ConvKernel(np.ones((2, 3, 3, 3), np.int8), None, fp_in=0, fp_w=0, fp_b=None, fp_out=0)
    depthwise = dpu_ops.ConvKernel(np.ones((4, 1, 3, 3), np.int8), None, fp_in=0, fp_w=0, fp_b=None, fp_out=0, groups=4)
    # more channels than the weights take (the first 3 would be used), or one channel (broadcast over 4)
    for kernel, channels in ((dense, 5), (depthwise, 1)):
        with pytest.raises(ValueError, match="conv shapes do not match: input"):
            kernel(np.ones((1, 4, 4, channels), np.int8))
    # a 3 x 3 kernel over 2 x 2 without padding has no output pixel: refused, not an empty result
    with pytest.raises(ValueError, match="smaller than its kernel"):
        dense(np.ones((1, 2, 2, 3), np.int8))
    assert dense(np.ones((1, 3, 3, 3), np.int8)).reshape(-1).tolist() == [27, 27]  # one pixel: 27 taps of 1
