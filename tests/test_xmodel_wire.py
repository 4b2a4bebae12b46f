"""xmodel_wire.problem, against the protobuf package's own parser of XIR's serial_v2.Graph (tests/fakes/xir_pb):
a file it finds nothing wrong with parses, and one it refuses does not."""

from __future__ import annotations

import random
import sys

import pytest
import tinyplan
from google.protobuf.message import DecodeError

from dpupose.runtime.xmodel_wire import problem

sys.path.insert(0, str(tinyplan.FAKES))
try:
    import xir_pb
finally:
    sys.path.remove(str(tinyplan.FAKES))


def parses(data: bytes) -> bool:
    try:
        xir_pb.Graph.FromString(data)
    except DecodeError:  # protobuf's refusal; any other error is the oracle's own fault, not a verdict
        return False
    return True


def a_graph() -> bytes:
    """An xmodel's shape: ops with tensors and attributes of every AttrValue kind, a root with children."""
    g = xir_pb.Graph(graph_name="pose")
    root = g.subg_root
    root.subgraph_name = "root"
    for name, device in (("subgraph_image", "USER"), ("subgraph_conv0", "DPU"), ("subgraph_sig", "CPU")):
        child = root.subg_child.add(subgraph_name=name)
        child.op_name.append(name.split("_")[1])
        child.subg_attr["device"].string_value = device
        if device == "DPU":
            child.subg_attr["dpu_fingerprint"].uint64_value = 0x101000016010404
            child.subg_attr["dpu_name"].string_value = "DPUCZDX8G_ISA1_B1600"
    op = g.op_node.add(op_name="conv0", op_type="conv2d-fix")
    op.args.add(arg_name="input", arg_ops=["image"])
    t = op.output_tensor
    t.tensor_name = "conv0_fix"
    t.tensor_dim.extend([1, 64, 48, 32])
    t.data_type, t.tensor_bit_width = 2, 8
    t.tensor_attr["fix_point"].int32_value = -3
    a = op.op_attr
    a["b"].bool_value = True
    a["i64"].int64_value = -(2**40)
    a["f"].float_value = 0.5
    a["d"].double_value = -2.25
    a["bytes"].bytes_value.value = b"\xff\x00"
    a["fv"].float_vec_value.value.extend([1.5, -2.0])
    a["dv"].double_vec_value.value.extend([3.0])
    a["iv"].int32_vec_value.value.extend([1, -1, 300])
    a["sv"].string_vec_value.value.extend(["é", "b"])
    a["bv"].bytes_vec_value.value.add(value=b"\x80")
    a["m"].map_string_2_int32_vec_value.value["k"].value.extend([1, -2])
    a["ms"].map_string_2_string_value.value["key"] = "value"
    d = g.op_defs.add(name="conv2d-fix", annotation="a conv")
    d.input_args.add(name="input", occur_type=0, data_type=2)
    d.attrs.add(name="kernel", occur_type=1, list_length=2).default_value.int32_vec_value.value.extend([3, 3])
    return g.SerializeToString()


def test_an_xmodel_of_every_kind_of_field_parses_and_every_cut_of_it_does_not() -> None:
    data = a_graph()
    assert parses(data) and problem(data) is None
    for end in range(len(data)):
        cut = data[:end]
        assert (problem(cut) is None) == parses(cut), end
    assert problem(data[:-1]) is not None  # the last byte of a nested field: everything around it runs past it


def test_what_protobuf_refuses_is_refused_and_named() -> None:
    bad_utf8 = b"\x0a\x02\xc3\x28"  # graph_name: 0xc3 starts a 2-byte character, 0x28 does not continue it
    cases = {
        b"{}": "a fixed32 value cut off at byte 1",  # a JSON file: '{' starts group 15, '}' is a fixed32
        bad_utf8: "field 1, a string, not UTF-8 at byte 2",
        b"\x00": "field number 0 at byte 0",
        b"\x0e": "wire type 6 at byte 0",
        b"\x0c": "an end of group 1 outside it at byte 0",
        b"\x0b\x08\x01": "group 1 without its end at byte 3",
        b"\x08" + b"\xff" * 10 + b"\x01": "a varint longer than 10 bytes at byte 1",
        b"\xff\xff\xff\xff\xff\x01": "a tag longer than 5 bytes at byte 0",
        # a map<string, AttrValue> entry whose key is not UTF-8, inside the root subgraph
        b"\x52\x06\x2a\x04\x0a\x02\xc3\x28": "field 1, a string, not UTF-8 at byte 6",
        # an op's attribute "a" whose FloatVec holds 1 byte of packed floats (Graph.op_node, OPNode.op_attr,
        # the map entry's key and value, AttrValue.float_vec_value, FloatVec.value)
        bytes.fromhex("2a0d 1a0b 0a0161 1206 920103 0a0100"): "packed fixed32 values of 1 bytes at byte 14",
    }
    for data, expected in cases.items():
        assert not parses(data), data
        assert problem(data) == expected, data
    ok = {
        b"": "an empty graph",
        b"\x0b\x08\x01\x0c": "an unknown group, skipped",
        b"\x08\x05": "graph_name as a varint: an unknown field, skipped",
        b"\xa2\x06\x03abc": "field 100, unknown",
        xir_pb.Graph(graph_name="é").SerializeToString(): "UTF-8",
    }
    for data, what in ok.items():
        assert parses(data) and problem(data) is None, what


def test_nesting_deeper_than_protobufs_limit() -> None:
    def nested(levels: int) -> bytes:
        g = xir_pb.Graph()
        sub = g.subg_root
        for _ in range(levels):
            sub = sub.subg_child.add()
        sub.subgraph_name = "x"
        return g.SerializeToString()

    assert parses(nested(99)) and problem(nested(99)) is None
    assert not parses(nested(100))
    assert problem(nested(100)) == "messages nested more than 100 deep at byte 240"


@pytest.mark.parametrize("seed", [1, 2])
def test_random_damage_is_judged_as_protobuf_judges_it(seed: int) -> None:
    """Bytes changed at random in an xmodel-shaped file, and short random strings. Excluded: a 5-byte tag whose
    last byte has bits above the 32 a tag holds, which protobuf's C++ parser (XIR's) takes modulo 2**32 and the
    Python package refuses."""
    rng = random.Random(seed)
    data = a_graph()
    damaged = []
    for _ in range(3000):
        b = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(b))
            b[i] = rng.randrange(256) if rng.random() < 0.5 else b[i] ^ (1 << rng.randrange(8))
        damaged.append(bytes(b))
    damaged += [bytes(rng.randrange(256) for _ in range(rng.randint(1, 12))) for _ in range(5000)]
    refused = 0
    for d in damaged:
        found = problem(d)
        if found is None and not parses(d):
            assert wide_tag(d), d.hex()
            continue
        assert (found is None) == parses(d), (d.hex(), found)
        refused += found is not None
    assert refused > 1000  # the damage was of every kind, not only in values


def wide_tag(data: bytes) -> bool:
    """Whether some 5-byte run ending in a byte of 0x10..0x7f follows four bytes with the high bit set."""
    return any(all(x & 0x80 for x in data[i : i + 4]) and 0x10 <= data[i + 4] < 0x80 for i in range(len(data) - 4))


def large_xmodel(ops: int) -> bytes:
    """An xmodel of vai_c_xir's make: `ops` ops, each with its attributes, its tensor and its weights as bytes, and
    a DPU subgraph with its code and registers (tens of MB at 1,500 ops)."""
    g = xir_pb.Graph(graph_name="pose")
    child = g.subg_root.subg_child.add(subgraph_name="subgraph_dpu")
    child.subg_attr["mc_code"].bytes_value.value = bytes(4_000_000)
    child.subg_attr["reg"].map_string_2_bytes_value.value["REG_0"].value = bytes(range(256)) * 40_000
    child.subg_attr["ids"].int32_vec_value.value.extend(range(-50_000, 50_000))
    for i in range(ops):
        op = g.op_node.add(op_name=f"op{i}", op_type="conv2d-fix")
        op.args.add(arg_name="input", arg_ops=[f"op{i - 1}"])
        t = op.output_tensor
        t.tensor_name, t.data_type, t.tensor_bit_width = f"op{i}_fix", 2, 8
        t.tensor_dim.extend([1, 64, 48, 32])
        for j in range(8):
            t.tensor_attr[f"attr{j}"].int32_value = j
        for j in range(10):
            op.op_attr[f"kernel{j}"].int32_vec_value.value.extend([3, 3, 1, 1])
        op.op_attr["data"].bytes_value.value = bytes(8000)
    return g.SerializeToString()


def test_a_large_xmodel_passes() -> None:
    """Large bytes fields (the DPU code, registers), a long packed list, many ops: nothing wrong, as protobuf
    finds. How long the check takes is a benchmark (tests/test_split_speed.py), not asserted here."""
    data = large_xmodel(150)
    assert len(data) > 5_000_000 and parses(data)
    assert problem(data) is None


def test_a_five_byte_tag_is_read_modulo_2_to_the_32_as_xirs_protobuf_reads_it() -> None:
    """protobuf's C++ parser (XIR's) keeps a tag's low 32 bits: 80 80 80 80 10 is 2**32, tag 0, field number 0,
    refused; 88 80 80 80 10 is 2**32 + 8, field 1 as a varint (graph_name of another wire type: skipped).
    The Python package refuses both (it does not wrap), so these are worked by hand."""
    assert not parses(b"\x80\x80\x80\x80\x10")
    assert problem(b"\x80\x80\x80\x80\x10") == "field number 0 at byte 0"
    assert problem(b"\x88\x80\x80\x80\x10\x01") is None


def test_packed_varints_ending_in_a_continuation_byte_are_cut_off() -> None:
    """Graph.op_node -> OPNode.output_tensor -> Tensor.tensor_dim, packed: its last byte 0x80 says another byte
    follows, and none does (the quick look at the last byte must not take 0x80 for an end)."""
    for data, at in ((bytes.fromhex("2a05 2a03 1201 80"), 6), (bytes.fromhex("2a06 2a04 1202 0180"), 7)):
        assert not parses(data)
        assert problem(data) == f"a varint cut off at byte {at}"
    assert parses(bytes.fromhex("2a05 2a03 1201 00")) and problem(bytes.fromhex("2a05 2a03 1201 00")) is None


def test_groups_nested_deeper_than_protobufs_limit() -> None:
    """Unknown groups count towards protobuf's 100 levels as messages do: 100 nested groups parse, 101 do not."""
    assert parses(b"\x0b" * 100 + b"\x0c" * 100) and problem(b"\x0b" * 100 + b"\x0c" * 100) is None
    assert not parses(b"\x0b" * 101 + b"\x0c" * 101)
    assert problem(b"\x0b" * 101 + b"\x0c" * 101) == "messages nested more than 100 deep at byte 101"
