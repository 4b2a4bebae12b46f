"""Accuracy of a quantized DPU part: FP32 vs INT8 (emulated DPU) on the same samples, per-layer SQNR, the
ONNX Runtime fast path's distance from the emulator in LSBs, and the emulator-vs-fake-quant self check."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from dpupose.model.losses import js_divergence
from dpupose.quant.data import CalibBatch
from dpupose.quant.fakequant import QuantNet
from dpupose.quant.ir import FixPoints, QGraph
from dpupose.runtime.base import dequantize_int8, quantize_to_int8
from dpupose.runtime.emulator import EmulatorRunner, QdqOrtRunner


def heatmap_jsd(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """JS divergence of two heatmap batches, in float64 and at least 0. Maps that nearly agree (FP32 against
    INT8 of a model whose heatmaps are almost flat) gave float32 sums just below 0, printed as -0.0000."""
    return js_divergence(p.double(), q.double()).clamp_min(0.0)


def int8_name(tensor: str) -> str:
    """The QDQ file's int8 tensor (QuantizeLinear output) for activation `tensor`."""
    return f"{tensor}_int8"


class _LayerStats:
    def __init__(self) -> None:
        self.signal = 0.0
        self.noise = 0.0
        self.max_abs = 0.0

    def add(self, ref: np.ndarray, got: np.ndarray) -> None:
        err = ref.astype(np.float64) - got.astype(np.float64)
        self.signal += float(np.sum(ref.astype(np.float64) ** 2))
        self.noise += float(np.sum(err**2))
        self.max_abs = max(self.max_abs, float(np.max(np.abs(err))))

    def sqnr_db(self) -> float | None:
        if self.noise == 0.0:
            return None  # exact
        return 10.0 * math.log10(max(self.signal, 1e-300) / self.noise)


def _pose_errors(coords: np.ndarray, targets: np.ndarray, visible: np.ndarray) -> tuple[float, int]:
    d = np.linalg.norm(coords - targets, axis=-1)
    mask = visible > 0
    return float(d[mask].sum()), int(mask.sum())


def summarize(
    model: torch.nn.Module,
    graph: QGraph,
    fix: FixPoints,
    qdq_path: str | Path,
    batches: Iterable[CalibBatch],
    max_samples: int = 32,
    exact_check_samples: int = 2,
) -> dict:
    """The accuracy part of summary.json."""
    emu = EmulatorRunner(qdq_path)
    ort_runner = QdqOrtRunner(qdq_path)
    float_net = QuantNet(graph).eval()
    exact_net = QuantNet(graph, fix).set_mode("fake").double().eval()
    size = graph.input_shape[1]
    fp_in = fix.activations[graph.input]
    fp_out = fix.activations[graph.output]
    layers = {t: _LayerStats() for t in graph.tensors()}
    n = 0
    agree_sum = agree_max = jsd_sum = 0.0
    joints = 0
    gt = {"fp32": 0.0, "int8": 0.0, "count": 0}
    ort_max = 0
    ort_sum = 0.0
    ort_count = 0
    exact_checked = exact_mismatch = 0
    with torch.no_grad():
        for batch in batches:
            if n >= max_samples:
                break
            x = batch.images[: max_samples - n]
            xt = torch.from_numpy(x)
            ftrace: dict[str, torch.Tensor] = {}
            float_net(xt, trace=ftrace)
            coords32, heat32 = model(xt)
            xi = quantize_to_int8(x.transpose(0, 2, 3, 1), fp_in)
            env = emu.trace({graph.input: xi})
            for t, stats in layers.items():
                q = dequantize_int8(env[int8_name(t)], fix.activations[t]).transpose(0, 3, 1, 2)
                stats.add(ftrace[t].numpy(), q)
            logits8 = env[int8_name(graph.output)]
            coords8, heat8 = model.cpu_part(torch.from_numpy(dequantize_int8(logits8, fp_out).transpose(0, 3, 1, 2)))
            d = torch.linalg.vector_norm(coords8 - coords32, dim=-1)
            agree_sum += float(d.sum())
            agree_max = max(agree_max, float(d.max()))
            jsd_sum += float(heatmap_jsd(heat8, heat32).sum())
            joints += d.numel()
            if batch.targets is not None and batch.visible is not None:
                t = batch.targets[: len(x)]
                v = batch.visible[: len(x)]
                s32, cnt = _pose_errors(coords32.numpy(), t, v)
                s8, _ = _pose_errors(coords8.numpy(), t, v)
                gt["fp32"] += s32
                gt["int8"] += s8
                gt["count"] += cnt
            ort8 = ort_runner.run({graph.input: xi})[graph.output]
            diff = np.abs(ort8.astype(np.int64) - logits8.astype(np.int64))
            ort_max = max(ort_max, int(diff.max()))
            ort_sum += float(diff.sum())
            ort_count += diff.size
            if exact_checked < exact_check_samples:
                k = min(len(x), exact_check_samples - exact_checked)
                ref = exact_net(xt[:k].double()).numpy()
                ref8 = np.rint(ref * 2.0**fp_out).astype(np.int64).transpose(0, 2, 3, 1)
                exact_mismatch += int(np.sum(ref8 != logits8[:k].astype(np.int64)))
                exact_checked += k
            n += len(x)
    half = size / 2.0  # normalized units -> input pixels
    out: dict = {
        "samples": n,
        "fp32_vs_int8": {
            "coords_mean_distance": agree_sum / max(joints, 1),
            "coords_mean_distance_px": agree_sum / max(joints, 1) * half,
            "coords_max_distance_px": agree_max * half,
            "heatmap_js_divergence_mean": jsd_sum / max(joints, 1),
        },
        "ort_vs_emulator_logits_lsb": {
            "max": ort_max,
            "mean": ort_sum / max(ort_count, 1),
            "note": "the emulator's fast path: ONNX Runtime on the same QDQ file, ties rounded up as on the DPU",
        },
        "emulator_vs_fake_quant": {"samples": exact_checked, "mismatching_values": exact_mismatch},
        "per_layer": [
            {
                "tensor": t,
                "fix_point": fix.activations[t],
                "sqnr_db": layers[t].sqnr_db(),
                "max_abs_error": layers[t].max_abs,
            }
            for t in graph.tensors()
        ],
    }
    if gt["count"]:
        out["vs_labels"] = {
            "joints": gt["count"],
            "fp32_euclidean": gt["fp32"] / gt["count"],
            "int8_euclidean": gt["int8"] / gt["count"],
            "fp32_euclidean_px": gt["fp32"] / gt["count"] * half,
            "int8_euclidean_px": gt["int8"] / gt["count"] * half,
        }
    return out
