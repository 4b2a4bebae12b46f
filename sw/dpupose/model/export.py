"""ONNX export of torch modules (host only), the one place that calls torch.onnx.export.

The TorchScript exporter (`dynamo=False`) is used: it folds BatchNorm into the preceding conv in eval
mode, maps PixelShuffle to DepthToSpace, and needs no extra packages.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from dpupose.fsio import atomic_path, make_dirs

OPSET = 17


def export_onnx(
    module: nn.Module,
    example_inputs: torch.Tensor | tuple[torch.Tensor, ...],
    path: str | Path,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_batch: bool = False,
) -> Path:
    """Export `module` in eval mode to `path` atomically; returns the path."""
    path = Path(path)
    make_dirs(path.parent)
    was_training = module.training
    module.eval()
    dynamic_axes = None
    if dynamic_batch:
        dynamic_axes = {name: {0: "batch"} for name in (*input_names, *output_names)}
    try:
        # The exporter is given the open file, not its name: its C++ side takes a name only as UTF-8, and a name
        # of other bytes (os.fsdecode's surrogates) failed with a TypeError. Nothing is lost: the file holds the
        # whole model either way (no external data, which needs a name, under the 2 GB ONNX limit).
        with atomic_path(path) as tmp, warnings.catch_warnings(), open(tmp, "wb") as file:
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                module,
                example_inputs,
                file,
                dynamo=False,
                opset_version=OPSET,
                input_names=list(input_names),
                output_names=list(output_names),
                dynamic_axes=dynamic_axes,
                do_constant_folding=True,
            )
    finally:
        module.train(was_training)
    return path
