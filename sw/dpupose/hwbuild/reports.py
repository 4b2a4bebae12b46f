"""Readers for Vivado's text reports: ``report_utilization`` and ``report_timing_summary``.

Both read the report tables by their column headers (Vivado adds columns between releases, e.g.
"Prohibited" in the utilization tables), so a changed layout fails loudly instead of reading the wrong
number. The link step's reports are found under the v++ temporary folder.

API:
    parse_utilization(text) -> dict[str, Usage]         keys lut, ff, bram36, uram, dsp
    parse_timing_summary(text) -> TimingSummary
    find_report(link_dir, kind) -> Path                  kind "timing" or "utilization"
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from dpupose.errors import ArtifactError

# Utilization row names per resource (UltraScale+ first, 7-series names as fallbacks).
_UTIL_ROWS: dict[str, tuple[str, ...]] = {
    "lut": ("CLB LUTs", "Slice LUTs"),
    "ff": ("CLB Registers", "Slice Registers"),
    "bram36": ("Block RAM Tile",),
    "uram": ("URAM",),
    "dsp": ("DSPs",),
}
_REPORT_GLOBS = {
    "timing": ("**/prj.runs/impl_1/*_timing_summary_routed.rpt", "**/*timing_summary_routed.rpt"),
    "utilization": ("**/prj.runs/impl_1/*_utilization_placed.rpt", "**/*_full_util_routed.rpt"),
}


@dataclass(frozen=True)
class Usage:
    used: float
    available: float

    @property
    def fraction(self) -> float:
        return self.used / self.available if self.available else 0.0


def _number(text: str, what: str) -> float:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        raise ArtifactError(f"{what}: {text!r} is not a number") from None


def _table_rows(text: str) -> list[list[str]]:
    """Rows of every '| a | b |' table line, cells stripped, keeping the first cell's indentation out."""
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and line.rstrip().endswith("|") and line.count("|") >= 3:
            rows.append([cell.strip() for cell in line.strip()[1:-1].split("|")])
    return rows


def parse_utilization(text: str) -> dict[str, Usage]:
    """Used and available LUT, FF, BRAM36 tiles, URAM and DSP from a report_utilization text report."""
    found: dict[str, Usage] = {}
    header: list[str] | None = None
    for row in _table_rows(text):
        if row and row[0] == "Site Type":
            header = row
            continue
        if header is None or len(row) != len(header):
            continue
        for key, names in _UTIL_ROWS.items():
            if row[0] in names and key not in found:
                try:
                    used, avail = row[header.index("Used")], row[header.index("Available")]
                except ValueError:
                    raise ArtifactError(f"utilization table without Used/Available columns: {header}") from None
                found[key] = Usage(_number(used, row[0]), _number(avail or "0", row[0]))
    missing = [k for k in ("lut", "ff", "bram36", "dsp") if k not in found]
    if missing:
        raise ArtifactError(f"utilization report lacks {', '.join(missing)}; is it a report_utilization output?")
    found.setdefault("uram", Usage(0, 0))  # devices without UltraRAM have no URAM row
    return found


@dataclass(frozen=True)
class TimingSummary:
    wns_ns: float  # worst negative slack, setup
    tns_ns: float
    tns_failing_endpoints: int
    whs_ns: float  # worst hold slack
    ths_ns: float
    ths_failing_endpoints: int
    wpws_ns: float  # worst pulse width slack
    tpws_failing_endpoints: int
    constraints_met: bool  # Vivado's own sentence: "All user specified timing constraints are met."
    clocks: dict[str, float] = field(default_factory=dict)  # intra-clock WNS per clock

    @property
    def met(self) -> bool:
        return self.wns_ns >= 0 and self.whs_ns >= 0 and self.wpws_ns >= 0

    def failure(self) -> str:
        """Why timing is not met ('' if it is)."""
        parts = []
        if self.wns_ns < 0:
            worst = sorted((v, k) for k, v in self.clocks.items() if v < 0)
            where = f" (worst clocks: {', '.join(f'{k} {v:.3f} ns' for v, k in worst[:3])})" if worst else ""
            parts.append(f"setup WNS {self.wns_ns:.3f} ns on {self.tns_failing_endpoints} endpoints{where}")
        if self.whs_ns < 0:
            parts.append(f"hold WHS {self.whs_ns:.3f} ns on {self.ths_failing_endpoints} endpoints")
        if self.wpws_ns < 0:
            parts.append(f"pulse width WPWS {self.wpws_ns:.3f} ns")
        return "; ".join(parts)


def _section(text: str, title: str) -> list[str]:
    """The lines of a '| <title>' section of a timing summary, up to the next section banner."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == f"| {title}":
            body = []
            for following in lines[i + 3 :]:
                if following.startswith("| ") or (following.startswith("-" * 20) and body):
                    break
                body.append(following)
            return body
    raise ArtifactError(f"timing report has no '{title}' section; is it a report_timing_summary output?")


def _columns(header: str) -> list[str]:
    return re.split(r"\s{2,}", header.strip())


def parse_timing_summary(text: str) -> TimingSummary:
    """The Design Timing Summary (and per-clock WNS) of a report_timing_summary text report."""
    body = [line for line in _section(text, "Design Timing Summary") if line.strip()]
    head = next((i for i, line in enumerate(body) if "WNS(ns)" in line), None)
    if head is None or head + 2 >= len(body):
        raise ArtifactError("timing report: no WNS table in the Design Timing Summary")
    names = _columns(body[head])
    values = body[head + 2].split()
    if len(values) != len(names):
        raise ArtifactError(f"timing report: {len(names)} columns but {len(values)} values: {body[head + 2]!r}")
    row = dict(zip(names, values))
    try:
        summary = {
            "wns_ns": _number(row["WNS(ns)"], "WNS"),
            "tns_ns": _number(row["TNS(ns)"], "TNS"),
            "tns_failing_endpoints": int(row["TNS Failing Endpoints"]),
            "whs_ns": _number(row["WHS(ns)"], "WHS"),
            "ths_ns": _number(row["THS(ns)"], "THS"),
            "ths_failing_endpoints": int(row["THS Failing Endpoints"]),
            "wpws_ns": _number(row["WPWS(ns)"], "WPWS"),
            "tpws_failing_endpoints": int(row["TPWS Failing Endpoints"]),
        }
    except KeyError as exc:
        raise ArtifactError(f"timing report: the Design Timing Summary has no column {exc}") from None
    clocks: dict[str, float] = {}
    try:
        table = [line for line in _section(text, "Intra Clock Table") if line.strip()]
    except ArtifactError:
        table = []
    for line in table[2:]:
        parts = line.split()
        if len(parts) >= 2 and re.fullmatch(r"-?\d+\.\d+", parts[1]):
            clocks[parts[0]] = float(parts[1])
    met = "All user specified timing constraints are met." in text
    return TimingSummary(**summary, constraints_met=met, clocks=clocks)


def find_report(link_dir: Path, kind: str) -> Path:
    """The implementation report of `kind` ("timing" / "utilization") under the v++ link folder."""
    for pattern in _REPORT_GLOBS[kind]:
        hits = sorted(link_dir.glob(pattern))
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise ArtifactError(f"several {kind} reports under {link_dir}: {', '.join(map(str, hits))}")
    raise ArtifactError(f"no {kind} report under {link_dir} ({' or '.join(_REPORT_GLOBS[kind])})")
