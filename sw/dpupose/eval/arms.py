"""Where a model's elbow estimates go wrong: the analysis behind the shipped model card's arm figures.

    python -m dpupose.eval.arms --checkpoint models/dpupose-synth/model.pt [--num-samples N] [--decode local]

For the elbows of the synthetic validation scenes (FP32): how many miss the PCKh@0.5 threshold; whether a
miss lies closer to the same arm's shoulder or wrist than to the elbow, or within the threshold of the
other elbow (a left/right swap); how far misses lie (in thresholds); how much of the heatmap's mass lies
within 2 heatmap pixels of the true elbow, for misses and hits; and the elbow's PCKh by how foreshortened
the upper arm is (its length in the image over the head size, in fifths) and by how bent the arm is.
"""

from __future__ import annotations

import sys

import numpy as np

from dpupose.data.joints import J
from dpupose.fsio import json_text

BEND_BINS = ((0, 90), (90, 120), (120, 150), (150, 165), (165, 181))  # elbow angle in degrees; 180 = straight
NEAR_RADIUS = 2.0  # heatmap pixels around the true elbow for the mass figure


def _mass_near(heatmaps: np.ndarray, target_norm: np.ndarray, radius: float = NEAR_RADIUS) -> np.ndarray:
    """(N,) share of each (N, H, W) map's mass within `radius` heatmap pixels of its target (normalized)."""
    n, h, w = heatmaps.shape
    ty = (target_norm[:, 1] + 1) * h / 2 - 0.5  # heatmap pixel coordinates, pixel centres at integers
    tx = (target_norm[:, 0] + 1) * w / 2 - 0.5
    yy, xx = np.mgrid[0:h, 0:w]
    near = (xx[None] - tx[:, None, None]) ** 2 + (yy[None] - ty[:, None, None]) ** 2 <= radius**2
    total = heatmaps.sum(axis=(1, 2))
    return (heatmaps * near).sum(axis=(1, 2)) / np.where(total > 0, total, 1.0)


def elbow_report(
    coords: np.ndarray, heatmaps: np.ndarray, targets: np.ndarray, visible: np.ndarray, heads: np.ndarray, size: int
) -> dict:
    """Elbow figures from predictions and truth, all (N, 16, ...): coords and targets normalized (-1..1),
    heads the head sizes in input pixels, size the input side in pixels."""
    pred = (coords + 1) * size / 2
    true = (targets + 1) * size / 2
    thr = 0.5 * heads
    rows: dict[str, list] = {k: [] for k in ("miss", "to_shoulder", "to_wrist", "swap", "dist", "mass", "arm", "bend")}
    for side, other in (("r", "l"), ("l", "r")):
        s, e, w, o = J[f"{side}_shoulder"], J[f"{side}_elbow"], J[f"{side}_wrist"], J[f"{other}_elbow"]
        ok = (visible[:, e] > 0) & (heads > 0)
        d = np.linalg.norm(pred[:, e] - true[:, e], axis=1)
        miss = d > thr
        rows["miss"].append(miss[ok])
        rows["to_shoulder"].append((miss & (np.linalg.norm(pred[:, e] - true[:, s], axis=1) < d))[ok])
        rows["to_wrist"].append((miss & (np.linalg.norm(pred[:, e] - true[:, w], axis=1) < d))[ok])
        rows["swap"].append((miss & (np.linalg.norm(pred[:, e] - true[:, o], axis=1) <= thr))[ok])
        rows["dist"].append((d / np.where(thr > 0, thr, 1.0))[ok])
        rows["mass"].append(_mass_near(heatmaps[:, e], targets[:, e])[ok])
        upper = true[:, s] - true[:, e]
        fore = true[:, w] - true[:, e]
        rows["arm"].append((np.linalg.norm(upper, axis=1) / np.where(heads > 0, heads, 1.0))[ok])
        cos = (upper * fore).sum(1) / np.maximum(np.linalg.norm(upper, axis=1) * np.linalg.norm(fore, axis=1), 1e-9)
        rows["bend"].append(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))[ok])
    r = {k: np.concatenate(v) for k, v in rows.items()}
    miss = r["miss"]
    report = {
        "elbows": int(len(miss)),
        "misses": int(miss.sum()),
        "closer_to_shoulder": int(r["to_shoulder"].sum()),
        "closer_to_wrist": int(r["to_wrist"].sum()),
        "within_threshold_of_other_elbow": int(r["swap"].sum()),
        "median_miss_distance_in_thresholds": float(np.median(r["dist"][miss])) if miss.any() else None,
        "median_mass_near_truth_misses": float(np.median(r["mass"][miss])) if miss.any() else None,
        "median_mass_near_truth_hits": float(np.median(r["mass"][~miss])) if (~miss).any() else None,
        "median_threshold_px": float(np.median(thr[heads > 0])) if (heads > 0).any() else None,
    }
    fifths = []
    edges = np.quantile(r["arm"], np.linspace(0, 1, 6)) if len(miss) else []
    for i in range(len(edges) - 1):
        lo, hi = edges[i], edges[i + 1]
        m = (r["arm"] >= lo) & ((r["arm"] < hi) if i < 4 else (r["arm"] <= hi))
        fifths.append(
            {"upper_arm_over_head": [float(lo), float(hi)], "elbows": int(m.sum()), "misses": int(miss[m].sum())}
        )
    report["by_foreshortening"] = fifths
    report["by_bend"] = [
        {"angle_deg": [lo, hi], "elbows": int(m.sum()), "misses": int(miss[m].sum())}
        for lo, hi in BEND_BINS
        for m in [(r["bend"] >= lo) & (r["bend"] < hi)]
    ]
    return report


def _median(value: float | None, fmt: str, unit: str = "") -> str:
    """A median of the report, or 'none' where the group it is taken over is empty (no hits, no head sizes)."""
    return "none" if value is None else f"{value:{fmt}}{unit}"


def _pckh(row: dict) -> str:
    """The share of a group's elbows within the threshold; '-' for a group without elbows (not 1.000)."""
    return f"{1 - row['misses'] / row['elbows']:.3f}" if row["elbows"] else "-"


def report_lines(report: dict) -> list[str]:
    """The text `python -m dpupose.eval.arms` prints for an elbow_report (with checkpoint, decode, scenes)."""
    lines = [
        f"{report['checkpoint']}: elbows of {report['scenes']} synthetic validation scenes, "
        f"{report['decode']} decoding",
        f"  misses {report['misses']} of {report['elbows']}: closer to the shoulder {report['closer_to_shoulder']}, "
        f"to the wrist {report['closer_to_wrist']}; within the threshold of the other elbow "
        f"{report['within_threshold_of_other_elbow']}",
    ]
    if report["misses"]:
        lines.append(
            f"  misses lie a median {_median(report['median_miss_distance_in_thresholds'], '.2f')} thresholds away "
            f"(median threshold {_median(report['median_threshold_px'], '.1f', ' px')}); heatmap mass within "
            f"{NEAR_RADIUS:g} heatmap px of the true elbow: median "
            f"{_median(report['median_mass_near_truth_misses'], '.3f')} for misses, "
            f"{_median(report['median_mass_near_truth_hits'], '.3f')} for hits"
        )
    for row in report["by_foreshortening"]:
        lo, hi = row["upper_arm_over_head"]
        lines.append(
            f"  upper arm {lo:5.2f}-{hi:6.2f} head sizes: {row['elbows']:5d} elbows, {row['misses']:4d} misses, "
            f"PCKh {_pckh(row)}"
        )
    for row in report["by_bend"]:
        lo, hi = row["angle_deg"]
        lines.append(
            f"  elbow angle {lo:3d}-{min(hi, 180):3d} deg: {row['elbows']:5d} elbows, {row['misses']:4d} misses, "
            f"PCKh {_pckh(row)}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    from dpupose.cli import Parser
    from dpupose.commands.argtypes import positive_int

    parser = Parser(prog="python -m dpupose.eval.arms", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="the model checkpoint (.pt) to analyse")
    parser.add_argument("--num-samples", type=positive_int, help="the first N validation scenes (default: all)")
    parser.add_argument(
        "--decode", choices=("dsnt", "local"), default="local", help="keypoint decoding (default: local)"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)

    from dpupose.data.sources import load_data
    from dpupose.errors import DpuposeError
    from dpupose.eval.dsnt_np import local_dsnt
    from dpupose.eval.evaluate import iter_batches, torch_predictor
    from dpupose.model.checkpoint import load_checkpoint

    try:
        model, _ = load_checkpoint(args.checkpoint, "--checkpoint")
        split = load_data("synthetic", "valid", None, args.num_samples)
    except DpuposeError as exc:
        print(f"dpupose: error: {exc}", file=sys.stderr)
        return 2
    records = split.records[: args.num_samples] if args.num_samples else split.records
    size = model.config.input_size
    predict = torch_predictor(model)
    parts: list[list[np.ndarray]] = [[], [], [], [], []]
    for images, targets, visible, heads in iter_batches(records, split.image_dir, size, 16):
        coords, heatmaps = predict(images)
        if args.decode == "local":
            coords = local_dsnt(heatmaps)
        for acc, x in zip(parts, (coords, heatmaps, targets, visible, heads), strict=True):
            acc.append(x)
    report = elbow_report(*(np.concatenate(p) for p in parts), size)
    report.update({"checkpoint": args.checkpoint, "decode": args.decode, "scenes": len(records)})
    if args.json:
        print(json_text(report))
        return 0
    print("\n".join(report_lines(report)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
