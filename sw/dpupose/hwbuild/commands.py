"""Command lines of the hardware build, as pure functions of the build's paths (tested against golden text).

    vivado -mode batch -notrace -nojournal -nolog -source hw/tcl/platform.tcl
           -tclargs gen/params.tcl <board repo> platform/platform.xsa
    vivado -mode batch -notrace -nojournal -nolog -source hw/tcl/kernel.tcl
           -tclargs gen/params.tcl <TRD root> gen/dpu_conf.vh kernel/dpu.xo
    v++ -l -t hw --platform platform/platform.xsa --config gen/prj_config --save-temps
        --temp_dir link --log_dir logs/vpp --report_dir link/reports
        [--xp param:compiler.userPostSysLinkOverlayTcl=<TRD>/prj/Vitis/syslink/strip_interconnects.tcl]
        -o link/dpu.xclbin kernel/dpu.xo

Vivado runs in platform/ or kernel/ (its scratch files land there); its output goes to logs/<step>.log.
"""

from __future__ import annotations

from pathlib import Path

from dpupose.hwbuild.inputs import POSTLINK_TCL
from dpupose.hwbuild.layout import BuildPaths

VIVADO = "vivado"
VPP = "v++"
_VIVADO_BATCH = [VIVADO, "-mode", "batch", "-notrace", "-nojournal", "-nolog"]


def vivado_version_argv() -> list[str]:
    return [VIVADO, "-version"]


def vpp_version_argv() -> list[str]:
    return [VPP, "--version"]


def platform_argv(paths: BuildPaths, board_repo: Path) -> list[str]:
    """Build platform.xsa from hw/tcl/platform.tcl and the generated params.tcl."""
    tclargs = [str(paths.params), str(board_repo), str(paths.xsa)]
    return [*_VIVADO_BATCH, "-source", str(paths.platform_tcl), "-tclargs", *tclargs]


def kernel_argv(paths: BuildPaths, trd_root: Path) -> list[str]:
    """Package the TRD's DPUCZDX8G RTL with the generated dpu_conf.vh as dpu.xo."""
    tclargs = [str(paths.params), str(trd_root), str(paths.dpu_conf), str(paths.xo)]
    return [*_VIVADO_BATCH, "-source", str(paths.kernel_tcl), "-tclargs", *tclargs]


def link_argv(paths: BuildPaths, trd_root: Path, postlink: bool = True) -> list[str]:
    """Link dpu.xo into the platform (prj_config: clocks, ports, cores, strategy) -> dpu.xclbin."""
    argv = [VPP, "-l", "-t", "hw", "--platform", str(paths.xsa), "--config", str(paths.prj_config)]
    argv += ["--save-temps", "--temp_dir", str(paths.link_dir)]
    argv += ["--log_dir", str(paths.logs / "vpp"), "--report_dir", str(paths.link_dir / "reports")]
    if postlink:
        argv += ["--xp", f"param:compiler.userPostSysLinkOverlayTcl={trd_root / POSTLINK_TCL}"]
    return [*argv, "-o", str(paths.linked_xclbin), str(paths.xo)]
