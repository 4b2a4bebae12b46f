"""Host stand-in for the DPU: runs a DPU subgraph (QDQ ONNX) with the DPU's integer arithmetic.

`EmulatorRunner(path)` is a `Runner` with VART's tensor conventions: inputs and outputs are int8 NHWC
arrays whose real value is int8 * 2**-fix_point, the fix points being the scales of the subgraph's
boundary Q/DQ nodes. The arithmetic is in `dpupose.runtime.dpu_ops` (exact: integer sums, shifts, the
DPU's round-half-up and saturation); the file format is read by `dpupose.runtime.qdq_graph` without the
`onnx` package.

`EmulatorRunner(path, exact=False)` (or `QdqOrtRunner(path)`) runs the same file in ONNX Runtime with the
same int8 NHWC interface, a little faster (docs/quantization.md). It runs the QDQ graph as written
(dequantize, float operator, quantize), with ONNX Runtime's QDQ fusion off: the fused int8 kernels depend on the CPU
(on x86 without VNNI their 16-bit intermediate sums can saturate, tens of LSBs off), the unfused graph
gives the same result on every machine. ONNX Runtime's QuantizeLinear rounds ties to even where the DPU
rounds them up; left so, half the ties (one value in 2**(b + 1) in a layer that drops b bits) go one LSB
down, and over the shipped DPU part's 68 layers 46% of its output values moved, by up to 22 LSB. So the
graph given to ONNX Runtime adds half a step of its value's grid before each of those QuantizeLinear
nodes (`tie_offsets`): ties then round up, and nothing else moves. The float32 sums are exact on these
integer-valued operands while they stay within float32's 24-bit significand (the shipped model's reach
about 2% of that), so the fast path matches the DPU's arithmetic except for what ONNX Runtime does
not model (docs/quantization.md): the add's truncation of an input more than 2 positions finer than the
other, where the output is more than one bit finer than the coarser input, a bias two or more bits
finer than the accumulator (dpupose.runtime.dpu_ops), and an average pool, whose mean ONNX Runtime takes
exactly (the DPU multiplies by its own reciprocal of the kernel size; no tie offset is added there), and
a hard sigmoid, whose 1/6 ONNX Runtime takes as a float (the DPU's is 2731 / 2**14: one LSB apart where
the value is within 0.02 LSB of a rounding step), and a hard swish (x times that hard sigmoid rounded to
2**-7 on the DPU: up to 1 + |x| / 128 LSB apart at equal fix points); the shipped model has none of these.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from dpupose.errors import DataError, ModelFileError, size_not_fixed
from dpupose.runtime import dpu_ops
from dpupose.runtime.base import CPU_BACKEND, Runner, TensorInfo
from dpupose.runtime.blas import one_blas_thread
from dpupose.runtime.onnx_lite import add_input_offsets
from dpupose.runtime.qdq_graph import Boundary, Program, Step, load_program

FLOAT32_BITS = 24  # significand bits: an offset below the sum's last bit would be lost
# The steps other than a conv: run_step's, nothing laid out in advance
RUN_STEP_KINDS = (
    "add",
    "depth_to_space",
    "requant",
    "concat",
    "resize",
    "maxpool",
    "avgpool",
    "hsigmoid",
    "hswish",
    "mul",
    "emul",
    "resize_linear",
    "pad",
    "reshape",
)


def _info(b: Boundary) -> TensorInfo:
    shape = tuple(d if isinstance(d, int) and d > 0 else 1 for d in b.shape_nchw)
    if len(shape) == 4:  # NCHW in the ONNX graph, NHWC at the runner's boundary
        shape = (shape[0], shape[2], shape[3], shape[1])
        layout = "NHWC"
    else:
        layout = "N" + "C" * (len(shape) - 1)
    return TensorInfo(b.name, shape, "int8", b.fix_point, layout)


def _static(program: Program) -> bool:
    """Whether every input of `program` has a known, positive size on every axis but the batch (a symbolic batch,
    as `dpupose quantize` writes the image's and a plan's subgraphs keep it, is run as 1: `_info`)."""
    return all(all(isinstance(d, int) and d > 0 for d in b.shape_nchw[1:]) for b in program.inputs)


def check_fixed_sizes(program: Program, source: object, who: str = "the emulator") -> None:
    """Refuse a subgraph whose input has a symbolic (or zero) size past the batch: `_info` would take it as 1, so
    every real input would be refused as the wrong shape ('expected (N, 1, 1, 3)'), and the DPU runs fixed sizes.
    `source` names the file (a path; anything else is 'the DPU subgraph'), `who` the command refusing it."""
    where = source if isinstance(source, (str, Path)) else "the DPU subgraph"
    for b in program.inputs:
        symbols = [d for d in b.shape_nchw[1:] if not (isinstance(d, int) and d > 0)]
        if symbols:
            raise ModelFileError(size_not_fixed(f"{where}: ", b.name, b.shape_nchw, symbols, who))


def shape_checked(step: Step) -> bool:
    """Whether the exact path checks `step` only when it runs, with its input's shape: a resize by sizes (whole
    multiples of the input), a global average pool (its window, the whole map, up to MAX_ALU_KERNEL a side), a
    layout op (its shape against the input's) and a fully connected layer (its rows' length)."""
    return (
        "sizes" in step.attrs
        or (step.kind == "avgpool" and step.attrs.get("kernel") is None)
        or step.kind in ("reshape", "fc")
    )


def check_feeds(infos: list[TensorInfo], feeds: dict[str, np.ndarray]) -> None:
    """An int8 array per input, with the expected per-sample NHWC shape (any batch size)."""
    missing = [i.name for i in infos if i.name not in feeds]
    if missing:
        raise DataError(f"missing inputs {missing}; this subgraph takes {[i.name for i in infos]}")
    for info in infos:
        x = feeds[info.name]
        if not isinstance(x, np.ndarray) or x.dtype != np.int8:
            raise DataError(f"input {info.name!r} must be an int8 numpy array (quantize with its fix_point)")
        if x.ndim != len(info.shape) or tuple(x.shape[1:]) != tuple(info.shape[1:]):
            raise DataError(f"input {info.name!r} has shape {x.shape}, expected {info.any_batch()} NHWC")


def nhwc_to_nchw(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if x.ndim == 4 else x


def nchw_to_nhwc(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if x.ndim == 4 else x


def nhwc_axis(axis: int, ndim: int) -> int:
    """An ONNX (NCHW) axis as the axis of the runner's NHWC arrays (4-D; other ranks keep their layout)."""
    axis %= ndim
    return (0, 3, 1, 2)[axis] if ndim == 4 else axis


def compile_step(step: Step) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    """One DPU step as a function of env (int8 NHWC tensors by name); a convolution's weights, bias and
    constants are laid out once here (`dpu_ops.ConvKernel`), not per frame."""
    if step.kind == "conv":
        a = step.attrs
        layer = dict(
            fp_in=step.fps_in[0],
            fp_w=step.fp_w,
            fp_b=step.fp_b,
            fp_out=step.fp_out,
            stride=a["stride"],
            pads=a["pads"],
            dilation=a["dilation"],
            act=step.act,
        )
        if a.get("transposed"):
            kernel: Callable[[np.ndarray], np.ndarray] = dpu_ops.DeconvKernel(
                step.weight, step.bias, groups=a["groups"], **layer
            )
        else:
            kernel = dpu_ops.ConvKernel(step.weight, step.bias, groups=a["groups"], **layer)
        src = step.inputs[0]
        return lambda env: kernel(env[src])
    if step.kind == "fc":
        assert step.weight is not None and step.fp_w is not None
        fc = dpu_ops.FcKernel(
            step.weight, step.bias, fp_in=step.fps_in[0], fp_w=step.fp_w, fp_b=step.fp_b, fp_out=step.fp_out,
            act=step.act,
        )  # fmt: skip
        return lambda env: fully_connected(step, fc, env[step.inputs[0]])
    if step.kind in RUN_STEP_KINDS:
        return lambda env: run_step(step, env)
    raise ValueError(f"unknown step kind {step.kind!r}")


def run_step(step: Step, env: dict[str, np.ndarray]) -> np.ndarray:
    """One DPU step on int8 NHWC tensors from env."""
    xs = [env[t] for t in step.inputs]
    if step.kind in ("conv", "fc"):
        return compile_step(step)(env)
    if step.kind == "reshape":  # reshape-fix: the values in ONNX's order, then the Q's fix point
        y = nchw_to_nhwc(dpu_ops.apply_layout(nhwc_to_nchw(xs[0]), step.attrs["layout"]))
        return dpu_ops.requantize_int8(y, step.fps_in[0], step.fp_out)
    if step.kind == "add":
        return dpu_ops.eltwise_add(xs, step.fps_in, step.fp_out, step.act)
    if step.kind == "depth_to_space":
        y = dpu_ops.depth_to_space(xs[0], step.attrs["block"], step.attrs["mode"])
        return dpu_ops.requantize_int8(y, step.fps_in[0], step.fp_out)
    if step.kind == "requant":
        return dpu_ops.requantize_int8(xs[0], step.fps_in[0], step.fp_out)
    if step.kind == "pad":
        symmetric = step.attrs.get("mode") == "SYMMETRIC"
        y = (dpu_ops.pad_symmetric if symmetric else dpu_ops.pad_constant)(xs[0], step.attrs["pads"])
        return dpu_ops.requantize_int8(y, step.fps_in[0], step.fp_out)
    if step.kind == "resize":
        y = dpu_ops.upsample_nearest(xs[0], *resize_scale(step, xs[0]))
        return dpu_ops.requantize_int8(y, step.fps_in[0], step.fp_out)
    if step.kind == "resize_linear":
        sh, sw = resize_scale(step, xs[0])
        if sh != sw:
            raise ValueError(f"a bilinear resize by {sh}x{sw}: the DPU's is by one scale on H and W")
        return dpu_ops.resize_bilinear(xs[0], sh, step.attrs["half_pixel"], step.fps_in[0], step.fp_out)
    if step.kind == "maxpool":
        y = dpu_ops.max_pool(xs[0], step.attrs["kernel"], step.attrs["stride"], step.attrs["pads"])
        return dpu_ops.requantize_int8(y, step.fps_in[0], step.fp_out)
    if step.kind == "avgpool":
        a = step.attrs
        kernel = a["kernel"] or (xs[0].shape[1], xs[0].shape[2])  # GlobalAveragePool: the whole map
        return dpu_ops.avg_pool(xs[0], kernel, a["stride"], a["pads"], step.fps_in[0], step.fp_out)
    if step.kind == "hsigmoid":  # its activation is the identity on it: never negative, at most 1
        return dpu_ops.hard_sigmoid(xs[0], step.fps_in[0], step.fp_out)
    if step.kind == "mul":
        assert step.weight is not None and step.fp_w is not None
        return dpu_ops.mul_const(xs[0], step.weight, step.fps_in[0], step.fp_w, step.fp_out, step.act)
    if step.kind == "emul":
        return dpu_ops.eltwise_mul(xs[0], xs[1], step.fps_in[0], step.fps_in[1], step.fp_out, step.act)
    if step.kind == "hswish":
        return dpu_ops.hard_swish(xs[0], step.fps_in[0], step.fp_out, step.act)
    if step.kind == "concat":
        return dpu_ops.concat(xs, step.fps_in, step.fp_out, nhwc_axis(step.attrs["axis"], xs[0].ndim))
    raise ValueError(f"unknown step kind {step.kind!r}")


def fully_connected(step: Step, fc: dpu_ops.FcKernel, x: np.ndarray) -> np.ndarray:
    """A fully connected step on the runner's tensor `x`: its values in ONNX's layout (NCHW for a 4-D tensor, so a
    Flatten takes them in ONNX's order, C then H then W), through the step's layout ops, each row (the last axis)
    times the weight (`dpu_ops.FcKernel`), back in the runner's layout (NHWC where the result is 4-D)."""
    rows = dpu_ops.apply_layout(nhwc_to_nchw(x), step.attrs["layout"])
    if step.attrs.get("gemm") and rows.ndim != 2:
        raise ValueError(f"a Gemm of a {rows.ndim}-D input {list(rows.shape)}: ONNX's Gemm multiplies a matrix")
    why = dpu_ops.fc_rows_refusal((1, *rows.shape[1:]) if rows.ndim else ())  # one image's (the operator rules')
    if why is not None:
        raise ValueError(f"a {'Gemm' if step.attrs.get('gemm') else 'MatMul'} of {why}")
    y = fc(rows)
    return nchw_to_nhwc(y[..., 0] if step.attrs.get("vector") else y)


def resize_scale(step: Step, x: np.ndarray) -> tuple[int, int]:
    """(sh, sw) of a resize step: its constant scales, or its sizes over the input's H and W (int8 NHWC `x`),
    which must be whole multiples of them, N and C unchanged (what the operator rules put on the DPU); a size
    None (an axis Resize-18's `axes` leaves out) is the input's."""
    scale = step.attrs.get("scale")
    if scale is not None:
        return (scale, scale) if isinstance(scale, int) else scale
    shape = x.shape
    given = zip(step.attrs["sizes"], (shape[0], shape[3], shape[1], shape[2]))
    n, c, h, w = (d if s is None else s for s, d in given)
    if (n, c) != (shape[0], shape[3]) or h % shape[1] or w % shape[2]:
        raise ValueError(
            f"a resize to sizes {[n, c, h, w]} of an input of {shape[0]} x {shape[3]} x {shape[1]} x {shape[2]} "
            "(N x C x H x W): the emulator runs one by whole multiples of its H and W, N and C unchanged"
        )
    return h // shape[1], w // shape[2]


def _grid(step: Step) -> int:
    """g: the float value ONNX Runtime quantizes in `step` is a multiple of 2**-g."""
    if step.kind in ("conv", "fc", "mul"):
        assert step.fp_w is not None
        g = step.fps_in[0] + step.fp_w
        if step.fp_b is not None:
            g = max(g, step.fp_b)
    elif step.kind == "emul":  # a product of two activations: on the grid of the sum of their fix points
        g = sum(step.fps_in)
    elif step.kind == "resize_linear":  # a mix with weights in steps of 1 / (2 s)**2
        # by sizes, s is known at run time: the finest grid of the scales it may be (an offset below half a
        # step of the value's grid rounds its ties up and moves nothing else as well)
        s = step.attrs.get("scale") or max(dpu_ops.LINEAR_RESIZE_SCALES[step.attrs["half_pixel"]])
        g = step.fps_in[0] + 2 * (2 * s).bit_length() - 2
    else:
        g = max(step.fps_in)
    return g + 7 if step.act == "leaky" else g  # slope 26/256 = 13/2**7 (after a conv or an add)


def tie_offsets(program: Program) -> dict[str, float]:
    """{QuantizeLinear, by its int8 output: half the grid step of the value it rounds}. A value on the grid
    2**-g plus 2**-(g+1) lies strictly between it and the next one: a tie (k + 1/2 output steps) rounds up
    whatever the rounding rule, every other value as it did. Steps whose grid is no finer than the output
    have no ties. Only values below 2**7 output steps matter (from there on the output saturates whatever
    the rounding); where such a value plus the offset does not fit float32's significand, none is added
    (those ties stay rounded to even)."""
    offsets = {}
    for step in program.steps:
        if step.kind in ("avgpool", "hsigmoid", "hswish"):  # ONNX Runtime's exact mean and 1/6: on no grid
            continue
        g = _grid(step)
        bits = g - step.fp_out  # fractional bits of the value in output steps
        if bits > 0 and 7 + bits + 1 <= FLOAT32_BITS:  # |value| < 2**7 steps, on a grid 2**-(bits + 1)
            offsets[step.out] = 2.0 ** -(g + 1)
    return offsets


class EmulatorRunner(Runner):
    """Bit-accurate DPU emulator for a QDQ ONNX DPU subgraph (see the module docstring)."""

    def __init__(
        self, path_or_model: str | Path | bytes | object, exact: bool = True, who: str = "the emulator"
    ) -> None:
        self.program: Program = load_program(path_or_model)
        check_fixed_sizes(self.program, path_or_model, who)  # `who`: the command named in its refusal
        self.exact = exact
        self._ort: QdqOrtRunner | None = None
        if not exact:
            self._ort = QdqOrtRunner(path_or_model, program=self.program)
        self._steps = [compile_step(step) for step in self.program.steps]  # trace() runs them either way
        self._inputs = [_info(b) for b in self.program.inputs]
        self._outputs = [_info(b) for b in self.program.outputs]
        if not exact:
            self.check_shapes()  # ONNX Runtime would compute what the exact path refuses when it runs

    def check_shapes(self) -> None:
        """Refuse now what the exact path refuses only when it runs, with its input's shape: a resize by sizes is
        the DPU's only at whole multiples of its input, a global average pool's map is at most MAX_ALU_KERNEL a
        side (the DPU's), a layout op keeps the batch axis and a fully connected layer's rows are its length.
        Checked once, on zeros of the subgraph's input shapes (one sample), where they are static but for the
        batch (a plan's subgraphs' are); the fast path and `dpupose split`'s warning ask it."""
        if _static(self.program) and any(shape_checked(s) for s in self.program.steps):
            self.trace({i.name: np.zeros(i.shape, np.int8) for i in self._inputs})

    @property
    def inputs(self) -> list[TensorInfo]:
        return list(self._inputs)

    @property
    def outputs(self) -> list[TensorInfo]:
        return list(self._outputs)

    def trace(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every int8 tensor of the subgraph (NHWC), keyed by its int8 tensor name, in step order."""
        check_feeds(self._inputs, feeds)
        n = next(iter(feeds.values())).shape[0] if feeds else 0
        parts = []
        with one_blas_thread():  # small products: more BLAS threads cost more than they give (runtime.blas)
            for i in range(max(n, 1)):  # one image at a time: the working set stays in cache
                env: dict[str, np.ndarray] = {}
                for b in self.program.inputs:
                    env[b.tensor] = feeds[b.name][i : i + 1] if n else feeds[b.name]
                for step, compiled in zip(self.program.steps, self._steps):
                    try:
                        env[step.out] = compiled(env)
                    except ValueError as exc:  # a shape the DPU rules refuse, known only now (a GlobalAveragePool's)
                        raise ModelFileError(
                            f"DPU step {step.kind} at {step.label!r}: {exc}; run this model with {CPU_BACKEND}"
                        ) from None
                parts.append(env)
        if len(parts) == 1:
            return parts[0]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._ort is not None:
            return self._ort.run(feeds)
        env = self.trace(feeds)
        return {b.name: env[b.tensor] for b in self.program.outputs}

    def close(self) -> None:
        if self._ort is not None:
            self._ort.close()


def runs_of(feeds: dict[str, np.ndarray], batch: int) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """`feeds` (arrays of one count of images) in runs of `batch` images, for a file exported at that fixed batch:
    (how many of the run's images are real, the run's feeds), the last run padded with zeros, as VART pads a DPU
    batch; the caller keeps the first that many of each output."""
    n = next(iter(feeds.values())).shape[0]
    for start in range(0, n, batch):
        chunk = {k: v[start : start + batch] for k, v in feeds.items()}
        m = next(iter(chunk.values())).shape[0]
        if m < batch:
            chunk = {k: np.concatenate([v, np.zeros((batch - m, *v.shape[1:]), v.dtype)]) for k, v in chunk.items()}
        yield m, chunk


class QdqOrtRunner(Runner):
    """The same QDQ file in ONNX Runtime, behind the DPU runners' int8 NHWC interface, ties rounded up as
    the DPU does (bit-exact but for what the module docstring lists); with round_ties_up=False the file as
    it is (ONNX Runtime's ties to even: what a CPU running the QDQ model computes)."""

    def __init__(
        self,
        path_or_model: str | Path | bytes | object,
        program: Program | None = None,
        providers: list[str] | None = None,
        round_ties_up: bool = True,
    ) -> None:
        import onnxruntime as ort

        self.program = program or load_program(path_or_model)
        check_fixed_sizes(self.program, path_or_model, "the emulator's ONNX Runtime path")
        if hasattr(path_or_model, "SerializeToString"):
            model = path_or_model.SerializeToString()
        elif isinstance(path_or_model, (bytes, bytearray)):
            model = bytes(path_or_model)
        else:
            model = Path(path_or_model).read_bytes()  # load_program read it: it is there
        if round_ties_up:
            model = add_input_offsets(model, tie_offsets(self.program))  # the DPU's rounding (module docstring)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        # Basic optimizations fold the weights' DequantizeLinear into float constants but leave the QDQ
        # pattern unfused: the quantized arithmetic as the file states it, on any CPU (see above).
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        self._session = ort.InferenceSession(model, opts, providers=providers or ["CPUExecutionProvider"])
        self._inputs = [_info(b) for b in self.program.inputs]
        self._outputs = [_info(b) for b in self.program.outputs]

    @property
    def inputs(self) -> list[TensorInfo]:
        return list(self._inputs)

    @property
    def outputs(self) -> list[TensorInfo]:
        return list(self._outputs)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        check_feeds(self._inputs, feeds)
        n = next(iter(feeds.values())).shape[0] if feeds else 0
        # A file exported at a fixed batch B (2, say) is all ONNX Runtime runs: any other count of images (the
        # runners take any, as the emulator does) goes in runs of B, the last padded with zeros, as VART pads a
        # DPU batch, and the padding's outputs dropped.
        fixed = [b.shape_nchw[0] for b in self.program.inputs if isinstance(b.shape_nchw[0], int)]
        batch = fixed[0] if fixed and fixed[0] > 0 else None
        if batch is None or n == batch or n == 0:
            return self._run(feeds)
        parts = [{k: v[:m] for k, v in self._run(chunk).items()} for m, chunk in runs_of(feeds, batch)]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ort_feeds = {
            i.name: nhwc_to_nchw(feeds[i.name]).astype(np.float32) * np.float32(2.0**-i.fix_point) for i in self._inputs
        }
        names = [o.name for o in self._outputs]
        results = self._session.run(names, ort_feeds)
        out = {}
        for info, y in zip(self._outputs, results):
            q = np.clip(np.rint(y.astype(np.float64) * 2.0**info.fix_point), -128, 127).astype(np.int8)
            out[info.name] = nchw_to_nhwc(q)
        return out

    def close(self) -> None:
        self._session = None
