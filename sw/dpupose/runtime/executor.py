"""The split executor: one frame through pre-processing, the plan's subgraphs in order, and post-processing.

Boundary conversions follow the runners' own tensor descriptions (so the same plan runs with VART, the
emulator or ONNX Runtime for everything):
- float -> int8 entering a DPU runner: NCHW -> NHWC, then round(x * 2**fix_point) half up, saturated to
  [-128, 127] (dpupose.runtime.base.quantize_to_int8, the DPU's input rounding); the image itself, when
  only DPU runners take it, is made int8 by pre-processing directly (input_lut: the same values);
- int8 -> float leaving it: int8 * 2**-fix_point, NHWC -> NCHW, once per frame: every CPU runner that reads
  the tensor in that form gets the one float copy, made read-only (a runner or caller that wrote into it
  would change what the others read);
- int8 -> int8 between DPU runners: passed as it is when the fix points agree, requantized (the same
  rounding, exact) when they differ;
- the plan's outputs: float32 NCHW whichever runner produced them (a DPU runner's int8 NHWC heatmaps, a
  conv's output on the DPU, dequantized and transposed as leaving it). One that a CPU runner has already
  taken as float32 NCHW is handed out as that same read-only copy, not converted again (the same values: both
  are int8 * 2**-fix_point in NCHW).

Post-processing: the coordinates (normalized in the S x S letterboxed input: the plan's DSNT output, or
with decode="local" the mean within a window around each heatmap's maximum, dpupose.eval.dsnt_np) -> input pixels
(dpupose.data.transforms.from_normalized) -> frame pixels (inverse letterbox affine). Confidence of a
joint: the probability mass of its heatmap in the 3 x 3 heatmap pixels around the heatmap's maximum
(heatmaps are flat-softmax outputs that sum to 1): near 1 for a sharp peak, about 9 / (H * W) for a flat
map. Heatmaps that are not normalized over each map (not a Softmax, or a Div by a ReduceSum, over H and W: a
conv's logits, say; `heatmaps_problem`, decided from the graph) have no such meaning: their confidence is NaN,
and local decoding and a minimum confidence are refused.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from dpupose.data.transforms import from_normalized, letterbox, normalize
from dpupose.errors import ModelFileError, UsageError
from dpupose.eval.dsnt_np import DECODERS, local_dsnt
from dpupose.runtime.base import Runner, TensorInfo, quantize_to_int8
from dpupose.runtime.frames import Frame, FrameResult
from dpupose.split.plan import RESPLIT, SOFTMAX_EXPORT, BoundaryTensor, Plan, heatmaps_not_normalized

IMAGE_LAYOUTS = ("NCHW", "NHWC")
CONFIDENCE_WINDOW = 1  # heatmap pixels each side of the mode: a 3 x 3 window

# tensor name -> (array, how the array is stored); (name, "float") -> the read-only float copy of an int8 tensor
# made for the first CPU runner that took it, shared by every runner that takes it in that form (and handed out
# by SplitExecutor.outputs when it is float32 NCHW)
Env = dict[str | tuple[str, str], tuple[np.ndarray, TensorInfo]]


def _relayout_view(x: np.ndarray, src: str, dst: str) -> np.ndarray:
    if src == dst or x.ndim != 4 or src not in IMAGE_LAYOUTS or dst not in IMAGE_LAYOUTS:
        return x
    return x.transpose([src.index(c) for c in dst])


def relayout(x: np.ndarray, src: str, dst: str) -> np.ndarray:
    """NCHW <-> NHWC for 4-D tensors; other ranks and equal layouts pass unchanged."""
    y = _relayout_view(x, src, dst)
    return x if y is x else np.ascontiguousarray(y)


def requantize_int8(q: np.ndarray, fp_src: int, fp_dst: int) -> np.ndarray:
    """int8 at 2**-fp_src -> int8 at 2**-fp_dst with round half up and saturation (exact)."""
    if fp_src == fp_dst:
        return q
    return quantize_to_int8(q.astype(np.float64) * 2.0 ** (-fp_src), fp_dst)


def convert(x: np.ndarray, src: TensorInfo, dst: TensorInfo) -> np.ndarray:
    """A boundary tensor stored as `src` describes -> as `dst` describes."""
    if src.dtype == "int8" and dst.dtype == "int8":
        return relayout(requantize_int8(x, src.fix_point, dst.fix_point), src.layout, dst.layout)  # type: ignore[arg-type]
    if src.dtype == "int8":
        # dequantize_int8's int8 * 2**-fix_point, written in the destination layout in one pass (no float copy
        # to transpose afterwards)
        scale = np.float32(2.0 ** (-src.fix_point))  # type: ignore[operator]
        y = np.multiply(_relayout_view(x, src.layout, dst.layout), scale, dtype=np.float32, order="C")
        return y.astype(dst.dtype, copy=False)
    if dst.dtype == "int8":
        return quantize_to_int8(relayout(x, src.layout, dst.layout), dst.fix_point)  # type: ignore[arg-type]
    return relayout(x, src.layout, dst.layout).astype(dst.dtype, copy=False)


def _float_nchw_info(x: np.ndarray, info: TensorInfo) -> TensorInfo:
    return TensorInfo(info.name, info.shape, "float32", None, "NCHW" if x.ndim == 4 else info.layout)


def as_float_nchw(x: np.ndarray, info: TensorInfo) -> np.ndarray:
    return convert(x, info, _float_nchw_info(x, info))


def _same_float(x: np.ndarray, a: TensorInfo, b: TensorInfo) -> bool:
    """Whether converting int8 `x` to `a` and to `b` gives the same array (the layout matters for 4-D only)."""
    return a.dtype == b.dtype and (x.ndim != 4 or a.layout == b.layout)


def _dequantized_once(env: Env, x: np.ndarray, stored: TensorInfo, info: TensorInfo) -> np.ndarray:
    """int8 `x` as runner input `info` wants it as float: the frame's one float copy of it when one is in that
    form (made read-only, since every reader and the caller share it), else converted here (and kept as the
    frame's copy when it is the first)."""
    key = (info.name, "float")
    copy = env.get(key)
    if copy is not None and _same_float(x, copy[1], info):
        return copy[0]
    y = convert(x, stored, info)
    if copy is None:
        y.flags.writeable = False
        env[key] = (y, TensorInfo(info.name, tuple(y.shape), info.dtype, None, info.layout))
    return y


@dataclass
class Prepared:
    # (1, 3, S, S) float32, ImageNet-normalized RGB (preprocess), or (1, S, S, 3) int8 RGB at the DPU's
    # input fix point (preprocess_int8)
    tensor: np.ndarray
    affine: np.ndarray  # 2 x 3, frame pixels -> input pixels (letterbox)


def _letterbox_rgb(image_bgr: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A BGR (or grey, or BGRA) frame letterboxed into S x S uint8 RGB, and the letterbox affine."""
    if image_bgr.ndim == 2:
        image_bgr = cv2.cvtColor(image_bgr, cv2.COLOR_GRAY2BGR)
    elif image_bgr.shape[2] == 4:
        image_bgr = cv2.cvtColor(image_bgr, cv2.COLOR_BGRA2BGR)
    boxed, affine = letterbox(image_bgr, size)
    return cv2.cvtColor(boxed, cv2.COLOR_BGR2RGB), affine


def preprocess(image_bgr: np.ndarray, size: int) -> Prepared:
    """Letterbox a BGR frame into S x S, convert to RGB and normalize (float32 NCHW, batch 1)."""
    rgb, affine = _letterbox_rgb(image_bgr, size)
    return Prepared(normalize(rgb)[None], affine)


def input_lut(fix_point: int) -> np.ndarray:
    """(1, 256, 3) int8: each channel's uint8 value -> the DPU's int8 input at `fix_point`.

    The table is computed by the float path itself (normalize, then quantize_to_int8) on the 256 values of
    each channel; both are element-wise, so looking the pixels up gives their tensor bit for bit, in one
    pass over uint8 instead of float32 and float64 passes over the image.
    """
    values = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)  # (1, 256, 3) RGB
    q = quantize_to_int8(normalize(values), fix_point)  # (3, 1, 256)
    return np.ascontiguousarray(q[:, 0, :].T[None])


def preprocess_int8(image_bgr: np.ndarray, size: int, lut: np.ndarray) -> Prepared:
    """preprocess, then NHWC and quantize_to_int8, in one table look-up (lut from input_lut): (1, S, S, 3)
    int8, what a DPU runner takes."""
    rgb, affine = _letterbox_rgb(image_bgr, size)
    return Prepared(cv2.LUT(rgb, lut)[None], affine)


def to_frame_pixels(coords: np.ndarray, affine: np.ndarray, size: int) -> np.ndarray:
    """Normalized coords (J, 2) in the S x S input -> frame pixels through the inverse letterbox affine."""
    crop = from_normalized(coords, size).astype(np.float64)
    inv = cv2.invertAffineTransform(affine)
    return (crop @ inv[:, :2].T + inv[:, 2]).astype(np.float32)


def heatmap_confidence(heatmaps: np.ndarray, window: int = CONFIDENCE_WINDOW) -> np.ndarray:
    """(J, H, W) heatmaps -> (J,) mass within `window` pixels of each map's maximum (maps normalized first)."""
    j, h, w = heatmaps.shape
    flat = heatmaps.reshape(j, h * w).astype(np.float64)
    total = flat.sum(axis=1)
    mode = flat.argmax(axis=1)
    conf = np.empty(j, np.float32)
    for k in range(j):
        y, x = divmod(int(mode[k]), w)
        patch = heatmaps[k, max(0, y - window) : y + window + 1, max(0, x - window) : x + window + 1]
        conf[k] = float(patch.sum()) / total[k] if total[k] > 0 else 0.0
    return conf


def _nchw_shape(shape: tuple[int, ...], layout: str) -> tuple[int, ...]:
    if len(shape) == 4 and layout in IMAGE_LAYOUTS:
        return tuple(shape[layout.index(c)] for c in "NCHW")
    return tuple(shape)


def _check_interface(sg_name: str, file: str, side: str, plan_t: tuple[BoundaryTensor, ...], runner_t: list) -> None:
    have = {t.name: t for t in runner_t}
    want = {t.name for t in plan_t}
    if side == "input" and set(have) - want:
        extra = sorted(set(have) - want)
        raise ModelFileError(f"subgraph {sg_name!r} ({file}) takes inputs {extra} the plan does not feed; {RESPLIT}")
    for t in plan_t:
        if t.name not in have:
            raise ModelFileError(
                f"subgraph {sg_name!r} ({file}) has no {side} {t.name!r} (it has {sorted(have)}); the plan and the "
                f"subgraph file come from different splits or model versions; {RESPLIT}"
            )
        r = have[t.name]
        mine, theirs = _nchw_shape(t.shape, t.layout)[1:], _nchw_shape(r.shape, r.layout)[1:]
        if mine != theirs:
            raise ModelFileError(
                f"subgraph {sg_name!r} ({file}): {side} {t.name!r} is {list(r.shape)} ({r.layout}) in the runner but "
                f"{list(t.shape)} ({t.layout}) in the plan (wrong input size or another model version); {RESPLIT}"
            )


def heatmaps_problem(plan: Plan) -> str | None:
    """Why this plan's heatmaps output is not maps that each sum to 1 (a softmax's, what the confidence and
    local decoding read), decided from its subgraphs' graphs; None when it is, when the plan has no heatmaps,
    or when a file cannot be read here (its runner says so). Worked out once per plan object (kept in
    plan.cache), from files read with plan.read_file, whose bytes the runner of that subgraph then loads
    (RunnerFactory.create): each file is read once. A file the check cannot decode is not kept (its runner
    reads it by path: ONNX external data is found beside it only so)."""
    if "heatmaps_problem" not in plan.cache:
        plan.cache["heatmaps_problem"] = _heatmaps_problem(plan)
    return plan.cache["heatmaps_problem"]


def _heatmaps_problem(plan: Plan) -> str | None:
    from dpupose.runtime.onnx_lite import load_model

    name = plan.outputs.heatmaps
    for sg in reversed(plan.subgraphs):
        if name is None:
            return None
        if not any(t.name == name for t in sg.outputs):
            continue
        if sg.device == "dpu":  # the DPU runs no softmax: a layer's int8 result (split.md)
            return f"the raw output {name!r} of a layer in DPU subgraph {sg.name}, not of a softmax"
        try:
            graph = load_model(plan.read_file(sg.file))
        except (ModelFileError, OSError):
            # Its runner loads it by path, not from these bytes: a tensor this reader refuses may be ONNX external
            # data, which ONNX Runtime finds beside the file only when given its path (from bytes, in the
            # current folder).
            plan.take_file(sg.file)
            return None
        producer = {o: (n.op_type, n.name, n.inputs, n.attrs) for n in graph.nodes for o in n.outputs}
        constants = dict(graph.initializers)  # and Constant nodes' values (a ReduceSum's axes)
        constants.update({n.outputs[0]: n.attrs.get("value") for n in graph.nodes if n.op_type == "Constant"})
        # the static shapes the file gives (its inputs, outputs, the value_info the split writes for the tensors
        # whose sizes a Shape or Reshape reads, constants), as the split read them from the whole model
        static: dict[str, tuple] = {t: a.shape for t, a in constants.items() if hasattr(a, "shape")}
        static.update({vi.name: vi.shape for vi in graph.inputs + graph.outputs + graph.value_info})
        why, name = heatmaps_not_normalized(name, producer, f" in {sg.name}", graph.opset, constants, static)
        if why is not None:
            return why
    return None


def check_decode(plan: Plan, decode: str, min_confidence: float = 0.0) -> None:
    """Raise UsageError unless `decode` is a known decoder that this plan's outputs allow, and a minimum
    confidence only for heatmaps that give one. Called before the runners are made, it works out the heatmaps
    check whatever the decoder (SplitExecutor needs it too), so that the files it reads are read once."""
    if decode not in DECODERS:
        raise UsageError(f"unknown decoder {decode!r}; use one of: {', '.join(DECODERS)}")
    if decode == "local" and plan.outputs.heatmaps is None:
        raise UsageError(
            "local decoding reads the heatmaps, and this plan outputs coordinates only; use the dsnt decoder "
            '(--decode dsnt; decode="dsnt" in PoseSession), or split the model again so that the plan keeps its '
            "heatmaps output"
        )
    why = heatmaps_problem(plan)
    if (decode == "local" or min_confidence > 0) and why is not None:
        if decode == "local":
            what, instead = "local decoding", 'use --decode dsnt (decode="dsnt" in PoseSession)'
        else:
            what, instead = "a minimum confidence", "leave out --min-confidence"
        raise UsageError(
            f"{what} reads heatmaps that each sum to 1 (a softmax over the map), but this plan's heatmaps are "
            f"{why}: {instead}, or {SOFTMAX_EXPORT}"
        )


class SplitExecutor:
    """Runs a plan on one frame at a time with one Runner per subgraph (keyed by subgraph name)."""

    def __init__(self, plan: Plan, runners: Mapping[str, Runner], decode: str = "dsnt") -> None:
        check_decode(plan, decode)
        self.plan = plan
        self.decode = decode
        # Heatmaps not normalized over each map (a conv's logits) give no confidence (module docstring).
        self.heatmaps_problem = heatmaps_problem(plan)
        for sg in plan.subgraphs:  # the runners are made: file bytes the check kept would only take memory now
            plan.take_file(sg.file)
        self.size = plan.input_size
        self.runners = dict(runners)
        for sg in plan.subgraphs:
            if sg.name not in self.runners:
                raise ValueError(f"no runner for subgraph {sg.name!r}")
            runner = self.runners[sg.name]
            _check_interface(sg.name, sg.file, "input", sg.inputs, runner.inputs)
            _check_interface(sg.name, sg.file, "output", sg.outputs, runner.outputs)
        self.image_info = TensorInfo(plan.input.name, plan.input.shape, "float32", None, "NCHW")
        # When only DPU runners take the image, at one fix point, pre-processing writes their int8 NHWC
        # tensor directly (the same values as normalizing and then quantizing, see input_lut).
        takers = [i for r in self.runners.values() for i in r.inputs if i.name == plan.input.name]
        fix_points = {i.fix_point for i in takers}
        self._input_lut: np.ndarray | None = None
        self._start_info = self.image_info
        if takers and all(i.dtype == "int8" and i.layout == "NHWC" for i in takers) and len(fix_points) == 1:
            fp = fix_points.pop()
            if fp is not None:
                self._input_lut = input_lut(fp)
                self._start_info = TensorInfo(plan.input.name, (1, self.size, self.size, 3), "int8", fp, "NHWC")
        # Tensors that can be dropped after each subgraph (no later consumer, not a final output).
        finals = {plan.outputs.coords, plan.outputs.heatmaps}
        self._finals = {n for n in finals if n is not None}
        last_use: dict[str, int] = {}
        for i, sg in enumerate(plan.subgraphs):
            for t in sg.inputs:
                last_use[t.name] = i
        self._drop_after = [
            [n for n, last in last_use.items() if last == i and n not in finals] for i in range(len(plan.subgraphs))
        ]

    @property
    def stage_names(self) -> list[str]:
        return ["preprocess", *(sg.name for sg in self.plan.subgraphs), "postprocess"]

    def start(self, image_bgr: np.ndarray) -> tuple[Prepared, Env]:
        if self._input_lut is not None:
            prepared = preprocess_int8(image_bgr, self.size, self._input_lut)
        else:
            prepared = preprocess(image_bgr, self.size)
        return prepared, {self._start_info.name: (prepared.tensor, self._start_info)}

    def run_subgraph(self, index: int, env: Env, runner: Runner | None = None) -> None:
        """Subgraph `index` on the tensors in env (converted to its runner's form); adds its outputs."""
        runner = runner or self.runners[self.plan.subgraphs[index].name]
        feeds = {}
        for info in runner.inputs:
            x, stored = env[info.name]
            if stored.dtype == "int8" and info.dtype != "int8":
                feeds[info.name] = _dequantized_once(env, x, stored, info)
            else:
                feeds[info.name] = convert(x, stored, info)
        results = runner.run(feeds)
        for info in runner.outputs:
            env[info.name] = (results[info.name], info)
        for name in self._drop_after[index]:
            env.pop(name, None)
            env.pop((name, "float"), None)

    def outputs(self, env: Env) -> dict[str, np.ndarray]:
        """The final tensors as float: {"coords": (1, 16, 2), "heatmaps": (1, 16, H, W) or absent}; a float copy a
        CPU runner already took is handed out as it is, read-only (module docstring)."""

        def final(name: str) -> np.ndarray:
            x, stored = env[name]
            copy = env.get((name, "float"))
            if copy is not None and _same_float(x, copy[1], _float_nchw_info(x, stored)):
                return copy[0]
            return as_float_nchw(x, stored)

        out = {"coords": final(self.plan.outputs.coords)}
        if self.plan.outputs.heatmaps is not None:
            out["heatmaps"] = final(self.plan.outputs.heatmaps)
        return out

    def finish(self, frame: Frame, prepared: Prepared, env: Env) -> FrameResult:
        out = self.outputs(env)
        coords = out["coords"].reshape(-1, 2)
        if "heatmaps" in out:
            hm = out["heatmaps"]
            hm = hm.reshape(hm.shape[-3:]) if hm.ndim == 4 else hm
            if self.heatmaps_problem is None:
                confidence = heatmap_confidence(hm)
            else:
                confidence = np.full(len(coords), np.nan, np.float32)
            if self.decode == "local":
                coords = local_dsnt(hm[None])[0]
        else:
            confidence = np.full(len(coords), np.nan, np.float32)
        return FrameResult(
            index=frame.index,
            source=frame.source,
            keypoints=to_frame_pixels(coords, prepared.affine, self.size),
            confidence=confidence,
            coords=coords.astype(np.float32),
            image=frame.image,
        )

    def infer(self, image_bgr: np.ndarray) -> dict[str, np.ndarray]:
        """The plan's final outputs for one BGR frame (letterboxed and normalized here)."""
        return self.infer_tensor(preprocess(image_bgr, self.size).tensor)

    def infer_tensor(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        """The plan's final outputs for an already normalized (1, 3, S, S) float32 tensor (benchmarks on
        prepared crops, equivalence checks)."""
        if tuple(tensor.shape) != tuple(self.plan.input.shape):
            raise ValueError(f"input tensor is {tensor.shape}, the plan takes {self.plan.input.shape}")
        env: Env = {self.image_info.name: (np.asarray(tensor, np.float32), self.image_info)}
        for i in range(len(self.plan.subgraphs)):
            self.run_subgraph(i, env)
        return self.outputs(env)

    def process(self, frame: Frame) -> FrameResult:
        """One frame, sequentially, with the time of every stage in result.timings."""
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        prepared, env = self.start(frame.image)
        timings["preprocess"] = time.perf_counter() - t0
        for i, sg in enumerate(self.plan.subgraphs):
            t0 = time.perf_counter()
            self.run_subgraph(i, env)
            timings[sg.name] = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = self.finish(frame, prepared, env)
        timings["postprocess"] = time.perf_counter() - t0
        result.timings = timings
        return result

    def close(self) -> None:
        for runner in self.runners.values():
            runner.close()
