"""Check hw/tcl/platform.tcl and hw/tcl/kernel.tcl for one configuration without Vivado.

Each script runs under the recording stand-in with freshly generated parameter files; the platform's
recorded design goes through `pfmcheck.check_platform`, the kernel packaging through `check_kernel`
(against the user's TRD file list when there is one, else a skeleton of the expected layout).

API:
    check_platform_tcl(cfg, board, pfm, workdir) -> TclCheck
    check_kernel_tcl(cfg, board, pfm, workdir, trd_names=None) -> TclCheck
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dpupose.dpu.board import Board
from dpupose.dpu.config import DpuConfig
from dpupose.dpu.writers import KERNEL, prj_config, write_dpu_conf_vh
from dpupose.hwbuild.inputs import TRD_REQUIRED, TRD_SKELETON, glob_regex
from dpupose.hwbuild.layout import tcl_dir
from dpupose.hwbuild.params import write_params_tcl, write_platform_xdc
from dpupose.hwbuild.pfmcheck import check_platform, summary
from dpupose.hwbuild.platform import PlatformRecord
from dpupose.hwbuild.standin import Call, Design, run_standin

BOARD_REPO_PLACEHOLDER = "/board-files"  # the stand-in never reads it; Vivado gets BOARD_REPO


@dataclass(frozen=True)
class TclCheck:
    script: str  # "platform.tcl" / "kernel.tcl"
    problems: list[str]  # empty: the script does what the build needs
    summary: str


def check_platform_tcl(
    cfg: DpuConfig,
    board: Board,
    pfm: PlatformRecord,
    workdir: Path,
    engine: str = "auto",
    script: Path | None = None,
) -> TclCheck:
    """Run platform.tcl (or `script`) under the stand-in with parameter files generated into `workdir`."""
    params, xsa = workdir / "params.tcl", workdir / "platform.xsa"
    write_params_tcl(cfg, board, pfm, params)
    write_platform_xdc(cfg, board, pfm, workdir / "platform.xdc")
    script = script or tcl_dir() / "platform.tcl"
    run = run_standin(script, [str(params), BOARD_REPO_PLACEHOLDER, str(xsa)], engine=engine)
    if run.error is not None:
        return TclCheck(script.name, [f"the script stopped: {run.error}"], "")
    design = Design.from_calls(run.calls)
    problems = check_platform(design, cfg, board, pfm, prj_config(cfg, board), xsa)
    return TclCheck(script.name, problems, summary(design))


def _args(call: Call) -> dict[str, str]:
    out: dict[str, str] = {}
    args = list(call.args)
    for i, a in enumerate(args):
        if a.startswith("-"):
            out[a] = args[i + 1] if i + 1 < len(args) and not args[i + 1].startswith("-") else ""
    return out


def check_kernel(calls: Sequence[Call], board: Board, trd: Path, dpu_conf: Path, xo: Path) -> list[str]:
    """Problems with a recorded kernel packaging run (empty: it makes the DPUCZDX8G RTL kernel)."""
    d = Design.from_calls(calls)
    problems: list[str] = []
    if d.project.get("part") != board.part:
        problems.append(f"create_project -part {d.project.get('part')!r}, the board's part is {board.part!r}")
    sources = [Path(p) for fs, p in d.files if fs == "sources_1"]
    if dpu_conf.resolve() not in [p.resolve() for p in sources]:
        problems.append(f"add_files does not add the generated {dpu_conf}")
    rel = [p.relative_to(trd).as_posix() for p in sources if p.is_relative_to(trd)]
    rel += [
        Path(p).relative_to(trd).as_posix() for fs, p in d.files if fs == "constrs_1" and Path(p).is_relative_to(trd)
    ]
    for pattern in TRD_REQUIRED:
        if pattern.endswith("kernel.xml"):
            continue
        if not any(glob_regex(pattern).match(r) for r in rel):
            problems.append(f"the packaged IP does not include the TRD's {pattern}")
    packs = d.called("ipx::package_project")
    root = _args(packs[0]).get("-root_dir") if packs else None
    if not packs or _args(packs[0]).get("-library") != "RTLKernel" or "-import_files" not in packs[0].args:
        problems.append("ipx::package_project -library RTLKernel -import_files is not called")
    core = d.props.get("ipcore", {})
    for key, value in (("sdx_kernel", "true"), ("sdx_kernel_type", "rtl")):
        if core.get(key) != value:
            problems.append(f"the IP's {key} is {core.get(key)!r}, a Vitis RTL kernel needs {value!r}")
    associated = {_args(c).get("-busif"): _args(c).get("-clock") for c in d.called("ipx::associate_bus_interfaces")}
    for busif in ("M_AXI_GP0", "M_AXI_HP0", "M_AXI_HP2", "S_AXI_CONTROL"):
        if associated.get(busif) != "aclk":
            problems.append(f"{busif} is not associated with clock aclk")
    inferred = {c.args[0]: c.args[1] for c in d.called("ipx::infer_bus_interface") if len(c.args) >= 2}
    if not inferred.get("ap_clk_2", "").startswith("xilinx.com:signal:clock_rtl"):
        problems.append("ap_clk_2 (the 2x DSP clock) is not inferred as a clock interface")
    saves = d.called("ipx::save_core")
    xos = d.called("package_xo")
    if len(xos) != 1:
        problems.append(f"package_xo is called {len(xos)} times, expected once")
    else:
        a = _args(xos[0])
        want = {
            "-kernel_name": KERNEL,
            "-xo_path": str(xo),
            "-kernel_xml": str(trd / "prj/Vitis/kernel_xml/dpu/kernel.xml"),
            "-ip_directory": root,
        }
        for key, value in want.items():
            if a.get(key) != value:
                problems.append(f"package_xo {key} {a.get(key)!r}, expected {value!r}")
        if not saves or saves[-1].index > xos[0].index:
            problems.append("package_xo runs before ipx::save_core")
    return problems


def check_kernel_tcl(
    cfg: DpuConfig,
    board: Board,
    pfm: PlatformRecord,
    workdir: Path,
    trd_names: Sequence[str] | None = None,
    engine: str = "auto",
    script: Path | None = None,
) -> TclCheck:
    """Run kernel.tcl under the stand-in against a TRD tree holding `trd_names` (empty files)."""
    trd = workdir / "trd"
    for name in trd_names if trd_names is not None else TRD_SKELETON:
        (trd / name).parent.mkdir(parents=True, exist_ok=True)
        (trd / name).touch()
    params, dpu_conf, xo = workdir / "params.tcl", workdir / "dpu_conf.vh", workdir / "dpu.xo"
    write_params_tcl(cfg, board, pfm, params)
    write_dpu_conf_vh(cfg, dpu_conf)
    script = script or tcl_dir() / "kernel.tcl"
    run = run_standin(script, [str(params), str(trd), str(dpu_conf), str(xo)], engine=engine)
    if run.error is not None:
        return TclCheck(script.name, [f"the script stopped: {run.error}"], "")
    problems = check_kernel(run.calls, board, trd, dpu_conf, xo)
    files = sum(1 for c in run.calls if c.name == "add_files")
    return TclCheck(script.name, problems, f"{len(run.calls)} Vivado calls; {files} add_files; package_xo {KERNEL}")
