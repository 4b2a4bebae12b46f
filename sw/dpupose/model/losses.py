"""Training losses: Euclidean distance of DSNT coordinates plus a Jensen-Shannon regulariser that pulls
each heatmap towards a Gaussian (sigma in heatmap pixels) at the target joint."""

from __future__ import annotations

import torch
from torch import Tensor

from dpupose.model.dsnt import pixel_centres

EPS = 1e-24


def gaussian_heatmaps(coords: Tensor, height: int, width: int, sigma: float = 1.0) -> Tensor:
    """Normalized 2-D Gaussians centred at normalized coords (N, J, 2) -> (N, J, H, W), each summing to 1."""
    xs = pixel_centres(width, coords.device, coords.dtype)
    ys = pixel_centres(height, coords.device, coords.dtype)
    # sigma is in pixels; one pixel is 2/width normalized units.
    sx = sigma * 2.0 / width
    sy = sigma * 2.0 / height
    gx = torch.exp(-0.5 * ((xs - coords[..., 0:1]) / sx) ** 2)  # (N, J, W)
    gy = torch.exp(-0.5 * ((ys - coords[..., 1:2]) / sy) ** 2)  # (N, J, H)
    g = gy.unsqueeze(-1) * gx.unsqueeze(-2)
    return g / g.sum(dim=(-2, -1), keepdim=True).clamp_min(EPS)


def kl_divergence(p: Tensor, q: Tensor) -> Tensor:
    """KL(p || q) over the last two dims, in nats."""
    return (p * (torch.log(p.clamp_min(EPS)) - torch.log(q.clamp_min(EPS)))).sum(dim=(-2, -1))


def js_divergence(p: Tensor, q: Tensor) -> Tensor:
    """Jensen-Shannon divergence over the last two dims, in nats: 0 for equal maps, at most ln 2."""
    m = 0.5 * (p + q)
    return 0.5 * kl_divergence(p, m) + 0.5 * kl_divergence(q, m)


def euclidean_losses(pred: Tensor, target: Tensor) -> Tensor:
    """Per-joint Euclidean distance (not squared), (N, J, 2) -> (N, J)."""
    return torch.linalg.vector_norm(pred - target, dim=-1)


def pose_loss(
    coords: Tensor,
    heatmaps: Tensor,
    target: Tensor,
    visible: Tensor,
    js_weight: float = 1.0,
    sigma: float = 1.0,
) -> Tensor:
    """Mean over visible joints of Euclidean distance + js_weight * JS(heatmap || Gaussian)."""
    _, _, h, w = heatmaps.shape
    gauss = gaussian_heatmaps(target, h, w, sigma)
    per_joint = euclidean_losses(coords, target) + js_weight * js_divergence(heatmaps, gauss)
    mask = visible.to(per_joint.dtype)
    return (per_joint * mask).sum() / mask.sum().clamp_min(1.0)
