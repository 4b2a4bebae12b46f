"""The emulator's integer kernels against a loop reference in exact rationals (written independently
from the description of the DPU's rules, not from the vectorised code)."""

import numpy as np
import pytest
from quant_helpers import rand_int8, ref_add, ref_conv

from dpupose.runtime import dpu_ops


def test_round_shift_rounds_half_up_closed_form():
    n = np.array([-5, -3, -2, -1, 0, 1, 2, 3, 5], dtype=np.int64)
    # n / 2: -2.5 -1.5 -1 -0.5 0 0.5 1 1.5 2.5 -> half toward +inf
    assert dpu_ops.round_shift(n, 1).tolist() == [-2, -1, -1, 0, 0, 1, 1, 2, 3]
    assert dpu_ops.round_shift(n, -2).tolist() == (n * 4).tolist()
    assert dpu_ops.floor_shift(n, 1).tolist() == [-3, -2, -1, -1, 0, 0, 1, 1, 2]


CONV_CASES = [
    # (C, O, K, stride, pads, dilation, groups, act, fp_in, fp_w, fp_b, fp_out)
    (4, 6, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, "none", 5, 7, 9, 4),
    (4, 6, 3, (2, 2), (1, 1, 1, 1), (1, 1), 1, "relu", 4, 6, 4, 3),
    (6, 6, 3, (1, 1), (1, 1, 1, 1), (1, 1), 6, "relu6", 4, 7, 8, 4),  # depthwise, cap at 96 steps
    (6, 6, 3, (2, 2), (0, 1, 1, 0), (1, 1), 6, "relu6", 5, 7, 8, 3),  # depthwise, fp_out < 4 keeps the 96 cap
    (4, 5, 3, (1, 1), (2, 2, 2, 2), (2, 2), 1, "leaky", 5, 7, 6, 5),  # dilation
    (4, 6, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1, "relu6", 4, 7, None, 6),  # 1x1, no bias, relu6 saturates
    (4, 4, 3, (1, 2), (1, 0, 1, 2), (1, 1), 2, "leaky", 6, 6, 13, 8),  # grouped, shift_bias -1 (exact)
    (4, 6, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, "none", 4, 5, 12, 3),  # shift_bias -3: bias floored
    (6, 12, 3, (1, 1), (1, 1, 1, 1), (1, 1), 6, "none", 3, 2, 2, 7),  # depthwise x2, shift_cut < 0
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_matches_loop_reference(case):
    c, o, k, stride, pads, dilation, groups, act, fp_in, fp_w, fp_b, fp_out = case
    rng = np.random.default_rng(CONV_CASES.index(case))
    x = rand_int8(rng, (2, 5, 6, c))
    w = rand_int8(rng, (o, c // groups, k, k))
    b = None if fp_b is None else rand_int8(rng, (o,))
    got = dpu_ops.conv2d(
        x, w, b, fp_in=fp_in, fp_w=fp_w, fp_b=fp_b, fp_out=fp_out,
        stride=stride, pads=pads, dilation=dilation, groups=groups, act=act,
    )  # fmt: skip
    want = ref_conv(x, w, b, fp_in, fp_w, fp_b, fp_out, stride, pads, dilation, groups, act)
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, want)


def test_conv_rounding_ties_and_saturation_closed_form():
    # One 1x1 conv, weight 1, fp_in + fp_w - fp_out = 1: output = round_half_up(x / 2).
    x = np.array([-128, -3, -1, 1, 3, 127], dtype=np.int8).reshape(1, 1, 6, 1)
    w = np.ones((1, 1, 1, 1), dtype=np.int8)
    y = dpu_ops.conv2d(x, w, None, fp_in=0, fp_w=0, fp_b=None, fp_out=-1)
    assert y.reshape(-1).tolist() == [-64, -1, 0, 1, 2, 64]
    # LeakyReLU: -100 * 26 / 256 = -10.156 -> -10; -5 * 26/256 = -0.508 -> -1 (half up only at .5 exactly)
    x2 = np.array([-100, -5, 7], dtype=np.int8).reshape(1, 1, 3, 1)
    y2 = dpu_ops.conv2d(x2, w, None, fp_in=0, fp_w=0, fp_b=None, fp_out=0, act="leaky")
    assert y2.reshape(-1).tolist() == [-10, -1, 7]
    # Saturation: 127 * 127 at shift_cut 0 -> 127; -128 * 127 -> -128.
    x3 = np.array([127, -128], dtype=np.int8).reshape(1, 1, 2, 1)
    y3 = dpu_ops.conv2d(x3, np.full((1, 1, 1, 1), 127, np.int8), None, fp_in=3, fp_w=3, fp_b=None, fp_out=6)
    assert y3.reshape(-1).tolist() == [127, -128]
    # A bias finer than the accumulator (shift_bias -3) loses its low bits by floor, not by rounding:
    # bias -5 at fp 3 is -0.625; with its one extra bit it enters as floor(-5 / 4) = -2 half-steps -> -1,
    # not round(-1.25) = -1 half-step -> 0.
    zero = np.zeros((1, 1, 2, 1), dtype=np.int8)
    b = np.array([-5], dtype=np.int8)
    y4 = dpu_ops.conv2d(zero, w, b, fp_in=0, fp_w=0, fp_b=3, fp_out=0)
    assert y4.reshape(-1).tolist() == [-1, -1]


ADD_CASES = [
    ([4, 4], 4, "none"),
    ([5, 3], 3, "relu"),
    ([3, 8], 3, "none"),  # shift_read 5: the finer input loses its low bits
    ([6, 4], 7, "none"),  # output finer than both inputs
    ([4, 6], 2, "relu6"),
    ([2, 2], 1, "leaky"),
]


@pytest.mark.parametrize("fps,fp_out,act", ADD_CASES)
def test_eltwise_add_matches_loop_reference(fps, fp_out, act):
    rng = np.random.default_rng(sum(fps) * 31 + fp_out)
    xs = [rand_int8(rng, (1, 3, 4, 5)) for _ in fps]
    got = dpu_ops.eltwise_add(xs, fps, fp_out, act)
    np.testing.assert_array_equal(got, ref_add(xs, fps, fp_out, act))


def test_eltwise_add_truncates_like_the_dpu_closed_form():
    # fp 2 and fp 6: shift_read 4, so x_b = 5 (5/64) contributes floor(5 * 4 / 16) = 1 quarter step of fp 2.
    a = np.array([[[[1]]]], dtype=np.int8)  # 0.25
    b = np.array([[[[5]]]], dtype=np.int8)  # 0.078125
    y = dpu_ops.eltwise_add([a, b], [2, 6], 6)  # exact sum 0.328125 = 21/64; the DPU gives (4 + 1)/16 = 20/64
    assert int(y.reshape(-1)[0]) == 20


@pytest.mark.parametrize("mode", ["CRD", "DCR"])
def test_depth_to_space_permutation(mode):
    rng = np.random.default_rng(1)
    n, h, w, r, co = 2, 3, 4, 2, 3
    x = rand_int8(rng, (n, h, w, co * r * r))
    y = dpu_ops.depth_to_space(x, r, mode)
    assert y.shape == (n, h * r, w * r, co)
    for ni, hi, wi, i, j, c in np.ndindex(n, h, w, r, r, co):
        src = c * r * r + i * r + j if mode == "CRD" else (i * r + j) * co + c
        assert y[ni, hi * r + i, wi * r + j, c] == x[ni, hi, wi, src]


def test_depth_to_space_crd_is_torch_pixel_shuffle():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = rand_int8(rng, (1, 2, 3, 8))
    want = torch.nn.functional.pixel_shuffle(torch.from_numpy(x.transpose(0, 3, 1, 2).astype(np.float32)), 2)
    got = dpu_ops.depth_to_space(x, 2, "CRD")
    np.testing.assert_array_equal(got.transpose(0, 3, 1, 2), want.numpy().astype(np.int8))


def _loop_sums(x, w, stride, pads, dilation):
    """Exact sums of a convolution (groups 1) by direct loops over the zero-padded input."""
    n, h, wd, c = x.shape
    o, _c, kh, kw = w.shape
    top, left, bottom, right = pads
    oh = (h + top + bottom - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + left + right - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n, oh, ow, o), dtype=np.int64)
    for ni, y, xx, oc, ci, i, j in np.ndindex(n, oh, ow, o, c, kh, kw):
        iy, ix = y * stride[0] + i * dilation[0] - top, xx * stride[1] + j * dilation[1] - left
        if 0 <= iy < h and 0 <= ix < wd:
            out[ni, y, xx, oc] += int(x[ni, iy, ix, ci]) * int(w[oc, ci, i, j])
    return out


@pytest.mark.parametrize(
    ("k", "stride", "pads", "dilation"),
    [
        (1, (1, 2), (0, 0, 0, 0), (1, 1)),  # the 1 x 1 path, rows and columns strided differently
        (1, (2, 1), (1, 0, 0, 1), (1, 1)),
        (3, (1, 1), (2, 1, 2, 1), (1, 2)),  # the windowed path, rows and columns dilated differently
        (3, (2, 1), (1, 2, 1, 2), (2, 1)),
    ],
)
def test_the_int64_sums_of_unequal_strides_and_dilations_are_the_loops(k, stride, pads, dilation):
    # conv_accumulate is the int64 path of a layer too large for a float kernel (and the tests' reference):
    # every other case above is square in its strides and dilations.
    rng = np.random.default_rng(k + 10 * stride[0] + 100 * dilation[0])
    x = rand_int8(rng, (2, 7, 8, 3))
    w = rand_int8(rng, (4, 3, k, k))
    got = dpu_ops.conv_accumulate(x, w, stride, pads, dilation)
    np.testing.assert_array_equal(got, _loop_sums(x, w, stride, pads, dilation))


def test_the_int64_sums_refuse_what_they_cannot_compute():
    x = np.zeros((1, 4, 4, 6), dtype=np.int8)
    with pytest.raises(ValueError, match="conv shapes do not match"):
        dpu_ops.conv_accumulate(x, np.zeros((4, 4, 3, 3), np.int8))  # 6 channels, weights for 4
    with pytest.raises(ValueError, match="conv shapes do not match"):
        dpu_ops.conv_accumulate(x, np.zeros((5, 3, 3, 3), np.int8), groups=2)  # 5 outputs in 2 groups
    # 2**39 products of up to 2**14 each reach 2**53, past float64's exact integers (zero-sized arrays: the
    # refusal comes before any sum)
    big = np.zeros((0, 2**19, 2**10, 2**10), np.int8)
    with pytest.raises(ValueError, match="too large for exact float64"):
        dpu_ops.conv_accumulate(np.zeros((0, 2**10, 2**10, 2**19), np.int8), big)


def test_an_unknown_activation_is_refused_not_taken_as_none():
    n = np.array([-300, 5, 300], dtype=np.int64)
    with pytest.raises(ValueError, match="unknown activation 'sigmoid'"):
        dpu_ops.requantize(n, 1, "sigmoid", 4)
    with pytest.raises(ValueError, match="unknown activation 'tanh'"):
        dpu_ops.eltwise_add([np.ones((1, 1, 1, 1), np.int8)] * 2, [3, 3], 3, "tanh")


def test_depth_to_space_reads_the_mode_from_opset_11_and_names_a_bad_channel_count():
    # DepthToSpace-1 (opsets 1-10) has no mode: DCR whatever the node says; DepthToSpace-11 reads it.
    assert dpu_ops.depth_to_space_mode("CRD", 10) == "DCR"
    assert dpu_ops.depth_to_space_mode("CRD", 11) == "CRD"
    assert dpu_ops.depth_to_space_mode("CRD", 0) == "CRD"  # opset unknown: the newest
    assert dpu_ops.depth_to_space_mode(None, 13) == "DCR"
    with pytest.raises(ValueError, match="DepthToSpace: 6 channels not divisible by 2x2"):
        dpu_ops.depth_to_space(np.zeros((1, 2, 2, 6), np.int8), 2)
