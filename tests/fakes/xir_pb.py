"""XIR's xmodel format for the fakes: Vitis AI 2.5's `serial_v2.Graph` (xir's graph_proto_v2.proto, proto3),
made into message classes of the `protobuf` package (which onnxruntime installs) from the field list below,
so that the fake `xir.Graph.deserialize` accepts exactly what protobuf's parser accepts, as XIR does.

The list follows the .proto's messages and field numbers; AttrValue's oneof is left as plain fields (it
changes nothing about what parses), and its enums are int32 (the same varints).
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

F = descriptor_pb2.FieldDescriptorProto
SCALARS = {
    "string": F.TYPE_STRING,
    "bytes": F.TYPE_BYTES,
    "bool": F.TYPE_BOOL,
    "int32": F.TYPE_INT32,
    "uint32": F.TYPE_UINT32,
    "int64": F.TYPE_INT64,
    "uint64": F.TYPE_UINT64,
    "float": F.TYPE_FLOAT,
    "double": F.TYPE_DOUBLE,
}

# message: [(field name, number, type, repeated)]; "map<K,V>" is a map field.
MESSAGES = {
    "Graph": [
        ("graph_name", 1, "string", False),
        ("op_node", 5, "OPNode", True),
        ("subg_root", 10, "SubGraph", False),
        ("graph_attr", 11, "map<string,AttrValue>", True),
        ("op_defs", 101, "OpDef", True),
    ],
    "OPNode": [
        ("op_name", 1, "string", False),
        ("op_type", 2, "string", False),
        ("op_attr", 3, "map<string,AttrValue>", True),
        ("args", 4, "OpArg", True),
        ("output_tensor", 5, "Tensor", False),
    ],
    "OpArg": [("arg_name", 1, "string", False), ("arg_ops", 2, "string", True)],
    "Tensor": [
        ("tensor_name", 1, "string", False),
        ("tensor_dim", 2, "uint32", True),
        ("data_type", 5, "int32", False),
        ("tensor_bit_width", 6, "int32", False),
        ("tensor_attr", 10, "map<string,AttrValue>", True),
    ],
    "SubGraph": [
        ("subgraph_name", 1, "string", False),
        ("op_name", 3, "string", True),
        ("subg_attr", 5, "map<string,AttrValue>", True),
        ("subg_child", 10, "SubGraph", True),
    ],
    "OpDef": [
        ("name", 1, "string", False),
        ("input_args", 2, "OpArgDef", True),
        ("attrs", 3, "AttrDef", True),
        ("annotation", 4, "string", False),
    ],
    "AttrDef": [
        ("name", 1, "string", False),
        ("occur_type", 3, "int32", False),
        ("default_value", 4, "AttrValue", False),
        ("list_length", 6, "int32", False),
        ("annotation", 7, "string", False),
    ],
    "OpArgDef": [
        ("name", 1, "string", False),
        ("occur_type", 2, "int32", False),
        ("data_type", 3, "int32", False),
        ("annotation", 4, "string", False),
    ],
    "AttrValue": [
        ("bool_value", 4, "bool", False),
        ("int32_value", 5, "int32", False),
        ("uint32_value", 6, "uint32", False),
        ("int64_value", 7, "int64", False),
        ("uint64_value", 8, "uint64", False),
        ("float_value", 9, "float", False),
        ("double_value", 10, "double", False),
        ("string_value", 11, "string", False),
        ("bytes_value", 12, "Bytes", False),
        ("bool_vec_value", 13, "BoolVec", False),
        ("int32_vec_value", 14, "Int32Vec", False),
        ("uint32_vec_value", 15, "Uint32Vec", False),
        ("int64_vec_value", 16, "Int64Vec", False),
        ("uint64_vec_value", 17, "Uint64Vec", False),
        ("float_vec_value", 18, "FloatVec", False),
        ("double_vec_value", 19, "DoubleVec", False),
        ("string_vec_value", 20, "StringVec", False),
        ("bytes_vec_value", 21, "BytesVec", False),
        ("map_string_2_int32_value", 22, "MapString2Int32", False),
        ("map_string_2_uint32_value", 23, "MapString2Uint32", False),
        ("map_string_2_int64_value", 24, "MapString2Int64", False),
        ("map_string_2_uint64_value", 25, "MapString2Uint64", False),
        ("map_string_2_string_value", 26, "MapString2String", False),
        ("map_string_2_bytes_value", 27, "MapString2Bytes", False),
        ("map_string_2_int32_vec_value", 28, "MapString2Int32Vec", False),
        ("map_string_2_uint32_vec_value", 29, "MapString2Uint32Vec", False),
        ("map_string_2_int64_vec_value", 30, "MapString2Int64Vec", False),
        ("map_string_2_uint64_vec_value", 31, "MapString2Uint64Vec", False),
        ("map_string_2_string_vec_value", 32, "MapString2StringVec", False),
    ],
    "Bytes": [("value", 1, "bytes", False)],
    "BoolVec": [("value", 1, "bool", True)],
    "Int32Vec": [("value", 1, "int32", True)],
    "Uint32Vec": [("value", 1, "uint32", True)],
    "Int64Vec": [("value", 1, "int64", True)],
    "Uint64Vec": [("value", 1, "uint64", True)],
    "FloatVec": [("value", 1, "float", True)],
    "DoubleVec": [("value", 1, "double", True)],
    "StringVec": [("value", 1, "string", True)],
    "BytesVec": [("value", 1, "Bytes", True)],
    "MapString2Int32": [("value", 1, "map<string,int32>", True)],
    "MapString2Uint32": [("value", 1, "map<string,uint32>", True)],
    "MapString2Int64": [("value", 1, "map<string,int64>", True)],
    "MapString2Uint64": [("value", 1, "map<string,uint64>", True)],
    "MapString2Bytes": [("value", 1, "map<string,Bytes>", True)],
    "MapString2String": [("value", 1, "map<string,string>", True)],
    "MapString2Int32Vec": [("value", 1, "map<string,Int32Vec>", True)],
    "MapString2Uint32Vec": [("value", 1, "map<string,Uint32Vec>", True)],
    "MapString2Int64Vec": [("value", 1, "map<string,Int64Vec>", True)],
    "MapString2Uint64Vec": [("value", 1, "map<string,Uint64Vec>", True)],
    "MapString2BytesVec": [("value", 1, "map<string,BytesVec>", True)],
    "MapString2StringVec": [("value", 1, "map<string,StringVec>", True)],
}


def _field(container, name: str, number: int, kind: str, repeated: bool) -> None:
    f = container.field.add(name=name, number=number)
    f.label = F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL
    if kind in SCALARS:
        f.type = SCALARS[kind]
    else:
        f.type = F.TYPE_MESSAGE
        f.type_name = f".serial_v2.{kind}"


def _file() -> descriptor_pb2.FileDescriptorProto:
    fd = descriptor_pb2.FileDescriptorProto(name="fake_xir_graph_proto_v2.proto", package="serial_v2", syntax="proto3")
    for name, fields in MESSAGES.items():
        msg = fd.message_type.add(name=name)
        for fname, number, kind, repeated in fields:
            if kind.startswith("map<"):
                key, value = kind[4:-1].split(",")
                entry_name = "".join(p.capitalize() for p in fname.split("_")) + "Entry"
                entry = msg.nested_type.add(name=entry_name)
                entry.options.map_entry = True
                _field(entry, "key", 1, key, False)
                _field(entry, "value", 2, value, False)
                f = msg.field.add(name=fname, number=number, label=F.LABEL_REPEATED, type=F.TYPE_MESSAGE)
                f.type_name = f".serial_v2.{name}.{entry_name}"
            else:
                _field(msg, fname, number, kind, repeated)
    return fd


_pool = descriptor_pool.DescriptorPool()
_pool.Add(_file())
Graph = message_factory.GetMessageClass(_pool.FindMessageTypeByName("serial_v2.Graph"))
