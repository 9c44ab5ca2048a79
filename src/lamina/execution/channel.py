"""The engine's end of an environment's private channel: length-prefixed frames on a socketpair.

Frame: ``!II`` (JSON header length, payload length), the JSON header, then the raw payload bytes.
Payloads pass through untouched (never JSON-encoded a second time).  The same tiny codec is
duplicated in ``lamina/runtimes/python/lamina_rt_wire.py`` because that file runs in the
function's interpreter and cannot import lamina; ``tests/unit/test_execution_channel.py`` checks
both agree.

Hot path: the invoke header is written with one f-string of C-escaped strings and headers are read
with the C scanner directly (``json.dumps``/``json.loads`` spend ~1.3 us each in Python-level
setup for a 4-key object, more than the work itself).  A frame that arrives whole in one read --
nearly all of them -- is sliced out of that read without going through the reassembly buffer.

Concurrency: the environment answers one request at a time, so at most one ``receive`` is
outstanding; frames that arrive with no waiter (``ready`` after a spawn) are queued.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections import deque
from collections.abc import Callable, Mapping
from json.decoder import JSONDecoder
from json.encoder import encode_basestring_ascii
from typing import Any, cast

FRAME_HEADER = struct.Struct("!II")
MAX_JSON_HEADER = 1 << 20
SMALL_FRAME = 64 * 1024
_JSON = json.JSONEncoder(separators=(",", ":"))  # reused: json.dumps(separators=...) builds one per call
# The C scanner json.loads ends up in, minus its encoding detection and Python-level wrappers.
# (An instance attribute typeshed does not declare: read through vars().)
SCAN_JSON: Callable[[str, int], tuple[Any, int]] = vars(JSONDecoder())["scan_once"]
_PACK = FRAME_HEADER.pack
_UNPACK = FRAME_HEADER.unpack_from
_SIZE = FRAME_HEADER.size

Header = dict[str, Any]
Frame = tuple[Header, bytes]


class ChannelClosedError(Exception):
    """The environment closed its end (it exited, or was killed)."""


class FrameError(Exception):
    """The peer sent something that is not a frame."""


def encode_frame(header: Mapping[str, Any], payload: bytes = b"") -> tuple[bytes, bytes]:
    """Return (fixed header + JSON header, payload); the payload is not copied."""
    body = _JSON.encode(header).encode()
    return _PACK(len(body), len(payload)) + body, payload


def invoke_header(
    request_id: str,
    deadline_ms: int,
    arn: str,
    *,
    client_context: str | None = None,
    cognito_identity: str | None = None,
    trace_id: str | None = None,
) -> bytes:
    """The JSON header of an ``invoke`` frame, equal to ``encode_frame``'s but ~4x cheaper."""
    esc = encode_basestring_ascii
    text = f'{{"t":"invoke","id":{esc(request_id)},"deadline":{deadline_ms},"arn":{esc(arn)}'
    if client_context:
        text += f',"cc":{esc(client_context)}'
    if cognito_identity:
        text += f',"ci":{esc(cognito_identity)}'
    if trace_id:
        text += f',"trace":{esc(trace_id)}'
    return (text + "}").encode()


def decode_header(raw: bytes) -> Header:
    text = raw.decode()
    try:
        header, end = SCAN_JSON(text, 0)
    except StopIteration as exc:  # the C scanner's "no JSON value at this index"
        raise FrameError("frame header is not JSON") from exc
    if type(header) is not dict or end != len(text):  # one whole object and nothing after it
        raise FrameError("frame header is not one JSON object")
    return header


class FrameDecoder:
    """Incremental decoder: feed bytes, get complete frames."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._need = _SIZE  # bytes the buffered partial frame needs before it can be decoded

    def feed(self, data: bytes) -> list[Frame]:
        buf = self._buf
        if buf:
            buf += data
            if len(buf) < self._need:  # a large payload arriving in pieces: no copies until whole
                return []
            data = bytes(buf)
            buf.clear()
        frames: list[Frame] = []
        pos, size = 0, len(data)
        while size - pos >= _SIZE:
            hlen, plen = _UNPACK(data, pos)
            if hlen > MAX_JSON_HEADER:
                raise FrameError(f"frame header of {hlen} bytes")
            mid = pos + _SIZE + hlen
            end = mid + plen
            if end > size:
                self._need = end - pos
                break
            frames.append((decode_header(data[pos + _SIZE : mid]), data[mid:end]))
            pos = end
        else:
            self._need = _SIZE
        if pos < size:
            buf += memoryview(data)[pos:]
        return frames


class EnvChannel(asyncio.Protocol):
    """asyncio protocol for one environment's socket (created via create_unix_connection)."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
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
        head, payload = encode_frame(header, payload)
        self._write(head, payload)

    def send_raw(self, header: bytes, payload: bytes = b"") -> None:
        """Send a frame whose JSON header is already encoded (``invoke_header``)."""
        self._write(_PACK(len(header), len(payload)) + header, payload)

    def _write(self, head: bytes, payload: bytes) -> None:
        transport = self._transport
        if self._closed is not None or transport is None:
            raise ChannelClosedError("channel is closed")
        if len(payload) < SMALL_FRAME:  # one copy of a small payload beats a second syscall
            transport.write(head + payload)
        else:
            transport.writelines((head, payload))

    def receive(self) -> asyncio.Future[Frame]:
        """A future for the next frame (a plain future, not a coroutine: one less frame per await).

        It fails with ``ChannelClosedError`` when the environment goes away, or with whatever
        ``fail`` is given (timeouts).
        """
        future: asyncio.Future[Frame] = self._loop.create_future()
        if self._frames:
            future.set_result(self._frames.popleft())
        elif self._closed is not None:
            future.set_exception(self._closed)
        else:
            self._waiter = future
        return future

    def fail(self, exc: BaseException) -> bool:
        """Wake the pending ``receive`` with ``exc`` (timeouts); False if none is pending."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            self._waiter = None
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
