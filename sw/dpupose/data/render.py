"""Rasterising a posed figure into a cluttered scene with OpenCV: textured clothing, a face or hair that
shows which way the person faces, parts drawn far-to-near, distractors, occluders, blur and noise."""

from __future__ import annotations

import cv2
import numpy as np

from dpupose.data.figure import Figure3D
from dpupose.data.joints import J

SKIN_TONES = np.array(
    [[224, 198, 180], [198, 160, 130], [170, 125, 95], [141, 98, 70], [110, 75, 55], [80, 55, 40]],
    dtype=np.float32,
)  # RGB


def random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0, 255, size=3).astype(np.float32)


def skin_colour(rng: np.random.Generator) -> np.ndarray:
    base = SKIN_TONES[rng.integers(len(SKIN_TONES))]
    return np.clip(base + rng.normal(0, 8, 3), 0, 255).astype(np.float32)


def texture(rng: np.random.Generator, height: int, width: int | None = None) -> np.ndarray:
    """A (height, width, 3) float32 texture: flat, stripes, checks or blotches of random colours."""
    width = height if width is None else width
    base = random_colour(rng)
    kind = rng.integers(4)
    img = np.empty((height, width, 3), np.float32)
    img[:] = base
    if kind == 0:
        return img
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    other = random_colour(rng)
    if kind == 1:  # stripes at a random angle and period
        a = rng.uniform(0, np.pi)
        period = rng.uniform(4, 24)
        m = (np.sin((xx * np.cos(a) + yy * np.sin(a)) * 2 * np.pi / period) > 0)[..., None]
    elif kind == 2:  # checks
        period = int(rng.integers(4, 20))
        m = (((xx // period) + (yy // period)) % 2 == 0)[..., None]
    else:  # low-frequency blotches
        small = rng.random((max(2, height // 24), max(2, width // 24))).astype(np.float32)
        m = (cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC) > 0.5)[..., None]
    return np.where(m, other, img).astype(np.float32)


def _fill(canvas: np.ndarray, mask: np.ndarray, tex: np.ndarray, shade: float = 1.0) -> None:
    """Paint `tex` (canvas-sized) where mask is set."""
    sel = mask > 0
    canvas[sel] = tex[sel] * shade


def fill_new_texture(canvas: np.ndarray, mask: np.ndarray, rng: np.random.Generator, shade: float = 1.0) -> None:
    """Paint a fresh random texture where mask is set, generating it for the mask's bounding box only."""
    x, y, w, h = cv2.boundingRect(mask)
    if w == 0 or h == 0:
        return
    sel = mask[y : y + h, x : x + w] > 0
    canvas[y : y + h, x : x + w][sel] = texture(rng, h, w)[sel] * shade


def capsule_mask(mask: np.ndarray, a: np.ndarray, b: np.ndarray, ra: float, rb: float) -> None:
    """A tapered capsule from a (radius ra) to b (radius rb), drawn into a uint8 mask."""
    d = b - a
    n = np.linalg.norm(d)
    if n > 1e-6:
        perp = np.array([-d[1], d[0]]) / n
        poly = np.array([a + perp * ra, b + perp * rb, b - perp * rb, a - perp * ra])
        cv2.fillConvexPoly(mask, np.round(poly * 16).astype(np.int32), 255, cv2.LINE_8, shift=4)
    for c, r in ((a, ra), (b, rb)):
        cv2.circle(mask, tuple(np.round(c * 16).astype(int)), max(1, int(round(r * 16))), 255, -1, cv2.LINE_8, 4)


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Gradient plus clutter: textured rectangles, ellipses, polygons and lines."""
    c0, c1 = random_colour(rng), random_colour(rng)
    t = np.linspace(0, 1, size, dtype=np.float32)
    a = rng.uniform(0, 2 * np.pi)
    ramp = np.clip(0.5 + (t[None, :] - 0.5) * np.cos(a) + (t[:, None] - 0.5) * np.sin(a), 0, 1)
    img = c0 * (1 - ramp[..., None]) + c1 * ramp[..., None]
    mask = np.zeros((size, size), np.uint8)
    for _ in range(rng.integers(3, 18)):
        mask[:] = 0
        kind = rng.integers(4)
        cx, cy = rng.uniform(-0.1, 1.1, 2) * size
        r = rng.uniform(0.03, 0.35) * size
        if kind == 0:
            w, h = rng.uniform(0.2, 1.0, 2) * r
            box = cv2.boxPoints(((float(cx), float(cy)), (float(2 * w), float(2 * h)), float(rng.uniform(0, 180))))
            cv2.fillConvexPoly(mask, box.astype(np.int32), 255)
        elif kind == 1:
            axes = (int(r), int(r * rng.uniform(0.2, 1.0)))
            cv2.ellipse(mask, (int(cx), int(cy)), axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
        elif kind == 2:
            pts = (np.array([cx, cy]) + rng.normal(0, r, size=(rng.integers(3, 7), 2))).astype(np.int32)
            cv2.fillPoly(mask, [pts], 255)
        else:
            p0 = (int(cx), int(cy))
            p1 = tuple(int(v) for v in (np.array([cx, cy]) + rng.normal(0, 2 * r, 2)))
            cv2.line(mask, p0, p1, 255, int(rng.integers(1, 8)))
        fill_new_texture(img, mask, rng, rng.uniform(0.6, 1.2))
    return img


def draw_figure(
    canvas: np.ndarray,
    fig: Figure3D,
    pts: np.ndarray,
    px_per_unit: float,
    rng: np.random.Generator,
    toes: np.ndarray,
) -> None:
    """Draw `fig` onto a float32 RGB canvas, far parts first. `pts` (16, 2) and `toes` (2, 2) are the
    projected joints and toe tips in pixels."""
    size = canvas.shape[0]
    z = fig.joints[:, 2]
    skin = skin_colour(rng)
    shirt = texture(rng, size)
    pants = texture(rng, size)
    sleeves = rng.random() < 0.6
    long_trousers = rng.random() < 0.7
    hair = np.clip(rng.normal(50, 30, 3), 0, 255).astype(np.float32) if rng.random() < 0.8 else random_colour(rng)
    skin_tex = np.empty((size, size, 3), np.float32)
    skin_tex[:] = skin
    shoe = np.empty_like(skin_tex)
    shoe[:] = random_colour(rng) * 0.5
    w = {k: v * px_per_unit for k, v in fig.widths.items()}
    parts: list[tuple[float, str, tuple]] = []

    def limb(a: str, b: str, wa: float, wb: float, tex: np.ndarray) -> None:
        ia, ib = J[a], J[b]
        parts.append((0.5 * (z[ia] + z[ib]), "capsule", (pts[ia], pts[ib], wa, wb, tex)))

    for s in ("r", "l"):
        limb(f"{s}_shoulder", f"{s}_elbow", w["upper_arm"] * 1.15, w["upper_arm"], shirt)
        limb(f"{s}_elbow", f"{s}_wrist", w["forearm"], w["forearm"] * 0.8, shirt if sleeves else skin_tex)
        limb(f"{s}_hip", f"{s}_knee", w["thigh"], w["thigh"] * 0.8, pants)
        limb(f"{s}_knee", f"{s}_ankle", w["shin"], w["shin"] * 0.75, pants if long_trousers else skin_tex)
        # A hand just past the wrist; a shoe from the ankle to the toes.
        e, p_ = pts[J[f"{s}_wrist"]], pts[J[f"{s}_elbow"]]
        d = (e - p_) / max(np.linalg.norm(e - p_), 1e-6)
        rad = w["forearm"] * 1.1
        parts.append((z[J[f"{s}_wrist"]] + 1e-3, "capsule", (e, e + d * rad * 1.6, rad, rad * 0.9, skin_tex)))
        k = 0 if s == "r" else 1
        ankle = pts[J[f"{s}_ankle"]]
        toe_z = 0.5 * (z[J[f"{s}_ankle"]] + fig.toes[k, 2]) + 1e-3
        parts.append((toe_z, "capsule", (ankle, toes[k], w["shin"] * 0.9, w["shin"] * 0.7, shoe)))
    limb("thorax", "upper_neck", w["neck"], w["neck"], skin_tex)
    torso_z = float(np.mean(z[[J["r_shoulder"], J["l_shoulder"], J["r_hip"], J["l_hip"]]]))
    parts.append((torso_z, "torso", (shirt,)))
    parts.append((float(fig.head_center[2]), "head", ()))

    mask = np.zeros((size, size), np.uint8)
    for _, kind, args in sorted(parts, key=lambda p: p[0]):
        mask[:] = 0
        if kind == "capsule":
            a, b, ra, rb, tex = args
            capsule_mask(mask, a, b, ra, rb)
            _fill(canvas, mask, tex, rng.uniform(0.85, 1.1))
        elif kind == "torso":
            rs, ls, rh, lh = (pts[J[n]] for n in ("r_shoulder", "l_shoulder", "r_hip", "l_hip"))
            top_c, bot_c = 0.5 * (rs + ls), 0.5 * (rh + lh)
            top_half = (ls - rs) / max(np.linalg.norm(ls - rs), 1e-6) * w["torso_top"]
            bot_half = (lh - rh) / max(np.linalg.norm(lh - rh), 1e-6) * w["torso_bottom"]
            # Widen the foreshortened torso so a side view still has body width.
            axis = top_c - bot_c
            side = np.array([-axis[1], axis[0]]) / max(np.linalg.norm(axis), 1e-6)
            min_half = 0.45 * w["torso_top"]
            if np.linalg.norm(top_half) < min_half:
                top_half = side * min_half * np.sign(side.dot(top_half) or 1.0)
            if np.linalg.norm(bot_half) < min_half:
                bot_half = side * min_half * np.sign(side.dot(bot_half) or 1.0)
            poly = np.array([top_c - top_half, top_c + top_half, bot_c + bot_half, bot_c - bot_half])
            cv2.fillPoly(mask, [np.round(poly * 16).astype(np.int32)], 255, cv2.LINE_8, 4)
            capsule_mask(mask, rs, ls, w["upper_arm"] * 1.1, w["upper_arm"] * 1.1)
            _fill(canvas, mask, args[0])
        else:
            _draw_head(canvas, fig, pts, px_per_unit, w, skin, hair)


def _draw_head(
    canvas: np.ndarray,
    fig: Figure3D,
    pts: np.ndarray,
    px_per_unit: float,
    w: dict[str, float],
    skin: np.ndarray,
    hair: np.ndarray,
) -> None:
    neck, top = pts[J["upper_neck"]], pts[J["head_top"]]
    centre = 0.5 * (neck + top)
    up = top - neck
    length = max(np.linalg.norm(up), 1e-6)
    angle = float(np.degrees(np.arctan2(up[1], up[0]))) + 90.0
    axes = (max(1, int(w["head_w"])), max(1, int(0.5 * length * 1.02)))
    ctr = (int(round(centre[0])), int(round(centre[1])))
    cv2.ellipse(canvas, ctr, axes, angle, 0, 360, hair.tolist(), -1, cv2.LINE_AA)
    f = fig.face_dir
    if f[2] > -0.35:
        # The face: a skin ellipse shifted towards where the face points, with eyes and a mouth.
        shift = np.array([f[0], -f[1]]) * axes[0] * 0.35
        face_axes = (max(1, int(axes[0] * (0.55 + 0.35 * max(f[2], 0)))), max(1, int(axes[1] * 0.78)))
        fc = centre + shift - up / length * axes[1] * 0.12
        cv2.ellipse(canvas, (int(fc[0]), int(fc[1])), face_axes, angle, 0, 360, skin.tolist(), -1, cv2.LINE_AA)
        if f[2] > 0.15:
            right = np.array([up[1], -up[0]]) / length  # image-plane unit vector across the face
            eye_r = max(1, int(axes[0] * 0.18))
            for s in (-1, 1):
                e = fc + right * s * face_axes[0] * 0.42 * f[2] + up / length * axes[1] * 0.15
                cv2.circle(canvas, (int(e[0]), int(e[1])), eye_r, (20, 20, 20), -1, cv2.LINE_AA)
            m = fc - up / length * axes[1] * 0.4
            cv2.line(
                canvas,
                (int(m[0] - right[0] * axes[0] * 0.25), int(m[1] - right[1] * axes[0] * 0.25)),
                (int(m[0] + right[0] * axes[0] * 0.25), int(m[1] + right[1] * axes[0] * 0.25)),
                (120, 40, 40),
                max(1, eye_r // 2),
                cv2.LINE_AA,
            )
