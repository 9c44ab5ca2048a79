"""CBOR (RFC 8949), the subset Smithy's rpcv2Cbor protocol uses, for CloudWatch's wire format.

botocore >= 1.40 talks to CloudWatch in ``smithy-rpc-v2-cbor``: request and response bodies are
CBOR maps, timestamps are tag 1 (epoch seconds, integer or float).  This is that subset, both
ways: integers, floats (half/single/double in, double out), text and byte strings (definite and
indefinite), arrays, maps, true/false/null/undefined and tag 1.  Decoding takes untrusted input:
it is bounded (nesting depth, lengths checked against what is left) and raises ``CborError``.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from typing import Any

MAX_DEPTH = 64
_BREAK = 0xFF


class CborError(ValueError):
    pass


# ---------------------------------------------------------------------------------------- encode
def _head(out: bytearray, major: int, n: int) -> None:
    if n < 24:
        out.append(major << 5 | n)
    elif n < 0x100:
        out += bytes((major << 5 | 24, n))
    elif n < 0x10000:
        out.append(major << 5 | 25)
        out += n.to_bytes(2, "big")
    elif n < 0x100000000:
        out.append(major << 5 | 26)
        out += n.to_bytes(4, "big")
    else:
        out.append(major << 5 | 27)
        out += n.to_bytes(8, "big")


def _encode(out: bytearray, value: Any) -> None:
    if value is None:
        out.append(0xF6)
    elif value is True:
        out.append(0xF5)
    elif value is False:
        out.append(0xF4)
    elif isinstance(value, int):
        if value >= 0:
            _head(out, 0, value)
        else:
            _head(out, 1, -1 - value)
    elif isinstance(value, float):
        out.append(0xFB)
        out += struct.pack(">d", value)
    elif isinstance(value, str):
        raw = value.encode()
        _head(out, 3, len(raw))
        out += raw
    elif isinstance(value, bytes | bytearray):
        _head(out, 2, len(value))
        out += value
    elif isinstance(value, list | tuple):
        _head(out, 4, len(value))
        for item in value:
            _encode(out, item)
    elif isinstance(value, dict):
        _head(out, 5, len(value))
        for key, item in value.items():
            _encode(out, key)
            _encode(out, item)
    elif isinstance(value, datetime):
        out.append(0xC1)  # tag 1: epoch-based date/time
        stamp = value.timestamp() if value.tzinfo else value.replace(tzinfo=UTC).timestamp()
        _encode(out, float(stamp))
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as CBOR")


def dumps(value: Any) -> bytes:
    out = bytearray()
    _encode(out, value)
    return bytes(out)


# ---------------------------------------------------------------------------------------- decode
class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if n < 0 or end > len(self.data):
            raise CborError("truncated CBOR data")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise CborError("truncated CBOR data")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def peek_break(self) -> bool:
        if self.pos < len(self.data) and self.data[self.pos] == _BREAK:
            self.pos += 1
            return True
        return False


def _argument(r: _Reader, info: int) -> int:
    if info < 24:
        return info
    if info in (24, 25, 26, 27):
        return int.from_bytes(r.take(1 << (info - 24)), "big")
    raise CborError(f"invalid CBOR additional information {info}")


def _string(r: _Reader, major: int, info: int, depth: int) -> bytes:
    if info != 31:
        return r.take(_argument(r, info))
    chunks = []
    while not r.peek_break():
        head = r.byte()
        if head >> 5 != major or head & 31 == 31:
            raise CborError("invalid chunk in an indefinite-length string")
        chunks.append(r.take(_argument(r, head & 31)))
    return b"".join(chunks)


def _decode(r: _Reader, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise CborError("CBOR data nested too deeply")
    head = r.byte()
    major, info = head >> 5, head & 31
    if major == 0:
        return _argument(r, info)
    if major == 1:
        return -1 - _argument(r, info)
    if major == 2:
        return _string(r, 2, info, depth)
    if major == 3:
        try:
            return _string(r, 3, info, depth).decode()
        except UnicodeDecodeError as exc:
            raise CborError("invalid UTF-8 in a CBOR text string") from exc
    if major == 4:
        if info == 31:
            items = []
            while not r.peek_break():
                items.append(_decode(r, depth + 1))
            return items
        n = _argument(r, info)
        if n > len(r.data) - r.pos:  # every item takes at least a byte: refuse absurd counts early
            raise CborError("truncated CBOR data")
        return [_decode(r, depth + 1) for _ in range(n)]
    if major == 5:
        out: dict[Any, Any] = {}
        if info == 31:
            while not r.peek_break():
                key = _decode(r, depth + 1)
                out[_hashable(key)] = _decode(r, depth + 1)
            return out
        n = _argument(r, info)
        if 2 * n > len(r.data) - r.pos:
            raise CborError("truncated CBOR data")
        for _ in range(n):
            key = _decode(r, depth + 1)
            out[_hashable(key)] = _decode(r, depth + 1)
        return out
    if major == 6:
        tag = _argument(r, info)
        value = _decode(r, depth + 1)
        if tag == 1 and isinstance(value, int | float) and not isinstance(value, bool):
            try:
                return datetime.fromtimestamp(value, UTC)
            except (OverflowError, OSError, ValueError) as exc:
                raise CborError("CBOR timestamp out of range") from exc
        raise CborError(f"unsupported CBOR tag {tag}")
    return _simple(r, info)


def _simple(r: _Reader, info: int) -> Any:
    if info == 20:
        return False
    if info == 21:
        return True
    if info in (22, 23):
        return None
    if info == 25:
        return float(struct.unpack(">e", r.take(2))[0])
    if info == 26:
        return float(struct.unpack(">f", r.take(4))[0])
    if info == 27:
        return float(struct.unpack(">d", r.take(8))[0])
    raise CborError(f"unsupported CBOR simple value {info}")


def _hashable(key: Any) -> Any:
    if isinstance(key, list | dict):
        raise CborError("CBOR map keys must be scalars")
    return key


def loads(data: bytes) -> Any:
    """One CBOR data item, the whole of ``data``; raises ``CborError`` on anything malformed."""
    r = _Reader(data)
    value = _decode(r, 0)
    if r.pos != len(data):
        raise CborError("trailing bytes after the CBOR data item")
    return value
