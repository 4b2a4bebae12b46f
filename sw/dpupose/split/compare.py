"""Predicted best split of one model on each of several DPU configurations (host only, onnx).

For every configuration: the optimizer's candidates (dpupose.split.optimize) on the same QDQ graph, the
chosen cut's predicted DPU and CPU stage times and pipelined FPS on the board, and whether the
configuration fits its board (dpupose.dpu.resources.check_fit). Nothing is written; all figures are
predictions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dpupose.split.graph import analyze, load_onnx


def best_split_per_config(model: Path, configs: list[str], a53: Any = None) -> list[dict[str, Any]]:
    from dpupose.dpu.board import load_board
    from dpupose.dpu.config import load_config
    from dpupose.dpu.resources import check_fit
    from dpupose.split import a53 as a53_model
    from dpupose.split.optimize import best, candidates
    from dpupose.split.partition import _dpu_unit_ms

    a53 = a53 or a53_model.default_model()
    g = analyze(load_onnx(model))
    rows = []
    for name in configs:
        cfg = load_config(name)
        board = load_board(cfg.board)
        dpu_ms = _dpu_unit_ms(g, cfg, board, model.stem)
        chosen = best(candidates(g, cfg, {}, dpu_ms, a53))
        fit = check_fit(cfg, board)
        rows.append(
            {
                "config": cfg.name,
                "arch": cfg.arch.value,
                "clock_mhz": cfg.clock_mhz,
                "fits": fit.fits,
                "reasons": list(fit.reasons),
                "risks": list(fit.risks),
                "cut": chosen.label,
                "subgraphs": [grp.name for grp in chosen.groups],
                **chosen.prediction.to_dict(),
            }
        )
    return rows
