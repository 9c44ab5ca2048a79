"""A function's result as the HTTP response of its URL, inferred the way Lambda infers it.

Source: AWS Lambda developer guide, "Invoking Lambda function URLs" -> "Response payload format"
and "Cookies".  A JSON object with a ``statusCode`` is a response: ``statusCode``, ``headers``,
``multiValueHeaders``, ``cookies`` (each a ``set-cookie`` header), ``body`` and
``isBase64Encoded`` are honoured, ``content-type`` defaults to ``application/json``.  Anything
else that is valid JSON (an object without ``statusCode``, a string, a number...) is the body of a
200 ``application/json`` response, exactly as the function returned it.  A function error or an
unusable response is a 502.  Pure, no I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from email.utils import formatdate
from typing import Any

from lamina.web.connection import Headers, Reply

JSON_TYPE = (b"content-type", b"application/json")
# Hop-by-hop and framing headers are the front's business, not the function's.
_FRAMING = frozenset({b"content-length", b"transfer-encoding", b"connection", b"keep-alive"})


_date: tuple[int, bytes] = (0, b"")


def http_date() -> bytes:
    """The ``date`` header's value, formatted once per second rather than once per request."""
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, formatdate(now, usegmt=True).encode())
    return _date[1]


def bad_gateway() -> Reply:
    """A function error or a response Lambda cannot map (AWS: 502 "Internal Server Error")."""
    return 502, [JSON_TYPE], b"Internal Server Error"


def _header_value(value: Any) -> bytes:
    if isinstance(value, bool):
        return b"true" if value else b"false"
    return str(value).encode("latin-1", errors="replace")


def _structured(result: dict[str, Any]) -> Reply | None:
    try:
        status = int(result["statusCode"])
    except (TypeError, ValueError):
        return None
    if not 100 <= status <= 599:
        return None
    headers: Headers = []
    for name, values in (result.get("multiValueHeaders") or {}).items():
        for value in values if isinstance(values, list) else [values]:
            headers.append((str(name).lower().encode("latin-1"), _header_value(value)))
    for name, value in (result.get("headers") or {}).items():
        key = str(name).lower().encode("latin-1")
        headers = [h for h in headers if h[0] != key]
        headers.append((key, _header_value(value)))
    headers = [h for h in headers if h[0] not in _FRAMING]
    if not any(name == b"content-type" for name, _ in headers):
        headers.insert(0, JSON_TYPE)
    headers.extend((b"set-cookie", _header_value(c)) for c in result.get("cookies") or [])
    body = result.get("body")
    if body is None:
        data = b""
    elif not isinstance(body, str):
        data = json.dumps(body).encode()
    elif result.get("isBase64Encoded"):
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return None
    else:
        data = body.encode()
    return status, headers, data


def function_reply(payload: bytes, function_error: str | None) -> Reply:
    """The HTTP response for a function's result payload (see the module docstring)."""
    if function_error is not None:
        return bad_gateway()
    try:
        result = json.loads(payload) if payload else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        return bad_gateway()
    if isinstance(result, dict) and "statusCode" in result:
        return _structured(result) or bad_gateway()
    return 200, [JSON_TYPE], payload
