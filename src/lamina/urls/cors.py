"""CORS for function URLs, applied by lamina as Lambda does when the URL has a ``Cors`` config.

Sources: AWS Lambda developer guide, "Creating and managing Lambda function URLs" -> "Cross-origin
resource sharing (CORS)" (the configured headers go on every response through the URL; preflights
are Lambda's to answer), and behaviour observed on AWS as reported by users probing real URLs and
by the yulin simulator's tests: a CORS header the function sent itself is *kept* next to the
configured one (the duplicate browsers complain about), and a list configured empty sends no
header.

* ``Access-Control-Allow-Origin``: only for an allowed origin -- ``AllowOrigins`` has ``*`` or
  names it (case-insensitive); the value is ``*`` for a ``*`` config, the request's origin when it
  is named or when credentials are allowed (AWS reflects the origin then: browsers refuse ``*``
  with credentials).
* Preflights (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``): a 200 with an
  empty body and ``Allow-Origin``, ``Allow-Methods``, ``Allow-Headers`` (the configured lists,
  ``*`` kept), ``Max-Age`` and ``Allow-Credentials`` as configured; the browser compares the
  request with them.  The function is not invoked.
* Other responses: ``Allow-Origin``, ``Expose-Headers`` and ``Allow-Credentials`` as configured.
* Without a ``Cors`` config nothing is added and preflights go to the function.

Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lamina.web.connection import Headers, Reply

_NAMES = {
    "AllowOrigins": b"access-control-allow-origin",
    "AllowMethods": b"access-control-allow-methods",
    "AllowHeaders": b"access-control-allow-headers",
    "ExposeHeaders": b"access-control-expose-headers",
    "AllowCredentials": b"access-control-allow-credentials",
    "MaxAge": b"access-control-max-age",
}
_PREFLIGHT = ("AllowOrigins", "AllowMethods", "AllowHeaders", "AllowCredentials", "MaxAge")
_RESPONSE = ("AllowOrigins", "ExposeHeaders", "AllowCredentials")


def _joined(cors: Mapping[str, Any], member: str) -> bytes | None:
    values = [str(v) for v in cors.get(member) or []]
    return ",".join(values).encode("latin-1") if values else None


def _allow_origin(cors: Mapping[str, Any], origin: bytes | None) -> bytes | None:
    if not origin:
        return None
    origins = [str(o).lower() for o in cors.get("AllowOrigins") or []]
    if "*" in origins:
        return origin if cors.get("AllowCredentials") else b"*"
    return origin if origin.decode("latin-1").lower() in origins else None


def _headers(cors: Mapping[str, Any], origin: bytes | None, members: tuple[str, ...]) -> Headers:
    """The configured CORS headers among ``members``, in that order (empty lists send none)."""
    headers: Headers = []
    for member in members:
        if member == "AllowOrigins":
            value = _allow_origin(cors, origin)
        elif member == "AllowCredentials":
            value = b"true" if cors.get("AllowCredentials") else None
        elif member == "MaxAge":
            value = str(int(cors["MaxAge"])).encode() if cors.get("MaxAge") is not None else None
        else:
            value = _joined(cors, member)
        if value is not None:
            headers.append((_NAMES[member], value))
    return headers


def is_preflight(method: str, hmap: Mapping[bytes, bytes]) -> bool:
    return method == "OPTIONS" and b"origin" in hmap and b"access-control-request-method" in hmap


def preflight(cors: Mapping[str, Any], hmap: Mapping[bytes, bytes]) -> Reply:
    """Lambda's own answer to a CORS preflight (the function is not invoked)."""
    return 200, _headers(cors, hmap.get(b"origin"), _PREFLIGHT), b""


def apply(cors: Mapping[str, Any] | None, origin: bytes | None, reply: Reply) -> Reply:
    """``reply`` with the URL's CORS headers added (see the module docstring)."""
    if cors is None:
        return reply
    status, headers, body = reply
    return status, [*headers, *response_headers(cors, origin)], body


def response_headers(cors: Mapping[str, Any], origin: bytes | None) -> list[tuple[bytes, bytes]]:
    """The CORS headers of a (non-preflight) response."""
    return _headers(cors, origin, _RESPONSE)
