"""Assign every unit of a QDQ graph to the DPU or the CPU, and group the units into subgraphs.

A unit runs on the DPU when (1) the configuration's operator rules accept its op and fused activations
(dpupose.dpu.ops.dpu_support), (2) it reads only quantized activations (DequantizeLinear outputs) and
(3) its result goes only into QuantizeLinear nodes, so a DPU subgraph starts at float tensors entering a
QuantizeLinear and ends at DequantizeLinear outputs. Anything else, and every unit forced by the caller
(`--cpu-from`, optimizer candidates), runs on the CPU, with the reason recorded.

Q/DQ pairs follow the op they quantize: a pair whose producer is on the DPU belongs to the producer's
subgraph; otherwise (graph input, CPU producer) it is copied into every subgraph that reads it, so a DPU
subgraph quantizes its own float inputs.

Grouping: level(unit) = max over its producers of level(producer) + (1 if the devices differ). Units with
the same device and level form one subgraph. A path between two units of one level never changes device,
so the subgraphs form a chain without cycles, ordered by level: DPU -> CPU -> DPU -> ... with as many
subgraphs as the graph needs. A DPU subgraph that reads another DPU subgraph's output (int8 passed as it
is) gets a boundary QuantizeLinear with that tensor's own scale, which is exact.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from dpupose.dpu.config import DpuConfig
from dpupose.dpu.ops import HARD_ACTIVATION_OPS, NOT_FUSED, activation_support, dpu_support, engine_of
from dpupose.errors import ModelFileError, shortlist
from dpupose.split.graph import QdqGraph, Unit

DPU = "dpu"
CPU = "cpu"
MAX_REASONS = 3


@dataclass
class Assignment:
    devices: list[str]  # per unit
    reasons: list[str]  # per unit: what the DPU does with it, or why it is on the CPU


@dataclass
class Group:
    """One subgraph: units of one device and level, with the Q/DQ nodes that go with them."""

    name: str
    device: str
    level: int
    units: list[int]
    nodes: list[int] = field(default_factory=list)  # node indices, graph order (constants not included)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    requant_inputs: list[str] = field(default_factory=list)  # DPU: another DPU subgraph's DQ outputs
    reason: str | None = None


def _quantized_io(g: QdqGraph, u: Unit) -> str | None:
    """Why a unit cannot be a DPU step for lack of Q/DQ around it, or None."""
    for t in u.inputs:
        if t not in g.pair_of_dq_output:
            return f"input {t!r} is not quantized (float in the QDQ model)"
    if u.requant:
        return None
    consumers = g.consumers.get(u.output, [])
    if u.output in g.graph_outputs or not consumers:
        return f"output {u.output!r} is a float model output"
    hard = [g.nodes[c] for c in consumers if g.nodes[c].op_type in HARD_ACTIVATION_OPS]
    if hard:
        return (
            f"output {u.output!r} goes into {hard[0].op_type} {hard[0].name!r} without a Q/DQ pair: {NOT_FUSED}, "
            "which the QDQ file must state (dpupose quantize puts a Q/DQ pair there)"
        )
    bn = [g.nodes[c] for c in consumers if g.nodes[c].op_type == "BatchNormalization"]
    if bn and u.op in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
        return (
            f"output {u.output!r} goes into BatchNormalization {bn[0].name!r} without a Q/DQ pair: fold the "
            "batch norm into the weights and bias before quantizing, as the DPU runs it (the QDQ file must state "
            "the folded weights' quantization)"
        )
    if any(g.nodes[c].op_type != "QuantizeLinear" for c in consumers):
        return f"output {u.output!r} is not quantized (the DPU hands over only int8 tensors)"
    return None


def assign(g: QdqGraph, cfg: DpuConfig, forced: Mapping[int, str] | None = None) -> Assignment:
    """Device and reason of every unit, in graph order (forced: unit index -> reason to put it on the CPU)."""
    forced = forced or {}
    devices: list[str] = []
    reasons: list[str] = []

    def on_dpu(tensor: str) -> bool | None:
        if tensor in g.pair_of_dq_output:
            p = g.pairs[g.pair_of_dq_output[tensor]]
            return p.producer is not None and p.producer < len(devices) and devices[p.producer] == DPU
        node = g.producer.get(tensor)
        if node is not None and node in g.unit_of_node and g.unit_of_node[node] < len(devices):
            return devices[g.unit_of_node[node]] == DPU
        return None

    info = g.info(on_dpu)
    for u in g.units:
        if u.index in forced:
            devices.append(CPU)
            reasons.append(forced[u.index])
            continue
        if u.requant:
            ok, why = True, "requantize (change of fix point)"
        else:
            node = g.nodes[u.main]
            ok, why = dpu_support(node, info, cfg)
            if ok:
                engine = engine_of(node, info, cfg)
                for a in u.fused:
                    a_ok, a_why = activation_support(g.nodes[a], engine, cfg, info)
                    if not a_ok:
                        ok, why = False, f"its fused activation cannot run on the DPU: {a_why}"
                        break
        if ok:
            missing = _quantized_io(g, u)
            if missing is not None:
                ok, why = False, missing
        devices.append(DPU if ok else CPU)
        reasons.append(why)
    return Assignment(devices, reasons)


def _preds(g: QdqGraph, u: Unit) -> list[int]:
    out = []
    for t in u.inputs:
        if t in g.pair_of_dq_output:
            p = g.pairs[g.pair_of_dq_output[t]].producer
        else:
            node = g.producer.get(t)
            p = g.unit_of_node.get(node) if node is not None else None
        if p is not None:
            out.append(p)
    return out


def _summary(g: QdqGraph, a: Assignment, units: list[int]) -> str:
    """Why a CPU subgraph is on the CPU: forced units first, then the units with the largest tensors."""

    def size(k: int) -> int:
        return math.prod(g.shapes.get(g.units[k].output, (0,)))

    ranked = sorted(units, key=lambda k: (not a.reasons[k].startswith("forced"), -size(k)))
    by_reason: dict[str, list[str]] = {}
    for k in ranked:
        ops = by_reason.setdefault(a.reasons[k], [])
        if g.units[k].op not in ops:
            ops.append(g.units[k].op)
    parts = []
    for reason, ops in by_reason.items():
        if all(op in reason for op in ops):
            parts.append(reason)
        else:
            parts.append(f"{shortlist(ops, MAX_REASONS)}: {reason}")
    text = "; ".join(parts[:MAX_REASONS])
    if len(parts) > MAX_REASONS:
        text += f"; {len(parts) - MAX_REASONS} other reason(s)"
    return text


def group(g: QdqGraph, a: Assignment) -> list[Group]:
    """Subgraphs in execution order, with their nodes and boundary tensors."""
    dev = a.devices
    level = [0] * len(g.units)
    for u in g.units:
        level[u.index] = max((level[p] + (dev[p] != dev[u.index]) for p in _preds(g, u)), default=0)
    keys = sorted({(level[u.index], dev[u.index] != DPU) for u in g.units})
    counters = {DPU: 0, CPU: 0}
    groups: list[Group] = []
    group_of_unit: dict[int, int] = {}
    for lv, is_cpu in keys:
        device = CPU if is_cpu else DPU
        units = [u.index for u in g.units if level[u.index] == lv and dev[u.index] == device]
        grp = Group(f"{device}{counters[device]}", device, lv, units)
        counters[device] += 1
        if device == CPU:
            grp.reason = _summary(g, a, units)
        for k in units:
            group_of_unit[k] = len(groups)
        groups.append(grp)

    members: list[set[int]] = [set() for _ in groups]
    for u in g.units:
        members[group_of_unit[u.index]].update(u.nodes)
    for p in g.pairs:
        if p.producer is not None and dev[p.producer] == DPU:
            members[group_of_unit[p.producer]].update([p.q, *p.dqs])
            continue
        for d in p.dqs:
            for c in g.consumers.get(g.nodes[d].output[0], []):
                k = g.unit_of_node.get(c)
                if k is None:  # a requantizing Q: its unit has no node of its own
                    k = next((u.index for u in g.units if u.requant and u.main == c), None)
                if k is not None:
                    members[group_of_unit[k]].update([p.q, d])
            if g.nodes[d].output[0] in g.graph_outputs and p.producer is not None:
                members[group_of_unit[p.producer]].update([p.q, d])

    produced_by: dict[str, int] = {}
    for k, nodes in enumerate(members):
        for n in sorted(nodes):
            for t in g.nodes[n].output:
                produced_by.setdefault(t, k)
    for k, grp in enumerate(groups):
        grp.nodes = sorted(members[k])
        own = {t for n in grp.nodes for t in g.nodes[n].output}
        for n in grp.nodes:
            for t in g.nodes[n].input:
                if t and t not in own and t not in g.constants and t not in grp.inputs:
                    grp.inputs.append(t)
    needed = {t for grp in groups for t in grp.inputs} | set(g.graph_outputs)
    for k, grp in enumerate(groups):
        for n in grp.nodes:
            for t in g.nodes[n].output:
                if t in needed and produced_by.get(t) == k and t not in grp.outputs:
                    grp.outputs.append(t)
        if grp.device == DPU:
            _check_dpu_inputs(g, grp, produced_by, groups)
    return groups


def _check_dpu_inputs(g: QdqGraph, grp: Group, produced_by: dict[str, int], groups: list[Group]) -> None:
    own = set(grp.nodes)
    for t in grp.inputs:
        readers = [c for c in g.consumers.get(t, []) if c in own]
        if readers and all(g.nodes[c].op_type == "QuantizeLinear" for c in readers):
            continue
        src = produced_by.get(t)
        if t in g.pair_of_dq_output and src is not None and groups[src].device == DPU:
            grp.requant_inputs.append(t)
            continue
        raise ModelFileError(
            f"DPU subgraph {grp.name}: input {t!r} does not enter a QuantizeLinear; the model does not follow the "
            "QDQ conventions of `dpupose quantize`"
        )
