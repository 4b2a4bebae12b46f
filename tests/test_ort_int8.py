"""ONNX Runtime static INT8 of the CPU part (softmax + DSNT): a runnable QDQ model close to FP32."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from dpupose.errors import DataError, ModelFileError
from dpupose.model.export import export_onnx
from dpupose.model.pose import CpuPart
from dpupose.quant.ort_int8 import quantize_cpu_subgraph


@pytest.fixture(scope="module")
def cpu_part(tmp_path_factory):
    path = tmp_path_factory.mktemp("cpu") / "cpu_part_fp32.onnx"
    return export_onnx(CpuPart(), torch.zeros(1, 16, 16, 16), path, ["logits"], ["coords", "heatmaps"], True)


def _logits(n, seed):
    rng = np.random.default_rng(seed)
    # Peaked heatmap logits like a trained model's: a bump per joint on a flat floor.
    yy, xx = np.mgrid[0:16, 0:16]
    out = np.empty((n, 16, 16, 16), np.float32)
    for i in range(n):
        for j in range(16):
            cy, cx = rng.uniform(2, 14, 2)
            out[i, j] = 6 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 4) - 2 + rng.normal(0, 0.1, (16, 16))
    return out


def test_quantize_cpu_subgraph_makes_a_close_int8_model(cpu_part, tmp_path):
    out = quantize_cpu_subgraph(cpu_part, tmp_path / "cpu_int8.onnx", [{"logits": _logits(4, s)} for s in range(3)])
    model = onnx.load(str(out))
    assert any(n.op_type == "QuantizeLinear" for n in model.graph.node)
    x = _logits(3, 9)
    c32, h32 = ort.InferenceSession(str(cpu_part)).run(None, {"logits": x})
    c8, h8 = ort.InferenceSession(str(out)).run(None, {"logits": x})
    assert c8.shape == c32.shape and h8.shape == h32.shape
    assert np.abs(c8 - c32).max() < 0.05  # normalized coordinates, i.e. < 0.4 heatmap pixel at 16 px
    assert list(tmp_path.iterdir()) == [out]  # no temporary files left


def test_bad_feeds_are_rejected(cpu_part, tmp_path):
    with pytest.raises(DataError, match="at least one"):
        quantize_cpu_subgraph(cpu_part, tmp_path / "a.onnx", [])
    with pytest.raises(DataError, match="takes"):
        quantize_cpu_subgraph(cpu_part, tmp_path / "a.onnx", [{"heat": _logits(1, 0)}])
    bad = _logits(1, 0)
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        quantize_cpu_subgraph(cpu_part, tmp_path / "a.onnx", [{"logits": bad}])
    with pytest.raises(ModelFileError, match="not found"):
        quantize_cpu_subgraph(tmp_path / "none.onnx", tmp_path / "a.onnx", [{"logits": bad}])
    assert not (tmp_path / "a.onnx").exists()
