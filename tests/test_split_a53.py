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


def test_graph_counts_a_hand_made_graph_by_hand():
    """Each op's counts worked by hand: a 3 x 3 conv's MACs per output element, a transposed conv's per input
    element, one element op per output of a Relu and an Add; no node for an Identity or a Constant node, and
    nothing for a Mul of two constants (ONNX Runtime folds it before the run)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    inits = [
        numpy_helper.from_array(np.zeros((8, 4, 3, 3), np.float32), "w"),
        numpy_helper.from_array(np.zeros((8, 4, 2, 2), np.float32), "wt"),
        numpy_helper.from_array(np.ones((1, 4, 1, 1), np.float32), "c1"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),  # (1, 8, 8, 8)
        helper.make_node("Relu", ["y"], ["r"]),
        helper.make_node("Identity", ["r"], ["i"]),
        helper.make_node("ConvTranspose", ["i", "wt"], ["t"], kernel_shape=[2, 2], strides=[2, 2]),  # (1, 4, 16, 16)
        helper.make_node("Constant", [], ["c2"], value=numpy_helper.from_array(np.ones((1, 4, 1, 1), np.float32))),
        helper.make_node("Mul", ["c1", "c2"], ["c3"]),  # constants only: folded
        helper.make_node("Add", ["t", "c3"], ["out"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4, 16, 16])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    conv = (8 * 8 * 8) * (4 * 3 * 3)  # 512 outputs of 36 taps each
    transposed = (8 * 8 * 8) * (4 * 2 * 2)  # each of the 512 input elements spreads over 4 channels x 2 x 2
    assert graph_counts(model) == {"macs": conv + transposed, "element_ops": 512 + 1024, "nodes": 4}


def test_the_copy_bandwidth_is_the_boards_ddr_at_the_fitted_efficiency():
    """Ultra96-V2: 32-bit LPDDR4 at 1066 MT/s, about 4.26 GB/s, times the DPU performance model's DDR
    efficiency (the A53 model's default of 3.61 GB/s is that product, rounded)."""
    import pytest

    from dpupose.dpu.perf import load_constants
    from dpupose.split.a53 import A53Model, calibrate, default_copy_bandwidth

    eff = load_constants().ddr_efficiency
    assert 0.5 < eff < 1
    assert default_copy_bandwidth() == pytest.approx(4 * 1066e6 * eff, rel=2e-3)
    assert default_copy_bandwidth() == pytest.approx(A53Model(1.0, 1.0).copy_bandwidth, rel=2e-3)
    assert calibrate().copy_bandwidth == default_copy_bandwidth()
    assert calibrate(copy_bandwidth=1e9).copy_bandwidth == 1e9


def test_a_models_infinite_rates_are_written_as_null():
    """plan.json's metadata records the A53 model (split's a53_model): an infinite rate, as the tests' and a
    hand-made model's, is written as null, its finite figures as they are."""
    import json
    import math

    from dpupose.split.a53 import A53Model

    a53 = A53Model(math.inf, 2e9, 0.0, copy_bandwidth=math.inf, dpu_job_overhead_s=1e-4, element_ops_rate=None)
    doc = a53.to_dict()
    assert doc == {
        "mac_rate_fp32": None,
        "mac_rate_int8": 2e9,
        "node_overhead_s": 0.0,
        "copy_bandwidth": None,
        "dpu_job_overhead_s": 1e-4,
        "element_ops_rate": None,
    }
    json.dumps(doc, allow_nan=False)


def test_a_matmul_of_an_unknown_input_shape_is_costed_per_output_element():
    """Without its input's shape a MAC op's multiply-accumulates are not known: it is costed as one element op
    per output element (and one node), not as free; an op of no known shape at all as one element."""
    from types import SimpleNamespace

    from dpupose.split.a53 import node_counts

    matmul = SimpleNamespace(op_type="MatMul", input=["a", "w"], output=["y"])
    assert node_counts(matmul, {"w": (37, 25), "y": (1, 4, 25)}) == (0, 100, 1)
    assert node_counts(matmul, {"a": (1, 4, 37), "w": (37, 25), "y": (1, 4, 25)}) == (100 * 37, 0, 1)
    assert node_counts(matmul, {}) == (0, 1, 1)
    sigmoid = SimpleNamespace(op_type="Sigmoid", input=["a"], output=["y"])
    assert node_counts(sigmoid, {"y": (1, 4, 25)}) == (0, 10 * 100, 1)  # OPS_PER_ELEMENT: 10 a sigmoid
