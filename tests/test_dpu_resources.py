"""Resources against PG338's per-core table (every row) and fit verdicts on the boards."""

import pytest

from dpupose.dpu.board import load_board
from dpupose.dpu.config import Arch, DpuConfig, DspUsage, RamUsage, load_config
from dpupose.dpu.resources import LUT_FF_MARGIN, PG338_LUT_FF, check_fit, core_resources, dpu_resources

# facts/dpu.md, "Resources per core (IP v4)": ARCH -> (DSP high, DSP low, BRAM36 RAM low, BRAM36 RAM high)
PER_CORE = {
    "B512": (118, 86, 72, 88),
    "B800": (166, 126, 90, 108),
    "B1024": (230, 166, 104, 136),
    "B1152": (222, 174, 121, 143),
    "B1600": (326, 246, 126, 162),
    "B2304": (438, 342, 165, 209),
    "B3136": (566, 454, 208, 260),
    "B4096": (710, 582, 255, 315),
}


def cfg(arch: str, **kw) -> DpuConfig:
    return DpuConfig(name=kw.pop("name", "t"), arch=Arch(arch), clock_mhz=kw.pop("clock_mhz", 200), **kw)


@pytest.mark.parametrize("arch", sorted(PER_CORE))
def test_per_core_table_row(arch):
    dsp_high, dsp_low, bram_low, bram_high = PER_CORE[arch]
    assert core_resources(cfg(arch, dsp_usage=DspUsage.HIGH)).dsp == dsp_high
    assert core_resources(cfg(arch, dsp_usage=DspUsage.LOW)).dsp == dsp_low
    assert core_resources(cfg(arch, ram_usage=RamUsage.LOW)).bram36 == bram_low
    assert core_resources(cfg(arch, ram_usage=RamUsage.HIGH)).bram36 == bram_high
    lut_high, ff_high, lut_low, ff_low = PG338_LUT_FF[Arch(arch)]
    r = core_resources(cfg(arch, dsp_usage=DspUsage.LOW))
    assert r.lut == round(lut_low * (1 + LUT_FF_MARGIN)) and r.ff == round(ff_low * (1 + LUT_FF_MARGIN))
    assert r.uram == 0
    r = core_resources(cfg(arch, dsp_usage=DspUsage.HIGH))
    assert r.lut == round(lut_high * (1 + LUT_FF_MARGIN)) and r.ff == round(ff_high * (1 + LUT_FF_MARGIN))


def test_uram_banks_move_bram_to_uram():
    # KV260 reference build: B3136, 44 URAM. 22 banks of 14 bytes -> 2 URAM288 each; BRAM18 13 per bank.
    c = cfg("B3136", uram_img_banks=6, uram_wgt_banks=15, uram_bias_banks=1)
    r = core_resources(c)
    assert r.uram == 44
    assert r.bram36 == (32 - 22) * 13 / 2


def test_softmax_and_cores_add_up():
    one = core_resources(cfg("B1152"))
    two = dpu_resources(cfg("B1152", cores=2, softmax=True))
    assert two.dsp == 2 * one.dsp + 14 and two.bram36 == 2 * one.bram36 + 4


@pytest.mark.parametrize(
    ("name", "fits", "limiting"),
    [
        ("u96v2-b1600-pynq", True, "DSP"),
        ("u96v2-b2304-avnet", True, "DSP"),
        ("u96v2-b1152", True, "DSP"),
        ("u96v2-b800", True, "DSP"),
        ("u96v2-b512", True, "LUT"),
        ("u96v2-b2304-dsphigh", False, "DSP"),
    ],
)
def test_shipped_ultra96_configs_fit_as_the_facts_say(name, fits, limiting):
    report = check_fit(load_config(name), load_board("ultra96v2"))
    assert (report.fits, report.limiting) == (fits, limiting)
    if not fits:
        assert report.reasons == ["DSP 438 > 360 available"]


def test_fit_reserves_the_platform():
    board = load_board("ultra96v2")
    report = check_fit(load_config("u96v2-b1600-pynq"), board)
    assert report.total.lut == report.dpu.lut + board.platform_overhead.lut
    assert report.utilization["bram36"] == pytest.approx((126 + board.platform_overhead.bram36) / 216)


def test_two_cores_do_not_fit_the_zu3eg_for_lack_of_bram():
    report = check_fit(cfg("B1152", cores=2, dsp_usage=DspUsage.LOW), load_board("ultra96v2"))
    assert not report.fits and report.limiting == "BRAM36"


def test_uram_on_a_board_without_uram_does_not_fit():
    report = check_fit(cfg("B1600", uram_wgt_banks=11), load_board("ultra96v2"))
    assert not report.fits and report.limiting == "URAM"
    assert "the ZU3EG has none" in report.reasons[0]


def test_clock_risk_flags():
    board = load_board("ultra96v2")
    risky = check_fit(load_config("u96v2-b1600-300mhz"), board)
    assert risky.fits and any(r.startswith("power: 300/600 MHz") for r in risky.risks)
    assert not any(r.startswith("power") for r in check_fit(load_config("u96v2-b1600-pynq"), board).risks)
    odd = check_fit(cfg("B1152", clock_mhz=175), board)
    assert any(r.startswith("clock: 175 MHz") for r in odd.risks)
    too_fast = check_fit(cfg("B512", clock_mhz=350), board)  # 700 MHz 2x > 645 MHz DSP fmax of -1
    assert not too_fast.fits and too_fast.limiting == "CLOCK"
