"""Every `--json` output is stdout alone: `dpupose X --json | python -m json.tool` (or jq) works. Each command
runs as a user runs it, in its own process with the logging it sets up, and its stdout is parsed whole as
standard JSON (no NaN or Infinity); what it says besides goes to stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from doc_keys import table_keys
from quant_helpers import TINY, sane_model, save_checkpoint

from dpupose.model.export import export_onnx
from dpupose.model.pose import build_model

SW = Path(__file__).resolve().parents[1] / "sw"


def dpupose_json(
    *argv: str, rc: tuple[int, ...] = (0,), module: str = "dpupose", cwd: Path | None = None
) -> tuple[object, str]:
    """Run `python -m MODULE ARGV` (its exit status one of `rc`); its stdout parsed as strict JSON, and its
    stderr."""
    env = {**os.environ, "PYTHONPATH": str(SW)}
    proc = subprocess.run(
        [sys.executable, "-m", module, *argv], capture_output=True, text=True, timeout=300, env=env, cwd=cwd
    )
    assert proc.returncode in rc, proc.stderr
    try:
        doc = json.loads(proc.stdout, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    except json.JSONDecodeError as exc:
        pytest.fail(f"stdout of dpupose {' '.join(argv)} is not JSON alone ({exc}):\n{proc.stdout}")
    return doc, proc.stderr


@pytest.fixture(scope="module")
def dpu_onnx(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pose") / "pose_dpu.onnx"
    export_onnx(build_model(TINY).dpu_part, torch.zeros(1, 3, 64, 64), path, ["image"], ["logits"])
    return path


def test_dpu_commands(dpu_onnx: Path) -> None:
    fit, _ = dpupose_json("dpu", "fit", "--config", "u96v2-b1600-pynq", "--json")
    assert fit["fits"] is True and fit["config"] == "u96v2-b1600-pynq"
    est, _ = dpupose_json("dpu", "estimate", str(dpu_onnx), "--arch", "B1600", "--freq-mhz", "200", "--json")
    assert est["fps"] > 0 and est["fits"] is True
    rows, _ = dpupose_json("dpu", "compare", "--board", "ultra96v2", "--model", str(dpu_onnx), "--json")
    assert rows and all(r["fps"] > 0 for r in rows)
    cal, _ = dpupose_json("dpu", "calibrate", "--json")
    assert cal["rows"] and cal["validation"]


def test_hw_check() -> None:
    """Without Vivado or the DPU sources the check finds errors (exit 1), and prints them as JSON alone too."""
    findings, _ = dpupose_json("hw", "check", "--config", "u96v2-b1600-pynq", "--json", rc=(0, 1))
    assert findings and all(list(f) == ["level", "topic", "message"] for f in findings)  # as hardware.md says
    assert {f["level"] for f in findings} <= {"ok", "warn", "error"}


def test_eval(synth_root: Path, tmp_path: Path) -> None:
    ckpt = save_checkpoint(sane_model(), tmp_path / "tiny.pt")
    argv = ["eval", "--checkpoint", str(ckpt), "--data", "synthetic", "--data-root", str(synth_root)]
    summary, err = dpupose_json(*argv, "--num-samples", "100000", "--device", "cpu", "--json")
    assert summary["num_samples"] > 0 and summary["flip"] is False
    assert list(summary) == table_keys("training.md", "`--json` prints one object, on stdout alone")
    assert list(summary["per_joint"][0]) == ["joint", "count", "euclidean", "euclidean_px", "pckh@0.5"]
    assert "--num-samples 100000" in err  # the note on fewer records goes to stderr, not into the JSON


def test_elbow_analysis(tmp_path: Path) -> None:
    """python -m dpupose.eval.arms --json (its synthetic scenes are made under the working folder's build/)."""
    ckpt = save_checkpoint(sane_model(), tmp_path / "tiny.pt")
    argv = ["--checkpoint", str(ckpt), "--num-samples", "4", "--json"]
    report, _ = dpupose_json(*argv, module="dpupose.eval.arms", cwd=tmp_path)
    assert report["scenes"] == 4 and report["decode"] == "local" and report["checkpoint"] == str(ckpt)
