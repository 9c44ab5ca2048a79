"""SigV4 canonical forms shared by the full verifier and its fast path (botocore's rules)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import quote, quote_from_bytes, unquote_to_bytes

from lamina.errors import AwsError

_TIMESTAMP_RE = re.compile(r"\d{8}T\d{6}Z")
_PLAIN_PATH_RE = re.compile(r"[A-Za-z0-9/~._%-]*")
# Region and service become parts of ARNs and paths, so only the characters AWS itself uses pass.
SCOPE_PART_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")


def parse_query(query: bytes) -> list[tuple[bytes, bytes]]:
    """Decoded (key, value) pairs; ``+`` is a space, as the SDKs that decode queries (Go) read it."""
    if not query:
        return []
    pairs = []
    for piece in query.split(b"&"):
        if not piece:
            continue
        key, _, value = piece.partition(b"=")
        if piece.find(b"+") >= 0:  # .find, not ``in``: see fastpath.py
            key, value = key.replace(b"+", b" "), value.replace(b"+", b" ")
        if piece.find(b"%") >= 0:
            key, value = unquote_to_bytes(key), unquote_to_bytes(value)
        pairs.append((key, value))
    return pairs


def canonical_query(params: list[tuple[bytes, bytes]], presigned: bool) -> str:
    if not params:
        return ""
    encoded = sorted(
        (quote_from_bytes(k, "-_.~"), quote_from_bytes(v, "-_.~"))
        for k, v in params
        if not (presigned and k == b"X-Amz-Signature")
    )
    return "&".join(f"{k}={v}" for k, v in encoded)


def canonical_path(raw: bytes) -> str:
    if not raw:
        return "/"
    path = raw.decode("latin-1")  # one char per wire byte; quote() below re-encodes them 1:1
    if "//" in path or "/." in path or path.startswith("."):
        path = _remove_dot_segments(path)
    if _PLAIN_PATH_RE.fullmatch(path):
        # The common case (an SDK's already-encoded path): only '%' needs encoding again.
        return path.replace("%", "%25")
    return quote(path, safe="/~", encoding="latin-1")


def _remove_dot_segments(path: str) -> str:
    # botocore's rule: RFC 3986 dot-segment removal plus dropping empty segments ("//").
    out: list[str] = []
    for seg in path.split("/"):
        if not seg or seg == ".":
            continue
        if seg == "..":
            if out:
                out.pop()
        else:
            out.append(seg)
    first = "/" if path.startswith("/") else ""
    last = "/" if path.endswith("/") and out else ""
    return first + "/".join(out) + last


def parse_timestamp(value: str) -> float:
    if _TIMESTAMP_RE.fullmatch(value):
        try:
            return datetime(
                int(value[0:4]),
                int(value[4:6]),
                int(value[6:8]),
                int(value[9:11]),
                int(value[11:13]),
                int(value[13:15]),
                tzinfo=UTC,
            ).timestamp()
        except ValueError:
            pass
    raise AwsError(
        "IncompleteSignatureException",
        f"Date must be in ISO-8601 'basic format'. Got '{value[:64]}'. See http://en.wikipedia.org/wiki/ISO_8601",
    )
