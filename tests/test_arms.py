"""The elbow analysis (dpupose.eval.arms) on hand-built predictions with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from dpupose.data.joints import J
from dpupose.eval.arms import _mass_near, elbow_report, report_lines

SIZE = 64  # input pixels; normalized = px / 32 - 1


def norm(px):
    return np.asarray(px, float) / (SIZE / 2) - 1


def scene(r_elbow_pred, l_elbow_pred, r_wrist=(44, 40)):
    """One scene: right arm shoulder (20, 20) -> elbow (20, 30) -> wrist; left arm shoulder (40, 20) ->
    elbow (40, 30) -> wrist (40, 40) (straight); head size 8 px, so the threshold is 4 px."""
    t = np.zeros((16, 2))
    t[J["r_shoulder"]], t[J["r_elbow"]], t[J["r_wrist"]] = (20, 20), (20, 30), r_wrist
    t[J["l_shoulder"]], t[J["l_elbow"]], t[J["l_wrist"]] = (40, 20), (40, 30), (40, 40)
    p = t.copy()
    p[J["r_elbow"]], p[J["l_elbow"]] = r_elbow_pred, l_elbow_pred
    return norm(p), norm(t)


def test_counts_where_the_misses_go():
    scenes = [
        scene((21, 31), (40, 22)),  # right hit; left miss, 8 px off, 2 px from its shoulder
        scene((20, 39), (21, 30), r_wrist=(22, 42)),  # right miss next to its wrist; left on the right elbow
    ]
    coords = np.stack([s[0] for s in scenes])
    targets = np.stack([s[1] for s in scenes])
    heat = np.full((2, 16, 16, 16), 1 / 256)
    r = elbow_report(coords, heat, targets, np.ones((2, 16)), np.array([8.0, 8.0]), SIZE)
    assert (r["elbows"], r["misses"]) == (4, 3)
    assert r["closer_to_shoulder"] == 1 and r["closer_to_wrist"] == 1
    assert r["within_threshold_of_other_elbow"] == 1
    # miss distances 8, 9 and 19 px over a 4 px threshold
    assert r["median_miss_distance_in_thresholds"] == pytest.approx(9 / 4)
    assert r["median_threshold_px"] == 4.0
    assert sum(b["elbows"] for b in r["by_bend"]) == 4
    straight = next(b for b in r["by_bend"] if b["angle_deg"] == [165, 181])
    assert straight["elbows"] == 3  # the left arms (180 degrees) and the second right arm (170)
    assert sum(f["elbows"] for f in r["by_foreshortening"]) == 4


def test_invisible_elbows_and_unknown_head_sizes_are_left_out():
    p, t = scene((21, 31), (40, 22))
    vis = np.ones((1, 16))
    vis[0, J["l_elbow"]] = 0
    r = elbow_report(p[None], np.full((1, 16, 16, 16), 1 / 256), t[None], vis, np.array([8.0]), SIZE)
    assert (r["elbows"], r["misses"]) == (1, 0)
    r = elbow_report(p[None], np.full((1, 16, 16, 16), 1 / 256), t[None], np.ones((1, 16)), np.array([-1.0]), SIZE)
    assert r["elbows"] == 0


def test_mass_near_the_truth():
    h = np.zeros((1, 16, 16))
    h[0, 5, 5] = 0.25  # on the target pixel
    h[0, 5, 7] = 0.25  # 2 px away: counted
    h[0, 8, 5] = 0.5  # 3 px away: not
    target = np.array([[(2 * 5 + 1) / 16 - 1, (2 * 5 + 1) / 16 - 1]])  # centre of pixel (5, 5)
    assert _mass_near(h, target)[0] == pytest.approx(0.5)
    assert _mass_near(h, target, radius=3)[0] == pytest.approx(1.0)


def test_the_printed_report_when_every_elbow_misses():
    # A model barely trained (or a handful of scenes) can miss every elbow: the hits' median is then
    # undefined, and the text says "none" instead of failing on None.
    p, t = scene((20, 40), (40, 40))  # both elbows 10 px off, over a 4 px threshold
    r = elbow_report(p[None], np.full((1, 16, 16, 16), 1 / 256), t[None], np.ones((1, 16)), np.array([8.0]), SIZE)
    assert (r["elbows"], r["misses"]) == (2, 2) and r["median_mass_near_truth_hits"] is None
    r.update({"checkpoint": "m.pt", "decode": "local", "scenes": 1})
    lines = report_lines(r)
    assert lines[0] == "m.pt: elbows of 1 synthetic validation scenes, local decoding"
    assert lines[2] == (
        "  misses lie a median 2.50 thresholds away (median threshold 4.0 px); heatmap mass within "
        "2 heatmap px of the true elbow: median 0.047 for misses, none for hits"
    )  # each true elbow sits on a pixel corner of the 16 x 16 map: 12 pixel centres within 2 px, 12 / 256
    # the left arm is straight (180 degrees), the right one bent to acos(-100 / (10 * 26)) = 112.6 degrees:
    # the other bend bins hold no elbow, and their PCKh is '-', not 1.000
    assert "  elbow angle 165-180 deg:     1 elbows,    1 misses, PCKh 0.000" in lines
    assert "  elbow angle  90-120 deg:     1 elbows,    1 misses, PCKh 0.000" in lines
    assert "  elbow angle   0- 90 deg:     0 elbows,    0 misses, PCKh -" in lines


def test_the_threshold_itself_is_a_hit_and_within_reach_of_the_other_elbow():
    """As PCKh (error <= 0.5 x head size): an elbow exactly 4 px off is a hit; a miss exactly 4 px from the
    other elbow is counted as a swap (every value here is exact in binary)."""
    p, t = scene((20, 34), (24, 30))  # right: 4 px below its elbow; left: 16 px off, 4 px from the right elbow
    r = elbow_report(p[None], np.full((1, 16, 16, 16), 1 / 256), t[None], np.ones((1, 16)), np.array([8.0]), SIZE)
    assert (r["elbows"], r["misses"], r["within_threshold_of_other_elbow"]) == (2, 1, 1)
    assert r["median_miss_distance_in_thresholds"] == 4.0
