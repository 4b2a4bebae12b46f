"""Cortex-A53 cost model: predicted ONNX Runtime time of CPU subgraphs on the Ultra96-V2 (4x A53, 1.2 GHz).

Calibrated ONLY on the original study's two whole-model CPU rows (MPII pose model, 224 x 224, ONNX
Runtime on the Ultra96-V2's A53s): FP32 3.14 FPS and static INT8 7.45 FPS. The per-node cost is

    t(node) = MACs / R  +  element ops / R_fp32  +  t_node

- MACs: Conv / ConvTranspose / Gemm / MatMul multiply-accumulates; R = R_fp32, or R_int8 for nodes of an
  ONNX Runtime static-INT8 model.
- element ops: every other node does `OPS_PER_ELEMENT[op]` operations per output element (per input
  element for reductions and softmax), each costed like one FP32 MAC (NEON, 4 lanes, memory bound):
  softmax 12 (max, subtract, exp ~8, sum, divide), exp / sigmoid / tanh 8-10, QuantizeLinear 4 (scale,
  round, clamp, narrow), DequantizeLinear 2, anything else 1. Softmax and DSNT stay float in both rows.
- t_node: a fixed ONNX Runtime dispatch cost per executed node (NODE_OVERHEAD_S, an assumption: 5 us on
  a 1.2 GHz A53), for nodes other than Constant / Identity / constant folding.

With the reference network's counts (REFERENCE: the project's pose network at 224 x 224, width 1.0, as
exported to ONNX; a test recomputes them from a fresh export), the two rows give

    R_fp32 = (MACs + element ops) / (1 / 3.14 - nodes * t_node)
    R_int8 = MACs / (1 / 7.45 - element ops / R_fp32 - nodes * t_node)

R_fp32 = 1.57 GMAC/s and R_int8 = 3.81 GMAC/s for the whole chip (8% and 20% of the 4 cores x 4 FP32
lanes x 1.2 GHz = 19.2 GMAC/s NEON peak).

Boundaries between the DPU and the CPU: the CPU converts every boundary tensor (int8 <-> float32, NHWC
<-> NCHW: DequantizeLinear or QuantizeLinear ops plus one relayout op per element) and moves its bytes
(int8 + float32) through DDR at the board's DDR bandwidth x the DPU performance model's fitted
efficiency. Each DPU subgraph run also costs the CPU DPU_JOB_OVERHEAD_S (VART execute_async + wait: an
assumption, 0.1 ms). Every figure from this model is a prediction, never a measurement.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

STUDY_FPS_FP32 = 3.14  # whole model on the A53s, ONNX Runtime FP32 (original study, MPII validation)
STUDY_FPS_INT8 = 7.45  # the same, ONNX Runtime static INT8
NODE_OVERHEAD_S = 5e-6  # ONNX Runtime dispatch per executed node on a 1.2 GHz A53 (assumption)
DPU_JOB_OVERHEAD_S = 1e-4  # CPU time of one VART execute_async + wait (assumption)

# Counts of the reference network (dpupose.model.build_model() at 224, exported with
# dpupose.model.export.export_onnx): checked by tests/test_split_a53.py against a fresh export.
REFERENCE = {"macs": 490_564_480, "element_ops": 7_492_416, "nodes": 121}

# Two multiply-accumulate counts of one network agree within this share: the torch module's count and its
# ONNX export's, or a whole model's and its split's subgraphs' (which differ by the odd op counted on one side
# only). A network of another --width, decoder or input size differs by far more.
MACS_TOLERANCE = 0.01

MAC_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
FREE_OPS = ("Constant", "Identity", "Dropout")
REDUCE_OPS = ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceL2", "Softmax", "LogSoftmax")
OPS_PER_ELEMENT = {
    "Softmax": 12,
    "LogSoftmax": 12,
    "Exp": 8,
    "Log": 8,
    "Sigmoid": 10,
    "Tanh": 10,
    "QuantizeLinear": 4,
    "DequantizeLinear": 2,
}
CONVERT_OPS = {"to_float": OPS_PER_ELEMENT["DequantizeLinear"] + 1, "to_int8": OPS_PER_ELEMENT["QuantizeLinear"] + 1}


@dataclass(frozen=True)
class A53Model:
    mac_rate_fp32: float  # MAC/s, whole chip, ONNX Runtime FP32
    mac_rate_int8: float  # MAC/s, ONNX Runtime static INT8
    node_overhead_s: float = NODE_OVERHEAD_S
    copy_bandwidth: float = 3.61e9  # bytes/s through DDR for boundary tensors (default_copy_bandwidth())
    dpu_job_overhead_s: float = DPU_JOB_OVERHEAD_S
    element_ops_rate: float | None = None  # element ops/s; None: one element op costs one FP32 MAC

    @property
    def element_rate(self) -> float:
        return self.mac_rate_fp32 if self.element_ops_rate is None else self.element_ops_rate

    def compute_s(self, macs: float, element_ops: float, nodes: int, int8: bool = False) -> float:
        rate = self.mac_rate_int8 if int8 else self.mac_rate_fp32
        return _div(macs, rate) + _div(element_ops, self.element_rate) + nodes * self.node_overhead_s

    def boundary_s(self, elements: int, to_float: bool) -> float:
        """CPU time to convert one boundary tensor and move it through DDR (int8 + float32 bytes)."""
        ops = CONVERT_OPS["to_float" if to_float else "to_int8"] * elements
        return _div(ops, self.element_rate) + _div(5 * elements, self.copy_bandwidth)

    def to_dict(self) -> dict[str, float]:
        return {k: (v if v is None or math.isfinite(v) else None) for k, v in asdict(self).items()}


def _div(a: float, rate: float) -> float:
    return 0.0 if a == 0 or math.isinf(rate) else a / rate


def calibrate(
    reference: dict[str, int] | None = None,
    fps_fp32: float = STUDY_FPS_FP32,
    fps_int8: float = STUDY_FPS_INT8,
    node_overhead_s: float = NODE_OVERHEAD_S,
    copy_bandwidth: float | None = None,
) -> A53Model:
    """The model fitted to the study's two CPU rows (see the module docstring for the equations)."""
    ref = reference or REFERENCE
    fixed = ref["nodes"] * node_overhead_s
    r32 = (ref["macs"] + ref["element_ops"]) / (1.0 / fps_fp32 - fixed)
    r8 = ref["macs"] / (1.0 / fps_int8 - ref["element_ops"] / r32 - fixed)
    if copy_bandwidth is None:
        copy_bandwidth = default_copy_bandwidth()
    return A53Model(r32, r8, node_overhead_s, copy_bandwidth)


def default_copy_bandwidth() -> float:
    """Ultra96-V2 DDR peak x the DPU performance model's fitted DDR efficiency, in bytes/s."""
    from dpupose.dpu.board import load_board
    from dpupose.dpu.perf import load_constants

    return load_board("ultra96v2").ddr_bandwidth_gbps * 1e9 * load_constants().ddr_efficiency


def node_counts(node: Any, shapes: dict[str, tuple[int, ...]]) -> tuple[int, int, int]:
    """(MACs, element ops, executed nodes) of one ONNX node under this model."""
    op = node.op_type
    if op in FREE_OPS:
        return 0, 0, 0
    out = shapes.get(node.output[0]) if node.output else None
    out_n = math.prod(out) if out is not None else 1
    if op in MAC_OPS and len(node.input) > 1:
        w = shapes.get(node.input[1])
        if op in ("Conv", "ConvTranspose") and w is not None and len(w) >= 3:
            base = shapes.get(node.input[0]) if op == "ConvTranspose" else out
            return (math.prod(base) if base else out_n) * math.prod(w[1:]), 0, 1
        a = shapes.get(node.input[0])
        if a is not None:
            return out_n * a[-1], 0, 1
        return 0, out_n, 1
    per = OPS_PER_ELEMENT.get(op, 1)
    if op in REDUCE_OPS:
        x = shapes.get(node.input[0])
        return 0, per * (math.prod(x) if x is not None else out_n), 1
    return 0, per * out_n, 1


def graph_counts(model: Any, shapes: dict[str, tuple[int, ...]] | None = None) -> dict[str, int]:
    """Summed counts of every non-constant node of an ONNX model (batch 1)."""
    from dpupose.split.graph import _constants, infer_shapes

    if shapes is None:
        shapes, _ = infer_shapes(model)
    _, const_nodes = _constants(model)
    total = {"macs": 0, "element_ops": 0, "nodes": 0}
    for i, node in enumerate(model.graph.node):
        if i in const_nodes:
            continue
        macs, ops, n = node_counts(node, shapes)
        total["macs"] += macs
        total["element_ops"] += ops
        total["nodes"] += n
    return total


def file_macs(path: str | Path) -> int:
    """Multiply-accumulates of the ONNX model file at `path` (batch 1)."""
    import onnx

    return graph_counts(onnx.load(str(path)))["macs"]


def same_macs(macs: int, reference: int) -> bool:
    """Whether `macs` is within MACS_TOLERANCE of `reference`: the two counts are of one network."""
    return abs(macs - reference) <= MACS_TOLERANCE * max(reference, 1)


def default_model() -> A53Model:
    return calibrate()
