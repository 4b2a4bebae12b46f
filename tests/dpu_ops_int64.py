"""The DPU's integer rules as dpupose computed them before `dpu_ops.ConvKernel` (int64 throughout, the
convolution sums as float64 matrix products of int8 values, exact below 2**53), kept unchanged as the
reference the faster kernels are compared with, integer for integer (tests/test_conv_kernel.py). Not
imported by dpupose.
"""

from __future__ import annotations

import numpy as np

ACTIVATIONS = ("none", "relu", "relu6", "leaky")
LEAKY_NUMERATOR = 26  # LeakyReLU slope 26 / 2**8
LEAKY_SHIFT = 8
RELU6_CAP = 6 << 4  # ReLU6 ceiling in output steps, applied when fp_out <= 4
RELU6_CAP_MAX_FP = 4
INT8_MIN, INT8_MAX = -128, 127
_EXACT_LIMIT = 2**53


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
    """conv2d-fix / depthwise-conv2d-fix: int8 NHWC in, int8 NHWC out (see the module docstring)."""
    acc = conv_accumulate(x, w, stride, pads, dilation, groups)
    n = acc * 2
    if b is not None:
        if fp_b is None:
            raise ValueError("a bias needs its fix position")
        shift_bias = fp_in + fp_w - fp_b
        n = n + floor_shift(b.astype(np.int64), -(shift_bias + 1))
    shift_cut = fp_in + fp_w - fp_out
    return requantize(n, shift_cut + 1, act, fp_out)


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


def run_program(program, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every int8 tensor of a `qdq_graph.Program` (NHWC) on feeds {input name: int8 NHWC}, step by step
    with the kernels above (what `EmulatorRunner.trace` gave before)."""
    env = {b.tensor: feeds[b.name] for b in program.inputs}
    for step in program.steps:
        xs = [env[t] for t in step.inputs]
        if step.kind == "conv":
            a = step.attrs
            y = conv2d(
                xs[0], step.weight, step.bias, fp_in=step.fps_in[0], fp_w=step.fp_w, fp_b=step.fp_b,
                fp_out=step.fp_out, stride=a["stride"], pads=a["pads"], dilation=a["dilation"],
                groups=a["groups"], act=step.act,
            )  # fmt: skip
        elif step.kind == "add":
            y = eltwise_add(xs, step.fps_in, step.fp_out, step.act)
        elif step.kind == "depth_to_space":
            y = depth_to_space(xs[0], step.attrs["block"], step.attrs["mode"])
            y = requantize_int8(y, step.fps_in[0], step.fp_out)
        else:
            assert step.kind == "requant", step.kind
            y = requantize_int8(xs[0], step.fps_in[0], step.fp_out)
        env[step.out] = y
    return env
