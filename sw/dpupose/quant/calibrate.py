"""Post-training calibration: fix positions of every activation, weight and bias (host only).

Activations: the float graph runs on each calibration batch; each batch picks its own diffs position per
tensor (the graph input only its overflow-free one, as vai_q_pytorch) and the position most batches picked
is kept. Weights and biases: diffs on the tensor itself. Every position is capped at 12 (vai_q_pytorch).
Then the DPU's shift constraints are applied (quant/fixpos.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import torch

from dpupose.errors import QuantizationError
from dpupose.quant.fakequant import QuantNet
from dpupose.quant.fixpos import SEARCH_RANGE, apply_constraints, diffs_fix_pos, most_frequent
from dpupose.quant.ir import FixPoints, QGraph

log = logging.getLogger(__name__)


def parameter_fix_points(graph: QGraph) -> tuple[dict[str, int], dict[str, int]]:
    weights = {}
    biases = {}
    for op in graph.convs():
        weights[op.name] = diffs_fix_pos(op.weight, name=f"weights of {op.name!r}")
        if op.bias is not None:
            biases[op.name] = diffs_fix_pos(op.bias, name=f"bias of {op.name!r}")
    return weights, biases


def calibrate(graph: QGraph, batches: Iterable[np.ndarray]) -> tuple[FixPoints, int]:
    """Fix positions for `graph` from float32 NCHW batches; returns (constrained positions, samples seen)."""
    net = QuantNet(graph).eval()
    seen: dict[str, list[int]] = {t: [] for t in graph.tensors()}
    batch_index = 0

    def observe(name: str, y: torch.Tensor) -> None:
        where = f"activation {name!r} (calibration batch {batch_index})"
        search = 1 if name == graph.input else SEARCH_RANGE  # vai_q: no search on the network input
        seen[name].append(diffs_fix_pos(y, name=where, search=search))

    net.observer = observe
    samples = 0
    with torch.no_grad():
        for batch in batches:
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
            if x.ndim != 4 or tuple(x.shape[1:]) != tuple(graph.input_shape):
                raise QuantizationError(
                    f"calibration batch has shape {tuple(x.shape)}, the model takes (N, {graph.input_shape})"
                )
            net(x)
            samples += x.shape[0]
            batch_index += 1
    if samples == 0:
        raise QuantizationError("the calibration set is empty")
    activations = {name: most_frequent(fps) for name, fps in seen.items()}
    weights, biases = parameter_fix_points(graph)
    fix, notes = apply_constraints(graph, FixPoints(activations, weights, biases))
    log.info("calibrated %d tensors on %d samples (%d constraint adjustments)", len(seen), samples, len(notes))
    return fix, samples
