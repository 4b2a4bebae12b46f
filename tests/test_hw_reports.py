"""Vivado report readers on small excerpts in the real report_utilization / report_timing_summary format."""

from pathlib import Path

import pytest

from dpupose.errors import ArtifactError
from dpupose.hwbuild.reports import find_report, parse_timing_summary, parse_utilization

DATA = Path(__file__).parent / "data" / "hwbuild"


def test_utilization_reads_used_and_available_by_column_name():
    u = parse_utilization((DATA / "utilization_placed.rpt").read_text())
    assert {k: (v.used, v.available) for k, v in u.items()} == {
        "lut": (41867, 70560),
        "ff": (76652, 141120),
        "bram36": (133.5, 216),  # Block RAM tiles: a RAMB18 counts half
        "dsp": (326, 360),
        "uram": (0, 0),  # the ZU3EG has no URAM row
    }
    assert u["dsp"].fraction == pytest.approx(326 / 360)


def test_utilization_without_the_prohibited_column_and_with_uram():
    text = (DATA / "utilization_placed.rpt").read_text()
    # Older releases have no Prohibited column; URAM devices have a URAM row.
    old = "\n".join(
        "|".join(cells[:4] + cells[5:]) if line.startswith("|") and len(cells := line.split("|")) == 8 else line
        for line in text.splitlines()
    )
    lines = old.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("| Block RAM Tile"))
    lines.insert(at + 1, "| URAM              |    44 |     0 |        64 | 68.75 |")
    old = "\n".join(lines)
    assert "Prohibited" not in old
    u = parse_utilization(old)
    assert u["uram"].used == 44 and u["uram"].available == 64 and u["lut"].used == 41867


def test_utilization_that_is_not_a_report_is_refused():
    with pytest.raises(ArtifactError, match="lacks lut, ff, bram36, dsp"):
        parse_utilization("nothing here\n")


def test_timing_summary_met():
    t = parse_timing_summary((DATA / "timing_met.rpt").read_text())
    assert (t.wns_ns, t.tns_ns, t.whs_ns, t.wpws_ns) == (0.021, 0.0, 0.010, 0.0)
    assert t.tns_failing_endpoints == 0 and t.constraints_met and t.met and t.failure() == ""
    assert t.clocks == {
        "clk_pl_0": 7.081,
        "clk_out5_dpu_platform_clk_wiz_0_0": 0.021,
        "clk_out6_dpu_platform_clk_wiz_0_0": 0.114,
    }


def test_timing_summary_failed_names_the_clock():
    t = parse_timing_summary((DATA / "timing_failed.rpt").read_text())
    assert t.wns_ns == -0.187 and t.tns_failing_endpoints == 612 and not t.met and not t.constraints_met
    assert t.failure() == (
        "setup WNS -0.187 ns on 612 endpoints (worst clocks: clk_out6_dpu_platform_clk_wiz_0_0 -0.187 ns)"
    )


def test_hold_violation_is_a_timing_failure():
    text = (DATA / "timing_met.rpt").read_text()
    line = next(x for x in text.splitlines() if x.startswith("      0.021        0.000"))
    t = parse_timing_summary(text.replace(line, line.replace("0.010", "-0.004", 1)))
    assert not t.met and t.failure() == "hold WHS -0.004 ns on 0 endpoints"


def test_timing_report_with_changed_columns_fails_loudly():
    text = (DATA / "timing_met.rpt").read_text().replace("WNS(ns)", "Slack(ns)")
    with pytest.raises(ArtifactError, match="no WNS table"):
        parse_timing_summary(text)
    with pytest.raises(ArtifactError, match="no 'Design Timing Summary' section"):
        parse_timing_summary("Timing Summary Report\n")


def test_reports_are_found_in_the_v_plus_plus_folder(tmp_path):
    impl = tmp_path / "link/vivado/vpl/prj/prj.runs/impl_1"
    impl.mkdir(parents=True)
    with pytest.raises(ArtifactError, match="no timing report"):
        find_report(tmp_path, "timing")
    (impl / "dpu_platform_wrapper_timing_summary_routed.rpt").write_text("x")
    assert find_report(tmp_path, "timing") == impl / "dpu_platform_wrapper_timing_summary_routed.rpt"
    (impl / "other_timing_summary_routed.rpt").write_text("x")
    with pytest.raises(ArtifactError, match="several timing reports"):
        find_report(tmp_path, "timing")


def test_utilization_reads_the_first_table_s_row_and_a_device_without_a_resource_is_0_used():
    # A later table with a row of the same name (a per-SLR or per-region breakdown) does not replace the
    # summary's figure.
    text = (DATA / "utilization_placed.rpt").read_text()
    text += "\n| Site Type | Used | Fixed | Prohibited | Available | Util% |\n| CLB LUTs | 1 | 0 | 0 | 2 | 50.00 |\n"
    u = parse_utilization(text)
    assert (u["lut"].used, u["lut"].available) == (41867, 70560)
    assert u["uram"].fraction == 0.0 and u["lut"].fraction == pytest.approx(41867 / 70560)


def test_a_negative_pulse_width_slack_alone_fails_timing():
    from dpupose.hwbuild.reports import TimingSummary

    t = TimingSummary(0.1, 0.0, 0, 0.01, 0.0, 0, -0.2, 3, constraints_met=False)
    assert not t.met and t.failure() == "pulse width WPWS -0.200 ns"
    assert TimingSummary(0.0, 0.0, 0, 0.0, 0.0, 0, 0.0, 0, constraints_met=True).met
