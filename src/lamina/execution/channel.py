"""The engine's end of an environment's private channel: length-prefixed frames on a socketpair.

Frame: ``!II`` (JSON header length, payload length), the JSON header, then the raw payload bytes.
Payloads pass through untouched (never JSON-encoded a second time).  The same tiny codec is
duplicated in ``lamina/runtimes/python/bootstrap.py`` because that file runs in the function's
interpreter and cannot import lamina; ``tests/unit/test_execution_channel.py`` checks both agree.

Concurrency: the environment answers one request at a time, so at most one ``receive`` is
outstanding; frames that arrive with no waiter (``ready`` after a spawn) are queued.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections import deque
from collections.abc import Mapping
from typing import Any, cast

FRAME_HEADER = struct.Struct("!II")
MAX_JSON_HEADER = 1 << 20
SMALL_FRAME = 64 * 1024
_JSON = json.JSONEncoder(separators=(",", ":"))  # reused: json.dumps(separators=...) builds one per call

Header = dict[str, Any]
Frame = tuple[Header, bytes]


class ChannelClosedError(Exception):
    """The environment closed its end (it exited, or was killed)."""


class FrameError(Exception):
    """The peer sent something that is not a frame."""


def encode_frame(header: Mapping[str, Any], payload: bytes = b"") -> tuple[bytes, bytes]:
    """Return (fixed header + JSON header, payload); the payload is not copied."""
    body = _JSON.encode(header).encode()
    return FRAME_HEADER.pack(len(body), len(payload)) + body, payload


class FrameDecoder:
    """Incremental decoder: feed bytes, get complete frames."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames: list[Frame] = []
        buf = self._buf
        pos = 0
        size = FRAME_HEADER.size
        while len(buf) - pos >= size:
            hlen, plen = FRAME_HEADER.unpack_from(buf, pos)
            if hlen > MAX_JSON_HEADER:
                raise FrameError(f"frame header of {hlen} bytes")
            end = pos + size + hlen + plen
            if len(buf) < end:
                break
            header = json.loads(bytes(buf[pos + size : pos + size + hlen]))
            frames.append((header, bytes(buf[pos + size + hlen : end])))
            pos = end
        if pos:
            del buf[:pos]
        return frames


class EnvChannel(asyncio.Protocol):
    """asyncio protocol for one environment's socket (created via create_unix_connection)."""

    def __init__(self) -> None:
        self._decoder = FrameDecoder()
        self._frames: deque[Frame] = deque()
        self._waiter: asyncio.Future[Frame] | None = None
        self._transport: asyncio.Transport | None = None
        self._closed: BaseException | None = None

    # -- asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check here.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            frames = self._decoder.feed(data)
        except (FrameError, ValueError) as exc:
            self._fail(ChannelClosedError(f"bad frame from environment: {exc}"))
            if self._transport is not None:
                self._transport.abort()
            return
        for frame in frames:
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                self._waiter = None
                waiter.set_result(frame)
            else:
                self._frames.append(frame)

    def eof_received(self) -> bool | None:
        self._fail(ChannelClosedError("environment closed its channel"))
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ChannelClosedError("environment channel lost"))

    # -- API
    def send(self, header: Mapping[str, Any], payload: bytes = b"") -> None:
        if self._closed is not None or self._transport is None:
            raise ChannelClosedError("channel is closed")
        head, payload = encode_frame(header, payload)
        if len(payload) < SMALL_FRAME:
            self._transport.write(head + payload)
        else:
            self._transport.writelines((head, payload))

    async def receive(self) -> Frame:
        if self._frames:
            return self._frames.popleft()
        if self._closed is not None:
            raise self._closed
        waiter: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        try:
            return await waiter
        finally:
            if self._waiter is waiter:
                self._waiter = None

    def fail(self, exc: BaseException) -> bool:
        """Wake the pending ``receive`` with ``exc`` (timeouts); False if none is pending."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
            return True
        return False

    def close(self) -> None:
        self._fail(ChannelClosedError("channel closed by the engine"))
        if self._transport is not None:
            self._transport.abort()

    def _fail(self, exc: BaseException) -> None:
        if self._closed is None:
            self._closed = exc
        self.fail(exc)
