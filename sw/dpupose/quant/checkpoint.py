"""The checkpoint to quantize (host only): the model package's defensive loader, re-exported."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_pose_checkpoint(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """(PoseNet in eval mode, the checkpoint dict); CheckpointError for truncated, foreign or mismatched
    files."""
    from dpupose.model.checkpoint import load_checkpoint

    return load_checkpoint(path)
