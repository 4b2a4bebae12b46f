"""Which ONNX operators the DPU runs (DPUCZDX8G IP v4, Vitis AI 2.5 partitioner rules), per configuration (and
IP v3.x's lack of hard activations and of an element-wise mult, and its own depthwise conv and pool limits, for
the performance model's older rows: IP_LIMITS).

`dpu_support(node, info, cfg) -> (supported, reason)` answers for one ONNX node; the reason says what the
DPU does with it, or why the node has to run on the CPU. The rules (PG338 / UG1414, see the DPU facts):

- Conv (dense): kernel 1-16, stride 1-8, input and output channels <= 256 * ICP, each pad <= dilated
  kernel - 1 = (kernel - 1) x dilation (UG1414's DPUCZDX8G operator table; vai_q_pytorch's DPU op filter,
  check_pad, which filter_conv2d calls with the dilated kernel (kernel - 1) x dilation + 1, refuses only a
  pad over it, one more, though its message says the pad must be less than the kernel: a check shared with
  DPUs whose guides give that one more, DPUCAHX8H's and DPUCAHX8L's; VART's target factory gives the conv
  engine no pad_limit), kernel_h * kernel_w * ceil(C_in / ICP) <= 2048 (the weight bank's depth: vai_q_pytorch's DPU
  op filter, check_conv_weights_bank_depth); conv engine. Depthwise conv (groups = channels, ALU engine):
  kernel 1-256, stride 1-256, left/top pads 0-15 and right/bottom 0-255 (the ALU engine's pad_limit in
  VART's target factory, which vai_q_pytorch's DPU op filter checks), input and output channels <= 256 * ICP
  (the op filter's check_load_jump_write / check_save_jump_read at the ALU engine's channel_parallel, ICP), kernel_h *
  kernel_w <= 2048 (the depthwise weight bank, ICP wide: check_dwconv_weights_bank_depth). Other grouped
  convs run on the CPU. On IP v3.x (ISA0's dwconv engine, dwconv_limit): kernel 1-16, stride 1-8, each pad 0
  to the dilated kernel - 1 (no pad_limit; UG1414 v1.4.1).
- ConvTranspose (vai_q_pytorch's DPU op filter, filter_transpose_conv2d): dense (groups 1), no
  output_padding, kernel // stride in 1-16, kernel_h * kernel_w * ceil(C_in / ICP) <= 2048 (the weight
  bank's depth), C_in and C_out <= 256 * ICP, each pad 0 to the kernel; conv engine, its activations. A
  depthwise one (groups = C_in = C_out; filter_transpose_depthwise_conv2d): no output_padding, kernel //
  stride in 1-256 (the ALU engine's alu_limit), C <= 256 * ICP, the ALU engine's pads (top/left 0-15,
  bottom/right 0-255), kernel_h * kernel_w <= 2048 (the depthwise weight bank, which the op filter does not
  check for it but which holds the ALU engine's kernels); ALU engine, no activation fused (vai_q_pytorch's
  table of the activations each conv op fuses, check_nonlinear's, lists none for DEPTHWISE_CONVTRANSPOSE2D:
  an activation after it runs on the CPU with it, as after a bilinear Resize). Other groups: CPU. A dilated
  one: CPU (Xilinx's CPU reference and the ONNX spec pad it differently). On IP v3.x a depthwise one's
  kernel // stride is 1-16 (dwconv_limit), each pad 0 to the kernel (check_pad: no pad_limit).
- Gemm / MatMul with a constant weight: fully connected (a Gemm with transA, a MatMul by a weight of more than
  two dimensions: CPU). XIR's inner-product / matmul has no alpha or beta and adds a constant bias of one value
  per output (dpu_ops.gemm_refusal, which the emulator shares): a Gemm with alpha, or beta with a C, other than
  1, a C that is not constant, or a C of more than one value per output (rows of their own): CPU. It flattens
  each image to one vector: an input of more than one row for one image (a CPU Reshape to (8, 64) at batch 1, a
  MatMul of a 4-D map; dpu_ops.fc_rows_refusal, the emulator's check too), judged at the model's batch (its image
  input's first dimension, 1 when symbolic: (2, 512) at a fixed batch of 2 is one row per image): CPU.
- MaxPool / AveragePool (ALU, vai_q_pytorch's DPU op filter, filter_pool, with the target factory's
  alu_limit and pad_limit): kernel 1-256, stride 1-256 (not checked where the kernel covers the whole
  input), the ALU engine's pads (left/top 0-15, right/bottom 0-255); GlobalAveragePool / GlobalMaxPool
  (a pool whose kernel is the input's H x W) when H and W are each 1-256. On IP v3.x (ISA0's pool engine,
  max_limit / avg_limit): a max pool's kernel 1-8, an average pool's 2-8 and square, stride 1-8, each pad 0 to
  the kernel (no pad_limit).
- Add / Mul: element-wise on two 4-D activations of one shape (eltwise engine); Mul by a per-channel (or
  scalar) constant becomes a 1 x 1 depthwise conv (ALU engine): per channel as ONNX broadcasts it, non-1 on
  the C axis only (shape [C, 1, 1] or [1, C, 1, 1]; [1, 1, 1, C] broadcasts along W: CPU).
- Resize: by constant scales or sizes only (an initializer or Constant node: the DPU's upsample is by a
  scale fixed when compiled); by `sizes` only where they are whole multiples of the input's H and W (N and
  C unchanged): a resize by those scales. Nearest (vai_q_pytorch's DPU op filter, filter_upsample: no
  align_corners, C <= 256 * ICP, the load engine's; XIR upsample-fix, output = input x scale) at whole-number
  scales on H and W, N and C unchanged, with a mapping that takes output pixel x from input pixel
  floor(x / scale) (VART's cpu-runner upsample: half_pixel or pytorch_half_pixel with a round_prefer_*
  nearest_mode, asymmetric with floor...); bilinear (a transposed depthwise conv with fixed weights, no
  activation fused, C <= 256 * ICP, the ALU engine's: vai_q_pytorch's DPU op filter,
  filter_transpose_depthwise_conv2d, after the compiler's partition pass) at one integer
  scale on H and W, 2 or 4 with half_pixel / pytorch_half_pixel (or Resize-19's half_pixel_symmetric, which
  is half_pixel at a whole-number scale: its offset is centre x (1 - floor(in x s) / (in x s)), 0 there), 2, 4 or 8
  with asymmetric. The mapping
  is the model's opset's (ONNX spec): Upsample (opsets 7-9) and Resize-10 have no
  coordinate_transformation_mode and are asymmetric (x_in = x_out / scale); from Resize-11 on it is the
  attribute, default half_pixel.
- Concat: on the channel axis always; on another axis only when every producer is on the DPU.
- Pad (vai_q_pytorch's DPU op filter, filter_pad: XIR's CONSTANT or SYMMETRIC mode, C <= 256 x the load
  engine's channel_parallel, ICP; VART's cpu-runner pad-fix pads H and W only and fills a CONSTANT pad with
  int8 0 whatever its value): mode 'constant' with value 0, pads >= 0 on H and W only, constant (Pad-2's
  attributes; from Pad-11 on initializer or Constant inputs, Pad-18's axes too). XIR's SYMMETRIC mirrors
  including the edge pixel (the cpu-runner's pad-fix), which ONNX 'edge' (edge repeated) is where each H and
  W pad is 0 or 1: such a Pad is SYMMETRIC on the DPU (dpu_ops.pad_hw, the emulator's check too). 'reflect'
  (edge left out), 'edge' with a pad of 2 or more, a non-zero value, a pad of N or C and a negative pad (a
  crop) run on the CPU.
- Reshape / Flatten / Squeeze / Unsqueeze: only when the producer is on the DPU (they become layout moves) and
  the output, at the model's batch, keeps the batch axis first and the batch (dpu_ops.layout_moves_batch, the
  emulator's check at batch 1: a Reshape of (1, 8, 8, 8) to (512, 1), or of (2, 8, 8, 8) to (16, 64) at a fixed
  batch of 2, makes rows of one image's values; CPU).
- BatchNormalization: folded into the conv before it, or a 1x1 depthwise conv (ALU engine) of C <= 256 * ICP,
  a depthwise conv's channel limit (the target factory has no batch norm op of its own).
- DepthToSpace (pixel shuffle): the configuration's `depth_to_space_on_dpu` switch (whether the compiler
  keeps XIR pixel-shuffle-fix on the DPU is unverified, so it is a per-configuration rule), in mode CRD only:
  XIR's pixel shuffle is PyTorch's PixelShuffle (VART's cpu-runner pixel_shuffle.cpp reads input channel
  c * r * r + i * r + j), ONNX's CRD; DCR (the ONNX default, TensorFlow's depth_to_space): CPU.
- Activations are fused into the conv engine (ReLU, ReLU6, LeakyReLU if `conv_activations` has it) or
  the ALU engine's depthwise convs (`alu_activations`; on IP v3.x its dwconv engine's ReLU and ReLU6 only,
  IpLimits.fused); LeakyReLU only with slope 26/256 = 0.1015625. An
  element-wise Add or Mul of two activations runs on the eltwise engine, which fuses ReLU only, whatever the
  configuration. None is fused into a depthwise ConvTranspose or a bilinear resize (vai_q_pytorch lists
  none for the transposed depthwise conv both are), nor into a pool, concat, nearest resize, pixel shuffle,
  reshape or pad: their XIR
  ops (pool-fix, concat-fix, upsample-fix, pixel-shuffle-fix, reshape-fix, pad-fix) have no nonlinear attribute, so the
  op and its activation run on the CPU; but on IP v3.x a ReLU after a pool is fused, as its pool engine's
  nonlinear_type (relu) says (IpLimits.fused). A standalone ReLU / ReLU6 / LeakyReLU has nothing to fuse into: CPU.
- HardSigmoid / HardSwish are never fused: VART's DPUCZDX8G ISA1 target factory
  (create_target_DPUCZDX8G_ISA1.cpp, Vitis AI 2.5-3.5) gives the conv and ALU engines the nonlinear types
  relu, leaky_relu and relu_six only, and the eltwise engine relu only; hsigmoid is an ALU op type of its
  own (add_alu_type(Target::Alu::hsigmoid)). A HardSigmoid that is relu6(x + 3) / 6 (as
  relu6(x + 3) * 2731 / 16384) is an ALU hsigmoid op; a HardSwish is x * hsigmoid(x): an ALU hsigmoid and
  an eltwise mult. Both read their input at its own fix point, so the quantizer puts a Q/DQ pair between
  the op before and them; other alpha/beta: CPU. On DPUCZDX8G IP v3.x (ISA0, `ip` of dpu_support; dpu estimate's
  walk asks at its IP) neither is a DPU op, nor an element-wise Mul: its targets have no hsigmoid and an eltwise
  engine that adds only (isa0_refusal).
- Softmax: CPU. The compiler's DPUCZDX8G target has no softmax engine; the optional softmax kernel
  (`softmax = true`) is called by the Vitis AI Library's softmax function, outside the xmodel.
- Everything else (sigmoid, tanh, exp, reductions, shape arithmetic, non-4-D tensors): CPU.

Host only (needs the `onnx` package for attributes).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dpupose.dpu.config import DpuConfig
from dpupose.runtime.dpu_ops import (
    LINEAR_RESIZE_SCALES,
    MAX_ALU_KERNEL,
    depth_to_space_mode,
    fc_rows_refusal,
    gemm_refusal,
    is_hard_sigmoid,
    layout_moves_batch,
    pad_args,
    pad_hw,
    pad_xir_mode,
    pixel_shuffle_refusal,
)
from dpupose.runtime.qdq_graph import FLOOR_MAPPINGS

# DPUCZDX8G IP versions -> the ISA of their VART targets: v3.3 (DPU TRD of Vitis AI 1.3/1.4), v3.4 (Vitis AI
# 2.0) are ISA0; v4.0 (Vitis AI 2.5), v4.1 (Vitis AI 3.0/3.5) ISA1. The rules are IP v4's (every shipped
# configuration's); on ISA0 (VART's expired_targets/DPUCZDX8G_ISA0_<ARCH>_{MAX,MAX_BG2,MIN}.prototxt, Vitis-AI
# b2b227921b66) the eltwise engine has elew_type add only (a mult only in DPUCZDX8G_ISA0_B4096_MAX_EM, which no
# configuration here describes) and no engine an hsigmoid op, so a hard activation and an element-wise mult are
# not DPU ops there (isa0_refusal); its depthwise conv and pool limits are its own, tighter (IP_LIMITS). The
# performance model costs the eltwise engine's rate by it too (dpu.perf).
IP_VERSIONS = {"3.3": 0, "3.4": 0, "4.0": 1, "4.1": 1}
DEFAULT_IP = "4.0"
MAX_ALU_STRIDE = 256  # alu_limit (VART's target factory): kernel_size and stride 1-256
MAX_DW_PAD = 15  # the ALU engine's pad_limit (VART's target factory): pad_left, pad_top 0-15
MAX_ALU_FAR_PAD = 255  # pad_right, pad_bottom 0-255

CONV_ENGINE = "conv"
ALU_ENGINE = "alu"
ELTWISE_ENGINE = "eltwise"


@dataclass(frozen=True)
class IpLimits:
    """One DPUCZDX8G ISA's limits on the ops whose limits differ between IP versions: a depthwise conv (and a
    transposed one's kernel // stride) and a pool. IP v4 (ISA1) runs both on its ALU engine (alu_limit, pad_limit);
    IP v3.x (ISA0) on a dwconv engine (dwconv_limit) and a pool engine (max_limit, avg_limit), with no pad_limit:
    there a depthwise conv's pads are UG1414's (v1.4.1, DPUCZDX8G_ISA0_B4096_MAX_BG2: 0 to the dilated kernel - 1,
    as a dense conv's) and a pool's and a transposed depthwise conv's the op filter's check_pad (0 to the kernel).
    The dense conv's and transposed conv's limits (conv_limit: kernel 1-16, stride 1-8), the channels (256 x ICP:
    the dwconv engine's channel_parallel is ICP too) and the weight banks (2048 deep) are the same at both.
    The notes are what a reason cites, `{ip}` the version asked at."""

    dw_kernel: int  # a depthwise conv's kernel side 1 to this; a transposed depthwise conv's kernel // stride too
    dw_stride: int  # a depthwise conv's stride 1 to this
    pool_kernel: Mapping[str, tuple[int, int]]  # "max" / "avg" -> (lowest, highest) kernel side
    pool_stride: int  # a pool's stride 1 to this (unchecked where the kernel covers the input: one output pixel)
    square_avg_pool: bool  # an average pool's kernel must be square (the op filter's pool-engine check)
    pad_limit: tuple[int, int] | None  # (top and left, bottom and right) highest pads; None: bounded by the kernel
    dw_note: str  # after a depthwise conv's kernel / stride reason
    tdw_note: str  # after a transposed depthwise conv's kernel // stride reason
    pool_note: str  # after a pool's kernel reason
    stride_note: str  # after a pool's stride reason
    pad_note: str  # after a depthwise conv's or pool's pad reason
    dw_engine: str  # the engine a depthwise conv (and a transposed one) runs on, as its reason names it
    pool_engine: str  # the engine a pool runs on
    # The ops' engine (engine_of) -> the nonlinear types its targets fuse after it, where the ISA's own list is not
    # the rules' default (the conv and ALU engines': relu, relu_six, leaky_relu as the configuration builds them;
    # the eltwise engine's relu; none into an XIR op without a nonlinear attribute, UNFUSED_OPS).
    fused: Mapping[str, frozenset[str]] = field(default_factory=dict)


# IP v4: VART's create_target_DPUCZDX8G_ISA1.cpp (targets/DPUCZDX8G_ISA1_B*.prototxt): alu_limit kernel_size and
# stride 1-256, pad_limit pad_left / pad_top 0-15, pad_right / pad_bottom 0-255, for every ALU op.
ISA1_LIMITS = IpLimits(
    dw_kernel=MAX_ALU_KERNEL,
    dw_stride=MAX_ALU_STRIDE,
    pool_kernel={"max": (1, MAX_ALU_KERNEL), "avg": (1, MAX_ALU_KERNEL)},
    pool_stride=MAX_ALU_STRIDE,
    square_avg_pool=False,
    pad_limit=(MAX_DW_PAD, MAX_ALU_FAR_PAD),
    dw_note="",
    tdw_note=" (the ALU engine's alu_limit)",
    pool_note="",
    stride_note=" (the ALU engine's alu_limit)",
    pad_note=" (the ALU engine's pad_limit)",
    dw_engine="ALU engine",
    pool_engine="ALU engine",
    # the factory's alu_engine nonlinear: relu, relu_six, leaky_relu where the ALU is built with it, as the
    # configuration says. None into a pool: ISA1 has no pool engine of its own, no Xilinx tool fuses an activation
    # into its ALU engine's pools (vai_q_pytorch's check_nonlinear lists none for a pool; vai_q_tensorflow2 checks a
    # pool's against a pool engine's list only) and XIR's pool-fix has no nonlinear attribute (UNFUSED_OPS)
    fused={},
)
# IP v3.x: every DPUCZDX8G_ISA0_<ARCH>_MAX / _MAX_BG2 target (expired_targets/, Vitis-AI b2b227921b66):
# dwconv_limit kernel_size 1-16, stride 1-8; max_limit kernel_size 1-8, avg_limit kernel_size 2-8, stride 1-8; no
# pad_limit. vai_q_pytorch's DPU op filter (filter_pool) takes an average pool on a pool engine only square. (The
# max_reduce pool_type, a max pool of kernel width to 100 and height 1-2, is left out: filter_pool's check of it
# misspells its variable and fails.)
ISA0_LIMITS = IpLimits(
    dw_kernel=16,
    dw_stride=8,
    pool_kernel={"max": (1, 8), "avg": (2, 8)},
    pool_stride=8,
    square_avg_pool=True,
    pad_limit=None,
    dw_note=" (DPUCZDX8G IP v{ip}'s dwconv engine: the dwconv_limit of its DPUCZDX8G_ISA0 targets)",
    tdw_note=" (DPUCZDX8G IP v{ip}'s dwconv engine: the dwconv_limit of its DPUCZDX8G_ISA0 targets)",
    pool_note=" (DPUCZDX8G IP v{ip}'s pool engine: the max_limit / avg_limit of its DPUCZDX8G_ISA0 targets)",
    stride_note=" (DPUCZDX8G IP v{ip}'s pool engine: the max_limit / avg_limit of its DPUCZDX8G_ISA0 targets)",
    pad_note=" (DPUCZDX8G IP v{ip}: its DPUCZDX8G_ISA0 targets have no pad_limit)",
    dw_engine="dwconv engine",
    pool_engine="pool engine",
    # dwconv_engine nonlinear relu, relu_six (no leaky_relu, whatever the ALU setting; the MIN targets have no
    # dwconv engine at all): a LeakyReLU after a depthwise conv, a BatchNormalization's or a Mul by a constant's
    # 1x1 depthwise conv is not fused
    # pool_engine nonlinear relu: a ReLU after a pool is fused (vai_q_tensorflow2's target check, vai_utf's
    # MaxPool2DLimits / AvgPool2DLimits.in_act_limits, takes a pool and its ReLU against this list), though XIR's
    # pool-fix (Vitis AI 1.3's too) has no nonlinear attribute: how the compiler carries it is not public
    fused={ALU_ENGINE: frozenset({"relu", "relu_six"}), "pool-fix": frozenset({"relu"})},
)
IP_LIMITS = {0: ISA0_LIMITS, 1: ISA1_LIMITS}  # by ISA (IP_VERSIONS)

LEAKY_SLOPE = 26 / 256  # the DPU's LeakyReLU slope; 0.1 is not representable
FUSED_ACTIVATION_OPS = ("Relu", "Clip", "LeakyRelu")  # the engines' nonlinear types: relu, relu_six, leaky_relu
HARD_ACTIVATION_OPS = ("HardSigmoid", "HardSwish")  # DPU ops of their own (ALU hsigmoid, + eltwise mult)
PASS_THROUGH_OPS = ("Identity", "Dropout")
LAYOUT_OPS = ("Reshape", "Flatten", "Squeeze", "Unsqueeze")

MAX_CONV_KERNEL = 16
MAX_CONV_STRIDE = 8
MAX_CONV_CHANNELS_PER_ICP = 256  # a dense conv's input and output channels: at most 256 x ICP
WEIGHT_BANK_DEPTH = 2048  # the weight banks' depth (VART's DPUCZDX8G target factory: CONVW, DWCONVW bank_depth)
# A bilinear Resize's coordinate mappings the DPU runs -> its scales (vai_q_pytorch's DPU op filter,
# hardware/dpu_op_filter.py, after the compiler's partition pass): 2 or 4 with half-pixel centres, 2, 4 or 8
# without. Shared with the emulator (dpu_ops.LINEAR_RESIZE_SCALES, by half_pixel_centers).
RESIZE_LINEAR_SCALES = {
    "half_pixel": LINEAR_RESIZE_SCALES[True],
    "pytorch_half_pixel": LINEAR_RESIZE_SCALES[True],
    "half_pixel_symmetric": LINEAR_RESIZE_SCALES[True],  # Resize-19: half_pixel at a whole-number scale
    "asymmetric": LINEAR_RESIZE_SCALES[False],
}
LINEAR_RESIZE_ENGINE = "alu-tconv"  # a bilinear Resize: a transposed depthwise conv that fuses no activation
# A depthwise ConvTranspose: the ALU engine's transposed depthwise conv, which fuses no activation either.
# vai_q_pytorch's DPU op filter (check_nonlinear's op_nonlinear_map) lists the activations each conv op fuses:
# ReLU, ReLU6, PReLU and LeakyReLU for a conv, a transposed conv and a depthwise conv, none for
# DEPTHWISE_CONVTRANSPOSE2D (the op a bilinear resize becomes too). XIR's transposed-depthwise-conv2d-fix has
# the conv ops' nonlinear attribute and Vitis AI's CPU op for it applies one, but whether the compiler fuses
# one into it on the DPU is not public, so the rules take the op filter's word: no activation fused.
TRANSPOSED_DW_ENGINE = "alu-tdwconv"
# Ops whose XIR op has no "nonlinear" attribute, so no activation is fused into them (Vitis AI's XIR,
# src/vai_runtime/xir/src/xir/op/built_in_ops.cpp: only the conv ops, conv2d-fix, depthwise-conv2d-fix and the
# transposed ones, and eltwise-fix carry one; pool-fix, concat-fix, upsample-fix, pixel-shuffle-fix and
# reshape-fix do not), though VART's DPUCZDX8G ISA1 target factory lists relu, leaky_relu and relu_six on
# the ALU engine that runs the pools (for its depthwise convs; the load and save engines that move data list
# none). engine_of gives these their XIR op, which activation_support refuses every activation after.
UNFUSED_OPS = {
    "pool-fix": "a pool",
    "concat-fix": "a concat",
    "upsample-fix": "a nearest Resize (the DPU's upsample)",
    "pixel-shuffle-fix": "a DepthToSpace (pixel shuffle)",
    "reshape-fix": "a reshape",
    "pad-fix": "a Pad",
}
POOL_OPS = ("MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool")


@dataclass
class GraphInfo:
    """What a rule needs to know about the graph around a node.

    shapes: tensor -> static shape (a symbolic batch taken as 1) where known; constants: initializer / Constant
    values; on_dpu: tensor -> whether its producer is on the DPU (None when not decided yet or a graph input);
    opset: the model's default-domain (ai.onnx) opset, which decides how some attributes read (0: not
    known, read as the newest); batch: the model's batch, its image input's first dimension in `shapes` (1 for
    a symbolic one, `image_batch`), which a fully connected layer's rows and a layout op's output are judged per
    image of.
    """

    shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    constants: Mapping[str, np.ndarray | None] = field(default_factory=dict)  # None: constant, value unknown
    on_dpu: Callable[[str], bool | None] = lambda _name: None
    opset: int = 0
    batch: int = 1

    def shape(self, name: str) -> tuple[int, ...] | None:
        return self.shapes.get(name)

    def is_const(self, name: str) -> bool:
        return name in self.constants

    def activations(self, node: Any) -> list[str]:
        """The node's non-constant inputs."""
        return [t for t in node.input if t and not self.is_const(t)]


def attr(node: Any, name: str, default: Any = None) -> Any:
    import onnx

    for a in node.attribute:
        if a.name == name:
            value = onnx.helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default


Support = tuple[bool, str]


def image_batch(shapes: Mapping[str, Sequence[int]], inputs: Sequence[str]) -> int:
    """The model's batch: the first dimension of its first 4-D graph input (the image, or a DPU subgraph's feature
    map) in `shapes` (where a symbolic batch is 1); 1 if it has none (a subgraph reading only the (8, 64) rows a
    CPU Reshape made of one image declares no batch of its own)."""
    for name in inputs:
        shape = shapes.get(name)
        if shape is not None and len(shape) == 4:
            return max(1, int(shape[0]))
    return 1


def model_opset(model: Any) -> int:
    """The default-domain (ai.onnx) opset an onnx.ModelProto imports (0 if it imports none)."""
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def resize_mapping(node: Any, opset: int) -> str:
    """A Resize's or Upsample's coordinate mapping as the ONNX spec reads it at `opset` (0: the newest).
    Upsample (opsets 7-9) and Resize-10 have no coordinate_transformation_mode: x_in = x_out / scale,
    which is Resize-11's asymmetric (an attribute of that name on them is not theirs and means nothing).
    From Resize-11 on the attribute decides, default half_pixel."""
    if node.op_type == "Upsample" or 0 < opset < 11:
        return "asymmetric"
    return attr(node, "coordinate_transformation_mode", "half_pixel")


def max_conv_channels(cfg: DpuConfig) -> int:
    """The most input or output channels a dense convolution of `cfg` takes on the DPU (256 x ICP)."""
    return MAX_CONV_CHANNELS_PER_ICP * cfg.icp


def max_alu_channels(cfg: DpuConfig) -> int:
    """The most input or output channels a depthwise conv (or the transposed depthwise conv a bilinear resize
    becomes) of `cfg` takes on the DPU: vai_q_pytorch's DPU op filter (filter_depthwise_conv2d,
    filter_transpose_depthwise_conv2d) checks C_in against check_load_jump_write and C_out against
    check_save_jump_read, each 256 x channel_parallel with the ALU engine's channel_parallel, which VART's
    DPUCZDX8G ISA1 target factory sets to ICP: 256 x ICP, as a dense conv's."""
    return MAX_CONV_CHANNELS_PER_ICP * cfg.icp


def _cpu(reason: str) -> Support:
    return False, reason


def _four_d(node: Any, info: GraphInfo) -> str | None:
    """A reason if an activation input or the output is known not to be 4-D."""
    for t in [*info.activations(node), *node.output[:1]]:
        s = info.shape(t)
        if s is not None and len(s) != 4:
            return f"{len(s)}-D tensor {t!r}: the DPU works on 4-D feature maps"
    return None


def _conv(node: Any, info: GraphInfo, cfg: DpuConfig, ip: str = DEFAULT_IP) -> Support:
    op = node.op_type
    if len(node.input) < 2 or not info.is_const(node.input[1]):
        return _cpu(f"{op} without a constant weight")
    w = info.shape(node.input[1])
    if w is None or len(w) != 4:
        return _cpu(f"{op} that is not 2-D")
    groups = int(attr(node, "group", 1))
    kernel = [int(k) for k in attr(node, "kernel_shape", w[2:])]
    strides = [int(s) for s in attr(node, "strides", [1, 1])]
    dilations = [int(d) for d in attr(node, "dilations", [1, 1])]
    pads = [int(p) for p in attr(node, "pads", [0, 0, 0, 0])]
    if attr(node, "auto_pad", "NOTSET") not in ("NOTSET", ""):
        return _cpu(f"{op} with auto_pad (the partitioner needs explicit pads)")
    x = info.shape(node.input[0])
    cin = x[1] if x is not None and len(x) == 4 else w[1] * groups
    cout = w[1] * groups if op == "ConvTranspose" else w[0]
    if op == "ConvTranspose":
        if groups != 1 and groups == cin and cout == cin:
            return _dw_conv_transpose(node, cfg, kernel, strides, dilations, pads, cin, ip)
        return _conv_transpose(node, cfg, kernel, strides, dilations, pads, groups, cin, cout)
    depthwise = op == "Conv" and groups > 1 and groups == cin and w[1] == 1
    if groups > 1 and not depthwise:
        return _cpu(f"grouped {op} (groups={groups}) is neither dense nor depthwise")
    if depthwise:
        lim = ip_limits(ip)
        if not all(1 <= k <= lim.dw_kernel for k in kernel) or not all(1 <= s <= lim.dw_stride for s in strides):
            span = f"1-{lim.dw_kernel}" + ("" if lim.dw_stride == lim.dw_kernel else f" / 1-{lim.dw_stride}")
            return _cpu(f"depthwise kernel {kernel} / stride {strides} outside {span}{lim.dw_note.format(ip=ip)}")
        dilated = [d * (k - 1) for k, d in zip([*kernel, 1, 1][:2], [*dilations, 1, 1][:2])]
        reason = _alu_pads("depthwise conv", pads, ip, dilated, "the dilated kernel - 1")
        if reason is not None:
            return _cpu(reason)
        limit = max_alu_channels(cfg)
        if cin > limit or cout > limit:
            return _cpu(
                f"depthwise conv with {cin} -> {cout} channels exceeds 256 x ICP = {limit} (the ALU engine's, "
                "which loads and saves them)"
            )
        rows = kernel[0] * kernel[1]  # x ceil(ICP / ICP): the ALU's channels fill one row of the bank
        if rows > WEIGHT_BANK_DEPTH:
            return _cpu(
                f"depthwise weights {kernel[0]}x{kernel[1]} take {rows} rows of the {WEIGHT_BANK_DEPTH}-deep "
                "depthwise weight bank (kernel_h * kernel_w)"
            )
        return True, f"depthwise conv {kernel[0]}x{kernel[1]} s{strides[0]} ({lim.dw_engine})"
    if not all(1 <= k <= MAX_CONV_KERNEL for k in kernel):
        return _cpu(f"{op} kernel {kernel} outside 1-{MAX_CONV_KERNEL}")
    if not all(1 <= s <= MAX_CONV_STRIDE for s in strides):
        return _cpu(f"{op} stride {strides} outside 1-{MAX_CONV_STRIDE}")
    limit = max_conv_channels(cfg)
    if cin > limit or cout > limit:
        return _cpu(f"{op} with {cin} -> {cout} channels exceeds 256 x ICP = {limit}")
    rows = kernel[0] * kernel[1] * math.ceil(w[1] / cfg.icp)
    if rows > WEIGHT_BANK_DEPTH:
        return _cpu(
            f"{op} weights {kernel[0]}x{kernel[1]} x {w[1]} channels take {rows} rows of the "
            f"{WEIGHT_BANK_DEPTH}-deep weight bank (kernel_h * kernel_w * ceil(C_in / ICP))"
        )
    half = len(pads) // 2
    for i, p in enumerate(pads):
        d = dilations[i % half] if half else 1
        k = kernel[i % half] if half else 1
        if p > d * (k - 1):  # UG1414's DPUCZDX8G limit; the op filter's check_pad lets d * (k - 1) + 1 through
            return _cpu(f"{op} pad {p} exceeds the dilated kernel - 1 = {d * (k - 1)}")
    return True, f"conv {kernel[0]}x{kernel[1]} s{strides[0]} (conv engine)"


def _alu_pads(what: str, pads: list[int], ip: str, bound: list[int], bound_name: str) -> str | None:
    """Why the engine of a depthwise conv or a pool on IP version `ip` cannot take `pads` (ONNX order: top, left,
    bottom, right), or None. IP v4: VART's DPUCZDX8G ISA1 target factory gives the ALU engine a pad_limit, pad_left
    and pad_top 0-15, pad_right and pad_bottom 0-255, which vai_q_pytorch's DPU op filter checks
    (check_pad_with_limit) on a depthwise conv and a pool. IP v3.x's targets (ISA0) have no pad_limit: each pad is
    at most `bound` (H's, W's), which the caller names in `bound_name` (IpLimits)."""
    lim = ip_limits(ip)
    top, left, bottom, right = [*pads, 0, 0, 0, 0][:4]
    if min(top, left, bottom, right) < 0:
        engine = "the ALU engine's" if lim.pad_limit is not None else f"DPUCZDX8G IP v{ip}'s"
        return f"{what} with negative pads {list(pads)} ({engine} pads are 0 or more)"
    note = lim.pad_note.format(ip=ip)
    if lim.pad_limit is None:
        if top > bound[0] or bottom > bound[0] or left > bound[1] or right > bound[1]:
            return f"{what} pads {[top, left, bottom, right]} exceed {bound_name} {bound}{note}"
        return None
    near, far = lim.pad_limit
    if top > near or left > near:
        return f"{what} top/left pads {[top, left]} exceed {near}{note}"
    if bottom > far or right > far:
        return f"{what} bottom/right pads {[bottom, right]} exceed {far}{note}"
    return None


def _conv_transpose(
    node: Any,
    cfg: DpuConfig,
    kernel: list[int],
    strides: list[int],
    dilations: list[int],
    pads: list[int],
    groups: int,
    cin: int,
    cout: int,
) -> Support:
    """A ConvTranspose as vai_q_pytorch's DPU op filter takes it (filter_transpose_conv2d, the conv engine's
    transposed conv): groups 1, no output_padding, kernel // stride in 1-16 (and kernel // stride + 1 too
    unless the stride divides the kernel), its kernel_h * kernel_w * ceil(C_in / ICP) weight rows in the
    2048-deep weight bank, C_in and C_out <= 256 x ICP, each pad 0 to the kernel."""
    if groups != 1:
        return _cpu(
            f"grouped ConvTranspose (groups={groups}) is neither dense (the conv engine's transposed conv) nor "
            "depthwise (groups = input channels = output channels: the ALU engine's)"
        )
    reason = _transposed_attrs(node, dilations)
    if reason is not None:
        return _cpu(reason)
    for k, st in zip(kernel, strides):
        taps = k // st if st >= 1 else 0
        ok = 1 <= taps <= MAX_CONV_KERNEL and (k % st == 0 or taps + 1 <= MAX_CONV_KERNEL)
        if not ok:
            return _cpu(
                f"ConvTranspose kernel {kernel} / stride {strides}: kernel // stride outside 1-{MAX_CONV_KERNEL}"
            )
    limit = max_conv_channels(cfg)
    if cin > limit or cout > limit:
        return _cpu(f"ConvTranspose with {cin} -> {cout} channels exceeds 256 x ICP = {limit}")
    rows = kernel[0] * kernel[1] * math.ceil(cin / cfg.icp)
    if rows > WEIGHT_BANK_DEPTH:
        return _cpu(
            f"ConvTranspose weights {kernel[0]}x{kernel[1]} x {cin} channels take {rows} rows of the "
            f"{WEIGHT_BANK_DEPTH}-deep weight bank (kernel_h * kernel_w * ceil(C_in / ICP))"
        )
    if any(p < 0 or p > kernel[i % 2] for i, p in enumerate(pads)):
        return _cpu(f"ConvTranspose pads {pads} outside 0 to the kernel {kernel}")
    return True, f"transposed conv {kernel[0]}x{kernel[1]} s{strides[0]} (conv engine)"


def _batch_norm(node: Any, info: GraphInfo, cfg: DpuConfig) -> Support:
    """A BatchNormalization: folded into the conv before it, or else (it reads a quantized tensor) a 1x1 depthwise
    conv on the ALU engine. VART's DPUCZDX8G target factory has no batch norm op of its own, and
    vai_q_pytorch's DPU op filter no filter for one; the 1x1 depthwise conv it runs as has the depthwise conv's
    channel limit (filter_depthwise_conv2d: check_load_jump_write / check_save_jump_read at the ALU engine's
    channel_parallel, ICP in the target factory): C <= 256 x ICP, as a Mul by a constant's 1x1 depthwise conv
    (which over it falls back to the eltwise mult; a batch norm's scale and shift have no such fallback). One
    folded into a conv has the conv's output channels, which the conv's rule holds to the same limit."""
    x = info.shape(node.input[0])
    limit = max_alu_channels(cfg)
    if x is not None and len(x) == 4 and x[1] > limit:
        return _cpu(
            f"BatchNormalization of {x[1]} channels exceeds 256 x ICP = {limit} (the ALU engine's, whose 1x1 "
            "depthwise conv runs it: vai_q_pytorch's DPU op filter, check_load_jump_write)"
        )
    return True, "BatchNormalization (folded into the preceding conv, or a 1x1 depthwise conv)"


def _transposed_attrs(node: Any, dilations: list[int]) -> str | None:
    """Why a ConvTranspose's attributes keep it off the DPU, or None: vai_q_pytorch's DPU op filter takes no
    output_padding (filter_transpose_conv2d, filter_transpose_depthwise_conv2d), and Xilinx's CPU reference pads
    the stride-dilated input by kernel - 1 - pad where the ONNX spec pads a dilated kernel by dilation x
    (kernel - 1) - pad (its transposed depthwise conv checks dilation 1)."""
    if any(int(p) for p in attr(node, "output_padding", [])) or attr(node, "output_shape") is not None:
        return "ConvTranspose with output_padding or output_shape (the DPU takes neither; give explicit pads)"
    if any(d != 1 for d in dilations):
        return (
            f"dilated ConvTranspose (dilations {dilations}): Xilinx's CPU reference pads kernel - 1 - pad, not the "
            "ONNX spec's dilation x (kernel - 1) - pad"
        )
    return None


def _dw_conv_transpose(
    node: Any,
    cfg: DpuConfig,
    kernel: list[int],
    strides: list[int],
    dilations: list[int],
    pads: list[int],
    channels: int,
    ip: str = DEFAULT_IP,
) -> Support:
    """A depthwise ConvTranspose (groups = input channels = output channels) as vai_q_pytorch's DPU op filter
    takes it on the ALU engine (filter_transpose_depthwise_conv2d, with VART's DPUCZDX8G ISA1 target factory's
    alu_limit and pad_limit): no output_padding, kernel // stride in the alu_limit's 1-256 (and kernel // stride
    + 1 too unless the stride divides the kernel: check_transposed_kernel), C <= 256 x the ALU engine's
    channel_parallel, ICP (check_load_jump_write), the ALU engine's pads (check_pad_with_limit on the
    ConvTranspose's own pads: top/left 0-15, bottom/right 0-255). Its stride check is on the stride-1 conv the
    transposed one becomes. The op filter checks no weight bank for it, but the target factory's ALU engine has
    one weight bank, DWCONVW (2048 deep, ICP wide), and a dwconv op type and no transposed one, so the kernel
    of that stride-1 depthwise conv (tdwconv.cpp's: the whole KH x KW over the stride-dilated input) is held
    there as a depthwise conv's is: kernel_h * kernel_w <= 2048 (check_dwconv_weights_bank_depth's rows; a
    compiler that split it by stride phase would need fewer, which is not public, so the rules take the whole
    kernel). VART's cpu-runner (tdwconv.cpp) refuses a dilated kernel. No activation is fused into it
    (engine_of: TRANSPOSED_DW_ENGINE). On IP v3.x (ISA0: the dwconv engine, filter_transpose_depthwise_conv2d's
    other branch) kernel // stride is in its dwconv_limit's 1-16 and each pad 0 to the kernel (check_pad: no
    pad_limit), IpLimits."""
    reason = _transposed_attrs(node, dilations)
    if reason is not None:
        return _cpu(reason)
    lim = ip_limits(ip)
    for k, st in zip(kernel, strides):
        taps = k // st if st >= 1 else 0
        if not (1 <= taps <= lim.dw_kernel and (k % st == 0 or taps + 1 <= lim.dw_kernel)):
            return _cpu(
                f"depthwise ConvTranspose kernel {kernel} / stride {strides}: kernel // stride outside "
                f"1-{lim.dw_kernel}{lim.tdw_note.format(ip=ip)}"
            )
    limit = max_alu_channels(cfg)
    if channels > limit:
        return _cpu(
            f"depthwise ConvTranspose of {channels} channels exceeds 256 x ICP = {limit} (the ALU engine's, "
            "vai_q_pytorch's DPU op filter)"
        )
    rows = kernel[0] * kernel[1]  # x ceil(ICP / ICP): one row of the depthwise bank per tap, as a depthwise conv's
    if rows > WEIGHT_BANK_DEPTH:
        return _cpu(
            f"depthwise ConvTranspose weights {kernel[0]}x{kernel[1]} take {rows} rows of the {WEIGHT_BANK_DEPTH}-deep "
            "depthwise weight bank (kernel_h * kernel_w; the ALU engine keeps them there as a depthwise conv's)"
        )
    reason = _alu_pads("depthwise ConvTranspose", pads, ip, [*kernel, 1, 1][:2], "the kernel")
    if reason is not None:
        return _cpu(reason)
    return True, f"transposed depthwise conv {kernel[0]}x{kernel[1]} s{strides[0]} ({lim.dw_engine})"


def _fc(node: Any, info: GraphInfo) -> Support:
    if len(node.input) < 2 or not info.is_const(node.input[1]):
        return _cpu(f"{node.op_type} of two activations (only a constant weight is a fully connected layer)")
    if node.op_type == "Gemm" and int(attr(node, "transA", 0)):
        return _cpu("Gemm with transA")
    weight = _const_shape(node.input[1], info)
    if node.op_type == "MatMul" and weight is not None and len(weight) > 2:
        # a fully connected layer's weight (nn.Linear's, XIR's inner product) is one matrix; a stack of them
        # multiplies a batch of products, which the DPU's conv engine does not take as one layer
        return _cpu(f"MatMul by a {len(weight)}-D weight (a batched product; a fully connected layer's weight is 2-D)")
    if node.op_type == "Gemm":
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        if bias is not None and not info.is_const(bias):
            return _cpu("Gemm with a C that is not constant (a fully connected layer's bias is a constant)")
        out = info.shape(node.output[0])
        outputs = out[-1] if out else None
        if weight is not None and len(weight) == 2:
            outputs = weight[0] if int(attr(node, "transB", 0)) else weight[1]
        bias_shape = None if bias is None else (_const_shape(bias, info) or ())  # (): not known, not checked
        alpha, beta = float(attr(node, "alpha", 1.0)), float(attr(node, "beta", 1.0))
        why = gemm_refusal(alpha, beta, bias_shape, outputs)
        if why is not None:
            return _cpu(f"Gemm with {why}")
    x = info.shape(node.input[0])
    why = None if x is None else fc_rows_refusal(x, info.batch)
    if why is not None:
        return _cpu(f"{node.op_type} of {why}")
    return True, "fully connected (conv engine)"


def _const_shape(name: str, info: GraphInfo) -> tuple[int, ...] | None:
    """The shape of a constant input (its inferred one, else its value's), None if not known."""
    shape = info.shape(name) or getattr(info.constants.get(name), "shape", None)
    return None if shape is None else tuple(shape)


def _pool(node: Any, info: GraphInfo, ip: str = DEFAULT_IP) -> Support:
    """A pool as vai_q_pytorch's DPU op filter takes it (filter_pool) on DPUCZDX8G IP version `ip`. IP v4: on the
    ALU engine, with VART's DPUCZDX8G ISA1 target factory's alu_limit and pad_limit: each kernel side 1-256 (a
    global pool's kernel is its input's H x W), each stride 1-256 unless the kernel covers the whole input and its
    output is one pixel (the op filter checks no stride then; with pads a stride over 256 can still give two), the
    ALU engine's pads. IP v3.x: on the pool engine of its ISA0 targets, a max pool's kernel side 1-8, an average
    pool's 2-8 and square, each stride 1-8 (as above), each pad 0 to the kernel (IpLimits)."""
    op = node.op_type
    lim = ip_limits(ip)
    lo, hi = lim.pool_kernel["max" if "Max" in op else "avg"]
    note = lim.pool_note.format(ip=ip)
    square = lim.square_avg_pool and "Average" in op
    x = info.shape(node.input[0])
    if op.startswith("Global"):
        if x is None or len(x) != 4:
            return _cpu(f"{op} on a tensor of unknown shape")
        if not all(lo <= k <= hi for k in x[2:]):
            span = f"exceeds {hi}" if lo == 1 else f"is outside {lo}-{hi}"
            return _cpu(f"{op} over {x[2]}x{x[3]}: its kernel, the input's H x W, {span} on a side{note}")
        if square and x[2] != x[3]:
            return _cpu(f"{op} over {x[2]}x{x[3]}: its kernel, the input's H x W, is not square{note}")
        return True, f"{op} ({lim.pool_engine})"
    kernel = [int(k) for k in attr(node, "kernel_shape", [1, 1])]
    if not all(lo <= k <= hi for k in kernel):
        return _cpu(f"{op} kernel {kernel} outside {lo}-{hi}{note}")
    if square and len(set(kernel)) > 1:
        return _cpu(f"{op} kernel {kernel} is not square{note}")
    strides = [int(s) for s in attr(node, "strides", [1] * len(kernel))]
    whole = x is not None and len(x) == 4 and list(x[2:]) == kernel
    one_pixel = (
        whole
        and len(strides) == 2
        and min(strides) >= 1
        and _pool_output_hw(node, [int(d) for d in x[2:]], kernel, strides) == [1, 1]
    )
    if not one_pixel and not all(1 <= s <= lim.pool_stride for s in strides):
        return _cpu(f"{op} stride {strides} outside 1-{lim.pool_stride}{lim.stride_note.format(ip=ip)}")
    auto_pad = attr(node, "auto_pad", "NOTSET")
    if auto_pad in ("NOTSET", ""):
        pads = [int(p) for p in attr(node, "pads", [0, 0, 0, 0])]
    elif auto_pad == "VALID":
        pads = [0, 0, 0, 0]
    elif x is None or len(x) != 4 or len(strides) != 2:
        return _cpu(f"{op} with auto_pad {auto_pad} on a tensor of unknown shape (its pads cannot be checked)")
    else:
        pads = _same_pads(node, [int(d) for d in x[2:]], kernel, strides)
    reason = _alu_pads(op, pads, ip, [*kernel, 1, 1][:2], "the kernel")
    if reason is not None:
        return _cpu(reason)
    return True, f"{op} {kernel[0]}x{kernel[1]} ({lim.pool_engine})"


def _same_pads(node: Any, hw: list[int], kernel: list[int], strides: list[int]) -> list[int]:
    """The pads (top, left, bottom, right) ONNX gives a pool with auto_pad SAME_UPPER / SAME_LOWER: output
    ceil(in / stride), the total pad (out - 1) * stride + dilated kernel - in (0 at least) split in two, the
    odd one at the end (SAME_UPPER) or the beginning (SAME_LOWER)."""
    dilations = [*[int(d) for d in attr(node, "dilations", [])], 1, 1][:2]
    begin, end = [], []
    for size, k, s, d in zip(hw, kernel, strides, dilations):
        total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
        small = total // 2
        if attr(node, "auto_pad", "NOTSET") == "SAME_LOWER":
            begin.append(total - small)
            end.append(small)
        else:
            begin.append(small)
            end.append(total - small)
    return [*begin, *end]


def _pool_output_hw(node: Any, hw: list[int], kernel: list[int], strides: list[int]) -> list[int]:
    """A MaxPool's or AveragePool's output H and W as ONNX gives them: auto_pad SAME_* ceil(in / stride), else
    (in + pads - dilated kernel) / stride + 1, floored, or with ceil_mode rounded up, less a window that would
    start in the bottom/right padding."""
    auto_pad = attr(node, "auto_pad", "NOTSET")
    dilations = [*[int(d) for d in attr(node, "dilations", [])], 1, 1][:2]
    pads = [*[int(p) for p in attr(node, "pads", [])], 0, 0, 0, 0][:4] if auto_pad in ("NOTSET", "") else [0] * 4
    ceil_mode = int(attr(node, "ceil_mode", 0))
    out = []
    for i, size in enumerate(hw):
        s = strides[i]
        if auto_pad.startswith("SAME"):
            out.append(math.ceil(size / s))
            continue
        span = size + pads[i] + pads[i + 2] - ((kernel[i] - 1) * dilations[i] + 1)
        n = (math.ceil(span / s) if ceil_mode else span // s) + 1
        if ceil_mode and (n - 1) * s >= size + pads[i]:
            n -= 1
        out.append(n)
    return out


def _eltwise(node: Any, info: GraphInfo) -> Support:
    op = node.op_type
    acts = info.activations(node)
    consts = [t for t in node.input if t and info.is_const(t)]
    if op == "Mul" and len(acts) == 1 and len(consts) == 1:
        return _mul_const(info.shape(acts[0]), _const_shape(consts[0], info))
    if len(acts) < 2 or consts:
        return _cpu(f"{op} with a constant operand")
    shapes = [info.shape(t) for t in acts]
    if any(s is None for s in shapes) or len({s for s in shapes}) != 1:
        return _cpu(f"{op} of tensors with different shapes (broadcasting)")
    return True, f"element-wise {op} (eltwise engine)"


def _const_shape(name: str, info: GraphInfo) -> tuple[int, ...] | None:
    """A constant's shape: the graph's, else its value's (None when neither is known)."""
    shape = info.shape(name)
    if shape is None and info.constants.get(name) is not None:
        shape = tuple(np.shape(info.constants[name]))
    return shape


def _mul_const(x: tuple[int, ...] | None, c: tuple[int, ...] | None) -> Support:
    """A Mul of an activation `x` (NCHW) by a constant of shape `c` as ONNX broadcasts it (shapes aligned on
    the right): the DPU's 1x1 depthwise conv (vai_q_pytorch's DPU op filter, filter_eltwise turns a Mul by a
    constant into one) multiplies each channel by one value, so only one value (a scalar) or one per channel
    (non-1 on C only: shape [C, 1, 1] or [1, C, 1, 1]). [1, 1, 1, C] or [C] broadcasts along W, not C."""
    if c is None:
        return _cpu("Mul by a constant of unknown shape (the DPU's takes one value or one per channel)")
    if len(c) <= 4 and math.prod(c) == 1:
        return True, "Mul by a scalar constant (1x1 depthwise conv, ALU engine)"
    if x is None or len(x) != 4:
        return _cpu(f"Mul by a constant of shape {list(c)} of a tensor of unknown shape (one value per channel?)")
    padded = (1,) * (4 - len(c)) + tuple(c) if len(c) <= 4 else tuple(c)
    if len(padded) == 4 and padded[1] == x[1] and all(padded[i] == 1 for i in (0, 2, 3)):
        return True, "Mul by a per-channel constant (1x1 depthwise conv, ALU engine)"
    axes = [a for a, n in zip("NCHW", padded[-4:]) if n != 1] if len(padded) == 4 else []
    along = f" broadcasts along {', '.join(axes)} of the {list(x)} input" if axes else " changes the tensor's rank"
    return _cpu(
        f"Mul by a constant of shape {list(c)}: ONNX{along} (NCHW); the DPU's Mul by a constant is a 1x1 depthwise "
        "conv, one value or one per channel (shape [C, 1, 1] or [1, C, 1, 1])"
    )


def resize_support(node: Any, info: GraphInfo, cfg: DpuConfig | None = None) -> Support:
    """A Resize / Upsample node's rule (shapes of its input and output, which of its inputs are constants and
    the model's opset in `info`)."""
    return _resize(node, info, cfg)


def _resize_factor(node: Any, info: GraphInfo) -> tuple[str, str | None]:
    """("scales" or "sizes", the input that gives them; None for Upsample-7's scales attribute)."""
    if node.op_type == "Upsample" and len(node.input) < 2:
        return "scales", None
    if node.op_type == "Upsample" or 0 < info.opset < 11:
        return "scales", node.input[1] if len(node.input) > 1 else ""
    if len(node.input) > 3 and node.input[3]:
        return "sizes", node.input[3]
    return "scales", node.input[2] if len(node.input) > 2 else ""


def _resize(node: Any, info: GraphInfo, cfg: DpuConfig | None = None) -> Support:
    mode = attr(node, "mode", "nearest")
    ctm = resize_mapping(node, info.opset)
    if ctm == "align_corners":
        return _cpu("Resize with align_corners")
    x, y = info.shape(node.input[0]), info.shape(node.output[0])
    what, given = _resize_factor(node, info)
    if given is not None and info.constants.get(given) is None:
        return _cpu(
            f"{node.op_type} whose {what} are not a constant (an initializer or Constant node): the DPU's "
            "upsample is by a scale fixed when the model is compiled"
        )
    by_sizes = what == "sizes"
    if by_sizes:  # the DPU's upsample is by whole numbers: sizes must be whole multiples of the input's H and W
        if x is None or y is None or len(x) != 4 or len(y) != 4:
            return _cpu("Resize by sizes of a tensor of unknown shape (the DPU resizes by a whole number)")
        if x[:2] != y[:2] or y[2] % x[2] or y[3] % x[3]:
            return _cpu(
                f"Resize by sizes {list(y)} of a {list(x)} input: not a whole multiple of its H and W (the DPU "
                "resizes by a whole number, N and C unchanged)"
            )
    if mode == "nearest":
        return _nearest(node, info, cfg, x, y)
    if mode != "linear":
        return _cpu(f"Resize mode {mode!r} (only nearest, or bilinear at scale 2/4/8)")
    if ctm not in RESIZE_LINEAR_SCALES:
        return _cpu(
            f"bilinear Resize with coordinate_transformation_mode {ctm!r} (the DPU's: "
            f"{', '.join(RESIZE_LINEAR_SCALES)})"
        )
    if x is None or y is None or len(x) != 4 or len(y) != 4:
        return _cpu("bilinear Resize with an unknown scale")
    sh, sw = y[2] / x[2], y[3] / x[3]
    scales = RESIZE_LINEAR_SCALES[ctm]
    if sh != sw or sh not in scales:
        allowed = ", ".join(map(str, scales))
        return _cpu(f"bilinear Resize at scale {sh:g}x{sw:g} (only {allowed} with {ctm}, the same on H and W)")
    if cfg is not None and x[1] > max_alu_channels(cfg):
        return _cpu(
            f"bilinear Resize of {x[1]} channels exceeds 256 x ICP = {max_alu_channels(cfg)} (the ALU engine's, "
            "which runs it as a transposed depthwise conv)"
        )
    return True, f"Resize bilinear x{int(sh)} (transposed depthwise conv, ALU engine)"


def _nearest(
    node: Any, info: GraphInfo, cfg: DpuConfig | None, x: tuple[int, ...] | None, y: tuple[int, ...] | None
) -> Support:
    """A nearest Resize / Upsample as the DPU's upsample takes it: vai_q_pytorch's DPU op filter
    (filter_upsample) refuses align_corners and more than 256 x ICP channels (the load engine's, which runs
    it); the XIR upsample-fix it becomes repeats each pixel a whole number of times (output = input x scale)
    with VART's cpu-runner's floor(x / scale) source pixel. So: whole-number scales on H and W (N and C
    unchanged) and a mapping that takes output pixel x from input pixel floor(x / scale)."""
    if x is None or y is None or len(x) != 4 or len(y) != 4:
        return _cpu("nearest Resize of a tensor of unknown shape (the DPU's upsample is by a whole number)")
    if x[:2] != y[:2] or y[2] % x[2] or y[3] % x[3]:
        sh, sw = y[2] / x[2], y[3] / x[3]
        return _cpu(
            f"nearest Resize at scale {sh:g}x{sw:g} of a {list(x)} input: the DPU's upsample repeats each pixel a "
            "whole number of times along H and W (N and C unchanged)"
        )
    if node.op_type == "Resize" and not 0 < info.opset < 11:
        ctm = resize_mapping(node, info.opset)
        nearest = attr(node, "nearest_mode", "round_prefer_floor")
        if (ctm, nearest) not in FLOOR_MAPPINGS:
            return _cpu(
                f"nearest Resize with coordinate_transformation_mode {ctm!r} and nearest_mode {nearest!r}: the "
                "DPU's upsample takes output pixel x from input pixel floor(x / scale)"
            )
    if cfg is not None and x[1] > max_conv_channels(cfg):
        return _cpu(
            f"nearest Resize of {x[1]} channels exceeds 256 x ICP = {max_conv_channels(cfg)} (the load engine's)"
        )
    return True, f"Resize nearest x{y[2] // x[2]}x{y[3] // x[3]} (upsample)"


def _concat(node: Any, info: GraphInfo) -> Support:
    axis = int(attr(node, "axis", 1))
    rank = len(info.shape(node.output[0]) or (0, 0, 0, 0))
    if axis % max(rank, 1) == 1:
        return True, "channel concat"
    if all(info.on_dpu(t) for t in info.activations(node)):
        return True, f"concat on axis {axis} (every producer on the DPU)"
    return _cpu(f"concat on axis {axis} with a producer on the CPU (only channel concat then)")


def pad_inputs(node: Any, info: GraphInfo) -> tuple[str, list[int], float, list[int] | None] | str:
    """A Pad's (mode, pads, value, axes) as the ONNX spec reads them at the model's opset (`dpu_ops.pad_args`:
    Pad-2's attributes; from Pad-11 on its inputs, which must be constants here), or why they are not known."""
    return pad_args(info.opset, lambda name, default: attr(node, name, default), node.input, info.constants.get)


def _pad(node: Any, info: GraphInfo, cfg: DpuConfig) -> Support:
    """vai_q_pytorch's DPU op filter (filter_pad): XIR's CONSTANT or SYMMETRIC mode, C <= 256 x the load
    engine's channel_parallel (check_load_jump_write; VART's target factory sets it to ICP); VART's cpu-runner
    pad-fix: H and W only, a constant pad of int8 0, or SYMMETRIC, which is ONNX 'edge' for pads of 0 or 1
    (dpu_ops.pad_hw)."""
    read = pad_inputs(node, info)
    if isinstance(read, str):
        return _cpu(read)
    hw = pad_hw(*read)
    if isinstance(hw, str):
        return _cpu(hw)
    x = info.shape(node.input[0])
    if x is not None and len(x) == 4 and x[1] > max_alu_channels(cfg):
        return _cpu(f"Pad of {x[1]} channels: over the load engine's 256 x ICP = {max_alu_channels(cfg)}")
    if pad_xir_mode(read[0]) == "SYMMETRIC":
        return True, f"Pad of the edge pixel (top, left, bottom, right {list(hw)}: the load engine's SYMMETRIC pad-fix)"
    return True, f"Pad of 0 (top, left, bottom, right {list(hw)}: the load engine's pad-fix)"


def _depth_to_space(node: Any, info: GraphInfo) -> Support:
    """A DepthToSpace as XIR's pixel-shuffle(-fix) with upscale: mode CRD only (`dpu_ops.pixel_shuffle_refusal`;
    vai_q_pytorch's DPU op filter has no filter of its own for a pixel shuffle, and sees only PyTorch's)."""
    reason = pixel_shuffle_refusal(depth_to_space_mode(attr(node, "mode"), info.opset))
    if reason is not None:
        return _cpu(reason)
    return True, "DepthToSpace (pixel shuffle)"


def activation_support(
    node: Any, engine: str, cfg: DpuConfig, info: GraphInfo | None = None, ip: str = DEFAULT_IP
) -> Support:
    """Can `node` (an activation) be fused after an op of `engine` ("conv", "alu", "eltwise"; a bilinear
    resize's transposed depthwise conv, a depthwise ConvTranspose or an XIR op without a nonlinear attribute,
    UNFUSED_OPS, fuse none) on DPUCZDX8G IP version `ip`? Where the version's targets list the engine's nonlinear
    types themselves (IpLimits.fused: IP v3.x's dwconv engine, relu and relu_six; its pool engine, relu) only those
    fuse."""
    op = node.op_type
    lim = ip_limits(ip)
    allowed = lim.fused.get(engine)
    kind = _nonlinear_type(node, info)
    # kind None: an activation the DPU fuses after no engine, refused below as at IP v4 (after a pool: here)
    if allowed is not None and kind not in allowed and (kind is not None or engine in UNFUSED_OPS):
        what, name = ("a depthwise conv", lim.dw_engine) if engine == ALU_ENGINE else ("a pool", lim.pool_engine)
        return _cpu(
            f"{_nonlinear_label(node, info)} after {what} on DPUCZDX8G IP v{ip}: its {name} fuses "
            f"{' and '.join(sorted(allowed))} only (the nonlinear_type of its DPUCZDX8G_ISA0 targets)"
        )
    if engine == ELTWISE_ENGINE:
        return _eltwise_activation(node, info)
    if engine == TRANSPOSED_DW_ENGINE:
        return _cpu(
            f"{op} after a depthwise ConvTranspose: the DPU's transposed depthwise conv fuses no activation "
            "(vai_q_pytorch's DPU op filter lists none for it)"
        )
    if engine == LINEAR_RESIZE_ENGINE:
        return _cpu(
            f"{op} after a bilinear Resize: the compiler runs that as a transposed depthwise conv with no "
            "activation fused (vai_q_pytorch's DPU op filter)"
        )
    if engine in UNFUSED_OPS and allowed is None:
        return _cpu(
            f"{op} after {UNFUSED_OPS[engine]}: the DPU fuses no activation into it (XIR's {engine} has no "
            "nonlinear attribute; only the conv ops and eltwise-fix have one)"
        )
    acts = cfg.conv_activations if engine == CONV_ENGINE else cfg.alu_activations
    if op == "Relu":
        return True, "ReLU (fused)"
    if op == "LeakyRelu":
        alpha = float(attr(node, "alpha", 0.01))
        if np.float32(alpha) != np.float32(LEAKY_SLOPE):
            return _cpu(f"LeakyRelu slope {alpha:g}: the DPU's slope is 26/256 = {LEAKY_SLOPE}")
        if not acts.leaky:
            setting = "conv_activations" if engine == CONV_ENGINE else "alu_activations"
            return _cpu(f"LeakyRelu after the {engine} engine: the DPU is built without it ({setting} = {acts.value})")
        return True, "LeakyReLU 26/256 (fused)"
    if op == "Clip":
        lo, hi = _clip_bounds(node, info)
        if lo == 0.0 and hi == 6.0:
            return True, "ReLU6 (fused)"
        if lo == 0.0 and (hi is None or math.isinf(hi)):
            return True, "ReLU (fused)"
        return _cpu(f"Clip({lo}, {hi}) is neither ReLU nor ReLU6")
    if op in HARD_ACTIVATION_OPS:
        return _cpu(f"{op} after the {engine} engine: {NOT_FUSED}")
    return _cpu(f"{op} is not an activation the DPU fuses")


def _nonlinear_type(node: Any, info: GraphInfo | None) -> str | None:
    """The VART target nonlinear_type an activation is ("relu", "relu_six", "leaky_relu"), or None where it is
    none the DPU fuses (a LeakyRelu of another slope, a Clip that is neither, another op)."""
    op = node.op_type
    if op == "Relu":
        return "relu"
    if op == "LeakyRelu":
        return "leaky_relu" if np.float32(attr(node, "alpha", 0.01)) == np.float32(LEAKY_SLOPE) else None
    if op == "Clip":
        lo, hi = _clip_bounds(node, info)
        if lo == 0.0 and hi == 6.0:
            return "relu_six"
        return "relu" if lo == 0.0 and (hi is None or math.isinf(hi)) else None
    return None


def _nonlinear_label(node: Any, info: GraphInfo | None) -> str:
    """How a reason names an activation: its op, a Clip as the ReLU6 it is."""
    return "ReLU6" if node.op_type == "Clip" and _nonlinear_type(node, info) == "relu_six" else node.op_type


# Why a hard activation is not fused (VART's DPUCZDX8G ISA1 target factory, Vitis AI 2.5-3.5).
NOT_FUSED = (
    "the DPU fuses only relu, leaky_relu and relu_six into an op (VART's DPUCZDX8G target factory); a hard "
    "sigmoid is an ALU hsigmoid op of its own and a hard swish an ALU hsigmoid and an eltwise mult, each reading "
    "its input at its own fix point"
)


def check_ip(ip: str) -> str:
    """`ip` if it is a DPUCZDX8G IP version the rules and the performance model know, else ConfigError naming them."""
    if ip not in IP_VERSIONS:
        from dpupose.errors import ConfigError

        raise ConfigError(f"unknown DPUCZDX8G IP version {ip!r}; the performance model knows {', '.join(IP_VERSIONS)}")
    return ip


def ip_limits(ip: str) -> IpLimits:
    """The depthwise conv and pool limits of DPUCZDX8G IP version `ip`'s ISA (IP_LIMITS; ConfigError if unknown)."""
    return IP_LIMITS[IP_VERSIONS[check_ip(ip)]]


def isa0_refusal(what: str, ip: str, mult: bool = False, hsigmoid: bool = False) -> str | None:
    """Why `what` (a hard activation: `hsigmoid`; an element-wise mult: `mult`) is not a DPU op on DPUCZDX8G IP
    version `ip`, or None on IP v4 (ISA1: VART's create_target_DPUCZDX8G_ISA1.cpp gives the ALU engine hsigmoid and
    the eltwise engine add and mult). IP v3.x's targets (ISA0, DPUCZDX8G_ISA0_*.prototxt) have no hsigmoid op and an
    eltwise engine that adds only."""
    if IP_VERSIONS[check_ip(ip)] == 1:
        return None
    lacks = [
        *(["no hsigmoid op (its pool and dwconv engines have none)"] if hsigmoid else []),
        *(["an eltwise engine that adds only (elew_type add, no mult)"] if mult else []),
    ]
    return f"{what} on DPUCZDX8G IP v{ip}: its VART targets (DPUCZDX8G_ISA0_*) have {' and '.join(lacks)}"


def hard_activation_support(node: Any, ip: str = DEFAULT_IP) -> Support:
    """A HardSigmoid / HardSwish as a DPU op of its own (ALU hsigmoid; a hard swish adds an eltwise mult) on
    DPUCZDX8G IP version `ip` (IP v3.x has neither: `isa0_refusal`)."""
    swish = node.op_type == "HardSwish"
    why = isa0_refusal(node.op_type, ip, mult=swish, hsigmoid=True)
    if why is not None:
        return _cpu(why)
    if swish:
        return True, "hard swish x * hsigmoid(x) (ALU engine hsigmoid + eltwise engine mult)"
    alpha, beta = float(attr(node, "alpha", 0.2)), float(attr(node, "beta", 0.5))
    if not is_hard_sigmoid(alpha, beta):
        return _cpu(f"HardSigmoid(alpha={alpha:g}, beta={beta:g}) is not the DPU's hsigmoid relu6(x + 3) / 6")
    return True, "hard sigmoid relu6(x + 3) / 6 (ALU engine hsigmoid)"


def _eltwise_activation(node: Any, info: GraphInfo | None) -> Support:
    op = node.op_type
    if op == "Relu":
        return True, "ReLU (fused)"
    if op == "Clip":
        lo, hi = _clip_bounds(node, info)
        if lo == 0.0 and (hi is None or math.isinf(hi)):
            return True, "ReLU (fused)"
        what = "ReLU6" if lo == 0.0 and hi == 6.0 else f"Clip({lo}, {hi})"
    else:
        what = op
    return _cpu(f"{what} after an element-wise op: the DPU's eltwise engine fuses ReLU only")


def _clip_bounds(node: Any, info: GraphInfo | None) -> tuple[float | None, float | None]:
    lo, hi = attr(node, "min"), attr(node, "max")
    consts = info.constants if info is not None else {}
    for i, key in ((1, "lo"), (2, "hi")):
        if len(node.input) > i and node.input[i]:
            v = consts.get(node.input[i])
            value = float(np.asarray(v).reshape(-1)[0]) if v is not None else None
            if key == "lo":
                lo = value
            else:
                hi = value
    return (float(lo) if lo is not None else None), (float(hi) if hi is not None else None)


def engine_of(node: Any, info: GraphInfo, cfg: DpuConfig | None = None) -> str:
    """The DPU engine an op runs on (its fused activation must be built into that engine), or for an op whose
    XIR op fuses no activation, that XIR op (UNFUSED_OPS). A Mul by a constant is the ALU engine's 1x1
    depthwise conv up to 256 x ICP channels of `cfg`; over that vai_q_pytorch's DPU op filter (filter_eltwise)
    falls back to the eltwise engine's mult, whose only activation is ReLU."""
    if node.op_type == "Conv" and int(attr(node, "group", 1)) > 1:
        return ALU_ENGINE  # a depthwise conv (a grouped one that is not depthwise: CPU)
    if node.op_type == "ConvTranspose" and int(attr(node, "group", 1)) > 1:
        return TRANSPOSED_DW_ENGINE  # the ALU engine's transposed depthwise conv: no activation fused
    if node.op_type == "HardSwish":
        return ELTWISE_ENGINE  # its last op is the eltwise mult x * hsigmoid(x)
    if node.op_type in ("Resize", "Upsample"):
        return LINEAR_RESIZE_ENGINE if attr(node, "mode", "nearest") == "linear" else "upsample-fix"
    if node.op_type in POOL_OPS:
        return "pool-fix"
    if node.op_type == "Concat":
        return "concat-fix"
    if node.op_type == "DepthToSpace":
        return "pixel-shuffle-fix"
    if node.op_type in LAYOUT_OPS:
        return "reshape-fix"
    if node.op_type == "Pad":
        return "pad-fix"
    if node.op_type in ("Add", "Mul") and len(info.activations(node)) >= 2:
        return ELTWISE_ENGINE  # a Mul by a constant is a 1x1 depthwise conv: ALU
    if node.op_type == "Mul" and cfg is not None:
        x = info.shape(info.activations(node)[0]) if info.activations(node) else None
        if x is not None and len(x) == 4 and x[1] > max_alu_channels(cfg):
            return ELTWISE_ENGINE  # the 1x1 depthwise conv's channel check fails: the eltwise mult
    if node.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
        return CONV_ENGINE
    return ALU_ENGINE


def dpu_support(node: Any, info: GraphInfo, cfg: DpuConfig, ip: str = DEFAULT_IP) -> Support:
    """(True, what the DPU does with it) or (False, why it runs on the CPU) for one ONNX node under `cfg`, on
    DPUCZDX8G IP version `ip` (the split's is IP v4, every shipped configuration's; dpu estimate's walk asks at
    its own: IP v3.x runs no hard activation and no element-wise mult, `isa0_refusal`)."""
    op = node.op_type
    if node.domain not in ("", "ai.onnx"):
        return _cpu(f"{node.domain}::{op} is a custom operator")
    if op in ("Gemm", "MatMul"):
        return _fc(node, info)
    if op in LAYOUT_OPS:
        acts = info.activations(node)
        if not (acts and all(info.on_dpu(t) for t in acts)):
            return _cpu(f"{op} of a tensor the DPU does not produce")
        x, y = info.shape(acts[0]), info.shape(node.output[0])
        if x is not None and y is not None and x[:1] == (info.batch,) and layout_moves_batch(y, info.batch):
            return _cpu(
                f"{op} of {list(x)} to {list(y)} (batch {info.batch}) moves the batch axis from the front: an "
                "image's values would not be its own, and the DPU runs a layout op on each image"
            )
        return True, f"{op} of a DPU tensor (layout only)"
    if op in PASS_THROUGH_OPS:
        return True, f"{op} (no-op)"
    if op == "Softmax":
        # The compiler's DPUCZDX8G target (VART's target factory) has no softmax engine, whatever the
        # configuration: the xmodel keeps Softmax in a CPU subgraph. The separate softmax kernel is
        # driven by the Vitis AI Library's softmax call, not by an xmodel's DPU subgraph.
        kernel = "; its softmax kernel (softmax = true) is called by the Vitis AI Library" if cfg.softmax else ""
        return _cpu(f"Softmax: the DPU compiler leaves it to the CPU (no softmax engine in the DPU){kernel}")
    reason = _four_d(node, info)
    if reason is not None:
        return _cpu(reason)
    if op in ("Conv", "ConvTranspose"):
        return _conv(node, info, cfg, ip)
    if op in POOL_OPS:
        return _pool(node, info, ip)
    if op in ("Add", "Mul"):
        ok, why = _eltwise(node, info)
        if ok and node.op_type == "Mul" and engine_of(node, info, cfg) == ELTWISE_ENGINE:
            acts = info.activations(node)
            x = info.shape(acts[0])
            what = (
                "an element-wise Mul of two activations"
                if len(acts) > 1
                else f"a Mul by a constant of {x[1] if x else '?'} channels (over 256 x ICP = "
                f"{max_alu_channels(cfg)}: the eltwise mult, not a 1x1 depthwise conv)"
            )
            refused = isa0_refusal(what, ip, mult=True)
            if refused is not None:
                return _cpu(refused)
        return ok, why
    if op in ("Resize", "Upsample"):
        return _resize(node, info, cfg)
    if op == "Concat":
        return _concat(node, info)
    if op == "Pad":
        return _pad(node, info, cfg)
    if op == "DepthToSpace":
        if not cfg.depth_to_space_on_dpu:
            return _cpu("DepthToSpace: the DPU keeps pixel shuffle on the CPU (depth_to_space_on_dpu = false)")
        return _depth_to_space(node, info)
    if op == "BatchNormalization":
        return _batch_norm(node, info, cfg)
    if op in HARD_ACTIVATION_OPS:
        return hard_activation_support(node, ip)
    if op in FUSED_ACTIVATION_OPS:
        return _cpu(
            f"standalone {op}: the DPU fuses activations into the conv, depthwise conv or element-wise op before them"
        )
    if op in ("QuantizeLinear", "DequantizeLinear"):
        return True, f"{op} (follows the op it quantizes)"
    return _cpu(f"{op} is not a DPU operator")
