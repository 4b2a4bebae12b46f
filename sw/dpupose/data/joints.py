"""The 16 MPII joints: order, left/right pairs and the skeleton drawn on frames. Board-safe (no deps)."""

from __future__ import annotations

JOINT_NAMES: tuple[str, ...] = (
    "r_ankle",
    "r_knee",
    "r_hip",
    "l_hip",
    "l_knee",
    "l_ankle",
    "pelvis",
    "thorax",
    "upper_neck",
    "head_top",
    "r_wrist",
    "r_elbow",
    "r_shoulder",
    "l_shoulder",
    "l_elbow",
    "l_wrist",
)
NUM_JOINTS = len(JOINT_NAMES)
J = {name: i for i, name in enumerate(JOINT_NAMES)}

# Left/right pairs swapped by a horizontal flip.
FLIP_PAIRS: tuple[tuple[int, int], ...] = ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13))


def flip_permutation() -> list[int]:
    """Index map: joint i of a flipped image is joint perm[i] of the original."""
    perm = list(range(NUM_JOINTS))
    for a, b in FLIP_PAIRS:
        perm[a], perm[b] = b, a
    return perm


# Bones for drawing: (joint a, joint b, side) with side "r", "l" or "c" (centre).
SKELETON: tuple[tuple[int, int, str], ...] = (
    (0, 1, "r"),
    (1, 2, "r"),
    (2, 6, "r"),
    (5, 4, "l"),
    (4, 3, "l"),
    (3, 6, "l"),
    (6, 7, "c"),
    (7, 8, "c"),
    (8, 9, "c"),
    (10, 11, "r"),
    (11, 12, "r"),
    (12, 7, "r"),
    (15, 14, "l"),
    (14, 13, "l"),
    (13, 7, "l"),
)

# PCKh means usually leave out pelvis and thorax (they sit close to the hips and neck).
PCKH_EXCLUDED: tuple[int, ...] = (6, 7)
HEAD_JOINTS: tuple[int, int] = (8, 9)  # upper_neck, head_top
