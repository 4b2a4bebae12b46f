"""Articulated 3-D stick figures with the 16 MPII joints: random plausible poses, body proportions, yaw,
lean and limb flexion, projected orthographically to the image plane.

Body frame: x = the person's left, y = up, z = towards the camera when yaw is 0; units of body height.
Facing the camera, the person's right side appears on the left of the image, as in MPII.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dpupose.data.joints import NUM_JOINTS, J


def rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


DOWN = np.array([0.0, -1.0, 0.0])


@dataclass
class Figure3D:
    """Joint positions in camera coordinates (x right, y up, z towards the camera), body-height units."""

    joints: np.ndarray  # (16, 3)
    face_dir: np.ndarray  # (3,) unit vector out of the face
    head_center: np.ndarray  # (3,)
    head_up: np.ndarray  # (3,) unit vector from chin to crown
    toes: np.ndarray  # (2, 3) tips of the right and left foot
    widths: dict[str, float]  # limb half-widths in body-height units


def _rotate_about(v: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues' rotation of v about a unit axis."""
    return v * np.cos(angle) + np.cross(axis, v) * np.sin(angle) + axis * axis.dot(v) * (1 - np.cos(angle))


def random_figure(rng: np.random.Generator) -> Figure3D:
    """Sample proportions and a pose; return joints in camera coordinates."""
    p = lambda base, spread=0.12: base * (1 + rng.uniform(-spread, spread))
    torso, neck, head = p(0.30), p(0.06), p(0.13)
    shoulder_w, hip_w = p(0.11, 0.2), p(0.065, 0.2)
    upper_arm, forearm = p(0.17), p(0.15)
    thigh, shin = p(0.245), p(0.245)
    widths = {
        "upper_arm": p(0.026, 0.3),
        "forearm": p(0.020, 0.3),
        "thigh": p(0.040, 0.3),
        "shin": p(0.028, 0.3),
        "neck": p(0.022, 0.2),
        "torso_top": shoulder_w * p(1.05, 0.1),
        "torso_bottom": hip_w * p(1.5, 0.15),
        "head_w": head * p(0.36, 0.1),
        "head_h": head * 0.52,
    }
    j = np.zeros((NUM_JOINTS, 3))
    # Upper body relative to the pelvis: lean forward/back, sideways, twist.
    bend = rng.choice([rng.uniform(-0.2, 0.35), rng.uniform(0.3, 1.2)], p=[0.8, 0.2])
    upper = rot_y(rng.uniform(-0.5, 0.5)) @ rot_x(bend) @ rot_z(rng.uniform(-0.3, 0.3))
    j[J["pelvis"]] = 0.0
    j[J["r_hip"]] = [-hip_w, -0.01, 0.0]
    j[J["l_hip"]] = [hip_w, -0.01, 0.0]
    thorax = upper @ np.array([0.0, torso, 0.0])
    j[J["thorax"]] = thorax
    j[J["r_shoulder"]] = thorax + upper @ np.array([-shoulder_w, -0.015, 0.0])
    j[J["l_shoulder"]] = thorax + upper @ np.array([shoulder_w, -0.015, 0.0])
    head_rot = upper @ rot_y(rng.uniform(-0.7, 0.7)) @ rot_x(rng.uniform(-0.35, 0.5)) @ rot_z(rng.uniform(-0.3, 0.3))
    neck_dir = upper @ rot_x(rng.uniform(-0.15, 0.3)) @ np.array([0.0, 1.0, 0.0])
    j[J["upper_neck"]] = thorax + neck * neck_dir
    head_up = head_rot @ np.array([0.0, 1.0, 0.0])
    j[J["head_top"]] = j[J["upper_neck"]] + head * head_up
    face_dir = head_rot @ np.array([0.0, 0.0, 1.0])
    head_center = j[J["upper_neck"]] + 0.5 * head * head_up + 0.15 * head * face_dir

    # Arms: abduction in the frontal plane, flexion forward, then the elbow bends the forearm towards the
    # front (about the axis across the arm, turned a little at random), as a real elbow does.
    forward_upper = upper @ np.array([0.0, 0.0, 1.0])
    for side, sign in (("r", -1.0), ("l", 1.0)):
        abd = rng.uniform(-0.2, 2.8) if rng.random() < 0.85 else rng.uniform(2.8, 3.1)
        flex = rng.uniform(-0.6, 1.8)
        d_up = upper @ rot_x(-flex) @ rot_z(sign * abd) @ DOWN
        axis = np.cross(d_up, forward_upper)
        if np.linalg.norm(axis) < 0.3:  # upper arm points forward: bend upwards instead
            axis = np.cross(d_up, upper @ np.array([0.0, 1.0, 0.0]))
        axis = _rotate_about(axis / np.linalg.norm(axis), d_up, rng.uniform(-0.5, 0.5))
        elbow = rng.uniform(0.0, 2.4)
        d_fore = _rotate_about(d_up, axis, elbow)
        s = j[J[f"{side}_shoulder"]]
        j[J[f"{side}_elbow"]] = s + upper_arm * d_up
        j[J[f"{side}_wrist"]] = j[J[f"{side}_elbow"]] + forearm * d_fore

    # Legs: hip flexion forward and abduction, knee flexion backwards in the leg's own plane.
    sitting = rng.random() < 0.15
    toes: list[np.ndarray] = []
    for side, sign in (("r", -1.0), ("l", 1.0)):
        flex = rng.uniform(1.1, 1.7) if sitting else rng.uniform(-0.45, 1.0)
        abd = rng.uniform(-0.12, 0.6)
        knee = rng.uniform(1.2, 1.8) if sitting else rng.uniform(0.0, 1.6) * rng.random()
        rz = rot_z(sign * abd)
        d_thigh = rot_x(-flex) @ rz @ DOWN
        d_shin = rot_x(-flex + knee) @ rz @ DOWN
        h = j[J[f"{side}_hip"]]
        j[J[f"{side}_knee"]] = h + thigh * d_thigh
        j[J[f"{side}_ankle"]] = j[J[f"{side}_knee"]] + shin * d_shin
        # The foot points forward (toes a little out), square to the shin.
        fwd = rot_y(sign * rng.uniform(0.0, 0.4)) @ np.array([0.0, 0.0, 1.0])
        foot = fwd - fwd.dot(d_shin) * d_shin
        toes.append(j[J[f"{side}_ankle"]] + p(0.12) * foot / max(np.linalg.norm(foot), 1e-6))

    # Whole body: yaw about the vertical (mostly towards the camera, as in photographs), a little pitch.
    u = rng.random()
    if u < 0.55:
        yaw = float(np.clip(rng.normal(0.0, 0.5), -1.2, 1.2))
    elif u < 0.85:
        yaw = rng.uniform(-1.9, 1.9)
    else:
        yaw = rng.uniform(-np.pi, np.pi)
    body = rot_x(rng.uniform(-0.25, 0.25)) @ rot_y(yaw)
    return Figure3D(
        joints=j @ body.T,
        face_dir=body @ face_dir,
        head_center=body @ head_center,
        head_up=body @ head_up,
        toes=np.array(toes) @ body.T,
        widths=widths,
    )
