"""The fingerprint guard: refuse to run a plan, xmodel and overlay made for different DPU configurations.

A DPU configuration's fingerprint is a 64-bit word (see dpupose.dpu.fingerprint). Three places carry it:
- the split plan: top-level "fingerprint" in plan.json;
- the compiled model: every DPU subgraph of an .xmodel has the attribute "dpu_fingerprint" (uint64), the
  word VART compares with the DPU's version registers;
- the overlay: arch.json next to dpu.bit, `{"fingerprint": "0x..."}`, or the name of a Vitis AI 2.5
  target, `{"target": "DPUCZDX8G_ISA1_B4096"}` (the form of the arch.json files in the Vitis AI image).
An xmodel compiled for one fingerprint does not run on a DPU with another (VART 2.5 compares the subgraph's
with the DPU's registers at every run and aborts the process on a difference), so the runtime compares them
first and names both sides and the fix on a mismatch.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dpupose.errors import FingerprintMismatch, ModelFileError, UsageError
from dpupose.fsio import loads_json, not_a_file
from dpupose.split.plan import Plan, parse_fingerprint

log = logging.getLogger(__name__)

ARCH_JSON = "arch.json"

# The fingerprints of Vitis AI 2.5's named DPUCZDX8G targets (its target factory's
# DPUCZDX8G_ISA1_<ARCH>.prototxt: the default configurations, as DPU-PYNQ 2.5 builds them). Vitis AI 3.0
# gives the same names bit 30 (save argmax), a DPU that a 2.5 overlay is not.
VITIS_AI_25_TARGETS = {
    f"DPUCZDX8G_ISA1_{arch}": 0x101000016010000 | code
    for arch, code in (
        ("B512", 0x200),
        ("B800", 0x201),
        ("B1024", 0x402),
        ("B1152", 0x203),
        ("B1600", 0x404),
        ("B2304", 0x405),
        ("B3136", 0x406),
        ("B4096", 0x407),
    )
}


def hexfp(value: int) -> str:
    return f"0x{value:x}"


def overlay_arch_json(overlay: str | Path) -> Path:
    """Where the overlay's arch.json is looked for: beside dpu.bit (overlay folder or .bit file)."""
    path = Path(overlay)
    return (path.parent if path.suffix == ".bit" else path) / ARCH_JSON


def read_arch_json(path: Path) -> int | None:
    """The fingerprint in an arch.json, or None (with a warning) when the file is missing."""
    if not path.is_file():
        log.warning(
            "overlay fingerprint not checked: no %s (looked at %s); `make hw` writes it next to dpu.bit",
            ARCH_JSON,
            path,
        )
        return None
    try:
        data = loads_json(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path} is not valid JSON ({exc}): rebuild the overlay with `make hw`") from None
    return arch_fingerprint(data, str(path))


def arch_fingerprint(data: object, where: str) -> int:
    """The fingerprint an arch.json's content describes: its "fingerprint", else that of the Vitis AI 2.5
    target its "target" names. ModelFileError when it has neither, or names another target."""
    if isinstance(data, dict) and "fingerprint" in data:
        return parse_fingerprint(data["fingerprint"], where)
    target = data.get("target") if isinstance(data, dict) else None
    if isinstance(target, str) and target in VITIS_AI_25_TARGETS:
        return VITIS_AI_25_TARGETS[target]
    fix = (
        'give the DPU\'s fingerprint instead, {"fingerprint": "0x..."} (`make hw` writes it; on the board '
        "`xdputil query` shows it)"
    )
    if isinstance(target, str):
        raise ModelFileError(
            f"{where} names target {target!r}, which is not a Vitis AI 2.5 DPUCZDX8G target "
            f"(DPUCZDX8G_ISA1_B512 ... DPUCZDX8G_ISA1_B4096), so its fingerprint is not known here: {fix}"
        )
    raise ModelFileError(f'{where} has neither a "fingerprint" nor a "target": {fix}')


@dataclass
class GuardReport:
    """What was compared: source description -> fingerprint (None: not available)."""

    plan: int
    checked: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if not self.checked:  # nothing to compare the plan with: no "match" to report
            text = f"DPU fingerprint of the plan {hexfp(self.plan)}, compared with nothing"
            return text + ("; not checked: " + ", ".join(self.skipped) if self.skipped else "")
        parts = [f"plan {hexfp(self.plan)}"] + [f"{k} {hexfp(v)}" for k, v in self.checked.items()]
        text = "DPU fingerprints match: " + ", ".join(parts)
        if self.skipped:
            text += "; not checked: " + ", ".join(self.skipped)
        return text


def matching_configs(value: int) -> list[str]:
    """Shipped DPU configurations with this fingerprint (empty where the configurations or their TOML
    reader are not installed, e.g. on the board)."""
    try:
        from dpupose.dpu.config import list_configs, load_config
        from dpupose.dpu.fingerprint import fingerprint

        return [name for name in list_configs() if fingerprint(load_config(name)) == value]
    except Exception:  # best effort: only makes the message more precise
        return []


def describe(value: int) -> str:
    """ "B1600, 2 bank groups, ALU parallel 4, ..." or "" when the word cannot be decoded here."""
    try:
        from dpupose.dpu.fingerprint import decode

        f = decode(value)
        parts = [f.arch.name, f"{f.bank_groups} bank groups", f"ALU parallel {f.alu_parallel}"]
        parts += [
            n for n, on in (("channel augmentation", f.channel_augmentation), ("conv LeakyReLU", f.conv_leaky)) if on
        ]
        return ", ".join(parts)
    except Exception:  # best effort, as above
        return ""


def _mismatch(plan: Plan, plan_src: str, other: int, other_src: str, what: str) -> FingerprintMismatch:
    names = matching_configs(other)
    detail = "; ".join(x for x in (describe(other), "configuration " + " or ".join(names) if names else "") if x)
    theirs = names[0] if len(names) == 1 else "<its configuration>"
    fix = (
        f"Fix: rebuild the overlay for the plan's DPU configuration with `make hw DPU={plan.dpu_config}`, "
        f"or re-split the model for the overlay's configuration (`dpupose split ... --config {theirs}`) and "
        f"recompile the xmodel with that overlay's arch.json"
        if what == "overlay"
        else "Fix: recompile the xmodel from this plan's subgraphs with the arch.json of configuration "
        f"{plan.dpu_config}, or re-split the model for the configuration the xmodel was compiled for"
    )
    return FingerprintMismatch(
        f"DPU fingerprint mismatch: the split plan ({plan_src}) was made for {hexfp(plan.fingerprint_int())} "
        f"(DPU configuration {plan.dpu_config}) but the {what} ({other_src}) is for {hexfp(other)}"
        + (f" ({detail})" if detail else "")
        + f". {fix}."
    )


def check_overlay_path(overlay: str | Path, option: str = "--overlay") -> None:
    """UsageError unless `overlay` is a folder or a .bit file. `option`: what the message calls it (`--overlay`;
    the notebook's `OVERLAY`, a variable the user sets)."""
    thing = "the overlay folder (dpu.bit, dpu.hwh, dpu.xclbin, arch.json) or its dpu.bit"
    what = f"give {thing}" if option.startswith("-") else f"set {option} to {thing}"
    if not Path(overlay).is_dir() and not Path(overlay).is_file():
        # a FIFO, a device or a link that leads nowhere is named for what it is, as every other input is: a FIFO
        # named NAME.bit was taken for the .bit and its arch.json looked for beside it
        raise UsageError(f"{option} {overlay} {not_a_file(overlay, 'does not exist')}: {what}")
    if Path(overlay).is_file() and Path(overlay).suffix != ".bit":
        raise UsageError(f"{option} {overlay} is neither a folder nor a .bit file: {what}")


def check_fingerprints(
    plan: Plan,
    overlay: str | Path | None = None,
    xmodel_fingerprints: Mapping[str, Mapping[str, int | None]] | None = None,
) -> GuardReport:
    """Compare the plan with the overlay's arch.json and with each xmodel's DPU subgraphs.

    `xmodel_fingerprints`: xmodel path -> {DPU subgraph name -> "dpu_fingerprint" or None}.
    Raises FingerprintMismatch on the first disagreement; a missing arch.json or attribute only warns.
    """
    plan_fp = plan.fingerprint_int()
    plan_src = str(plan.path("plan.json"))
    report = GuardReport(plan_fp)
    if overlay is not None:
        check_overlay_path(overlay)
        arch = overlay_arch_json(overlay)
        fp = read_arch_json(arch)
        if fp is None:
            report.skipped.append(f"overlay (no {arch})")
        elif fp != plan_fp:
            raise _mismatch(plan, plan_src, fp, str(arch), "overlay")
        else:
            report.checked[f"overlay {arch}"] = fp
    for path, subgraphs in (xmodel_fingerprints or {}).items():
        for name, fp in subgraphs.items():
            where = f"{path}, DPU subgraph {name!r} attribute dpu_fingerprint"
            if fp is None:
                log.warning("xmodel fingerprint not checked: %s has no dpu_fingerprint attribute", where)
                report.skipped.append(f"xmodel {path}:{name}")
            elif fp != plan_fp:
                raise _mismatch(plan, plan_src, fp, where, "xmodel")
            else:
                report.checked[f"xmodel {path}:{name}"] = fp
    return report
