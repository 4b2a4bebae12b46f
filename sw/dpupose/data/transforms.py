"""Crops, augmentation and normalization (numpy + OpenCV; board-safe).

Coordinates: OpenCV pixel coordinates (pixel j's centre at x = j). In an S-pixel crop a point x maps to the
normalized DSNT coordinate (2x + 1) / S - 1, so pixel centres of the S/4 heatmap land on the DSNT grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from dpupose.data.joints import flip_permutation

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)  # RGB
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
CROP_PADDING = 1.25  # crop side = 200 px * scale * CROP_PADDING (person height plus margin)


@dataclass(frozen=True)
class Augment:
    """Random augmentation ranges used in training."""

    scale: float = 0.25  # crop side multiplied by 2**U(-scale, scale)
    rotation_deg: float = 30.0  # N(0, r/2) clipped to +-r, applied to 60% of samples
    shift: float = 0.08  # fraction of the crop side
    flip: bool = True
    colour: float = 0.3  # brightness / contrast / saturation jitter


def to_normalized(xy: np.ndarray, size: int) -> np.ndarray:
    return (2.0 * xy + 1.0) / size - 1.0


def from_normalized(xy: np.ndarray, size: int) -> np.ndarray:
    return ((np.asarray(xy, np.float32) + 1.0) * size - 1.0) / 2.0


def crop_matrix(
    center: np.ndarray, side: float, size: int, rotation_deg: float = 0.0, shift: np.ndarray | None = None
) -> np.ndarray:
    """2x3 affine taking image pixels to an S x S crop of a `side`-pixel square around `center`."""
    s = size / side
    a = np.deg2rad(rotation_deg)
    c, si = np.cos(a) * s, np.sin(a) * s
    centre = np.asarray(center, np.float64) + (np.zeros(2) if shift is None else shift)
    half = (size - 1) / 2.0
    return np.array(
        [
            [c, si, half - c * centre[0] - si * centre[1]],
            [-si, c, half + si * centre[0] - c * centre[1]],
        ],
        dtype=np.float64,
    )


def apply_affine(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return (np.asarray(pts, np.float64) @ m[:, :2].T + m[:, 2]).astype(np.float32)


def colour_jitter(img: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Brightness, contrast and saturation jitter on a uint8 RGB image."""
    f = img.astype(np.float32)
    grey = f.mean(axis=2, keepdims=True)
    f = grey + (f - grey) * rng.uniform(1 - strength, 1 + strength)  # saturation
    f = (f - f.mean()) * rng.uniform(1 - strength, 1 + strength) + f.mean()  # contrast
    f = f * rng.uniform(1 - strength, 1 + strength)  # brightness
    return np.clip(f, 0, 255).astype(np.uint8)


def normalize(img_rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> float32 (3, H, W), ImageNet mean/std."""
    f = img_rgb.astype(np.float32) / 255.0
    return ((f - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1).copy()


def crop_person(
    image: np.ndarray,
    center: np.ndarray,
    scale: float,
    joints: np.ndarray,
    visible: np.ndarray,
    size: int,
    rng: np.random.Generator | None = None,
    augment: Augment | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Crop one person to S x S, optionally augmented.

    Returns (uint8 RGB crop, joints in crop pixels, visibility (annotated and inside the crop),
    crop pixels per image pixel).
    """
    side = 200.0 * scale * CROP_PADDING
    rot, shift, flip = 0.0, None, False
    if augment is not None and rng is not None:
        side *= 2.0 ** rng.uniform(-augment.scale, augment.scale)
        if rng.random() < 0.6:
            rot = float(np.clip(rng.normal(0, augment.rotation_deg / 2), -augment.rotation_deg, augment.rotation_deg))
        shift = rng.uniform(-augment.shift, augment.shift, 2) * side
        flip = augment.flip and rng.random() < 0.5
    m = crop_matrix(center, side, size, rot, shift)
    crop = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    pts = apply_affine(m, joints)
    vis = visible.copy()
    if flip:
        crop = crop[:, ::-1].copy()
        pts[:, 0] = size - 1 - pts[:, 0]
        perm = flip_permutation()
        pts, vis = pts[perm], vis[perm]
    if augment is not None and rng is not None and augment.colour > 0:
        crop = colour_jitter(crop, rng, augment.colour)
    inside = (pts[:, 0] >= -0.5) & (pts[:, 0] <= size - 0.5) & (pts[:, 1] >= -0.5) & (pts[:, 1] <= size - 0.5)
    return crop, pts, vis & inside, size / side


def resize(image: np.ndarray, size: tuple[int, int], interpolation: int) -> np.ndarray:
    """cv2.resize to `size` (width, height). OpenCV 4.5.4, a PYNQ 3.0.1 board's, refuses to enlarge an image of
    one pixel with more than one channel (an assertion, `_step >= minstep`): every interpolation of one pixel
    is that pixel, so it is repeated."""
    if image.shape[:2] == (1, 1):
        return np.broadcast_to(image, (size[1], size[0], *image.shape[2:])).copy()
    return cv2.resize(image, size, interpolation=interpolation)


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Fit a whole frame into S x S keeping its aspect ratio (black bars).

    Returns (uint8 crop, 2x3 affine from frame pixels to crop pixels).
    """
    h, w = image.shape[:2]
    s = size / max(h, w)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    left, top = (size - nw) // 2, (size - nh) // 2
    resized = resize(image, (nw, nh), cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    out = np.zeros((size, size, *image.shape[2:]), image.dtype)
    out[top : top + nh, left : left + nw] = resized
    # cv2.resize maps pixel centres as x' = (x + 0.5) * sx - 0.5.
    sx, sy = nw / w, nh / h
    m = np.array([[sx, 0.0, 0.5 * sx - 0.5 + left], [0.0, sy, 0.5 * sy - 0.5 + top]])
    return out, m
