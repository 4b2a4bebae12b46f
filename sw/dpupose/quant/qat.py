"""Quantization-aware fine-tuning with learned power-of-two thresholds (host only).

Every quantized tensor (activation, weights, bias) gets a trainable log2 threshold t, fix position
7 - ceil(t), with straight-through gradients for round and ceil (TQT, Jain et al. 2020). The folded
weights train at a small learning rate, the thresholds at a larger one. Without labels the loss is
distillation from the FP32 model on the calibration images: Euclidean distance between the INT8 and
FP32 DSNT coordinates plus the Jensen-Shannon divergence of their heatmaps. The result is again checked
against the DPU's shift constraints, so its scales stay exact powers of two.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from dpupose.model.dsnt import dsnt, flat_softmax
from dpupose.model.losses import euclidean_losses, js_divergence
from dpupose.quant.fakequant import QuantNet
from dpupose.quant.fixpos import apply_constraints
from dpupose.quant.ir import FixPoints, QGraph

log = logging.getLogger(__name__)


def qat_finetune(
    graph: QGraph,
    fix: FixPoints,
    images: Sequence[np.ndarray],
    epochs: int,
    lr_weights: float = 1e-5,
    lr_thresholds: float = 1e-2,
    max_steps: int | None = None,
    seed: int = 0,
) -> tuple[QGraph, FixPoints, list[float]]:
    """Fine-tune `graph` and its fix positions; returns (new graph, new positions, loss per step)."""
    torch.manual_seed(seed)
    teacher = QuantNet(graph).eval()
    student = QuantNet(graph, fix).set_mode("qat").train()
    opt = torch.optim.Adam(
        [
            {
                "params": list(student.weights.parameters()) + list(student.biases.parameters()),
                "lr": lr_weights,
            },
            {"params": list(student.thresholds.parameters()), "lr": lr_thresholds},
        ]
    )
    with torch.no_grad():
        targets = []
        for x in images:
            heat = flat_softmax(teacher(torch.from_numpy(x)))
            targets.append((dsnt(heat), heat))
    losses: list[float] = []
    for epoch in range(epochs):
        order = np.random.default_rng(seed + epoch).permutation(len(images))
        for i in order:
            if max_steps is not None and len(losses) >= max_steps:
                break
            coords_t, heat_t = targets[i]
            heat = flat_softmax(student(torch.from_numpy(images[i])))
            loss = euclidean_losses(dsnt(heat), coords_t).mean() + js_divergence(heat, heat_t).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        log.info("QAT epoch %d: mean loss %.5f", epoch + 1, float(np.mean(losses[-len(images) :] or [0.0])))
    new_graph = student.to_graph()
    new_fix, notes = apply_constraints(new_graph, student.learned_fix_points())
    changed = sum(new_fix.activations[k] != fix.activations[k] for k in fix.activations) + sum(
        new_fix.weights[k] != fix.weights[k] for k in fix.weights
    )
    log.info("QAT moved %d fix positions (%d constraint adjustments after training)", changed, len(notes))
    return new_graph, new_fix, losses
