"""Serialize a handler's result dict into a rest-json response: (status, header pairs, body).

Members with a location go to the status line or headers; a payload member becomes the whole
body; everything else is one JSON object. The JSON is built by walking only the result (never the
model), converting just what JSON cannot carry (bytes, datetimes, NaN), and dumped once. The
per-operation plan and per-shape encoders are compiled once and cached on the botocore objects.
"""

from __future__ import annotations

import json
import math
from base64 import b64encode
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.model import OperationModel, Shape

from lamina.protocol.model import cached_on, format_timestamp, is_document, is_event_stream

Encode = Callable[[Any], Any]
Text = Callable[[Any], str]

JSON = b"application/json"
_CONTENT_TYPE = b"content-type"


@dataclass(frozen=True, slots=True)
class _Plan:
    status: int
    status_member: str | None
    headers: tuple[tuple[str, bytes, Text], ...]  # (member, lower-case header name, to text)
    header_maps: tuple[tuple[str, str], ...]  # (member, header prefix)
    payload: tuple[str, str] | None  # (member, "bytes" | "stream" | "json")
    has_output: bool
    sets_content_type: bool  # a modeled header member is itself Content-Type


def serialize_response(
    op: OperationModel, result: Mapping[str, Any], content_type: str | None = None
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The wire response for ``result`` (output members by model name; ``None`` means unset).

    ``content_type`` overrides the ``application/json`` sent with a blob payload (Invoke's
    function response); JSON bodies are always ``application/json``. An event-stream payload is
    not serialized: the body is empty and the caller streams the events itself.
    """
    plan: _Plan = cached_on(op, "response_plan", lambda: _compile(op))
    status = plan.status
    headers: list[tuple[bytes, bytes]] = []
    if plan.status_member is not None and result.get(plan.status_member) is not None:
        status = int(result[plan.status_member])
    for member, name, text in plan.headers:
        value = result.get(member)
        if value is not None:
            headers.append((name, text(value).encode()))
    for member, prefix in plan.header_maps:
        for key, value in (result.get(member) or {}).items():
            headers.append(((prefix + key).lower().encode(), str(value).encode()))
    body = b""
    if plan.payload is not None:
        member, kind = plan.payload
        value = result.get(member)
        if kind == "bytes":
            body = value.encode() if isinstance(value, str) else bytes(value or b"")
            if content_type is not None:
                headers.append((_CONTENT_TYPE, content_type.encode()))
            elif not plan.sets_content_type or not any(h[0] == _CONTENT_TYPE for h in headers):
                headers.append((_CONTENT_TYPE, JSON))
        elif kind == "json":
            if value is not None:
                body = _dumps(encoder(op.output_shape.members[member])(value))
            headers.append((_CONTENT_TYPE, JSON))
        elif value is not None:  # an event stream, already encoded (lamina.protocol.eventstream)
            body = bytes(value)
            if not any(h[0] == _CONTENT_TYPE for h in headers):
                headers.append((_CONTENT_TYPE, EVENT_STREAM))
    elif plan.has_output and status != 204:
        body = _dumps(encoder(op.output_shape)(result))
        headers.append((_CONTENT_TYPE, JSON))
    return status, headers, body


EVENT_STREAM = b"application/vnd.amazon.eventstream"


def _dumps(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def _compile(op: OperationModel) -> _Plan:
    status = int(op.http.get("responseCode", 200))
    shape = op.output_shape
    if shape is None:
        return _Plan(status, None, (), (), None, False, False)
    status_member: str | None = None
    headers: list[tuple[str, bytes, Text]] = []
    header_maps: list[tuple[str, str]] = []
    for name, member in shape.members.items():
        where = member.serialization.get("location")
        wire = member.serialization.get("name", name)
        if where == "statusCode":
            status_member = name
        elif where == "header":
            headers.append((name, wire.lower().encode(), _header_text(member)))
        elif where == "headers":
            header_maps.append((name, wire))
    payload: tuple[str, str] | None = None
    payload_name = shape.serialization.get("payload")
    if payload_name is not None:
        member = shape.members[payload_name]
        if is_event_stream(member):
            payload = (payload_name, "stream")
        elif member.type_name in ("blob", "string"):
            payload = (payload_name, "bytes")
        else:
            payload = (payload_name, "json")
    sets_ct = any(name == _CONTENT_TYPE for _, name, _ in headers)
    return _Plan(status, status_member, tuple(headers), tuple(header_maps), payload, True, sets_ct)


# ---- headers -----------------------------------------------------------------------------------


def _header_text(shape: Shape) -> Text:
    kind = shape.type_name
    if kind == "boolean":
        return lambda v: "true" if v else "false"
    if kind in ("integer", "long"):
        return lambda v: str(int(v))
    if kind in ("float", "double"):
        return _float_text
    if kind == "timestamp":
        fmt = shape.serialization.get("timestampFormat", "rfc822")
        return lambda v: str(format_timestamp(v, fmt))
    if kind == "list":
        item = _header_text(shape.member)
        return lambda v: ",".join(_quote_item(item(x)) for x in v if x is not None)
    if kind == "string" and shape.serialization.get("jsonvalue"):
        return lambda v: b64encode(json.dumps(v, separators=(",", ":")).encode()).decode()
    return str


def _float_text(value: Any) -> str:
    encoded = _float(value)
    return encoded if isinstance(encoded, str) else repr(encoded)


def _quote_item(text: str) -> str:
    if '"' in text or "," in text:
        return '"' + text.replace('"', '\\"') + '"'
    return text


# ---- JSON body encoders ------------------------------------------------------------------------


def _identity(value: Any) -> Any:
    return value


def encoder(shape: Shape) -> Encode:
    """JSON-ready conversion for values of ``shape``; cached on the shape object."""
    return cached_on(shape, "encode", lambda: _build(shape, set()))


def _build(shape: Shape, building: set[str]) -> Encode:
    if shape.name in building:  # recursive model: resolve lazily instead of looping forever
        return lambda value: encoder(shape)(value)
    building = building | {shape.name}
    kind = shape.type_name
    if is_document(shape):
        return _identity
    if kind == "structure":
        members = {
            name: (member.serialization.get("name", name), _build(member, building))
            for name, member in shape.members.items()
            if "location" not in member.serialization
        }

        def encode_structure(value: Mapping[str, Any]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for key, item in value.items():
                spec = members.get(key)
                if item is not None and spec is not None:  # unset and unmodeled keys are not sent
                    out[spec[0]] = item if spec[1] is _identity else spec[1](item)
            return out

        return encode_structure
    if kind == "list":
        element = _build(shape.member, building)
        if element is _identity:
            return _identity
        return lambda value: [None if v is None else element(v) for v in value]
    if kind == "map":
        inner = _build(shape.value, building)
        if inner is _identity:
            return _identity
        return lambda value: {k: None if v is None else inner(v) for k, v in value.items()}
    if kind == "blob":
        return lambda value: b64encode(value.encode() if isinstance(value, str) else bytes(value)).decode()
    if kind == "timestamp":
        fmt = shape.serialization.get("timestampFormat", "unixtimestamp")
        return lambda value: format_timestamp(value, fmt)
    if kind in ("float", "double"):
        return _float
    return _identity


def _float(value: Any) -> Any:
    # JSON has no NaN/Infinity; Smithy's JSON protocols send them as strings.
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    return value
