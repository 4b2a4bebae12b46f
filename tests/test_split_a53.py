"""The Cortex-A53 model's reference counts come from the real network, not from a guess."""

from __future__ import annotations

import onnx
import torch

from dpupose.model.complexity import count_macs
from dpupose.model.export import export_onnx
from dpupose.model.pose import build_model
from dpupose.split.a53 import REFERENCE, graph_counts


def test_reference_counts_match_a_fresh_export(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = build_model()  # the study's network: 224 x 224, width 1.0
        path = export_onnx(model, torch.zeros(1, 3, 224, 224), tmp_path / "ref.onnx", ["image"], ["coords", "heatmaps"])
        macs = count_macs(model, (3, 224, 224))
    finally:
        torch.set_num_threads(threads)
    counts = graph_counts(onnx.load(str(path)))
    assert counts == REFERENCE
    assert counts["macs"] == macs  # the ONNX count agrees with the torch hooks (~0.49 GMAC, as published)
