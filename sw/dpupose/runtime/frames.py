"""What flows through the runtime: a frame from a source, and the result for one frame (board-safe)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# The moving FPS (sinks.FpsMeter: drawn on the frames, printed, run.json's recent_fps): over the last
# FPS_WINDOW frames, or the last FPS_HORIZON_S seconds where those took longer. FPS_WINDOW_TEXT says so.
FPS_WINDOW = 30
FPS_HORIZON_S = 5.0
FPS_WINDOW_TEXT = f"the last {FPS_WINDOW} frames, or the last {FPS_HORIZON_S:g} s where those took longer"


@dataclass
class Frame:
    index: int  # position in the source (frame number of a video, file order of a folder)
    image: np.ndarray  # uint8 BGR (H, W, 3), as OpenCV reads it
    source: str  # file name, or "camera:N"


@dataclass
class FrameResult:
    index: int
    source: str
    keypoints: np.ndarray  # (16, 2) float32, frame pixels (OpenCV coordinates: pixel j's centre at j)
    confidence: np.ndarray  # (16,) float32 in [0, 1]: heatmap mass around its mode (NaN without heatmaps)
    coords: np.ndarray  # (16, 2) normalized coordinates in the letterboxed input (as decoded)
    timings: dict[str, float] = field(default_factory=dict)  # stage -> seconds spent on this frame
    image: np.ndarray | None = None  # the frame (BGR), for drawing

    def to_json(self) -> dict[str, Any]:
        """One JSON-lines record (no image); joints in dpupose.data.joints.JOINT_NAMES order."""
        return {
            "frame": self.index,
            "source": self.source,
            "keypoints": [[round(float(x), 2), round(float(y), 2)] for x, y in self.keypoints],
            "confidence": [None if np.isnan(c) else round(float(c), 4) for c in self.confidence],
            "timings_ms": {k: round(v * 1e3, 3) for k, v in self.timings.items()},
        }
