"""Drawing the skeleton and the labels on frames (runtime/draw.py), checked by the pixels drawn: each bone in its
side's colour, lines as thick as the frame's longer side / 200, joints as white discs, joints below the
confidence threshold left out with their bones, and labels in the top-left corner, one row under another."""

from __future__ import annotations

import cv2
import numpy as np

from dpupose.data.joints import SKELETON
from dpupose.runtime.draw import draw_label, draw_skeleton

RED, BLUE, WHITE = (60, 60, 230), (230, 120, 40), (255, 255, 255)  # BGR: right side red, left side blue


def two_joints(a=(100.0, 200.0), b=(300.0, 200.0)) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints of a right ankle (0) at `a` and right knee (1) at `b`, a horizontal bone, with every other joint
    inside the frame on a row of its own (at y 40 to 70) and a confidence of 0, against 0.5 for those two."""
    keypoints = np.array([[100.0 + 40 * i, 40.0 + 10 * (i % 4)] for i in range(16)])
    keypoints[0], keypoints[1] = a, b
    confidence = np.zeros(16)
    confidence[[0, 1]] = 0.5
    return keypoints, confidence


def full_rows(frame: np.ndarray, x: int, colour) -> int:
    return int((frame[:, x] == colour).all(axis=1).sum())


def test_a_bone_is_drawn_in_its_side_s_colour_as_thick_as_the_frame_s_longer_side_over_200():
    # 300 x 780: 780 / 200 = 3.9, rounded to 4 (not cut to 3, nor the shorter side's 1.5 -> 2).
    keypoints, confidence = two_joints()
    drawn = draw_skeleton(np.zeros((300, 780, 3), np.uint8), keypoints, confidence, 0.5)
    assert tuple(drawn[200, 200]) == RED  # the ankle-knee bone is on the right side
    assert 4 <= full_rows(drawn, 200, RED) <= 5  # a 4-pixel line (anti-aliased: its full colour 4 or 5 rows)
    assert np.array_equal(drawn, draw_skeleton(np.zeros((300, 780, 3), np.uint8), keypoints, confidence, 0.5, 4))
    thin = draw_skeleton(np.zeros((300, 780, 3), np.uint8), keypoints, confidence, 0.5, thickness=1)
    assert full_rows(thin, 200, RED) <= 2
    # The left ankle-knee bone (5, 4) the same way: blue.
    left, sure = keypoints[[5, 4, 2, 3, 1, 0, *range(6, 16)]], confidence[[5, 4, 2, 3, 1, 0, *range(6, 16)]]
    assert (tuple(left[5]), tuple(left[4]), sure[5], sure[4], sure[0]) == ((100, 200), (300, 200), 0.5, 0.5, 0)
    drawn = draw_skeleton(np.zeros((300, 780, 3), np.uint8), left, sure, 0.5)
    assert tuple(drawn[200, 200]) == BLUE
    # A small frame still gets lines of one pixel (64 / 200 rounds to 0).
    small = draw_skeleton(np.zeros((64, 64, 3), np.uint8), *two_joints((10.0, 30.0), (50.0, 30.0)), 0.5)
    assert small[30, 30, 2] > 200 and small[30, 30, :2].max() < 70  # (anti-aliased) red


def test_joints_are_white_discs_of_the_line_thickness_plus_one_and_low_confidence_ones_are_left_out():
    keypoints, confidence = two_joints()
    drawn = draw_skeleton(np.zeros((300, 780, 3), np.uint8), keypoints, confidence, 0.5)
    # A disc of radius 5 (t + 1) at the ankle: white 5 pixels above its centre, nothing 7 above.
    assert tuple(drawn[195, 100]) == WHITE and tuple(drawn[193, 100]) == (0, 0, 0)
    # Every white pixel is on one of the two joints drawn (at exactly the threshold, 0.5); the 14 others
    # (confidence 0) have no disc, and no bone leads to them (the knee-hip bone's midpoint is black).
    ys, xs = np.nonzero((drawn == WHITE).all(axis=2))
    near = np.minimum(np.hypot(xs - 100, ys - 200), np.hypot(xs - 300, ys - 200))
    assert len(ys) > 0 and near.max() <= 6
    hip = keypoints[2]
    assert not drawn[int((200 + hip[1]) / 2), int((300 + hip[0]) / 2)].any()
    # Without confidence every joint and bone is drawn: a white disc on each joint.
    everything = draw_skeleton(np.zeros((300, 780, 3), np.uint8), keypoints)
    assert all(tuple(everything[int(y), int(x)]) == WHITE for x, y in keypoints)
    assert len(SKELETON) == 15


def test_keypoints_are_rounded_to_the_nearest_pixel():
    keypoints, confidence = two_joints((100.6, 200.6), (300.4, 199.6))
    rounded, _ = two_joints((101.0, 201.0), (300.0, 200.0))
    cut, _ = two_joints((100.0, 200.0), (300.0, 199.0))

    def draw(points):
        return draw_skeleton(np.zeros((300, 780, 3), np.uint8), points, confidence, 0.5)

    assert np.array_equal(draw(keypoints), draw(rounded)) and not np.array_equal(draw(keypoints), draw(cut))


def test_labels_sit_in_the_top_left_corner_one_row_under_another_and_scale_with_the_frame_s_width():
    text = "12.5 FPS"
    for width, scale in ((640, 0.6), (1280, 1.2), (320, 0.4)):  # 0.6 at 640 pixels wide, never under 0.4
        (w, h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        for row in (0, 1):
            baseline = int((row + 1) * 22 * scale / 0.6)  # 22 pixels a row at scale 0.6
            frame = draw_label(np.zeros((480, width, 3), np.uint8), text, row)
            ys, xs = np.nonzero(frame.any(axis=2))  # the white text and its grey anti-aliased edge
            assert baseline - h <= ys.min() and ys.max() <= baseline, (width, row)
            assert ys.max() - ys.min() >= h * 0.6, (width, row)  # the digits' height, not a sliver
            assert 8 <= xs.min() <= 8 + w / 10 and w - 4 <= xs.max() - 8 <= w + 1, (width, row)  # from x = 8
    # A black outline keeps it readable on a white frame.
    frame = draw_label(np.full((480, 640, 3), 255, np.uint8), text)
    assert (frame[:30, :90] == 0).all(axis=2).sum() > 50
