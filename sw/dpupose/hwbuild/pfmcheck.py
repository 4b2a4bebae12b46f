"""Checks on the platform design hw/tcl/platform.tcl describes, read from a stand-in run (no Vivado).

`check_platform` looks at the block design rebuilt from the recorded Vivado calls and returns every
problem it finds (an empty list means the design is what the DPU link needs):

- project: the board's part and board part, board files path set, extensible platform;
- PS: one zynq_ultra_ps_e with the board preset applied *before* the platform's own settings, pl_clk0 at
  the record's frequency, pl_ps_irq0 on, each DPU port of prj_config offered to v++ at 128 bits;
- clocks: a clock wizard with active-low reset and `locked`, one output per platform clock at the board's
  frequency, the configuration's 1x clock as the default; PFM.CLOCK ids = output index, and the ids in
  prj_config carry the configuration's 1x/2x frequencies;
- resets: one proc_sys_reset per clock, clocked by it, `dcm_locked` on the wizard's `locked`;
- interrupts: axi_intc reached from a PS master, its `irq` on `pl_ps_irq0`, PFM.IRQ on it;
- constant outputs (fan): port driven by an xlconstant of the right value, pin and I/O standard in the XDC;
- every pin used exists on its IP (KNOWN_PINS) and every clock/reset input used is driven;
- order: validate, save, wrapper, generate, then write_hw_platform to the expected file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from dpupose.dpu.board import Board
from dpupose.dpu.config import DpuConfig
from dpupose.dpu.writers import KERNEL
from dpupose.hwbuild.params import CLK_WIZ_MAX_OUTPUTS, DPU_AXI_WIDTH, PS_SLAVE_PORTS, dpu_clock_ids
from dpupose.hwbuild.platform import PlatformRecord
from dpupose.hwbuild.standin import Cell, Design
from dpupose.hwbuild.tcllist import TclListError, list_dict

PS_RULE = "xilinx.com:bd_rule:zynq_ultra_ps_e"


def _ps_pins(cell: Cell) -> set[str]:
    p = cell.props
    pins = set()
    if p.get("CONFIG.PSU__FPGA_PL0_ENABLE") == "1":
        pins.add("pl_clk0")
    if p.get("CONFIG.PSU__USE__FABRIC__RST") == "1":
        pins.add("pl_resetn0")
    if p.get("CONFIG.PSU__USE__IRQ0") == "1":
        pins.add("pl_ps_irq0")
    for n, name in ((0, "maxihpm0_fpd_aclk"), (1, "maxihpm1_fpd_aclk"), (2, "maxihpm0_lpd_aclk")):
        if p.get(f"CONFIG.PSU__USE__M_AXI_GP{n}") == "1":
            pins.add(name)
    return pins


def _ps_intf(cell: Cell) -> set[str]:
    names = {0: "M_AXI_HPM0_FPD", 1: "M_AXI_HPM1_FPD", 2: "M_AXI_HPM0_LPD"}
    return {v for n, v in names.items() if cell.props.get(f"CONFIG.PSU__USE__M_AXI_GP{n}") == "1"}


def _count(cell: Cell, key: str, default: int) -> int:
    try:
        return int(cell.props.get(key, default))
    except ValueError:
        return -1


PROC_SYS_RESET_PINS = {
    "slowest_sync_clk", "ext_reset_in", "aux_reset_in", "mb_debug_sys_rst", "dcm_locked", "mb_reset",
    "bus_struct_reset", "peripheral_reset", "interconnect_aresetn", "peripheral_aresetn",
}  # fmt: skip
# IP -> (pins, interface pins) that exist given the cell's properties. Pins a script uses on an IP not
# listed here fail the check: add the IP here (with its real pin names) when the platform starts using it.
KNOWN_PINS: dict[str, Callable[[Cell], tuple[set[str], set[str]]]] = {
    "zynq_ultra_ps_e": lambda c: (_ps_pins(c), _ps_intf(c)),
    "clk_wiz": lambda c: (
        {"clk_in1", "resetn" if c.props.get("CONFIG.RESET_TYPE") == "ACTIVE_LOW" else "reset", "locked"}
        | {f"clk_out{n}" for n in range(1, min(_count(c, "CONFIG.NUM_OUT_CLKS", 1), CLK_WIZ_MAX_OUTPUTS) + 1)},
        set(),
    ),
    "proc_sys_reset": lambda c: (PROC_SYS_RESET_PINS, set()),
    "axi_intc": lambda c: ({"s_axi_aclk", "s_axi_aresetn", "intr", "irq"}, {"s_axi"}),
    "smartconnect": lambda c: (
        {"aclk", "aresetn"},
        {f"S{i:02d}_AXI" for i in range(_count(c, "CONFIG.NUM_SI", 1))}
        | {f"M{i:02d}_AXI" for i in range(_count(c, "CONFIG.NUM_MI", 1))},
    ),
    "xlconstant": lambda c: ({"dout"}, set()),
}
# Input pins that must be driven when used (clocks and resets of the IPs above).
DRIVEN_INPUTS = {
    "clk_in1", "resetn", "slowest_sync_clk", "ext_reset_in", "dcm_locked", "s_axi_aclk",
    "s_axi_aresetn", "aclk", "aresetn", "maxihpm0_lpd_aclk", "maxihpm0_fpd_aclk", "maxihpm1_fpd_aclk",
}  # fmt: skip
# Inputs every cell of an IP must have driven (Vivado's validate_bd_design would refuse the design).
REQUIRED_INPUTS: dict[str, Callable[[Cell], set[str]]] = {
    "zynq_ultra_ps_e": lambda c: _ps_pins(c) & {"maxihpm0_lpd_aclk", "maxihpm0_fpd_aclk", "maxihpm1_fpd_aclk"},
    "clk_wiz": lambda c: {"clk_in1"},
    "proc_sys_reset": lambda c: {"slowest_sync_clk", "ext_reset_in", "dcm_locked"},
    "axi_intc": lambda c: {"s_axi_aclk", "s_axi_aresetn"},
    "smartconnect": lambda c: {"aclk", "aresetn"},
}
DRIVERS = {"pl_clk0", "pl_resetn0", "locked", "dout", "irq", "interconnect_aresetn", "peripheral_aresetn"}


def _is_driver(endpoint: str) -> bool:
    pin = endpoint.rpartition("/")[2]
    return pin in DRIVERS or re.fullmatch(r"clk_out\d+", pin) is not None


def parse_prj_config(text: str) -> dict[str, list[str]]:
    """The v++ config file as {section: ["key=value", ...]} (comments and blank lines dropped)."""
    sections: dict[str, list[str]] = {}
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            sections.setdefault(current, [])
        else:
            sections.setdefault(current, []).append(line)
    return sections


def parse_xdc_pins(text: str) -> dict[str, dict[str, str]]:
    """{port: {"PACKAGE_PIN": ..., "IOSTANDARD": ...}} from set_property lines of an XDC file."""
    out: dict[str, dict[str, str]] = {}
    single = re.compile(r"set_property\s+(\w+)\s+(\S+)\s+\[get_ports\s+\{?([\w\[\]]+?)\}?\]")
    multi = re.compile(r"set_property\s+-dict\s+\{([^}]*)\}\s+\[get_ports\s+\{?([\w\[\]]+?)\}?\]")
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        if m := multi.search(line):
            out.setdefault(m.group(2), {}).update(list_dict(m.group(1)))
        elif m := single.search(line):
            out.setdefault(m.group(3), {})[m.group(1)] = m.group(2)
    return out


def _pin_problems(d: Design) -> list[str]:
    problems = []
    for endpoint in sorted(d.endpoints()):
        if endpoint in d.ports:
            continue
        cell_path, _, pin = endpoint.rpartition("/")
        cell = d.cells.get(cell_path)
        if cell is None:
            problems.append(f"net endpoint {endpoint} is neither a port nor a pin of a cell")
            continue
        known = KNOWN_PINS.get(cell.ip)
        if known is None:
            problems.append(f"{cell_path}: the stand-in knows no pins of IP {cell.ip!r} (add it to KNOWN_PINS)")
        elif pin not in known(cell)[0]:
            problems.append(f"{endpoint}: {cell.ip} has no such pin with this configuration")
        elif pin in DRIVEN_INPUTS and not any(_is_driver(e) for e in d.net(endpoint)):
            problems.append(f"{endpoint} is used but not driven by a clock, reset or lock output")
    for cell in d.cells.values():
        for pin in sorted(REQUIRED_INPUTS.get(cell.ip, lambda c: set())(cell)):
            endpoint = f"{cell.path}/{pin}"
            if endpoint not in d.endpoints():
                problems.append(f"{endpoint} is not connected")
    for a, b in d.intf_nets:
        for end in (a, b):
            cell_path, _, pin = end.rpartition("/")
            cell = d.cells.get(cell_path)
            known = KNOWN_PINS.get(cell.ip) if cell else None
            if cell is None or known is None or pin not in known(cell)[1]:
                problems.append(f"interface {end}: no such interface pin with this configuration")
    return problems


def _one(d: Design, ip: str, problems: list[str]) -> Cell | None:
    cells = d.cells_of(ip)
    if len(cells) != 1:
        problems.append(f"expected one {ip} cell, found {len(cells)}")
        return None
    return cells[0]


def _pfm(cell: Cell, prop: str, problems: list[str]) -> dict[str, dict[str, str]]:
    try:
        return {k: list_dict(v) for k, v in list_dict(cell.props.get(prop, "")).items()}
    except TclListError as exc:
        problems.append(f"{cell.path} {prop} is not a Tcl dict of dicts: {exc}")
        return {}


def _check_ps(d: Design, ps: Cell, cfg: DpuConfig, board: Board, pfm: PlatformRecord, problems: list[str]) -> None:
    if not any(rule == PS_RULE and "apply_board_preset" in conf and '"1"' in conf for rule, conf in ps.automation):
        problems.append(f"{ps.path}: the board preset is not applied (apply_bd_automation -rule {PS_RULE})")
    auto = [c.index for c in d.called("apply_bd_automation")]
    config_sets = [c.index for c in d.called("set_property") if ps.path in c.args and "-dict" in c.args]
    if auto and config_sets and min(config_sets) < min(auto):
        problems.append(f"{ps.path}: CONFIG set before the board preset, which then overrides it")
    want = {"CONFIG.PSU__FPGA_PL0_ENABLE": "1", "CONFIG.PSU__USE__IRQ0": "1"}
    want["CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ"] = str(pfm.pl_clk0_mhz)
    for key, value in want.items():
        if ps.props.get(key) != value:
            problems.append(f"{ps.path}: {key} = {ps.props.get(key)!r}, expected {value!r}")
    axi = _pfm(ps, "PFM.AXI_PORT", problems)
    if not any(v.get("memport") == "M_AXI_GP" for v in axi.values()):
        problems.append(f"{ps.path}: PFM.AXI_PORT offers v++ no M_AXI_GP master for kernel control")
    for tag in sorted({p for core in board.dpu_ports[: cfg.cores] for p in core}):
        interface, gp = PS_SLAVE_PORTS[tag]
        entry = axi.get(interface, {})
        memport = "S_AXI_HPC" if tag.startswith("HPC") else "S_AXI_HP"
        if entry.get("sptag") != tag or entry.get("memport") != memport:
            problems.append(f"{ps.path}: PFM.AXI_PORT does not offer {interface} as {memport} sptag {tag}: {entry}")
        width = ps.props.get(f"CONFIG.PSU__SAXIGP{gp}__DATA_WIDTH")
        if width != str(DPU_AXI_WIDTH):
            problems.append(f"{ps.path}: {interface} is {width} bits wide, the DPU masters are {DPU_AXI_WIDTH}")


def _check_clocks(
    d: Design, ps: Cell, cfg: DpuConfig, board: Board, prj: dict[str, list[str]], problems: list[str]
) -> None:
    clk = _one(d, "clk_wiz", problems)
    if clk is None:
        return
    p = clk.props
    for key, value in (("CONFIG.RESET_TYPE", "ACTIVE_LOW"), ("CONFIG.USE_LOCKED", "true")):
        if p.get(key) != value:
            problems.append(f"{clk.path}: {key} = {p.get(key)!r}, expected {value!r}")
    clocks = board.platform_clocks_mhz
    if p.get("CONFIG.NUM_OUT_CLKS") != str(len(clocks)):
        problems.append(f"{clk.path}: {p.get('CONFIG.NUM_OUT_CLKS')} outputs, the board has {len(clocks)} clocks")
    for cid, mhz in enumerate(clocks):
        got = p.get(f"CONFIG.CLKOUT{cid + 1}_REQUESTED_OUT_FREQ")
        if got is None or abs(float(got) - mhz) > 1e-6:
            problems.append(f"{clk.path}/clk_out{cid + 1} (clock id {cid}) requests {got} MHz, expected {mhz}")
    if not d.connected(f"{ps.path}/pl_clk0", f"{clk.path}/clk_in1"):
        problems.append(f"{clk.path}/clk_in1 is not on {ps.path}/pl_clk0")
    if not d.connected(f"{ps.path}/pl_resetn0", f"{clk.path}/resetn"):
        problems.append(f"{clk.path}/resetn is not on {ps.path}/pl_resetn0")

    pfm_clock = _pfm(clk, "PFM.CLOCK", problems)
    freq_of_id: dict[int, int] = {}
    defaults = []
    for port, entry in sorted(pfm_clock.items()):
        m = re.fullmatch(r"clk_out(\d+)", port)
        cid = int(entry.get("id", "-1"))
        if not m or cid != int(m.group(1)) - 1 or not 0 <= cid < len(clocks):
            problems.append(f"{clk.path}: PFM.CLOCK {port} has id {cid}; clk_out<N+1> must be id N")
            continue
        freq_of_id[cid] = clocks[cid]
        if entry.get("is_default") == "true":
            defaults.append(cid)
        reset = entry.get("proc_sys_reset", "")
        reset_path = "/" + reset.strip("/")
        rcell = d.cells.get(reset_path)
        if rcell is None or rcell.ip != "proc_sys_reset":
            problems.append(f"{clk.path}: PFM.CLOCK {port} names reset {reset!r}, not a proc_sys_reset cell")
            continue
        if not d.connected(f"{clk.path}/{port}", f"{reset_path}/slowest_sync_clk"):
            problems.append(f"{reset_path}/slowest_sync_clk is not on {clk.path}/{port}")
        if not d.connected(f"{clk.path}/locked", f"{reset_path}/dcm_locked"):
            problems.append(f"{reset_path}/dcm_locked is not on {clk.path}/locked")
        if not d.connected(f"{ps.path}/pl_resetn0", f"{reset_path}/ext_reset_in"):
            problems.append(f"{reset_path}/ext_reset_in is not on {ps.path}/pl_resetn0")
    if len(pfm_clock) != len(clocks):
        problems.append(f"{clk.path}: PFM.CLOCK declares {len(pfm_clock)} clocks, the board has {len(clocks)}")
    resets = d.cells_of("proc_sys_reset")
    if len(resets) != len(clocks):
        problems.append(f"{len(resets)} proc_sys_reset cells for {len(clocks)} clocks (one per clock expected)")
    id_1x, id_2x = dpu_clock_ids(cfg, board)
    if defaults != [id_1x]:
        problems.append(f"{clk.path}: default clock id(s) {defaults}, expected the DPU 1x clock id {id_1x}")
    for line in prj.get("clock", []):
        m = re.fullmatch(r"id=(\d+):(\w+)\.(\w+)", line)
        if not m:
            problems.append(f"prj_config [clock] line not understood: {line!r}")
            continue
        cid, cu, port = int(m.group(1)), m.group(2), m.group(3)
        want = {"aclk": cfg.clock_mhz, "ap_clk_2": cfg.clock_2x_mhz}.get(port) if cu.startswith(KERNEL) else None
        if cid not in freq_of_id:
            problems.append(f"prj_config uses clock id {cid} for {cu}.{port}; the platform has no such id")
        elif want is not None and freq_of_id[cid] != want:
            problems.append(f"prj_config clock id {cid} ({freq_of_id[cid]} MHz) for {cu}.{port}, expected {want} MHz")
    ids = {int(m.group(1)) for line in prj.get("clock", []) if (m := re.match(r"id=(\d+):", line))}
    if not {id_1x, id_2x} <= ids:
        problems.append(f"prj_config does not use the DPU clock ids {id_1x}/{id_2x}")


def _check_irq(d: Design, ps: Cell, problems: list[str]) -> None:
    intc = _one(d, "axi_intc", problems)
    if intc is None:
        return
    if not d.connected(f"{intc.path}/irq", f"{ps.path}/pl_ps_irq0"):
        problems.append(f"{intc.path}/irq is not on {ps.path}/pl_ps_irq0")
    irq = _pfm(intc, "PFM.IRQ", problems)
    if "intr" not in irq or int(irq["intr"].get("range", "0")) < 1:
        problems.append(f"{intc.path}: PFM.IRQ does not offer its intr inputs to v++: {irq}")
    # The intc's AXI slave must be reachable from a PS master through interconnects.
    seen, frontier = set(), [f"{intc.path}/s_axi"]
    while frontier:
        pin = frontier.pop()
        if pin in seen:
            continue
        seen.add(pin)
        for peer in d.intf_peers(pin):
            cell = d.cells.get(peer.rpartition("/")[0])
            if cell is not None and cell.ip in ("smartconnect", "axi_interconnect"):
                frontier += [f"{cell.path}/{i}" for i in KNOWN_PINS[cell.ip](cell)[1]]
            else:
                frontier.append(peer)
    if not any(p.startswith(f"{ps.path}/M_AXI_") for p in seen):
        problems.append(f"{intc.path}/s_axi is not reachable from a PS master")


def _check_outputs(d: Design, pfm: PlatformRecord, problems: list[str]) -> None:
    xdcs = [path for fileset, path in d.files if fileset == "constrs_1" and path.endswith(".xdc")]
    pins: dict[str, dict[str, str]] = {}
    for path in xdcs:
        try:
            pins.update(parse_xdc_pins(Path(path).read_text()))
        except OSError as exc:
            problems.append(f"constraints file {path} cannot be read: {exc}")
    for out in pfm.constant_outputs:
        port = f"/{out.port}"
        if d.ports.get(port, {}).get("-dir") != "O":
            problems.append(f"no output port {out.port}")
            continue
        drivers = [e for e in d.net(port) if e.endswith("/dout") and e.rpartition("/")[0] in d.cells]
        consts = [d.cells[e.rpartition("/")[0]] for e in drivers]
        if (
            len(consts) != 1
            or consts[0].ip != "xlconstant"
            or consts[0].props.get("CONFIG.CONST_VAL") != str(out.value)
        ):
            problems.append(f"port {out.port} is not driven by one xlconstant of value {out.value}")
        want = {"PACKAGE_PIN": out.pin, "IOSTANDARD": out.iostandard}
        got = {k: pins.get(out.port, {}).get(k) for k in want}
        if got != want:
            problems.append(f"port {out.port}: constraints {got}, expected {want} (files: {xdcs})")


def _check_flow(d: Design, board: Board, xsa: Path, problems: list[str]) -> None:
    if d.project.get("part") != board.part:
        problems.append(f"create_project -part {d.project.get('part')!r}, the board's part is {board.part!r}")
    if d.props.get("project", {}).get("board_part") != board.board_part:
        problems.append(f"board_part {d.props.get('project', {}).get('board_part')!r}, expected {board.board_part!r}")
    if d.props.get("project", {}).get("platform.extensible") != "true":
        problems.append("the project is not marked platform.extensible")
    if "board.repoPaths" not in d.params:
        problems.append("set_param board.repoPaths is missing: Vivado would not find the pinned board files")
    versions = d.called("version")
    if not versions or versions[0].index > min((c.index for c in d.called("create_project")), default=0):
        problems.append("the script does not check `version -short` before creating the project")
    order = ["validate_bd_design", "save_bd_design", "make_wrapper", "generate_target", "write_hw_platform"]
    last_edit = max((c.index for c in d.calls if c.name.startswith(("create_bd_", "connect_bd_"))), default=-1)
    previous, previous_name = last_edit, "the last create_bd_*/connect_bd_* call"
    for name in order:
        calls = d.called(name)
        if not calls:
            problems.append(f"{name} is never called")
            continue
        if calls[0].index < previous:
            problems.append(f"{name} comes before {previous_name}")
        previous, previous_name = calls[0].index, name
    writes = d.called("write_hw_platform")
    if writes:
        args = list(writes[-1].args)
        target = args[args.index("-file") + 1] if "-file" in args[:-1] else None
        if target != str(xsa):
            problems.append(f"write_hw_platform writes {target}, expected {xsa}")
        pfm_sets = [c.index for c in d.called("set_property") if c.args and str(c.args[0]).startswith("PFM.")]
        if not pfm_sets or max(pfm_sets) > writes[-1].index:
            problems.append("PFM.* properties are not all set before write_hw_platform")


def check_platform(
    d: Design, cfg: DpuConfig, board: Board, pfm: PlatformRecord, prj_config_text: str, xsa: Path
) -> list[str]:
    """Every problem with the recorded platform design (empty list: it is what the DPU link needs)."""
    problems: list[str] = []
    _check_flow(d, board, xsa, problems)
    ps = _one(d, "zynq_ultra_ps_e", problems)
    if ps is not None:
        _check_ps(d, ps, cfg, board, pfm, problems)
        _check_clocks(d, ps, cfg, board, parse_prj_config(prj_config_text), problems)
        _check_irq(d, ps, problems)
    _check_outputs(d, pfm, problems)
    problems += _pin_problems(d)
    return problems


def summary(d: Design) -> str:
    """One line describing the recorded design (for `dpupose hw check`)."""
    ips: dict[str, int] = {}
    for cell in d.cells.values():
        ips[cell.ip] = ips.get(cell.ip, 0) + 1
    cells = ", ".join(f"{n}x {ip}" if n > 1 else ip for ip, n in sorted(ips.items()))
    nets = {frozenset(d.net(e)) for e in d.endpoints()}
    return f"{len(d.calls)} Vivado calls; cells: {cells}; {len(nets)} nets, {len(d.intf_nets)} AXI connections"
