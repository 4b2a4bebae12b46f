"""A minimal ONNX reader for the board: decodes the protobuf wire format of a ModelProto into plain Python
objects, with numpy arrays for initializers. No `onnx` package needed (the board has numpy and onnxruntime
only, and onnxruntime exposes no graph structure or initializer values).

Only what a runner needs is decoded: the graph's nodes (op_type, inputs, outputs, attributes), initializers,
graph inputs/outputs and value_info with their shapes, and the opset. External data, sparse initializers
and sub-graphs are not supported (a DPU subgraph has none); they raise ModelFileError.

`add_input_offsets` writes one edit back: a float32 constant added to the first input of named nodes (an
Add node each), every other field copied as it was read.

Field numbers follow onnx/onnx.proto3 (ModelProto.graph = 7, GraphProto.node = 1, .initializer = 5,
.input = 11, .output = 12; NodeProto.input = 1, .output = 2, .name = 3, .op_type = 4, .attribute = 5,
.domain = 7; AttributeProto.name = 1, .f = 2, .i = 3, .s = 4, .t = 5, .floats = 7, .ints = 8, .type = 20;
TensorProto.dims = 1, .data_type = 2, .float_data = 4, .int32_data = 5, .int64_data = 7, .name = 8,
.raw_data = 9, .double_data = 10, .data_location = 14).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dpupose.errors import ModelFileError

# TensorProto.DataType -> numpy dtype (little-endian, as raw_data is stored).
_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"),
    2: np.dtype("u1"),
    3: np.dtype("i1"),
    4: np.dtype("<u2"),
    5: np.dtype("<i2"),
    6: np.dtype("<i4"),
    7: np.dtype("<i8"),
    9: np.dtype("?"),
    10: np.dtype("<f2"),
    11: np.dtype("<f8"),
    12: np.dtype("<u4"),
    13: np.dtype("<u8"),
}


@dataclass
class Node:
    op_type: str
    inputs: list[str]
    outputs: list[str]
    name: str = ""
    domain: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class ValueInfo:
    name: str
    elem_type: int  # TensorProto.DataType (1 = float32, 3 = int8)
    shape: tuple[int | str, ...]  # ints for fixed dims, strings for symbolic ones


@dataclass
class Graph:
    nodes: list[Node]
    initializers: dict[str, np.ndarray]
    inputs: list[ValueInfo]
    outputs: list[ValueInfo]
    opset: int
    value_info: list[ValueInfo] = field(default_factory=list)  # other tensors' types and shapes, where given


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise ModelFileError("truncated ONNX protobuf (varint runs past the end)")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result & 0xFFFF_FFFF_FFFF_FFFF, pos  # as protobuf reads it: the low 64 bits
        shift += 7
        if shift > 70:
            raise ModelFileError("malformed ONNX protobuf (varint too long)")


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


# The wire types each decoded field may have (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32; a repeated
# number packed or not), by message; a field of another wire type is malformed. Fields not listed are skipped.
_MODEL = {7: (2,), 8: (2,)}
_OPSET_ID = {1: (2,), 2: (0,)}
_GRAPH = {1: (2,), 5: (2,), 11: (2,), 12: (2,), 13: (2,), 15: (2,)}
_NODE = {1: (2,), 2: (2,), 3: (2,), 4: (2,), 5: (2,), 7: (2,)}
_ATTRIBUTE = {1: (2,), 2: (5,), 3: (0,), 4: (2,), 5: (2,), 7: (5, 2), 8: (0, 2), 20: (0,)}
_TENSOR = {1: (0, 2), 2: (0,), 4: (5, 2), 5: (0, 2), 7: (0, 2), 8: (2,), 9: (2,), 10: (1, 2), 14: (0,)}
_VALUE_INFO = {1: (2,), 2: (2,)}
_TYPE = {1: (2,)}
_TENSOR_TYPE = {1: (0,), 2: (2,)}
_SHAPE = {1: (2,)}
_DIMENSION = {1: (0,), 2: (2,)}


def _fields(buf: bytes, wire: Mapping[int, tuple[int, ...]]) -> list[tuple[int, int, Any]]:
    """Decode one message level: [(field_number, wire_type, value)], value = int or bytes, each field of
    `wire` of a wire type it allows."""
    out = []
    pos = 0
    n = len(buf)
    while pos < n:
        key, pos = _varint(buf, pos)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, pos = _varint(buf, pos)
        elif wt == 1:
            val = buf[pos : pos + 8]
            pos += 8
        elif wt == 2:
            length, pos = _varint(buf, pos)
            val = buf[pos : pos + length]
            pos += length
        elif wt == 5:
            val = buf[pos : pos + 4]
            pos += 4
        else:
            raise ModelFileError(f"malformed ONNX protobuf (wire type {wt})")
        if pos > n:
            raise ModelFileError("truncated ONNX protobuf (field runs past the end)")
        if wt not in wire.get(num, (wt,)):
            raise ModelFileError(f"malformed ONNX protobuf (field {num} of wire type {wt})")
        out.append((num, wt, val))
    return out


def _packed_varints(wt: int, val: Any) -> list[int]:
    if wt == 0:
        return [_signed64(val)]
    vals = []
    pos = 0
    while pos < len(val):
        v, pos = _varint(val, pos)
        vals.append(_signed64(v))
    return vals


def _packed_fixed(wt: int, val: bytes, fmt: str, size: int) -> list[float]:
    if wt in (1, 5):
        return list(struct.unpack("<" + fmt, val))
    return list(struct.unpack(f"<{len(val) // size}{fmt}", val))


def _tensor(buf: bytes) -> tuple[str, np.ndarray]:
    dims: list[int] = []
    dtype = 0
    name = ""
    raw = None
    floats: list[float] = []
    ints: list[int] = []
    doubles: list[float] = []
    for num, wt, val in _fields(buf, _TENSOR):
        if num == 1:
            dims += _packed_varints(wt, val)
        elif num == 2:
            dtype = val
        elif num == 4:
            floats += _packed_fixed(wt, val, "f", 4)
        elif num in (5, 7):
            ints += _packed_varints(wt, val)
        elif num == 8:
            name = val.decode()
        elif num == 9:
            raw = val
        elif num == 10:
            doubles += _packed_fixed(wt, val, "d", 8)
        elif num == 14 and val == 1:
            raise ModelFileError(f"initializer {name!r} uses external data, which this reader does not load")
    if dtype not in _DTYPES:
        raise ModelFileError(f"initializer {name!r} has unsupported data type {dtype}")
    np_dtype = _DTYPES[dtype]
    count = int(np.prod(dims)) if dims else 1
    if raw is not None:
        arr = np.frombuffer(raw, dtype=np_dtype).copy()
    elif floats:
        arr = np.array(floats, dtype=np_dtype)
    elif doubles:
        arr = np.array(doubles, dtype=np_dtype)
    elif np_dtype == np.float16:  # float16 values travel as uint16 bit patterns in int32_data
        arr = np.array(ints, dtype=np.uint16).view(np.float16)
    else:
        arr = np.array(ints, dtype=np.int64).astype(np_dtype)
    if arr.size != count:
        raise ModelFileError(f"initializer {name!r} has {arr.size} values for shape {dims}")
    return name, arr.reshape(dims)


def _attribute(buf: bytes) -> tuple[str, Any]:
    name = ""
    atype = 0
    found: dict[int, Any] = {}
    floats: list[float] = []
    ints: list[int] = []
    for num, wt, val in _fields(buf, _ATTRIBUTE):
        if num == 1:
            name = val.decode()
        elif num == 2:
            found[2] = struct.unpack("<f", val)[0]
        elif num == 3:
            found[3] = _signed64(val)
        elif num == 4:
            found[4] = bytes(val).decode()
        elif num == 5:
            found[5] = _tensor(val)[1]
        elif num == 7:
            floats += _packed_fixed(wt, val, "f", 4)
        elif num == 8:
            ints += _packed_varints(wt, val)
        elif num == 20:
            atype = val
        elif num in (6, 10, 11):
            raise ModelFileError(f"attribute {name!r} holds a sub-graph or tensor list; not supported here")
    # AttributeProto.type: 1 FLOAT, 2 INT, 3 STRING, 4 TENSOR, 6 FLOATS, 7 INTS.
    by_type = {1: (2, 0.0), 2: (3, 0), 3: (4, ""), 4: (5, None)}
    if atype in by_type:
        key, default = by_type[atype]
        return name, found.get(key, default)
    if atype == 6 or floats:
        return name, floats
    if atype == 7 or ints:
        return name, ints
    for key in (2, 3, 4, 5):
        if key in found:
            return name, found[key]
    return name, []


def _node(buf: bytes) -> Node:
    node = Node(op_type="", inputs=[], outputs=[])
    for num, _wt, val in _fields(buf, _NODE):
        if num == 1:
            node.inputs.append(val.decode())
        elif num == 2:
            node.outputs.append(val.decode())
        elif num == 3:
            node.name = val.decode()
        elif num == 4:
            node.op_type = val.decode()
        elif num == 5:
            key, value = _attribute(val)
            node.attrs[key] = value
        elif num == 7:
            node.domain = val.decode()
    return node


def _value_info(buf: bytes) -> ValueInfo:
    name = ""
    elem = 0
    shape: list[int | str] = []
    for num, _wt, val in _fields(buf, _VALUE_INFO):
        if num == 1:
            name = val.decode()
        elif num == 2:
            for tnum, _twt, tval in _fields(val, _TYPE):
                if tnum != 1:  # only tensor types
                    continue
                for enum_, _ewt, evalue in _fields(tval, _TENSOR_TYPE):
                    if enum_ == 1:
                        elem = evalue
                    elif enum_ == 2:
                        for dnum, _dwt, dval in _fields(evalue, _SHAPE):
                            if dnum != 1:
                                continue
                            dim: int | str = "?"
                            for k, _kwt, kval in _fields(dval, _DIMENSION):
                                if k == 1:
                                    dim = _signed64(kval)
                                elif k == 2:
                                    dim = kval.decode()
                            shape.append(dim)
    return ValueInfo(name, elem, tuple(shape))


def parse_model(data: bytes) -> Graph:
    """Decode a serialized ModelProto."""
    graph_buf = None
    opset = 0
    for num, _wt, val in _fields(data, _MODEL):
        if num == 7:
            graph_buf = val
        elif num == 8:
            domain = ""
            version = 0
            for onum, _owt, oval in _fields(val, _OPSET_ID):
                if onum == 1:
                    domain = oval.decode()
                elif onum == 2:
                    version = oval
            if domain in ("", "ai.onnx"):
                opset = version
    if graph_buf is None:
        raise ModelFileError("not an ONNX model (no graph); check the file")
    graph = Graph(nodes=[], initializers={}, inputs=[], outputs=[], opset=opset)
    for num, _wt, val in _fields(graph_buf, _GRAPH):
        if num == 1:
            graph.nodes.append(_node(val))
        elif num == 5:
            name, arr = _tensor(val)
            graph.initializers[name] = arr
        elif num == 11:
            graph.inputs.append(_value_info(val))
        elif num == 12:
            graph.outputs.append(_value_info(val))
        elif num == 13:
            graph.value_info.append(_value_info(val))
        elif num == 15:
            raise ModelFileError("sparse initializers are not supported by this reader")
    # Graph inputs that are initializers (older exporters list them) are not real inputs.
    graph.inputs = [vi for vi in graph.inputs if vi.name not in graph.initializers]
    return graph


def load_model(path_or_bytes: str | Path | bytes) -> Graph:
    """Read and decode an ONNX file (or serialized bytes, or an object with SerializeToString)."""
    path = None
    if hasattr(path_or_bytes, "SerializeToString"):
        data = path_or_bytes.SerializeToString()  # an onnx.ModelProto on the host
    elif isinstance(path_or_bytes, (bytes, bytearray)):
        data = bytes(path_or_bytes)
    else:
        path = Path(path_or_bytes)
        if not path.is_file():
            raise ModelFileError(f"ONNX file not found: {path}")
        data = path.read_bytes()
    try:
        return parse_model(data)
    except (UnicodeDecodeError, struct.error, ValueError, OverflowError) as exc:  # Overflow: a value past its type
        where = f"{path}: " if path is not None else ""
        raise ModelFileError(f"{where}cannot decode ONNX model ({exc}); the file is corrupt or not ONNX") from exc
    except ModelFileError as exc:
        if path is None:
            raise
        # Name the file: "truncated ONNX protobuf" alone does not say which of a plan's files is damaged.
        damaged = "; the file is damaged or not ONNX" if "ONNX protobuf" in str(exc) else ""
        raise ModelFileError(f"{path}: {exc}{damaged}") from None


def _enc_varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if not v:
            out.append(b)
            return bytes(out)
        out.append(b | 0x80)


def _enc_field(num: int, wt: int, val: Any) -> bytes:
    """One field as _fields decoded it, encoded again (varint values are the unsigned ones it read)."""
    key = _enc_varint(num << 3 | wt)
    if wt == 0:
        return key + _enc_varint(val)
    if wt == 2:
        return key + _enc_varint(len(val)) + bytes(val)
    return key + bytes(val)  # fixed 64 / 32 bits


def offset_names(node_output: str) -> tuple[str, str]:
    """(the constant's initializer, the sum) that add_input_offsets makes for the node of that output."""
    return f"{node_output}/offset", f"{node_output}/input_plus_offset"


def _graph_with_offsets(buf: bytes, offsets: Mapping[str, float]) -> bytes:
    out = bytearray()
    constants = []
    for num, wt, val in _fields(buf, _GRAPH):
        node = _fields(val, _NODE) if num == 1 else []
        outputs = [v.decode() for n, _w, v in node if n == 2]
        inputs = [v for n, _w, v in node if n == 1]
        if not outputs or outputs[0] not in offsets or not inputs:
            out += _enc_field(num, wt, val)
            continue
        const, total = offset_names(outputs[0])
        add = [
            (1, 2, inputs[0]),
            (1, 2, const.encode()),
            (2, 2, total.encode()),
            (3, 2, total.encode()),
            (4, 2, b"Add"),
        ]
        out += _enc_field(1, 2, b"".join(_enc_field(*f) for f in add))  # just before the node: still in order
        first = next(i for i, f in enumerate(node) if f[0] == 1)
        node[first] = (1, 2, total.encode())
        out += _enc_field(1, 2, b"".join(_enc_field(*f) for f in node))
        constants.append((const, offsets[outputs[0]]))
    for name, value in constants:
        scalar = _enc_field(2, 0, 1) + _enc_field(8, 2, name.encode()) + _enc_field(9, 2, struct.pack("<f", value))
        out += _enc_field(5, 2, scalar)  # a float32 scalar initializer
    return bytes(out)


def add_input_offsets(data: bytes, offsets: Mapping[str, float]) -> bytes:
    """The serialized model `data` where each node whose first output is named in `offsets` reads its first
    input plus that float32 constant (an Add node just before it; names from offset_names). Other readers
    of that input, and every other field, are as they were."""
    try:
        return b"".join(
            _enc_field(num, wt, _graph_with_offsets(val, offsets) if num == 7 else val)
            for num, wt, val in _fields(data, _MODEL)
        )
    except (UnicodeDecodeError, struct.error, ValueError) as exc:
        raise ModelFileError(f"cannot decode ONNX model ({exc}); the file is corrupt or not ONNX") from exc
