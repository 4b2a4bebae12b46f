"""The emulator's integer kernels against Xilinx's own reference code, with the expected integers worked
out by hand from that code (not from dpupose's rules or its loop reference):

- VART's cpu-runner, the CPU reference of the fixed-point XIR operators, in the public vart tree
  (repository zmaychek84/vart): cpu-runner/src/op/conv2d_fix.cpp and dwconv_fix.cpp (`fix()`),
  cpu-runner/src/op/concat_fix.cpp, cpu-runner/src/op/eltwise_fix.cpp (MUL), cpu-runner/include/cpu_util.hpp
  (`DPURound`, the default `round_mode` DPU_ROUND set in cpu-runner/src/cpu_op_base.cpp);
- the same tree's instruction-level DPU simulator for DPUCZDX8G (DPUVersion::DPUV2):
  sim-runner/src/inst/Conv.cpp (`transform()`), Alu.cpp (`transform()` for depthwise conv) and
  Elew.cpp (`Elew<T>::calc()`, the element-wise engine);
- Vitis AI's cpu_task, the Vitis AI Library's CPU implementations of XIR ops (Xilinx/Vitis-AI,
  src/vai_library/cpu_task/ops): hard-sigmoid-fix/hard-sigmoid-fix.cpp and depthwise-fix/depthwise-fix.cpp
  (MUL; its eltwise-fix MUL scales a product by 2**(fp_out - max(0, fp_a, fp_b)), not the product's scale
  2**(fp_out - fp_a - fp_b), and is not followed); the Vitis AI quantizer's hard swish in the same repository
  (vai_q_pytorch's nn/modules/hardswish.py and nndct_shared/compile/xop_creator.py);
- VART's cpu-runner cpu-runner/src/op/resize.cpp (BILINEAR) and resize_fix.cpp (upsample-fix), for the
  bilinear resize that the Vitis AI quantizer's DPU op filter (Xilinx/Vitis-AI, src/vai_quantizer/
  vai_q_pytorch/pytorch_binding/pytorch_nndct/hardware/dpu_op_filter.py) puts on the DPU;
- VART's cpu-runner cpu-runner/src/op/tconv2d.cpp (transposed-conv2d: the input dilated by the stride, padded
  by kernel - 1 - pad, then a convolution of stride 1) and tconv2d_fix.cpp (its fix(): conv2d_fix.cpp's
  2 acc + 2 bias 2**shift_bias over 2**(shift_cut + 1), RELU / LEAKYRELU / RELU6 with the cap at 96 steps for
  fp_out <= 4, round_normal DPU_ROUND), and Vitis AI's cpu_task transposed-conv2d-fix.cpp (the same);
- the eltwise engine's activation set of DPUCZDX8G IP v4: Xilinx/Vitis-AI v2.5,
  src/Vitis-AI-Runtime/VART/target_factory/src/create_target_DPUCZDX8G_ISA1.cpp (ReLU only).

DPURound: clamp to [-128, 127], then x.5 goes up for negative x (ceil) and for positive x (std::round),
so every tie rounds toward +infinity.
"""

import numpy as np
import pytest

from dpupose.runtime import dpu_ops


def col(values) -> np.ndarray:
    """int8 values as an NHWC tensor (1, 1, W, 1)."""
    return np.array(values, dtype=np.int8).reshape(1, 1, -1, 1)


def flat(y: np.ndarray) -> list[int]:
    return [int(v) for v in y.reshape(-1)]


def test_conv_bias_shift_cut_ties_and_saturation():
    # conv2d_fix.cpp fix(): tmp = 2 * acc + 2 * bias * 2**shift_bias; tmp /= 2**(shift_cut + 1); DPURound.
    # fp_in 4, fp_w 5, fp_b 6, fp_out 5: shift_bias 3, shift_cut 4; bias -7; 1x1 weights 3 and 127.
    # Channel w = 3: (6x - 112) / 32 for x = 0, 1, 10, 24, 28, 32, 127, -128:
    #   -3.5 -> -3, -3.3125 -> -3, -1.625 -> -2, 1.0 -> 1, 1.75 -> 2, 2.5 -> 3, 20.3125 -> 20, -27.5 -> -27
    # Channel w = 127: (254x - 112) / 32:
    #   -3.5 -> -3, 4.4375 -> 4, 75.875 -> 76, 187 -> 127, 218.75 -> 127, 250.5 -> 127, 1004.6 -> 127,
    #   -1019.5 -> -128
    x = col([0, 1, 10, 24, 28, 32, 127, -128])
    w = np.array([3, 127], dtype=np.int8).reshape(2, 1, 1, 1)
    b = np.array([-7, -7], dtype=np.int8)
    y = dpu_ops.conv2d(x, w, b, fp_in=4, fp_w=5, fp_b=6, fp_out=5)
    assert flat(y[..., 0]) == [-3, -3, -2, 1, 2, 3, 20, -27]
    assert flat(y[..., 1]) == [-3, 4, 76, 127, 127, 127, 127, -128]


def test_depthwise_conv_pads_with_zero_and_rounds_the_same_way():
    # dwconv_fix.cpp fix() is conv2d_fix.cpp's arithmetic; Alu.cpp dw_conv_one() sums the taps of the
    # zero-padded input per channel. 3x1 kernel [1, 2, 1] on each of two channels, H = 3, pads 1 at top
    # and bottom, fp_in 0, fp_w 0, fp_out -1 (shift_cut 1), no bias:
    #   channel 0, [5, -3, 7]:  0 + 10 - 3 = 7 -> 3.5 -> 4;  5 - 6 + 7 = 6 -> 3;  -3 + 14 + 0 = 11 -> 5.5 -> 6
    #   channel 1, [-5, 3, -7]: -7 -> -3.5 -> -3;  -6 -> -3;  -11 -> -5.5 -> -5
    x = np.array([[5, -5], [-3, 3], [7, -7]], dtype=np.int8).reshape(1, 3, 1, 2)
    w = np.array([1, 2, 1, 1, 2, 1], dtype=np.int8).reshape(2, 1, 3, 1)
    y = dpu_ops.conv2d(x, w, None, fp_in=0, fp_w=0, fp_b=None, fp_out=-1, pads=(1, 0, 1, 0), groups=2)
    assert flat(y[..., 0]) == [4, 3, 6]
    assert flat(y[..., 1]) == [-3, -3, -5]


def test_leaky_relu_is_26_over_256_before_rounding():
    # Conv.cpp transform(): tmp = acc / 2**(shift_cut + 1) * 2 ...; tmp < 0: tmp * 26 / 256; DPURound.
    # fp_in 4, fp_w 0, fp_out 3 (shift_cut 1), weight 1: tmp = x / 2, then the slope:
    #   x = -128: -64 * 0.1015625 = -6.5 -> -6 (tie up); -127: -6.449 -> -6; -64: -3.25 -> -3;
    #   -10: -0.5078 -> -1; -1: -0.0508 -> 0; 7: 3.5 -> 4
    w = np.ones((1, 1, 1, 1), dtype=np.int8)
    y = dpu_ops.conv2d(col([-128, -127, -64, -10, -1, 7]), w, None, fp_in=4, fp_w=0, fp_b=None, fp_out=3, act="leaky")
    assert flat(y) == [-6, -6, -3, -1, 0, 4]


def test_relu6_is_a_cap_at_96_output_steps():
    # conv2d_fix.cpp / dwconv_fix.cpp, nonlinear RELU6: tmp < 0 -> 0; if fp_output <= 4, tmp >= 6 << 4 -> 96.
    w1 = np.ones((1, 1, 1, 1), dtype=np.int8)
    # fp_out 4: 96 steps are 6.0.
    y = dpu_ops.conv2d(col([-5, 0, 95, 96, 97, 127]), w1, None, fp_in=4, fp_w=0, fp_b=None, fp_out=4, act="relu6")
    assert flat(y) == [0, 0, 95, 96, 96, 96]
    # fp_out 3: still 96 steps (12.0, not 6.0 = 48 steps); weight 2, shift_cut 1: tmp = x.
    w2 = np.full((1, 1, 1, 1), 2, dtype=np.int8)
    y = dpu_ops.conv2d(col([40, 50, 100, 127]), w2, None, fp_in=4, fp_w=0, fp_b=None, fp_out=3, act="relu6")
    assert flat(y) == [40, 50, 96, 96]
    # fp_out 5: no cap; the int8 range (< 4.0) is below 6.0 anyway.
    y = dpu_ops.conv2d(col([-1, 100, 127]), w1, None, fp_in=5, fp_w=0, fp_b=None, fp_out=5, act="relu6")
    assert flat(y) == [0, 100, 127]


def test_eltwise_add_aligns_with_two_guard_bits_floored():
    # Elew.cpp Elew<T>::calc() (DPUV2): tmp = sum(floor(x_i * 4 / 2**shift_read_i)); tmp *= 2**(fp_out -
    # fp_min); tmp /= 4; activation; DPURound. shift_read_i = fp_i - fp_min.
    # a at fp 2, b at fp 6: shift_read 0 and 4, so b enters as floor(b / 4) quarter steps of fp 2.
    a = col([1, 0, 1, -1, 31, -32])
    b = col([5, -5, -1, -1, 127, -128])
    # fp_out 6 (factor 16 / 4 = 4): 4 * (4a + floor(b / 4)):
    #   (4 + 1) * 4 = 20, (0 - 2) * 4 = -8, (4 - 1) * 4 = 12, (-4 - 1) * 4 = -20, 620 -> 127, -640 -> -128
    # (the exact sums 16a + b would be 21, -5, 15, -17: the floor, not rounding, costs the low bits)
    assert flat(dpu_ops.eltwise_add([a, b], [2, 6], 6)) == [20, -8, 12, -20, 127, -128]
    # fp_out 0 (factor 1/4, then / 4): (4a + floor(b / 4)) / 16:
    a0 = col([2, -2, -2, 6, -6])
    b0 = col([0, 0, -1, 0, 0])
    #   8/16 = 0.5 -> 1, -0.5 -> 0, -9/16 -> -1, 1.5 -> 2, -1.5 -> -1
    assert flat(dpu_ops.eltwise_add([a0, b0], [2, 6], 0)) == [1, 0, -1, 2, -1]


def test_eltwise_add_relu():
    # Elew.cpp: RELU_TYPE_RELU clamps tmp at 0 before DPURound (the only activation the DPUCZDX8G IP v4
    # eltwise engine has). Both inputs at fp 4, output at fp 3: tmp = (4a + 4b) / 2 / 4 = (a + b) / 2.
    a = col([3, 3, -100, 100, 1])
    b = col([-4, 0, -100, 100, 0])
    #   -0.5 -> 0, 1.5 -> 2, -100 -> 0, 100, 0.5 -> 1
    assert flat(dpu_ops.eltwise_add([a, b], [4, 4], 3, "relu")) == [0, 2, 0, 100, 1]


def test_fix_position_change_rounds_like_concat_fix():
    # concat_fix.cpp: round_normal(DPU_ROUND, x * 2**(fp_out - fp_in)) for an input at another position.
    x = np.array([-128, -10, -6, -2, 2, 6, 10, 127], dtype=np.int8)
    # fp 5 -> 3: x / 4 = -32, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 31.75
    assert flat(dpu_ops.requantize_int8(x, 5, 3)) == [-32, -2, -1, 0, 1, 2, 3, 32]
    # fp 3 -> 5: x * 4, saturated
    y = np.array([-40, -32, 31, 32], dtype=np.int8)
    assert flat(dpu_ops.requantize_int8(y, 3, 5)) == [-128, -128, 124, 127]


def test_pixel_shuffle_index_of_the_reference():
    # pixel_shuffle.cpp shuffle(), upscale: out[h, w, c] = in[h / s, w / s, c * s * s + w % s + (h % s) * s]
    x = np.arange(8, dtype=np.int8).reshape(1, 1, 1, 8)
    y = dpu_ops.depth_to_space(x, 2, "CRD")
    assert y[0, :, :, 0].tolist() == [[0, 1], [2, 3]]
    assert y[0, :, :, 1].tolist() == [[4, 5], [6, 7]]


def test_concat_moves_each_input_to_the_output_fix_point():
    # concat_fix.cpp: out = round_normal(DPU_ROUND, x * 2**(fp_output - fp_input_i)), data_min/max: each
    # input on its own, then placed after the previous inputs along the axis (here NHWC channels).
    a = col([-6, -2, 2, 6, 127])  # fp 5
    b = col([-40, 31, 32, 1, 0])  # fp 3
    # fp_out 3: a / 4 = -1.5, -0.5, 0.5, 1.5, 31.75 -> -1, 0, 1, 2, 32; b as it is
    y = dpu_ops.concat([a, b], [5, 3], 3, axis=3)
    assert y.shape == (1, 1, 5, 2)
    assert flat(y[..., 0]) == [-1, 0, 1, 2, 32] and flat(y[..., 1]) == [-40, 31, 32, 1, 0]
    # fp_out 4: a / 2 = -3, -1, 1, 3, 63.5 -> 64; b * 2 = -80, 62, 64, 2, 0
    y = dpu_ops.concat([a, b], [5, 3], 4, axis=3)
    assert flat(y[..., 0]) == [-3, -1, 1, 3, 64] and flat(y[..., 1]) == [-80, 62, 64, 2, 0]
    # fp_out 5: a as it is; b * 4 = -160 -> -128, 124, 128 -> 127, 4, 0; along W this time
    y = dpu_ops.concat([a, b], [5, 3], 5, axis=2)
    assert flat(y) == [-6, -2, 2, 6, 127, -128, 124, 127, 4, 0]


def test_nearest_upsample_index_of_the_reference():
    # resize.cpp, NEAREST without align_corners or half_pixel_centers: h_idx = min(floor(h * in_h / out_h),
    # in_h - 1), the same for w. In 2 x 2, out 4 x 6 (scales 2, 3): h_idx 0, 0, 1, 1; w_idx 0, 0, 0, 1, 1, 1.
    x = np.array([[1, -2], [3, -128]], dtype=np.int8).reshape(1, 2, 2, 1)
    y = dpu_ops.upsample_nearest(x, 2, 3)
    assert y[0, :, :, 0].tolist() == [
        [1, 1, 1, -2, -2, -2],
        [1, 1, 1, -2, -2, -2],
        [3, 3, 3, -128, -128, -128],
        [3, 3, 3, -128, -128, -128],
    ]
    # with half_pixel_centers: floor((h + 0.5) * 1/2) = 0, 0, 1, 1 and floor((w + 0.5) / 3) = 0, 0, 0, 1, 1, 1


def test_max_pool_never_takes_the_padding():
    # pool_fix.cpp MAX: max_pool over the input padded with the lowest value (pool_base.cpp read()), then
    # round_normal(x * 2**(fp_out - fp_in)). 3 x 3 input, kernel 2 x 2, stride 2, pads top 1 and left 1:
    # windows (pad, pad, pad, -128) -> -128; (pad, pad, 3, -128) -> 3; (pad, 7, pad, -1) -> 7;
    # (-2, 0, -100, 4) -> 4
    x = np.array([[-128, 3, -128], [7, -2, 0], [-1, -100, 4]], dtype=np.int8).reshape(1, 3, 3, 1)
    y = dpu_ops.max_pool(x, (2, 2), (2, 2), (1, 1, 0, 0))
    assert y[0, :, :, 0].tolist() == [[-128, 3], [7, 4]]
    # kernel 3 x 1, stride 1, no pads: column maxima of each 3 rows: 7, 3, 4
    assert flat(dpu_ops.max_pool(x, (3, 1), (1, 1), (0, 0, 0, 0))) == [7, 3, 4]
    # kernel 2 x 2, stride 1 down and 2 across over 0..11 in 3 rows of 4: windows at rows 0, 1 and columns
    # 0, 2 -> maxima 5, 7 (rows 0-1) and 9, 11 (rows 1-2); the same windows' sums 10, 18, 26, 34 / 4
    x = np.arange(12, dtype=np.int8).reshape(1, 3, 4, 1)
    assert dpu_ops.max_pool(x, (2, 2), (1, 2), (0, 0, 0, 0))[0, :, :, 0].tolist() == [[5, 7], [9, 11]]
    assert dpu_ops.avg_pool(x, (2, 2), (1, 2), (0, 0, 0, 0), 0, 0)[0, :, :, 0].tolist() == [[3, 5], [7, 9]]


def test_average_pool_divides_by_the_dpus_reciprocal():
    # pool_fix.cpp AVG: acc_pool sums each window of the zero-padded input (avg_pool.cpp acc_pool_one), then
    # tmp = sum * get_avgpool_dpu_coefficient(kernel), round_normal(DPU_ROUND, tmp * 2**(fp_out - fp_in)).
    # 3 x 3 kernel: coefficient 7 / 64, not 1 / 9. Channel 0 all 64: 576 * 7/64 = 63 (the mean is 64);
    # channel 1 sum 32: 3.5 -> 4; channel 2 sum -32: -3.5 -> -3; channel 3 all 127: 1143 * 7/64 = 125.02 -> 125
    x = np.zeros((1, 3, 3, 4), dtype=np.int8)
    x[..., 0], x[0, 0, 0, 1], x[0, 1, 1, 2], x[..., 3] = 64, 32, -32, 127
    y = dpu_ops.avg_pool(x, (3, 3), (1, 1), (0, 0, 0, 0), 4, 4)
    assert flat(y) == [63, 4, -3, 125]
    # fp_out = fp_in + 1: 126, 7, -7, 250.04 -> 127
    assert flat(dpu_ops.avg_pool(x, (3, 3), (1, 1), (0, 0, 0, 0), 4, 5)) == [126, 7, -7, 127]
    # 2 x 2, stride 2, pads top 1 and left 1 over 3 x 3 of 8: the coefficient is 1/4 whatever the padding
    # (the pad counts as a pixel): windows of 1, 2, 2 and 4 input pixels -> 2, 4, 4, 8
    y = dpu_ops.avg_pool(np.full((1, 3, 3, 1), 8, np.int8), (2, 2), (2, 2), (1, 1, 0, 0), 3, 3)
    assert y[0, :, :, 0].tolist() == [[2, 4], [4, 8]]


def test_average_pool_factors_of_the_reference():
    # get_avgpool_dpu_factors: the table for square kernels 3, 5, 6, 7, 14; otherwise, for shift from 0 below
    # ceil(log2(128 * pixels)), factor = round(2**shift / pixels), kept while strictly closer to 1/pixels.
    # 2 x 3 (6 pixels): shifts below 10; 512 / 6 = 85.3 -> 85/512 (off by 0.00065, 43/256 by 0.0013).
    # 4 x 5 (20 pixels): shifts below 12; 2048 / 20 = 102.4 -> 102/2048. 4 x 4: 1/16 first at shift 4.
    # 1 x 13: shifts below 11; 1024 / 13 = 78.77 rounds up to 79/1024 (off by 3/13312; 512 / 13 = 39.38 ->
    # 39/512 by 10/13312, 20/256 by 16/13312), where truncating would give 78/1024, the same as 39/512.
    table = {(3, 3): (7, 6), (5, 5): (10, 8), (6, 6): (7, 8), (7, 7): (21, 10), (14, 14): (21, 12)}
    more = {(2, 3): (85, 9), (4, 5): (102, 11), (4, 4): (1, 4), (1, 1): (1, 0), (16, 16): (1, 8), (1, 13): (79, 10)}
    for kernel, factors in {**table, **more}.items():
        assert dpu_ops.avgpool_factors(*kernel) == factors, kernel


def test_hard_sigmoid_is_2731_over_2_14_of_x_plus_3():
    # cpu_task hard-sigmoid-fix (Xilinx/Vitis-AI src/vai_library/cpu_task/ops/hard-sigmoid-fix):
    # tmp = min(2**32, max(0, x * 2731 + 3 * 2731 * 2**hsigmoid_in)) / 2**shift_hsigmoid, then fix() (half up,
    # saturated); hsigmoid_in = fp_in, shift_hsigmoid = 14 + fp_in - fp_out. fp_in 4, fp_out 7 (shift 11):
    # x + 48 = m, n = 2731 m: m 0 -> 0; m 1 -> 1.33 -> 1; m 48 (x = 0) -> 64.008 -> 64 (1/2 is 64);
    # m 64 (x = 1.0) -> 85.34 -> 85; m 95 -> 126.68 -> 127; m 96 (x = 3.0) -> 128.02 -> 127; x < -3 -> 0
    y = dpu_ops.hard_sigmoid(col([-128, -48, -47, 0, 16, 47, 48, 127]), 4, 7)
    assert flat(y) == [0, 0, 1, 64, 85, 127, 127, 127]
    # fp_out 8 (shift 10): m 1 -> 2.67 -> 3; m 8 -> 21.34 -> 21; m 24 -> 64.008 -> 64; m 48 -> 128.02 -> 127
    assert flat(dpu_ops.hard_sigmoid(col([-47, -40, -24, 0]), 4, 8)) == [3, 21, 64, 127]
    # fp_in 0 (shift 7): x -3 .. 3 -> m 0 .. 6: 0, 21.34, 42.67, 64.008, 85.34, 106.68, 128.02
    assert flat(dpu_ops.hard_sigmoid(col([-4, -3, -2, -1, 0, 1, 2, 3]), 0, 7)) == [0, 0, 21, 43, 64, 85, 107, 127]
    # HardSigmoid(alpha, beta) is this op for alpha 1/6 (as float32 too) and beta 1/2 only
    assert dpu_ops.is_hard_sigmoid(1 / 6, 0.5) and dpu_ops.is_hard_sigmoid(float(np.float32(1 / 6)), 0.5)
    assert not dpu_ops.is_hard_sigmoid(0.2, 0.5) and not dpu_ops.is_hard_sigmoid(1 / 6, 0.4)
    # The reference has no cap at 6 (XIR's definition has): at fp_out 6 they would differ (m 144 at fp_in 4:
    # 96.01 uncapped against 64.01 capped at m = 96), so that is refused
    with pytest.raises(ValueError, match="output fix points from 7"):
        dpu_ops.hard_sigmoid(col([96]), 4, 6)


def test_hard_swish_multiplies_by_the_hard_sigmoid_at_fix_point_7():
    # Vitis AI quantizer: vai_q_pytorch's deephi_Hardswish (relu6(x + 3) * 2731 / 2**14 fake-quantized at
    # scale 128, method 2 = half up, times x, quantized at the output) and its XIR export
    # (nndct_shared/compile/xop_creator.py hswish: hard-sigmoid, a fix at bit_width - 1 = 7 with DPU_ROUND,
    # then a mul); the mul as cpu-runner eltwise-fix MUL: fix(a * b * 2**(fp_out - fp_a - fp_b)).
    # fp_in 4, fp_out 4: h as in the hard sigmoid test (fp 7), then x h / 2**7:
    # x 64 (4.0): h 127, 8128 / 128 = 63.5 -> 64 (a tie, up); x 127: 16129 / 128 = 126.008 -> 126, not 127;
    # x 16: h 85, 10.625 -> 11; x -16: h 43 (42.67), -688 / 128 = -5.375 -> -5; x -24: h 32 (32.004),
    # -6.0 -> -6; x -40: h 11 (10.67), -3.4375 -> -3; x -48, 0: h 0 or x 0 -> 0
    y = dpu_ops.hard_swish(col([64, 127, 16, -16, -24, -40, -48, 0]), 4, 4)
    assert flat(y) == [64, 126, 11, -5, -6, -3, 0, 0]
    # fp_out 5 (x h / 2**6): 127 -> 252.02 saturates to 127; 16 -> 21.25 -> 21; -16 -> -10.75 -> -11
    assert flat(dpu_ops.hard_swish(col([127, 16, -16]), 4, 5)) == [127, 21, -11]


def test_hard_swish_fuses_the_eltwise_engines_relu_before_rounding():
    # The hard swish's last op is the eltwise engine's mult, and that engine fuses relu (VART's DPUCZDX8G
    # target factory: eltwise nonlinear relu, elew types add and mult). cpu-runner eltwise_fix.cpp MUL with
    # nonlinear RELU: tmp = x * h / 2**shift_write, then tmp < 0 -> 0, then round_normal (DPU_ROUND);
    # sim-runner Elew.cpp calc(): RELU_TYPE_RELU clamps tmp at 0 before DPURound.
    # fp_in 4, fp_out 4 (x h / 2**7, h at fp 7 as in the test above):
    # x 64: 63.5 -> 64; x 16: 10.625 -> 11; x 1: h 65 (65.34), 65 / 128 = 0.51 -> 1; x -1: h 63 (62.67),
    # -63 / 128 = -0.49 -> 0; x -16: -5.375 -> 0; x -24: -6.0 -> 0; x -48: 0; x 127: 126.008 -> 126
    x = col([64, 16, 1, -1, -16, -24, -48, 127])
    assert flat(dpu_ops.hard_swish(x, 4, 4)) == [64, 11, 1, 0, -5, -6, 0, 126]
    assert flat(dpu_ops.hard_swish(x, 4, 4, "relu")) == [64, 11, 1, 0, 0, 0, 0, 126]
    # fp_out 6 (x h / 2**5): x 16: 42.5 -> 43 (a tie, up); x -1: -1.97 -> 0 with the ReLU, -2 without;
    # x 1: 2.03 -> 2
    x6 = col([16, -1, 1])
    assert flat(dpu_ops.hard_swish(x6, 4, 6)) == [43, -2, 2]
    assert flat(dpu_ops.hard_swish(x6, 4, 6, "relu")) == [43, 0, 2]
    with pytest.raises(ValueError, match="fuses none or relu, not 'relu6'"):
        dpu_ops.hard_swish(x6, 4, 6, "relu6")


def test_mul_by_a_constant_is_depthwise_fix_mul():
    # cpu_task depthwise-fix MUL (shift_write = fp_out - fp_x - fp_c): fix(x * c * 2**shift_write), the constant
    # broadcast over H and W. x at fp 4, c = [64, -3, 127] at fp 6, out at fp 4 (/ 64):
    # pixel 1: 5 * 64 -> 5; 32 * -3 = -96 -> -1.5 -> -1 (ceil at a negative tie); 100 * 127 -> 198.4 -> 127
    # pixel 2: -7 * 64 -> -7; 21 * -3 = -63 -> -0.98 -> -1; -100 * 127 -> -198.4 -> -128
    x = np.array([[5, 32, 100], [-7, 21, -100]], dtype=np.int8).reshape(1, 1, 2, 3)
    y = dpu_ops.mul_const(x, np.array([64, -3, 127], np.int8), 4, 6, 4)
    assert flat(y) == [5, -1, 127, -7, -1, -128]
    # one value, 3 at fp 2, x and out at fp 5 (/ 4): 2 * 3 = 6 -> 1.5 -> 2; -6 -> -1.5 -> -1; 18 -> 4.5 -> 5;
    # -18 -> -4.5 -> -4; 3 -> 0.75 -> 1; with a ReLU fused (as after the 1 x 1 depthwise conv): negatives 0
    x = col([2, -2, 6, -6, 1])
    assert flat(dpu_ops.mul_const(x, np.array([3], np.int8), 5, 2, 5)) == [2, -1, 5, -4, 1]
    assert flat(dpu_ops.mul_const(x, np.array([3], np.int8), 5, 2, 5, "relu")) == [2, 0, 5, 0, 1]


def test_mul_of_two_activations_is_the_eltwise_engines_mult():
    # cpu-runner eltwise_fix.cpp MUL: shift_read 0, shift_write = fp_a + fp_b - fp_out; tmp = floor(4 a) *
    # floor(4 b) = 16 a b, tmp /= 2**shift_write, tmp /= 4**2, then the nonlinear (RELU: tmp < 0 -> 0), then
    # round_normal (DPU_ROUND). sim-runner Elew.cpp calc() (DPUV2, elew_type mult, num 2): the same product of
    # floor(x * 4 / 2**shift_read) terms, times the shift_write factor, / 16, RELU, DPURound.
    # a at fp 4, b at fp 3, out at fp 5 (shift_write 2, a b / 4):
    # 15 / 4 = 3.75 -> 4; -3.75 -> -4; 6 / 4 = 1.5 -> 2; -1.5 -> -1 (a negative tie, up); 16129 / 4 -> 127;
    # -16256 / 4 -> -128; -200 / 4 = -50; -3 / 4 = -0.75 -> -1
    a = col([5, -5, 6, -6, 127, -128, 100, 3])
    b = col([3, 3, 1, 1, 127, 127, -2, -1])
    assert flat(dpu_ops.eltwise_mul(a, b, 4, 3, 5)) == [4, -4, 2, -1, 127, -128, -50, -1]
    # with the eltwise engine's ReLU (its only activation: VART's DPUCZDX8G target factory): negatives 0
    assert flat(dpu_ops.eltwise_mul(a, b, 4, 3, 5, "relu")) == [4, 0, 2, 0, 127, 0, 0, 0]
    # fp 6 and 7 to fp 2 (shift_write 11, a b / 2048): 2032 -> 0.99 -> 1; -2048 -> -1; 1024 -> 0.5 -> 1;
    # -1024 -> -0.5 -> 0
    assert flat(dpu_ops.eltwise_mul(col([127, -128, 64, -64]), col([16] * 4), 6, 7, 2)) == [1, -1, 1, 0]
    # fp 1 and 1 to fp 4 (shift_write -2, a b * 4): 60, -60, 160 -> 127, 0
    assert flat(dpu_ops.eltwise_mul(col([3, -3, 20, 0]), col([5, 5, 2, 7]), 1, 1, 4)) == [60, -60, 127, 0]
    with pytest.raises(ValueError, match="fuses none or relu, not 'leaky'"):
        dpu_ops.eltwise_mul(a, b, 4, 3, 5, "leaky")


def test_bilinear_resize_is_the_cpu_runners_float_mix_rounded():
    # cpu-runner resize.cpp BILINEAR (registered as upsample-fix by resize_fix.cpp): scale = in / out, source
    # in = (o + 0.5) * scale - 0.5 with half_pixel_centers, else o * scale; lower = max(floor(in), 0), upper =
    # min(ceil(in), in - 1), lerp = in - floor(in); top = tl + (tr - tl) * x_lerp, the same for bottom, then
    # top + (bottom - top) * y_lerp; resize_fix.cpp fix(): round_normal(DPU_ROUND, out * 2**(fp_out - fp_in)).
    # One row [-3, 5], x2 with half-pixel centres: in = -0.25, 0.25, 0.75, 1.25 -> -3 (both 0), -3 + 8 * 0.25
    # = -1, -3 + 8 * 0.75 = 3, 5 (both 1); at fp_out = fp_in - 1 (/ 2): -1.5 -> -1, -0.5 -> 0, 1.5 -> 2, 2.5 -> 3
    y = dpu_ops.resize_bilinear(col([-3, 5]), 2, True, 4, 3)
    assert flat(y[:, 0]) == [-1, 0, 2, 3] and flat(y[:, 1]) == flat(y[:, 0])  # one input row: rows repeat
    # [0, 16, -16] x4 without half-pixel centres: in = o / 4, lerp 0, .25, .5, .75: 0, 4, 8, 12, 16, 8, 0, -8,
    # -16, then in 2.25... -> both 2: -16; at fp_out = fp_in - 3 (/ 8): 0, 0.5 -> 1, 1, 1.5 -> 2, 2, 1, 0, -1,
    # -2, -2, -2, -2
    y = dpu_ops.resize_bilinear(col([0, 16, -16]), 4, False, 4, 1)
    assert flat(y[:, 0]) == [0, 1, 1, 2, 2, 1, 0, -1, -2, -2, -2, -2]
    # 2x2 [[0, 16], [32, 48]] x2, half-pixel: weights 0, .25, .75, 1 per axis, out = 32 w_row + 16 w_col:
    # row 1: 8, 12, 20, 24; / 8 (fp_out = fp_in - 3): 1, 1.5 -> 2, 2.5 -> 3, 3
    x = np.array([[0, 16], [32, 48]], dtype=np.int8).reshape(1, 2, 2, 1)
    assert flat(dpu_ops.resize_bilinear(x, 2, True, 4, 4)[0, 1]) == [8, 12, 20, 24]
    assert flat(dpu_ops.resize_bilinear(x, 2, True, 4, 1)[0, 1]) == [1, 2, 3, 3]
    # the scales vai_q_pytorch's DPU op filter lets through: 2 or 4 with half-pixel centres, 2, 4 or 8 without
    with pytest.raises(ValueError, match="the DPU's is by"):
        dpu_ops.resize_bilinear(x, 8, True, 4, 4)


def test_transposed_conv_is_a_conv_of_the_input_dilated_by_the_stride():
    # tconv2d.cpp: [3, -5] at stride 2 is [3, 0, -5], padded by kernel - 1 - pad = 2 on each side:
    # [0, 0, 3, 0, -5, 0, 0]; the convolution of stride 1 with the XIR kernel [-1, 2, 1] (the ONNX
    # ConvTranspose weight [1, 2, -1] flipped): 3, 6, -8, -10, 5 (ONNX's own scatter: 3 w at 0-2, -5 w at 2-4).
    # tconv2d_fix.cpp fix(), fp_in 0, fp_w 0, fp_b 0, fp_out -1 (shift_cut 1): (sum + 3) / 2 = 3, 4.5 -> 5,
    # -2.5 -> -2, -3.5 -> -3, 4
    x = col([3, -5])
    w = np.array([1, 2, -1], dtype=np.int8).reshape(1, 1, 1, 3)  # ONNX (C_in, C_out, KH, KW)
    b = np.array([3], dtype=np.int8)
    args = {"fp_in": 0, "fp_w": 0, "fp_b": 0, "stride": (1, 2)}
    assert flat(dpu_ops.conv_transpose2d(x, w, b, fp_out=-1, **args)) == [3, 5, -2, -3, 4]
    # RELU before rounding: negatives 0
    assert flat(dpu_ops.conv_transpose2d(x, w, b, fp_out=-1, act="relu", **args)) == [3, 5, 0, 0, 4]
    # pads 1 left and right: the conv's padding is 3 - 1 - 1 = 1, the outputs at the ends drop: 5, -2, -3
    assert flat(dpu_ops.conv_transpose2d(x, w, b, fp_out=-1, pads=(0, 1, 0, 1), **args)) == [5, -2, -3]
    # fp_out 4 (shift_cut -4, x 16): 96, 144 -> 127, -80, -112, 128 -> 127
    assert flat(dpu_ops.conv_transpose2d(x, w, b, fp_out=4, **args)) == [96, 127, -80, -112, 127]
    # the channels: an ONNX weight (C_in 1, C_out 2) gives output channel c from w[0, c]: 2 x and -x
    w2 = np.array([2, -1], dtype=np.int8).reshape(1, 2, 1, 1)
    y = dpu_ops.conv_transpose2d(x, w2, None, fp_in=0, fp_w=0, fp_b=None, fp_out=0, stride=(1, 2))
    assert flat(y[..., 0]) == [6, 0, -10] and flat(y[..., 1]) == [-3, 0, 5]


def test_transposed_depthwise_conv_is_a_depthwise_conv_of_the_input_dilated_by_the_stride():
    # tdwconv.cpp: each channel on its own, the input dilated by the stride and padded by kernel - 1 - pad, then
    # dwconv at stride 1 with the XIR kernel (the ONNX weight flipped); tdwconv_fix's shift and round as dwconv's.
    # Channel 0 is the dense test's: [3, -5], w [1, 2, -1], bias 3 -> 3, 5, -2, -3, 4. Channel 1: [2, 1] at
    # stride 2 is [2, 0, 1], padded by 2: [0, 0, 2, 0, 1, 0, 0]; the XIR kernel [1, 1, 0] (ONNX [0, 1, 1]
    # flipped): 0, 2, 2, 1, 1 (ONNX's scatter: 2 w at 0-2, 1 w at 2-4); bias -1, fp_out -1: (sum - 1) / 2 =
    # -0.5 -> 0, 0.5 -> 1, 1, 0, 0
    x = np.array([[3, 2], [-5, 1]], dtype=np.int8).reshape(1, 1, 2, 2)  # NHWC: W 2, C 2
    w = np.array([[1, 2, -1], [0, 1, 1]], dtype=np.int8).reshape(2, 1, 1, 3)  # ONNX (C_in, C_out / groups, KH, KW)
    b = np.array([3, -1], dtype=np.int8)
    args = {"fp_in": 0, "fp_w": 0, "fp_b": 0, "stride": (1, 2), "groups": 2}
    y = dpu_ops.conv_transpose2d(x, w, b, fp_out=-1, **args)
    assert y.shape == (1, 1, 5, 2)
    assert flat(y[..., 0]) == [3, 5, -2, -3, 4] and flat(y[..., 1]) == [0, 1, 1, 0, 0]
    # a pad of 1 on the left (the conv's padding 3 - 1 - 1 = 1 there)
    y = dpu_ops.conv_transpose2d(x, w, b, fp_out=-1, pads=(0, 1, 0, 0), **args)
    assert flat(y[..., 0]) == [5, -2, -3, 4] and flat(y[..., 1]) == [1, 1, 0, 0]
    # no activation is fused into it (vai_q_pytorch's DPU op filter lists none for the transposed depthwise conv)
    with pytest.raises(ValueError, match="fuses no activation on the DPU, not relu"):
        dpu_ops.conv_transpose2d(x, w, b, fp_out=-1, act="relu", **args)
