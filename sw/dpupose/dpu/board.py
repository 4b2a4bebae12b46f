"""Board records: one TOML file per board, ``hw/boards/<name>/board.toml``, loaded into a frozen `Board`.

A record holds what the DPU tooling needs to know about a board: the device and its programmable-logic
resources, what the platform itself takes, DDR bandwidth, clocks (the platform's clock table, the DPU
clocks known to be safe, the DSP48 maximum frequency of the speed grade), the AXI ports each DPU core
connects to, the implementation strategy and the board's default DPU configuration.

API:
    load_board(name) -> Board        ``ultra96v2``, ``zcu104``, ``zcu102``, ``kv260``
    list_boards() -> list[str]
    default_config_name(board) -> str   the project's default DPU configuration for that board
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from dpupose.dpu.paths import boards_dir
from dpupose.dpu.tomlload import read_toml, reject_unknown
from dpupose.errors import ConfigError


@dataclass(frozen=True)
class Resources:
    """Programmable-logic resources (BRAM in 36 Kb blocks; halves are BRAM18)."""

    lut: float = 0
    ff: float = 0
    bram36: float = 0
    uram: float = 0
    dsp: float = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(*(getattr(self, f) + getattr(other, f) for f in RESOURCE_NAMES))

    def scaled(self, factor: float) -> Resources:
        return Resources(*(getattr(self, f) * factor for f in RESOURCE_NAMES))

    def as_dict(self) -> dict[str, float]:
        return {f: getattr(self, f) for f in RESOURCE_NAMES}


RESOURCE_NAMES: tuple[str, ...] = ("lut", "ff", "bram36", "uram", "dsp")


@dataclass(frozen=True)
class Board:
    name: str  # folder name under hw/boards/
    title: str  # e.g. "Avnet Ultra96-V2"
    device: str  # e.g. "ZU3EG"
    part: str  # Vivado part string
    board_part: str  # Vivado board part (pinned version)
    speed_grade: str  # "-1", "-2", ...
    resources: Resources  # what the device has
    platform_overhead: Resources  # what the platform design takes before any DPU (reserved)
    ddr: str  # memory description
    ddr_bandwidth_gbps: float  # peak DDR bandwidth in GB/s (1e9 bytes/s), shared by CPU and DPU
    cpu: str
    platform_clocks_mhz: tuple[int, ...]  # platform clock table; prj_config clock id = index
    safe_dpu_clocks_mhz: tuple[int, ...]  # 1x DPU clocks known to work on this board
    max_safe_dpu_clock_mhz: int  # above this the board is at risk (power, reset, thermals)
    dsp_fmax_mhz: int  # DSP48E2 maximum frequency of the speed grade (limits the 2x clock)
    dpu_ports: tuple[tuple[str, str, str], ...]  # per core: platform ports of M_AXI_GP0, _HP0, _HP2
    impl_strategy: str  # Vivado implementation strategy for the v++ link
    default_dpu_config: str | None = None  # the project's default configuration for this board
    softmax_port: str | None = None  # platform port for the softmax kernel's M_AXI, if it can have one
    notes: str = ""

    @property
    def max_cores_by_ports(self) -> int:
        return len(self.dpu_ports)

    def clock_id(self, mhz: int) -> int | None:
        """The platform clock id that runs at `mhz`, or None."""
        for i, f in enumerate(self.platform_clocks_mhz):
            if f == mhz:
                return i
        return None


_TOP_KEYS = {f.name for f in dataclasses.fields(Board)} - {"name"}


def _resources(data: Any, where: str) -> Resources:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table of {', '.join(RESOURCE_NAMES)}")
    reject_unknown(data, RESOURCE_NAMES, where)
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"{where}.{key}: expected a non-negative number, got {value!r}")
    return Resources(**data)


_PORT = re.compile(r"[A-Za-z0-9_]+")  # a platform port (HP0)
_STRATEGY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_ -]*")  # a Vivado strategy (Performance_Explore, Vivado ... Defaults)


def board_from_dict(data: dict[str, Any], name: str, where: str) -> Board:
    reject_unknown(data, _TOP_KEYS, where)
    required = {f.name for f in dataclasses.fields(Board) if f.default is dataclasses.MISSING} - {"name"}
    missing = sorted(required - set(data))
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(missing)}")
    kwargs = dict(data)
    for key in ("title", "device", "part", "board_part", "speed_grade", "ddr", "cpu", "impl_strategy", "notes"):
        if key in data and not isinstance(data[key], str):
            raise ConfigError(f"{where}: {key} must be a string, got {data[key]!r}")
    for key in ("default_dpu_config", "softmax_port"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise ConfigError(f"{where}: {key} must be a string, got {data[key]!r}")
    kwargs["resources"] = _resources(data["resources"], f"{where}: resources")
    kwargs["platform_overhead"] = _resources(data["platform_overhead"], f"{where}: platform_overhead")
    kwargs["platform_clocks_mhz"] = _clocks(data["platform_clocks_mhz"], f"{where}: platform_clocks_mhz")
    kwargs["safe_dpu_clocks_mhz"] = _clocks(
        data["safe_dpu_clocks_mhz"], f"{where}: safe_dpu_clocks_mhz", allow_empty=True
    )  # a new board may have none known yet (fit then flags every clock)
    for key in ("max_safe_dpu_clock_mhz", "dsp_fmax_mhz"):
        kwargs[key] = _positive(data[key], f"{where}: {key}", integer=True)
    ports = data["dpu_ports"]
    if (
        not isinstance(ports, list)
        or not ports
        or any(not isinstance(p, list) or len(p) != 3 or not all(isinstance(x, str) for x in p) for p in ports)
    ):
        raise ConfigError(f"{where}: dpu_ports must list [GP0, HP0, HP2] platform ports (strings) per core")
    kwargs["dpu_ports"] = tuple(tuple(p) for p in ports)
    # These go into the v++ link configuration (sp=..., prop=run.impl_1.strategy=...), one line each: a line
    # break there would add options of its own to the link (a Tcl hook Vivado runs, say).
    names = [("impl_strategy", data["impl_strategy"], _STRATEGY)]
    names += [("softmax_port", data["softmax_port"], _PORT)] if data.get("softmax_port") is not None else []
    names += [("dpu_ports", port, _PORT) for core in ports for port in core]
    for key, value, pattern in names:
        if not pattern.fullmatch(value):
            allowed = "letters, digits, '_', '-' and blanks" if pattern is _STRATEGY else "letters, digits and '_'"
            raise ConfigError(f"{where}: {key} holds {value!r}; it may hold only {allowed}")
    kwargs["ddr_bandwidth_gbps"] = float(_positive(data["ddr_bandwidth_gbps"], f"{where}: ddr_bandwidth_gbps"))
    return Board(name=name, **kwargs)


def _positive(value: Any, where: str, integer: bool = False) -> int | float:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not value > 0 or value != value:
        raise ConfigError(f"{where}: expected a positive {'integer' if integer else 'number'}, got {value!r}")
    return value


def _clocks(value: Any, where: str, allow_empty: bool = False) -> tuple[int, ...]:
    if not isinstance(value, list) or not (value or allow_empty):
        raise ConfigError(f"{where}: expected a list of clock frequencies in MHz, got {value!r}")
    return tuple(int(_positive(v, where, integer=True)) for v in value)


def list_boards() -> list[str]:
    return sorted(p.parent.name for p in boards_dir().glob("*/board.toml"))


def load_board(name: str) -> Board:
    """Load hw/boards/<name>/board.toml. Names are case-insensitive (``Ultra96V2`` works)."""
    key = str(name).strip().lower().replace("-", "").replace("_", "")
    path = boards_dir() / key / "board.toml"
    if not path.is_file():
        raise ConfigError(f"unknown board {name!r}; known boards: {', '.join(list_boards())}")
    return board_from_dict(read_toml(path), key, str(path))


def default_config_name(board: str | Board = "ultra96v2") -> str:
    b = board if isinstance(board, Board) else load_board(board)
    if not b.default_dpu_config:
        raise ConfigError(f"board {b.name} names no default DPU configuration (default_dpu_config)")
    return b.default_dpu_config
