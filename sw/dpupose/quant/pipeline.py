"""`dpupose quantize`: checkpoint -> calibrated power-of-two INT8 model and its files (host only).

Everything is built in a temporary folder next to the output folder and renamed into place at the end,
so an error (bad checkpoint, short calibration set, NaNs, unrepresentable ranges) leaves nothing behind.
An existing output folder is replaced only if it holds an earlier `dpupose quantize` result.

Files (native engine): model_fp32.onnx (image -> coords, heatmaps), dpu_part_fp32.onnx (image -> logits),
cpu_part_fp32.onnx (logits -> coords, heatmaps), dpu_part_qdq.onnx (QDQ, see quant/qdq_export.py),
model_qdq.onnx (QDQ DPU part + float CPU part), fix_points.json, summary.json.
vai_q engine: the three FP32 files, DpuPart_int.xmodel, vai_q/ (vai_q_pytorch's own files), summary.json.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dpupose.errors import ToolNotFoundError, UsageError
from dpupose.fsio import atomic_dir, check_can_create, check_replaceable, json_text, read_own_json

log = logging.getLogger(__name__)

ENGINES = ("native", "vai_q")
SUMMARY = "summary.json"
FIX_POINTS = "fix_points.json"
SUMMARY_FORMAT = "dpupose-quantize-summary/1"


@dataclass(frozen=True)
class QuantizeConfig:
    checkpoint: Path
    out: Path
    calib_data: str = "synthetic"
    data_root: Path | None = None
    num_calib: int = 100
    engine: str = "native"
    qat_epochs: int = 0
    batch_size: int = 8
    summary_samples: int = 32  # samples the emulator runs for summary.json
    target: str | None = None  # vai_q: DPU target name, e.g. DPUCZDX8G_ISA1_B1600
    seed: int = 0


def _check_out(out: Path) -> None:
    """An existing --out is replaced only if it is an earlier result holding only the files its
    summary.json lists (a checkpoint or anything else kept there would be lost)."""
    doc = read_own_json(out / SUMMARY)  # a regular file only: a FIFO there was waited on for ever
    files = doc.get("files") if isinstance(doc, dict) else None
    written = [f for f in files if isinstance(f, str)] if isinstance(files, list) else []
    check_replaceable(out, SUMMARY, written, "an earlier `dpupose quantize` result")


@contextmanager
def staged_dir(out: Path) -> Iterator[Path]:
    """A temporary folder that becomes `out` when the block succeeds and disappears when it fails."""
    _check_out(out)
    with atomic_dir(out) as tmp:
        yield tmp


def export_fp32(model, size: int, folder: Path) -> None:
    import torch

    from dpupose.model.export import export_onnx

    x = torch.zeros(1, 3, size, size)
    export_onnx(model, x, folder / "model_fp32.onnx", ["image"], ["coords", "heatmaps"], dynamic_batch=True)
    export_onnx(model.dpu_part, x, folder / "dpu_part_fp32.onnx", ["image"], ["logits"], dynamic_batch=True)
    with torch.no_grad():
        logits = model.dpu_part(x)
    export_onnx(
        model.cpu_part,
        logits,
        folder / "cpu_part_fp32.onnx",
        ["logits"],
        ["coords", "heatmaps"],
        dynamic_batch=True,
    )


def _write_json(path: Path, doc: dict) -> None:
    path.write_text(json_text(doc, indent=2) + "\n")


def quantize(cfg: QuantizeConfig) -> dict:
    """Run the whole job; returns the summary document."""
    import onnx
    import torch

    from dpupose.model.checkpoint import load_checkpoint, read_checkpoint, weights_digest
    from dpupose.quant.calibrate import calibrate
    from dpupose.quant.data import open_calibration_set
    from dpupose.quant.fuse import build_qgraph
    from dpupose.quant.qdq_export import append_cpu_part, qdq_model
    from dpupose.quant.vai_q import SCRIPT, vai_q_available

    if cfg.engine not in ENGINES:
        raise UsageError(f"unknown engine {cfg.engine!r}; use one of: {', '.join(ENGINES)}")
    if cfg.engine == "vai_q" and not vai_q_available():
        raise ToolNotFoundError(
            f"--engine vai_q needs vai_q_pytorch (pytorch_nndct), which is not installed here; run {SCRIPT} "
            "to quantize and compile inside the Vitis AI 2.5 docker image, or use --engine native"
        )
    if cfg.qat_epochs < 0:
        raise UsageError("--qat-epochs must be >= 0")
    if cfg.target and cfg.engine != "vai_q":
        raise UsageError(f"--target names the DPU for --engine vai_q; --engine {cfg.engine} does not use it: drop it")
    _check_out(cfg.out)
    check_can_create(cfg.out)  # a folder that cannot be written fails now, not after calibration
    # A wrong file is reported before the calibration set is made (minutes).
    read_checkpoint(cfg.checkpoint, "--checkpoint")
    calib_set = open_calibration_set(cfg.calib_data, cfg.data_root, cfg.num_calib, cfg.seed)
    model, state = load_checkpoint(cfg.checkpoint)
    size = model.config.input_size
    batches = list(calib_set.batches(size, cfg.batch_size))
    images = [b.images for b in batches]
    doc: dict = {
        "format": SUMMARY_FORMAT,
        "generated_by": "dpupose quantize",
        "engine": cfg.engine,
        "checkpoint": str(cfg.checkpoint),
        "epoch": state.get("epoch"),
        "model_config": model.config.to_dict(),
        "weights_sha256": weights_digest(model),
        "calibration": {
            "data": cfg.calib_data,
            "samples": int(sum(len(x) for x in images)),
            "batch_size": cfg.batch_size,
            "seed": cfg.seed,
        },
    }
    graph = fix = None
    if cfg.engine == "native":  # calibrate before writing anything: most bad input shows up here
        torch.manual_seed(cfg.seed)
        graph = build_qgraph(model.dpu_part, (3, size, size))
        fix, _ = calibrate(graph, images)
        if cfg.qat_epochs:
            from dpupose.quant.qat import qat_finetune

            graph, fix, losses = qat_finetune(graph, fix, images, cfg.qat_epochs, seed=cfg.seed)
            doc["qat"] = {
                "epochs": cfg.qat_epochs,
                "steps": len(losses),
                "final_loss": losses[-1] if losses else None,
            }
    with staged_dir(cfg.out) as tmp:
        export_fp32(model, size, tmp)
        if cfg.engine == "vai_q":
            from dpupose.quant.vai_q import run_vai_q

            doc["vai_q"] = run_vai_q(model, images, tmp, target=cfg.target)
        else:
            from dpupose.quant.summary import summarize

            qdq = qdq_model(graph, fix)
            onnx.save(qdq, tmp / "dpu_part_qdq.onnx")
            onnx.save(append_cpu_part(qdq, onnx.load(tmp / "cpu_part_fp32.onnx")), tmp / "model_qdq.onnx")
            _write_json(tmp / FIX_POINTS, {"generated_by": "dpupose quantize", **fix.to_json(graph)})
            doc["accuracy"] = summarize(model, graph, fix, tmp / "dpu_part_qdq.onnx", batches, cfg.summary_samples)
        doc["files"] = [*sorted(p.name for p in tmp.iterdir()), SUMMARY]
        _write_json(tmp / SUMMARY, doc)
    log.info("wrote %s", cfg.out)
    return doc
