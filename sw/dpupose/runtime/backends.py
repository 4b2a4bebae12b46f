"""Backends: which Runner executes each subgraph of a plan.

| backend | DPU subgraphs | CPU subgraphs |
|---|---|---|
| `vart` (board) | `VartRunner` on the compiled xmodel | `OnnxRunner` |
| `emulate` (PC) | `EmulatorRunner` on the QDQ file (bit-accurate DPU arithmetic) | `OnnxRunner` |
| `cpu` | `OnnxRunner` on the QDQ file (float, Q/DQ simulated) | `OnnxRunner` |

Chosen by argument, then the DPUPOSE_BACKEND environment variable, then what is installed (`vart` when
pynq_dpu is importable, else `emulate`). Every board or emulator import happens lazily, here.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from dpupose.errors import ModelFileError, ToolNotFoundError, UsageError
from dpupose.runtime.base import CPU_BACKEND, Runner, TensorInfo
from dpupose.runtime.guard import GuardReport, check_fingerprints
from dpupose.runtime.onnx_runner import OnnxRunner
from dpupose.runtime.qdq_graph import EMULATED, NotEmulated
from dpupose.split.plan import BoundaryTensor, Plan, Subgraph

if TYPE_CHECKING:
    from dpupose.runtime.vart_runner import Xmodel

log = logging.getLogger(__name__)

BACKENDS = ("vart", "emulate", "cpu")
ENV_VAR = "DPUPOSE_BACKEND"

DpuRunnerFactory = Callable[[Path], Runner]


def vart_available() -> bool:
    """True where pynq_dpu is installed (the board); finding it does not import it."""
    try:
        return importlib.util.find_spec("pynq_dpu") is not None
    except (ImportError, ValueError):
        return False


def resolve_backend(requested: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The backend to use: argument, then $DPUPOSE_BACKEND, then vart if available, else emulate."""
    env = os.environ if environ is None else environ
    for value, where in ((requested, "--backend"), (env.get(ENV_VAR), f"${ENV_VAR}")):
        if value:
            if value not in BACKENDS:
                raise UsageError(f"{where} is {value!r}; use one of {', '.join(BACKENDS)}")
            return value
    return "vart" if vart_available() else "emulate"


def emulator_factory(exact: bool = True) -> DpuRunnerFactory:
    """EmulatorRunner for DPU subgraph files (imported now, so a missing emulator fails early)."""
    try:
        from dpupose.runtime.emulator import EmulatorRunner
    except ImportError as exc:
        raise ToolNotFoundError(
            f"the emulate backend needs dpupose.runtime.emulator, which cannot be imported ({exc}); "
            f"use {CPU_BACKEND}, or install the full dpupose package"
        ) from None
    if exact:
        return lambda path: EmulatorRunner(path)
    return lambda path: EmulatorRunner(path, exact=False)


class RunnerFactory:
    """Makes the runners of a plan's subgraphs on one backend, after the fingerprint guard.

    `create(subgraph)` may be called more than once per DPU subgraph (the pipeline runs several DPU jobs
    at once, one runner each). `dpu_runner` replaces the emulator for the `emulate` backend (tests).
    """

    def __init__(
        self,
        plan: Plan,
        backend: str,
        threads: int | None = None,
        overlay: str | Path | None = None,
        exact: bool = True,
        dpu_runner: DpuRunnerFactory | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise UsageError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
        self.plan = plan
        self.backend = backend
        self.threads = threads
        self.overlay = Path(overlay) if overlay is not None else None
        self._xmodels: dict[str, Xmodel] = {}
        self._dpu_runner = dpu_runner
        if backend == "vart":
            self.guard = self._prepare_board()
        else:
            # On a PC an overlay is optional; when given, its arch.json is still compared with the plan.
            self.guard = check_fingerprints(plan, self.overlay) if self.overlay is not None else None
            if backend == "emulate" and dpu_runner is None and any(sg.is_dpu for sg in plan.subgraphs):
                self._dpu_runner = emulator_factory(exact)

    def _prepare_board(self) -> GuardReport:
        from dpupose.runtime import vart_runner

        if self.overlay is None:
            if (self.plan.path("dpu.bit")).is_file():
                self.overlay = self.plan.path("dpu.bit")
            else:
                raise UsageError(
                    "the vart backend needs the DPU overlay: pass --overlay with the folder holding dpu.bit, "
                    "dpu.hwh, dpu.xclbin and arch.json"
                )
        vart_runner.overlay_bitfile(self.overlay)  # all overlay files present before anything runs
        vart_runner.import_board_modules()
        fingerprints = {}
        for sg in self.plan.subgraphs:
            if not sg.is_dpu:
                continue
            if sg.xmodel is None:
                raise ModelFileError(
                    f"DPU subgraph {sg.name!r} has no compiled xmodel in the plan: compile it with "
                    "scripts/vitis_ai_quantize.sh --plan (the overlay's arch.json) and split again with --xmodel "
                    f"(docs/quantization.md), or run this plan with {CPU_BACKEND}"
                )
            xm = self._xmodel(sg)
            name = xm.subgraph(sg.xmodel_subgraph).get_name()
            fingerprints.setdefault(str(xm.path), {})[name] = xm.fingerprints()[name]
        # Compare before programming the PL: a mismatched xmodel can hang the DPU.
        report = check_fingerprints(self.plan, self.overlay, fingerprints)
        vart_runner.load_overlay(self.overlay)
        return report

    def _xmodel(self, sg: Subgraph) -> Xmodel:
        from dpupose.runtime.vart_runner import Xmodel

        assert sg.xmodel is not None
        key = str(self.plan.path(sg.xmodel))
        if key not in self._xmodels:
            self._xmodels[key] = Xmodel(key)
        return self._xmodels[key]

    def create(self, sg: Subgraph) -> Runner:
        path = self.plan.path(sg.file)
        if not sg.is_dpu or self.backend == "cpu":  # the file's bytes if the heatmaps check read them (check_decode)
            return OnnxRunner(path, self.threads, model=self.plan.take_file(sg.file))
        if self.backend == "vart":
            from dpupose.runtime.vart_runner import VartRunner

            infos = [plan_tensor_info(t) for t in sg.inputs], [plan_tensor_info(t) for t in sg.outputs]
            return VartRunner(self._xmodel(sg), sg.xmodel_subgraph, *infos)
        assert self._dpu_runner is not None
        try:
            runner = self._dpu_runner(path)
        except NotEmulated as exc:
            raise ModelFileError(
                f"subgraph {sg.name!r} ({path}) runs on the DPU but not on the emulator, which runs {EMULATED} "
                f"only ({exc}): run this plan with {CPU_BACKEND} on a PC"
            ) from None
        except ModelFileError as exc:
            message = str(exc)
            if message.startswith(f"{path}: "):  # the ONNX reader names the file: named below, with the subgraph
                message = message[len(f"{path}: ") :]
            elif str(path) in message:
                raise
            raise ModelFileError(
                f"subgraph {sg.name!r} ({path}) cannot be loaded: {message}; copy the plan folder again, or re-split "
                "the model with `dpupose split`"
            ) from None
        _warn_on_other_fix_points(sg, runner)
        return runner

    def create_all(self) -> dict[str, Runner]:
        runners: dict[str, Runner] = {}
        try:
            for sg in self.plan.subgraphs:
                runners[sg.name] = self.create(sg)
        except BaseException:
            for r in runners.values():
                r.close()
            raise
        return runners


def _warn_on_other_fix_points(sg: Subgraph, runner: Runner) -> None:
    """The subgraph file's fix points are the ones used; say where the plan records others (an edited
    plan.json), as the vart backend does for an xmodel's."""
    planned = {t.name: t.fix_point for t in (*sg.inputs, *sg.outputs)}
    for info in (*runner.inputs, *runner.outputs):
        fp = planned.get(info.name)
        if fp is not None and fp != info.fix_point:
            log.warning(
                "%s: tensor %s has fix_point %s in %s but %s in the plan; using the file's",
                sg.name,
                info.name,
                info.fix_point,
                sg.file,
                fp,
            )


def plan_tensor_info(t: BoundaryTensor) -> TensorInfo:
    """A plan's boundary tensor as the runners describe tensors."""
    return TensorInfo(t.name, t.shape, t.dtype, t.fix_point, t.layout)
