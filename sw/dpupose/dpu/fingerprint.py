"""The DPUCZDX8G fingerprint: the 64-bit word in arch.json that xmodels are compiled for.

Bit fields (IP v4, Vitis AI target factory ``create_target_DPUCZDX8G_ISA1``):

    bits  0-3   ARCH index (B512=0 ... B4096=7)
    bits  8-15  ALU pixel parallelism
    bits 16-23  log2(load parallelism)            always 1 in IP v4.0/v4.1 (2 load engines)
    bits 24-25  image bank groups                 2 = RAM usage low, 3 = high
    bit  26     channel augmentation
    bit  27     load mean (unused by DPUCZDX8G)   always 0
    bit  28     conv engine LeakyReLU
    bit  29     ALU engine LeakyReLU
    bit  30     save argmax (IP v4.1)
    bits 32-33  log2(conv write parallelism)      always 0 in IP v4.x
    bits 34-35  log2(ALU write parallelism)       always 0 in IP v4.x
    bits 48-55  ISA version                       1
    bits 56-63  DPU family code                   1 (DPUCZDX8G)

The low 48 bits are the Vitis AI "feature code". The named Vitis AI 2.5 targets are the default
configurations (RAM low, channel augmentation, conv LeakyReLU, ALU parallel default), as DPU-PYNQ 2.5
builds them: ``DPUCZDX8G_ISA1_B4096`` = 0x000016010407, ``..._B1600`` = 0x000016010404 (Ultra96-V2
overlay: 0x101000016010404). Vitis AI 3.0 gives the same names bit 30 (save argmax, IP v4.1):
0x000056010407, 0x000056010404, so an xmodel compiled for a named target in the 3.0 image does not run
on a 2.5 overlay.

API: fingerprint(cfg) -> int, fingerprint_hex(cfg) -> "0x...", decode(int) -> Fields, encode(Fields) -> int.
"""

from __future__ import annotations

from dataclasses import dataclass

from dpupose.dpu.config import Arch, DpuConfig
from dpupose.errors import ConfigError

ISA_VERSION = 1
FAMILY_CODE = 1  # DPUCZDX8G
LOAD_PARALLEL = 2  # IP v4.x
CONV_WRITE_PARALLEL = 1
ALU_WRITE_PARALLEL = 1
FEATURE_CODE_MASK = (1 << 48) - 1


@dataclass(frozen=True)
class Fields:
    """The fingerprint decoded into its fields."""

    arch: Arch
    alu_parallel: int
    bank_groups: int
    channel_augmentation: bool
    conv_leaky: bool
    alu_leaky: bool
    save_argmax: bool = False
    load_parallel: int = LOAD_PARALLEL
    conv_write_parallel: int = CONV_WRITE_PARALLEL
    alu_write_parallel: int = ALU_WRITE_PARALLEL
    isa: int = ISA_VERSION
    family: int = FAMILY_CODE


def _log2(value: int, what: str) -> int:
    if value < 1 or value & (value - 1):
        raise ConfigError(f"{what} = {value} is not a power of two")
    return value.bit_length() - 1


def encode(f: Fields) -> int:
    if not 0 <= f.alu_parallel <= 0xFF or f.bank_groups not in (1, 2, 3):
        raise ConfigError(f"fingerprint fields out of range: {f}")
    word = f.arch.index
    word |= f.alu_parallel << 8
    word |= _log2(f.load_parallel, "load parallel") << 16
    word |= f.bank_groups << 24
    word |= int(f.channel_augmentation) << 26
    word |= int(f.conv_leaky) << 28
    word |= int(f.alu_leaky) << 29
    word |= int(f.save_argmax) << 30
    word |= _log2(f.conv_write_parallel, "conv write parallel") << 32
    word |= _log2(f.alu_write_parallel, "ALU write parallel") << 34
    word |= f.isa << 48
    word |= f.family << 56
    return word


# What every decode error says to give instead.
_WHERE = "copy the word from arch.json's \"fingerprint\" or an xmodel's dpu_fingerprint"


def decode(word: int) -> Fields:
    """Split a fingerprint (or a 48-bit feature code, read as ISA 1 / family 1) into its fields."""
    if not 0 <= word < 1 << 64:
        raise ConfigError(f"fingerprint {word:#x} is not a 64-bit word (0 to 0xffffffffffffffff): {_WHERE}")
    arch_index = word & 0xF
    if arch_index >= len(Arch):
        sizes = [a.value for a in Arch]
        raise ConfigError(
            f"fingerprint {word:#x} has ARCH index {arch_index} in its low 4 bits, not a DPUCZDX8G size (0 to "
            f"{len(sizes) - 1}: {sizes[0]} to {sizes[-1]}): {_WHERE}"
        )
    isa = (word >> 48) & 0xFF
    family = (word >> 56) & 0xFF
    alu_parallel, bank_groups = (word >> 8) & 0xFF, (word >> 24) & 0x3
    if alu_parallel not in (1, 2, 4, 8) or bank_groups not in (2, 3):
        raise ConfigError(
            f"fingerprint {word:#x} has ALU parallelism {alu_parallel} and {bank_groups} bank groups, which no "
            f"DPUCZDX8G has (1, 2, 4 or 8; 2 or 3): {_WHERE}"
        )
    return Fields(
        arch=list(Arch)[arch_index],
        alu_parallel=(word >> 8) & 0xFF,
        load_parallel=1 << ((word >> 16) & 0xFF),
        bank_groups=(word >> 24) & 0x3,
        channel_augmentation=bool(word >> 26 & 1),
        conv_leaky=bool(word >> 28 & 1),
        alu_leaky=bool(word >> 29 & 1),
        save_argmax=bool(word >> 30 & 1),
        conv_write_parallel=1 << ((word >> 32) & 0x3),
        alu_write_parallel=1 << ((word >> 34) & 0x3),
        isa=isa or ISA_VERSION,
        family=family or FAMILY_CODE,
    )


def fields_of(cfg: DpuConfig) -> Fields:
    return Fields(
        arch=cfg.arch,
        alu_parallel=cfg.alu_pp,
        bank_groups=cfg.ram_usage.bank_groups,
        channel_augmentation=cfg.channel_augmentation,
        conv_leaky=cfg.conv_activations.leaky,
        alu_leaky=cfg.alu_activations.leaky,
        save_argmax=cfg.save_argmax,
    )


def fingerprint(cfg: DpuConfig) -> int:
    """The 64-bit fingerprint of a configuration (what arch.json and compiled xmodels carry)."""
    return encode(fields_of(cfg))


def fingerprint_hex(cfg: DpuConfig) -> str:
    return f"{fingerprint(cfg):#x}"


def feature_code(word: int) -> int:
    """The low 48 bits: the Vitis AI target 'feature code'."""
    return word & FEATURE_CODE_MASK
