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
