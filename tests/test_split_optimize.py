"""The cut optimizer and the cost model on cases computed by hand, and the Cortex-A53 model's calibration."""

from __future__ import annotations

import math
from types import SimpleNamespace

import onnx
import pytest
from split_models import build, conv_heatmaps_model

from dpupose.dpu.config import load_config
from dpupose.split.a53 import REFERENCE, STUDY_FPS_FP32, STUDY_FPS_INT8, A53Model, calibrate
from dpupose.split.assign import assign, group
from dpupose.split.cost import Prediction, boundary_s, predict, unit_dpu_ms
from dpupose.split.graph import analyze
from dpupose.split.optimize import ALL_CPU, RULES_ONLY, best, candidates, format_candidates

CFG = load_config("u96v2-b1600-pynq")
INF = math.inf

# MACs of the test network's convs (split_models: 16 x 16 input):
# conv1 3->8 3x3 s2: 8*8*8 outputs x 27 taps; conv2 8->8 3x3: 8*8*8 x 72; conv3 8->16 3x3 s2: 16*4*4 x 72;
# the DSNT MatMul (1, 16, 16) x (16, 2): 32 outputs x 16.
MACS = {"conv1": 13824, "conv2": 36864, "conv3": 18432, "head/dsnt": 512}
RATE = 4608e3  # MAC/s: conv1 3 ms, conv2 8 ms, conv3 4 ms, head 0.111 ms on the "CPU"


def _cpu_only_macs() -> A53Model:
    """An A53 model that charges MACs only (no element ops, dispatch, transfers or DPU job overhead)."""
    return A53Model(RATE, RATE, node_overhead_s=0.0, copy_bandwidth=INF, dpu_job_overhead_s=0.0, element_ops_rate=INF)


def test_graph_macs_are_the_hand_counts():
    g = analyze(build("none"))
    assert {u.name: g.macs(u) for u in g.units if g.macs(u)} == MACS
    # a transposed conv: each of its input's 8 x 8 x 8 values is spread over 8 channels x 4 x 4 taps (the
    # output's 16 x 16 x 8 values would count each tap 4 times)
    g = analyze(build("deconv"))
    assert g.macs(next(u for u in g.units if u.name == "mid/deconv")) == 8 * 8 * 8 * (8 * 4 * 4)


def test_optimizer_picks_the_cut_computed_by_hand():
    g = analyze(build("none"))
    units = {u.name: u.index for u in g.units}
    dpu_ms = {units["conv1"]: 2.0, units["conv2"]: 2.0, units["conv3"]: 2.0}
    cands = candidates(g, CFG, {}, dpu_ms, _cpu_only_macs())
    head = MACS["head/dsnt"] / RATE * 1e3
    # By hand: (DPU ms, CPU ms) per cut; pipelined FPS = 1000 / max.
    expected = {
        RULES_ONLY: (6.0, head),
        ALL_CPU: (0.0, 15.0 + head),
        "CPU from conv2": (2.0, 12.0 + head),
        "CPU from conv3": (4.0, 4.0 + head),
    }
    assert {c.label for c in cands} == set(expected)
    for c in cands:
        dpu, cpu = expected[c.label]
        assert c.prediction.dpu_ms == pytest.approx(dpu)
        assert c.prediction.cpu_ms == pytest.approx(cpu)
        assert c.prediction.pipelined_fps == pytest.approx(1000 / max(dpu, cpu))
        assert c.prediction.sequential_fps == pytest.approx(1000 / (dpu + cpu))
    chosen = best(cands)
    assert chosen.label == "CPU from conv3"  # 1000 / 4.111 = 243 FPS, vs 167 for the rules alone
    assert [c.chosen for c in cands].count(True) == 1
    table = format_candidates(cands)
    assert "* CPU from conv3" in table and "predicted" in table
    # With a slower CPU the rules alone win: conv3 on the CPU would take 8 ms > 6 ms on the DPU.
    slow = A53Model(RATE / 2, RATE / 2, 0.0, INF, 0.0, INF)
    assert best(candidates(g, CFG, {}, dpu_ms, slow)).label == RULES_ONLY


def test_ties_within_tolerance_go_to_fewer_subgraphs():
    g = analyze(build("sigmoid"))
    units = {u.name: u.index for u in g.units}
    # conv1 dominates the DPU time, so moving conv2/conv3 to the CPU changes little but removes subgraphs.
    dpu_ms = {units["conv1"]: 10.0, units["conv2"]: 0.01, units["conv3"]: 0.01}
    cands = candidates(g, CFG, {}, dpu_ms, _cpu_only_macs())
    chosen = best(cands)
    top = max(c.prediction.pipelined_fps for c in cands)
    assert chosen.prediction.pipelined_fps >= 0.99 * top
    assert len(chosen.groups) == min(len(c.groups) for c in cands if c.prediction.pipelined_fps >= 0.99 * top)


def test_boundaries_cost_conversions_and_transfers():
    g = analyze(build("none"))
    units = {u.name: u.index for u in g.units}
    a53 = A53Model(INF, INF, 0.0, copy_bandwidth=1e9, dpu_job_overhead_s=0.0, element_ops_rate=1e9)
    (c,) = [c for c in candidates(g, CFG, {}, {units["conv1"]: 1.0}, a53) if c.label == RULES_ONLY]
    # logits (16*4*4 = 256 int8 -> float: 3 ops + 5 bytes each), at 1e9 ops/s and 1e9 bytes/s; the head's
    # element ops come on top. The image, read by dpu0 alone, is made int8 by pre-processing: no conversion.
    boundary_ms = (256 * 3 + 256 * 5) / 1e9 * 1e3
    assert c.prediction.boundary_ms == pytest.approx(boundary_ms)


def test_a53_calibration_reproduces_the_study_rows():
    a53 = calibrate()
    macs, ops, nodes = REFERENCE["macs"], REFERENCE["element_ops"], REFERENCE["nodes"]
    assert a53.compute_s(macs, ops, nodes) == pytest.approx(1 / STUDY_FPS_FP32)
    assert a53.compute_s(macs, ops, nodes, int8=True) == pytest.approx(1 / STUDY_FPS_INT8)
    # Effective rates: well below the NEON peak (19.2 GMAC/s), INT8 faster than FP32.
    assert 1.0e9 < a53.mac_rate_fp32 < a53.mac_rate_int8 < 19.2e9
    assert a53.mac_rate_fp32 == pytest.approx(1.567e9, rel=1e-3)
    assert a53.mac_rate_int8 == pytest.approx(3.808e9, rel=1e-3)


def test_a_prediction_is_written_to_four_decimals_and_its_fps_to_two():
    p = Prediction(1.23456, 2.34567, 0.5, {"dpu0": 1.23456})
    assert p.to_dict() == {
        "predicted": True,
        "dpu_ms": 1.2346,
        "cpu_ms": 2.3457,
        "boundary_ms": 0.5,
        "pipelined_fps": 426.32,  # 1000 / 2.34567
        "sequential_fps": 279.31,  # 1000 / (1.23456 + 2.34567)
        "subgraph_ms": {"dpu0": 1.2346},
    }
    assert Prediction(0.0, 0.0, 0.0).pipelined_fps == INF


def test_a_unit_s_dpu_time_sums_its_layers_over_every_estimate():
    """A unit's layers (its op and fused activation) in every DPU subgraph's estimate that lists them."""
    g = analyze(build("none"))

    def est(**rows: float) -> SimpleNamespace:
        return SimpleNamespace(layers=[SimpleNamespace(name=k.replace("__", "/"), time_ms=v) for k, v in rows.items()])

    ms = unit_dpu_ms(g, [est(conv1=1.0, conv1__relu=0.25, conv2=2.0), est(conv1=0.5, conv3=4.0)])
    by_name = {u.name: ms[u.index] for u in g.units}
    assert (by_name["conv1"], by_name["conv2"], by_name["conv3"], by_name["head/dsnt"]) == (1.75, 2.0, 4.0, 0.0)


def test_cpu_int8_costs_the_cpu_subgraphs_macs_at_the_int8_rate():
    g = analyze(build("none"))
    a53 = A53Model(RATE, 4 * RATE, 0.0, copy_bandwidth=INF, dpu_job_overhead_s=0.0, element_ops_rate=INF)
    (everything,) = [c for c in candidates(g, CFG, {}, {}, a53) if c.label == ALL_CPU]
    macs = sum(MACS.values())
    assert predict(g, everything.groups, {}, a53).cpu_ms == pytest.approx(macs / RATE * 1e3)
    assert predict(g, everything.groups, {}, a53, cpu_int8=True).cpu_ms == pytest.approx(macs / (4 * RATE) * 1e3)


def test_a_dpu_output_that_is_a_model_output_is_converted_for_the_caller(tmp_path):
    g = analyze(onnx.load(str(conv_heatmaps_model(tmp_path / "m.onnx"))))
    groups = group(g, assign(g, CFG))
    assert [(grp.device, grp.outputs) for grp in groups] == [("dpu", ["logits"]), ("cpu", ["coords"])]
    a53 = A53Model(INF, INF, 0.0, copy_bandwidth=1e9, dpu_job_overhead_s=0.0, element_ops_rate=1e9)
    # logits out (256 int8 -> float: 3 ops + 5 bytes), converted as the executor does: once for cpu0, which
    # reads them, whose float copy the caller gets (the heatmaps); the image, read by dpu0 alone, costs none
    # (made int8 by pre-processing)
    logits = (256 * 3 + 256 * 5) / 1e9
    assert boundary_s(g, groups, a53) == pytest.approx(logits)
    # read by no CPU subgraph, the heatmaps still leave the DPU as float32 for the caller
    assert boundary_s(g, groups[:1], a53) == pytest.approx(logits)
