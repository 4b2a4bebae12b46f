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


# --- each test below kills changes a mutation audit of the readers made without a test noticing -------------


def _failed_with(values: str | None = None, clocks: dict[str, str] | None = None) -> str:
    """timing_failed.rpt with the Design Timing Summary's value line and some intra-clock WNS replaced."""
    lines = (DATA / "timing_failed.rpt").read_text().splitlines()
    if values is not None:
        at = next(i for i, line in enumerate(lines) if line.startswith("     -0.187      -41.223"))
        lines[at] = values
    for clock, wns in (clocks or {}).items():
        at = next(i for i, line in enumerate(lines) if line.split()[:1] == [clock] and "{" not in line)
        parts = lines[at].split()
        lines[at] = "  ".join([clock, wns, *parts[2:]])
    return "\n".join(lines) + "\n"


def test_every_design_timing_summary_column_is_read_from_its_own_header():
    # twelve different figures: a column read from its neighbour's header gives another number
    values = "     -0.187  -41.223  612  231847  -0.021  -0.350  17  231799  -0.113  -0.452  4  95516"
    t = parse_timing_summary(_failed_with(values))
    got = (t.wns_ns, t.tns_ns, t.tns_failing_endpoints, t.whs_ns, t.ths_ns, t.ths_failing_endpoints, t.wpws_ns)
    assert got == (-0.187, -41.223, 612, -0.021, -0.350, 17, -0.113) and t.tpws_failing_endpoints == 4
    assert t.failure() == (
        "setup WNS -0.187 ns on 612 endpoints (worst clocks: clk_out6_dpu_platform_clk_wiz_0_0 -0.187 ns); "
        "hold WHS -0.021 ns on 17 endpoints; pulse width WPWS -0.113 ns"
    )


def test_the_failure_names_the_three_worst_clocks_worst_first():
    lines = _failed_with(clocks={"clk_pl_0": "-0.050", "clk_out5_dpu_platform_clk_wiz_0_0": "-0.300"}).splitlines()
    at = next(i for i, line in enumerate(lines) if line.split()[:2] == ["clk_out6_dpu_platform_clk_wiz_0_0", "-0.187"])
    lines.insert(at + 1, "    clk_out7_x  -0.010  -0.020  2  100  0.013  0.000  0  100  0.000  0.000  0  10")
    t = parse_timing_summary("\n".join(lines))
    assert t.clocks["clk_out7_x"] == -0.010 and t.clocks["clk_pl_0"] == -0.050
    assert t.failure() == (
        "setup WNS -0.187 ns on 612 endpoints (worst clocks: clk_out5_dpu_platform_clk_wiz_0_0 -0.300 ns, "
        "clk_out6_dpu_platform_clk_wiz_0_0 -0.187 ns, clk_pl_0 -0.050 ns)"
    )


def test_a_timing_summary_cut_short_or_missing_a_value_is_refused_by_name():
    text = (DATA / "timing_failed.rpt").read_text()
    cut = text[: text.index("     -0.187      -41.223")]  # the header and its dashes, then nothing
    with pytest.raises(ArtifactError, match="^timing report: no WNS table in the Design Timing Summary$"):
        parse_timing_summary(cut)
    short = "     -0.187  -41.223  612  231847  0.010  0.000  0  231799  0.000  0.000  0"
    with pytest.raises(ArtifactError, match=r"^timing report: 12 columns but 11 values: '     -0\.187  -41"):
        parse_timing_summary(_failed_with(short))


def test_a_timing_report_without_an_intra_clock_table_has_no_clocks():
    text = (DATA / "timing_failed.rpt").read_text().replace("| Intra Clock Table", "| Other Table")
    t = parse_timing_summary(text)
    assert t.clocks == {} and t.wns_ns == -0.187
    assert t.failure() == "setup WNS -0.187 ns on 612 endpoints"


def test_utilization_figures_with_thousands_separators_and_an_empty_available_cell():
    text = (DATA / "utilization_placed.rpt").read_text()
    text = text.replace("| CLB LUTs                   | 41867 |", "| CLB LUTs                   | 41,867 |")
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("| Block RAM Tile"))
    lines.insert(at + 1, "| URAM              |     0 |     0 |            |           |       |")
    u = parse_utilization("\n".join(lines))
    assert u["lut"].used == 41867 and (u["uram"].used, u["uram"].available, u["uram"].fraction) == (0, 0, 0.0)


def test_utilization_rows_of_another_width_are_passed_over_and_a_table_without_available_is_refused():
    # a row of fewer cells than its table's header (a note, a sub-table) is no resource row
    text = (DATA / "utilization_placed.rpt").read_text()
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("| CLB LUTs "))
    lines.insert(at, "| CLB LUTs | 7 |")
    assert parse_utilization("\n".join(lines))["lut"].used == 41867
    two = "| Site Type | Used |\n| CLB LUTs | 5 |\n"
    with pytest.raises(ArtifactError) as e:
        parse_utilization(two)
    assert str(e.value) == "utilization table without Used/Available columns: ['Site Type', 'Used']"


def test_reports_outside_impl_1_are_found_by_their_second_pattern(tmp_path):
    # the v++ link folder of another layout: the routed reports beside the run, not under prj.runs/impl_1
    (tmp_path / "link" / "reports").mkdir(parents=True)
    util = tmp_path / "link" / "reports" / "dpu_full_util_routed.rpt"
    timing = tmp_path / "link" / "reports" / "dpu_timing_summary_routed.rpt"
    util.write_text("x")
    timing.write_text("x")
    assert find_report(tmp_path, "utilization") == util and find_report(tmp_path, "timing") == timing
    with pytest.raises(ArtifactError) as e:
        find_report(tmp_path / "link" / "elsewhere", "utilization")
    assert str(e.value) == (
        f"no utilization report under {tmp_path / 'link' / 'elsewhere'} "
        "(**/prj.runs/impl_1/*_utilization_placed.rpt or **/*_full_util_routed.rpt)"
    )
