"""Pose metrics (numpy, board-safe): Euclidean error (normalized and in input pixels), JS divergence between
the predicted heatmap and a Gaussian at the true joint, and PCKh@0.5.

PCKh: a joint is correct when its error <= 0.5 x head size (0.6 x head box diagonal); only annotated joints
with a known head size count (callers pass every annotated joint, inside the crop or not, as MPII's
evaluation does); the mean leaves out pelvis and thorax, as is usual for MPII.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dpupose.data.joints import JOINT_NAMES, NUM_JOINTS, PCKH_EXCLUDED
from dpupose.errors import DataError
from dpupose.eval.dsnt_np import gaussian_heatmaps, js_divergence

PCKH_THRESHOLD = 0.5


@dataclass
class MetricAccumulator:
    input_size: int
    sigma: float = 1.0
    num_samples: int = 0
    _dist: list[np.ndarray] = field(default_factory=list)  # normalized distances (N, J)
    _jsd: list[np.ndarray] = field(default_factory=list)
    _vis: list[np.ndarray] = field(default_factory=list)
    _head: list[np.ndarray] = field(default_factory=list)  # head size in input pixels, <= 0 unknown

    def add(
        self,
        coords: np.ndarray,
        heatmaps: np.ndarray,
        target: np.ndarray,
        visible: np.ndarray,
        head_size: np.ndarray,
    ) -> None:
        """One batch: predicted coords (N, J, 2) and heatmaps (N, J, h, w), targets (N, J, 2) normalized,
        visibility (N, J), head sizes (N,) in input-crop pixels."""
        coords = np.asarray(coords, np.float64)
        target = np.asarray(target, np.float64)
        _, _, h, w = heatmaps.shape
        self._dist.append(np.linalg.norm(coords - target, axis=-1))
        self._jsd.append(js_divergence(heatmaps, gaussian_heatmaps(target, h, w, self.sigma)))
        self._vis.append(np.asarray(visible) > 0)
        self._head.append(np.asarray(head_size, np.float64).reshape(-1))
        self.num_samples += coords.shape[0]

    def summary(self) -> dict:
        if self.num_samples == 0:
            raise ValueError("no samples were evaluated")
        dist = np.concatenate(self._dist)
        jsd = np.concatenate(self._jsd)
        vis = np.concatenate(self._vis)
        head = np.concatenate(self._head)
        if not vis.any():
            raise DataError(
                f"none of the {self.num_samples} evaluated samples has an annotated joint, so there is nothing "
                "to measure: check the annotations' joints_vis and coordinates (negative ones mean unannotated)"
            )
        px = dist * self.input_size / 2.0  # normalized units -> input pixels
        has_head = (head > 0)[:, None] & vis
        correct = (px <= PCKH_THRESHOLD * head[:, None]) & has_head
        pck_mask = np.ones(NUM_JOINTS, bool)
        pck_mask[list(PCKH_EXCLUDED)] = False
        per_joint = []
        for j, name in enumerate(JOINT_NAMES):
            v = vis[:, j]
            hj = has_head[:, j]
            per_joint.append(
                {
                    "joint": name,
                    "count": int(v.sum()),
                    "euclidean": float(dist[v, j].mean()) if v.any() else None,
                    "euclidean_px": float(px[v, j].mean()) if v.any() else None,
                    "pckh@0.5": float(correct[hj, j].mean()) if hj.any() else None,
                }
            )
        denom = has_head[:, pck_mask].sum()
        return {
            "num_samples": int(self.num_samples),
            "input_size": self.input_size,
            "euclidean": float(dist[vis].mean()),
            "euclidean_px": float(px[vis].mean()),
            "jsd": float(jsd[vis].mean()),
            "pckh@0.5": float(correct[:, pck_mask].sum() / denom) if denom else None,
            "pckh@0.5_all_joints": float(correct.sum() / has_head.sum()) if has_head.any() else None,
            "per_joint": per_joint,
        }


def format_table(summary: dict) -> str:
    """The per-joint table and the means, for the terminal."""
    lines = [f"{'joint':<12}{'count':>7}{'eucl':>9}{'px':>8}{'PCKh@0.5':>10}"]
    for row in summary["per_joint"]:
        e = f"{row['euclidean']:.4f}" if row["euclidean"] is not None else "-"
        p = f"{row['euclidean_px']:.2f}" if row["euclidean_px"] is not None else "-"
        k = f"{row['pckh@0.5']:.3f}" if row["pckh@0.5"] is not None else "-"
        lines.append(f"{row['joint']:<12}{row['count']:>7}{e:>9}{p:>8}{k:>10}")
    pck = summary["pckh@0.5"]
    lines.append(
        f"mean over {summary['num_samples']} samples: Euclidean {summary['euclidean']:.4f} "
        f"({summary['euclidean_px']:.2f} px at {summary['input_size']}), JSD {summary['jsd']:.4f}, "
        + (
            f"PCKh@0.5 {pck:.3f} (pelvis and thorax excluded)"
            if pck is not None
            else "PCKh@0.5 unavailable (no sample has a head size above zero)"
        )
    )
    return "\n".join(lines)
