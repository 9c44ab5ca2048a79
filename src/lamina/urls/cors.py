"""CORS for function URLs, applied by lamina as Lambda does when the URL has a ``Cors`` config.

Source: AWS Lambda developer guide, "Creating and managing Lambda function URLs" -> "Cross-origin
resource sharing (CORS)": the configured headers are added to every response through the URL and
win over headers the function returned.  Preflights (``OPTIONS`` with ``Origin`` and
``Access-Control-Request-Method``) are answered by Lambda itself, without invoking the function.

* An origin is allowed when ``AllowOrigins`` has ``*`` or names it (case-insensitive).
  ``Access-Control-Allow-Origin`` is then ``*`` for a ``*`` config without credentials, otherwise
  the request's origin (a browser refuses ``*`` with credentials).
* Preflight: ``Allow-Methods`` / ``Allow-Headers`` are the configured lists (``*`` stays ``*``),
  ``Max-Age`` and ``Allow-Credentials`` when configured.  A preflight from an origin, for a method
  or with headers the config does not allow gets a 200 without CORS headers, which the browser
  reads as a refusal.
* Actual responses from an allowed origin get ``Allow-Origin``, ``Expose-Headers`` and
  ``Allow-Credentials``; the function's own ``access-control-*`` headers are replaced.  Without a
  ``Cors`` config the function's headers go through untouched.

Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lamina.web.connection import Headers, Reply

_VARY = (b"vary", b"Origin")


def _allowed_origin(cors: Mapping[str, Any], origin: str) -> bytes | None:
    origins = [str(o) for o in cors.get("AllowOrigins") or []]
    if "*" in origins:
        return b"*" if not cors.get("AllowCredentials") else origin.encode("latin-1")
    if origin.lower() in (o.lower() for o in origins):
        return origin.encode("latin-1")
    return None


def _listed(allowed: list[str], wanted: list[str]) -> bool:
    if "*" in allowed:
        return True
    have = {a.lower() for a in allowed}
    return all(w.lower() in have for w in wanted)


def is_preflight(method: str, hmap: Mapping[bytes, bytes]) -> bool:
    return method == "OPTIONS" and b"origin" in hmap and b"access-control-request-method" in hmap


def preflight(cors: Mapping[str, Any], hmap: Mapping[bytes, bytes]) -> Reply:
    """Lambda's own answer to a CORS preflight (the function is not invoked)."""
    origin = hmap[b"origin"].decode("latin-1")
    method = hmap[b"access-control-request-method"].decode("latin-1").strip()
    asked = hmap.get(b"access-control-request-headers", b"").decode("latin-1")
    wanted_headers = [h.strip() for h in asked.split(",") if h.strip()]
    methods = [str(m) for m in cors.get("AllowMethods") or []]
    allow_headers = [str(h) for h in cors.get("AllowHeaders") or []]
    allow_origin = _allowed_origin(cors, origin)
    headers: Headers = [_VARY]
    if allow_origin is None or not _listed(methods, [method]) or not _listed(allow_headers, wanted_headers):
        return 200, headers, b""
    headers.append((b"access-control-allow-origin", allow_origin))
    headers.append((b"access-control-allow-methods", ",".join(methods).encode("latin-1")))
    if allow_headers:
        headers.append((b"access-control-allow-headers", ",".join(allow_headers).encode("latin-1")))
    if cors.get("AllowCredentials"):
        headers.append((b"access-control-allow-credentials", b"true"))
    if cors.get("MaxAge") is not None:
        headers.append((b"access-control-max-age", str(int(cors["MaxAge"])).encode()))
    return 200, headers, b""


def apply(cors: Mapping[str, Any] | None, origin: bytes | None, reply: Reply) -> Reply:
    """``reply`` with the URL's CORS headers (see the module docstring)."""
    if cors is None:
        return reply
    status, headers, body = reply
    kept = [h for h in headers if not h[0].startswith(b"access-control-")]
    allow_origin = _allowed_origin(cors, origin.decode("latin-1")) if origin else None
    if allow_origin is not None:
        kept.append((b"access-control-allow-origin", allow_origin))
        expose = [str(h) for h in cors.get("ExposeHeaders") or []]
        if expose:
            kept.append((b"access-control-expose-headers", ",".join(expose).encode("latin-1")))
        if cors.get("AllowCredentials"):
            kept.append((b"access-control-allow-credentials", b"true"))
    if not any(name == b"vary" for name, _ in kept):
        kept.append(_VARY)
    return status, kept, body
