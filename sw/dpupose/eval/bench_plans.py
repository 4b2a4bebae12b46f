"""The plan variants `dpupose bench` runs, all through the same runtime (host only):

- the split plan as written by `dpupose split` (INT8 DPU + FP32 CPU);
- the same plan with every CPU subgraph replaced by its ONNX Runtime static INT8 version, calibrated on
  the float tensors the DPU subgraphs hand over (INT8 DPU + INT8 CPU; dpupose.quant.ort_int8);
- one-subgraph CPU plans for the whole model: model_fp32.onnx (CPU ONNX FP32) and its ONNX Runtime
  static INT8 version (CPU ONNX INT8).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from dpupose.errors import UsageError
from dpupose.fsio import atomic_dir, check_replaceable, sha256_file, within
from dpupose.split.plan import PLAN_FILE, BoundaryTensor, Plan, Subgraph, load_plan, recorded_files, save_plan

log = logging.getLogger(__name__)

GENERATED_BY = "dpupose bench"


class _QuietOrtQuantization(logging.Filter):
    """ONNX Runtime's quantize_static logs a pre-processing hint on the root logger on every call."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Please consider")


@contextlib.contextmanager
def quiet_ort_quantization() -> Iterator[None]:
    filt = _QuietOrtQuantization()
    root = logging.getLogger()
    root.addFilter(filt)
    for h in root.handlers:
        h.addFilter(filt)
    try:
        yield
    finally:
        root.removeFilter(filt)
        for h in root.handlers:
            h.removeFilter(filt)


def _dpu_outputs(plan: Plan, images: Iterable[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """For each image, the float inputs of every CPU subgraph (what the split plan hands over)."""
    from dpupose.runtime.backends import RunnerFactory
    from dpupose.runtime.executor import SplitExecutor, as_float_nchw

    ex = SplitExecutor(plan, RunnerFactory(plan, "emulate", exact=False).create_all())
    feeds = []
    try:
        for x in images:
            env = {plan.input.name: (np.asarray(x, np.float32)[None], ex.image_info)}
            seen: dict[str, np.ndarray] = {}
            for i, sg in enumerate(plan.subgraphs):
                if not sg.is_dpu:
                    for t in sg.inputs:
                        seen[t.name] = as_float_nchw(*env[t.name])
                ex.run_subgraph(i, env)
            feeds.append(seen)
    finally:
        ex.close()
    return feeds


VARIANT_FOLDERS = ("split-int8-cpu", "cpu-onnx-int8", "cpu-onnx-fp32")  # under --work


def check_variant_folder(out: Path, reading: Plan | None = None) -> None:
    """`out` may be replaced by a plan variant: missing, empty, or a folder an earlier bench wrote (its
    plan says generated_by dpupose bench and it holds nothing else); never the plan being read."""
    if reading is not None and reading.root is not None and within(reading.root, out):  # by any name: fsio.within
        raise UsageError(
            f"--plan {reading.root} is inside {out}, where bench writes its plan variants: copy the plan "
            "elsewhere or pass another --work"
        )
    written, generated_by = recorded_files(out)
    check_replaceable(out, PLAN_FILE, written, "a plan variant folder of an earlier `dpupose bench`", "--work")
    if out.is_dir() and any(out.iterdir()) and generated_by != GENERATED_BY:
        raise UsageError(f"{out} holds a plan that `dpupose bench` did not write; pass another --work")


def int8_cpu_plan(plan: Plan, out: Path, calib_images: list[np.ndarray]) -> Plan:
    """`plan` with its CPU subgraphs as ONNX Runtime static INT8 models, written to `out`; its DPU subgraphs are the
    plan's ONNX files, without their compiled .xmodel (bench emulates them)."""
    from dpupose.quant.ort_int8 import quantize_cpu_subgraph

    check_variant_folder(out, plan)
    calib = _dpu_outputs(plan, calib_images)
    with atomic_dir(out) as tmp:  # an interrupted bench leaves no half-written variant behind
        subgraphs = []
        for sg in plan.subgraphs:
            src = plan.path(sg.file)
            if sg.is_dpu:
                shutil.copyfile(src, tmp / sg.file)
                # The variant is measured with the emulator, from the ONNX file: the compiled .xmodel is not copied,
                # so the plan does not name it (a plan that did would send the vart backend to a missing file)
                subgraphs.append(dataclasses.replace(sg, xmodel=None, xmodel_sha256=None, xmodel_subgraph=None))
                continue
            names = [t.name for t in sg.inputs]
            feeds = [{n: f[n] for n in names} for f in calib]
            target = tmp / f"{Path(sg.file).stem}_int8.onnx"
            with quiet_ort_quantization():
                quantize_cpu_subgraph(src, target, feeds)
            reason = f"{sg.reason} (ONNX Runtime static INT8)" if sg.reason else "ONNX Runtime static INT8"
            subgraphs.append(dataclasses.replace(sg, file=target.name, sha256=sha256_file(target), reason=reason))
        variant = dataclasses.replace(plan, subgraphs=tuple(subgraphs), generated_by=GENERATED_BY, root=None)
        save_plan(variant, tmp)
    return load_plan(out)


def whole_model_plan(model: Path, out: Path, like: Plan, name: str) -> Plan:
    """A plan with one CPU subgraph: the whole model file (float image in, coords and heatmaps out)."""

    check_variant_folder(out, like)
    with atomic_dir(out) as tmp:
        _write_whole_model_plan(model, tmp, like, name)
    return load_plan(out)


def _write_whole_model_plan(model: Path, out: Path, like: Plan, name: str) -> None:
    import onnxruntime as ort

    target = out / f"{name}.onnx"
    shutil.copyfile(model, target)
    sess = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    shapes = {o.name: o.shape for o in sess.get_outputs()}
    size = like.input_size

    def tensor(n: str, shape: list) -> BoundaryTensor:
        dims = tuple(d if isinstance(d, int) and d > 0 else 1 for d in shape)
        return BoundaryTensor(n, dims, "NCHW" if len(dims) == 4 else "NCDEFG"[: len(dims)], "float32", None)

    outputs = [like.outputs.coords] + ([like.outputs.heatmaps] if like.outputs.heatmaps else [])
    missing = [n for n in outputs if n not in shapes]
    if missing:
        raise ValueError(f"{model} lacks outputs {missing}")
    sg = Subgraph(
        name=name,
        device="cpu",
        file=target.name,
        inputs=(BoundaryTensor(like.input.name, (1, 3, size, size), "NCHW", "float32", None),),
        outputs=tuple(tensor(n, shapes[n]) for n in outputs),
        reason="the whole model on the CPU",
        sha256=sha256_file(target),
    )
    plan = dataclasses.replace(like, subgraphs=(sg,), generated_by=GENERATED_BY, metadata={}, root=None)
    save_plan(plan, out)


def int8_whole_model(model_fp32: Path, out: Path, calib_images: list[np.ndarray], input_name: str) -> Path:
    """ONNX Runtime static INT8 version of the whole float model (the study's CPU ONNX INT8 row)."""
    from dpupose.quant.ort_int8 import quantize_cpu_subgraph

    feeds = [{input_name: np.asarray(x, np.float32)[None]} for x in calib_images]
    with quiet_ort_quantization():
        return quantize_cpu_subgraph(model_fp32, out, feeds)
