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


def test_a_miss_as_far_from_its_shoulder_as_from_its_elbow_is_not_closer_to_the_shoulder():
    """'closer to the shoulder' (and to the wrist) is strictly closer: the right elbow predicted at (20, 25) lies
    5 px from both its elbow (20, 30) and its shoulder (20, 20), a miss over the 4 px threshold that is neither."""
    p, t = scene((20, 25), (40, 30), r_wrist=(20, 40))  # the right wrist 10 px below the elbow
    r = elbow_report(p[None], np.full((1, 16, 16, 16), 1 / 256), t[None], np.ones((1, 16)), np.array([8.0]), SIZE)
    assert (r["elbows"], r["misses"], r["closer_to_shoulder"], r["closer_to_wrist"]) == (2, 1, 0, 0)
    p, t = scene((20, 35), (40, 30), r_wrist=(20, 40))  # 5 px from the elbow and from the wrist
    r = elbow_report(p[None], np.full((1, 16, 16, 16), 1 / 256), t[None], np.ones((1, 16)), np.array([8.0]), SIZE)
    assert (r["misses"], r["closer_to_shoulder"], r["closer_to_wrist"]) == (1, 0, 0)


def test_an_arm_bent_at_a_right_angle_is_counted_in_the_bin_that_starts_there():
    """The bend bins are [lo, hi): the right arm here bends at exactly 90 degrees (shoulder above the elbow, wrist
    beside it), so it counts in 90-120, not in 0-90; the straight left arm (180) in 165-180."""
    p, t = scene((20, 30), (40, 30), r_wrist=(30, 30))
    r = elbow_report(p[None], np.full((1, 16, 16, 16), 1 / 256), t[None], np.ones((1, 16)), np.array([8.0]), SIZE)
    counts = {tuple(b["angle_deg"]): b["elbows"] for b in r["by_bend"]}
    assert counts == {(0, 90): 0, (90, 120): 1, (120, 150): 0, (150, 165): 0, (165, 181): 1}


def test_medians_are_taken_over_their_own_groups():
    """The hits' mass median over the hits alone, the threshold median over the samples with a head size: in
    three scenes, one without a head size (-1), the right elbows' maps hold 0.75, 0.25 (and 0.5) of their mass at
    the true elbow, the left ones' 0.125."""
    p, t = scene((20, 30), (40, 30))  # both elbows exactly right
    coords, targets = np.stack([p, p, p]), np.stack([t, t, t])
    heat = np.zeros((3, 16, 16, 16))
    # the true elbows (20, 30) and (40, 30) px of 64 are heatmap (4.5, 7) and (9.5, 7): mass at pixel (4, 7) or
    # (9, 7) lies within 2 heatmap px; the rest at the far corner (15, 0)
    for i, share in enumerate((0.75, 0.25, 0.5)):
        heat[i, J["r_elbow"], 7, 4], heat[i, J["r_elbow"], 0, 15] = share, 1 - share
        heat[i, J["l_elbow"], 7, 9], heat[i, J["l_elbow"], 0, 15] = 0.125, 0.875
    heads = np.array([8.0, 6.0, -1.0])
    r = elbow_report(coords, heat, targets, np.ones((3, 16)), heads, SIZE)
    assert (r["elbows"], r["misses"]) == (4, 0)
    assert r["median_mass_near_truth_hits"] == pytest.approx((0.125 + 0.25) / 2)  # of 0.75, 0.25, 0.125, 0.125
    assert r["median_threshold_px"] == pytest.approx(3.5)  # of 4 and 3 px; not 3 px with the -0.5 of no head
    # the upper arms are 10 px long: 10 / 8 and 10 / 6 head sizes, the fifths' edges between them
    edges = [b["upper_arm_over_head"] for b in r["by_foreshortening"]]
    assert edges[0][0] == pytest.approx(10 / 8) and edges[-1][1] == pytest.approx(10 / 6)
    # and the hits' median when every other elbow misses: over the two that hit, not over all four
    far = coords.copy()
    far[:, J["l_elbow"]] = norm((40, 40))
    r = elbow_report(far, heat, targets, np.ones((3, 16)), heads, SIZE)
    assert (r["misses"], r["median_mass_near_truth_hits"]) == (2, pytest.approx(0.5))  # 0.75 and 0.25
    assert r["median_mass_near_truth_misses"] == pytest.approx(0.125)
    r = elbow_report(far[:1], heat[:1], targets[:1], np.ones((1, 16)), heads[:1], SIZE)
    assert (r["misses"], r["median_mass_near_truth_hits"]) == (1, pytest.approx(0.75))  # the right one alone


def test_the_printed_report_without_misses_has_no_line_about_misses():
    p, t = scene((20, 30), (40, 30))
    r = elbow_report(p[None], np.full((1, 16, 16, 16), 1 / 256), t[None], np.ones((1, 16)), np.array([8.0]), SIZE)
    r.update({"checkpoint": "m.pt", "decode": "dsnt", "scenes": 1})
    lines = report_lines(r)
    assert lines[1] == (
        "  misses 0 of 2: closer to the shoulder 0, to the wrist 0; within the threshold of the other elbow 0"
    )
    assert not any("misses lie" in line for line in lines)
    assert lines[2].startswith("  upper arm  1.25-  1.25 head sizes:     0 elbows")


def same(a, b) -> bool:
    """Equal JSON values, numbers within float32 rounding (the command batches the images otherwise)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-5)
    return a == b


def test_the_command_reports_elbow_report_of_the_network_s_own_predictions(synth_root, tmp_path, monkeypatch, capsys):
    """python -m dpupose.eval.arms on a root of 12 validation scenes, asked for 20: its figures are elbow_report's
    on the network's predictions of those 12, read as --decode says, and it says 12 scenes."""
    import json

    from quant_helpers import sane_model, save_checkpoint

    from dpupose.data import sources
    from dpupose.eval.arms import main
    from dpupose.eval.dsnt_np import local_dsnt
    from dpupose.eval.evaluate import iter_batches, torch_predictor

    real = sources.load_data

    def load_data(kind, split, root, count=None):  # the command's default root is the test's 12 scenes
        return real(kind, split, synth_root, count)

    monkeypatch.setattr(sources, "load_data", load_data)
    model = sane_model()
    ckpt = save_checkpoint(model, tmp_path / "tiny.pt")
    split = real("synthetic", "valid", synth_root)
    size = model.config.input_size
    images, targets, visible, heads = next(iter_batches(split.records, split.image_dir, size, len(split.records)))
    assert len(images) == 12
    coords, heat = torch_predictor(model)(images)
    got = {}
    for decode, xy in (("dsnt", coords), ("local", local_dsnt(heat))):
        assert main(["--checkpoint", str(ckpt), "--num-samples", "20", "--decode", decode, "--json"]) == 0
        got[decode] = json.loads(capsys.readouterr().out)
        want = elbow_report(xy, heat, targets, visible, heads, size)
        want.update({"checkpoint": str(ckpt), "decode": decode, "scenes": 12})
        assert same(got[decode], json.loads(json.dumps(want)))
    assert got["dsnt"]["median_miss_distance_in_thresholds"] != got["local"]["median_miss_distance_in_thresholds"]
