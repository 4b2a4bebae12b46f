"""The board's ONNX reader against the `onnx` package on models with every field kind it decodes."""

import contextlib
import re
import struct

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


def test_int64_values_at_both_ends_are_read_from_varints():
    # int64_data travels as varints of the two's complement: -2**63 is the varint 2**63
    t = helper.make_tensor("v", TensorProto.INT64, [4], [-(2**63), 2**63 - 1, -1, 0])
    graph = helper.make_graph([], "g", [], [helper.make_tensor_value_info("v", TensorProto.INT64, [4])], [t])
    g = load_model(helper.make_model(graph).SerializeToString())
    assert g.initializers["v"].dtype == np.int64
    assert g.initializers["v"].tolist() == [-(2**63), 2**63 - 1, -1, 0]


def test_a_varint_longer_than_any_64_bit_value_is_malformed_not_read_on():
    # field 1, length-delimited, its length a varint of 12 continuation bytes, then one that ends it
    with pytest.raises(ModelFileError, match="varint too long"):
        load_model(b"\x0a" + b"\xff" * 12 + b"\x01" + b"\x00" * 64)


def test_a_value_count_other_than_the_shape_s_and_float16_bit_patterns():
    short = helper.make_tensor("short", TensorProto.FLOAT, [3], [1.0, 2.0, 3.0])
    del short.float_data[2]  # 2 values for 3
    graph = helper.make_graph([], "g", [], [], [short])
    with pytest.raises(ModelFileError, match=r"initializer 'short' has 2 values for shape \[3\]"):
        load_model(helper.make_model(graph).SerializeToString())
    # float16 without raw_data travels as its bit patterns in int32_data (0x3E00 is 1.5, 0xC000 is -2)
    half = helper.make_tensor("half", TensorProto.FLOAT16, [2], np.array([1.5, -2.0], np.float16))
    assert list(half.int32_data) == [0x3E00, 0xC000]
    graph = helper.make_graph([], "g", [], [], [half])
    got = load_model(helper.make_model(graph).SerializeToString()).initializers["half"]
    assert got.dtype == np.float16 and got.tolist() == [1.5, -2.0]


def test_the_opset_of_the_default_domain_by_either_name_and_initializers_listed_as_inputs():
    t = numpy_helper.from_array(np.ones((2,), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2]) for n in ("x", "w")],  # w listed, as IR 3 did
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [t],
    )
    ops = [helper.make_opsetid("com.microsoft", 1), helper.make_opsetid("ai.onnx", 13)]
    g = load_model(helper.make_model(graph, opset_imports=ops).SerializeToString())
    assert g.opset == 13
    assert [i.name for i in g.inputs] == ["x"]


def test_an_attribute_of_type_tensor_without_its_tensor_is_none():
    attr = onnx.AttributeProto(name="value", type=onnx.AttributeProto.TENSOR)
    node = helper.make_node("Constant", [], ["c"])
    node.attribute.append(attr)
    graph = helper.make_graph([node], "g", [], [helper.make_tensor_value_info("c", TensorProto.FLOAT, [])])
    (n,) = load_model(helper.make_model(graph).SerializeToString()).nodes
    assert n.attrs == {"value": None}


def test_an_offset_named_by_a_node_s_first_of_two_outputs_is_added_to_its_input():
    ort = pytest.importorskip("onnxruntime")
    split = helper.make_node("Split", ["x"], ["lo", "hi"], axis=1, num_outputs=2)
    graph = helper.make_graph(
        [split],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 2]) for n in ("lo", "hi")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    out = add_input_offsets(model.SerializeToString(), {"lo": 0.5})
    edited = onnx.load_model_from_string(out)
    assert [n.op_type for n in edited.graph.node] == ["Add", "Split"]
    x = np.array([[1.0, 2.0, 3.0, 4.0]], np.float32)
    lo, hi = ort.InferenceSession(out, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    assert lo.tolist() == [[1.5, 2.5]] and hi.tolist() == [[3.5, 4.5]]


def test_a_dimension_of_neither_size_nor_name_is_unknown_not_0():
    vi = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, 0])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [vi], [])
    (x,) = load_model(helper.make_model(graph).SerializeToString()).inputs
    assert x.shape == ("?", 3, 0)


def test_a_graph_output_that_is_not_a_tensor_has_no_element_type_or_shape():
    seq = helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, [2, 3])
    graph = helper.make_graph([helper.make_node("SequenceEmpty", [], ["s"])], "g", [], [seq])
    (s,) = load_model(helper.make_model(graph).SerializeToString()).outputs
    assert (s.name, s.elem_type, s.shape) == ("s", 0, ())


def _pb_varint(v: int) -> bytes:
    out = b""
    while v > 0x7F:
        out += bytes([v & 0x7F | 0x80])
        v >>= 7
    return out + bytes([v])


def _pb(num: int, wt: int, value: int | bytes) -> bytes:
    """One protobuf field written by hand: varint (0), fixed64 (1), length-delimited (2) or fixed32 (5)."""
    key = _pb_varint(num << 3 | wt)
    if wt == 0:
        return key + _pb_varint(value)
    if wt == 2:
        return key + _pb_varint(len(value)) + value
    return key + value


def _in_graph(*fields: bytes) -> bytes:
    """A ModelProto whose graph holds these fields."""
    return _pb(7, 2, b"".join(fields))


def test_a_field_of_the_wrong_wire_type_or_a_value_past_its_type_is_a_damaged_file_not_a_traceback(tmp_path):
    """A damaged file (a byte changed) whose field has another wire type than ONNX's gave a TypeError or an
    AttributeError (an int where bytes were read: its .decode(), len()), and one whose varint held more than
    64 bits, or a float16 bit pattern past 16 bits, an OverflowError."""
    name_as_varint = _in_graph(_pb(1, 2, _pb(3, 0, 5)))  # NodeProto.name, a string, written as the number 5
    with pytest.raises(ModelFileError, match=r"^malformed ONNX protobuf \(field 3 of wire type 0\)$"):
        load_model(name_as_varint)
    path = tmp_path / "m.onnx"
    path.write_bytes(name_as_varint)
    with pytest.raises(ModelFileError, match=rf"^{re.escape(str(path))}: malformed .*; the file is damaged or not"):
        load_model(path)
    with pytest.raises(ModelFileError, match=r"^malformed ONNX protobuf \(field 2 of wire type 0\)$"):
        add_input_offsets(_in_graph(_pb(1, 2, _pb(1, 2, b"x") + _pb(2, 0, 5))), {"y": 0.5})
    # protobuf keeps a varint's low 64 bits: 2**65 - 1 in ten bytes is read as -1, as the onnx package reads it
    tensor = _pb(1, 0, 1) + _pb(2, 0, TensorProto.INT64) + _pb(8, 2, b"v") + _pb(7, 0, 2**65 - 1)
    assert list(TensorProto.FromString(tensor).int64_data) == [-1]
    assert load_model(_in_graph(_pb(5, 2, tensor))).initializers["v"].tolist() == [-1]
    half = _pb(1, 0, 1) + _pb(2, 0, TensorProto.FLOAT16) + _pb(8, 2, b"h") + _pb(5, 0, 2**64 - 128)  # -128
    with pytest.raises(ModelFileError, match=r"^cannot decode ONNX model \(.*-128.*\); the file is corrupt or not"):
        load_model(_in_graph(_pb(5, 2, half)))
    # every byte of a model changed in its low three bits (a wire type's): a model or a ModelFileError
    data = _model().SerializeToString()
    for pos in range(len(data)):
        for bits in range(1, 8):
            changed = data[:pos] + bytes([data[pos] ^ bits]) + data[pos + 1 :]
            for read in (load_model, lambda d: add_input_offsets(d, {"y": 0.5, "wf": 1.0})):
                with contextlib.suppress(ModelFileError):
                    read(changed)


def _one_node(*attrs: onnx.AttributeProto, domain: str = "") -> object:
    node = helper.make_node("Custom", ["x"], ["y"], name="n", domain=domain)
    node.attribute.extend(attrs)
    (n,) = load_model(helper.make_model(helper.make_graph([node], "g", [], [])).SerializeToString()).nodes
    return n


def test_attributes_whose_value_or_type_is_left_out_and_negative_ints():
    A = onnx.AttributeProto
    # a writer of onnx.proto3 leaves out a value equal to its default: the field's 0.0, 0 and ''
    n = _one_node(A(name="alpha", type=A.FLOAT), A(name="axis", type=A.INT), A(name="mode", type=A.STRING))
    assert n.attrs == {"alpha": 0.0, "axis": 0, "mode": ""}
    assert [type(v) for v in n.attrs.values()] == [float, int, str]
    # an INT travels as the varint of its 64-bit two's complement: -1 is 2**64 - 1
    n = _one_node(helper.make_attribute("axis", -1), helper.make_attribute("pads", [-2, 3]))
    assert n.attrs == {"axis": -1, "pads": [-2, 3]}
    # attributes of IR version 1 have no type: the value that is there is the value, a scalar or a list
    n = _one_node(A(name="k", i=5), A(name="f", f=0.5), A(name="s", s=b"CRD"))
    assert n.attrs == {"k": 5, "f": 0.5, "s": "CRD"}
    n = _one_node(A(name="fs", floats=[1.5, -2.0]), A(name="is", ints=[3, -4]))
    assert n.attrs == {"fs": [1.5, -2.0], "is": [3, -4]}


def test_a_node_s_name_and_domain_and_the_default_domain_s_opset_listed_first():
    n = _one_node(domain="com.microsoft")
    assert (n.name, n.domain, n.op_type, n.inputs, n.outputs) == ("n", "com.microsoft", "Custom", ["x"], ["y"])
    ops = [helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(helper.make_graph([], "g", [], []), opset_imports=ops)
    assert load_model(model.SerializeToString()).opset == 13


def test_doubles_packed_or_not_and_unknown_fixed_width_fields_are_read_as_written():
    # 0.1 is no float32: read through float32 it would be 0.10000000149011612
    t = helper.make_tensor("d", TensorProto.DOUBLE, [2], [0.1, -2.5])
    assert list(t.double_data) == [0.1, -2.5] and not t.raw_data
    graph = helper.make_graph([], "g", [], [], [t])
    got = load_model(helper.make_model(graph).SerializeToString()).initializers["d"]
    assert got.dtype == np.float64 and got.tolist() == [0.1, -2.5]
    # the same tensor by hand, its doubles as unpacked fixed64 fields (protobuf readers take both) with an
    # unknown fixed64 field (99) and fixed32 field (98) between them, each skipped whole
    tensor = b"".join(
        [
            _pb(1, 0, 2),  # dims [2]
            _pb(2, 0, TensorProto.DOUBLE),
            _pb(8, 2, b"d"),
            _pb(10, 1, struct.pack("<d", 0.1)),
            _pb(99, 1, struct.pack("<d", 7.0)),
            _pb(98, 5, struct.pack("<f", 7.0)),
            _pb(10, 1, struct.pack("<d", -2.5)),
        ]
    )
    got = load_model(_in_graph(_pb(5, 2, tensor))).initializers["d"]
    assert got.dtype == np.float64 and got.tolist() == [0.1, -2.5]


def test_an_initializer_is_a_writable_array_of_its_own():
    data = _model().SerializeToString()
    w = load_model(data).initializers["w"]  # from raw_data
    assert w.flags.writeable
    w[0, 0, 0, 0] = 99
    assert load_model(data).initializers["w"][0, 0, 0, 0] == -12


def test_what_the_reader_does_not_read_is_refused_and_data_that_is_no_onnx_is_named(tmp_path):
    bf16 = helper.make_tensor("h", TensorProto.BFLOAT16, [1], [1.0])
    with pytest.raises(ModelFileError, match=r"^initializer 'h' has unsupported data type 16$"):
        load_model(helper.make_model(helper.make_graph([], "g", [], [], [bf16])).SerializeToString())
    sparse = helper.make_sparse_tensor(
        helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0]),
        helper.make_tensor("i", TensorProto.INT64, [1], [0]),
        [4],
    )
    graph = helper.make_graph([], "g", [], [])
    graph.sparse_initializer.append(sparse)
    with pytest.raises(ModelFileError, match=r"^sparse initializers are not supported by this reader$"):
        load_model(helper.make_model(graph).SerializeToString())
    branch = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "b", [], [])
    node = helper.make_node("Loop", ["n", "c"], ["y"], body=branch)
    with pytest.raises(ModelFileError, match=r"^attribute 'body' holds a sub-graph or tensor list"):
        load_model(helper.make_model(helper.make_graph([node], "g", [], [])).SerializeToString())

    with pytest.raises(ModelFileError, match=r"^not an ONNX model \(no graph\); check the file$"):
        load_model(b"")
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(_pb(1, 0, 7))  # an ir_version and nothing else: not called damaged
    with pytest.raises(
        ModelFileError, match=rf"^{re.escape(str(empty))}: not an ONNX model \(no graph\); check the file$"
    ):
        load_model(empty)
    # a varint cut off at the end of the data, and wire type 3 (a group: no ONNX field is one)
    with pytest.raises(ModelFileError, match=r"^truncated ONNX protobuf \(varint runs past the end\)$"):
        load_model(b"\x08\x96")
    with pytest.raises(ModelFileError, match=r"^malformed ONNX protobuf \(wire type 3\)$"):
        load_model(b"\x0b")
    # a packed float list of 5 bytes (struct's error), and a node name that is not UTF-8: the file is named
    short = _in_graph(_pb(5, 2, _pb(1, 0, 1) + _pb(2, 0, TensorProto.FLOAT) + _pb(4, 2, b"\0\0\x80\x3f\0")))
    latin = _in_graph(_pb(1, 2, _pb(3, 2, "né".encode("latin-1"))))
    for name, data, reason in (("short", short, "unpack requires"), ("latin", latin, "'utf-8' codec can't decode")):
        with pytest.raises(
            ModelFileError, match=rf"^cannot decode ONNX model \({reason}.*; the file is corrupt or not ONNX$"
        ):
            load_model(data)
        path = tmp_path / f"{name}.onnx"
        path.write_bytes(data)
        with pytest.raises(ModelFileError, match=rf"^{re.escape(str(path))}: cannot decode ONNX model \({reason}"):
            load_model(path)


def test_add_input_offsets_passes_over_a_node_without_inputs_and_names_undecodable_data():
    graph = helper.make_graph(
        [helper.make_node("Constant", [], ["c"], value=helper.make_tensor("v", TensorProto.FLOAT, [], [1.0]))],
        "g",
        [],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [])],
    )
    data = helper.make_model(graph).SerializeToString()
    assert add_input_offsets(data, {"c": 0.5}) == data  # nothing to add the offset to
    latin = _in_graph(_pb(1, 2, _pb(1, 2, b"x") + _pb(2, 2, "né".encode("latin-1"))))
    with pytest.raises(ModelFileError, match=r"^cannot decode ONNX model \('utf-8' codec can't decode .*; the file is"):
        add_input_offsets(latin, {"c": 0.5})
