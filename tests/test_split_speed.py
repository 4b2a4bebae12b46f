"""pytest-benchmark figures for the partitioner and one split frame (skipped by default: run with
`pytest tests/test_split_speed.py --benchmark-only`). Speeds are recorded, never asserted."""

from __future__ import annotations

import numpy as np
from split_models import S, save

from dpupose.runtime.backends import RunnerFactory
from dpupose.runtime.executor import SplitExecutor
from dpupose.split.partition import SplitOptions, split_model


def test_split_speed(benchmark, tmp_path):
    model = save("sigmoid", tmp_path / "m.onnx")
    result = benchmark(lambda: split_model(SplitOptions(model, "u96v2-b1600-pynq", tmp_path / "plan", optimize=True)))
    assert len(result.plan.subgraphs) >= 1


def test_split_frame_speed(benchmark, tmp_path):
    model = save("sigmoid", tmp_path / "m.onnx")
    plan = split_model(SplitOptions(model, "u96v2-b1600-pynq", tmp_path / "plan")).plan
    ex = SplitExecutor(plan, RunnerFactory(plan, "emulate").create_all())
    x = np.random.default_rng(0).normal(0, 1, (1, 3, S, S)).astype(np.float32)
    out = benchmark(ex.infer_tensor, x)
    ex.close()
    assert out["coords"].shape == (1, 16, 2)
