"""scripts/vitis_ai_quantize.sh without Vitis AI: the exact docker command, the host preparation, a
recording stand-in for docker, and the error when docker is missing."""

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from quant_helpers import TINY, sane_model, save_checkpoint

from dpupose.quant import vai_q

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
    assert host[1:4] == ["-m", "dpupose.quant.vai_q", "prepare"]
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


def test_missing_docker_and_bad_paths_are_clear(inputs, tmp_path):
    ckpt, arch, _ = inputs
    env = {**os.environ, "PATH": "/usr/bin:/bin"} if not shutil.which("docker", path="/usr/bin:/bin") else None
    if env is None:
        pytest.skip("docker is installed in /usr/bin or /bin")
    res = _run(["--checkpoint", ckpt, "--arch", arch, "--out", tmp_path / "o"], env=env)
    assert res.returncode == 2 and "docker not found" in res.stderr
    res = _run(["--checkpoint", tmp_path / "none.pt", "--arch", arch, "--out", tmp_path / "o"])
    assert res.returncode == 2 and "none.pt not found" in res.stderr


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


def test_container_step_runs_from_the_work_folder(inputs, tmp_path, monkeypatch):
    """`run` rebuilds the model from the staging folder and drives vai_q (here a minimal stand-in)."""
    ckpt, _, synth_root = inputs
    work = vai_q.prepare(ckpt, tmp_path / "work", data_root=synth_root, num_calib=2)
    seen = {}

    def fake_run_vai_q(model, batches, out, target=None):
        seen.update(model=model, n=sum(len(b) for b in batches), target=target)
        return {"xmodel": "DpuPart_int.xmodel"}

    monkeypatch.setattr(vai_q, "run_vai_q", fake_run_vai_q)
    assert vai_q.main(["run", "--work", str(work), "--out", str(tmp_path), "--target", "T"]) == 0
    assert seen["n"] == 2 and seen["target"] == "T" and seen["model"].config == TINY
    assert (tmp_path / "vai_q_summary.json").is_file()
