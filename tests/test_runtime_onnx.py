"""OnnxRunner, the CPU subgraphs' runner, on small hand-made ONNX files: the tensors it reads from the file,
the feeds it casts or refuses, the session options it sets, and the files it cannot load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from dpupose.errors import DataError, ModelFileError
from dpupose.runtime.onnx_runner import OnnxRunner


def _model(elem: int = TensorProto.FLOAT) -> bytes:
    """y = 2 * x + w, for x and w of shape (N, 2, 3) and the batch N any size."""
    x = helper.make_tensor_value_info("x", elem, ["N", 2, 3])
    w = helper.make_tensor_value_info("w", elem, ["N", 2, 3])
    y = helper.make_tensor_value_info("y", elem, ["N", 2, 3])
    two = helper.make_node("Constant", [], ["two"], value=helper.make_tensor("two_v", elem, [], [2]))
    nodes = [two, helper.make_node("Mul", ["x", "two"], ["x2"]), helper.make_node("Add", ["x2", "w"], ["y"])]
    graph = helper.make_graph(nodes, "affine", [x, w], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="tests")
    return model.SerializeToString()


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.onnx"
    path.write_bytes(_model())
    return path


def test_the_file_s_tensors_are_read_with_an_unnamed_batch_as_1_and_any_batch_runs(model_file: Path) -> None:
    runner = OnnxRunner(model_file)
    assert [(t.name, t.shape, t.dtype, t.fix_point, t.layout) for t in runner.inputs] == [
        ("x", (1, 2, 3), "float32", None, "NCD"),
        ("w", (1, 2, 3), "float32", None, "NCD"),
    ]
    assert [(t.name, t.shape, t.dtype) for t in runner.outputs] == [("y", (1, 2, 3), "float32")]
    # a batch of 3, x given as float64 and w as int64: each cast to the file's float32
    x = np.arange(18, dtype=np.float64).reshape(3, 2, 3) / 4
    w = np.arange(18, dtype=np.int64).reshape(3, 2, 3) - 9
    (y,) = runner.run({"x": x, "w": w}).values()
    assert y.dtype == np.float32
    want = [[[2 * x[n, c, k] + w[n, c, k] for k in range(3)] for c in range(2)] for n in range(3)]  # elementwise
    np.testing.assert_array_equal(y, want)


def test_feeds_that_do_not_fit_are_refused_naming_the_input(model_file: Path) -> None:
    runner = OnnxRunner(model_file)
    x = np.zeros((1, 2, 3), np.float32)
    with pytest.raises(DataError, match=r"^model.onnx: missing input 'w'$"):
        runner.run({"x": x})
    with pytest.raises(DataError, match=r"^model.onnx: input 'w' has shape \(1, 3, 2\), expected \(N, 2, 3\)$"):
        runner.run({"x": x, "w": np.zeros((1, 3, 2), np.float32)})
    with pytest.raises(DataError, match=r"input 'x' has shape \(1, 2, 3, 1\), expected \(N, 2, 3\)"):
        runner.run({"x": x[..., None], "w": x})


def test_a_closed_runner_says_so(model_file: Path) -> None:
    feeds = {"x": np.ones((1, 2, 3), np.float32), "w": np.ones((1, 2, 3), np.float32)}
    with OnnxRunner(model_file) as runner:  # the context manager closes it
        np.testing.assert_array_equal(runner.run(feeds)["y"], np.full((1, 2, 3), 3.0))
    with pytest.raises(RuntimeError, match="runner is closed"):
        runner.run(feeds)


def test_threads_sets_onnx_runtime_s_intra_op_threads(model_file: Path) -> None:
    assert OnnxRunner(model_file, threads=2)._session.get_session_options().intra_op_num_threads == 2
    assert OnnxRunner(model_file)._session.get_session_options().intra_op_num_threads == 0  # ONNX Runtime's default
    for threads in (0, -1):
        with pytest.raises(ValueError, match="threads must be at least 1"):
            OnnxRunner(model_file, threads=threads)


def test_the_bytes_given_are_run_and_the_path_only_names_them(tmp_path: Path) -> None:
    """The plan hands over the bytes it checked: they run, not whatever is at the path (here nothing)."""
    runner = OnnxRunner(tmp_path / "gone.onnx", model=_model())
    feeds = {"x": np.ones((1, 2, 3), np.float32), "w": np.zeros((1, 2, 3), np.float32)}
    np.testing.assert_array_equal(runner.run(feeds)["y"], np.full((1, 2, 3), 2.0))
    with pytest.raises(ModelFileError, match=r"^ONNX file .*gone\.onnx is missing$"):
        OnnxRunner(tmp_path / "gone.onnx")


def test_a_file_onnx_runtime_cannot_load_is_one_line_naming_it(tmp_path: Path, monkeypatch) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf")
    with pytest.raises(ModelFileError, match=r"^ONNX Runtime cannot load .*bad\.onnx: .*INVALID_PROTOBUF"):
        OnnxRunner(bad)

    def fails(*args, **kwargs):  # ONNX Runtime's messages can run over several lines: the first is kept
        raise RuntimeError("first line\nsecond line")

    monkeypatch.setattr(ort, "InferenceSession", fails)
    with pytest.raises(ModelFileError) as error:
        OnnxRunner(tmp_path / "gone.onnx", model=_model())
    assert str(error.value) == f"ONNX Runtime cannot load {tmp_path / 'gone.onnx'}: first line"


def test_a_tensor_of_a_type_the_runtime_does_not_exchange_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "half.onnx"
    path.write_bytes(_model(TensorProto.FLOAT16))
    with pytest.raises(ModelFileError, match=r"^tensor 'x' has type tensor\(float16\), which the runtime does not"):
        OnnxRunner(path)
