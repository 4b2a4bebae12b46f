"""The Cortex-A53 model's reference counts come from the real network, not from a guess."""

from __future__ import annotations

import onnx
import torch

from dpupose.model.complexity import count_macs
from dpupose.model.export import export_onnx
from dpupose.model.pose import build_model
from dpupose.split.a53 import REFERENCE, file_macs, graph_counts, same_macs


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
    assert file_macs(path) == macs


def test_same_macs_is_within_one_percent_of_the_reference():
    # The one tolerance of bench --plan/--quantized, vai_q prepare --plan, split --xmodel and the study note
    assert same_macs(1010, 1000) and same_macs(990, 1000) and same_macs(1000, 1000)
    assert not same_macs(1011, 1000) and not same_macs(989, 1000)
    # a width-0.5 network against the study's width 1.0 at 224 px (a third of its MACs)
    assert not same_macs(163_000_000, REFERENCE["macs"])
    assert same_macs(0, 0) and not same_macs(2, 0)  # a count of 0 is taken as 1: no division by zero
