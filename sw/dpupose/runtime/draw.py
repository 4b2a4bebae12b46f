"""Drawing skeletons and FPS on frames (board-safe: numpy + OpenCV)."""

from __future__ import annotations

import cv2
import numpy as np

from dpupose.data.joints import SKELETON

# BGR colours by side of the body (OpenCV frames are BGR).
SIDE_COLOURS = {"r": (60, 60, 230), "l": (230, 120, 40), "c": (60, 200, 60)}


def draw_skeleton(
    frame_bgr: np.ndarray,
    keypoints: np.ndarray,
    confidence: np.ndarray | None = None,
    min_confidence: float = 0.0,
    thickness: int | None = None,
) -> np.ndarray:
    """Draw bones and joints (keypoints (16, 2) in frame pixels) onto frame_bgr in place; returns it.

    Joints whose confidence is below min_confidence are skipped with their bones.
    """
    h, w = frame_bgr.shape[:2]
    t = thickness or max(1, round(max(h, w) / 200))
    ok = np.ones(len(keypoints), bool) if confidence is None else np.asarray(confidence) >= min_confidence
    pts = [tuple(int(round(v)) for v in p) for p in np.asarray(keypoints, np.float64)]
    for a, b, side in SKELETON:
        if ok[a] and ok[b]:
            cv2.line(frame_bgr, pts[a], pts[b], SIDE_COLOURS[side], t, cv2.LINE_AA)
    for i, p in enumerate(pts):
        if ok[i]:
            cv2.circle(frame_bgr, p, t + 1, (255, 255, 255), -1, cv2.LINE_AA)
    return frame_bgr


def draw_label(frame_bgr: np.ndarray, text: str, row: int = 0) -> np.ndarray:
    """A readable text label (e.g. FPS) in the top-left corner."""
    scale = max(0.4, frame_bgr.shape[1] / 640 * 0.6)
    y = int((row + 1) * 22 * scale / 0.6)
    cv2.putText(frame_bgr, text, (8, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(frame_bgr, text, (8, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return frame_bgr
