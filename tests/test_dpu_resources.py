"""Resources against PG338's per-core table (every row) and fit verdicts on the boards."""

import dataclasses

import pytest

from dpupose.dpu.board import load_board
from dpupose.dpu.config import AluParallel, Arch, DpuConfig, DspUsage, RamUsage, load_config
from dpupose.dpu.resources import (
    ALU_FF_PER_LANE,
    ALU_LUT_PER_LANE,
    CHANNEL_AUGMENTATION_LUT,
    PG338_LUT_FF,
    check_fit,
    core_resources,
    dpu_resources,
)

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
    lanes = Arch(arch).pp // 2 * Arch(arch).icp  # ALU parallel default = PP/2
    ca = CHANNEL_AUGMENTATION_LUT[Arch(arch)]
    r = core_resources(cfg(arch, dsp_usage=DspUsage.LOW))
    assert r.lut == round(lut_low + ca + ALU_LUT_PER_LANE * lanes) and r.ff == round(ff_low + ALU_FF_PER_LANE * lanes)
    assert r.uram == 0
    r = core_resources(cfg(arch, dsp_usage=DspUsage.HIGH))
    assert r.lut == round(lut_high + ca + ALU_LUT_PER_LANE * lanes)
    assert r.ff == round(ff_high + ALU_FF_PER_LANE * lanes)


# PG338 v4.0/v4.1, "DepthwiseConv (ALU)", the table of one B4096 core's resources by ALU parallel:
# ALU parallel -> (LUT, FF, BRAM36, DSP). The only IP v4 LUT/FF figures the guide publishes.
PG338_V4_B4096_BY_ALU = {
    1: (44212, 88250, 255, 662),
    2: (46599, 92380, 255, 678),
    4: (51388, 98525, 255, 710),
    8: (60751, 111329, 255, 774),
}


@pytest.mark.parametrize("alu", sorted(PG338_V4_B4096_BY_ALU))
def test_b4096_against_pg338_v4_alu_parallel_table(alu):
    # LUT within 2% (and not under), FF above by less than 10%: the fit verdict must not be optimistic.
    lut, ff, bram, dsp = PG338_V4_B4096_BY_ALU[alu]
    r = core_resources(cfg("B4096", alu_parallel=AluParallel(alu)))
    assert (r.dsp, r.bram36) == (dsp, bram)
    assert lut <= r.lut <= lut * 1.02
    assert ff <= r.ff <= ff * 1.10


# PG338 v4.x, "Channel Augmentation": extra LUTs with channel augmentation, per ARCH.
PG338_CHANNEL_AUGMENTATION_LUT = {
    "B512": 3121,
    "B800": 2624,
    "B1024": 3133,
    "B1152": 1744,
    "B1600": 2476,
    "B2304": 1710,
    "B3136": 1946,
    "B4096": 1701,
}


@pytest.mark.parametrize("arch", sorted(PG338_CHANNEL_AUGMENTATION_LUT))
def test_channel_augmentation_costs_the_luts_pg338_lists(arch):
    on = core_resources(cfg(arch, channel_augmentation=True))
    off = core_resources(cfg(arch, channel_augmentation=False))
    assert on.lut - off.lut == PG338_CHANNEL_AUGMENTATION_LUT[arch]
    assert (on.ff, on.dsp, on.bram36) == (off.ff, off.dsp, off.bram36)


def test_softmax_kernel_adds_pg338_extra_resources():
    # PG338 (v3.4 to v4.1), "Softmax": 9580 LUT, 8019 FF, 4 BRAM36, 14 DSP.
    with_sfm = dpu_resources(cfg("B1600", softmax=True))
    without = dpu_resources(cfg("B1600"))
    extra = {k: with_sfm.as_dict()[k] - without.as_dict()[k] for k in ("lut", "ff", "bram36", "dsp")}
    assert extra == {"lut": 9580, "ff": 8019, "bram36": 4, "dsp": 14}


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


def test_a_configuration_too_big_and_too_fast_is_limited_by_the_resource():
    # CLOCK names the limit only where every resource fits; here the DSPs are short as well.
    import dataclasses

    fast = dataclasses.replace(load_config("u96v2-b2304-dsphigh"), clock_mhz=350)
    report = check_fit(fast, load_board("ultra96v2"))
    assert report.limiting == "DSP"
    assert report.reasons == [
        "DSP 438 > 360 available",
        "timing: 2x clock 700 MHz > DSP48E2 fmax 645 MHz (speed grade -1)",
    ]


def test_a_2x_clock_at_the_dsp_fmax_itself_fits():
    import dataclasses

    board = dataclasses.replace(load_board("ultra96v2"), dsp_fmax_mhz=600)
    report = check_fit(cfg("B512", clock_mhz=300), board)
    assert report.fits and report.reasons == []
    assert not check_fit(cfg("B512", clock_mhz=301), board).fits


def test_tight_names_only_resources_between_85_and_100_percent():
    board = load_board("ultra96v2")
    # B1600: DSP 326 / 360 = 91%; LUT, FF and BRAM are below 80%.
    pynq = check_fit(load_config("u96v2-b1600-pynq"), board)
    assert [r for r in pynq.risks if r.startswith("tight")] == ["tight: DSP above 85% (placement and timing harder)"]
    # B2304 with DSP high needs 438 DSPs: over, a reason, not a tight fit.
    over = check_fit(load_config("u96v2-b2304-dsphigh"), board)
    assert over.utilization["dsp"] > 1 and not [r for r in over.risks if r.startswith("tight")]


def test_the_ports_risk_only_for_more_cores_than_the_board_has_ports_for():
    board = load_board("ultra96v2")  # one core's worth of AXI ports
    assert board.max_cores_by_ports == 1
    assert not [r for r in check_fit(cfg("B512"), board).risks if r.startswith("ports")]
    two = check_fit(cfg("B512", cores=2), board)
    assert [r for r in two.risks if r.startswith("ports")] == [
        "ports: the board record lists AXI ports for 1 core(s), so `dpu files` and `hw build` refuse 2 cores "
        "until its dpu_ports has more"
    ]
    from dpupose.dpu.writers import prj_config
    from dpupose.errors import ConfigError

    with pytest.raises(ConfigError, match="2 cores, but the Avnet Ultra96-V2 record lists AXI ports for 1"):
        prj_config(cfg("B512", cores=2), board)  # as the risk says


def test_the_build_risk_names_the_options_dpu_files_and_hw_build_refuse(tmp_path):
    # softmax = true and save_argmax = true fit the ZU3EG, but `dpu files` (no softmax_port) and `hw build`
    # (no softmax kernel packaged; a v4.0 TRD) refuse them: the fit report says so, not only the build.
    from dpupose.dpu.writers import prj_config
    from dpupose.errors import ConfigError
    from dpupose.hwbuild.check import BuildRequest, preflight

    board = load_board("ultra96v2")
    assert not [r for r in check_fit(cfg("B1152"), board).risks if r.startswith("build")]
    softmax = check_fit(cfg("B1152", softmax=True), board)
    assert softmax.fits
    assert [r for r in softmax.risks if r.startswith("build")] == [
        "build: softmax = true (`dpu files` and `hw build` refuse it: the build packages no softmax kernel); "
        "set it to false to build this configuration"
    ]
    argmax = [r for r in check_fit(cfg("B1152", save_argmax=True), board).risks if r.startswith("build")]
    assert len(argmax) == 1 and argmax[0].startswith("build: save_argmax = true (`hw build` refuses it")
    with pytest.raises(ConfigError, match=r"names no softmax_port to connect it to; set softmax = false"):
        prj_config(cfg("B1152", softmax=True), board)
    # hw check says it once, as the configuration's error with what to do, not again as a fit warning.
    path = tmp_path / "c.toml"
    path.write_text('arch = "B1152"\nclock_mhz = 200\nsoftmax = true\n')
    findings = preflight(BuildRequest(str(path)), set()).findings
    assert [f.message for f in findings if f.topic == "config" and f.level == "error"] == [
        "softmax = true: this flow packages only the DPUCZDX8G kernel, not sfm_xrt_top: set softmax = false "
        "(a model's Softmax runs on the CPU either way)"
    ]
    assert not [f for f in findings if f.message.startswith("build:")]
    # A board record of the user's that names a softmax_port: dpu files writes the softmax kernel's connection,
    # so only hw build is named as refusing it.
    ported = dataclasses.replace(board, softmax_port="HP1")
    assert "sp=sfm_xrt_top_1.M_AXI:HP1" in prj_config(cfg("B1152", softmax=True), ported)
    assert [r for r in check_fit(cfg("B1152", softmax=True), ported).risks if r.startswith("build")] == [
        "build: softmax = true (`hw build` refuses it: the build packages no softmax kernel); "
        "set it to false to build this configuration"
    ]


def test_the_build_risk_of_both_options_names_both_in_one_flag():
    # softmax and save_argmax together: one build risk naming each option and what refuses it, neither left out.
    board = load_board("ultra96v2")
    both = [r for r in check_fit(cfg("B1152", softmax=True, save_argmax=True), board).risks if r.startswith("build")]
    assert both == [
        "build: softmax = true (`dpu files` and `hw build` refuse it: the build packages no softmax kernel) and "
        "save_argmax = true (`hw build` refuses it: an IP v4.1 option, the TRD it builds is v4.0); set both to false "
        "to build this configuration"
    ]


def test_lutram_banks_move_bram_to_luts():
    # One B1600 image bank (10 bytes x 2048) in LUTRAM: 163840 bits / 64 bits a LUT = 2560 LUTs, and the
    # bank's ceil(80 / 9) = 9 BRAM18 (4.5 BRAM36) freed.
    base = core_resources(cfg("B1600"))
    moved = core_resources(cfg("B1600", lutram_img_banks=1))
    assert moved.lut - base.lut == 2560
    assert base.bram36 - moved.bram36 == 4.5
    assert (moved.dsp, moved.ff, moved.uram) == (base.dsp, base.ff, base.uram)


def test_a_clock_above_the_safe_limit_is_a_power_risk_only():
    # 300 MHz is not among the safe clocks either, but the power risk says it all (one line, not two).
    risks = check_fit(load_config("u96v2-b1600-300mhz"), load_board("ultra96v2")).risks
    assert [r.split(":")[0] for r in risks if r.startswith(("power", "clock"))] == ["power"]


def test_a_platform_without_the_2x_clock_is_a_risk():
    import dataclasses

    board = dataclasses.replace(load_board("ultra96v2"), platform_clocks_mhz=[150, 300, 200])
    risks = [r for r in check_fit(cfg("B512", clock_mhz=200), board).risks if r.startswith("platform-clock")]
    assert len(risks) == 1 and "has no 400 MHz clock" in risks[0]
    risks = [r for r in check_fit(cfg("B512", clock_mhz=100), board).risks if r.startswith("platform-clock")]
    assert len(risks) == 1 and "has no 100 MHz clock" in risks[0]
    risks = [r for r in check_fit(cfg("B512", clock_mhz=250), board).risks if r.startswith("platform-clock")]
    assert len(risks) == 1 and "has no 250 MHz or 500 MHz clock" in risks[0]
