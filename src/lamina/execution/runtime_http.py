"""The Runtime API's HTTP/1.1 side: one ``Connection`` per client, and response rendering.

``Connection`` is an ``asyncio.Protocol`` over ``httptools``: HTTP/1.1 keep-alive and pipelining,
Content-Length and chunked request bodies (and trailers).  Each complete request goes to its
``Router`` (``runtime_api.RuntimeApiServer``), which returns the response bytes or None when it
will answer later through ``Connection.respond`` (a parked ``next`` call).  A malformed request
gets Go's ``400 Bad Request`` and the connection is closed; an exception in the router is logged
and answered with AWS's 500 body, never a traceback.  Bodies over the router's limit are counted
(AWS reports the size) but not kept: the request arrives ``oversize``.

Who may connect: with ``allowed_pids`` given, each accepted connection is traced to the process
holding its client socket (``peers``) once, when it is accepted; a connection from any other
process gets a 403 and is closed before anything it sent is parsed (or after ``REFUSED_GRACE_S``
if it sends nothing, so strangers cannot hold connections open).

Responses are rendered whole (``http_response``, ``error_response``, in Go's JSON via
``go_json``) and written with one ``transport.write``: two for a tail (payload) over
``BIG_BODY``, which is not copied into the header bytes.

Concurrency invariants: one event loop, no threads, nothing here blocks (the peer check reads
netlink/procfs, which never wait on disk).  Each connection answers its requests strictly in
order: a request whose answer has to wait keeps the connection ``busy``, and requests pipelined
behind it wait in its queue; past ``PIPELINE_DEPTH`` queued requests the connection stops reading
until the queue drains.  ``closed`` is set before the transport is closed and is final.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from lamina.execution import peers
from lamina.execution.types import StreamSink
from lamina.web.http1 import Http1Connection

log = logging.getLogger("lamina.runtime_api")

BIG_BODY = 64 * 1024  # above this a payload is written after its headers instead of copied into them
REFUSED_GRACE_S = 5.0  # how long a refused connection may stay silent before we close it


# -- rendering ---------------------------------------------------------------------------------

_STATUS_LINES = {
    200: b"HTTP/1.1 200 OK\r\n",
    202: b"HTTP/1.1 202 Accepted\r\n",
    400: b"HTTP/1.1 400 Bad Request\r\n",
    403: b"HTTP/1.1 403 Forbidden\r\n",
    404: b"HTTP/1.1 404 Not Found\r\n",
    405: b"HTTP/1.1 405 Method Not Allowed\r\n",
    413: b"HTTP/1.1 413 Request Entity Too Large\r\n",
    500: b"HTTP/1.1 500 Internal Server Error\r\n",
}
_JSON = b"application/json"


_GO_ESCAPES = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)


def go_json(obj: Any) -> bytes:
    """JSON as Go's encoder writes it: compact, UTF-8, with <, >, & and U+2028/9 escaped."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    for raw, escaped in _GO_ESCAPES:
        if raw in text:
            text = text.replace(raw, escaped)
    return text.encode()


def http_response(
    status: int, body: bytes, content_type: bytes | None = _JSON, headers: bytes = b"", *, close: bool = False
) -> bytes:
    return b"".join(
        (
            _STATUS_LINES[status],
            b"Content-Type: " + content_type + b"\r\n" if content_type is not None else b"",
            headers,
            b"Connection: close\r\n" if close else b"",
            b"Content-Length: %d\r\n\r\n" % len(body),
            body,
        )
    )


def error_response(status: int, error_type: str, message: str, *, close: bool = False) -> bytes:
    """rendering.RenderJSON of a model.ErrorResponse: Go's encoder adds the trailing newline."""
    return http_response(
        status, go_json({"errorMessage": message, "errorType": error_type}) + b"\n", close=close
    )


def method_not_allowed(allow: bytes) -> bytes:
    return http_response(405, b"", None, b"Allow: " + allow + b"\r\n")


INTERNAL_ERROR = error_response(500, "InternalServerError", "Internal Server Error")
INTERNAL_ERROR_CLOSE = error_response(500, "InternalServerError", "Internal Server Error", close=True)
# Go's net/http for what it cannot parse; chi's NotFound (http.NotFound)
BAD_REQUEST = http_response(400, b"400 Bad Request", b"text/plain; charset=utf-8", close=True)
NOT_FOUND = http_response(
    404, b"404 page not found\n", b"text/plain; charset=utf-8", b"X-Content-Type-Options: nosniff\r\n"
)
PEER_REFUSED = error_response(
    403, "Forbidden", "This connection does not come from this execution environment", close=True
)


# -- connections -------------------------------------------------------------------------------

# the request headers any route reads (lower-case); the others are not kept
_WANTED = frozenset(
    {
        b"content-type",
        b"lambda-runtime-function-error-type",
        b"lambda-runtime-function-error-body",
        b"lambda-runtime-function-response-mode",
        b"lambda-extension-name",
        b"lambda-extension-identifier",
        b"lambda-extension-accept-feature",
        b"lambda-extension-function-error-type",
        b"expect",
    }
)


class Request:
    __slots__ = ("body", "headers", "keep_alive", "method", "oversize", "size", "trailers", "url")

    def __init__(
        self, method: bytes, url: bytes, headers: dict[bytes, bytes], body: bytes, size: int
    ) -> None:
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.size = size
        self.oversize = False
        self.keep_alive = True
        self.trailers: dict[bytes, bytes] | None = None


class Router(Protocol):
    """What a ``Connection`` hands its requests to (``runtime_api.RuntimeApiServer``)."""

    def dispatch(self, conn: Connection, req: Request) -> bytes | None:
        """The response to ``req``, or None when ``conn`` is (or will be) answered by ``respond``."""
        ...

    def connection_opened(self, conn: Connection) -> None: ...

    def connection_lost(self, conn: Connection) -> None: ...

    def stream_sink(self, method: bytes, url: bytes, headers: dict[bytes, bytes]) -> StreamSink | None:
        """Where the body of this request goes as it arrives (a streamed invocation response), or
        None: the body is handed over whole with the request, as usual."""
        ...


STREAMED_LIMIT = 20 * 1024 * 1024  # AWS: a streamed response may be up to 20 MB


class Connection(Http1Connection[Request]):
    """One client connection: parses requests, answers them in order (see the module docstring)."""

    PARSER_BUG = INTERNAL_ERROR_CLOSE
    MALFORMED = BAD_REQUEST
    NAME = "runtime api"

    def __init__(self, router: Router, limit: int, allowed_pids: Callable[[], Iterable[int]] | None) -> None:
        super().__init__()
        self.router = router
        self.allowed = True
        self._serving = False
        self._keep = True  # keep-alive of the request being answered
        self._base_limit = limit
        self._limit = limit  # body bytes kept; past it a request is oversize
        self._sink: StreamSink | None = None  # where a streamed response's chunks go as they come
        self._allowed_pids = allowed_pids
        # the request being parsed
        self._headers: dict[bytes, bytes] = {}
        self._trailers: dict[bytes, bytes] | None = None
        self._headers_done = False
        self._body: list[bytes] = []
        self._size = 0

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.router.connection_opened(self)
        allowed_pids = self._allowed_pids
        if allowed_pids is not None:
            try:
                peer = transport.get_extra_info("peername")
                local = transport.get_extra_info("sockname")
                self.allowed = peers.connection_from((peer[0], peer[1]), (local[0], local[1]), allowed_pids())
            except Exception:
                log.exception("runtime api: peer check failed; refusing the connection")
                self.allowed = False
            if not self.allowed:
                # answered at its first request (a 403 sent before it would race the request and
                # could be lost to a reset); a stranger that stays silent is closed anyway
                asyncio.get_running_loop().call_later(REFUSED_GRACE_S, self._abort, PEER_REFUSED)

    def _accepting(self) -> bool:
        if not self.allowed:
            self._abort(PEER_REFUSED)
        return self.allowed

    def _lost(self) -> None:
        self.router.connection_lost(self)

    # -- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._trailers = None
        self._headers_done = False
        self._body = []
        self._size = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.lower()
        if key in _WANTED:
            if self._headers_done:  # a trailer (chunked bodies)
                if self._trailers is None:
                    self._trailers = {}
                self._trailers.setdefault(key, value)
            else:
                self._headers.setdefault(key, value)  # Go's Header.Get: the first one

    def on_headers_complete(self) -> None:
        self._headers_done = True
        self._limit = self._base_limit
        self._sink = self.router.stream_sink(self.parser.get_method(), self._url, self._headers)
        if self._sink is not None:
            self._limit = STREAMED_LIMIT
            content_type = self._headers.get(b"content-type", b"application/octet-stream")
            self._sink.begin(content_type.decode("latin-1"))
        if self._headers.get(b"expect", b"").lower() == b"100-continue" and not self.busy and not self._queue:
            # curl holds a body over 1 KiB back until told to go on (Go's server says so on reading)
            assert self.transport is not None
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        size = self._size + len(body)
        if size <= self._limit:
            self._body.append(body)
            if self._sink is not None:
                self._sink.put(body)
        self._size = size  # past the limit: counted (AWS reports the size), not kept

    def on_message_complete(self) -> None:
        parts = self._body
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        request = Request(self.parser.get_method(), self._url, self._headers, body, self._size)
        request.oversize = self._size > self._limit
        request.keep_alive = self.parser.should_keep_alive()
        request.trailers = self._trailers
        self._enqueue(request)
        if not self._serving:
            self._serve()

    # -- answering ---------------------------------------------------------------------------

    def _serve(self) -> None:
        self._serving = True
        try:
            while self._queue and not self.busy and not self.closed:
                request = self._queue.popleft()
                self.busy = True
                self._keep = request.keep_alive
                try:
                    reply = self.router.dispatch(self, request)
                except Exception:
                    log.exception("runtime api: %s %r failed", request.method.decode(), request.url)
                    self._keep = False
                    reply = INTERNAL_ERROR_CLOSE
                if reply is not None:
                    self._finish(reply)
            self._resume_if_drained()
        finally:
            self._serving = False

    def _finish(self, reply: bytes, tail: bytes = b"") -> None:
        transport = self.transport
        assert transport is not None
        if not tail:
            transport.write(reply)
        elif len(tail) > BIG_BODY:
            transport.write(reply)
            transport.write(tail)
        else:
            transport.write(reply + tail)
        self.busy = False
        if not self._keep:
            self.closed = True
            transport.close()

    def respond(self, reply: bytes, tail: bytes = b"") -> None:
        """Answer the request this connection is parked on, then go on with the queued ones."""
        if self.closed or not self.busy:
            return
        self._finish(reply, tail)
        if not self._serving:
            self._serve()

    # -- extensions_api.EventSink ------------------------------------------------------------

    def deliver_event(self, body: bytes) -> None:
        head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Extension-Event-Identifier: "
            + str(uuid.uuid4()).encode()
            + b"\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        self.respond(head, body)

    def sink_open(self) -> bool:
        return not self.closed
