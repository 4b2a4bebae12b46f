"""The pose network, built as the two parts the split runtime runs on different devices.

`dpu_part`: image (N, 3, S, S) -> heatmap logits (N, 16, S/4, S/4); convs, depthwise convs, BN, ReLU(6),
add and pixel shuffle only, so the DPU can run all of it.
`cpu_part`: logits -> (coords (N, 16, 2) in (-1, 1), heatmaps (N, 16, S/4, S/4)); flat softmax + DSNT,
kept in float on the CPU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from torch import Tensor, nn

from dpupose.model.dsnt import dsnt, flat_softmax
from dpupose.model.mobilenetv2 import MobileNetV2Features

NUM_JOINTS = 16
# The largest input side and width multiplier a model may have: those `dpupose train` takes (--input-size,
# --width). A checkpoint's model_config is held to them too, as a larger value only builds a network no machine
# can hold (a width of 1e6 asked for petabytes) or crops no machine can allocate.
MAX_INPUT_SIZE = 2048
MAX_WIDTH_MULT = 4.0


def input_size_problem(size: int) -> str | None:
    """What is wrong with an input size for this network (the backbone halves it five times, so a multiple
    of 32 up to MAX_INPUT_SIZE), with the nearest sizes that work; None if it is fine."""
    if 32 <= size <= MAX_INPUT_SIZE and size % 32 == 0:
        return None
    if size > MAX_INPUT_SIZE:
        return f"must be at most {MAX_INPUT_SIZE}, got {size}"
    below, above = size // 32 * 32, (size // 32 + 1) * 32
    near = " or ".join(str(n) for n in (below, above) if 32 <= n <= MAX_INPUT_SIZE)
    return f"must be a multiple of 32 (the network's stride), got {size}: use {near}"


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the network; stored in every checkpoint."""

    input_size: int = 224  # square input, pixels; a multiple of 32
    width_mult: float = 1.0  # MobileNetV2 width multiplier
    num_joints: int = NUM_JOINTS
    decoder_channels: int = 256  # channels after the 1x1 reduction conv
    duc_blocks: int = 3  # each doubles the resolution: stride 32 -> 4

    def __post_init__(self) -> None:
        for name in ("input_size", "num_joints", "decoder_channels", "duc_blocks"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        # A tuple, not int | float: this also runs in the Vitis AI image's Python 3.7 (quant/vai_q.py).
        # `not 0 < w <= MAX` also refuses NaN and infinity (which ended in int(nan) and int(inf) tracebacks).
        w = self.width_mult
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 < w <= MAX_WIDTH_MULT:
            raise ValueError(f"width_mult must be a positive number of at most {MAX_WIDTH_MULT:g}, got {w!r}")
        problem = input_size_problem(self.input_size)
        if problem:  # the rule and the sizes to use, as train's and zoo export's --input-size say them
            raise ValueError(f"input_size {problem}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def unknown_fields(cls, config: dict) -> list[str]:
        """The keys of a stored model_config (a checkpoint's, a quantize summary's) that are no field of this
        version's ModelConfig, sorted: fields a newer dpupose added, refused as such rather than as a
        damaged file."""
        return sorted(str(k) for k in set(config) - {f.name for f in fields(cls)})


class DUC(nn.Sequential):
    """Dense upsampling convolution: 3x3 conv to 4*cout channels, BN, ReLU, PixelShuffle(2)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cout * 4, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout * 4),
            nn.ReLU(inplace=True),
            nn.PixelShuffle(2),
        )


class DpuPart(nn.Module):
    """Image -> heatmap logits. Input is ImageNet-normalized float (see dpupose.data.transforms)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.backbone = MobileNetV2Features(cfg.width_mult)
        c = cfg.decoder_channels
        self.reduce = nn.Sequential(
            nn.Conv2d(self.backbone.out_channels, c, 1, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(inplace=True),
        )
        blocks = []
        for _ in range(cfg.duc_blocks):
            blocks.append(DUC(c, c // 2))
            c //= 2
        self.decoder = nn.Sequential(*blocks)
        self.head = nn.Conv2d(c, cfg.num_joints, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.decoder(self.reduce(self.backbone(x))))


class CpuPart(nn.Module):
    """Heatmap logits -> (normalized coords, heatmaps)."""

    def forward(self, logits: Tensor) -> tuple[Tensor, Tensor]:
        heatmaps = flat_softmax(logits)
        return dsnt(heatmaps), heatmaps


class PoseNet(nn.Module):
    def __init__(self, cfg: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = cfg or ModelConfig()
        self.dpu_part = DpuPart(self.config)
        self.cpu_part = CpuPart()

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.cpu_part(self.dpu_part(x))


def build_model(cfg: ModelConfig | None = None) -> PoseNet:
    return PoseNet(cfg)
