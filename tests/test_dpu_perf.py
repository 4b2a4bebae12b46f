"""Performance model: closed-form cycle and byte counts on one-layer graphs, op handling, bad input."""

import math

import numpy as np
import onnx
import pytest
import torch
from dpu_onnx import (
    add,
    batch_norm,
    conv,
    conv_transpose,
    custom_op,
    depth_to_space,
    hard_activation,
    mul_const,
    qdq_conv,
    resize,
)

from dpupose.dpu.board import load_board
from dpupose.dpu.config import AluParallel, config_from_arch
from dpupose.dpu.fingerprint import fingerprint
from dpupose.dpu.graph import Layer, extract_layers
from dpupose.dpu.perf import PerfConstants, bandwidth, estimate, layer_cycles
from dpupose.errors import ConfigError, ModelFileError
from dpupose.model import build_model
from dpupose.model.export import export_onnx
from dpupose.model.pose import ModelConfig

U96 = load_board("ultra96v2")
B1600 = config_from_arch("B1600", 200)  # PP 8, ICP = OCP 10, ALU PP 4
NO_OVERHEAD = PerfConstants(layer_overhead_cycles=0.0, ddr_efficiency=1.0, host_ms=0.0)
F = 200e6
BW = 4.27e9  # Ultra96-V2 DDR peak; below the 6.4 GB/s of the core's two 128-bit ports at 200 MHz


def one_layer(model, cfg=B1600, constants=NO_OVERHEAD):
    est = estimate(model, cfg, U96, constants)
    assert len(est.layers) == 1
    return est.layers[0]


def test_conv_cycles_pad_channels_and_pixels():
    layer = one_layer(conv(32, 64, 14, 3))
    cycles = 14 * math.ceil(14 / 8) * math.ceil(64 / 10) * 9 * math.ceil(32 / 10)  # 7056
    assert layer.compute_ms == pytest.approx(cycles / F * 1e3)
    nbytes = 32 * 14 * 14 + 64 * 14 * 14 + 64 * 32 * 9 + 64
    assert layer.memory_ms == pytest.approx(nbytes / BW * 1e3)
    assert layer.bound == "compute" and layer.time_ms == pytest.approx(layer.compute_ms)
    assert layer.macs == 14 * 14 * 64 * 32 * 9


def test_channel_augmentation_packs_the_first_layer():
    with_aug = one_layer(conv(3, 32, 224, 3, stride=2))
    without = one_layer(conv(3, 32, 224, 3, stride=2), config_from_arch("B1600", 200, channel_augmentation=False))
    assert with_aug.compute_ms == pytest.approx(112 * 14 * 4 * 3 * 1 / F * 1e3)  # KH * ceil(KW*IC/ICP)
    assert without.compute_ms == pytest.approx(112 * 14 * 4 * 9 / F * 1e3)
    # A wide kernel row packs too: 7 taps of 6 channels are 42 values, ceil(42/10) = 5 passes per row, not 7.
    wide = one_layer(conv(6, 32, 56, 7))
    assert wide.compute_ms == pytest.approx(56 * 7 * 4 * 7 * 5 / F * 1e3)


def test_depthwise_runs_on_the_alu_engine():
    layer = one_layer(conv(96, 96, 56, 3, groups=96))
    assert layer.kind == "dwconv"
    assert layer.compute_ms == pytest.approx(56 * 14 * 10 * 9 / F * 1e3)  # ALU PP = PP/2 = 4
    alu8 = config_from_arch("B1600", 200, alu_parallel=AluParallel.P8)
    assert one_layer(conv(96, 96, 56, 3, groups=96), alu8).compute_ms == pytest.approx(56 * 7 * 10 * 9 / F * 1e3)


def test_a_grouped_conv_is_left_to_the_cpu_as_the_operator_rules_say():
    # neither dense nor depthwise: the split runs it on the CPU, and the estimate leaves it out with that reason
    graph = extract_layers(conv(64, 64, 14, 3, groups=4), B1600)
    assert "conv" not in [layer.name for layer in graph.layers]
    assert ("conv", "Conv", "not a DPU op (grouped Conv (groups=4) is neither dense nor depthwise)") in graph.excluded
    # its formula, per group, for a layer given by hand
    layer = Layer("g", "Conv", "gconv", ((1, 64, 14, 14),), (1, 64, 14, 14), (3, 3), (1, 1), 4)
    assert layer_cycles(layer, B1600) == 4 * 14 * 2 * 2 * 9 * 2


def test_a_transposed_conv_is_costed_at_its_ceil_k_over_stride_taps():
    # The conv engine's transposed conv (vai_q_pytorch's DPU op filter counts its kernel as kernel // stride): each
    # output pixel takes ceil(K / stride) taps per axis of the input dilated by the stride, so the conv formula
    # with that kernel: OH * ceil(OW / PP 8) * ceil(C_out / OCP 10) * ceil(K/s)**2 * ceil(C_in / ICP 10).
    # SimpleBaseline's deconv, 4x4 s2 pads 1, 256 -> 256 channels, 8x8 -> 16x16: 16 * 2 * 26 * 4 * 26 = 86528
    layer = one_layer(conv_transpose(256, 256, 8, 4, 2, 1))
    assert (layer.kind, layer.op) == ("deconv", "ConvTranspose")
    assert layer.compute_ms == pytest.approx(86528 / F * 1e3)
    assert layer.macs == 16 * 16 * 256 * 256 * 4  # the same taps: in * out channels * ceil(K/s)**2 per pixel
    # a 3x3 at stride 2 (ceil(3/2) = 2 taps per axis), 32 -> 20 channels, 7x7 -> 13x13 (pads 1):
    # 13 * ceil(13 / 8) * ceil(20 / 10) * 2 * 2 * ceil(32 / 10) = 13 * 2 * 2 * 4 * 4 = 832
    layer = one_layer(conv_transpose(32, 20, 7, 3, 2, 1))
    assert layer.output == (1, 20, 13, 13) and layer.compute_ms == pytest.approx(832 / F * 1e3)
    # its traffic: the input, the output, the C_in * C_out * K * K int8 weights and the bias
    nbytes = 32 * 49 + 20 * 169 + 32 * 20 * 9 + 20
    assert layer.memory_ms == pytest.approx(nbytes / BW * 1e3)


def test_eltwise_add_reads_both_inputs():
    layer = one_layer(add(64, 28))
    assert layer.compute_ms == pytest.approx(28 * 7 * 7 * 2 / F * 1e3)
    assert layer.memory_ms == pytest.approx(3 * 64 * 28 * 28 / BW * 1e3)


# The DPUCZDX8G's eltwise engine (Add, and Mul of two activations: elew types add and mult) per ARCH at the default
# ALU parallel, as (channel_parallel, pixel_parallel), copied by hand from VART's target factory in Xilinx/Vitis-AI
# at commit c5d2bd43d951c174185d728b8e5bcda3869e0b39 (Vitis AI 3.0; unchanged in 2.5 and 3.5):
# src/vai_runtime/target_factory/targets/DPUCZDX8G_ISA1_<ARCH>.prototxt, block eltwise_engine. Its
# src/create_target_DPUCZDX8G_ISA1.cpp sets them for any fingerprint as channel_parallel = ICP and
# pixel_parallel = ALU_PP, the fingerprint's bits 8-11 (the same pair as its alu_engine).
ELTWISE_ENGINE = {
    "B512": (8, 2),
    "B800": (10, 2),
    "B1024": (8, 4),
    "B1152": (12, 2),
    "B1600": (10, 4),
    "B2304": (12, 4),
    "B3136": (14, 4),
    "B4096": (16, 4),
}


def _eltwise_cycles(cfg):
    # 37 channels on a 13 x 13 map: every channel and pixel parallelism of the table gives its own count
    # (ceil(13 / p) is 13, 7, 4, 2 for p = 1, 2, 4, 8; ceil(37 / c) is 5, 4, 4, 3, 3 for c = 8 ... 16).
    (layer,) = extract_layers(add(37, 13), cfg).layers
    assert layer.kind == "eltwise"
    return layer_cycles(layer, cfg)


@pytest.mark.parametrize("arch", sorted(ELTWISE_ENGINE))
def test_eltwise_parallelism_is_the_target_factorys(arch):
    cp, pp = ELTWISE_ENGINE[arch]
    assert _eltwise_cycles(config_from_arch(arch, 200)) == 13 * math.ceil(13 / pp) * math.ceil(37 / cp) * 2
    # Another ALU parallel setting (dpu_conf.vh's ALU_PARALLEL_n) is written into the fingerprint's bits 8-11,
    # which the target factory reads as the eltwise engine's pixel parallelism.
    for setting in (AluParallel.P1, AluParallel.P2, AluParallel.P4, AluParallel.P8):
        if setting.value > config_from_arch(arch, 200).pp:
            continue  # not a configuration the IP allows (ALU parallel 1 .. PP)
        cfg = config_from_arch(arch, 200, alu_parallel=setting)
        alu_pp = (fingerprint(cfg) & 0xF00) >> 8
        assert alu_pp == setting.value
        assert _eltwise_cycles(cfg) == 13 * math.ceil(13 / alu_pp) * math.ceil(37 / cp) * 2


def test_eltwise_cycles_worked_by_hand():
    # B512 (ICP 8, ALU PP 2): 13 rows * 7 pixel groups * 5 channel groups * 2 inputs = 910 cycles.
    assert _eltwise_cycles(config_from_arch("B512", 200)) == 910
    # B4096 (ICP 16, ALU PP 4): 13 * 4 * 3 * 2 = 312 cycles.
    assert _eltwise_cycles(config_from_arch("B4096", 200)) == 312
    # A hard swish's mult is the same engine: on the B4096, 13 * 4 * 3 * 2 again.
    cfg = config_from_arch("B4096", 200)
    hsig, mult = extract_layers(hard_activation("HardSwish", 37, 13), cfg).layers
    assert mult.kind == "eltwise" and layer_cycles(mult, cfg) == 312


# IP v3.x (Vitis AI 1.x and 2.0) ran the same eltwise engine at 1 pixel per cycle: channel_parallel ICP,
# pixel_parallel 1 in every DPUCZDX8G_ISA0_<ARCH>_MAX(_BG2).prototxt (Xilinx/Vitis-AI b2b227921b66,
# src/vai_runtime/target_factory/expired_targets/; the v2.0 tag's targets/ are the same files). The model
# costs a row at the IP it was measured on (estimate's ip; the calibration CSVs' dpu_ip column).
def test_eltwise_cycles_at_ip_v3_and_v4_rates_worked_by_hand():
    (layer,) = extract_layers(add(37, 13), config_from_arch("B4096", 200)).layers
    b4096, b512 = config_from_arch("B4096", 200), config_from_arch("B512", 200)
    # v4 (4.0, 4.1): B4096 13 rows * ceil(13/4) = 4 pixel groups * ceil(37/16) = 3 channel groups * 2 inputs.
    assert layer_cycles(layer, b4096, "4.0") == layer_cycles(layer, b4096, "4.1") == 312
    # v3.x (3.3, 3.4): one pixel per cycle, 13 * 13 * 3 * 2 = 1014; the B512: 13 * 13 * ceil(37/8) = 5 * 2 = 1690.
    assert layer_cycles(layer, b4096, "3.3") == layer_cycles(layer, b4096, "3.4") == 1014
    assert layer_cycles(layer, b512, "3.4") == 1690
    # whatever its ALU parallel setting, which v3.x did not have
    assert layer_cycles(layer, config_from_arch("B4096", 200, alu_parallel=AluParallel.P8), "3.4") == 1014
    # the default is v4; every other layer kind costs the same at either IP
    assert layer_cycles(layer, b4096) == 312
    (dw,) = extract_layers(conv(37, 37, 13, 3, groups=37), b4096).layers
    assert layer_cycles(dw, b4096, "3.4") == layer_cycles(dw, b4096, "4.1") == 13 * 4 * 3 * 9
    # the transposed conv (conv engine: 13 * ceil(13/8) * ceil(20/16) * ceil(3/2)**2 * ceil(32/16)) and a
    # bilinear x2 resize (the ALU's transposed depthwise conv: 14 * ceil(14/4) * ceil(64/16) * ceil(4/2)**2), not
    # the eltwise engine's rate
    (deconv,) = extract_layers(conv_transpose(32, 20, 7, 3, 2, 1), b4096).layers
    assert layer_cycles(deconv, b4096, "3.4") == layer_cycles(deconv, b4096, "4.1") == 13 * 2 * 2 * 4 * 2
    (bilinear,) = extract_layers(resize(64, 7, 2), b4096).layers
    assert bilinear.kind == "dwdeconv"
    assert layer_cycles(bilinear, b4096, "3.3") == layer_cycles(bilinear, b4096, "4.0") == 14 * 4 * 4 * 4
    # estimate() takes the IP: the add's compute time at each rate
    assert one_layer(add(37, 13), b4096).compute_ms == pytest.approx(312 / F * 1e3)
    v3 = estimate(add(37, 13), b4096, U96, NO_OVERHEAD, ip="3.4").layers[0]
    assert v3.compute_ms == pytest.approx(1014 / F * 1e3)


def test_a_mul_by_a_constant_is_the_1x1_depthwise_conv_the_op_filter_makes_of_it():
    # vai_q_pytorch's DPU op filter (filter_eltwise) turns a Mul by a constant into a 1x1 depthwise conv on the
    # ALU engine (falling back to the eltwise engine's mult only where that conv's check fails): one tap,
    # ICP channels x ALU_PP pixels per cycle, at either IP (IP v3.x's eltwise engine took 1 pixel)
    b1600 = config_from_arch("B1600", 200)  # ICP 10, ALU PP 4
    for shape in ((1, 37, 1, 1), (37, 1, 1), (1,)):  # one value per channel, or one value
        (layer,) = extract_layers(mul_const(37, 13, shape), b1600).layers
        assert (layer.kind, layer.kernel, layer.groups) == ("dwconv", (1, 1), 37)
        # 13 rows * ceil(13 / 4) = 4 pixel groups * ceil(37 / 10) = 4 channel groups * 1 tap = 208
        assert layer_cycles(layer, b1600, "4.0") == layer_cycles(layer, b1600, "3.4") == 208
        assert layer.macs == 13 * 13 * 37 and layer.weight_bytes == 2 * 37  # C weights and C biases
    # over 256 x ICP = 2560 channels the depthwise check fails (check_load_jump_write): the eltwise mult,
    # 13 * 4 * ceil(2561 / 10) = 257 at IP v4; IP v3.x's eltwise engine adds only, so there it is no DPU layer
    (wide,) = extract_layers(mul_const(2561, 13), b1600).layers
    assert wide.kind == "eltwise"
    assert layer_cycles(wide, b1600, "4.0") == 13 * 4 * 257
    for ip in ("3.3", "3.4"):
        walk = extract_layers(mul_const(2561, 13), b1600, ip=ip)
        assert walk.layers == [] and walk.excluded[0][2].startswith(
            "not a DPU op (a Mul by a constant of 2561 channels (over 256 x ICP = 2560: the eltwise mult, not a 1x1 "
            f"depthwise conv) on DPUCZDX8G IP v{ip}: its VART targets (DPUCZDX8G_ISA0_*) have an eltwise engine that "
            "adds only"
        )


def test_a_batch_norm_not_folded_into_a_conv_is_a_1x1_depthwise_conv_and_one_after_a_conv_is_free():
    # The operator rules run a batch norm that reads a quantized tensor (or another op's output) as a 1x1
    # depthwise conv on the ALU engine; the estimate took every BatchNormalization for folded and free. One
    # reading a conv's float output is folded into its weights: no layer of its own.
    b1600 = config_from_arch("B1600", 200)  # ICP 10, ALU PP 4
    for after in ("input", "qdq"):
        layers = extract_layers(batch_norm(37, 13, after), b1600).layers
        assert [layer.name for layer in layers] == (["bn"] if after == "input" else ["conv", "bn"])
        bn = layers[-1]
        assert (bn.kind, bn.kernel, bn.groups) == ("dwconv", (1, 1), 37)
        # 13 rows * ceil(13 / 4) = 4 pixel groups * ceil(37 / 10) = 4 channel groups * 1 tap = 208
        assert layer_cycles(bn, b1600, "4.0") == 208
        assert bn.macs == 13 * 13 * 37 and bn.weight_bytes == 2 * 37  # C weights and C biases
    row = one_layer(batch_norm(37, 13), b1600)  # 208 cycles; its traffic: x, y and the 74 weight and bias bytes
    assert row.compute_ms == pytest.approx(208 / F * 1e3)
    assert row.memory_ms == pytest.approx((2 * 37 * 13 * 13 + 74) / BW * 1e3)
    (folded,) = extract_layers(batch_norm(37, 13, "conv"), b1600).layers
    assert folded.name == "conv" and folded.kind == "conv"


def test_a_batch_norm_over_the_alu_engine_s_channels_is_not_a_dpu_layer():
    # the 1x1 depthwise conv a batch norm runs as takes 256 x ICP channels (2560 on the B1600), as the operator
    # rules say; the estimate costed one of any width
    b1600 = config_from_arch("B1600", 200)
    (bn,) = extract_layers(batch_norm(2560, 2), b1600).layers
    assert (bn.name, bn.kind, bn.groups) == ("bn", "dwconv", 2560)
    graph = extract_layers(batch_norm(2561, 2), b1600)
    assert graph.layers == []
    assert graph.excluded == [
        ("bn", "BatchNormalization", "not a DPU op (BatchNormalization of 2561 channels exceeds 256 x ICP = 2560 (the "
         "ALU engine's, whose 1x1 depthwise conv runs it: vai_q_pytorch's DPU op filter, check_load_jump_write))")
    ]  # fmt: skip


def test_an_unknown_ip_version_is_refused_by_name():
    with pytest.raises(ConfigError, match=r"unknown DPUCZDX8G IP version '5\.0'; .* knows 3\.3, 3\.4, 4\.0, 4\.1"):
        estimate(add(37, 13), B1600, U96, NO_OVERHEAD, ip="5.0")


def test_hard_activations_are_alu_and_eltwise_layers_not_fused():
    # VART's DPUCZDX8G target factory (create_target_DPUCZDX8G_ISA1.cpp): hsigmoid is an ALU op type of its own
    # and a hard swish adds the eltwise engine's mult; the engines fuse only relu, leaky_relu and relu_six.
    pass_ms = 28 * 7 * 7 / F * 1e3  # OH * ceil(OW / ALU PP 4) * ceil(64 / ICP 10): one ALU pass
    tensor = 64 * 28 * 28
    slow = PerfConstants(layer_overhead_cycles=100.0, ddr_efficiency=1.0, host_ms=0.0)
    sig = estimate(hard_activation("HardSigmoid", 64, 28, alpha=1 / 6, beta=0.5), B1600, U96, slow)
    (layer,) = sig.layers
    assert (layer.name, layer.kind) == ("hard", "hsigmoid")
    assert layer.compute_ms == pytest.approx(pass_ms)
    assert layer.memory_ms == pytest.approx(2 * tensor / BW * 1e3)
    assert layer.time_ms == pytest.approx(max(pass_ms, 2 * tensor / BW * 1e3) + 100 / F * 1e3)
    swish = estimate(hard_activation("HardSwish", 64, 28), B1600, U96, slow)
    assert [(r.name, r.kind) for r in swish.layers] == [("hard", "hsigmoid"), ("hard", "eltwise")]
    hsig, mult = swish.layers
    assert hsig.time_ms == pytest.approx(layer.time_ms)
    assert mult.compute_ms == pytest.approx(2 * pass_ms)  # x and hsigmoid(x)
    assert mult.memory_ms == pytest.approx(3 * tensor / BW * 1e3)
    assert swish.latency_ms == pytest.approx(hsig.time_ms + mult.time_ms)
    assert estimate(hard_activation("HardSwish", 64, 28), B1600, U96, slow, ip="4.1").layers == swish.layers
    # ONNX's default HardSigmoid (0.2 x + 0.5) is not the DPU's: excluded for the operator rules' reason.
    graph = extract_layers(hard_activation("HardSigmoid", 64, 28), B1600)
    assert not graph.layers
    reason = "HardSigmoid(alpha=0.2, beta=0.5) is not the DPU's hsigmoid relu6(x + 3) / 6"
    assert graph.excluded[0][2] == f"not a DPU op ({reason})"


def test_depth_to_space_is_data_movement_or_excluded():
    layer = one_layer(depth_to_space(512, 7))
    assert layer.kind == "move" and layer.compute_ms == 0
    assert layer.memory_ms == pytest.approx(2 * 512 * 49 / BW * 1e3)
    off = config_from_arch("B1600", 200, depth_to_space_on_dpu=False)
    graph = extract_layers(depth_to_space(512, 7), off)
    assert not graph.layers and graph.excluded[0][2].startswith("not a DPU op in this configuration")


@pytest.mark.parametrize(
    ("scale", "opset", "attrs"),
    [(2, 17, {}), (4, 17, {}), (8, 17, {"coordinate_transformation_mode": "asymmetric"}), (8, 10, {})],
)
def test_a_bilinear_resize_is_its_transposed_depthwise_conv_on_the_alu(scale, opset, attrs):
    # vai_q_pytorch's DPU op filter: a bilinear upsample at scale s runs as a depthwise transposed conv with
    # fixed weights, kernel 2s, stride s. The model's depthwise formula with the transposed conv's ceil(K/stride)
    # taps per output pixel: OH * ceil(OW / ALU PP 4) * ceil(C / ICP 10) * ceil(2s/s)**2 = 4 taps at any s
    c, hw = 64, 7
    oh = ow = hw * scale
    layer = one_layer(resize(c, hw, scale, opset=opset, **attrs))
    assert (layer.kind, layer.op) == ("dwdeconv", "Resize")
    cycles = oh * math.ceil(ow / 4) * math.ceil(64 / 10) * 2 * 2  # x2: 14 * 4 * 7 * 4 = 1568
    assert cycles == {2: 1568, 4: 28 * 7 * 7 * 4, 8: 56 * 14 * 7 * 4}[scale]
    assert layer.compute_ms == pytest.approx(cycles / F * 1e3)
    assert layer.macs == oh * ow * c * 4
    # its traffic: the input, the output and the C * (2s)**2 int8 fixed weights
    nbytes = c * hw * hw + c * oh * ow + c * (2 * scale) ** 2
    assert layer.memory_ms == pytest.approx(nbytes / BW * 1e3)


def test_a_depthwise_transposed_conv_is_costed_on_the_alu_at_its_ceil_k_over_stride_taps():
    # the ALU engine's transposed depthwise conv (vai_q_pytorch's filter_transpose_depthwise_conv2d), as a
    # bilinear resize's: OH * ceil(OW / ALU PP 4) * ceil(C / ICP 10) * ceil(K/s)**2. 64 channels, 3x3 at
    # stride 2, 7x7 -> 13x13 (pads 1): 13 * 4 * 7 * 2 * 2 = 1456
    layer = one_layer(conv_transpose(64, 64, 7, 3, 2, 1, groups=64))
    assert (layer.kind, layer.op) == ("dwdeconv", "ConvTranspose")
    assert layer.compute_ms == pytest.approx(13 * 4 * 7 * 2 * 2 / F * 1e3)
    assert layer.macs == 13 * 13 * 64 * 4
    # its traffic: the input, the output, the C * K * K int8 weights and the bias
    nbytes = 64 * 49 + 64 * 169 + 64 * 9 + 64
    assert layer.memory_ms == pytest.approx(nbytes / BW * 1e3)


def test_a_nearest_resize_is_data_movement_and_one_the_rules_refuse_is_excluded():
    layer = one_layer(resize(64, 7, 2, mode="nearest"))
    assert layer.kind == "move" and layer.compute_ms == 0
    assert layer.memory_ms == pytest.approx((64 * 49 + 64 * 196) / BW * 1e3)
    # half_pixel (opset 11 on: the default) at x8 and align_corners are not the DPU's (the operator rules)
    graph = extract_layers(resize(64, 7, 8), B1600)
    assert not graph.layers
    reason = "bilinear Resize at scale 8x8 (only 2, 4 with half_pixel, the same on H and W)"
    assert graph.excluded == [("up", "Resize", f"not a DPU op ({reason})")]
    corners = extract_layers(resize(64, 7, 2, coordinate_transformation_mode="align_corners"), B1600)
    assert corners.excluded == [("up", "Resize", "not a DPU op (Resize with align_corners)")]


def test_memory_bound_layer_and_layer_overhead():
    big = conv(1280, 1000, 1, 1, relu6=False)  # a fully connected layer as a 1x1 conv
    layer = one_layer(big)
    assert layer.compute_ms == pytest.approx(128 * 100 / F * 1e3)
    assert layer.memory_ms == pytest.approx((1280 + 1000 + 1280 * 1000 + 1000) / BW * 1e3)
    assert layer.bound == "memory"
    slow = PerfConstants(layer_overhead_cycles=1000.0, ddr_efficiency=0.5, host_ms=0.0)
    layer2 = one_layer(big, constants=slow)
    assert layer2.time_ms == pytest.approx(2 * layer.memory_ms + 1000 / F * 1e3)


def test_bandwidth_is_ddr_share_or_axi_ports():
    c = PerfConstants(0.0, 0.8, 0.0)
    assert bandwidth(B1600, U96, c) == pytest.approx(4.27e9 * 0.8)
    zcu104 = load_board("zcu104")
    slow_clock = config_from_arch("B4096", 100, cores=2, board="zcu104")
    assert bandwidth(slow_clock, zcu104, c, active_cores=1) == pytest.approx(32 * 100e6)  # port-bound
    assert bandwidth(slow_clock, zcu104, c, active_cores=2) == pytest.approx(min(19.2e9 * 0.8 / 2, 3.2e9))


def test_qdq_graph_costs_like_its_float_ops():
    qdq = estimate(qdq_conv(32, 64, 14, 3), B1600, U96, NO_OVERHEAD)
    fp32 = estimate(conv(32, 64, 14, 3), B1600, U96, NO_OVERHEAD)
    assert [layer.kind for layer in qdq.layers] == ["conv"]
    assert qdq.latency_ms == pytest.approx(fp32.latency_ms, rel=1e-3)  # only the bias bytes differ
    assert not qdq.excluded


def test_more_cores_raise_throughput_not_latency():
    one = estimate(conv(64, 64, 28, 3), config_from_arch("B1600", 200), U96, NO_OVERHEAD)
    two = estimate(conv(64, 64, 28, 3), config_from_arch("B1600", 200, cores=2), U96, NO_OVERHEAD)
    assert two.latency_ms == pytest.approx(one.latency_ms)
    assert one.fps < two.throughput_fps <= 2 * one.fps
    # A memory-bound layer gains nothing: two cores share the DDR, each streams at half the rate.
    big = conv(1280, 1000, 1, 1, relu6=False)
    nbytes = 1280 + 1000 + 1280 * 1000 + 1000
    mem_two = estimate(big, config_from_arch("B1600", 200, cores=2), U96, NO_OVERHEAD)
    assert mem_two.fps == pytest.approx(BW / nbytes)
    assert mem_two.throughput_fps == pytest.approx(2 / (nbytes / (BW / 2)))  # = BW / nbytes


def test_pose_model_cpu_ops_are_excluded_and_the_dpu_part_estimated(tmp_path):
    model = build_model(ModelConfig(input_size=64)).eval()
    x = torch.zeros(1, 3, 64, 64)
    full = export_onnx(model, x, tmp_path / "full.onnx", ["image"], ["coords", "heatmaps"])
    part = export_onnx(model.dpu_part, x, tmp_path / "dpu.onnx", ["image"], ["logits"])
    est_full, est_part = estimate(full, B1600, U96), estimate(part, B1600, U96)
    assert est_full.latency_ms == pytest.approx(est_part.latency_ms)
    assert {layer.kind for layer in est_part.layers} == {"conv", "dwconv", "eltwise", "move"}
    assert sum(layer.op == "DepthToSpace" for layer in est_part.layers) == 3
    reasons = {op: why for _, op, why in est_full.excluded}
    assert reasons["Softmax"] == "not a DPU op" and reasons["ReduceSum"] == "not a DPU op"
    assert "Mul" in reasons and "Reshape" in reasons
    assert not est_full.warnings and not est_part.excluded


def test_unknown_op_is_refused_by_name_or_estimated_conservatively():
    with pytest.raises(ModelFileError, match=r"FancyNorm \(node fancy\).*--allow-unknown"):
        estimate(custom_op(16, 8), B1600, U96, NO_OVERHEAD)
    est = estimate(custom_op(16, 8), B1600, U96, NO_OVERHEAD, unknown="conservative")
    assert est.unknown == [("fancy", "FancyNorm")]
    assert any("FancyNorm" in w for w in est.warnings)
    assert est.layers[1].time_ms > est.layers[0].time_ms


def test_not_onnx_is_refused(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"this is not a protobuf \x00\xff" * 10)
    with pytest.raises(ModelFileError, match="not an ONNX model"):
        estimate(bad, B1600, U96)
    with pytest.raises(ModelFileError, match="no such file"):
        estimate(tmp_path / "missing.onnx", B1600, U96)
    with pytest.raises(ModelFileError, match="is a folder; give an ONNX file"):
        estimate(tmp_path, B1600, U96)


def test_estimate_json_has_the_promised_keys():
    d = estimate(conv(16, 16, 8, 3), B1600, U96).to_dict(per_layer=True)
    assert d["predicted"] is True
    assert d["fps"] == pytest.approx(1000 / d["latency_ms"], rel=1e-3)
    assert {"latency_ms", "fps", "throughput_fps", "layers", "excluded", "warnings"} <= set(d)


def test_input_sizes_that_are_not_fixed_are_refused_but_a_symbolic_batch_is_fine():
    model = conv(16, 8, 14, 3)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[0].dim_param = "N"  # a dynamic batch: costed as batch 1, like the fixed model
    assert estimate(model, B1600, U96, NO_OVERHEAD).layers[0].time_ms == one_layer(conv(16, 8, 14, 3)).time_ms
    dims[2].dim_param, dims[3].dim_param = "H", "W"  # unknown image size: every layer's cost unknown
    with pytest.raises(ModelFileError, match=r"input 'x' \('N', 16, 'H', 'W'\) has a size that is not fixed \(H, W\)"):
        estimate(model, B1600, U96, NO_OVERHEAD)


def test_a_kernel_larger_than_its_input_is_refused_not_estimated():
    model = conv(3, 16, 32, 3)
    conv_node = model.graph.node[0]
    conv_node.ClearField("attribute")
    conv_node.attribute.extend([onnx.helper.make_attribute("kernel_shape", [64, 64])])  # no padding
    model.graph.initializer[0].CopyFrom(onnx.numpy_helper.from_array(np.zeros((16, 3, 64, 64), np.float32), "w"))
    del model.graph.output[:]
    model.graph.output.append(onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None))
    with pytest.raises(ModelFileError, match=r"node conv \(Conv\) has an empty output \(1x16x-31x-31\)"):
        estimate(model, B1600, U96)


def test_a_conv_wider_than_the_split_takes_on_the_dpu_is_left_out_with_a_warning():
    """dpupose split runs a conv with more than 256 x ICP channels on the CPU (B1600: ICP 10, 2560); a --width 4
    network has such layers. The estimate takes the operator rules' decision, leaves them and what follows out,
    and says so: configurations of different ICP then cost different parts of the network."""
    from split_models import conv_limit_model

    at_limit = estimate(conv_limit_model(k=1, cout=2560, pads=(0,) * 4), B1600, U96)
    assert "mid" in [row.name for row in at_limit.layers] and at_limit.too_wide_warning is None
    for wide, first in ((conv_limit_model(k=1, cout=2561), "mid"), (conv_limit_model(cin=2561), "pre")):
        est = estimate(wide, B1600, U96)  # more output channels; more input channels (after a wide `pre`)
        assert first in [name for name, _, _ in est.excluded] and first not in [row.name for row in est.layers]
        assert est.too_wide_warning == (
            "1 conv layer(s) have more than 256 x ICP = 2560 channels, which `dpupose split` runs on the CPU: "
            f"this estimate leaves them and everything after them out, first: {first}"
        )
        assert est.too_wide_warning in est.warnings  # with the one on conv3, after a CPU op, not estimated


# Layer kinds and fields the tests above leave alone, each worked by hand on the B1600 (PP 8, ICP = OCP 10, ALU PP 4).
def _graph(nodes, inputs, outputs, inits=()):
    from dpu_onnx import _model, _vi

    return _model(nodes, [_vi(n, s) for n, s in inputs], [_vi(n, s) for n, s in outputs], inits)


def _weight(name, shape):
    return onnx.numpy_helper.from_array(np.zeros(shape, np.float32), name)


def test_a_fully_connected_layer_is_costed_over_its_input_and_output_channel_groups():
    # ceil(IC / ICP) * ceil(OC / OCP): 37 -> 25 is ceil(37 / 10) = 4 input groups * 3 output groups = 12 cycles
    gemm = onnx.helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", transB=1)
    model = _graph([gemm], [("x", (1, 37))], [("y", (1, 25))], [_weight("w", (25, 37))])
    (layer,) = extract_layers(model, B1600).layers
    assert (layer.kind, layer.inputs, layer.output) == ("fc", ((1, 37, 1, 1),), (1, 25, 1, 1))
    assert layer_cycles(layer, B1600) == 12 and layer.macs == 37 * 25


def test_pools_are_costed_at_their_own_kernel_on_each_axis():
    # a global average pool of a 7 x 5 map: one output pixel, ceil(1 / 4) * ceil(37 / 10) = 4 * 35 taps = 140
    gap = onnx.helper.make_node("GlobalAveragePool", ["x"], ["y"], name="gap")
    (layer,) = extract_layers(_graph([gap], [("x", (1, 37, 7, 5))], [("y", (1, 37, 1, 1))]), B1600).layers
    assert (layer.kind, layer.kernel) == ("gap", (7, 5)) and layer_cycles(layer, B1600) == 140
    # a 2 x 3 max pool at strides (2, 3), 8 x 9 -> 4 x 3: 4 rows * ceil(3 / 4) * 4 channel groups * 6 taps = 96
    pool = onnx.helper.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[2, 3], strides=[2, 3])
    (layer,) = extract_layers(_graph([pool], [("x", (1, 37, 8, 9))], [("y", (1, 37, 4, 3))]), B1600).layers
    assert (layer.kind, layer.kernel, layer.stride) == ("pool", (2, 3), (2, 3)) and layer_cycles(layer, B1600) == 96


def test_a_transposed_conv_of_unequal_strides_takes_ceil_k_over_stride_taps_per_axis():
    # 3x3 at strides (2, 1), pads 1, 7x7 -> 13x7, 32 -> 20 channels: ceil(3/2) * ceil(3/1) = 6 taps, so
    # 13 * ceil(7 / 8) * ceil(20 / 10) * 6 * ceil(32 / 10) = 13 * 1 * 2 * 6 * 4 = 624 cycles
    node = onnx.helper.make_node(
        "ConvTranspose", ["x", "w"], ["y"], name="deconv", kernel_shape=[3, 3], strides=[2, 1], pads=[1, 1, 1, 1]
    )
    model = _graph([node], [("x", (1, 32, 7, 7))], [("y", (1, 20, 13, 7))], [_weight("w", (32, 20, 3, 3))])
    (layer,) = extract_layers(model, B1600).layers
    assert (layer.kind, layer.stride) == ("deconv", (2, 1))
    assert layer_cycles(layer, B1600) == 624 and layer.macs == 13 * 7 * 20 * 6 * 32


def test_a_layer_whose_overhead_exceeds_its_compute_and_traffic_is_overhead_bound():
    # conv(16, 16, 8, 3): 8 * 1 * 2 * 9 * 2 = 288 cycles, 2368 + 16 * 16 * 9 + 16 bytes; 10000 cycles of overhead
    nbytes = 16 * 64 * 2 + 16 * 16 * 9 + 16
    slow = PerfConstants(layer_overhead_cycles=10000.0, ddr_efficiency=1.0, host_ms=0.0)
    layer = one_layer(conv(16, 16, 8, 3), constants=slow)
    assert layer.compute_ms == pytest.approx(288 / F * 1e3) and layer.memory_ms == pytest.approx(nbytes / BW * 1e3)
    assert layer.bound == "overhead" and layer.time_ms == pytest.approx((10000 + 288) / F * 1e3)
    assert one_layer(conv(16, 16, 8, 3)).bound == "compute"


def _two_convs_after(first):
    """x -> `first` (a 1x1 conv, or a Softmax: a CPU op) -> conv a -> conv b, 16 channels of 8 x 8, no activation."""
    nodes = [
        first,
        onnx.helper.make_node("Conv", ["t", "wa"], ["u"], name="a", kernel_shape=[1, 1]),
        onnx.helper.make_node("Conv", ["u", "wb"], ["y"], name="b", kernel_shape=[1, 1]),
    ]
    inits = [_weight(n, (16, 16, 1, 1)) for n in ("w0", "wa", "wb")]
    return _graph(nodes, [("x", (1, 16, 8, 8))], [("y", (1, 16, 8, 8))], inits)


def test_convs_after_a_cpu_op_are_counted_and_the_first_named_in_the_warning():
    conv0 = onnx.helper.make_node("Conv", ["x", "w0"], ["s"], name="conv0", kernel_shape=[1, 1])
    model = _two_convs_after(conv0)
    model.graph.node.insert(1, onnx.helper.make_node("Softmax", ["s"], ["t"], name="softmax", axis=1))
    est = estimate(model, B1600, U96, NO_OVERHEAD)
    assert [row.name for row in est.layers] == ["conv0"]
    assert est.excluded == [("softmax", "Softmax", "not a DPU op"), ("a", "Conv", "after a CPU op"),
                            ("b", "Conv", "after a CPU op")]  # fmt: skip
    assert est.warnings == [
        "2 conv/FC/pool layer(s) after a CPU op are not estimated (they would need another DPU subgraph), first: a"
    ]


def test_the_time_by_kind_sums_the_layers_of_each_kind_and_the_json_rounds_as_documented():
    model = _two_convs_after(onnx.helper.make_node("Conv", ["x", "w0"], ["t"], name="conv0", kernel_shape=[1, 1]))
    slow = PerfConstants(layer_overhead_cycles=333.0, ddr_efficiency=1.0, host_ms=0.0)
    est = estimate(model, B1600, U96, slow)
    # each 1x1 conv: 8 * 1 * 2 * 1 * 2 = 32 cycles < its 2 * 1024 + 256 + 16 (a bias, as the DPU's) bytes at
    # 4.27 GB/s; plus 333 cycles
    one = (2 * 16 * 64 + 16 * 16 + 16) / BW + 333 / F
    assert [row.time_ms for row in est.layers] == pytest.approx([one * 1e3] * 3)
    assert est.breakdown() == {"conv": pytest.approx(3 * one * 1e3)}
    d = est.to_dict()
    assert d["time_by_kind_ms"] == {"conv": round(3 * one * 1e3, 4)}
    assert (d["latency_ms"], d["fps"]) == (round(3 * one * 1e3, 6), round(1 / (3 * one), 2))


def test_a_board_named_to_estimate_sets_the_bandwidth_not_the_configuration_s_board():
    # the B1600's board is the Ultra96-V2 (4.27 GB/s); named "zcu104", its 19.2 GB/s (under the 6.4 GB/s of the
    # core's ports at 200 MHz, so those): a memory-bound 1280 -> 1000 1x1 conv streams at 6.4 GB/s
    nbytes = 1280 + 1000 + 1280 * 1000 + 1000
    est = estimate(conv(1280, 1000, 1, 1, relu6=False), B1600, "zcu104", NO_OVERHEAD)
    assert est.board == "zcu104" and est.layers[0].memory_ms == pytest.approx(nbytes / 6.4e9 * 1e3)
    assert estimate(conv(1280, 1000, 1, 1, relu6=False), B1600, None, NO_OVERHEAD).board == "ultra96v2"


def _ones(name, shape):
    return onnx.numpy_helper.from_array(np.ones(shape, np.float32), name)


def _bn(x, y, c):
    """A BatchNormalization node of `c` channels, x -> y, and its four initializers."""
    node = onnx.helper.make_node("BatchNormalization", [x, "s", "b", "m", "v"], [y], name="bn")
    return node, [_ones(n, (c,)) for n in ("s", "b", "m", "v")]


def _walk(nodes, inputs, outputs, inits=()):
    graph = extract_layers(_graph(nodes, inputs, outputs, inits), B1600)
    return [(layer.name, layer.kind) for layer in graph.layers], graph.excluded


def test_a_batch_norm_is_folded_into_a_fully_connected_layer_and_through_an_identity():
    # after_conv: a Gemm's float output, and a conv's through an Identity, are folded (no layer of their own)
    bn, inits = _bn("f", "y", 25)
    gemm = onnx.helper.make_node("Gemm", ["x", "w"], ["f"], name="fc", transB=1)
    assert _walk([gemm, bn], [("x", (1, 37))], [("y", (1, 25))], [_weight("w", (25, 37)), *inits]) == (
        [("fc", "fc")], []
    )  # fmt: skip
    bn, inits = _bn("i", "y", 16)
    conv1 = onnx.helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[1, 1])
    ident = onnx.helper.make_node("Identity", ["c"], ["i"], name="id")
    nodes, io = [conv1, ident, bn], ([("x", (1, 16, 8, 8))], [("y", (1, 16, 8, 8))])
    assert _walk(nodes, *io, [_weight("w", (16, 16, 1, 1)), *inits]) == ([("conv", "conv")], [])


STANDALONE_RELU = (
    "not a DPU op (standalone Relu: the DPU fuses activations into the conv, depthwise conv or element-wise op "
    "before them)"
)


def test_an_activation_is_fused_only_as_the_one_reader_of_an_output_that_is_no_model_output():
    conv1 = onnx.helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[1, 1])
    relu = onnx.helper.make_node("Relu", ["c"], ["y"], name="relu")
    x, t, w = ("x", (1, 16, 8, 8)), (1, 16, 8, 8), _weight("w", (16, 16, 1, 1))
    assert _walk([conv1, relu], [x], [("y", t)], [w]) == ([("conv", "conv")], [])  # fused: free
    # the conv's output is a model output too: the split keeps it unfused, so the Relu stands alone (the CPU)
    assert _walk([conv1, relu], [x], [("c", t), ("y", t)], [w]) == (
        [("conv", "conv")], [("relu", "Relu", STANDALONE_RELU)]
    )  # fmt: skip
    # another conv reads it as well
    conv2 = onnx.helper.make_node("Conv", ["c", "w"], ["z"], name="conv2", kernel_shape=[1, 1])
    assert _walk([conv1, relu, conv2], [x], [("y", t), ("z", t)], [w]) == (
        [("conv", "conv"), ("conv2", "conv")], [("relu", "Relu", STANDALONE_RELU)]
    )  # fmt: skip


def test_a_batch_norm_after_a_fused_activation_is_a_layer_of_its_own():
    # conv -> Relu -> BatchNormalization: the Relu is fused into the conv; the batch norm, reading the Relu's
    # output (no conv's), is the 1x1 depthwise conv: 8 * ceil(8 / 4) * ceil(16 / 10) * 1 tap = 32 cycles
    bn, inits = _bn("r", "y", 16)
    conv1 = onnx.helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[1, 1])
    relu = onnx.helper.make_node("Relu", ["c"], ["r"], name="relu")
    model = _graph(
        [conv1, relu, bn], [("x", (1, 16, 8, 8))], [("y", (1, 16, 8, 8))], [_weight("w", (16, 16, 1, 1)), *inits]
    )
    graph = extract_layers(model, B1600)
    assert [(layer.name, layer.kind) for layer in graph.layers] == [("conv", "conv"), ("bn", "dwconv")]
    assert graph.excluded == [] and layer_cycles(graph.layers[1], B1600) == 32


def test_a_resize_without_a_mode_is_nearest_data_movement():
    # ONNX's default mode is nearest: moved, not the bilinear transposed depthwise conv
    scales = onnx.numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    node = onnx.helper.make_node("Resize", ["x", "", "scales"], ["y"], name="up")
    assert _walk([node], [("x", (1, 16, 7, 7))], [("y", (1, 16, 14, 14))], [scales]) == ([("up", "move")], [])


def test_a_depthwise_conv_with_a_channel_multiplier_is_costed_on_the_alu():
    # group = C_in = 16, 32 outputs (two per input channel): 8 * ceil(8 / 4) * ceil(32 / 10) * 9 = 576 cycles
    node = onnx.helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[3, 3], pads=[1] * 4, group=16)
    model = _graph([node], [("x", (1, 16, 8, 8))], [("y", (1, 32, 8, 8))], [_weight("w", (32, 1, 3, 3))])
    (layer,) = extract_layers(model, B1600).layers
    assert layer.kind == "dwconv" and layer_cycles(layer, B1600) == 576 and layer.macs == 8 * 8 * 32 * 9


@pytest.mark.parametrize(
    ("dim", "value", "shown"),
    [
        (2, 0, r"\(1, 16, 0, 14\) has a size that is not fixed \(0\)"),
        (1, "C", r"\(1, 'C', 14, 14\) has a size that is not fixed \(C\)"),
    ],
)
def test_an_input_of_a_zero_or_symbolic_size_past_the_batch_is_refused(dim, value, shown):
    model = conv(16, 8, 14, 3)
    d = model.graph.input[0].type.tensor_type.shape.dim[dim]
    if isinstance(value, str):
        d.dim_param = value
    else:
        d.dim_value = value
    with pytest.raises(ModelFileError, match=rf"input 'x' {shown}: the DPU runs fixed sizes only"):
        estimate(model, B1600, U96, NO_OVERHEAD)


def test_a_two_dimensional_input_of_a_symbolic_size_is_refused_too():
    gemm = onnx.helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", transB=1)
    model = _graph([gemm], [("x", (1, "F"))], [("y", (1, 25))], [_weight("w", (25, 37))])
    with pytest.raises(ModelFileError, match=r"input 'x' \(1, 'F'\) has a size that is not fixed \(F\): the DPU runs"):
        extract_layers(model, B1600)


def test_every_conv_over_the_channel_limit_is_counted_the_first_named_and_no_other_op():
    # two 1x1 convs of 2561 input channels (over 256 x ICP = 2560 on the B1600) and an Add the rules refuse for
    # its broadcast, of those channels too (not a conv: no channel limit of its own), beside a conv they take
    nodes = [
        onnx.helper.make_node("Conv", ["x", "w"], ["a_out"], name="a", kernel_shape=[1, 1]),
        onnx.helper.make_node("Conv", ["x", "w"], ["b_out"], name="b", kernel_shape=[1, 1]),
        onnx.helper.make_node("Add", ["x", "x1"], ["s"], name="add"),
        onnx.helper.make_node("Conv", ["x2", "w2"], ["c_out"], name="c", kernel_shape=[1, 1]),
    ]
    wide, narrow = (1, 2561, 4, 4), (1, 16, 4, 4)
    inputs = [("x", wide), ("x1", (1, 2561, 1, 1)), ("x2", narrow)]
    outputs = [("a_out", narrow), ("b_out", narrow), ("s", wide), ("c_out", narrow)]
    model = _graph(nodes, inputs, outputs, [_weight("w", (16, 2561, 1, 1)), _weight("w2", (16, 16, 1, 1))])
    graph = extract_layers(model, B1600)
    assert [layer.name for layer in graph.layers] == ["c"] and graph.too_wide == ["a", "b"]
    assert [name for name, _, _ in graph.excluded] == ["a", "b", "add"]
    est = estimate(model, B1600, U96, NO_OVERHEAD)
    warning = (
        "2 conv layer(s) have more than 256 x ICP = 2560 channels, which `dpupose split` runs on the CPU: this "
        "estimate leaves them and everything after them out, first: a"
    )
    assert est.too_wide_warning == warning and est.warnings == [warning]


def test_a_mul_takes_the_1x1_depthwise_conv_up_to_the_alu_s_channels_and_of_two_activations_the_eltwise_mult():
    # 256 x ICP = 2560 channels on the B1600: still the depthwise conv (2561: the eltwise mult, above)
    (layer,) = extract_layers(mul_const(2560, 2), B1600).layers
    assert (layer.kind, layer.groups) == ("dwconv", 2560)
    # two activations: the eltwise engine, 8 * ceil(8 / 4) * ceil(16 / 10) * 2 inputs = 64 cycles
    mul = onnx.helper.make_node("Mul", ["a", "b"], ["y"], name="mul")
    model = _graph([mul], [("a", (1, 16, 8, 8)), ("b", (1, 16, 8, 8))], [("y", (1, 16, 8, 8))])
    (layer,) = extract_layers(model, B1600).layers
    assert layer.kind == "eltwise" and layer_cycles(layer, B1600) == 64


def test_an_activation_with_nothing_to_fuse_into_is_left_to_the_cpu_with_what_reads_it():
    relu = onnx.helper.make_node("Relu", ["x"], ["r"], name="relu")
    conv1 = onnx.helper.make_node("Conv", ["r", "w"], ["y"], name="conv", kernel_shape=[1, 1])
    io = ([("x", (1, 16, 8, 8))], [("y", (1, 16, 8, 8))])
    assert _walk([relu, conv1], *io, [_weight("w", (16, 16, 1, 1))]) == (
        [], [("relu", "Relu", STANDALONE_RELU), ("conv", "Conv", "after a CPU op")]
    )  # fmt: skip


def test_an_empty_file_and_a_qoperator_model_are_refused(tmp_path):
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(ModelFileError, match=r"empty\.onnx: not an ONNX model \(no graph nodes\); give an \.onnx file"):
        estimate(tmp_path / "empty.onnx", B1600, U96, NO_OVERHEAD)
    # ONNX Runtime's integer-only ConvInteger, as QLinearConv, is no DPU layer
    node = onnx.helper.make_node("ConvInteger", ["x", "w"], ["y"], name="ci")
    model = _graph([node], [("x", (1, 16, 8, 8))], [("y", (1, 16, 8, 8))], [_weight("w", (16, 16, 1, 1))])
    with pytest.raises(ModelFileError, match=r"^ConvInteger 'ci' is ONNX Runtime's QOperator format"):
        extract_layers(model, B1600)


@pytest.mark.parametrize(
    ("x", "w", "y", "rows", "cout"),
    [
        ((1, 37), (37, 25), (1, 25), 1, 25),
        ((1, 1, 37), (37,), (1, 1), 1, 1),
        ((1, 4, 37), (37, 25), (1, 4, 25), 4, 25),
        ((1, 2, 3, 37), (37,), (1, 2, 3), 6, 1),
    ],
)
def test_a_matmul_is_a_fully_connected_layer_per_row_of_its_input(x, w, y, rows, cout):
    # MatMul multiplies each row (every dimension but the last) by the weight: a (1, 37) input by (37, 25) is a
    # row of 37 -> 25, ceil(37 / 10) * ceil(25 / 10) = 12 cycles and 925 MACs. An input of more than one row of
    # an image ((1, 4, 37)) was costed as that many rows; the operator rules now leave it to the CPU (XIR's
    # inner-product takes each image as one vector), so the estimate excludes it with their reason.
    node = onnx.helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")
    model = _graph([node], [("x", x)], [("y", y)], [_weight("w", w)])
    graph = extract_layers(model, B1600)
    if rows > 1:
        assert graph.layers == [] and graph.excluded == [
            ("mm", "MatMul", f"not a DPU op (MatMul of an input of {list(x)} at batch 1 ({rows} rows of one image): "
             "XIR's fully connected layer (inner-product) takes each image as one vector)")
        ]  # fmt: skip
        return
    (layer,) = graph.layers
    assert (layer.kind, layer.inputs, layer.output) == ("fc", ((rows, 37, 1, 1),), (rows, cout, 1, 1))
    assert layer_cycles(layer, B1600) == rows * 4 * math.ceil(cout / 10) and layer.macs == rows * 37 * cout
    row = one_layer(model)  # its traffic: the input, the output and the weights
    assert row.memory_ms == pytest.approx((math.prod(x) + math.prod(y) + math.prod(w)) / BW * 1e3)


@pytest.mark.parametrize("ip", ["3.3", "3.4"])
def test_ip_v3_has_no_hard_activation_and_no_eltwise_mult(ip):
    # IP v3.x's VART targets (Xilinx/Vitis-AI b2b227921b66, src/vai_runtime/target_factory/expired_targets/
    # DPUCZDX8G_ISA0_<ARCH>_{MAX,MAX_BG2,MIN}.prototxt) have no hsigmoid op on any engine and an eltwise engine of
    # elew_type add only (a mult only in DPUCZDX8G_ISA0_B4096_MAX_EM): the estimate at ip 3.x costed a hard sigmoid
    # as an ALU hsigmoid and a hard swish as that and an eltwise mult; the walk now leaves them out with the
    # operator rules' reason naming the version, and an element-wise Mul of two activations too, not an Add
    lacks = (
        f"on DPUCZDX8G IP v{ip}: its VART targets (DPUCZDX8G_ISA0_*) have no hsigmoid op (its pool and dwconv "
        "engines have none)"
    )
    sig = extract_layers(hard_activation("HardSigmoid", 64, 28, alpha=1 / 6, beta=0.5), B1600, ip=ip)
    assert sig.layers == [] and sig.excluded == [("hard", "HardSigmoid", f"not a DPU op (HardSigmoid {lacks})")]
    swish = extract_layers(hard_activation("HardSwish", 64, 28), B1600, ip=ip)
    assert swish.layers == [] and swish.excluded == [
        ("hard", "HardSwish",
         f"not a DPU op (HardSwish {lacks} and an eltwise engine that adds only (elew_type add, no mult))")
    ]  # fmt: skip
    with pytest.raises(ModelFileError, match="no layer the DPU runs"):
        estimate(hard_activation("HardSwish", 64, 28), B1600, U96, NO_OVERHEAD, ip=ip)
    mul = _graph(
        [onnx.helper.make_node("Mul", ["x", "x"], ["y"], name="sq")], [("x", [1, 8, 6, 6])], [("y", [1, 8, 6, 6])]
    )
    assert [layer.kind for layer in extract_layers(mul, B1600).layers] == ["eltwise"]
    walk = extract_layers(mul, B1600, ip=ip)
    assert walk.layers == [] and walk.excluded == [
        ("sq", "Mul", f"not a DPU op (an element-wise Mul of two activations on DPUCZDX8G IP v{ip}: its VART "
         "targets (DPUCZDX8G_ISA0_*) have an eltwise engine that adds only (elew_type add, no mult))")
    ]  # fmt: skip
    assert [layer.kind for layer in extract_layers(add(8, 6), B1600, ip=ip).layers] == ["eltwise"]


@pytest.mark.parametrize("ip", ["3.3", "3.4"])
def test_ip_v3_walk_leaves_out_a_pool_past_its_pool_engine_s_limits(ip):
    # IP v3.x's pool engine (DPUCZDX8G_ISA0_<ARCH>_MAX.prototxt: max_limit kernel_size 1-8) runs no 9 x 9 max pool,
    # which IP v4's ALU engine (alu_limit 1-256) does: the walk at ip 3.x costed it; it now leaves it out with the
    # operator rules' reason, and costs an 8 x 8 one at either version
    def pool(k):
        node = onnx.helper.make_node("MaxPool", ["x"], ["y"], name="mp", kernel_shape=[k, k], strides=[k, k])
        return _graph([node], [("x", [1, 8, 72, 72])], [("y", [1, 8, 72 // k, 72 // k])])

    assert [layer.kind for layer in extract_layers(pool(9), B1600).layers] == ["pool"]
    walk = extract_layers(pool(9), B1600, ip=ip)
    assert walk.layers == [] and walk.excluded == [
        ("mp", "MaxPool", f"not a DPU op (MaxPool kernel [9, 9] outside 1-8 (DPUCZDX8G IP v{ip}'s pool engine: the "
         "max_limit / avg_limit of its DPUCZDX8G_ISA0 targets))")
    ]  # fmt: skip
    assert [layer.kind for layer in extract_layers(pool(8), B1600, ip=ip).layers] == ["pool"]


@pytest.mark.parametrize("ip", ["3.3", "3.4", "4.0", "4.1"])
def test_ip_v3_walk_leaves_out_a_depthwise_conv_with_a_leaky_relu(ip):
    # IP v3.x's dwconv engine (DPUCZDX8G_ISA0_<ARCH>_MAX.prototxt: nonlinear_type relu, relu_six) fuses no
    # LeakyReLU, which IP v4's ALU engine does where it is built in: the walk at ip 3.x costed the depthwise conv
    # with its LeakyReLU fused; it now leaves it out with the operator rules' reason (as the split puts both on the
    # CPU), and costs one with a ReLU6 at either version
    import dataclasses

    from dpupose.dpu.config import Activations

    cfg = dataclasses.replace(B1600, alu_activations=Activations.RELU_LEAKYRELU_RELU6)

    def dw(act):
        conv = onnx.helper.make_node("Conv", ["x", "w"], ["y"], name="dw", kernel_shape=[3, 3], pads=[1] * 4, group=8)
        nodes = [conv]
        if act == "leaky":
            nodes.append(onnx.helper.make_node("LeakyRelu", ["y"], ["z"], name="act", alpha=26 / 256))
        else:
            nodes.append(onnx.helper.make_node("Clip", ["y", "lo", "hi"], ["z"], name="act"))
        inits = [_weight("w", (8, 1, 3, 3)), onnx.numpy_helper.from_array(np.array(0.0, np.float32), "lo")]
        inits.append(onnx.numpy_helper.from_array(np.array(6.0, np.float32), "hi"))
        return _graph(nodes, [("x", [1, 8, 16, 16])], [("z", [1, 8, 16, 16])], inits)

    assert [layer.kind for layer in extract_layers(dw("relu6"), cfg, ip=ip).layers] == ["dwconv"]
    walk = extract_layers(dw("leaky"), cfg, ip=ip)
    if ip.startswith("4."):
        assert [layer.kind for layer in walk.layers] == ["dwconv"] and walk.excluded == []
    else:
        assert walk.layers == []
        assert walk.excluded[0] == (
            "dw", "Conv", "not a DPU op (its fused activation cannot run on the DPU: LeakyRelu after a depthwise conv "
            f"on DPUCZDX8G IP v{ip}: its dwconv engine fuses relu and relu_six only (the nonlinear_type of its "
            "DPUCZDX8G_ISA0 targets))"
        )  # fmt: skip


@pytest.mark.parametrize("ip", ["3.3", "3.4", "4.0", "4.1"])
def test_ip_v3_walk_costs_a_pool_with_its_relu_fused(ip):
    # IP v3.x's pool engine (DPUCZDX8G_ISA0_<ARCH>_MAX.prototxt: nonlinear_type relu) fuses a ReLU after a pool:
    # the walk at ip 3.x left the pool out as at IP v4 (whose pools fuse none); it now costs the pool, the ReLU
    # fused at no cost, and still leaves out a pool followed by a ReLU6
    def pool(act):
        nodes = [onnx.helper.make_node("MaxPool", ["x"], ["y"], name="mp", kernel_shape=[2, 2], strides=[2, 2])]
        if act == "relu":
            nodes.append(onnx.helper.make_node("Relu", ["y"], ["z"], name="act"))
        else:
            nodes.append(onnx.helper.make_node("Clip", ["y", "lo", "hi"], ["z"], name="act"))
        inits = [onnx.numpy_helper.from_array(np.array(v, np.float32), n) for n, v in (("lo", 0.0), ("hi", 6.0))]
        return _graph(nodes, [("x", [1, 8, 16, 16])], [("z", [1, 8, 8, 8])], inits)

    walk = extract_layers(pool("relu"), B1600, ip=ip)
    six = extract_layers(pool("relu6"), B1600, ip=ip)
    assert six.layers == [] and six.excluded[0][:2] == ("mp", "MaxPool")
    if ip.startswith("3."):
        assert [(layer.name, layer.kind) for layer in walk.layers] == [("mp", "pool")] and walk.excluded == []
        assert six.excluded[0][2] == (
            f"not a DPU op (its fused activation cannot run on the DPU: ReLU6 after a pool on DPUCZDX8G IP v{ip}: "
            "its pool engine fuses relu only (the nonlinear_type of its DPUCZDX8G_ISA0 targets))"
        )
    else:
        assert walk.layers == [] and walk.excluded[0] == (
            "mp", "MaxPool", "not a DPU op (its fused activation cannot run on the DPU: Relu after a pool: the DPU "
            "fuses no activation into it (XIR's pool-fix has no nonlinear attribute; only the conv ops and "
            "eltwise-fix have one))"
        )  # fmt: skip


def test_a_model_at_a_fixed_batch_of_two_is_predicted_in_frames_per_second(tmp_path, capsys):
    """A model exported at a fixed batch of 2 costs two images a run, and its FPS was 1000 / that run's latency,
    runs per second: about half the same network's at batch 1 (dpu estimate: 62.8 FPS for the pose model against
    119.4), so dpu compare ranked it so too. FPS counts frames (2 a run); the latency is the run's, said so."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 16, 3, padding=1, groups=16),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 1),
    )
    one = export_onnx(net, torch.zeros(1, 3, 32, 32), tmp_path / "b1.onnx", ["image"], ["y"])
    two = export_onnx(net, torch.zeros(2, 3, 32, 32), tmp_path / "b2.onnx", ["image"], ["y"])
    symbolic = export_onnx(net, torch.zeros(1, 3, 32, 32), tmp_path / "bN.onnx", ["image"], ["y"], dynamic_batch=True)
    e1, e2, en = (estimate(str(p), B1600, U96) for p in (one, two, symbolic))
    # a run of two images takes longer than one of one, at most twice as long (each layer's overhead once a run)
    assert e1.latency_ms < e2.latency_ms <= 2 * e1.latency_ms
    assert e1.fps <= e2.fps < 2 * e1.fps  # per frame as fast, or faster: not half
    assert en.fps == pytest.approx(e1.fps) and en.latency_ms == pytest.approx(e1.latency_ms)
    assert (e1.batch, e2.batch, en.batch) == (1, 2, 1)
    assert e2.fps == pytest.approx(2000 / e2.latency_ms)
    assert e2.throughput_fps == pytest.approx(e2.fps)  # one core
    assert e2.to_dict()["batch"] == 2
    # dpu compare's rows too: its JSON gave the run's latency_ms beside fps in frames, with no batch to read
    # one from the other (estimate's JSON has it)
    from dpupose.dpu.compare import compare

    rows = {p: compare(str(p), U96, configs=[B1600])[0].to_dict() for p in (one, two)}
    assert (rows[one]["batch"], rows[two]["batch"]) == (1, 2)
    assert rows[two]["fps"] == pytest.approx(2000 / rows[two]["latency_ms"], rel=1e-2)  # both rounded
    # dpu estimate says the latency is a run's where a run is two images, and only there
    from dpupose import cli

    for path, est, run in ((one, e1, ""), (two, e2, " per run of 2 images (the model's fixed batch)")):
        assert cli.main(["dpu", "estimate", str(path), "--config", "u96v2-b1600-pynq"]) == 0
        out = capsys.readouterr().out
        assert f"  latency {est.latency_ms:.3f} ms{run}  ->  {est.fps:.1f} FPS single thread (DPU only)\n" in out


@pytest.mark.parametrize(
    ("axes", "shown"),
    [
        ({0: "batch", 2: "h", 3: "w"}, "('batch', 3, 'h', 'w') has a size that is not fixed (h, w)"),
        ({1: "c"}, "(1, 'c', 32, 32) has a size that is not fixed (c)"),
    ],
)
def test_a_torch_export_with_dynamic_axes_past_the_batch_is_refused_naming_the_file_axes_and_export(
    tmp_path, axes, shown
):
    """torch.onnx.export's dynamic_axes for the height and width (or channels) of a net whose fixed export is
    estimated: the refusal said 'input 'image' has sizes that are not fixed (batchx3xhxw)', neither the file
    nor which axes nor how to export it. It names all three."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(16, 8, 1))
    fixed = export_onnx(net, torch.zeros(1, 3, 32, 32), tmp_path / "fixed.onnx", ["image"], ["y"])
    assert estimate(str(fixed), B1600, U96).latency_ms > 0
    path = tmp_path / "dynamic.onnx"
    with torch.no_grad():
        torch.onnx.export(
            net, torch.zeros(1, 3, 32, 32), str(path), input_names=["image"], output_names=["y"],
            dynamic_axes={"image": axes}, opset_version=17, dynamo=False,
        )  # fmt: skip
    with pytest.raises(ModelFileError) as err:
        estimate(str(path), B1600, U96)
    assert str(err.value) == (
        f"{path}: input 'image' {shown}: the DPU runs fixed sizes only (the batch alone may be symbolic); export "
        "the model with the size the DPU will run (torch.onnx.export's dynamic_axes for the batch alone: "
        "{'image': {0: 'batch'}})"
    )
    # dpupose split refuses the same file in the same words (it said 'has a size that is not fixed (h, w): the
    # DPU runs ...', estimate 'has sizes that are not fixed (batchx3xhxw; not fixed: h, w): export ...')
    from dpupose.split.partition import check_fixed_input_sizes

    with pytest.raises(ModelFileError) as split_err:
        check_fixed_input_sizes(onnx.load(str(path)), path)
    assert str(split_err.value) == str(err.value)
