"""Predicted time per frame of a split on the board: DPU stage, CPU stage, pipelined and sequential FPS.

- DPU stage: the sum of the DPU subgraphs' times from the DPU performance model (dpupose.dpu.perf),
  per layer, so any subset of the DPU units can be costed from one estimate per DPU subgraph.
- CPU stage: the CPU subgraphs under the Cortex-A53 model (dpupose.split.a53), plus the conversion and
  DDR transfer of every boundary tensor between the DPU and the CPU (including the image entering the
  first DPU subgraph) and the CPU's share of each DPU job. The conversions are counted as the split
  executor (dpupose.runtime.executor) makes them: a float tensor once for every DPU subgraph that reads
  it, and a DPU subgraph's output once when any CPU subgraph reads it (the executor converts it for the
  first and shares that float copy with the others); one of the plan's outputs (coords, heatmaps), which
  the caller gets as float, once for the caller when no CPU subgraph reads it (else the caller gets the
  float copy the CPU subgraphs took). The image is the exception: when
  only DPU subgraphs read it, at one fix point, pre-processing makes their int8 tensor directly (the
  executor's input_lut, a table look-up in place of normalizing), so it costs no conversion here, being
  part of the pre-processing these figures leave out (below).
- Pipelined throughput = 1 / max(DPU stage, CPU stage): the DPU and the CPU work on different frames at
  once. Sequential = 1 / (DPU stage + CPU stage).

Pre-processing (letterbox, normalization, and the image's int8 look-up where it replaces them) and drawing
are outside the model: the figures are for the network and its boundaries, like the study's rows (which
start from the normalized image) and like the DPU estimates (which leave out host_ms, the per-frame CPU
time of the end-to-end figures they were fitted on). Everything here is "predicted".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from dpupose.split.a53 import A53Model, node_counts
from dpupose.split.assign import DPU, Group
from dpupose.split.graph import QdqGraph


@dataclass
class Prediction:
    """Predicted per-frame times (ms) of one split on the board."""

    dpu_ms: float
    cpu_ms: float
    boundary_ms: float  # part of cpu_ms: conversions and transfers of boundary tensors
    subgraph_ms: dict[str, float] = field(default_factory=dict)

    @property
    def pipelined_fps(self) -> float:
        slowest = max(self.dpu_ms, self.cpu_ms)
        return 1000.0 / slowest if slowest > 0 else math.inf

    @property
    def sequential_fps(self) -> float:
        total = self.dpu_ms + self.cpu_ms
        return 1000.0 / total if total > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        return {
            "predicted": True,
            "dpu_ms": round(self.dpu_ms, 4),
            "cpu_ms": round(self.cpu_ms, 4),
            "boundary_ms": round(self.boundary_ms, 4),
            "pipelined_fps": round(self.pipelined_fps, 2),
            "sequential_fps": round(self.sequential_fps, 2),
            "subgraph_ms": {k: round(v, 4) for k, v in self.subgraph_ms.items()},
        }


def unit_dpu_ms(g: QdqGraph, estimates: list[Any]) -> dict[int, float]:
    """Milliseconds per unit from perf.Estimate objects of DPU subgraphs (layer rows keyed by node name)."""
    by_name: dict[str, float] = {}
    for est in estimates:
        for row in est.layers:
            by_name[row.name] = by_name.get(row.name, 0.0) + row.time_ms
    out: dict[int, float] = {}
    for u in g.units:
        out[u.index] = sum(by_name.get(g.nodes[n].name, 0.0) for n in u.nodes)
    return out


def cpu_group_s(g: QdqGraph, grp: Group, a53: A53Model, int8: bool = False) -> float:
    """Predicted A53 time of one CPU subgraph's nodes (constants folded)."""
    macs = ops = count = 0
    for n in grp.nodes:
        if n in g.const_nodes:
            continue
        m, o, c = node_counts(g.nodes[n], g.shapes)
        macs, ops, count = macs + m, ops + o, count + c
    return a53.compute_s(macs, ops, count, int8)


def plan_outputs(g: QdqGraph) -> set[str]:
    """The model outputs a plan of `g` hands to its caller (coords, and heatmaps where it has them)."""
    from pathlib import Path

    from dpupose.split.partition import model_outputs

    names = model_outputs(g, Path("the model"))
    return {t for t in (names.coords, names.heatmaps) if t is not None}


def int8_image(g: QdqGraph, groups: list[Group]) -> str | None:
    """The image input when pre-processing makes it int8 for the DPU (module docstring): every subgraph that
    reads it is a DPU subgraph and they read it at one fix point; else None."""
    from dpupose.errors import ModelFileError
    from dpupose.split.partition import dpu_fix_point

    for image in g.graph_inputs:
        readers = [grp for grp in groups if image in grp.inputs]
        if not readers or any(grp.device != DPU for grp in readers):
            continue
        try:  # a candidate the split would refuse for it is costed as quantized by each reader
            fix_points = {dpu_fix_point(g, grp, image, "input") for grp in readers}
        except ModelFileError:
            continue
        if len(fix_points) == 1:
            return image
    return None


def boundary_s(g: QdqGraph, groups: list[Group], a53: A53Model) -> float:
    """CPU time of converting and moving every tensor that crosses between the DPU and the CPU, counted as the
    executor converts them (module docstring): each DPU reader quantizes its own copy of a float tensor, a DPU
    output that CPU subgraphs read is converted once for them all, a plan output made on the DPU that no CPU
    subgraph reads is converted for the caller, and an image only DPU subgraphs read, at one fix point, is
    made int8 by pre-processing."""
    finals = plan_outputs(g)
    made_int8 = int8_image(g, groups)
    total = 0.0
    for grp in groups:
        if grp.device != DPU:
            continue
        for t in grp.inputs:
            if t not in grp.requant_inputs and t != made_int8:  # float from the CPU (or the image) -> int8
                total += a53.boundary_s(math.prod(g.shapes[t]), to_float=False)
        for t in grp.outputs:  # once for all the CPU subgraphs that read it, else for the caller or not at all
            cpu_read = any(t in other.inputs for other in groups if other.device != DPU)
            if cpu_read or t in finals:
                total += a53.boundary_s(math.prod(g.shapes[t]), to_float=True)
    return total


def predict(
    g: QdqGraph, groups: list[Group], dpu_ms: dict[int, float], a53: A53Model, cpu_int8: bool = False
) -> Prediction:
    """Predicted stage times of a grouping (dpu_ms: unit index -> DPU milliseconds)."""
    per: dict[str, float] = {}
    dpu = cpu = 0.0
    for grp in groups:
        if grp.device == DPU:
            ms = sum(dpu_ms.get(k, 0.0) for k in grp.units)
            dpu += ms
            cpu += a53.dpu_job_overhead_s * 1e3
        else:
            ms = cpu_group_s(g, grp, a53, cpu_int8) * 1e3
            cpu += ms
        per[grp.name] = ms
    edges = boundary_s(g, groups, a53) * 1e3
    return Prediction(dpu, cpu + edges, edges, per)


def plan_config(plan: Any) -> Any:
    """The DPU configuration a plan was split for: the options it records, else the shipped configuration
    of its name; ConfigError unless its fingerprint is the plan's."""
    from dpupose.dpu.config import DpuConfig, load_config
    from dpupose.dpu.fingerprint import fingerprint_hex
    from dpupose.errors import ConfigError

    where = f"the split plan in {plan.root}"
    options = plan.metadata.get("dpu_config_options")
    if isinstance(options, dict):
        cfg = DpuConfig.from_dict(dict(options), name=plan.dpu_config, where=f"{where} (metadata.dpu_config_options)")
    else:
        try:
            cfg = load_config(plan.dpu_config)
        except ConfigError:
            raise ConfigError(
                f"{where} was split for DPU configuration {plan.dpu_config!r}, which is not a shipped one, and "
                "does not record its options: split it again (this version records them)"
            ) from None
    if int(fingerprint_hex(cfg), 0) != int(plan.fingerprint, 0):
        raise ConfigError(
            f"{where} was split for {plan.fingerprint}, but its configuration {plan.dpu_config!r} is "
            f"{fingerprint_hex(cfg)} here: split it again for the configuration you mean"
        )
    return cfg


def predict_plan(plan: Any, a53: A53Model, cpu_int8: bool = False) -> Prediction:
    """Predicted stage times of a plan folder: perf.estimate per DPU file, A53 counts per CPU file.

    cpu_int8: the CPU subgraphs run as ONNX Runtime static INT8 (their MACs at the INT8 rate), as the A53
    model was calibrated: counts of the float graph, MACs at the INT8 rate.
    """
    import onnx

    from dpupose.dpu.board import load_board
    from dpupose.dpu.perf import estimate
    from dpupose.split.a53 import graph_counts

    cfg = plan_config(plan)
    board = load_board(cfg.board)
    per: dict[str, float] = {}
    dpu = cpu = edges = 0.0
    dpu_made: set[str] = set()
    dequantized: set[str] = set()
    finals = {t for t in (plan.outputs.coords, plan.outputs.heatmaps) if t is not None}
    # the image, when pre-processing makes it int8 (module docstring): only DPU subgraphs read it, at one fix point
    image = [(sg.is_dpu, t.fix_point) for sg in plan.subgraphs for t in sg.inputs if t.name == plan.input.name]
    lut = image and all(dpu for dpu, _ in image) and len({fp for _, fp in image}) == 1 and image[0][1] is not None
    made_int8 = plan.input.name if lut else None
    cpu_read = {t.name for sg in plan.subgraphs if not sg.is_dpu for t in sg.inputs}
    for sg in plan.subgraphs:
        path = plan.path(sg.file)
        if sg.is_dpu:
            ms = estimate(str(path), cfg, board).latency_ms
            dpu += ms
            cpu += a53.dpu_job_overhead_s * 1e3
            for t in sg.inputs:
                if t.name not in dpu_made and t.name != made_int8:
                    edges += a53.boundary_s(math.prod(t.shape), to_float=False) * 1e3
            dpu_made.update(t.name for t in sg.outputs)
            for t in sg.outputs:  # converted for the caller unless a CPU subgraph took it (module docstring)
                if t.name in finals and t.name not in cpu_read:
                    edges += a53.boundary_s(math.prod(t.shape), to_float=True) * 1e3
        else:
            c = graph_counts(onnx.load(str(path)))
            ms = a53.compute_s(c["macs"], c["element_ops"], c["nodes"], cpu_int8) * 1e3
            cpu += ms
            for t in sg.inputs:  # a DPU output, converted for the first CPU subgraph that reads it only
                if t.name in dpu_made and t.name not in dequantized:
                    dequantized.add(t.name)
                    edges += a53.boundary_s(math.prod(t.shape), to_float=True) * 1e3
        per[sg.name] = ms
    return Prediction(dpu, cpu + edges, edges, per)
