"""The DPU's integer rules as dpupose computed them before `dpu_ops.ConvKernel`: every convolution through
the int64 path (`conv_accumulate`'s sums, exact below 2**53, then `requantize`), which dpupose keeps only as
the fallback for layers too large for a float kernel. The reference the faster kernels are compared with,
integer for integer (tests/test_conv_kernel.py).
"""

from __future__ import annotations

import numpy as np

from dpupose.runtime.dpu_ops import (
    conv_accumulate,
    depth_to_space,
    eltwise_add,
    floor_shift,
    requantize,
    requantize_int8,
)


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
