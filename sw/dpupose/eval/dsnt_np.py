"""Flat softmax, DSNT and target Gaussians in numpy: the same arithmetic as dpupose.model.dsnt/losses,
for the board and for metrics. Coordinates normalized to (-1, 1) at pixel centres.

Two ways to read coordinates off the heatmaps (DECODERS, the `--decode` of `dpupose eval` and `run`):
- "dsnt": the expected position under the whole heatmap, what the network is trained for and what its CPU
  part outputs;
- "local": the expected position under the heatmap restricted to the (2r+1) x (2r+1) window around its
  maximum (r = LOCAL_RADIUS, clipped at the border). When the network is unsure between two places (an
  elbow near the shoulder or the wrist), DSNT lands between them and misses both; the local mean stays on
  the stronger one. For a single peak that fits in the window the two agree.
"""

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


LOCAL_RADIUS = 4  # heatmap pixels each side of the maximum: a 9 x 9 window (16 input pixels at stride 4)
DECODERS = ("dsnt", "local")


def local_dsnt(heatmaps: np.ndarray, radius: int = LOCAL_RADIUS) -> np.ndarray:
    """(N, J, H, W) heatmaps -> (N, J, 2): DSNT over the window of `radius` pixels around each map's
    maximum (first maximum in row-major order), the window's mass renormalized to 1. A map with no mass
    in its window (all zero) gives the centre of its maximum pixel."""
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    hm = np.asarray(heatmaps, np.float64)
    n, j, h, w = hm.shape
    mode = hm.reshape(n, j, h * w).argmax(axis=-1)
    my, mx = np.divmod(mode, w)
    # Gather each map's window from a zero-padded copy: (N, J, 2r+1, 2r+1), zeros outside the map.
    padded = np.pad(hm, ((0, 0), (0, 0), (radius, radius), (radius, radius)))
    offsets = np.arange(2 * radius + 1)
    rows = my[..., None] + offsets  # padded row indices of the window (N, J, 2r+1)
    cols = mx[..., None] + offsets
    ni = np.arange(n)[:, None, None, None]
    ji = np.arange(j)[None, :, None, None]
    win = padded[ni, ji, rows[..., :, None], cols[..., None, :]]
    mass = win.sum(axis=(2, 3))
    xs = (2 * (cols - radius) + 1) / w - 1  # normalized centres of the window's columns and rows
    ys = (2 * (rows - radius) + 1) / h - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        x = (win.sum(axis=2) * xs).sum(axis=-1) / mass
        y = (win.sum(axis=3) * ys).sum(axis=-1) / mass
    empty = ~(mass > 0)
    x = np.where(empty, pixel_centres(w)[mx], x)
    y = np.where(empty, pixel_centres(h)[my], y)
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
