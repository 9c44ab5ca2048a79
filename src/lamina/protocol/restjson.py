"""Parse a rest-json request into the parameters the client passed, then validate them.

Each member is read from where the model puts it -- URI label, query string, header, header-prefix
map, payload or JSON body -- and converted to the Python value botocore accepted (ints, bools,
datetimes, bytes). A per-operation plan is compiled once and cached on the ``OperationModel``.
"""

from __future__ import annotations

import json
from base64 import b64decode
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from botocore.model import OperationModel, Shape

from lamina.errors import AwsError, validation_error
from lamina.protocol.jsonbody import BodyTypeError, decoder
from lamina.protocol.model import cached_on, lower_camel, parse_wire_timestamp
from lamina.protocol.validate import render, validate

Convert = Callable[[str], Any]

_PREFIX = "Could not parse request body into json: "
_PAYLOAD = "Could not parse payload into json: "


class _BadText(ValueError):
    """A URI label, query value or header that does not convert to its member's type."""


@dataclass(frozen=True, slots=True)
class _Plan:
    shape: Shape | None
    uri: tuple[tuple[str, str, Convert], ...]  # (member, label, convert)
    query: tuple[tuple[str, str, bool, Convert], ...]  # (member, key, is_list, convert)
    query_map: str | None  # member collecting every query key nobody else claims
    query_claimed: frozenset[str]
    headers: tuple[tuple[str, str, Convert], ...]  # (member, lower-case header, convert)
    header_maps: tuple[tuple[str, str], ...]  # (member, lower-case prefix)
    payload: tuple[str, str] | None  # (member, "bytes" | "text" | "json")
    body: bool  # members without a location are read from a JSON body


def parse_request(
    op: OperationModel,
    labels: dict[str, str],
    query_string: str,
    headers: Mapping[str, str],
    body: bytes,
) -> dict[str, Any]:
    """The validated input parameters of ``op``, keyed by model member name.

    ``headers`` maps lower-case names to values. Raises ``AwsError`` for an unreadable body and
    the aggregated ``ValidationException`` for constraint violations.
    """
    plan: _Plan = cached_on(op, "request_plan", lambda: _compile(op))
    if plan.shape is None:
        return {}
    params: dict[str, Any] = {}
    problems: list[str] = []
    if plan.body:
        params.update(_json_body(plan.shape, body))
    for member, label, convert in plan.uri:
        if label in labels:
            _put(params, problems, member, labels[label], convert)
    if plan.query or plan.query_map:
        _read_query(plan, query_string, params, problems)
    for member, header, convert in plan.headers:
        value = headers.get(header)
        if value is not None:
            _put(params, problems, member, value, convert)
    for member, prefix in plan.header_maps:
        found = {k[len(prefix) :]: v for k, v in headers.items() if k.startswith(prefix)}
        if found:
            params[member] = found
    if plan.payload is not None:
        member, kind = plan.payload
        if kind == "bytes":
            params[member] = bytes(body)
        elif kind == "text":
            params[member] = bytes(body).decode("utf-8", "replace")
        elif not _blank(body):
            value = _json_value(plan.shape.members[member], body)
            if value:  # botocore sends "{}" when the payload member is unset
                params[member] = value
    if problems:  # unconvertible text: the typed checks below would only repeat it as "null"
        raise validation_error(problems)
    problems = validate(plan.shape, params)
    if problems:
        raise validation_error(problems)
    return params


def _put(params: dict[str, Any], problems: list[str], member: str, raw: str, convert: Convert) -> None:
    try:
        params[member] = convert(raw)
    except _BadText as exc:
        problems.append(_bad_text(raw, member, exc))


def _bad_text(raw: Any, member: str, exc: _BadText) -> str:
    return f"Value '{render(raw)}' at '{lower_camel(member)}' failed to satisfy constraint: {exc}"


def _read_query(plan: _Plan, query_string: str, params: dict[str, Any], problems: list[str]) -> None:
    pairs = parse_qsl(query_string, keep_blank_values=True) if query_string else []
    if not pairs:
        return
    grouped: dict[str, list[str]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    for member, key, is_list, convert in plan.query:
        values = grouped.get(key)
        if values is None:
            continue
        if is_list:
            try:
                params[member] = [convert(v) for v in values]
            except _BadText as exc:
                problems.append(_bad_text(values, member, exc))
        else:
            _put(params, problems, member, values[0], convert)
    if plan.query_map is not None:
        rest = {k: v for k, v in grouped.items() if k not in plan.query_claimed}
        if rest:
            value_shape = plan.shape.members[plan.query_map].value if plan.shape else None
            many = value_shape is not None and value_shape.type_name == "list"
            params[plan.query_map] = {k: (v if many else v[0]) for k, v in rest.items()}


# ---- JSON body ---------------------------------------------------------------------------------


def _json_body(shape: Shape, body: bytes) -> dict[str, Any]:
    if _blank(body):
        return {}  # no body at all reads as "no members", whatever the Content-Type said
    params: dict[str, Any] = _json_value(shape, body)
    return params


def _blank(body: bytes) -> bool:
    # isspace() stops at the first non-space byte; strip() would copy a 50 MB upload.
    return not body or body.isspace()


def _json_value(shape: Shape, body: bytes) -> Any:
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AwsError(
            "InvalidRequestContentException",
            _PREFIX + f"Invalid UTF-8 start byte 0x{body[exc.start]:02x}" + _source(body, 1, exc.start + 1),
        ) from None
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise AwsError(
            "InvalidRequestContentException", _PREFIX + exc.msg + _source(body, exc.lineno, exc.colno)
        ) from None
    except (ValueError, RecursionError) as exc:  # nested too deep, a number too long to read
        reason = "Nesting too deep" if isinstance(exc, RecursionError) else "Number too long"
        raise AwsError("InvalidRequestContentException", _PREFIX + reason + _source(body, 1, 1)) from None
    try:
        return decoder(shape)(document)
    except BodyTypeError as exc:
        raise AwsError("InvalidRequestContentException", _PREFIX + _PAYLOAD + str(exc)) from None


def _reject_constant(name: str) -> Any:
    # Python accepts NaN/Infinity literals; JSON (and Jackson) do not.
    raise json.JSONDecodeError(f"Non-standard token '{name}'", name, 0)


def _source(body: bytes, line: int, column: int) -> str:
    """Jackson's location suffix, with the source cut at 500 bytes as Jackson does."""
    head = body[:500].decode("utf-8", "replace")
    more = f"[truncated {len(body) - 500} bytes]" if len(body) > 500 else ""
    return f'\n at [Source: (byte[])"{head}"{more}; line: {line}, column: {column}]'


# ---- compiling the plan ------------------------------------------------------------------------


def _compile(op: OperationModel) -> _Plan:
    shape = op.input_shape
    if shape is None:
        return _Plan(None, (), (), None, frozenset(), (), (), None, False)
    uri, query, headers, header_maps = [], [], [], []
    query_map: str | None = None
    body = False
    payload_name = shape.serialization.get("payload")
    for name, member in shape.members.items():
        where = member.serialization.get("location")
        wire = member.serialization.get("name", name)
        if where == "uri":
            uri.append((name, wire, _converter(member, "iso8601")))
        elif where == "querystring":
            if member.type_name == "map":
                query_map = name
            elif member.type_name == "list":
                query.append((name, wire, True, _converter(member.member, "iso8601")))
            else:
                query.append((name, wire, False, _converter(member, "iso8601")))
        elif where == "header":
            headers.append((name, wire.lower(), _converter(member, "rfc822")))
        elif where == "headers":
            header_maps.append((name, wire.lower()))
        elif where is None and name != payload_name:
            body = True
    payload: tuple[str, str] | None = None
    if payload_name is not None:
        kind = shape.members[payload_name].type_name
        payload = (payload_name, "bytes" if kind == "blob" else "text" if kind == "string" else "json")
        body = False  # with a payload member, the body is that member alone
    request_uri: str = op.http.get("requestUri", "")
    literal = {kv.partition("=")[0] for kv in request_uri.partition("?")[2].split("&") if kv}
    claimed = frozenset({key for _, key, _, _ in query} | literal)
    return _Plan(
        shape, tuple(uri), tuple(query), query_map, claimed, tuple(headers), tuple(header_maps), payload, body
    )


def _converter(shape: Shape, default_timestamp: str) -> Convert:
    """Text (label, query value, header) -> the member's Python type."""
    kind = shape.type_name
    if kind in ("integer", "long"):
        return _to_int
    if kind == "boolean":
        return _to_bool
    if kind in ("float", "double"):
        return _to_float
    if kind == "timestamp":
        fmt = shape.serialization.get("timestampFormat", default_timestamp)
        return lambda text: _to_timestamp(text, fmt)
    if kind == "list":  # a header list: comma separated, items possibly quoted
        item = _converter(shape.member, default_timestamp)
        return lambda text: [item(v) for v in _split_header_list(text)]
    if kind == "string" and shape.serialization.get("jsonvalue"):
        return _to_json_value
    return str


def _to_int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise _BadText("Member must be a number") from None


def _to_float(text: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise _BadText("Member must be a number") from None


def _to_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    raise _BadText("Member must be a boolean")


def _to_timestamp(text: str, fmt: str) -> Any:
    try:
        return parse_wire_timestamp(text, fmt)
    except (ValueError, OverflowError, OSError):
        raise _BadText("Member must be a timestamp") from None


def _to_json_value(text: str) -> Any:
    try:
        return json.loads(b64decode(text, validate=True))
    except (ValueError, RecursionError):
        raise _BadText("Member must be base64-encoded JSON") from None


def _split_header_list(text: str) -> list[str]:
    items: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    items.append("".join(current).strip())
    return items
