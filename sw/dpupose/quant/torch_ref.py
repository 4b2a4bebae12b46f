"""A second, independent executor of QDQ ONNX files: torch float64 fake quantization (host only).

It reads the file with the `onnx` package (not the board reader) and interprets each node in float64:
QuantizeLinear rounds half up and saturates like the DPU, DequantizeLinear multiplies by its scale, Conv
and ConvTranspose run as torch's float64 convolution and transposed convolution (exact for int8-valued
operands), with the bias floored to the accumulator's resolution, Add inputs truncated to two guard bits,
an average pool's reciprocal and a hard sigmoid's 1/6 (2731 / 2**14, and a hard swish's rounded to 2**-7)
as the DPU does; a bilinear resize interpolates in float64 (exact for its power-of-two fractions), a Gemm or
MatMul is the float64 product with a Gemm's bias as a conv's, and the layout ops reshape in ONNX's order. It must
reproduce the emulator bit for bit; `dpupose deploy-check --against torch` compares the two layer by layer.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

from dpupose.errors import ModelFileError
from dpupose.runtime.dpu_ops import HSIGMOID_NUMERATOR, HSIGMOID_SHIFT, avgpool_factors, pad_args


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _linear(x: torch.Tensor, dim: int, s: int, half_pixel: bool) -> torch.Tensor:
    """Linear interpolation along `dim` by a whole number s: source coordinate (o + 0.5) / s - 0.5 with
    half-pixel centres, else o / s; its two neighbours clamped to the input, weighted by the fraction."""
    n = x.shape[dim]
    o = torch.arange(n * s, dtype=torch.float64)
    src = (o + 0.5) / s - 0.5 if half_pixel else o / s
    low = torch.floor(src)
    frac = (src - low).reshape([-1] + [1] * (x.dim() - 1 - dim))
    lo, hi = low.long().clamp(0, n - 1), (low.long() + 1).clamp(0, n - 1)
    return x.index_select(dim, lo) * (1 - frac) + x.index_select(dim, hi) * frac


def _fp_of_scale(scale: np.ndarray) -> int:
    return -round(math.log2(float(np.asarray(scale).reshape(-1)[0])))


class TorchQdqReference:
    """Runs a DPU-subgraph QDQ file; `trace` returns every QuantizeLinear output as int8 NHWC."""

    def __init__(self, path_or_model: str | Path | onnx.ModelProto) -> None:
        model = path_or_model if isinstance(path_or_model, onnx.ModelProto) else onnx.load(str(path_or_model))
        self.graph = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        self.inits = {t.name: numpy_helper.to_array(t) for t in self.graph.initializer}
        self.inputs = [i.name for i in self.graph.input if i.name not in self.inits]
        self.outputs = [o.name for o in self.graph.output]
        self.fp: dict[str, int] = {}  # float tensor that a DQ produced -> its fix position

    def _const(self, name: str) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.inits[name], dtype=np.float64))

    def _pad(self, node: onnx.NodeProto, a: dict, x: torch.Tensor) -> torch.Tensor:
        """ONNX Pad in mode 'constant', or 'edge' of H and W (torch's replicate, the DPU's SYMMETRIC pad-fix where
        each pad is 0 or 1): Pad-2's pads and value attributes, or Pad-11's inputs (and Pad-18's axes), read as the
        operator rules and the emulator read them (`dpu_ops.pad_args`), as torch's F.pad, which takes (begin, end)
        pairs from the last axis back."""
        read = pad_args(self.opset, a.get, node.input, self.inits.get)
        if isinstance(read, str):
            raise ModelFileError(f"the torch reference: {read}")
        mode, pads, value, axes = read
        if mode not in ("constant", "edge"):
            raise ModelFileError(f"the torch reference pads in mode 'constant' or 'edge' only, not {mode!r}")
        axes = list(range(x.dim())) if axes is None else [ax % x.dim() for ax in axes]
        pairs = [(0, 0)] * x.dim()
        for i, ax in enumerate(axes):
            pairs[ax] = (pads[i], pads[i + len(axes)])
        flat = [p for ax in reversed(range(x.dim())) for p in pairs[ax]]
        if mode == "edge":
            if x.dim() != 4 or any(flat[4:]):
                raise ModelFileError("the torch reference pads in mode 'edge' a 4-D tensor's H and W only")
            return F.pad(x, flat[:4], mode="replicate")
        return F.pad(x, flat, value=value)

    def _layout(self, node: onnx.NodeProto, a: dict, x: torch.Tensor) -> torch.Tensor:
        """ONNX's Reshape (0 copies the input's size unless allowzero), Flatten, Squeeze and Unsqueeze (axes an
        attribute before opset 13, an input from it) on the values in ONNX's order; the fix point passes."""
        op = node.op_type
        if op == "Flatten":
            axis = a.get("axis", 1)
            axis = axis + x.dim() if axis < 0 else axis
            return x.reshape(math.prod(x.shape[:axis]), -1)
        if op == "Reshape":
            shape = [int(d) for d in self.inits[node.input[1]].reshape(-1)]
            if not a.get("allowzero", 0):
                shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
            return x.reshape(shape)
        axes = a["axes"] if "axes" in a else [int(v) for v in self.inits[node.input[1]].reshape(-1)]
        if op == "Squeeze":
            return x.squeeze(tuple(ax % x.dim() for ax in axes))
        rank = x.dim() + len(axes)
        for ax in sorted(ax % rank for ax in axes):
            x = x.unsqueeze(ax)
        return x

    def trace(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """feeds: float NCHW inputs (already on their Q grid or not: they are quantized here), batch first. A
        batch runs one image at a time, as the emulator runs it: a Reshape or Flatten before a fully connected
        layer then flattens each image's values, not the batch's together."""
        arrays = {k: np.asarray(v) for k, v in feeds.items()}
        n = min((v.shape[0] for v in arrays.values() if v.ndim), default=1)
        if n <= 1:
            return self._trace(arrays)
        parts = [self._trace({k: v[i : i + 1] for k, v in arrays.items()}) for i in range(n)]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def _trace(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        env: dict[str, torch.Tensor] = {k: torch.from_numpy(np.asarray(v, np.float64)) for k, v in feeds.items()}
        ints: dict[str, np.ndarray] = {}
        for node in self.graph.node:
            op = node.op_type
            a = _attrs(node)
            if op == "QuantizeLinear":
                fp = _fp_of_scale(self.inits[node.input[1]])
                q = torch.clamp(torch.floor(env[node.input[0]] * 2.0**fp + 0.5), -128, 127)
                env[node.output[0]] = q
                arr = q.numpy().astype(np.int8)
                ints[node.output[0]] = arr.transpose(0, 2, 3, 1) if arr.ndim == 4 else arr
            elif op == "DequantizeLinear":
                fp = _fp_of_scale(self.inits[node.input[1]])
                src = env[node.input[0]] if node.input[0] in env else self._const(node.input[0])
                env[node.output[0]] = src * 2.0**-fp
                self.fp[node.output[0]] = fp
            elif op == "Conv":
                x, w = env[node.input[0]], env[node.input[1]]
                b = env[node.input[2]] if len(node.input) > 2 and node.input[2] else None
                if b is not None:  # the DPU floors the bias to the accumulator's resolution (+1 bit)
                    acc_fp = self.fp[node.input[0]] + self.fp[node.input[1]] + 1
                    b = torch.floor(b * 2.0**acc_fp) * 2.0**-acc_fp
                t, left, bo, r = a.get("pads", [0, 0, 0, 0])
                x = F.pad(x, (left, r, t, bo))
                env[node.output[0]] = F.conv2d(
                    x,
                    w,
                    b,
                    tuple(a.get("strides", [1, 1])),
                    0,
                    tuple(a.get("dilations", [1, 1])),
                    a.get("group", 1),
                )
            elif op == "ConvTranspose":  # torch's, pads cropped from its full output; the bias as a conv's
                x, w = env[node.input[0]], env[node.input[1]]
                b = env[node.input[2]] if len(node.input) > 2 and node.input[2] else None
                if b is not None:
                    acc_fp = self.fp[node.input[0]] + self.fp[node.input[1]] + 1
                    b = torch.floor(b * 2.0**acc_fp) * 2.0**-acc_fp
                y = F.conv_transpose2d(
                    x,
                    w,
                    b,
                    tuple(a.get("strides", [1, 1])),
                    0,
                    tuple(a.get("output_padding", [0, 0])),
                    a.get("group", 1),
                    tuple(a.get("dilations", [1, 1])),
                )
                t, left, bo, r = a.get("pads", [0, 0, 0, 0])
                env[node.output[0]] = y[:, :, t : y.shape[2] - bo, left : y.shape[3] - r]
            elif op == "Add":
                guard = min(self.fp[node.input[0]], self.fp[node.input[1]]) + 2
                xs = [torch.floor(env[i] * 2.0**guard) * 2.0**-guard for i in node.input]
                env[node.output[0]] = xs[0] + xs[1]
            elif op == "Relu":
                env[node.output[0]] = F.relu(env[node.input[0]])
            elif op == "Constant":  # torch.onnx.export gives a ReLU6's Clip bounds so
                self.inits[node.output[0]] = numpy_helper.to_array(a["value"])
            elif op == "Clip":  # opset >= 11: bounds as inputs; older opsets: as attributes
                lo = (
                    float(self.inits[node.input[1]])
                    if len(node.input) > 1 and node.input[1]
                    else a.get("min", -math.inf)
                )
                hi = (
                    float(self.inits[node.input[2]])
                    if len(node.input) > 2 and node.input[2]
                    else a.get("max", math.inf)
                )
                env[node.output[0]] = torch.clamp(env[node.input[0]], lo, hi)
            elif op == "LeakyRelu":
                x = env[node.input[0]]
                env[node.output[0]] = torch.where(x < 0, x * float(np.float32(a.get("alpha", 0.01))), x)
            elif op == "DepthToSpace":
                x = env[node.input[0]]
                r = a["blocksize"]
                n, c, h, w = x.shape
                if a.get("mode", b"DCR") in (b"CRD", "CRD"):
                    y = F.pixel_shuffle(x, r)
                else:
                    y = (
                        x.reshape(n, r, r, c // (r * r), h, w)
                        .permute(0, 3, 4, 1, 5, 2)
                        .reshape(n, c // (r * r), h * r, w * r)
                    )
                env[node.output[0]] = y
            elif op == "Resize":  # nearest or bilinear, whole-number scales or sizes (what the emulator reads)
                x = env[node.input[0]]
                axes = [ax % 4 for ax in a.get("axes", [0, 1, 2, 3])]  # Resize-18: the axes given, in order
                if len(node.input) > 3 and node.input[3]:  # sizes: whole multiples of the input's H and W
                    size = list(x.shape)
                    for ax, s in zip(axes, self.inits[node.input[3]].reshape(-1)):
                        size[ax] = int(s)
                    _, _, h, w = size
                    if h % x.shape[2] or w % x.shape[3]:
                        raise ModelFileError(f"a resize to {h}x{w} of {tuple(x.shape[2:])}: not a whole multiple")
                    sh, sw = h // x.shape[2], w // x.shape[3]
                else:
                    name = node.input[2] if len(node.input) > 2 else node.input[1]
                    scale = [1.0] * 4
                    for ax, s in zip(axes, self.inits[name].reshape(-1)):
                        scale[ax] = float(s)
                    _, _, sh, sw = (int(s) for s in scale)
                if _text(a.get("mode", "nearest")) == "linear":
                    ctm = _text(a.get("coordinate_transformation_mode", "half_pixel")) if self.opset >= 11 else ""
                    half = ctm in ("half_pixel", "pytorch_half_pixel", "half_pixel_symmetric")  # whole scales
                    env[node.output[0]] = _linear(_linear(x, 2, sh, half), 3, sw, half)
                else:
                    env[node.output[0]] = x.repeat_interleave(sh, dim=2).repeat_interleave(sw, dim=3)
            elif op == "MaxPool":
                t, left, bo, r = a.get("pads", [0, 0, 0, 0])
                x = F.pad(env[node.input[0]], (left, r, t, bo), value=-math.inf)
                env[node.output[0]] = F.max_pool2d(x, tuple(a["kernel_shape"]), tuple(a.get("strides", [1, 1])))
            elif op in ("AveragePool", "GlobalAveragePool"):  # the DPU's reciprocal of the kernel's pixels
                x = env[node.input[0]]
                kernel = tuple(a["kernel_shape"]) if op == "AveragePool" else tuple(x.shape[2:])
                t, left, bo, r = a.get("pads", [0, 0, 0, 0])
                x = F.pad(x, (left, r, t, bo))
                sums = F.avg_pool2d(x, kernel, tuple(a.get("strides", [1, 1])), divisor_override=1)
                factor, shift = avgpool_factors(*kernel)  # the product rounded to float32 as the reference's
                env[node.output[0]] = (sums * (factor * 2.0**-shift)).float().double()
            elif op == "HardSigmoid":  # the DPU's relu6(x + 3) * 2731 / 2**14 (XIR hard-sigmoid-fix), not 1/6
                env[node.output[0]] = torch.clamp(env[node.input[0]] + 3.0, 0.0, 6.0) * (
                    HSIGMOID_NUMERATOR * 2.0**-HSIGMOID_SHIFT
                )
            elif op == "HardSwish":  # x times the DPU's hard sigmoid quantized at 2**-7 (half up, saturated)
                x = env[node.input[0]]
                h = torch.clamp(x + 3.0, 0.0, 6.0) * (HSIGMOID_NUMERATOR * 2.0**-HSIGMOID_SHIFT)
                env[node.output[0]] = x * torch.clamp(torch.floor(h * 128 + 0.5), max=127) / 128
            elif op == "Mul":  # by a constant or of two activations: int8 values times powers of two, exact
                env[node.output[0]] = env[node.input[0]] * env[node.input[1]]
            elif op == "Concat":
                env[node.output[0]] = torch.cat([env[i] for i in node.input], dim=a.get("axis", 1))
            elif op == "Pad":  # the ONNX constant pad (the DPU's pad-fix fills int8 0; the rules take value 0)
                env[node.output[0]] = self._pad(node, a, env[node.input[0]])
            elif op in ("Gemm", "MatMul"):  # x times the weight in float64 (exact), the bias as a conv's
                x, w = env[node.input[0]], env[node.input[1]]
                if op == "Gemm" and a.get("transB", 0):
                    w = w.T
                y = x @ w
                if op == "Gemm" and len(node.input) > 2 and node.input[2]:
                    acc_fp = self.fp[node.input[0]] + self.fp[node.input[1]] + 1
                    y = y + torch.floor(env[node.input[2]] * 2.0**acc_fp) * 2.0**-acc_fp
                env[node.output[0]] = y
            elif op in ("Reshape", "Flatten", "Squeeze", "Unsqueeze"):
                env[node.output[0]] = self._layout(node, a, env[node.input[0]])
                if node.input[0] in self.fp:  # the values and their fix point pass through
                    self.fp[node.output[0]] = self.fp[node.input[0]]
            else:
                raise ModelFileError(f"the torch reference does not implement {op}")
        return ints
