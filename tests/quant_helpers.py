"""Shared helpers for the quantizer/emulator tests: small pose models with sane activations, checkpoints,
and a hand-written int8 reference of the DPU's arithmetic in exact rationals."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np

from dpupose.eval.prepare import sane_random_model
from dpupose.model.checkpoint import save_checkpoint as _save
from dpupose.model.pose import ModelConfig, PoseNet

# A small network of the real structure: 64 px input, 0.35 width, 32 decoder channels.
TINY = ModelConfig(input_size=64, width_mult=0.35, decoder_channels=32)


def sane_model(cfg: ModelConfig = TINY, seed: int = 0) -> PoseNet:
    """Random weights, BatchNorm statistics measured on random images so activations stay O(1)."""
    return sane_random_model(cfg, seed)


def save_checkpoint(model: PoseNet, path: Path) -> Path:
    """A checkpoint as `dpupose train` writes one (weights only)."""
    return _save({"model": model.state_dict(), "model_config": model.config.to_dict(), "epoch": 3}, path)


# ---- exact reference of the DPU's fixed-point rules, written from their description -------------
def dpu_round(v: Fraction) -> int:
    """Round half toward +infinity, on an exact rational."""
    return math.floor(v + Fraction(1, 2))


def saturate(v: int) -> int:
    return max(-128, min(127, v))


def activate(v: Fraction, act: str, fp_out: int) -> Fraction:
    if act == "relu":
        return max(v, Fraction(0))
    if act == "leaky":
        return v * Fraction(26, 256) if v < 0 else v
    if act == "relu6":
        v = max(v, Fraction(0))
        if fp_out <= 4:
            v = min(v, Fraction(96))
        return v
    return v


def ref_conv(x, w, b, fp_in, fp_w, fp_b, fp_out, stride, pads, dilation, groups, act):
    """Direct loops: int8 x int8 sums, bias aligned at shift_bias with one extra bit, DPURound."""
    n, h, wd, _c = x.shape
    o, cg, kh, kw = w.shape
    top, left, bottom, right = pads
    oh = (h + top + bottom - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + left + right - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    og = o // groups
    out = np.zeros((n, oh, ow, o), dtype=np.int8)
    for ni in range(n):
        for y in range(oh):
            for xx in range(ow):
                for oc in range(o):
                    g = oc // og
                    acc = 0
                    for ci in range(cg):
                        for i in range(kh):
                            for j in range(kw):
                                iy = y * stride[0] + i * dilation[0] - top
                                ix = xx * stride[1] + j * dilation[1] - left
                                if 0 <= iy < h and 0 <= ix < wd:
                                    acc += int(x[ni, iy, ix, g * cg + ci]) * int(w[oc, ci, i, j])
                    shift_cut = fp_in + fp_w - fp_out
                    total = Fraction(2 * acc)
                    if b is not None:
                        shift_bias = fp_in + fp_w - fp_b
                        total += Fraction(int(b[oc]) * 2) * Fraction(2) ** shift_bias // 1
                    v = total / Fraction(2) ** (shift_cut + 1)
                    out[ni, y, xx, oc] = saturate(dpu_round(activate(v, act, fp_out)))
    return out


def ref_add(xs, fps, fp_out, act):
    lo = min(fps)
    out = np.zeros(xs[0].shape, dtype=np.int8)
    for idx in np.ndindex(xs[0].shape):
        total = sum((Fraction(int(x[idx]) * 4) / Fraction(2) ** (fp - lo)) // 1 for x, fp in zip(xs, fps))
        v = Fraction(total) / Fraction(2) ** (lo - fp_out + 2)
        out[idx] = saturate(dpu_round(activate(v, act, fp_out)))
    return out


def rand_int8(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(-128, 128, size=shape, dtype=np.int16).astype(np.int8)
