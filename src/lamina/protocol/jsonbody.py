"""Typed decoding of a parsed JSON document against a shape (request side of rest-json).

``json.loads`` gives plain Python values; this walks them with the shape, checks each JSON type,
and turns base64 into bytes and timestamps into datetimes. A wrong JSON type raises
``BodyTypeError`` with a Jackson-style message, because AWS's services deserialize with Jackson
and clients (and people) recognise those messages.
"""

from __future__ import annotations

import binascii
import math
from base64 import b64decode
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from botocore.model import Shape

from lamina.protocol.model import cached_on, is_document, parse_wire_timestamp

Decode = Callable[[Any], Any]

_JAVA_TYPES: Mapping[str, str] = MappingProxyType(
    {
        "string": "java.lang.String",
        "integer": "java.lang.Integer",
        "long": "java.lang.Long",
        "boolean": "java.lang.Boolean",
        "float": "java.lang.Float",
        "double": "java.lang.Double",
        "blob": "java.nio.ByteBuffer",
        "timestamp": "java.util.Date",
        "list": "java.util.ArrayList",
        "map": "java.util.HashMap",
    }
)
_SPECIAL_FLOATS: Mapping[str, float] = MappingProxyType(
    {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
)


class BodyTypeError(ValueError):
    """A JSON value of the wrong type for its member."""


def decoder(shape: Shape) -> Decode:
    """The decoder for ``shape``, compiled once and cached on the shape object."""
    return cached_on(shape, "decode", lambda: _build(shape, set()))


def _build(shape: Shape, building: set[str]) -> Decode:
    if shape.name in building:  # recursive model: resolve lazily instead of looping forever
        return lambda value: decoder(shape)(value)
    building = building | {shape.name}
    kind = shape.type_name
    if is_document(shape):
        return _identity
    if kind == "structure":
        return _structure(shape, building)
    if kind == "list":
        return _list(shape, building)
    if kind == "map":
        return _map(shape, building)
    return _scalar(shape)


def _identity(value: Any) -> Any:
    return value


def _structure(shape: Shape, building: set[str]) -> Decode:
    members = [
        (member.serialization.get("name", name), name, _build(member, building))
        for name, member in shape.members.items()
        if "location" not in member.serialization
    ]

    def decode_structure(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _mismatch(shape.name, value)
        out: dict[str, Any] = {}
        for wire, name, decode in members:
            item = value.get(wire)
            if item is not None:  # JSON null is "not set", as for AWS
                out[name] = decode(item)
        return out

    return decode_structure


def _list(shape: Shape, building: set[str]) -> Decode:
    element = _build(shape.member, building)

    def decode_list(value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise _mismatch(_JAVA_TYPES["list"], value)
        if element is _identity_string:
            for item in value:
                if item is not None and not isinstance(item, str):
                    raise _mismatch(_JAVA_TYPES["string"], item)
            return value
        return [None if item is None else element(item) for item in value]

    return decode_list


def _map(shape: Shape, building: set[str]) -> Decode:
    decode_value = _build(shape.value, building)

    def decode_map(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _mismatch(_JAVA_TYPES["map"], value)
        return {k: None if v is None else decode_value(v) for k, v in value.items()}

    return decode_map


def _identity_string(value: Any) -> str:
    if not isinstance(value, str):
        raise _mismatch(_JAVA_TYPES["string"], value)
    return value


def _scalar(shape: Shape) -> Decode:
    kind = shape.type_name
    java = _JAVA_TYPES.get(kind, kind)
    if kind == "string":
        return _identity_string
    if kind in ("integer", "long"):

        def decode_int(value: Any) -> int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, float) and value.is_integer():
                return int(value)  # Jackson accepts 5.0 for an int (ACCEPT_FLOAT_AS_INT)
            raise _mismatch(java, value)

        return decode_int
    if kind == "boolean":

        def decode_bool(value: Any) -> bool:
            if isinstance(value, bool):
                return value
            raise _mismatch(java, value)

        return decode_bool
    if kind in ("float", "double"):

        def decode_float(value: Any) -> float:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
            if isinstance(value, str) and value in _SPECIAL_FLOATS:
                return _SPECIAL_FLOATS[value]
            raise _mismatch(java, value)

        return decode_float
    if kind == "blob":
        return decode_base64
    if kind == "timestamp":
        fmt = shape.serialization.get("timestampFormat", "unixtimestamp")

        def decode_timestamp(value: Any) -> Any:
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise _mismatch(java, value)
            try:
                return parse_wire_timestamp(value, fmt)
            except (ValueError, OverflowError, OSError):
                raise _mismatch(java, value) from None

        return decode_timestamp
    return _identity


def decode_base64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise _mismatch(_JAVA_TYPES["blob"], value)
    try:
        return b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BodyTypeError(f"Failed to decode VALUE_STRING as base64 (MIME-NO-LINEFEEDS): {exc}") from None


def _mismatch(java_type: str, value: Any) -> BodyTypeError:
    return BodyTypeError(f"Cannot deserialize value of type `{java_type}` from {_describe(value)}")


def _describe(value: Any) -> str:
    if isinstance(value, str):
        shown = value if len(value) <= 100 else value[:100] + "..."
        return f'String "{shown}"'
    if isinstance(value, bool):
        return f"Boolean value (token `JsonToken.VALUE_{'TRUE' if value else 'FALSE'}`)"
    if isinstance(value, int):
        return "Integer value (token `JsonToken.VALUE_NUMBER_INT`)"
    if isinstance(value, float):
        return "Floating-point value (token `JsonToken.VALUE_NUMBER_FLOAT`)"
    if isinstance(value, list):
        return "Array value (token `JsonToken.START_ARRAY`)"
    return "Object value (token `JsonToken.START_OBJECT`)"
