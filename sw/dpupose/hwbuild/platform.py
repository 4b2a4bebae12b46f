"""Platform records: ``hw/boards/<board>/platform.toml``, what the Vivado platform build needs beyond board.toml.

board.toml (read by `dpupose.dpu.board`) holds the device, clocks and AXI ports the DPU model needs; this
record adds the facts only the hardware build uses: the pinned board-file version (checked against the
user's board repository before Vivado starts), the PS reference clock and the PL pins the platform drives
with a constant (the Ultra96-V2 fan).

API:
    load_platform(board_name) -> PlatformRecord
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dpupose.dpu.paths import board_file, boards_dir
from dpupose.dpu.tomlload import read_toml, reject_unknown
from dpupose.errors import ConfigError


@dataclass(frozen=True)
class ConstantOutput:
    """A PL output port tied to a constant in the platform (e.g. a fan enable)."""

    port: str  # top-level port name in the block design and the XDC
    pin: str  # package pin, e.g. "F4"
    iostandard: str  # e.g. "LVCMOS12"
    value: int  # 0 or 1


@dataclass(frozen=True)
class PlatformRecord:
    board: str  # folder name under hw/boards/
    board_files_vendor: str  # <board vendor=...> of the pinned board files
    board_files_name: str  # <board name=...>, compared without regard to case
    board_files_version: str  # <file_version> of the pinned board files
    board_files_source: str  # where to get them (shown in messages)
    pl_clk0_mhz: int  # PS pl_clk0 frequency, the clock wizard's input
    constant_outputs: tuple[ConstantOutput, ...] = ()


_KEYS = {
    "board_files_vendor",
    "board_files_name",
    "board_files_version",
    "board_files_source",
    "pl_clk0_mhz",
    "constant_outputs",
}
_OUTPUT_KEYS = {"port", "pin", "iostandard", "value"}


def _constant_output(data: Any, where: str) -> ConstantOutput:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table with {', '.join(sorted(_OUTPUT_KEYS))}")
    reject_unknown(data, _OUTPUT_KEYS, where)
    missing = sorted(_OUTPUT_KEYS - set(data))
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(missing)}")
    if data["value"] not in (0, 1) or isinstance(data["value"], bool):
        raise ConfigError(f"{where}: value must be 0 or 1, got {data['value']!r}")
    for key in ("port", "pin", "iostandard"):
        text = data[key]
        if not isinstance(text, str) or not text or not text.replace("_", "").isalnum():
            raise ConfigError(f"{where}: {key} must be a plain name (letters, digits, _), got {text!r}")
    return ConstantOutput(data["port"], data["pin"], data["iostandard"], int(data["value"]))


def platform_from_dict(data: dict[str, Any], board: str, where: str) -> PlatformRecord:
    reject_unknown(data, _KEYS, where)
    missing = sorted(_KEYS - {"constant_outputs"} - set(data))
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(missing)}")
    outputs = tuple(
        _constant_output(item, f"{where}: constant_outputs[{i}]")
        for i, item in enumerate(data.get("constant_outputs", []))
    )
    mhz = data["pl_clk0_mhz"]
    if isinstance(mhz, bool) or not isinstance(mhz, int) or not 10 <= mhz <= 300:
        raise ConfigError(f"{where}: pl_clk0_mhz must be an integer 10..300, got {mhz!r}")
    strings = {k: data[k] for k in _KEYS - {"constant_outputs", "pl_clk0_mhz"}}
    for key, value in strings.items():
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}: {key} must be a non-empty string")
    return PlatformRecord(board=board, pl_clk0_mhz=mhz, constant_outputs=outputs, **strings)


def load_platform(board: str) -> PlatformRecord:
    """Load hw/boards/<board>/platform.toml; the error names the boards that have one."""
    path = boards_dir() / board / "platform.toml"
    if not path.is_file():
        have = sorted(p.parent.name for p in boards_dir().glob("*/platform.toml"))
        raise ConfigError(
            f"board {board!r} has no platform record ({path}); the hardware build supports: "
            f"{', '.join(have) or 'none'}. Add {board_file(board, 'platform.toml')} (see ultra96v2's) to build for it"
        )
    return platform_from_dict(read_toml(path), board, str(path))
