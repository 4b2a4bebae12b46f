"""The shipped plan (models/dpupose-synth/split) run as the board runs it: `dpupose run` with the cpu,
emulate and (fake) vart backends, and the board notebook's PoseSession and LiveView, in subprocesses where
torch and onnx cannot be imported and every dpupose module imported must parse as Python 3.10.

Marked board_py: `make test-board-py` runs this file under a real Python 3.10 with the board's packages
(numpy 1.x, onnxruntime, OpenCV; no torch, no onnx), where anything 3.11-only or host-only on these paths
fails for real."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from boardsafe import FAKES, NOTEBOOK, WRAPPER, check_parses_as_310, run_torch_free

import dpupose.notebooks
from dpupose.data.synthetic import SynthSpec, generate

pytestmark = pytest.mark.board_py

ROOT = Path(__file__).resolve().parents[1]
PLAN = ROOT / "models" / "dpupose-synth" / "split"
NOTEBOOK_FILE = Path(dpupose.notebooks.__file__).parent / "pose_camera.ipynb"
SCENES = 4
BACKENDS = ("cpu", "emulate", "vart")
RUN_MODULES = {"dpupose.cli", "dpupose.commands.run", "dpupose.split.plan", "dpupose.runtime.executor"}
RUN_MODULES |= {"dpupose.runtime.pipeline", "dpupose.runtime.sources", "dpupose.data.transforms"}


def vart_plan(folder: Path) -> Path:
    """The shipped plan with a fake compiled .xmodel (tests/fakes) for its DPU subgraph: the fake DPU runs
    dpu0.onnx on the int8 buffers VART gets, with the plan's fix points."""
    shutil.copytree(PLAN, folder)
    doc = json.loads((folder / "plan.json").read_text())
    dpu = doc["subgraphs"][0]
    assert dpu["device"] == "dpu" and "xmodel" not in dpu

    def tensor(t: dict) -> dict:
        name = t["name"]
        return {"name": f"dpu0__{name}_fix", "dims": t["shape"], "fix_point": t["fix_point"], "onnx_name": name}

    sys.path.insert(0, str(FAKES))
    try:
        import fakeboard
    finally:
        sys.path.remove(str(FAKES))
    fakeboard.write_fake_xmodel(
        folder / "dpupose.xmodel",
        [
            {"name": "subgraph_image", "device": "CPU"},
            {
                "name": "subgraph_dpu0",
                "device": "DPU",
                "fingerprint": int(doc["fingerprint"], 0),
                "onnx": dpu["file"],
                "inputs": [tensor(t) for t in dpu["inputs"]],
                "outputs": [tensor(t) for t in dpu["outputs"]],
            },
        ],
    )
    dpu.update(xmodel="dpupose.xmodel", xmodel_subgraph="subgraph_dpu0")
    (folder / "plan.json").write_text(json.dumps(doc, indent=2))
    return folder


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Synthetic scenes with their joints, and one run of the shipped plan per backend."""
    root = tmp_path_factory.mktemp("shipped")
    synth = generate(root / "synth", SynthSpec(seed=7, num_train=0, num_valid=SCENES, image_size=160), workers=1)
    records = json.loads((synth / "annot" / "valid.json").read_text())
    overlay = root / "overlay"  # as `make hw` leaves it, for the plan's configuration
    overlay.mkdir()
    for name in ("dpu.bit", "dpu.hwh", "dpu.xclbin"):
        (overlay / name).write_bytes(b"\0")
    fingerprint = json.loads((PLAN / "plan.json").read_text())["fingerprint"]
    (overlay / "arch.json").write_text(json.dumps({"fingerprint": fingerprint}))
    runs = {}
    for backend in BACKENDS:
        args = ["run", "--backend", backend, "--source", str(synth / "images"), "--pipeline"]
        if backend == "vart":
            args += ["--plan", str(vart_plan(root / "plan-vart")), "--overlay", str(overlay)]
            modules, out = run_torch_free(args, root, backend, str(FAKES), xrt=True)
        else:
            modules, out = run_torch_free([*args, "--plan", str(PLAN)], root, backend)
        lines = [json.loads(line) for line in (out / "keypoints.jsonl").read_text().splitlines()]
        runs[backend] = {"modules": modules, "lines": lines}
    return {"root": root, "synth": synth, "records": records, "runs": runs}


def keypoints(lines: list[dict]) -> np.ndarray:
    return np.array([line["keypoints"] for line in lines], dtype=np.float64)


@pytest.mark.parametrize("backend", BACKENDS)
def test_run_finds_the_joints_importing_only_board_safe_modules(setup: dict, backend: str) -> None:
    run = setup["runs"][backend]
    records = setup["records"]
    assert [line["source"] for line in run["lines"]] == [r["image"] for r in records]
    truth = np.array([r["joints"] for r in records], dtype=np.float64)
    head = np.array([np.hypot(*np.subtract(r["head_box"][2:], r["head_box"][:2])) for r in records])
    dist = np.linalg.norm(keypoints(run["lines"]) - truth, axis=-1)
    # The shipped model scores PCKh@0.5 82 on synthetic scenes: most joints lie within half the head's size.
    assert (dist < 0.5 * head[:, None]).mean() >= 0.7
    expected = RUN_MODULES | ({"dpupose.runtime.vart_runner"} if backend == "vart" else set())
    assert expected <= set(run["modules"])
    check_parses_as_310(run["modules"])


def test_the_backends_agree(setup: dict) -> None:
    cpu, emulate, vart = (keypoints(setup["runs"][b]["lines"]) for b in BACKENDS)
    # The fake DPU runs the DPU subgraph's QDQ file in ONNX Runtime, as the cpu backend does.
    assert np.abs(vart - cpu).max() <= 0.05
    # The emulator computes the DPU's integer arithmetic, not ONNX Runtime's float: close, not the same.
    dist = np.linalg.norm(emulate - cpu, axis=-1)
    assert np.median(dist) <= 1.5 and dist.max() > 0


def test_the_fake_dpu_was_driven_as_vart_is(setup: dict) -> None:
    board = json.loads((setup["root"] / "vart.board.json").read_text())
    calls = [c[0] for c in board["calls"]]
    assert calls.count("DpuOverlay") == 1 and calls.index("DpuOverlay") < calls.index("create_runner")
    runs = [c for c in board["calls"] if c[0] == "execute_async"]
    assert len(runs) == SCENES and board["unwaited"] == []
    assert all(c[1] == "subgraph_dpu0" and c[3] == str(((1, 224, 224, 3),)) for c in runs)


def test_the_notebook_runs_the_shipped_plan_on_the_cpu(setup: dict) -> None:
    """A plan without compiled xmodels (the shipped one) runs on the cpu backend in the notebook, with the
    results `dpupose run --backend cpu` gives for the same frames."""
    env = {
        "DPUPOSE_NOTEBOOK_PLAN": str(PLAN),
        "DPUPOSE_NOTEBOOK_OVERLAY": str(setup["root"] / "no-overlay"),
        "DPUPOSE_NOTEBOOK_SOURCE": str(setup["synth"] / "images"),
        "DPUPOSE_NOTEBOOK_FRAMES": "2",
    }
    modules, out = run_torch_free([NOTEBOOK, str(NOTEBOOK_FILE)], setup["root"], "notebook.json", env=env)
    got = json.loads(out.read_text())
    assert got["backend"] == "cpu" and len(got["results"]) == 2
    want = setup["runs"]["cpu"]["lines"][:2]
    assert [r["source"] for r in got["results"]] == [line["source"] for line in want]
    assert np.abs(keypoints(got["results"]) - keypoints(want)).max() <= 0.02
    assert {"dpupose.runtime.notebook", "dpupose.split.plan", "dpupose.runtime.executor"} <= set(modules)
    check_parses_as_310(modules)


@pytest.mark.parametrize("module", ["torch", "onnx.helper"])
def test_the_blocker_blocks(tmp_path: Path, module: str) -> None:
    """The wrapper really refuses torch and onnx: code that needs them fails (so the tests above can fail)."""
    notebook = tmp_path / "needs.ipynb"
    notebook.write_text(json.dumps({"cells": [{"cell_type": "code", "source": [f"import {module}\n"]}]}))
    env = dict(os.environ, TRACE_OUT=str(tmp_path / "trace.json"))
    args = [sys.executable, "-c", WRAPPER, NOTEBOOK, str(notebook), "--out", str(tmp_path / "out.json")]
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "blocked: the board has none" in proc.stderr


@pytest.mark.skipif(os.environ.get("DPUPOSE_BOARD_PY") != "1", reason="make test-board-py's venv only")
def test_this_python_is_the_boards() -> None:
    """`make test-board-py` really runs the tests above under the board's Python and packages."""
    import cv2
    import onnxruntime

    assert sys.version_info[:2] == (3, 10)
    assert int(np.__version__.split(".")[0]) == 1
    assert importlib.util.find_spec("torch") is None and importlib.util.find_spec("onnx") is None
    assert cv2.__version__ and onnxruntime.__version__


def test_on_the_board_a_plan_without_its_xmodel_runs_on_the_cpu_unless_vart_is_asked_for(setup: dict) -> None:
    # With pynq_dpu installed (the board), the default backend was vart whatever the plan, so README's command
    # for the shipped plan (no .xmodel) stopped asking for --overlay, then, given one, for an .xmodel or
    # --backend cpu; the notebook chooses cpu for such a plan, and so does dpupose run now, saying so
    root = setup["root"]
    args = ["run", "--plan", str(PLAN), "--source", str(setup["synth"] / "images"), "--max-frames", "1"]
    _, out = run_torch_free(args, root, "default", str(FAKES), xrt=True)
    assert json.loads((out / "run.json").read_text())["backend"] == "cpu"
    board = root / "default.board.json"
    assert not board.exists() or "DpuOverlay" not in board.read_text()  # the DPU is not touched
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(FAKES), os.environ.get("PYTHONPATH", "")])}
    env.pop("DPUPOSE_BACKEND", None)
    for asked in (["--backend", "vart"], []):
        proc = subprocess.run(
            [sys.executable, "-m", "dpupose", *args, *asked],
            env={**env, "DPUPOSE_BACKEND": "vart"} if not asked else env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 2, proc.stderr  # asked for, by option or environment: refused, not changed
        assert "vart backend needs the DPU overlay" in proc.stderr


def test_on_the_board_a_compiled_plan_runs_on_the_dpu_without_backend_given(setup: dict) -> None:
    # The cpu default is for a plan whose DPU subgraphs lack an .xmodel; the cpu subgraphs of a compiled plan
    # (which never have one) leave it on the DPU
    root = setup["root"]
    plan = vart_plan(root / "plan-compiled-default")
    args = ["run", "--plan", str(plan), "--overlay", str(root / "overlay"), "--source", str(setup["synth"] / "images")]
    _, out = run_torch_free([*args, "--max-frames", "1"], root, "compiled-default", str(FAKES), xrt=True)
    assert json.loads((out / "run.json").read_text())["backend"] == "vart"
    assert "DpuOverlay" in (root / "compiled-default.board.json").read_text()  # the (fake) DPU ran it
