"""The pose model (host only, needs torch): MobileNetV2 backbone, DUC decoder, DSNT head, losses."""

from dpupose.model.pose import CpuPart, DpuPart, PoseNet, build_model

__all__ = ["CpuPart", "DpuPart", "PoseNet", "build_model"]
