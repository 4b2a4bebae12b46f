"""The quantizer: diffs calibration, DPU shift constraints, BatchNorm folding, QDQ export conventions,
end-to-end agreement of the emulator with torch fake quantization, and QAT."""

import math
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from quant_helpers import TINY, sane_model

from dpupose.errors import ModelFileError, QuantizationError
from dpupose.quant.calibrate import calibrate
from dpupose.quant.data import calibration_batches
from dpupose.quant.fakequant import QuantNet
from dpupose.quant.fixpos import (
    ZERO_TENSOR_FIX_POS,
    apply_constraints,
    diffs_fix_pos,
    most_frequent,
    validate,
)
from dpupose.quant.fuse import build_qgraph
from dpupose.quant.ir import AddOp, ConvOp, DepthToSpaceOp, FixPoints, HardActOp, QGraph
from dpupose.quant.qat import qat_finetune
from dpupose.quant.qdq_export import append_cpu_part, qdq_model
from dpupose.quant.torch_ref import TorchQdqReference
from dpupose.runtime.base import quantize_to_int8
from dpupose.runtime.emulator import EmulatorRunner


# ---- diffs ---------------------------------------------------------------------------------------
def test_diffs_picks_the_exact_grid():
    x = np.arange(-128, 128) / 128.0  # every int8 step at fp 7: zero error there, clipping above
    assert diffs_fix_pos(x) == 7
    assert diffs_fix_pos(x * 4) == 5


def test_diffs_prefers_resolution_over_rare_outliers():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.05, 100000), [1.0]])  # overflow-free position 6
    fp = diffs_fix_pos(x)
    assert fp > 6  # clipping the single outlier costs less than coarse steps for everything else
    errs = {}
    for p in range(6, 11):
        q = np.clip(np.floor(x * 2.0**p + 0.5), -128, 127) * 2.0**-p
        errs[p] = float(np.sum((x - q) ** 2))
    assert fp == min(errs, key=errs.get)


def test_diffs_searches_the_overflow_free_position_and_four_above():
    # 0.998: floor(log2(127.5 / 0.998)) = 6 is the overflow-free position; at 7, 0.998 * 128 = 127.7
    # rounds to 128 and clips. Every position from 6 down has the same error, so 6 (tried first) wins.
    assert diffs_fix_pos(np.full(100, 0.998)) == 6
    # 2e6 values of 3/2048 and one outlier 1.0 (overflow-free position 6). Squared errors worked by hand:
    # the small values are exact from position 11 on and 2**-11 off (2.4e-7 squared) at 9 and 10; the
    # outlier clips to 127 / 2**p. Sums: 9 -> 1.042, 10 -> 1.244, 11 -> 0.880, 8 and below > 4.
    # Position 11 is best overall, but it lies beyond vai_q's window 6..10, so 9 is chosen.
    x = np.concatenate([np.full(2_000_000, 3 / 2048), [1.0]])
    assert diffs_fix_pos(x) == 9


def test_diffs_caps_positions_at_12_as_vai_q():
    # vai_q_pytorch's do_scan: min(nndct_max_fix_position = 12, diffs position) for 8-bit tensors.
    x = np.array([0.003, -0.001])  # overflow-free position floor(log2(127.5 / 0.003)) = 15
    assert diffs_fix_pos(x) == 12
    # x * 16: overflow-free 11; at 12, 0.048 * 4096 = 196.6 clips, so 11 wins, below the cap
    assert diffs_fix_pos(x * 16) == 11
    assert ZERO_TENSOR_FIX_POS == 18 and diffs_fix_pos(np.zeros(10)) == 12  # the kernel's 18, capped


def test_diffs_zero_nan_and_unrepresentable():
    with pytest.raises(QuantizationError, match="NaN"):
        diffs_fix_pos(np.array([1.0, np.nan]), name="activation 'x'")
    with pytest.raises(QuantizationError, match="x' reaches"):
        diffs_fix_pos(np.array([1e9]), name="activation 'x'")


def test_calibration_keeps_the_inputs_overflow_free_position():
    # vai_q_pytorch's do_scan searches one position (scope 1) for input nodes: the network input keeps
    # floor(log2(127.5 / max|x|)) = 6 here, although 7 has less error (clipping the single 1.0 costs
    # (1/128)**2, finer steps save about 4095 * (4**-6 - 4**-7) / 12); other tensors search five.
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.05, 4095), [1.0]]).astype(np.float32).reshape(1, 1, 64, 64)
    graph = QGraph([ConvOp("logits", "image", np.ones((1, 1, 1, 1), np.float32), None)], (1, 64, 64))
    fix, _ = calibrate(graph, [x])
    assert fix.activations["image"] == 6
    assert fix.activations["logits"] == diffs_fix_pos(x) == 7  # the same values, searched


def test_most_frequent_breaks_ties_towards_range():
    assert most_frequent([5, 6, 6, 5, 7]) == 5
    assert most_frequent([4, 6, 6]) == 6


# ---- constraints -----------------------------------------------------------------------------------
def _toy_graph() -> QGraph:
    w = np.zeros((4, 4, 1, 1), np.float32)
    b = np.zeros(4, np.float32)
    ops = [
        ConvOp("a", "image", w, b, act="relu6"),
        ConvOp("b", "a", w, b),
        AddOp("s", "a", "b"),
        ConvOp("c", "s", np.zeros((16, 4, 1, 1), np.float32), b.repeat(4)),
        DepthToSpaceOp("d", "c", 2),
        ConvOp("logits", "d", w, None),
    ]
    return QGraph(ops, (4, 2, 2))


def test_constraints_move_the_positions_vai_q_moves():
    # vai_q_pytorch's check (torchquantizer._node_relative_fix_pos_check, Vitis AI 2.5; fix_pos_adjust.py
    # in 3.5): shift_cut < 0 lowers the output position, shift_cut > 16 the weights'; shift_bias below
    # min(0, shift_cut - 16) lowers the bias position, above 16 the weights'. Worked by hand below.
    g = _toy_graph()
    fix = FixPoints(
        activations={"image": 6, "a": 3, "b": 20, "s": 4, "c": 5, "d": 7, "logits": 2},
        weights={"a": 7, "b": 9, "c": 20, "logits": 4},
        biases={"a": 30, "b": 20, "c": 0},
    )
    out, notes = apply_constraints(g, fix)
    a = out.activations
    # a: ReLU6 output 3 -> 4; shift_cut 6 + 7 - 4 = 9, shift_bias 13 - 30 = -17 < min(0, 9 - 16) = -7:
    # the bias moves to 13 + 7 = 20.
    assert (a["a"], out.weights["a"], out.biases["a"]) == (4, 7, 20)
    # b: the add's shift_read 20 - 4 > 15 lowers it to 19; shift_cut 4 + 9 - 19 = -6 < 0 then lowers the
    # output to 4 + 9 = 13 (the weights keep 9: raising them would saturate them). shift_bias 13 - 20 = -7
    # is within [min(0, 0 - 16), 16]: the bias finer than the accumulator keeps its position.
    assert (a["b"], out.weights["b"], out.biases["b"]) == (13, 9, 20)
    # c: shift_cut 4 + 20 - 5 = 19 > 16 lowers the weights to 5 - 4 + 16 = 17; shift_bias 4 + 17 - 0 = 21
    # > 16 lowers them again, to 0 - 4 + 16 = 12 (the bias keeps 0: raising it would saturate it).
    assert (a["c"], out.weights["c"], out.biases["c"]) == (5, 12, 0)
    assert a["d"] == a["c"] == 5  # pixel shuffle passes its position through
    assert (a["logits"], out.weights["logits"]) == (2, 4)
    assert notes
    validate(g, out)
    # A shift_bias below its bound is refused by the final check.
    bad = out.copy()
    bad.biases["b"] = 30  # 13 - 30 = -17 < -16
    with pytest.raises(QuantizationError, match=r"shift_bias -17 outside \[-16, 16\]"):
        validate(g, bad)


def test_constraints_raise_the_weights_when_a_relu6_output_cannot_be_lowered():
    # shift_cut 0 + 3 - 4 = -1 < 0, but lowering the output to 3 breaks ReLU6's >= 4 (the DPU caps at 96
    # steps there, 12.0 at fp 3), which would raise it again: the weights move to 4 - 0 = 4 instead.
    # shift_bias is then checked with the new weights: 0 + 4 - 2 = 2.
    w = np.zeros((4, 3, 1, 1), np.float32)
    g = QGraph([ConvOp("a", "image", w, np.zeros(4, np.float32), act="relu6")], (3, 2, 2))
    fix = FixPoints(activations={"image": 0, "a": 4}, weights={"a": 3}, biases={"a": 2})
    out, notes = apply_constraints(g, fix)
    assert (out.activations["a"], out.weights["a"], out.biases["a"]) == (4, 4, 2)
    assert notes == ["a: weights fix position 3 -> 4 (shift_cut >= 0 with a ReLU6 output >= 4)"]
    # Without ReLU6 the output is lowered as before.
    g = QGraph([ConvOp("a", "image", w, np.zeros(4, np.float32))], (3, 2, 2))
    out, _ = apply_constraints(g, fix)
    assert (out.activations["a"], out.weights["a"]) == (3, 3)


def test_constraints_keep_the_add_shift_write_within_15_either_way():
    # shift_write = min(fp_in) - fp_out in [-15, 15] (vai_q_tensorflow2's adjust_shift_write, Vitis AI 3.0;
    # vai_q_onnx's in 3.5; the DPUCZDX8G simulator in VART's sim-runner reads it as sign and 4-bit
    # magnitude, Elew.cpp): out of range, the output position moves to the nearest bound.
    w = np.zeros((4, 3, 1, 1), np.float32)
    g = QGraph([ConvOp("a", "image", w, None), ConvOp("b", "image", w, None), AddOp("s", "a", "b")], (3, 2, 2))
    cases = [
        (14, 14, []),
        (19, 19, []),
        (20, 19, ["s: activation fix position 20 -> 19 (add shift_write in [-15, 15])"]),
        (-11, -11, []),
        (-12, -11, ["s: activation fix position -12 -> -11 (add shift_write in [-15, 15])"]),
    ]
    for fp_s, want, want_notes in cases:
        fix = FixPoints(activations={"image": 0, "a": 4, "b": 5, "s": fp_s}, weights={"a": 4, "b": 5}, biases={})
        out, notes = apply_constraints(g, fix)
        assert out.activations["s"] == want
        assert notes == want_notes


def test_constraints_reject_positions_out_of_range():
    g = _toy_graph()
    fix = FixPoints(
        activations={"image": 40, "a": 4, "b": 4, "s": 4, "c": 5, "d": 5, "logits": 2},
        weights={"a": 7, "b": 7, "c": 7, "logits": 4},
        biases={"a": 8, "b": 8, "c": 8},
    )
    with pytest.raises(QuantizationError, match="outside the DPU range"):
        apply_constraints(g, fix)


# ---- fusion and end-to-end -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(synth_root):
    model = sane_model()
    size = TINY.input_size
    graph = build_qgraph(model.dpu_part, (3, size, size))
    images = list(calibration_batches("synthetic", synth_root, 8, size, batch_size=4))
    fix, seen = calibrate(graph, images)
    assert seen == 8
    return model, graph, fix, images


def test_fusion_folds_batchnorm_and_keeps_the_structure(tiny):
    model, graph, _fix, images = tiny
    convs = [m for m in model.dpu_part.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(graph.convs()) == len(convs)
    assert sum(isinstance(op, AddOp) for op in graph.ops) == 10  # MobileNetV2's residual blocks
    assert sum(isinstance(op, DepthToSpaceOp) for op in graph.ops) == TINY.duc_blocks
    assert graph.ops[-1].name == "logits" and graph.ops[-1].bias is None
    with torch.no_grad():
        want = model.dpu_part(torch.from_numpy(images[0]))
        got = QuantNet(graph)(torch.from_numpy(images[0]))
    torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-3)


def test_fusion_rejects_what_the_dpu_cannot_run():
    class Bad(torch.nn.Module):
        def __init__(self, act):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.act = act

        def forward(self, x):
            return self.act(self.conv(x))

    with pytest.raises(QuantizationError, match="26/256"):
        build_qgraph(Bad(torch.nn.LeakyReLU(0.2)), (3, 8, 8))
    with pytest.raises(QuantizationError, match="Sigmoid"):
        build_qgraph(Bad(torch.nn.Sigmoid()), (3, 8, 8))
    assert build_qgraph(Bad(torch.nn.LeakyReLU(0.1)), (3, 8, 8)).ops[0].act == "leaky"


def test_exported_weights_and_biases_round_half_away_from_zero():
    # vai_q_pytorch's rule for parameters (activations round half up): ties go away from zero, and
    # values beyond the int8 range saturate.
    steps = np.array([-200.0, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 200.0])
    w = (steps * 2.0**-6).astype(np.float32).reshape(8, 1, 1, 1)
    b = (steps * 2.0**-9).astype(np.float32)
    graph = QGraph([ConvOp("logits", "image", w, b)], (1, 2, 2))
    fix = FixPoints({"image": 7, "logits": 7}, {"logits": 6}, {"logits": 9})
    inits = {t.name: numpy_helper.to_array(t) for t in qdq_model(graph, fix).graph.initializer}
    want = [-128, -3, -2, -1, 1, 2, 3, 127]
    assert inits["logits.weight_int8"].reshape(-1).tolist() == want
    assert inits["logits.bias_int8"].tolist() == want


def _scales_are_dpu(model: onnx.ModelProto) -> None:
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert qdq
    for node in qdq:
        scale = float(inits[node.input[1]])
        assert math.frexp(scale)[0] == 0.5, node.name  # an exact power of two
        zp = inits[node.input[2]]
        assert zp.dtype == np.int8 and zp == 0
        if node.input[0] in inits:
            assert inits[node.input[0]].dtype == np.int8  # weights and biases are int8, biases included


def test_qdq_export_conventions_and_bit_exact_emulation(tiny, tmp_path):
    model, graph, fix, images = tiny
    qdq = qdq_model(graph, fix)
    _scales_are_dpu(qdq)
    assert [i.name for i in qdq.graph.input] == ["image"] and [o.name for o in qdq.graph.output] == ["logits"]
    path = tmp_path / "dpu_part_qdq.onnx"
    onnx.save(qdq, path)
    x = images[1][:2]
    emu = EmulatorRunner(path)
    assert emu.inputs[0].fix_point == fix.activations["image"]
    assert emu.outputs[0].fix_point == fix.activations["logits"]
    env = emu.trace({"image": quantize_to_int8(x.transpose(0, 2, 3, 1), fix.activations["image"])})
    # 1) the quantizer's own fake quantization (float64) of the same model, every tensor
    trace: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        QuantNet(graph, fix).set_mode("fake").double()(torch.from_numpy(x).double(), trace=trace)
    for name, t in trace.items():
        want = np.rint(t.numpy() * 2.0 ** fix.activations[name]).astype(np.int8).transpose(0, 2, 3, 1)
        np.testing.assert_array_equal(env[f"{name}_int8"], want, err_msg=name)
    # 2) the independent torch interpreter of the QDQ file
    ref = TorchQdqReference(path).trace({"image": x})
    for name, arr in ref.items():
        np.testing.assert_array_equal(env[name], arr, err_msg=name)
    # and the INT8 model still computes what the FP32 model does: 8-bit accurate at the first layer; the
    # random network amplifies the rounding noise with depth, still correlated at the output.
    float_trace: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        QuantNet(graph)(torch.from_numpy(x), trace=float_trace)
    first = graph.ops[0].name
    f = float_trace[first].numpy()
    q = env[f"{first}_int8"].transpose(0, 3, 1, 2) * 2.0 ** -fix.activations[first]
    assert 10 * np.log10(np.sum(f**2) / np.sum((f - q) ** 2)) > 25
    with torch.no_grad():
        want = model.dpu_part(torch.from_numpy(x)).numpy()
    got = env["logits_int8"].transpose(0, 3, 1, 2) * 2.0 ** -fix.activations["logits"]
    assert np.corrcoef(got.reshape(-1), want.reshape(-1))[0, 1] > 0.5


def test_qat_steps_keep_power_of_two_scales_and_export(tiny, tmp_path):
    _model, graph, fix, images = tiny
    new_graph, new_fix, losses = qat_finetune(graph, fix, [images[0][:2]], epochs=2)
    assert len(losses) == 2 and all(np.isfinite(losses))
    validate(new_graph, new_fix)
    assert all(isinstance(v, int) for v in new_fix.activations.values())
    assert not np.array_equal(new_graph.convs()[0].weight, graph.convs()[0].weight)  # weights did train
    qdq = qdq_model(new_graph, new_fix)
    _scales_are_dpu(qdq)
    path = tmp_path / "qat.onnx"
    onnx.save(qdq, path)
    x = images[0][:1]
    out = EmulatorRunner(path).run({"image": quantize_to_int8(x.transpose(0, 2, 3, 1), new_fix.activations["image"])})
    assert out["logits"].shape == (len(x), 16, 16, 16)


# ---- hard sigmoid / hard swish: never fused, a Q/DQ pair before them -----------------------------------
class _HardNet(torch.nn.Module):
    """conv -> BN -> ReLU -> conv -> hard activation -> conv (logits, 16 x 4 x 4 from an 8 x 8 image)."""

    def __init__(self, hard: torch.nn.Module) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.c1 = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.relu = torch.nn.ReLU()
        self.c2 = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.hard = hard
        self.c3 = torch.nn.Conv2d(8, 16, 1)  # 16 joints on a 4 x 4 map

    def forward(self, x):
        return self.c3(self.hard(self.c2(self.relu(self.bn(self.c1(x))))))


def test_tensor_names_both_parts_use_are_named_as_other_lists_of_names_are():
    # seven names in both parts: the first four (sorted), then how many more (errors.shortlist), and whose
    # fault it is, never a Python list cut short without a count
    from onnx import TensorProto, helper

    def part(inp: str | None, out: str, names: list[str]) -> onnx.ModelProto:
        nodes = [helper.make_node("Identity", [n], [f"{out}_{n}"]) for n in names]
        nodes.append(helper.make_node("Identity", [inp or names[0]], [out]))
        inputs = [helper.make_tensor_value_info(inp, TensorProto.FLOAT, [1])] if inp else []
        inits = [onnx.numpy_helper.from_array(np.zeros(1, np.float32), n) for n in names]
        graph = helper.make_graph(
            nodes, out, inputs, [helper.make_tensor_value_info(out, TensorProto.FLOAT, [1])], inits
        )
        return helper.make_model(graph)

    names = [f"t{k}" for k in range(7)]
    with pytest.raises(ModelFileError) as raised:
        append_cpu_part(part(None, "logits", names), part("logits", "coords", names))
    assert str(raised.value) == (
        "tensor names used by both parts: 't0', 't1', 't2', 't3' and 3 more: the quantized DPU part and the "
        "exported CPU part are both dpupose's own, so this is a fault of its export, not of the checkpoint (the "
        "folder is left as it was)"
    )


def _pose_head() -> onnx.ModelProto:
    """The float CPU part of a pose model: logits (1, 16, 4, 4) -> softmax -> heatmaps, DSNT -> coords."""
    from onnx import TensorProto, helper
    from split_models import OPSET, Builder

    b = Builder()
    b.head("logits")
    graph = helper.make_graph(
        b.nodes,
        "head",
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 16, 4, 4])],
        [
            helper.make_tensor_value_info("coords", TensorProto.FLOAT, [1, 16, 2]),
            helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT, [1, 16, 4, 4]),
        ],
        b.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize(
    ("module", "op_type", "kind"),
    [(torch.nn.Hardswish(), "HardSwish", "hswish"), (torch.nn.Hardsigmoid(), "HardSigmoid", "hsigmoid")],
)
def test_a_hard_activation_gets_a_q_dq_pair_before_it_and_runs_split_on_the_emulator(tmp_path, module, op_type, kind):
    # VART's DPUCZDX8G target factory fuses only relu, leaky_relu and relu_six: the hard activation is an op of
    # its own (ALU hsigmoid, + eltwise mult for the swish) reading c2's int8 result, as vai_q quantizes it.
    from dpupose.runtime.backends import RunnerFactory
    from dpupose.runtime.executor import SplitExecutor
    from dpupose.split.partition import SplitOptions, split_model

    net = _HardNet(module).eval()
    graph = build_qgraph(net, (3, 8, 8))
    assert [type(op).__name__ for op in graph.ops] == ["ConvOp", "ConvOp", "HardActOp", "ConvOp"]
    c2, hard = graph.ops[1], graph.ops[2]
    assert c2.act == "none" and hard.kind == kind and hard.input == c2.name
    rng = np.random.default_rng(0)
    batches = [rng.normal(0, 1, (4, 3, 8, 8)).astype(np.float32) for _ in range(4)]
    fix, _ = calibrate(graph, batches)
    if kind == "hsigmoid":
        assert fix.activations[hard.name] >= 7  # where XIR's relu6(x + 3) and Xilinx's cpu_task agree
    qdq = qdq_model(graph, fix, batch=1)
    nodes = {n.name: n for n in qdq.graph.node}
    # c2's result is quantized before the hard activation reads it: Conv -> Q -> DQ -> Hard -> Q -> DQ.
    (h,) = [n for n in qdq.graph.node if n.op_type == op_type]
    producer = {o: n for n in qdq.graph.node for o in n.output}
    assert producer[h.input[0]].op_type == "DequantizeLinear"
    assert producer[producer[h.input[0]].input[0]].op_type == "QuantizeLinear"
    assert producer[producer[producer[h.input[0]].input[0]].input[0]].name == c2.name
    assert nodes[c2.name].op_type == "Conv"
    path = tmp_path / "dpu_part_qdq.onnx"
    onnx.save(qdq, path)
    whole = tmp_path / "model_qdq.onnx"
    onnx.save(append_cpu_part(qdq, _pose_head()), whole)
    # The emulator equals the quantizer's fake quantization bit for bit, every tensor.
    x = batches[0][:2]
    env = EmulatorRunner(path).trace({"image": quantize_to_int8(x.transpose(0, 2, 3, 1), fix.activations["image"])})
    trace: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        QuantNet(graph, fix).set_mode("fake").double()(torch.from_numpy(x).double(), trace=trace)
    for name, t in trace.items():
        want = np.rint(t.numpy() * 2.0 ** fix.activations[name]).astype(np.int8).transpose(0, 2, 3, 1)
        np.testing.assert_array_equal(env[f"{name}_int8"], want, err_msg=name)
    # Split: every op on the DPU, and the emulate backend runs the plan as the cpu backend (ONNX Runtime) does.
    result = split_model(SplitOptions(whole, "u96v2-b1600-pynq", tmp_path / "plan"))
    rows = {r["node"]: r for r in result.assignment}
    assert rows[c2.name]["device"] == "dpu" and rows[hard.name]["device"] == "dpu"
    assert [sg.device for sg in result.plan.subgraphs] == ["dpu", "cpu"] and result.warnings == []
    assert [t.name for t in result.plan.subgraphs[0].outputs] == ["logits"]
    emulated = SplitExecutor(result.plan, RunnerFactory(result.plan, "emulate").create_all()).infer_tensor(x[:1])
    cpu = SplitExecutor(result.plan, RunnerFactory(result.plan, "cpu").create_all()).infer_tensor(x[:1])
    # ONNX Runtime takes 1/6 and the exact hard sigmoid, so a few LSBs of the logits may differ: coordinates
    # (in [-1, 1]) within a hundredth.
    np.testing.assert_allclose(emulated["coords"], cpu["coords"], atol=0.01)
    np.testing.assert_allclose(emulated["heatmaps"], cpu["heatmaps"], atol=0.01)


@pytest.mark.parametrize(
    ("module", "act", "op_type", "act_type"),
    [
        (torch.nn.Sequential(torch.nn.Hardswish(), torch.nn.ReLU()), "relu", "HardSwish", "Relu"),
        (torch.nn.Sequential(torch.nn.Hardsigmoid(), torch.nn.ReLU()), "relu", "HardSigmoid", "Relu"),
        (torch.nn.Sequential(torch.nn.Hardsigmoid(), torch.nn.ReLU6()), "relu6", "HardSigmoid", "Clip"),
        (
            torch.nn.Sequential(torch.nn.Hardsigmoid(), torch.nn.LeakyReLU(26 / 256)),
            "leaky",
            "HardSigmoid",
            "LeakyRelu",
        ),
    ],
)
def test_an_activation_after_a_hard_activation_is_fused_as_the_dpu_fuses_it(tmp_path, module, act, op_type, act_type):
    # The eltwise engine's mult fuses a ReLU after a hard swish, the ALU engine a ReLU, ReLU6 or LeakyReLU after a
    # hard sigmoid (VART's DPUCZDX8G target factory): one op, quantized once, after the activation.
    from dpupose.quant.compare import ort_trace
    from dpupose.runtime.backends import RunnerFactory
    from dpupose.runtime.executor import SplitExecutor
    from dpupose.split.partition import SplitOptions, split_model

    graph = build_qgraph(_HardNet(module).eval(), (3, 8, 8))
    assert [type(op).__name__ for op in graph.ops] == ["ConvOp", "ConvOp", "HardActOp", "ConvOp"]
    c2, hard = graph.ops[1], graph.ops[2]
    assert c2.act == "none" and hard.act == act and hard.input == c2.name
    rng = np.random.default_rng(0)
    # wide enough for c2's result to cross -3 and 3, where the hard activations bend
    batches = [rng.normal(0, 8, (4, 3, 8, 8)).astype(np.float32) for _ in range(4)]
    fix, _ = calibrate(graph, batches)
    qdq = qdq_model(graph, fix, batch=1)
    # Q/DQ -> Hard -> activation -> Q -> DQ: no quantization between the hard activation and its activation
    producer = {o: n for n in qdq.graph.node for o in n.output}
    (h,) = [n for n in qdq.graph.node if n.op_type == op_type]
    assert producer[h.input[0]].op_type == "DequantizeLinear"
    (a,) = [n for n in qdq.graph.node if h.output[0] in n.input]
    assert a.op_type == act_type and a.output[0] == f"{hard.name}_float"
    if act == "leaky":
        assert a.attribute[0].name == "alpha" and a.attribute[0].f == np.float32(26 / 256)
    ((q,),) = [[n for n in qdq.graph.node if a.output[0] in n.input]]
    assert q.op_type == "QuantizeLinear" and q.output[0] == f"{hard.name}_int8"
    assert sum(n.op_type == "QuantizeLinear" for n in qdq.graph.node) == len(graph.ops) + 1
    path = tmp_path / "dpu_part_qdq.onnx"
    onnx.save(qdq_model(graph, fix), path)  # a batch of any size
    whole = tmp_path / "model_qdq.onnx"
    onnx.save(append_cpu_part(qdq, _pose_head()), whole)
    # The emulator equals the quantizer's fake quantization and the torch reference bit for bit, every tensor.
    x = batches[0][:2]
    feeds = {"image": quantize_to_int8(x.transpose(0, 2, 3, 1), fix.activations["image"])}
    env = EmulatorRunner(path).trace(feeds)
    trace: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        QuantNet(graph, fix).set_mode("fake").double()(torch.from_numpy(x).double(), trace=trace)
    ref = TorchQdqReference(path).trace({"image": x})
    for name, t in trace.items():
        want = np.rint(t.numpy() * 2.0 ** fix.activations[name]).astype(np.int8).transpose(0, 2, 3, 1)
        np.testing.assert_array_equal(env[f"{name}_int8"], want, err_msg=name)
        np.testing.assert_array_equal(ref[f"{name}_int8"], want, err_msg=name)
    xi = env[f"{c2.name}_int8"].astype(np.int64)
    yi = env[f"{hard.name}_int8"].astype(np.int64)
    fp_in, fp_out = fix.activations[c2.name], fix.activations[hard.name]
    if op_type == "HardSwish":
        # the ReLU did something: inputs in (-3, 0) give a negative hard swish, which the ReLU makes 0
        assert np.any((xi < 0) & (xi > -3 * 2**fp_in)) and np.any(xi >= 3 * 2**fp_in)
        assert yi.min() == 0 and np.all(yi[xi < 0] == 0)
        # x >= 3 gives x * 127/128 on the DPU, rounded half up
        big = xi >= 3 * 2**fp_in
        np.testing.assert_array_equal(yi[big], np.floor(xi[big] * 127 / 128 * 2.0 ** (fp_out - fp_in) + 0.5))
        bound = np.floor(np.abs(xi) * 2.0 ** (fp_out - fp_in) / 128 + 1)
    else:
        # the activation is the identity on the hard sigmoid: relu6(x + 3) * 2731 / 2**14, half up
        dpu = np.clip(xi * 2.0**-fp_in + 3, 0, 6) * 2731 / 2**14 * 2.0**fp_out
        np.testing.assert_array_equal(yi, np.clip(np.floor(dpu + 0.5), -128, 127))
        bound = np.ones_like(yi)
    # ONNX Runtime (its exact 1/6) on the emulator's own input to the layer: within the emulator's documented bound
    ort = ort_trace(path, feeds, fix.activations)
    assert np.all(np.abs(ort[f"{hard.name}_int8"].astype(np.int64) - yi) <= bound)
    # Split: the hard activation and its activation on the DPU (LeakyReLU on the ALU engine needs a configuration
    # that has it), and the emulate backend runs the plan as the cpu backend (ONNX Runtime) does.
    config = "u96v2-b1600-pynq"
    if act == "leaky":
        text = (Path(__file__).parents[1] / "hw/dpu/configs/u96v2-b1600-pynq.toml").read_text()
        assert 'alu_activations = "relu_relu6"' in text
        rows = {r["node"]: r for r in split_model(SplitOptions(whole, config, tmp_path / "shipped")).assignment}
        assert rows[hard.name]["device"] == "cpu"
        assert "its fused activation cannot run on the DPU" in rows[hard.name]["reason"]
        config = str(tmp_path / "alu-leaky.toml")
        leaky = 'alu_activations = "relu_leakyrelu_relu6"'
        Path(config).write_text(text.replace('alu_activations = "relu_relu6"', leaky))
    result = split_model(SplitOptions(whole, config, tmp_path / "plan"))
    rows = {r["node"]: r for r in result.assignment}
    assert [rows[op.name]["device"] for op in graph.ops] == ["dpu"] * 4
    assert [sg.device for sg in result.plan.subgraphs] == ["dpu", "cpu"] and result.warnings == []
    dpu_part = onnx.load(result.plan.path(result.plan.subgraphs[0].file))
    assert {hard.name, a.name} <= {n.name for n in dpu_part.graph.node}  # the activation with its hard activation
    emulated = SplitExecutor(result.plan, RunnerFactory(result.plan, "emulate").create_all()).infer_tensor(x[:1])
    cpu = SplitExecutor(result.plan, RunnerFactory(result.plan, "cpu").create_all()).infer_tensor(x[:1])
    np.testing.assert_allclose(emulated["coords"], cpu["coords"], atol=0.01)
    np.testing.assert_allclose(emulated["heatmaps"], cpu["heatmaps"], atol=0.01)


def test_constraints_keep_a_hard_sigmoid_where_xilinx_s_references_agree():
    # Input positions 0-10 (cpu_task hard-sigmoid-fix's float32 sum is exact), hard sigmoid outputs from 7 (XIR's
    # relu6(x + 3) cap and that reference's uncapped x + 3 saturate alike); a hard swish's output is free.
    w = np.ones((2, 3, 1, 1), np.float32)
    g = QGraph(
        [ConvOp("c", "image", w, None), HardActOp("h", "c", "hsigmoid"), HardActOp("logits", "h", "hswish")],
        (3, 2, 2),
    )
    fix = FixPoints({"image": 7, "c": 12, "h": 6, "logits": 3}, {"c": 7}, {})
    new, notes = apply_constraints(g, fix)
    assert new.activations == {"image": 7, "c": 10, "h": 7, "logits": 3}
    assert "c: activation fix position 12 -> 10 (hard sigmoid input <= 10)" in notes
    assert "h: activation fix position 6 -> 7 (hard sigmoid output >= 7)" in notes
    # at the bounds: an input at 11 comes down to 10, an output at 7 and an input at 10 stay
    fix = FixPoints({"image": 7, "c": 11, "h": 7, "logits": 3}, {"c": 7}, {})
    assert apply_constraints(g, fix)[0].activations == {"image": 7, "c": 10, "h": 7, "logits": 3}


@pytest.mark.parametrize(
    ("kind", "act", "fp_out", "x", "want"),
    [
        # the DPU's integers, worked by hand in tests/test_dpu_reference.py: relu6(x + 3) * 2731 / 2**14 from fix
        # point 4 to 7, and x times that at 2**-7 (127/128 at most: 127 -> 126) from 4 to 4
        ("hsigmoid", "none", 7, [-128, -48, -47, 0, 16, 47, 48, 127], [0, 0, 1, 64, 85, 127, 127, 127]),
        ("hswish", "none", 4, [64, 127, 16, -16, -24, -40, -48, 0], [64, 126, 11, -5, -6, -3, 0, 0]),
        # with the eltwise mult's ReLU: the negative products are 0
        ("hswish", "relu", 4, [64, 127, 16, -16, -24, -40, -48, 0], [64, 126, 11, 0, 0, 0, 0, 0]),
    ],
)
def test_fake_quantized_hard_activations_give_the_dpu_s_integers(kind, act, fp_out, x, want):
    g = QGraph([HardActOp("logits", "image", kind, act)], (1, 1, 8))
    net = QuantNet(g, FixPoints({"image": 4, "logits": fp_out}, {}, {})).double()
    image = torch.tensor(x, dtype=torch.float64).reshape(1, 1, 1, 8) / 16
    with torch.no_grad():
        y = net.set_mode("fake")(image) * 2.0**fp_out
    assert y.reshape(-1).tolist() == want
    # float mode is the exact relu6(x + 3) / 6 and x times it: 1 from x = 3 on, x from 3 on
    xf = torch.tensor([-4.0, -3.0, -1.5, 0.0, 2.0, 3.0, 5.0, 7.9], dtype=torch.float64).reshape(1, 1, 1, 8)
    h = [0, 0, 0.25, 0.5, 5 / 6, 1, 1, 1]
    with torch.no_grad():
        y = net.set_mode("float")(xf).reshape(-1).tolist()
    expect = h if kind == "hsigmoid" else [v * hv for v, hv in zip(xf.reshape(-1).tolist(), h)]
    expect = [max(v, 0.0) for v in expect] if act == "relu" else expect
    np.testing.assert_allclose(y, expect, rtol=0, atol=1e-12)


class _FunctionalHard(torch.nn.Module):
    def __init__(self, after_sigmoid=None, after_swish=None) -> None:
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 4, 1)
        self.c2 = torch.nn.Conv2d(4, 4, 1)
        self.after_sigmoid = after_sigmoid or (lambda y: y)
        self.after_swish = after_swish or (lambda y: y)

    def forward(self, x):
        y = torch.nn.functional.hardsigmoid(self.c1(x))
        y = torch.nn.functional.hardswish(self.after_sigmoid(y))
        return self.c2(self.after_swish(y))


def test_functional_hard_activations_are_ops_of_their_kind_and_fuse_the_dpu_s_activations_only():
    graph = build_qgraph(_FunctionalHard().eval(), (3, 4, 4))
    assert [(type(op).__name__, getattr(op, "kind", None), op.act) for op in graph.ops] == [
        ("ConvOp", None, "none"),
        ("HardActOp", "hsigmoid", "none"),
        ("HardActOp", "hswish", "none"),
        ("ConvOp", None, "none"),
    ]
    # the DPU's fused activations are fused into the HardActOp: a ReLU after a hard swish (its eltwise mult's
    # ReLU), a ReLU6 after a hard sigmoid (the ALU engine's), in their functional forms too
    graph = build_qgraph(_FunctionalHard(torch.nn.functional.relu6, torch.relu).eval(), (3, 4, 4))
    assert [(getattr(op, "kind", None), op.act) for op in graph.ops] == [
        (None, "none"),
        ("hsigmoid", "relu6"),
        ("hswish", "relu"),
        (None, "none"),
    ]
    # any other activation after a hard swish is refused, saying which the DPU fuses there and after a hard
    # sigmoid; so is a second activation after a fused one
    for after_swish in (torch.nn.functional.relu6, torch.nn.LeakyReLU(26 / 256), torch.nn.ReLU6()):
        with pytest.raises(QuantizationError, match=r"after a hard swish has no DPU mapping: .*a ReLU only \(a hard "):
            build_qgraph(_FunctionalHard(after_swish=after_swish).eval(), (3, 4, 4))
    with pytest.raises(QuantizationError, match="a second activation cannot be fused"):
        build_qgraph(_FunctionalHard(lambda y: torch.relu(torch.relu(y))).eval(), (3, 4, 4))


class _ShuffleThenActivation(torch.nn.Module):
    def __init__(self, act, functional: bool = False, shuffle_first: bool = True) -> None:
        super().__init__()
        self.c = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.shuffle = torch.nn.PixelShuffle(2)
        self.act = act
        self.functional = functional
        self.shuffle_first = shuffle_first

    def forward(self, x):
        y = self.c(x)
        if not self.shuffle_first:
            y = self.act(y)
        y = torch.nn.functional.pixel_shuffle(y, 2) if self.functional else self.shuffle(y)
        return self.act(y) if self.shuffle_first else y


@pytest.mark.parametrize("functional", [False, True])
@pytest.mark.parametrize(
    ("act", "text"), [(torch.nn.ReLU(), "ReLU"), (torch.relu, "ReLU"), (torch.nn.ReLU6(), "ReLU6")]
)
def test_an_activation_after_a_pixel_shuffle_is_refused_saying_to_put_it_before(act, text, functional):
    # XIR's pixel-shuffle-fix has no nonlinear attribute: no activation is fused into a pixel shuffle, which
    # the refusal says (it said 'a second activation cannot be fused', though there was none), with the fix
    with pytest.raises(QuantizationError) as err:
        build_qgraph(_ShuffleThenActivation(act, functional).eval(), (3, 4, 4))
    message = str(err.value)
    assert f"a {text} after a pixel shuffle has no DPU mapping: the DPU fuses no activation into one" in message
    assert "put the activation before the pixel shuffle" in message and "second activation" not in message
    # where the message says to put it, it is fused into the conv, and the result is the same
    model = _ShuffleThenActivation(act, functional, shuffle_first=False).eval()
    graph = build_qgraph(model, (3, 4, 4))
    fused = "relu6" if text == "ReLU6" else "relu"
    assert [(type(op).__name__, op.act) for op in graph.ops] == [("ConvOp", fused), ("DepthToSpaceOp", "none")]
    refused = _ShuffleThenActivation(act, functional).eval()
    refused.c = model.c
    x = torch.randn(1, 3, 4, 4)
    assert torch.equal(model(x), refused(x))


# ---- fusion: what is folded, what is refused --------------------------------------------------------
class _Seq(torch.nn.Module):
    def __init__(self, *mods) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(*mods)

    def forward(self, x):
        return self.body(x)


def test_a_hardtanh_is_a_relu6_only_between_0_and_6():
    conv = torch.nn.Conv2d(3, 4, 1)
    assert build_qgraph(_Seq(conv, torch.nn.Hardtanh(0.0, 6.0)), (3, 4, 4)).ops[0].act == "relu6"
    for bounds in ((0.0, 7.0), (-1.0, 6.0)):
        with pytest.raises(QuantizationError, match="Hardtanh has no DPU mapping"):
            build_qgraph(_Seq(torch.nn.Conv2d(3, 4, 1), torch.nn.Hardtanh(*bounds)), (3, 4, 4))


def test_a_batchnorm_without_affine_parameters_is_folded_as_its_running_statistics_say():
    # weight 1 everywhere, bias 0.5; BatchNorm(affine=False) of mean m, variance v: (y - m) / sqrt(v + eps)
    conv = torch.nn.Conv2d(2, 2, 1)
    bn = torch.nn.BatchNorm2d(2, affine=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.fill_(0.5)
        bn.running_mean.copy_(torch.tensor([1.0, -2.0]))
        bn.running_var.copy_(torch.tensor([4.0 - 1e-5, 0.25 - 1e-5]))
    net = _Seq(conv, bn).eval()
    (op,) = build_qgraph(net, (2, 3, 3)).ops
    np.testing.assert_allclose(op.weight.reshape(2, 2), [[0.5, 0.5], [2.0, 2.0]], rtol=1e-6)
    np.testing.assert_allclose(op.bias, [(0.5 - 1.0) / 2, (0.5 + 2.0) * 2], rtol=1e-6)
    x = torch.randn(1, 2, 3, 3)
    with torch.no_grad():
        torch.testing.assert_close(QuantNet(build_qgraph(net, (2, 3, 3)))(x), net(x), rtol=1e-5, atol=1e-5)


class _Branch(torch.nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.conv = torch.nn.Conv2d(3, 3, 1)
        self.bn = torch.nn.BatchNorm2d(3, track_running_stats=(kind != "no-stats"))
        self.relu = torch.nn.ReLU()

    def forward(self, x):
        y = self.conv(x)
        if self.kind == "after-relu":
            return self.bn(self.relu(y))
        if self.kind == "shared":
            return self.bn(y) + y
        return self.bn(y)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("after-relu", "BatchNorm must follow a convolution to be folded"),
        ("shared", "must directly follow a conv/add whose output it alone uses"),
        ("no-stats", "BatchNorm without running statistics cannot be folded"),
    ],
)
def test_a_batchnorm_that_cannot_be_folded_is_refused(kind, message):
    with pytest.raises(QuantizationError, match=message):
        build_qgraph(_Branch(kind).eval(), (3, 4, 4))


class _Odd(torch.nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect" if kind == "reflect" else "zeros")
        self.conv2 = torch.nn.Conv2d(4, 4, 1)
        self.drop = torch.nn.Dropout(0.5)

    def forward(self, x):
        y = self.conv(x)
        if self.kind == "alpha":
            return torch.add(y, self.conv2(y), alpha=2)
        if self.kind == "not-last":
            self.conv2(y)
            return y
        if self.kind == "dropout":
            return self.conv2(torch.relu(self.drop(y)))
        if self.kind == "shared":
            return self.conv2(self.conv2(self.conv2(y)))
        return y


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("reflect", "only explicit zero padding runs on the DPU"),
        ("alpha", "only a plain sum of two tensors maps to the DPU's add"),
        ("not-last", "the DPU part's output must be its last operation"),
    ],
)
def test_what_the_dpu_cannot_compute_is_refused_with_its_reason(kind, message):
    with pytest.raises(QuantizationError, match=message):
        build_qgraph(_Odd(kind).eval(), (3, 4, 4))


class _TwoInputs(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 1)

    def forward(self, x, y):
        return self.conv(x) + self.conv(y)


def test_a_dpu_part_of_two_inputs_is_refused():
    with pytest.raises(QuantizationError, match="the DPU part must take exactly one input"):
        build_qgraph(_TwoInputs().eval(), (3, 4, 4))


def test_dropout_passes_its_input_through_and_names_stay_unique():
    graph = build_qgraph(_Odd("dropout").eval(), (3, 4, 4))
    assert [(type(op).__name__, op.name, op.act) for op in graph.ops] == [
        ("ConvOp", "conv", "relu"),
        ("ConvOp", "logits", "none"),
    ]
    # a module called twice gives two ops, the second named after it with .2
    graph = build_qgraph(_Odd("shared").eval(), (3, 4, 4))
    assert [op.name for op in graph.ops] == ["conv", "conv2", "conv2.2", "logits"]


# ---- a conv of unequal strides, pads and dilations, through fusion, fake quantization and export -----------
class _Oblong(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.c1 = torch.nn.Conv2d(3, 4, (3, 2), stride=(1, 2), padding=(2, 1), dilation=(2, 1))
        self.c2 = torch.nn.Conv2d(4, 16, 1)

    def forward(self, x):
        return self.c2(torch.relu(self.c1(x)))


def _emulated_equals_fake_quant(graph: QGraph, fix: FixPoints, x: np.ndarray, path) -> dict:
    """Every tensor of the emulator (running the exported file) and of the torch reference equals QuantNet's
    fake quantization, bit for bit; returns the emulator's trace."""
    onnx.save(qdq_model(graph, fix), path)
    env = EmulatorRunner(path).trace({"image": quantize_to_int8(x.transpose(0, 2, 3, 1), fix.activations["image"])})
    ref = TorchQdqReference(path).trace({"image": x})
    trace: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        QuantNet(graph, fix).set_mode("fake").double()(torch.from_numpy(x).double(), trace=trace)
    for name, t in trace.items():
        want = np.rint(t.numpy() * 2.0 ** fix.activations[name]).astype(np.int8).transpose(0, 2, 3, 1)
        np.testing.assert_array_equal(env[f"{name}_int8"], want, err_msg=name)
        np.testing.assert_array_equal(ref[f"{name}_int8"], want, err_msg=name)
    return env


def test_a_conv_of_unequal_strides_pads_and_dilations_keeps_each_axis_through_export(tmp_path):
    net = _Oblong().eval()
    graph = build_qgraph(net, (3, 6, 8))
    c1 = graph.ops[0]
    assert (c1.stride, c1.pads, c1.dilation) == ((1, 2), (2, 1, 2, 1), (2, 1))
    x = np.random.default_rng(0).normal(0, 1, (2, 3, 6, 8)).astype(np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x))
        torch.testing.assert_close(QuantNet(graph)(torch.from_numpy(x)), want, rtol=1e-5, atol=1e-5)
    # H: 6 + 4 - 2 * 2 = 6 rows at stride 1; W: (8 + 2 - 1 - 1) // 2 + 1 = 5 columns
    assert tuple(want.shape) == (2, 16, 6, 5)
    fix, _ = calibrate(graph, [x])
    model = qdq_model(graph, fix)
    (conv,) = [n for n in model.graph.node if n.name == c1.name]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in conv.attribute}
    assert (attrs["strides"], attrs["pads"], attrs["dilations"]) == ([1, 2], [2, 1, 2, 1], [2, 1])
    dims = [d.dim_param or d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 16, 6, 5]
    env = _emulated_equals_fake_quant(graph, fix, x, tmp_path / "oblong.onnx")
    assert env["logits_int8"].shape == (2, 6, 5, 16)


def test_a_conv_of_unequal_pads_on_each_side_is_fake_quantized_and_exported_as_the_emulator_runs_it(tmp_path):
    # fusion gives equal pads on opposite sides; a QGraph made otherwise (top 0, left 1, bottom 2, right 0)
    rng = np.random.default_rng(2)
    w = rng.normal(0, 0.3, (16, 3, 3, 3)).astype(np.float32)
    b = rng.normal(0, 0.1, 16).astype(np.float32)
    graph = QGraph([ConvOp("logits", "image", w, b, pads=(0, 1, 2, 0))], (3, 5, 6))
    fix = FixPoints({"image": 5, "logits": 4}, {"logits": 7}, {"logits": 7})
    model = qdq_model(graph, fix)
    dims = [d.dim_param or d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 16, 5, 5]  # H: 5 + 0 + 2 - 2 = 5, W: 6 + 1 + 0 - 2 = 5
    x = rng.normal(0, 1, (2, 3, 5, 6)).astype(np.float32)
    env = _emulated_equals_fake_quant(graph, fix, x, tmp_path / "pads.onnx")
    # and by hand: the output's top-left pixel sees rows 0..2 and, left of column 0, a zero column
    xq = env["image_int8"].transpose(0, 3, 1, 2).astype(np.float64) * 2.0**-5
    wq = np.clip(np.sign(w) * np.floor(np.abs(w) * 2.0**7 + 0.5), -128, 127) * 2.0**-7
    bq = np.clip(np.sign(b) * np.floor(np.abs(b) * 2.0**7 + 0.5), -128, 127) * 2.0**-7
    acc = np.einsum("nchw,ochw->no", xq[:, :, 0:3, 0:2], wq[:, :, :, 1:3]) + bq
    np.testing.assert_array_equal(env["logits_int8"][:, 0, 0, :], np.clip(np.floor(acc * 2.0**4 + 0.5), -128, 127))


# ---- diffs and the constraints at their bounds ----------------------------------------------------------
def test_the_overflow_free_position_takes_minus_128_and_plus_127_5():
    # one position searched (the network input's): floor(log2(1 / step)), step = max(min / -128.5, max / 127.5).
    # -1.0 is -128 steps at 7; +1.0 needs 6 (128 steps at 7 would overflow 127)
    assert diffs_fix_pos(np.array([-1.0, 0.5]), search=1) == 7
    assert diffs_fix_pos(np.array([-0.5, 1.0]), search=1) == 6
    assert diffs_fix_pos(np.array([-1.0]), search=5) == 7  # exact there, and clipped above


def test_diffs_reaches_the_fourth_position_above_the_overflow_free_one():
    # 2e6 values of 1/1024 and one 1.0 (overflow-free position 6). By hand: the small ones are exact from 10 on
    # and round to 0 below (2e6 * 2**-20 = 1.907 in all); the 1.0 is exact at 6 and clips to 127 / 2**p above:
    # 6 -> 1.907, 7 -> 1.907, 8 -> 2.161, 9 -> 2.473, 10 -> (1 - 127/1024)**2 = 0.768, the least.
    x = np.concatenate([np.full(2_000_000, 1 / 1024), [1.0]])
    assert diffs_fix_pos(x) == 10


def test_the_last_representable_position_is_minus_16():
    # 127 * 2**16 is 127 steps at -16 (exact); 1e7 needs floor(log2(127.5 / 1e7)) = -17
    assert diffs_fix_pos(np.array([127 * 2.0**16])) == -16
    with pytest.raises(QuantizationError, match=r"needs fix position -17.*positions >= -16"):
        diffs_fix_pos(np.array([1e7]), name="activation 'x'")


def _w(o: int, c: int) -> np.ndarray:
    return np.zeros((o, c, 1, 1), np.float32)


def test_a_pixel_shuffle_and_its_input_move_together():
    # A hard sigmoid's input (a pixel shuffle's output) above 10 comes down to 10, and the conv before the shuffle
    # with it: a pixel shuffle only moves values, so its input and output keep one position.
    g = QGraph(
        [ConvOp("c", "image", _w(8, 3), None), DepthToSpaceOp("d", "c", 2), HardActOp("logits", "d", "hsigmoid")],
        (3, 2, 2),
    )
    out, notes = apply_constraints(g, FixPoints({"image": 7, "c": 12, "d": 12, "logits": 7}, {"c": 7}, {}))
    assert (out.activations["c"], out.activations["d"]) == (10, 10)
    assert "c: activation fix position 12 -> 10 (pixel shuffle input follows its output)" in notes
    # A ReLU6 conv's output below 4 goes up to 4, and the pixel shuffle after it with it.
    g = QGraph(
        [
            ConvOp("c", "image", _w(8, 3), None, act="relu6"),
            DepthToSpaceOp("d", "c", 2),
            ConvOp("logits", "d", _w(2, 2), None),
        ],
        (3, 2, 2),
    )
    out, notes = apply_constraints(g, FixPoints({"image": 7, "c": 3, "d": 3, "logits": 3}, {"c": 7, "logits": 7}, {}))
    assert (out.activations["c"], out.activations["d"]) == (4, 4)
    assert "d: activation fix position 3 -> 4 (pixel shuffle output follows its input)" in notes


def test_an_add_input_too_fine_comes_down_to_exactly_15_above_the_other():
    g = QGraph(
        [ConvOp("a", "image", _w(2, 3), None), ConvOp("b", "image", _w(2, 3), None), AddOp("logits", "a", "b")],
        (3, 2, 2),
    )
    fix = FixPoints({"image": 10, "a": 0, "b": 16, "logits": 0}, {"a": 0, "b": 10}, {})
    out, notes = apply_constraints(g, fix)
    assert out.activations == {"image": 10, "a": 0, "b": 15, "logits": 0}
    assert notes == ["b: activation fix position 16 -> 15 (add shift_read <= 15)"]


def test_weights_too_fine_for_the_output_come_down_to_a_shift_cut_of_exactly_16():
    # no bias to move them again: shift_cut 4 + 20 - 5 = 19 > 16 lowers the weights to 5 - 4 + 16 = 17
    g = QGraph([ConvOp("logits", "image", _w(2, 3), None)], (3, 2, 2))
    out, notes = apply_constraints(g, FixPoints({"image": 4, "logits": 5}, {"logits": 20}, {}))
    assert out.weights == {"logits": 17}
    assert notes == ["logits: weights fix position 20 -> 17 (shift_cut <= 16)"]


def test_validate_holds_every_position_to_minus_16_31_and_every_shift_cut_to_0_16():
    g = QGraph([ConvOp("logits", "image", _w(2, 3), np.zeros(2, np.float32))], (3, 2, 2))
    # at the bounds: shift_cut -16 + 31 - 15 = 0, shift_bias 15 - 31 = -16 = min(0, 0 - 16)
    edge = FixPoints({"image": -16, "logits": 15}, {"logits": 31}, {"logits": 31})
    validate(g, edge)
    for table, name, value in (("activations", "image", -17), ("weights", "logits", 32), ("biases", "logits", 32)):
        bad = edge.copy()
        getattr(bad, table)[name] = value
        with pytest.raises(QuantizationError, match=rf"'{name}' needs fix position {value}, outside the DPU range"):
            validate(g, bad)
    for fp_out, sc in ((16, -1), (-2, 17)):
        bad = FixPoints({"image": 0, "logits": fp_out}, {"logits": 15}, {"logits": 15})
        with pytest.raises(QuantizationError, match=rf"conv 'logits': shift_cut {sc} outside \(0, 16\)"):
            validate(g, bad)


def test_diffs_takes_the_first_position_on_a_tie():
    # [1/64, 2]: overflow-free position 5, where 2 is 64 steps and 1/64 half a step (error (1/64)**2 / 4 =
    # 1/4096); at 6, 1/64 is exact and 2 (128 steps) clips to 127 (error (1/64)**2 = 1/4096 too). 5 comes first.
    assert diffs_fix_pos(np.array([1 / 64, 2.0])) == 5


# ---- fake quantization: parameters, bias alignment, add guard bits, leaky slope, QAT --------------------------
def _one_pixel(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64).reshape(1, -1, 1, 1)


def test_fake_quantized_weights_and_biases_round_half_away_from_zero_and_saturate():
    # as qdq_export writes them (vai_q_pytorch's rule for parameters): a 1 x 1 conv of one input pixel 1.0
    steps = np.array([-200.0, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 200.0])
    want = [-128, -3, -2, -1, 1, 2, 3, 127]
    g = QGraph([ConvOp("logits", "image", (steps * 2.0**-6).reshape(8, 1, 1, 1).astype(np.float32), None)], (1, 1, 1))
    net = QuantNet(g, FixPoints({"image": 0, "logits": 6}, {"logits": 6}, {})).double().set_mode("fake")
    with torch.no_grad():
        assert (net(_one_pixel([1.0])) * 2.0**6).reshape(-1).tolist() == want
    # the bias alone (zero weights), at 2**-9 with the accumulator at 2**-(3 + 6 + 1): no flooring
    g = QGraph(
        [ConvOp("logits", "image", np.zeros((8, 1, 1, 1), np.float32), (steps * 2.0**-9).astype(np.float32))], (1, 1, 1)
    )
    net = QuantNet(g, FixPoints({"image": 3, "logits": 9}, {"logits": 6}, {"logits": 9})).double().set_mode("fake")
    with torch.no_grad():
        assert (net(_one_pixel([1.0])) * 2.0**9).reshape(-1).tolist() == want


def test_a_bias_finer_than_the_accumulator_is_floored_one_bit_below_it(tmp_path):
    # x = 1 step at 2**0, w = 1 step at 2**-10, b = -3 steps at 2**-13 (shift_bias 0 + 10 - 13 = -3): the DPU
    # floors the bias to 2**-11, floor(-3/4) = -1 there, half an output step at 2**-10; 1 - 1/2 rounds half up
    # to 1 (floored to 2**-10 instead, -1 there, it would be 0)
    g = QGraph(
        [ConvOp("logits", "image", np.full((1, 1, 1, 1), 2.0**-10, np.float32), np.array([-3 * 2.0**-13], np.float32))],
        (1, 1, 1),
    )
    fix = FixPoints({"image": 0, "logits": 10}, {"logits": 10}, {"logits": 13})
    validate(g, fix)
    with torch.no_grad():
        assert float(QuantNet(g, fix).double().set_mode("fake")(_one_pixel([1.0]))) * 2**10 == 1
    _emulated_equals_fake_quant(g, fix, np.ones((1, 1, 1, 1), np.float32), tmp_path / "bias.onnx")


def test_an_add_truncates_the_finer_input_two_bits_below_the_coarser(tmp_path):
    # x = 9/128: a = conv (weight 1) at fp 4 -> 1/16; b at fp 7 -> 9/128, truncated to 2**-(4 + 2): 8/128;
    # the sum 16/128 is 16 at fp 7 (9/128 kept whole would give 17)
    one = np.ones((1, 1, 1, 1), np.float32)
    g = QGraph([ConvOp("a", "image", one, None), ConvOp("b", "image", one, None), AddOp("logits", "a", "b")], (1, 1, 1))
    fix = FixPoints({"image": 7, "a": 4, "b": 7, "logits": 7}, {"a": 0, "b": 0}, {})
    validate(g, fix)
    with torch.no_grad():
        assert float(QuantNet(g, fix).double().set_mode("fake")(_one_pixel([9 / 128]))) * 128 == 16
    _emulated_equals_fake_quant(g, fix, np.full((1, 1, 1, 1), 9 / 128, np.float32), tmp_path / "add.onnx")


def test_a_leaky_relu_is_fake_quantized_with_the_dpu_s_slope(tmp_path):
    # x = 1 (4 steps at fp 2), w = -2: -2 * 26/256 = -52/256 is -52 at fp 8 (0.1 would give -51.2 -> -51)
    g = QGraph([ConvOp("logits", "image", np.full((1, 1, 1, 1), -2.0, np.float32), None, act="leaky")], (1, 1, 1))
    fix = FixPoints({"image": 2, "logits": 8}, {"logits": 6}, {})
    with torch.no_grad():
        assert float(QuantNet(g, fix).double().set_mode("fake")(_one_pixel([1.0]))) * 256 == -52
        assert float(QuantNet(g, fix).double()(_one_pixel([1.0]))) == -52 / 256
    _emulated_equals_fake_quant(g, fix, np.ones((1, 1, 1, 1), np.float32), tmp_path / "leaky.onnx")


def test_qat_starts_at_the_calibrated_positions_and_rounds_as_they_do():
    from dpupose.quant.fakequant import learned_fix_point, ste_fake_quantize

    w = np.ones((2, 1, 1, 1), np.float32)
    g = QGraph([ConvOp("logits", "image", w, np.zeros(2, np.float32))], (1, 1, 1))
    fix = FixPoints({"image": 3, "logits": -2}, {"logits": 12}, {"logits": 0})
    net = QuantNet(g, fix).set_mode("qat")
    assert net.learned_fix_points() == fix
    # a learned threshold t stands for fix position 7 - ceil(t): 0.3 -> 6. Half a step rounds up, as the DPU.
    t = torch.tensor(0.3)
    assert learned_fix_point(t) == 6
    x = torch.tensor([0.5, -0.5, 1.5, -2.5, 200.0, -200.0], dtype=torch.float64) / 64
    assert (ste_fake_quantize(x, t) * 64).tolist() == [1, 0, 2, -2, 127, -128]
    # the fine-tuned biases go into the graph with the weights
    with torch.no_grad():
        net.biases["logits"].fill_(0.25)
        net.weights["logits"].fill_(0.5)
    out = net.to_graph().convs()[0]
    assert out.bias.tolist() == [0.25, 0.25] and out.weight.reshape(-1).tolist() == [0.5, 0.5]


def test_fix_points_json_gives_each_layer_its_shifts_worked_by_hand():
    """fix_points.json of a hand-made graph, every figure worked by hand: a conv's shift_cut is fp_in + fp_w -
    fp_out and its shift_bias fp_in + fp_w - fp_b (only with a bias); an add's shift_read is each input's fix
    position above the coarser one and its shift_write the coarser one's less the output's."""
    import json

    w = np.zeros((4, 3, 3, 3), np.float32)
    graph = QGraph(
        [
            ConvOp("c1", "image", w, np.zeros(4, np.float32), act="relu"),
            ConvOp("c2", "c1", np.zeros((4, 1, 3, 3), np.float32), None, groups=4),
            AddOp("a", "c1", "c2"),
            HardActOp("h", "a", kind="hswish"),
            DepthToSpaceOp("logits", "h"),
        ],
        (3, 8, 8),
    )
    fix = FixPoints({"image": 6, "c1": 4, "c2": 5, "a": 3, "h": 5, "logits": 5}, {"c1": 7, "c2": 6}, {"c1": 9})
    doc = fix.to_json(graph)
    assert doc["format"] == "dpupose-fix-points/1"
    assert doc["input"] == {"name": "image", "fix_point": 6} and doc["output"] == {"name": "logits", "fix_point": 5}
    assert list(doc["activations"].items()) == [("image", 6), ("c1", 4), ("c2", 5), ("a", 3), ("h", 5), ("logits", 5)]
    assert doc["weights"] == {"c1": 7, "c2": 6} and doc["biases"] == {"c1": 9}
    c1, c2, a, h, logits = doc["layers"]
    assert c1 == {
        "name": "c1", "op": "conv", "inputs": ["image"], "input_fix_points": [6], "output_fix_point": 4,
        "act": "relu", "weights_fix_point": 7, "bias_fix_point": 9, "shift_cut": 6 + 7 - 4, "shift_bias": 6 + 7 - 9,
    }  # fmt: skip
    assert c2 == {
        "name": "c2", "op": "conv", "inputs": ["c1"], "input_fix_points": [4], "output_fix_point": 5,
        "act": "none", "weights_fix_point": 6, "bias_fix_point": None, "shift_cut": 4 + 6 - 5,
    }  # fmt: skip
    assert a == {
        "name": "a", "op": "add", "inputs": ["c1", "c2"], "input_fix_points": [4, 5], "output_fix_point": 3,
        "act": "none", "shift_read": [0, 1], "shift_write": 4 - 3,
    }  # fmt: skip
    assert h == {
        "name": "h", "op": "hswish", "inputs": ["a"], "input_fix_points": [3], "output_fix_point": 5, "act": "none"
    }  # fmt: skip
    assert logits["op"] == "depthtospace" and logits["input_fix_points"] == [5]
    json.dumps(doc)  # plain JSON
    # the graph's own look-ups: every reader of a tensor, in order; the op that makes one
    assert [op.name for op in graph.consumers("c1")] == ["c2", "a"]
    assert graph.producer("a") is graph.op("a") and graph.producer("image") is None
    # a copy of the fix points is the calibrated positions' own: a constraint moving one leaves them alone
    moved = fix.copy()
    moved.activations["a"] = 2
    moved.weights["c1"] = 6
    moved.biases["c1"] = 8
    assert fix.activations["a"] == 3 and fix.weights["c1"] == 7 and fix.biases["c1"] == 9


def test_calibration_keeps_the_position_most_batches_picked_and_names_the_batch_that_fails():
    # an identity 1x1 conv: its output is its input, so each batch of a constant c picks the largest position c
    # is exact at and that holds it, floor(log2(127.5 / c)): 1.0 -> 6, 0.25 -> 8, 4.0 -> 4
    graph = QGraph([ConvOp("logits", "image", np.ones((1, 1, 1, 1), np.float32), None)], (1, 4, 4))
    batches = [np.full((n, 1, 4, 4), c, np.float32) for n, c in ((2, 1.0), (1, 1.0), (3, 0.25), (1, 4.0))]
    fix, samples = calibrate(graph, batches)
    assert samples == 7
    assert (fix.activations, fix.weights, fix.biases) == ({"image": 6, "logits": 6}, {"logits": 6}, {})
    bad = [batches[0], batches[0], np.full((1, 1, 4, 4), np.nan, np.float32)]
    with pytest.raises(QuantizationError, match=r"^activation 'image' \(calibration batch 2\) .*NaN"):
        calibrate(graph, bad)
    with pytest.raises(QuantizationError, match=r"^the calibration set is empty$"):
        calibrate(graph, [])
    for shape in ((1, 2, 4, 4), (1, 4, 4), (1, 1, 4, 4, 1)):
        with pytest.raises(QuantizationError) as err:
            calibrate(graph, [np.zeros(shape, np.float32)])
        assert str(err.value) == f"calibration batch has shape {shape}, the model takes (N, (1, 4, 4))"


def test_calibration_gives_each_bias_its_own_position():
    w = np.ones((2, 1, 1, 1), np.float32)
    graph = QGraph([ConvOp("logits", "image", w, np.array([0.75, -3.0], np.float32))], (1, 4, 4))
    fix, _ = calibrate(graph, [np.full((1, 1, 4, 4), 0.5, np.float32)])
    assert fix.biases == {"logits": diffs_fix_pos(np.array([0.75, -3.0]))} == {"logits": 5}


def test_calibration_takes_a_float64_batch_as_the_float32_the_model_runs():
    # 127.5 / 1.9921875 = 64: the input's overflow-free position is 6 at float32's 1.9921875, which 1.9921875 +
    # 1e-12 rounds to; kept in float64, the value would be a hair too large for 6 and get 5
    graph = QGraph([ConvOp("logits", "image", np.ones((1, 1, 1, 1), np.float32), None)], (1, 4, 4))
    fix, _ = calibrate(graph, [np.full((1, 1, 4, 4), 1.9921875 + 1e-12, np.float64)])
    assert fix.activations["image"] == 6


def test_calibration_applies_the_dpu_s_shift_constraints_to_the_positions_it_found():
    # image 1.0: 6; weight 2**-9: exact from 9 up, capped at 12; bias 50 and output 50 + 2**-9: 1 (127.5 / 50 is
    # 2.55). The shift cut 6 + 12 - 1 = 17 is over 16: the weights come down to 11.
    w = np.full((1, 1, 1, 1), 2.0**-9, np.float32)
    graph = QGraph([ConvOp("logits", "image", w, np.array([50.0], np.float32))], (1, 4, 4))
    fix, _ = calibrate(graph, [np.ones((1, 1, 4, 4), np.float32)])
    assert (fix.activations, fix.weights, fix.biases) == ({"image": 6, "logits": 1}, {"logits": 11}, {"logits": 1})


# ---- QAT on a graph of two convs, against the loss and Adam's first step worked outside it -------------------------
def _two_convs_qat():
    """image (3, 4, 4) -> a 1x1 conv + ReLU to 4 channels -> a 1x1 conv to 2 heatmaps of 4 x 4, calibrated on three
    images. (The last conv's bias adds a constant to a whole map, which its softmax takes away: no gradient.)"""
    rng = np.random.default_rng(3)
    w1, w2 = rng.normal(0, 0.8, (4, 3, 1, 1)).astype(np.float32), rng.normal(0, 0.8, (2, 4, 1, 1)).astype(np.float32)
    b1 = np.array([0.3, -0.2, 0.1, 0.5], np.float32)
    ops = [ConvOp("c1", "image", w1, b1, act="relu"), ConvOp("logits", "c1", w2, np.zeros(2, np.float32))]
    graph = QGraph(ops, (3, 4, 4))
    images = [rng.normal(0, 1, (1, 3, 4, 4)).astype(np.float32) for _ in range(3)]
    fix, _ = calibrate(graph, images)
    return graph, fix, images


def _distillation_loss(student: np.ndarray, teacher: np.ndarray) -> tuple[float, float]:
    """(mean Euclidean distance of the DSNT coordinates, mean JS divergence of the heatmaps) of two (N, J, H, W)
    logits, in numpy: softmax over each map, coordinates at the pixel centres (2i + 1) / n - 1."""

    def heat(z):
        e = np.exp(z - z.max(axis=(2, 3), keepdims=True))
        return e / e.sum(axis=(2, 3), keepdims=True)

    def coords(p):
        _, _, h, w = p.shape
        xs, ys = (2 * np.arange(w) + 1) / w - 1, (2 * np.arange(h) + 1) / h - 1
        return np.stack([(p.sum(axis=2) * xs).sum(-1), (p.sum(axis=3) * ys).sum(-1)], axis=-1)

    p, q = heat(student.astype(np.float64)), heat(teacher.astype(np.float64))
    m = (p + q) / 2
    js = 0.5 * (p * np.log(p / m)).sum(axis=(2, 3)) + 0.5 * (q * np.log(q / m)).sum(axis=(2, 3))
    return float(np.linalg.norm(coords(p) - coords(q), axis=-1).mean()), float(js.mean())


def test_qat_s_loss_is_the_distance_plus_the_js_divergence_over_each_image_in_a_seeded_order_per_epoch():
    graph, fix, images = _two_convs_qat()
    qat = QuantNet(graph, fix).set_mode("qat")
    parts = []
    with torch.no_grad():
        for x in images:
            student, teacher = (net(torch.from_numpy(x)).numpy() for net in (qat, QuantNet(graph)))
            parts.append(_distillation_loss(student, teacher))
    assert all(min(d, js) > 3e-3 * (d + js) for d, js in parts)  # neither term negligible
    per_image = [d + js for d, js in parts]
    assert len(set(np.round(per_image, 6))) == 3
    # learning rates of 0: each step's loss is its image's; epoch e visits default_rng(seed + e)'s order
    _, new_fix, losses = qat_finetune(graph, fix, images, epochs=2, lr_weights=0.0, lr_thresholds=0.0, seed=4)
    orders = [[int(i) for i in np.random.default_rng(4 + e).permutation(3)] for e in (0, 1)]
    assert orders[0] != orders[1]
    assert losses == pytest.approx([per_image[i] for i in orders[0] + orders[1]], rel=1e-4)  # float32
    assert new_fix.activations == fix.activations and new_fix.weights == fix.weights
    # max_steps stops at that many steps, across epochs
    _, _, four = qat_finetune(graph, fix, images, epochs=2, lr_weights=0.0, lr_thresholds=0.0, seed=4, max_steps=4)
    assert four == losses[:4]


def _moves(new: FixPoints, old: FixPoints) -> list[int]:
    """How far each position of `old` moved in `new`."""
    tables = zip((new.activations, new.weights, new.biases), (old.activations, old.weights, old.biases))
    return [new_t[k] - old_t[k] for new_t, old_t in tables for k in old_t]


def test_qat_trains_weights_and_biases_at_lr_weights_and_the_thresholds_at_lr_thresholds(monkeypatch):
    import dpupose.quant.qat

    graph, fix, images = _two_convs_qat()
    c1, logits = graph.convs()

    def moved(new_graph):
        new_c1, new_logits = new_graph.convs()
        return (
            np.abs(new_c1.weight - c1.weight),
            np.abs(new_c1.bias - c1.bias),
            np.abs(new_logits.weight - logits.weight),
        )

    # Adam's first step moves every parameter with a gradient by its learning rate (g / (|g| + 1e-8))
    for lr in (1e-3, None):  # None: the default, 1e-5 (docs/quantization.md)
        kwargs = {} if lr is None else {"lr_weights": lr}
        new_graph, new_fix, _ = qat_finetune(graph, fix, images[:1], epochs=1, lr_thresholds=0.0, **kwargs)
        lr = lr or 1e-5
        for d in moved(new_graph):
            assert d.max() == pytest.approx(lr, abs=2e-7) and d.max() <= lr + 2e-7  # float32 weights near 1
        assert (new_fix.activations, new_fix.weights, new_fix.biases) == (fix.activations, fix.weights, fix.biases)
    # the thresholds alone: a log2 threshold starts mid-interval (6.5 - fix point) and moves 3 or stays, so each
    # position the training learned (before the DPU's constraints, left out here) moves by 3 or not at all
    learned = []
    monkeypatch.setattr(dpupose.quant.qat, "apply_constraints", lambda g, f: (learned.append(f) or f, []))
    new_graph, _, _ = qat_finetune(graph, fix, images[:1], epochs=1, lr_weights=0.0, lr_thresholds=3.0)
    assert all(d.max() == 0 for d in moved(new_graph))
    (got,) = learned
    assert set(_moves(got, fix)) <= {-3, 0, 3} and set(_moves(got, fix)) != {0}
    # the default threshold rate, 1e-2 (docs/quantization.md): 60 steps move a threshold by about 0.6 at most, so a
    # position by 1 at most, and some (their gradients of one sign) by 1; at 1e-3 none would leave its interval
    learned.clear()
    qat_finetune(graph, fix, images[:1] * 60, epochs=1, lr_weights=0.0)
    assert set(_moves(learned[0], fix)) <= {-1, 0, 1} and set(_moves(learned[0], fix)) != {0}


def test_qat_s_steps_each_start_from_their_own_gradients():
    # a second implementation of three steps of the weights alone (the thresholds at a rate of 0 stay)
    from dpupose.model.dsnt import dsnt, flat_softmax
    from dpupose.model.losses import euclidean_losses, js_divergence

    graph, fix, images = _two_convs_qat()
    new_graph, _, _ = qat_finetune(graph, fix, images, epochs=1, lr_weights=1e-2, lr_thresholds=0.0, seed=2)
    student, teacher = QuantNet(graph, fix).set_mode("qat"), QuantNet(graph)
    opt = torch.optim.Adam([*student.weights.parameters(), *student.biases.parameters()], lr=1e-2)
    for i in np.random.default_rng(2).permutation(3):
        x = torch.from_numpy(images[i])
        with torch.no_grad():
            target = flat_softmax(teacher(x))
        heat = flat_softmax(student(x))
        loss = euclidean_losses(dsnt(heat), dsnt(target)).mean() + js_divergence(heat, target).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    for op, want in zip(new_graph.convs(), student.to_graph().convs(), strict=True):
        np.testing.assert_array_equal(op.weight, want.weight)
        np.testing.assert_array_equal(op.bias, want.bias)
    assert not np.array_equal(new_graph.convs()[0].weight, graph.convs()[0].weight)
