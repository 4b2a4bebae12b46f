"""After the link: gather the four deliverables, read the reports, publish only a build that met timing.

`collect` copies the bitstream, hardware handoff, xclbin and arch.json out of the v++ folder into
``collect/`` under their PYNQ names and checks them (arch.json's fingerprint must be the configuration's).
`report` reads the implementation's utilization and timing reports, stops with `TimingNotMet` if any
slack is negative, and otherwise publishes the four files to ``build/hw/<config>/`` and writes
``build_info.json`` (tool versions, fingerprint, resources used against the model's estimate, timing, and
each published file's size and sha256, by which `hw status` and a rebuild tell that a set is still one build's).

API:
    link_outputs(paths, warn=True) -> dict[str, Path]    where the link left each deliverable
    collect(paths, cfg) -> dict[str, Path]
    report(paths, cfg, board, facts) -> dict          facts: tools, TRD, board files, step times
    TimingNotMet
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from dpupose.dpu.board import Board
from dpupose.dpu.config import DpuConfig
from dpupose.dpu.fingerprint import fingerprint, fingerprint_hex
from dpupose.dpu.paths import board_file
from dpupose.dpu.resources import check_fit
from dpupose.dpu.writers import write_if_changed
from dpupose.errors import ArtifactError, FingerprintMismatch
from dpupose.fsio import atomic_path, json_text, loads_json, sha256_file
from dpupose.hwbuild.layout import DELIVERABLES, BuildPaths
from dpupose.hwbuild.reports import find_report, parse_timing_summary, parse_utilization

log = logging.getLogger(__name__)
GENERATOR = "dpupose.hwbuild.collect"
VPL_PROJECT = "link/vivado/vpl/prj"  # the Vivado project v++ implements, under its --temp_dir
# deliverable -> where v++ leaves it under VPL_PROJECT
LINK_ARTIFACTS = {
    "dpu.bit": "prj.runs/impl_1/*.bit",
    "dpu.hwh": "prj.gen/sources_1/bd/*/hw_handoff/*.hwh",
    "arch.json": "prj.gen/sources_1/bd/*/ip/*_DPUCZDX8G_1_0/arch.json",
}
XCLBIN_MAGIC = b"xclbin2\0"


class TimingNotMet(ArtifactError):
    """The implemented design has negative slack; its files are not published."""


def _one(base: Path, pattern: str, what: str) -> Path | None:
    hits = sorted(base.glob(pattern))
    if len(hits) > 1:
        raise ArtifactError(f"several {what} under {base}: {', '.join(str(h) for h in hits)}")
    return hits[0] if hits else None


def _copy(src: Path, dest: Path) -> None:
    """Copy atomically: `dest` is either absent, the old file or the whole new one."""
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)


def _check_arch_json(path: Path, cfg: DpuConfig) -> None:
    try:
        data = loads_json(path.read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path} is not JSON: {exc}") from None
    text = data.get("fingerprint") if isinstance(data, dict) else None
    if text is None:
        raise ArtifactError(f"{path} has no fingerprint: {data}")
    if int(str(text), 16) != fingerprint(cfg):
        raise FingerprintMismatch(
            f"the linked DPU reports fingerprint {text} ({path}), the configuration {cfg.name} is "
            f"{fingerprint_hex(cfg)}: the kernel was packaged with another dpu_conf.vh; rebuild with --from kernel"
        )


def link_outputs(paths: BuildPaths, warn: bool = True) -> dict[str, Path]:
    """Where the link left each deliverable (ArtifactError where it left none, or several): what collect
    copies, unchecked. `warn`: say where the generated arch.json stands in for the link's."""
    vpl = paths.link_dir / VPL_PROJECT
    found: dict[str, Path] = {"dpu.xclbin": paths.linked_xclbin}
    for name, pattern in LINK_ARTIFACTS.items():
        hit = _one(vpl, pattern, name)
        if hit is None and name == "arch.json":
            if warn:
                log.warning("the link left no arch.json under %s; using the generated %s", vpl, paths.arch_json)
            hit = paths.arch_json
        if hit is None:
            raise ArtifactError(f"the link left no {pattern} under {vpl}; see {paths.logs / 'link.log'}")
        found[name] = hit
    return found


def collect(paths: BuildPaths, cfg: DpuConfig) -> dict[str, Path]:
    """Copy the link's outputs into collect/ under their PYNQ names, after checking them."""
    stage = paths.root / "collect"
    if stage.exists():
        shutil.rmtree(stage)
    found = link_outputs(paths)
    with found["dpu.xclbin"].open("rb") as f:
        if f.read(len(XCLBIN_MAGIC)) != XCLBIN_MAGIC:
            raise ArtifactError(f"{found['dpu.xclbin']} is not an xclbin (no xclbin2 header)")
    if b"DPUCZDX8G" not in found["dpu.hwh"].read_bytes():
        raise ArtifactError(f"{found['dpu.hwh']} does not describe a DPUCZDX8G: is it the linked design's?")
    _check_arch_json(found["arch.json"], cfg)
    out = {}
    for name in DELIVERABLES:
        _copy(found[name], stage / name)
        out[name] = stage / name
    return out


def _usage(paths: BuildPaths, cfg: DpuConfig, board: Board) -> dict[str, Any]:
    util = parse_utilization(find_report(paths.link_dir, "utilization").read_text())
    estimate = check_fit(cfg, board).total
    return {
        key: {"used": u.used, "available": u.available, "estimated": getattr(estimate, key)} for key, u in util.items()
    }


def report(paths: BuildPaths, cfg: DpuConfig, board: Board, facts: dict[str, Any]) -> dict[str, Any]:
    """Check timing, then publish the deliverables and build_info.json; returns the build info."""
    timing_path = find_report(paths.link_dir, "timing")
    timing = parse_timing_summary(timing_path.read_text())
    if not timing.met:
        raise TimingNotMet(
            f"timing is not met: {timing.failure()} ({timing_path}). Nothing was published; the files are in "
            f"{paths.root / 'collect'}. Try a lower clock_mhz or a smaller ARCH, or another implementation "
            f"strategy in {board_file(board.name)}"
        )
    stage = paths.root / "collect"
    missing = [n for n in DELIVERABLES if not (stage / n).is_file()]
    if missing:
        raise ArtifactError(f"{stage} lacks {', '.join(missing)}: run the collect step first")
    info = {
        "generated_by": f"{GENERATOR}; do not edit",
        "config": cfg.name,
        "board": board.name,
        "fingerprint": fingerprint_hex(cfg),
        "configuration": cfg.to_dict(),
        "clocks_mhz": {"dpu_1x": cfg.clock_mhz, "dpu_2x": cfg.clock_2x_mhz},
        "timing": {
            "met": True,
            "wns_ns": timing.wns_ns,
            "whs_ns": timing.whs_ns,
            "wpws_ns": timing.wpws_ns,
            "clocks_wns_ns": timing.clocks,
        },
        "resources": _usage(paths, cfg, board),
        **facts,
        "artifacts": {},
    }
    for name in DELIVERABLES:
        _copy(stage / name, paths.deliverable(name))
        published = paths.deliverable(name)
        info["artifacts"][name] = {"bytes": published.stat().st_size, "sha256": sha256_file(published)}
    write_if_changed(paths.build_info, json_text(info, indent=2) + "\n")
    return info
