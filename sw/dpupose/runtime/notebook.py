"""What the board notebook needs beyond `dpupose run`: one object that opens a plan on a backend, runs
frames from a source and shows each annotated frame in place in Jupyter (board-safe).

Outside Jupyter (IPython missing) frames are not shown; everything else works the same, which is how the
notebook is tested on a PC with the emulator backend.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from dpupose.board.layout import OVERLAY_DIR
from dpupose.errors import DataError, UsageError
from dpupose.runtime.backends import RunnerFactory, resolve_backend
from dpupose.runtime.draw import draw_label
from dpupose.runtime.executor import SplitExecutor, check_decode
from dpupose.runtime.frames import FrameResult
from dpupose.runtime.guard import check_overlay_path
from dpupose.runtime.sinks import FpsMeter, annotate
from dpupose.runtime.sources import no_frame_message, open_source
from dpupose.split.plan import Plan, load_plan

SOURCE_NAME = "SOURCE"  # the notebook's variable for run()'s source, named in the messages about it
OVERLAY_NAME = "OVERLAY"  # and its overlay's


class LiveView:
    """Shows a BGR frame as a JPEG in one Jupyter output that is updated in place."""

    def __init__(self) -> None:
        try:
            from IPython.display import Image, display
        except ImportError:  # not in Jupyter: nothing to show
            self._handle = None
            return
        self._image = Image
        self._handle = display(None, display_id=True)

    @property
    def active(self) -> bool:
        return self._handle is not None

    def show(self, frame_bgr: np.ndarray) -> None:
        if self._handle is None:
            return
        ok, jpeg = cv2.imencode(".jpg", frame_bgr, [cv2.IMWRITE_JPEG_QUALITY, 80])
        if ok:
            self._handle.update(self._image(data=jpeg.tobytes()))


def frames_from_env(name: str, default: int) -> int:
    """The frame limit the environment variable `name` gives (the notebook's DPUPOSE_NOTEBOOK_FRAMES): a whole
    number of at least 1, `default` where it is unset or empty (as make takes an empty variable). Anything
    else is refused in one line naming the variable (int() raised a ValueError traceback of the first cell)."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise UsageError(
            f"{name} is {text!r}: give a whole number of frames, 1 or more, or leave it empty (or unset) for {default}"
        )
    return int(text)


def default_backend(plan: Plan) -> str:
    """cpu for a plan whose DPU subgraphs lack their compiled .xmodel (VART could not run it; the shipped
    plan is one), else what `dpupose run` would choose ($DPUPOSE_BACKEND, vart on the board)."""
    if any(sg.is_dpu and sg.xmodel is None for sg in plan.subgraphs):
        return "cpu"
    return resolve_backend(None)


def runs_on(plan: Plan, backend: str, stage: str) -> str:
    """Where a stage (preprocess, a subgraph by name, postprocess) runs on `backend`: a DPU subgraph is on
    the DPU with vart only (emulate and cpu run it on this machine's CPU), so that times are read for what
    they measure."""
    sg = next((sg for sg in plan.subgraphs if sg.name == stage), None)
    if sg is None:
        return "CPU"
    if not sg.is_dpu:
        return "CPU (ONNX Runtime)"
    return {"vart": "DPU (VART)", "emulate": "CPU (DPU emulator)"}.get(backend, "CPU (ONNX Runtime)")


def runs_file(plan: Plan, backend: str, name: str) -> str:
    """The file a subgraph runs from on `backend`: a DPU subgraph's compiled .xmodel with vart, else its
    ONNX file (which emulate and cpu run)."""
    sg = next(sg for sg in plan.subgraphs if sg.name == name)
    return sg.xmodel if backend == "vart" and sg.is_dpu and sg.xmodel else sg.file


class PoseSession:
    """A split plan opened on a backend: `run(source)` yields annotated results one frame at a time.

    `overlay` is the overlay folder (or its dpu.bit). vart programs it and cannot run without one (a dpu.bit
    in the plan folder is taken when none is given); the other backends compare its arch.json with the plan
    when it is there, and run without the check when it is not (the notebook's OVERLAY names the staged
    folder, which a PC does not have), saying so in `guard`.
    """

    def __init__(
        self, plan: str | Path, backend: str | None = None, overlay: str | Path | None = None, decode: str = "dsnt"
    ) -> None:
        self.plan = load_plan(plan)
        check_decode(self.plan, decode)
        self.backend = backend if backend is not None else default_backend(self.plan)
        # Not there at all: a PC without the staged folder (said in `guard`). Anything else but a folder or a .bit
        # file (a FIFO, a symbolic link that leads nowhere) is refused naming OVERLAY, not `dpupose run`'s --overlay.
        self.overlay_missing = Path(overlay) if overlay is not None and not os.path.lexists(overlay) else None
        if overlay is not None and self.overlay_missing is None:
            check_overlay_path(overlay, OVERLAY_NAME)
        if self.overlay_missing is not None:
            overlay = None
            if self.backend == "vart" and not self.plan.path("dpu.bit").is_file():
                raise UsageError(
                    f"overlay {self.overlay_missing} does not exist, and the vart backend programs the DPU with it: "
                    "set OVERLAY to the folder holding dpu.bit, dpu.hwh, dpu.xclbin and arch.json (`dpupose sdcard "
                    f"stage` and `dpupose deploy` put it at {OVERLAY_DIR})"
                )
        # As `dpupose run`: vart programs the overlay; the others only compare its arch.json with the plan.
        self.factory = RunnerFactory(self.plan, self.backend, overlay=overlay)
        self.executor = SplitExecutor(self.plan, self.factory.create_all(), decode)
        self.fps = FpsMeter()
        self.frames = 0
        self._closed = False

    @property
    def guard(self) -> str:
        """What the fingerprint check found (board) or that none was made (PC without an overlay)."""
        report = self.factory.guard
        if report is not None:
            return report.summary()
        if self.overlay_missing is not None:
            return f"overlay {self.overlay_missing} not found: fingerprints not compared"
        return "no overlay given: fingerprints not compared"

    def runs_on(self, stage: str) -> str:
        """Where a stage runs with the backend this model was loaded for (see runs_on)."""
        return runs_on(self.plan, self.backend, stage)

    def runs_file(self, name: str) -> str:
        """The file subgraph `name` runs from with the backend this model was loaded for (see runs_file)."""
        return runs_file(self.plan, self.backend, name)

    def run(self, source: str, max_frames: int | None = None, view: LiveView | None = None) -> Iterator[FrameResult]:
        """Each call is a run of its own: up to `max_frames` frames from the start of `source`, and `fps`
        measured over this run's frames only (`frames` counts the frames of every run)."""
        if self._closed:
            raise UsageError("this model is closed (close() was called): load it again (a new PoseSession) to run it")
        if max_frames is not None and max_frames < 1:
            raise UsageError(f"max_frames is {max_frames}: give at least 1, or None for every frame of the source")
        self.fps = FpsMeter()  # not a rate over the pause since an earlier run
        count = 0
        # Messages about the source name the notebook's SOURCE, not the --source of `dpupose run`.
        with open_source(source, option=SOURCE_NAME) as frames:
            for frame in frames:
                if max_frames is not None and count >= max_frames:
                    break
                result = self.executor.process(frame)
                result.image = frame.image
                fps = self.fps.tick()
                count += 1
                self.frames += 1
                annotated = annotate(result, fps)
                draw_label(annotated, f"backend: {self.backend}", row=1)
                result.image = annotated
                if view is not None:
                    view.show(annotated)
                yield result
            if count == 0:  # as `dpupose run` stops: what went wrong, not "0 frames"
                raise DataError(no_frame_message(source, frames.skipped, SOURCE_NAME))

    def close(self) -> None:
        """Release the runners; a second call does nothing."""
        if not self._closed:
            self._closed = True
            self.executor.close()

    def __enter__(self) -> PoseSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
