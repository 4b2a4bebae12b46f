"""The partitioner on small hand-built QDQ graphs: device assignment and reasons, subgraph files, plan round
trip, --cpu-from, refusal of float models, and split-vs-unsplit agreement through the runtime."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from split_models import (
    FP,
    S,
    build,
    conv_heatmaps_model,
    conv_limit_model,
    dpu_heatmaps_model,
    extra_output_model,
    float_model,
    global_pool_model,
    image_twice_model,
    op_model,
    qoperator_model,
    read_heatmaps_model,
    save,
    two_readers_model,
    two_scales_model,
)

from dpupose.cli import main
from dpupose.dpu.config import load_config
from dpupose.errors import ModelFileError, UsageError
from dpupose.runtime.backends import RunnerFactory
from dpupose.runtime.executor import SplitExecutor, as_float_nchw
from dpupose.runtime.qdq_graph import EMULATED
from dpupose.split.assign import Assignment, assign
from dpupose.split.graph import analyze, load_onnx
from dpupose.split.partition import SplitOptions, split_model
from dpupose.split.plan import load_plan, save_plan

CONFIG = "u96v2-b1600-pynq"


def _split(tmp_path, middle: str, **kw):
    model = save(middle, tmp_path / f"{middle}.onnx")
    return model, split_model(SplitOptions(model, CONFIG, tmp_path / f"plan-{middle}", **kw))


def _devices(plan) -> list[str]:
    return [sg.device for sg in plan.subgraphs]


def _rows(result) -> dict[str, dict]:
    return {r["node"]: r for r in result.assignment}


def test_unsupported_op_in_the_middle_gives_dpu_cpu_dpu(tmp_path):
    _, result = _split(tmp_path, "sigmoid")
    plan = result.plan
    assert _devices(plan) == ["dpu", "cpu", "dpu", "cpu"]
    assert [sg.name for sg in plan.subgraphs] == ["dpu0", "cpu0", "dpu1", "cpu1"]
    rows = _rows(result)
    assert rows["mid/sigmoid"]["device"] == "cpu" and "Sigmoid is not a DPU operator" in rows["mid/sigmoid"]["reason"]
    assert rows["head/softmax"]["device"] == "cpu" and "no softmax engine" in rows["head/softmax"]["reason"]
    assert {rows[n]["device"] for n in ("conv1", "conv2", "conv3")} == {"dpu"}
    assert "Sigmoid" in plan.subgraphs[1].reason
    # Boundaries: DPU subgraphs start with float entering QuantizeLinear and end at DequantizeLinear.
    dpu0, cpu0, dpu1, cpu1 = plan.subgraphs
    assert [t.name for t in dpu0.inputs] == ["image"] and [t.name for t in dpu0.outputs] == ["c1"]
    assert [t.name for t in cpu0.inputs] == ["c1"] and [t.name for t in cpu0.outputs] == ["mid_float"]
    assert [t.name for t in dpu1.inputs] == ["mid_float"] and [t.name for t in dpu1.outputs] == ["logits"]
    assert {t.name for t in cpu1.outputs} == {"coords", "heatmaps"}
    assert dpu0.inputs[0].shape == (1, S, S, 3) and dpu0.inputs[0].layout == "NHWC"
    assert (dpu0.inputs[0].fix_point, dpu0.outputs[0].fix_point) == (FP["image"], FP["c1"])
    assert (dpu1.inputs[0].fix_point, dpu1.outputs[0].fix_point) == (FP["mid"], FP["logits"])
    assert cpu0.inputs[0].dtype == "float32" and cpu0.inputs[0].shape == (1, 8, S // 2, S // 2)
    for sg in plan.subgraphs:
        m = onnx.load(str(plan.path(sg.file)))
        onnx.checker.check_model(m)
        assert [i.name for i in m.graph.input] == [t.name for t in sg.inputs]
        assert [o.name for o in m.graph.output] == [t.name for t in sg.outputs]
        if sg.is_dpu:
            consumers = {t: [n.op_type for n in m.graph.node if t in n.input] for t in (i.name for i in m.graph.input)}
            assert all(ops == ["QuantizeLinear"] for ops in consumers.values()), consumers
            producers = {n.output[0]: n.op_type for n in m.graph.node}
            assert all(producers[o.name] == "DequantizeLinear" for o in m.graph.output)
    assert plan.fingerprint == "0x101000016010404" and plan.dpu_config == CONFIG
    assert plan.input.shape == (1, 3, S, S) and (plan.outputs.coords, plan.outputs.heatmaps) == ("coords", "heatmaps")


def test_leaky_relu_slope_decides_the_device(tmp_path):
    _, wrong = _split(tmp_path, "leaky")
    assert _devices(wrong.plan) == ["dpu", "cpu", "dpu", "cpu"]
    rows = _rows(wrong)
    assert rows["conv2"]["device"] == "cpu" and "slope 0.2" in rows["conv2"]["reason"]
    assert "26/256" in wrong.plan.subgraphs[1].reason
    _, right = _split(tmp_path, "leaky_ok")
    assert _devices(right.plan) == ["dpu", "cpu"]
    assert _rows(right)["conv2"]["device"] == "dpu"


def _unsplit_session(middle: str, optimize: bool = True) -> ort.InferenceSession:
    """The unsplit model in ONNX Runtime, with the logits exposed as an extra output. optimize=False: no
    graph optimizations, so every Q/DQ pair rounds where the graph says (ONNX Runtime otherwise folds a
    DequantizeLinear -> QuantizeLinear requantization into one QuantizeLinear, which skips a rounding)."""
    model = build(middle)
    model.graph.output.append(onnx.helper.ValueInfoProto(name="logits"))
    opts = ort.SessionOptions()
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _assert_cpu_backend_matches_unsplit(model: Path, plan) -> None:
    """The plan on the cpu backend gives the unsplit model's coords and heatmaps (ONNX Runtime) for one image."""
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    ex = SplitExecutor(plan, RunnerFactory(plan, "cpu").create_all())
    x = np.random.default_rng(1).normal(0, 1, (1, 3, S, S)).astype(np.float32)
    coords, heatmaps = sess.run(["coords", "heatmaps"], {"image": x})
    out = ex.infer_tensor(x)
    np.testing.assert_allclose(out["heatmaps"], heatmaps, atol=1e-6)
    np.testing.assert_allclose(out["coords"], coords, atol=1e-6)
    ex.close()


def test_only_the_subgraph_that_makes_a_tensor_lists_it_as_an_output(tmp_path):
    """The heatmaps' Q/DQ pair, made on the CPU, is copied into the DPU subgraph that reads them (so it quantizes
    its own input) and kept in cpu0 (a model output): both hold the DequantizeLinear, but only cpu0, which
    makes the heatmaps, hands them out; the plan's heatmaps are cpu0's float result."""
    model = read_heatmaps_model(tmp_path / "m.onnx")
    result = split_model(SplitOptions(model, CONFIG, tmp_path / "plan"))
    plan = load_plan(result.folder)
    assert [(sg.name, [t.name for t in sg.inputs], [t.name for t in sg.outputs]) for sg in plan.subgraphs] == [
        ("dpu0", ["image"], ["logits"]),
        ("cpu0", ["logits"], ["heatmaps_float", "heatmaps"]),
        ("dpu1", ["heatmaps_float"], ["pooled"]),
        ("cpu1", ["pooled"], ["coords"]),
    ]
    assert plan.subgraphs[2].inputs[0].fix_point == 7  # the heatmaps' pair's scale, 2**-7
    dequantized = [
        sg.name
        for sg in plan.subgraphs
        if any(n.output[0] == "heatmaps" for n in onnx.load(str(plan.path(sg.file))).graph.node)
    ]
    assert dequantized == ["cpu0", "dpu1"]
    # Run: the plan's heatmaps are cpu0's float32 NCHW tensor, and the cpu backend gives the unsplit model's
    # numbers.
    ex = SplitExecutor(plan, RunnerFactory(plan, "cpu").create_all())
    env = {plan.input.name: (np.zeros((1, 3, S, S), np.float32), ex.image_info)}
    for i in range(len(plan.subgraphs)):
        ex.run_subgraph(i, env)
    assert env["heatmaps"][1] == next(i for i in ex.runners["cpu0"].outputs if i.name == "heatmaps")
    ex.close()
    _assert_cpu_backend_matches_unsplit(model, plan)


def test_a_float_tensor_quantized_at_two_scales_enters_each_dpu_subgraph_at_its_own(tmp_path):
    """mid_float, made on the CPU, has two Q/DQ pairs (2**-6 for conv2, 2**-7 for the Add): each is copied into
    the DPU subgraph that reads it, and that subgraph's boundary fix point is its own pair's, not both."""
    model = two_scales_model(tmp_path / "m.onnx")
    result = split_model(SplitOptions(model, CONFIG, tmp_path / "plan"))
    plan = load_plan(result.folder)
    assert _devices(plan) == ["dpu", "cpu", "dpu", "cpu", "dpu", "cpu"]
    _, _, dpu1, _, dpu2, _ = plan.subgraphs
    assert [(t.name, t.fix_point) for t in dpu1.inputs] == [("mid_float", 6)]
    assert [(t.name, t.fix_point) for t in dpu2.inputs] == [("gate_float", 7), ("mid_float", 7)]
    for sg, fp in ((dpu1, 6), (dpu2, 7)):
        m = onnx.load(str(plan.path(sg.file)))
        (q,) = [n for n in m.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "mid_float"]
        scale = next(t for t in m.graph.initializer if t.name == q.input[1])
        assert onnx.numpy_helper.to_array(scale) == np.float32(2.0**-fp)
    # The emulator reads each file's own fix point, the plan's; the cpu backend gives the unsplit model's numbers.
    emu = RunnerFactory(plan, "emulate").create_all()
    for sg in (dpu1, dpu2):
        assert {i.name: i.fix_point for i in emu[sg.name].inputs} == {t.name: t.fix_point for t in sg.inputs}
    for runner in emu.values():
        runner.close()
    _assert_cpu_backend_matches_unsplit(model, plan)


def test_dpu_subgraph_reading_another_dpu_subgraph_gets_an_exact_boundary(tmp_path):
    _, result = _split(tmp_path, "skip")
    plan = result.plan
    assert _devices(plan) == ["dpu", "cpu", "dpu", "cpu"]
    dpu0, _, dpu1, _ = plan.subgraphs
    assert [t.name for t in dpu0.outputs] == ["c1"]
    assert {t.name: t.fix_point for t in dpu1.inputs} == {"c1": FP["c1"], "mid_float": FP["mid"]}
    m = onnx.load(str(plan.path(dpu1.file)))
    q = [n for n in m.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "c1"]
    assert len(q) == 1  # the boundary Q with c1's own scale
    scale = next(t for t in m.graph.initializer if t.name == q[0].input[1])
    assert onnx.numpy_helper.to_array(scale) == np.float32(2.0 ** -FP["c1"])


@pytest.mark.parametrize("batch", [1, "batch"])
@pytest.mark.parametrize("side", [16, 17, 40])
def test_a_global_average_pool_the_rules_put_on_the_dpu_is_emulated(tmp_path, side, batch):
    # the operator rules take a global pool of H and W up to 256 each; the emulator averaged up to 256 pixels, so
    # 17 x 17 was split with a warning and its plan refused by emulate: it now averages any window the rules take,
    # with the DPU's reciprocal (a symbolic batch, `dpupose quantize`'s image, leaves the map's shape known)
    from dpupose.quant.torch_ref import TorchQdqReference
    from dpupose.runtime.emulator import EmulatorRunner

    path = tmp_path / "gap.onnx"
    onnx.save(global_pool_model(side, batch), path)
    result = split_model(SplitOptions(path, CONFIG, tmp_path / "plan"))
    assert _rows(result)["mid"]["device"] == "dpu"
    assert _devices(result.plan) == ["dpu", "cpu"]
    assert result.warnings == []
    RunnerFactory(result.plan, "emulate").create_all()
    dpu0 = result.plan.path(result.plan.subgraphs[0].file)
    x = np.random.default_rng(side).integers(-128, 128, (1, 2 * side, 2 * side, 3)).astype(np.int8)
    layers = EmulatorRunner(dpu0).trace({"image": x})
    floats = TorchQdqReference(dpu0).trace({"image": x.transpose(0, 3, 1, 2) * 2.0 ** -FP["image"]})
    np.testing.assert_array_equal(layers["mid_q_int8"], floats["mid_q_int8"])


@pytest.mark.parametrize("case", ["gemm", "gemm_bias", "matmul"])
def test_a_fully_connected_layer_split_onto_the_dpu_runs_on_the_emulator(tmp_path, capsys, case):
    # the operator rules put c1's Reshape (with its own Q/DQ) and a Gemm / MatMul by a constant weight on the DPU,
    # and the emulator refused the plan ("does not run Reshape"; split warned, use --backend cpu): it now runs
    # them with the DPU's arithmetic, the values in ONNX's NCHW flatten order
    from dpupose.quant.torch_ref import TorchQdqReference
    from dpupose.runtime.emulator import EmulatorRunner

    path = tmp_path / "m.onnx"
    onnx.save(op_model(case), path)
    result = split_model(SplitOptions(path, CONFIG, tmp_path / "plan"))
    plan = result.plan
    assert _rows(result)["mid"]["device"] == "dpu" and _rows(result)["mid/flatten"]["device"] == "dpu"
    assert _devices(plan) == ["dpu", "cpu"] and result.warnings == []
    dpu0 = plan.path(plan.subgraphs[0].file)
    emu, fast, ref = EmulatorRunner(dpu0), EmulatorRunner(dpu0, exact=False), TorchQdqReference(dpu0)
    assert [(o.name, o.shape) for o in emu.outputs] == [("logits_flat", (1, 256))]
    rng = np.random.default_rng(5)
    for _ in range(4):  # the float64 interpreter and ONNX Runtime with the DPU's ties, layer by layer
        x = {"image": rng.integers(-128, 128, (1, S, S, 3)).astype(np.int8)}
        layers = emu.trace(x)
        floats = ref.trace({"image": x["image"].transpose(0, 3, 1, 2) * 2.0 ** -FP["image"]})
        assert {"flat_in_int8", "logits_flat_int8"} <= set(layers)
        for name, y in layers.items():
            np.testing.assert_array_equal(y, floats[name], err_msg=name)
        np.testing.assert_array_equal(fast.run(x)["logits_flat"], layers["logits_flat_int8"])
    # deploy-check against the torch reference runs its two images one at a time, as the emulator: the Reshape
    # [1, -1] flattens each image's values (the whole batch at once made a (1, 1024) row for a 512-input layer)
    assert main(["deploy-check", str(dpu0), "--against", "torch", "--num", "2"]) == 0
    assert "all 4 layers agree with torch within 0 LSB" in capsys.readouterr().out
    image = rng.normal(0, 1, (1, 3, S, S)).astype(np.float32)
    emulated = SplitExecutor(plan, RunnerFactory(plan, "emulate").create_all()).infer_tensor(image)["coords"]
    on_cpu = SplitExecutor(plan, RunnerFactory(plan, "cpu").create_all()).infer_tensor(image)["coords"]
    np.testing.assert_allclose(emulated, on_cpu, atol=0.05)


@pytest.mark.parametrize(
    ("case", "why"),
    [
        ("gemm_alpha", "Gemm with alpha 0.5 and beta 1: XIR's fully connected layer (inner-product, matmul) has no"),
        ("gemm_beta", "Gemm with alpha 1 and beta 2: XIR's fully connected layer (inner-product, matmul) has no"),
    ],
)
def test_a_gemm_with_alpha_or_beta_runs_on_the_cpu(tmp_path, case, why):
    # the operator rules put a Gemm with alpha or beta other than 1 on the DPU, whose inner product has neither
    # (no Xilinx source folds them when compiling), and the emulator refused the plan (split warned to use --backend
    # cpu): the rules now leave it to the CPU with the emulator's own reason, and the plan runs on emulate, the
    # Gemm's scale applied by ONNX Runtime
    path = tmp_path / "m.onnx"
    onnx.save(op_model(case), path)
    result = split_model(SplitOptions(path, CONFIG, tmp_path / "plan"))
    rows = _rows(result)
    assert (rows["mid"]["device"], rows["mid/flatten"]["device"]) == ("cpu", "dpu")
    assert rows["mid"]["reason"].startswith(why)
    assert "fold alpha into the weight and beta into the bias before quantizing" in rows["mid"]["reason"]
    assert _devices(result.plan) == ["dpu", "cpu"] and result.warnings == []
    plan = result.plan
    image = np.random.default_rng(3).normal(0, 1, (1, 3, S, S)).astype(np.float32)
    emulated = SplitExecutor(plan, RunnerFactory(plan, "emulate").create_all()).infer_tensor(image)["coords"]
    on_cpu = SplitExecutor(plan, RunnerFactory(plan, "cpu").create_all()).infer_tensor(image)["coords"]
    np.testing.assert_allclose(emulated, on_cpu, atol=0.05)


@pytest.mark.parametrize(("case", "shape"), [("gemm_transA", [512, 1]), ("gemm_bias_rows", [8, 64])])
def test_a_reshape_that_moves_the_batch_axis_runs_on_the_cpu(tmp_path, case, shape):
    # the operator rules put c1's Reshape to (512, 1) (or (8, 64)) on the DPU as layout only, and the emulator
    # refused the plan (split warned: a reshape of one image of [1, 8, 8, 8] to that shape, use --backend cpu);
    # the rules now leave it to the CPU with the emulator's check, so the split warns of nothing and the plan
    # runs on emulate
    path = tmp_path / "m.onnx"
    onnx.save(op_model(case), path)
    result = split_model(SplitOptions(path, CONFIG, tmp_path / "plan"))
    rows = _rows(result)
    assert rows["mid/flatten"]["device"] == "cpu" and rows["mid"]["device"] == "cpu"
    assert rows["mid/flatten"]["reason"] == (
        f"Reshape of [1, 8, 8, 8] to {shape} (batch 1) moves the batch axis from the front: an image's values would "
        "not be its own, and the DPU runs a layout op on each image"
    )
    assert _devices(result.plan) == ["dpu", "cpu"] and result.warnings == []
    plan = result.plan
    assert [(t.name, t.shape) for t in plan.subgraphs[0].outputs] == [("c1", (1, 8, 8, 8))]
    image = np.random.default_rng(4).normal(0, 1, (1, 3, S, S)).astype(np.float32)
    emulated = SplitExecutor(plan, RunnerFactory(plan, "emulate").create_all()).infer_tensor(image)["coords"]
    on_cpu = SplitExecutor(plan, RunnerFactory(plan, "cpu").create_all()).infer_tensor(image)["coords"]
    np.testing.assert_allclose(emulated, on_cpu, atol=0.05)


@pytest.mark.parametrize(
    ("case", "shape", "reshape"), [("gemm_rows", [8, 64], "cpu"), ("matmul_rows", [1, 8, 64], "dpu")]
)
def test_a_fully_connected_layer_of_several_rows_of_one_image_runs_on_the_cpu(tmp_path, case, shape, reshape):
    # the operator rules put a Gemm of c1 reshaped (on the CPU) to (8, 64) on the DPU, and the emulator ran its 8
    # rows as 8 images; no Xilinx source shows the DPU doing so (XIR's inner-product flattens each image to one
    # vector), so the rules leave a Gemm / MatMul of more than one row per image to the CPU, with the emulator's
    # own check (dpu_ops.fc_rows_refusal): the split warns of nothing and the plan runs on emulate as on cpu
    path = tmp_path / "m.onnx"
    onnx.save(op_model(case), path)
    result = split_model(SplitOptions(path, CONFIG, tmp_path / "plan"))
    rows = _rows(result)
    assert (rows["mid"]["device"], rows["mid/flatten"]["device"]) == ("cpu", reshape)
    op = "Gemm" if case.startswith("gemm") else "MatMul"
    assert rows["mid"]["reason"] == (
        f"{op} of an input of {shape} at batch 1 (8 rows of one image): XIR's fully connected layer (inner-product) "
        "takes each image as one vector"
    )
    assert _devices(result.plan) == ["dpu", "cpu"] and result.warnings == []
    plan = result.plan
    image = np.random.default_rng(5).normal(0, 1, (1, 3, S, S)).astype(np.float32)
    emulated = SplitExecutor(plan, RunnerFactory(plan, "emulate").create_all()).infer_tensor(image)["coords"]
    on_cpu = SplitExecutor(plan, RunnerFactory(plan, "cpu").create_all()).infer_tensor(image)["coords"]
    np.testing.assert_allclose(emulated, on_cpu, atol=0.05)


def test_requantization_stays_on_the_dpu(tmp_path):
    _, result = _split(tmp_path, "requant")
    assert _devices(result.plan) == ["dpu", "cpu"]
    assert _rows(result)["rq/quantize"] == {
        "node": "rq/quantize", "op": "Requantize", "device": "dpu", "reason": "requantize (change of fix point)"
    }  # fmt: skip
    # in graph order: the requantization (a unit without a node of its own) between conv1 and conv2
    assert [r["node"] for r in result.assignment] == [
        "conv1", "rq/quantize", "conv2", "conv3", "head/flatten", "head/softmax", "head/heatmaps", "head/dsnt"
    ]  # fmt: skip


def test_dpu_ops_the_emulator_lacks_are_split_with_a_warning(tmp_path):
    model, result = _split(tmp_path, "pool_ceil")
    assert _devices(result.plan) == ["dpu", "cpu"]
    assert _rows(result)["mid/pool"]["device"] == "dpu"  # a max pool: a DPU op
    assert len(result.warnings) == 1 and "cannot run on the emulator" in result.warnings[0]
    assert "ceil_mode is not emulated" in result.warnings[0]
    assert result.plan.metadata["warnings"] == result.warnings
    # The plan is sound: the emulate backend says to run it with cpu (not to copy or re-split it), and cpu runs it.
    # It names both ways to choose cpu: the notebook's PoseSession shares the message, and has no --backend.
    cpu = r'run this plan with the cpu backend \(dpupose run --backend cpu; backend="cpu" in PoseSession\)'
    with pytest.raises(ModelFileError, match=rf"not on the emulator.*MaxPool .*{cpu}") as err:
        RunnerFactory(result.plan, "emulate").create_all()
    assert "re-split" not in str(err.value) and "copy the plan" not in str(err.value)
    x = np.random.default_rng(3).normal(0, 1, (1, 3, S, S)).astype(np.float32)
    whole = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(["coords"], {"image": x})[0]
    ex = SplitExecutor(result.plan, RunnerFactory(result.plan, "cpu").create_all())
    np.testing.assert_allclose(ex.infer_tensor(x)["coords"], whole, atol=1e-6)
    ex.close()


def test_heatmaps_straight_out_of_a_conv_come_from_the_dpu_and_run(tmp_path):
    # the model's heatmaps output is the last conv's DequantizeLinear output (no Reshape after it): the conv
    # stays on the DPU, whose subgraph hands the output over as int8 NHWC at its fix point, to the plan's
    # outputs and to the CPU subgraph that computes the coords from it; the runtime dequantizes it
    path = conv_heatmaps_model(tmp_path / "m.onnx")
    result = split_model(SplitOptions(path, CONFIG, tmp_path / "plan"))
    assert {r["device"] for r in result.assignment if r["op"] == "Conv"} == {"dpu"}
    plan = result.plan
    assert _devices(plan) == ["dpu", "cpu"] and plan.version == 1
    dpu0, cpu0 = plan.subgraphs
    out = dpu0.outputs[0]
    nhwc = (1, S // 4, S // 4, 16)
    assert (out.name, out.shape, out.layout, out.dtype, out.fix_point) == ("logits", nhwc, "NHWC", "int8", FP["logits"])
    assert (plan.outputs.coords, plan.outputs.heatmaps) == ("coords", "logits")
    assert [(t.name, t.shape, t.dtype) for t in cpu0.inputs] == [("logits", (1, 16, S // 4, S // 4), "float32")]
    assert [t.name for t in cpu0.outputs] == ["coords"]
    x = np.random.default_rng(3).normal(0, 1, (1, 3, S, S)).astype(np.float32)
    whole = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(["logits", "coords"], {"image": x})
    out = SplitExecutor(plan, RunnerFactory(plan, "cpu").create_all()).infer_tensor(x)
    assert out["heatmaps"].dtype == np.float32 and out["heatmaps"].shape == (1, 16, S // 4, S // 4)
    np.testing.assert_allclose(out["heatmaps"], whole[0], atol=1e-6)
    np.testing.assert_allclose(out["coords"], whole[1], atol=1e-6)
    # emulated, the DPU's int8 NHWC logits are dequantized and put in NCHW: on ONNX Runtime's grid of
    # 2**-fix_point, at most 1 step off where the convs round their ties up and ONNX Runtime to even
    emulated = SplitExecutor(plan, RunnerFactory(plan, "emulate").create_all()).infer_tensor(x)
    steps = np.abs(emulated["heatmaps"] - whole[0]) / 2.0 ** -FP["logits"]
    assert emulated["heatmaps"].dtype == np.float32 and emulated["heatmaps"].shape == (1, 16, S // 4, S // 4)
    assert np.all(steps == np.round(steps)) and steps.max() <= 1 and (steps > 0).mean() < 0.1
    # the coords are the CPU subgraph's on those heatmaps: ONNX Runtime's soft-argmax of the emulated logits
    soft = SplitExecutor(plan, RunnerFactory(plan, "cpu").create_all()).runners["cpu0"]
    np.testing.assert_allclose(emulated["coords"], soft.run({"logits": emulated["heatmaps"]})["coords"], atol=1e-6)


def test_heatmaps_that_are_not_a_softmax_give_no_confidence_and_no_local_decoding(tmp_path):
    """The confidence and --decode local read heatmaps that each sum to 1. A model whose heatmaps output is a
    conv's logits splits with a warning saying so; its plan's confidence is NaN (null in the JSON) and local
    decoding and a minimum confidence are refused, decided from the graph: the conv on the DPU, or forced to
    the CPU (the walk reads the CPU subgraph's file, back through its Q/DQ pair). The softmaxed model has none
    of that."""
    from dpupose.runtime.app import RunOptions
    from dpupose.runtime.app import run as run_plan
    from dpupose.runtime.executor import check_decode
    from dpupose.runtime.frames import Frame

    image = (np.random.default_rng(4).random((40, 50, 3)) * 255).astype(np.uint8)
    path = conv_heatmaps_model(tmp_path / "m.onnx")
    fix = "export the softmaxed maps as the heatmaps output"
    cases = {
        "dpu": "the raw output 'logits' of a layer in DPU subgraph dpu0, not of a softmax",
        "cpu": "the output of Conv 'conv3' in cpu0, not of a softmax",
    }
    for where, why in cases.items():
        forced = {"cpu_from": "conv3"} if where == "cpu" else {}
        result = split_model(SplitOptions(path, CONFIG, tmp_path / f"plan-{where}", **forced))
        plan = result.plan
        assert _devices(plan)[-1] == "cpu" and plan.outputs.heatmaps == "logits"
        assert [w for w in result.warnings if "heatmaps" in w] == [
            "the heatmaps output 'logits' is the output of Conv 'conv3', not of a softmax: the keypoint confidence "
            "and --decode local read maps that each sum to 1, so `dpupose run` gives no confidence for this plan "
            "(null) and refuses --decode local and --min-confidence; " + fix + " (a Reshape of the soft-argmax's "
            "softmax to (N, 16, H, W)) and split the model again"
        ]
        with pytest.raises(UsageError, match=re.escape(f"heatmaps are {why}: use --decode dsnt")):
            check_decode(plan, "local")
        with pytest.raises(UsageError, match=re.escape(f"heatmaps are {why}: leave out --min-confidence, or {fix}")):
            check_decode(plan, "dsnt", 0.5)
        with pytest.raises(UsageError, match="a minimum confidence reads heatmaps that each sum to 1"):
            run_plan(RunOptions(plan=plan.root, source="x.png", backend="cpu", min_confidence=0.5))
        check_decode(plan, "dsnt", 0.0)
        ex = SplitExecutor(plan, RunnerFactory(plan, "cpu").create_all())
        got = ex.process(Frame(0, image, "x"))
        assert np.isnan(got.confidence).all() and np.isfinite(got.coords).all()
        ex.close()
    # Softmaxed heatmaps (a Reshape of the softmax, on the CPU): a confidence, local decoding, no warning.
    _, result = _split(tmp_path, "none")
    assert not [w for w in result.warnings if "heatmaps" in w]
    check_decode(result.plan, "local", 0.5)
    ex = SplitExecutor(result.plan, RunnerFactory(result.plan, "cpu").create_all(), "local")
    got = ex.process(Frame(0, image, "x"))
    heat = ex.infer(image)["heatmaps"][0]
    assert np.allclose(heat.sum(axis=(1, 2)), 1, atol=1e-5)
    peaks = [divmod(int(np.argmax(m)), m.shape[1]) for m in heat]  # the first maximum, row by row
    window = [heat[j, max(0, y - 1) : y + 2, max(0, x - 1) : x + 2].sum() for j, (y, x) in enumerate(peaks)]
    np.testing.assert_allclose(got.confidence, window, rtol=1e-5)
    ex.close()


@pytest.mark.parametrize(
    ("graph", "why"),
    [
        ({"h": ("Reshape", "r", ["sm", "shape"]), "sm": ("Softmax", "s", ["flat"])}, (None, None)),
        ({"h": ("Div", "d", ["e", "k"]), "e": ("Exp", "x", ["l"])}, ("the output of Div 'd', not of a softmax", None)),
        (
            {
                "h": ("DequantizeLinear", "dq", ["q", "s"]),
                "q": ("QuantizeLinear", "q", ["c", "s"]),
                "c": ("Conv", "conv", ["x", "w"]),
            },
            ("the output of Conv 'conv', not of a softmax", None),
        ),
        ({"h": ("Identity", "i", ["input"])}, (None, "input")),  # made before this graph: followed there
        ({"h": ("Identity", "i", ["h2"]), "h2": ("Identity", "j", ["h"])}, (None, "h")),  # a cycle ends
        ({"h": ("Identity", "i", [])}, ("the output of Identity 'i', not of a softmax", None)),  # no input to follow
    ],
)
def test_heatmaps_not_normalized_follows_the_values_to_their_op(graph, why):
    from dpupose.split.plan import heatmaps_not_normalized

    assert heatmaps_not_normalized("h", graph) == why


# h = Reshape(Softmax(f), k): f = Reshape(m, flat), m the (1, 16, 4, 4) maps a Reshape by constant m made
_FLAT = {
    "h": ("Reshape", "r", ["sm", "k"], {}),
    "f": ("Reshape", "r0", ["l", "flat"], {}),
    "l": ("Reshape", "rl", ["c", "m"], {}),
}


@pytest.mark.parametrize(
    ("graph", "opset", "why"),
    [  # a Softmax straight on the (N, J, H, W) maps: only over H and W together is each map normalized
        ({"h": ("Softmax", "s", ["l"], {"axis": 1})}, 17, "Softmax 's' over axis 1 (the joints), not over each map"),
        ({"h": ("Softmax", "s", ["l"], {})}, 17, "Softmax 's' over axis -1 (each map's rows), not over each map"),
        ({"h": ("Softmax", "s", ["l"], {"axis": 2})}, 0, "Softmax 's' over axis 2 (each map's columns), not over"),
        # before opset 13 the axes from `axis` on (default 1), flattened: axis 2 is H and W
        ({"h": ("Softmax", "s", ["l"], {})}, 11, "over axis 1 (all the maps of an image together), not over each"),
        ({"h": ("Softmax", "s", ["l"], {"axis": -1})}, 12, "over axis -1 (each map's rows), not over each map"),
        (
            {
                "h": ("DequantizeLinear", "dq", ["q", "s"], {}),
                "q": ("QuantizeLinear", "q", ["sm", "s"], {}),
                "sm": ("Softmax", "s", ["l"], {"axis": -2}),
            },
            11,
            None,
        ),
        # after a reshape of shapes not known here: taken as a flat softmax over H * W, as the soft-argmax's
        ({"h": ("Reshape", "r", ["sm", "k"], {}), "sm": ("Softmax", "s", ["f"], {"axis": 1})}, 17, None),
        # with the shapes known (constants: (1, 16, 16) and (1, 16, 4, 4)), what the axis covers of the maps
        ({**_FLAT, "sm": ("Softmax", "s", ["f"], {"axis": -1})}, 17, None),
        (
            {**_FLAT, "sm": ("Softmax", "s", ["f"], {"axis": 1})},
            17,
            "axis 1 of its input reshaped to 3 dimensions (the joints)",
        ),
        (
            {**_FLAT, "sm": ("Softmax", "s", ["f"], {"axis": 0})},
            17,
            "reshaped to 3 dimensions (the batch), not over each",
        ),
        (
            {**_FLAT, "sm": ("Softmax", "s", ["f"], {})},
            11,
            "reshaped to 3 dimensions (all the maps of an image together)",
        ),
        (
            {**_FLAT, "sm": ("Softmax", "s", ["f"], {"axis": 0})},
            11,
            "reshaped to 3 dimensions (all the maps of an image together)",
        ),
        ({**_FLAT, "sm": ("Softmax", "s", ["f"], {"axis": 2})}, 12, None),
        (
            {**_FLAT, "f": ("Reshape", "r0", ["l", "rows"], {}), "sm": ("Softmax", "s", ["f"], {})},
            17,
            "(each map's rows)",
        ),
        ({**_FLAT, "f": ("Reshape", "r0", ["l", "rows"], {}), "sm": ("Softmax", "s", ["f"], {"axis": 2})}, 11, None),
        # a -1 is what the other sizes leave; a 0 is the input's size there
        (
            {**_FLAT, "f": ("Reshape", "r0", ["l", "free"], {}), "sm": ("Softmax", "s", ["f"], {"axis": 1})},
            17,
            "joints",
        ),
        ({**_FLAT, "f": ("Reshape", "r0", ["l", "free"], {}), "sm": ("Softmax", "s", ["f"], {"axis": 2})}, 17, None),
        # through a Transpose the values are in another order: not known here
        (
            {
                **_FLAT,
                "h": ("Transpose", "t", ["h2"], {}),
                "h2": ("Reshape", "r", ["sm", "k"], {}),
                "sm": ("Softmax", "s", ["f"], {"axis": 1}),
            },
            17,
            None,
        ),
        # a Q/DQ pair between the softmax and a reshape of shapes not known here: the same (a quantized
        # soft-argmax's maps)
        (
            {
                "h": ("Reshape", "r", ["dq", "k"], {}),
                "dq": ("DequantizeLinear", "dq", ["q", "s"], {}),
                "q": ("QuantizeLinear", "q", ["sm", "s"], {}),
                "sm": ("Softmax", "s", ["f"], {"axis": 1}),
            },
            17,
            None,
        ),
        # opset 13 is the first of the one-axis Softmax: its default axis is -1
        ({"h": ("Softmax", "s", ["l"], {})}, 13, "Softmax 's' over axis -1 (each map's rows), not over each map"),
    ],
)
def test_a_softmax_on_the_maps_themselves_must_normalize_each_map(graph, opset, why):
    from dpupose.split.plan import heatmaps_not_normalized

    constants = {
        "flat": np.array([1, 16, 16], np.int64),
        "rows": np.array([1, 16, 4, 4], np.int64),
        "free": np.array([1, 16, -1], np.int64),
        "k": np.array([1, 16, 4, 4], np.int64),
        "m": np.array([1, 16, 4, 4], np.int64),
    }
    got, _ = heatmaps_not_normalized("h", graph, opset=opset, constants=constants)
    assert got == why if why is None else why in got


_EXP = {"e": ("Exp", "x", ["l"], {})}
# e through a Q/DQ pair: rounded, so not the tensor e itself
_QDQ_E = {"q": ("DequantizeLinear", "dq", ["qi", "k"], {}), "qi": ("QuantizeLinear", "qn", ["e", "k"], {})}
# Exp's values quantized once, a DequantizeLinear for the Div ('a') and one for the ReduceSum ('b', per case)
_PER_READER = {
    "h": ("Div", "d", ["a", "s"], {}),
    "s": ("ReduceSum", "rs", ["b", "hw"], {}),
    "a": ("DequantizeLinear", "dq", ["qi", "k"], {}),
    "qi": ("QuantizeLinear", "qn", ["e", "k"], {}),
    **_EXP,
}


@pytest.mark.parametrize(
    ("graph", "opset", "why"),
    [  # a Div by a ReduceSum of the (N, J, H, W) maps: only a sum over H and W alone, kept, is each map's own
        # before opset 13 the axes are an attribute
        ({"h": ("Div", "d", ["e", "s"], {}), "s": ("ReduceSum", "rs", ["e"], {"axes": [2, 3]}), **_EXP}, 11, None),
        ({"h": ("Div", "d", ["e", "s"], {}), "s": ("ReduceSum", "rs", ["e"], {"axes": [-1, -2]}), **_EXP}, 12, None),
        (
            {"h": ("Div", "d", ["e", "s"], {}), "s": ("ReduceSum", "rs", ["e"], {"axes": [1]}), **_EXP},
            11,
            "the output of Div 'd' by ReduceSum 'rs' over axes [1] (the joints), not over each map",
        ),
        (
            {"h": ("Div", "d", ["e", "s"], {}), "s": ("ReduceSum", "rs", ["e"], {"axes": [-1]}), **_EXP},
            11,
            "by ReduceSum 'rs' over axes [-1] (each map's rows), not over each map",
        ),
        (
            {"h": ("Div", "d", ["e", "s"], {}), "s": ("ReduceSum", "rs", ["e"], {}), **_EXP},
            12,
            "by ReduceSum 'rs' over axes all (the whole batch), not over each map",
        ),
        (
            {"h": ("Div", "d", ["e", "s"], {}), "s": ("ReduceSum", "rs", ["e"], {"axes": [1, 2, 3]}), **_EXP},
            11,
            "over axes [1, 2, 3] (all the maps of an image together), not over each map",
        ),
        (
            {"h": ("Div", "d", ["e", "s"], {}), "s": ("ReduceSum", "rs", ["e"], {"axes": [2, 3], "keepdims": 0})},
            11,
            "over axes [2, 3] with keepdims 0 (its sums do not line up with the maps), not over each map",
        ),
        # from opset 13 the axes are the second input, a constant; an attribute of that name is not read
        ({"h": ("Div", "d", ["e", "s"], {}), "s": ("ReduceSum", "rs", ["e", "hw"], {}), **_EXP}, 13, None),
        ({"h": ("Div", "d", ["e", "s"], {}), "s": ("ReduceSum", "rs", ["e", "hw"], {"keepdims": 1})}, 0, None),
        (
            {"h": ("Div", "d", ["e", "s"], {}), "s": ("ReduceSum", "rs", ["e", "j"], {"axes": [2, 3]}), **_EXP},
            17,
            "the output of Div 'd' by ReduceSum 'rs' over axes [1] (the joints), not over each map",
        ),
        (
            {"h": ("Div", "d", ["e", "s"], {}), "s": ("ReduceSum", "rs", ["e"], {"axes": [2, 3]}), **_EXP},
            18,
            "by ReduceSum 'rs' over axes all (the whole batch), not over each map",
        ),
        (
            {"h": ("Div", "d", ["e", "s"], {}), "s": ("ReduceSum", "rs", ["e", ""], {"noop_with_empty_axes": 1})},
            0,
            "by ReduceSum 'rs' over no axes (noop_with_empty_axes: it sums nothing), not over each map",
        ),
        (
            {"h": ("Div", "d", ["e", "s"], {}), "s": ("ReduceSum", "rs", ["e", "made"], {}), **_EXP},
            17,
            "by ReduceSum 'rs' over axes not known here (its input 'made' is not a constant), not over each map",
        ),
        # keepdims 0 and an Unsqueeze that gives back exactly the summed axes: the same sums as keepdims 1
        (
            {
                "h": ("Div", "d", ["e", "u"], {}),
                "u": ("Unsqueeze", "un", ["s"], {"axes": [-2, -1]}),
                "s": ("ReduceSum", "rs", ["e"], {"axes": [2, 3], "keepdims": 0}),
                **_EXP,
            },
            11,
            None,
        ),
        (
            {
                "h": ("Div", "d", ["e", "u"], {}),
                "u": ("Unsqueeze", "un", ["s", "hw"], {}),
                "s": ("ReduceSum", "rs", ["e", "hw"], {"keepdims": 0}),
                **_EXP,
            },
            13,
            None,
        ),
        (
            {
                "h": ("Div", "d", ["e", "u"], {}),
                "u": ("Unsqueeze", "un", ["s", "j"], {"axes": [2, 3]}),
                "s": ("ReduceSum", "rs", ["e", "hw"], {"keepdims": 0}),
                **_EXP,
            },
            17,
            "ReduceSum 'rs' over axes [-2, -1] with keepdims 0, then Unsqueeze 'un' at axes [1], not the summed ones",
        ),
        (
            {
                "h": ("Div", "d", ["e", "u"], {}),
                "u": ("Unsqueeze", "un", ["s", "made"], {}),
                "s": ("ReduceSum", "rs", ["e", "hw"], {"keepdims": 0}),
                **_EXP,
            },
            17,
            "keepdims 0, then Unsqueeze 'un' at axes not known here (its input 'made' is not a constant), not over",
        ),
        (
            {
                "h": ("Div", "d", ["e", "u"], {}),
                "u": ("Unsqueeze", "un", ["s", "hw"], {}),
                "s": ("ReduceSum", "rs", ["e", "hw"], {}),
                **_EXP,
            },
            17,
            "over axes [-2, -1] with keepdims 1, then Unsqueeze 'un' (more axes than maps), not over each map",
        ),
        # the sum must be of what the Div divides: the same tensor, or the same through Identity ops
        (
            {"h": ("Div", "d", ["e", "s"], {}), "s": ("ReduceSum", "rs", ["o", "hw"], {}), **_EXP},
            17,
            "the output of Div 'd' by ReduceSum 'rs' of another tensor ('o', where the Div divides 'e'), not over each",
        ),
        (
            {"h": ("Div", "d", ["e", "s"], {}), "s": ("ReduceSum", "rs", ["q", "hw"], {}), **_EXP, **_QDQ_E},
            17,
            "by ReduceSum 'rs' of another tensor ('q', where the Div divides 'e'), not over each map",
        ),
        (
            {
                "h": ("Div", "d", ["i", "s"], {}),
                "i": ("Identity", "id", ["e"], {}),
                "s": ("ReduceSum", "rs", ["i2", "hw"], {}),
                "i2": ("Identity", "id2", ["i3"], {}),
                "i3": ("Identity", "id3", ["e"], {}),
                **_EXP,
            },
            17,
            None,
        ),
        # a second DequantizeLinear of the same quantized tensor (a quantizer's Q/DQ pair per consumer): the same
        # values, when its scale and zero point are the same tensors or equal constants (an absent one is 0)
        ({**_PER_READER, "b": ("DequantizeLinear", "dq2", ["qi", "k"], {})}, 17, None),
        (
            {**_PER_READER, "b": ("Identity", "id", ["b2"], {}), "b2": ("DequantizeLinear", "dq2", ["qi", "k"], {})},
            17,
            None,
        ),
        ({**_PER_READER, "b": ("DequantizeLinear", "dq2", ["qi", "k2"], {})}, 17, None),
        ({**_PER_READER, "b": ("DequantizeLinear", "dq2", ["qi", "k", "z"], {})}, 17, None),
        (
            {
                **_PER_READER,
                "a": ("DequantizeLinear", "dq", ["qi", "k", "z"], {"axis": 1}),
                "b": ("DequantizeLinear", "dq2", ["qi", "k2", "z2"], {}),
            },
            17,
            None,
        ),
        # another Q, another scale or zero point, another axis, or a scale not known here: another tensor
        (
            {
                **_PER_READER,
                "b": ("DequantizeLinear", "dq2", ["qi2", "k"], {}),
                "qi2": ("QuantizeLinear", "qn2", ["e", "k"], {}),
            },
            17,
            "by ReduceSum 'rs' of another tensor ('b', where the Div divides 'a'), not over each map",
        ),
        ({**_PER_READER, "b": ("DequantizeLinear", "dq2", ["qi", "k3"], {})}, 17, "another tensor ('b', where"),
        ({**_PER_READER, "b": ("DequantizeLinear", "dq2", ["qi", "k64"], {})}, 17, "another tensor ('b', where"),
        ({**_PER_READER, "b": ("DequantizeLinear", "dq2", ["qi", "k", "z3"], {})}, 17, "another tensor ('b', where"),
        (
            {
                **_PER_READER,
                "a": ("DequantizeLinear", "dq", ["qi", "k", "z"], {}),
                "b": ("DequantizeLinear", "dq2", ["qi", "k", "zu"], {}),
            },
            17,
            "another tensor ('b', where",
        ),
        ({**_PER_READER, "b": ("DequantizeLinear", "dq2", ["qi", "k"], {"axis": 0})}, 17, "another tensor ('b', wh"),
        (
            {
                **_PER_READER,
                "a": ("DequantizeLinear", "dq", ["qi", "made"], {}),
                "b": ("DequantizeLinear", "dq2", ["qi", "made2"], {}),
            },
            17,
            "another tensor ('b', where",
        ),
        ({**_PER_READER, "b": ("QuantizeLinear", "qn2", ["e", "k"], {})}, 17, "another tensor ('b', where"),
        (  # after a reshape, a sum of another tensor is still not the maps' own
            {
                "h": ("Reshape", "r", ["d", "k"], {}),
                "d": ("Div", "d", ["e", "s"], {}),
                "s": ("ReduceSum", "rs", ["o", "j"], {}),
            },
            17,
            "by ReduceSum 'rs' of another tensor ('o', where the Div divides 'e'), not over each map",
        ),
        # through Q/DQ; after a reshape its axes are not known: a flat sum over H * W, as a flat softmax's
        (
            {
                "h": ("DequantizeLinear", "dq", ["q", "k"], {}),
                "q": ("QuantizeLinear", "q", ["d", "k"], {}),
                "d": ("Div", "d", ["e", "s"], {}),
                "s": ("ReduceSum", "rs", ["e", "hw"], {}),
            },
            17,
            None,
        ),
        (
            {
                "h": ("Reshape", "r", ["d", "k"], {}),
                "d": ("Div", "d", ["e", "s"], {}),
                "s": ("ReduceSum", "rs", ["e", "j"], {}),
            },
            17,
            None,
        ),
    ],
)
def test_a_div_by_a_reduce_sum_must_divide_each_map_by_its_own_sum(graph, opset, why):
    from dpupose.split.plan import heatmaps_not_normalized

    constants = {
        "hw": np.array([-2, -1], np.int64),
        "j": np.array([1], np.int64),
        "k": np.float32(0.01),
        "k2": np.array(0.01, np.float32),
        "k3": np.float32(0.02),
        "k64": np.float64(0.01),
        "z": np.int8(0),
        "z2": np.array(0, np.int8),
        "z3": np.int8(3),
        "zu": np.uint8(0),
    }
    got, _ = heatmaps_not_normalized("h", graph, opset=opset, constants=constants)
    assert got == why if why is None else why in got


def _sum_normalized_model(
    tmp_path,
    axes,
    opset: int,
    as_constant_node: bool = False,
    sum_of_double: bool = False,
    unsqueeze_axes: list[int] | None = None,
    per_reader: str | None = None,
) -> Path:
    """build("none") whose heatmaps are Exp(logits) / ReduceSum(Exp(logits), axes) (keepdims), the ReduceSum's
    axes an attribute at `opset` before 13 and from 13 an initializer or a Constant node; `sum_of_double`
    sums 2 * Exp(logits) instead (another tensor: each map then sums to 1/2); `unsqueeze_axes` sums with
    keepdims 0 and divides by an Unsqueeze of the sum at those axes (an attribute before opset 13, from 13 an
    initializer); `per_reader` quantizes Exp(logits) once (a QuantizeLinear) and dequantizes it twice, one
    DequantizeLinear for the Div and one for the ReduceSum, as a quantizer with a Q/DQ pair per consumer
    writes it ("same"); "other_q" reads the sum's from a second QuantizeLinear of Exp(logits), of another
    scale."""
    model = build("none")
    summed = "hm_double" if sum_of_double else "hm_exp"
    divided = "hm_exp"
    per = []
    if per_reader is not None:
        summed, divided = "hm_read_sum", "hm_read_div"
        model.graph.initializer.extend(
            [
                onnx.numpy_helper.from_array(np.array(0.125, np.float32), "hm_scale"),  # a power of two, the DPU's
                onnx.numpy_helper.from_array(np.array(0.25, np.float32), "hm_scale2"),
                onnx.numpy_helper.from_array(np.array(0, np.int8), "hm_zero"),
            ]
        )
        per = [
            onnx.helper.make_node("QuantizeLinear", ["hm_exp", "hm_scale", "hm_zero"], ["hm_q"], name="head/q"),
            onnx.helper.make_node("DequantizeLinear", ["hm_q", "hm_scale", "hm_zero"], [divided], name="head/dq"),
        ]
        if per_reader == "same":
            per.append(
                onnx.helper.make_node("DequantizeLinear", ["hm_q", "hm_scale", "hm_zero"], [summed], name="head/dq2")
            )
        else:
            per += [
                onnx.helper.make_node("QuantizeLinear", ["hm_exp", "hm_scale2", "hm_zero"], ["hm_q2"], name="head/q2"),
                onnx.helper.make_node("DequantizeLinear", ["hm_q2", "hm_scale2", "hm_zero"], [summed], name="head/dq2"),
            ]
    kept = {} if unsqueeze_axes is None else {"keepdims": 0}
    sums = "hm_sum" if unsqueeze_axes is None else "hm_sum0"
    model.graph.node.remove(next(n for n in model.graph.node if n.name == "head/heatmaps"))
    model.opset_import[0].version = opset
    if opset < 13:
        rs = onnx.helper.make_node("ReduceSum", [summed], [sums], name="head/sum", axes=axes, **kept)
    elif as_constant_node:
        const = onnx.numpy_helper.from_array(np.array(axes, np.int64), "hm_axes")
        model.graph.node.append(onnx.helper.make_node("Constant", [], ["hm_axes"], name="head/axes", value=const))
        rs = onnx.helper.make_node("ReduceSum", [summed, "hm_axes"], [sums], name="head/sum", **kept)
    else:
        model.graph.initializer.append(onnx.numpy_helper.from_array(np.array(axes, np.int64), "hm_axes"))
        rs = onnx.helper.make_node("ReduceSum", [summed, "hm_axes"], [sums], name="head/sum", **kept)
    double = []
    if sum_of_double:
        model.graph.initializer.append(onnx.numpy_helper.from_array(np.array(2, np.float32), "two"))
        double = [onnx.helper.make_node("Mul", ["hm_exp", "two"], [summed], name="head/double")]
    back = []
    if unsqueeze_axes is not None and opset < 13:
        back = [onnx.helper.make_node("Unsqueeze", [sums], ["hm_sum"], name="head/unsqueeze", axes=unsqueeze_axes)]
    elif unsqueeze_axes is not None:
        model.graph.initializer.append(onnx.numpy_helper.from_array(np.array(unsqueeze_axes, np.int64), "hm_back"))
        back = [onnx.helper.make_node("Unsqueeze", [sums, "hm_back"], ["hm_sum"], name="head/unsqueeze")]
    model.graph.node.extend(
        [
            onnx.helper.make_node("Exp", ["logits"], ["hm_exp"], name="head/exp"),
            *per,
            *double,
            rs,
            *back,
            onnx.helper.make_node("Div", [divided, "hm_sum"], ["heatmaps"], name="head/div"),
        ]
    )
    onnx.checker.check_model(model)
    onnx.save(model, tmp_path / "m.onnx")
    return tmp_path / "m.onnx"


@pytest.mark.parametrize(("opset", "as_constant_node"), [(11, False), (17, False), (17, True)])
def test_heatmaps_divided_by_a_sum_over_each_map_give_a_confidence(tmp_path, opset, as_constant_node):
    """Exp(logits) / ReduceSum over H and W: each map sums to 1, so the split gives no warning and run a
    confidence and --decode local, reading the sum's axes from the attribute (opset 11) or the constant
    (opset 17) in cpu0.onnx as the split read them from the model."""
    from dpupose.runtime.executor import check_decode, heatmaps_problem
    from dpupose.runtime.frames import Frame

    path = _sum_normalized_model(tmp_path, [2, 3] if opset < 13 else [-1, -2], opset, as_constant_node)
    result = split_model(SplitOptions(path, CONFIG, tmp_path / "plan"))
    assert not [w for w in result.warnings if "heatmaps" in w]
    assert heatmaps_problem(result.plan) is None
    check_decode(result.plan, "local", 0.5)
    image = (np.random.default_rng(4).random((40, 50, 3)) * 255).astype(np.uint8)
    ex = SplitExecutor(result.plan, RunnerFactory(result.plan, "cpu").create_all(), "local")
    assert np.allclose(ex.infer(image)["heatmaps"][0].sum(axis=(1, 2)), 1, atol=1e-5)  # what the check says
    assert np.isfinite(ex.process(Frame(0, image, "x")).confidence).all()
    ex.close()


@pytest.mark.parametrize(("opset", "as_constant_node"), [(11, False), (17, False), (17, True)])
def test_heatmaps_divided_by_a_sum_over_the_joints_give_no_confidence(tmp_path, opset, as_constant_node):
    """Exp(logits) / ReduceSum over the joints (axis 1): maps that do not each sum to 1. The split warns,
    naming the sum, and run reads the subgraph file the same way: no confidence, --decode local refused."""
    from dpupose.runtime.executor import check_decode, heatmaps_problem
    from dpupose.runtime.frames import Frame

    result = split_model(
        SplitOptions(_sum_normalized_model(tmp_path, [1], opset, as_constant_node), CONFIG, tmp_path / "p")
    )
    why = "the output of Div 'head/div' by ReduceSum 'head/sum' over axes [1] (the joints), not over each map"
    assert [w.split(":")[0] for w in result.warnings if "heatmaps" in w] == [f"the heatmaps output 'heatmaps' is {why}"]
    assert heatmaps_problem(result.plan) == why.replace("'head/div'", "'head/div' in cpu0")
    with pytest.raises(UsageError, match=re.escape("heatmaps are the output of Div 'head/div' in cpu0 by")):
        check_decode(result.plan, "local")
    image = (np.random.default_rng(4).random((40, 50, 3)) * 255).astype(np.uint8)
    ex = SplitExecutor(result.plan, RunnerFactory(result.plan, "cpu").create_all())
    assert not np.allclose(ex.infer(image)["heatmaps"][0].sum(axis=(1, 2)), 1, atol=1e-3)
    assert np.isnan(ex.process(Frame(0, image, "x")).confidence).all()
    ex.close()


@pytest.mark.parametrize("opset", [11, 17])
def test_heatmaps_divided_by_the_sum_of_another_tensor_give_no_confidence(tmp_path, opset):
    """Exp(logits) / ReduceSum(2 * Exp(logits)) over H and W: the sum is over each map, but of another tensor,
    so each map sums to 1/2. The split warns, naming the sum and what it sums, and run reads cpu0.onnx the
    same way: the same reason, no confidence, --decode local refused."""
    from dpupose.runtime.executor import check_decode, heatmaps_problem
    from dpupose.runtime.frames import Frame

    path = _sum_normalized_model(tmp_path, [2, 3], opset, sum_of_double=True)
    result = split_model(SplitOptions(path, CONFIG, tmp_path / "plan"))
    why = (
        "the output of Div 'head/div' by ReduceSum 'head/sum' of another tensor ('hm_double', where the Div "
        "divides 'hm_exp'), not over each map"
    )
    assert [w.split(": the keypoint")[0] for w in result.warnings if "heatmaps" in w] == [
        f"the heatmaps output 'heatmaps' is {why}"
    ]
    assert heatmaps_problem(result.plan) == why.replace("'head/div'", "'head/div' in cpu0")
    with pytest.raises(UsageError, match=re.escape("heatmaps are the output of Div 'head/div' in cpu0 by ReduceSum")):
        check_decode(result.plan, "local")
    image = (np.random.default_rng(4).random((40, 50, 3)) * 255).astype(np.uint8)
    ex = SplitExecutor(result.plan, RunnerFactory(result.plan, "cpu").create_all())
    np.testing.assert_allclose(ex.infer(image)["heatmaps"][0].sum(axis=(1, 2)), 0.5, atol=1e-5)  # not 1
    assert np.isnan(ex.process(Frame(0, image, "x")).confidence).all()
    ex.close()


@pytest.mark.parametrize("opset", [11, 17])
def test_a_sum_of_a_second_dequantize_of_the_maps_normalizes_each_map(tmp_path, opset):
    """Exp(logits) quantized once and dequantized twice, for the Div and for the ReduceSum (a quantizer's Q/DQ
    pair per consumer): both DequantizeLinear give the same values, so the sum is the maps' own. The split
    gives no warning and run a confidence and --decode local, each map summing to 1. A DequantizeLinear of
    a second QuantizeLinear (another scale, other rounding) is another tensor: warned of, --decode local
    refused."""
    from dpupose.runtime.executor import check_decode, heatmaps_problem
    from dpupose.runtime.frames import Frame

    image = (np.random.default_rng(4).random((40, 50, 3)) * 255).astype(np.uint8)
    path = _sum_normalized_model(tmp_path, [2, 3] if opset < 13 else [-1, -2], opset, per_reader="same")
    result = split_model(SplitOptions(path, CONFIG, tmp_path / "plan"))
    assert not [w for w in result.warnings if "heatmaps" in w]
    assert heatmaps_problem(result.plan) is None
    check_decode(result.plan, "local", 0.5)
    ex = SplitExecutor(result.plan, RunnerFactory(result.plan, "cpu").create_all(), "local")
    np.testing.assert_allclose(ex.infer(image)["heatmaps"][0].sum(axis=(1, 2)), 1, atol=1e-5)
    assert np.isfinite(ex.process(Frame(0, image, "x")).confidence).all()
    ex.close()

    other = tmp_path / "other"
    other.mkdir()
    path = _sum_normalized_model(other, [2, 3] if opset < 13 else [-1, -2], opset, per_reader="other_q")
    result = split_model(SplitOptions(path, CONFIG, other / "plan"))
    why = (
        "the output of Div 'head/div' by ReduceSum 'head/sum' of another tensor ('hm_read_sum', where the Div "
        "divides 'hm_read_div'), not over each map"
    )
    assert [w.split(": the keypoint")[0] for w in result.warnings if "heatmaps" in w] == [
        f"the heatmaps output 'heatmaps' is {why}"
    ]
    with pytest.raises(UsageError, match=re.escape("heatmaps are the output of Div 'head/div' in cpu0 by ReduceSum")):
        check_decode(result.plan, "local")


@pytest.mark.parametrize(("opset", "back"), [(11, [2, 3]), (12, [-1, -2]), (13, [3, 2]), (17, [-2, -1])])
def test_a_sum_without_its_axes_unsqueezed_back_normalizes_each_map(tmp_path, opset, back):
    """Exp(logits) / Unsqueeze(ReduceSum(Exp(logits), H and W, keepdims 0), H and W): the sums given their
    axes back are each map's own, as with keepdims 1. The Unsqueeze's axes are its attribute before opset 13
    and its second input from 13, read so by the split (no warning) and by run (a confidence, --decode
    local), and each map sums to 1."""
    from dpupose.runtime.executor import check_decode, heatmaps_problem
    from dpupose.runtime.frames import Frame

    path = _sum_normalized_model(tmp_path, [2, 3], opset, unsqueeze_axes=back)
    result = split_model(SplitOptions(path, CONFIG, tmp_path / "plan"))
    assert not [w for w in result.warnings if "heatmaps" in w]
    assert heatmaps_problem(result.plan) is None
    check_decode(result.plan, "local", 0.5)
    image = (np.random.default_rng(4).random((40, 50, 3)) * 255).astype(np.uint8)
    ex = SplitExecutor(result.plan, RunnerFactory(result.plan, "cpu").create_all(), "local")
    np.testing.assert_allclose(ex.infer(image)["heatmaps"][0].sum(axis=(1, 2)), 1, atol=1e-5)
    assert np.isfinite(ex.process(Frame(0, image, "x")).confidence).all()
    ex.close()


@pytest.mark.parametrize(("opset", "back"), [(11, [0, 1]), (17, [1, -1]), (17, [2])])
def test_a_sum_unsqueezed_at_other_axes_is_not_each_maps_own(tmp_path, opset, back):
    """The same sums given back other axes (or too few) do not line up with the maps. Such a Div cannot run
    on these (1, 16, 4, 4) maps (ONNX Runtime refuses it, and so the split), so the plan of the right model
    has its cpu0.onnx given those axes afterwards (the attribute at opset 11, the initializer at 17): run
    reads them there and refuses --decode local, naming them."""
    from dpupose.runtime.executor import check_decode, heatmaps_problem

    path = _sum_normalized_model(tmp_path, [2, 3], opset, unsqueeze_axes=[2, 3])
    plan = split_model(SplitOptions(path, CONFIG, tmp_path / "plan")).plan
    assert heatmaps_problem(plan) is None
    cpu0 = onnx.load(plan.path(plan.subgraphs[-1].file))
    (unsqueeze,) = [n for n in cpu0.graph.node if n.op_type == "Unsqueeze"]
    if opset < 13:
        unsqueeze.attribute[0].CopyFrom(onnx.helper.make_attribute("axes", back))
    else:
        (init,) = [t for t in cpu0.graph.initializer if t.name == unsqueeze.input[1]]
        init.CopyFrom(onnx.numpy_helper.from_array(np.array(back, np.int64), init.name))
    onnx.save(cpu0, plan.path(plan.subgraphs[-1].file))
    plan = dataclasses.replace(plan)  # as run reads it afresh: the check's answer is kept per plan object
    why = (
        "the output of Div 'head/div' in cpu0 by ReduceSum 'head/sum' over axes [2, 3] with keepdims 0, then "
        f"Unsqueeze 'head/unsqueeze' at axes {back}, not the summed ones (its sums do not line up with the maps), "
        "not over each map"
    )
    assert heatmaps_problem(plan) == why
    with pytest.raises(UsageError, match=re.escape(f"heatmaps are {why}: use --decode dsnt")):
        check_decode(plan, "local")


def _reshaped_softmax_model(
    tmp_path,
    axis: int,
    opset: int,
    computed: bool,
    joints: int | None = None,
    read: str = "logits",
    rest: bool = False,
) -> Path:
    """build("none"): heatmaps = Reshape(Softmax(Reshape(logits, (1, 16, 16)), axis), (1, 16, 4, 4)), the
    Softmax at `axis` and `opset`; `computed`: both shapes made from Shape(logits) as torch exports a
    reshape by the input's sizes (Gather, Mul, Unsqueeze, Concat), the model's own flat softmax; `joints`: the
    flat shape's second size that number instead of the one read (torch: x.view(b, 16, h * w)); `read`: the
    sizes read from Identity(logits) ("identity", a tensor made in the CPU subgraph) or from logits + 0
    ("add", one whose shape no op here gives) instead; `rest`: the flat shape's last size -1 (torch:
    x.view(b, 16, -1)) and the flat Reshape of that tensor read."""
    model = build("none")
    model.opset_import[0].version = opset
    nodes = list(model.graph.node)
    (softmax,) = [n for n in nodes if n.name == "head/softmax"]
    softmax.attribute[0].CopyFrom(onnx.helper.make_attribute("axis", axis))
    if computed:
        make = onnx.helper.make_node
        added = [make("Identity", ["logits"], ["logits_id"], name="head/id")] if read == "identity" else []
        if read == "add":
            model.graph.initializer.append(onnx.numpy_helper.from_array(np.array(0, np.float32), "nought"))
            added.append(make("Add", ["logits", "nought"], ["logits_id"], name="head/add"))
        added.append(make("Shape", ["logits_id" if added else "logits"], ["sizes"], name="head/shape"))
        for k in range(4):
            added.append(
                make("Constant", [], [f"at{k}"], name=f"head/at{k}", value=onnx.helper.make_tensor("v", 7, [], [k]))
            )
            added.append(make("Gather", ["sizes", f"at{k}"], [f"size{k}"], name=f"head/size{k}", axis=0))
        added.append(make("Mul", ["size2", "size3"], ["size4"], name="head/hw"))
        for k in range(5):
            if opset < 13:
                added.append(make("Unsqueeze", [f"size{k}"], [f"dim{k}"], name=f"head/dim{k}", axes=[0]))
            else:
                model.graph.initializer.append(onnx.numpy_helper.from_array(np.array([0], np.int64), f"zero{k}"))
                added.append(make("Unsqueeze", [f"size{k}", f"zero{k}"], [f"dim{k}"], name=f"head/dim{k}"))
        if joints is not None:
            model.graph.initializer.append(onnx.numpy_helper.from_array(np.array([joints], np.int64), "joints"))
        if rest:
            model.graph.initializer.append(onnx.numpy_helper.from_array(np.array([-1], np.int64), "rest"))
        flat = ["dim0", "dim1" if joints is None else "joints", "rest" if rest else "dim4"]
        added.append(make("Concat", flat, ["flat_dyn"], name="head/flat_shape", axis=0))
        added.append(make("Concat", ["dim0", "dim1", "dim2", "dim3"], ["map_dyn"], name="head/map_shape", axis=0))
        (flatten,) = [n for n in nodes if n.name == "head/flatten"]
        (back,) = [n for n in nodes if n.name == "head/heatmaps"]
        flatten.input[1], back.input[1] = "flat_dyn", "map_dyn"
        if rest:
            flatten.input[0] = added[0].output[0] if read != "logits" else "logits"
        at = nodes.index(flatten)
        del model.graph.node[:]
        model.graph.node.extend(nodes[:at] + added + nodes[at:])
    onnx.checker.check_model(model)
    onnx.save(model, tmp_path / "m.onnx")
    return tmp_path / "m.onnx"


@pytest.mark.parametrize(
    ("opset", "axis", "computed", "why"),
    [
        (17, -1, False, None),  # over H * W: the soft-argmax's flat softmax
        (17, -1, True, None),
        (17, 2, True, None),
        (11, -1, True, None),  # before opset 13 the axes from `axis` on: the last one alone here
        (11, 2, False, None),
        (17, 1, False, "over axis 1 of its input reshaped to 3 dimensions (the joints)"),
        (17, 1, True, "over axis 1 of its input reshaped to 3 dimensions (the joints)"),
        (11, 1, True, "over axis 1 of its input reshaped to 3 dimensions (all the maps of an image together)"),
        (11, 1, False, "over axis 1 of its input reshaped to 3 dimensions (all the maps of an image together)"),
    ],
)
def test_a_softmax_between_reshapes_must_be_over_each_maps_h_times_w(tmp_path, opset, axis, computed, why):
    """Reshape to (N, J, H * W), Softmax, Reshape back: over each map only when the softmax's groups are the
    H * W values of each map, read from the reshapes' shapes (constants, or computed from Shape(logits) as
    torch exports them) with the Softmax's semantics at the opset. The split and run agree: no warning and a
    confidence, or the same reason in both; the maps sum to 1 each exactly when the check says so."""
    _split_and_run_agree(_reshaped_softmax_model(tmp_path, axis, opset, computed), tmp_path / "p", why)


def _split_and_run_agree(model: Path, out: Path, why: str | None, softmax: str = "head/softmax"):
    """Split `model` into `out` and run its plan: with `why` None no heatmaps warning, a confidence and maps
    that each sum to 1; else the split's warning and run's refusal both say that Softmax `softmax` is `why`
    (in cpu0), no confidence, and maps that do not each sum to 1. Returns the split's result."""
    from dpupose.runtime.executor import check_decode, heatmaps_problem
    from dpupose.runtime.frames import Frame

    result = split_model(SplitOptions(model, CONFIG, out))
    image = (np.random.default_rng(4).random((40, 50, 3)) * 255).astype(np.uint8)
    ex = SplitExecutor(result.plan, RunnerFactory(result.plan, "cpu").create_all())
    sums = ex.infer(image)["heatmaps"][0].sum(axis=(1, 2))
    warned = [w.split(": the keypoint")[0] for w in result.warnings if "heatmaps" in w]
    if why is None:
        assert warned == [] and heatmaps_problem(result.plan) is None
        check_decode(result.plan, "local", 0.5)
        np.testing.assert_allclose(sums, 1, atol=1e-5)
        assert np.isfinite(ex.process(Frame(0, image, "x")).confidence).all()
    else:
        assert warned == [
            f"the heatmaps output 'heatmaps' is the output of Softmax {softmax!r} {why}, not over each map"
        ]
        assert heatmaps_problem(result.plan) == f"the output of Softmax {softmax!r} in cpu0 {why}, not over each map"
        with pytest.raises(
            UsageError, match=re.escape(f"heatmaps are the output of Softmax {softmax!r} in cpu0 {why}")
        ):
            check_decode(result.plan, "local")
        assert not np.allclose(sums, 1, atol=1e-3)
        assert np.isnan(ex.process(Frame(0, image, "x")).confidence).all()
    ex.close()
    return result


JOINTS_AXIS_1 = "over axis 1 of its input reshaped to 3 dimensions (the joints)"


@pytest.mark.parametrize(
    ("opset", "axis", "read", "why"),
    [
        (17, -1, "logits", None),
        (17, -1, "identity", None),
        (11, -1, "logits", None),
        (17, 1, "logits", JOINTS_AXIS_1),
        (17, 1, "identity", JOINTS_AXIS_1),
        (11, 1, "identity", JOINTS_AXIS_1.replace("the joints", "all the maps of an image together")),
        (17, -1, "add", None),
        (17, 1, "add", JOINTS_AXIS_1),
    ],
)
def test_a_joint_count_written_as_a_number_is_the_joints_read_with_shape(tmp_path, opset, axis, read, why):
    """torch: `b, j, h, w = y.shape; y.view(b, 16, h * w).softmax(-1).view(b, j, h, w)`, the flat shape's 16
    a constant and the maps' J read with Shape: N * 16 was compared with N * J, a number with a size taken as
    any size, and the model's flat softmax warned as 'other values than a map' (no confidence, no --decode
    local). Only the batch varies: the logits' J is 16 at batch 1, in the split (the model's static shapes)
    and in run (the CPU subgraph's inputs, or the value_info the split writes for a tensor made in it whose
    sizes a Shape reads, here an Identity of the logits or logits + 0). A softmax over that 16 (axis 1) is still
    over the joints. A plan whose file lacks that value_info (split before) reads J as any size, as before,
    where nothing else in the file gives it: an Identity of the logits has the CPU subgraph input's shape."""
    from dpupose.runtime.executor import heatmaps_problem

    model = _reshaped_softmax_model(tmp_path, axis, opset, True, joints=16, read=read)
    result = _split_and_run_agree(model, tmp_path / "p", why)
    cpu0 = onnx.load(result.plan.path(result.plan.subgraphs[-1].file))
    given = {
        vi.name: [d.dim_value or d.dim_param for d in vi.type.tensor_type.shape.dim] for vi in cpu0.graph.value_info
    }
    if read != "logits":
        assert given["logits_id"] == ["batch", 16, 4, 4]
        del cpu0.graph.value_info[:]
        onnx.save(cpu0, result.plan.path(result.plan.subgraphs[-1].file))
        again = heatmaps_problem(dataclasses.replace(result.plan))
        if read == "add":
            assert again is not None and again.endswith("(other values than a map), not over each map")
        else:  # the split's answer, whose maps' sums _split_and_run_agree checked
            assert again == (why and f"the output of Softmax 'head/softmax' in cpu0 {why}, not over each map")
    else:
        assert "logits" not in given and "logits" in [t.name for t in result.plan.subgraphs[-1].inputs]


@pytest.mark.parametrize(
    ("opset", "axis", "read", "why"),
    [
        (17, -1, "logits", None),
        (17, 2, "logits", None),
        (17, 1, "logits", JOINTS_AXIS_1),
        (11, 1, "logits", JOINTS_AXIS_1.replace("the joints", "all the maps of an image together")),
        (17, -1, "add", None),
        (17, 1, "add", JOINTS_AXIS_1),
    ],
)
def test_a_minus_one_of_the_logits_is_what_their_static_shape_leaves(tmp_path, opset, axis, read, why):
    """torch: `b, j, h, w = y.shape; y.view(b, 16, -1).softmax(axis).view(b, j, h, w)`: the -1 is what N * 16
    leaves of y's N * 16 * H * W, known from y's static shape (the model's in the split; in run the CPU
    subgraph's input, or the value_info the split writes for a tensor made in it that a Reshape reads, here
    logits + 0). Its sizes were not known, so any axis was taken as the maps': the softmax over the joints
    (axis 1) was accepted and run gave its maps, which do not each sum to 1, a confidence. A plan whose file
    lacks that value_info (split before) reads logits + 0 as not known, as before."""
    from dpupose.runtime.executor import heatmaps_problem

    model = _reshaped_softmax_model(tmp_path, axis, opset, True, joints=16, read=read, rest=True)
    flat = next(n for n in onnx.load(model).graph.node if n.name == "head/flatten")
    assert flat.input[0] == ("logits" if read == "logits" else "logits_id")
    result = _split_and_run_agree(model, tmp_path / "p", why)
    if read == "add":
        cpu0 = onnx.load(result.plan.path(result.plan.subgraphs[-1].file))
        assert "logits_id" in [vi.name for vi in cpu0.graph.value_info]
        del cpu0.graph.value_info[:]
        onnx.save(cpu0, result.plan.path(result.plan.subgraphs[-1].file))
        assert heatmaps_problem(dataclasses.replace(result.plan)) is None


@pytest.mark.parametrize(
    ("axis", "why"),
    [(2, None), (1, "over axis -1 of its input reshaped to 2 dimensions (other values than a map)")],
)
def test_a_flatten_of_a_tensor_made_in_the_cpu_subgraph_reads_its_static_shape(tmp_path, axis, why):
    """Softmax(Flatten(logits + 0, axis), -1) reshaped to the maps: at axis 2 each map's 16 values, at axis 1
    all 256 of an image. The Flatten's input had no sizes known, so both were accepted; now its static shape
    gives them, in the split and in run (the value_info the split writes for a tensor a Flatten reads)."""
    model = build("none")
    make = onnx.helper.make_node
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.array(0, np.float32), "nought"))
    nodes = list(model.graph.node)
    (flatten,) = [n for n in nodes if n.name == "head/flatten"]
    (dsnt,) = [n for n in nodes if n.name == "head/dsnt"]
    at = nodes.index(flatten)
    added = [
        make("Add", ["logits", "nought"], ["logits_add"], name="head/add"),
        make("Flatten", ["logits_add"], ["flat"], name="head/flatten", axis=axis),
    ]
    rows = make("Reshape", ["flat_sm", flatten.input[1]], ["flat_rows"], name="head/rows")
    dsnt.input[0] = "flat_rows"
    del model.graph.node[:]
    model.graph.node.extend(nodes[:at] + added + nodes[at + 1 : at + 2] + [rows] + nodes[at + 2 :])
    onnx.checker.check_model(model)
    onnx.save(model, tmp_path / "m.onnx")
    result = _split_and_run_agree(tmp_path / "m.onnx", tmp_path / "p", why)
    cpu0 = onnx.load(result.plan.path(result.plan.subgraphs[-1].file))
    assert "logits_add" in [vi.name for vi in cpu0.graph.value_info]


@pytest.mark.parametrize(
    ("opset", "axis", "why"),
    [
        (17, -1, "over axis -1 of its input reshaped to 4 dimensions (other values than a map)"),
        (11, 2, None),  # before opset 13 the axes from 2 on: each map
        (11, 1, "over axis 1 of its input reshaped to 4 dimensions (other values than a map)"),
    ],
)
def test_a_softmax_of_a_tensor_made_in_the_cpu_subgraph_reads_its_static_shape(tmp_path, opset, axis, why):
    """heatmaps = Reshape(Softmax(logits + 0, axis), (1, 16, 4, 4)): the Softmax's input had no sizes known,
    so any axis was accepted; now its static shape (N, 16, 4, 4) gives them, in the split and in run (the
    value_info the split writes for a Softmax's input)."""
    model = build("none")
    model.opset_import[0].version = opset
    make = onnx.helper.make_node
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.array(0, np.float32), "nought"))
    nodes = list(model.graph.node)
    (back,) = [n for n in nodes if n.name == "head/heatmaps"]
    at = nodes.index(back)
    added = [
        make("Add", ["logits", "nought"], ["logits_add"], name="head/add"),
        make("Softmax", ["logits_add"], ["maps_sm"], name="head/maps_softmax", axis=axis),
    ]
    back.input[0] = "maps_sm"
    del model.graph.node[:]
    model.graph.node.extend(nodes[:at] + added + nodes[at:])
    onnx.checker.check_model(model)
    onnx.save(model, tmp_path / "m.onnx")
    result = _split_and_run_agree(tmp_path / "m.onnx", tmp_path / "p", why, softmax="head/maps_softmax")
    cpu0 = onnx.load(result.plan.path(result.plan.subgraphs[-1].file))
    assert "logits_add" in [vi.name for vi in cpu0.graph.value_info]


@pytest.mark.parametrize("flat", ["h * w", "-1", "flatten(2)"])
@pytest.mark.parametrize(("axis", "why"), [(-1, None), (1, JOINTS_AXIS_1)])
def test_a_torch_export_of_a_softmax_over_16_rows_of_h_times_w(tmp_path, axis, why, flat):
    """The same head as torch exports it with a symbolic batch (each size read with Shape and Gather, the 16
    a constant): y.view(b, 16, h * w).softmax(axis).view(b, j, h, w) of a quantized conv's 16 maps, or
    y.view(b, 16, -1) (a -1 in the flat shape, what y's static shape leaves), or y.flatten(2), whose shape is
    Shape(y) sliced to its first two sizes, then -1 (it was taken as the maps' whatever the axis)."""
    torch = pytest.importorskip("torch")
    from dpupose.model.export import export_onnx

    def fq(t, fp: int):
        return torch.fake_quantize_per_tensor_affine(t, 2.0**-fp, 0, -128, 127)

    class Head(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 16, 3, stride=4, padding=1)

        def forward(self, x):
            y = torch.nn.functional.conv2d(fq(x, 6), fq(self.conv.weight, 7), self.conv.bias, stride=4, padding=1)
            y = fq(y, 4)
            b, j, h, w = y.shape
            rows = y.flatten(2) if flat == "flatten(2)" else y.view(b, 16, -1 if flat == "-1" else h * w)
            hm = rows.softmax(axis).view(b, j, h, w)
            centres = torch.linspace(-0.75, 0.75, 4)
            return hm, torch.stack([(hm.sum(2) * centres).sum(-1), (hm.sum(3) * centres).sum(-1)], -1)

    torch.manual_seed(0)
    path = export_onnx(Head(), torch.zeros(1, 3, 16, 16), tmp_path / "m.onnx", ["image"], ["heatmaps", "coords"], True)
    ops = [n.op_type for n in onnx.load(path).graph.node]
    assert {"Shape", "Gather", "Mul", "Concat"} <= set(ops)  # the sizes read as the graph runs
    if flat == "flatten(2)":
        assert "Slice" in ops
    _split_and_run_agree(path, tmp_path / "p", why, softmax="/Softmax")


def test_heatmaps_that_are_a_softmax_over_the_joints_give_no_confidence(tmp_path):
    """A softmax over the joints (axis 1 of the 4-D logits) makes maps that do not each sum to 1: the split
    warns, naming it, and the plan's confidence and local decoding are refused as for a conv's logits."""
    from dpupose.runtime.executor import check_decode, heatmaps_problem

    model = build("none")
    (old,) = [n for n in model.graph.node if n.name == "head/heatmaps"]
    model.graph.node.remove(old)
    model.graph.node.append(onnx.helper.make_node("Softmax", ["logits"], ["heatmaps"], name="head/hm", axis=1))
    onnx.save(model, tmp_path / "m.onnx")
    result = split_model(SplitOptions(tmp_path / "m.onnx", CONFIG, tmp_path / "plan"))
    why = "the output of Softmax 'head/hm' over axis 1 (the joints), not over each map"
    assert [w.split(":")[0] for w in result.warnings if "heatmaps" in w] == [f"the heatmaps output 'heatmaps' is {why}"]
    assert heatmaps_problem(result.plan) == why.replace("'head/hm'", "'head/hm' in cpu0")
    with pytest.raises(UsageError, match=re.escape("heatmaps are the output of Softmax 'head/hm' in cpu0 over")):
        check_decode(result.plan, "local")
    image = (np.random.default_rng(4).random((40, 50, 3)) * 255).astype(np.uint8)
    from dpupose.runtime.frames import Frame

    ex = SplitExecutor(result.plan, RunnerFactory(result.plan, "cpu").create_all())
    assert np.isnan(ex.process(Frame(0, image, "x")).confidence).all()
    ex.close()


def test_a_mul_by_a_constant_on_the_dpu_runs_on_the_emulator(tmp_path):
    model, result = _split(tmp_path, "mul")
    assert _devices(result.plan) == ["dpu", "cpu"] and _rows(result)["mid/mul"]["device"] == "dpu"
    assert result.warnings == []
    x = np.random.default_rng(3).normal(0, 1, (1, 3, S, S)).astype(np.float32)
    emulated = SplitExecutor(result.plan, RunnerFactory(result.plan, "emulate").create_all()).infer_tensor(x)
    cpu = SplitExecutor(result.plan, RunnerFactory(result.plan, "cpu").create_all()).infer_tensor(x)
    assert emulated["coords"].shape == (1, 16, 2)
    np.testing.assert_allclose(emulated["coords"], cpu["coords"], atol=0.05)


def test_a_pad_before_a_conv_is_split_onto_the_dpu_and_the_emulator_runs_it_as_the_cpu_does(tmp_path):
    # a constant Pad of 0 (TensorFlow's SAME exported as a Pad before a conv) was 'not a DPU operator', so the
    # split cut there and sent the conv after it to the CPU too; vai_q_pytorch's DPU op filter (filter_pad)
    # takes it, and VART's pad-fix fills int8 0: conv1, the Pad and conv3 are one DPU subgraph
    path = tmp_path / "pad.onnx"
    onnx.save(op_model("pad"), path)
    result = split_model(SplitOptions(path, CONFIG, tmp_path / "plan"))
    plan, rows = result.plan, _rows(result)
    assert _devices(plan) == ["dpu", "cpu"] and result.warnings == []
    assert rows["mid"]["device"] == "dpu" and rows["conv3"]["device"] == "dpu"
    assert rows["mid"]["reason"] == "Pad of 0 (top, left, bottom, right [1, 1, 1, 1]: the load engine's pad-fix)"
    dpu0 = plan.subgraphs[0]
    assert [(t.name, t.shape) for t in dpu0.outputs] == [("logits", (1, S // 2 + 2, S // 2 + 2, 16))]
    # the DPU subgraph on the emulator and on ONNX Runtime (the cpu backend): the same int8 logits but where
    # the convs round a tie up and ONNX Runtime to even (conv3's border pixels read the pad's zeros)
    x = np.random.default_rng(6).integers(-128, 128, (1, S, S, 3)).astype(np.int8)
    fp_in, fp_out = dpu0.inputs[0].fix_point, dpu0.outputs[0].fix_point
    emulated = RunnerFactory(plan, "emulate").create_all()["dpu0"].run({"image": x})["logits"].astype(np.int64)
    cpu_runner = RunnerFactory(plan, "cpu").create_all()["dpu0"]
    cpu = cpu_runner.run({"image": (x.transpose(0, 3, 1, 2) * 2.0**-fp_in).astype(np.float32)})["logits"]
    cpu = np.round(cpu.transpose(0, 2, 3, 1) * 2.0**fp_out).astype(np.int64)
    assert np.abs(emulated - cpu).max() <= 1 and (emulated != cpu).mean() < 0.01
    # and the whole plan: the coords from the emulated DPU part are the cpu backend's within its ties
    img = np.random.default_rng(7).normal(0, 1, (1, 3, S, S)).astype(np.float32)
    e = SplitExecutor(plan, RunnerFactory(plan, "emulate").create_all()).infer_tensor(img)
    c = SplitExecutor(plan, RunnerFactory(plan, "cpu").create_all()).infer_tensor(img)
    np.testing.assert_allclose(e["coords"], c["coords"], atol=0.05)


def test_an_edge_pad_of_one_is_split_onto_the_dpu_and_the_emulator_runs_it_as_onnx_runtime(tmp_path):
    # an 'edge' Pad of 1 on H and W (torch's ReplicationPad2d(1)) is XIR pad-fix's SYMMETRIC there, which
    # vai_q_pytorch's DPU op filter takes, but the rules cut the DPU part at it: conv1, the Pad and conv3 are now
    # one DPU subgraph, and the Pad's int8 output on the emulator is ONNX Runtime's exactly (values only move)
    from dpupose.runtime.emulator import EmulatorRunner

    path = tmp_path / "pad.onnx"
    onnx.save(op_model("pad_edge"), path)
    result = split_model(SplitOptions(path, CONFIG, tmp_path / "plan"))
    plan, rows = result.plan, _rows(result)
    assert _devices(plan) == ["dpu", "cpu"] and result.warnings == []
    assert rows["mid"]["device"] == "dpu" and rows["conv3"]["device"] == "dpu"
    assert rows["mid"]["reason"] == (
        "Pad of the edge pixel (top, left, bottom, right [1, 1, 1, 1]: the load engine's SYMMETRIC pad-fix)"
    )
    dpu0 = plan.path(plan.subgraphs[0].file)
    emu = EmulatorRunner(dpu0)
    traced = onnx.load(str(dpu0))  # ONNX Runtime on the same file, the Pad's input and output read out
    traced.graph.output.extend(onnx.helper.ValueInfoProto(name=n) for n in ("c1_int8", "mid_q_int8"))
    session = ort.InferenceSession(traced.SerializeToString(), providers=["CPUExecutionProvider"])
    fp_in = plan.subgraphs[0].inputs[0].fix_point
    rng = np.random.default_rng(8)

    def edge(c1: np.ndarray, axes: tuple[int, int]) -> np.ndarray:  # np.pad's edge mode, moved from fp 4 to 6
        pads = [(0, 0)] * 4
        pads[axes[0]] = pads[axes[1]] = (1, 1)
        return np.clip(np.pad(c1.astype(np.int64), pads, mode="edge") * 4, -128, 127)

    for _ in range(3):
        x = rng.integers(-128, 128, (1, S, S, 3)).astype(np.int8)
        layers = emu.trace({"image": x})
        np.testing.assert_array_equal(layers["mid_q_int8"], edge(layers["c1_int8"], (1, 2)))  # NHWC
        _, c1, mid = session.run(None, {"image": (x.transpose(0, 3, 1, 2) * 2.0**-fp_in).astype(np.float32)})
        np.testing.assert_array_equal(mid, edge(c1, (2, 3)))  # NCHW: ONNX Runtime's edge Pad is the same copy
    img = np.random.default_rng(9).normal(0, 1, (1, 3, S, S)).astype(np.float32)
    e = SplitExecutor(plan, RunnerFactory(plan, "emulate").create_all()).infer_tensor(img)
    c = SplitExecutor(plan, RunnerFactory(plan, "cpu").create_all()).infer_tensor(img)
    np.testing.assert_allclose(e["coords"], c["coords"], atol=0.05)


def test_a_max_pool_on_the_dpu_runs_on_the_emulator(tmp_path):
    _, result = _split(tmp_path, "pool")
    assert _rows(result)["mid/pool"]["device"] == "dpu" and result.warnings == []
    runners = RunnerFactory(result.plan, "emulate").create_all()
    x = np.random.default_rng(4).normal(0, 1, (1, 3, S, S)).astype(np.float32)
    coords = SplitExecutor(result.plan, runners).infer_tensor(x)["coords"]
    assert coords.shape == (1, 16, 2) and np.all(np.abs(coords) <= 1)


def test_a_hard_swish_after_a_conv_is_a_dpu_op_of_its_own_that_the_emulator_runs(tmp_path):
    # VART's DPUCZDX8G target factory fuses no hard activation into the conv: the hard swish is an ALU hsigmoid
    # and an eltwise mult reading conv2's int8 result, both on the DPU, and the emulator runs the subgraph.
    _, result = _split(tmp_path, "hswish")
    rows = _rows(result)
    assert _devices(result.plan) == ["dpu", "cpu"] and result.warnings == []
    assert rows["conv2"]["device"] == "dpu" and rows["conv2"]["reason"].startswith("conv 3x3")
    assert rows["mid/hswish"] == {
        "node": "mid/hswish",
        "op": "HardSwish",
        "device": "dpu",
        "reason": "hard swish x * hsigmoid(x) (ALU engine hsigmoid + eltwise engine mult)",
    }
    x = np.random.default_rng(5).normal(0, 1, (1, 3, S, S)).astype(np.float32)
    emulated = SplitExecutor(result.plan, RunnerFactory(result.plan, "emulate").create_all()).infer_tensor(x)
    cpu = SplitExecutor(result.plan, RunnerFactory(result.plan, "cpu").create_all()).infer_tensor(x)
    np.testing.assert_allclose(emulated["coords"], cpu["coords"], atol=0.05)


@pytest.mark.parametrize(
    ("middle", "node", "reason"),
    [
        ("hswish_relu", "mid/hswish", "hard swish x * hsigmoid(x) (ALU engine hsigmoid + eltwise engine mult)"),
        ("mul2", "mid/mul", "element-wise Mul "),
        ("bilinear_scales", "mid/resize", "Resize bilinear x2 (transposed depthwise conv, ALU engine)"),
        ("deconv", "mid/deconv", "transposed conv 4x4 s2 (conv engine)"),
        ("dwdeconv", "mid/deconv", "transposed depthwise conv 4x4 s2 (ALU engine)"),
        ("bilinear", "mid/resize", "Resize bilinear x2 (transposed depthwise conv, ALU engine)"),  # by sizes
    ],
)
def test_eltwise_mults_and_bilinear_resizes_on_the_dpu_run_on_the_emulator(tmp_path, middle, node, reason):
    # a ReLU fused into the hard swish's eltwise mult, a Mul of two activations (c1 * c1) with its ReLU, and a
    # bilinear x2 resize, and a 4x4 stride-2 ConvTranspose, dense with its ReLU or depthwise (which fuses none):
    # DPU ops (VART's DPUCZDX8G target factory; vai_q_pytorch's DPU op filter) that the emulator runs, agreeing
    # with the cpu backend
    _, result = _split(tmp_path, middle)
    rows = _rows(result)
    assert _devices(result.plan) == ["dpu", "cpu"] and result.warnings == []
    assert rows[node]["device"] == "dpu" and rows[node]["reason"].startswith(reason)
    x = np.random.default_rng(6).normal(0, 1, (1, 3, S, S)).astype(np.float32)
    emulated = SplitExecutor(result.plan, RunnerFactory(result.plan, "emulate").create_all()).infer_tensor(x)
    cpu = SplitExecutor(result.plan, RunnerFactory(result.plan, "cpu").create_all()).infer_tensor(x)
    np.testing.assert_allclose(emulated["coords"], cpu["coords"], atol=0.05)


def test_a_relu_after_a_bilinear_resize_puts_the_resize_on_the_cpu_saying_why(tmp_path):
    # the compiler's transposed depthwise conv for a bilinear resize fuses no activation (vai_q_pytorch's DPU
    # op filter): the resize and its ReLU run on the CPU, between two DPU subgraphs
    _, result = _split(tmp_path, "bilinear_relu")
    row = _rows(result)["mid/resize"]
    assert _devices(result.plan) == ["dpu", "cpu", "dpu", "cpu"]
    assert row["device"] == "cpu" and row["reason"] == (
        "its fused activation cannot run on the DPU: Relu after a bilinear Resize: the compiler runs that as a "
        "transposed depthwise conv with no activation fused (vai_q_pytorch's DPU op filter)"
    )


def test_a_relu_after_a_depthwise_conv_transpose_puts_it_on_the_cpu_saying_why(tmp_path):
    # vai_q_pytorch's DPU op filter lists no activation fused into a transposed depthwise conv (check_nonlinear's
    # table: DEPTHWISE_CONVTRANSPOSE2D: []): the ConvTranspose and its ReLU run on the CPU, between two DPU
    # subgraphs, as a bilinear resize and its ReLU do
    _, result = _split(tmp_path, "dwdeconv_relu")
    rows = _rows(result)
    assert _devices(result.plan) == ["dpu", "cpu", "dpu", "cpu"]
    assert rows["mid/deconv"]["device"] == "cpu" and rows["mid/deconv"]["reason"] == (
        "its fused activation cannot run on the DPU: Relu after a depthwise ConvTranspose: the DPU's transposed "
        "depthwise conv fuses no activation (vai_q_pytorch's DPU op filter lists none for it)"
    )
    assert rows["conv1"]["device"] == "dpu" and rows["conv2"]["device"] == "dpu"


def test_a_hard_swish_read_without_a_q_dq_pair_puts_its_conv_on_the_cpu_saying_why(tmp_path):
    _, result = _split(tmp_path, "hswish_fused")
    rows = _rows(result)
    assert rows["conv2"]["device"] == "cpu" and rows["conv2/hswish"]["device"] == "cpu"
    why = rows["conv2"]["reason"]
    assert "goes into HardSwish 'conv2/hswish' without a Q/DQ pair" in why
    assert "VART's DPUCZDX8G target factory" in why and "dpupose quantize puts a Q/DQ pair there" in why
    assert rows["conv1"]["device"] == "dpu" and rows["conv3"]["device"] == "dpu"


def test_an_unfused_batch_norm_puts_its_conv_on_the_cpu_saying_to_fold_it(tmp_path):
    # a network exported without folding its BatchNormalization: the conv's float output goes into it, and the
    # reason said only that the output was not quantized
    model = build("none")
    nodes = list(model.graph.node)
    relu = next(k for k, n in enumerate(nodes) if n.name == "conv2/relu")
    for name, value in (("bn.scale", 1.0), ("bn.bias", 0.0), ("bn.mean", 0.0), ("bn.var", 1.0)):
        model.graph.initializer.append(onnx.numpy_helper.from_array(np.full(8, value, np.float32), name))
    bn = onnx.helper.make_node(
        "BatchNormalization", ["conv2_conv", "bn.scale", "bn.bias", "bn.mean", "bn.var"], ["conv2_bn"], name="bn"
    )
    nodes[relu].input[0] = "conv2_bn"
    del model.graph.node[:]
    model.graph.node.extend([*nodes[:relu], bn, *nodes[relu:]])
    onnx.checker.check_model(model)
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    rows = _rows(split_model(SplitOptions(path, CONFIG, tmp_path / "plan")))
    assert rows["conv2"]["device"] == "cpu" and rows["bn"]["device"] == "cpu"
    assert rows["conv2"]["reason"].startswith(
        "output 'conv2_conv' goes into BatchNormalization 'bn' without a Q/DQ pair: fold the batch norm into the "
        "weights and bias before quantizing"
    )
    assert rows["conv1"]["device"] == "dpu" and rows["conv3"]["device"] == "dpu"


def test_deploy_check_says_which_files_it_takes(tmp_path, capsys):
    _, result = _split(tmp_path, "pool_ceil")
    plan = result.plan
    whole = save("none", tmp_path / "whole.onnx")
    cases = [
        (whole, "graph output '(coords|heatmaps)' must come out of a DequantizeLinear; deploy-check takes a DPU "
         r"subgraph \(dpu_part_qdq.onnx .* or a dpuN.onnx of a split plan\), not a whole model or a CPU subgraph"),
        (plan.path("cpu0.onnx"), "graph input 'logits' must be consumed by exactly one QuantizeLinear .*; deploy-check "
         "takes a DPU subgraph"),
        (plan.path("dpu0.onnx"), "MaxPool 'mid/pool'.*ceil_mode is not emulated.*: deploy-check "
         "checks the emulator's layers, "
         f"and the emulator runs {re.escape(EMULATED)} only"),
    ]  # fmt: skip
    for path, message in cases:
        assert main(["deploy-check", str(path), "--json", str(tmp_path / "r.json")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"dpupose: error: {path}: ")
        assert re.search(message, err), err
    assert not (tmp_path / "r.json").exists()


def test_deploy_check_against_onnx_runtime_of_a_file_with_a_fixed_batch_of_one(tmp_path, capsys):
    # torch.onnx.export without dynamic axes fixes the batch at 1, and so do the plan's files: ONNX Runtime
    # was given the --num 2 images at once, an INVALID_ARGUMENT traceback
    model = build("none")
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    split_model(SplitOptions(path, CONFIG, tmp_path / "plan"))
    report = tmp_path / "r.json"
    dpu0 = tmp_path / "plan" / "dpu0.onnx"
    assert main(["deploy-check", str(dpu0), "--against", "ort", "--json", str(report)]) in (0, 1)
    doc = json.loads(report.read_text())
    assert doc["samples"] == 2 and [r["tensor"] for r in doc["layers"]][-1] == "logits_int8"
    assert max(r["max_lsb"] for r in doc["layers"]) <= 1  # ONNX Runtime rounds ties to even, the DPU up


def test_deploy_check_of_a_subgraph_after_a_cpu_one_names_the_dump_it_needs(tmp_path, capsys):
    # dpu1 reads the sigmoid's output, which no calibration image makes: the error names the file that
    # --against DUMP_DIR must hold (it said only "dump its inputs instead"), and a folder with it runs
    _, result = _split(tmp_path, "sigmoid")
    dpu1 = result.plan.path("dpu1.onnx")
    assert main(["deploy-check", str(dpu1)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "give --against DUMP_DIR holding its input as mid_int8.npy (int8, NHWC)" in err
    dump = tmp_path / "dump"
    dump.mkdir()
    np.save(dump / "mid_int8.npy", np.random.default_rng(0).integers(0, 128, (1, S // 2, S // 2, 8), np.int8))
    assert main(["deploy-check", str(dpu1), "--against", str(dump)]) == 0
    assert "all 1 layers agree" in capsys.readouterr().out


def _dpu0_with_input_size(tmp_path: Path, axis: int, size: int | str) -> Path:
    """dpu0.onnx of a plan of the "none" model, its input's `axis` made `size` (a dim_param where a str)."""
    model = save("none", tmp_path / "m.onnx")
    result = split_model(SplitOptions(model, CONFIG, tmp_path / "plan"))
    m = onnx.load(str(result.plan.path("dpu0.onnx")))
    dim = m.graph.input[0].type.tensor_type.shape.dim[axis]
    if isinstance(size, int):
        dim.dim_value = size
    else:
        dim.dim_param = size
    path = tmp_path / "dpu0.onnx"
    onnx.save(m, str(path))
    return path


def test_deploy_check_of_an_input_no_calibration_image_fits_names_the_dump_it_needs(tmp_path, capsys):
    """Calibration images are (N, 3, S, S): a DPU subgraph whose input is S x 2S was fed them and stopped in the
    emulator ('input 'image' has shape (1, 16, 16, 3), expected (N, (16, 32, 3))', of images the user never
    gave)."""
    path = _dpu0_with_input_size(tmp_path, 3, 2 * S)
    assert main(["deploy-check", str(path), "--num", "1"]) == 2
    assert capsys.readouterr().err == (
        f"dpupose: error: the subgraph's input ('batch', 3, {S}, {2 * S}) is not a square image of a fixed size "
        "(N, 3, S, S), as calibration images are, so none can feed it: give --against DUMP_DIR holding its input "
        "as image_dq_int8.npy (int8, NHWC), e.g. dumped on the board\n"
    )


@pytest.mark.parametrize(("axis", "size"), [(2, "H"), (3, "W")])
@pytest.mark.parametrize("dumped", [None, 1, 2 * S])
def test_deploy_check_of_a_symbolic_input_size_is_refused_up_front(tmp_path, capsys, axis, size, dumped):
    """A symbolic width or height (the batch alone may be: the DPU runs fixed sizes) was read as 1 by the
    emulator: without a dump deploy-check said to give --against DUMP_DIR, and a dump of the declared shape
    (S x 2S) was passed over as not the emulator's (S x 1), so the same line asked again for the dump given;
    a dump of S x 1 was compared as if the model ran at that size. All are refused before anything is read."""
    path = _dpu0_with_input_size(tmp_path, axis, size)
    args = ["deploy-check", str(path), "--num", "1"]
    if dumped is not None:
        shape = [1, S, S, 3]
        shape[axis - 1] = dumped
        (tmp_path / "dump").mkdir()
        np.save(tmp_path / "dump" / "image_dq_int8.npy", np.zeros(shape, np.int8))
        args += ["--against", str(tmp_path / "dump")]
    declared = ["batch", 3, S, S]
    declared[axis] = size
    assert main(args) == 2
    assert capsys.readouterr().err == (
        f"dpupose: error: {path}: input 'image' {tuple(declared)} has a size that is not fixed ({size}): the DPU, "
        "and deploy-check, run fixed sizes only (the batch alone may be symbolic); export the model with the size "
        "the DPU will run (torch.onnx.export's dynamic_axes for the batch alone: {'image': {0: 'batch'}})\n"
    )


def test_deploy_check_of_a_subgraph_of_two_inputs_names_the_dumps_it_needs(tmp_path, capsys):
    # "skip"'s dpu1 reads the sigmoid's output and c1 from dpu0: no image feeds two inputs, and the error
    # named neither file ("dump the inputs instead"); it names both, and a folder with them runs
    _, result = _split(tmp_path, "skip")
    dpu1 = result.plan.path("dpu1.onnx")
    from dpupose.quant.compare import dump_name
    from dpupose.runtime.qdq_graph import load_program

    inputs = load_program(dpu1).inputs
    assert len(inputs) == 2
    names = [f"{dump_name(b.tensor)}.npy" for b in inputs]
    assert main(["deploy-check", str(dpu1)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"give --against DUMP_DIR holding them as {', '.join(names)} (int8, NHWC)" in err
    # called without images (the library's deploy_check), the same files are named, not 'the input tensor'
    from dpupose.errors import UsageError
    from dpupose.quant.compare import deploy_check

    with pytest.raises(UsageError, match=f"holding them as {', '.join(names)} "):
        deploy_check(dpu1, None, "torch", 0, None)
    dump = tmp_path / "dump"
    dump.mkdir()
    rng = np.random.default_rng(0)
    for b, name in zip(inputs, names):
        n, c, h, w = b.shape_nchw
        np.save(dump / name, rng.integers(0, 128, (1, h, w, c), np.int8))
    assert main(["deploy-check", str(dpu1), "--against", str(dump)]) == 0
    assert "layers agree" in capsys.readouterr().out


def test_a_compiled_xmodel_is_recorded_only_for_the_dpu_part_it_computes(tmp_path):
    from dpupose.board.artifacts import board_backend

    model = save("none", tmp_path / "m.onnx")
    xmodel = tmp_path / "compiled" / "pose.xmodel"
    xmodel.parent.mkdir()
    xmodel.write_bytes(b"\x0a\x04root compiled graph")
    out = tmp_path / "plan"
    result = split_model(SplitOptions(model, CONFIG, out, xmodel=xmodel))
    (dpu,) = [sg for sg in result.plan.subgraphs if sg.is_dpu]
    assert (dpu.xmodel, [t.name for t in dpu.inputs], [t.name for t in dpu.outputs]) == (
        "pose.xmodel",
        ["image"],
        ["logits"],
    )
    assert (out / "pose.xmodel").read_bytes() == xmodel.read_bytes()  # a copy travels with the plan
    assert board_backend(out) == ("vart", None)  # so deploy and stage print a --backend vart command
    split_model(SplitOptions(model, CONFIG, out, xmodel=xmodel))  # its own earlier plan: replaced
    # Without --xmodel the plan's compiled xmodel (hours in the Vitis AI image) would go: refused.
    with pytest.raises(UsageError, match=r"holds pose.xmodel, the compiled DPU subgraph its plan records"):
        split_model(SplitOptions(model, CONFIG, out))
    assert (out / "pose.xmodel").read_bytes() == xmodel.read_bytes()
    split_model(SplitOptions(model, CONFIG, out, xmodel=out / "pose.xmodel"))  # recorded again from the plan
    assert (out / "pose.xmodel").read_bytes() == xmodel.read_bytes()
    # A cut inside the DPU part cannot use the whole-part xmodel; nothing is written.
    with pytest.raises(UsageError, match=r"computes image -> logits \(no pose.dpupose.json.*dpu0: image -> c2"):
        split_model(SplitOptions(model, CONFIG, tmp_path / "cut", cpu_from="conv3", xmodel=xmodel))
    # An xmodel compiled for that cut (the script's sidecar says so) fits it, and then not the whole part.
    side = xmodel.with_name("pose.dpupose.json")
    side.write_text('{"input": "image", "output": "c2", "checkpoint": "x.pt"}')
    cut = split_model(SplitOptions(model, CONFIG, tmp_path / "cut", cpu_from="conv3", xmodel=xmodel))
    (dpu,) = [sg for sg in cut.plan.subgraphs if sg.is_dpu]
    assert (dpu.xmodel, [t.name for t in dpu.outputs]) == ("pose.xmodel", ["c2"])
    # The sidecar travels with the xmodel: splitting again from the plan folder's copy checks the same,
    # and that plan folder (with both files) may be replaced by its own split.
    assert (tmp_path / "cut" / "pose.dpupose.json").read_text() == side.read_text()
    again = split_model(SplitOptions(model, CONFIG, tmp_path / "cut", cpu_from="conv3", xmodel=xmodel))
    assert [t.name for sg in again.plan.subgraphs if sg.is_dpu for t in sg.outputs] == ["c2"]
    with pytest.raises(UsageError, match=r"computes image -> c2 \(as pose.dpupose.json says\)"):
        split_model(SplitOptions(model, CONFIG, tmp_path / "w2", xmodel=tmp_path / "cut" / "pose.xmodel"))
    with pytest.raises(UsageError, match=r"computes image -> c2 \(as pose.dpupose.json says\).*dpu0: image -> logits"):
        split_model(SplitOptions(model, CONFIG, tmp_path / "whole", xmodel=xmodel))
    side.write_text('{"input": "image"}')
    with pytest.raises(ModelFileError, match=r"pose.dpupose.json is damaged"):
        split_model(SplitOptions(model, CONFIG, tmp_path / "whole", xmodel=xmodel))
    side.unlink()
    shutil.rmtree(tmp_path / "cut")
    for bad, message in ((tmp_path / "none.xmodel", "does not exist"), (tmp_path, "is a folder")):
        with pytest.raises(UsageError, match=message):
            split_model(SplitOptions(model, CONFIG, tmp_path / "cut", xmodel=bad))
    assert not (tmp_path / "cut").exists()
    # A file of another kind is refused: copied in by name, a dpu0.onnx would have replaced the plan's own.
    other = tmp_path / "other" / "dpu0.onnx"
    other.parent.mkdir()
    other.write_bytes(b"not the DPU subgraph")
    with pytest.raises(UsageError, match=r"dpu0.onnx is not named .xmodel"):
        split_model(SplitOptions(model, CONFIG, tmp_path / "cut", xmodel=other))
    assert not (tmp_path / "cut").exists()


@pytest.mark.parametrize("kind", ["FIFO", "link"])
def test_something_at_the_xmodel_s_part_file_that_is_no_file_is_refused_not_taken_for_none(tmp_path, kind):
    """A FIFO, or a symbolic link that leads nowhere, at NAME.dpupose.json beside --xmodel was taken for no such
    file: the xmodel was checked (and recorded) as the whole DPU part, whatever part it was compiled for. It is
    refused, named, and nothing is written; with nothing at that name the xmodel is still the whole part."""
    model = save("none", tmp_path / "m.onnx")
    xmodel = tmp_path / "compiled" / "pose.xmodel"
    xmodel.parent.mkdir()
    xmodel.write_bytes(b"\x0a\x04root compiled graph")
    side = xmodel.with_name("pose.dpupose.json")
    os.mkfifo(side) if kind == "FIFO" else side.symlink_to("../elsewhere/pose.dpupose.json")
    what = (
        "is a FIFO" if kind == "FIFO" else "is a symbolic link that leads nowhere (to ../elsewhere/pose.dpupose.json)"
    )
    out = tmp_path / "plan"
    with pytest.raises(ModelFileError) as err:
        split_model(SplitOptions(model, CONFIG, out, xmodel=xmodel))
    assert str(err.value) == (
        f"{side} {what}, where scripts/vitis_ai_quantize.sh writes which part pose.xmodel computes: move it away "
        "(the xmodel is then taken as the whole DPU part), or compile again with the script"
    )
    assert not out.exists() and os.path.lexists(side)
    side.unlink()
    result = split_model(SplitOptions(model, CONFIG, out, xmodel=xmodel))
    assert [t.name for sg in result.plan.subgraphs if sg.is_dpu for t in sg.outputs] == ["logits"]


def test_split_xmodel_records_its_sha256_and_loading_refuses_another_compile_under_its_name(tmp_path):
    """A compile of another checkpoint or width, copied over the plan's .xmodel under its name, has the plan's
    fingerprint and tensors: VART ran it without a word, giving wrong keypoints. The plan records the sha256 of
    the xmodel it was split with, and loading (dpupose run, on the board too; staging) refuses another."""
    model = save("none", tmp_path / "m.onnx")
    compiled = b"\x0a\x04root compiled graph"
    xmodel = tmp_path / "compiled" / "pose.xmodel"
    xmodel.parent.mkdir()
    xmodel.write_bytes(compiled)
    out = tmp_path / "plan"
    split_model(SplitOptions(model, CONFIG, out, xmodel=xmodel))
    (dpu,) = [sg for sg in json.loads((out / "plan.json").read_text())["subgraphs"] if sg["device"] == "dpu"]
    assert (dpu["xmodel"], dpu["xmodel_sha256"]) == ("pose.xmodel", hashlib.sha256(compiled).hexdigest())
    assert load_plan(out).subgraph("dpu0").xmodel_sha256 == hashlib.sha256(compiled).hexdigest()

    (out / "pose.xmodel").write_bytes(b"\x0a\x05other compiled graph")  # another compile, the same name
    expected = (
        f"{out / 'plan.json'}: {out / 'pose.xmodel'} is not the .xmodel subgraph 'dpu0' was split "
        "with (sha256 differs: another compile copied over it, or a copy cut short), which VART would run with no "
        "error and wrong keypoints; copy the plan folder again, or split the model again the same way with "
        f"--xmodel the .xmodel to use (`dpupose split MODEL --out {out} --xmodel NAME.xmodel`, "
        "docs/quantization.md)"
    )
    with pytest.raises(ModelFileError) as err:
        load_plan(out)
    assert str(err.value) == expected
    # As the message says: split again with --xmodel the one to use (here the copy in the plan folder).
    split_model(SplitOptions(model, CONFIG, out, xmodel=out / "pose.xmodel"))
    other = hashlib.sha256(b"\x0a\x05other compiled graph").hexdigest()
    assert load_plan(out).subgraph("dpu0").xmodel_sha256 == other
    # A plan split without --xmodel records neither; one split before the digest was recorded loads as it did.
    plain = split_model(SplitOptions(model, CONFIG, tmp_path / "plain")).plan
    assert [(sg.xmodel, sg.xmodel_sha256) for sg in plain.subgraphs] == [(None, None)] * len(plain.subgraphs)
    doc = json.loads((out / "plan.json").read_text())
    del doc["subgraphs"][0]["xmodel_sha256"]
    (out / "plan.json").write_text(json.dumps(doc))
    (out / "pose.xmodel").write_bytes(compiled)
    assert load_plan(out).subgraph("dpu0").xmodel == "pose.xmodel"


def test_an_empty_or_folder_argument_is_refused(tmp_path):
    model = save("none", tmp_path / "m.onnx")
    with pytest.raises(UsageError, match="--cpu-from '': no such node"):
        split_model(SplitOptions(model, CONFIG, tmp_path / "plan", cpu_from=""))
    import onnx

    weight = onnx.load(str(model)).graph.initializer[0].name  # in the model, but no op of the network
    with pytest.raises(UsageError, match=rf"--cpu-from '{weight}' is a constant of the model.*such as"):
        split_model(SplitOptions(model, CONFIG, tmp_path / "plan", cpu_from=weight))
    with pytest.raises(ModelFileError, match="is a folder; give the model_qdq.onnx"):
        split_model(SplitOptions(tmp_path, CONFIG, tmp_path / "plan"))
    assert not (tmp_path / "plan").exists()


@pytest.mark.parametrize("joints", [8, 17])
def test_a_model_with_other_than_16_joints_is_refused(tmp_path, monkeypatch, joints):
    import split_models

    monkeypatch.setattr(split_models, "J", joints)
    model = split_models.save("none", tmp_path / "m.onnx")
    with pytest.raises(ModelFileError, match=rf"outputs coords \[1, {joints}, 2\].*the 16 MPII joints"):
        split_model(SplitOptions(model, CONFIG, tmp_path / "plan"))
    assert not (tmp_path / "plan").exists()


def _edited(tmp_path, edit) -> Path:
    m = build("none")
    edit(m.graph)
    path = tmp_path / "edited.onnx"
    onnx.save(m, str(path))
    return path


def _classifier(g) -> None:
    """The network with a classifier's head: global average pool and flatten instead of softmax + DSNT."""
    head = [n for n in g.node if n.name.startswith("head/")]
    for n in head:
        g.node.remove(n)
    g.node.extend(
        [
            onnx.helper.make_node("GlobalAveragePool", ["logits"], ["pooled"], name="pool"),
            onnx.helper.make_node("Flatten", ["pooled"], ["scores"], name="flatten"),
        ]
    )
    del g.output[:]
    g.output.append(onnx.helper.make_tensor_value_info("scores", onnx.TensorProto.FLOAT, [1, 16]))


def _heatmaps_only(g) -> None:
    """A heatmap model (as most pose networks are) without a coordinate output: it was called a DPU part."""
    del g.output[:]
    g.output.append(onnx.helper.make_tensor_value_info("heatmaps", onnx.TensorProto.FLOAT, [1, 16, S // 4, S // 4]))


def _segmenter(g) -> None:
    """One 4-D output of another channel count than the joints' (a segmentation network's): not heatmaps."""
    del g.output[:]
    g.output.append(onnx.helper.make_tensor_value_info("c1", onnx.TensorProto.FLOAT, [1, 8, S // 2, S // 2]))


def _channels_last(g) -> None:
    """The image given as (N, S, S, 3) and transposed inside, as a model exported from TensorFlow."""
    for n in g.node:
        n.input[:] = ["image_nchw" if i == "image" else i for i in n.input]
    g.node.insert(0, onnx.helper.make_node("Transpose", ["image"], ["image_nchw"], perm=[0, 3, 1, 2], name="nchw"))
    dims = g.input[0].type.tensor_type.shape.dim
    dims[1].dim_value, dims[2].dim_value, dims[3].dim_value = S, S, 3


def _symbolic_size(g) -> None:
    dims = g.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"


def _scale_not_a_power_of_two(g) -> None:
    """As ONNX Runtime's quantize_static makes them: scales fitted to the range, not 2**-fix_point."""
    init = next(t for t in g.initializer if t.name.endswith("scale") and t.dims == [])
    init.CopyFrom(onnx.numpy_helper.from_array(np.array(0.0123, np.float32), init.name))


def test_a_dpu_part_is_told_to_split_the_whole_model(tmp_path):
    def dpu_part(g) -> None:
        del g.output[:]
        g.output.append(onnx.helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, [1, 16, S // 4, S // 4]))

    with pytest.raises(ModelFileError, match=r"has no coords output .*: split the whole model .*, not its DPU part"):
        split_model(SplitOptions(_edited(tmp_path, dpu_part), CONFIG, tmp_path / "plan"))


@pytest.mark.parametrize(
    "edit, message",
    [
        (_classifier, r"outputs scores \[1, 16\], not a pose model's coords .*`dpupose dpu estimate MODEL"),
        (
            _heatmaps_only,
            rf"outputs only 'heatmaps' \[1, 16, {S // 4}, {S // 4}\], heatmaps without coordinates: .* "
            r"coords output \(N, 16, 2\) too, so export the model with both",
        ),
        # a lone 4-D output of 8 channels was told it was heatmaps without coordinates
        (_segmenter, rf"outputs c1 \[1, 8, {S // 2}, {S // 2}\], not a pose model's coords .*dpu estimate MODEL"),
        (_channels_last, rf"input 'image' is \(1, {S}, {S}, 3\); expected .* \(N, 3, S, S\), channels first"),
        (_symbolic_size, r"'image' \('batch', 3, 'height', 'width'\) has a size that is not fixed \(height, width\)"),
        (_scale_not_a_power_of_two, r"0.0123 is not a power of two.*a network of your own to QDQ with per-tensor"),
    ],
)
def test_a_model_split_and_run_cannot_take_is_refused_with_what_to_do(tmp_path, edit, message):
    model = _edited(tmp_path, edit)
    onnx.checker.check_model(str(model))
    with pytest.raises(ModelFileError, match=message) as err:
        split_model(SplitOptions(model, CONFIG, tmp_path / "plan"))
    assert "DPU part" not in str(err.value)
    assert not (tmp_path / "plan").exists()


def test_a_model_listing_its_opset_twice_gives_subgraphs_that_list_it_once(tmp_path):
    """onnx.compose.merge_models (a backbone and a head exported apart) lists the default domain once per
    part; bench's INT8 CPU rows (ONNX Runtime's quantize_static) refuse such a file."""
    from dpupose.quant.ort_int8 import quantize_cpu_subgraph

    def twice(m):
        m.opset_import.append(onnx.helper.make_opsetid("", 17))
        onnx.checker.check_model(m)

    m = build("none")
    twice(m)
    model = tmp_path / "merged.onnx"
    onnx.save(m, str(model))
    plan = split_model(SplitOptions(model, CONFIG, tmp_path / "plan")).plan
    for sg in plan.subgraphs:
        assert [(o.domain, o.version) for o in onnx.load(str(plan.path(sg.file))).opset_import] == [("", 17)]
    cpu = plan.subgraphs[-1]
    feeds = [{"logits": np.random.default_rng(k).normal(0, 1, (1, 16, 4, 4)).astype(np.float32)} for k in range(2)]
    out = quantize_cpu_subgraph(plan.path(cpu.file), tmp_path / "cpu_int8.onnx", feeds)
    assert any(n.op_type == "QuantizeLinear" for n in onnx.load(str(out)).graph.node)


def test_subgraph_files_keep_the_source_s_batch_and_ir_version_and_hold_only_what_they_read(tmp_path):
    """Each subgraph file's inputs, outputs and value_info take the source's symbolic batch by its own name
    (N here), the file keeps the source's IR version, says which subgraph of which model it is and holds only the
    initializers its nodes read; each file then runs a batch of 3 in ONNX Runtime as the unsplit model does."""
    source = global_pool_model(16, "N")
    source.ir_version = 7
    for t in source.graph.initializer:  # the head's reshapes copy the batch (a 0) instead of fixing it at 1
        if t.name in ("flat_shape", "map_shape"):
            t.CopyFrom(onnx.numpy_helper.from_array(np.array([0, *onnx.numpy_helper.to_array(t)[1:]]), t.name))
    # DSNT's grid read through a Reshape of the constant: its sizes are the constant's, no value_info of its own
    dsnt = next(i for i, n in enumerate(source.graph.node) if n.name == "head/dsnt")
    source.graph.initializer.append(onnx.numpy_helper.from_array(np.array([-1, 2]), "grid_shape"))
    source.graph.node.insert(dsnt, onnx.helper.make_node("Reshape", ["grid", "grid_shape"], ["grid_2"]))
    source.graph.node[dsnt + 1].input[1] = "grid_2"
    path = tmp_path / "gap.onnx"
    onnx.save(source, path)
    plan = split_model(SplitOptions(path, CONFIG, tmp_path / "plan")).plan
    assert _devices(plan) == ["dpu", "cpu"]
    inits = {t.name for t in source.graph.initializer}
    for sg in plan.subgraphs:
        m = onnx.load(str(plan.path(sg.file)))
        assert m.ir_version == 7
        assert (
            m.doc_string
            == f"generated by dpupose split (one subgraph of a split plan): {sg.device} subgraph {sg.name} of gap"
        )
        ends = [*m.graph.input, *m.graph.output, *m.graph.value_info]
        assert [v.type.tensor_type.shape.dim[0].dim_param for v in ends] == ["N"] * len(ends)
        read = {t for n in m.graph.node for t in n.input}
        assert {t.name for t in m.graph.initializer} == read & inits
        assert not {v.name for v in m.graph.value_info} & inits
    assert len(onnx.load(str(plan.path(plan.subgraphs[1].file))).graph.value_info) > 0  # the flat view's sizes
    x = np.random.default_rng(3).normal(0, 1, (3, 3, 32, 32)).astype(np.float32)
    coords, heatmaps = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": x})
    env = {"image": x}
    for sg in plan.subgraphs:
        sess = ort.InferenceSession(str(plan.path(sg.file)), providers=["CPUExecutionProvider"])
        outputs = sess.run(None, {i.name: env[i.name] for i in sess.get_inputs()})
        env.update(zip([o.name for o in sess.get_outputs()], outputs))
    np.testing.assert_allclose(env["heatmaps"], heatmaps, atol=1e-6)
    np.testing.assert_allclose(env["coords"], coords, atol=1e-6)


def _with_output(node: onnx.NodeProto, output: onnx.ValueInfoProto, tmp_path: Path, *opsets) -> Path:
    """build("none") with one more node whose output is a model output."""
    model = build("none")
    model.graph.node.append(node)
    model.graph.output.append(output)
    model.opset_import.extend(opsets)
    onnx.checker.check_model(model)
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    return path


def test_a_boundary_tensor_that_is_not_float_is_refused_naming_it(tmp_path):
    """An ArgMax of the flat heatmaps given out as a model output: an int64 boundary tensor of the CPU subgraph.
    The refusal advised `--cpu-from NODE`, which moves no model output inside a subgraph: it says what does, and
    what it says (a Cast to FLOAT after it) splits."""
    node = onnx.helper.make_node("ArgMax", ["flat_sm"], ["peak"], axis=-1, name="head/peak")
    path = _with_output(node, onnx.helper.make_tensor_value_info("peak", onnx.TensorProto.INT64, [1, 16, 1]), tmp_path)
    with pytest.raises(ModelFileError) as info:
        split_model(SplitOptions(path, CONFIG, tmp_path / "plan"))
    assert str(info.value) == (
        "boundary tensor 'peak' is not float32 (INT64); subgraphs exchange float32 (CPU) and int8 (DPU) tensors "
        "only: it is an output of the model, which no cut (--cpu-from) keeps inside a subgraph: give a model with "
        "it cast to float32 (a Cast to FLOAT after it), or without it as an output"
    )
    assert not (tmp_path / "plan").exists()
    model = onnx.load(str(path))
    model.graph.node[-1].output[0] = "peak_int"
    model.graph.node.append(onnx.helper.make_node("Cast", ["peak_int"], ["peak"], to=onnx.TensorProto.FLOAT))
    model.graph.output[-1].type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    onnx.save(model, str(path))
    plan = split_model(SplitOptions(path, CONFIG, tmp_path / "plan")).plan
    peak = plan.subgraphs[-1].outputs[-1]
    assert (peak.name, peak.dtype, peak.shape) == ("peak", "float32", (1, 16, 1))


def test_a_model_input_that_is_not_float_is_refused_with_what_helps(tmp_path):
    """A uint8 image input cast to float32 inside the model: no cut moves a model input, so --cpu-from is not the
    advice; a float32 input is."""
    model = build("none")
    model.graph.input[0].name = "raw"
    model.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.UINT8
    model.graph.node.insert(0, onnx.helper.make_node("Cast", ["raw"], ["image"], to=onnx.TensorProto.FLOAT))
    onnx.checker.check_model(model)
    onnx.save(model, str(tmp_path / "m.onnx"))
    with pytest.raises(ModelFileError) as info:
        split_model(SplitOptions(tmp_path / "m.onnx", CONFIG, tmp_path / "plan"))
    assert str(info.value) == (
        "boundary tensor 'raw' is not float32 (UINT8); subgraphs exchange float32 (CPU) and int8 (DPU) tensors "
        "only: it is an input of the model, which no cut (--cpu-from) keeps inside a subgraph: give a model whose "
        "input is float32 (the runtime feeds it float32 images)"
    )
    assert not (tmp_path / "plan").exists()


def test_a_subgraph_that_onnx_runtime_cannot_load_is_refused_naming_it(tmp_path):
    """An op of a domain of its own passes onnx.checker, but ONNX Runtime has no kernel for it."""
    node = onnx.helper.make_node("Peak", ["heatmaps"], ["peak"], domain="com.example", name="head/peak")
    output = onnx.helper.make_tensor_value_info("peak", onnx.TensorProto.FLOAT, [1, 16, 2])
    path = _with_output(node, output, tmp_path, onnx.helper.make_opsetid("com.example", 1))
    with pytest.raises(ModelFileError, match=r"ONNX Runtime cannot load subgraph cpu0: .*com\.example:Peak"):
        split_model(SplitOptions(path, CONFIG, tmp_path / "plan"))
    assert not (tmp_path / "plan").exists()


def test_a_subgraph_that_is_not_valid_onnx_is_refused_with_the_checker_s_first_line(tmp_path):
    """An attribute Softmax does not have: the checker names it (ONNX Runtime's load would say only that the
    node is invalid)."""
    model = build("none")
    next(n for n in model.graph.node if n.name == "head/softmax").attribute.append(
        onnx.helper.make_attribute("temperature", 2.0)
    )
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    message = "subgraph cpu0 is not valid ONNX: Unrecognized attribute: temperature for operator Softmax$"
    with pytest.raises(ModelFileError, match=message):
        split_model(SplitOptions(path, CONFIG, tmp_path / "plan"))
    assert not (tmp_path / "plan").exists()


def test_a_configuration_that_does_not_fit_the_board_is_split_with_a_warning(tmp_path):
    from dpupose.dpu.board import load_board
    from dpupose.dpu.config import load_config
    from dpupose.dpu.resources import check_fit

    model = save("none", tmp_path / "m.onnx")
    big = "u96v2-b2304-dsphigh"
    assert not check_fit(load_config(big), load_board("ultra96v2")).fits  # the shipped negative example
    result = split_model(SplitOptions(model, big, tmp_path / "plan"))
    assert len(result.warnings) == 1 and "does not fit the" in result.warnings[0] and "DSP" in result.warnings[0]
    assert result.plan.metadata["warnings"] == result.warnings
    assert "warnings" not in split_model(SplitOptions(model, CONFIG, tmp_path / "ok")).plan.metadata


def test_split_writes_its_warnings_to_stderr(tmp_path, capsys):
    """As dpu estimate and bench do: stdout holds the split and its prediction only."""
    model = save("none", tmp_path / "m.onnx")
    assert main(["split", str(model), "--config", "u96v2-b2304-dsphigh", "--out", str(tmp_path / "plan")]) == 0
    out, err = capsys.readouterr()
    assert "warning:" not in out and out.rstrip().endswith("plan.json and 2 ONNX file(s)")
    (warning,) = load_plan(tmp_path / "plan").metadata["warnings"]
    assert err == f"dpupose: warning: {warning}\n"


def test_split_writes_the_emulator_warning_to_stderr_once(tmp_path):
    """The partitioner also logged the warning it returns: at the command line it came twice on stderr,
    'WARNING dpupose.split.partition: ...' and 'dpupose: warning: ...'."""
    model = save("pool_ceil", tmp_path / "m.onnx")
    cmd = [sys.executable, "-m", "dpupose", "split", str(model), "--config", CONFIG, "--out", str(tmp_path / "plan")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (warning,) = load_plan(tmp_path / "plan").metadata["warnings"]
    assert "cannot run on the emulator" in warning
    assert proc.stderr == f"dpupose: warning: {warning}\n"


def test_predictions_from_the_plan_files_equal_the_partitioner_s(tmp_path):
    from dpupose.split.a53 import default_model
    from dpupose.split.cost import predict_plan

    _, result = _split(tmp_path, "skip")
    again = predict_plan(load_plan(result.folder), default_model())
    assert again.dpu_ms == pytest.approx(result.prediction.dpu_ms)
    assert again.cpu_ms == pytest.approx(result.prediction.cpu_ms)
    assert again.subgraph_ms == pytest.approx(result.prediction.subgraph_ms)


# Boundary tensors of the test models (split_models, 16 x 16 input): image 3*16*16 = 768 floats -> int8 (5 ops
# + 5 bytes each: tests/test_split_optimize.py) unless only DPU subgraphs read it, at one fix point (then
# pre-processing makes it int8: no conversion), c1 and c2 8*8*8 = 512 and logits / heatmaps 16*4*4 = 256 int8
# -> float (3 ops + 5 bytes each), at 1e9 ops/s and 1e9 bytes/s. image_twice_model's c1 and mid are 3*16*16 = 768.
BOUNDARY_CASES = {
    # the heatmaps (conv4's) leave the DPU for the caller only, the logits for the head on the CPU
    "a plan output no cpu subgraph reads": (lambda p: (dpu_heatmaps_model(p), None), "dc", 256 * 8 * 2),
    # the logits are the heatmaps output and the head's input: converted for cpu0, whose copy the caller gets
    "a plan output a cpu subgraph reads": (lambda p: (conv_heatmaps_model(p), None), "dc", 256 * 8),
    # c2 is a model output dpu0 makes, int8, but no plan output (coords, heatmaps): never converted; the logits
    # are converted for the head
    "a model output other than the plan's made on the dpu": (lambda p: (extra_output_model(p), None), "dc", 256 * 8),
    # c1 is read by cpu0 (the sigmoid) and cpu1 (the add, forced): converted once, for cpu0, whose float copy
    # cpu1 takes; mid_float back to int8, c2 to cpu1
    "two cpu subgraphs read one dpu output": (
        lambda p: (save("skip", p), "skip/add"),
        "dcdc",
        512 * 8 + 512 * 10 + 512 * 8,
    ),
    # the logits, the heatmaps output, are read by cpu0 (the sigmoid) and cpu1 (the sub): converted once, that
    # copy also the caller's; gate_float back to int8, g4 to cpu1
    "two cpu subgraphs read one plan output made on the dpu": (
        lambda p: (two_readers_model(p), None),
        "dcdc",
        256 * 8 + 256 * 10 + 256 * 8,
    ),
    # dpu0 (conv1) and dpu1 (the add) read the image at one fix point: pre-processing's int8 tensor serves both;
    # c1 to the sigmoid, mid back to int8, the logits to the head
    "the image feeds two dpu subgraphs at one fix point": (
        lambda p: (image_twice_model(p), None),
        "dcdc",
        768 * 8 + 768 * 10 + 256 * 8,
    ),
    # the add reads the image at 2**-6, conv1 at 2**-5: pre-processing gives float, quantized by each
    "the image feeds two dpu subgraphs at two fix points": (
        lambda p: (image_twice_model(p, second_fp=6), None),
        "dcdc",
        2 * 768 * 10 + 768 * 8 + 768 * 10 + 256 * 8,
    ),
}


@pytest.mark.parametrize("case", list(BOUNDARY_CASES))
def test_both_predictions_count_the_boundary_conversions_the_executor_makes(tmp_path, monkeypatch, case):
    """split's prediction and the plan files' count every conversion the executor makes on a frame: a DPU output
    is converted once for all the CPU subgraphs that read it, the caller gets a plan output made on the DPU
    converted for it unless a CPU subgraph took it as float, each DPU reader quantizes its own copy of a float
    tensor, and an image only DPU subgraphs read, at one fix point, is made int8 by pre-processing (input_lut)."""
    import dpupose.runtime.executor as executor
    from dpupose.split.a53 import A53Model
    from dpupose.split.cost import predict_plan

    make, devices, hand = BOUNDARY_CASES[case]
    model, cpu_from = make(tmp_path / "m.onnx")
    hand_ms = hand / 1e9 * 1e3
    inf = float("inf")
    a53 = A53Model(inf, inf, 0.0, copy_bandwidth=1e9, dpu_job_overhead_s=0.0, element_ops_rate=1e9)
    result = split_model(SplitOptions(model, CONFIG, tmp_path / "plan", cpu_from=cpu_from), a53=a53)
    plan = load_plan(result.folder)
    assert _devices(plan) == [{"d": "dpu", "c": "cpu"}[k] for k in devices]
    if case == "two cpu subgraphs read one dpu output":
        assert [[t.name for t in sg.inputs] for sg in plan.subgraphs[1::2]] == [["c1"], ["c1", "c2"]]
    elif case.startswith("two"):
        assert plan.outputs.heatmaps == "logits" in [t.name for t in plan.subgraphs[0].outputs]
        assert [sorted(t.name for t in sg.inputs) for sg in plan.subgraphs[1::2]] == [["logits"], ["g4", "logits"]]
    elif case.startswith("a model output"):
        (c2,) = [t for t in plan.subgraphs[0].outputs if t.name == "c2"]
        assert c2.dtype == "int8" and c2.shape == (1, 8, 8, 8)
        assert not any(t.name == "c2" for sg in plan.subgraphs for t in sg.inputs)
    elif case.startswith("the image"):
        image_fps = [t.fix_point for sg in plan.subgraphs for t in sg.inputs if t.name == "image"]
        assert image_fps == ([5, 5] if case.endswith("one fix point") else [5, 6])
    else:
        assert plan.outputs.heatmaps in [t.name for t in plan.subgraphs[0].outputs]
    assert result.prediction.boundary_ms == pytest.approx(hand_ms)
    assert predict_plan(plan, a53).boundary_ms == pytest.approx(hand_ms)
    # The executor's own conversions, int8 <-> float, run on the emulator on a frame (the frame path of
    # dpupose run: pre-processing, the subgraphs, the outputs), charged as the A53 model charges them.
    made: list[float] = []
    convert = executor.convert

    def counted(x, src, dst):
        if (src.dtype == "int8") != (dst.dtype == "int8"):
            made.append(a53.boundary_s(x.size, to_float=src.dtype == "int8"))
        return convert(x, src, dst)

    monkeypatch.setattr(executor, "convert", counted)
    ex = SplitExecutor(plan, RunnerFactory(plan, "emulate").create_all())
    frame = np.random.default_rng(0).integers(0, 256, (plan.input_size, plan.input_size, 3), np.uint8)
    _, env = ex.start(frame)
    for i in range(len(plan.subgraphs)):
        ex.run_subgraph(i, env)
    ex.outputs(env)
    assert sum(made) * 1e3 == pytest.approx(hand_ms)


def test_a_plan_output_a_cpu_subgraph_reads_is_converted_once_and_handed_out_unchanged(tmp_path, monkeypatch):
    """conv_heatmaps_model's logits, int8 out of dpu0, are the heatmaps output and cpu0's input: the executor
    dequantizes them once, for cpu0, and hands that float copy out, the same bits as converting them again."""
    import dpupose.runtime.executor as executor
    from dpupose.runtime.frames import Frame

    result = split_model(SplitOptions(conv_heatmaps_model(tmp_path / "m.onnx"), CONFIG, tmp_path / "plan"))
    plan = load_plan(result.folder)
    assert plan.outputs.heatmaps == "logits" and _devices(plan) == ["dpu", "cpu"]
    assert [t.name for t in plan.subgraphs[1].inputs] == ["logits"]
    to_float: list[str] = []
    convert = executor.convert

    def counted(x, src, dst):
        if src.dtype == "int8" and dst.dtype != "int8":
            to_float.append(src.name)
        return convert(x, src, dst)

    monkeypatch.setattr(executor, "convert", counted)
    ex = SplitExecutor(plan, RunnerFactory(plan, "emulate").create_all())
    frame = np.random.default_rng(1).integers(0, 256, (plan.input_size, plan.input_size, 3), np.uint8)
    _, env = ex.start(frame)
    for i in range(len(plan.subgraphs)):
        ex.run_subgraph(i, env)
    out = ex.outputs(env)
    assert to_float == ["logits"]
    # the int8 logits dpu0 made, dequantized and put in NCHW here, independently: int8 * 2**-fix_point
    q, info = env["logits"]
    assert info.dtype == "int8" and info.layout == "NHWC" and q.dtype == np.int8
    expected = (q.astype(np.float64) * 2.0**-info.fix_point).transpose(0, 3, 1, 2).astype(np.float32)
    assert out["heatmaps"].dtype == np.float32 and out["heatmaps"].flags.c_contiguous
    np.testing.assert_array_equal(out["heatmaps"], expected)
    np.testing.assert_array_equal(out["heatmaps"], as_float_nchw(q, info))
    # the whole frame gives the same results as before: the coords from cpu0, the heatmaps as converted
    monkeypatch.setattr(executor, "convert", convert)
    res = ex.process(Frame(0, frame, "x"))
    np.testing.assert_array_equal(res.coords, out["coords"].reshape(-1, 2))
    assert np.isnan(res.confidence).all()  # the heatmaps are a conv's logits: no confidence


def test_a_dpu_output_two_cpu_subgraphs_read_is_converted_once_and_shared_read_only(tmp_path, monkeypatch):
    """two_readers_model's logits, int8 out of dpu0, are read by cpu0 and cpu1 and are the heatmaps output: the
    executor dequantizes them once on a frame, both runners get that one float array, read-only (a runner
    writing into its input would change what the other reads), and the caller gets it too; the values are
    int8 * 2**-fix_point in NCHW, and the frame's results are those of each runner given its own copy."""
    import dpupose.runtime.executor as executor
    from dpupose.runtime.frames import Frame

    result = split_model(SplitOptions(two_readers_model(tmp_path / "m.onnx"), CONFIG, tmp_path / "plan"))
    plan = load_plan(result.folder)
    assert _devices(plan) == ["dpu", "cpu", "dpu", "cpu"] and plan.outputs.heatmaps == "logits"
    to_float: list[str] = []
    convert = executor.convert

    def counted(x, src, dst):
        if src.dtype == "int8" and dst.dtype != "int8":
            to_float.append(src.name)
        return convert(x, src, dst)

    taken: dict[str, list[np.ndarray]] = {}

    class Recording:
        def __init__(self, runner):
            self.runner, self.inputs, self.outputs = runner, runner.inputs, runner.outputs

        def run(self, feeds):
            for k, v in feeds.items():
                taken.setdefault(k, []).append(v)
            return self.runner.run(feeds)

        def close(self):
            self.runner.close()

    monkeypatch.setattr(executor, "convert", counted)
    runners = RunnerFactory(plan, "emulate").create_all()
    ex = SplitExecutor(plan, {k: Recording(r) if k.startswith("cpu") else r for k, r in runners.items()})
    frame = np.random.default_rng(2).integers(0, 256, (plan.input_size, plan.input_size, 3), np.uint8)
    _, env = ex.start(frame)
    for i in range(len(plan.subgraphs)):
        ex.run_subgraph(i, env)
    out = ex.outputs(env)
    assert sorted(to_float) == ["g4", "logits"]
    # g4's float copy went with g4 after its last reader; the logits' stays for the caller
    assert "g4" not in env and [k for k in env if isinstance(k, tuple)] == [("logits", "float")]
    first, second = taken["logits"]
    assert first is second is out["heatmaps"]
    assert not first.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        first[0, 0, 0, 0] = 1.0
    q, info = env["logits"]
    expected = (q.astype(np.float64) * 2.0**-info.fix_point).transpose(0, 3, 1, 2).astype(np.float32)
    np.testing.assert_array_equal(out["heatmaps"], expected)
    # cpu1 (the Sub and the head) given its own copies of the logits and g4 gives the same coords
    (g4,) = taken["g4"]
    own = runners["cpu1"].run({"logits": expected.copy(), "g4": g4.copy()})
    np.testing.assert_array_equal(out["coords"], own["coords"])
    # the frame path (the decode and the confidence read the shared heatmaps) gives the same coords
    res = ex.process(Frame(0, frame, "x"))
    np.testing.assert_array_equal(res.coords, out["coords"].reshape(-1, 2))
    assert np.isnan(res.confidence).all()  # a conv's logits: no confidence


def test_predictions_of_a_plan_cost_its_cpu_subgraphs_at_the_int8_rate_when_asked(tmp_path):
    from dpupose.split.a53 import A53Model
    from dpupose.split.cost import predict_plan

    _, result = _split(tmp_path, "none", cpu_from="image")
    assert _devices(result.plan) == ["cpu"]
    rate, inf = 4608e3, float("inf")  # MAC/s; nothing else charged
    a53 = A53Model(rate, 4 * rate, 0.0, copy_bandwidth=inf, dpu_job_overhead_s=0.0, element_ops_rate=inf)
    macs = 13824 + 36864 + 18432 + 512  # conv1, conv2, conv3, the DSNT MatMul (tests/test_split_optimize.py)
    plan = load_plan(result.folder)
    assert predict_plan(plan, a53).cpu_ms == pytest.approx(macs / rate * 1e3)
    assert predict_plan(plan, a53, cpu_int8=True).cpu_ms == pytest.approx(macs / (4 * rate) * 1e3)


def test_predictions_of_a_plan_split_for_a_configuration_file_use_that_file(tmp_path):
    """A TOML given by path, named like a shipped configuration: the plan's own options, not the shipped ones."""
    import json

    from dpupose.dpu.config import config_path
    from dpupose.errors import ConfigError
    from dpupose.split.a53 import default_model
    from dpupose.split.cost import predict_plan

    text = config_path(CONFIG).read_text().replace('arch = "B1600"', 'arch = "B4096"')
    text = text.replace("clock_mhz = 200", "clock_mhz = 150")  # the small model's time is mostly per-layer cycles
    assert "B4096" in text and "clock_mhz = 150" in text
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / f"{CONFIG}.toml").write_text(text)
    model = save("skip", tmp_path / "m.onnx")
    result = split_model(SplitOptions(model, str(tmp_path / "cfg" / f"{CONFIG}.toml"), tmp_path / "plan"))
    shipped = split_model(SplitOptions(model, CONFIG, tmp_path / "shipped"))
    assert result.prediction.dpu_ms > shipped.prediction.dpu_ms * 1.2  # 150 MHz
    again = predict_plan(load_plan(tmp_path / "plan"), default_model())
    assert again.dpu_ms == pytest.approx(result.prediction.dpu_ms)
    # A plan that does not record its options falls back to the shipped configuration of its name, which
    # must have the plan's fingerprint.
    doc = json.loads((tmp_path / "plan" / "plan.json").read_text())
    del doc["metadata"]["dpu_config_options"]
    (tmp_path / "plan" / "plan.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match=r"was split for 0x[0-9A-Fa-f]+, but its configuration .* is 0x"):
        predict_plan(load_plan(tmp_path / "plan"), default_model())


@pytest.mark.parametrize("middle", ["sigmoid", "leaky", "skip", "requant"])
def test_split_run_matches_the_unsplit_model(tmp_path, middle):
    _, result = _split(tmp_path, middle)
    plan = load_plan(result.folder)
    sess = _unsplit_session(middle)
    strict = _unsplit_session(middle, optimize=False)
    cpu = SplitExecutor(plan, RunnerFactory(plan, "cpu").create_all())
    emu = SplitExecutor(plan, RunnerFactory(plan, "emulate").create_all())
    rng = np.random.default_rng(1)
    lsb = []
    for _ in range(8):
        x = rng.normal(0, 1, (1, 3, S, S)).astype(np.float32)
        coords, heatmaps, logits = sess.run(["coords", "heatmaps", "logits"], {"image": x})
        # cpu backend: the same QDQ graph in ONNX Runtime, cut into pieces: the same numbers.
        out = cpu.infer_tensor(x)
        np.testing.assert_allclose(out["heatmaps"], heatmaps, atol=1e-6)
        np.testing.assert_allclose(out["coords"], coords, atol=1e-6)
        # emulate backend: the DPU's integer arithmetic differs from ONNX Runtime's strict QDQ arithmetic
        # (no graph optimizations) only where ONNX Runtime rounds an exact tie half to even and the DPU
        # half up: at most 1 LSB on the int8 logits, at 95% or more of them identical (measured: 98-99.7%).
        # One logit LSB (2**-3) changes its softmax weight by at most e**0.125; the coords and heatmaps
        # stay within 0.05 of ONNX Runtime's optimized run (measured: < 0.03).
        env = {plan.input.name: (x, emu.image_info)}
        for i in range(len(plan.subgraphs) - 1):
            emu.run_subgraph(i, env)
        q, info = env["logits"]
        coords, heatmaps, logits = strict.run(["coords", "heatmaps", "logits"], {"image": x})
        lsb.append(np.abs(as_float_nchw(q, info) - logits).ravel() * 2 ** FP["logits"])
        out = emu.infer_tensor(x)
        assert np.abs(out["coords"] - coords).max() <= 0.05
        assert np.abs(out["heatmaps"] - heatmaps).max() <= 0.05
    cpu.close()
    emu.close()
    lsb = np.concatenate(lsb)
    assert lsb.max() <= 1.0 + 1e-6
    assert np.mean(lsb == 0) >= 0.95


def test_plan_round_trip(tmp_path):
    _, result = _split(tmp_path, "sigmoid")
    plan = load_plan(result.folder)
    assert plan == result.plan
    data = json.loads((result.folder / "plan.json").read_text())
    assert data["generated_by"] == "dpupose split"
    assert [(r["node"], r["device"]) for r in data["metadata"]["assignment"]] == [
        ("conv1", "dpu"), ("mid/sigmoid", "cpu"), ("conv2", "dpu"), ("conv3", "dpu"), ("head/flatten", "cpu"),
        ("head/softmax", "cpu"), ("head/heatmaps", "cpu"), ("head/dsnt", "cpu"),
    ]  # fmt: skip
    # Every file is recorded with its digest, and the source model with its own, so a folder that mixes
    # files from two splits is caught on loading.
    digests = {sg["file"]: sg["sha256"] for sg in data["subgraphs"]}
    assert digests == {n: hashlib.sha256((result.folder / n).read_bytes()).hexdigest() for n in digests}
    assert data["model"]["sha256"] == hashlib.sha256((tmp_path / "sigmoid.onnx").read_bytes()).hexdigest()
    pred = data["metadata"]["predicted"]
    assert pred["predicted"] is True and set(pred["dpu_subgraphs"]) == {"dpu0", "dpu1"}
    again = tmp_path / "again"
    again.mkdir()
    for sg in plan.subgraphs:
        (again / sg.file).write_bytes(plan.path(sg.file).read_bytes())
    save_plan(plan, again)
    assert load_plan(again) == plan
    assert (again / "plan.json").read_text() == (result.folder / "plan.json").read_text()


def test_optimize_with_cpu_from_weighs_the_cuts_before_it_and_names_its_base(tmp_path):
    """--optimize with --cpu-from NODE: every candidate keeps NODE and what follows on the CPU (the cuts weighed
    are those before it), and the base candidate, the rules with that cut, was labelled 'rules only' beside
    figures that were the forced cut's, not the rules'."""
    _, rules = _split(tmp_path, "none", optimize=True)
    _, result = _split(tmp_path, "none", optimize=True, cpu_from="conv2")
    labels = [c["label"] for c in result.plan.metadata["candidates"]]
    assert labels[0] == "rules and --cpu-from conv2" and "rules only" not in labels
    assert "CPU from conv2" not in labels and "CPU from conv3" not in labels  # NODE on the CPU in every one
    forced = next(c for c in result.plan.metadata["candidates"] if c["label"] == labels[0])
    plain = next(c for c in rules.plan.metadata["candidates"] if c["label"] == "CPU from conv2")
    assert forced["subgraph_ms"] == plain["subgraph_ms"]  # the figures of the cut at conv2, as the label says
    assert _rows(result)["conv3"]["reason"] == "forced to the CPU (--cpu-from conv2)"


def test_cpu_from_forces_the_node_and_everything_after(tmp_path):
    _, result = _split(tmp_path, "none", cpu_from="conv2")
    assert _devices(result.plan) == ["dpu", "cpu"]
    rows = _rows(result)
    assert rows["conv1"]["device"] == "dpu"
    for name in ("conv2", "conv3", "head/softmax"):
        assert rows[name]["device"] == "cpu" and rows[name]["reason"] == "forced to the CPU (--cpu-from conv2)"
    assert [t.name for t in result.plan.subgraphs[0].outputs] == ["c1"]
    # recorded: scripts/vitis_ai_quantize.sh --plan says in NAME.dpupose.json which split it compiled for
    assert (result.plan.metadata["cpu_from"], result.plan.metadata["optimized"]) == ("conv2", False)
    # A tensor name selects its producer; a quantized tensor selects the op it quantizes.
    _, by_tensor = _split(tmp_path, "none", cpu_from="conv3_conv")
    assert [r["device"] for r in by_tensor.assignment[:3]] == ["dpu", "dpu", "cpu"]
    # A Q/DQ node selects the op whose output it quantizes (conv2 here, not the first unit).
    _, by_pair = _split(tmp_path, "none", cpu_from="c2/dequantize")
    assert [r["device"] for r in by_pair.assignment[:3]] == ["dpu", "cpu", "cpu"]
    # The image input (or its Q/DQ) puts everything on the CPU.
    _, everything = _split(tmp_path, "none", cpu_from="image")
    assert _devices(everything.plan) == ["cpu"]
    with pytest.raises(UsageError, match="no such node") as exc:
        _split(tmp_path, "none", cpu_from="conv9")
    suggested = str(exc.value).split("such as ")[1].split(", ")
    assert suggested and not any(name.startswith("/") for name in suggested)  # module paths, not /ReduceSum_2


def test_a_wrong_cpu_from_suggests_the_last_six_nodes(tmp_path):
    # where a cut is made: late in the network (the sigmoid model has eight units)
    with pytest.raises(UsageError) as exc:
        _split(tmp_path, "sigmoid", cpu_from="conv9")
    assert "such as conv2, conv3, head/flatten, head/softmax, head/heatmaps, head/dsnt (`dpupose" in str(exc.value)


def test_a_wrong_cpu_from_of_a_torch_export_suggests_its_layers_not_its_head(tmp_path):
    # torch.onnx.export names nodes /f/f.2/Conv, /ReduceSum_2...: with no module path to show, the last
    # units were suggested, the head's reductions, where a cut leaves everything on the DPU anyway
    model = build("none")
    for n in model.graph.node:
        n.name = "/" + n.name
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    with pytest.raises(UsageError) as exc:
        split_model(SplitOptions(path, CONFIG, tmp_path / "plan", cpu_from="conv9"))
    assert str(exc.value).endswith(
        "give a node name such as /conv1, /conv2, /conv3 (`dpupose split MODEL --out DIR --nodes` lists every node)"
    )
    # the command it gives is one the parser takes (--out is required: without it, a usage error)
    from dpupose.cli import build_parser

    command = str(exc.value).rsplit("(`", 1)[1].split("`")[0].split()
    assert command[:2] == ["dpupose", "split"]
    words = {"MODEL": str(path), "DIR": str(tmp_path / "listed")}
    args = build_parser().parse_args([words.get(w, w) for w in command[1:]])
    assert args.nodes and args.model == path


def test_without_a_cut_everything_the_dpu_can_run_is_one_subgraph(tmp_path):
    _, result = _split(tmp_path, "none")
    assert _devices(result.plan) == ["dpu", "cpu"]
    assert result.prediction.dpu_ms > 0 and result.prediction.cpu_ms > 0
    assert result.dpu_estimates["dpu0"].latency_ms == pytest.approx(result.prediction.subgraph_ms["dpu0"])


def test_float_model_is_refused_with_what_to_do(tmp_path):
    path = float_model(tmp_path / "float.onnx")
    with pytest.raises(UsageError, match="dpupose quantize"):
        split_model(SplitOptions(path, CONFIG, tmp_path / "plan"))
    assert not (tmp_path / "plan").exists()


def _with_weight_scale(tmp_path: Path, scale: np.ndarray) -> Path:
    """The "none" model with conv1's weight scale replaced (a 1-D scale is per output channel, axis 0)."""
    model = build("none")
    for t in model.graph.initializer:
        if t.name in ("conv1.weight_scale", "conv1.weight_zp"):
            value = scale if t.name.endswith("scale") else np.zeros(scale.shape, np.int8)
            t.CopyFrom(onnx.numpy_helper.from_array(value, t.name))
    if scale.ndim == 1:
        node = next(n for n in model.graph.node if n.name == "conv1.weight/dequantize")
        node.attribute.append(onnx.helper.make_attribute("axis", 0))
    onnx.checker.check_model(model)
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize(
    ("scale", "message"),
    [
        (np.array([2.0**-7, 2.0**-6] * 4, np.float32), "per-channel scales are not DPU quantization"),
        (np.array(0.0123, np.float32), "scale 0.0123 is not a power of two"),
    ],
)
def test_a_weight_quantized_otherwise_than_the_dpu_is_one_error_naming_it(tmp_path, capsys, scale, message):
    # onnxruntime.quantization's per-channel weights (a 1-D scale along axis 0) or any scale that is not a
    # power of two: the DPU has neither, so the split refuses the weight by name before writing a plan
    # (a per-channel scale was a broadcasting traceback, and either was a plan the emulator then refused)
    path = _with_weight_scale(tmp_path, scale)
    rc = main(["split", str(path), "--out", str(tmp_path / "plan")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("dpupose: error: DequantizeLinear 'conv1.weight/dequantize' (of 'conv1.weight_int8'): ")
    assert message in err and "A model of your own" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "plan").exists()


def test_a_model_saved_with_external_data_splits_and_without_its_data_file_is_one_error(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    onnx.save(build("none"), str(path), save_as_external_data=True, location="m.data", size_threshold=0)
    plan = tmp_path / "plan"
    assert main(["split", str(path), "--out", str(plan)]) == 0
    # the plan's files hold their weights, so the plan runs without the source's data file
    (tmp_path / "m.data").rename(tmp_path / "elsewhere.data")
    assert all(
        not onnx.external_data_helper.uses_external_data(t) for t in onnx.load(plan / "dpu0.onnx").graph.initializer
    )
    capsys.readouterr()
    # without it: the file is named, not called "not an ONNX model (ValidationError)"
    rc = main(["split", str(path), "--out", str(tmp_path / "plan2")])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert f"{path} keeps its weights in 'm.data' beside it (ONNX external data), which is not there" in err
    assert not (tmp_path / "plan2").exists()


@pytest.mark.parametrize(
    ("zp_name", "value", "expected"),
    [  # a weight's zero point 1 (asymmetric), an activation's uint8 0 (ONNX Runtime's default activation type)
        ("conv1.weight_zp", np.array(1, np.int8),
         "DequantizeLinear 'conv1.weight/dequantize' (of 'conv1.weight_int8'): the zero point must be 0"),
        ("c1_zp", np.array(0, np.uint8), "QuantizeLinear 'c1/quantize': the zero point must be an int8 0"),
    ],
)  # fmt: skip
def test_a_zero_point_other_than_the_dpu_s_is_one_error_naming_it(tmp_path, capsys, zp_name, value, expected):
    # the DPU's quantization is symmetric int8: the split refuses the tensor by name before writing a plan
    model = build("none")
    t = next(t for t in model.graph.initializer if t.name == zp_name)
    t.CopyFrom(onnx.numpy_helper.from_array(value, zp_name))
    onnx.checker.check_model(model)
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    rc = main(["split", str(path), "--out", str(tmp_path / "plan")])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith(f"dpupose: error: {expected}")
    assert not (tmp_path / "plan").exists()


def _outputs(**shapes):
    return SimpleNamespace(graph_outputs=list(shapes), shapes={k: tuple(v) for k, v in shapes.items()})


def test_a_model_s_outputs_are_read_by_name_and_shape():
    from dpupose.split.partition import model_outputs

    source = Path("m.onnx")
    # outputs named coords and heatmaps are taken over any other 3-D or 4-D output listed before them
    names = model_outputs(_outputs(aux=[1, 16, 8, 8], xy=[1, 16, 2], coords=[1, 16, 2], heatmaps=[1, 16, 4, 4]), source)
    assert (names.coords, names.heatmaps) == ("coords", "heatmaps")
    # otherwise the first (N, J, 2) (not any 3-D one) and the first 4-D output
    names = model_outputs(_outputs(emb=[1, 16, 8], j=[1, 16, 2], maps=[1, 16, 4, 4]), source)
    assert (names.coords, names.heatmaps) == ("j", "maps")
    # 16 coordinates but heatmaps of 8 channels: the confidences and local decoding would read 8 maps
    with pytest.raises(ModelFileError, match=r"outputs coords \[1, 16, 2\], heatmaps \[1, 8, 4, 4\]: .*16 MPII"):
        model_outputs(_outputs(coords=[1, 16, 2], heatmaps=[1, 8, 4, 4]), source)
    # heatmaps of 16 channels beside another output, no coordinates: no pose model, both named
    with pytest.raises(ModelFileError, match=r"outputs heat \[1, 16, 4, 4\], scores \[1, 16\], not a pose model"):
        model_outputs(_outputs(heat=[1, 16, 4, 4], scores=[1, 16]), source)


def test_an_int32_bias_is_one_error_naming_it(tmp_path, capsys):
    # ONNX's usual bias: int32 at input scale x weight scale (a power of two when both are). The DPU's bias is
    # int8 at a scale of its own; the split wrote a plan whose DPU subgraph the emulator then called damaged
    model = build("none")
    for t in model.graph.initializer:
        if t.name in ("conv1.bias_int8", "conv1.bias_scale", "conv1.bias_zp"):
            value = onnx.numpy_helper.to_array(t)
            if t.name.endswith("_int8"):
                value = value.astype(np.int32) * 2 ** (FP["image"] + 7 - 6)
            elif t.name.endswith("_scale"):
                value = np.array(2.0 ** -(FP["image"] + 7), np.float32)
            else:
                value = np.array(0, np.int32)
            t.CopyFrom(onnx.numpy_helper.from_array(value, t.name))
    onnx.checker.check_model(model)
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    rc = main(["split", str(path), "--out", str(tmp_path / "plan")])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith(
        "dpupose: error: DequantizeLinear 'conv1.bias/dequantize' (of 'conv1.bias_int8'): the constant is int32, but "
        "the DPU's weights and biases are int8"
    )
    assert not (tmp_path / "plan").exists()


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["split", "MODEL", "--out", "PLAN"], "the split reads QDQ models only: quantize in QDQ format"),
        (["dpu", "estimate", "MODEL", "--config", CONFIG], "give the FP32 model, or quantize it in QDQ format"),
        (["dpu", "compare", "--model", "MODEL"], "give the FP32 model, or quantize it in QDQ format"),
    ],
)
def test_onnx_runtime_s_qoperator_format_is_one_error_saying_to_export_qdq(tmp_path, capsys, command, message):
    # QLinearConv and the like are int8 operators of their own, not Q/DQ pairs around float ops: the split
    # said the Q's int8 output fed something other than a DequantizeLinear, estimate found no DPU layer
    path = qoperator_model(tmp_path / "qop.onnx")
    rc = main([{"MODEL": str(path), "PLAN": str(tmp_path / "plan")}.get(a, a) for a in command])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("dpupose: error: QLinearConv 'conv' is ONNX Runtime's QOperator format")
    assert message in err
    assert not (tmp_path / "plan").exists()


def test_a_float_model_that_is_no_pose_model_is_told_so_not_to_quantize_first(tmp_path, capsys):
    # a float classifier was told to quantize, and only once quantized that split takes pose models only
    path = float_model(tmp_path / "f.onnx")
    model = onnx.load(path)
    del model.graph.output[:]
    model.graph.output.append(onnx.helper.make_tensor_value_info("flat_sm", onnx.TensorProto.FLOAT, None))
    onnx.save(model, str(path))
    assert main(["split", str(path), "--out", str(tmp_path / "plan")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "quantize" not in err
    assert err.startswith(f"dpupose: error: {path} outputs flat_sm [1, 16, 16], not a pose model's coords")
    assert "`dpupose dpu estimate MODEL --config NAME` predicts the DPU time of any other model" in err


def test_out_folder_safety(tmp_path):
    model = save("none", tmp_path / "m.onnx")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(UsageError, match="not an earlier split plan"):
        split_model(SplitOptions(model, CONFIG, other))
    assert (other / "notes.txt").read_text() == "keep me"
    out = tmp_path / "plan"
    split_model(SplitOptions(model, CONFIG, out, cpu_from="conv3"))
    split_model(SplitOptions(model, CONFIG, out))  # an earlier plan is replaced
    assert _devices(load_plan(out)) == ["dpu", "cpu"]
    assert sorted(p.name for p in out.iterdir()) == ["cpu0.onnx", "dpu0.onnx", "plan.json"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    # A plan folder that also holds the user's own files (a compiled xmodel, the source model) stays.
    (out / "dpu0.xmodel").write_bytes(b"compiled")
    with pytest.raises(UsageError, match=r"also holds dpu0\.xmodel, which replacing it would delete"):
        split_model(SplitOptions(model, CONFIG, out))
    (out / "dpu0.xmodel").unlink()
    inside = out / "m.onnx"
    inside.write_bytes(model.read_bytes())
    with pytest.raises(UsageError, match=r"also holds m\.onnx"):
        split_model(SplitOptions(inside, CONFIG, out))
    assert inside.read_bytes() == model.read_bytes()
    assert sorted(p.name for p in out.iterdir()) == ["cpu0.onnx", "dpu0.onnx", "m.onnx", "plan.json"]
    # A damaged plan.json: named as the problem, not its files; nothing deleted.
    inside.unlink()
    (out / "plan.json").write_text("{")
    with pytest.raises(UsageError, match=r"plan\.json is not a readable split plan"):
        split_model(SplitOptions(model, CONFIG, out))
    assert sorted(p.name for p in out.iterdir()) == ["cpu0.onnx", "dpu0.onnx", "plan.json"]


def test_cli_prints_the_split_and_the_candidates(tmp_path, capsys):
    model = save("sigmoid", tmp_path / "m.onnx")
    rc = main(["split", str(model), "--config", CONFIG, "--out", str(tmp_path / "p"), "--optimize", "--nodes"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "candidates weighed (all times and FPS predicted for the board)" in out
    chosen = [line for line in out.splitlines() if line.startswith("* ") and not line.startswith("* chosen")]
    assert len(chosen) == 1
    assert "CPU because:" in out and "predicted on the board" in out
    assert load_plan(tmp_path / "p").metadata["optimized"] is True
    rc = main(["split", str(float_model(tmp_path / "f.onnx")), "--out", str(tmp_path / "q")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "dpupose quantize --checkpoint" in err and len(err.strip().splitlines()) == 1
    # `dpupose quantize` takes dpupose's own checkpoints only: the float export of another network is told
    # where the conventions it must be quantized to are, not only to run a command that refuses it
    assert "a network of your own to QDQ with per-tensor power-of-two scales (docs/split.md, A model of" in err


def test_cli_prints_each_subgraph_s_prediction_as_plan_json_records_it(tmp_path, capsys):
    from dpupose.split.a53 import default_model

    model = save("sigmoid", tmp_path / "m.onnx")
    out = tmp_path / "p"
    assert main(["split", str(model), "--out", str(out), "--nodes"]) == 0  # no --config: the Ultra96-V2's default
    lines = capsys.readouterr().out.splitlines()
    doc = json.loads((out / "plan.json").read_text())
    assert doc["dpu_config"] == "u96v2-b1600-pynq"
    pred = doc["metadata"]["predicted"]
    ms = pred["subgraph_ms"]
    assert "  mid/sigmoid    Sigmoid          CPU  Sigmoid is not a DPU operator" in lines
    start = lines.index(f"split {model} for u96v2-b1600-pynq ({doc['fingerprint']}): 4 subgraph(s)")
    # the figures as printed (3 decimals of ms, 1 of FPS) and as plan.json holds them (4 and 2): within a rounding
    shown = lines[start + 1 : start + 7] + lines[-2:]
    figures = [float(x) for line in shown for x in re.findall(r"\d+\.\d+", line)]
    assert [re.sub(r"\d+\.\d+", "X", line) for line in shown] == [
        "  dpu0   DPU     X ms predicted  image -> c1",
        "  cpu0   CPU     X ms predicted  c1 -> mid_float",
        "         CPU because: Sigmoid is not a DPU operator",
        "  dpu1   DPU     X ms predicted  mid_float -> logits",
        "  cpu1   CPU     X ms predicted  logits -> heatmaps, coords",
        lines[start + 6],  # the head's reasons
        "predicted on the board: DPU X ms, CPU X ms per frame (boundaries X ms, DPU job calls X ms) -> X FPS "
        "pipelined, X FPS sequential",
        f"wrote {out}/plan.json and 4 ONNX file(s)",
    ]
    # the CPU stage: the CPU subgraphs, the boundaries' conversions and one DPU job call per DPU subgraph
    jobs = 2 * default_model().dpu_job_overhead_s * 1e3
    assert pred["cpu_ms"] == pytest.approx(ms["cpu0"] + ms["cpu1"] + pred["boundary_ms"] + jobs, abs=2e-4)
    ms_figures = [ms["dpu0"], ms["cpu0"], ms["dpu1"], ms["cpu1"], pred["dpu_ms"], pred["cpu_ms"], pred["boundary_ms"]]
    assert figures[:-2] == pytest.approx([*ms_figures, jobs], abs=6e-4)
    assert figures[-2:] == pytest.approx([pred["pipelined_fps"], pred["sequential_fps"]], abs=0.06)
    # --xmodel: recorded for the DPU subgraph, and said under it
    xmodel = tmp_path / "compiled" / "pose.xmodel"
    xmodel.parent.mkdir()
    xmodel.write_bytes(b"\x0a\x04root compiled graph")
    none = save("none", tmp_path / "n.onnx")
    assert main(["split", str(none), "--out", str(tmp_path / "x"), "--xmodel", str(xmodel)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert not [line for line in lines if line.startswith("  conv1 ")]  # the node table only with --nodes
    at = next(i for i, line in enumerate(lines) if line.startswith("  dpu0   DPU "))
    assert lines[at + 1] == "         compiled: pose.xmodel (for --backend vart)"
    assert (tmp_path / "x" / "pose.xmodel").read_bytes() == xmodel.read_bytes()


def _split_dpu_until_cpu(model, cfg, costed_only: bool = True) -> set[str]:
    """The names of the split's DPU units of a costed op up to the first CPU one (what dpu estimate costs), or
    with costed_only=False of every op (a layout op too, which the estimate takes at no cost)."""
    from dpupose.dpu.graph import COSTED_OPS
    from dpupose.split.assign import CPU, _preds, assign
    from dpupose.split.graph import analyze

    g = analyze(model)
    devices = assign(g, cfg).devices
    after_cpu: set[int] = set()
    for u in g.units:  # graph order: a unit's producers come first
        if any(devices[p] == CPU or p in after_cpu for p in _preds(g, u)):
            after_cpu.add(u.index)
    costed = {*COSTED_OPS, "BatchNormalization"}  # a batch norm the split runs reads a quantized tensor: costed
    return {
        u.name
        for u in g.units
        if devices[u.index] != CPU and u.index not in after_cpu and (u.op in costed or not costed_only)
    }


@pytest.mark.parametrize(
    "middle",
    [
        *("none", "leaky", "leaky_ok", "pool", "mul", "mul2", "deconv", "dwdeconv", "dwdeconv_relu"),
        *("bilinear_scales", "bilinear_relu", "hswish_relu"),
    ],
)
def test_dpu_estimate_costs_on_the_dpu_what_split_puts_there(middle):
    # dpu estimate's graph walk asks the operator rules whether an op's activation is fused, as the split does:
    # the layers it costs are the split's DPU units up to the first CPU one (it stops there, the split goes on)
    from dpupose.dpu.config import load_config
    from dpupose.dpu.graph import extract_layers

    cfg = load_config(CONFIG)
    model = build(middle)
    split_dpu = _split_dpu_until_cpu(model, cfg)
    assert {layer.name for layer in extract_layers(model, cfg).layers} == split_dpu
    if middle in ("leaky", "bilinear_relu", "dwdeconv_relu"):  # the op whose activation the rules do not fuse
        main = {"leaky": "conv2", "bilinear_relu": "mid/resize", "dwdeconv_relu": "mid/deconv"}[middle]
        assert main not in split_dpu
        excluded = {name: why for name, _, why in extract_layers(model, cfg).excluded}
        assert excluded[main].startswith("not a DPU op (its fused activation cannot run on the DPU: ")


# A conv or pool over and under each limit of the operator rules on the B1600 (ICP 10): (its arguments, over).
CONV_LIMITS = {
    "kernel 16": ({"k": 16, "pads": (8,) * 4}, False),
    "kernel 17": ({"k": 17, "pads": (8,) * 4}, True),
    "stride 8": ({"k": 1, "stride": 8}, False),
    "stride 9": ({"k": 1, "stride": 9}, True),
    "2560 channels": ({"k": 1, "cout": 2560}, False),
    "2561 channels": ({"k": 1, "cout": 2561}, True),
    "3x3 bank 2270": ({"cin": 2270}, False),  # 9 * ceil(2270 / 10) = 2043 rows of 2048
    "3x3 bank 2271": ({"cin": 2271}, True),  # 9 * 228 = 2052
    "pad 2 of 3x3": ({"pads": (2,) * 4}, False),
    "pad 3 of 3x3": ({"pads": (3,) * 4}, True),
    "dw 45x45": ({"group": 8, "k": 45, "pads": (15, 15, 30, 30)}, False),
    "dw 46x46": ({"group": 8, "k": 46, "pads": (15, 15, 30, 30)}, True),  # 2116 rows of the depthwise bank
    "dw stride 256": ({"group": 8, "k": 1, "stride": 256}, False),
    "dw stride 257": ({"group": 8, "k": 1, "stride": 257}, True),
    "dw top pad 15": ({"group": 8, "pads": (15, 15, 0, 0)}, False),
    "dw top pad 16": ({"group": 8, "pads": (16, 16, 0, 0)}, True),
    "dw bottom pad 255": ({"group": 8, "pads": (0, 0, 255, 255)}, False),  # the ALU engine's pad_limit
    "dw bottom pad 256": ({"group": 8, "pads": (0, 0, 256, 256)}, True),
    "pool right pad 255": ({"op": "MaxPool", "pads": (0, 0, 255, 255)}, False),
    "pool right pad 256": ({"op": "MaxPool", "pads": (0, 0, 256, 256)}, True),
    "pool top pad 15": ({"op": "AveragePool", "k": 17, "pads": (15, 15, 0, 0)}, False),
    "pool top pad 16": ({"op": "AveragePool", "k": 17, "pads": (16, 16, 0, 0)}, True),
    "pool stride 256": ({"op": "MaxPool", "k": 1, "stride": 256, "pads": (0,) * 4}, False),  # alu_limit
    "pool stride 257": ({"op": "MaxPool", "k": 1, "stride": 257, "pads": (0,) * 4}, True),
    "whole-map pool stride 257": ({"op": "AveragePool", "k": 8, "stride": 257, "pads": (0,) * 4}, False),
    "deconv 16 / 1": ({"op": "ConvTranspose", "k": 16, "pads": (0,) * 4}, False),
    "deconv 17 / 1": ({"op": "ConvTranspose", "k": 17, "pads": (0,) * 4}, True),
    "deconv pad 4": ({"op": "ConvTranspose", "k": 4, "stride": 2, "pads": (4,) * 4}, False),
    "deconv pad 5": ({"op": "ConvTranspose", "k": 4, "stride": 2, "pads": (5,) * 4}, True),
    "deconv bank 1280": ({"op": "ConvTranspose", "k": 4, "stride": 2, "pads": (1,) * 4, "cin": 1280}, False),
    "deconv bank 1281": ({"op": "ConvTranspose", "k": 4, "stride": 2, "pads": (1,) * 4, "cin": 1281}, True),
    "deconv 2561 channels": ({"op": "ConvTranspose", "k": 1, "pads": (0,) * 4, "cout": 2561}, True),
    "dwdeconv top pad 15": ({"op": "ConvTranspose", "group": 8, "k": 32, "stride": 2, "pads": (15,) * 4}, False),
    "dwdeconv top pad 16": ({"op": "ConvTranspose", "group": 8, "k": 32, "stride": 2, "pads": (16,) * 4}, True),
    "dwdeconv 45x45": ({"op": "ConvTranspose", "group": 8, "k": 45, "pads": (15,) * 4}, False),  # 2025 rows
    "dwdeconv 46x46": ({"op": "ConvTranspose", "group": 8, "k": 46, "pads": (15,) * 4}, True),  # 2116 of 2048
    "dwdeconv 2560 channels": (
        {"op": "ConvTranspose", "group": 2560, "k": 2, "stride": 2, "pads": (0,) * 4, "cin": 2560, "cout": 2560},
        False,
    ),
}


@pytest.mark.parametrize("case", CONV_LIMITS)
def test_dpu_estimate_takes_the_operator_rules_conv_limits_as_the_split_does(case):
    # dpu estimate's graph walk costed every Conv / ConvTranspose with a constant weight, so a conv over a limit
    # of the operator rules (kernel, stride, pads, channels, the weight banks) was costed on the DPU where the
    # split puts it on the CPU; the walk asks the rules, and what it costs is the split's DPU units
    from dpupose.dpu.config import load_config
    from dpupose.dpu.graph import extract_layers

    kwargs, over = CONV_LIMITS[case]
    cfg = load_config(CONFIG)
    model = conv_limit_model(**kwargs)
    split_dpu = _split_dpu_until_cpu(model, cfg)
    graph = extract_layers(model, cfg)
    assert {layer.name for layer in graph.layers} == split_dpu
    assert ("mid" in split_dpu) is not over
    if over:
        why = dict((n, r) for n, _, r in graph.excluded)["mid"]
        assert why.startswith("not a DPU op (") and why != "not a DPU op (no constant weight)"
        assert graph.too_wide == (["mid"] if "channels" in case else [])


# An Add, Mul, fully connected layer, Pad or DepthToSpace after conv1 (tests/split_models.op_model): whether the
# operator rules put it on the DPU of the B1600, and their reason when they do not.
OP_RULES = {
    "add": (True, None),
    "add_broadcast": (False, "Add of tensors with different shapes (broadcasting)"),
    "add_const": (False, "Add with a constant operand"),
    "add_relu6": (False, "ReLU6 after an element-wise op: the DPU's eltwise engine fuses ReLU only"),
    "mul_broadcast": (False, "Mul of tensors with different shapes (broadcasting)"),
    "gemm": (True, None),
    "gemm_transA": (False, "Gemm with transA"),
    "gemm_bias": (True, None),
    # XIR's inner-product / matmul has no alpha or beta and adds one bias value per output
    "gemm_alpha": (False, "Gemm with alpha 0.5 and beta 1: XIR's fully connected layer (inner-product, matmul) has"),
    "gemm_beta": (False, "Gemm with alpha 1 and beta 2: XIR's fully connected layer"),
    "gemm_bias_rows": (False, "Gemm with a bias C of shape [8, 32]: XIR's fully connected layer adds one bias value"),
    "gemm_rows": (False, "Gemm of an input of [8, 64] at batch 1 (8 rows of one image): XIR's fully connected layer"),
    "matmul": (True, None),
    "matmul_rows": (False, "MatMul of an input of [1, 8, 64] at batch 1 (8 rows of one image)"),
    "matmul_batched": (False, "MatMul by a 3-D weight (a batched product"),
    "pad": (True, None),
    "pad_value": (False, "Pad with value 0.5: the DPU's pad-fix fills int8 0"),
    "pad_reflect": (False, "Pad in mode 'reflect'"),
    "pad_edge": (True, None),  # pads of 1: XIR's SYMMETRIC (the edge pixel mirrored is the edge pixel)
    "pad_edge2": (False, "Pad in mode 'edge' with pads [2, 2, 2, 2] (top, left, bottom, right): the DPU's SYMMETRIC"),
    "pad_channel": (False, "Pad of the batch or channel axis"),
    "pad_crop": (False, "Pad with negative pads"),
    "pad_relu": (False, "Relu after a Pad"),
    "depth_to_space": (True, None),
    "depth_to_space_dcr": (False, "DepthToSpace in mode 'DCR': the DPU's pixel shuffle (XIR pixel-shuffle-fix"),
    "depth_to_space_relu": (False, "Relu after a DepthToSpace (pixel shuffle)"),
    "bn": (True, None),
    "bn_relu": (True, None),
    "bn_2560": (True, None),  # the ALU engine's 256 x ICP (10 on the B1600), as a depthwise conv's
    "bn_2561": (False, "BatchNormalization of 2561 channels exceeds 256 x ICP = 2560"),
    "reshape": (True, None),
    "reshape_relu": (False, "Relu after a reshape"),
    "unsqueeze": (True, None),
}


@pytest.mark.parametrize("case", OP_RULES)
def test_dpu_estimate_takes_the_operator_rules_eltwise_fc_pad_and_pixel_shuffle_decisions(case):
    # dpu estimate's graph walk costed every Add and Mul of two tensors (a broadcast, a constant operand), every
    # Gemm / MatMul with a constant weight (transA) and every Pad without asking the operator rules, which the
    # split asks: what it costs is now the split's DPU units, and what the split leaves to the CPU it excludes
    # with the rules' reason. A constant Pad of 0 on H and W is a DPU op (pad-fix), costed as data movement;
    # another value, reflect / edge, a pad of C, a crop or a ReLU after it are not. A batch norm of a quantized
    # tensor is the rules' 1x1 depthwise conv (the estimate took it for folded into a conv, and free). A Reshape /
    # (Un)Squeeze of a DPU tensor is free layout on the DPU (the estimate took it so only before a fully
    # connected layer, otherwise for a CPU op, and left out all after it); one with a ReLU after it is not
    from dpupose.dpu.config import load_config
    from dpupose.dpu.graph import extract_layers

    on_dpu, reason = OP_RULES[case]
    cfg = load_config(CONFIG)
    model = op_model(case)
    split_dpu = _split_dpu_until_cpu(model, cfg)
    graph = extract_layers(model, cfg)
    assert {layer.name for layer in graph.layers} == split_dpu
    assert ("mid" in _split_dpu_until_cpu(model, cfg, costed_only=False)) is on_dpu
    assert ("mid" in {n for n, _, _ in graph.excluded}) is not on_dpu
    if not on_dpu:
        why = dict((n, r) for n, _, r in graph.excluded)["mid"]
        assert why.startswith("not a DPU op (") and reason in why


def test_a_model_s_image_input_is_one_square_rgb_image():
    from dpupose.split.partition import image_input

    def inputs(*names: str, **shapes) -> SimpleNamespace:
        return SimpleNamespace(graph_inputs=list(names), shapes={k: tuple(v) for k, v in shapes.items()})

    source = Path("m.onnx")
    spec = image_input(inputs("image", image=[1, 3, 32, 32]), source)
    assert (spec.name, spec.shape) == ("image", (1, 3, 32, 32))
    for shape in ([1, 3, 32, 48], [1, 1, 32, 32], [1, 4, 32, 32], [1, 32, 32, 3], [3, 32, 32]):
        with pytest.raises(ModelFileError, match=re.escape(f"input 'image' is {tuple(shape)}; expected a square RGB")):
            image_input(inputs("image", image=shape), source)
    with pytest.raises(ModelFileError, match="takes 2 inputs; a pose model takes one image"):
        image_input(inputs("image", "mask", image=[1, 3, 32, 32], mask=[1, 1, 32, 32]), source)


def test_a_model_of_a_fixed_batch_over_one_is_refused_before_anything_is_written(tmp_path, capsys):
    """A (2, 3, S, S) export: the plan feeds one frame at a time, so its DPU subgraphs' (2, ...) inputs could never
    be fed. It was split as far as the plan check, which named a temporary folder and said to re-split; now
    refused up front, one line saying how to export it, no --out folder made."""
    path = tmp_path / "b2.onnx"
    onnx.save(op_model("pad", batch=2), path)
    out = tmp_path / "plan"
    assert main(["split", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "input 'image' is (2, 3, 16, 16), a fixed batch of 2; dpupose run feeds one frame at a time" in err
    assert "dynamic_axes={'image': {0: 'batch'}}" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b2.onnx"]
    onnx.save(op_model("pad", batch=1), path)  # the same model at batch 1 splits
    assert main(["split", str(path), "--out", str(out)]) == 0 and (out / "plan.json").is_file()


@pytest.mark.parametrize(
    ("path", "name"), [("mynet/model.onnx", "mynet"), ("q/model_qdq.onnx", "q"), ("q/pose.onnx", "pose")]
)
def test_the_plan_names_the_model_by_its_folder_or_its_file(tmp_path, path, name):
    model = save("none", tmp_path / path)
    assert split_model(SplitOptions(model, CONFIG, tmp_path / "plan")).plan.model.name == name


def test_an_xmodel_and_its_sidecar_are_read_strictly(tmp_path):
    from dpupose.split.partition import xmodel_fingerprint, xmodel_macs, xmodel_part

    model = save("none", tmp_path / "m.onnx")
    xmodel = tmp_path / "compiled" / "pose.xmodel"
    xmodel.parent.mkdir()
    xmodel.write_bytes(b"")
    with pytest.raises(ModelFileError, match=r"--xmodel .*pose\.xmodel is empty; compile it again"):
        split_model(SplitOptions(model, CONFIG, tmp_path / "plan", xmodel=xmodel))
    assert not (tmp_path / "plan").exists()
    xmodel.write_bytes(b"\x0a\x04root compiled graph")
    side = xmodel.with_name("pose.dpupose.json")
    side.write_text('{"input": "", "output": "logits"}')
    with pytest.raises(ModelFileError, match=r"pose\.dpupose\.json is damaged \(input/output must be names\)"):
        xmodel_part(xmodel, "image")
    # the fingerprint is hex with or without 0x; a macs of JSON true is no count (bool is an int in Python)
    side.write_text('{"input": "image", "output": "logits", "fingerprint": "101000016010404", "macs": true}')
    assert (xmodel_fingerprint(xmodel), xmodel_macs(xmodel)) == (0x101000016010404, None)
    plan = split_model(SplitOptions(model, CONFIG, tmp_path / "plan", xmodel=xmodel)).plan
    assert [sg.xmodel for sg in plan.subgraphs] == ["pose.xmodel", None]
    # the multiply-accumulates it records are the DPU subgraph's: conv1 and conv2 when cut at conv3
    # (13824 + 36864: tests/test_split_optimize.py), not the CPU subgraph's conv3 and head as well
    side.write_text('{"input": "image", "output": "c2", "macs": 50688}')
    cut = SplitOptions(model, CONFIG, tmp_path / "cut", cpu_from="conv3", xmodel=xmodel)
    assert [sg.xmodel for sg in split_model(cut).plan.subgraphs] == ["pose.xmodel", None]
    side.write_text('{"input": "image", "output": "c2", "macs": 69632}')
    with pytest.raises(UsageError, match="was compiled from a network of"):
        split_model(cut)


def test_the_cpu_subgraph_s_reason_puts_forced_and_larger_units_first():
    from dpupose.split.assign import _summary

    g = analyze(build("sigmoid"))
    assert [(u.name, int(np.prod(g.shapes[u.output]))) for u in g.units] == [
        ("conv1", 512), ("mid/sigmoid", 512), ("conv2", 512), ("conv3", 256), ("head/flatten", 256),
        ("head/softmax", 256), ("head/heatmaps", 256), ("head/dsnt", 32),
    ]  # fmt: skip
    forced = "forced to the CPU (--cpu-from head/heatmaps)"
    reasons = ["Sigmoid or worse", "Sigmoid or worse", "y", "z", "Sigmoid or worse", "Sigmoid or worse", forced, forced]
    text = _summary(g, Assignment(["cpu"] * 8, reasons), list(range(8)))
    assert text == (
        "Reshape, MatMul: forced to the CPU (--cpu-from head/heatmaps); "
        "Conv, Sigmoid, Reshape and 1 more: Sigmoid or worse; Conv: y; 1 other reason(s)"
    )


def _devices_of(model: onnx.ModelProto) -> dict[str, tuple[str, str]]:
    g = analyze(model)
    a = assign(g, load_config(CONFIG))
    return {u.name: (a.devices[u.index], a.reasons[u.index]) for u in g.units}


def test_a_unit_whose_float_output_leaves_the_model_or_feeds_a_float_op_is_on_the_cpu():
    # conv2's ReLU output is also a model output: the DPU hands over only its int8 copy
    m = build("none")
    m.graph.output.append(onnx.helper.ValueInfoProto(name="conv2_float"))
    assert _devices_of(m)["conv2"] == ("cpu", "output 'conv2_float' is a float model output")
    # conv2's output before its ReLU is a model output: the ReLU is not fused, and both are on the CPU
    m = build("none")
    m.graph.output.append(onnx.helper.ValueInfoProto(name="conv2_conv"))
    devices = _devices_of(m)
    assert devices["conv2"] == ("cpu", "output 'conv2_conv' is a float model output")
    assert devices["conv2/relu"][0] == "cpu"
    # conv2's ReLU output also goes into a float op beside its QuantizeLinear
    m = build("none")
    m.graph.node.append(onnx.helper.make_node("Sigmoid", ["conv2_float"], ["side"], name="side"))
    not_quantized = "output 'conv2_float' is not quantized (the DPU hands over only int8 tensors)"
    assert _devices_of(m)["conv2"] == ("cpu", not_quantized)


def test_a_requantization_whose_source_other_ops_read_stays_on_the_dpu():
    m = build("requant")
    m.graph.node.append(onnx.helper.make_node("Sigmoid", ["c1"], ["side"], name="side"))
    assert _devices_of(m)["rq/quantize"] == ("dpu", "requantize (change of fix point)")


def _q_output_read_by_a_cast(g) -> None:
    g.node.append(onnx.helper.make_node("Cast", ["c1_int8"], ["peek"], name="peek", to=onnx.TensorProto.FLOAT))


def _dq_of_another_scale(g) -> None:
    g.initializer.append(onnx.numpy_helper.from_array(np.array(2.0**-3, np.float32), "c1_other_scale"))
    next(n for n in g.node if n.name == "c1/dequantize").input[1] = "c1_other_scale"


def _stray_dequantize(g) -> None:
    g.node.append(onnx.helper.make_node("Cast", ["conv1_float"], ["c1_cast"], name="cast", to=onnx.TensorProto.INT8))
    dq = onnx.helper.make_node("DequantizeLinear", ["c1_cast", "c1_scale", "c1_zp"], ["c1_again"], name="stray")
    g.node.append(dq)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            _q_output_read_by_a_cast,
            "QuantizeLinear 'c1/quantize': its int8 output feeds 'peek' (only DequantizeLinear may read it): "
            "quantize the model as docs/quantization.md (QDQ conventions) says",
        ),
        (
            _dq_of_another_scale,
            "Q/DQ pair of 'conv1_float' has two scales (2**-4 and 2**-3): quantize the model as docs/quantization.md "
            "(QDQ conventions) says",
        ),
        (
            _stray_dequantize,
            "Q/DQ nodes outside the activation Q -> DQ pattern: 'stray': quantize the model as docs/quantization.md "
            "(QDQ conventions) says",
        ),
    ],
)
def test_q_dq_nodes_outside_the_dpu_s_pattern_are_refused_naming_them(edit, message):
    m = build("none")
    edit(m.graph)
    with pytest.raises(ModelFileError, match=f"^{re.escape(message)}$"):
        analyze(m)


def test_many_q_dq_nodes_outside_the_pattern_are_named_as_other_lists_of_names_are():
    # seven stray DequantizeLinear nodes and seven readers of a QuantizeLinear's int8 output: the first four
    # of each, then how many more (errors.shortlist), never a Python list cut short without a count
    m = build("none")
    for k in range(7):
        m.graph.node.append(
            onnx.helper.make_node("Cast", ["conv1_float"], [f"cast{k}"], name=f"cast{k}", to=onnx.TensorProto.INT8)
        )
        m.graph.node.append(
            onnx.helper.make_node("DequantizeLinear", [f"cast{k}", "c1_scale", "c1_zp"], [f"s{k}"], name=f"stray{k}")
        )
    stray = "'stray0', 'stray1', 'stray2', 'stray3' and 3 more"
    with pytest.raises(ModelFileError) as raised:
        analyze(m)
    assert str(raised.value) == (
        f"Q/DQ nodes outside the activation Q -> DQ pattern: {stray}: quantize the model as docs/quantization.md "
        "(QDQ conventions) says"
    )
    m = build("none")
    for k in range(7):
        m.graph.node.append(
            onnx.helper.make_node("Cast", ["c1_int8"], [f"peek{k}"], name=f"peek{k}", to=onnx.TensorProto.FLOAT)
        )
    with pytest.raises(ModelFileError) as raised:
        analyze(m)
    assert str(raised.value) == (
        "QuantizeLinear 'c1/quantize': its int8 output feeds 'peek0', 'peek1', 'peek2', 'peek3' and 3 more "
        "(only DequantizeLinear may read it): quantize the model as docs/quantization.md (QDQ conventions) says"
    )


def test_unnamed_nodes_get_names_no_other_node_has(tmp_path):
    m = build("none")
    idx = next(i for i, n in enumerate(m.graph.node) if n.name == "conv2/relu")
    m.graph.node[idx].name = ""
    next(n for n in m.graph.node if n.name == "conv1/relu").name = f"Relu_{idx}"
    names = [n.name for n in analyze(m).nodes]
    assert len(set(names)) == len(names) and names[idx] == f"Relu_{idx}_"


def test_a_file_without_nodes_is_not_an_onnx_model(tmp_path):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")  # parses as an empty ModelProto
    with pytest.raises(
        ModelFileError, match=r"empty\.onnx: not an ONNX model \(it has no nodes\); give the model_qdq\.onnx written by"
    ):
        load_onnx(empty)


def test_a_quantized_model_output_made_on_the_cpu_comes_from_its_cpu_subgraph(tmp_path):
    # heatmaps through a Q/DQ pair after the head's Reshape: the pair goes with the CPU subgraph that makes it
    m = build("none")
    next(n for n in m.graph.node if n.name == "head/heatmaps").output[0] = "heatmaps_float"
    m.graph.initializer.extend(
        [
            onnx.numpy_helper.from_array(np.array(2.0**-7, np.float32), "hm_scale"),
            onnx.numpy_helper.from_array(np.array(0, np.int8), "hm_zp"),
        ]
    )
    m.graph.node.extend(
        [
            onnx.helper.make_node("QuantizeLinear", ["heatmaps_float", "hm_scale", "hm_zp"], ["hm_int8"], name="hm/q"),
            onnx.helper.make_node("DequantizeLinear", ["hm_int8", "hm_scale", "hm_zp"], ["heatmaps"], name="hm/dq"),
        ]
    )
    path = tmp_path / "m.onnx"
    onnx.save(m, str(path))
    plan = split_model(SplitOptions(path, CONFIG, tmp_path / "plan")).plan
    assert [(sg.name, [t.name for t in sg.outputs]) for sg in plan.subgraphs] == [
        ("dpu0", ["logits"]),
        ("cpu0", ["coords", "heatmaps"]),
    ]
    x = np.random.default_rng(3).normal(0, 1, (1, 3, S, S)).astype(np.float32)
    whole = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(["heatmaps"], {"image": x})[0]
    out = SplitExecutor(plan, RunnerFactory(plan, "cpu").create_all()).infer_tensor(x)
    np.testing.assert_array_equal(out["heatmaps"], whole)


def test_a_relu6_whose_clip_bounds_are_quantized_constants_is_fused_on_the_dpu():
    # Clip(x, DQ(0), DQ(6)): the bounds are the constants' dequantized values (int8 0 and 6 at scale 1)
    m = build("none")
    g = m.graph
    i = next(k for k, n in enumerate(g.node) if n.name == "conv2/relu")
    relu = g.node[i]
    nodes = []
    for name, value in (("lo", 0), ("hi", 6)):
        g.initializer.extend(
            [
                onnx.numpy_helper.from_array(np.array(value, np.int8), f"clip_{name}_int8"),
                onnx.numpy_helper.from_array(np.array(1.0, np.float32), f"clip_{name}_scale"),
                onnx.numpy_helper.from_array(np.array(0, np.int8), f"clip_{name}_zp"),
            ]
        )
        inputs = [f"clip_{name}_int8", f"clip_{name}_scale", f"clip_{name}_zp"]
        nodes.append(onnx.helper.make_node("DequantizeLinear", inputs, [f"clip_{name}"], name=f"clip_{name}/dq"))
    nodes.append(onnx.helper.make_node("Clip", [relu.input[0], "clip_lo", "clip_hi"], [relu.output[0]], name="relu6"))
    g.node.remove(relu)
    for n in reversed(nodes):
        g.node.insert(i, n)
    onnx.checker.check_model(m)
    assert _devices_of(m)["conv2"] == ("dpu", "conv 3x3 s1 (conv engine)")


def test_a_requantization_of_a_tensor_made_on_the_cpu_takes_its_q_dq_pair_along(tmp_path):
    # the sigmoid's quantized output requantized before conv2: the DPU subgraph quantizes the float it reads
    m = build("sigmoid")
    g = m.graph
    i = next(k for k, n in enumerate(g.node) if n.name == "conv2")
    g.node[i].input[0] = "rq"
    g.initializer.extend(
        [
            onnx.numpy_helper.from_array(np.array(2.0 ** -FP["rq"], np.float32), "rq_scale"),
            onnx.numpy_helper.from_array(np.array(0, np.int8), "rq_zp"),
        ]
    )
    g.node.insert(i, onnx.helper.make_node("DequantizeLinear", ["rq_int8", "rq_scale", "rq_zp"], ["rq"], name="rq/dq"))
    g.node.insert(i, onnx.helper.make_node("QuantizeLinear", ["mid", "rq_scale", "rq_zp"], ["rq_int8"], name="rq/q"))
    path = tmp_path / "m.onnx"
    onnx.save(m, str(path))
    result = split_model(SplitOptions(path, CONFIG, tmp_path / "plan"))
    assert _devices(result.plan) == ["dpu", "cpu", "dpu", "cpu"]
    assert _rows(result)["rq/q"]["device"] == "dpu"
    dpu1 = result.plan.subgraphs[2]
    assert [(t.name, t.fix_point) for t in dpu1.inputs] == [("mid_float", FP["mid"])]


def test_a_unit_is_refused_for_its_first_fused_activation_the_dpu_cannot_run():
    # conv2 -> LeakyRelu(0.2) -> LeakyRelu(0.3), one unit: the reason names the first (the 0.3 one was named)
    m = build("leaky")
    g = m.graph
    i = next(k for k, n in enumerate(g.node) if n.name == "conv2/leaky")
    g.node[i].output[0] = "leaky_float"
    second = onnx.helper.make_node("LeakyRelu", ["leaky_float"], ["conv2_float"], name="conv2/leaky2", alpha=0.3)
    g.node.insert(i + 1, second)
    device, reason = _devices_of(m)["conv2"]
    assert device == "cpu" and "slope 0.2" in reason and "slope 0.3" not in reason


@pytest.mark.parametrize("act", ["Relu", "Sigmoid", "Clip", "LeakyRelu"])
def test_sizes_read_from_an_activation_of_the_logits_are_the_logits_sizes(act):
    """A Softmax over (N, J, H * W) of the logits, reshaped back with the sizes of an activation of them (torch:
    `b, j, h, w = torch.relu(y).shape` after `y.view(b, j, h * w)` of y's own): an element-wise op keeps its
    input's shape, so both reshapes name the same sizes. They were taken as sizes of two unrelated tensors,
    'other values than a map', and such a model's flat softmax lost its confidence and --decode local. One of
    two different tensors' sizes (a strided conv's) still counts as another size."""
    from dpupose.split.plan import heatmaps_not_normalized

    def sizes(of: str, prefix: str) -> dict:
        graph = {f"{prefix}s": ("Shape", f"{prefix}shape", [of], {})}
        for k in range(4):
            graph[f"{prefix}{k}"] = ("Gather", f"{prefix}g{k}", [f"{prefix}s", f"at{k}"], {"axis": 0})
        return graph

    constants = {f"at{k}": np.array(k, np.int64) for k in range(4)}
    graph = {
        **sizes("y", "y"),
        "hw": ("Mul", "hw", ["y2", "y3"], {}),
        "flat_shape": ("Concat", "fc", ["y0", "y1", "hw"], {"axis": 0}),
        "flat": ("Reshape", "flat", ["y", "flat_shape"], {}),
        "sm": ("Softmax", "s", ["flat"], {"axis": -1}),
        "z": (act, "act", ["y"], {}),
        **sizes("z", "z"),
        "map_shape": ("Concat", "mc", ["z0", "z1", "z2", "z3"], {"axis": 0}),
        "h": ("Reshape", "back", ["sm", "map_shape"], {}),
    }
    assert heatmaps_not_normalized("h", graph, opset=17, constants=constants) == (None, None)
    graph["z"] = ("Conv", "strided", ["y", "w"], {})
    got, _ = heatmaps_not_normalized("h", graph, opset=17, constants=constants)
    assert got is not None and "(other values than a map)" in got


def _shape_of(of: str, prefix: str, start: int = 0) -> dict:
    """Shape(of) (from `start`) and a Gather of each of its values at at0, at1...: {prefix}0, {prefix}1..."""
    graph = {f"{prefix}s": ("Shape", f"{prefix}shape", [of], {"start": start} if start else {})}
    for k in range(4 - start):
        graph[f"{prefix}{k}"] = ("Gather", f"{prefix}g{k}", [f"{prefix}s", f"at{k}"], {"axis": 0})
    return graph


# y: the logits, made by a Conv (sizes not known here); h = Reshape(Softmax(Reshape(y, flat_shape)), map_shape)
_BACK = {
    "y": ("Conv", "conv", ["x", "w"], {}),
    **_shape_of("y", "y"),
    "map_shape": ("Concat", "mc", ["y0", "y1", "y2", "y3"], {"axis": 0}),
    "h": ("Reshape", "back", ["sm", "map_shape"], {}),
    "sm": ("Softmax", "s", ["flat"], {"axis": -1}),
    "flat": ("Reshape", "flat", ["y", "flat_shape"], {}),
}


@pytest.mark.parametrize(
    ("graph", "why"),
    [
        # the flat shape a constant (1, 16, 16), the maps' read from y: 16 and 16 are not known to be N * J and
        # H * W, nor known not to be: taken as the maps' (as a reshape of shapes not known at all)
        ({**_BACK, "flat_shape": ("Identity", "i", ["flat16"], {})}, None),
        # a Shape from axis 1 (start): its first value is J, not N
        (
            {
                **_BACK,
                **_shape_of("y", "j", start=1),
                "hw": ("Mul", "hw", ["y2", "y3"], {}),
                "flat_shape": ("Concat", "fc", ["y0", "j0", "hw"], {"axis": 0}),
            },
            None,
        ),
        # [N, 16, -1] of y's sizes (N, J, H, W): the -1 is J * H * W / 16, not a product of them: not known here
        (
            {
                **_BACK,
                "flat": ("Reshape", "flat", ["l", "flat_shape"], {}),
                "l": ("Reshape", "l", ["y", "map_shape"], {}),
                "flat_shape": ("Concat", "fc", ["y0", "c16", "free"], {"axis": 0}),
            },
            None,
        ),
        # through a Transpose after the Softmax the values are not in the maps' order: not known here
        (
            {
                **_BACK,
                "h": ("Reshape", "back", ["t", "map_shape"], {}),
                "t": ("Transpose", "t", ["sm"], {"perm": [0, 2, 1]}),
                "sm": ("Softmax", "s", ["flat"], {"axis": 1}),
                "flat_shape": ("Concat", "fc", ["y0", "y1", "hw"], {"axis": 0}),
                "hw": ("Mul", "hw", ["y2", "y3"], {}),
            },
            None,
        ),
    ],
)
def test_a_reshaped_softmax_reads_the_sizes_it_is_given(graph, why):
    from dpupose.split.plan import heatmaps_not_normalized

    constants = {
        **{f"at{k}": np.array(k, np.int64) for k in range(4)},
        "flat16": np.array([1, 16, 16], np.int64),
        "c16": np.array([16], np.int64),
        "free": np.array([-1], np.int64),
    }
    got, _ = heatmaps_not_normalized("h", graph, opset=17, constants=constants)
    assert got == why if why is None else why in got
    if "t" in graph:  # without the Transpose: over the joints
        graph = {**graph, "h": ("Reshape", "back", ["sm", "map_shape"], {})}
        got, _ = heatmaps_not_normalized("h", graph, opset=17, constants=constants)
        assert got is not None and "(the joints)" in got


@pytest.mark.parametrize(
    ("joints", "axis", "static", "why"),
    [
        # y.view(b, 16, h * w).softmax(-1).view(b, j, h, w) with y (N, 16, 4, 4): N * 16 is N * J
        (16, -1, (1, 16, 4, 4), None),
        (16, -1, ("batch", 16, 4, 4), None),
        # not given J, nor the maps' number of joints: N * 16 against N * J, not known to be equal (as before)
        (16, -1, None, "(other values than a map)"),
        (16, -1, ("batch", "joints", 4, 4), "(other values than a map)"),
        # y of 8 joints (4 x 8 maps): the flat shape's 16 rows of 16 values are not the 8 maps of 32
        (16, -1, (1, 8, 4, 8), "(other values than a map)"),
        # over the 16 itself: the joints
        (16, 1, (1, 16, 4, 4), "(the joints)"),
        # the joints read with Shape both times: the same as given its number
        (None, -1, (1, 16, 4, 4), None),
        (None, 1, (1, 16, 4, 4), "(the joints)"),
    ],
)
def test_a_size_read_with_shape_is_its_static_size_but_the_batch(joints, axis, static, why):
    from dpupose.split.plan import _Shapes, heatmaps_not_normalized

    graph = {
        **_BACK,
        "sm": ("Softmax", "s", ["flat"], {"axis": axis}),
        "hw": ("Mul", "hw", ["y2", "y3"], {}),
        "flat_shape": ("Concat", "fc", ["y0", "y1" if joints is None else "c16", "hw"], {"axis": 0}),
    }
    constants = {**{f"at{k}": np.array(k, np.int64) for k in range(4)}, "c16": np.array([16], np.int64)}
    shapes = {"y": static} if static else None
    got, _ = heatmaps_not_normalized("h", graph, opset=17, constants=constants, static=shapes)
    assert got == why if why is None else why in got
    # only the batch's size (axis 0) stays any size: the others are the numbers given, a str not a number
    sizes = _Shapes(graph, constants, {"y": ("batch", 16, 4, "w"), "z": (1, 16)})
    assert [sizes.size("y", i) for i in range(4)] == [(1, (("y", 0),)), (16, ()), (4, ()), (1, (("y", 3),))]
    assert sizes.size("z", 0) == (1, (("z", 0),)) and sizes.size("z", 1) == (16, ())


@pytest.mark.parametrize(
    ("axis", "static", "why"),
    [
        # y.view(b, 16, -1).softmax(axis).view(b, j, h, w) with y (N, 16, 4, 4): the -1 is 16, each map's H * W
        (-1, (1, 16, 4, 4), None),
        (2, ("batch", 16, 4, 4), None),
        (1, (1, 16, 4, 4), "(the joints)"),
        (1, ("batch", 16, 4, 4), "(the joints)"),
        # y of 8 joints (8 maps of 4 x 8): the 16 rows of 16 values are not the maps
        (-1, (1, 8, 4, 8), "(other values than a map)"),
        # y's sizes not given: the -1 is not known, taken as the maps' (as before)
        (1, None, None),
        # J given as a symbol: the -1 is J, and N * 16 not known to be N * J, as with h * w written out
        (-1, ("batch", "joints", 4, 4), "(other values than a map)"),
        (1, ("batch", "joints", 4, 4), "(other values than a map)"),
    ],
)
def test_a_minus_one_of_a_tensor_not_reshaped_is_what_its_static_shape_leaves(axis, static, why):
    from dpupose.split.plan import _Shapes, heatmaps_not_normalized

    graph = {
        **_BACK,
        "sm": ("Softmax", "s", ["flat"], {"axis": axis}),
        "flat_shape": ("Concat", "fc", ["y0", "c16", "rest"], {"axis": 0}),
    }
    constants = {
        **{f"at{k}": np.array(k, np.int64) for k in range(4)},
        "c16": np.array([16], np.int64),
        "rest": np.array([-1], np.int64),
    }
    shapes = {"y": static} if static else None
    got, _ = heatmaps_not_normalized("h", graph, opset=17, constants=constants, static=shapes)
    assert got == why if why is None else why in got
    if static == (1, 16, 4, 4):  # y's dims: its static shape, the batch any size; the -1 what N * 16 leaves
        sizes = _Shapes(graph, constants, shapes)
        assert sizes.dims("y") == [(1, (("y", 0),)), (16, ()), (4, ()), (4, ())]
        assert sizes.dims("flat") == [(1, (("y", 0),)), (16, ()), (16, ())]


def test_a_slice_of_a_shape_is_that_run_of_sizes_and_nothing_else_is_read():
    # y (N, 16, 4, 8) with its static shape: Shape(y) sliced. torch's flatten(2) is Shape(y)[0:2] (inputs from
    # opset 10, attributes before); a negative end counts from the end (ONNX's rule, Python's too); another
    # axis or step, or a start not a constant, is not read here (None: not known)
    from dpupose.split.plan import _Shapes

    n = (1, (("y", 0),))
    graph = {
        "sh": ("Shape", "sh", ["y"], {}),
        "s10": ("Slice", "s10", ["sh", "c0", "c2"], {}),
        "s10_axes": ("Slice", "s10a", ["sh", "c1", "c9", "c0", "c1"], {}),
        "s10_neg": ("Slice", "s10n", ["sh", "c1", "cm1"], {}),
        "s9": ("Slice", "s9", ["sh"], {"starts": [2], "ends": [4]}),
        "step2": ("Slice", "st2", ["sh", "c0", "c9", "c0", "c2"], {}),
        "var": ("Slice", "var", ["sh", "sh", "c2"], {}),
        "axis1": ("Slice", "ax1", ["sh", "c0", "c2", "c1"], {}),
    }
    constants = {f"c{k}": np.array([k], np.int64) for k in (0, 1, 2, 9)} | {"cm1": np.array([-1], np.int64)}
    sizes = _Shapes(graph, constants, {"y": (1, 16, 4, 8)})
    assert sizes.values("s10") == [n, (16, ())]
    assert sizes.values("s10_axes") == [(16, ()), (4, ()), (8, ())]
    assert sizes.values("s10_neg") == [(16, ()), (4, ())]
    assert sizes.values("s9") == [(4, ()), (8, ())]
    assert sizes.values("step2") is None and sizes.values("var") is None and sizes.values("axis1") is None


def test_a_shape_from_an_axis_of_known_sizes_starts_there():
    # maps (1, 16, 4, 8) of a constant reshape; the flat shape [1, 16, H * W] with H and W read by Shape(l, start=2):
    # [4, 8], so H * W is 32, each map's values (from axis 0 it would be 1 * 16, not the maps' 32)
    from dpupose.split.plan import heatmaps_not_normalized

    graph = {
        "h": ("Reshape", "r", ["sm", "k"], {}),
        "sm": ("Softmax", "s", ["f"], {"axis": -1}),
        "f": ("Reshape", "r0", ["l", "flat"], {}),
        "l": ("Reshape", "rl", ["c", "k"], {}),
        **_shape_of("l", "l", start=2),
        "hw": ("Mul", "hw", ["l0", "l1"], {}),
        "flat": ("Concat", "fc", ["nj", "hw"], {"axis": 0}),
    }
    constants = {
        **{f"at{k}": np.array(k, np.int64) for k in range(4)},
        "k": np.array([1, 16, 4, 8], np.int64),
        "nj": np.array([1, 16], np.int64),
    }
    assert heatmaps_not_normalized("h", graph, opset=17, constants=constants) == (None, None)


def _div_by_unsqueezed_sum(back: list[int], between: dict | None = None) -> dict:
    unsqueezed_from = "i" if between else "s"
    return {
        "h": ("Div", "d", ["e", "u"], {}),
        "u": ("Unsqueeze", "un", [unsqueezed_from, "back"], {}),
        "s": ("ReduceSum", "rs", ["e", "axes"], {"keepdims": 0}),
        **(between or {}),
        **_EXP,
    }


@pytest.mark.parametrize(
    ("graph", "back", "why"),
    [
        # an Identity between the sum and its Unsqueeze passes the sums on
        (_div_by_unsqueezed_sum([2, 3], {"i": ("Identity", "id", ["s"], {})}), [2, 3], None),
        # the sums given three axes back, (N, J, 1, 1, 1): more axes than the maps, though each is 2 or 3 mod 4
        (_div_by_unsqueezed_sum([-2, -1, 2]), [-2, -1, 2], "at axes [-2, -1, 2], not the summed ones"),
    ],
)
def test_a_sum_given_its_axes_back_through_an_identity_or_at_three_axes(graph, back, why):
    from dpupose.split.plan import heatmaps_not_normalized

    constants = {"axes": np.array([2, 3], np.int64), "back": np.array(back, np.int64)}
    got, _ = heatmaps_not_normalized("h", graph, opset=17, constants=constants)
    assert got == why if why is None else why in got


# --- found by a mutation audit of the Slice reading and the CPU subgraphs' value_info --------------------------


def test_a_slice_of_a_shape_at_axis_minus_one_is_that_run_of_sizes():
    # a shape is 1-D, so its axis -1 is its axis 0: Slice(Shape(y), [1], [9], axes=[-1]) is sizes 1 on, as numpy's
    # slice of y's shape (the batch still any size, as in every run read from Shape)
    from dpupose.split.plan import _Shapes

    graph = {
        "sh": ("Shape", "sh", ["y"], {}),
        "s10": ("Slice", "s10", ["sh", "c1", "c9", "cm1"], {}),
        "s9": ("Slice", "s9", ["sh"], {"starts": [0], "ends": [2], "axes": [-1]}),
    }
    constants = {f"c{k}": np.array([k], np.int64) for k in (1, 9)} | {"cm1": np.array([-1], np.int64)}
    static = (1, 16, 4, 8)
    sizes = _Shapes(graph, constants, {"y": static})
    assert sizes.values("s10") == [(v, ()) for v in np.array(static)[1:9]]
    assert sizes.values("s9") == [(1, (("y", 0),)), (16, ())]


def test_a_dpu_subgraph_file_gets_no_value_info_though_it_reshapes(tmp_path):
    # the value_info of the tensors whose sizes a Reshape, Flatten, Shape or Softmax reads is for the heatmaps check,
    # which reads CPU subgraphs only: a DPU subgraph's file keeps the source's nodes and nothing more, though its
    # Reshape (op_model's gemm_alpha, c1 flattened on the DPU) reads a tensor made inside it; the CPU one has them
    path = tmp_path / "m.onnx"
    onnx.save(op_model("gemm_alpha"), path)
    result = split_model(SplitOptions(path, CONFIG, tmp_path / "plan"))
    files = {sg.device: onnx.load(tmp_path / "plan" / sg.file) for sg in result.plan.subgraphs}
    assert "Reshape" in [n.op_type for n in files["dpu"].graph.node]
    assert list(files["dpu"].graph.value_info) == []
    assert {"logits", "flat"} <= {v.name for v in files["cpu"].graph.value_info}


@pytest.mark.parametrize(
    ("axes", "shown"), [({2: "h", 3: "w"}, "h, w"), ({1: "c"}, "c"), ({3: ""}, "?"), ({2: 0}, "0")]
)
def test_a_symbolic_size_past_the_batch_is_refused_naming_the_input_and_axis(tmp_path, axes, shown):
    """The model with its height and width, or its channels, symbolic (torch.onnx.export's dynamic_axes) was
    refused by shape inference as 'graph input 'image' needs a static shape', naming neither the file nor the
    axis nor how to export it; the same model at fixed sizes splits. Refused first, naming all three."""
    assert split_model(SplitOptions(_edited(tmp_path, lambda g: None), CONFIG, tmp_path / "fixed")).plan.subgraphs

    def symbolic(g) -> None:
        dims = g.input[0].type.tensor_type.shape.dim
        dims[0].dim_param = "N"
        for axis, name in axes.items():
            if name == 0:  # a size of 0, some writers' unknown one
                dims[axis].dim_value = 0
            else:
                dims[axis].dim_param = name

    model = _edited(tmp_path, symbolic)
    declared = ["N", 3, S, S]
    for axis, name in axes.items():
        declared[axis] = name if name == 0 else name or "?"
    with pytest.raises(ModelFileError) as err:
        split_model(SplitOptions(model, CONFIG, tmp_path / "plan"))
    assert str(err.value) == (
        f"{model}: input 'image' {tuple(declared)} has a size that is not fixed ({shown}): the DPU runs fixed sizes "
        "only (the batch alone may be symbolic); export the model with the size the DPU will run "
        "(torch.onnx.export's dynamic_axes for the batch alone: {'image': {0: 'batch'}})"
    )
    assert not (tmp_path / "plan").exists()


def test_an_input_of_a_zero_size_past_the_batch_is_refused_as_not_fixed(tmp_path):
    """A size of 0 (a dim_value of 0, which no image has) is no fixed size either: refused as a symbolic one is,
    naming the axis, before shape inference."""

    def zero(g) -> None:
        g.input[0].type.tensor_type.shape.dim[2].dim_value = 0

    model = _edited(tmp_path, zero)
    with pytest.raises(ModelFileError) as err:
        split_model(SplitOptions(model, CONFIG, tmp_path / "plan"))
    assert str(err.value).startswith(f"{model}: input 'image' ('batch', 3, 0, {S}) has a size that is not fixed (0): ")
    assert not (tmp_path / "plan").exists()


def test_a_batch_of_zero_is_refused_naming_the_file_and_the_export(tmp_path):
    """A batch written as 0 (a size some writers give an unknown one) passed the check of the other sizes and
    stopped shape inference with 'graph input 'image' needs a static shape (batch may be symbolic)', naming
    neither the file nor the axis; the same model at a batch of 1 splits."""

    def zero(g) -> None:
        g.input[0].type.tensor_type.shape.dim[0].dim_value = 0

    model = _edited(tmp_path, zero)
    with pytest.raises(ModelFileError) as err:
        split_model(SplitOptions(model, CONFIG, tmp_path / "plan"))
    assert str(err.value) == (
        f"{model}: input 'image' (0, 3, {S}, {S}) has a batch of 0, which holds no image: export the model with a "
        "batch of 1 or a symbolic one (torch.onnx.export's dynamic_axes for the batch: {'image': {0: 'batch'}})"
    )
    assert not (tmp_path / "plan").exists()
    assert split_model(SplitOptions(_edited(tmp_path, lambda g: None), CONFIG, tmp_path / "plan")).plan.subgraphs


def test_initializers_listed_as_inputs_are_not_checked_as_the_image(tmp_path):
    """An exporter's keep_initializers_as_inputs lists every weight among the graph's inputs, an empty one (a
    Resize's roi) at a first size of 0: the fixed-size and batch checks are of the image, not of those."""

    def as_inputs(g) -> None:
        g.initializer.append(onnx.numpy_helper.from_array(np.zeros((0,), np.float32), "roi"))
        for init in g.initializer:
            g.input.append(onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))

    listed = split_model(SplitOptions(_edited(tmp_path, as_inputs), CONFIG, tmp_path / "listed")).plan
    plain = split_model(SplitOptions(_edited(tmp_path, lambda g: None), CONFIG, tmp_path / "plain")).plan
    assert [(sg.name, sg.device) for sg in listed.subgraphs] == [(sg.name, sg.device) for sg in plain.subgraphs]


@pytest.mark.parametrize("num", [2, 3])
def test_deploy_check_against_ort_of_a_subgraph_at_a_fixed_batch_of_two(tmp_path, capsys, num):
    """ONNX Runtime's side of deploy-check ran one sample at a time, which a file exported at a fixed batch of 2
    refuses: 'Got invalid dimensions for input: image ... Got: 1 Expected: 2' and a traceback, whatever --num.
    It runs in twos (the last padded, its outputs dropped) and reports what the same subgraph with a symbolic
    batch reports."""
    symbolic = _dpu0_with_input_size(tmp_path / "a", 0, "batch")
    fixed = _dpu0_with_input_size(tmp_path / "b", 0, 2)
    reports = []
    for path in (symbolic, fixed):
        report = path.parent / "report.json"
        assert main(["deploy-check", str(path), "--num", str(num), "--against", "ort", "--json", str(report)]) == 0
        reports.append(json.loads(report.read_text()))
    capsys.readouterr()
    assert reports[0]["layers"] and reports[1]["layers"] == reports[0]["layers"]
