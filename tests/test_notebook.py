"""The board notebook, run on the host: its code cells in order, with the emulator backend on a tiny plan
and a folder of images instead of the camera."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import tinyplan

import dpupose.notebooks
from dpupose.dpu.tomlload import read_toml
from dpupose.eval.dsnt_np import local_dsnt

NOTEBOOK = Path(dpupose.notebooks.__file__).parent / "pose_camera.ipynb"
ROOT = Path(__file__).resolve().parents[1]


def test_notebook_is_registered_the_pynq_way():
    project = read_toml(ROOT / "pyproject.toml")
    assert project["project"]["entry-points"]["pynq.notebooks"]["dpupose"] == "dpupose.notebooks"
    assert "notebooks/*.ipynb" in project["tool"]["setuptools"]["package-data"]["dpupose"]
    nb = json.loads(NOTEBOOK.read_text())
    assert nb["nbformat"] == 4 and any(c["cell_type"] == "markdown" for c in nb["cells"])


@pytest.mark.parametrize("decode", ["dsnt", "local"])
def test_notebook_runs_on_the_host_with_the_emulator(tmp_path, monkeypatch, decode):
    tinyplan.write_split_plan(tmp_path / "plan")
    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(frames / f"{i}.png"), rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    monkeypatch.setenv("DPUPOSE_NOTEBOOK_PLAN", str(tmp_path / "plan"))
    monkeypatch.setenv("DPUPOSE_NOTEBOOK_SOURCE", str(frames))
    monkeypatch.setenv("DPUPOSE_NOTEBOOK_FRAMES", "2")
    monkeypatch.setenv("DPUPOSE_BACKEND", "emulate")
    monkeypatch.setenv("DPUPOSE_NOTEBOOK_DECODE", decode)

    namespace: dict = {}
    for cell in json.loads(NOTEBOOK.read_text())["cells"]:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), str(NOTEBOOK), "exec"), namespace)

    results = namespace["results"]
    assert len(results) == 2  # MAX_FRAMES stops the camera loop
    assert namespace["session"].backend == "emulate"
    for r in results:
        assert r.keypoints.shape == (16, 2)
        assert np.isfinite(r.keypoints).all()
        assert r.image.shape == (48, 64, 3)  # the annotated frame
    # The notebook's results equal `dpupose run`'s executor on the same frame.
    from dpupose.runtime.backends import RunnerFactory
    from dpupose.runtime.executor import SplitExecutor
    from dpupose.split.plan import load_plan

    plan = load_plan(tmp_path / "plan")
    ex = SplitExecutor(plan, RunnerFactory(plan, "emulate").create_all())
    ref = ex.infer(cv2.imread(str(frames / "0.png")))
    ex.close()
    want = ref["coords"][0] if decode == "dsnt" else local_dsnt(ref["heatmaps"])[0]
    assert np.allclose(want, results[0].coords, atol=1e-6)


def test_a_plan_without_compiled_xmodels_runs_on_the_cpu_by_default(tmp_path, monkeypatch):
    """The shipped plan records no .xmodel: VART could not run it, so the notebook's default is cpu."""
    from dpupose.runtime.notebook import PoseSession, default_backend
    from dpupose.split.plan import load_plan

    tinyplan.write_split_plan(tmp_path / "plan")
    plan = load_plan(tmp_path / "plan")
    assert any(sg.is_dpu and sg.xmodel is None for sg in plan.subgraphs)
    monkeypatch.delenv("DPUPOSE_BACKEND", raising=False)
    assert default_backend(plan) == "cpu"
    tinyplan.write_split_plan(tmp_path / "compiled", xmodel=True)
    assert default_backend(load_plan(tmp_path / "compiled")) == "emulate"  # as `dpupose run` on a PC (vart: board)
    with PoseSession(tmp_path / "plan") as session:
        assert session.backend == "cpu" and session.guard.startswith("no overlay given")
    # An overlay given is compared with the plan, as `dpupose run` does, without programming the PL.
    with PoseSession(tmp_path / "plan", overlay=tinyplan.make_overlay(tmp_path / "ov")) as session:
        assert session.backend == "cpu" and session.guard.startswith("DPU fingerprints match")
