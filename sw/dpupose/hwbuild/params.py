"""The data-only files the fixed Tcl scripts read: ``params.tcl`` and ``platform.xdc``.

hw/tcl/platform.tcl and hw/tcl/kernel.tcl are hand-written and board-agnostic; everything that depends
on the board or the DPU configuration reaches them through ``params.tcl`` (Tcl ``set`` lines only, no
logic) and the constraints file ``platform.xdc``. The text builders are pure functions; the writers
rewrite a file only when its content changes (so stamps and Make stay incremental).

Clock ids: the platform's clock wizard has one output per entry of the board's ``platform_clocks_mhz``;
output ``clk_out<N+1>`` is platform clock id N, the id ``prj_config`` uses. The configuration's 1x clock is
the platform's default clock (kernel control and anything v++ is not told otherwise).

API:
    params_tcl(cfg, board, pfm) -> str          write_params_tcl(cfg, board, pfm, path) -> bool
    platform_xdc(cfg, board, pfm) -> str        write_platform_xdc(cfg, board, pfm, path) -> bool
    dpu_clock_ids(cfg, board) -> (id_1x, id_2x)
"""

from __future__ import annotations

import re
from pathlib import Path

from dpupose.dpu.board import Board
from dpupose.dpu.config import DpuConfig
from dpupose.dpu.paths import board_file
from dpupose.dpu.writers import KERNEL, write_if_changed
from dpupose.errors import ConfigError
from dpupose.hwbuild.platform import PlatformRecord

GENERATOR = "dpupose.hwbuild.params"
VIVADO_VERSION = "2022.1"  # Vivado/Vitis release matching PYNQ 3.0.1, pynq-dpu 2.5.1 and Vitis AI 2.5
DESIGN_NAME = "dpu_platform"  # block design name; the wrapper is dpu_platform_wrapper
CLK_WIZ_MAX_OUTPUTS = 7  # clk_wiz (MMCM) has clk_out1..clk_out7
DPU_AXI_WIDTH = 128  # DPUCZDX8G data and instruction masters on MPSoC are 128-bit AXI4
IRQ_INPUTS = 32  # axi_intc inputs offered to v++ (PFM.IRQ range)

# Zynq UltraScale+ PS slave ports by platform port name (prj_config sp=...:<name>):
# name -> (PS interface, index N of CONFIG.PSU__USE__S_AXI_GP<N> / PSU__SAXIGP<N>__DATA_WIDTH).
PS_SLAVE_PORTS: dict[str, tuple[str, int]] = {
    "HPC0": ("S_AXI_HPC0_FPD", 0),
    "HPC1": ("S_AXI_HPC1_FPD", 1),
    "HP0": ("S_AXI_HP0_FPD", 2),
    "HP1": ("S_AXI_HP1_FPD", 3),
    "HP2": ("S_AXI_HP2_FPD", 4),
    "HP3": ("S_AXI_HP3_FPD", 5),
}
# PS masters offered to v++ for kernel control registers (M_AXI_HPM0_LPD drives the interrupt controller).
CONTROL_PORTS: tuple[str, ...] = ("M_AXI_HPM0_FPD", "M_AXI_HPM1_FPD")

_BARE = re.compile(r"^[A-Za-z0-9_.:/+-]+$")


def tcl_word(value: object) -> str:
    """`value` as one Tcl word: bare when safe, else in braces; refuses text braces cannot hold."""
    text = str(value)
    if _BARE.match(text):
        return text
    if "\\" in text or "{" in text or "}" in text or "\n" in text or "[" in text or "$" in text:
        raise ConfigError(f"{text!r} cannot go into the Tcl parameter file; use plain names and paths")
    return "{" + text + "}"


def tcl_comment(text: str) -> str:
    """`text` as the rest of one Tcl comment line: its line breaks (after which Tcl reads a command) become
    blanks, and its backslashes are doubled (a comment's last backslash carries it onto the next line)."""
    return " ".join(text.split()).replace("\\", "\\\\")


def tcl_list(items: list[object]) -> str:
    return "{" + " ".join(tcl_word(i) for i in items) + "}"


def dpu_clock_ids(cfg: DpuConfig, board: Board) -> tuple[int, int]:
    """Platform clock ids of the configuration's 1x and 2x clocks (ConfigError if the board lacks one)."""
    ids = []
    for mhz, what in ((cfg.clock_mhz, "1x"), (cfg.clock_2x_mhz, "2x")):
        cid = board.clock_id(mhz)
        if cid is None:
            table = ", ".join(f"id {i}: {f} MHz" for i, f in enumerate(board.platform_clocks_mhz))
            raise ConfigError(
                f"{cfg.name}: the {board.title} platform has no {mhz} MHz clock for the DPU {what} clock "
                f"({table}); choose a clock_mhz whose 1x and 2x clocks are both in that table"
            )
        ids.append(cid)
    return ids[0], ids[1]


def _validate_board(board: Board) -> None:
    clocks = board.platform_clocks_mhz
    if not 1 <= len(clocks) <= CLK_WIZ_MAX_OUTPUTS:
        raise ConfigError(
            f"{board_file(board.name)}: platform_clocks_mhz has {len(clocks)} clocks; the clock "
            f"wizard has at most {CLK_WIZ_MAX_OUTPUTS} outputs"
        )
    if len(set(clocks)) != len(clocks):
        raise ConfigError(f"{board_file(board.name)}: platform_clocks_mhz lists a clock twice")
    for core_ports in board.dpu_ports:
        for port in core_ports:
            if port not in PS_SLAVE_PORTS:
                raise ConfigError(
                    f"{board_file(board.name)}: dpu_ports names {port!r}; the platform offers "
                    f"{', '.join(PS_SLAVE_PORTS)}"
                )


def slave_ports(cfg: DpuConfig, board: Board) -> list[str]:
    """Platform ports the configuration's cores use, in first-use order (each once)."""
    used: list[str] = []
    for core_ports in board.dpu_ports[: cfg.cores]:
        used += [p for p in core_ports if p not in used]
    return used


def params_tcl(cfg: DpuConfig, board: Board, pfm: PlatformRecord) -> str:
    """The parameter file hw/tcl/platform.tcl and hw/tcl/kernel.tcl source (Tcl `set` lines only)."""
    _validate_board(board)
    id_1x, id_2x = dpu_clock_ids(cfg, board)
    ports = [[tag, PS_SLAVE_PORTS[tag][0], PS_SLAVE_PORTS[tag][1], DPU_AXI_WIDTH] for tag in slave_ports(cfg, board)]
    rows: list[tuple[str, str, str]] = [
        ("config", tcl_word(cfg.name), "DPU configuration this platform is built for"),
        ("board", tcl_word(board.name), board.title),
        ("part", tcl_word(board.part), ""),
        ("board_part", tcl_word(board.board_part), f"board files version {pfm.board_files_version}"),
        ("vivado_version", tcl_word(VIVADO_VERSION), "the scripts refuse any other release"),
        ("design_name", tcl_word(DESIGN_NAME), "block design; top is <design_name>_wrapper"),
        ("pfm_name", tcl_word(f"dpupose:{board.name}:{DESIGN_NAME}:1.0"), "vendor:board:name:version"),
        ("pl_clk0_mhz", str(pfm.pl_clk0_mhz), "PS pl_clk0, the clock wizard input"),
        ("clocks_mhz", tcl_list(list(board.platform_clocks_mhz)), "clk_out<N+1> = platform clock id N"),
        ("default_clock_id", str(id_1x), f"the DPU 1x clock, {cfg.clock_mhz} MHz"),
        ("dpu_clock_ids", tcl_list([id_1x, id_2x]), f"1x/2x = {cfg.clock_mhz}/{cfg.clock_2x_mhz} MHz"),
        ("slave_ports", "{" + " ".join(tcl_list(p) for p in ports) + "}", "{port PS-interface GP-index bits}"),
        ("control_ports", tcl_list(list(CONTROL_PORTS)), "PS masters v++ may use for kernel control"),
        ("irq_inputs", str(IRQ_INPUTS), "interrupt controller inputs offered to v++"),
        (
            "constant_outputs",
            "{" + " ".join(tcl_list([o.port, o.value]) for o in pfm.constant_outputs) + "}",
            "{port value}; pins are in platform.xdc",
        ),
        ("kernel_name", tcl_word(KERNEL), "RTL kernel name (kernel.xml, nk= in prj_config)"),
    ]
    width = max(len(k) for k, _, _ in rows) + len("set dpupose()") + 1
    lines = [
        f"# Generated by {GENERATOR} from DPU configuration {cfg.name} for board {board.name}; do not edit.",
        "# Data only: sourced by hw/tcl/platform.tcl and hw/tcl/kernel.tcl.",
    ]
    for key, value, comment in rows:
        line = f"set dpupose({key})".ljust(width) + value
        lines.append(line + (f"  ;# {tcl_comment(comment)}" if comment else ""))
    return "\n".join(lines) + "\n"


def platform_xdc(cfg: DpuConfig, board: Board, pfm: PlatformRecord) -> str:
    """Pin constraints for the platform's constant outputs (e.g. the fan enable)."""
    lines = [f"# Generated by {GENERATOR} from DPU configuration {cfg.name} for board {board.name}; do not edit."]
    for out in pfm.constant_outputs:
        lines.append(f"# {out.port}: driven to {out.value} by the platform")
        lines.append(f"set_property PACKAGE_PIN {out.pin} [get_ports {out.port}]")
        lines.append(f"set_property IOSTANDARD {out.iostandard} [get_ports {out.port}]")
    return "\n".join(lines) + "\n"


def write_params_tcl(cfg: DpuConfig, board: Board, pfm: PlatformRecord, path: str | Path) -> bool:
    return write_if_changed(path, params_tcl(cfg, board, pfm))


def write_platform_xdc(cfg: DpuConfig, board: Board, pfm: PlatformRecord, path: str | Path) -> bool:
    return write_if_changed(path, platform_xdc(cfg, board, pfm))
