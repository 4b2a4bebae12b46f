"""Programmable-logic resources of a DPU configuration and whether it fits a board.

DSP, BRAM and URAM are exact (the formulas of the IP's own configuration scripts; they reproduce PG338's
per-core tables). LUT and FF have no formula; they are estimated from PG338's tables: the v1.2 per-core
table (IP v1.x, which had no ALU engine), plus the LUTs PG338 v4.x lists for channel augmentation, plus the
ALU engine's LUTs and FFs per lane (ALU pixel parallelism x ICP), a least-squares slope through PG338
v4.x's B4096 rows for ALU parallel 1, 2, 4 and 8. The board's platform overhead is reserved before the DPU.

API:
    core_resources(cfg) -> Resources           one DPU core
    dpu_resources(cfg) -> Resources            all cores + softmax kernel (no platform)
    check_fit(cfg, board) -> FitReport         fits?, limiting resource, utilization, risk flags
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from dpupose.dpu.board import RESOURCE_NAMES, Board, Resources
from dpupose.dpu.config import Arch, DpuConfig, DspUsage

# PG338 v1.2 per-core LUT / FF: ARCH -> (LUT high, FF high, LUT low, FF low) for DSP48 usage high | low.
PG338_LUT_FF: dict[Arch, tuple[int, int, int, int]] = {
    Arch.B512: (20177, 31782, 20759, 33572),
    Arch.B800: (20617, 35065, 21050, 33752),
    Arch.B1024: (27377, 46241, 29155, 49823),
    Arch.B1152: (28698, 46906, 30043, 49588),
    Arch.B1600: (30877, 56267, 33130, 60739),
    Arch.B2304: (34379, 67481, 37055, 72850),
    Arch.B3136: (38555, 79867, 41714, 86132),
    Arch.B4096: (40865, 92630, 44583, 99791),
}

# PG338 v4.x, "Channel Augmentation": extra LUTs per core with CHANNEL_AUGMENTATION_ENABLE.
CHANNEL_AUGMENTATION_LUT: dict[Arch, int] = {
    Arch.B512: 3121,
    Arch.B800: 2624,
    Arch.B1024: 3133,
    Arch.B1152: 1744,
    Arch.B1600: 2476,
    Arch.B2304: 1710,
    Arch.B3136: 1946,
    Arch.B4096: 1701,
}

# PG338 v4.x, "DepthwiseConv (ALU)": one B4096 core (DSP high, RAM low) by ALU parallel -> (LUT, FF). The
# only IP v4 LUT/FF figures PG338 gives; the ALU engine's cost per lane (one pixel x one channel) is the
# least-squares slope through these rows. With it the model is 1-2% above every row in LUT and 7-9% above
# in FF (the v1.2 FF figures are higher than IP v4's).
PG338_B4096_ALU: dict[int, tuple[int, int]] = {
    1: (44212, 88250),
    2: (46599, 92380),
    4: (51388, 98525),
    8: (60751, 111329),
}


def _per_lane(column: int) -> float:
    lanes = [alu * Arch.B4096.icp for alu in PG338_B4096_ALU]
    values = [row[column] for row in PG338_B4096_ALU.values()]
    mx, my = sum(lanes) / len(lanes), sum(values) / len(values)
    return sum((x - mx) * (y - my) for x, y in zip(lanes, values)) / sum((x - mx) ** 2 for x in lanes)


ALU_LUT_PER_LANE = _per_lane(0)  # about 148
ALU_FF_PER_LANE = _per_lane(1)  # about 203

SOFTMAX = Resources(lut=9580, ff=8019, bram36=4, uram=0, dsp=14)  # PG338, "Softmax": extra resources
ESTIMATED = ("lut", "ff")  # no formula: estimates from PG338's tables (the others follow the IP's formulas)
TIGHT_FRACTION = 0.85  # above this utilization placement and timing closure get hard
LUTRAM_BITS_PER_LUT = 64  # RAM64X1S in a SLICEM LUT


def _bram18_per_bank(icp: int) -> int:
    """A bank is ICP bytes wide and 2048 deep; a BRAM18 holds 2048 x 9 bits."""
    return math.ceil(icp * 8 / 9)


def core_resources(cfg: DpuConfig) -> Resources:
    """Resources of one DPU core."""
    pp, icp, ocp = cfg.pp, cfg.icp, cfg.ocp
    dsp = pp * icp * ocp // 4 + (pp * ocp if cfg.dsp_usage is DspUsage.HIGH else 0)
    dsp += cfg.alu_pp * icp + 4  # ALU engine
    dsp += 2  # load and save engines
    banks = cfg.image_banks + cfg.weight_banks + 1  # + bias bank
    uram_banks = cfg.uram_img_banks + cfg.uram_wgt_banks + cfg.uram_bias_banks
    lutram_banks = cfg.lutram_img_banks + cfg.lutram_wgt_banks + cfg.lutram_bias_banks
    bram18 = (banks - uram_banks - lutram_banks) * _bram18_per_bank(icp)
    uram = uram_banks * math.ceil(icp * 8 / 72)  # URAM288: 4096 x 72 bits
    lut_high, ff_high, lut_low, ff_low = PG338_LUT_FF[cfg.arch]
    lut, ff = (lut_high, ff_high) if cfg.dsp_usage is DspUsage.HIGH else (lut_low, ff_low)
    alu_lanes = cfg.alu_pp * icp
    lut += ALU_LUT_PER_LANE * alu_lanes + lutram_banks * 2048 * icp * 8 / LUTRAM_BITS_PER_LUT
    lut += CHANNEL_AUGMENTATION_LUT[cfg.arch] if cfg.channel_augmentation else 0
    ff += ALU_FF_PER_LANE * alu_lanes
    return Resources(lut=round(lut), ff=round(ff), bram36=bram18 / 2, uram=uram, dsp=dsp)


def dpu_resources(cfg: DpuConfig) -> Resources:
    """All DPU cores plus the softmax kernel if enabled (the platform is not included)."""
    total = core_resources(cfg).scaled(cfg.cores)
    return total + SOFTMAX if cfg.softmax else total


@dataclass(frozen=True)
class FitReport:
    config: str
    board: str
    dpu: Resources  # the DPU alone
    total: Resources  # DPU + platform overhead
    available: Resources  # what the device has
    utilization: dict[str, float]  # total / available, per resource (0 when the device has none and none is used)
    fits: bool
    limiting: str  # the resource with the highest utilization (or the reason it does not fit)
    reasons: list[str] = field(default_factory=list)  # why it does not fit
    risks: list[str] = field(default_factory=list)  # fits, but with a known risk

    def summary(self) -> str:
        verdict = "fits" if self.fits else "does NOT fit"
        text = f"{self.config} {verdict} on {self.board} (limiting: {self.limiting})"
        return text + ("; " + "; ".join(self.reasons) if self.reasons else "")


def utilization_pct(util: dict[str, float]) -> dict[str, float | None]:
    """Per-resource use in percent, for JSON: None where the board has none of a resource that is needed
    (no finite percentage; the fit report's reasons say so)."""
    return {k: None if math.isinf(v) else round(100 * v, 1) for k, v in util.items()}


def check_fit(cfg: DpuConfig, board: Board) -> FitReport:
    """Whether `cfg` fits `board` with the platform reserved; names the limiting resource."""
    dpu = dpu_resources(cfg)
    total = dpu + board.platform_overhead
    avail = board.resources
    util: dict[str, float] = {}
    reasons: list[str] = []
    for name in RESOURCE_NAMES:
        need, have = getattr(total, name), getattr(avail, name)
        if have <= 0:
            util[name] = math.inf if need > 0 else 0.0
        else:
            util[name] = need / have
        if need > have:
            what = f"{name.upper()} {need:g} > {have:g} available"
            if have <= 0:
                what = f"{name.upper()} {need:g} needed, the {board.device} has none"
            reasons.append(what)
    limiting = max(util, key=lambda k: util[k]).upper()
    if cfg.clock_2x_mhz > board.dsp_fmax_mhz:
        reasons.append(
            f"timing: 2x clock {cfg.clock_2x_mhz} MHz > DSP48E2 fmax {board.dsp_fmax_mhz} MHz "
            f"(speed grade {board.speed_grade})"
        )
        if all(u <= 1 for u in util.values()):
            limiting = "CLOCK"
    risks: list[str] = []
    if cfg.clock_mhz > board.max_safe_dpu_clock_mhz:
        risks.append(
            f"power: {cfg.clock_mhz}/{cfg.clock_2x_mhz} MHz is above the {board.max_safe_dpu_clock_mhz} MHz "
            f"known safe on the {board.title}"
        )
    elif cfg.clock_mhz not in board.safe_dpu_clocks_mhz:
        risks.append(f"clock: {cfg.clock_mhz} MHz is not a DPU clock known to work on the {board.title}")
    missing = [f"{mhz} MHz" for mhz in (cfg.clock_mhz, cfg.clock_2x_mhz) if board.clock_id(mhz) is None]
    if missing:
        risks.append(
            f"platform-clock: the {board.title} platform has no {' or '.join(missing)} clock, so `dpu files` "
            "and `hw build` refuse this configuration until the board record's platform_clocks_mhz has it"
        )
    tight = [k.upper() for k, u in util.items() if TIGHT_FRACTION < u <= 1]
    if tight:
        risks.append(f"tight: {', '.join(tight)} above {TIGHT_FRACTION:.0%} (placement and timing harder)")
    if cfg.cores > board.max_cores_by_ports:
        risks.append(
            f"ports: the board record lists AXI ports for {board.max_cores_by_ports} core(s), so `dpu files` and "
            f"`hw build` refuse {cfg.cores} cores until its dpu_ports has more"
        )
    unbuildable = []
    if cfg.softmax:
        # dpu files connects a softmax kernel where the board record names a softmax_port; hw build never packages one
        refusers = "`hw build` refuses" if board.softmax_port else "`dpu files` and `hw build` refuse"
        unbuildable.append(f"softmax = true ({refusers} it: the build packages no softmax kernel)")
    if cfg.save_argmax:
        unbuildable.append("save_argmax = true (`hw build` refuses it: an IP v4.1 option, the TRD it builds is v4.0)")
    if unbuildable:
        which = "both" if len(unbuildable) > 1 else "it"
        risks.append(f"build: {' and '.join(unbuildable)}; set {which} to false to build this configuration")
    return FitReport(
        config=cfg.name,
        board=board.name,
        dpu=dpu,
        total=total,
        available=avail,
        utilization=util,
        fits=not reasons,
        limiting=limiting,
        reasons=reasons,
        risks=risks,
    )
