"""Whether XIR can parse a file as an .xmodel, checked before it is handed to `xir.Graph.deserialize`.

XIR (Vitis AI 2.5) reads an xmodel as a `serial_v2.Graph` protobuf (proto3, its graph_proto_v2.proto) and
stops the whole process when that parse fails: XIR_READ_PB_FAILURE is logged as FATAL and the process aborts
("This program has crashed!"), so no Python exception reaches the caller. A foreign file (a plan.json, an
ONNX file given by mistake) or a truncated copy would take `dpupose run` (or the notebook's kernel) down with
a core dump. `problem(data)` finds, without protobuf, what makes protobuf's own parser refuse the bytes:

- a malformed field: a tag of more than 5 bytes, field number 0, wire type 6 or 7, an end-group without its
  start, a varint of more than 10 bytes, a length or fixed-size value that runs past the end of its message,
  a group without its end;
- in a field of the schema with its own wire type: a `string` that is not UTF-8 (proto3 checks), a nested
  message that is itself malformed (maps are messages of key 1 and value 2), a packed repeated number whose
  bytes are not whole numbers, and nesting deeper than protobuf's 100 levels.

Fields the schema does not have, and schema fields of another wire type, are skipped as unknown fields,
as protobuf does. What parses can still stop XIR while it builds the graph (an op that names no op, an
attribute without a value): those are not checked here.
"""

from __future__ import annotations

import re

# serial_v2's messages: field number -> kind. "s" string (UTF-8), "b" bytes, "v" a varint scalar,
# "v*"/"f*"/"d*" a repeated varint / fixed32 / fixed64 (packed or not), else the name of a message.
_ATTR_MAP = "map<string,AttrValue>"
# AttrValue's map fields 22..32, MapString2<name> each, in the .proto's order (MapString2BytesVec, also
# there, is held by no field), and the value type of each.
_MAP_VALUES = {
    "Int32": "v",
    "Uint32": "v",
    "Int64": "v",
    "Uint64": "v",
    "String": "s",
    "Bytes": "Bytes",
    "Int32Vec": "Int32Vec",
    "Uint32Vec": "Uint32Vec",
    "Int64Vec": "Int64Vec",
    "Uint64Vec": "Uint64Vec",
    "StringVec": "StringVec",
}
SCHEMA: dict[str, dict[int, str]] = {
    "Graph": {1: "s", 5: "OPNode", 10: "SubGraph", 11: _ATTR_MAP, 101: "OpDef"},
    "OPNode": {1: "s", 2: "s", 3: _ATTR_MAP, 4: "OpArg", 5: "Tensor"},
    "OpArg": {1: "s", 2: "s"},
    "Tensor": {1: "s", 2: "v*", 5: "v", 6: "v", 10: _ATTR_MAP},
    "SubGraph": {1: "s", 3: "s", 5: _ATTR_MAP, 10: "SubGraph"},
    "OpDef": {1: "s", 2: "OpArgDef", 3: "AttrDef", 4: "s"},
    "AttrDef": {1: "s", 3: "v", 4: "AttrValue", 6: "v", 7: "s"},
    "OpArgDef": {1: "s", 2: "v", 3: "v", 4: "s"},
    "AttrValue": {
        **{n: "v" for n in (4, 5, 6, 7, 8)},
        9: "f",
        10: "d",
        11: "s",
        12: "Bytes",
        13: "BoolVec",
        14: "Int32Vec",
        15: "Uint32Vec",
        16: "Int64Vec",
        17: "Uint64Vec",
        18: "FloatVec",
        19: "DoubleVec",
        20: "StringVec",
        21: "BytesVec",
        **{22 + i: f"MapString2{name}" for i, name in enumerate(_MAP_VALUES)},
    },
    "Bytes": {1: "b"},
    **{f"{name}Vec": {1: "v*"} for name in ("Bool", "Int32", "Uint32", "Int64", "Uint64")},
    "FloatVec": {1: "f*"},
    "DoubleVec": {1: "d*"},
    "StringVec": {1: "s"},
    "BytesVec": {1: "Bytes"},
    _ATTR_MAP: {1: "s", 2: "AttrValue"},
}
for _name, _value in _MAP_VALUES.items():
    SCHEMA[f"MapString2{_name}"] = {1: f"map<string,{_name}>"}
    SCHEMA[f"map<string,{_name}>"] = {1: "s", 2: _value}

_SCALAR = frozenset(("b", "v", "f", "d"))  # kinds never descended into
_PACKED = frozenset(("v*", "f*", "d*"))
_UNKNOWN: dict[int, str] = {}  # the fields of a group (or of a message the schema does not have)
RECURSION_LIMIT = 100  # protobuf's default: messages (and groups) nested deeper do not parse


class _Malformed(Exception):
    def __init__(self, what: str, at: int) -> None:
        super().__init__(f"{what} at byte {at}")


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    value = 0
    for i in range(10):
        if pos + i >= end:
            raise _Malformed("a varint cut off", pos)
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value & 0xFFFF_FFFF_FFFF_FFFF, pos + i + 1
    raise _Malformed("a varint longer than 10 bytes", pos)


def _tag(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """A field's tag as protobuf's C++ parser reads it: at most 5 bytes, its value taken modulo 2**32."""
    value = 0
    for i in range(5):
        if pos + i >= end:
            raise _Malformed("a tag cut off", pos)
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value & 0xFFFF_FFFF, pos + i + 1
    raise _Malformed("a tag longer than 5 bytes", pos)


_LONG_VARINT = re.compile(rb"[\x80-\xff]{10}")  # 10 bytes that each say another follows: 11 or more


def _packed(data: bytes, start: int, end: int, kind: str) -> None:
    if kind == "v*":
        # Whole varints of at most 10 bytes: the last byte ends one, and no 10 bytes in a row go on (found at C
        # speed; the varints read one by one only to say where it goes wrong).
        if start == end or (data[end - 1] < 0x80 and not _LONG_VARINT.search(data, start, end)):
            return
        pos = start
        while pos < end:
            _, pos = _varint(data, pos, end)
    elif (end - start) % (4 if kind == "f*" else 8):
        raise _Malformed(f"packed {'fixed32' if kind == 'f*' else 'fixed64'} values of {end - start} bytes", start)


def _message(data: bytes, start: int, end: int, message: str) -> None:
    """Check data[start:end] as `message`, and the messages (and groups) in it, as protobuf parses them:
    a field of another message, or of one the schema does not have (None: skipped as protobuf skips it), is
    checked where it is met, the enclosing one's place kept on a stack (deep nesting, no recursion)."""
    stack: list[tuple[int, dict[int, str], int | None]] = []  # (end, fields, group) of the enclosing ones
    fields, group, pos = SCHEMA[message], None, start
    while True:
        if pos >= end:
            if group is not None:
                raise _Malformed(f"group {group} without its end", end)
            if not stack:
                return
            end, fields, group = stack.pop()  # on past the nested message, which ends where its field does
            continue
        at = pos
        tag = data[pos]
        if tag < 0x80:  # one byte: field numbers 1..15
            pos += 1
        else:
            tag, pos = _tag(data, pos, end)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise _Malformed("field number 0", at)
        if wire == 2:
            if pos < end and data[pos] < 0x80:
                length, pos = data[pos], pos + 1
            else:
                length, pos = _varint(data, pos, end)
            if length > 0x7FFF_FFFF or pos + length > end:
                raise _Malformed(f"field {number}'s {length} bytes running past the end", at)
            body, pos = pos, pos + length
            kind = fields.get(number)
            if kind is None or kind in _SCALAR:
                continue  # bytes, unknown, or a scalar's field sent length-delimited (unknown to protobuf)
            if kind == "s":
                text = data[body:pos]
                if not text.isascii():
                    try:
                        text.decode("utf-8")
                    except UnicodeDecodeError:
                        raise _Malformed(f"field {number}, a string, not UTF-8", body) from None
            elif kind in _PACKED:
                _packed(data, body, pos, kind)
            else:  # a nested message: checked from here on, then on past it
                stack.append((end, fields, group))
                if len(stack) > RECURSION_LIMIT:
                    raise _Malformed(f"messages nested more than {RECURSION_LIMIT} deep", body)
                end, fields, group, pos = pos, SCHEMA[kind], None, body
        elif wire == 0:
            if pos < end and data[pos] < 0x80:
                pos += 1
            else:
                _, pos = _varint(data, pos, end)
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
            if pos > end:
                raise _Malformed(f"a {'fixed64' if wire == 1 else 'fixed32'} value cut off", at)
        elif wire == 3:  # a group: its fields are unknown ones, up to its end-group tag
            stack.append((end, fields, group))
            if len(stack) > RECURSION_LIMIT:
                raise _Malformed(f"messages nested more than {RECURSION_LIMIT} deep", pos)
            fields, group = _UNKNOWN, number
        elif wire == 4:
            if group != number:
                raise _Malformed(f"an end of group {number} outside it", at)
            end, fields, group = stack.pop()  # on past it, in the enclosing message
        else:
            raise _Malformed(f"wire type {wire}", at)


def problem(data: bytes) -> str | None:
    """Why protobuf cannot parse `data` as an xmodel's serial_v2.Graph (e.g. "a varint cut off at byte 12"),
    or None when it can."""
    try:
        _message(data, 0, len(data), "Graph")
    except _Malformed as exc:
        return str(exc)
    return None
