"""ONNX Runtime static INT8 of the CPU part (softmax + DSNT): a runnable QDQ model close to FP32."""

from pathlib import Path

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
    bad[0, 0, 0, 0] = -np.inf
    with pytest.raises(DataError, match="input 'logits' contains NaN or infinity"):
        quantize_cpu_subgraph(cpu_part, tmp_path / "a.onnx", [{"logits": _logits(1, 1)}, {"logits": bad}])
    with pytest.raises(ModelFileError, match="not found"):
        quantize_cpu_subgraph(tmp_path / "none.onnx", tmp_path / "a.onnx", [{"logits": bad}])
    assert not (tmp_path / "a.onnx").exists()


def _conv_model(path):
    """x (1, 4, 6, 6) -> Conv 4 -> 8, 3 x 3 with a bias -> Relu -> y: a CPU subgraph with weights."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(0, 0.3, (8, 4, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.normal(0, 0.1, 8).astype(np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])],
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 6, 6])],
        [w, b],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_the_int8_model_is_qdq_with_int8_per_tensor_parameters_and_leaves_the_source_folder_alone(
    tmp_path, monkeypatch
):
    src = tmp_path / "plan"
    src.mkdir()
    fp32 = _conv_model(src / "cpu0.onnx")
    feeds = [{"x": np.random.default_rng(s).normal(0, 1, (1, 4, 6, 6))} for s in range(3)]  # float64 taken too
    written = []  # quantize_static writes <stem>-inferred.onnx beside the model it reads (then deletes it)
    infer = onnx.shape_inference.infer_shapes_path

    def recording(source, target, *args, **kwargs):
        written.append(Path(target))
        return infer(source, target, *args, **kwargs)

    monkeypatch.setattr(onnx.shape_inference, "infer_shapes_path", recording)
    out = quantize_cpu_subgraph(fp32, tmp_path / "cpu_int8.onnx", feeds)
    assert written and all(w.parent != src for w in written), written
    assert sorted(p.name for p in src.iterdir()) == ["cpu0.onnx"]
    model = onnx.load(str(out))
    ops = [n.op_type for n in model.graph.node]
    assert "Conv" in ops and "QuantizeLinear" in ops and not any(op.startswith("QLinear") for op in ops), ops
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    dq = {n.output[0]: n for n in model.graph.node if n.op_type == "DequantizeLinear"}
    (conv,) = [n for n in model.graph.node if n.op_type == "Conv"]
    weight = dq[conv.input[1]]
    assert inits[weight.input[0]].dtype == np.int8 and inits[weight.input[1]].shape == ()  # int8, per tensor
    for n in model.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and n.input[2] in inits and n is not dq[conv.input[2]]:
            assert inits[n.input[1]].shape == () and inits[n.input[2]].dtype == np.int8, n.name
    x = np.random.default_rng(9).normal(0, 1, (1, 4, 6, 6)).astype(np.float32)
    (y32,) = ort.InferenceSession(str(fp32)).run(None, {"x": x})
    (y8,) = ort.InferenceSession(str(out)).run(None, {"x": x})
    assert np.abs(y8 - y32).max() < 0.05 * np.abs(y32).max()
