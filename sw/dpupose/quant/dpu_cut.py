"""The DPU part cut where a split plan's DPU subgraph ends, for vai_q_pytorch and vai_c_xir.

`dpupose split --optimize` may end the DPU subgraph before the DPU part's last layer (the shipped plan
runs the last pixel shuffle and the head on the CPU). An xmodel compiled from the whole DPU part then does
not match the plan. This module cuts the torch DPU part at the same tensor: `dpu_layers` lists its layers
in execution order (nested nn.Sequential flattened; a MobileNetV2 block, whose residual add needs its
input, stays whole), `cut_index` finds how many of them compute a given tensor of the quantizer's graph
(host side, torch.fx), and `split_layers` makes the two halves: `DpuPart` (image -> that tensor, what
vai_q quantizes and exports) and the float rest (that tensor -> logits, used only to compare coordinates).

`dpu_layers` and `split_layers` run inside the Vitis AI docker image: Python 3.7 syntax and torch only.
"""

from __future__ import annotations

from torch import nn

from dpupose.errors import QuantizationError, UsageError

# Layers the quantizer folds into the convolution or add before them (see quant/fuse.py).
_FOLDED = (nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.LeakyReLU)

# The top-level pieces of model.pose.DpuPart in the order its forward() runs them.
_PIECES = ("backbone.features", "reduce", "decoder", "head")


def _flatten(prefix: str, module: nn.Module) -> list:
    if isinstance(module, nn.Sequential):
        out = []
        for name, child in module.named_children():
            out.extend(_flatten(prefix + "." + name, child))
        return out
    return [(prefix, module)]


def dpu_layers(dpu_part: nn.Module) -> list:
    """[(module path, module)] of the DPU part in execution order; their composition is dpu_part."""
    out = []
    for piece in _PIECES:
        module = dpu_part
        for attr in piece.split("."):
            module = getattr(module, attr)
        out.extend(_flatten(piece, module))
    return out


class DpuPart(nn.Module):
    """The first `cut` layers of a DPU part (vai_q names its xmodel after this class: DpuPart_int.xmodel)."""

    def __init__(self, layers: list) -> None:
        super().__init__()
        self.layers = nn.Sequential(*[m for _, m in layers])

    def forward(self, x):
        return self.layers(x)


def split_layers(dpu_part: nn.Module, cut: int) -> tuple:
    """(head: image -> the cut tensor, rest: the cut tensor -> logits) for 0 < cut <= len(dpu_layers)."""
    layers = dpu_layers(dpu_part)
    if not 0 < cut <= len(layers):
        raise QuantizationError(f"cut {cut} is outside the DPU part's {len(layers)} layers")
    return DpuPart(layers[:cut]).eval(), nn.Sequential(*[m for _, m in layers[cut:]]).eval()


def cut_index(dpu_part: nn.Module, tensor: str, input_size: int) -> int:
    """How many of `dpu_layers(dpu_part)` compute `tensor` (a name in the quantizer's graph: a module path
    such as decoder.2.0, or logits). UsageError when no cut between layers ends exactly there."""
    from dpupose.quant.fuse import build_qgraph
    from dpupose.quant.ir import OUTPUT_NAME

    layers = dpu_layers(dpu_part)
    if tensor == OUTPUT_NAME:
        return len(layers)
    names = [op.name for op in build_qgraph(dpu_part, (3, input_size, input_size)).ops]
    if tensor not in names:
        raise UsageError(
            f"the plan's DPU subgraph ends at tensor {tensor!r}, which this checkpoint's DPU part does not "
            "compute: quantize and split this checkpoint, then compile with that plan"
        )

    def owner(name: str) -> int | None:
        return next((i for i, (path, _) in enumerate(layers) if name == path or name.startswith(path + ".")), None)

    i = owner(tensor)
    if i is None:
        raise UsageError(f"tensor {tensor!r} belongs to no layer of the DPU part; split without --optimize")
    own = [n for n in names if owner(n) == i]
    if own[-1] != tensor:
        raise UsageError(
            f"the plan's DPU subgraph ends at {tensor!r}, inside {layers[i][0]} (whose output is {own[-1]!r}); "
            "vai_q compiles a DPU part that ends between layers: split with --cpu-from at a layer boundary, "
            "or without --optimize"
        )
    k = i + 1
    while k < len(layers) and isinstance(layers[k][1], _FOLDED):  # they fold into the op before them
        k += 1
    return k
