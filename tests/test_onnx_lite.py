"""The board's ONNX reader against the `onnx` package on models with every field kind it decodes."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from dpupose.errors import ModelFileError
from dpupose.runtime.onnx_lite import add_input_offsets, load_model, offset_names


def _model() -> onnx.ModelProto:
    w = numpy_helper.from_array(np.arange(-12, 12, dtype=np.int8).reshape(2, 3, 2, 2), "w")
    # int8 stored in int32_data (not raw) and float stored in float_data, as some writers do.
    b = helper.make_tensor("b", TensorProto.INT8, [2], [-128, 127])
    s = helper.make_tensor("s", TensorProto.FLOAT, [], [0.0625])
    big = numpy_helper.from_array(np.array([-(2**40), 3], dtype=np.int64), "big")
    nodes = [
        helper.make_node("DequantizeLinear", ["w", "s"], ["wf"], name="dq"),
        helper.make_node(
            "Conv",
            ["x", "wf"],
            ["y"],
            name="conv",
            pads=[1, 0, 1, 0],
            strides=[2, 1],
            group=1,
            kernel_shape=[2, 2],
        ),
        helper.make_node("LeakyRelu", ["y"], ["z"], name="act", alpha=0.1015625),
        helper.make_node("DepthToSpace", ["z"], ["o"], blocksize=2, mode="CRD"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("o", TensorProto.FLOAT, ["batch", 1, 8, 16])],
        [w, b, s, big],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_reader_agrees_with_onnx_package():
    m = _model()
    g = load_model(m.SerializeToString())
    assert g.opset == 17
    assert [n.op_type for n in g.nodes] == [n.op_type for n in m.graph.node]
    assert [(n.inputs, n.outputs) for n in g.nodes] == [(list(n.input), list(n.output)) for n in m.graph.node]
    for mine, ref in zip(g.nodes, m.graph.node):
        want = {a.name: helper.get_attribute_value(a) for a in ref.attribute}
        want = {k: v.decode() if isinstance(v, bytes) else v for k, v in want.items()}
        assert mine.attrs.keys() == want.keys()
        for k, v in want.items():
            assert mine.attrs[k] == pytest.approx(v)
    for t in m.graph.initializer:
        ref = numpy_helper.to_array(t)
        assert g.initializers[t.name].dtype == ref.dtype
        np.testing.assert_array_equal(g.initializers[t.name], ref)
    assert g.inputs[0].name == "x" and g.inputs[0].shape == ("batch", 3, 8, 8) and g.inputs[0].elem_type == 1
    assert g.outputs[0].shape == ("batch", 1, 8, 16)


def test_reader_reads_a_torch_export(tmp_path):
    torch = pytest.importorskip("torch")
    from dpupose.model.export import export_onnx

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU6())
    path = export_onnx(net, torch.zeros(1, 3, 8, 8), tmp_path / "m.onnx", ["image"], ["out"])
    ref = onnx.load(str(path))
    g = load_model(path)
    assert [n.op_type for n in g.nodes] == [n.op_type for n in ref.graph.node]
    for t in ref.graph.initializer:
        np.testing.assert_array_equal(g.initializers[t.name], numpy_helper.to_array(t))


def test_reader_rejects_broken_files(tmp_path):
    data = _model().SerializeToString()
    with pytest.raises(ModelFileError, match="truncated"):
        load_model(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "missing.onnx")
    half = tmp_path / "half.onnx"  # a file is named, not only what is wrong inside it
    half.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=r"half\.onnx: truncated ONNX protobuf .*; the file is damaged"):
        load_model(half)
    ext = _model()
    ext.graph.initializer[0].data_location = TensorProto.EXTERNAL
    with pytest.raises(ModelFileError, match="external data"):
        load_model(ext.SerializeToString())


def test_add_input_offsets_changes_only_the_named_nodes_input():
    ort = pytest.importorskip("onnxruntime")
    data = _model().SerializeToString()
    assert add_input_offsets(data, {}) == data  # every field written back as it was read
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Identity", ["r"], ["shifted"], name="target"),
        helper.make_node("Neg", ["r"], ["other"], name="other_reader"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [
            helper.make_tensor_value_info("shifted", TensorProto.FLOAT, [2, 3]),
            helper.make_tensor_value_info("other", TensorProto.FLOAT, [2, 3]),
            helper.make_tensor_value_info("r", TensorProto.FLOAT, [2, 3]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    out = add_input_offsets(model.SerializeToString(), {"shifted": 0.25, "not_there": 1.0})
    edited = onnx.load_model_from_string(out)
    onnx.checker.check_model(edited, full_check=True)
    const, total = offset_names("shifted")
    assert [(n.op_type, list(n.input), list(n.output)) for n in edited.graph.node] == [
        ("Relu", ["x"], ["r"]),
        ("Add", ["r", const], [total]),
        ("Identity", [total], ["shifted"]),
        ("Neg", ["r"], ["other"]),
    ]
    (init,) = edited.graph.initializer
    assert init.name == const and numpy_helper.to_array(init).dtype == np.float32
    x = np.array([[-1.0, 0.0, 0.5], [2.0, -3.0, 1.5]], np.float32)
    sess = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    shifted, other, r = sess.run(["shifted", "other", "r"], {"x": x})
    np.testing.assert_array_equal(shifted, np.maximum(x, 0) + 0.25)
    np.testing.assert_array_equal(other, -np.maximum(x, 0))
    np.testing.assert_array_equal(r, np.maximum(x, 0))
    with pytest.raises(ModelFileError, match="truncated ONNX protobuf"):
        add_input_offsets(b"\x0a\x05ab", {"shifted": 0.25})
