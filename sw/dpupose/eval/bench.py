"""`dpupose bench`: the original study's table, reproduced on this machine (host only).

Rows, all on the same samples and through the same runtime (dpupose.runtime):

| row | DPU part | CPU part |
|---|---|---|
| split INT8 DPU + INT8 CPU | emulated DPU (the plan's DPU subgraphs) | ONNX Runtime static INT8 CPU subgraphs |
| split INT8 DPU + FP32 CPU | emulated DPU | the plan's float CPU subgraphs |
| CPU ONNX INT8 | - | the whole model, ONNX Runtime static INT8 |
| CPU ONNX FP32 | - | the whole model, model_fp32.onnx |

Per row: Euclidean error (normalized and px), JSD, PCKh@0.5 (dpupose.eval.metrics); host FPS measured
sequentially and pipelined (labelled "host, measured"; the emulator stands in for the DPU), the pipeline's
bound 1 / max(stage time / workers) and how close the pipelined run comes to it; predicted Ultra96-V2 FPS (DPU
performance model + Cortex-A53 model, labelled "predicted").

Accuracy of the split rows uses the exact DPU emulator unless `emulator="fast"` (ONNX Runtime's QDQ path
with the DPU's tie rounding, dpupose.runtime.emulator); host FPS always uses the fast path (the exact
emulator measures numpy, not a DPU).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpupose.dpu.paths import shipped_model
from dpupose.errors import DataError, ModelFileError, UsageError
from dpupose.fsio import lock_output_folder, not_a_file, not_a_folder, within

log = logging.getLogger(__name__)

DEFAULT_CHECKPOINT = shipped_model()
SHIPPED_WHERE = " (the shipped model comes with the repository, not with the installed package: run from a checkout)"
EMULATORS = ("exact", "fast")
ROWS = ("split INT8 DPU + INT8 CPU", "split INT8 DPU + FP32 CPU", "CPU ONNX INT8", "CPU ONNX FP32")
STUDY = {  # the original study's Ultra96-V2 figures (MPII validation), for reference
    ROWS[0]: {"euclidean": 0.093, "jsd": 0.26, "fps": 11.63},
    ROWS[1]: {"euclidean": 0.093, "jsd": 0.26, "fps": 9.72},
    ROWS[2]: {"euclidean": 0.092, "jsd": 0.25, "fps": 7.45},
    ROWS[3]: {"euclidean": 0.090, "jsd": 0.25, "fps": 3.14},
}
STUDY_INPUT_SIZE = 224  # the study's network: MobilePose's MobileNetV2 (width 1.0) at 224 x 224
PIPELINE_TARGET = 0.9  # pipelined host throughput should reach 90% of 1 / max(stage time / workers)


@dataclass
class BenchRow:
    row: str
    metrics: dict[str, Any]
    host: dict[str, Any]
    predicted: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        m, h, p = self.metrics, self.host, self.predicted
        return {
            "row": self.row,
            "euclidean": m.get("euclidean"),
            "euclidean_px": m.get("euclidean_px"),
            "jsd": m.get("jsd"),
            "pckh@0.5": m.get("pckh@0.5"),
            "samples": m.get("num_samples"),
            "host_fps": h.get("pipelined_fps"),
            "host_fps_sequential": h.get("sequential_fps"),
            "host_bound_fps": h.get("bound_fps"),
            "host_pipeline_efficiency": h.get("efficiency"),
            "host_stages_ms": h.get("stages_ms"),
            "host_note": "host, measured (DPU emulated with ONNX Runtime's QDQ path)" if "split" in self.row else
            "host, measured",
            "predicted_board_fps": p.get("pipelined_fps"),
            "predicted_board_fps_sequential": p.get("sequential_fps"),
            "predicted_dpu_ms": p.get("dpu_ms"),
            "predicted_cpu_ms": p.get("cpu_ms"),
            "predicted_note": "predicted: DPU performance model + Cortex-A53 model",
            "study_fps": STUDY[self.row]["fps"],
            "notes": self.notes,
        }  # fmt: skip


@dataclass(frozen=True)
class BenchOptions:
    plan: Path | None = None  # a plan folder from `dpupose split`
    quantized: Path | None = None  # a `dpupose quantize` folder (split here for `config`)
    checkpoint: Path | None = None  # neither given: this checkpoint (default: the shipped model), cached
    config: str | None = None  # DPU configuration for --quantized / --checkpoint (default: the board's)
    num_samples: int = 32
    fps_frames: int = 16
    data: str = "synthetic"
    data_root: Path | None = None
    emulator: str = "exact"
    threads: int | None = None  # ONNX Runtime intra-op threads (None: its default)
    num_calib: int = 8  # samples for the ONNX Runtime static INT8 calibration
    work: Path = Path("build") / "bench"


@dataclass
class BenchResult:
    rows: list[BenchRow]
    plan: Any
    quantized: Path | None
    info: dict[str, Any] = field(default_factory=dict)


def resolve_inputs(opts: BenchOptions) -> tuple[Any, Path | None]:
    """The split plan and the quantized folder (for the whole-model CPU rows) the bench runs."""
    from dpupose.dpu.board import default_config_name
    from dpupose.eval.prepare import quantized, split_plan
    from dpupose.model.checkpoint import check_checkpoint_path
    from dpupose.split.cost import plan_config
    from dpupose.split.plan import load_plan

    if opts.quantized is not None and opts.checkpoint is not None:
        raise UsageError("pass --checkpoint (quantized here) or --quantized (already quantized), not both")
    if opts.plan is not None and opts.config is not None:
        raise UsageError("--config chooses the DPU for splitting; a --plan is already split: leave --config out")
    config = opts.config or default_config_name("ultra96v2")
    qdir = opts.quantized
    if opts.plan is not None:
        plan = load_plan(opts.plan)
        # The DPU configuration the predicted rows use, checked now: found only after calibrating the INT8 CPU
        # variant, a plan of another fingerprint or an unknown configuration was named as that variant's copy
        # under --work, a folder the user never gave.
        plan_config(plan)
        _check_emulated(plan)
        if qdir is None:
            qdir = _source_quantized(plan)
        else:
            _check_same_network(qdir, plan)
        return plan, qdir
    if qdir is None:
        ckpt = opts.checkpoint or DEFAULT_CHECKPOINT
        if not ckpt.is_file() and not ckpt.is_dir():
            # A FIFO, a device or a symbolic link that leads nowhere is named for what it is, as eval's --checkpoint
            # names it: 'does not exist' of a name the user sees there.
            what = not_a_file(ckpt, "does not exist")
            where = SHIPPED_WHERE if opts.checkpoint is None and what == "does not exist" else ""
            raise UsageError(
                f"no model to benchmark: {ckpt} {what}{where}; pass --plan DIR, --quantized DIR or --checkpoint PATH"
            )
        # A run folder (it exists, so "does not exist" is not the answer) or an ONNX file: refused before the cache
        check_checkpoint_path(ckpt, "--checkpoint" if opts.checkpoint is not None else "checkpoint")
        qdir = quantized(ckpt)
    if not (qdir / "model_qdq.onnx").is_file():
        raise ModelFileError(f"{qdir} holds no model_qdq.onnx: pass a folder written by `dpupose quantize`")
    return load_plan(split_plan(qdir, config)), qdir


def _plan_source(plan: Any) -> Path | None:
    """The model_qdq.onnx the plan names as its source (relative to the plan folder, absolute in plans
    written before that), or None if it names none."""
    name = str(plan.metadata.get("source_model", ""))
    return plan.root / name if name and plan.root is not None else None


def _source_quantized(plan: Any) -> Path | None:
    """The quantized folder the plan was split from, for the CPU rows: only while its model_qdq.onnx is still
    the file the plan records (sha256). Another model quantized into that folder since (another --width,
    or new weights) would have given CPU rows of another network beside the plan's split rows."""
    source = _plan_source(plan)
    if source is None or not (source.parent / "model_fp32.onnx").is_file():
        return None
    if not plan.split_from(source):
        return None
    return source.parent


def _no_cpu_rows_reason(plan: Any) -> str:
    source = _plan_source(plan)
    if source is not None and not source.is_file():  # the shipped plan in a fresh checkout: never quantized here
        return (
            f"CPU ONNX rows: the plan's source model {os.path.normpath(source)} is not there; pass --quantized DIR, "
            "a `dpupose quantize` folder of the checkpoint the plan was split from"
        )
    if source is not None and (source.parent / "model_fp32.onnx").is_file():
        return (
            f"CPU ONNX rows: {os.path.normpath(source)} is not the model the plan was split from (its sha256 "
            "differs from the plan's: quantized again since?); pass --quantized DIR, the folder the plan was split from"
        )
    where = f" ({os.path.normpath(source.parent)})" if source is not None else ""
    return (
        f"CPU ONNX rows: no model_fp32.onnx beside the plan's source model{where}; pass --quantized DIR, or for a "
        "network of your own put its float export there under that name"
    )


def _check_same_network(qdir: Path, plan: Any) -> None:
    """--quantized with --plan: the whole-model CPU rows must run the network the plan was split from. Its
    input size, and its multiply-accumulates: a model of another --width (or decoder) at the same size gave
    CPU rows of another network beside the plan's split rows, without a word."""
    import onnx

    from dpupose.split.a53 import file_macs, graph_counts, same_macs

    fp32 = qdir / "model_fp32.onnx"
    if not fp32.is_file():
        raise ModelFileError(
            f"--quantized {qdir} holds no model_fp32.onnx: pass a folder written by `dpupose quantize`"
        )
    try:
        model = onnx.load(str(fp32))
    except Exception as exc:  # onnx raises its own decode errors
        raise ModelFileError(f"{fp32} is not a readable ONNX model ({exc}); quantize again") from None
    size = plan.input_size
    sides = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[2:]]
    if sides and any(v and v != size for v in sides):
        raise UsageError(
            f"--quantized {qdir} is a {'x'.join(map(str, sides))} px model but --plan is for {size} px: give the "
            "quantized folder the plan was split from"
        )
    if plan.root is None:
        return
    try:
        macs = graph_counts(model)["macs"]
        plan_macs = sum(file_macs(plan.root / sg.file) for sg in plan.subgraphs)
    except Exception:  # a file that cannot be counted is left to the runs to report
        return
    if not same_macs(macs, plan_macs):
        raise UsageError(
            f"--quantized {qdir} is another network than --plan {plan.root}: {macs / 1e9:.3f} GMAC against the "
            f"plan's {plan_macs / 1e9:.3f} (another --width or decoder at the same {size} px): give the quantized "
            "folder the plan was split from"
        )
    _check_same_weights(qdir, plan)


def _quantized_from(folder: Path) -> tuple[str, str] | None:
    """(weights_sha256, checkpoint) of a `dpupose quantize` folder's summary.json, or None where it has none."""
    try:
        summary = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    digest = summary.get("weights_sha256") if isinstance(summary, dict) else None
    if not isinstance(digest, str):
        return None
    return digest, str(summary.get("checkpoint", "?"))


def _check_same_weights(qdir: Path, plan: Any) -> None:
    """--quantized with --plan, the same network: its weights must be the plan's too. Another checkpoint of the
    same --width and size (a later epoch, another run) passed the size and MAC checks and gave CPU rows of
    other weights beside the plan's split rows. Decided by the weights' digest in summary.json of --quantized
    and of the folder the plan was split from (while its model_qdq.onnx is still the plan's); the same
    checkpoint calibrated again (other fix points, the same float model) is the same."""
    if plan.split_from(qdir / "model_qdq.onnx"):
        return
    source = _plan_source(plan)
    if source is None or not plan.split_from(source):
        return  # the plan's own folder is not there to say which weights it holds
    given, own = _quantized_from(qdir), _quantized_from(source.parent)
    if given is None or own is None or given[0] == own[0]:
        return
    raise UsageError(
        f"--quantized {qdir} holds other weights than --plan {plan.root} (quantized from {given[1]}; the plan was "
        f"split from {os.path.normpath(source)}, quantized from {own[1]}): give --quantized "
        f"{os.path.normpath(source.parent)}, or leave --quantized out"
    )


def _check_emulated(plan: Any) -> None:
    """The split rows emulate every DPU subgraph: one with an op the emulator does not run is refused first,
    before the INT8 CPU plan is calibrated, with what runs it instead."""
    from dpupose.runtime.qdq_graph import NotEmulated, load_program

    for sg in plan.subgraphs:
        if not sg.is_dpu:
            continue
        try:
            load_program(plan.path(sg.file))
        except NotEmulated as exc:
            raise ModelFileError(
                f"subgraph {sg.name!r} of the plan runs on the DPU but not on the emulator ({exc}), and bench "
                "measures the split rows with the emulator: `dpupose run --plan PLAN --source SRC --backend cpu` "
                "runs this plan on a PC, or split again with that op on the CPU (--cpu-from NODE) to bench it"
            ) from None
        except ModelFileError:
            continue  # a damaged file: the runners say so, naming it; the other subgraphs are still checked


def _split_rows(opts: BenchOptions, plan: Any, samples: Any, calib: list, a53: Any) -> list[BenchRow]:
    """The two split rows; their DPU subgraphs share one emulator per subgraph (same files, same inputs)."""
    from dpupose.eval.bench_measure import CachingRunner, accuracy, host_fps
    from dpupose.eval.bench_plans import int8_cpu_plan
    from dpupose.runtime.backends import RunnerFactory
    from dpupose.runtime.executor import SplitExecutor
    from dpupose.split.cost import predict_plan

    exact = opts.emulator == "exact"
    if not any(sg.is_dpu for sg in plan.subgraphs):
        log.warning(
            "the plan %s has no DPU subgraph: its 'split' rows run every subgraph on the CPU", plan.root or "given"
        )
    variants = [(ROWS[1], plan, False)]
    int8 = int8_cpu_plan(plan, opts.work / "split-int8-cpu", calib)
    variants.insert(0, (ROWS[0], int8, True))
    shared: dict[str, CachingRunner] = {}
    rows = []
    for name, p, cpu_int8 in variants:
        factory = RunnerFactory(p, "emulate", threads=opts.threads, exact=exact)
        runners = {}
        for sg in p.subgraphs:
            if sg.is_dpu:
                if sg.name not in shared:
                    shared[sg.name] = CachingRunner(factory.create(sg))
                runners[sg.name] = shared[sg.name]
            else:
                runners[sg.name] = factory.create(sg)
        ex = SplitExecutor(p, runners)
        metrics, _ = accuracy(ex, samples)
        for sg in p.subgraphs:
            if not sg.is_dpu:
                runners[sg.name].close()
        host = host_fps(p, samples.frames_bgr[: opts.fps_frames], opts.threads)
        pred = predict_plan(p, a53, cpu_int8=cpu_int8).to_dict()
        notes = [f"accuracy with the {'exact' if exact else 'fast (ONNX Runtime QDQ)'} DPU emulator"]
        rows.append(BenchRow(name, metrics, host, pred, notes))
    for r in shared.values():
        r.close()
    return rows


def _cpu_rows(opts: BenchOptions, plan: Any, qdir: Path, samples: Any, calib: list, a53: Any) -> list[BenchRow]:
    """The whole-model CPU rows: model_fp32.onnx and its ONNX Runtime static INT8 version."""
    import onnx

    from dpupose.eval.bench_measure import accuracy, host_fps
    from dpupose.eval.bench_plans import int8_whole_model, whole_model_plan
    from dpupose.runtime.backends import RunnerFactory
    from dpupose.runtime.executor import SplitExecutor
    from dpupose.split.a53 import graph_counts

    fp32 = qdir / "model_fp32.onnx"
    counts = graph_counts(onnx.load(str(fp32)))
    rows = []
    with tempfile.TemporaryDirectory(prefix="dpupose-bench-") as scratch:  # the plan folder keeps its copy
        int8_file = int8_whole_model(fp32, Path(scratch) / "model_int8.onnx", calib, plan.input.name)
        plans = [
            (name, whole_model_plan(model, opts.work / name.lower().replace(" ", "-"), plan, Path(model).stem), int8)
            for name, model, int8 in ((ROWS[2], int8_file, True), (ROWS[3], fp32, False))
        ]
    for name, p, int8 in plans:
        ex = SplitExecutor(p, RunnerFactory(p, "cpu", threads=opts.threads).create_all())
        metrics, _ = accuracy(ex, samples)
        ex.close()
        host = host_fps(p, samples.frames_bgr[: opts.fps_frames], opts.threads)
        ms = a53.compute_s(counts["macs"], counts["element_ops"], counts["nodes"], int8) * 1e3
        pred = {"predicted": True, "dpu_ms": 0.0, "cpu_ms": ms, "pipelined_fps": 1e3 / ms, "sequential_fps": 1e3 / ms}
        rows.append(BenchRow(name, metrics, host, pred, ["ONNX Runtime static INT8" if int8 else "float"]))
    return rows


def run_bench(opts: BenchOptions) -> BenchResult:
    """Every row of the table (module docstring) on the same samples."""
    if opts.emulator not in EMULATORS:
        raise UsageError(f"--emulator must be one of {', '.join(EMULATORS)}")
    if opts.num_samples < 1 or opts.fps_frames < 2:
        raise UsageError("--num-samples must be at least 1 and --fps-frames at least 2")
    if opts.data == "mpii" and opts.data_root is None:  # before any quantization, as a wrong folder is
        raise UsageError("MPII data needs --data-root DIR (images/ and annot/*.json or the official .mat)")
    if opts.data_root is not None and not Path(opts.data_root).is_dir():  # before any quantization
        raise DataError(f"--data-root {opts.data_root} {not_a_folder(opts.data_root)}; give the data set's root folder")
    if opts.plan is not None:  # before the lock makes --work (and its lock file) in the plan folder
        _check_work_outside(opts.work, opts.plan)
    elif opts.config is not None:  # a mistyped name was refused only by the split, after the quantization
        from dpupose.dpu.config import load_config

        load_config(opts.config)
    import onnxruntime as ort

    ort.set_default_logger_severity(3)  # ONNX Runtime's quantization tools warn about every folded constant
    # Another bench with this --work would replace the plan variants this one measures (one plan's rows
    # measured on the other's): it is refused, naming this one, before either quantizes (minutes). A bench
    # refused later leaves no --work it made.
    with lock_output_folder(opts.work, "dpupose bench", "--work"):
        plan, qdir = resolve_inputs(opts)
        if plan.root is not None:
            _check_work_outside(opts.work, plan.root)
        return _bench(opts, plan, qdir)


def _check_work_outside(work: Path, plan_root: Path) -> None:
    """UsageError where --work is the plan folder being read or inside it (by any name: fsio.within), where the
    plan variants would be written among its files."""
    if within(work, plan_root):
        raise UsageError(
            f"--work {work} is the plan folder {plan_root} or inside it: bench writes its plan variants there; "
            "pass another --work (default build/bench)"
        )


def _bench(opts: BenchOptions, plan: Any, qdir: Path | None) -> BenchResult:
    from dpupose.eval.bench_measure import load_samples
    from dpupose.eval.bench_plans import VARIANT_FOLDERS, check_variant_folder
    from dpupose.quant.data import calibration_batches
    from dpupose.split.a53 import default_model

    for name in VARIANT_FOLDERS:  # before minutes of work: a folder of the user's there stops the bench
        check_variant_folder(opts.work / name, plan)
    size = plan.input_size
    samples = load_samples(opts.data, opts.data_root, opts.num_samples, size)
    calib = [x for batch in calibration_batches(opts.data, opts.data_root, opts.num_calib, size) for x in batch]
    a53 = default_model()
    rows = _split_rows(opts, plan, samples, calib, a53)
    info: dict[str, Any] = {
        "plan": str(plan.root),
        "dpu_config": plan.dpu_config,
        "fingerprint": plan.fingerprint,
        "samples": len(samples.images),
        "data": opts.data,
        "input_size": size,
        "head_sizes": samples.head_sizes,
        "emulator": opts.emulator,
        "subgraphs": [f"{sg.name} ({sg.device})" for sg in plan.subgraphs],
    }
    if qdir is not None and (qdir / "model_fp32.onnx").is_file():
        from dpupose.split.a53 import file_macs

        info["model_macs"] = file_macs(qdir / "model_fp32.onnx")
        rows += _cpu_rows(opts, plan, qdir, samples, calib, a53)
    else:
        info["skipped"] = _no_cpu_rows_reason(plan)
    return BenchResult(rows, plan, qdir, info)


def _f(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def study_network_note(info: dict[str, Any]) -> str | None:
    """A line saying the study column is another network's, for a model of another input size or MAC count
    (another width) than the study's; None for the study's own network."""
    from dpupose.split.a53 import REFERENCE, same_macs

    size, macs = info.get("input_size"), info.get("model_macs")
    if size == STUDY_INPUT_SIZE and (macs is None or same_macs(macs, REFERENCE["macs"])):
        return None
    this = f"{size} px" + ("" if macs is None else f", {macs / 1e9:.2f} GMAC")
    return (
        f"note: the study FPS column is the study's network (MobileNetV2 width 1.0 at {STUDY_INPUT_SIZE} px, "
        f"{REFERENCE['macs'] / 1e9:.2f} GMAC); this model ({this}) is another network, so the predicted and "
        "study columns are not the same workload"
    )


def format_table(result: BenchResult) -> str:
    info = result.info
    lines = [
        f"dpupose bench: {info['samples']} {info['data']} samples at {info['input_size']} px"
        + (f" (head sizes: {info['head_sizes']})" if info.get("head_sizes") else "")
        + f", plan {info['plan']} ({', '.join(info['subgraphs'])}) for {info['dpu_config']}",
        "accuracy and host FPS: measured on this machine (host, measured; DPU emulated); board FPS: predicted "
        "for the Ultra96-V2 (DPU performance model + Cortex-A53 model)",
        "",
        f"{'row':<26} {'Eucl.':>7} {'px':>6} {'JSD':>7} {'PCKh@0.5':>8} | {'host FPS':>8} {'pipel.':>7} "
        f"{'bound':>7} {'eff.':>5} | {'predicted':>9} {'study':>6}",
        f"{'':<26} {'':>7} {'':>6} {'':>7} {'':>8} | {'seq.':>8} {'':>7} {'':>7} {'':>5} | {'board FPS':>9} {'FPS':>6}",
    ]
    for r in result.rows:
        j = r.to_json()
        eff = j["host_pipeline_efficiency"]
        lines.append(
            f"{r.row:<26} {_f(j['euclidean'], '7.4f')} {_f(j['euclidean_px'], '6.2f')} {_f(j['jsd'], '7.4f')} "
            f"{_f(j['pckh@0.5'], '8.3f')} | {_f(j['host_fps_sequential'], '8.1f')} {_f(j['host_fps'], '7.1f')} "
            f"{_f(j['host_bound_fps'], '7.1f')} {_f(eff * 100 if eff else None, '4.0f')}% | "
            f"{_f(j['predicted_board_fps'], '9.1f')} {j['study_fps']:6.2f}"
        )
    lines.append("")
    lines.append(
        "pipel. = pipelined host throughput; bound = 1 / max(stage time / workers); eff. = pipel. / bound "
        f"(target >= {PIPELINE_TARGET:.0%}); study = the original study's measured Ultra96-V2 FPS"
    )
    note = study_network_note(info)
    if note:
        lines.append(note)
    for r in result.rows:
        slow = r.host.get("slowest_stage")
        if slow:
            stages = r.host["stages_ms"]
            jobs = f", {r.host.get('dpu_jobs', 2)} DPU jobs at once" if any(n.startswith("dpu") for n in stages) else ""
            lines.append(
                f"  {r.row}: slowest host stage {slow}; pipelined run's stage times (ms per frame in one worker"
                f"{jobs}): " + ", ".join(f"{name} {ms:.3f}" for name, ms in stages.items())
            )
    if "skipped" in info:
        lines.append(f"skipped: {info['skipped']}")
    return "\n".join(lines)
