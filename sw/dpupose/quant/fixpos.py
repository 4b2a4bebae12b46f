"""Power-of-two fix positions: the "diffs" calibration and the DPU compiler's constraints (host only).

Calibration ("diffs", vai_q_pytorch's default): for a tensor x, the overflow-free position is
floor(log2(1 / step)) with step = max(min(x) / -128.5, max(x) / 127.5); the positions from there to four
above it are tried and the one with the least squared error between x and its fake-quantized copy wins
(the first one on a tie). An all-zero tensor gets 18. Then, as vai_q_pytorch does for 8-bit tensors, the
position is capped at 12 (a tensor whose values all lie below 2**-13 rounds to zeros there).
Quantization itself rounds half up for activations (the DPU's rounding) and half away from zero for
weights and biases (vai_q_pytorch's rule for parameters).

Constraints of the DPUCZDX8G compiler on the shifts between fix positions, enforced after calibration by
moving the position that vai_q_pytorch moves (its check of shift_cut and shift_bias, Vitis AI 2.5-3.5):
- conv: shift_cut = fp_in + fp_w - fp_out in [0, 16]: below 0 fp_out is lowered to fp_in + fp_w, above 16
  fp_w is lowered (neither saturates anything); a ReLU6 output that would go below 4 stays at 4 and fp_w
  is raised to 4 - fp_in instead;
- conv: shift_bias = fp_in + fp_w - fp_b in [min(0, shift_cut - 16), 16]: below, fp_b is lowered; above 16,
  fp_w is lowered to fp_b - fp_in + 16. A negative shift_bias (a bias finer than the accumulator) is
  kept; the emulator floors such a bias to one bit below the accumulator (see dpupose.runtime.dpu_ops);
- add: shift_read = max(fp_in) - min(fp_in) <= 15 (lowers the larger input position) and
  shift_write = min(fp_in) - fp_out in [-15, 15] (moves fp_out), the limits Xilinx's quantizers apply
  (vai_q_tensorflow2 in Vitis AI 3.0, vai_q_onnx in 3.5): the eltwise instruction holds the write shift
  as sign and 4-bit magnitude;
- ReLU6 output positions >= 4, where the DPU's ReLU6 (a cap at 96 steps when fp <= 4) is exactly relu6;
- pixel shuffle: output position = input position;
- hard sigmoid / hard swish (the ALU's hsigmoid): input position <= 10, where Xilinx's cpu_task
  hard-sigmoid-fix (float32) is exact, and a hard sigmoid's output position >= 7 (its values lie in [0, 1]:
  2**-7 loses 1/128 at 1 only, and from 7 on XIR's relu6(x + 3) and that reference's uncapped x + 3 agree).
Project rule: every position must lie in [FIX_POS_MIN, FIX_POS_MAX] = [-16, 31]; a tensor that needs one
below (|x| > 127 * 2**16) cannot be represented and is an error (calibration never goes above 12).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterable

import numpy as np
import torch

from dpupose.errors import QuantizationError
from dpupose.quant.ir import AddOp, ConvOp, DepthToSpaceOp, FixPoints, HardActOp, QGraph
from dpupose.runtime.dpu_ops import HSIGMOID_MAX_FP_IN, HSIGMOID_MIN_FP_OUT

log = logging.getLogger(__name__)

FIX_POS_MIN, FIX_POS_MAX = -16, 31
ZERO_TENSOR_FIX_POS = 18
SEARCH_RANGE = 5
MAX_CALIB_FIX_POS = 12  # vai_q_pytorch's nndct_max_fix_position for tensors of 8 bits or fewer
SHIFT_CUT_RANGE = (0, 16)
SHIFT_BIAS_MAX = 16
SHIFT_READ_MAX = 15
SHIFT_WRITE_RANGE = (-15, 15)
RELU6_MIN_FIX_POS = 4
_MAX_ROUNDS = 8
_FLT_MIN = 1.1754943508222875e-38


def round_half_up(v: torch.Tensor) -> torch.Tensor:
    return torch.floor(v + 0.5)


def round_half_away(v: torch.Tensor) -> torch.Tensor:
    return torch.sign(v) * torch.floor(v.abs() + 0.5)


def diffs_fix_pos(x: torch.Tensor | np.ndarray, name: str = "tensor", search: int = SEARCH_RANGE) -> int:
    """Least-squared-error fix position of x among the overflow-free one and the `search` - 1 above it,
    capped at MAX_CALIB_FIX_POS (see the module docstring)."""
    t = torch.as_tensor(x).detach().reshape(-1)
    if not t.is_floating_point():
        t = t.float()
    if not bool(torch.isfinite(t).all()):
        raise QuantizationError(
            f"{name} contains NaN or infinite values; the checkpoint or the calibration data is broken "
            "(check the training run and the input normalization)"
        )
    x_max = float(t.max())
    x_min = float(t.min())
    step = max(x_min / -128.5, x_max / 127.5)
    if step <= _FLT_MIN:
        return min(ZERO_TENSOR_FIX_POS, MAX_CALIB_FIX_POS)
    first = math.floor(math.log2(1.0 / step))
    if first < FIX_POS_MIN:
        raise QuantizationError(
            f"{name} reaches |x| = {max(abs(x_min), abs(x_max)):.3g}, which needs fix position {first}; "
            f"the DPU's int8 tensors here are limited to positions >= {FIX_POS_MIN} "
            f"(|x| <= {127 * 2.0**-FIX_POS_MIN:.3g}). Check the checkpoint and the input normalization."
        )
    # Rounding ties contribute the same squared error whichever way they go, so torch.round (half to even)
    # gives the same sums as the DPU's half up here, with fewer passes over the data.
    v = t * 2.0**first
    best, best_err = first, math.inf
    for k in range(search):
        vk = v * 2.0**k if k else v
        d = vk - torch.clamp(torch.round(vk), -128, 127)
        err = float(torch.dot(d, d)) * 4.0 ** -(first + k)
        if err < best_err:
            best, best_err = first + k, err
    return min(best, MAX_CALIB_FIX_POS)


def shift_bias_range(shift_cut: int) -> tuple[int, int]:
    """The compiler's limits on shift_bias for a conv with this shift_cut: [min(0, shift_cut - 16), 16]
    (vai_q writes the lower one as -(24 - (8 + shift_cut)))."""
    return min(0, shift_cut - 16), SHIFT_BIAS_MAX


def most_frequent(positions: Iterable[int]) -> int:
    """The position most batches chose; ties go to the smaller position (more range)."""
    counts = Counter(positions)
    if not counts:
        raise QuantizationError("no calibration batches were seen")
    top = max(counts.values())
    return min(p for p, c in counts.items() if c == top)


class _Adjuster:
    def __init__(self, graph: QGraph, fp: FixPoints) -> None:
        self.g = graph
        self.fp = fp
        self.changed = False
        self.notes: list[str] = []

    def set_act(self, name: str, value: int, why: str) -> None:
        old = self.fp.activations[name]
        if old == value:
            return
        self.fp.activations[name] = value
        self.changed = True
        self.notes.append(f"{name}: activation fix position {old} -> {value} ({why})")
        producer = self.g.producer(name)
        if isinstance(producer, DepthToSpaceOp):  # a pixel shuffle passes its input's position through
            self.set_act(producer.input, value, "pixel shuffle input follows its output")
        for op in self.g.consumers(name):
            if isinstance(op, DepthToSpaceOp):
                self.set_act(op.name, value, "pixel shuffle output follows its input")

    def set_param(self, table: dict[str, int], name: str, value: int, what: str, why: str) -> None:
        old = table[name]
        if old != value:
            table[name] = value
            self.changed = True
            self.notes.append(f"{name}: {what} fix position {old} -> {value} ({why})")

    def round(self) -> None:
        act = self.fp.activations
        for op in self.g.ops:
            if isinstance(op, DepthToSpaceOp) and act[op.name] != act[op.input]:
                self.set_act(op.name, min(act[op.name], act[op.input]), "pixel shuffle pass-through")
            if op.act == "relu6" and act[op.name] < RELU6_MIN_FIX_POS:
                self.set_act(op.name, RELU6_MIN_FIX_POS, "ReLU6 output >= 4")
            if isinstance(op, HardActOp):
                if act[op.input] > HSIGMOID_MAX_FP_IN:
                    self.set_act(op.input, HSIGMOID_MAX_FP_IN, f"hard sigmoid input <= {HSIGMOID_MAX_FP_IN}")
                if op.kind == "hsigmoid" and act[op.name] < HSIGMOID_MIN_FP_OUT:
                    self.set_act(op.name, HSIGMOID_MIN_FP_OUT, f"hard sigmoid output >= {HSIGMOID_MIN_FP_OUT}")
        for op in self.g.ops:
            if isinstance(op, AddOp):
                fa, fb = act[op.a], act[op.b]
                if abs(fa - fb) > SHIFT_READ_MAX:
                    hi = op.a if fa > fb else op.b
                    self.set_act(hi, min(fa, fb) + SHIFT_READ_MAX, "add shift_read <= 15")
                lo = min(act[op.a], act[op.b])
                sw = lo - act[op.name]
                if not SHIFT_WRITE_RANGE[0] <= sw <= SHIFT_WRITE_RANGE[1]:
                    target = lo - min(max(sw, SHIFT_WRITE_RANGE[0]), SHIFT_WRITE_RANGE[1])
                    self.set_act(op.name, target, "add shift_write in [-15, 15]")
        for op in self.g.ops:
            if not isinstance(op, ConvOp):
                continue
            fi, fo = act[op.input], act[op.name]
            fw = self.fp.weights[op.name]
            sc = fi + fw - fo
            if sc < SHIFT_CUT_RANGE[0] and op.act == "relu6" and fi + fw - SHIFT_CUT_RANGE[0] < RELU6_MIN_FIX_POS:
                # the output cannot go below ReLU6's 4 (the two rules would undo each other every round):
                # raise the weights' position instead, the only choice left that keeps the input's
                self.set_act(op.name, RELU6_MIN_FIX_POS, "ReLU6 output >= 4")
                self.set_param(
                    self.fp.weights,
                    op.name,
                    RELU6_MIN_FIX_POS - fi + SHIFT_CUT_RANGE[0],
                    "weights",
                    "shift_cut >= 0 with a ReLU6 output >= 4",
                )
            elif sc < SHIFT_CUT_RANGE[0]:  # output finer than the products: coarsen the output
                self.set_act(op.name, fi + fw - SHIFT_CUT_RANGE[0], "conv shift_cut >= 0")
            elif sc > SHIFT_CUT_RANGE[1]:  # weights too fine for the output: coarsen the weights
                self.set_param(
                    self.fp.weights, op.name, act[op.name] - fi + SHIFT_CUT_RANGE[1], "weights", "shift_cut <= 16"
                )
            fw = self.fp.weights[op.name]
            if op.name in self.fp.biases:
                fb = self.fp.biases[op.name]
                sb = fi + fw - fb
                lo, hi = shift_bias_range(fi + fw - act[op.name])
                if sb < lo:  # bias too fine: coarsen the bias
                    self.set_param(self.fp.biases, op.name, fi + fw - lo, "bias", f"shift_bias >= {lo}")
                elif sb > hi:  # bias too coarse for the products: coarsen the weights
                    self.set_param(self.fp.weights, op.name, fb - fi + hi, "weights", f"shift_bias <= {hi}")


def apply_constraints(graph: QGraph, fp: FixPoints) -> tuple[FixPoints, list[str]]:
    """Move fix positions until the DPU's shift constraints hold; returns (new positions, change notes)."""
    adj = _Adjuster(graph, fp.copy())
    for _ in range(_MAX_ROUNDS):
        adj.changed = False
        adj.round()
        if not adj.changed:
            break
    else:
        raise QuantizationError("fix positions do not settle under the DPU's shift constraints")
    for note in adj.notes:
        log.info("constraint: %s", note)
    validate(graph, adj.fp)
    return adj.fp, adj.notes


def validate(graph: QGraph, fp: FixPoints) -> None:
    """Every position in range and every shift legal, or a QuantizationError that names the tensor."""
    tables = (("activation", fp.activations), ("weights", fp.weights), ("bias", fp.biases))
    for what, table in tables:
        for name, value in table.items():
            if not FIX_POS_MIN <= value <= FIX_POS_MAX:
                raise QuantizationError(
                    f"{what} {name!r} needs fix position {value}, outside the DPU range "
                    f"[{FIX_POS_MIN}, {FIX_POS_MAX}]; its values cannot be represented in int8 "
                    "(check the checkpoint for exploding or vanishing weights)"
                )
    for op in graph.convs():
        sc = fp.activations[op.input] + fp.weights[op.name] - fp.activations[op.name]
        if not SHIFT_CUT_RANGE[0] <= sc <= SHIFT_CUT_RANGE[1]:
            raise QuantizationError(f"conv {op.name!r}: shift_cut {sc} outside {SHIFT_CUT_RANGE}")
        if op.name in fp.biases:
            sb = fp.activations[op.input] + fp.weights[op.name] - fp.biases[op.name]
            lo, hi = shift_bias_range(sc)
            if not lo <= sb <= hi:
                raise QuantizationError(f"conv {op.name!r}: shift_bias {sb} outside [{lo}, {hi}]")
