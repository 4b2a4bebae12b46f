"""Flat softmax, DSNT and target Gaussians in numpy: the same arithmetic as dpupose.model.dsnt/losses,
for the board and for metrics. Coordinates normalized to (-1, 1) at pixel centres."""

from __future__ import annotations

import numpy as np


def pixel_centres(n: int) -> np.ndarray:
    return (2 * np.arange(n, dtype=np.float64) + 1) / n - 1


def flat_softmax(logits: np.ndarray) -> np.ndarray:
    n, j, h, w = logits.shape
    flat = logits.reshape(n, j, h * w).astype(np.float64)
    flat = np.exp(flat - flat.max(axis=-1, keepdims=True))
    return (flat / flat.sum(axis=-1, keepdims=True)).reshape(n, j, h, w)


def dsnt(heatmaps: np.ndarray) -> np.ndarray:
    _, _, h, w = heatmaps.shape
    x = (heatmaps.sum(axis=2) * pixel_centres(w)).sum(axis=-1)
    y = (heatmaps.sum(axis=3) * pixel_centres(h)).sum(axis=-1)
    return np.stack([x, y], axis=-1)


def gaussian_heatmaps(coords: np.ndarray, height: int, width: int, sigma: float = 1.0) -> np.ndarray:
    """Normalized Gaussians (sigma in heatmap pixels) at normalized coords (N, J, 2) -> (N, J, H, W)."""
    coords = np.asarray(coords, np.float64)
    gx = np.exp(-0.5 * ((pixel_centres(width) - coords[..., 0:1]) / (sigma * 2.0 / width)) ** 2)
    gy = np.exp(-0.5 * ((pixel_centres(height) - coords[..., 1:2]) / (sigma * 2.0 / height)) ** 2)
    g = gy[..., :, None] * gx[..., None, :]
    return g / np.maximum(g.sum(axis=(-2, -1), keepdims=True), 1e-300)


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence over the last two axes, nats."""
    p = np.asarray(p, np.float64)
    q = np.asarray(q, np.float64)
    m = 0.5 * (p + q)

    def kl(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(a > 0, a * (np.log(np.maximum(a, 1e-300)) - np.log(np.maximum(b, 1e-300))), 0.0)
        return t.sum(axis=(-2, -1))

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)
