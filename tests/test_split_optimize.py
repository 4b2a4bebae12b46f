"""The cut optimizer and the cost model on cases computed by hand, and the Cortex-A53 model's calibration."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import onnx
import pytest
from split_models import build, conv_heatmaps_model, op_model, save

from dpupose.dpu.config import load_config
from dpupose.split.a53 import REFERENCE, STUDY_FPS_FP32, STUDY_FPS_INT8, A53Model, calibrate
from dpupose.split.assign import assign, group
from dpupose.split.compare import best_split_per_config
from dpupose.split.cost import Prediction, boundary_s, predict, unit_dpu_ms
from dpupose.split.graph import analyze
from dpupose.split.optimize import (
    ALL_CPU,
    RULES_ONLY,
    SHUFFLE_SUFFIX,
    Candidate,
    best,
    candidates,
    format_candidates,
)

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


def _fake(label: str, dpu_ms: float, cpu_ms: float, devices: str) -> Candidate:
    """A candidate of predicted stage times whose subgraphs' devices are `devices` ("dc": dpu0 then cpu0)."""
    groups = [SimpleNamespace(device={"d": "dpu", "c": "cpu"}[d], name=f"{d}{i}") for i, d in enumerate(devices)]
    return Candidate(label, {}, None, groups, Prediction(dpu_ms, cpu_ms, 0.0))


def test_best_takes_ties_at_the_tolerance_s_edge_then_higher_fps_then_less_time():
    # 100 FPS (10 ms) in two subgraphs, 50 FPS (20 ms) in one: 100 * (1 - 0.5) = 50 is a tie, the one subgraph wins
    two, one = _fake("two", 10.0, 1.0, "dc"), _fake("one", 20.0, 1.0, "d")
    assert best([two, one], tolerance=0.5) is one
    assert (two.chosen, one.chosen) == (False, True)
    assert best([two, one], tolerance=0.49) is two and (two.chosen, one.chosen) == (True, False)
    # the default tolerance is 1%: 99.5 FPS in one subgraph is a tie with 100 in two, 98 FPS is not
    assert best([two, _fake("99.5", 1000 / 99.5, 1.0, "d")]).label == "99.5"
    assert best([two, _fake("98", 1000 / 98, 1.0, "d")]) is two
    # as many subgraphs: the higher FPS, then the lower DPU + CPU time (the sequential FPS)
    assert best([_fake("99.5", 1000 / 99.5, 1.0, "dc"), two]) is two
    slower = _fake("10 + 5 ms", 10.0, 5.0, "dc")
    assert best([slower, two]) is two and best([two, slower]) is two


def test_candidates_weigh_the_pixel_shuffle_on_the_cpu_and_keep_each_assignment_once():
    g = analyze(op_model("depth_to_space"))
    units = {u.name: u.index for u in g.units}
    assert list(units) == ["conv1", "mid", "conv3", "head/flatten", "head/softmax", "head/heatmaps", "head/dsnt"]
    user = "the user's own reason"
    cands = candidates(g, CFG, {units["head/dsnt"]: user}, dict.fromkeys(units.values(), 1.0), _cpu_only_macs())
    # the shuffle moved to the CPU after each cut gives an assignment weighed already (the cut at conv3 with it is
    # the cut at mid), so only the rules alone come again with it
    labels = [c.label for c in cands]
    assert labels == [RULES_ONLY, ALL_CPU, "CPU from mid", "CPU from conv3", RULES_ONLY + SHUFFLE_SUFFIX]
    forced = {c.label: c.forced for c in cands}
    assert forced[RULES_ONLY] == {units["head/dsnt"]: user}
    assert forced[RULES_ONLY + SHUFFLE_SUFFIX] == {
        units["mid"]: "pixel shuffle on the CPU (optimizer candidate)",
        units["head/dsnt"]: user,
    }
    cut = "after the cut --optimize chose at mid (as --cpu-from mid)"
    assert forced["CPU from mid"] == {i: (user if name == "head/dsnt" else cut) for name, i in units.items() if i}
    assert set(forced[ALL_CPU]) == set(units.values()) and forced[ALL_CPU][units["head/dsnt"]] == user
    shuffled = cands[-1]
    assert [(grp.name, grp.device) for grp in shuffled.groups] == [
        ("dpu0", "dpu"), ("cpu0", "cpu"), ("dpu1", "dpu"), ("cpu1", "cpu")
    ]  # fmt: skip
    assert (shuffled.dpu_subgraphs, shuffled.cpu_subgraphs) == (2, 2)
    assert (cands[1].dpu_subgraphs, cands[1].cpu_subgraphs) == (0, 1)
    assert best(cands) is shuffled
    d = shuffled.to_dict()
    assert (d["label"], d["chosen"], d["subgraphs"]) == (
        RULES_ONLY + SHUFFLE_SUFFIX,
        True,
        ["dpu0", "cpu0", "dpu1", "cpu1"],
    )
    assert cands[0].to_dict()["chosen"] is False
    # By hand: 1 ms per DPU unit; on the CPU conv1 3 ms, conv3 (the shuffle's 2 x 16 x 16 to 16 x 16 x 16, 18 taps:
    # 73728 MACs) 16 ms, the DSNT MatMul ((16, 256) by (256, 2): 8192 MACs) 1.778 ms. Pipelined FPS = 1000 / max(DPU,
    # CPU), sequential 1000 / (DPU + CPU).
    assert format_candidates(cands).splitlines() == [
        "candidates weighed (all times and FPS predicted for the board):",
        "  candidate                              subgraphs    DPU ms    CPU ms  pipelined FPS  sequential FPS",
        "  rules only                             1 DPU 1 CPU     3.000     1.778          333.3           209.3",
        "  all on the CPU                         0 DPU 1 CPU     0.000    20.778           48.1            48.1",
        "  CPU from mid                           1 DPU 1 CPU     1.000    17.778           56.2            53.3",
        "  CPU from conv3                         1 DPU 1 CPU     2.000    17.778           56.2            50.6",
        "* rules only + pixel shuffle on the CPU  2 DPU 2 CPU     2.000     1.778          500.0           264.7",
        "* chosen: highest predicted pipelined FPS (within 1%: the fewest subgraphs)",
    ]


def test_the_candidates_table_is_as_wide_as_its_heading_for_short_labels():
    table = format_candidates([_fake("a", 1.0, 2.0, "dc")]).splitlines()
    assert table[1].startswith("  candidate  subgraphs ") and table[2].startswith("  a          1 DPU 1 CPU ")


def test_a_cut_is_named_after_the_dpu_unit_it_starts_at_not_a_cpu_unit_before_it():
    # conv1 -> sigmoid (CPU) -> conv2 -> conv3: a cut at the sigmoid would move the same units as the cut at conv2
    g = analyze(build("sigmoid"))
    cands = candidates(g, CFG, {}, {}, _cpu_only_macs())
    assert [c.label for c in cands] == [RULES_ONLY, ALL_CPU, "CPU from conv2", "CPU from conv3"]
    assert set(cands[2].forced.values()) == {"after the cut --optimize chose at conv2 (as --cpu-from conv2)"}


def test_each_configuration_s_best_split_on_its_own_board_with_the_a53_model_given(tmp_path):
    model = save("none", tmp_path / "m.onnx")
    shipped = Path(__file__).resolve().parents[1] / "hw" / "dpu" / "configs" / "u96v2-b2304-dsphigh.toml"
    zcu104 = tmp_path / "zcu104-b2304.toml"  # the B2304 with DSP high that the Ultra96-V2 cannot hold, on a ZCU104
    zcu104.write_text(shipped.read_text().replace('board = "ultra96v2"', 'board = "zcu104"'))
    configs = ["u96v2-b2304-dsphigh", str(zcu104), "u96v2-b1600-300mhz"]
    zcu = "Xilinx ZCU104"
    slow = A53Model(1e3, 1e3, node_overhead_s=0.0, copy_bandwidth=INF, dpu_job_overhead_s=0.0, element_ops_rate=INF)
    rows = best_split_per_config(model, configs, slow)
    assert [(r["config"], r["arch"], r["clock_mhz"], r["fits"], r["reasons"], r["risks"]) for r in rows] == [
        ("u96v2-b2304-dsphigh", "B2304", 200, False, ["DSP 438 > 360 available"], []),
        ("zcu104-b2304", "B2304", 200, True, [], [f"clock: 200 MHz is not a DPU clock known to work on the {zcu}"]),
        (
            "u96v2-b1600-300mhz", "B1600", 300, True, [],
            [
                "power: 300/600 MHz is above the 200 MHz known safe on the Avnet Ultra96-V2",
                "tight: DSP above 85% (placement and timing harder)",
            ],
        ),
    ]  # fmt: skip
    # A CPU of 1000 MAC/s: the rules alone, the DSNT MatMul's 512 MACs on the CPU, 512 ms, 1.95 FPS
    for r in rows:
        assert (r["cut"], r["subgraphs"], r["cpu_ms"], r["pipelined_fps"]) == (
            RULES_ONLY,
            ["dpu0", "cpu0"],
            512.0,
            1.95,
        )
        assert 0 < r["dpu_ms"] < 1
    # an infinitely fast one: everything on the CPU, the best candidate, not the first weighed (the rules alone)
    fast = A53Model(INF, INF, node_overhead_s=0.0, copy_bandwidth=INF, dpu_job_overhead_s=0.0, element_ops_rate=INF)
    for r in best_split_per_config(model, configs, fast):
        assert (r["cut"], r["subgraphs"], r["dpu_ms"], r["cpu_ms"]) == (ALL_CPU, ["cpu0"], 0.0, 0.0)
