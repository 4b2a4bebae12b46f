"""`dpupose quantize` and `dpupose deploy-check` end to end on a small checkpoint: the files and their
formats, bad input leaving nothing behind, the vai_q path through a recording fake of pytorch_nndct."""

import argparse
import dataclasses
import json
import os
import re
import shutil
import sys
import types
from pathlib import Path
from typing import ClassVar

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from doc_keys import listed_keys
from quant_helpers import TINY, sane_model, save_checkpoint

from dpupose.commands import deploy_check as deploy_check_cmd
from dpupose.commands import quantize as quantize_cmd
from dpupose.errors import CheckpointError, DataError, QuantizationError, ToolNotFoundError, UsageError
from dpupose.model.checkpoint import load_checkpoint
from dpupose.quant.compare import compare_traces, read_dump_dir
from dpupose.quant.data import calibration_batches
from dpupose.quant.pipeline import QuantizeConfig, quantize
from dpupose.runtime.emulator import EmulatorRunner

S = TINY.input_size


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dpupose")
    sub = parser.add_subparsers()
    quantize_cmd.register(sub)
    deploy_check_cmd.register(sub)
    return parser


def _run_cli(*argv: str) -> int:
    args = _parser().parse_args([str(a) for a in argv])
    return args.func(args)


@pytest.fixture(scope="module")
def ckpt(synth_root, tmp_path_factory) -> Path:  # synthetic data first: its generator forks
    return save_checkpoint(sane_model(), tmp_path_factory.mktemp("ckpt") / "tiny.pt")


@pytest.fixture(scope="module")
def result(ckpt, synth_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("q") / "out"
    assert _run_cli("quantize", "--checkpoint", ckpt, "--data-root", synth_root, "--num-calib", 4,
                    "--batch-size", 2, "--out", out, "--summary-samples", 2) == 0  # fmt: skip
    return out


def test_outputs_and_their_interfaces(result):
    names = {p.name for p in result.iterdir()}
    assert names == {
        "model_fp32.onnx", "dpu_part_fp32.onnx", "cpu_part_fp32.onnx", "dpu_part_qdq.onnx",
        "model_qdq.onnx", "fix_points.json", "summary.json",
    }  # fmt: skip
    io = {}
    for name in names - {"fix_points.json", "summary.json"}:
        m = onnx.load(str(result / name))
        onnx.checker.check_model(m)
        io[name] = ([i.name for i in m.graph.input], [o.name for o in m.graph.output])
    assert io["model_fp32.onnx"] == (["image"], ["coords", "heatmaps"])
    assert io["model_qdq.onnx"] == (["image"], ["coords", "heatmaps"])
    assert io["dpu_part_fp32.onnx"] == io["dpu_part_qdq.onnx"] == (["image"], ["logits"])
    assert io["cpu_part_fp32.onnx"] == (["logits"], ["coords", "heatmaps"])
    x = np.random.default_rng(0).normal(0, 1, (2, 3, S, S)).astype(np.float32)
    coords, heat = ort.InferenceSession(str(result / "model_qdq.onnx")).run(None, {"image": x})
    assert coords.shape == (2, 16, 2) and heat.shape == (2, 16, S // 4, S // 4)
    assert np.all(np.abs(coords) < 1) and np.allclose(heat.sum(axis=(2, 3)), 1, atol=1e-4)


def test_fix_points_and_summary_documents(result):
    fp = json.loads((result / "fix_points.json").read_text())
    assert fp["format"] == "dpupose-fix-points/1"
    emu = EmulatorRunner(result / "dpu_part_qdq.onnx")
    assert fp["input"] == {"name": "image", "fix_point": emu.inputs[0].fix_point}
    assert fp["output"] == {"name": "logits", "fix_point": emu.outputs[0].fix_point}
    for layer in fp["layers"]:
        if layer["op"] == "conv":
            assert 0 <= layer["shift_cut"] <= 16
            assert layer["bias_fix_point"] is None or min(0, layer["shift_cut"] - 16) <= layer["shift_bias"] <= 16
    assert set(fp["activations"]) == {"image"} | {layer["name"] for layer in fp["layers"]}
    summary = json.loads((result / "summary.json").read_text())
    assert summary["format"] == "dpupose-quantize-summary/1" and summary["calibration"]["samples"] == 4
    # docs/quantization.md lists the keys: the top-level ones, calibration's four, and qat (only when used)
    docs = (Path(__file__).resolve().parents[1] / "docs" / "quantization.md").read_text()
    listed = set(re.findall(r"`([a-z0-9_]+)`", re.search(r"## `summary.json`\n\n(.*?)\n\n", docs, re.S).group(1)))
    assert set(summary) == listed - set(summary["calibration"]) - {"qat", "vai_q"}
    assert set(summary["calibration"]) == {"data", "samples", "batch_size", "seed"}
    acc = summary["accuracy"]
    assert acc["samples"] == 2
    assert acc["emulator_vs_fake_quant"] == {"samples": 2, "mismatching_values": 0}
    assert len(acc["per_layer"]) == len(fp["activations"])
    assert acc["ort_vs_emulator_logits_lsb"]["max"] >= 0
    assert acc["fp32_vs_int8"]["coords_mean_distance_px"] < S / 2


def test_deploy_check_dump_through_a_bind_mount_of_against_is_refused(result, tmp_path, bind_mount):
    """Through a bind mount of the --against folder elsewhere (a name resolve() does not tie to it), the
    emulator's tensors replaced the ones compared with. Root only (bind_mount skips, saying so, without it): it
    was run inline where the mount could be made and passed having tested nothing where it could not."""
    dumps = tmp_path / "d"
    dumps.mkdir()
    (dumps / "image.npy").write_bytes(b"the board's tensor")
    bound = bind_mount(dumps)
    with pytest.raises(UsageError, match=rf"^--dump {re.escape(str(bound))} is the folder --against reads"):
        _run_cli("deploy-check", result, "--against", dumps, "--dump", bound)
    assert os.listdir(dumps) == ["image.npy"] and (dumps / "image.npy").read_bytes() == b"the board's tensor"


def test_deploy_check_says_when_a_dump_s_inputs_leave_num_and_calib_data_unused(result, synth_root, tmp_path, capsys):
    """A dump folder holding the subgraph's input feeds the emulator, and --num / --calib-data go unused: given,
    they went unused without a word (--num 5 compared the dump's 1 image). A note on stderr names them; without
    them, or where the images are made from them, there is none."""
    assert _run_cli("deploy-check", result, "--data-root", synth_root, "--num", 1, "--dump", tmp_path / "d") == 0
    assert capsys.readouterr().err == ""
    assert _run_cli("deploy-check", result, "--against", tmp_path / "d", "--num", 5, "--calib-data", "mpii") == 0
    assert capsys.readouterr().err == (
        f"note: --num and --calib-data unused: the emulator ran on the inputs {tmp_path / 'd'} holds (1 image(s))\n"
    )
    assert _run_cli("deploy-check", result, "--against", tmp_path / "d", "--num", 3) == 0
    assert capsys.readouterr().err.startswith("note: --num unused: ")
    assert _run_cli("deploy-check", result, "--against", tmp_path / "d") == 0
    assert capsys.readouterr().err == ""


def test_deploy_check_against_torch_ort_and_dumps(result, synth_root, tmp_path, capsys):
    common = ("--data-root", synth_root, "--num", 1)
    assert _run_cli("deploy-check", result, *common, "--dump", tmp_path / "d", "--json", tmp_path / "r.json") == 0
    assert "agree with torch" in capsys.readouterr().out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["first_divergent"] is None and len(report["layers"]) > 60
    assert list(report) == listed_keys("quantization.md", "writes the whole comparison as JSON:", "; an existing")
    assert all(list(row) == ["tensor", "shape", "max_lsb", "mean_lsb", "mismatch_fraction"] for row in report["layers"])
    assert report["against"] == "torch" and report["samples"] == 1
    assert set(report["fix_points"]) == {row["tensor"] for row in report["layers"]}
    # The dumps compare clean with themselves; a corrupted middle layer is found as the first divergence.
    assert _run_cli("deploy-check", result, "--against", tmp_path / "d") == 0
    victim = report["layers"][20]["tensor"]
    f = tmp_path / "d" / f"{victim.replace('/', '_')}.npy"
    arr = np.load(f)
    arr.reshape(-1)[0] ^= 1
    np.save(f, arr)
    assert _run_cli("deploy-check", result, "--against", tmp_path / "d", "--json", tmp_path / "r2.json") == 1
    assert json.loads((tmp_path / "r2.json").read_text())["first_divergent"] == victim
    # Dumping into the folder compared with would replace the board's tensors with the emulator's.
    with pytest.raises(UsageError, match="is the folder --against reads"):
        _run_cli("deploy-check", result, "--against", tmp_path / "d", "--dump", tmp_path / "d" / ".")
    assert np.load(f).reshape(-1)[0] == arr.reshape(-1)[0]
    # Through a bind mount of it elsewhere: test_deploy_check_dump_through_a_bind_mount_of_against_is_refused.
    # A damaged dump (truncated, or a pickle) is named, not a numpy traceback.
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(DataError, match=rf"{f.name} is not a readable \.npy file"):
        _run_cli("deploy-check", result, "--against", tmp_path / "d")
    np.save(f, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=rf"{f.name} is not a readable \.npy file"):
        _run_cli("deploy-check", result, "--against", tmp_path / "d")
    with pytest.raises(UsageError, match=r"--against must be torch or ort, or a folder of dumped tensors; onnx"):
        _run_cli("deploy-check", result, "--against", "onnxruntime")  # a name, not a tuple's repr


def test_deploy_check_against_ort_passes_a_correct_model_and_names_a_wrong_layer(
    result, synth_root, tmp_path, capsys, monkeypatch
):
    import dpupose.quant.compare as compare

    common = ("--data-root", synth_root, "--num", 2, "--against", "ort")
    # ONNX Runtime rounds ties to even, the DPU up: each layer, fed the emulator's inputs, is at most one LSB
    # off, so a correct model passes at the default tolerance for ort (1 LSB) ...
    assert _run_cli("deploy-check", result, *common, "--json", tmp_path / "r.json") == 0
    assert "agree with ort within 1 LSB (ONNX Runtime rounds ties to even, the DPU up)" in capsys.readouterr().out
    report = json.loads((tmp_path / "r.json").read_text())
    rows = report["layers"]
    assert report["tolerance_lsb"] == 1 and report["first_divergent"] is None
    assert rows[0]["max_lsb"] == 0  # the input quantization is the same
    assert all(row["max_lsb"] <= 1 for row in rows)
    tied = [row["tensor"] for row in rows if row["max_lsb"] == 1]
    assert tied  # ... where it is not exact: an explicit --tolerance 0 names the first tie
    assert _run_cli("deploy-check", result, *common, "--tolerance", 0, "--json", tmp_path / "r0.json") == 1
    assert json.loads((tmp_path / "r0.json").read_text())["first_divergent"] == tied[0]
    capsys.readouterr()
    # A layer computed from other weights (each weight of one conv 3 LSB off, as a wrong deployment) is more
    # than a tie off: named, and only it, as the layers after it read the emulator's tensors.
    model = onnx.load(str(result / "dpu_part_qdq.onnx"))
    producer = {o: n for n in model.graph.node for o in n.output}
    victim = rows[len(rows) // 2]["tensor"]
    node = producer[producer[victim].input[0]]  # the QuantizeLinear's input, back through an activation
    while node.op_type != "Conv":
        node = producer[node.input[0]]
    weight = next(t for t in model.graph.initializer if t.name == producer[node.input[1]].input[0])
    w = onnx.numpy_helper.to_array(weight).astype(np.int16)
    weight.CopyFrom(onnx.numpy_helper.from_array(np.clip(w + 3, -128, 127).astype(np.int8), weight.name))
    wrong = tmp_path / "wrong.onnx"
    onnx.save(model, str(wrong))
    real = compare.ort_trace
    monkeypatch.setattr(compare, "ort_trace", lambda path, *args: real(wrong, *args))
    assert _run_cli("deploy-check", result, *common, "--json", tmp_path / "r2.json") == 1
    report = json.loads((tmp_path / "r2.json").read_text())
    off = {row["tensor"]: row["max_lsb"] for row in report["layers"]}
    assert report["first_divergent"] == victim and off[victim] > 1
    assert all(lsb <= 1 for name, lsb in off.items() if name != victim)
    out = capsys.readouterr().out
    assert f"first layer that diverges (> 1 LSB): {victim}, {off[victim]} LSB off" in out


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        ((), "all 1 layers agree with ort within 1 LSB (ONNX Runtime rounds ties to even, the DPU up)"),
        (("--tolerance", "3"), "all 1 layers agree with ort within 3 LSB"),  # the user's, not the ties' 1 LSB
        (("--tolerance", "0"), "all 1 layers agree with ort within 0 LSB"),
    ],
)
def test_deploy_check_says_why_1_lsb_only_for_the_default_tolerance_against_ort(
    tmp_path, monkeypatch, capsys, argv, line
):
    import dpupose.quant.compare
    import dpupose.runtime.qdq_graph

    def report(path, images, against, tolerance, dump):  # the check itself is tested above: its result line here
        used = dpupose.quant.compare.default_tolerance(against) if tolerance is None else tolerance
        row = {"tensor": "t_int8", "shape": [1, 2, 2, 3], "max_lsb": 0, "mean_lsb": 0.0, "mismatch_fraction": 0.0}
        return {"tolerance_lsb": used, "first_divergent": None, "layers": [row], "fix_points": {"t_int8": 4}}

    program = types.SimpleNamespace(inputs=[types.SimpleNamespace(shape_nchw=(1, 3, 16, 16))])
    monkeypatch.setattr(dpupose.runtime.qdq_graph, "load_program", lambda path: program)
    monkeypatch.setattr(dpupose.quant.compare, "deploy_check", report)
    (tmp_path / "dpu0.onnx").write_bytes(b"")
    assert _run_cli("deploy-check", tmp_path / "dpu0.onnx", "--against", "ort", *argv) == 0
    assert capsys.readouterr().out.splitlines()[-1] == line


def test_deploy_check_s_table_cuts_long_names_and_gives_the_mismatch_in_percent(tmp_path, monkeypatch, capsys):
    """Each row: the tensor's name cut to its 60 columns (a longer one pushed the row's numbers out of line), its
    fix point, max and mean LSB off, and the share of values that differ in percent; the last line names the
    first layer past the tolerance in full, with its max LSB off."""
    import dpupose.quant.compare
    import dpupose.runtime.qdq_graph

    long = "decoder/" + "x" * 70 + "_int8"
    rows = [
        {"tensor": "image_int8", "max_lsb": 0, "mean_lsb": 0.0, "mismatch_fraction": 0.0},
        {"tensor": long, "max_lsb": 3, "mean_lsb": 0.5, "mismatch_fraction": 0.125},
    ]

    def report(path, images, against, tolerance, dump):
        fix = {"image_int8": 6, long: -2}
        return {"tolerance_lsb": 0, "first_divergent": long, "layers": rows, "fix_points": fix}

    program = types.SimpleNamespace(inputs=[types.SimpleNamespace(shape_nchw=(1, 3, 16, 16))])
    monkeypatch.setattr(dpupose.runtime.qdq_graph, "load_program", lambda path: program)
    monkeypatch.setattr(dpupose.quant.compare, "deploy_check", report)
    (tmp_path / "dpu0.onnx").write_bytes(b"")
    assert _run_cli("deploy-check", tmp_path / "dpu0.onnx") == 1
    assert capsys.readouterr().out.splitlines() == [
        "tensor" + " " * 54 + "  fp  max     mean  differ",
        "image_int8" + " " * 50 + "   6    0   0.0000   0.00%",
        long[:60] + "  -2    3   0.5000  12.50%",
        f"first layer that diverges (> 0 LSB): {long}, 3 LSB off",
    ]


@pytest.mark.parametrize("option", ["--dump", "--json"])
def test_deploy_check_refuses_an_output_it_cannot_write_before_any_work(result, synth_root, monkeypatch, option):
    import dpupose.quant.compare

    def started(*args, **kwargs):
        raise AssertionError("the check ran before its output was found unwritable")

    monkeypatch.setattr(dpupose.quant.compare, "deploy_check", started)
    monkeypatch.setattr(dpupose.quant.data, "calibration_batches", started)
    target = "/proc/dpupose-out" + (".json" if option == "--json" else "")
    with pytest.raises(OSError) as err:
        _run_cli("deploy-check", result, "--data-root", synth_root, "--num", 1, option, target)
    assert err.value.filename == target


def _assert_nothing_left(parent: Path) -> None:
    assert list(parent.iterdir()) == []


def test_bad_checkpoints_leave_nothing(tmp_path):
    out_parent = tmp_path / "outs"
    out_parent.mkdir()
    truncated = tmp_path / "truncated.pt"
    good = save_checkpoint(sane_model(), tmp_path / "good.pt")
    truncated.write_bytes(good.read_bytes()[:5000])
    foreign = tmp_path / "foreign.pt"
    foreign.write_bytes(b"\x89PNG not a checkpoint" * 10)
    other = tmp_path / "other.pt"
    wide = sane_model(TINY.__class__(input_size=S, width_mult=0.5, decoder_channels=32))
    state = wide.state_dict()
    torch.save({"format": "dpupose-checkpoint", "model": state, "model_config": TINY.to_dict()}, other)
    # A network of the user's own: a plain state dict, or its ONNX export, is told where such a model goes.
    own = tmp_path / "own.pt"
    torch.save(torch.nn.Conv2d(3, 8, 3).state_dict(), own)
    own_onnx = tmp_path / "own.onnx"
    own_onnx.write_bytes(b"\x08\x08")  # not read: the name says what it is
    elsewhere = r"own network.*a network of your own goes to `dpupose split` as power-of-two QDQ ONNX.*dpu estimate"
    cases = (
        (truncated, "truncated"),
        (foreign, "checkpoint"),
        (other, "does not match"),
        (own, "is not a dpupose checkpoint .*" + elsewhere),
        (own_onnx, "is an ONNX model, not a checkpoint.*" + elsewhere),
    )
    for path, msg in cases:
        with pytest.raises(CheckpointError, match=msg):
            quantize(QuantizeConfig(checkpoint=path, out=out_parent / "q", num_calib=2))
        _assert_nothing_left(out_parent)


def test_bad_data_and_ranges_leave_nothing(tmp_path, synth_root):
    out_parent = tmp_path / "outs"
    out_parent.mkdir()
    model = sane_model()
    good = save_checkpoint(model, tmp_path / "good.pt")
    # A calibration set smaller than asked (the fixture's training split has 24 scenes).
    with pytest.raises(DataError, match="only 24 samples but 30 were asked"):
        quantize(QuantizeConfig(checkpoint=good, out=out_parent / "q", data_root=synth_root, num_calib=30))
    _assert_nothing_left(out_parent)
    # The messages say it is the calibration data, and name this command's options.
    with pytest.raises(UsageError, match=r"^calibration samples \(the train split of the mpii data\): MPII data needs"):
        quantize(QuantizeConfig(checkpoint=good, out=out_parent / "q", calib_data="mpii", num_calib=2))
    valid_only = tmp_path / "valid-only"
    (valid_only / "annot").mkdir(parents=True)
    shutil.copytree(synth_root / "images", valid_only / "images")
    shutil.copy(synth_root / "annot" / "valid.json", valid_only / "annot" / "valid.json")
    with pytest.raises(
        DataError, match=r"^calibration samples \(the train split of the mpii data\): .*annot/train\.json"
    ):
        quantize(
            QuantizeConfig(checkpoint=good, out=out_parent / "q", calib_data="mpii", data_root=valid_only, num_calib=2)
        )
    with pytest.raises(DataError, match="lower --num or use a larger data set"):
        list(calibration_batches("mpii", synth_root, 30, 64, count_option="--num"))
    _assert_nothing_left(out_parent)
    # NaNs in activations (a poisoned BatchNorm), then a range no int8 position can hold.
    for poison, msg in ((float("nan"), "NaN"), (1e12, "limited to positions")):
        bad = sane_model()
        with torch.no_grad():
            bad.dpu_part.backbone.features[3].conv[1][1].weight.fill_(poison)
        path = save_checkpoint(bad, tmp_path / "bad.pt")
        with pytest.raises(QuantizationError, match=msg):
            quantize(QuantizeConfig(checkpoint=path, out=out_parent / "q", data_root=synth_root, num_calib=2))
        _assert_nothing_left(out_parent)


def test_refuses_to_replace_a_foreign_folder(tmp_path, ckpt):
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "thesis.tex").write_text("x")
    with pytest.raises(UsageError, match="not an earlier"):
        quantize(QuantizeConfig(checkpoint=ckpt, out=tmp_path / "precious", num_calib=2))
    assert (tmp_path / "precious" / "thesis.tex").read_text() == "x"


def test_keeps_a_checkpoint_kept_inside_an_earlier_result(result, ckpt, tmp_path):
    import shutil

    earlier = tmp_path / "q"
    shutil.copytree(result, earlier)
    shutil.copy(ckpt, earlier / "model.pt")  # the checkpoint to quantize, inside the folder to replace
    with pytest.raises(UsageError, match=r"also holds model\.pt, which replacing it would delete"):
        quantize(QuantizeConfig(checkpoint=earlier / "model.pt", out=earlier, num_calib=2))
    assert (earlier / "model.pt").read_bytes() == ckpt.read_bytes()


# ---- vai_q --------------------------------------------------------------------------------------------
def test_vai_q_absent_says_to_use_the_script(tmp_path, ckpt, monkeypatch):
    monkeypatch.delitem(sys.modules, "pytorch_nndct", raising=False)
    with pytest.raises(ToolNotFoundError, match=r"scripts/vitis_ai_quantize\.sh"):
        quantize(QuantizeConfig(checkpoint=ckpt, out=tmp_path / "q", engine="vai_q", num_calib=2))
    assert not (tmp_path / "q").exists()


class _FakeQuantizer:
    """Records what the adapter asks of vai_q_pytorch's torch_quantizer; its arguments are those of
    Vitis AI 2.5's (pytorch_nndct/apis.py), which has no `target`."""

    calls: ClassVar[list] = []

    def __init__(
        self,
        quant_mode,
        module,
        input_args=None,
        state_dict_file=None,
        output_dir="quantize_result",
        bitwidth=None,
        mix_bit=False,
        device=None,
        lstm=False,
        app_deploy="CV",
        qat_proc=False,
        custom_quant_ops=None,
        quant_config_file=None,
    ):
        self._record(quant_mode, module, input_args, output_dir, {})

    def _record(self, mode, module, inputs, output_dir, extra):
        self.mode = mode
        self.module = module
        self.output_dir = Path(output_dir)
        self.calls.append(("torch_quantizer", mode, tuple(inputs[0].shape), extra))

        def forward(x):
            self.calls.append(("forward", mode, tuple(x.shape)))
            return module(x)

        self.quant_model = forward

    def export_quant_config(self):
        self.calls.append(("export_quant_config", self.mode))
        (self.output_dir / "quant_info.json").write_text("{}")

    def export_xmodel(self, output_dir, deploy_check=False):
        self.calls.append(("export_xmodel", self.mode, deploy_check))
        (Path(output_dir) / f"{type(self.module).__name__}_int.xmodel").write_bytes(b"xmodel")


class _FakeQuantizer30(_FakeQuantizer):
    """Stands for Vitis AI 3.0's torch_quantizer, which added `target` (other arguments left out)."""

    def __init__(self, quant_mode, module, input_args=None, output_dir="quantize_result", device=None, target=None):
        self._record(quant_mode, module, input_args, output_dir, {"target": target})


def _install_fake_nndct(monkeypatch, quantizer) -> None:
    nndct = types.ModuleType("pytorch_nndct")
    apis = types.ModuleType("pytorch_nndct.apis")
    apis.torch_quantizer = quantizer
    nndct.apis = apis
    monkeypatch.setitem(sys.modules, "pytorch_nndct", nndct)
    monkeypatch.setitem(sys.modules, "pytorch_nndct.apis", apis)
    _FakeQuantizer.calls = []


def test_vai_q_2_5_has_no_target(tmp_path, ckpt, synth_root, monkeypatch):
    # Vitis AI 2.5's torch_quantizer raises TypeError on target=...; the adapter says so before calibrating.
    _install_fake_nndct(monkeypatch, _FakeQuantizer)
    cfg = QuantizeConfig(
        checkpoint=ckpt,
        out=tmp_path / "vq",
        engine="vai_q",
        data_root=synth_root,
        num_calib=2,
        target="DPUCZDX8G_ISA1_B1600",
    )
    with pytest.raises(UsageError, match=r"--target DPUCZDX8G_ISA1_B1600: .*takes no target.*leave --target out"):
        quantize(cfg)
    assert _FakeQuantizer.calls == [] and not (tmp_path / "vq").exists()
    doc = quantize(
        QuantizeConfig(checkpoint=ckpt, out=tmp_path / "vq", engine="vai_q", data_root=synth_root, num_calib=2)
    )
    assert _FakeQuantizer.calls[0][3] == {} and doc["vai_q"]["target"] is None


def test_vai_q_path_with_a_recording_fake(tmp_path, ckpt, synth_root, monkeypatch):
    _install_fake_nndct(monkeypatch, _FakeQuantizer30)
    out = tmp_path / "vq"
    doc = quantize(
        QuantizeConfig(
            checkpoint=ckpt,
            out=out,
            engine="vai_q",
            data_root=synth_root,
            num_calib=2,
            batch_size=1,
            target="DPUCZDX8G_ISA1_B1600",
        )
    )
    calls = _FakeQuantizer.calls
    kinds = [c[0] for c in calls]
    assert calls[0] == ("torch_quantizer", "calib", (1, 3, S, S), {"target": "DPUCZDX8G_ISA1_B1600"})
    assert [c for c in calls if c[0] == "forward" and c[1] == "calib"] == [("forward", "calib", (1, 3, S, S))] * 2
    assert kinds.index("export_quant_config") < kinds.index("torch_quantizer", 1)
    assert calls[kinds.index("torch_quantizer", 1)][1] == "test"
    test_forwards = [c for c in calls if c[0] == "forward" and c[1] == "test"]
    assert test_forwards and all(c[2][0] == 1 for c in test_forwards)  # batch 1 before export
    assert kinds[-1] == "export_xmodel" and calls[-1] == ("export_xmodel", "test", False)
    assert (out / "DpuPart_int.xmodel").read_bytes() == b"xmodel"
    assert (out / "vai_q" / "quant_info.json").is_file()
    assert doc["engine"] == "vai_q" and doc["vai_q"]["xmodel"] == "DpuPart_int.xmodel"
    assert json.loads((out / "summary.json").read_text())["vai_q"]["target"] == "DPUCZDX8G_ISA1_B1600"


@pytest.mark.vitis_ai
def test_vai_q_real_run(tmp_path, ckpt, synth_root):
    pytest.importorskip("pytorch_nndct")
    cfg = QuantizeConfig(checkpoint=ckpt, out=tmp_path / "vq", engine="vai_q", data_root=synth_root, num_calib=8)
    doc = quantize(cfg)
    assert (tmp_path / "vq" / doc["vai_q"]["xmodel"]).stat().st_size > 1000


# ---- dpupose eval --engine -----------------------------------------------------------------------------
def test_eval_int8_engines_and_the_cache(result, ckpt, synth_root, tmp_path, monkeypatch, capsys):
    from dpupose.commands import eval as eval_cmd
    from dpupose.quant import engines

    parser = argparse.ArgumentParser()
    eval_cmd.register(parser.add_subparsers())
    common = ["eval", "--checkpoint", str(ckpt), "--data", "synthetic", "--data-root", str(synth_root)]
    common += ["--num-samples", "4", "--json"]
    results = {}
    for engine in ("fp32", "int8-emulated", "int8-ort"):
        quantized = [] if engine == "fp32" else ["--quantized", str(result)]  # fp32 refuses one
        args = parser.parse_args([*common, "--engine", engine, *quantized])
        assert args.func(args) == 0
        results[engine] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert results[engine]["engine"] == engine
    # More samples asked for than the root holds: those it has, and a note that says so.
    args = parser.parse_args([*common[:-3], "--num-samples", "100", "--json"])
    assert args.func(args) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out.strip().splitlines()[-1])["num_samples"] == 12
    assert "--num-samples 100, but" in captured.err and "evaluating those 12" in captured.err
    keys = [k for k, v in results["fp32"].items() if isinstance(v, float)]
    assert keys and all(np.isfinite(results[e][k]) for e in results for k in keys)
    args = parser.parse_args([*common, "--decode", "local"])
    assert args.func(args) == 0
    local = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert results["fp32"]["decode"] == "dsnt" and local["decode"] == "local"
    assert local["jsd"] == pytest.approx(results["fp32"]["jsd"])  # same heatmaps, other coordinates
    args = parser.parse_args([*common, "--flip", "--engine", "int8-emulated", "--quantized", str(result)])
    assert args.func(args) == 0
    flipped = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert flipped["flip"] is True and results["int8-emulated"]["flip"] is False
    assert flipped["jsd"] != pytest.approx(results["int8-emulated"]["jsd"])  # other (averaged) heatmaps
    # The emulated engine is the emulator itself: its predictor equals running the runner by hand.
    predict = engines.int8_predictor(result, "int8-emulated")
    x = np.random.default_rng(0).normal(0, 1, (2, 3, S, S)).astype(np.float32)
    emu = EmulatorRunner(result / "dpu_part_qdq.onnx")
    fp_in, fp_out = emu.inputs[0].fix_point, emu.outputs[0].fix_point
    xi = np.clip(np.floor(x.transpose(0, 2, 3, 1) * 2.0**fp_in + 0.5), -128, 127).astype(np.int8)
    logits = emu.run({"image": xi})["logits"].transpose(0, 3, 1, 2) * 2.0**-fp_out
    _coords, heat = predict(x)
    e = np.exp(logits.reshape(2, 16, -1) - logits.reshape(2, 16, -1).max(-1, keepdims=True))
    np.testing.assert_allclose(heat.reshape(2, 16, -1), e / e.sum(-1, keepdims=True), rtol=1e-5, atol=1e-7)
    # int8-ort is ONNX Runtime's own arithmetic on the file (ties to even), not the emulator's fast path,
    # which rounds as the DPU does and would repeat int8-emulated.
    from dpupose.quant.compare import ort_trace

    plain = ort_trace(result / "dpu_part_qdq.onnx", {"image": xi}, {"image": fp_in})
    logits = plain[emu.program.outputs[0].tensor].transpose(0, 3, 1, 2) * 2.0**-fp_out
    _coords, heat = engines.int8_predictor(result, "int8-ort")(x)
    e = np.exp(logits.reshape(2, 16, -1) - logits.reshape(2, 16, -1).max(-1, keepdims=True))
    np.testing.assert_allclose(heat.reshape(2, 16, -1), e / e.sum(-1, keepdims=True), rtol=1e-5, atol=1e-7)
    # A --quantized folder made from another network is refused, naming what differs.
    import shutil

    other = tmp_path / "other-q"
    shutil.copytree(result, other)
    summary = json.loads((other / "summary.json").read_text())
    summary["model_config"]["input_size"] += 32
    summary["weights_sha256"] = "0" * 64  # another network has other weights too: the size is what is said
    (other / "summary.json").write_text(json.dumps(summary))
    args = parser.parse_args([*common, "--engine", "int8-emulated", "--quantized", str(other)])
    with pytest.raises(UsageError, match=rf"was made from another network \(input_size {S + 32} there, {S} here\)"):
        args.func(args)
    # ...and one quantized from other weights of the same network; an export of the same weights is fine.
    from dpupose.commands.export import export_checkpoint

    model, state = load_checkpoint(ckpt)
    with torch.no_grad():
        next(model.parameters()).add_(0.01)
    retrained = save_checkpoint(model, tmp_path / "retrained.pt")
    args = parser.parse_args(
        [*common[:2], str(retrained), *common[3:], "--engine", "int8-ort", "--quantized", str(result)]
    )
    with pytest.raises(UsageError, match=r"was quantized from other weights \(.*tiny\.pt, epoch"):
        args.func(args)
    export_checkpoint(str(ckpt), str(tmp_path / "exported.pt"))
    args = parser.parse_args(
        [*common[:2], str(tmp_path / "exported.pt"), *common[3:], "--engine", "int8-ort", "--quantized", str(result)]
    )
    assert args.func(args) == 0
    capsys.readouterr()
    # Without --quantized: quantized once into the cache, then reused.
    monkeypatch.setattr(engines, "CACHE", tmp_path / "cache")
    first = engines.cached_quantization(ckpt, "synthetic", synth_root, cache=tmp_path / "cache")
    assert (first / "dpu_part_qdq.onnx").is_file()
    monkeypatch.setattr("dpupose.quant.pipeline.quantize", lambda cfg: pytest.fail("quantized twice"))
    assert engines.cached_quantization(ckpt, "synthetic", synth_root, cache=tmp_path / "cache") == first


def test_eval_reads_a_quantized_folder_of_another_version_by_its_summary(tmp_path):
    from dpupose.commands.eval import _check_quantized_matches
    from dpupose.model.checkpoint import weights_digest

    model = sane_model()
    folder = tmp_path / "q"
    folder.mkdir()

    def summary(**changes):
        doc = {
            "format": "dpupose-quantize-summary/1",
            "model_config": model.config.to_dict(),
            "weights_sha256": weights_digest(model),
        }
        doc.update(changes)
        (folder / "summary.json").write_text(json.dumps(doc))

    summary()
    _check_quantized_matches(folder, model)  # this version's
    # An earlier version that did not record a field (here duc_blocks) made it with the default.
    summary(model_config={k: v for k, v in model.config.to_dict().items() if k != "duc_blocks"})
    assert model.config.duc_blocks == 3  # the default
    _check_quantized_matches(folder, model)
    shallower = sane_model(dataclasses.replace(TINY, duc_blocks=2))  # not the network the folder holds
    with pytest.raises(UsageError, match=r"another network \(duc_blocks 3 there, 2 here\)"):
        _check_quantized_matches(folder, shallower)
    # A damaged summary.json was taken for none, and the checks above skipped (exit 0 with another network's
    # or other weights' results); one that is missing is left to int8_predictor, which says what the folder lacks.
    for damaged, said in [
        ("{{{{", r"is damaged \(not JSON: Expecting property name"),
        ("[]", "is not a JSON object"),
        ('{"model_config": 3}', "has a model_config that is not an object"),
        ('{"weights_sha256": [1]}', "has a weights_sha256 that is not a string"),
    ]:
        (folder / "summary.json").write_text(damaged)
        with pytest.raises(
            UsageError,
            match=rf"^--quantized {re.escape(str(folder))}: its summary\.json {said}.*, so "
            r"whether the folder was quantized from --checkpoint cannot be told; quantize --checkpoint "
            r"again with `dpupose quantize`, or copy the folder whole again$",
        ):
            _check_quantized_matches(folder, model)
    # One that is no file (a folder at its name; a FIFO: test_wrong_file_kind.py) is refused so too, naming what
    # is there, not taken for none.
    (folder / "summary.json").unlink()
    (folder / "summary.json").mkdir()
    with pytest.raises(
        UsageError,
        match=rf"^--quantized {re.escape(str(folder))}: its summary\.json is a folder, so whether the folder was "
        r"quantized from --checkpoint cannot be told; quantize --checkpoint again with `dpupose quantize`, or copy "
        r"the folder whole again$",
    ):
        _check_quantized_matches(folder, model)
    (folder / "summary.json").rmdir()
    assert _check_quantized_matches(folder, model) is None
    # A field left out is no damage: without weights_sha256 the network is still checked, the weights are not.
    (folder / "summary.json").write_text(json.dumps({"model_config": model.config.to_dict()}))
    _check_quantized_matches(folder, model)
    with pytest.raises(UsageError, match=r"another network \(duc_blocks 3 there, 2 here\)"):
        _check_quantized_matches(folder, shallower)
    (folder / "summary.json").unlink()
    # A newer version: a summary format it does not read, or a model_config field it does not know.
    summary(format="dpupose-quantize-summary/2")
    newer = (
        r"summary\.json is format dpupose-quantize-summary/2, written by a newer dpupose; this dpupose \(.*\) reads "
        r"dpupose-quantize-summary/1: quantize --checkpoint"
    )
    with pytest.raises(UsageError, match=newer):
        _check_quantized_matches(folder, model)
    # Its fields may be of other kinds: that is the newer format, not damage ('quantize again' would not help).
    summary(format="dpupose-quantize-summary/2", model_config="mobilenet_v2-224", weights_sha256=[1, 2])
    with pytest.raises(UsageError, match=newer):
        _check_quantized_matches(folder, model)
    summary(format="dpupose-quantize-summary/\u00b2")  # str.isdigit() holds, int() refuses: no newer format
    _check_quantized_matches(folder, model)
    summary(model_config={**model.config.to_dict(), "activation": "hswish"})
    with pytest.raises(UsageError, match=r"field\(s\) activation, which this dpupose .* quantized by a newer dpupose"):
        _check_quantized_matches(folder, model)


def test_eval_of_a_vai_q_folder_says_its_dpu_part_is_the_xmodel(tmp_path):
    from dpupose.errors import ModelFileError
    from dpupose.quant.engines import int8_predictor

    folder = tmp_path / "vai"
    folder.mkdir()
    for name in ("model_fp32.onnx", "dpu_part_fp32.onnx", "cpu_part_fp32.onnx", "DpuPart_int.xmodel"):
        (folder / name).write_bytes(b"x")
    (folder / "summary.json").write_text(json.dumps({"format": "dpupose-quantize-summary/1", "engine": "vai_q"}))
    with pytest.raises(ModelFileError, match=r"quantized with --engine vai_q, whose DPU part is the compiled"):
        int8_predictor(folder, "int8-emulated")
    (folder / "summary.json").unlink()  # a folder copied without its summary: what is missing is named
    with pytest.raises(ModelFileError, match=r"dpu_part_qdq\.onnx not found; --quantized must be"):
        int8_predictor(folder, "int8-ort")


def test_the_int8_engines_quantize_once_per_checkpoint_and_data_root_calibrating_on_at_most_100(tmp_path, monkeypatch):
    """cached_quantization's folder is keyed by the checkpoint's bytes and the data root (two roots calibrate on
    other images); a root of 7 training samples calibrates on those 7, one of 500 on the default 100."""
    from dpupose.quant import engines
    from dpupose.quant import pipeline as pipeline_mod

    made = []

    def fake_quantize(cfg):
        made.append((Path(cfg.out), cfg.num_calib, cfg.data_root))
        Path(cfg.out).mkdir(parents=True)
        (Path(cfg.out) / "summary.json").write_text("{}")

    sizes = {"small": 7, "large": 500}

    def fake_load_data(kind, split, root, *args, **kwargs):
        assert (kind, split) == ("synthetic", "train")
        if Path(root).name == "broken":
            raise DataError(f"{root} has no train split")
        return types.SimpleNamespace(records=[None] * sizes[Path(root).name])

    monkeypatch.setattr(pipeline_mod, "quantize", fake_quantize)
    monkeypatch.setattr("dpupose.data.sources.load_data", fake_load_data)
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"weights")
    cache = tmp_path / "cache"
    small = engines.cached_quantization(ckpt, "synthetic", tmp_path / "small", cache=cache)
    large = engines.cached_quantization(ckpt, "synthetic", tmp_path / "large", cache=cache)
    again = engines.cached_quantization(ckpt, "synthetic", tmp_path / "x" / ".." / "small", cache=cache)
    assert small != large and again == small
    assert [(out, n) for out, n, _ in made] == [(small, 7), (large, 100)]
    with pytest.raises(DataError, match=r"calibrating on the train split: .*broken has no train split \(or pass"):
        engines.cached_quantization(ckpt, "synthetic", tmp_path / "broken", cache=cache)
    with pytest.raises(UsageError, match=r"checkpoint .*none\.pt not found"):
        engines.cached_quantization(tmp_path / "none.pt", "synthetic", None, cache=cache)
    assert len(made) == 2


def test_an_int8_predictor_for_another_engine_is_refused(tmp_path):
    from dpupose.quant.engines import int8_predictor

    (tmp_path / "dpu_part_qdq.onnx").write_bytes(b"")
    for engine in ("fp32", "int8"):
        with pytest.raises(UsageError, match=f"unknown INT8 engine '{engine}'"):
            int8_predictor(tmp_path, engine)


@pytest.mark.parametrize("engine", ["int8-emulated", "int8-ort"])
def test_an_int8_predictor_quantizes_at_the_input_s_fix_point_and_dequantizes_at_the_output_s(
    tmp_path, monkeypatch, engine
):
    """A runner whose input is at fix point 3 and output at 6 (a stand-in for the file's): the images go in NHWC,
    rounded half up at 2**3, and the heatmaps are the flat softmax of its int8 NHWC output times 2**-6."""
    from dpupose.quant.engines import int8_predictor
    from dpupose.runtime import emulator

    rng = np.random.default_rng(0)
    images = rng.normal(0, 4, (2, 3, 4, 6)).astype(np.float32)  # (N, 3, H, W): H and W differ
    out_q = rng.integers(-128, 128, (2, 2, 3, 16)).astype(np.int8)  # (N, h, w, joints)
    seen = {}

    class Runner:
        def __init__(self, path, **kwargs):
            seen["runner"] = (type(self).__name__, kwargs)
            self.inputs = [types.SimpleNamespace(name="image", fix_point=3)]
            self.outputs = [types.SimpleNamespace(name="logits", fix_point=6)]

        def run(self, feeds):
            seen["x"] = feeds["image"]
            return {"logits": out_q}

    monkeypatch.setattr(emulator, "EmulatorRunner", type("EmulatorRunner", (Runner,), {}))
    monkeypatch.setattr(emulator, "QdqOrtRunner", type("QdqOrtRunner", (Runner,), {}))
    (tmp_path / "dpu_part_qdq.onnx").write_bytes(b"")
    coords, heatmaps = int8_predictor(tmp_path, engine)(images)
    assert seen["runner"] == (
        ("EmulatorRunner", {}) if engine == "int8-emulated" else ("QdqOrtRunner", {"round_ties_up": False})
    )
    x = images.transpose(0, 2, 3, 1) * 8
    np.testing.assert_array_equal(seen["x"], np.clip(np.floor(x + 0.5), -128, 127).astype(np.int8))
    logits = out_q.transpose(0, 3, 1, 2).reshape(2, 16, 6) / 64.0
    e = np.exp(logits - logits.max(-1, keepdims=True))
    np.testing.assert_allclose(heatmaps.reshape(2, 16, 6), e / e.sum(-1, keepdims=True), rtol=1e-5, atol=1e-7)
    assert heatmaps.shape == (2, 16, 2, 3) and coords.shape == (2, 16, 2) and coords.dtype == np.float32


def test_cached_quantizations_are_not_reused_by_another_dpupose_version(ckpt, tmp_path, monkeypatch):
    # The caches of eval's int8 engines and of bench/demo are keyed by the dpupose version too: another
    # version's quantizer may calibrate or fold differently, and an update must not reuse what it made.
    import dpupose
    from dpupose.eval import prepare
    from dpupose.quant import engines
    from dpupose.quant import pipeline as pipeline_mod

    made: list[Path] = []

    def fake_quantize(cfg):  # the folder's two files that the caches look for
        made.append(Path(cfg.out))
        Path(cfg.out).mkdir(parents=True)
        (Path(cfg.out) / "summary.json").write_text("{}")
        (Path(cfg.out) / "model_qdq.onnx").write_text("")

    monkeypatch.setattr(pipeline_mod, "quantize", fake_quantize)
    for version in ("0.1.0", "0.1.0", "0.2.0"):
        monkeypatch.setattr(dpupose, "__version__", version)
        monkeypatch.setattr(prepare, "__version__", version)
        engines.cached_quantization(ckpt, "synthetic", None, cache=tmp_path / "eval")
        prepare.quantized(ckpt, cache=tmp_path / "bench")
    assert len(made) == 4  # once per version and cache, the second 0.1.0 round reused both
    assert [p.parent for p in made] == [tmp_path / "eval", tmp_path / "bench" / "quantized"] * 2
    assert made[0] != made[2] and made[1] != made[3] and made[2].name.endswith("-v0.2.0")


# ---- the comparison of traces, dumps, and the printed summary -------------------------------------------
def test_compare_traces_counts_the_lsbs_of_each_tensor_in_order():
    ref = {"a": np.array([[0, 1, 2, 3]], np.int8), "b": np.array([[5, 5, 5, 5]], np.int8)}
    emu = {"a": np.array([[0, 1, 4, 3]], np.int8), "b": np.array([[4, 5, 5, 6]], np.int8), "c": np.zeros((1, 4))}
    report = compare_traces(ref, emu, ["a", "b", "c"], tolerance=0)
    assert report == {
        "tolerance_lsb": 0,
        "first_divergent": "a",
        "layers": [
            {"tensor": "a", "shape": [1, 4], "max_lsb": 2, "mean_lsb": 0.5, "mismatch_fraction": 0.25},
            {"tensor": "b", "shape": [1, 4], "max_lsb": 1, "mean_lsb": 0.5, "mismatch_fraction": 0.5},
        ],
    }
    assert compare_traces(ref, emu, ["a", "b"], tolerance=1)["first_divergent"] == "a"
    assert compare_traces(ref, emu, ["b", "a"], tolerance=1)["first_divergent"] == "a"
    assert compare_traces(ref, emu, ["b", "a"], tolerance=0)["first_divergent"] == "b"
    assert compare_traces(ref, emu, ["a", "b"], tolerance=2)["first_divergent"] is None
    # a tensor of another shape is named, not broadcast against the other
    with pytest.raises(DataError, match=r"tensor 'a': reference shape \(1, 4\), emulator shape \(4,\)"):
        compare_traces(ref, {"a": np.array([0, 1, 2, 3], np.int8)}, ["a"])
    with pytest.raises(DataError, match="no tensor in common"):
        compare_traces(ref, emu, ["c"])


def test_a_dump_of_another_shape_or_size_is_named(tmp_path):
    shapes = {"x/a": (1, 2, 2, 3), "y": (1, 1, 1, 4)}
    again = "dump it again from this subgraph (int8, NHWC), or remove it"
    # A folder without them says which files it reads (it said '<tensor>.npy or <tensor>.bin' only).
    with pytest.raises(DataError) as info:
        read_dump_dir(tmp_path, shapes)
    assert str(info.value) == (
        f"{tmp_path} holds no dumped tensor of this subgraph: it reads x_a.npy, y.npy (or .bin, int8 NHWC); dump "
        "them from this subgraph, or give the folder that holds them"
    )
    np.save(tmp_path / "x_a.npy", np.zeros((1, 2, 3, 2), np.int8))
    with pytest.raises(DataError) as info:
        read_dump_dir(tmp_path, shapes)
    assert str(info.value) == (
        f"{tmp_path / 'x_a.npy'}: dumped 'x/a' has shape (1, 2, 3, 2), the emulator's is (1, 2, 2, 3) (NHWC): {again}"
    )
    (tmp_path / "x_a.npy").unlink()
    (tmp_path / "y.bin").write_bytes(bytes(range(5)))
    with pytest.raises(DataError) as info:
        read_dump_dir(tmp_path, shapes)
    assert str(info.value) == f"{tmp_path / 'y.bin'} has 5 bytes, tensor 'y' needs 4 (shape (1, 1, 1, 4)): {again}"
    (tmp_path / "y.bin").write_bytes(bytes([1, 2, 255, 128]))
    got = read_dump_dir(tmp_path, shapes)
    assert list(got) == ["y"] and got["y"].tolist() == [[[[1, 2, -1, -128]]]]


@pytest.mark.parametrize("kind", ["folder", "FIFO", "link"])
def test_a_dump_name_that_is_no_file_is_named_not_skipped_as_not_dumped(tmp_path, kind):
    """A folder, a FIFO or a link to nothing at a tensor's .npy (or .bin) was taken for a tensor not dumped: the
    comparison left that layer out and said every layer agreed."""
    import os

    shapes = {"x/a": (1, 1, 1, 2), "y": (1, 1, 1, 2)}
    np.save(tmp_path / "y.npy", np.zeros((1, 1, 1, 2), np.int8))
    for name in ("x_a.npy", "x_a.bin"):
        path = tmp_path / name
        {"folder": path.mkdir, "FIFO": lambda p=path: os.mkfifo(p), "link": lambda p=path: p.symlink_to("gone")}[kind]()
        nowhere = "is a symbolic link that leads nowhere (to gone)"
        what = {"folder": "is a folder", "FIFO": "is a FIFO", "link": nowhere}[kind]
        with pytest.raises(DataError) as info:
            read_dump_dir(tmp_path, shapes)
        assert str(info.value).startswith(f"{path} {what}")
        assert str(info.value).endswith(
            ", where the dump of tensor 'x/a' is read from: put the dumped tensor's file there, or move it away to "
            "leave that tensor out"
        )
        path.rmdir() if kind == "folder" else path.unlink()
    assert list(read_dump_dir(tmp_path, shapes)) == ["y"]  # not dumped at all: left out, as before


def test_a_dump_folder_of_tensors_no_dump_wrote_is_refused_before_any_work(result, synth_root, tmp_path, monkeypatch):
    """deploy-check --dump into a folder of a board's dumps (the format --against reads): the emulator's
    tensors replaced the board's of the same names without a word, and its .npy hid a board's .bin of a tensor
    from the next --against. A file at those names that no earlier --dump wrote (its dump.json lists those)
    stops the check before any work; the emulator's own dump is written over again."""
    from dpupose.quant import compare

    common = ("deploy-check", result, "--data-root", synth_root, "--num", 1)
    emu = tmp_path / "emulator"
    assert _run_cli(*common, "--dump", emu) == 0
    names = sorted(p.name for p in emu.glob("*.npy"))
    assert len(names) > 60
    assert json.loads((emu / "dump.json").read_text()) == {
        "generated_by": "dpupose deploy-check --dump",
        "files": names,
    }
    # Its own files are the next dump's to write over (what that writes: the test of dump.json's list below)
    compare.check_dump_dir(emu, [name[: -len(".npy")] for name in names])
    board = tmp_path / "board"
    board.mkdir()
    mine = {names[3]: b"the board's tensor", names[5].replace(".npy", ".bin"): b"raw", "notes.txt": b"mine"}
    for name, data in mine.items():
        (board / name).write_bytes(data)

    def no_work(*args, **kwargs):
        raise AssertionError("the check ran")

    monkeypatch.setattr(compare, "quantize_to_int8", no_work)
    with pytest.raises(UsageError) as info:
        _run_cli(*common, "--dump", board)
    assert str(info.value) == (
        f"--dump {board} holds {names[3]}, {names[5].replace('.npy', '.bin')}, which no earlier --dump wrote there "
        "(its dump.json lists those) and this dump would write over or hide: move them elsewhere, or choose "
        "another --dump"
    )
    assert {p.name: p.read_bytes() for p in board.iterdir()} == mine
    (board / "dump.json").write_text('{"generated_by": "my board script"}')  # another program's record
    (board / names[3]).unlink()
    (board / names[5].replace(".npy", ".bin")).unlink()
    with pytest.raises(UsageError, match=rf"--dump {re.escape(str(board))} holds dump\.json, which no earlier"):
        _run_cli(*common, "--dump", board)


@pytest.mark.parametrize("room", [0, 200, 400])
def test_a_dump_that_does_not_fit_keeps_the_earlier_one_and_names_its_file(tmp_path, monkeypatch, room):
    """deploy-check --dump on a full disk wrote each tensor with np.save in place: an earlier dump's first files
    were replaced, the one that did not fit was left cut short under its name, and the error was numpy's
    ('49152 requested and 32640 written': no errno, no file) or a write's (no file). The dump is now written
    as a set: the earlier one stays whole, nothing else is left, and the error names the file. `room`: the
    bytes the disk takes before it is full (the first tensor is 328 bytes as a .npy, the second 192)."""
    import builtins
    import errno

    import dpupose.quant.compare as compare

    folder = tmp_path / "d"
    trace = {"a": np.arange(200, dtype=np.int8).reshape(1, 5, 5, 8), "b/c": np.ones((1, 4, 4, 4), np.int8)}
    compare.write_dump_dir(folder, {k: -v for k, v in trace.items()})
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    from conftest import full_disk_open

    monkeypatch.setattr(builtins, "open", full_disk_open(room, under=folder))
    with pytest.raises(OSError) as info:
        compare.write_dump_dir(folder, trace)
    monkeypatch.undo()
    failed = folder / ("a.npy" if room < 328 else "b_c.npy")
    assert (info.value.errno, info.value.filename) == (errno.ENOSPC, str(failed))
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # no temporary either


def test_quantize_prints_the_lowest_per_layer_sqnr(monkeypatch, capsys):
    from dpupose.quant import pipeline

    doc = {
        "engine": "native",
        "calibration": {"samples": 4},
        "accuracy": {
            "samples": 2,
            "fp32_vs_int8": {"coords_mean_distance_px": 1.234, "heatmap_js_divergence_mean": 0.01234},
            "vs_labels": {"fp32_euclidean_px": 3.0, "int8_euclidean_px": 3.5},
            "ort_vs_emulator_logits_lsb": {"max": 1, "mean": 0.125},
            "per_layer": [
                {"tensor": "a", "sqnr_db": 30.0},
                {"tensor": "b", "sqnr_db": 12.5},
                {"tensor": "image", "sqnr_db": None},
                {"tensor": "c", "sqnr_db": 20.0},
            ],
        },
    }
    monkeypatch.setattr(pipeline, "quantize", lambda cfg: doc)
    parser = argparse.ArgumentParser(prog="dpupose")
    quantize_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["quantize", "--checkpoint", "c.pt", "--out", "q"])
    assert args.func(args) == 0
    assert capsys.readouterr().out.splitlines() == [
        "wrote q (native engine, 4 calibration samples)",
        "FP32 vs INT8 (emulated DPU) on 2 samples: mean joint distance 1.23 px, heatmap JSD 0.0123",
        "vs labels: FP32 3.00 px, INT8 3.50 px",
        "ONNX Runtime fast path vs emulator (logits): max 1 LSB, mean 0.125 LSB",
        "lowest per-layer SQNR: 12.5 dB at b",
    ]


# ---- what a mutation audit of the pipeline found untested ------------------------------------------------
def test_the_summary_lists_every_file_and_records_the_checkpoints_epoch(result):
    summary = json.loads((result / "summary.json").read_text())
    assert summary["files"] == [*sorted(p.name for p in result.iterdir() if p.name != "summary.json"), "summary.json"]
    assert summary["epoch"] == 3  # quant_helpers.save_checkpoint writes epoch 3
    assert json.loads((result / "fix_points.json").read_text())["generated_by"] == "dpupose quantize"


def test_bad_options_and_outputs_are_refused_before_the_calibration_set_is_opened(tmp_path, ckpt, monkeypatch):
    """Each refusal comes before the calibration set is chosen (and, for synthetic data, generated: minutes)."""
    import dpupose.quant.data

    def never(*args, **kwargs):
        raise AssertionError("the calibration set was opened")

    monkeypatch.setattr(dpupose.quant.data, "open_calibration_set", never)
    (tmp_path / "file").write_text("x")
    foreign = tmp_path / "precious"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("x")
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(ckpt.read_bytes()[:5000])
    cases = (
        ({"qat_epochs": -1}, UsageError, r"^--qat-epochs must be >= 0$"),
        ({"target": "DPUCZDX8G_ISA1_B1600"}, UsageError, r"--target names the DPU for --engine vai_q; --engine native"),
        ({"out": tmp_path / "file" / "q"}, NotADirectoryError, "file is a file, not a folder"),
        ({"out": foreign}, UsageError, "is not an earlier `dpupose quantize` result"),
        (
            {"checkpoint": damaged},
            CheckpointError,
            r"not a readable checkpoint \(not a file torch.save wrote, or one cut",
        ),
    )
    for change, error, message in cases:
        cfg = dataclasses.replace(QuantizeConfig(checkpoint=ckpt, out=tmp_path / "q", num_calib=2), **change)
        with pytest.raises(error, match=message):
            quantize(cfg)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["damaged.pt", "file", "precious"]


def test_an_earlier_result_whose_file_list_holds_other_than_names_is_replaced(tmp_path):
    from dpupose.quant.pipeline import staged_dir

    out = tmp_path / "q"
    out.mkdir()
    (out / "model_qdq.onnx").write_bytes(b"old")
    (out / "summary.json").write_text(json.dumps({"files": [7, None, "model_qdq.onnx", "summary.json"]}))
    with staged_dir(out) as tmp:
        (tmp / "summary.json").write_text("{}")
    assert sorted(p.name for p in out.iterdir()) == ["summary.json"]


def test_a_qat_run_records_its_epochs_steps_and_last_loss(tmp_path, ckpt, synth_root, monkeypatch):
    import dpupose.quant.qat

    calls = []

    def recorded(graph, fix, images, epochs, seed=0):
        calls.append((epochs, seed, [len(x) for x in images]))
        return graph, fix, [0.5, 0.25, 0.125]

    monkeypatch.setattr(dpupose.quant.qat, "qat_finetune", recorded)
    cfg = QuantizeConfig(checkpoint=ckpt, out=tmp_path / "q", data_root=synth_root, num_calib=4, batch_size=2,
                         qat_epochs=2, summary_samples=2, seed=5)  # fmt: skip
    doc = quantize(cfg)
    assert calls == [(2, 5, [2, 2])]
    assert doc["qat"] == {"epochs": 2, "steps": 3, "final_loss": 0.125}
    assert json.loads((tmp_path / "q" / "summary.json").read_text())["qat"] == doc["qat"]


def test_dump_json_lists_the_dumps_files_still_there_and_only_its_own_are_written_over(tmp_path):
    """write_dump_dir's dump.json lists this dump's files and an earlier dump's still in the folder (a dump of
    another subgraph beside it), not one removed since: a file of the user's put at that name later is not the
    dump's to write over. A dump.json of another program lists nothing of the dump's, even with a "files"
    list, and is named first."""
    import numpy as np

    from dpupose.quant.compare import check_dump_dir, write_dump_dir

    def record():
        return json.loads((tmp_path / "dump.json").read_text())

    x = np.zeros((1, 2, 2, 1), np.int8)
    write_dump_dir(tmp_path, {"a": x, "b/1": x})
    assert record() == {"generated_by": "dpupose deploy-check --dump", "files": ["a.npy", "b_1.npy"]}
    write_dump_dir(tmp_path, {"c": x})
    assert record()["files"] == ["a.npy", "b_1.npy", "c.npy"]
    (tmp_path / "a.npy").unlink()
    write_dump_dir(tmp_path, {"c": x})
    assert record()["files"] == ["b_1.npy", "c.npy"]
    check_dump_dir(tmp_path, ["a", "b/1", "c"])
    (tmp_path / "a.npy").write_bytes(b"the board's")
    with pytest.raises(UsageError, match=r"holds a\.npy, which no earlier --dump wrote"):
        check_dump_dir(tmp_path, ["a", "c"])
    (tmp_path / "dump.json").write_text('{"generated_by": "my board script", "files": ["a.npy", "c.npy"]}')
    with pytest.raises(UsageError) as info:
        check_dump_dir(tmp_path, ["c", "a"])
    assert str(info.value).startswith(f"--dump {tmp_path} holds dump.json, a.npy, c.npy, which no earlier --dump")


def test_a_link_at_a_dump_file_s_name_is_refused_and_what_it_points_to_kept(tmp_path):
    """An earlier dump's file replaced by a link (to a board's dump of that tensor elsewhere, to compare), or its
    dump.json a link to another dump folder's (a folder copied as links, `cp -rs`): the names were the earlier
    dump's, and the next --dump wrote the emulator's tensors through the links, over the files they point to.
    A link at a name the dump writes is refused, listed or not."""
    import numpy as np

    from dpupose.quant.compare import check_dump_dir, write_dump_dir

    x = np.zeros((1, 2, 2, 1), np.int8)
    dump, board = tmp_path / "dump", tmp_path / "board"
    board.mkdir()
    write_dump_dir(dump, {"a": x, "c": x})
    check_dump_dir(dump, ["a", "c"])  # its own files: written over
    (board / "a.npy").write_bytes(b"the board's")
    (dump / "a.npy").unlink()
    (dump / "a.npy").symlink_to(board / "a.npy")
    with pytest.raises(UsageError, match=r"holds a\.npy, which no earlier --dump wrote"):
        check_dump_dir(dump, ["a", "c"])
    check_dump_dir(dump, ["c"])  # a link at a name this dump does not write stays, and stops nothing
    other = tmp_path / "other"
    other.mkdir()
    (other / "dump.json").symlink_to(dump / "dump.json")
    (other / "c.npy").symlink_to(dump / "c.npy")
    with pytest.raises(UsageError, match=r"holds dump\.json, c\.npy, which no earlier --dump wrote"):
        check_dump_dir(other, ["c"])
    assert (board / "a.npy").read_bytes() == b"the board's"


def test_eval_names_a_summary_json_it_may_not_look_at_as_one_it_may_not_read(tmp_path, monkeypatch):
    """A summary.json that is a link into a folder the user may not search (--quantized's own check, of the
    folder itself, lets it by): its stat, made before the read's try, was refused outside it, and the command
    said only 'cannot use .../summary.json: Permission denied'. It is named as an unreadable one is, with what
    to do. (Run as root, which searches any folder, the refusal is the stat's own, PermissionError as a user
    gets it.)"""
    import errno
    import os
    from types import SimpleNamespace

    from dpupose.commands.argtypes import quantize_folder
    from dpupose.commands.eval import _check_quantized_matches

    locked, folder = tmp_path / "locked", tmp_path / "q"
    locked.mkdir()
    folder.mkdir()
    (locked / "summary.json").write_text("{}")
    (folder / "summary.json").symlink_to(locked / "summary.json")
    locked.chmod(0)
    real_stat = os.stat

    def stat(path, *args, **kwargs):
        if str(os.fspath(path)).startswith(str(locked)) or (
            str(os.fspath(path)) == str(folder / "summary.json") and kwargs.get("follow_symlinks", True)
        ):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_stat(path, *args, **kwargs)

    try:
        monkeypatch.setattr(os, "stat", stat)
        given = quantize_folder(str(folder))  # the folder itself is read
        with pytest.raises(
            UsageError,
            match=rf"^--quantized {re.escape(str(folder))}: cannot read its summary\.json \(Permission denied\); "
            r"quantize --checkpoint again with `dpupose quantize`, or copy the folder whole again$",
        ):
            _check_quantized_matches(given, SimpleNamespace(config=SimpleNamespace(to_dict=dict)))
    finally:
        monkeypatch.undo()
        locked.chmod(0o755)


def test_deploy_check_against_torch_without_onnx_says_so_before_any_work(tmp_path, monkeypatch, capsys):
    """torch's reference reads the file with onnx too: with PyTorch installed but onnx not, --against torch made
    its calibration images first (a minute of synthetic scenes) and only then found onnx missing."""
    from dpupose.cli import main

    dpu0 = Path(__file__).resolve().parents[1] / "models" / "dpupose-synth" / "split" / "dpu0.onnx"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "onnx", None)
    assert main(["deploy-check", str(dpu0), "--against", "torch"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dpupose: error: dpupose deploy-check needs onnx (module onnx)")
    assert os.listdir(tmp_path) == []  # no calibration image made
    # A board user (no torch, no onnx) is told the option that runs there, not that the command does not.
    assert "(on the board, give --against a folder of dumped tensors, which needs neither)" in err


def test_the_missing_package_line_of_deploy_check_by_its_subcommand_name_names_the_board_s_option():
    """missing_module_line takes a subcommand's name as well as the line as typed: both are deploy-check's line,
    which names the option that runs on the board; another command's says it runs on a PC."""
    from dpupose.cli import missing_module_line

    line = missing_module_line("deploy-check", "torch")
    assert line == missing_module_line("dpupose deploy-check", "torch")
    assert line == (
        "dpupose deploy-check needs PyTorch (module torch), which is not installed: against torch or ort it runs "
        "on a PC, not on the board (on the board, give --against a folder of dumped tensors, which needs "
        "neither); on a PC, install dpupose with its host extra: pip install 'dpupose[host]'"
    )
    assert missing_module_line("quantize", "torch").endswith(
        "which is not installed: it runs on a PC, not on the board; on a PC, install dpupose with its host extra: "
        "pip install 'dpupose[host]'"
    )
