"""The board notebook, run on the host: its code cells in order, with the emulator backend on a tiny plan
and a folder of images instead of the camera."""

from __future__ import annotations

import json
import time
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
def test_notebook_runs_on_the_host_with_the_emulator(tmp_path, monkeypatch, capsys, decode):
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
    # Where each part ran, as printed: the DPU subgraphs on the emulator here, not on a DPU.
    printed = capsys.readouterr().out
    assert "  dpu0       DPU subgraph, runs on CPU (DPU emulator)  (dpu0.onnx)" in printed
    assert "  head       CPU subgraph, runs on CPU (ONNX Runtime)  (head.onnx)" in printed
    assert "measured here over 2 frames, backend emulate:" in printed
    assert [line.split()[0] for line in printed.splitlines() if "ms per frame  on " in line] == [
        "preprocess",
        "dpu0",
        "cpu0",
        "dpu1",
        "head",
        "postprocess",
    ]
    assert "ms per frame  on CPU (DPU emulator)" in printed
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


def _images(folder: Path, n: int) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(n):
        cv2.imwrite(str(folder / f"{i}.png"), rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    return folder


def test_each_run_of_a_session_starts_afresh(tmp_path, monkeypatch):
    """Running the notebook's run cell again, after a whole run or after Ctrl-C, runs MAX_FRAMES frames from
    the start of the source again (the limit once counted every run's frames: a second run got none, a run
    after an interrupt at frame k got MAX_FRAMES - k), and its FPS is over its own frames only."""
    import dpupose.runtime.notebook as notebook

    real_open_source, opened, closed = notebook.open_source, [], []

    def recording_open_source(spec, **options):
        source = real_open_source(spec, **options)
        real_close = source.close
        source.close = lambda: (closed.append(source), real_close())
        opened.append(source)
        return source

    monkeypatch.setattr(notebook, "open_source", recording_open_source)
    tinyplan.write_split_plan(tmp_path / "plan")
    frames = str(_images(tmp_path / "frames", 4))
    with notebook.PoseSession(tmp_path / "plan", backend="emulate") as session:
        first = [r.source for r in session.run(frames, max_frames=3)]
        assert first == ["0.png", "1.png", "2.png"]
        assert [r.source for r in session.run(frames, max_frames=3)] == first
        seen = []
        with pytest.raises(KeyboardInterrupt):  # the kernel interrupted in the cell's loop
            for r in session.run(frames, max_frames=3):
                seen.append(r.source)
                if len(seen) == 2:
                    raise KeyboardInterrupt
        assert seen == first[:2]
        assert len(opened) == 3 and closed == opened  # the interrupted run's source too (a camera: released)
        assert [r.source for r in session.run(frames, max_frames=3)] == first
        assert session.frames == 3 + 3 + 2 + 3  # the total over the runs
        # The meter holds this run's start and its one frame only, not the earlier runs' and the pause.
        time.sleep(0.2)
        start = time.perf_counter()
        assert len(list(session.run(frames, max_frames=1))) == 1
        took = time.perf_counter() - start
        assert len(session.fps._times) == 2 and session.fps.fps >= 1 / took


def test_a_closed_session_says_so(tmp_path):
    """session.close() twice is safe; running the run cell after it says to load the model again (it raised
    RuntimeError 'runner is closed' from ONNX Runtime's runner), and a frame limit below 1 is refused as
    `dpupose run --max-frames` refuses it (it ran no frame, silently)."""
    from dpupose.errors import UsageError
    from dpupose.runtime.notebook import PoseSession

    tinyplan.write_split_plan(tmp_path / "plan")
    frames = str(_images(tmp_path / "frames", 1))
    session = PoseSession(tmp_path / "plan", backend="cpu")
    for limit in (0, -1):
        with pytest.raises(UsageError, match=f"max_frames is {limit}: give at least 1"):
            next(session.run(frames, max_frames=limit))
    assert len(list(session.run(frames))) == 1
    session.close()
    session.close()
    with pytest.raises(UsageError, match=r"this model is closed \(close\(\) was called\): load it again"):
        next(session.run(frames))
    with PoseSession(tmp_path / "plan", backend="cpu") as session:  # the with block closes it as it ends
        assert len(list(session.run(frames))) == 1
    with pytest.raises(UsageError, match=r"this model is closed"):
        next(session.run(frames))


@pytest.mark.parametrize(
    ("backend", "dpu"), [("vart", "DPU (VART)"), ("emulate", "CPU (DPU emulator)"), ("cpu", "CPU (ONNX Runtime)")]
)
def test_where_each_stage_runs(tmp_path, backend, dpu):
    """The notebook said every DPU subgraph ran 'on DPU' whatever the backend: with cpu, the board's default
    for the shipped plan, it runs in ONNX Runtime on the Cortex-A53, and its time is no DPU time."""
    from dpupose.runtime.notebook import runs_file, runs_on

    plan = tinyplan.write_split_plan(tmp_path / "plan")
    assert [sg.device for sg in plan.subgraphs] == ["dpu", "cpu", "dpu", "cpu"]
    got = {
        stage: runs_on(plan, backend, stage) for stage in ("preprocess", "dpu0", "cpu0", "dpu1", "head", "postprocess")
    }
    assert got == {
        "preprocess": "CPU",
        "dpu0": dpu,
        "cpu0": "CPU (ONNX Runtime)",
        "dpu1": dpu,
        "head": "CPU (ONNX Runtime)",
        "postprocess": "CPU",
    }
    # a DPU subgraph without a compiled .xmodel runs from its ONNX file on every backend
    assert {sg.name: runs_file(plan, backend, sg.name) for sg in plan.subgraphs} == {
        "dpu0": "dpu0.onnx", "cpu0": "cpu0.onnx", "dpu1": "dpu1.onnx", "head": "head.onnx",
    }  # fmt: skip
    # and from which file: the compiled .xmodel with vart (the notebook printed dpu0.onnx there too)
    compiled = tinyplan.write_split_plan(tmp_path / "compiled", xmodel=True)
    files = {sg.name: runs_file(compiled, backend, sg.name) for sg in compiled.subgraphs}
    dpu_files = {sg.name: sg.xmodel if backend == "vart" else sg.file for sg in compiled.subgraphs if sg.is_dpu}
    assert all(name.endswith(".xmodel") for name in dpu_files.values()) == (backend == "vart")
    assert files == {**{sg.name: sg.file for sg in compiled.subgraphs if not sg.is_dpu}, **dpu_files}


def test_a_dpupose_error_shows_in_jupyter_as_one_line(tmp_path):
    """In the notebook a missing plan, a camera that does not open or an unknown backend showed a traceback
    through dpupose's own frames; IPython shows what an exception's _render_traceback_ gives instead, and
    every dpupose error gives its message on one line."""
    from dpupose.errors import DeviceError, ModelFileError, ToolFailed, UsageError
    from dpupose.runtime.notebook import PoseSession

    with pytest.raises(ModelFileError) as missing:
        PoseSession(tmp_path / "no-plan")
    assert missing.value._render_traceback_() == [f"ModelFileError: {missing.value}"]
    assert str(tmp_path / "no-plan") in str(missing.value)
    tinyplan.write_split_plan(tmp_path / "plan")
    with pytest.raises(UsageError) as backend:
        PoseSession(tmp_path / "plan", backend="dpu")
    assert backend.value._render_traceback_() == ["UsageError: unknown backend 'dpu'; use one of vart, emulate, cpu"]
    failed = ToolFailed(["v++", "-l"], 1, "ERROR: first\nERROR: last\n")
    assert failed._render_traceback_() == ["ToolFailed: 'v++ -l' failed (exit 1): ERROR: first; ERROR: last"]
    assert DeviceError("camera 7")._render_traceback_() == ["DeviceError: camera 7"]


def test_ipython_shows_the_one_line(tmp_path, capsys):
    """The same through IPython itself, where it is installed (the board's Jupyter; not the project's venv)."""
    pytest.importorskip("IPython")
    from IPython.core.interactiveshell import InteractiveShell

    from dpupose.errors import ModelFileError
    from dpupose.runtime.notebook import PoseSession

    with pytest.raises(ModelFileError) as direct:
        PoseSession(tmp_path / "no-plan")
    shell = InteractiveShell.instance()
    try:
        code = f"from dpupose.runtime.notebook import PoseSession\nPoseSession({str(tmp_path / 'no-plan')!r})"
        result = shell.run_cell(code)
    finally:
        InteractiveShell.clear_instance()
    assert isinstance(result.error_in_exec, ModelFileError)
    out = capsys.readouterr()
    assert [line for line in (out.out + out.err).splitlines() if line.strip()] == [f"ModelFileError: {direct.value}"]


def test_an_overlay_folder_that_is_not_there(tmp_path):
    """The notebook turned a missing OVERLAY into no overlay: vart then said to 'pass --overlay' (a flag the
    notebook has not) without naming the folder, and cpu said 'no overlay given' for a folder that was given."""
    from dpupose.errors import UsageError
    from dpupose.runtime.notebook import PoseSession

    missing = tmp_path / "overlay"
    tinyplan.write_split_plan(tmp_path / "compiled", xmodel=True)
    with pytest.raises(UsageError) as vart:
        PoseSession(tmp_path / "compiled", backend="vart", overlay=missing)
    assert str(vart.value).startswith(f"overlay {missing} does not exist, and the vart backend programs the DPU")
    assert "set OVERLAY to the folder" in str(vart.value) and "--overlay" not in str(vart.value)
    tinyplan.write_split_plan(tmp_path / "plan")
    with PoseSession(tmp_path / "plan", backend="cpu", overlay=missing) as session:
        assert session.guard == f"overlay {missing} not found: fingerprints not compared"
    with PoseSession(tmp_path / "plan", backend="cpu", overlay=tinyplan.make_overlay(missing)) as session:
        assert session.guard.startswith("DPU fingerprints match")


def test_an_overlay_of_the_wrong_kind_names_overlay(tmp_path):
    """An OVERLAY that is there but no folder or .bit file (a FIFO, a text file) was refused as '--overlay PATH is a
    FIFO: give ...', `dpupose run`'s option, which the notebook has not; a symbolic link that leads nowhere was
    taken for a folder not there (not found, fingerprints not compared on cpu; 'does not exist' for vart), where
    `dpupose run --overlay` names it. Each names OVERLAY, says what is there and what to set it to."""
    import os

    from dpupose.errors import UsageError
    from dpupose.runtime.notebook import PoseSession

    tinyplan.write_split_plan(tmp_path / "plan")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "notes.txt").write_text("not an overlay")
    (tmp_path / "gone").symlink_to("nothing/here")
    fix = "set OVERLAY to the overlay folder (dpu.bit, dpu.hwh, dpu.xclbin, arch.json) or its dpu.bit"
    for name, what in (
        ("fifo", "is a FIFO"),
        ("notes.txt", "is neither a folder nor a .bit file"),
        ("gone", "is a symbolic link that leads nowhere (to nothing/here)"),
    ):
        for backend in ("cpu", "emulate"):
            with pytest.raises(UsageError) as refused:
                PoseSession(tmp_path / "plan", backend=backend, overlay=tmp_path / name)
            assert str(refused.value) == f"OVERLAY {tmp_path / name} {what}: {fix}"


def test_errors_in_the_notebook_name_the_session_argument(tmp_path, monkeypatch):
    """Messages shared with `dpupose run` named only its options ('use --backend emulate', 'pass --source
    camera:2'), which a notebook user does not type: they name the value (and PoseSession's argument) too."""
    import sys

    from dpupose.errors import ToolNotFoundError, UsageError
    from dpupose.runtime.notebook import PoseSession

    monkeypatch.setitem(sys.modules, "pynq_dpu", None)  # import fails as on a PC
    tinyplan.write_split_plan(tmp_path / "compiled", xmodel=True)
    with pytest.raises(
        ToolNotFoundError, match=r'on a PC use the emulate backend \(--backend emulate; backend="emulate" in'
    ):
        PoseSession(tmp_path / "compiled", backend="vart", overlay=tinyplan.make_overlay(tmp_path / "ov"))
    tinyplan.write_split_plan(tmp_path / "plan")
    (tmp_path / "video2").symlink_to("/dev/null")  # a camera's device node, by its name
    camera = r"video2 is a camera device: give camera:2 as the source for it"
    with PoseSession(tmp_path / "plan", backend="cpu") as session, pytest.raises(UsageError, match=camera):
        next(session.run(str(tmp_path / "video2")))


def test_each_frame_is_labelled_with_the_backend_and_shown_in_the_view(tmp_path, monkeypatch):
    """The annotated frame the view shows is the one the result holds, with 'backend: ...' on the second row
    below the FPS."""
    import dpupose.runtime.notebook as notebook

    labels = []
    real_draw_label = notebook.draw_label

    def draw_label(frame, text, row=0):
        labels.append((text, row))
        return real_draw_label(frame, text, row)

    monkeypatch.setattr(notebook, "draw_label", draw_label)

    class Recording:
        def __init__(self):
            self.shown = []

        def show(self, frame_bgr):
            self.shown.append(frame_bgr)

    tinyplan.write_split_plan(tmp_path / "plan")
    frames = _images(tmp_path / "frames", 2)
    view = Recording()
    with notebook.PoseSession(tmp_path / "plan", backend="emulate") as session:
        results = list(session.run(str(frames), view=view))
    assert labels == [("backend: emulate", 1)] * 2
    assert len(view.shown) == 2 and all(shown is r.image for shown, r in zip(view.shown, results))
    original = cv2.imread(str(frames / "0.png"))
    assert results[0].image.shape == original.shape and (results[0].image != original).any()


def test_the_live_view_shows_a_jpeg_of_the_frame_in_jupyter_and_nothing_outside(monkeypatch):
    import sys
    import types

    from dpupose.runtime.notebook import LiveView

    frame = np.zeros((24, 32, 3), np.uint8)
    frame[:, 16:] = (0, 0, 255)  # left black, right red
    monkeypatch.setitem(sys.modules, "IPython", None)  # IPython missing: import fails
    outside = LiveView()
    assert outside.active is False
    outside.show(frame)  # nothing to show it in, and no error

    updates, displayed = [], []

    class Handle:
        def update(self, obj):
            updates.append(obj)

    display = types.ModuleType("IPython.display")
    display.Image = lambda data: ("Image", data)
    display.display = lambda obj, display_id: (displayed.append((obj, display_id)), Handle())[1]
    ipython = types.ModuleType("IPython")
    ipython.display = display
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", display)
    view = LiveView()
    assert view.active is True and displayed == [(None, True)]  # one output, updated in place
    view.show(frame)
    view.show(frame[:, ::-1])
    assert [kind for kind, _ in updates] == ["Image", "Image"]
    shown = [cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) for _, data in updates]
    assert all(image.shape == (24, 32, 3) for image in shown)
    for image, want in zip(shown, (frame, frame[:, ::-1])):  # away from the edge JPEG blurs (8 columns each side)
        for side in (slice(0, 8), slice(24, 32)):
            assert np.abs(image[:, side].astype(int) - want[:, side]).max() < 16


# --- found by a mutation audit: behaviour no test above pinned ---------------------------------


def test_the_notebook_s_defaults_calls_and_interrupt(monkeypatch, capsys):
    """The notebook's cells against recording stand-ins for PoseSession and LiveView, with no DPUPOSE_NOTEBOOK_*
    variable set: the plan and overlay are where `dpupose sdcard stage` and `deploy` put them (layout), the
    source is the board command's camera, 300 frames, decode dsnt and an empty DPUPOSE_BACKEND no choice (the
    plan's own); the run shows its frames in the view; Ctrl-C (KeyboardInterrupt) in the run ends it with the
    frames so far, whose per-stage times are their means; the last cell closes the session."""
    from types import SimpleNamespace

    from dpupose.board import layout
    from dpupose.runtime import notebook

    for name in ("PLAN", "OVERLAY", "SOURCE", "FRAMES", "DECODE"):
        monkeypatch.delenv(f"DPUPOSE_NOTEBOOK_{name}", raising=False)
    monkeypatch.setenv("DPUPOSE_BACKEND", "")
    calls = []

    class View:
        def __init__(self):
            calls.append(("view", self))

    class Session:
        backend, guard = "cpu", "fingerprint 0x1 matches"
        plan = SimpleNamespace(subgraphs=[SimpleNamespace(name="dpu0", device="dpu")])
        fps = SimpleNamespace(fps=12.5)

        def __init__(self, plan, **kwargs):
            calls.append(("session", plan, kwargs))

        def runs_on(self, stage):
            return f"where {stage}"

        def runs_file(self, name):
            return f"{name}.onnx"

        def run(self, source, **kwargs):
            calls.append(("run", source, kwargs))
            yield SimpleNamespace(timings={"preprocess": 0.001, "dpu0": 0.010})
            yield SimpleNamespace(timings={"preprocess": 0.003, "dpu0": 0.030})
            raise KeyboardInterrupt  # Ctrl-C (the kernel interrupted) during the third frame

        def close(self):
            calls.append(("close",))

    monkeypatch.setattr(notebook, "PoseSession", Session)
    monkeypatch.setattr(notebook, "LiveView", View)
    namespace: dict = {}
    for cell in json.loads(NOTEBOOK.read_text())["cells"]:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), str(NOTEBOOK), "exec"), namespace)
    view = calls[1][1]
    assert calls == [
        ("session", str(layout.MODEL_DIR), {"backend": None, "overlay": str(layout.OVERLAY_DIR), "decode": "dsnt"}),
        ("view", view),
        ("run", "camera:0", {"max_frames": 300, "view": view}),
        ("close",),
    ]
    assert "--source camera:0 " in layout.run_command()  # the camera the board command reads
    printed = capsys.readouterr().out
    assert "  dpu0       DPU subgraph, runs on where dpu0  (dpu0.onnx)\n" in printed
    assert "2 frames, 12.5 FPS over the last frames\n" in printed
    assert "preprocess        2.00 ms per frame  on where preprocess\n" in printed  # (1 + 3) / 2 ms
    assert "dpu0             20.00 ms per frame  on where dpu0\n" in printed  # (10 + 30) / 2 ms
