"""Loading the checkpoint to quantize: the model package's loader when present, else a defensive local one.

A checkpoint is a torch.save dict with `model` (PoseNet state_dict) and `model_config` (ModelConfig
fields), plus training state. Truncated or foreign files and state dicts of another shape give a
CheckpointError that says what is wrong.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from dpupose.errors import CheckpointError


def load_pose_checkpoint(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """(PoseNet in eval mode, the checkpoint dict)."""
    if importlib.util.find_spec("dpupose.model.checkpoint") is not None:
        from dpupose.model.checkpoint import load_checkpoint

        return load_checkpoint(path)
    return _load_local(Path(path))


def _load_local(path: Path) -> tuple[Any, dict[str, Any]]:
    import torch

    from dpupose.model.pose import ModelConfig, PoseNet

    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, a pickle from another program, random bytes
        raise CheckpointError(
            f"{path} is not a readable checkpoint ({type(exc).__name__}); it may be truncated or from "
            "another program: use a checkpoint written by `dpupose train`"
        ) from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path} is not a dpupose checkpoint (no 'model' state dict)")
    try:
        cfg = ModelConfig(**state.get("model_config", {}))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: bad model_config ({exc})") from None
    model = PoseNet(cfg)
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, TypeError, AttributeError) as exc:
        lines = str(exc).strip().splitlines()
        detail = lines[1].strip() if len(lines) > 1 else lines[0]
        raise CheckpointError(f"{path} does not match the model ({detail})") from None
    return model.eval(), state
