"""`--optimize`: choose the cut with the highest predicted pipelined throughput on the board.

Candidates, each a legal assignment (the operator rules still apply to everything left on the DPU):
- the rules alone (every unit the DPU can run is on the DPU);
- a cut before each DPU unit along the graph's topological order: that unit and every unit after it run
  on the CPU (e.g. the decoder's last blocks, or only the last 1x1 conv, moved to the CPU);
- each of those again with pixel shuffle (DepthToSpace) on the CPU, when the configuration keeps it on
  the DPU.
Assignments that come out identical are weighed once. Each is grouped into subgraphs and costed by
dpupose.split.cost (DPU performance model + Cortex-A53 model). The highest predicted pipelined FPS wins;
candidates within TIE_TOLERANCE (1%) of it count as ties, which go to fewer subgraphs (each boundary
costs conversions and a DPU job that the model only estimates), then to the higher FPS.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dpupose.dpu.config import DpuConfig
from dpupose.split.a53 import A53Model
from dpupose.split.assign import DPU, Assignment, Group, assign, group
from dpupose.split.cost import Prediction, predict
from dpupose.split.graph import QdqGraph

RULES_ONLY = "rules only"
ALL_CPU = "all on the CPU"
TIE_TOLERANCE = 0.01  # relative: predictions closer than this are not told apart
SHUFFLE_SUFFIX = " + pixel shuffle on the CPU"


@dataclass
class Candidate:
    label: str
    forced: dict[int, str]
    assignment: Assignment
    groups: list[Group]
    prediction: Prediction
    chosen: bool = False

    @property
    def dpu_subgraphs(self) -> int:
        return sum(grp.device == DPU for grp in self.groups)

    @property
    def cpu_subgraphs(self) -> int:
        return len(self.groups) - self.dpu_subgraphs

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "chosen": self.chosen,
            "subgraphs": [grp.name for grp in self.groups],
            **self.prediction.to_dict(),
        }


def evaluate(
    g: QdqGraph,
    cfg: DpuConfig,
    forced: Mapping[int, str],
    dpu_ms: dict[int, float],
    a53: A53Model,
    label: str = RULES_ONLY,
) -> Candidate:
    a = assign(g, cfg, forced)
    groups = group(g, a)
    return Candidate(label, dict(forced), a, groups, predict(g, groups, dpu_ms, a53))


def candidates(
    g: QdqGraph,
    cfg: DpuConfig,
    base_forced: Mapping[int, str],
    dpu_ms: dict[int, float],
    a53: A53Model,
    rules_label: str = RULES_ONLY,
) -> list[Candidate]:
    """Every distinct candidate (module docstring), in the order weighed. `rules_label` names the candidate of
    the rules with `base_forced` alone (split's 'rules and --cpu-from NODE' where the user forced a cut)."""
    base = assign(g, cfg, base_forced)
    on_dpu = [u for u in g.units if base.devices[u.index] == DPU]
    shuffles = {u.index: "pixel shuffle on the CPU (optimizer candidate)" for u in on_dpu if u.op == "DepthToSpace"}
    variants: list[tuple[str, dict[int, str]]] = [("", {})]
    if shuffles:
        variants.append((SHUFFLE_SUFFIX, shuffles))
    seen: set[tuple[str, ...]] = set()
    out: list[Candidate] = []
    for suffix, extra in variants:
        for cut in [None, *(u.index for u in on_dpu)]:
            forced = dict(base_forced)
            forced.update(extra)
            if cut is None:
                label = rules_label + suffix
            elif cut == on_dpu[0].index:
                label = ALL_CPU + suffix
                for u in g.units[cut:]:
                    forced.setdefault(u.index, "all on the CPU (optimizer candidate)")
            else:
                name = g.units[cut].name
                for u in g.units[cut:]:
                    forced.setdefault(u.index, f"after the cut --optimize chose at {name} (as --cpu-from {name})")
                label = f"CPU from {name}{suffix}"
            a = assign(g, cfg, forced)
            key = tuple(a.devices)
            if key in seen:
                continue
            seen.add(key)
            groups = group(g, a)
            out.append(Candidate(label, forced, a, groups, predict(g, groups, dpu_ms, a53)))
    return out


def best(cands: list[Candidate], tolerance: float = TIE_TOLERANCE) -> Candidate:
    """The highest predicted pipelined FPS; within `tolerance` of it: fewer subgraphs, then higher FPS."""
    top = max(c.prediction.pipelined_fps for c in cands)
    near = [c for c in cands if c.prediction.pipelined_fps >= top * (1 - tolerance)]
    chosen = max(
        near,
        key=lambda c: (-len(c.groups), c.prediction.pipelined_fps, -(c.prediction.dpu_ms + c.prediction.cpu_ms)),
    )
    for c in cands:
        c.chosen = c is chosen
    return chosen


def format_candidates(cands: list[Candidate]) -> str:
    """The table of candidates weighed (all figures predicted)."""
    width = max(len("candidate"), *(len(c.label) for c in cands))
    head = (
        f"  {'candidate':<{width}}  subgraphs  {'DPU ms':>8}  {'CPU ms':>8}  {'pipelined FPS':>13}  "
        f"{'sequential FPS':>14}"
    )
    lines = ["candidates weighed (all times and FPS predicted for the board):", head]
    for c in cands:
        p = c.prediction
        mark = "*" if c.chosen else " "
        lines.append(
            f"{mark} {c.label:<{width}}  {c.dpu_subgraphs} DPU {c.cpu_subgraphs} CPU  {p.dpu_ms:8.3f}  "
            f"{p.cpu_ms:8.3f}  {p.pipelined_fps:13.1f}  {p.sequential_fps:14.1f}"
        )
    lines.append(f"* chosen: highest predicted pipelined FPS (within {TIE_TOLERANCE:.0%}: the fewest subgraphs)")
    return "\n".join(lines)
