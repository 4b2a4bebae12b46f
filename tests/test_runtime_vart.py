"""VartRunner, the board backend and the fingerprint guard, against recording fakes of pynq_dpu/vart/xir."""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
import logging
import os
import subprocess
import sys
import weakref
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import tinyplan
from onnx import TensorProto, helper, numpy_helper
from tinyplan import make_overlay

from dpupose.errors import DataError, DeviceError, FingerprintMismatch, ModelFileError, ToolNotFoundError, UsageError
from dpupose.runtime import backends, vart_runner
from dpupose.runtime.backends import RunnerFactory, resolve_backend
from dpupose.runtime.base import TensorInfo
from dpupose.runtime.executor import SplitExecutor, preprocess
from dpupose.runtime.frames import Frame
from dpupose.runtime.guard import VITIS_AI_25_TARGETS, arch_fingerprint, describe
from dpupose.runtime.pipeline import Pipeline
from dpupose.split.plan import load_plan

BOARD_MODULES = ("fakeboard", "vart", "xir", "pynq_dpu")
PLAN_FP = int(tinyplan.FINGERPRINT, 0)
OTHER_FP = 0x101000016010405  # u96v2-b2304-avnet (and -dsphigh: DSP use does not change it)


def fresh_board_modules(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    for name in BOARD_MODULES:
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.syspath_prepend(str(tinyplan.FAKES))
    monkeypatch.setattr(vart_runner, "_overlay", {})
    monkeypatch.setattr(vart_runner, "VART_CONF", tmp_path / "vart.conf")
    monkeypatch.setattr(vart_runner, "VART_LOCK_DIR", tmp_path)
    monkeypatch.setattr(vart_runner, "_live_runners", weakref.WeakSet())
    import fakeboard

    fakeboard.reset()
    fakeboard.STATE["lock_dir"] = tmp_path  # VART's lock files, where the runtime looks for them
    return fakeboard


@pytest.fixture()
def board(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The fake board modules importable as pynq_dpu / vart / xir, with a fresh call record, in PYNQ's
    environment (XILINX_XRT set, as /etc/profile.d/xrt_setup.sh does)."""
    monkeypatch.setenv("XILINX_XRT", "/usr")
    fake = fresh_board_modules(monkeypatch, tmp_path)
    yield fake
    fake.reset()  # lets the DPU lock go, as the process's end does
    for name in BOARD_MODULES:
        sys.modules.pop(name, None)


def frames(n: int) -> list[Frame]:
    rng = np.random.default_rng(3)
    return [Frame(i, rng.integers(0, 256, (30, 40, 3), dtype=np.uint8), f"f{i}") for i in range(n)]


def requant_model(path: Path, fp_in: int, fp_out: int, shape_nchw: tuple[int, ...]) -> Path:
    """x -> Q/DQ at 2**-fp_in -> Q/DQ at 2**-fp_out -> y (a DPU subgraph that only requantizes)."""
    inits = []
    for name, fp in (("a", fp_in), ("b", fp_out)):
        inits += [numpy_helper.from_array(np.array(2.0**-fp, np.float32), f"{name}_s")]
        inits += [numpy_helper.from_array(np.array(0, np.int8), f"{name}_z")]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "a_s", "a_z"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "a_s", "a_z"], ["xd"]),
        helper.make_node("QuantizeLinear", ["xd", "b_s", "b_z"], ["yq"]),
        helper.make_node("DequantizeLinear", ["yq", "b_s", "b_z"], ["y"]),
    ]
    vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(shape_nchw)) for n in ("x", "y")]
    model = helper.make_model(helper.make_graph(nodes, "requant", vi[:1], vi[1:], inits))
    model.opset_import[0].version = 17
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_runner_passes_int8_nhwc_with_the_xmodels_fix_points(board, tmp_path: Path) -> None:
    requant_model(tmp_path / "rq.onnx", 3, 1, (1, 4, 2, 3))
    board.write_fake_xmodel(
        tmp_path / "rq.xmodel",
        [
            {"name": "sg", "device": "DPU", "fingerprint": PLAN_FP, "onnx": "rq.onnx",
             "inputs": [{"name": "x_fix", "dims": [1, 2, 3, 4], "fix_point": 3, "onnx_name": "x"}],
             "outputs": [{"name": "y_fix", "dims": [1, 2, 3, 4], "fix_point": 1, "onnx_name": "y"}]},
        ],
    )  # fmt: skip
    vart_runner.load_overlay(make_overlay(tmp_path / "ov"))
    runner = vart_runner.VartRunner(vart_runner.Xmodel(tmp_path / "rq.xmodel"))
    assert runner.inputs == [TensorInfo("x_fix", (1, 2, 3, 4), "int8", 3, "NHWC")]
    assert runner.outputs == [TensorInfo("y_fix", (1, 2, 3, 4), "int8", 1, "NHWC")]
    x = np.array([v for v in range(-128, 128, 5) if v % 4 != 2][:24], np.int8).reshape(1, 2, 3, 4)
    y = runner.run({"x_fix": x})["y_fix"]
    assert y.dtype == np.int8 and y.shape == (1, 2, 3, 4)
    # real value x * 2**-3 expressed at 2**-1: x / 4 (no rounding ties among these x)
    np.testing.assert_array_equal(y, np.rint(x / 4))
    execs = [c for c in board.CALLS if c[0] == "execute_async"]
    assert execs == [("execute_async", "sg", execs[0][2], ((1, 2, 3, 4),), ("int8",), ((1, 2, 3, 4),), ("int8",))]
    # DataError, as the CLI reports in one line (another type was a traceback)
    with pytest.raises(DataError, match=r"^sg: input 'x_fix' must be int8 \(quantize by its fix_point\)$"):
        runner.run({"x_fix": x.astype(np.float32)})  # no float conversion inside VART
    with pytest.raises(DataError, match=r"^sg: input 'x_fix' is \(1, 3, 2, 4\), expected \(N, 2, 3, 4\) NHWC$"):
        runner.run({"x_fix": x.reshape(1, 3, 2, 4)})  # the shape as it is, not (N, (2, 3, 4))
    # VART's binding asks for writable buffers, inputs too: a read-only feed is copied, not refused
    frozen = x.copy()
    frozen.setflags(write=False)
    np.testing.assert_array_equal(runner.run({"x_fix": frozen})["y_fix"], y)
    assert [c[2] for c in board.CALLS if c[0] == "wait"] == [c[2] for c in board.CALLS if c[0] == "execute_async"]


def test_split_plan_on_the_fake_board(board, tmp_path: Path) -> None:
    """Two DPU subgraphs of one xmodel (pynq_dpu's load_model would refuse it), CPU parts in between:
    overlay once and first, one runner per DPU subgraph (and per extra pipelined job), every job waited,
    int8 buffers of the xmodel's dims, results equal to the int8 stand-in on the same QDQ files."""
    tinyplan.write_split_plan(tmp_path / "plan", xmodel=True)
    plan = load_plan(tmp_path / "plan")
    factory = RunnerFactory(plan, "vart", overlay=make_overlay(tmp_path / "ov"))
    ex = SplitExecutor(plan, factory.create_all())
    inputs = frames(6)
    sequential = [ex.process(f) for f in inputs]
    pipe = Pipeline(ex, factory.create, dpu_jobs=2)
    pipelined = list(pipe.run(iter(inputs)))
    reference = SplitExecutor(plan, RunnerFactory(plan, "emulate", dpu_runner=tinyplan.QdqInt8Runner).create_all())
    for f, a, b in zip(inputs, sequential, pipelined, strict=True):
        expected = reference.infer(f.image)["coords"].reshape(16, 2)
        np.testing.assert_array_equal(a.coords, expected)
        np.testing.assert_array_equal(b.coords, expected)

    calls = board.CALLS
    kinds = [c[0] for c in calls]
    assert kinds.count("DpuOverlay") == 1 and kinds.index("DpuOverlay") < kinds.index("create_runner")
    assert [c[1] for c in calls if c[0] == "create_runner"] == ["subgraph_conv0", "subgraph_conv1"] * 2
    assert {c[2] for c in calls if c[0] == "create_runner"} == {"run"}
    assert kinds.count("deserialize") == 1  # one xmodel, deserialized once for both subgraphs
    execs = {c[2]: c for c in calls if c[0] == "execute_async"}
    waits = [c[2] for c in calls if c[0] == "wait"]
    assert len(execs) == 2 * 12 and sorted(waits) == sorted(execs)  # every job waited exactly once
    assert all(calls.index(("wait", e[1], j)) > calls.index(e) for j, e in execs.items())
    assert board.unwaited_jobs() == []
    dims = {
        "subgraph_conv0": (((1, 32, 32, 3),), ((1, 16, 16, 8),)),
        "subgraph_conv1": (((1, 16, 16, 8),), ((1, 8, 8, 16),)),
    }
    for e in execs.values():
        assert (e[3], e[5]) == dims[e[1]] and e[4] == ("int8",) and e[6] == ("int8",)

    import pynq_dpu

    with pytest.raises(AssertionError):  # why the runtime does not use DpuOverlay.load_model
        pynq_dpu.DpuOverlay(str(tmp_path / "ov" / "dpu.bit")).load_model(str(tmp_path / "plan" / "tiny.xmodel"))


def test_a_model_output_from_a_dpu_subgraph_on_the_fake_board(board, tmp_path: Path) -> None:
    """A plan whose heatmaps are a DPU subgraph's output (a conv's, no op after it): VART returns them as
    int8 NHWC, and the runtime hands them out as float32 NCHW, ONNX Runtime's on the whole model, sequential
    and pipelined; the CPU subgraph computes the coords from them."""
    import dataclasses

    from split_models import FP, S, conv_heatmaps_model

    from dpupose.split.partition import SplitOptions, split_model
    from dpupose.split.plan import save_plan

    path = conv_heatmaps_model(tmp_path / "m.onnx")
    plan = split_model(SplitOptions(path, "u96v2-b1600-pynq", tmp_path / "plan")).plan
    dpu0, cpu0 = plan.subgraphs
    h = S // 4
    board.write_fake_xmodel(
        tmp_path / "plan" / "m.xmodel",
        [
            {"name": "subgraph_conv1", "device": "DPU", "fingerprint": plan.fingerprint_int(), "onnx": "dpu0.onnx",
             "inputs": [{"name": "image_fix", "dims": [1, S, S, 3], "fix_point": FP["image"], "onnx_name": "image"}],
             "outputs": [{"name": "logits_fix", "dims": [1, h, h, 16], "fix_point": FP["logits"],
                          "onnx_name": "logits"}]},
        ],
    )  # fmt: skip
    dpu0 = dataclasses.replace(dpu0, xmodel="m.xmodel", xmodel_subgraph="subgraph_conv1")
    save_plan(dataclasses.replace(plan, subgraphs=(dpu0, cpu0)), tmp_path / "plan")
    plan = load_plan(tmp_path / "plan")
    factory = RunnerFactory(plan, "vart", overlay=make_overlay(tmp_path / "ov", plan.fingerprint_int()))
    ex = SplitExecutor(plan, factory.create_all())
    whole = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = frames(3)
    pipelined = list(Pipeline(ex, factory.create, dpu_jobs=2).run(iter(inputs)))
    for f, piped in zip(inputs, pipelined, strict=True):
        x = preprocess(f.image, S).tensor
        logits, coords = whole.run(["logits", "coords"], {"image": x})
        out = ex.infer(f.image)
        assert out["heatmaps"].dtype == np.float32 and out["heatmaps"].shape == (1, 16, h, h)
        np.testing.assert_allclose(out["heatmaps"], logits, atol=1e-6)
        np.testing.assert_allclose(out["coords"], coords, atol=1e-6)
        np.testing.assert_array_equal(piped.coords, out["coords"].reshape(16, 2))
    execs = [c for c in board.CALLS if c[0] == "execute_async"]
    assert execs and all(e[5] == ((1, h, h, 16),) and e[6] == ("int8",) for e in execs)


def test_xmodel_fix_points_win_over_the_plans(board, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An xmodel whose tensors have other fix points than the plan: the runtime scales by the xmodel's
    (what the DPU uses) and says so; the result is that of a DPU runner with those fix points."""
    tinyplan.write_split_plan(tmp_path / "plan", xmodel=True)
    tinyplan.write_xmodel(tmp_path / "plan" / "tiny.xmodel", PLAN_FP, fp_shift=1)
    plan = load_plan(tmp_path / "plan")
    with caplog.at_level(logging.WARNING):
        ex = SplitExecutor(plan, RunnerFactory(plan, "vart", overlay=make_overlay(tmp_path / "ov")).create_all())
    assert "has fix_point 6 in the xmodel but 5 in the plan; using the xmodel's" in caplog.text
    shifted = RunnerFactory(plan, "emulate", dpu_runner=lambda p: tinyplan.QdqInt8Runner(p, fp_shift=1))
    reference = SplitExecutor(plan, shifted.create_all())
    for f in frames(3):
        np.testing.assert_array_equal(ex.infer(f.image)["coords"], reference.infer(f.image)["coords"])


def test_dpu_batch_larger_than_one_is_padded(board, tmp_path: Path) -> None:
    tinyplan.write_split_plan(tmp_path / "plan", xmodel=True)
    tinyplan.write_xmodel(tmp_path / "plan" / "tiny.xmodel", PLAN_FP, batch=3)
    plan = load_plan(tmp_path / "plan")
    ex = SplitExecutor(plan, RunnerFactory(plan, "vart", overlay=make_overlay(tmp_path / "ov")).create_all())
    out = ex.infer(frames(1)[0].image)
    assert out["coords"].shape == (1, 16, 2)
    shapes = {c[3][0] for c in board.CALLS if c[0] == "execute_async"}
    assert shapes == {(3, 32, 32, 3), (3, 16, 16, 8)}


def test_vart_backend_off_the_board_says_where_it_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "pynq_dpu", None)  # import fails as on a PC
    tinyplan.write_split_plan(tmp_path / "plan", xmodel=True)
    with pytest.raises(
        ToolNotFoundError,
        match=r"with pynq-dpu installed; on a PC use the emulate backend \(--backend emulate; backend=\"emulate\"",
    ):
        RunnerFactory(load_plan(tmp_path / "plan"), "vart", overlay=make_overlay(tmp_path / "ov"))


def test_vart_backend_needs_compiled_xmodels_and_an_overlay(board, tmp_path: Path) -> None:
    tinyplan.write_split_plan(tmp_path / "plan")  # no xmodel
    plan = load_plan(tmp_path / "plan")
    with pytest.raises(UsageError, match="needs the DPU overlay: pass --overlay"):
        RunnerFactory(plan, "vart")
    with pytest.raises(ModelFileError, match="'dpu0' has no compiled xmodel.*split again with --xmodel.*--backend cpu"):
        RunnerFactory(plan, "vart", overlay=make_overlay(tmp_path / "ov"))
    (tmp_path / "ov" / "dpu.hwh").unlink()
    with pytest.raises(ModelFileError, match=r"needs dpu\.hwh beside it"):
        RunnerFactory(plan, "vart", overlay=tmp_path / "ov")


def test_an_xmodel_other_than_the_one_split_recorded_is_refused_before_the_dpu(board, tmp_path: Path, capsys) -> None:
    """Another compile copied over the plan's .xmodel under its name (another checkpoint or width: the same
    fingerprint and tensors, other weights and fix points) ran on the DPU without a word. `split --xmodel`
    records the sha256 of the one it copied; `dpupose run --backend vart` refuses another in one line, before
    the xmodel is deserialized or the DPU programmed, and runs the recorded one."""
    import cv2

    from dpupose.cli import main

    plan = tinyplan.write_split_plan(tmp_path / "plan", xmodel=True)
    xmodel = tmp_path / "plan" / "tiny.xmodel"
    recorded = xmodel.read_bytes()
    doc = json.loads((tmp_path / "plan" / "plan.json").read_text())
    for sg in doc["subgraphs"]:  # as split --xmodel writes it
        if "xmodel" in sg:
            sg["xmodel_sha256"] = hashlib.sha256(recorded).hexdigest()
    (tmp_path / "plan" / "plan.json").write_text(json.dumps(doc))
    tinyplan.write_xmodel(xmodel, PLAN_FP, fp_shift=1)  # another compile: other fix points, the same name
    assert xmodel.read_bytes() != recorded
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "0.png"), np.zeros((30, 40, 3), np.uint8))
    overlay = make_overlay(tmp_path / "ov", PLAN_FP)
    args = ["run", "--plan", str(tmp_path / "plan"), "--backend", "vart", "--overlay", str(overlay)]
    args += ["--source", str(tmp_path / "images"), "--out", str(tmp_path / "out")]
    assert main(args) == 2
    assert capsys.readouterr().err == (
        f"dpupose: error: {tmp_path / 'plan' / 'plan.json'}: {xmodel} is not the .xmodel subgraph 'dpu0' was split "
        "with (sha256 differs: another compile copied over it, or a copy cut short), which VART would run with no "
        "error and wrong keypoints; copy the plan folder again, or split the model again the same way with "
        f"--xmodel the .xmodel to use (`dpupose split MODEL --out {tmp_path / 'plan'} --xmodel NAME.xmodel`, "
        "docs/quantization.md)\n"
    )
    assert board.CALLS == []  # neither deserialized nor the DPU programmed
    xmodel.write_bytes(recorded)
    assert main(args) == 0
    assert len((tmp_path / "out" / "keypoints.jsonl").read_text().splitlines()) == 1
    assert [c[0] for c in board.CALLS].count("deserialize") == 1
    assert load_plan(tmp_path / "plan").subgraphs == tuple(
        dataclasses.replace(sg, xmodel_sha256=hashlib.sha256(recorded).hexdigest() if sg.xmodel else None)
        for sg in plan.subgraphs
    )


# --- fingerprint guard ----------------------------------------------------------------------------------


def test_overlay_mismatch_names_both_and_the_fix_before_programming(board, tmp_path: Path) -> None:
    tinyplan.write_split_plan(tmp_path / "plan", xmodel=True)
    overlay = make_overlay(tmp_path / "ov", OTHER_FP)
    with pytest.raises(FingerprintMismatch) as e:
        RunnerFactory(load_plan(tmp_path / "plan"), "vart", overlay=overlay)
    msg = str(e.value)
    assert f"0x{PLAN_FP:x}" in msg and f"0x{OTHER_FP:x}" in msg
    assert str(tmp_path / "plan" / "plan.json") in msg and str(overlay / "arch.json") in msg
    assert "make hw DPU=u96v2-b1600-pynq" in msg and "re-split" in msg
    assert "(B2304, 2 bank groups" in msg and "configuration u96v2-b2304-avnet or u96v2-b2304-dsphigh" in msg
    assert "DpuOverlay" not in [c[0] for c in board.CALLS]


def test_xmodel_mismatch_names_the_subgraph_attribute(board, tmp_path: Path) -> None:
    tinyplan.write_split_plan(tmp_path / "plan", xmodel=True)
    tinyplan.write_xmodel(tmp_path / "plan" / "tiny.xmodel", OTHER_FP)
    with pytest.raises(FingerprintMismatch) as e:
        RunnerFactory(load_plan(tmp_path / "plan"), "vart", overlay=make_overlay(tmp_path / "ov"))
    msg = str(e.value)
    assert "tiny.xmodel, DPU subgraph 'subgraph_conv0' attribute dpu_fingerprint" in msg
    assert f"0x{OTHER_FP:x}" in msg and "recompile the xmodel" in msg


def test_missing_arch_json_or_attribute_warns_and_runs(board, tmp_path: Path, caplog) -> None:
    tinyplan.write_split_plan(tmp_path / "plan", xmodel=True)
    tinyplan.write_xmodel(tmp_path / "plan" / "tiny.xmodel", None)
    overlay = make_overlay(tmp_path / "ov", fingerprint=None)
    with caplog.at_level(logging.WARNING):
        factory = RunnerFactory(load_plan(tmp_path / "plan"), "vart", overlay=overlay)
    assert f"no arch.json (looked at {overlay / 'arch.json'})" in caplog.text
    assert "has no dpu_fingerprint attribute" in caplog.text
    assert len(factory.guard.skipped) == 3 and factory.guard.checked == {}
    summary = factory.guard.summary()  # nothing compared: no "match"
    assert "compared with nothing; not checked: overlay" in summary and "match" not in summary
    factory.create_all()


def test_emulate_backend_checks_an_overlay_when_given(tmp_path: Path) -> None:
    tinyplan.write_split_plan(tmp_path / "plan")
    plan = load_plan(tmp_path / "plan")
    with pytest.raises(FingerprintMismatch, match="overlay"):
        RunnerFactory(plan, "cpu", overlay=make_overlay(tmp_path / "ov", OTHER_FP))
    ok = RunnerFactory(plan, "cpu", overlay=make_overlay(tmp_path / "ov2"))
    assert list(ok.guard.checked.values()) == [PLAN_FP]
    assert ok.guard.summary().startswith("DPU fingerprints match: plan 0x")
    # An overlay path that is not there, or not an overlay, is an error, not a skipped check.
    with pytest.raises(UsageError, match="--overlay .*nowhere does not exist"):
        RunnerFactory(plan, "cpu", overlay=tmp_path / "nowhere")
    (tmp_path / "frame.jpg").write_bytes(b"x")
    with pytest.raises(UsageError, match="is neither a folder nor a .bit file"):
        RunnerFactory(plan, "cpu", overlay=tmp_path / "frame.jpg")
    # A FIFO (named as the .bit, or as the folder) was taken for the overlay, its arch.json looked for beside it
    # or in it, and the check skipped; a link that leads nowhere 'does not exist': each is named, as other inputs.
    os.mkfifo(tmp_path / "dpu.bit")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "gone").symlink_to("ov-moved")
    what = "give the overlay folder (dpu.bit, dpu.hwh, dpu.xclbin, arch.json) or its dpu.bit"
    for name, kind in (
        ("dpu.bit", "is a FIFO"),
        ("fifo", "is a FIFO"),
        ("gone", "is a symbolic link that leads nowhere (to ov-moved)"),
    ):
        with pytest.raises(UsageError) as err:
            RunnerFactory(plan, "cpu", overlay=tmp_path / name)
        assert str(err.value) == f"--overlay {tmp_path / name} {kind}: {what}"
    with pytest.raises(UsageError) as err:
        RunnerFactory(plan, "cpu", overlay=Path("/dev/null"))
    assert str(err.value) == f"--overlay /dev/null is a device: {what}"


def test_an_arch_json_naming_a_vitis_ai_25_target_is_read_as_that_targets_fingerprint(tmp_path: Path) -> None:
    """The Vitis AI image's arch.json files name a target ({"target": "DPUCZDX8G_ISA1_B4096"}) rather than
    give a fingerprint; vai_c_xir compiles for either. The 2.5 names are the default configurations."""
    from dpupose.dpu.config import Arch, DpuConfig
    from dpupose.dpu.fingerprint import fingerprint
    from dpupose.runtime.guard import VITIS_AI_25_TARGETS

    defaults = {f"DPUCZDX8G_ISA1_{a.name}": fingerprint(DpuConfig(name="t", arch=a, clock_mhz=200)) for a in Arch}
    assert defaults == VITIS_AI_25_TARGETS
    # target_factory/targets/DPUCZDX8G_ISA1_B1600.prototxt (Vitis AI 2.5): feature_code 0x000016010404
    assert VITIS_AI_25_TARGETS["DPUCZDX8G_ISA1_B1600"] == PLAN_FP == 0x101000016010404

    tinyplan.write_split_plan(tmp_path / "plan")
    plan = load_plan(tmp_path / "plan")
    overlay = make_overlay(tmp_path / "ov", fingerprint=None)
    arch = overlay / "arch.json"
    arch.write_text('{\n    "target": "DPUCZDX8G_ISA1_B1600"\n}\n')
    ok = RunnerFactory(plan, "cpu", overlay=overlay)
    assert ok.guard.checked == {f"overlay {arch}": PLAN_FP}
    arch.write_text('{"target": "DPUCZDX8G_ISA1_B2304"}')
    with pytest.raises(FingerprintMismatch, match=f"{arch}\\) is for 0x{OTHER_FP:x}"):
        RunnerFactory(plan, "cpu", overlay=overlay)
    arch.write_text('{"target": "DPUCZDX8G_ISA0_B4096_MAX_BG2"}')  # Vitis AI 1.x/2.0's ZCU104 arch.json
    with pytest.raises(ModelFileError) as e:
        RunnerFactory(plan, "cpu", overlay=overlay)
    assert "names target 'DPUCZDX8G_ISA0_B4096_MAX_BG2', which is not a Vitis AI 2.5 DPUCZDX8G target" in str(e.value)
    assert '{"fingerprint": "0x..."}' in str(e.value) and "xdputil query" in str(e.value)
    arch.write_text('{"dcf": "zcu104.dcf"}')
    with pytest.raises(ModelFileError, match='has neither a "fingerprint" nor a "target"'):
        RunnerFactory(plan, "cpu", overlay=overlay)


def test_without_xrt_environment_the_overlay_is_refused_with_the_fix(monkeypatch, tmp_path: Path) -> None:
    """Without XILINX_XRT (a command given to ssh, a systemd unit: no login shell sourced xrt_setup.sh),
    PYNQ 3.0.1 registers no device ("No Devices Found" from the overlay): the runtime says which profile
    script to source before anything is programmed."""
    monkeypatch.delenv("XILINX_XRT", raising=False)
    try:
        fake = fresh_board_modules(monkeypatch, tmp_path)
        import pynq_dpu

        with pytest.raises(RuntimeError, match="No Devices Found"):
            pynq_dpu.DpuOverlay(str(make_overlay(tmp_path / "ov") / "dpu.bit"))
        fake.reset()
        with pytest.raises(DeviceError, match=r"XILINX_XRT is not set.*source /etc/profile\.d/xrt_setup\.sh && "):
            vart_runner.load_overlay(tmp_path / "ov")
        assert "DpuOverlay" not in [c[0] for c in fake.CALLS]
    finally:
        for name in BOARD_MODULES:
            sys.modules.pop(name, None)


def test_an_overlay_name_pynq_dpu_misreads_is_refused_before_loading(board, tmp_path: Path) -> None:
    """pynq_dpu 2.5.1 finds the .xclbin by stripping the characters '.', 'b', 'i', 't' from the end of the
    .bit's name: beside u96_test.bit it looks for u96_tes.xclbin, after programming the PL."""
    folder = tmp_path / "ov"
    folder.mkdir()
    for suffix in (".bit", ".hwh", ".xclbin"):
        (folder / f"u96_test{suffix}").write_bytes(b"\0")
    import pynq_dpu

    with pytest.raises(ValueError, match=r"u96_tes\.xclbin does not exist"):
        pynq_dpu.DpuOverlay(str(folder / "u96_test.bit"))
    board.reset()
    with pytest.raises(ModelFileError, match=r"looks for u96_tes\.xclbin.*rename.*dpu\.bit, dpu\.hwh, dpu\.xclbin"):
        vart_runner.load_overlay(folder / "u96_test.bit")
    assert board.CALLS == []
    for stem in ("dpu_b1600", "dpu"):  # names it reads as they are
        for suffix in (".bit", ".hwh", ".xclbin"):
            (folder / f"{stem}{suffix}").write_bytes(b"\0")
        assert vart_runner.overlay_bitfile(folder / f"{stem}.bit") == folder / f"{stem}.bit"


def test_vart_conf_pointing_elsewhere_is_refused(tmp_path: Path) -> None:
    conf = tmp_path / "vart.conf"
    conf.write_text("firmware: /media/sd-mmcblk0p1/dpu.xclbin\n")
    with pytest.raises(DeviceError, match=r"echo 'firmware: /usr/lib/dpu.xclbin' \| sudo tee"):
        vart_runner.check_vart_conf("dpu.xclbin", conf)
    conf.write_text("firmware: /usr/lib/dpu.xclbin")
    vart_runner.check_vart_conf("dpu.xclbin", conf)


@pytest.mark.parametrize(
    ("text", "stem", "refusal"),
    [
        # VART skips a comment line: the firmware is the second line's, whatever the first says
        ("# firmware: /usr/lib/dpu.xclbin\nfirmware: /media/sd/dpu.xclbin\n", "dpu",
         r"vart.conf points VART at another firmware \('/media/sd/dpu.xclbin', .*vart.conf line 2\)"),
        # another file whose name starts with the expected one's
        ("firmware: /usr/lib/dpu.xclbin.old\n", "dpu", r"another firmware \('/usr/lib/dpu.xclbin.old'"),
        # a comment after the value, spaces around the colon: the value is the path alone
        ("  firmware :  /usr/lib/dpu.xclbin   # pynq_dpu's copy\n", "dpu", None),
        ("firmware: /usr/lib//dpu.xclbin", "dpu", None),  # the same path, written otherwise
        # no firmware line (no file at all: the next case): VART's default /usr/lib/dpu.xclbin
        ("other: 1\n", "dpu", None),
        ("other: 1\n", "dpu_b1600",
         r"VART loads its default firmware /usr/lib/dpu.xclbin \(.*vart.conf names none\), not "
         r"/usr/lib/dpu_b1600.xclbin .*echo 'firmware: /usr/lib/dpu_b1600.xclbin' \| sudo tee"),
        # VART's regex stops at a carriage return (a file saved with Windows line ends): the line is skipped
        ("firmware: /usr/lib/dpu_b1600.xclbin\r\n", "dpu_b1600",
         r"default firmware /usr/lib/dpu.xclbin \(.*vart.conf line 1 is no line VART reads: 'firmware: PATH' "
         r"with spaces, no tab, no carriage return\)"),
        # a tab after the colon is part of the value VART opens
        ("firmware:\t/usr/lib/dpu.xclbin\n", "dpu", r"another firmware \('\\t/usr/lib/dpu.xclbin'"),
        # VART aborts on a key given twice, and on a key starting 'firmware' without a 'firmware' one
        ("firmware: /usr/lib/dpu.xclbin\nfirmware: /usr/lib/dpu.xclbin\n", "dpu",
         r"vart.conf line 2 defines 'firmware' a second time, and VART stops \(abort\)"),
        ("firmware_old: /usr/lib/a.xclbin\n", "dpu", r"has 'firmware_old' but no 'firmware' line, and VART stops"),
        # a NUL byte in the value (a damaged file): no path of the xclbin's, refused, the byte shown
        ("firmware: /usr/lib/dpu.xclbin\0\n", "dpu", r"another firmware \('/usr/lib/dpu.xclbin\\x00', .*line 1\)"),
        # a comment line that names a firmware is no line VART skips as unreadable: the file names none
        ("# firmware: /usr/lib/dpu_b1600.xclbin\n", "dpu_b1600",
         r"default firmware /usr/lib/dpu.xclbin \(.*vart.conf names none\), not /usr/lib/dpu_b1600.xclbin"),
    ],
)  # fmt: skip
def test_vart_conf_is_read_as_vart_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, stem: str, refusal: str | None
) -> None:
    monkeypatch.delenv("XLNX_VART_FIRMWARE", raising=False)
    conf = tmp_path / "vart.conf"
    conf.write_bytes(text.encode())
    if refusal is None:
        vart_runner.check_vart_conf(f"{stem}.xclbin", conf)
    else:
        with pytest.raises(DeviceError, match=refusal):
            vart_runner.check_vart_conf(f"{stem}.xclbin", conf)


def test_vart_without_vart_conf_loads_its_default_firmware(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XLNX_VART_FIRMWARE", raising=False)
    vart_runner.check_vart_conf("dpu.xclbin", tmp_path / "absent")
    (tmp_path / "empty").write_bytes(b"")  # VART takes an empty file as none
    vart_runner.check_vart_conf("dpu.xclbin", tmp_path / "empty")
    with pytest.raises(DeviceError, match=r"default firmware /usr/lib/dpu.xclbin \(.*absent names none\)"):
        vart_runner.check_vart_conf("u96.xclbin", tmp_path / "absent")


def test_xlnx_vart_firmware_overrides_vart_conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "vart.conf"
    conf.write_text("firmware: /usr/lib/dpu.xclbin\n")
    monkeypatch.setenv("XLNX_VART_FIRMWARE", "/media/sd/other.xclbin")
    with pytest.raises(
        DeviceError,
        match=r"XLNX_VART_FIRMWARE points VART at another firmware \('/media/sd/other.xclbin'\), not "
        r"/usr/lib/dpu.xclbin .*Fix: unset XLNX_VART_FIRMWARE \(VART then reads .*vart.conf\), or set it to "
        r"/usr/lib/dpu.xclbin",
    ):
        vart_runner.check_vart_conf("dpu.xclbin", conf)
    conf.write_text("firmware: /media/sd/stale.xclbin\n")  # not read while the variable is set
    monkeypatch.setenv("XLNX_VART_FIRMWARE", "/usr/lib/dpu.xclbin")
    vart_runner.check_vart_conf("dpu.xclbin", conf)
    monkeypatch.setenv("XLNX_VART_FIRMWARE", "")  # empty: VART reads the file
    with pytest.raises(DeviceError, match=r"another firmware \('/media/sd/stale.xclbin'"):
        vart_runner.check_vart_conf("dpu.xclbin", conf)


# --- backend choice -------------------------------------------------------------------------------------


def test_backend_argument_then_environment_then_availability(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "vart_available", lambda: False)
    assert resolve_backend("cpu", {"DPUPOSE_BACKEND": "vart"}) == "cpu"
    assert resolve_backend(None, {"DPUPOSE_BACKEND": "cpu"}) == "cpu"
    assert resolve_backend(None, {}) == "emulate"
    monkeypatch.setattr(backends, "vart_available", lambda: True)
    assert resolve_backend(None, {}) == "vart"
    with pytest.raises(UsageError, match=r"\$DPUPOSE_BACKEND is 'gpu'"):
        resolve_backend(None, {"DPUPOSE_BACKEND": "gpu"})


def test_vart_is_available_where_pynq_dpu_is(board) -> None:
    assert backends.vart_available()


def test_an_overlay_given_as_its_dpu_bit_is_checked_against_the_arch_json_beside_it(tmp_path: Path) -> None:
    """The arch.json beside dpu.bit is read (not one inside a folder named dpu.bit); the overlay's fingerprint
    is that of two configurations (b2304-avnet and -dsphigh), so the fix names neither for --config."""
    tinyplan.write_split_plan(tmp_path / "plan")
    overlay = make_overlay(tmp_path / "ov", OTHER_FP)
    with pytest.raises(FingerprintMismatch) as e:
        RunnerFactory(load_plan(tmp_path / "plan"), "cpu", overlay=overlay / "dpu.bit")
    msg = str(e.value)
    assert f"the overlay ({overlay / 'arch.json'}) is for 0x{OTHER_FP:x}" in msg
    assert "configuration u96v2-b2304-avnet or u96v2-b2304-dsphigh" in msg
    assert "(`dpupose split ... --config <its configuration>`)" in msg


def test_an_arch_json_s_fingerprint_is_read_before_its_target() -> None:
    data = {"fingerprint": "0x1234", "target": "DPUCZDX8G_ISA1_B4096"}
    assert arch_fingerprint(data, "arch.json") == 0x1234 != VITIS_AI_25_TARGETS["DPUCZDX8G_ISA1_B4096"]


def test_a_vitis_ai_target_is_named_as_vitis_ai_spells_it() -> None:
    with pytest.raises(ModelFileError, match=r"names target 'dpuczdx8g_isa1_b4096', which is not a Vitis AI 2.5"):
        arch_fingerprint({"target": "dpuczdx8g_isa1_b4096"}, "arch.json")


def test_a_mismatch_describes_the_other_fingerprint_by_its_own_flags() -> None:
    """The B1600 word 0x101000016010404 with bit 26 (channel augmentation) or bit 28 (conv LeakyReLU) cleared
    names the one that is left (the fingerprint's layout: dpupose.dpu.fingerprint)."""
    b1600 = "B1600, 2 bank groups, ALU parallel 4"
    assert describe(0x101000016010404 & ~(1 << 26)) == f"{b1600}, conv LeakyReLU"
    assert describe(0x101000016010404 & ~(1 << 28)) == f"{b1600}, channel augmentation"


def test_the_vart_backend_takes_the_overlay_in_the_plan_folder_when_none_is_given(board, tmp_path: Path) -> None:
    tinyplan.write_split_plan(tmp_path / "plan", xmodel=True)
    make_overlay(tmp_path / "plan")  # as `sdcard stage` copies it beside plan.json
    factory = RunnerFactory(load_plan(tmp_path / "plan"), "vart")
    assert factory.overlay == tmp_path / "plan" / "dpu.bit"
    assert list(factory.guard.checked) == [
        f"overlay {tmp_path / 'plan' / 'arch.json'}",
        f"xmodel {tmp_path / 'plan' / 'tiny.xmodel'}:subgraph_conv0",
        f"xmodel {tmp_path / 'plan' / 'tiny.xmodel'}:subgraph_conv1",
    ]


def test_a_notebook_overlay_that_is_not_there_leaves_vart_the_one_in_the_plan_folder(board, tmp_path: Path) -> None:
    """PoseSession refuses a missing OVERLAY with vart only where the plan folder holds no dpu.bit either;
    where it does (`sdcard stage` copies the overlay beside plan.json), vart programs and checks that one."""
    from dpupose.runtime.notebook import PoseSession

    tinyplan.write_split_plan(tmp_path / "plan", xmodel=True)
    make_overlay(tmp_path / "plan")
    with PoseSession(tmp_path / "plan", backend="vart", overlay=tmp_path / "missing") as session:
        assert session.factory.overlay == tmp_path / "plan" / "dpu.bit"
        assert session.guard.startswith("DPU fingerprints match")


def test_the_emulate_backend_runs_exact_unless_told_otherwise(tmp_path: Path) -> None:
    tinyplan.write_split_plan(tmp_path / "plan")
    plan = load_plan(tmp_path / "plan")
    dpu0 = plan.subgraphs[0]
    assert RunnerFactory(plan, "emulate").create(dpu0).exact is True
    assert RunnerFactory(plan, "emulate", exact=False).create(dpu0).exact is False


def test_a_dpu_subgraph_file_that_does_not_load_is_named_once(tmp_path: Path) -> None:
    """The ONNX reader's message names the file: the error says which subgraph and what to do, with the
    path once (taken off the reader's message, or the reader's message as it is where it names it itself)."""
    tinyplan.write_split_plan(tmp_path / "plan")
    plan = load_plan(tmp_path / "plan")
    path = tmp_path / "plan" / "dpu0.onnx"
    path.write_bytes(b"not onnx")
    with pytest.raises(ModelFileError) as e:
        RunnerFactory(plan, "emulate").create_all()
    assert str(e.value).startswith(f"subgraph 'dpu0' ({path}) cannot be loaded: malformed ONNX protobuf")
    assert str(e.value).count(str(path)) == 1 and str(e.value).endswith("re-split the model with `dpupose split`")
    path.unlink()  # removed after the plan was read
    with pytest.raises(ModelFileError) as e:
        RunnerFactory(plan, "emulate").create_all()
    assert str(e.value) == f"ONNX file not found: {path}"


def _two_input_runner(board, tmp_path: Path, dims_a, dims_b, plan=None) -> vart_runner.VartRunner:
    """A VartRunner over a fake subgraph of two int8 inputs a_fix (fix point 2) and b_fix (fix point 4); its
    ONNX file is never run by these tests (they stop before execute_async)."""
    requant_model(tmp_path / "rq.onnx", 3, 1, (1, 4, 2, 3))
    board.write_fake_xmodel(
        tmp_path / "two.xmodel",
        [
            {"name": "sg", "device": "DPU", "fingerprint": PLAN_FP, "onnx": "rq.onnx",
             "inputs": [{"name": "a_fix", "dims": dims_a, "fix_point": 2, "onnx_name": "x"},
                        {"name": "b_fix", "dims": dims_b, "fix_point": 4, "onnx_name": "x"}],
             "outputs": [{"name": "y_fix", "dims": [1, 2, 3, 4], "fix_point": 1, "onnx_name": "y"}]},
        ],
    )  # fmt: skip
    vart_runner.load_overlay(make_overlay(tmp_path / "ov"))
    return vart_runner.VartRunner(vart_runner.Xmodel(tmp_path / "two.xmodel"), inputs=plan)


def test_the_plan_s_names_are_bound_to_vart_s_tensors_by_name_then_shape_then_order(board, tmp_path: Path) -> None:
    def info(name, shape, fp=0):
        return TensorInfo(name, shape, "int8", fp, "NHWC")

    def bound(dims_a, dims_b, plan):
        runner = _two_input_runner(board, tmp_path, dims_a, dims_b, plan)
        return [(i.name, i.shape, i.fix_point) for i in runner.inputs]

    a, b = [1, 2, 3, 4], [1, 5, 6, 7]
    # equal names in another order: each VART tensor keeps its own name
    plan = [info("b_fix", (1, 5, 6, 7), 4), info("a_fix", (1, 2, 3, 4), 2)]
    assert bound(a, b, plan) == [("a_fix", (1, 2, 3, 4), 2), ("b_fix", (1, 5, 6, 7), 4)]
    # other names, shapes unique: by shape, whatever the order
    plan = [info("q", (1, 5, 6, 7)), info("p", (1, 2, 3, 4))]
    assert bound(a, b, plan) == [("p", (1, 2, 3, 4), 2), ("q", (1, 5, 6, 7), 4)]
    # two tensors of one shape: by order
    plan = [info("p", (1, 2, 3, 4)), info("q", (1, 2, 3, 4))]
    assert bound(a, a, plan) == [("p", (1, 2, 3, 4), 2), ("q", (1, 2, 3, 4), 4)]
    # shapes that do not match the plan's: named, not bound by order
    plan = [info("p", (1, 2, 3, 4)), info("q", (1, 2, 3, 5))]
    with pytest.raises(ModelFileError, match=r"two.xmodel:sg: xmodel tensor shapes .* do not match the plan's"):
        bound(a, a, plan)


def test_inputs_of_two_batch_sizes_or_a_batch_over_the_runner_s_are_refused(board, tmp_path: Path) -> None:
    runner = _two_input_runner(board, tmp_path, [2, 2, 3, 4], [2, 5, 6, 7])
    one, three = (np.zeros((n, 2, 3, 4), np.int8) for n in (1, 3))
    with pytest.raises(DataError, match="sg: inputs have different batch sizes"):
        runner.run({"a_fix": one, "b_fix": np.zeros((2, 5, 6, 7), np.int8)})
    with pytest.raises(DataError, match="sg: batch 3 is larger than the DPU runner's 2"):
        runner.run({"a_fix": three, "b_fix": np.zeros((3, 5, 6, 7), np.int8)})
    assert [c for c in board.CALLS if c[0] == "execute_async"] == []


def test_a_vart_job_that_fails_is_waited_and_its_status_named(board, tmp_path: Path, monkeypatch) -> None:
    requant_model(tmp_path / "rq.onnx", 3, 1, (1, 4, 2, 3))
    board.write_fake_xmodel(
        tmp_path / "rq.xmodel",
        [
            {"name": "sg", "device": "DPU", "fingerprint": PLAN_FP, "onnx": "rq.onnx",
             "inputs": [{"name": "x_fix", "dims": [2, 2, 3, 4], "fix_point": 3, "onnx_name": "x"}],
             "outputs": [{"name": "y_fix", "dims": [2, 2, 3, 4], "fix_point": 1, "onnx_name": "y"}]},
        ],
    )  # fmt: skip
    vart_runner.load_overlay(make_overlay(tmp_path / "ov"))
    runner = vart_runner.VartRunner(vart_runner.Xmodel(tmp_path / "rq.xmodel"))
    x = np.full((1, 2, 3, 4), 8, np.int8)  # 8 * 2**-3 = 1.0 -> 2 at 2**-1
    out = runner.run({"x_fix": x})["y_fix"]  # batch 1 of a batch-2 runner: the padding is not returned
    assert out.shape == (1, 2, 3, 4) and (out == 2).all()
    execute, wait = board.Runner.execute_async, board.Runner.wait
    monkeypatch.setattr(board.Runner, "execute_async", lambda self, i, o: (execute(self, i, o)[0], 3))
    with pytest.raises(DeviceError, match="sg: VART execute_async failed with status 3"):
        runner.run({"x_fix": x})
    assert board.unwaited_jobs() == []  # the failed job was waited before the error
    monkeypatch.setattr(board.Runner, "execute_async", execute)
    monkeypatch.setattr(board.Runner, "wait", lambda self, job: wait(self, job) + 1)
    with pytest.raises(DeviceError, match="sg: VART wait returned status 1"):
        runner.run({"x_fix": x})
    monkeypatch.setattr(board.Runner, "wait", lambda self, job: (wait(self, job), None)[1])  # some VARTs: None
    assert (runner.run({"x_fix": x})["y_fix"] == 2).all()


def test_an_overlay_without_its_xclbin_is_named_before_loading(board, tmp_path: Path) -> None:
    overlay = make_overlay(tmp_path / "ov")
    (overlay / "dpu.xclbin").unlink()
    with pytest.raises(ModelFileError, match=r"overlay .*dpu\.bit needs dpu\.xclbin beside it"):
        vart_runner.load_overlay(overlay)
    assert board.CALLS == []
    # /etc/vart.conf that is not a file (here a folder) is no firmware setting: VART's default applies
    (tmp_path / "conf").mkdir()
    vart_runner.check_vart_conf("dpu.xclbin", tmp_path / "conf")


def test_the_overlay_is_programmed_once_and_checked_against_vart_conf(board, tmp_path: Path) -> None:
    overlay = make_overlay(tmp_path / "ov")
    (tmp_path / "vart.conf").write_text("firmware: /usr/lib/dpu.xclbin\n")  # what pynq_dpu installs for dpu.bit
    first = vart_runner.load_overlay(overlay)
    assert vart_runner.load_overlay(overlay / "dpu.bit") is first
    assert [c[0] for c in board.CALLS] == ["DpuOverlay"]


def test_only_the_xmodel_s_dpu_subgraphs_are_taken_and_one_must_be_named_of_two(board, tmp_path: Path) -> None:
    path = tinyplan.write_xmodel(tmp_path / "tiny.xmodel", PLAN_FP)
    xmodel = vart_runner.Xmodel(path)
    assert xmodel.names() == ["subgraph_conv0", "subgraph_conv1"]  # not the CPU ones between them
    with pytest.raises(ModelFileError, match=r"has 2 DPU subgraphs \(subgraph_conv0, subgraph_conv1\): the plan"):
        xmodel.subgraph(None)
    with pytest.raises(ModelFileError, match=r"has no DPU subgraph 'conv2' \(it has subgraph_conv0, subgraph_conv1\)"):
        xmodel.subgraph("conv2")
    assert xmodel.subgraph("subgraph_conv1").get_name() == "subgraph_conv1"
    # a compiled xmodel's input subgraph is the USER device's: neither CPU nor DPU
    board.write_fake_xmodel(
        tmp_path / "user.xmodel",
        [{"name": "subgraph_input", "device": "USER"}, {"name": "subgraph_cpu", "device": "CPU"}],
    )
    with pytest.raises(ModelFileError, match="has no DPU subgraph: was it compiled with vai_c_xir"):
        vart_runner.Xmodel(tmp_path / "user.xmodel")


def test_a_vart_tensor_that_is_not_xint8_or_has_no_fix_point_is_refused(board, tmp_path: Path, monkeypatch) -> None:
    requant_model(tmp_path / "rq.onnx", 3, 1, (1, 4, 2, 3))
    vart_runner.load_overlay(make_overlay(tmp_path / "ov"))

    def runner(dtype):
        board.write_fake_xmodel(
            tmp_path / "rq.xmodel",
            [
                {"name": "sg", "device": "DPU", "fingerprint": PLAN_FP, "onnx": "rq.onnx",
                 "inputs": [{"name": "x_fix", "dims": [1, 2, 3, 4], "fix_point": 3, "onnx_name": "x", "dtype": dtype}],
                 "outputs": [{"name": "y_fix", "dims": [1, 2, 3, 4], "fix_point": 1, "onnx_name": "y"}]},
            ],
        )  # fmt: skip
        return vart_runner.VartRunner(vart_runner.Xmodel(tmp_path / "rq.xmodel"))

    with pytest.raises(ModelFileError, match=r"rq.xmodel:sg: tensor 'x_fix' is xfloat32, expected xint8"):
        runner("xfloat32")
    assert runner("XINT8").inputs[0].fix_point == 3
    monkeypatch.setattr(board.Tensor, "has_attr", lambda self, name: name != "fix_point")
    with pytest.raises(ModelFileError, match=r"rq.xmodel:sg: tensor 'x_fix' has no fix_point attribute"):
        runner("xint8")


def test_load_overlay_reads_vart_conf_where_vart_conf_says(board, tmp_path: Path) -> None:
    # The fixture points VART_CONF at tmp_path / "vart.conf": load_overlay must read that file, not the
    # /etc/vart.conf the default argument held when the module was imported (on a board, the real one).
    (tmp_path / "vart.conf").write_text("firmware: /usr/lib/other.xclbin\n")
    with pytest.raises(DeviceError, match=r"vart.conf points VART at another firmware .*not /usr/lib/dpu.xclbin"):
        vart_runner.load_overlay(make_overlay(tmp_path / "ov"))
    assert board.CALLS == []


def test_a_closed_runner_lets_go_of_vart_s_and_runs_no_more(board, tmp_path: Path) -> None:
    """close() drops VART's runner (its DPU context goes with it); a run after it is refused as OnnxRunner's
    is, not an AttributeError of None."""
    path = _rq_xmodel(board, tmp_path)
    vart_runner.load_overlay(make_overlay(tmp_path / "ov"))
    x = np.full((1, 2, 3, 4), 8, np.int8)
    with vart_runner.VartRunner(vart_runner.Xmodel(path)) as runner:
        assert (runner.run({"x_fix": x})["y_fix"] == 2).all()
        pending = runner.submit({"x_fix": x})
    with pytest.raises(RuntimeError, match="^runner is closed$"):
        runner.run({"x_fix": x})
    with pytest.raises(RuntimeError, match="^runner is closed$"):  # a job submitted before close() is not waited on
        runner.collect(pending)
    assert len([c for c in board.CALLS if c[0] == "execute_async"]) == 2


def test_an_overlay_is_its_dpu_bit_file_with_both_siblings_named_when_missing(board, tmp_path: Path) -> None:
    overlay = make_overlay(tmp_path / "ov")
    for given in (overlay / "dpu.hwh", overlay / "dpu.xclbin"):  # a sibling of dpu.bit is no bitstream
        with pytest.raises(ModelFileError, match=rf"^no overlay bitstream at {given}: pass --overlay with the folder"):
            vart_runner.overlay_bitfile(given)
    (overlay / "dpu.bit").unlink()  # a folder with the others but no dpu.bit
    with pytest.raises(ModelFileError, match=rf"^no overlay bitstream at {overlay / 'dpu.bit'}: "):
        vart_runner.overlay_bitfile(overlay)
    bare = make_overlay(tmp_path / "bare")
    (bare / "dpu.hwh").unlink()
    (bare / "dpu.xclbin").unlink()
    with pytest.raises(ModelFileError, match=r"dpu\.bit needs dpu\.hwh, dpu\.xclbin beside it \(pynq needs"):
        vart_runner.load_overlay(bare)
    assert board.CALLS == []


def test_the_overlay_is_programmed_once_whatever_path_names_it(board, tmp_path: Path, monkeypatch) -> None:
    overlay = make_overlay(tmp_path / "ov")
    monkeypatch.chdir(tmp_path)
    first = vart_runner.load_overlay("ov")
    assert vart_runner.load_overlay(overlay / "dpu.bit") is first
    assert vart_runner.load_overlay(Path("ov/../ov/dpu.bit")) is first
    assert [c[0] for c in board.CALLS] == ["DpuOverlay"]


def test_an_empty_xilinx_xrt_is_not_pynq_s_environment(board, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XILINX_XRT", "")
    with pytest.raises(DeviceError, match=r"^XILINX_XRT is not set, so PYNQ finds no device"):
        vart_runner.load_overlay(make_overlay(tmp_path / "ov"))
    assert board.CALLS == []


def test_vart_conf_must_name_the_xclbin_of_the_overlay_s_own_name(board, tmp_path: Path) -> None:
    """pynq_dpu copies dpu_b1600.xclbin (beside dpu_b1600.bit) to /usr/lib/dpu_b1600.xclbin."""
    folder = tmp_path / "ov"
    folder.mkdir()
    for suffix in (".bit", ".hwh", ".xclbin"):
        (folder / f"dpu_b1600{suffix}").write_bytes(b"\0")
    (tmp_path / "vart.conf").write_text("firmware: /usr/lib/dpu.xclbin\n")
    with pytest.raises(DeviceError, match=r"not /usr/lib/dpu_b1600\.xclbin that the overlay installs"):
        vart_runner.load_overlay(folder / "dpu_b1600.bit")
    (tmp_path / "vart.conf").write_text("firmware: /usr/lib/dpu_b1600.xclbin\n")
    vart_runner.load_overlay(folder / "dpu_b1600.bit")
    assert [c[0] for c in board.CALLS] == ["DpuOverlay"]


def test_an_overlay_pynq_cannot_load_is_a_device_error_naming_it(board, tmp_path: Path, monkeypatch) -> None:
    def unreadable(self, bitfile_name, *args, **kwargs):
        raise ValueError("bitstream header is corrupt")

    monkeypatch.setattr(board.DpuOverlay, "__init__", unreadable)
    bit = make_overlay(tmp_path / "ov") / "dpu.bit"
    with pytest.raises(DeviceError, match=rf"^cannot load overlay {bit}: bitstream header is corrupt$"):
        vart_runner.load_overlay(bit.parent)
    assert vart_runner._overlay == {}


def test_an_xmodel_that_is_missing_or_not_read_and_dpu_in_any_case(board, tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"^xmodel .*gone\.xmodel is missing: compile the DPU subgraphs"):
        vart_runner.Xmodel(tmp_path / "gone.xmodel")
    assert board.CALLS == []
    board.write_fake_xmodel(tmp_path / "m.xmodel", [{"name": "a", "device": "Dpu"}, {"name": "b", "device": "CPU"}])
    assert vart_runner.Xmodel(tmp_path / "m.xmodel").names() == ["a"]


def test_something_at_the_xmodel_s_name_that_is_no_file_is_named_not_called_missing(board, tmp_path: Path) -> None:
    """A folder, a FIFO or a link that leads nowhere at the .xmodel's name is what the user sees there: the
    message says so, where 'is missing' sent them looking for a file that is, to them, there."""
    (tmp_path / "dir.xmodel").mkdir()
    os.mkfifo(tmp_path / "fifo.xmodel")
    (tmp_path / "link.xmodel").symlink_to(tmp_path / "nowhere.xmodel")
    for name, what in (
        ("dir", "is a folder"),
        ("fifo", "is a FIFO"),
        ("link", f"is a symbolic link that leads nowhere (to {tmp_path / 'nowhere.xmodel'})"),
    ):
        path = tmp_path / f"{name}.xmodel"
        with pytest.raises(ModelFileError) as err:
            vart_runner.Xmodel(path)
        assert str(err.value) == (
            f"xmodel {path} {what}: put the .xmodel vai_c_xir compiled there (copy the plan folder again)"
        )
    assert board.CALLS == []


def test_a_file_xir_cannot_parse_is_refused_before_xir_aborts_on_it(board, tmp_path: Path) -> None:
    """XIR 2.5's deserialize aborts the process (XIR_READ_PB_FAILURE is FATAL) on a file protobuf does not parse
    as its serial_v2.Graph: a plan.json given as the xmodel, a copy cut short, a damaged byte. Each is refused
    before XIR sees it, and what is let through parses (the fake parses with the protobuf package, and
    aborts as XIR does)."""
    plan = tmp_path / "plan.json"
    plan.write_text("{}")
    with pytest.raises(ModelFileError) as err:
        vart_runner.Xmodel(plan)
    assert str(err.value) == (
        f"{plan} is not an xmodel XIR can read (as its protobuf: a fixed32 value cut off at byte 1), and XIR "
        "would stop the process on it: give the .xmodel vai_c_xir compiled, or copy it again if it was cut short"
    )
    (tmp_path / "empty.xmodel").write_bytes(b"")
    with pytest.raises(ModelFileError, match=r"^xmodel .*empty\.xmodel is empty: copy it again, or compile it"):
        vart_runner.Xmodel(tmp_path / "empty.xmodel")
    assert board.CALLS == []

    requant_model(tmp_path / "rq.onnx", 3, 1, (1, 4, 2, 3))
    whole = board.write_fake_xmodel(
        tmp_path / "rq.xmodel",
        [
            {"name": "sg", "device": "DPU", "fingerprint": PLAN_FP, "onnx": "rq.onnx",
             "inputs": [{"name": "x_fix", "dims": [1, 2, 3, 4], "fix_point": 3, "onnx_name": "x"}],
             "outputs": [{"name": "y_fix", "dims": [1, 2, 3, 4], "fix_point": 1, "onnx_name": "y"}]},
        ],
    ).read_bytes()  # fmt: skip
    graph_name = whole[whole.index(b"{") :]
    named = b"\x0a" + whole[1 : whole.index(b"{")]  # graph_name's tag and length, as written
    # a real xmodel's root subgraph after the name: SubGraph "root" with a child of attribute device "DPU"
    child = b"\x0a\x02sg\x1a\x01a" + b"\x2a\x0f\x0a\x06device\x12\x05\x5a\x03DPU"
    root = b"\x0a\x04root" + b"\x52" + bytes([len(child)]) + child
    data = named + graph_name + b"\x52" + bytes([len(root)]) + root
    rng = np.random.default_rng(0)
    variants = [data[:end] for end in range(1, len(data))]
    variants += [data[:1] + b"\xc3\x28" + data[3:]]  # not UTF-8 in graph_name
    for _ in range(300):
        damaged = bytearray(data)
        damaged[rng.integers(len(data))] ^= 1 << int(rng.integers(8))
        variants.append(bytes(damaged))
    path = tmp_path / "d.xmodel"
    refused = 0
    for variant in variants:
        path.write_bytes(variant)
        try:
            vart_runner.Xmodel(path)
        except ModelFileError:
            refused += 1
    assert [c for c in board.CALLS if c[0] == "abort"] == []
    assert refused > len(data)  # every cut (but the one at the end of a field) and some of the damage


def test_what_vart_aborts_on_is_refused_and_a_plan_of_another_count_or_other_shapes(board, tmp_path: Path) -> None:
    def info(name, shape):
        return TensorInfo(name, shape, "int8", 0, "NHWC")

    path = _rq_xmodel(board, tmp_path)
    xmodel = vart_runner.Xmodel(path)
    with pytest.raises(DeviceError) as e:
        vart_runner.VartRunner(xmodel)
    assert str(e.value) == (
        "rq.xmodel:sg: no DPU overlay was loaded in this process, and VART stops the process (abort) when it finds "
        "no DPU: load it first with load_overlay(OVERLAY) (PoseSession and `dpupose run --backend vart --overlay "
        "OVERLAY` do)"
    )
    assert [c for c in board.CALLS if c[0] in ("create_runner", "abort")] == []
    vart_runner.load_overlay(make_overlay(tmp_path / "ov"))
    for runners in (None, {"ref": "libvart-cpu-runner.so"}):  # no attribute, or no library for mode "run"
        board.write_fake_xmodel(path, [{**xmodel.subgraphs[0].spec, "runner": runners}])
        with pytest.raises(ModelFileError) as e:
            vart_runner.VartRunner(vart_runner.Xmodel(path))
        assert str(e.value) == (
            f"rq.xmodel:sg: the DPU subgraph names no VART runner for mode 'run' (its \"runner\" attribute is "
            f"{runners or {}!r}), and VART stops the process (abort) on it: compile the xmodel again with vai_c_xir"
        )
    assert [c for c in board.CALLS if c[0] in ("create_runner", "abort")] == []
    with pytest.raises(ModelFileError) as e:
        _two_input_runner(board, tmp_path, [1, 2, 3, 4], [1, 5, 6, 7], [info("p", (1, 2, 3, 4))])
    assert str(e.value) == (
        "two.xmodel:sg: the xmodel has 2 tensors (a_fix, b_fix) where the plan has 1 (p); recompile the xmodel "
        "from this split"
    )
    # shapes each unique but not the plan's: named, not a ValueError of list.index
    plan = [info("p", (1, 2, 3, 4)), info("q", (1, 9, 9, 9))]
    with pytest.raises(ModelFileError, match=r"xmodel tensor shapes \[\(2, 3, 4\), \(5, 6, 7\)\] do not match"):
        _two_input_runner(board, tmp_path, [1, 2, 3, 4], [1, 5, 6, 7], plan)


def test_an_output_s_fix_point_other_than_the_plan_s_is_warned(board, tmp_path: Path, caplog) -> None:
    path = _rq_xmodel(board, tmp_path)
    vart_runner.load_overlay(make_overlay(tmp_path / "ov"))
    plan_in = [TensorInfo("x_fix", (1, 2, 3, 4), "int8", 3, "NHWC")]
    plan_out = [TensorInfo("y_fix", (1, 2, 3, 4), "int8", 2, "NHWC")]
    with caplog.at_level(logging.WARNING):
        runner = vart_runner.VartRunner(vart_runner.Xmodel(path), inputs=plan_in, outputs=plan_out)
    assert "rq.xmodel:sg: tensor y_fix has fix_point 1 in the xmodel but 2 in the plan" in caplog.text
    assert "x_fix" not in caplog.text and runner.outputs[0].fix_point == 1
    x = np.asfortranarray(np.arange(-12, 12, dtype=np.int8).reshape(1, 2, 3, 4) * 4)  # not C-contiguous
    assert not x.flags.c_contiguous
    np.testing.assert_array_equal(runner.run({"x_fix": x})["y_fix"], np.rint(x / 4))  # copied for VART
    with pytest.raises(DataError, match=r"^sg: missing input 'x_fix'$"):
        runner.run({"x": x})


HOLD_LOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o666)
fcntl.lockf(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""
TRY_LOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except OSError:
    print("held")
else:
    print("free")
"""


def test_a_dpu_another_process_holds_is_named_and_this_process_s_hold_kept(board, tmp_path: Path) -> None:
    """VART 2.5 takes a lockf lock on /tmp/DPU_0 at a process's first runner and keeps it while the process has
    runners; another process's first runner waits, silently, until that process ends (a notebook's kernel
    holding the DPU, and `dpupose run` over ssh). The runner is refused instead, naming that process; and the
    check, which opens the lock file, is not made while this process holds the lock (closing any descriptor of
    the file would let this process's lock go)."""
    path = _rq_xmodel(board, tmp_path)
    vart_runner.load_overlay(make_overlay(tmp_path / "ov"))
    xmodel = vart_runner.Xmodel(path)
    lock = tmp_path / "DPU_0"
    other = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(lock)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert other.stdout.readline() == "locked\n"
        with pytest.raises(DeviceError) as e:
            vart_runner.VartRunner(xmodel)
        assert str(e.value).startswith(f"rq.xmodel:sg: the DPU is in use by process {other.pid} ({sys.executable} -c ")
        assert str(e.value).endswith(
            f"(it holds VART's lock {lock}), and VART would wait without a word until that process ends: stop it "
            "(a notebook's kernel: Kernel > Shut Down Kernel) or let it finish, then run again"
        )
        assert [c for c in board.CALLS if c[0] in ("create_runner", "hang")] == []
    finally:
        other.communicate("")  # the other process ends, and its lock with it
    first = vart_runner.VartRunner(xmodel)
    second = vart_runner.VartRunner(xmodel)  # a pipelined job's runner, while the first holds the lock

    def probe() -> str:
        return subprocess.run([sys.executable, "-c", TRY_LOCK, str(lock)], capture_output=True, text=True).stdout

    assert probe() == "held\n"
    first.close()
    assert probe() == "held\n"  # VART keeps it while a runner is left
    second.close()
    board.reset()  # VART lets it go with the last runner
    assert probe() == "free\n"


def test_a_dpu_held_from_another_container_is_said_so(board, tmp_path: Path, monkeypatch) -> None:
    """F_GETLK reports process 0 for a holder in another PID namespace: no 'process 0' in the refusal."""
    path = _rq_xmodel(board, tmp_path)
    vart_runner.load_overlay(make_overlay(tmp_path / "ov"))
    monkeypatch.setattr(vart_runner, "dpu_lock_holder", lambda: (tmp_path / "DPU_0", 0))
    with pytest.raises(DeviceError, match=r"^rq.xmodel:sg: the DPU is in use by a process in another container \(it "):
        vart_runner.VartRunner(vart_runner.Xmodel(path))


def test_a_runner_made_while_another_thread_s_is_made_leaves_vart_s_lock_held(
    board, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A POSIX lock goes when its process closes any descriptor of the file. A runner asked for while another
    thread's create_runner has taken VART's lock (that runner not yet counted) looks for a holder, and must not
    let this process's lock go in doing so: another process would then drive the DPU at the same time."""
    path = _rq_xmodel(board, tmp_path)
    vart_runner.load_overlay(make_overlay(tmp_path / "ov"))
    xmodel = vart_runner.Xmodel(path)
    create = board.Runner.create_runner
    others: list = []

    def create_runner(subgraph, mode=""):  # the other thread's runner, asked for as VART makes this one
        made = create(subgraph, mode)
        if not others:
            others.append(None)
            others[0] = vart_runner.VartRunner(xmodel)
        return made

    monkeypatch.setattr(board.Runner, "create_runner", staticmethod(create_runner))
    first = vart_runner.VartRunner(xmodel)
    held = subprocess.run([sys.executable, "-c", TRY_LOCK, str(tmp_path / "DPU_0")], capture_output=True, text=True)
    assert held.stdout == "held\n"
    first.close()
    others[0].close()


def test_vart_conf_naming_the_overlay_s_xclbin_through_a_link_is_that_xclbin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """VART opens the file the path names: a link to the xclbin pynq_dpu copies is that xclbin; a copy of it
    elsewhere (a file of its own) is not."""
    monkeypatch.delenv("XLNX_VART_FIRMWARE", raising=False)
    monkeypatch.setattr(vart_runner, "XCLBIN_DIR", tmp_path / "lib")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "dpu.xclbin").write_bytes(b"xclbin")
    (tmp_path / "firmware").mkdir()
    (tmp_path / "firmware" / "link.xclbin").symlink_to(tmp_path / "lib" / "dpu.xclbin")
    (tmp_path / "firmware" / "copy.xclbin").write_bytes(b"xclbin")
    conf = tmp_path / "vart.conf"
    conf.write_text(f"firmware: {tmp_path}/firmware/link.xclbin\n")
    vart_runner.check_vart_conf("dpu.xclbin", conf)
    conf.write_text(f"firmware: {tmp_path}/firmware/copy.xclbin\n")
    with pytest.raises(DeviceError, match=r"another firmware \('.*/firmware/copy\.xclbin', .*vart\.conf line 1\)"):
        vart_runner.check_vart_conf("dpu.xclbin", conf)


def _rq_xmodel(board, tmp_path: Path) -> Path:
    requant_model(tmp_path / "rq.onnx", 3, 1, (1, 4, 2, 3))
    return board.write_fake_xmodel(
        tmp_path / "rq.xmodel",
        [
            {"name": "sg", "device": "DPU", "fingerprint": PLAN_FP, "onnx": "rq.onnx",
             "inputs": [{"name": "x_fix", "dims": [1, 2, 3, 4], "fix_point": 3, "onnx_name": "x"}],
             "outputs": [{"name": "y_fix", "dims": [1, 2, 3, 4], "fix_point": 1, "onnx_name": "y"}]},
        ],
    )  # fmt: skip


def _refused_while_another_process_holds(board, tmp_path: Path, xmodel, lock_kind: str = "LOCK_EX") -> None:
    """Another process holds the lock on DPU_0 (lockf `lock_kind`): a new VartRunner is refused naming it."""
    if board.STATE["dpu_lock"] is not None:  # this process's VART lets go of DPU_0 (as at the process's end)
        os.close(board.STATE["dpu_lock"])
        board.STATE["dpu_lock"] = None
    lock = tmp_path / "DPU_0"
    hold = HOLD_LOCK.replace("os.O_WRONLY", "os.O_RDWR").replace("LOCK_EX", lock_kind)
    other = subprocess.Popen(
        [sys.executable, "-c", hold, str(lock)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert other.stdout.readline() == "locked\n"
        with pytest.raises(DeviceError, match=rf"^rq\.xmodel:sg: the DPU is in use by process {other.pid} "):
            vart_runner.VartRunner(xmodel)
    finally:
        other.communicate("")


def test_a_runner_closed_twice_or_refused_after_vart_made_it_leaves_the_dpu_check_on(board, tmp_path: Path) -> None:
    """The count of this process's runners (while there are any, the holder is not looked for) goes down once
    per runner: closed twice it is closed once, and one refused after VART made it (a plan of another tensor
    count) is closed too. Otherwise the count stays off and a DPU another process holds is never named again:
    VART waits without a word."""
    vart_runner.load_overlay(make_overlay(tmp_path / "ov"))
    xmodel = vart_runner.Xmodel(_rq_xmodel(board, tmp_path))
    first, second = vart_runner.VartRunner(xmodel), vart_runner.VartRunner(xmodel)
    first.close()
    first.close()
    second.close()
    assert len(vart_runner._live_runners) == 0
    _refused_while_another_process_holds(board, tmp_path, xmodel)
    plan = [TensorInfo("p", (1, 2, 3, 4), "int8", 0, "NHWC"), TensorInfo("q", (1, 2, 3, 4), "int8", 0, "NHWC")]
    with pytest.raises(ModelFileError, match=r"the xmodel has 1 tensors \(x_fix\) where the plan has 2"):
        vart_runner.VartRunner(xmodel, inputs=plan)
    assert len(vart_runner._live_runners) == 0
    _refused_while_another_process_holds(board, tmp_path, xmodel)


def test_a_runner_dropped_without_close_leaves_the_dpu_check_on(board, tmp_path: Path) -> None:
    """A VartRunner let go without close() takes VART's runner with it (VART lets its lock go with the last
    one): it no longer counts as this process's, and a DPU another process holds is named again."""
    vart_runner.load_overlay(make_overlay(tmp_path / "ov"))
    xmodel = vart_runner.Xmodel(_rq_xmodel(board, tmp_path))
    runner = vart_runner.VartRunner(xmodel)
    assert len(vart_runner._live_runners) == 1
    del runner
    gc.collect()
    assert len(vart_runner._live_runners) == 0
    _refused_while_another_process_holds(board, tmp_path, xmodel)


def test_a_dpu_another_process_holds_with_a_shared_lock_is_named(board, tmp_path: Path) -> None:
    """VART's lockf needs the lock alone: a read (shared) lock of another process's stops it as well."""
    vart_runner.load_overlay(make_overlay(tmp_path / "ov"))
    xmodel = vart_runner.Xmodel(_rq_xmodel(board, tmp_path))
    _refused_while_another_process_holds(board, tmp_path, xmodel, "LOCK_SH")


def test_looking_for_the_dpu_s_holder_opens_each_lock_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each look (one per runner asked for) reuses the descriptor kept for the lock file: no descriptor more."""
    monkeypatch.setattr(vart_runner, "_probe_fds", {})
    (tmp_path / "DPU_0").write_bytes(b"")
    (tmp_path / "DPU_1").write_bytes(b"")
    assert vart_runner.dpu_lock_holder(tmp_path) is None
    kept = dict(vart_runner._probe_fds)
    assert len(kept) == 2
    assert sorted(Path(os.readlink(f"/proc/self/fd/{fd}")).name for fd in kept.values()) == ["DPU_0", "DPU_1"]
    for _ in range(3):
        assert vart_runner.dpu_lock_holder(tmp_path) is None
    assert vart_runner._probe_fds == kept  # the same descriptors: none opened again (and none leaked)
    for fd in vart_runner._probe_fds.values():
        os.close(fd)
