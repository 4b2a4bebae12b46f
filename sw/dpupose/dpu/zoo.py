"""Reference networks for calibrating and validating the DPU performance model (host only, torch).

Standard architectures with random weights: the performance model only needs layer shapes, so no
pretrained weights are ever downloaded. `export(name, path, input_size)` writes an FP32 ONNX file
through `dpupose.model.export.export_onnx` (BatchNorm folded into the convolutions).

- ``mobilenet_v2``: the project's `MobileNetV2Features` + global average pool + 1000-way FC
  (Sandler et al. 2018; ~0.30 GMAC at 224x224).
- ``mobilenet_v1``: Howard et al. 2017, width 1.0 (~0.57 GMAC at 224x224).
- ``resnet50``: He et al. 2016, v1.5 layout (stride on the 3x3 conv of each bottleneck, as in
  torchvision and the Vitis AI ``pt_resnet50`` model; ~4.1 GMAC at 224x224).
- ``pose_dpu``: this project's pose network, its DPU part (`dpupose.model.build_model().dpu_part`), for
  performance estimates before a trained model exists (the performance does not depend on the weights).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from dpupose.errors import UsageError
from dpupose.model.export import export_onnx
from dpupose.model.mobilenetv2 import MobileNetV2Features

NUM_CLASSES = 1000


def _conv_bn_relu(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class Classifier(nn.Module):
    """Feature extractor -> global average pool -> fully connected."""

    def __init__(self, features: nn.Module, channels: int, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.features = features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def mobilenet_v2() -> nn.Module:
    features = MobileNetV2Features(1.0)
    return Classifier(features, features.out_channels)


# (output channels, stride) of the 13 depthwise-separable blocks of MobileNetV1.
_MOBILENET_V1_BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)  # fmt: skip


def mobilenet_v1() -> nn.Module:
    layers: list[nn.Module] = [_conv_bn_relu(3, 32, 3, 2)]
    cin = 32
    for cout, stride in _MOBILENET_V1_BLOCKS:
        layers += [_conv_bn_relu(cin, cin, 3, stride, groups=cin), _conv_bn_relu(cin, cout, 1)]
        cin = cout
    return Classifier(nn.Sequential(*layers), cin)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = width * self.expansion
        self.body = nn.Sequential(
            _conv_bn_relu(cin, width, 1),
            _conv_bn_relu(width, width, 3, stride),
            nn.Conv2d(width, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


def resnet50() -> nn.Module:
    layers: list[nn.Module] = [_conv_bn_relu(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for i in range(blocks):
            layers.append(Bottleneck(cin, width, stride if i == 0 else 1))
            cin = width * Bottleneck.expansion
    return Classifier(nn.Sequential(*layers), cin)


NETWORKS = {"mobilenet_v2": mobilenet_v2, "mobilenet_v1": mobilenet_v1, "resnet50": resnet50}
POSE_DPU = "pose_dpu"  # the project's pose model, DPU part (image -> heatmap logits), random weights


def build(name: str, input_size: int = 224) -> nn.Module:
    """The named network with random (seeded) weights, in eval mode."""
    if name not in (*NETWORKS, POSE_DPU):
        raise UsageError(f"unknown network {name!r}; choose one of {', '.join((*NETWORKS, POSE_DPU))}")
    torch.manual_seed(0)
    if name == POSE_DPU:
        from dpupose.model import build_model
        from dpupose.model.pose import ModelConfig

        return build_model(ModelConfig(input_size=input_size)).dpu_part.eval()
    return NETWORKS[name]().eval()


def export(name: str, path: str | Path, input_size: int = 224) -> Path:
    """Export the named network for a (1, 3, input_size, input_size) input to ONNX at `path`."""
    from dpupose.model.pose import input_size_problem

    problem = input_size_problem(input_size)
    if problem:
        raise UsageError(f"--input-size {problem}")
    model = build(name, input_size)
    example = torch.zeros(1, 3, input_size, input_size)
    return export_onnx(model, example, path, input_names=["image"], output_names=["logits"])
