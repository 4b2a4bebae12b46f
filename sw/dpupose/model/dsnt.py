"""Flat softmax and DSNT (Nibali et al. 2018), the model's CPU part.

Coordinates are normalized to (-1, 1) at pixel centres: for width n, column j (0-based) has
x = (2j + 1) / n - 1. The same arithmetic is in `dpupose.eval.dsnt_np` (numpy, board side).
"""

from __future__ import annotations

import torch
from torch import Tensor


def pixel_centres(n: int, device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """Normalized coordinates of the n pixel centres along one axis."""
    return (2 * torch.arange(n, device=device, dtype=dtype) + 1) / n - 1


def flat_softmax(logits: Tensor) -> Tensor:
    """Softmax over each (N, J) map's whole H*W plane."""
    n, j, h, w = logits.shape
    return torch.softmax(logits.reshape(n, j, h * w), dim=-1).reshape(n, j, h, w)


def dsnt(heatmaps: Tensor) -> Tensor:
    """Expected (x, y) under each normalized heatmap: (N, J, H, W) -> (N, J, 2)."""
    _, _, h, w = heatmaps.shape
    xs = pixel_centres(w, heatmaps.device, heatmaps.dtype)
    ys = pixel_centres(h, heatmaps.device, heatmaps.dtype)
    x = (heatmaps.sum(dim=2) * xs).sum(dim=-1)
    y = (heatmaps.sum(dim=3) * ys).sum(dim=-1)
    return torch.stack([x, y], dim=-1)
