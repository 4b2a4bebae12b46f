"""scripts/vitis_ai_quantize.sh without Vitis AI: the exact docker command, the host preparation, a
recording stand-in for docker, and the error when docker is missing."""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from quant_helpers import TINY, sane_model, save_checkpoint
from torch import nn

from dpupose.quant import vai_q
from dpupose.split.a53 import graph_counts

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "vitis_ai_quantize.sh"


@pytest.fixture(scope="module")
def inputs(synth_root, tmp_path_factory):
    d = tmp_path_factory.mktemp("vaiq")
    ckpt = save_checkpoint(sane_model(), d / "tiny.pt")
    arch = d / "hw" / "arch.json"
    arch.parent.mkdir()
    arch.write_text('{"fingerprint": "0x101000016010404"}')
    return ckpt, arch, synth_root


def _run(args, env=None):
    return subprocess.run(["bash", str(SCRIPT), *map(str, args)], capture_output=True, text=True, env=env)


def test_dry_run_prints_the_host_and_docker_commands(inputs, tmp_path):
    ckpt, arch, _ = inputs
    res = _run(["--checkpoint", ckpt, "--arch", arch, "--out", tmp_path / "o", "--target", "DPUCZDX8G_ISA1_B1600",
                "--name", "pose", "--dry-run"])  # fmt: skip
    assert res.returncode == 0, res.stderr
    host, docker = (shlex.split(line) for line in res.stdout.strip().splitlines())
    assert host[0] == f"PYTHONPATH={SCRIPT.parents[1] / 'sw'}"  # as the real run sets it
    assert host[2:5] == ["-m", "dpupose.quant.vai_q", "prepare"]
    assert not (tmp_path / "o").exists()  # a dry run writes nothing
    assert host[host.index("--work") + 1] == str(tmp_path / "o" / "staging")
    assert docker[:3] == ["docker", "run", "--rm"]
    assert f"{SCRIPT.parents[1]}:/workspace/dpupose:ro" in docker
    assert f"{tmp_path / 'o'}:/workspace/out" in docker and f"{arch.parent}:/workspace/arch:ro" in docker
    assert "xilinx/vitis-ai-cpu:2.5" in docker
    inner = docker[-1]
    assert "conda activate vitis-ai-pytorch" in inner
    assert "python -m dpupose.quant.vai_q run --work /workspace/out/staging --out /workspace/out" in inner
    assert "--target DPUCZDX8G_ISA1_B1600" in inner
    assert "vai_c_xir -x /workspace/out/DpuPart_int.xmodel -a /workspace/arch/arch.json" in inner
    assert inner.endswith("-o /workspace/out/compiled -n pose")


def test_an_image_of_another_release_is_warned_about(inputs, tmp_path):
    ckpt, arch, _ = inputs
    args = ["--checkpoint", ckpt, "--arch", arch, "--out", tmp_path / "o", "--dry-run"]
    res = _run(args)
    assert res.returncode == 0 and "warning" not in res.stderr  # the default, xilinx/vitis-ai-cpu:2.5
    for image, warned in [("xilinx/vitis-ai-pytorch-cpu:3.0.0.106", True), ("mirror/vitis-ai-cpu:2.5.0.1260", False)]:
        res = _run(args, env={**os.environ, "VAI_DOCKER_IMAGE": image})
        assert res.returncode == 0 and image in res.stdout
        assert ("warning: VAI_DOCKER_IMAGE" in res.stderr and "not tagged 2.5" in res.stderr) == warned


def test_missing_docker_and_bad_paths_are_clear(inputs, tmp_path):
    ckpt, arch, _ = inputs
    env = {**os.environ, "PATH": "/usr/bin:/bin"} if not shutil.which("docker", path="/usr/bin:/bin") else None
    if env is None:
        pytest.skip("docker is installed in /usr/bin or /bin")
    res = _run(["--checkpoint", ckpt, "--arch", arch, "--out", tmp_path / "o"], env=env)
    assert res.returncode == 2 and "docker not found" in res.stderr
    res = _run(["--checkpoint", tmp_path / "none.pt", "--arch", arch, "--out", tmp_path / "o"])
    assert res.returncode == 2 and "none.pt not found" in res.stderr


def test_a_folder_given_as_the_checkpoint_or_arch_is_named_as_one(inputs, tmp_path):
    # Both were said not to be found, though they are there: a run folder, the overlay folder.
    ckpt, arch, _ = inputs
    res = _run(["--checkpoint", tmp_path, "--arch", arch, "--out", tmp_path / "o", "--dry-run"])
    assert (res.returncode, res.stderr) == (
        2,
        f"vitis_ai_quantize: error: checkpoint {tmp_path} is a folder; give a checkpoint file (e.g. "
        "runs/NAME/best.pt)\n",
    )
    folder = Path(arch).parent
    res = _run(["--checkpoint", ckpt, "--arch", folder, "--out", tmp_path / "o", "--dry-run"])
    assert (res.returncode, res.stderr) == (
        2,
        f"vitis_ai_quantize: error: --arch {folder} is a folder; give the arch.json file in it ({folder}/arch.json)\n",
    )


def test_help_is_printed_to_stdout_with_exit_status_0():
    for flag in ("--help", "-h"):
        res = _run([flag])
        assert res.returncode == 0 and res.stderr == ""
        assert res.stdout.startswith("scripts/vitis_ai_quantize.sh --checkpoint CKPT --arch ARCH_JSON --out DIR")
    res = _run(["--dry-run"])  # the usage for a command line without the required options stays an error
    assert res.returncode == 2 and res.stdout == "" and "--checkpoint CKPT" in res.stderr
    # ... and names the ones missing first: the model card's `--plan models/dpupose-synth/split` alone got
    # the usage without a word on what it lacked.
    required = ": --checkpoint, --arch and --out are required\n"
    for args, missing in (
        (["--plan", "models/dpupose-synth/split"], "--checkpoint, --arch, --out"),
        (["--arch", "a.json", "--dry-run"], "--checkpoint, --out"),
        (["--checkpoint", "m.pt", "--arch", "a.json"], "--out"),
    ):
        res = _run(args)
        assert res.returncode == 2 and res.stdout == ""
        assert res.stderr.startswith(f"vitis_ai_quantize: error: missing {missing}{required}scripts/vitis_ai_quantize")


def test_an_option_given_last_without_its_value_is_named():
    for option in ("--checkpoint", "--arch", "--out", "--plan", "--num-calib", "--name"):
        res = _run(["--dry-run", option])
        assert res.returncode == 2, option
        assert res.stderr == f"vitis_ai_quantize: error: {option} needs a value (see --help)\n"


def test_full_flow_with_a_recording_docker(inputs, tmp_path):
    ckpt, arch, synth_root = inputs
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "docker.log"
    # The stand-in records its argv and writes what vai_c_xir would, into the folder mounted as /workspace/out.
    (bin_dir / "docker").write_text(
        "#!/usr/bin/env bash\n"
        f'printf "%s\\n" "$@" > {log}\n'
        'for a in "$@"; do case "$a" in *:/workspace/out) out="${a%:/workspace/out}";; esac; done\n'
        'mkdir -p "$out/compiled" && echo xmodel > "$out/compiled/dpupose.xmodel"\n'
    )
    (bin_dir / "docker").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHON": sys.executable}
    out = tmp_path / "o"
    res = _run(["--checkpoint", ckpt, "--arch", arch, "--out", out, "--data-root", synth_root, "--num-calib", 3],
               env=env)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "compiled model:" in res.stdout and (out / "compiled" / "dpupose.xmodel").is_file()
    assert log.read_text().splitlines()[:2] == ["run", "--rm"]
    calib = np.load(out / "staging" / "calib.npy")
    assert calib.shape == (3, 3, TINY.input_size, TINY.input_size) and calib.dtype == np.float32
    state = torch.load(out / "staging" / "model.pt")
    assert state["model_config"] == TINY.to_dict()


def test_a_refused_host_step_leaves_no_out_folder(inputs, tmp_path):
    # The script made --out before the host step checked anything, so an ONNX file given as the checkpoint, or
    # a bitstream as --arch, left an empty DIR (and its parents) behind the one-line refusal.
    ckpt, arch, synth_root = inputs
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text("#!/usr/bin/env bash\nexit 99\n")  # never reached
    (bin_dir / "docker").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHON": sys.executable}
    onnx_file = tmp_path / "model_qdq.onnx"
    onnx_file.write_bytes(b"\x08\x08")
    bit = tmp_path / "dpu.bit"
    bit.write_bytes(b"\x00\x09bitstream")
    out = tmp_path / "vai_q" / "x"
    for args, said in (
        (["--checkpoint", onnx_file, "--arch", arch], "is an ONNX model, not a checkpoint"),
        (["--checkpoint", ckpt, "--arch", bit], "cannot read it as JSON"),
    ):
        res = _run([*args, "--out", out, "--data-root", synth_root, "--num-calib", 2], env=env)
        assert res.returncode == 2 and said in res.stderr and res.stderr.count("\n") == 1, res.stderr
        assert not (tmp_path / "vai_q").exists()


def test_container_step_runs_from_the_work_folder(inputs, tmp_path, monkeypatch):
    """`run` rebuilds the model from the staging folder and drives vai_q (here a minimal stand-in)."""
    ckpt, _, synth_root = inputs
    work = vai_q.prepare(ckpt, tmp_path / "work", data_root=synth_root, num_calib=2)
    seen = {}

    def fake_run_vai_q(model, batches, out, target=None, cut=None):
        seen.update(model=model, n=sum(len(b) for b in batches), target=target, cut=cut)
        return {"xmodel": "DpuPart_int.xmodel"}

    monkeypatch.setattr(vai_q, "run_vai_q", fake_run_vai_q)
    assert vai_q.main(["run", "--work", str(work), "--out", str(tmp_path), "--target", "T"]) == 0
    assert seen["n"] == 2 and seen["target"] == "T" and seen["model"].config == TINY
    assert seen["cut"] is None  # no plan: the whole DPU part
    assert (tmp_path / "vai_q_summary.json").is_file()


def test_prepare_on_a_full_disk_is_one_line_naming_the_file_and_writes_nothing(inputs, tmp_path, monkeypatch, capsys):
    """The host step wrote calib.npy with np.save, model.pt with torch.save and the part's JSON one by one: on a
    full disk it stopped in a traceback (np.save's 'requested and written', no errno on a real disk), leaving
    the files it had written and one cut short. It writes them as a set, and says which did not fit."""
    import builtins

    ckpt, _, synth_root = inputs
    work = tmp_path / "staging"
    from conftest import full_disk_open

    monkeypatch.setattr(builtins, "open", full_disk_open(100, under=work))  # 100 bytes fit, then full
    argv = ["prepare", "--checkpoint", str(ckpt), "--work", str(work), "--data-root", str(synth_root)]
    assert vai_q.main([*argv, "--num-calib", "2"]) == 2
    monkeypatch.undo()
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith(f"vai_q: error: No space left on device for {work / 'calib.npy'} (")
    assert os.listdir(work) == []


# ---- a DPU part cut where a split plan's DPU subgraph ends ---------------------------------------------
def _cli(*args) -> int:
    from dpupose.cli import main

    return main([str(a) for a in args])


@pytest.fixture(scope="module")
def cut_plan(inputs, tmp_path_factory):
    """The tiny model quantized and split with the last pixel shuffle and the head on the CPU (the kind of
    cut `--optimize` chose for the shipped model)."""
    ckpt, _, synth_root = inputs
    d = tmp_path_factory.mktemp("cutplan")
    assert _cli("quantize", "--checkpoint", ckpt, "--data-root", synth_root, "--num-calib", 2, "--batch-size", 2,
                "--out", d / "q", "--summary-samples", 2) == 0  # fmt: skip
    plan = d / "plan"
    assert _cli("split", d / "q" / "model_qdq.onnx", "--out", plan, "--cpu-from", "decoder.2.3") == 0
    return plan


@pytest.mark.parametrize(
    "tensor", ["decoder.2.0", "decoder.1.3", "reduce.0", "backbone.features.18.0", "backbone.features.16.add"]
)
def test_the_cut_dpu_part_computes_the_quantizer_graphs_tensor(tensor):
    """The torch layers up to the cut give the tensor that the quantizer's own graph (BatchNorm folded,
    activations fused, executed by QuantNet) names so; the rest of the layers complete the part."""
    from dpupose.quant.dpu_cut import cut_index, split_layers
    from dpupose.quant.fakequant import QuantNet
    from dpupose.quant.fuse import build_qgraph

    dpu_part = sane_model().dpu_part.eval()
    size = TINY.input_size
    trace = {}
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        QuantNet(build_qgraph(dpu_part, (3, size, size)))(x, trace)
        head, rest = split_layers(dpu_part, cut_index(dpu_part, tensor, size))
        mid = head(x)
        whole = dpu_part(x)
        again = rest(mid.clone())  # a ReLU(inplace=True) first in the rest would change mid
    assert tensor in trace and mid.shape == trace[tensor].shape
    scale = float(trace[tensor].abs().max())  # BatchNorm folding changes the float rounding a little
    torch.testing.assert_close(mid, trace[tensor], rtol=1e-3, atol=1e-4 * scale)
    torch.testing.assert_close(again, whole, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("tensor", "act"), [("decoder.2.0", nn.LeakyReLU(26 / 256)), ("decoder.1.0", nn.Hardtanh(0, 6))]
)
def test_a_cut_takes_the_leaky_relu_or_hardtanh_the_quantizer_folds_into_its_conv(tensor, act):
    """A decoder whose activation is a LeakyReLU(26/256) or a Hardtanh(0, 6) (a ReLU6 by another name): the
    quantizer fuses it into the conv before it, so the cut part ends after it, as the quantizer's tensor does."""
    from dpupose.quant.dpu_cut import cut_index, dpu_layers, split_layers
    from dpupose.quant.fakequant import QuantNet
    from dpupose.quant.fuse import build_qgraph

    dpu_part = sane_model().dpu_part.eval()
    block = getattr(dpu_part.decoder, tensor.split(".")[1])
    block[2] = act
    size = TINY.input_size
    cut = cut_index(dpu_part, tensor, size)
    assert [p for p, _ in dpu_layers(dpu_part)][cut - 3 : cut] == [tensor[:-1] + str(k) for k in range(3)]
    trace = {}
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        QuantNet(build_qgraph(dpu_part, (3, size, size)))(x, trace)
        head, _ = split_layers(dpu_part, cut)
        mid = head(x)
    if isinstance(act, nn.LeakyReLU):
        assert float(mid.min()) < 0  # its slope, not a ReLU's zeros
    torch.testing.assert_close(mid, trace[tensor], rtol=1e-3, atol=1e-4 * float(trace[tensor].abs().max()))


def test_a_cut_after_the_last_layer_is_the_whole_part_and_others_outside_are_refused():
    from dpupose.errors import QuantizationError
    from dpupose.quant.dpu_cut import dpu_layers, split_layers

    dpu_part = sane_model().dpu_part.eval()
    n = len(dpu_layers(dpu_part))
    x = torch.randn(1, 3, TINY.input_size, TINY.input_size, generator=torch.Generator().manual_seed(2))
    head, rest = split_layers(dpu_part, n)  # the plan's DPU subgraph ends at the logits
    assert len(head.layers) == n and len(rest) == 0
    with torch.no_grad():
        torch.testing.assert_close(head(x), dpu_part(x), rtol=0, atol=0)
    head, rest = split_layers(dpu_part, 1)
    assert len(head.layers) == 1 and len(rest) == n - 1
    for cut in (0, n + 1):
        with pytest.raises(QuantizationError, match=f"cut {cut} is outside the DPU part's {n} layers"):
            split_layers(dpu_part, cut)


def test_a_cut_inside_a_residual_block_or_an_unknown_tensor_is_refused():
    from dpupose.errors import UsageError
    from dpupose.quant.dpu_cut import cut_index, dpu_layers

    dpu_part = sane_model().dpu_part
    assert cut_index(dpu_part, "logits", TINY.input_size) == len(dpu_layers(dpu_part))
    with pytest.raises(
        UsageError, match=r"inside backbone\.features\.16 \(whose output is 'backbone\.features\.16\.add'\)"
    ):
        cut_index(dpu_part, "backbone.features.16.conv.2", TINY.input_size)
    with pytest.raises(UsageError, match="does not compute"):
        cut_index(dpu_part, "decoder.7.0", TINY.input_size)


def test_prepare_with_a_plan_cuts_the_dpu_part_where_its_dpu_subgraph_ends(inputs, cut_plan, tmp_path):
    ckpt, _, synth_root = inputs
    work = vai_q.prepare(ckpt, tmp_path / "work", data_root=synth_root, num_calib=2, plan=cut_plan)
    part = json.loads((work / vai_q.DPU_PART_FILE).read_text())
    split = "--config u96v2-b1600-pynq --cpu-from decoder.2.3"  # how the plan was made, for the messages
    plan = json.loads((cut_plan / "plan.json").read_text())
    (dpu,) = [sg for sg in plan["subgraphs"] if sg["device"] == "dpu"]
    # the cut part's multiply-accumulates, as the ONNX cost model counts the plan's DPU subgraph file
    macs = graph_counts(onnx.load(str(cut_plan / dpu["file"])))["macs"]
    assert part == {"input": "image", "output": "decoder.2.0", "checkpoint": "tiny.pt", "split": split, "macs": macs}
    n, h, w, c = dpu["outputs"][0]["shape"]
    state = torch.load(work / "model.pt")
    # The container rebuilds the cut part from the state alone; it gives the plan's DPU output tensor.
    seen = {}

    def fake_run_vai_q(model, batches, out, target=None, cut=None):
        from dpupose.quant.dpu_cut import split_layers

        head, _ = split_layers(model.dpu_part, cut)
        with torch.no_grad():
            seen["shape"] = tuple(head(torch.from_numpy(batches[0])).shape)
        return {"xmodel": "DpuPart_int.xmodel", "cut_layers": cut}

    orig = vai_q.run_vai_q
    vai_q.run_vai_q = fake_run_vai_q
    try:
        info = vai_q.run_from_work(work, tmp_path / "out")
    finally:
        vai_q.run_vai_q = orig
    assert seen["shape"] == (2, c, h, w) and info["cut_layers"] == state["cut"]
    assert info["dpu_part"]["output"] == "decoder.2.0"


def test_prepare_refuses_a_plan_for_another_input_size(inputs, cut_plan, tmp_path):
    from dpupose.errors import UsageError
    from dpupose.model.pose import ModelConfig

    _, _, synth_root = inputs
    other = save_checkpoint(sane_model(ModelConfig(input_size=96, width_mult=0.35, decoder_channels=32)),
                            tmp_path / "other.pt")  # fmt: skip
    with pytest.raises(UsageError, match="is for 64 px input but the checkpoint is 96 px"):
        vai_q.prepare(other, tmp_path / "work", data_root=synth_root, num_calib=2, plan=cut_plan)
    # Same input size and layer names, another decoder: the cut gives another tensor than the plan's.
    wider = save_checkpoint(sane_model(ModelConfig(input_size=64, width_mult=0.35, decoder_channels=64)),
                            tmp_path / "wider.pt")  # fmt: skip
    with pytest.raises(UsageError, match=r"gives \[16, 8, 8\] \(C, H, W\) but this checkpoint's DPU part cut"):
        vai_q.prepare(wider, tmp_path / "work", data_root=synth_root, num_calib=2, plan=cut_plan)
    # Same input size and decoder, another width: the cut tensor is the same shape, the network is not (it was
    # compiled, and the xmodel recorded in the plan would run another network's weights on the board).
    wide = save_checkpoint(sane_model(ModelConfig(input_size=64, width_mult=1.0, decoder_channels=32)),
                           tmp_path / "wide.pt")  # fmt: skip
    with pytest.raises(UsageError) as err:
        vai_q.prepare(wide, tmp_path / "work", data_root=synth_root, num_calib=2, plan=cut_plan)
    m = re.fullmatch(
        rf"--plan {re.escape(str(cut_plan))}: its DPU subgraph is ([\d.]+) GMAC but this checkpoint's DPU part cut "
        r"there is ([\d.]+) GMAC \(another --width or decoder\): give the plan made from this checkpoint",
        str(err.value),
    )
    assert m and float(m.group(2)) > 2 * float(m.group(1))  # width 1.0 against the plan's 0.35
    assert not (tmp_path / "work").exists()


def test_script_with_a_plan_then_split_records_the_xmodel_for_that_cut(inputs, cut_plan, tmp_path, capsys):
    """The whole user flow for an optimized split: compile for the plan, split again with --xmodel."""
    ckpt, arch, synth_root = inputs
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(
        "#!/usr/bin/env bash\n"
        'for a in "$@"; do case "$a" in *:/workspace/out) out="${a%:/workspace/out}";; esac; done\n'
        'mkdir -p "$out/compiled" && echo xmodel > "$out/compiled/dpupose.xmodel"\n'
    )
    (bin_dir / "docker").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHON": sys.executable}
    out = tmp_path / "vq"
    res = _run(["--checkpoint", ckpt, "--arch", arch, "--out", out, "--plan", cut_plan, "--data-root", synth_root,
                "--num-calib", 2], env=env)  # fmt: skip
    assert res.returncode == 0, res.stderr
    xmodel = out / "compiled" / "dpupose.xmodel"
    side = json.loads((out / "compiled" / "dpupose.dpupose.json").read_text())
    assert side["output"] == "decoder.2.0" and side["fingerprint"] == "0x101000016010404"  # the arch.json's
    qdq = cut_plan.parent / "q" / "model_qdq.onnx"
    plan = tmp_path / "plan"
    assert _cli("split", qdq, "--out", plan, "--cpu-from", "decoder.2.3", "--xmodel", xmodel) == 0
    doc = json.loads((plan / "plan.json").read_text())
    assert [sg.get("xmodel") for sg in doc["subgraphs"]] == ["dpupose.xmodel", None]
    # The same xmodel does not fit the plain split (the whole DPU part on the DPU).
    capsys.readouterr()
    assert _cli("split", qdq, "--out", tmp_path / "plain", "--xmodel", xmodel) != 0
    err = capsys.readouterr().err
    assert "computes image -> decoder.2.0" in err and "compiled for a split with --config u96v2-b1600-pynq" in err
    assert not (tmp_path / "plain").exists()
    res = _run(["--checkpoint", ckpt, "--arch", arch, "--out", out, "--plan", tmp_path / "none"], env=env)
    assert res.returncode == 2 and "holds no plan.json" in res.stderr
    # An xmodel compiled from a model of another width at the same size: same names and shapes, another
    # network (VART on the board would run it without a word)
    side["macs"] = 3 * side["macs"]
    (out / "compiled" / "dpupose.dpupose.json").write_text(json.dumps(side))
    capsys.readouterr()
    assert _cli("split", qdq, "--out", tmp_path / "wide", "--cpu-from", "decoder.2.3", "--xmodel", xmodel) == 2
    err = capsys.readouterr().err
    assert f"was compiled from a network of {side['macs'] / 1e9:.3f} GMAC (its dpupose.dpupose.json), but " in err
    assert f"this split's DPU subgraph is {side['macs'] / 3e9:.3f} GMAC: another --width" in err
    assert not (tmp_path / "wide").exists()


def test_an_arch_json_for_another_dpu_than_the_plans_is_refused_before_compiling(inputs, cut_plan, tmp_path, capsys):
    """The xmodel carries the arch.json's fingerprint and VART refuses it on any other DPU: compiling for a
    plan with another configuration's arch.json is stopped on the host, and an xmodel compiled for another
    configuration is refused by `split --xmodel` (NAME.dpupose.json records what it was compiled for)."""
    from dpupose.errors import UsageError

    ckpt, _, synth_root = inputs
    b4096 = tmp_path / "b4096.json"
    b4096.write_text('{"target": "DPUCZDX8G_ISA1_B4096"}')  # Vitis AI 2.5: 0x101000016010407
    with pytest.raises(UsageError) as e:
        vai_q.prepare(ckpt, tmp_path / "work", data_root=synth_root, num_calib=2, plan=cut_plan, arch=b4096)
    assert "is for DPU fingerprint 0x101000016010407 but --plan" in str(e.value)
    assert "split for 0x101000016010404 (DPU configuration u96v2-b1600-pynq)" in str(e.value)
    assert "dpupose dpu files --config u96v2-b1600-pynq" in str(e.value)
    assert not (tmp_path / "work").exists()
    b1600 = tmp_path / "b1600.json"
    b1600.write_text('{"target": "DPUCZDX8G_ISA1_B1600"}')
    work = vai_q.prepare(ckpt, tmp_path / "work", data_root=synth_root, num_calib=2, plan=cut_plan, arch=b1600)
    assert json.loads((work / vai_q.DPU_PART_FILE).read_text())["fingerprint"] == "0x101000016010404"

    # An xmodel (with its NAME.dpupose.json) compiled for B4096, recorded in a split for B1600.
    compiled = tmp_path / "compiled"
    compiled.mkdir()
    (compiled / "pose.xmodel").write_text("xmodel")
    part = {"input": "image", "output": "decoder.2.0", "fingerprint": "0x101000016010407"}
    (compiled / "pose.dpupose.json").write_text(json.dumps(part))
    qdq = cut_plan.parent / "q" / "model_qdq.onnx"
    capsys.readouterr()
    args = ("split", qdq, "--cpu-from", "decoder.2.3", "--xmodel", compiled / "pose.xmodel", "--out")
    assert _cli(*args, tmp_path / "p") != 0
    err = capsys.readouterr().err
    assert "pose.xmodel was compiled for DPU fingerprint 0x101000016010407 (its pose.dpupose.json)" in err
    assert "but this split is for 0x101000016010404" in err and not (tmp_path / "p").exists()
    part["fingerprint"] = "0x101000016010404"
    (compiled / "pose.dpupose.json").write_text(json.dumps(part))
    assert _cli(*args, tmp_path / "p") == 0


def test_run_vai_q_quantizes_and_exports_the_cut_part(tmp_path, monkeypatch):
    """vai_q (a recording stand-in) is handed the cut part; its test step completes it to coordinates."""
    from dpupose.quant.dpu_cut import cut_index

    model = sane_model().eval()
    cut = cut_index(model.dpu_part, "decoder.2.0", TINY.input_size)
    handed = []

    class Quantizer:
        def __init__(self, mode, module, inputs, output_dir, device, **kwargs):
            handed.append((mode, module))
            self.quant_model = module  # float: the test step then matches FP32 exactly
            self.module = module

        def export_quant_config(self):
            pass

        def export_xmodel(self, output_dir, deploy_check=False):
            (Path(output_dir) / f"{type(self.module).__name__}_int.xmodel").write_bytes(b"xmodel")

    apis = types.ModuleType("pytorch_nndct.apis")
    apis.torch_quantizer = Quantizer
    monkeypatch.setitem(sys.modules, "pytorch_nndct", types.ModuleType("pytorch_nndct"))
    monkeypatch.setitem(sys.modules, "pytorch_nndct.apis", apis)
    images = [np.random.default_rng(0).normal(size=(2, 3, 64, 64)).astype(np.float32)]
    info = vai_q.run_vai_q(model, images, tmp_path, cut=cut)
    assert [mode for mode, _ in handed] == ["calib", "test"]
    part = handed[0][1]
    assert len(part.layers) == cut
    with torch.no_grad():
        assert tuple(part(torch.from_numpy(images[0])).shape) == (2, 16, 8, 8)  # decoder.2.0: 16 channels at 8 x 8
    assert info["cut_layers"] == cut and info["fp32_vs_int8"]["coords_mean_distance_px"] == 0.0
    assert (tmp_path / "DpuPart_int.xmodel").read_bytes() == b"xmodel"


def test_the_container_side_modules_are_python_3_7():
    """`python -m dpupose.quant.vai_q run` executes under the Vitis AI image's Python 3.7: every dpupose
    module it imports must parse as 3.7 and must not evaluate 3.9+/3.10+ constructs at run time
    (subscripted abc/builtin annotations without postponed evaluation, `X | Y` types in isinstance)."""
    import ast

    code = (
        "import sys, dpupose.quant.vai_q, dpupose.quant.dpu_cut, dpupose.model.pose\n"
        "print('\\n'.join(m.__file__ for n, m in sys.modules.items() if n.startswith('dpupose')))"
    )
    files = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert any(f.endswith("dpu_cut.py") for f in files) and any(f.endswith("errors.py") for f in files)
    for f in files:
        source = Path(f).read_text(encoding="utf-8")
        tree = ast.parse(source, filename=f, feature_version=(3, 7))
        postponed = any(
            isinstance(n, ast.ImportFrom) and n.module == "__future__" and any(a.name == "annotations" for a in n.names)
            for n in tree.body
        )
        has_annotations = any(
            (
                isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                and (n.returns or any(a.annotation for a in n.args.args + n.args.kwonlyargs))
            )
            or isinstance(n, ast.AnnAssign)
            for n in ast.walk(tree)
        )
        assert postponed or not has_annotations, f"{f}: annotations without `from __future__ import annotations`"
        for n in ast.walk(tree):
            if isinstance(n, ast.Call) and getattr(n.func, "id", None) in ("isinstance", "issubclass"):
                assert not any(isinstance(a, ast.BinOp) for a in n.args), f"{f}:{n.lineno}: X | Y in {n.func.id}"
    # Where a Python 3.7 is installed, its own compiler and an import of the torch-free module settle it.
    py37 = _python37()
    if py37 is None:
        return
    check = "import sys\nfor f in sys.argv[1:]: compile(open(f, encoding='utf-8').read(), f, 'exec')\n"
    subprocess.run([py37, "-c", check, *files], check=True, capture_output=True)
    sw = str(Path(__file__).resolve().parents[1] / "sw")
    subprocess.run([py37, "-c", "import dpupose.errors"], check=True, capture_output=True, env={"PYTHONPATH": sw})


def _python37() -> str | None:
    found = shutil.which("python3.7")
    if found and subprocess.run([found, "-c", ""], capture_output=True).returncode == 0:
        return found
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for candidate in sorted(pyenv.glob("3.7*/bin/python")):
        return str(candidate)
    return None


def test_vai_q_takes_a_target_where_its_torch_quantizer_has_one_or_takes_any_keyword():
    def v25(quant_mode, module, input_args=None, output_dir="quantize_result", device=None):
        pass

    def v30(quant_mode, module, input_args=None, output_dir="quantize_result", device=None, target=None):
        pass

    def wrapped(quant_mode, module, *args, **kwargs):
        pass

    assert [vai_q._takes_target(f) for f in (v25, v30, wrapped)] == [False, True, True]


def test_vai_q_s_test_step_runs_16_samples_and_measures_their_joints_in_pixels(tmp_path, monkeypatch):
    # A stand-in quantizer whose "quantized" DPU part halves the logits: the report's distance is the mean over
    # the 16 tested samples (of 20) and 16 joints of |coords - FP32 coords|, times S / 2 px (coords span 2).
    model = sane_model().eval()
    forwards = []

    class Quantizer:
        def __init__(self, mode, module, inputs, output_dir, device, **kwargs):
            self.module, self.mode = module, mode

            def half(x):
                forwards.append((mode, x.shape[0]))
                return module(x) * 0.5

            self.quant_model = half

        def export_quant_config(self):
            pass

        def export_xmodel(self, output_dir, deploy_check=False):
            (Path(output_dir) / f"{type(self.module).__name__}_int.xmodel").write_bytes(b"xmodel")

    apis = types.ModuleType("pytorch_nndct.apis")
    apis.torch_quantizer = Quantizer
    monkeypatch.setitem(sys.modules, "pytorch_nndct", types.ModuleType("pytorch_nndct"))
    monkeypatch.setitem(sys.modules, "pytorch_nndct.apis", apis)
    rng = np.random.default_rng(0)
    images = [rng.normal(size=(4, 3, 64, 64)).astype(np.float32) for _ in range(5)]
    info = vai_q.run_vai_q(model, images, tmp_path)
    assert info["test_samples"] == 16
    assert [f for f in forwards if f[0] == "test"] == [("test", 1)] * 16
    x = torch.from_numpy(np.concatenate(images)[:16])
    with torch.no_grad():
        c8, _ = model.cpu_part(model.dpu_part(x) * 0.5)
        c32, _ = model(x)
    want = float(torch.linalg.vector_norm(c8 - c32, dim=-1).mean()) * 64 / 2
    assert want > 0.1
    assert info["fp32_vs_int8"]["coords_mean_distance_px"] == pytest.approx(want, rel=1e-5)
