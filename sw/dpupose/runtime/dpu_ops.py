"""The DPU's integer arithmetic (DPUCZDX8G, Vitis AI 2.5 semantics), as numpy kernels on int8 NHWC tensors.

Every tensor is int8 with a fix position fp: real = int8 * 2**-fix_point. The behaviour reproduced here
is that of Xilinx's CPU reference implementation of the fixed-point XIR operators (VART's cpu-runner:
conv2d-fix, depthwise-conv2d-fix, concat-fix), which exists to reproduce the DPU's results, and for the
add that of VART's instruction-level simulator of the DPUCZDX8G; agreement with a real DPU is to be
confirmed with `dpupose deploy-check` on board dumps.

- conv / depthwise conv: int8 x int8 products summed exactly; the bias (int8, own fix position fp_b) is
  aligned to the accumulator by shift_bias = fp_in + fp_w - fp_b, with one extra fractional bit:
  n = 2 * acc + floor(b * 2**(shift_bias + 1)); the result is n / 2**(shift_cut + 1) with
  shift_cut = fp_in + fp_w - fp_out, then the fused activation, then rounding. The floor matters only for
  shift_bias <= -2 (a bias two or more bits finer than the accumulator): it is the older cpu-runner's
  rule (kept in its conv3d-fix) and the simulator's for the DPUs that encode a negative shift_bias;
  the current cpu-runner conv2d-fix adds such a bias exactly. Which one the DPUCZDX8G does is not
  settled by public code (the shipped model's convolutions all have shift_bias >= 0).
- transposed conv (Vitis AI cpu_task transposed-conv2d-fix, on the conv engine): a conv of stride 1 over
  the input with stride - 1 zeros between its pixels, padded by kernel - 1 - pad, the ONNX weight
  (C_in, C_out, KH, KW) read as (C_out, C_in, KH, KW) flipped in H and W; the sum, bias, shift, rounding,
  activation and saturation are the conv's (`DeconvKernel`). A depthwise one (groups = C_in = C_out, on the
  ALU engine) is VART's cpu-runner transposed-depthwise-conv2d-fix (tdwconv.cpp, tdwconv_fix.hpp): the same
  stride-dilated input padded by kernel - 1 - pad, a depthwise conv of stride 1 over it with depthwise-conv2d-
  fix's sum, bias, shift, rounding and saturation; the ONNX weight (C, 1, KH, KW) flipped. No activation is
  fused into it (vai_q_pytorch's DPU op filter lists none for the transposed depthwise conv).
- fully connected (Gemm / MatMul by a constant 2-D weight, XIR's inner product on the conv engine): a 1 x 1
  conv2d-fix of K input channels per row, its sum, bias, shift, activation, rounding and saturation
  (`FcKernel`); VART's cpu-runner matmul-fix agrees where the bias is at most one bit finer than the sum.
  Rows are ONNX's: a Flatten or Reshape before it takes the values in NCHW order (reshape-fix moves data only),
  one row per image (`fc_rows_refusal`: XIR's inner product takes each image as one vector).
- rounding ("DPURound"): round half toward +infinity (floor(v + 0.5)) on the exact value, then saturation
  to [-128, 127].
- ReLU: max(v, 0) before rounding. LeakyReLU: v * 26 / 256 for v < 0 before rounding (the hardware slope
  is exactly 26/256 = 0.1015625, never 0.1). ReLU6: max(v, 0), and when fp_out <= 4 the value is capped at
  96 output steps (6 << 4, i.e. 6.0 at fp_out = 4); with fp_out >= 5 the int8 saturation is below 6.0.
  The quantizer keeps ReLU6 outputs at fp_out >= 4, where this is exactly relu6.
- element-wise add: inputs are aligned to the smallest input fix position fp_min with two guard bits,
  each truncated (floor) to them: a_i = floor(x_i * 4 / 2**(fp_i - fp_min)); the sum is divided by
  2**(fp_min - fp_out + 2), passed through the fused activation and rounded as above. Inputs whose fix
  position exceeds fp_min by more than 2 lose their low bits here. This is the DPUCZDX8G's element-wise
  engine as VART's instruction-level simulator models it (sim-runner Elew, DPUV2); VART's cpu-runner
  eltwise-fix of later releases keeps 7 guard bits, and Vitis AI 2.5's cpu_task eltwise-fix aligns
  exactly: all three agree while the input positions differ by at most 2. On the DPU an add fuses ReLU
  only (the partitioner keeps other activations after an add on the CPU); the others are computed here
  as after a conv.
- pad (cpu-runner pad-fix): CONSTANT, rows and columns of int8 0 (ONNX 'constant' with value 0); SYMMETRIC, a copy
  of the mirrored pixel, the edge included (ONNX 'edge' with every pad 0 or 1). Values only move.
- pixel shuffle (DepthToSpace, mode CRD: VART's cpu-runner pixel_shuffle.cpp, PyTorch's PixelShuffle): a pure
  permutation, exact; the fix position passes through.
- concat (cpu-runner concat-fix): each input moved to the output's fix position, DPURound of
  x * 2**(fp_out - fp_in) (a shift left is exact, a shift right rounds half up), saturated; the data is
  otherwise only moved.
- bilinear resize (cpu-runner resize, BILINEAR, no align_corners; registered as upsample-fix): by a whole
  number s, 2, 4 or 8 without half_pixel_centers and 2 or 4 with (vai_q_pytorch's DPU op filter, after
  the compiler's partition pass, which runs it as a transposed depthwise conv with fixed weights): each
  output the bilinear mix of its four source pixels at source coordinate (o + 0.5) / s - 0.5 or o / s,
  indices clamped to the input; the mix is exact (weights in steps of 1 / (2 s)**2), then DPURound of it
  times 2**(fp_out - fp_in), saturated (`resize_bilinear`).
- max pool (cpu-runner pool-fix, MAX): the largest int8 of each window (padding never wins), exact; a
  fix-position change is a rounding shift as for concat.
- average pool (cpu-runner pool-fix, AVG): a window's sum over the zero-padded input (a pad counts as a
  pixel) times the DPU's reciprocal of the kernel's pixel count, factor / 2**shift (7/64 for 3x3, 10/256
  for 5x5, 7/256 for 6x6, 21/1024 for 7x7, 21/4096 for 14x14; otherwise the closest such fraction with a
  shift below log2(128 * pixels), exact for powers of two, for a kernel of any size), then DPURound of that
  times 2**(fp_out - fp_in), saturated; a product past float32's 24 bits (windows over 1032 pixels) rounded to
  float32 first, as the reference computes it. A global pool is the same over the whole map.
- nearest-neighbour upsampling (cpu-runner resize, NEAREST, no align_corners): output pixel (h, w) is
  input pixel (h // sh, w // sw) for whole-number scales; a fix-position change is a rounding shift.
- hard sigmoid (Vitis AI cpu_task hard-sigmoid-fix; XIR: relu6(x + 3) * 2731 / 2**14): DPURound of
  max(0, 2731 x + 3 * 2731 * 2**fp_in) / 2**(14 + fp_in - fp_out), saturated (`hard_sigmoid`).
- Mul by a scalar or per-channel constant (cpu_task depthwise-fix MUL; the DPU runs it as a 1 x 1 depthwise
  conv without bias, which gives the same integers): DPURound(x c * 2**(fp_out - fp_in - fp_c)), saturated,
  an activation as after a conv (`mul_const`).
- element-wise Mul of two activations (the eltwise engine's mult; VART's DPUCZDX8G target factory: elew
  types add and mult, nonlinear type relu only): the exact product a b, the fused ReLU if one follows
  before rounding, DPURound of a b / 2**(fp_a + fp_b - fp_out), saturated (VART's cpu-runner eltwise-fix
  MUL, shift_read 0 and shift_write fp_a + fp_b - fp_out, and its simulator's DPUCZDX8G Elew mult, which
  agree; Vitis AI's cpu_task eltwise-fix MUL scales the product by 2**(fp_out - max(0, fp_a, fp_b)),
  which is that only when both fix points are 0 or less, and is not followed).
- hard swish (the Vitis AI quantizer's hswish, exported to XIR as hard-sigmoid-fix at fix point 7 and a
  mul): x times that hard sigmoid at fp 7 as the element-wise Mul above (with its ReLU if one follows).

Computation (how, not what: every output integer is the one of the int64 rules above). `ConvKernel`
prepares a convolution once (a runner does so per step when it loads the file) and runs it as float
matrix products (BLAS; depthwise tap by tap), with the bias, the rounding, the activation and the
saturation done in the same float type. Floats are exact here because every value is an integer
multiple of a power of two small enough for the type's significand (24 bits for float32, 53 for
float64), so every operation's exact result is representable and IEEE arithmetic returns it unchanged,
in whatever order BLAS sums. The bound is worked out per layer from its weights (`ConvKernel.bound`):
|x| <= 128, so every partial sum of a channel's products is at most 128 * sum(|w|) of that channel.
float32 is used where the bound is below 2**24 (every layer of the shipped model), float64 below 2**53;
beyond that (a bias shifted far left) the layer runs in int64, as `conv_accumulate` and `requantize`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

ACTIVATIONS = ("none", "relu", "relu6", "leaky")
ELTWISE_ACTIVATIONS = ("none", "relu")  # the DPUCZDX8G eltwise engine's nonlinear types: relu only
LEAKY_NUMERATOR = 26  # LeakyReLU slope 26 / 2**8
LEAKY_SHIFT = 8
RELU6_CAP = 6 << 4  # ReLU6 ceiling in output steps, applied when fp_out <= 4
RELU6_CAP_MAX_FP = 4
INT8_MIN, INT8_MAX = -128, 127
_EXACT_LIMIT = 2**53
FLOAT_EXACT_LIMITS = ((np.float32, 2**24), (np.float64, 2**53))  # integers below these are exact
DEPTHWISE_BLOCK_BYTES = 1 << 18  # a depthwise layer's sums are formed 256 KiB at a time (cache)
MAX_FLOAT_SHIFT = 64  # scales 2**-s with |s| beyond this could leave float32's normal range


def round_shift(n: np.ndarray, s: int) -> np.ndarray:
    """n / 2**s rounded half toward +infinity (n int64); for s <= 0 an exact multiplication."""
    if s <= 0:
        return n << (-s)
    return (n + (1 << (s - 1))) >> s


def floor_shift(n: np.ndarray, s: int) -> np.ndarray:
    """floor(n / 2**s) (arithmetic shift); for s <= 0 an exact multiplication."""
    if s <= 0:
        return n << (-s)
    return n >> s


def saturate_int8(n: np.ndarray) -> np.ndarray:
    return np.clip(n, INT8_MIN, INT8_MAX).astype(np.int8)


def requantize(n: np.ndarray, shift: int, act: str, fp_out: int) -> np.ndarray:
    """DPURound(act(n / 2**shift)) saturated to int8; n is an exact int64 value."""
    if act == "none":
        r = round_shift(n, shift)
    elif act == "relu":
        r = round_shift(np.maximum(n, 0), shift)
    elif act == "relu6":
        r = round_shift(np.maximum(n, 0), shift)
        if fp_out <= RELU6_CAP_MAX_FP:
            r = np.minimum(r, RELU6_CAP)
    elif act == "leaky":
        r = np.where(n < 0, round_shift(n * LEAKY_NUMERATOR, shift + LEAKY_SHIFT), round_shift(n, shift))
    else:
        raise ValueError(f"unknown activation {act!r}; expected one of {ACTIVATIONS}")
    return saturate_int8(r)


def _pad_nhwc(x: np.ndarray, pads: tuple[int, int, int, int]) -> np.ndarray:
    top, left, bottom, right = pads
    if not any(pads):
        return x
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))


def conv_accumulate(
    x: np.ndarray,
    w: np.ndarray,
    stride: tuple[int, int] = (1, 1),
    pads: tuple[int, int, int, int] = (0, 0, 0, 0),
    dilation: tuple[int, int] = (1, 1),
    groups: int = 1,
) -> np.ndarray:
    """Exact integer sums of a (grouped) convolution: x (N,H,W,C) int8, w (O, C/groups, KH, KW) int8 ->
    int64 (N, OH, OW, O)."""
    n, _h, _w, c = x.shape
    o, cg, kh, kw = w.shape
    if c != cg * groups or o % groups:
        raise ValueError(f"conv shapes do not match: input {x.shape}, weights {w.shape}, groups {groups}")
    if kh * kw * cg * 2**14 >= _EXACT_LIMIT:
        raise ValueError("convolution too large for exact float64 accumulation")
    sh, sw = stride
    dh, dw = dilation
    xp = _pad_nhwc(x, pads)
    hp, wp = xp.shape[1], xp.shape[2]
    oh = (hp - dh * (kh - 1) - 1) // sh + 1
    ow = (wp - dw * (kw - 1) - 1) // sw + 1
    og = o // groups
    if cg == 1 and groups == c:
        # Depthwise (channel multiplier og): tap-by-tap integer multiply-accumulate.
        src = np.repeat(xp, og, axis=3) if og > 1 else xp
        src = src.astype(np.int64)
        wt = w[:, 0].astype(np.int64)  # (O, KH, KW)
        acc = np.zeros((n, oh, ow, o), dtype=np.int64)
        for i in range(kh):
            for j in range(kw):
                tap = src[:, i * dh : i * dh + sh * (oh - 1) + 1 : sh, j * dw : j * dw + sw * (ow - 1) + 1 : sw]
                acc += tap * wt[:, i, j]
        return acc
    if kh == 1 and kw == 1 and groups == 1:
        cols = xp[:, : sh * (oh - 1) + 1 : sh, : sw * (ow - 1) + 1 : sw, :].reshape(-1, c)
        res = cols.astype(np.float64) @ w.reshape(o, c).T.astype(np.float64)
        return np.rint(res).astype(np.int64).reshape(n, oh, ow, o)
    win = np.lib.stride_tricks.sliding_window_view(xp, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(1, 2))
    win = win[:, : sh * (oh - 1) + 1 : sh, : sw * (ow - 1) + 1 : sw, :, ::dh, ::dw]  # (N,OH,OW,C,KH,KW)
    out = np.empty((n, oh, ow, o), dtype=np.int64)
    for g in range(groups):
        cols = win[..., g * cg : (g + 1) * cg, :, :].reshape(n * oh * ow, cg * kh * kw).astype(np.float64)
        wg = w[g * og : (g + 1) * og].reshape(og, cg * kh * kw).astype(np.float64)
        out[..., g * og : (g + 1) * og] = np.rint(cols @ wg.T).astype(np.int64).reshape(n, oh, ow, og)
    return out


class ConvKernel:
    """A convolution step prepared once: conv2d-fix / depthwise-conv2d-fix as `kernel(x)`, int8 NHWC in,
    int8 NHWC out, equal to `conv2d` with the same arguments (see the module docstring).

    The int64 rules: n = 2 * acc + bt (bt the bias aligned with its extra bit), s = shift_cut + 1, out =
    saturate(DPURound(act(n / 2**s))). Here the weights carry the factor 2**(1 - s), and a per-channel
    constant the bias and the half-step h = 2**(s - 1) (0 for s <= 0), so the sums come out as
    u = (n + h) * 2**-s; then
    - none, relu, relu6: out = clip(floor(u), lo, hi). floor((n + h) / 2**s) is round_shift(n, s) (for
      s <= 0 u is the exact product n * 2**-s); relu's max(n, 0) is the clip at 0, as n < 0 gives
      n + h < 2**s and floor(u) <= 0; relu6's cap and the saturation are the clip's upper end;
    - leaky (h left out: u = n * 2**-s): u >= 0 as above with h added; u < 0: floor(u * 26/256 + h'),
      h' = 1/2 for s + 8 > 0, else 0: round_shift(26 * n, s + 8).
    Exactness: each value formed is an integer m times a power of two (2**-s, or 2**-(s + 8) in leaky's
    negative branch): every partial sum (|m| <= 2 * 128 * sum|w| + |bt + h| over a channel's weights, as
    |x| <= 128), u, and for leaky 26 * n + 2**(s + 7). `bound` is the largest |m| possible; the float
    type is the first whose significand holds it (float32: 24 bits, float64: 53), and |s| <=
    MAX_FLOAT_SHIFT keeps every scale and value a normal float. Each operation's exact result is then
    representable, so IEEE arithmetic returns it exactly, in whatever order BLAS adds. Otherwise (dtype
    None) the layer runs in int64 (`conv_accumulate`, `requantize`).
    """

    def __init__(
        self,
        w: np.ndarray,
        b: np.ndarray | None,
        *,
        fp_in: int,
        fp_w: int,
        fp_b: int | None,
        fp_out: int,
        stride: tuple[int, int] = (1, 1),
        pads: tuple[int, int, int, int] = (0, 0, 0, 0),
        dilation: tuple[int, int] = (1, 1),
        groups: int = 1,
        act: str = "none",
    ) -> None:
        if act not in ACTIVATIONS:
            raise ValueError(f"unknown activation {act!r}; expected one of {ACTIVATIONS}")
        if not np.issubdtype(w.dtype, np.integer) or (b is not None and not np.issubdtype(b.dtype, np.integer)):
            bias = None if b is None else b.dtype
            raise ValueError(f"conv weights and bias must be integer arrays, not {w.dtype} and {bias}")
        o, cg, kh, kw = w.shape
        if groups < 1 or o % groups:
            raise ValueError(f"conv shapes do not match: weights {w.shape}, groups {groups}")
        self.w, self.b = w, b
        self.stride, self.pads, self.dilation, self.groups, self.act = stride, pads, dilation, groups, act
        self.fp_in, self.fp_w, self.fp_out = fp_in, fp_w, fp_out
        self.fp_b = fp_b
        bt = np.zeros(o, dtype=np.int64)
        if b is not None:
            if fp_b is None:
                raise ValueError("a bias needs its fix position")
            bt = floor_shift(b.astype(np.int64), -(fp_in + fp_w - fp_b + 1))
        self.s = s = fp_in + fp_w - fp_out + 1
        half = 1 << (s - 1) if s > 0 else 0
        acc_bound = 128 * int(np.abs(w.astype(np.int64)).reshape(o, -1).sum(axis=1).max(initial=0))
        n_bound = 2 * acc_bound + int(np.abs(bt).max(initial=0))
        self.bound = n_bound + half
        if act == "leaky":
            self.bound = max(self.bound, LEAKY_NUMERATOR * n_bound + (1 << (s + 7) if s + 8 > 0 else 0))
        self.lo = 0 if act in ("relu", "relu6") else INT8_MIN
        self.hi = RELU6_CAP if act == "relu6" and fp_out <= RELU6_CAP_MAX_FP else INT8_MAX
        self.dtype = None  # int64 (conv_accumulate, requantize) unless a float type is exact
        if abs(s) <= MAX_FLOAT_SHIFT:
            self.dtype = next((t for t, limit in FLOAT_EXACT_LIMITS if self.bound < limit), None)
        if self.dtype is None:
            return
        t = self.dtype
        # Scaled weights and the constant: exact (integers below the bound times powers of two).
        scale = 2.0 ** (1 - s)
        c = ((bt if act == "leaky" else bt + half).astype(np.float64) * 2.0**-s).astype(t)
        og = o // groups
        self.depthwise = cg == 1  # then groups == C: per channel, og outputs each (channel multiplier)
        if self.depthwise:
            self.mult = og
            self.wt = np.ascontiguousarray((w[:, 0].astype(np.float64) * scale).transpose(1, 2, 0)).astype(t)
            self.c = c
            self._rows: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        else:
            # One (KH*KW*cg + 1, og) matrix per group: rows in the order (KH, KW, C) of the columns built
            # in `_accumulate`, then the constant, which the columns' last entry (1) picks up.
            wg = w.reshape(groups, og, cg, kh, kw).transpose(0, 3, 4, 2, 1).reshape(groups, kh * kw * cg, og)
            self.wt = np.concatenate([wg.astype(np.float64) * scale, c.reshape(groups, 1, og)], axis=1).astype(t)
        if act == "leaky":
            self.half_pos = t(0.5 if s > 0 else 0.0)  # h * 2**-s
            self.half_neg = t(0.5 if s + 8 > 0 else 0.0)  # 2**(s + 7) * 2**-(s + 8)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        o, cg, kh, kw = self.w.shape
        if x.dtype != np.int8:  # the bound that makes the float arithmetic exact rests on |x| <= 128
            raise ValueError(f"conv input must be int8, not {x.dtype}")
        if x.ndim != 4 or x.shape[3] != cg * self.groups:
            raise ValueError(f"conv shapes do not match: input {x.shape}, weights {self.w.shape}, groups {self.groups}")
        if self.dtype is None:
            acc = conv_accumulate(x, self.w, self.stride, self.pads, self.dilation, self.groups)
            n = acc * 2
            if self.b is not None:
                assert self.fp_b is not None
                n = n + floor_shift(self.b.astype(np.int64), -(self.fp_in + self.fp_w - self.fp_b + 1))
            return requantize(n, self.s, self.act, self.fp_out)
        # u = (n + h) * 2**-s, or n * 2**-s for leaky: exact (see the class docstring)
        u = self._accumulate(x)
        if self.act == "leaky":
            neg = u < 0
            un = u * self.dtype(LEAKY_NUMERATOR / 2**LEAKY_SHIFT)  # 26 n * 2**-(s + 8)
            un += self.half_neg
            u += self.half_pos
            np.copyto(u, un, where=neg)
        np.floor(u, out=u)
        np.clip(u, self.lo, self.hi, out=u)
        return u.astype(np.int8)

    def _accumulate(self, x: np.ndarray) -> np.ndarray:
        n, h, wd, c = x.shape
        o, cg, kh, kw = self.w.shape
        (sh, sw), (dh, dw), (top, left, bottom, right) = self.stride, self.dilation, self.pads
        hp, wp = h + top + bottom, wd + left + right
        oh = (hp - dh * (kh - 1) - 1) // sh + 1
        ow = (wp - dw * (kw - 1) - 1) // sw + 1
        if oh < 1 or ow < 1:
            raise ValueError(f"conv input {x.shape} is smaller than its kernel {self.w.shape[2:]} (with padding)")
        if self.depthwise:
            return self._depthwise(x, oh, ow)
        xp = _pad_nhwc(x, self.pads)  # int8: converted as the columns are copied
        m, k = n * oh * ow, kh * kw * cg
        cols = np.empty((n, oh, ow, k + 1), dtype=self.dtype)
        cols[..., k] = 1
        taps = cols[..., :k].reshape(n, oh, ow, kh, kw, cg)
        og = o // self.groups
        out = None if self.groups == 1 else np.empty((n, oh, ow, o), dtype=self.dtype)
        for g in range(self.groups):
            for i in range(kh):
                for j in range(kw):
                    rows = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
                    columns = slice(j * dw, j * dw + sw * (ow - 1) + 1, sw)
                    taps[:, :, :, i, j] = xp[:, rows, columns, g * cg : (g + 1) * cg]
            res = np.matmul(cols.reshape(m, k + 1), self.wt[g])
            if out is None:
                return res.reshape(n, oh, ow, o)
            out[..., g * og : (g + 1) * og] = res.reshape(n, oh, ow, og)
        return out

    def _depthwise(self, x: np.ndarray, oh: int, ow: int) -> np.ndarray:
        """Tap by tap, in blocks of output rows (DEPTHWISE_BLOCK_BYTES each) so that the sums and the
        products stay in cache between taps. numpy's loops run fastest over one long contiguous row: the
        padded input is laid out as one array per phase (column index mod stride, so the columns one tap
        reads are adjacent), converted and padded in the same copy, and each tap's weights are repeated
        OW times (cached per width). Every output's sum has the same terms in the same order whatever
        the blocks."""
        if self.mult > 1:
            x = np.repeat(x, self.mult, axis=3)
        n, h, wd, o = x.shape
        _o, _cg, kh, kw = self.w.shape
        (sh, sw), (dh, dw), (top, left, bottom, right) = self.stride, self.dilation, self.pads
        hp, wp = h + top + bottom, wd + left + right
        phases = []
        for p in range(sw):  # padded column p + sw * k is input column p + sw * k - left
            phase = np.zeros((n, hp, -(-(wp - p) // sw), o), dtype=self.dtype)
            k0, k1 = max(0, -(-(left - p) // sw)), min(phase.shape[2], -(-(left + wd - p) // sw))
            if k1 > k0:
                phase[:, top : top + h, k0:k1] = x[:, :, p + sw * k0 - left :: sw][:, :, : k1 - k0]
            phases.append(phase)
        if ow not in self._rows:
            wrow = np.ascontiguousarray(np.tile(self.wt[:, :, None, :], (1, 1, ow, 1)))
            self._rows[ow] = wrow, np.tile(self.c, ow).reshape(ow, o)
        wrow, crow = self._rows[ow]
        acc = np.empty((n, oh, ow, o), dtype=self.dtype)
        block = max(1, DEPTHWISE_BLOCK_BYTES // (n * ow * o * acc.itemsize))
        tmp = np.empty((n, min(block, oh), ow, o), dtype=self.dtype)
        for r0 in range(0, oh, block):
            r1 = min(r0 + block, oh)
            part, prod = acc[:, r0:r1], tmp[:, : r1 - r0]
            for i in range(kh):
                rows = slice(r0 * sh + i * dh, (r1 - 1) * sh + i * dh + 1, sh)
                for j in range(kw):
                    p, first = (j * dw) % sw, (j * dw) // sw
                    src = phases[p][:, rows, first : first + ow]
                    if i == 0 and j == 0:
                        np.multiply(src, wrow[0, 0], out=part)
                    else:
                        np.multiply(src, wrow[i, j], out=prod)
                        part += prod
            part += crow
        return acc


def conv2d(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    *,
    fp_in: int,
    fp_w: int,
    fp_b: int | None,
    fp_out: int,
    stride: tuple[int, int] = (1, 1),
    pads: tuple[int, int, int, int] = (0, 0, 0, 0),
    dilation: tuple[int, int] = (1, 1),
    groups: int = 1,
    act: str = "none",
) -> np.ndarray:
    """conv2d-fix / depthwise-conv2d-fix: int8 NHWC in, int8 NHWC out (see the module docstring). A
    layer run more than once is faster as a `ConvKernel`, prepared once."""
    kernel = ConvKernel(
        w, b, fp_in=fp_in, fp_w=fp_w, fp_b=fp_b, fp_out=fp_out,
        stride=stride, pads=pads, dilation=dilation, groups=groups, act=act,
    )  # fmt: skip
    return kernel(x)


class DeconvKernel:
    """A transposed convolution step prepared once (XIR transposed-conv2d-fix on the conv engine), `kernel(x)`
    int8 NHWC in and out. Vitis AI's cpu_task transposed-conv2d-fix computes it as a convolution of stride 1
    over the input dilated by the stride (stride - 1 zeros between its pixels), padded by kernel - 1 - pad
    on each side, with the same exact integer sum, bias at its fix point, shift, DPURound and saturation as
    conv2d-fix; here with the fused activation of the conv engine (`ConvKernel`). XIR keeps the kernel in
    that convolution's orientation; an ONNX ConvTranspose weight (C_in, C_out, KH, KW) is read as the
    convolution's (C_out, C_in, KH, KW) flipped in H and W. Dilation d: the padding is d (K - 1) - pad; a
    pad beyond that crops the dilated input. With groups g the weight (C_in, C_out / g, KH, KW) is read group
    by group, each group's (C_in / g, C_out / g) swapped: groups = C_in = C_out is the ALU engine's transposed
    depthwise conv (VART's cpu-runner transposed-depthwise-conv2d-fix, tdwconv.cpp: the input dilated by the
    stride and padded by kernel - 1 - pad, then depthwise-conv2d-fix at stride 1), run by `ConvKernel`'s
    depthwise path with no activation: vai_q_pytorch's DPU op filter lists none that the DPU fuses into a
    transposed depthwise conv (a grouped one with `act` is refused)."""

    def __init__(
        self,
        w: np.ndarray,
        b: np.ndarray | None,
        *,
        fp_in: int,
        fp_w: int,
        fp_b: int | None,
        fp_out: int,
        stride: tuple[int, int] = (1, 1),
        pads: tuple[int, int, int, int] = (0, 0, 0, 0),
        dilation: tuple[int, int] = (1, 1),
        groups: int = 1,
        act: str = "none",
    ) -> None:
        ci, cog, kh, kw = w.shape
        if groups < 1 or ci % groups:
            raise ValueError(f"transposed conv shapes do not match: weights {w.shape}, groups {groups}")
        if groups > 1 and act != "none":
            raise ValueError(f"a grouped (depthwise) transposed conv fuses no activation on the DPU, not {act}")
        self.stride = stride
        dh, dw = dilation
        top, left, bottom, right = pads
        # the convolution's pads (top, left, bottom, right) of the dilated input; negative: cropped
        self.conv_pads = (dh * (kh - 1) - top, dw * (kw - 1) - left, dh * (kh - 1) - bottom, dw * (kw - 1) - right)
        # (C_in, C_out/g, KH, KW) -> per group (C_out/g, C_in/g) -> the conv's (C_out, C_in/g, KH, KW), flipped
        wg = w.reshape(groups, ci // groups, cog, kh, kw).transpose(0, 2, 1, 3, 4).reshape(groups * cog, -1, kh, kw)
        wc = np.ascontiguousarray(wg[:, :, ::-1, ::-1])
        self.kernel = ConvKernel(
            wc, b, fp_in=fp_in, fp_w=fp_w, fp_b=fp_b, fp_out=fp_out,
            pads=tuple(max(p, 0) for p in self.conv_pads), dilation=dilation, groups=groups, act=act,
        )  # fmt: skip

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n, h, wd, c = x.shape
        sh, sw = self.stride
        if sh > 1 or sw > 1:
            z = np.zeros((n, (h - 1) * sh + 1, (wd - 1) * sw + 1, c), dtype=x.dtype)
            z[:, ::sh, ::sw] = x
            x = z
        top, left, bottom, right = (max(-p, 0) for p in self.conv_pads)
        if top or left or bottom or right:
            x = x[:, top : x.shape[1] - bottom, left : x.shape[2] - right]
        return self.kernel(np.ascontiguousarray(x))


def conv_transpose2d(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    *,
    fp_in: int,
    fp_w: int,
    fp_b: int | None,
    fp_out: int,
    stride: tuple[int, int] = (1, 1),
    pads: tuple[int, int, int, int] = (0, 0, 0, 0),
    dilation: tuple[int, int] = (1, 1),
    groups: int = 1,
    act: str = "none",
) -> np.ndarray:
    """transposed-conv2d-fix of an ONNX ConvTranspose weight (C_in, C_out / groups, KH, KW), or with groups = C_in
    = C_out transposed-depthwise-conv2d-fix: `DeconvKernel`."""
    kernel = DeconvKernel(
        w, b, fp_in=fp_in, fp_w=fp_w, fp_b=fp_b, fp_out=fp_out,
        stride=stride, pads=pads, dilation=dilation, groups=groups, act=act,
    )  # fmt: skip
    return kernel(x)


class FcKernel:
    """A fully connected layer prepared once (ONNX Gemm / MatMul by a constant 2-D weight; XIR's inner product, which
    vai_q_pytorch exports as matmul with transpose_b: nndct_shared/compile/xop_creator.py, dense), `kernel(x)` on
    int8 rows in ONNX's layout, (..., K) in and (..., N) out. The operator rules put it on the conv engine, where it
    is a 1 x 1 convolution of K input channels over one pixel per row: conv2d-fix's exact sum, bias at its fix point
    (n = 2 * acc + floor(b * 2**(shift_bias + 1))), shift, fused activation, DPURound and saturation (VART's
    cpu-runner conv2d_fix.cpp; `ConvKernel` runs it). VART's cpu-runner matmul-fix (matmul_fix.cpp: the exact sum
    scaled by 2**-(fp_in + fp_w), plus the bias at 2**-fp_b, times 2**fp_out, rounded in the output's round_mode,
    DPU_ROUND: half toward +infinity) gives the same integers wherever the bias is at most one bit finer than the
    accumulator (shift_bias >= -1: the conv's floor then drops nothing) and the result within int8; past int8 it
    casts where the conv engine saturates, and a DPU's output is int8, so saturation is followed. `w` is the
    weight as ONNX's MatMul reads it, (K, N) (a Gemm's with transB given transposed), `b` int8 (N,) or None."""

    def __init__(
        self,
        w: np.ndarray,
        b: np.ndarray | None,
        *,
        fp_in: int,
        fp_w: int,
        fp_b: int | None,
        fp_out: int,
        act: str = "none",
    ) -> None:
        if w.ndim != 2:
            raise ValueError(f"a fully connected layer's weight is one matrix, not of shape {w.shape}")
        self.k, self.n = w.shape
        if b is not None and b.shape != (self.n,):
            raise ValueError(f"a fully connected layer's bias of shape {b.shape} for {self.n} outputs")
        conv_w = np.ascontiguousarray(w.T).reshape(self.n, self.k, 1, 1)  # (O, C, 1, 1): output j reads column j
        self.kernel = ConvKernel(conv_w, b, fp_in=fp_in, fp_w=fp_w, fp_b=fp_b, fp_out=fp_out, act=act)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if x.ndim < 1 or x.shape[-1] != self.k:
            raise ValueError(f"a fully connected layer of {self.k} inputs given rows of shape {x.shape}")
        y = self.kernel(np.ascontiguousarray(x).reshape(-1, 1, 1, self.k))
        return y.reshape(*x.shape[:-1], self.n)


def fully_connected(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    *,
    fp_in: int,
    fp_w: int,
    fp_b: int | None,
    fp_out: int,
    act: str = "none",
) -> np.ndarray:
    """x (..., K) int8 times the int8 weight (K, N), with bias and activation, to int8 (..., N): `FcKernel`."""
    return FcKernel(w, b, fp_in=fp_in, fp_w=fp_w, fp_b=fp_b, fp_out=fp_out, act=act)(x)


def gemm_refusal(alpha: float, beta: float, bias_shape: tuple[int, ...] | None, outputs: int | None) -> str | None:
    """Why a Gemm (transA 0) of `outputs` outputs is not the DPU's fully connected layer, or None when it is: XIR's
    inner-product and matmul (Vitis AI's built_in_ops.cpp; vai_q_pytorch writes a Linear as matmul) multiply by
    the weight and add a bias of one value per output ("1-dimension, OC"), with no alpha or beta. No Xilinx
    source folds a QDQ file's alpha or beta when compiling: vai_q_pytorch's addmm takes them and drops them, and
    ONNX Runtime's QDQ quantizer (vai_q_onnx's for Gemm) scales the bias by beta before writing it, with beta 1
    (alpha it keeps), so a QDQ Gemm with alpha or beta other than 1 states a product the DPU is not shown to
    compute. `bias_shape` is C's (None: no C), `outputs` N (None: not known, C's shape then not checked). The
    operator rules and the emulator's parser refuse with this reason (after "Gemm with")."""
    if alpha != 1.0 or (bias_shape is not None and beta != 1.0):
        return (
            f"alpha {alpha:g} and beta {beta:g}: XIR's fully connected layer (inner-product, matmul) has no scale; "
            "fold alpha into the weight and beta into the bias before quantizing"
        )
    if outputs is None or bias_shape is None or math.prod(bias_shape) == 1:
        return None
    if tuple(bias_shape) not in ((outputs,), (1, outputs)):
        return (
            f"a bias C of shape {list(bias_shape)}: XIR's fully connected layer adds one bias value per output "
            f"({outputs}), the same to every row"
        )
    return None


def fc_rows_refusal(shape: Sequence[int], batch: int = 1) -> str | None:
    """Why a fully connected layer (a Gemm or MatMul by a constant weight) whose input is `shape` at the model's batch
    `batch` (its image input's first dimension; a symbolic one is taken as 1) is not the DPU's, or None when it is one
    row per image ((batch, K), or (batch, 1, ..., K)). XIR's inner-product flattens each image to one vector of K
    values, and no Xilinx source shows the DPU taking several rows of one image (a CPU Reshape to (8, 64) at batch 1,
    a MatMul of a 4-D map) as a batch of products; the emulator would run them as images. The operator rules leave
    such a layer to the CPU and the emulator refuses it, with this reason (after "Gemm of" / "MatMul of"); the
    emulator asks at batch 1 (it runs one image at a time)."""
    if len(shape) < 2:
        return f"an input of {list(shape)} at batch {batch} (no batch axis before its row of values)"
    if shape[0] == batch and math.prod(shape[1:-1]) == 1:
        return None
    rows = math.prod(shape[:-1])
    if shape[0] % batch:
        return (
            f"an input of {list(shape)} at batch {batch} (its first axis is not the batch): XIR's fully connected "
            "layer (inner-product) takes each image as one vector"
        )
    return (
        f"an input of {list(shape)} at batch {batch} ({rows // batch} rows of one image): XIR's fully connected "
        "layer (inner-product) takes each image as one vector"
    )


def layout_moves_batch(shape: tuple[int, ...], batch: int = 1) -> bool:
    """Whether a layout op (Reshape, Flatten, Squeeze, Unsqueeze) whose output at the model's batch `batch` (1 for
    one image) is `shape` does not keep the batch axis first and `batch`, so that an image's values are not its own
    (a Reshape of (1, 8, 8, 8) to (512, 1) makes 512 rows of one image, one of (2, 8, 8, 8) to (16, 64) 8 rows of
    each). The emulator runs a layout op one image at a time and refuses such a one; the operator rules leave it
    to the CPU."""
    return not shape or shape[0] != batch


def layout_shape(spec: tuple, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The output shape of an ONNX layout op on an input of `shape` (ONNX's layout). `spec` is ("reshape", shape,
    allowzero), ("flatten", axis), ("squeeze", axes) or ("unsqueeze", axes), as the emulator's parser reads the node.
    XIR's reshape-fix only moves data (its fix point passes through); the values keep ONNX's (row-major) order."""
    kind = spec[0]
    rank = len(shape)
    if kind == "reshape":
        target, allowzero = spec[1], spec[2]
        out = []
        for i, d in enumerate(target):
            if d == 0 and not allowzero:
                if i >= rank:
                    raise ValueError(f"a Reshape to {list(target)} copies axis {i} of a {rank}-D input")
                d = shape[i]
            out.append(d)
        known = math.prod(d for d in out if d != -1)
        total = math.prod(shape)
        if out.count(-1) > 1 or any(d < -1 for d in out):
            raise ValueError(f"a Reshape to {list(target)}")
        if -1 in out:
            if known == 0 or total % known:
                raise ValueError(f"a Reshape of {list(shape)} to {list(target)}")
            out[out.index(-1)] = total // known
        if math.prod(out) != total:
            raise ValueError(f"a Reshape of {list(shape)} ({total} values) to {list(target)}")
        return tuple(out)
    if kind == "flatten":
        axis = spec[1] + rank if spec[1] < 0 else spec[1]
        if not 0 <= axis <= rank:
            raise ValueError(f"a Flatten at axis {spec[1]} of a {rank}-D input")
        return math.prod(shape[:axis]), math.prod(shape[axis:])
    if kind == "squeeze":
        axes = sorted({a + rank if a < 0 else a for a in spec[1]})
        if any(not 0 <= a < rank or shape[a] != 1 for a in axes):
            raise ValueError(f"a Squeeze of axes {list(spec[1])} of {list(shape)}")
        return tuple(d for i, d in enumerate(shape) if i not in axes)
    if kind == "unsqueeze":
        out_rank = rank + len(spec[1])
        axes = {a + out_rank if a < 0 else a for a in spec[1]}
        if len(axes) != len(spec[1]) or any(not 0 <= a < out_rank for a in axes):
            raise ValueError(f"an Unsqueeze at axes {list(spec[1])} of a {rank}-D input")
        rest = iter(shape)
        return tuple(1 if i in axes else next(rest) for i in range(out_rank))
    raise ValueError(f"unknown layout op {kind!r}")


def apply_layout(x: np.ndarray, specs: Sequence[tuple]) -> np.ndarray:
    """`x` (ONNX's layout, batch first) through the layout ops `specs` (`layout_shape`), one image at a time as the
    emulator runs: each op's shape is worked out on one image (batch 1) and must keep the batch axis first and 1."""
    for spec in specs:
        shape = layout_shape(spec, (1, *x.shape[1:]))
        if layout_moves_batch(shape):
            raise ValueError(
                f"a {spec[0]} of one image of {[1, *x.shape[1:]]} to {list(shape)}: the emulator runs a layout op "
                "that keeps the batch axis first"
            )
        x = x.reshape(x.shape[0], *shape[1:])
    return x


def eltwise_add(xs: list[np.ndarray], fps: list[int], fp_out: int, act: str = "none") -> np.ndarray:
    """eltwise-fix ADD of int8 tensors of equal shape with fix positions fps."""
    fp_min = min(fps)
    acc = np.zeros(np.broadcast_shapes(*(x.shape for x in xs)), dtype=np.int64)
    for x, fp in zip(xs, fps):
        shift_read = fp - fp_min
        acc = acc + floor_shift(x.astype(np.int64), shift_read - 2)
    shift_write = fp_min - fp_out
    return requantize(acc, shift_write + 2, act, fp_out)


def requantize_int8(x: np.ndarray, fp_in: int, fp_out: int) -> np.ndarray:
    """Move an int8 tensor to another fix position (DPURound of x * 2**(fp_out - fp_in))."""
    return saturate_int8(round_shift(x.astype(np.int64), fp_in - fp_out))


def depth_to_space_mode(mode: object, opset: int) -> str:
    """A DepthToSpace's mode as the ONNX spec reads it at `opset` (0: the newest), given its `mode` attribute
    (None: absent): DepthToSpace-1 (before opset 11) has no mode and is DCR, whatever the node says; from
    DepthToSpace-11 on the attribute, default DCR. The operator rules and the emulator's parser read it here."""
    return "DCR" if 0 < opset < 11 or mode is None else str(mode)


def pixel_shuffle_refusal(mode: str) -> str | None:
    """Why a DepthToSpace of `mode` is not the DPU's pixel shuffle, or None for CRD. XIR's pixel-shuffle(-fix) with
    upscale is PyTorch's PixelShuffle (XIR's op definition names it, built_in_ops.cpp): VART's cpu-runner
    pixel_shuffle.cpp takes output channel c at sub-position (i, j) from input channel c * r * r + i * r + j,
    which is ONNX's CRD (what torch.onnx exports a PixelShuffle as). ONNX's DCR, its default and TensorFlow's
    depth_to_space, takes it from (i * r + j) * C + c: not that op. The operator rules and the emulator's parser
    refuse it with this reason."""
    if mode == "CRD":
        return None
    return (
        f"DepthToSpace in mode {mode!r}: the DPU's pixel shuffle (XIR pixel-shuffle-fix, PyTorch's PixelShuffle) "
        "takes output channel c at (i, j) from input channel c * r * r + i * r + j, ONNX's CRD; DCR takes it from "
        "(i * r + j) * C + c"
    )


def depth_to_space(x: np.ndarray, block: int, mode: str = "CRD") -> np.ndarray:
    """ONNX DepthToSpace on NHWC data. CRD is PyTorch's PixelShuffle: output channel c at sub-position
    (i, j) comes from input channel c * r * r + i * r + j; DCR takes it from (i * r + j) * C_out + c."""
    n, h, w, c = x.shape
    r = block
    if c % (r * r):
        raise ValueError(f"DepthToSpace: {c} channels not divisible by {r}x{r}")
    co = c // (r * r)
    if mode == "CRD":
        y = x.reshape(n, h, w, co, r, r).transpose(0, 1, 4, 2, 5, 3)
    elif mode == "DCR":
        y = x.reshape(n, h, w, r, r, co).transpose(0, 1, 3, 2, 4, 5)
    else:
        raise ValueError(f"DepthToSpace mode {mode!r} is not CRD or DCR")
    return np.ascontiguousarray(y.reshape(n, h * r, w * r, co))


def pad_args(
    opset: int, attr: Callable[[str, Any], Any], inputs: Sequence[str], constant: Callable[[str], Any]
) -> tuple[str, list[int], float, list[int] | None] | str:
    """An ONNX Pad's (mode, pads, value, axes) as the spec reads them at the model's `opset`, or why they are not
    known: Pad-2 has the pads and value as attributes (`attr(name, default)`); from Pad-11 on they are inputs
    (pads, constant_value and from Pad-18 axes), which must be constants (`constant(name)`: the value, or None).
    The operator rules and the emulator's parser read a Pad with it."""
    mode = attr("mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    if 0 < opset < 11:
        return mode, [int(p) for p in attr("pads", [])], float(attr("value", 0.0)), None
    vals = []
    for i, what in ((1, "pads"), (2, "constant_value"), (3, "axes")):
        name = inputs[i] if len(inputs) > i else ""
        if not name:
            vals.append(None)
            continue
        value = constant(name)
        if value is None:
            return f"Pad whose {what} input is not a constant (the DPU's pad is fixed when compiled)"
        vals.append(np.asarray(value).reshape(-1))
    if vals[0] is None:
        return "Pad without pads"
    value = float(vals[1][0]) if vals[1] is not None and vals[1].size else 0.0
    axes = [int(a) for a in vals[2]] if vals[2] is not None else None
    return mode, [int(p) for p in vals[0]], value, axes


def pad_hw(mode: str, pads: list[int], value: float, axes: list[int] | None = None) -> tuple[int, int, int, int] | str:
    """The (top, left, bottom, right) pads of an ONNX Pad of a 4-D NCHW tensor that the DPU runs, or why it
    cannot. `pads` in ONNX order (every axis' begin, then every axis' end; for `axes` only where given).

    vai_q_pytorch's DPU op filter (hardware/dpu_op_filter.py, filter_pad) takes XIR's CONSTANT and SYMMETRIC
    modes only (XIR's pad-fix, built_in_ops.cpp: mode CONSTANT, REFLECT or SYMMETRIC); VART's cpu-runner pad-fix
    (vai_library/cpu_task/ops/pad-fix) pads H and W only (N and C must stay) and fills a CONSTANT pad with int8 0
    whatever the pad value, so the DPU takes a constant pad of 0 (0.0 at every fix point: the zero point is 0).
    SYMMETRIC mirrors including the edge pixel (input rows 1, 0 | 0, 1, ...; the cpu-runner's index
    pad - 1 - min(h, pad - 1) before the input, `pad_symmetric`): ONNX 'reflect' leaves the edge out
    (2, 1 | 0, 1, 2) and 'edge' repeats it (0, 0 | 0, 1), so the two agree only where every pad is at most 1
    (one row or column: the edge pixel itself). An 'edge' Pad with each H and W pad 0 or 1 is SYMMETRIC
    (`pad_xir_mode`); 'reflect', and 'edge' with a pad of 2 or more, run on the CPU. ONNX reads no value in
    'edge' mode."""
    if mode not in ("constant", "edge"):
        return (
            f"Pad in mode {mode!r}: the DPU pads in XIR's CONSTANT or SYMMETRIC mode (mirrored with the edge "
            "pixel), which ONNX's 'reflect' is not (it leaves the edge pixel out)"
        )
    if mode == "constant" and value != 0:
        return f"Pad with value {value:g}: the DPU's pad-fix fills int8 0 (value 0 only)"
    rank = 4
    axes = list(range(rank)) if axes is None else [a % rank for a in axes]
    if len(pads) != 2 * len(axes) or len(set(axes)) != len(axes):
        return f"Pad with pads {pads} for axes {axes}"
    full = [0] * (2 * rank)
    for i, a in enumerate(axes):
        full[a], full[a + rank] = pads[i], pads[i + len(axes)]
    if any(full[a] or full[a + rank] for a in (0, 1)):
        return f"Pad of the batch or channel axis (pads {full}): the DPU pads H and W only"
    if any(p < 0 for p in full):
        return f"Pad with negative pads {full} (a crop): the DPU's pads are 0 or more"
    hw = full[2], full[3], full[6], full[7]
    if mode == "edge" and max(hw) > 1:
        return (
            f"Pad in mode 'edge' with pads {list(hw)} (top, left, bottom, right): the DPU's SYMMETRIC pad mirrors "
            "including the edge pixel, which is 'edge' only for pads of 0 or 1 (a second row is the next one, not "
            "the edge again)"
        )
    return hw


def pad_xir_mode(mode: str) -> str:
    """XIR pad-fix's mode of an ONNX Pad that `pad_hw` takes: CONSTANT for 'constant', SYMMETRIC for 'edge'."""
    return "SYMMETRIC" if mode == "edge" else "CONSTANT"


def pad_constant(x: np.ndarray, pads: tuple[int, int, int, int]) -> np.ndarray:
    """pad-fix in CONSTANT mode on NHWC int8 data: (top, left, bottom, right) rows and columns of int8 0, the
    values copied (the output keeps the input's fix point)."""
    return _pad_nhwc(x, pads)


def _symmetric_index(n: int, before: int, after: int) -> np.ndarray:
    """The input index of each of before + n + after output positions in VART's cpu-runner pad-fix SYMMETRIC:
    p - before inside, before - 1 - min(p, before - 1) before it, n - 1 - min(p - before - n, n - 1) after it."""
    p = np.arange(before + n + after)
    idx = p - before
    idx = np.where(p < before, before - 1 - np.minimum(p, before - 1), idx)
    return np.where(p >= n + before, n - 1 - np.minimum(p - before - n, n - 1), idx)


def pad_symmetric(x: np.ndarray, pads: tuple[int, int, int, int]) -> np.ndarray:
    """pad-fix in SYMMETRIC mode on NHWC int8 data (VART's cpu-runner, vai_library/cpu_task/ops/pad-fix): each
    output pixel a copy of the input pixel its mirrored index names, the edge included (rows 1, 0 | 0, 1, ...), no
    arithmetic (the output keeps the input's fix point). With every pad 0 or 1 this is ONNX's 'edge' mode."""
    top, left, bottom, right = pads
    if not any(pads):
        return x
    rows = _symmetric_index(x.shape[1], top, bottom)
    cols = _symmetric_index(x.shape[2], left, right)
    return np.ascontiguousarray(x[:, rows][:, :, cols])


def concat(xs: list[np.ndarray], fps: list[int], fp_out: int, axis: int) -> np.ndarray:
    """concat-fix: each input moved to the output's fix position (`requantize_int8`: DPURound of
    x * 2**(fp_out - fp_i), saturated), then joined along `axis` of the NHWC arrays."""
    parts = [x if fp == fp_out else requantize_int8(x, fp, fp_out) for x, fp in zip(xs, fps)]
    return np.concatenate(parts, axis=axis)


def upsample_nearest(x: np.ndarray, sh: int, sw: int) -> np.ndarray:
    """Nearest-neighbour upsampling by whole numbers (cpu-runner resize, NEAREST without align_corners):
    output pixel (h, w) is input pixel (h // sh, w // sw). Pure data movement."""
    y = np.repeat(x, sh, axis=1) if sh > 1 else x
    return np.repeat(y, sw, axis=2) if sw > 1 else y


LINEAR_RESIZE_SCALES = {True: (2, 4), False: (2, 4, 8)}  # by half_pixel_centers (vai_q_pytorch's DPU op filter)


def _linear_taps(n_in: int, s: int, half_pixel: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lower, upper, frac) of each of the n_in * s outputs along one axis, frac in steps of 1 / (2 s): the
    cpu-runner's source coordinate (o + 0.5) / s - 0.5 (half_pixel_centers) or o / s, its lower index
    floor(in) and upper ceil(in), both clamped to the input, and lerp in - floor(in)."""
    o = np.arange(n_in * s)
    num = 2 * o + 1 - s if half_pixel else 2 * o  # in = num / (2 s)
    lower = num // (2 * s)
    frac = num - 2 * s * lower
    return np.clip(lower, 0, n_in - 1), np.clip(lower + 1, 0, n_in - 1), frac


def resize_bilinear(x: np.ndarray, s: int, half_pixel: bool, fp_in: int, fp_out: int) -> np.ndarray:
    """cpu-runner resize BILINEAR (upsample-fix, align_corners false) by a whole number s on H and W: each
    output the bilinear mix of its four source pixels (indices clamped to the input), exact here as
    integers with weights in steps of 1 / (2 s)**2, then DPURound of it times 2**(fp_out - fp_in),
    saturated. The reference's float32 arithmetic is exact for these fractions."""
    if s not in LINEAR_RESIZE_SCALES[half_pixel]:
        raise ValueError(f"a bilinear resize by {s}: the DPU's is by {LINEAR_RESIZE_SCALES[half_pixel]}")
    d = 2 * s
    lo, hi, f = _linear_taps(x.shape[1], s, half_pixel)
    xi = x.astype(np.int64)
    rows = xi[:, lo] * (d - f)[None, :, None, None] + xi[:, hi] * f[None, :, None, None]
    lo, hi, f = _linear_taps(x.shape[2], s, half_pixel)
    n = rows[:, :, lo] * (d - f)[None, None, :, None] + rows[:, :, hi] * f[None, None, :, None]
    return saturate_int8(round_shift(n, 2 * (d.bit_length() - 1) + fp_in - fp_out))


def _windows(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int]) -> np.ndarray:
    """(N, OH, OW, C, KH, KW) view of the pool windows of an (already padded) NHWC array."""
    win = np.lib.stride_tricks.sliding_window_view(x, kernel, axis=(1, 2))
    return win[:, :: stride[0], :: stride[1]]


def max_pool(
    x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], pads: tuple[int, int, int, int]
) -> np.ndarray:
    """cpu-runner pool-fix MAX: the largest int8 of each window, the padding never chosen (each pad is
    smaller than the kernel, so every window holds an input pixel, and -128 is no larger than any).
    Exact; the fix position passes through."""
    top, left, bottom, right = pads
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=INT8_MIN) if any(pads) else x
    if xp.shape[1] < kernel[0] or xp.shape[2] < kernel[1]:
        raise ValueError(f"pool input {x.shape} is smaller than its kernel {kernel} (with padding)")
    return np.ascontiguousarray(_windows(xp, kernel, stride).max(axis=(-2, -1)))


# The DPU's reciprocal of the kernel's pixel count as factor / 2**shift (cpu-runner pool-fix,
# get_avgpool_dpu_factors, and vai_q_pytorch's get_avgpool_dpu_coeff, nndct_shared/utils/dpu_utils.py, the same
# search for a kernel of any size): fixed for square kernels of 3, 5, 6, 7 and 14; otherwise the closest with a
# shift below log2(128 * pixels).
AVGPOOL_FACTORS = {3: (7, 6), 5: (10, 8), 6: (7, 8), 7: (21, 10), 14: (21, 12)}
MAX_ALU_KERNEL = 256  # a kernel side on the ALU engine (VART's alu_limit): a pool's, a depthwise conv's (dpu.ops)
FLOAT32_EXACT = 2**24  # the reference's float32 product sum * factor / 2**shift is exact below this


@functools.cache  # a pool step asks at every frame; the search takes as long as a small pool itself
def avgpool_factors(kh: int, kw: int) -> tuple[int, int]:
    """(factor, shift): the DPU divides a window's sum by kh * kw as sum * factor / 2**shift."""
    if kh == kw and kh in AVGPOOL_FACTORS:
        return AVGPOOL_FACTORS[kh]
    pixels = kh * kw
    best, diff = (0, 0), 1.0
    for shift in range(math.ceil(math.log2(pixels * 128))):
        factor = math.floor(2.0**shift / pixels + 0.5)  # std::round of a positive value
        d = abs(factor / 2.0**shift - 1.0 / pixels)
        if d < diff:  # the first of equally close ones; the reference keeps the difference as a float
            best, diff = (factor, shift), float(np.float32(d))
    return best


def avg_pool(
    x: np.ndarray,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    pads: tuple[int, int, int, int],
    fp_in: int,
    fp_out: int,
) -> np.ndarray:
    """cpu-runner pool-fix AVG (VART's cpu-runner pool_fix.cpp, avg_pool_fix_one): each window's sum over the
    zero-padded input times the DPU's reciprocal (`avgpool_factors`, the whole kernel's whatever the padding),
    DPURound of that times 2**(fp_out - fp_in), saturated. The reference multiplies the sum by factor / 2**shift in
    float32: exact while |sum| * factor < 2**24, which every kernel of up to 1032 pixels keeps (|sum| <= 128 per
    pixel), and then round_shift(sum * factor, shift + fp_in - fp_out); a larger window (a global pool over a map of
    up to 256 x 256, as the operator rules take it) can give a product past float32's 24 bits, which the reference
    rounds to float32 (to nearest, ties to even) before the shift and DPURound: that product is computed here the
    same way (numpy's float32 multiply is IEEE's)."""
    kh, kw = kernel
    if kh > MAX_ALU_KERNEL or kw > MAX_ALU_KERNEL:
        raise ValueError(
            f"average pool over {kh}x{kw} pixels: the DPU's pool kernel is 1 to {MAX_ALU_KERNEL} a side (the ALU "
            "engine's alu_limit)"
        )
    top, left, bottom, right = pads
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0))) if any(pads) else x
    if xp.shape[1] < kh or xp.shape[2] < kw:
        raise ValueError(f"pool input {x.shape} is smaller than its kernel {kernel} (with padding)")
    sums = _windows(xp.astype(np.int64), kernel, stride).sum(axis=(-2, -1))
    factor, shift = avgpool_factors(kh, kw)
    if (INT8_MAX + 1) * kh * kw * factor < FLOAT32_EXACT:  # every |sum| * factor: the exact integers
        return saturate_int8(round_shift(sums * factor, shift + fp_in - fp_out))
    product = sums.astype(np.float32) * np.float32(factor * 2.0**-shift)  # the reference's float32 product
    value = product.astype(np.float64) * 2.0 ** (fp_out - fp_in)
    return saturate_int8(np.clip(np.floor(value + 0.5), INT8_MIN, INT8_MAX).astype(np.int64))


# Hard sigmoid (cpu-runner hard-sigmoid-fix; XIR's hard-sigmoid-fix is relu6(x + 3) * 2731 / 2**14):
# 1/6 is 2731 / 2**14 on the DPU. The reference computes 2731 x + 3 * 2731 * 2**fp_in in float32 before
# the shift, exact while that stays below 2**24: input fix points 0 to HSIGMOID_MAX_FP_IN.
HARD_SIGMOID = (1 / 6, 0.5)  # alpha, beta of the ONNX HardSigmoid the DPU computes (relu6(x + 3) / 6)
HSIGMOID_NUMERATOR = 2731
HSIGMOID_SHIFT = 14
HSIGMOID_MIN_FP_OUT = 7  # from here on, the reference's missing cap at 6 saturates anyway (see below)
HSIGMOID_MAX_FP_IN = 10  # 2731 * (127 + 3 * 2**10) < 2**24


def is_hard_sigmoid(alpha: float, beta: float) -> bool:
    """Whether ONNX HardSigmoid(alpha, beta) is the DPU's relu6(x + 3) / 6 (alpha read as float32)."""
    return math.isclose(alpha, HARD_SIGMOID[0], rel_tol=1e-4) and math.isclose(beta, HARD_SIGMOID[1])


def hard_sigmoid(x: np.ndarray, fp_in: int, fp_out: int) -> np.ndarray:
    """cpu-runner hard-sigmoid-fix (hsigmoid_in = fp_in, shift_hsigmoid = 14 + fp_in - fp_out):
    n = max(0, 2731 x + 3 * 2731 * 2**fp_in), out = saturate(DPURound(n / 2**shift)). The reference
    does not cap x + 3 at 6 as XIR's definition does; the two agree for fp_out >= 7, where the cap,
    6 * 2731 / 2**14 = 1.00012, is already past 127 output steps."""
    if fp_out < HSIGMOID_MIN_FP_OUT or not 0 <= fp_in <= HSIGMOID_MAX_FP_IN:
        raise ValueError(
            f"hard sigmoid from fix point {fp_in} to {fp_out}: emulated for input fix points 0 to "
            f"{HSIGMOID_MAX_FP_IN} and output fix points from {HSIGMOID_MIN_FP_OUT}"
        )
    n = np.maximum(x.astype(np.int64) * HSIGMOID_NUMERATOR + (3 * HSIGMOID_NUMERATOR << fp_in), 0)
    return saturate_int8(round_shift(n, HSIGMOID_SHIFT + fp_in - fp_out))


HSWISH_SIGMOID_FP = 7  # a hard swish's hard sigmoid is fixed at 2**-7 (bit width - 1) before the product


def hard_swish(x: np.ndarray, fp_in: int, fp_out: int, act: str = "none") -> np.ndarray:
    """Hard swish as the Vitis AI quantizer computes and exports it (vai_q_pytorch's Hardswish, its XIR
    hswish: hard-sigmoid-fix fixed at position 7, half up, then a mul): h = hard_sigmoid(x, fp_in, 7),
    then the eltwise engine's mult (VART's cpu-runner eltwise-fix MUL, its simulator's Elew mult),
    out = saturate(DPURound(act(x h / 2**(fp_in + 7 - fp_out)))), act "none" or the ReLU that engine
    fuses. h tops out at 127/128, so for x >= 3 the result is x * 127/128, not x."""
    h = hard_sigmoid(x, fp_in, HSWISH_SIGMOID_FP)
    return eltwise_mul(x, h, fp_in, HSWISH_SIGMOID_FP, fp_out, act)


def eltwise_mul(a: np.ndarray, b: np.ndarray, fp_a: int, fp_b: int, fp_out: int, act: str = "none") -> np.ndarray:
    """eltwise-fix MUL of two int8 tensors of one shape, the eltwise engine's mult (VART's cpu-runner
    eltwise-fix: shift_read 0, shift_write = fp_a + fp_b - fp_out; its simulator's DPUCZDX8G Elew mult):
    the exact product, act ("none" or the engine's ReLU) before rounding, then
    saturate(DPURound(a b / 2**(fp_a + fp_b - fp_out)))."""
    if act not in ELTWISE_ACTIVATIONS:
        raise ValueError(f"the eltwise engine's mult fuses {' or '.join(ELTWISE_ACTIVATIONS)}, not {act!r}")
    if a.shape != b.shape:
        raise ValueError(f"an element-wise Mul of shapes {a.shape} and {b.shape}: the DPU multiplies equal shapes")
    return requantize(a.astype(np.int64) * b.astype(np.int64), fp_a + fp_b - fp_out, act, fp_out)


def mul_const(x: np.ndarray, c: np.ndarray, fp_in: int, fp_c: int, fp_out: int, act: str = "none") -> np.ndarray:
    """A Mul of an int8 NHWC tensor by an int8 constant, one value (c.size 1) or one per channel (the last
    axis), as cpu_task's depthwise-fix MUL: DPURound(x c * 2**(fp_out - fp_in - fp_c)), saturated; the
    1 x 1 depthwise conv without bias it runs as on the DPU gives the same integers, and its activation
    (`requantize`)."""
    c = np.asarray(c).reshape(-1)
    if c.size not in (1, x.shape[-1]):
        raise ValueError(f"a Mul by {c.size} constants of a tensor of {x.shape[-1]} channels")
    return requantize(x.astype(np.int64) * c.astype(np.int64), fp_in + fp_c - fp_out, act, fp_out)
