"""Metrics against hand-computed values; the numpy DSNT against the torch one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dpupose.eval import dsnt_np
from dpupose.eval.metrics import MetricAccumulator, format_table
from dpupose.model import dsnt as dsnt_torch
from dpupose.model.losses import gaussian_heatmaps as gauss_torch
from dpupose.model.losses import js_divergence as js_torch


def test_numpy_head_matches_torch_head():
    logits = np.random.default_rng(0).normal(size=(2, 16, 14, 10)).astype(np.float32)
    hm_np = dsnt_np.flat_softmax(logits)
    hm_t = dsnt_torch.flat_softmax(torch.from_numpy(logits))
    assert np.allclose(hm_np, hm_t.numpy(), atol=1e-6)
    assert np.allclose(dsnt_np.dsnt(hm_np), dsnt_torch.dsnt(hm_t).numpy(), atol=1e-6)
    target = np.random.default_rng(1).uniform(-0.9, 0.9, (2, 16, 2))
    g_np = dsnt_np.gaussian_heatmaps(target, 14, 10)
    g_t = gauss_torch(torch.from_numpy(target), 14, 10).numpy()
    assert np.allclose(g_np, g_t, atol=1e-9)
    assert np.allclose(dsnt_np.js_divergence(hm_np, g_np), js_torch(hm_t.double(), torch.from_numpy(g_t)).numpy(),
                       atol=1e-9)  # fmt: skip


def test_pckh_euclidean_and_pixels_by_hand():
    size = 100  # one normalized unit = 50 input pixels
    target = np.zeros((2, 16, 2))
    coords = np.zeros((2, 16, 2))
    coords[0, :, 0] = 0.1  # 5 px off: correct when head size >= 10 px
    coords[1, :, 0] = 0.3  # 15 px off
    visible = np.ones((2, 16), bool)
    visible[1, 0] = False  # not annotated: ignored everywhere
    heads = np.array([12.0, 20.0])  # thresholds 6 px and 10 px
    hm = dsnt_np.gaussian_heatmaps(target, 8, 8)
    acc = MetricAccumulator(size)
    acc.add(coords, hm, target, visible, heads)
    s = acc.summary()
    n0, n1 = 16, 15
    assert s["euclidean"] == pytest.approx((0.1 * n0 + 0.3 * n1) / (n0 + n1))
    assert s["euclidean_px"] == pytest.approx(s["euclidean"] * 50)
    # Sample 0 all correct, sample 1 all wrong; the mean leaves out pelvis and thorax of both.
    assert s["pckh@0.5"] == pytest.approx(14 / (14 + 13))
    assert s["pckh@0.5_all_joints"] == pytest.approx(16 / 31)
    assert s["jsd"] == pytest.approx(0.0, abs=1e-12)  # predicted maps equal the target Gaussians
    assert s["per_joint"][0]["count"] == 1 and s["per_joint"][0]["pckh@0.5"] == 1.0
    assert "PCKh@0.5 0.519" in format_table(s)


def test_unknown_head_size_is_left_out_of_pckh():
    acc = MetricAccumulator(64)
    acc.add(np.zeros((1, 16, 2)), dsnt_np.gaussian_heatmaps(np.zeros((1, 16, 2)), 4, 4), np.zeros((1, 16, 2)),
            np.ones((1, 16)), np.array([-1.0]))  # fmt: skip
    s = acc.summary()
    assert s["pckh@0.5"] is None and s["euclidean"] == 0.0
    with pytest.raises(ValueError, match="no samples"):
        MetricAccumulator(64).summary()
