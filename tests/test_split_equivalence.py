"""One set of inputs through every execution level: FP32 torch, CPU ONNX (FP32 and the QDQ model), and
the split plan (emulated DPU + ONNX Runtime), on a quickly quantized small pose network.

Tolerances (coords are normalized to (-1, 1); 0.01 is 0.3 px at this 64 px input):
- FP32 torch vs ONNX Runtime FP32: 1e-4 (float reassociation only).
- split with the emulator's ONNX Runtime path vs the split with the exact emulator: 1e-6 (the fast path
  rounds ties up as the DPU does, and this network's adds align their inputs exactly). It runs the QDQ
  graph unfused: ONNX Runtime's fused int8 kernels depend on the CPU (without VNNI, on x86, their 16-bit
  sums saturate in places).
- split with the exact DPU emulator vs the whole QDQ model in ONNX Runtime: mean 0.05, max 0.2. The DPU
  rounds half up (and aligns element-wise add inputs with truncation), where ONNX Runtime rounds half to
  even; through the ~60 layers the int8 logits differ by several LSB.
- split (exact) vs FP32 torch: mean joint distance 0.1 (quantization error of a randomly initialised
  network, whose flat heatmaps make coords sensitive; a trained model does better).
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from quant_helpers import sane_model, save_checkpoint

from dpupose.data.sources import load_data
from dpupose.eval.evaluate import iter_batches
from dpupose.quant.pipeline import QuantizeConfig, quantize
from dpupose.runtime.backends import RunnerFactory
from dpupose.runtime.executor import SplitExecutor
from dpupose.split.partition import SplitOptions, split_model

N = 6


@pytest.fixture(scope="module")
def setup(tmp_path_factory, synth_root):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tmp = tmp_path_factory.mktemp("equiv")
        model = sane_model()
        ckpt = save_checkpoint(model, tmp / "tiny.pt")
        qdir = tmp / "q"
        quantize(QuantizeConfig(ckpt, qdir, data_root=synth_root, num_calib=8, batch_size=4, summary_samples=1))
        plan = split_model(SplitOptions(qdir / "model_qdq.onnx", "u96v2-b1600-pynq", tmp / "plan")).plan
        size = model.config.input_size
        split = load_data("synthetic", "valid", synth_root)
        images, *_ = next(iter_batches(split.records[:N], split.image_dir, size, N))
        with torch.no_grad():
            coords, heatmaps = model(torch.from_numpy(images))
    finally:
        torch.set_num_threads(threads)
    return {"q": qdir, "plan": plan, "images": images, "torch": (coords.numpy(), heatmaps.numpy())}


def _ort(path, images):
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC  # as the emulator's fast path
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    outs = [sess.run(["coords", "heatmaps"], {"image": images[i : i + 1]}) for i in range(len(images))]
    return np.concatenate([o[0] for o in outs]), np.concatenate([o[1] for o in outs])


def _split(plan, images, exact: bool):
    ex = SplitExecutor(plan, RunnerFactory(plan, "emulate", exact=exact).create_all())
    try:
        outs = [ex.infer_tensor(images[i : i + 1]) for i in range(len(images))]
    finally:
        ex.close()
    return np.concatenate([o["coords"] for o in outs]), np.concatenate([o["heatmaps"] for o in outs])


def test_every_level_agrees_within_its_tolerance(setup):
    plan, images = setup["plan"], setup["images"]
    assert [sg.device for sg in plan.subgraphs] == ["dpu", "cpu"]
    t_coords, t_heat = setup["torch"]
    f_coords, f_heat = _ort(setup["q"] / "model_fp32.onnx", images)
    np.testing.assert_allclose(f_coords, t_coords, atol=1e-4)
    np.testing.assert_allclose(f_heat, t_heat, atol=1e-4)

    q_coords, q_heat = _ort(setup["q"] / "model_qdq.onnx", images)
    fast_coords, fast_heat = _split(plan, images, exact=False)
    e_coords, e_heat = _split(plan, images, exact=True)
    np.testing.assert_allclose(fast_coords, e_coords, atol=1e-6)
    np.testing.assert_allclose(fast_heat, e_heat, atol=1e-6)
    # Not vacuous: ONNX Runtime's own rounding (ties to even) gives other coordinates.
    assert np.abs(fast_coords - q_coords).max() > 1e-3

    dist = np.abs(e_coords - q_coords)
    assert dist.mean() <= 0.05 and dist.max() <= 0.2
    assert np.allclose(e_heat.sum(axis=(2, 3)), 1.0, atol=1e-4)
    joint_error = np.linalg.norm(e_coords - t_coords, axis=-1)
    assert joint_error.mean() <= 0.1
    # Not vacuous: the INT8 results are not the FP32 ones.
    assert joint_error.mean() > 1e-4
