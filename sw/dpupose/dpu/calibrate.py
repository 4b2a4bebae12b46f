"""Fit the performance model's free constants to published figures, and report the error on every row.

Data: ``hw/dpu/perf/calibration.csv`` (Vitis AI model-zoo single- and multi-thread FPS of MobileNetV2 and
ResNet-50 on ZCU102/ZCU104 B4096 DPUs), and nothing else. The reference networks are exported from
`dpupose.dpu.zoo` (random weights, 224x224) into a temporary folder: only their layer shapes matter.

Each row names the DPUCZDX8G IP version it was measured on (column dpu_ip), and is costed at that IP's
engine rates: the Vitis AI 2.0 rows and the validation rows of Vitis AI 1.4 and 2.0 ran IP v3.x, whose eltwise
engine takes 1 pixel per cycle, not v4's ALU_PP (perf.IP_VERSIONS).

Model of a published figure (the zoo measures end to end, including CPU pre-processing):
    single thread:  fps = 1000 / (DPU latency on one core + host_ms)
    multi thread:   fps = DPU throughput with all cores busy (host work runs on the other CPU cores)

Fitted: layer_overhead_cycles, ddr_efficiency, host_ms (three constants for 16 figures), by least squares
on log(predicted / published), with bounds that keep each constant physical.

Validation: ``hw/dpu/perf/validation.csv`` holds measured figures of configurations the calibration data
do not cover (smaller ARCHs, other boards and clocks). They are never fitted; `validate` predicts each with
the constants and reports the error, and `calibrate` reports them beside the fit.

API: read_rows(path=None) -> list[Row]; calibrate(rows=None) -> Calibration; write_constants(c, path=None);
     read_validation(path=None) -> list[ValidationRow]; validate(constants=None, rows=None) -> list[dict]
"""

from __future__ import annotations

import csv
import math
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpupose.dpu.board import Board, load_board
from dpupose.dpu.config import DpuConfig, config_from_arch
from dpupose.dpu.graph import DpuGraph, extract_layers, rules_key
from dpupose.dpu.paths import hw_dir
from dpupose.dpu.perf import IP_VERSIONS, PerfConstants, _latency_s, constants_path, load_constants
from dpupose.dpu.writers import write_if_changed
from dpupose.errors import DataError

# (lower, upper) bounds: overhead cycles per layer, DDR efficiency, host ms per frame.
BOUNDS = ((0.0, 20000.0), (0.2, 1.0), (0.0, 5.0))
START = (1000.0, 0.7, 0.5)
COLUMNS = ("model", "input", "gops", "board", "cores", "arch", "clock_mhz", "dpu_ip", "fps_single_thread",
           "fps_multi_thread", "source")  # fmt: skip
VALIDATION_COLUMNS = ("model", "input", "gops", "board", "cores", "arch", "clock_mhz", "dpu_ip", "figure",
                      "threads", "fps_measured", "measured_by", "source")  # fmt: skip
# dpu_ip: the DPUCZDX8G IP version the figure was measured on (one of perf.IP_VERSIONS), which sets the rate
# its eltwise layers are costed at; docs/dpu-configurations.md says how each row's was established.
# What a measured figure is, and so what it is compared with: one frame at a time end to end (the zoo's
# single-thread figure: DPU latency + host_ms), or enough threads to keep every core busy (DPU throughput).
FIGURES = ("single_thread", "multi_thread")


@dataclass(frozen=True)
class Row:
    model: str
    input_size: int
    gops: float
    board: str
    cores: int
    arch: str
    clock_mhz: int
    dpu_ip: str  # the DPUCZDX8G IP version measured (perf.IP_VERSIONS)
    fps_single: float
    fps_multi: float
    source: str


@dataclass(frozen=True)
class ValidationRow:
    """A measured figure kept out of the fit (hw/dpu/perf/validation.csv)."""

    model: str
    input_size: int
    gops: float  # the measured network's published operation count
    board: str
    cores: int
    arch: str
    clock_mhz: int
    dpu_ip: str  # the DPUCZDX8G IP version measured (perf.IP_VERSIONS)
    figure: str  # one of FIGURES
    threads: int | None  # None: a multi-thread figure whose source does not say how many (the model zoo's)
    fps: float
    measured_by: str
    source: str


@dataclass
class Calibration:
    constants: PerfConstants
    report: list[dict[str, Any]]  # one entry per CSV row: published, predicted, error in %
    rms_log_error: float  # over all fitted figures
    validation: list[dict[str, Any]] = field(default_factory=list)  # validate() with the fitted constants

    @property
    def max_abs_error_pct(self) -> float:
        return max(max(abs(r["single_err_pct"]), abs(r["multi_err_pct"])) for r in self.report)


def calibration_csv() -> Path:
    return hw_dir() / "dpu" / "perf" / "calibration.csv"


def _records(
    p: Path, columns: tuple[str, ...], positive: tuple[str, ...], kind: str, may_be_empty: tuple[str, ...] = ()
) -> Iterator[tuple[dict, int, str]]:
    """Each record of the CSV `p` (which must have `columns`) with its square input's side and what names it in
    a message (its line and what it measured), after the checks both tables share: the columns, a square
    input, the `positive` fields above 0 (those of `may_be_empty` may also be empty), a known DPU IP version.
    DataError names the file and the row."""
    try:
        with p.open(newline="") as f:
            reader = csv.DictReader(f)
            if tuple(reader.fieldnames or ()) != columns:
                raise DataError(f"{p}: expected columns {', '.join(columns)}")
            for rec in reader:
                w, h = (int(x) for x in rec["input"].split("x"))
                if w != h:
                    raise DataError(f"{p}: only square inputs are supported, got {rec['input']}")
                what = f"line {reader.line_num}: {rec['model']} on {rec['board']} {rec['arch']}"
                for key in positive:
                    if key in may_be_empty and rec[key] == "":
                        continue
                    try:
                        value = float(rec[key])
                    except ValueError:  # an empty field or a word: named with its row, not a bare 'malformed row'
                        raise DataError(f"{p}: {what}: {key} must be a positive number, got {rec[key]!r}") from None
                    if not value > 0:
                        raise DataError(f"{p}: {what}: {key} must be positive, got {rec[key]}")
                if rec["dpu_ip"] not in IP_VERSIONS:
                    raise DataError(
                        f"{p}: {what}: dpu_ip must be the DPUCZDX8G IP version measured, one of "
                        f"{', '.join(IP_VERSIONS)}, got {rec['dpu_ip']!r}"
                    )
                yield rec, w, what
    except FileNotFoundError:
        raise DataError(f"{p}: {kind} data missing") from None
    except (KeyError, ValueError) as exc:
        raise DataError(f"{p}: malformed row ({exc})") from None


def _network_fields(rec: dict[str, str], w: int) -> tuple:
    """The fields a calibration and a validation row share, in their order: model, input size, GOPs, board,
    cores, ARCH, clock and DPU IP version."""
    return (
        rec["model"],
        w,
        float(rec["gops"]),
        rec["board"].lower(),
        int(rec["cores"]),
        rec["arch"],
        int(rec["clock_mhz"]),
        rec["dpu_ip"],
    )


def read_rows(path: str | Path | None = None) -> list[Row]:
    p = Path(path) if path else calibration_csv()
    positive = ("gops", "fps_single_thread", "fps_multi_thread", "cores", "clock_mhz")
    return [
        Row(
            *_network_fields(rec, w),
            float(rec["fps_single_thread"]),
            float(rec["fps_multi_thread"]),
            rec["source"],
        )
        for rec, w, _ in _records(p, COLUMNS, positive, "calibration")
    ]


def validation_csv() -> Path:
    return hw_dir() / "dpu" / "perf" / "validation.csv"


def read_validation(path: str | Path | None = None) -> list[ValidationRow]:
    p = Path(path) if path else validation_csv()
    rows = []
    positive = ("gops", "fps_measured", "cores", "clock_mhz", "threads")
    for rec, w, what in _records(p, VALIDATION_COLUMNS, positive, "validation", may_be_empty=("threads",)):
        if rec["figure"] not in FIGURES:
            raise DataError(f"{p}: {what}: figure must be one of {', '.join(FIGURES)}, got {rec['figure']!r}")
        # threads: the count the source gives; empty only where a multi-thread figure's source gives none (the
        # model zoo's 'Multi Thread' column): the prediction does not use it (all cores busy).
        if rec["threads"] == "" and rec["figure"] != "multi_thread":
            raise DataError(f"{p}: {what}: threads may be empty only for a multi_thread figure; give the count")
        try:
            threads = int(rec["threads"]) if rec["threads"] != "" else None
        except ValueError:
            raise DataError(f"{p}: {what}: threads must be a whole number, got {rec['threads']!r}") from None
        rows.append(
            ValidationRow(
                *_network_fields(rec, w),
                rec["figure"],
                threads,
                float(rec["fps_measured"]),
                rec["measured_by"],
                rec["source"],
            )
        )
    return rows


def row_config(row: Row | ValidationRow) -> DpuConfig:
    """The measured boards' DPU: the Vitis AI TRD defaults (RAM low, channel augmentation, ALU default)."""
    return config_from_arch(row.arch, row.clock_mhz, cores=row.cores, board=row.board)


def graph_key(row: Row | ValidationRow) -> tuple[Any, ...]:
    """The key of a row's network walk in `network_graphs`: the network, its input and what the operator rules
    read of the row's DPU (graph.rules_key, and its IP version: IP v3.x has no hsigmoid and no eltwise mult), so a
    row of another ARCH or IP is not costed with another's walk."""
    return (row.model, row.input_size, rules_key(row_config(row)), row.dpu_ip)


def network_graphs(rows: Sequence[Row | ValidationRow], folder: Path) -> dict[tuple[Any, ...], DpuGraph]:
    """Each row's reference network walked for its DPU, by `graph_key`; each network is exported once."""
    from dpupose.dpu import zoo

    paths: dict[tuple[str, int], Path] = {}
    graphs: dict[tuple[Any, ...], DpuGraph] = {}
    for row in rows:
        key = graph_key(row)
        if key not in graphs:
            net = (row.model, row.input_size)
            if net not in paths:
                paths[net] = zoo.export(row.model, folder / f"{row.model}_{row.input_size}.onnx", row.input_size)
            graphs[key] = extract_layers(paths[net], row_config(row), ip=row.dpu_ip)
    return graphs


def _predict(row: Row | ValidationRow, graph: DpuGraph, board: Board, c: PerfConstants) -> tuple[float, float]:
    cfg = row_config(row)
    single, _ = _latency_s(graph.layers, cfg, board, c, active=1, ip=row.dpu_ip)
    busy, _ = _latency_s(graph.layers, cfg, board, c, active=cfg.cores, ip=row.dpu_ip)
    return 1.0 / (single + c.host_ms / 1e3), cfg.cores / busy


def _residuals(params: Any, cases: list[tuple[Row, DpuGraph, Board]]) -> list[float]:
    c = PerfConstants(float(params[0]), float(params[1]), float(params[2]))
    out: list[float] = []
    for row, graph, board in cases:
        single, multi = _predict(row, graph, board, c)
        out += [math.log(single / row.fps_single), math.log(multi / row.fps_multi)]
    return out


def calibrate(rows: list[Row] | None = None) -> Calibration:
    """Fit the constants on `rows` (default: the shipped CSV) and report the error on every row."""
    from scipy.optimize import least_squares

    rows = rows if rows is not None else read_rows()
    checks = read_validation()
    with tempfile.TemporaryDirectory(prefix="dpupose-calib-") as tmp:
        graphs = network_graphs([*rows, *checks], Path(tmp))
    cases = [(r, graphs[graph_key(r)], load_board(r.board)) for r in rows]
    lower, upper = zip(*BOUNDS)
    # Scale the parameters so the solver's steps are comparable across them.
    fit = least_squares(_residuals, START, bounds=(lower, upper), args=(cases,), x_scale=(1000.0, 0.1, 0.5))
    c = PerfConstants(
        layer_overhead_cycles=round(float(fit.x[0]), 1),
        ddr_efficiency=round(float(fit.x[1]), 4),
        host_ms=round(float(fit.x[2]), 4),
    )
    report = []
    for row, graph, board in cases:
        single, multi = _predict(row, graph, board, c)
        report.append(
            {
                "model": row.model,
                "board": row.board,
                "arch": row.arch,
                "cores": row.cores,
                "clock_mhz": row.clock_mhz,
                "dpu_ip": row.dpu_ip,
                "source": row.source,
                "published_gops": row.gops,
                "model_gops": round(2 * graph.macs / 1e9, 3),
                "single_published": row.fps_single,
                "single_predicted": round(single, 1),
                "single_err_pct": round(100 * (single / row.fps_single - 1), 1),
                "multi_published": row.fps_multi,
                "multi_predicted": round(multi, 1),
                "multi_err_pct": round(100 * (multi / row.fps_multi - 1), 1),
            }
        )
    res = _residuals((c.layer_overhead_cycles, c.ddr_efficiency, c.host_ms), cases)
    rms = math.sqrt(sum(r * r for r in res) / len(res))
    return Calibration(constants=c, report=report, rms_log_error=rms, validation=_validation_report(checks, graphs, c))


def validate(constants: PerfConstants | None = None, rows: list[ValidationRow] | None = None) -> list[dict[str, Any]]:
    """Predict every validation row (default: the shipped CSV) with `constants` (default: the shipped ones)."""
    rows = rows if rows is not None else read_validation()
    with tempfile.TemporaryDirectory(prefix="dpupose-valid-") as tmp:
        graphs = network_graphs(rows, Path(tmp))
    return _validation_report(rows, graphs, constants or load_constants())


def _validation_report(
    rows: list[ValidationRow], graphs: dict[tuple[Any, ...], DpuGraph], c: PerfConstants
) -> list[dict[str, Any]]:
    report = []
    for row in rows:
        graph = graphs[graph_key(row)]
        single, multi = _predict(row, graph, load_board(row.board), c)
        predicted = single if row.figure == "single_thread" else multi
        report.append(
            {
                "model": row.model,
                "board": row.board,
                "arch": row.arch,
                "cores": row.cores,
                "clock_mhz": row.clock_mhz,
                "dpu_ip": row.dpu_ip,
                "figure": row.figure,
                "threads": row.threads,
                "published_gops": row.gops,
                "model_gops": round(2 * graph.macs / 1e9, 3),
                "measured": row.fps,
                "predicted": round(predicted, 1),
                "err_pct": round(100 * (predicted / row.fps - 1), 1),
                "measured_by": row.measured_by,
                "source": row.source,
            }
        )
    return report


def constants_toml(c: PerfConstants, cal: Calibration | None = None) -> str:
    text = "# Generated by `dpupose dpu calibrate --write` (dpupose.dpu.calibrate); do not edit.\n"
    text += "# Fitted on calibration.csv (published Vitis AI model-zoo figures) only.\n"
    if cal is not None:
        text += f"# rms log error {cal.rms_log_error:.4f}, worst row error {cal.max_abs_error_pct:.1f}%\n"
    text += f"layer_overhead_cycles = {c.layer_overhead_cycles}  # 1x clock cycles per DPU layer\n"
    text += f"ddr_efficiency = {c.ddr_efficiency}  # fraction of the board's peak DDR bandwidth\n"
    text += f"host_ms = {c.host_ms}  # CPU time per frame in the published end-to-end figures\n"
    return text


def write_constants(cal: Calibration, path: str | Path | None = None) -> bool:
    return write_if_changed(Path(path) if path else constants_path(), constants_toml(cal.constants, cal))
