"""DPU configuration (DPUCZDX8G, IP v4.x / Vitis AI 2.5): one frozen dataclass, loaded from TOML.

Everything derived from a DPU configuration (dpu_conf.vh, prj_config, arch.json, fingerprint, resources,
performance) starts from a `DpuConfig`. Files live in ``hw/dpu/configs/<name>.toml``; the TOML keys are
exactly the dataclass fields below (except ``name``, which is the file's stem). Unknown keys and illegal
combinations raise `ConfigError` with the reason.

API:
    load_config(name_or_path) -> DpuConfig      a shipped name (``u96v2-b1600-pynq``) or a .toml path
    list_configs() -> list[str]                 names of the shipped configurations
    config_from_arch(arch, clock_mhz, cores=1, **options) -> DpuConfig   an ad-hoc configuration
    DpuConfig.from_dict(data, name) / DpuConfig.to_dict()
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from dpupose.dpu.board import load_board
from dpupose.dpu.paths import configs_dir
from dpupose.dpu.tomlload import read_toml, reject_unknown
from dpupose.errors import ConfigError
from dpupose.fsio import dangling_link


class Arch(Enum):
    """Conv array size: peak operations per 1x clock cycle (one MAC = 2 ops)."""

    B512 = "B512"
    B800 = "B800"
    B1024 = "B1024"
    B1152 = "B1152"
    B1600 = "B1600"
    B2304 = "B2304"
    B3136 = "B3136"
    B4096 = "B4096"

    @property
    def index(self) -> int:
        """The ARCH code in bits 0-3 of the fingerprint."""
        return list(Arch).index(self)

    @property
    def pp(self) -> int:
        """Pixel parallelism (output pixels along the width per cycle)."""
        return _PARALLELISM[self][0]

    @property
    def icp(self) -> int:
        """Input channel parallelism; bank width in bytes."""
        return _PARALLELISM[self][1]

    @property
    def ocp(self) -> int:
        """Output channel parallelism."""
        return _PARALLELISM[self][1]

    @property
    def peak_ops_per_cycle(self) -> int:
        return 2 * self.pp * self.icp * self.ocp

    @classmethod
    def parse(cls, text: str) -> Arch:
        key = str(text).strip().upper()
        if not key.startswith("B"):
            key = "B" + key
        try:
            return cls(key)
        except ValueError:
            raise ConfigError(f"unknown DPU ARCH {text!r}; choose one of {', '.join(a.value for a in cls)}") from None


# ARCH -> (PP, ICP = OCP), PG338 / Vitis AI target factory.
_PARALLELISM: dict[Arch, tuple[int, int]] = {
    Arch.B512: (4, 8),
    Arch.B800: (4, 10),
    Arch.B1024: (8, 8),
    Arch.B1152: (4, 12),
    Arch.B1600: (8, 10),
    Arch.B2304: (8, 12),
    Arch.B3136: (8, 14),
    Arch.B4096: (8, 16),
}


class RamUsage(Enum):
    """Image bank groups: low = 2, high = 3 (each group has PP banks)."""

    LOW = "low"
    HIGH = "high"

    @property
    def bank_groups(self) -> int:
        return 2 if self is RamUsage.LOW else 3


class AluParallel(Enum):
    """ALU engine pixel parallelism; DEFAULT means PP/2."""

    DEFAULT = "default"
    P1 = 1
    P2 = 2
    P4 = 4
    P8 = 8


class Activations(Enum):
    """Activation set fused after the conv or ALU engine."""

    RELU_RELU6 = "relu_relu6"
    RELU_LEAKYRELU_RELU6 = "relu_leakyrelu_relu6"

    @property
    def leaky(self) -> bool:
        return self is Activations.RELU_LEAKYRELU_RELU6


class DspUsage(Enum):
    """high: DSPs also accumulate; low: accumulation in LUT adders (fewer DSP, more LUT)."""

    HIGH = "high"
    LOW = "low"


class DeviceFamily(Enum):
    MPSOC = "mpsoc"
    ZYNQ7000 = "zynq7000"


MAX_CORES = 4  # DPUCZDX8G supports up to 4 cores per design


@dataclass(frozen=True)
class DpuConfig:
    """One DPUCZDX8G configuration (dpu_conf.vh options + core count + clock)."""

    name: str  # the TOML file's stem
    arch: Arch  # conv array size (changes the compile target)
    clock_mhz: int  # 1x clock m_axi_dpu_aclk in MHz; the DSP array runs at 2x
    board: str = "ultra96v2"  # the board this configuration is meant for (hw/boards/<board>/)
    description: str = ""
    ram_usage: RamUsage = RamUsage.LOW  # changes the compile target
    channel_augmentation: bool = True  # changes the compile target
    alu_parallel: AluParallel = AluParallel.DEFAULT  # changes the compile target
    conv_activations: Activations = Activations.RELU_LEAKYRELU_RELU6  # changes the compile target
    alu_activations: Activations = Activations.RELU_RELU6  # changes the compile target
    save_argmax: bool = False  # IP v4.1 (Vitis AI 3.0) option; fingerprint bit 30
    dsp_usage: DspUsage = DspUsage.HIGH
    uram_img_banks: int = 0  # image banks moved to UltraRAM (0 = URAM_DISABLE)
    uram_wgt_banks: int = 0  # weight banks moved to UltraRAM
    uram_bias_banks: int = 0  # bias bank moved to UltraRAM (0 or 1)
    lutram_img_banks: int = 0  # image banks moved to LUTRAM (0 = DRAM_DISABLE)
    lutram_wgt_banks: int = 0
    lutram_bias_banks: int = 0
    low_power: bool = False  # clock gating of the 2x clock
    device_family: DeviceFamily = DeviceFamily.MPSOC
    cores: int = 1  # nk=DPUCZDX8G:<cores> in prj_config
    softmax: bool = False  # the separate softmax kernel (14 DSP, 4 BRAM36)
    depth_to_space_on_dpu: bool = True  # compiler rule, not hardware: keep pixel shuffle on the DPU

    def __post_init__(self) -> None:
        _validate(self)

    # Derived quantities -------------------------------------------------------------------------
    @property
    def pp(self) -> int:
        return self.arch.pp

    @property
    def icp(self) -> int:
        return self.arch.icp

    @property
    def ocp(self) -> int:
        return self.arch.ocp

    @property
    def alu_pp(self) -> int:
        """ALU engine pixel parallelism (DEFAULT = PP/2)."""
        if self.alu_parallel is AluParallel.DEFAULT:
            return self.pp // 2
        return int(self.alu_parallel.value)

    @property
    def clock_2x_mhz(self) -> int:
        return 2 * self.clock_mhz

    @property
    def image_banks(self) -> int:
        return self.ram_usage.bank_groups * self.pp

    @property
    def weight_banks(self) -> int:
        """Conv weight banks (OCP) plus the depthwise weight bank."""
        return self.ocp + 1

    @property
    def uram(self) -> bool:
        return self.uram_img_banks + self.uram_wgt_banks + self.uram_bias_banks > 0

    @property
    def lutram(self) -> bool:
        return self.lutram_img_banks + self.lutram_wgt_banks + self.lutram_bias_banks > 0

    @property
    def peak_gops(self) -> float:
        """Peak conv-array GOPS of all cores at the 1x clock."""
        return self.arch.peak_ops_per_cycle * self.clock_mhz * 1e6 * self.cores / 1e9

    # (De)serialisation ---------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any], name: str, where: str = "configuration") -> DpuConfig:
        fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "name"}
        reject_unknown(data, fields, where)
        missing = [key for key in ("arch", "clock_mhz") if key not in data]
        if missing:
            example = {"arch": 'arch = "B1600" (the DPU size)', "clock_mhz": "clock_mhz = 200 (the 1x clock in MHz)"}
            one = len(missing) == 1
            raise ConfigError(
                f"{where}: {' and '.join(missing)} {'is' if one else 'are'} required: add "
                f"{'a line' if one else 'lines'} such as {' and '.join(example[key] for key in missing)}"
            )
        kwargs: dict[str, Any] = {"name": name}
        for key, value in data.items():
            kwargs[key] = _coerce(key, value, str(fields[key].type), where)
        try:
            cfg = cls(**kwargs)
            if "board" in data:
                load_board(cfg.board)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        return cfg

    def to_dict(self) -> dict[str, Any]:
        """TOML-ready mapping (enums as their values); from_dict(to_dict()) round-trips."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "name":
                continue
            value = getattr(self, f.name)
            out[f.name] = value.value if isinstance(value, Enum) else value
        return out


_ENUM_FIELDS: dict[str, type[Enum]] = {
    "ram_usage": RamUsage,
    "alu_parallel": AluParallel,
    "conv_activations": Activations,
    "alu_activations": Activations,
    "dsp_usage": DspUsage,
    "device_family": DeviceFamily,
}


def _coerce(key: str, value: Any, type_name: str, where: str) -> Any:
    if key == "arch":
        if not isinstance(value, str):
            raise ConfigError(f'{where}: arch must be a string such as "B1600", got {value!r}')
        try:
            return Arch.parse(value)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    if key in _ENUM_FIELDS:
        enum = _ENUM_FIELDS[key]
        for member in enum:
            if isinstance(value, bool):  # true == 1 in Python: not a value of any of these
                break
            if type(value) is type(member.value) and value == member.value:
                return member
            if isinstance(value, str) and isinstance(member.value, str) and value.lower() == member.value.lower():
                return member
        choices = ", ".join(repr(m.value) for m in enum)
        raise ConfigError(f"{where}: {key} = {value!r} is not one of {choices}")
    expected = {"bool": bool, "int": int, "str": str}[type_name]
    if isinstance(value, bool) != (expected is bool) or not isinstance(value, expected):
        raise ConfigError(f"{where}: {key} must be of type {type_name}, got {value!r}")
    return value


def _validate(cfg: DpuConfig) -> None:
    """Reject illegal option combinations with the reason."""
    if not isinstance(cfg.arch, Arch):
        raise ConfigError(f"arch must be an Arch, got {cfg.arch!r}")
    if cfg.clock_mhz < 25:
        raise ConfigError(f"clock_mhz = {cfg.clock_mhz} is below 25 MHz; DPU designs use 150-300 MHz")
    if cfg.clock_mhz > 400:
        raise ConfigError(
            f"clock_mhz = {cfg.clock_mhz} is above 400 MHz (the 2x DSP clock would exceed the "
            f"DSP48E2 maximum of every speed grade); DPU designs use 150-300 MHz"
        )
    if not 1 <= cfg.cores <= MAX_CORES:
        raise ConfigError(f"cores = {cfg.cores}: DPUCZDX8G supports 1 to {MAX_CORES} cores")
    if cfg.device_family is not DeviceFamily.MPSOC:
        raise ConfigError(
            "device_family = 'zynq7000' is not supported: this project targets Zynq UltraScale+ MPSoC "
            "(128-bit AXI masters, the Vitis kernel flow)"
        )
    if cfg.alu_parallel is not AluParallel.DEFAULT and int(cfg.alu_parallel.value) > cfg.pp:
        raise ConfigError(
            f"alu_parallel = {cfg.alu_parallel.value} exceeds the pixel parallelism {cfg.pp} of "
            f"{cfg.arch.value}; use a value <= {cfg.pp} or 'default' ({cfg.pp // 2})"
        )
    banks = {"img": cfg.image_banks, "wgt": cfg.weight_banks, "bias": 1}
    for kind, total in banks.items():
        uram = getattr(cfg, f"uram_{kind}_banks")
        lutram = getattr(cfg, f"lutram_{kind}_banks")
        if uram < 0 or lutram < 0:
            raise ConfigError(f"uram_{kind}_banks / lutram_{kind}_banks must not be negative")
        if uram + lutram > total:
            raise ConfigError(
                f"uram_{kind}_banks + lutram_{kind}_banks = {uram + lutram} exceeds the {total} "
                f"{kind} banks of {cfg.arch.value} with RAM usage {cfg.ram_usage.value}"
            )
    if cfg.uram and cfg.lutram:
        raise ConfigError("URAM and LUTRAM banks cannot both be enabled: dpu_conf.vh takes one or the other")


def list_configs() -> list[str]:
    """Names of the shipped configurations (hw/dpu/configs/*.toml), sorted."""
    return sorted(p.stem for p in configs_dir().glob("*.toml"))


def config_path(name_or_path: str | Path) -> Path:
    text = str(name_or_path)
    if text.endswith(".toml") or "/" in text or Path(text).is_file():
        if not os.path.exists(text):  # said with what else it takes, not only 'no such file'
            # A link to nothing (or back to itself) is named as such: 'no such file' of a name the user sees there.
            what = dangling_link(text) if os.path.lexists(text) else "no such file"
            raise ConfigError(
                f"{text}: {what}; give the path of a configuration .toml, or a shipped configuration's name: "
                f"{', '.join(list_configs())}"
            )
        return Path(text)
    path = configs_dir() / f"{text}.toml"
    if not path.is_file():
        raise ConfigError(
            f"unknown DPU configuration {text!r}; shipped: {', '.join(list_configs())} (or give a path to a .toml file)"
        )
    return path


def load_config(name_or_path: str | Path) -> DpuConfig:
    """Load a shipped configuration by name, or any configuration TOML by path."""
    path = config_path(name_or_path)
    return DpuConfig.from_dict(read_toml(path), name=path.stem, where=str(path))


def config_from_arch(
    arch: str | Arch,
    clock_mhz: int,
    cores: int = 1,
    board: str = "ultra96v2",
    use_uram: bool = False,
    **options: Any,
) -> DpuConfig:
    """An ad-hoc configuration: the given ARCH/clock/cores with DPU-PYNQ defaults for the rest.

    use_uram moves the weight and bias banks to UltraRAM (as the Vitis AI TRD does on URAM devices).
    """
    arch = arch if isinstance(arch, Arch) else Arch.parse(arch)
    name = f"{arch.value.lower()}-{clock_mhz}mhz" + (f"-x{cores}" if cores > 1 else "")
    if use_uram:
        options = {"uram_wgt_banks": arch.ocp + 1, "uram_bias_banks": 1, **options}
        name += "-uram"
    return DpuConfig(name=name, arch=arch, clock_mhz=clock_mhz, cores=cores, board=board, **options)
