"""Compare DPU configurations on a board for one model: fit, resources, fingerprint, predicted FPS.

Rows cover every shipped configuration meant for the board, the configurations given (`given`: .toml paths or
shipped names, `dpu compare --config`) and, with sweep=True, the legal grid (every ARCH x DSP usage x RAM usage
x 1-2 cores x the board's safe clocks, other options at DPU-PYNQ defaults).
FPS figures are predicted by `dpupose.dpu.perf` (single thread, DPU only), never measured.

API: compare(model, board, configs=None, sweep=False, given=()) -> list[CompareRow]
     format_table(rows) -> str;  plot(rows, path, title) -> Path  (matplotlib, Agg backend)
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dpupose.dpu.board import Board, load_board
from dpupose.dpu.config import Arch, DpuConfig, DspUsage, RamUsage, config_path, list_configs, load_config
from dpupose.dpu.fingerprint import fingerprint_hex
from dpupose.dpu.graph import DpuGraph, extract_layers, load_model, rules_key
from dpupose.dpu.paths import configs_dir
from dpupose.dpu.perf import PerfConstants, estimate_graph, load_constants
from dpupose.dpu.resources import ESTIMATED, check_fit, utilization_pct
from dpupose.fsio import atomic_path

SWEEP_CORES = (1, 2)


@dataclass(frozen=True)
class CompareRow:
    config: str
    shipped: bool  # a file in hw/dpu/configs (False: a sweep point, or a file given by path)
    path: str | None  # the .toml file a configuration given by path was read from, as given (else None)
    default: bool  # the board's default configuration
    arch: str
    dsp_usage: str
    ram_usage: str
    cores: int
    clock_mhz: int
    fits: bool
    limiting: str
    dsp: float
    bram: float
    lut: float
    ff: float
    uram: float
    utilization_pct: dict[str, float | None]  # None: needed, but the board has none
    peak_gops: float
    fps: float  # predicted, single thread, DPU only
    latency_ms: float  # predicted, one run of `batch` images
    throughput_fps: float  # predicted, all cores
    batch: int  # images a run: the model's fixed batch (a symbolic one is 1); fps counts frames, batch a run
    fingerprint: str
    reasons: list[str] = field(default_factory=list)
    risks: list[str] = field(default_factory=list)
    not_estimated: list[str] = field(default_factory=list)  # op types left out of the FPS (not DPU ops)
    unknown_ops: list[str] = field(default_factory=list)  # op types ONNX does not define, costed conservatively
    too_wide: list[str] = field(default_factory=list)  # convs wider than 256 x ICP: the split runs them on the CPU

    @property
    def label(self) -> str:
        """The name the table and the plot show: a configuration given by path is shown by its path, so that a
        file named like a shipped configuration (or like another given one) is told apart from it."""
        return self.path if self.path is not None else self.config

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["predicted"] = True  # fps, latency_ms and throughput_fps come from the performance model
        d["estimated"] = list(ESTIMATED)  # lut and ff are estimates; dsp, bram and uram follow the IP's formulas
        return d


def sweep_configs(board: Board) -> list[DpuConfig]:
    """The legal grid for `board` (configurations that do not fit are included and marked)."""
    out = []
    for arch, dsp, ram, cores, clock in itertools.product(
        Arch, DspUsage, RamUsage, SWEEP_CORES, board.safe_dpu_clocks_mhz
    ):
        name = f"{arch.value.lower()}-dsp{dsp.value}-ram{ram.value}-x{cores}-{clock}mhz"
        uram = {"uram_wgt_banks": arch.ocp + 1, "uram_bias_banks": 1} if board.resources.uram > 0 else {}
        out.append(
            DpuConfig(
                name=name,
                arch=arch,
                clock_mhz=clock,
                board=board.name,
                dsp_usage=dsp,
                ram_usage=ram,
                cores=cores,
                **uram,
            )
        )
    return out


def shipped_configs(board: Board) -> list[DpuConfig]:
    return [c for c in (load_config(n) for n in list_configs()) if c.board == board.name]


def given_configs(names: Sequence[str | Path]) -> list[tuple[DpuConfig, str | None]]:
    """Each configuration given (a .toml path or a shipped name, as --config takes them) with the path it was
    read from as given, None for a shipped file; one read twice (the same file) is kept once. ConfigError for
    a path that is not there or a file that is not a configuration, naming it."""
    shipped_dir = configs_dir().resolve()
    seen: set[Path] = set()
    out = []
    for name in names:
        path = config_path(name)
        real = path.resolve()
        if real in seen:
            continue
        seen.add(real)
        out.append((load_config(name), None if real.parent == shipped_dir else str(name)))
    return out


def _row(
    cfg: DpuConfig,
    board: Board,
    graph: DpuGraph,
    consts: PerfConstants,
    shipped: bool,
    default: str,
    path: str | None = None,
) -> CompareRow:
    fit = check_fit(cfg, board)
    est = estimate_graph(graph, cfg, board, consts)
    total = fit.total
    return CompareRow(
        config=cfg.name,
        shipped=shipped,
        path=path,
        default=shipped and cfg.name == default,
        arch=cfg.arch.value,
        dsp_usage=cfg.dsp_usage.value,
        ram_usage=cfg.ram_usage.value,
        cores=cfg.cores,
        clock_mhz=cfg.clock_mhz,
        fits=fit.fits,
        limiting=fit.limiting,
        dsp=total.dsp,
        bram=total.bram36,
        lut=total.lut,
        ff=total.ff,
        uram=total.uram,
        utilization_pct=utilization_pct(fit.utilization),
        peak_gops=round(cfg.peak_gops, 1),
        fps=round(est.fps, 1),
        latency_ms=round(est.latency_ms, 3),
        throughput_fps=round(est.throughput_fps, 1),
        batch=est.batch,
        fingerprint=fingerprint_hex(cfg),
        reasons=fit.reasons,
        risks=fit.risks,
        not_estimated=sorted({op for _, op, _ in est.excluded}),
        unknown_ops=sorted({op for _, op in est.unknown}),
        too_wide=[est.too_wide_warning] if est.too_wide_warning else [],
    )


def compare(
    model: Any,
    board: Board | str = "ultra96v2",
    configs: list[DpuConfig] | None = None,
    sweep: bool = False,
    constants: PerfConstants | None = None,
    unknown: str = "error",
    given: Sequence[str | Path] = (),
) -> list[CompareRow]:
    """One row per configuration (shipped and given first, then the grid; each group by DSP); resources include
    the platform overhead. `given`: configurations to add (.toml paths or shipped names), compared on `board`
    whatever board they name; one already among the shipped rows is not added twice. An op ONNX does not
    define is refused (ModelFileError) unless unknown="conservative", as in perf.estimate."""
    b = board if isinstance(board, Board) else load_board(board)
    proto = load_model(model)
    consts = constants or load_constants()
    default = b.default_dpu_config or ""
    shipped = configs if configs is not None else shipped_configs(b)
    candidates: list[tuple[DpuConfig, bool, str | None]] = [(c, True, None) for c in shipped]
    for cfg, path in given_configs(given):
        if path is not None or not any(c == cfg for c in shipped):  # a shipped one already there is not repeated
            candidates.append((cfg, path is None, path))
    if sweep:
        candidates += [(c, False, None) for c in sweep_configs(b)]
    graphs: dict[tuple[Any, ...], DpuGraph] = {}
    rows = []
    for cfg, is_shipped, path in candidates:
        key = rules_key(cfg)  # configurations alike in what the operator rules read of them walk alike
        if key not in graphs:
            graphs[key] = extract_layers(proto, cfg, unknown=unknown)
        rows.append(_row(cfg, b, graphs[key], consts, is_shipped, default, path))
    # Shipped and given configurations first, then the grid, each group by DSP use (the cost axis of the plot).
    return sorted(rows, key=lambda r: (not (r.shipped or r.path is not None), r.dsp, r.config, r.path or ""))


def format_table(rows: list[CompareRow]) -> str:
    head = (
        "config",
        "arch",
        "DSP",
        "BRAM36",
        "LUT (est.)",
        "fits",
        "limiting",
        "peak GOPS",
        "pred. FPS",
        "fingerprint",
        "risks",
    )
    lines = [head]
    for r in rows:
        risks = "; ".join(x.split(":")[0] for x in r.risks) or "-"
        name = r.label + (" (default)" if r.default else "")
        lines.append(
            (
                name,
                f"{r.arch}{'' if r.cores == 1 else f'x{r.cores}'}",
                f"{r.dsp:g}",
                f"{r.bram:g}",
                f"{r.lut:,.0f}",
                "yes" if r.fits else "NO",
                r.limiting,
                f"{r.peak_gops:g}",
                f"{r.fps:.1f}",
                r.fingerprint,
                risks,
            )
        )
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    out = ["  ".join(str(v).ljust(w) for v, w in zip(line, widths)).rstrip() for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


PLOT_FORMATS = ("png", "svg", "pdf")


def plot_format(path: str | Path) -> str:
    """The image format the plot's file name asks for; UsageError for any other name."""
    fmt = Path(path).suffix.lower().lstrip(".")
    if fmt not in PLOT_FORMATS:
        from dpupose.errors import UsageError

        raise UsageError(f"--plot {path}: name the plot file .png, .svg or .pdf (the format follows the name)")
    return fmt


LABEL_FONTSIZE = 8


def label_box(
    anchor: tuple[float, float], offset: tuple[float, float], text: str, fontsize: float
) -> tuple[float, ...]:
    """(left, bottom, right, top), in points, of a label drawn at `offset` points from `anchor` (its lower left
    corner there), its size estimated from the text (0.62 em a character, 1.25 em a line: no renderer needed)."""
    left, bottom = anchor[0] + offset[0], anchor[1] + offset[1]
    return left, bottom, left + 0.62 * fontsize * len(text), bottom + 1.25 * fontsize


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def label_offsets(
    anchors: list[tuple[float, float]], texts: list[str], fits: list[bool], fontsize: float = LABEL_FONTSIZE
) -> list[tuple[float, float]]:
    """Where each point's label goes, in points from the point: to its right, above it (below it for a
    configuration that does not fit), unless that box would overlap a label placed before it (two configurations
    of nearly the same DSP count and FPS): then moved down, or up, a line at a time to the nearest free place."""
    placed: list[tuple[float, ...]] = []
    out = []
    line = 1.25 * fontsize + 1
    for anchor, text, ok in zip(anchors, texts, fits):
        base = (6.0, 4.0 if ok else -12.0)
        chosen = base
        for step in (0, *(s * k for k in range(1, 21) for s in (-1, 1))):
            offset = (base[0], base[1] + step * line)
            if not any(_overlap(label_box(anchor, offset, text, fontsize), box) for box in placed):
                chosen = offset
                break
        placed.append(label_box(anchor, chosen, text, fontsize))
        out.append(chosen)
    return out


def plot(rows: list[CompareRow], path: str | Path, title: str, dsp_available: float | None = None) -> Path:
    """Predicted FPS against DSP use; fitting configurations filled, others crossed; written atomically in
    the format the file name asks for (plot_format)."""
    fmt = plot_format(path)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    # Closed however the drawing ends: pyplot keeps every figure not closed, so one left by Ctrl-C (or an error)
    # in the drawing or the label layout stayed in a caller's process (a notebook's) for good.
    try:
        _draw(fig, ax, rows, path, fmt, title, dsp_available)
    finally:
        plt.close(fig)
    return path


def _draw(fig, ax, rows: list[CompareRow], path: Path, fmt: str, title: str, dsp_available: float | None) -> None:
    """plot's figure drawn and written (atomically) to `path`."""
    named = [r for r in rows if r.shipped or r.path is not None]  # shipped and given: marked and labelled
    sweep = [r for r in rows if r not in named]
    if sweep:
        for fits, marker, label in (
            (True, "o", "grid point, fits"),
            (False, "x", "grid point, does not fit"),
        ):
            pts = [r for r in sweep if r.fits == fits]
            if pts:
                ax.scatter(
                    [r.dsp for r in pts],
                    [r.fps for r in pts],
                    marker=marker,
                    s=18,
                    color="0.75",
                    label=label,
                    zorder=1,
                )
    for group, marker_fits, color, edge, what in (
        ([r for r in named if r.shipped], "o", "tab:green", "black", "shipped config"),
        ([r for r in named if not r.shipped], "D", "tab:blue", "tab:blue", "given config (--config)"),
    ):
        for fits, marker, label in ((True, marker_fits, "fits"), (False, "X", "does not fit")):
            pts = [r for r in group if r.fits == fits]
            if pts:
                ax.scatter(
                    [r.dsp for r in pts],
                    [r.fps for r in pts],
                    marker=marker,
                    s=80,
                    color=color if fits else "tab:red",
                    edgecolor=edge,
                    label=f"{what}, {label}",
                    zorder=3,
                )
    xs = [r.dsp for r in rows] + ([dsp_available] if dsp_available else [])
    ys = [r.fps for r in rows]
    ax.set_xlim(0, max(xs) * 1.3)  # room for the labels on the right
    ax.set_ylim(0, max(ys) * 1.12)
    if dsp_available:
        ax.axvline(dsp_available, color="tab:red", linestyle="--", linewidth=1)
        ax.text(
            dsp_available,
            max(ys) * 0.03,
            f" {dsp_available:g} DSP on the device",
            color="tab:red",
            fontsize=8,
        )
    ax.set_xlabel("DSP48 slices used (DPU + platform)")
    ax.set_ylabel("predicted FPS (single thread, DPU only)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    # The labels last, where the axes now are: each is placed off the ones before it (label_offsets).
    texts = []
    for r in named:
        risks = [x.split(":")[0] for x in r.risks if not x.startswith("tight")]
        texts.append(r.label + (" (default)" if r.default else "") + (f" [risk: {', '.join(risks)}]" if risks else ""))
    points_per_pixel = 72 / fig.dpi
    anchors = [tuple(v * points_per_pixel for v in ax.transData.transform((r.dsp, r.fps))) for r in named]
    offsets = label_offsets(anchors, texts, [r.fits for r in named], LABEL_FONTSIZE)
    for r, text, offset in zip(named, texts, offsets):
        weight = "bold" if r.default else "normal"
        ax.annotate(
            text,
            (r.dsp, r.fps),
            textcoords="offset points",
            xytext=offset,
            fontsize=LABEL_FONTSIZE,
            fontweight=weight,
            va="bottom",
        )
    with atomic_path(path, suffix=f".{fmt}") as tmp:
        fig.savefig(tmp, format=fmt)
