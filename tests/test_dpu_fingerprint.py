"""Fingerprints against the known values, and bit-field decode/encode round trips."""

import itertools
import re
from pathlib import Path

import pytest

from dpupose.dpu.config import Activations, AluParallel, Arch, DpuConfig, RamUsage, load_config
from dpupose.dpu.fingerprint import Fields, decode, encode, feature_code, fingerprint, fingerprint_hex
from dpupose.errors import ConfigError

DPU_PYNQ_U96 = 0x101000016010404  # DPU-PYNQ 2.5 Ultra96-V2 overlay (B1600)
DPU_PYNQ_KV260 = 0x101000016010407  # DPU-PYNQ 2.5 / Kria benchmark overlay (B4096)
# Feature codes of the named targets: B512, B1600 and B4096 as Vitis AI 2.5's target factory gives them
# (target_factory/targets/DPUCZDX8G_ISA1_<ARCH>.prototxt), the other sizes by the same pattern (the ARCH's
# code, RAM low, channel augmentation, conv LeakyReLU, default ALU parallelism); and 3.0's (save argmax).
VITIS_AI_25 = {
    "B512": 0x000016010200,
    "B800": 0x000016010201,
    "B1024": 0x000016010402,
    "B1152": 0x000016010203,
    "B1600": 0x000016010404,
    "B2304": 0x000016010405,
    "B3136": 0x000016010406,
    "B4096": 0x000016010407,
}
VITIS_AI_30_B4096 = 0x000056010407
VITIS_AI_30_B1600 = 0x000056010404
DOCS = Path(__file__).resolve().parents[1] / "docs" / "dpu-configurations.md"


def cfg(arch: str, **kw) -> DpuConfig:
    return DpuConfig(name="t", arch=Arch(arch), clock_mhz=200, **kw)


def test_dpu_pynq_ultra96v2_fingerprint():
    assert fingerprint(load_config("u96v2-b1600-pynq")) == DPU_PYNQ_U96
    assert fingerprint_hex(load_config("u96v2-b1600-pynq")) == "0x101000016010404"


def test_kv260_dpu_pynq_fingerprint():
    assert fingerprint(cfg("B4096")) == DPU_PYNQ_KV260


def test_vitis_ai_25_named_targets_are_the_default_configurations():
    # The lower 48 bits are the target's feature code. Vitis AI 2.5's named targets are the default
    # configurations (the DPU-PYNQ 2.5 builds); 3.0's have bit 30 (save argmax) set as well.
    for arch, code in VITIS_AI_25.items():
        assert feature_code(fingerprint(cfg(arch))) == code
    assert feature_code(DPU_PYNQ_U96) == VITIS_AI_25["B1600"] and feature_code(DPU_PYNQ_KV260) == VITIS_AI_25["B4096"]
    for arch, code in (("B4096", VITIS_AI_30_B4096), ("B1600", VITIS_AI_30_B1600)):
        assert feature_code(fingerprint(cfg(arch, save_argmax=True))) == code
        assert VITIS_AI_25[arch] ^ code == 1 << 30
    assert fingerprint(cfg("B1600", save_argmax=True)) >> 48 == 0x101  # family 1, ISA 1


def test_docs_give_the_named_targets_of_each_release():
    text = " ".join(DOCS.read_text().split())
    said = re.search(
        r"Vitis AI 2\.5's named targets.*?`DPUCZDX8G_ISA1_B4096` = `(0x[0-9a-f]+)`, `_B1600` = `(0x[0-9a-f]+)` and "
        r"`_B512` = `(0x[0-9a-f]+)`",
        text,
    )
    assert said is not None
    assert tuple(int(v, 16) for v in said.groups()) == (VITIS_AI_25["B4096"], VITIS_AI_25["B1600"], VITIS_AI_25["B512"])
    later = re.search(
        r"Vitis AI 3\.0 gives the same names bit 30 \(save argmax\): `(0x[0-9a-f]+)`, `(0x[0-9a-f]+)`", text
    )
    assert later is not None and (int(later[1], 16), int(later[2], 16)) == (VITIS_AI_30_B4096, VITIS_AI_30_B1600)


def test_decode_known_value():
    f = decode(DPU_PYNQ_U96)
    assert f == Fields(
        arch=Arch.B1600,
        alu_parallel=4,
        bank_groups=2,
        channel_augmentation=True,
        conv_leaky=True,
        alu_leaky=False,
        save_argmax=False,
    )
    assert (f.load_parallel, f.conv_write_parallel, f.alu_write_parallel, f.isa, f.family) == (2, 1, 1, 1, 1)


def test_options_that_do_not_change_the_target_do_not_change_the_fingerprint():
    base = fingerprint(cfg("B2304"))
    assert fingerprint(cfg("B2304", dsp_usage=cfg("B512").dsp_usage.LOW)) == base
    assert fingerprint(cfg("B2304", low_power=True, cores=2, softmax=True, uram_wgt_banks=13)) == base
    assert fingerprint(cfg("B2304", ram_usage=RamUsage.HIGH)) != base


@pytest.mark.parametrize("arch", list(Arch))
def test_encode_decode_round_trip_over_the_option_grid(arch):
    seen = set()
    alus = [AluParallel.DEFAULT] + [a for a in AluParallel if a is not AluParallel.DEFAULT and a.value <= arch.pp]
    for ram, aug, alu, conv_act, alu_act, argmax in itertools.product(
        RamUsage, (False, True), alus, Activations, Activations, (False, True)
    ):
        c = cfg(
            arch.value,
            ram_usage=ram,
            channel_augmentation=aug,
            alu_parallel=alu,
            conv_activations=conv_act,
            alu_activations=alu_act,
            save_argmax=argmax,
        )
        word = fingerprint(c)
        f = decode(word)
        assert encode(f) == word
        assert (f.arch, f.alu_parallel, f.bank_groups) == (arch, c.alu_pp, ram.bank_groups)
        assert (f.channel_augmentation, f.conv_leaky, f.alu_leaky, f.save_argmax) == (
            aug,
            conv_act.leaky,
            alu_act.leaky,
            argmax,
        )
        seen.add(word)
    # DEFAULT equals PP/2 explicitly, so it collides with that explicit value and nothing else.
    assert len(seen) == 2 * 2 * (len(alus) - 1) * 2 * 2 * 2


def test_decode_rejects_bad_words():
    with pytest.raises(ConfigError, match="ARCH index 9"):
        decode(0x101000016010409)
    with pytest.raises(ConfigError, match="64-bit"):
        decode(1 << 64)
    with pytest.raises(ConfigError, match="ALU parallelism 0 and 0 bank groups, which no DPUCZDX8G has"):
        decode(0)  # not a fingerprint: its ARCH bits happen to name B512
    with pytest.raises(ConfigError, match="ALU parallelism 3"):
        decode(0x101000016010304)


@pytest.mark.parametrize("word", [1 << 64, -1, 0x101000016010409, 0x10100001601040F, 0])
def test_every_decode_error_says_where_to_copy_a_word_from(word):
    """'is not a 64-bit word' and 'ARCH index N, not a DPUCZDX8G size' said nothing of what to give, where the
    other decode errors name the fields' legal values and where a fingerprint is found."""
    with pytest.raises(ConfigError) as exc:
        decode(word)
    text = str(exc.value)
    assert text.endswith("copy the word from arch.json's \"fingerprint\" or an xmodel's dpu_fingerprint"), text
    if not 0 <= word < 1 << 64:
        assert "(0 to 0xffffffffffffffff)" in text
    elif word & 0xF > 7:
        assert f"ARCH index {word & 0xF} in its low 4 bits, not a DPUCZDX8G size (0 to 7: B512 to B4096)" in text
