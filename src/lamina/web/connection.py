"""lamina's HTTP/1.1 front: one ``FrontConnection`` per client, ``httptools`` parsing, no ASGI.

Why not an ASGI server: under load the ASGI layer (a receive/send message dict per event, a cycle
object and a task per request, header lists copied) was a quarter of the event loop's CPU per
invoke.  Here a request is parsed straight into what the app reads: the raw path and query, the
header pairs (lower-case names, for SigV4) and a dict of them (for lookups), the body bytes.

The app is asked twice per request (``FrontApp``): ``admit`` when the head is parsed -- it answers
with the body limit for that route, or with a whole reply to refuse the request before its body
is read (unsigned, declared too large) -- and ``handle`` once the body is complete.  A body that
grows past its limit is refused the moment it does.  A refusal that leaves body bytes unread
closes the connection, so those bytes are never parsed as a next request.

Concurrency invariants: one event loop, no threads.  Requests on one connection are answered
strictly in order (pipelining): a request being handled keeps the connection ``busy`` and later
ones wait in its queue; past ``PIPELINE_DEPTH`` queued requests it stops reading.  ``closed`` is
set before the transport is closed and is final.  ``last_active`` (monotonic seconds) is what the
server's sweeper reads to close idle and stalled connections.
"""

from __future__ import annotations

import asyncio
import http
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from typing import Protocol

from lamina.web.http1 import Http1Connection

log = logging.getLogger("lamina.http")

MAX_HEAD_BYTES = 64 * 1024  # request line + headers; more is refused with 431
BIG_BODY = 64 * 1024  # above this a response body is written after its head instead of copied into it

Headers = list[tuple[bytes, bytes]]


class Streamed:
    """A reply whose body is written as it is produced (``Transfer-Encoding: chunked``): response
    streaming.  ``chunks`` is closed (``aclose``) if the client goes away first."""

    __slots__ = ("chunks", "headers", "status")

    def __init__(self, status: int, headers: Headers, chunks: AsyncIterator[bytes]) -> None:
        self.status = status
        self.headers = headers
        self.chunks = chunks


Reply = tuple[int, Headers, bytes]  # status, headers (without content-length), body

_STATUS = {s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in http.HTTPStatus}


def render(
    status: int,
    headers: Headers,
    body: bytes,
    *,
    close: bool = False,
    head_only: bool = False,
    chunked: bool = False,
) -> bytes:
    """The response head (and the body, unless it is big or ``head_only``), ready to write; with
    ``chunked`` only the head, announcing a body in chunks."""
    parts = [_STATUS.get(status) or b"HTTP/1.1 %d Unknown\r\n" % status]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    if close:
        parts.append(b"connection: close\r\n")
    if chunked:
        parts.append(b"transfer-encoding: chunked\r\n\r\n")
        return b"".join(parts)
    parts.append(b"content-length: %d\r\n\r\n" % len(body))
    if not head_only and len(body) <= BIG_BODY:
        parts.append(body)
    return b"".join(parts)


def plain_reply(status: int, message: bytes) -> bytes:
    return render(status, [(b"content-type", b"text/plain; charset=utf-8")], message, close=True)


BAD_REQUEST = plain_reply(400, b"Bad Request")
HEAD_TOO_LARGE = plain_reply(431, b"Request Header Fields Too Large")
INTERNAL_ERROR = plain_reply(500, b"Internal Server Error")


def _expects_body(hmap: dict[bytes, bytes]) -> bool:
    return hmap.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in hmap


class Request:
    """One parsed request.  ``hmap`` has every header once (repeats joined with ","); ``headers``
    keeps them as sent, in order, for SigV4."""

    __slots__ = (
        "body",
        "headers",
        "hmap",
        "keep_alive",
        "method",
        "path",
        "peer",
        "query",
        "refusal",
        "route",
        "version",
    )

    def __init__(
        self, method: str, path: bytes, query: bytes, headers: Headers, hmap: dict[bytes, bytes]
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.hmap = hmap
        self.body = b""
        self.keep_alive = True
        self.refusal: Reply | None = None  # answered with this instead of ``handle``
        self.route: object = None  # whatever ``admit`` found, for ``handle``
        self.peer = ""  # the client's address (function URLs' sourceIp)
        self.version = "1.1"  # the request's HTTP version

    @property
    def repeated_headers(self) -> bool:
        return len(self.hmap) != len(self.headers)


class FrontApp(Protocol):
    def admit(self, request: Request) -> int | Reply:
        """The body limit for this request, or the reply that refuses it before its body is read."""
        ...

    def too_large(self, request: Request, limit: int) -> Reply:
        """The reply for a body that has grown past ``limit``."""
        ...

    def handle(self, request: Request) -> Awaitable[Reply | Streamed]: ...


class FrontConnection(Http1Connection[Request]):
    """One client connection (see the module docstring)."""

    PARSER_BUG = INTERNAL_ERROR
    MALFORMED = BAD_REQUEST

    def __init__(self, app: FrontApp, connections: set[FrontConnection]) -> None:
        super().__init__()
        self._app = app
        self._connections = connections
        self._loop = asyncio.get_running_loop()
        self.closing = False  # answer what is in hand, then close (server shutdown)
        self.last_active = time.monotonic()
        self._peer = ""
        # the request being parsed
        self._parsing = False
        self._headers: Headers = []
        self._head_bytes = 0
        self._request: Request | None = None
        self._body: list[bytes] = []
        self._size = 0
        self._limit = 0

    @property
    def idle(self) -> bool:
        """Nothing in hand: no request being parsed, handled or waiting."""
        return not (self.busy or self._queue or self._parsing)

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._connections.add(self)
        peer = transport.get_extra_info("peername")
        self._peer = str(peer[0]) if isinstance(peer, tuple) and peer else ""

    def _accepting(self) -> bool:
        self.last_active = time.monotonic()
        return True

    def _lost(self) -> None:
        self._connections.discard(self)

    # -- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._parsing = True
        self._url = b""
        self._headers = []
        self._head_bytes = 0
        self._request = None
        self._body = []
        self._size = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._head_bytes += len(url)
        if self._head_bytes > MAX_HEAD_BYTES:
            self._abort(HEAD_TOO_LARGE)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value)
        if self._head_bytes > MAX_HEAD_BYTES:
            self._abort(HEAD_TOO_LARGE)
            return
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        if self.closed:
            return
        headers = self._headers
        hmap = dict(headers)  # one C call; a repeated name (rare) is joined with "," below
        if len(hmap) != len(headers):
            hmap = {}
            for name, value in headers:
                seen = hmap.get(name)
                hmap[name] = value if seen is None else seen + b"," + value
        path, _, query = self._url.partition(b"?")
        request = Request(self.parser.get_method().decode("latin-1"), path, query, headers, hmap)
        request.peer = self._peer
        request.version = self.parser.get_http_version()
        self._request = request
        try:
            admitted = self._app.admit(request)
        except Exception:
            log.exception("admitting a request failed")
            admitted = (500, [], b"")
        if isinstance(admitted, int):
            self._limit = admitted
            expect = hmap.get(b"expect")
            if expect is not None and expect.lower() == b"100-continue" and not self.busy and not self._queue:
                assert self.transport is not None
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        elif _expects_body(hmap):
            self._refuse(request, admitted)
        else:  # nothing to leave unread: answered in its turn, and the connection stays open
            request.refusal = admitted

    def on_body(self, body: bytes) -> None:
        request = self._request
        if request is None or request.refusal is not None:
            return  # refused: what is left of its body is dropped
        size = self._size + len(body)
        if size > self._limit:
            self._refuse(request, self._app.too_large(request, self._limit))
            return
        self._size = size
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._parsing = False
        request = self._request
        if request is None or self.closed:
            return
        parts = self._body
        if parts:
            request.body = parts[0] if len(parts) == 1 else b"".join(parts)
        if request.keep_alive:  # a refusal mid-body has already said no
            request.keep_alive = self.parser.should_keep_alive()
        self._enqueue(request)
        if not self.busy:
            self._serve()

    # -- refusing before the body ------------------------------------------------------------

    def _refuse(self, request: Request, reply: Reply) -> None:
        """Answer ``request`` with ``reply`` without reading (the rest of) its body.  When nothing is
        ahead of it, at once and the connection closes; else in its turn (with a close)."""
        request.refusal = reply
        request.keep_alive = False
        if not self.busy and not self._queue:
            self.busy = True
            self._finish(request, reply)

    # -- answering ---------------------------------------------------------------------------

    def _serve(self) -> None:
        while self._queue and not self.busy and not self.closed:
            request = self._queue.popleft()
            self.busy = True
            if request.refusal is not None:
                self._finish(request, request.refusal)
                continue
            self._loop.create_task(self._run(request))
            return
        self._resume_if_drained()

    async def _run(self, request: Request) -> None:
        reply: Reply | Streamed
        try:
            reply = await self._app.handle(request)
        except Exception:  # the app renders its own errors: this is a bug, answered as one
            log.exception("request handling failed")
            reply = (500, [(b"content-type", b"text/plain; charset=utf-8")], b"Internal Server Error")
        if isinstance(reply, Streamed):
            await self._stream(request, reply)
        elif not self.closed:
            self._finish(request, reply)
        if not self.busy and not self.closed:
            self._serve()

    async def _stream(self, request: Request, reply: Streamed) -> None:
        """Write the head, then each chunk as it comes (chunked encoding), then the last chunk."""
        chunks = reply.chunks
        try:
            if self.closed or self.transport is None:
                return
            skip = (b"connection", b"content-length", b"transfer-encoding")
            headers = [h for h in reply.headers if h[0] not in skip]
            close = not request.keep_alive or self.closing
            self.transport.write(render(reply.status, headers, b"", close=close, chunked=True))
            async for chunk in chunks:
                if self.closed:
                    return  # the client is gone: stop producing
                if chunk:
                    self.transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            if not self.closed:
                self.transport.write(b"0\r\n\r\n")
                self.busy = False
                self.last_active = time.monotonic()
                if close:
                    self._abort(b"")
        except Exception:
            log.exception("streaming a response failed")
            self._abort(b"")  # mid-body: the client sees a cut stream, not a second answer
        finally:
            if isinstance(chunks, AsyncGenerator):
                await chunks.aclose()

    def _finish(self, request: Request, reply: Reply) -> None:
        status, headers, body = reply
        transport = self.transport
        assert transport is not None
        close = not request.keep_alive or self.closing or (b"connection", b"close") in headers
        if close:
            headers = [h for h in headers if h[0] != b"connection"]
        head_only = request.method == "HEAD"
        transport.write(render(status, headers, body, close=close, head_only=head_only))
        if len(body) > BIG_BODY and not head_only:
            transport.write(body)
        self.busy = False
        self.last_active = time.monotonic()
        if close:
            self.closed = True
            self._queue.clear()
            transport.close()

    def close(self) -> None:
        """Close now (idle, stalled, or at the end of shutdown)."""
        self._abort(b"")
