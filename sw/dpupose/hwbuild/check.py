"""Everything that can be checked before the hour-long tool run, as a list of findings.

`preflight` looks at the configuration (legal, fits, clocks safe), the files generated from it, the Tcl
scripts under the Vivado stand-in, the tools (Vivado/v++ 2022.1, XRT) and the inputs the user supplies
(DPU TRD, board files), plus disk space. `dpupose hw check` prints the findings; `dpupose hw build` stops
on any error before it starts a tool. Tools and inputs are only required by the steps that use them.

API:
    preflight(request, steps) -> Preflight      (findings + what was resolved, for the build)
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from dpupose.dpu.board import Board, load_board
from dpupose.dpu.config import DpuConfig, config_path, load_config
from dpupose.dpu.fingerprint import fingerprint_hex
from dpupose.dpu.paths import configs_dir, shown
from dpupose.dpu.resources import check_fit
from dpupose.dpu.writers import arch_json, dpu_conf_vh, prj_config
from dpupose.errors import ConfigError, DpuposeError
from dpupose.fsio import json_text, loads_json
from dpupose.hwbuild.inputs import BoardFiles, TrdInfo, find_board_files, inspect_trd
from dpupose.hwbuild.params import dpu_clock_ids, params_tcl, platform_xdc
from dpupose.hwbuild.platform import PlatformRecord, load_platform
from dpupose.hwbuild.tclcheck import check_kernel_tcl, check_platform_tcl
from dpupose.hwbuild.tools import ToolInfo, check_xrt, probe_vivado, probe_vpp

MIN_FREE_GB = 25  # v++ keeps the whole implementation run (--save-temps): several GB for a ZU3EG
VIVADO_STEPS = {"platform", "kernel"}
# Characters Vivado does not support in project, file and folder names (UG895 2022.1, "Vivado Naming
# Conventions"), and blanks, which that page allows nowhere either.
VIVADO_UNSUPPORTED = frozenset("!#$%^&*()`;<>?,[]{}'\"|")


class PreflightFailed(DpuposeError):
    """A check before the build found problems; nothing was run."""


@dataclass(frozen=True)
class BuildRequest:
    config: str  # shipped name or .toml path
    board: str | None = None  # must match the configuration's board when given
    trd: str | None = None  # DPU_TRD
    board_repo: str | None = None  # BOARD_REPO
    i_know: bool = False  # accept clocks above the board's known-safe limit
    out: Path | None = None  # build folder (default build/hw/<config>)


@dataclass(frozen=True)
class Finding:
    level: str  # "ok", "warn" or "error"
    topic: str
    message: str


@dataclass
class Preflight:
    findings: list[Finding] = field(default_factory=list)
    cfg: DpuConfig | None = None
    board: Board | None = None
    pfm: PlatformRecord | None = None
    trd: TrdInfo | None = None
    board_files: BoardFiles | None = None
    tools: dict[str, ToolInfo] = field(default_factory=dict)
    xrt: str | None = None

    def add(self, level: str, topic: str, message: str) -> None:
        self.findings.append(Finding(level, topic, message))

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    def to_json(self) -> str:
        return json_text([f.__dict__ for f in self.findings], indent=2)


def config_and_board(config: str, board_name: str | None) -> tuple[DpuConfig, Board]:
    """The configuration and its board; ConfigError where --board names an unknown board or another board than
    the configuration's."""
    cfg = load_config(config)
    board = load_board(board_name or cfg.board)
    if board_name and board.name != load_board(cfg.board).name:
        raise ConfigError(
            f"configuration {cfg.name} is for board {cfg.board}, not {board.name}; "
            f"pick a configuration for {board.name}, or leave out --board (BOARD= with make)"
        )
    return cfg, board


def _config(p: Preflight, req: BuildRequest) -> None:
    try:
        cfg, board = config_and_board(req.config, req.board)
        pfm = load_platform(board.name)
    except DpuposeError as exc:
        p.add("error", "config", str(exc))
        return
    p.cfg, p.board, p.pfm = cfg, board, pfm
    what = f"{cfg.arch.value} x{cfg.cores} at {cfg.clock_mhz}/{cfg.clock_2x_mhz} MHz"
    p.add("ok", "config", f"{cfg.name}: {what}, fingerprint {fingerprint_hex(cfg)}, board {board.title}")
    _shares_a_build_folder(p, req, cfg)
    if cfg.save_argmax:
        p.add(
            "error",
            "config",
            "save_argmax needs DPUCZDX8G IP v4.1 (Vitis AI 3.0); the 2.5 TRD cannot build it: set save_argmax = false",
        )
    if cfg.softmax:
        p.add(
            "error",
            "config",
            "softmax = true: this flow packages only the DPUCZDX8G kernel, not sfm_xrt_top: set softmax = false "
            "(a model's Softmax runs on the CPU either way)",
        )


def _shares_a_build_folder(p: Preflight, req: BuildRequest, cfg: DpuConfig) -> None:
    """A .toml of one's own named like a shipped configuration builds, without --out, into that one's
    build/hw/<name>/: a build of either replaces the other's (the older set kept in previous/) with no word."""
    shipped = configs_dir() / f"{cfg.name}.toml"
    if req.out is not None or not shipped.is_file() or config_path(req.config).resolve() == shipped.resolve():
        return
    p.add(
        "warn",
        "out",
        f"{req.config} is named like the shipped configuration {cfg.name} ({shown(shipped)}): both build into "
        f"build/hw/{cfg.name}/, so a build of one replaces the other's (the older set moves to previous/); rename "
        "your file (its name names the build folder) or give --out another folder to keep both",
    )


def _fit_and_clocks(p: Preflight, req: BuildRequest) -> None:
    cfg, board = p.cfg, p.board
    assert cfg is not None and board is not None
    fit = check_fit(cfg, board)
    util = ", ".join(f"{k.upper()} {v:.0%}" for k, v in fit.utilization.items() if board.resources.as_dict()[k])
    if fit.fits:
        p.add("ok", "fit", f"fits the {board.device} with the platform reserved ({util}; limiting {fit.limiting})")
    else:
        p.add("error", "fit", f"does not fit the {board.device}: {'; '.join(fit.reasons)} ({util})")
    for risk in fit.risks:
        # the clock checks below say these, the configuration's errors above what `build:` says
        if not risk.startswith(("power:", "clock:", "platform-clock:", "build:")):
            p.add("warn", "fit", risk)
    try:
        id_1x, id_2x = dpu_clock_ids(cfg, board)
    except DpuposeError as exc:
        p.add("error", "clocks", str(exc))
        return
    clocks = f"{cfg.clock_mhz}/{cfg.clock_2x_mhz} MHz (platform clock ids {id_1x}/{id_2x})"
    if cfg.clock_mhz > board.max_safe_dpu_clock_mhz:
        why = (
            f"{clocks} is above the {board.max_safe_dpu_clock_mhz} MHz known safe on the {board.title}: at such "
            f"clocks the board can reset under load (power)"
        )
        if req.i_know:
            p.add("warn", "clocks", why + "; accepted with --i-know")
        else:
            todo = "choose a configuration at or below that clock, or pass --i-know (I_KNOW=1 with make)"
            p.add("error", "clocks", f"{why}; {todo} to build it anyway")
    elif cfg.clock_mhz not in board.safe_dpu_clocks_mhz:
        p.add("warn", "clocks", f"{clocks} is not a DPU clock known to work on the {board.title}")
    else:
        p.add("ok", "clocks", f"{clocks}, known to work on the {board.title}")


def _files_and_tcl(p: Preflight, steps: set[str], trd_names: list[str] | None) -> None:
    cfg, board, pfm = p.cfg, p.board, p.pfm
    assert cfg is not None and board is not None and pfm is not None
    try:
        texts = [params_tcl(cfg, board, pfm), platform_xdc(cfg, board, pfm), dpu_conf_vh(cfg)]
        texts += [prj_config(cfg, board), arch_json(cfg)]
    except DpuposeError as exc:
        p.add("error", "files", f"cannot generate the build files: {exc}")
        return
    if loads_json(texts[-1])["fingerprint"] != fingerprint_hex(cfg) or f"`define {cfg.arch.value}" not in texts[2]:
        p.add("error", "files", "arch.json / dpu_conf.vh disagree with the configuration")
    else:
        p.add("ok", "files", "params.tcl, platform.xdc, dpu_conf.vh, prj_config and arch.json generate")
    checks = []
    with tempfile.TemporaryDirectory(prefix="dpupose-hwcheck-") as tmp:
        try:
            if steps & {"platform"}:
                (Path(tmp) / "platform").mkdir()
                checks.append(check_platform_tcl(cfg, board, pfm, Path(tmp) / "platform"))
            if steps & {"kernel"}:
                (Path(tmp) / "kernel").mkdir()
                checks.append(check_kernel_tcl(cfg, board, pfm, Path(tmp) / "kernel", trd_names))
        except DpuposeError as exc:
            p.add("error", "tcl", str(exc))
    for check in checks:
        if check.problems:
            for problem in check.problems:
                p.add("error", "tcl", f"{check.script}: {problem}")
        else:
            p.add("ok", "tcl", f"{check.script} under the Vivado stand-in: {check.summary}")


def _tools_and_inputs(p: Preflight, req: BuildRequest, steps: set[str]) -> None:
    probes = []
    if steps & VIVADO_STEPS:
        probes.append(("vivado", probe_vivado))
    if "link" in steps:
        probes.append(("v++", probe_vpp))
    for name, probe in probes:
        try:
            info = probe()
            p.tools[name] = info
            p.add("ok", name, f"{info.banner} ({info.path})")
        except DpuposeError as exc:
            p.add("error", name, str(exc))
    if "link" in steps:
        try:
            p.xrt = check_xrt()
            p.add("ok", "xrt", f"XILINX_XRT={p.xrt}")
        except DpuposeError as exc:
            p.add("error", "xrt", str(exc))
    if "platform" in steps and p.pfm is not None:
        try:
            p.board_files = find_board_files(req.board_repo, p.pfm)
            p.add("ok", "board files", f"{p.board_files.name} {p.board_files.version} at {p.board_files.board_xml}")
        except DpuposeError as exc:
            p.add("error", "board files", str(exc))


def _trd(p: Preflight, req: BuildRequest, steps: set[str]) -> list[str] | None:
    if not steps & {"kernel", "link"}:
        return None
    try:
        p.trd = inspect_trd(req.trd)
    except DpuposeError as exc:
        p.add("error", "trd", str(exc))
        return None
    kind = "archive" if p.trd.archive else "folder"
    p.add("ok", "trd", f"DPUCZDX8G IP v{p.trd.ip_version} in the TRD {kind} {p.trd.path}")
    if not p.trd.has_postlink:
        p.add("warn", "trd", "the TRD has no prj/Vitis/syslink/strip_interconnects.tcl; v++ links without it")
    return list(p.trd.names)


def _unsupported(path: Path) -> str | None:
    """The characters of `path` Vivado does not support in names, as a phrase; None if there are none."""
    bad = sorted({c for c in str(path) if c in VIVADO_UNSUPPORTED or c.isspace()})
    if not bad:
        return None
    return ", ".join("blanks" if c.isspace() else repr(c) for c in bad)


def _paths(p: Preflight, req: BuildRequest, steps: set[str]) -> None:
    """The folders Vivado and v++ work in or read from must have names Vivado supports: the build folder
    (projects, generated files, the unpacked TRD), a TRD folder and the board files."""
    checked: list[tuple[str, Path, str]] = []
    if p.cfg is not None:
        where = "give --out a folder without them" if req.out else "run from a folder without them, or give --out one"
        checked.append(("the build folder", (req.out or Path("build") / "hw" / p.cfg.name).resolve(), where))
    if steps & {"kernel", "link"} and p.trd is not None and not p.trd.archive:
        checked.append(("the TRD folder DPU_TRD", p.trd.path.resolve(), "move it to a folder without them"))
    if "platform" in steps and p.board_files is not None and req.board_repo:
        repo = Path(req.board_repo).expanduser().resolve()
        checked.append(("the board files BOARD_REPO", repo, "clone them into a folder without them"))
    for what, path, todo in checked:
        bad = _unsupported(path)
        if bad is not None:
            p.add(
                "error",
                "paths",
                f"{what} {path} holds {bad}, which Vivado does not support in file and folder names (UG895, "
                f"Vivado naming conventions): {todo}",
            )


def _disk(p: Preflight, req: BuildRequest) -> None:
    where = (req.out or Path("build")).resolve()
    while not where.exists():
        where = where.parent
    free_gb = shutil.disk_usage(where).free / 1e9
    if free_gb < MIN_FREE_GB:
        p.add("warn", "disk", f"{free_gb:.0f} GB free at {where}; the v++ link keeps ~{MIN_FREE_GB} GB of temporaries")


def preflight(req: BuildRequest, steps: set[str]) -> Preflight:
    """All findings for building `req` through `steps` (step names of dpupose.hwbuild.flow.STEPS)."""
    p = Preflight()
    _config(p, req)
    if p.cfg is not None:
        _fit_and_clocks(p, req)
    trd_names = _trd(p, req, steps)
    if p.cfg is not None:
        _files_and_tcl(p, steps, trd_names)
    _tools_and_inputs(p, req, steps)
    if steps & (VIVADO_STEPS | {"link"}):
        _paths(p, req, steps)
        _disk(p, req)
    return p
