"""AWS's event-stream encoding (``application/vnd.amazon.eventstream``), as SDKs decode it.

A message: a 12-byte prelude (total length, headers length, the CRC32 of those 8 bytes), the
headers (each: name length, name, value type 7 = string, value length, value), the payload, and
the CRC32 of everything before it.  botocore's ``EventStreamBuffer`` is the reference decoder
(the tests decode with it).
"""

from __future__ import annotations

import struct
from binascii import crc32

CONTENT_TYPE = "application/vnd.amazon.eventstream"
_STRING = 7


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    head = b"".join(
        struct.pack("!B", len(n)) + n + struct.pack("!BH", _STRING, len(v)) + v
        for n, v in ((k.encode(), val.encode()) for k, val in headers.items())
    )
    total = 12 + len(head) + len(payload) + 4
    prelude = struct.pack("!II", total, len(head))
    prelude += struct.pack("!I", crc32(prelude))
    message = prelude + head + payload
    return message + struct.pack("!I", crc32(message))


def event(event_type: str, payload: bytes, content_type: str) -> bytes:
    """One event message of an operation's event stream."""
    return encode_message(
        {":event-type": event_type, ":content-type": content_type, ":message-type": "event"}, payload
    )
