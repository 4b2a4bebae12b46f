"""pytest-benchmark figures for the partitioner, one split frame, and the CPU work around the DPU on the
shipped plan: pre-processing a 640 x 480 frame into the DPU's int8 input, the DPU output's conversion for
ONNX Runtime, and the check of a large xmodel that the board runs before XIR reads it (skipped by default: run
with `pytest tests/test_split_speed.py --benchmark-only`). Speeds are recorded, never asserted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from split_models import S, save

from dpupose.runtime.backends import RunnerFactory
from dpupose.runtime.executor import SplitExecutor, convert
from dpupose.split.partition import SplitOptions, split_model
from dpupose.split.plan import load_plan

SHIPPED_PLAN = Path(__file__).resolve().parents[1] / "models" / "dpupose-synth" / "split"


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


def test_board_preprocess_speed(benchmark):
    """A camera-sized frame to the DPU's int8 NHWC input (what the preprocess stage does on the board)."""
    plan = load_plan(SHIPPED_PLAN)
    ex = SplitExecutor(plan, RunnerFactory(plan, "emulate").create_all())
    frame = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    _, env = benchmark(ex.start, frame)
    assert env[plan.input.name][0].dtype == np.int8


def test_dpu_to_cpu_boundary_speed(benchmark):
    """The shipped plan's dpu0 output (int8 NHWC) as cpu0 takes it (float32 NCHW)."""
    plan = load_plan(SHIPPED_PLAN)
    ex = SplitExecutor(plan, RunnerFactory(plan, "emulate").create_all())
    src, dst = ex.runners["dpu0"].outputs[0], ex.runners["cpu0"].inputs[0]
    q = np.random.default_rng(0).integers(-128, 128, src.shape, dtype=np.int8)
    x = benchmark(convert, q, src, dst)
    assert x.shape == dst.shape and x.dtype == np.float32


def test_xmodel_check_speed(benchmark):
    """xmodel_wire.problem on a 27 MB xmodel of 1,500 ops, which the board runs once before each run (a fraction
    of a second on this PC; the Cortex-A53 is several times slower)."""
    from test_xmodel_wire import large_xmodel

    from dpupose.runtime.xmodel_wire import problem

    data = large_xmodel(1500)
    assert benchmark(problem, data) is None
