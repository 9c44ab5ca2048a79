"""The HTTP server behind ``AWS_LAMBDA_RUNTIME_API``: one per execution environment.

Exec'd runtimes (provided.al2023 bootstraps, awslambdaric, our Node runtime) and extensions talk
to it: Runtime API 2018-06-01, Extensions API 2020-01-01 (state in ``extensions_api``), Telemetry
API 2022-07-01 (``telemetry_api``), and the Logs API stub AWS's emulator answers with.  Status
codes, error bodies and state names are those of AWS's Runtime Interface Emulator
(``lambda/rapi``, ``lambda/core``), checked by ``tests/unit/test_runtime_api.py`` and its siblings.

HTTP: an ``asyncio.Protocol`` over ``httptools``, HTTP/1.1 keep-alive and pipelining,
Content-Length and chunked request bodies (and trailers), on 127.0.0.1 at a kernel-chosen port.
A malformed request gets Go's ``400 Bad Request`` and the connection is closed; an exception in a
handler is logged and answered with AWS's 500 body, never a traceback.

Who may connect: with ``allowed_pids`` given, each accepted connection is traced to the process
holding its client socket (``peers``) once, when it is accepted; a connection from any other
process gets a 403 and is closed before anything it sent is parsed (or after ``REFUSED_GRACE_S``
if it sends nothing, so strangers cannot hold connections open).

The warm path, which must stay within ~0.2 ms of one bare HTTP round trip: ``send_invoke`` renders
the invocation's headers once and writes them (with the payload) to the runtime's parked
``GET next``; the runtime's ``POST .../response`` resolves the answer future and is answered with
a constant, pre-rendered 202.  One ``transport.write`` per response (two for payloads over 64 KiB,
which are not copied into the header bytes).

Concurrency invariants: one event loop, no threads, nothing here blocks (the peer check reads
netlink/procfs, which never wait on disk).  Each connection answers its requests strictly in
order: a request whose answer has to wait (``next`` calls) keeps the connection ``busy``, and
requests pipelined behind it wait in its queue.  At most one invocation is outstanding
(``send_invoke`` refuses a second before the first's answer); the runtime's state follows AWS's
state machine (Started -> Ready -> Running -> RuntimeResponseSentState -> Ready ...).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from typing import Any, cast

import httptools

from lamina.execution import peers
from lamina.execution.extensions_api import (
    ERR_ID_UNKNOWN,
    INVOKE,
    SHUTDOWN,
    ApiError,
    Extension,
    ExtensionsRegistry,
    accepts_account_id,
    forbidden,
    parse_register_body,
)
from lamina.execution.telemetry_api import (
    TELEMETRY_PATH,
    AlreadySubscribedError,
    SubscriptionInvalidError,
    SubscriptionsClosedError,
    TelemetryHub,
    validation_error_body,
)

log = logging.getLogger("lamina.runtime_api")

MAX_RESPONSE_BYTES = 6 * 1024 * 1024 + 100  # interop.MaxPayloadSize: 6 MiB + 100 bytes
BIG_BODY = 64 * 1024  # above this a payload is written after its headers instead of copied into them
PIPELINE_DEPTH = 16  # requests queued behind a busy one before we stop reading the connection
REFUSED_GRACE_S = 5.0  # how long a refused connection may stay silent before we close it

# Runtime state names (lambda/core/runtime_state_names.go)
STARTED = "Started"
INIT_ERROR = "InitError"
READY = "Ready"
RUNNING = "Running"
INVOCATION_RESPONSE = "InvocationResponse"
INVOCATION_ERROR_RESPONSE = "InvocationErrorResponse"
RESPONSE_SENT = "RuntimeResponseSentState"
NOT_ALLOWED = "State transition is not allowed"

ERROR_CAUSE_CONTENT_TYPE = b"application/vnd.aws.lambda.error.cause+json"
_VALID_ERROR_TYPE = re.compile(r"(Runtime|Function)\.[A-Z][a-zA-Z]+")
_HEADER_UNSAFE = re.compile(r"[\r\n\0]")


@dataclass(frozen=True, slots=True)
class ApiInvocation:
    request_id: str
    payload: bytes
    deadline_ms: int  # epoch milliseconds
    invoked_function_arn: str
    trace_id: str | None = None
    client_context: str | None = None  # JSON text
    cognito_identity: str | None = None  # JSON text


@dataclass(frozen=True, slots=True)
class RuntimeAnswer:
    kind: str  # "ready" | "init_error" | "result" | "error"
    body: bytes = b""  # result bytes, or the error JSON
    error_type: str | None = None


@dataclass(frozen=True, slots=True)
class ApiIdentity:
    function_name: str
    function_version: str
    handler: str
    account_id: str


class RuntimeApiClosedError(Exception):
    """The server was closed while this was pending."""


READY_ANSWER = RuntimeAnswer("ready")


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


def valid_runtime_error_type(header: str | None) -> str:
    """fatalerror.GetValidRuntimeOrFunctionErrorType."""
    if header and _VALID_ERROR_TYPE.search(header):
        return header
    if header and header.startswith("Function."):
        return "Function.Unknown"
    return "Runtime.Unknown"


def _header_value(value: str) -> str:
    # A value with CR/LF would break the response's framing.  Client contexts are JSON, where a raw
    # CR/LF can only be whitespace between tokens, so a space keeps their meaning.
    return _HEADER_UNSAFE.sub(" ", value) if _HEADER_UNSAFE.search(value) else value


def render_invocation_head(inv: ApiInvocation) -> bytes:
    """Status line and headers of the runtime's ``GET next`` answer (renderInvokeHeaders)."""
    parts = [
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        f"Lambda-Runtime-Aws-Request-Id: {_header_value(inv.request_id)}\r\n"
        f"Lambda-Runtime-Deadline-Ms: {inv.deadline_ms}\r\n"
        f"Lambda-Runtime-Invoked-Function-Arn: {_header_value(inv.invoked_function_arn)}\r\n"
    ]
    if inv.trace_id:
        parts.append(f"Lambda-Runtime-Trace-Id: {_header_value(inv.trace_id)}\r\n")
    if inv.client_context:
        parts.append(f"Lambda-Runtime-Client-Context: {_header_value(inv.client_context)}\r\n")
    if inv.cognito_identity:
        parts.append(f"Lambda-Runtime-Cognito-Identity: {_header_value(inv.cognito_identity)}\r\n")
    parts.append(f"Content-Length: {len(inv.payload)}\r\n\r\n")
    return "".join(parts).encode()


def render_invoke_event(inv: ApiInvocation) -> bytes:
    """The extensions' INVOKE event (model.AgentInvokeEvent; tracing only when there is a trace)."""
    esc = encode_basestring_ascii
    tracing = f',"tracing":{{"type":"X-Amzn-Trace-Id","value":{esc(inv.trace_id)}}}' if inv.trace_id else ""
    return (
        f'{{"eventType":"INVOKE","deadlineMs":{inv.deadline_ms},"requestId":{esc(inv.request_id)},'
        f'"invokedFunctionArn":{esc(inv.invoked_function_arn)}{tracing}}}'
    ).encode()


def render_shutdown_event(reason: str, deadline_ms: int) -> bytes:
    reason_json = encode_basestring_ascii(reason)
    return f'{{"eventType":"SHUTDOWN","deadlineMs":{deadline_ms},"shutdownReason":{reason_json}}}'.encode()


def error_cause_body(body: bytes) -> bytes:
    """The answer's body for an ``application/vnd.aws.lambda.error.cause+json`` error.

    AWS keeps errorMessage, errorType and stackTrace and drops errorCause (it goes to X-Ray); a
    body that does not parse becomes the JSON string "Invalid error body" (invocationerror.go).
    """
    try:
        data: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return b'"Invalid error body"'
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return b'"Invalid error body"'
    message, kind, trace = data.get("errorMessage"), data.get("errorType"), data.get("stackTrace")
    if not isinstance(message, str | None) or not isinstance(kind, str | None):
        return b'"Invalid error body"'
    if trace is not None and (not isinstance(trace, list) or not all(isinstance(t, str) for t in trace)):
        return b'"Invalid error body"'
    out: dict[str, Any] = {"errorMessage": message or "", "errorType": kind or ""}
    if trace:
        out["stackTrace"] = trace
    return go_json(out)


ACCEPTED = http_response(202, b'{"status":"OK"}\n')
INVALID_REQUEST_ID = error_response(400, "InvalidRequestID", "Invalid request ID")
INVALID_RESPONSE_MODE = error_response(400, "InvalidFunctionResponseMode", "Invalid function response mode")
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
LOGS_API_STUB = error_response(202, "Logs.NotSupported", "Logs API is not supported")
TELEMETRY_OK = http_response(200, b'"OK"')


def method_not_allowed(allow: bytes) -> bytes:
    return http_response(405, b"", None, b"Allow: " + allow + b"\r\n")


def state_forbidden(state: str, to: str) -> bytes:
    return error_response(
        403,
        "InvalidStateTransition",
        f"State transition from {state} to {to} failed for runtime. Error: {NOT_ALLOWED}",
    )


# -- routes ------------------------------------------------------------------------------------

RUNTIME_NEXT = b"/2018-06-01/runtime/invocation/next"
INVOCATION_PREFIX = b"/2018-06-01/runtime/invocation/"
INIT_ERROR_PATH = b"/2018-06-01/runtime/init/error"
EXT_REGISTER = b"/2020-01-01/extension/register"
EXT_NEXT = b"/2020-01-01/extension/event/next"
EXT_INIT_ERROR = b"/2020-01-01/extension/init/error"
EXT_EXIT_ERROR = b"/2020-01-01/extension/exit/error"
TELEMETRY = TELEMETRY_PATH.encode()
LOGS_API = b"/2020-08-15/logs"

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


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "replace")


class _Request:
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


class _Connection(asyncio.Protocol):
    """One client connection: parses requests, answers them in order (see the module docstring)."""

    def __init__(self, server: RuntimeApiServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.allowed = True
        self.closed = False
        self.busy = False  # a request is taken and not answered yet
        self._serving = False
        self._keep = True  # keep-alive of the request being answered
        self._paused = False
        self._queue: deque[_Request] = deque()
        self._limit = server.max_response_bytes
        # the request being parsed
        self._url = b""
        self._headers: dict[bytes, bytes] = {}
        self._trailers: dict[bytes, bytes] | None = None
        self._headers_done = False
        self._body: list[bytes] = []
        self._size = 0

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: a cast, not an isinstance check
        self.transport = cast(asyncio.Transport, transport)
        self.server._connections.add(self)
        allowed_pids = self.server._allowed_pids
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

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        if not self.allowed:
            self._abort(PEER_REFUSED)
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError:
            log.exception("runtime api: request handling failed")
            self._abort(INTERNAL_ERROR_CLOSE)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            self._abort(BAD_REQUEST)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._queue.clear()
        self.server._connection_lost(self)

    # -- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._trailers = None
        self._headers_done = False
        self._body = []
        self._size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url

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
        if self._headers.get(b"expect", b"").lower() == b"100-continue" and not self.busy and not self._queue:
            # curl holds a body over 1 KiB back until told to go on (Go's server says so on reading)
            assert self.transport is not None
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        size = self._size + len(body)
        if size <= self._limit:
            self._body.append(body)
        self._size = size  # past the limit: counted (AWS reports the size), not kept

    def on_message_complete(self) -> None:
        parts = self._body
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        request = _Request(self.parser.get_method(), self._url, self._headers, body, self._size)
        request.oversize = self._size > self._limit
        request.keep_alive = self.parser.should_keep_alive()
        request.trailers = self._trailers
        self._queue.append(request)
        if len(self._queue) > PIPELINE_DEPTH and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
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
                    reply = self.server._dispatch(self, request)
                except Exception:
                    log.exception("runtime api: %s %r failed", request.method.decode(), request.url)
                    self._keep = False
                    reply = INTERNAL_ERROR_CLOSE
                if reply is not None:
                    self._finish(reply)
            if self._paused and not self._queue and self.transport is not None and not self.closed:
                self._paused = False
                self.transport.resume_reading()
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

    def _abort(self, reply: bytes) -> None:
        if self.closed:
            return
        self.closed = True
        self._queue.clear()
        if self.transport is not None:
            self.transport.write(reply)
            self.transport.close()

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


class RuntimeApiServer:
    """The Runtime, Extensions and Telemetry APIs of one execution environment."""

    def __init__(
        self,
        *,
        identity: ApiIdentity,
        allowed_pids: Callable[[], Iterable[int]] | None,
        expected_extensions: Sequence[str] = (),
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        allow_internal_extensions: bool = True,
    ) -> None:
        self.identity = identity
        self.max_response_bytes = max_response_bytes
        self._allowed_pids = allowed_pids
        self._registry = ExtensionsRegistry(expected_extensions, allow_internal=allow_internal_extensions)
        self._hub = TelemetryHub()
        self._too_large = error_response(
            413,
            "RequestEntityTooLarge",
            f"Exceeded maximum allowed payload size ({max_response_bytes} bytes).",
        )
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connections: set[_Connection] = set()
        self._closed = False
        # runtime
        self._state = STARTED
        self._parked: deque[_Connection] = deque()  # the runtime's GET next requests
        self._current_id = b""  # request id of the last invocation handed in
        self._inv_head = b""
        self._inv_payload = b""
        self._inv_pending = False  # handed in, not yet given to the runtime
        self._answer: asyncio.Future[RuntimeAnswer] | None = None
        # init
        self._init: asyncio.Future[RuntimeAnswer] | None = None
        self._init_done = False
        self._init_failure: RuntimeAnswer | None = None
        self._registered: asyncio.Future[None] | None = None
        # extensions
        self._idle_waiters: list[asyncio.Future[None]] = []
        self._settled: asyncio.Future[None] | None = None  # a done future, handed out when idle
        self._shutdown_targets: list[Extension] = []
        self._shutdown_done: asyncio.Future[None] | None = None
        self._fatal_error: str | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> str:
        """Listen on 127.0.0.1 at a kernel-chosen port; returns ``AWS_LAMBDA_RUNTIME_API``."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._init = loop.create_future()
        self._registered = loop.create_future()
        self._settled = loop.create_future()
        self._settled.set_result(None)
        self._server = await loop.create_server(lambda: _Connection(self), "127.0.0.1", 0)
        self._check()
        port = self._server.sockets[0].getsockname()[1]
        return f"127.0.0.1:{port}"

    async def close(self) -> None:
        """Close the listener and every connection, stop telemetry, fail what is pending."""
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            conn.closed = True
            if conn.transport is not None:
                conn.transport.close()
        self._connections.clear()
        self._parked.clear()
        await self._hub.close()
        error = RuntimeApiClosedError("the Runtime API server was closed")
        waiters: list[asyncio.Future[Any]] = [*self._idle_waiters]
        waiters += [
            f for f in (self._answer, self._init, self._registered, self._shutdown_done) if f is not None
        ]
        self._idle_waiters = []
        for fut in waiters:
            _fail(fut, error)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    def telemetry(self) -> TelemetryHub:
        return self._hub

    @property
    def fatal_error(self) -> str | None:
        """The error type of the first extension ``exit/error`` (AWS: the first fatal error)."""
        return self._fatal_error

    @property
    def extensions(self) -> list[Extension]:
        """The registered extensions (read-only use: names, states, subscriptions)."""
        return self._registry.registered()

    # -- what the engine waits for ---------------------------------------------------------------

    def expect_init(self) -> asyncio.Future[RuntimeAnswer]:
        """Resolves "ready" once the runtime asked for work and every extension called next;
        "init_error" at a runtime's or an extension's init/error (or an extension's exit/error)."""
        assert self._init is not None, "start() first"
        return self._init

    def extensions_registered(self) -> asyncio.Future[None]:
        assert self._registered is not None, "start() first"
        return self._registered

    def extensions_idle(self) -> asyncio.Future[None]:
        """Resolves once every INVOKE-subscribed extension called next after the last invoke."""
        assert self._loop is not None and self._settled is not None, "start() first"
        if self._registry.settled(INVOKE):
            return self._settled
        fut: asyncio.Future[None] = self._loop.create_future()
        self._idle_waiters.append(fut)
        return fut

    def send_invoke(self, inv: ApiInvocation) -> asyncio.Future[RuntimeAnswer]:
        """Hand ``inv`` to the runtime's parked ``GET next`` (or the next one) and INVOKE to the
        extensions subscribed to it; the future resolves at the runtime's response or error."""
        assert self._loop is not None, "start() first"
        if self._answer is not None and not self._answer.done():
            raise RuntimeError("an invocation is still outstanding")
        fut: asyncio.Future[RuntimeAnswer] = self._loop.create_future()
        self._answer = fut
        if self._closed:
            _fail(fut, RuntimeApiClosedError("the Runtime API server was closed"))
            return fut
        if self._init_failure is not None:  # AWS answers an invoke after a failed INIT with its error
            fut.set_result(self._init_failure)
            return fut
        self._current_id = inv.request_id.encode()
        self._inv_head = render_invocation_head(inv)
        self._inv_payload = inv.payload
        self._inv_pending = True
        if self._registry.has_subscribers(INVOKE):  # AWS releases the extensions before the runtime
            self._registry.push(INVOKE, render_invoke_event(inv))
        self._try_deliver()
        return fut

    def runtime_initialized(self) -> None:
        """For a runtime that is not a client of this API (lamina's own Python runtime): its INIT
        is over, as if it had asked for work; ``expect_init`` resolves once the extensions are."""
        if self._state == STARTED:
            self._state = READY
            self._registry.close_registration()
            self._check()

    def notify_extensions(self, inv: ApiInvocation) -> None:
        """INVOKE to the extensions subscribed to it, and nothing to the runtime: for a runtime
        that is not a client of this API.  ``extensions_idle`` then says when they are done."""
        if self._registry.has_subscribers(INVOKE):
            self._registry.push(INVOKE, render_invoke_event(inv))

    def fail(self, exc: BaseException) -> bool:
        """Fail what the engine is waiting on (timeout, a process died); True if anything was."""
        failed = False
        if self._answer is not None and not self._answer.done():
            _fail(self._answer, exc)
            self._inv_pending = False  # never hand it over now
            if self._state == RUNNING:
                self._state = RESPONSE_SENT  # a late response or error is refused
            failed = True
        for fut in (self._init, self._registered):
            if fut is not None and not fut.done():
                _fail(fut, exc)
                failed = True
        return failed

    async def shutdown(self, reason: str, timeout_s: float = 2.0) -> None:
        """Deliver what telemetry is buffered, then SHUTDOWN (``reason``: spindown, timeout or
        failure) to the extensions subscribed to it; return once each called next again, or at
        ``timeout_s``."""
        loop = self._loop
        if loop is None or self._closed:  # never started, or already closed: nobody to tell
            return
        end = loop.time() + timeout_s
        deadline_ms = int((time.time() + timeout_s) * 1000)
        await self._hub.flush(timeout_s / 2)
        targets = self._registry.push(SHUTDOWN, render_shutdown_event(reason, deadline_ms))
        if not targets:
            return
        done: asyncio.Future[None] = loop.create_future()
        self._shutdown_targets = targets
        self._shutdown_done = done
        self._check()
        with contextlib.suppress(TimeoutError, RuntimeApiClosedError):
            await asyncio.wait_for(asyncio.shield(done), max(0.0, end - loop.time()))

    # -- state changes -------------------------------------------------------------------------

    def _check(self) -> None:
        """Resolve whatever the last state change completed."""
        registry = self._registry
        registered = self._registered
        if registered is not None and not registered.done() and registry.all_expected_registered():
            registered.set_result(None)
        if (
            not self._init_done
            and self._init_failure is None
            and self._state not in (STARTED, INIT_ERROR)
            and registry.all_init_ready()
        ):
            self._init_done = True
            self._hub.close_subscriptions()
            if self._init is not None and not self._init.done():
                self._init.set_result(READY_ANSWER)
            self._try_deliver()
        if self._idle_waiters and registry.settled(INVOKE):
            waiters, self._idle_waiters = self._idle_waiters, []
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)
        done = self._shutdown_done
        if (
            done is not None
            and not done.done()
            and all(ext.settled() or not ext.live for ext in self._shutdown_targets)
        ):
            done.set_result(None)

    def _init_failed(self, answer: RuntimeAnswer) -> None:
        if self._init_done or self._init_failure is not None:
            return
        self._init_failure = answer
        if self._init is not None and not self._init.done():
            self._init.set_result(answer)
        # AWS's suppressed init: an invocation already handed in gets the init error as its answer
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(answer)
            self._inv_pending = False

    def _try_deliver(self) -> None:
        if not self._inv_pending or not self._init_done:
            return
        parked = self._parked
        while parked:
            conn = parked.popleft()
            if conn.closed:
                continue
            self._inv_pending = False
            self._state = RUNNING
            conn.respond(self._inv_head, self._inv_payload)
            return

    def _resolve(self, answer: RuntimeAnswer) -> None:
        fut = self._answer
        if fut is not None and not fut.done():
            fut.set_result(answer)

    def _connection_lost(self, conn: _Connection) -> None:
        self._connections.discard(conn)
        if conn in self._parked:
            self._parked.remove(conn)
        self._registry.forget_sink(conn)

    # -- routing -------------------------------------------------------------------------------

    def _dispatch(self, conn: _Connection, req: _Request) -> bytes | None:
        """The response to ``req``, or None when ``conn`` was (or will be) answered by ``respond``."""
        url = req.url
        if b"?" in url:
            url = url.partition(b"?")[0]
        method = req.method
        if url == RUNTIME_NEXT:
            return self._runtime_next(conn) if method == b"GET" else method_not_allowed(b"GET")
        if url.startswith(INVOCATION_PREFIX):
            request_id, _, action = url[len(INVOCATION_PREFIX) :].rpartition(b"/")
            if b"/" not in request_id and action in (b"response", b"error"):
                if method != b"POST":
                    return method_not_allowed(b"POST")
                if action == b"response":
                    return self._runtime_response(req, request_id)
                return self._runtime_error(req, request_id)
            return NOT_FOUND
        try:
            if url == INIT_ERROR_PATH:
                return self._runtime_init_error(req) if method == b"POST" else method_not_allowed(b"POST")
            if url == EXT_NEXT:
                return self._extension_next(conn, req) if method == b"GET" else method_not_allowed(b"GET")
            if url == EXT_REGISTER:
                return self._extension_register(req) if method == b"POST" else method_not_allowed(b"POST")
            if url == EXT_INIT_ERROR:
                return (
                    self._extension_error(req, init=True)
                    if method == b"POST"
                    else method_not_allowed(b"POST")
                )
            if url == EXT_EXIT_ERROR:
                return (
                    self._extension_error(req, init=False)
                    if method == b"POST"
                    else method_not_allowed(b"POST")
                )
            if url in (TELEMETRY, TELEMETRY + b"/"):  # AWS's docs spell it with the slash too
                return self._telemetry_subscribe(req) if method == b"PUT" else method_not_allowed(b"PUT")
            if url == LOGS_API:
                return LOGS_API_STUB if method == b"PUT" else method_not_allowed(b"PUT")
        except ApiError as err:
            return error_response(err.status, err.error_type, err.message)
        return NOT_FOUND

    # -- Runtime API ---------------------------------------------------------------------------

    def _runtime_next(self, conn: _Connection) -> bytes | None:
        state = self._state
        if state == STARTED:  # the runtime's INIT is done: registration closes (rapid's doRuntimeDomainInit)
            self._state = READY
            self._registry.close_registration()
            self._check()
        elif state == RESPONSE_SENT:
            self._state = READY
        elif state == RUNNING:
            # AWS's Running state lets a repeated next through and renders the same invocation again
            conn.respond(self._inv_head, self._inv_payload)
            return None
        elif state != READY:
            return state_forbidden(state, READY)
        self._parked.append(conn)
        self._try_deliver()
        return None

    def _runtime_response(self, req: _Request, request_id: bytes) -> bytes:
        if not request_id or request_id != self._current_id:
            return INVALID_REQUEST_ID
        if self._state != RUNNING:
            return state_forbidden(self._state, INVOCATION_RESPONSE)
        self._state = RESPONSE_SENT
        mode = req.headers.get(b"lambda-runtime-function-response-mode")
        if mode is not None and mode != b"streaming":
            self._resolve(RuntimeAnswer("error", b"", "Runtime.InvalidResponseModeHeader"))
            return INVALID_RESPONSE_MODE
        if req.oversize:
            return self._too_large_answer(req)
        trailers = req.trailers
        if mode is not None and trailers and b"lambda-runtime-function-error-type" in trailers:
            # a streamed response that failed midway: the error comes in trailers (body base64)
            kind = valid_runtime_error_type(_text(trailers[b"lambda-runtime-function-error-type"]))
            try:
                body = base64.b64decode(
                    trailers.get(b"lambda-runtime-function-error-body", b""), validate=True
                )
            except (binascii.Error, ValueError):
                body = b""
            self._resolve(RuntimeAnswer("error", body, kind))
            return ACCEPTED
        self._resolve(RuntimeAnswer("result", req.body))
        return ACCEPTED

    def _too_large_answer(self, req: _Request) -> bytes:
        message = (
            f"Response payload size ({req.size} bytes) exceeded maximum allowed payload size "
            f"({self.max_response_bytes} bytes)."
        )
        payload = go_json({"errorType": "Function.ResponseSizeTooLarge", "errorMessage": message})
        self._resolve(RuntimeAnswer("error", payload, "Function.ResponseSizeTooLarge"))
        return self._too_large

    def _runtime_error(self, req: _Request, request_id: bytes) -> bytes:
        if not request_id or request_id != self._current_id:
            return INVALID_REQUEST_ID
        if self._state != RUNNING:
            return state_forbidden(self._state, INVOCATION_ERROR_RESPONSE)
        self._state = RESPONSE_SENT
        if req.oversize:
            return self._too_large_answer(req)
        kind = valid_runtime_error_type(_text(req.headers.get(b"lambda-runtime-function-error-type")))
        body = req.body
        if req.headers.get(b"content-type") == ERROR_CAUSE_CONTENT_TYPE:
            body = error_cause_body(body)
        self._resolve(RuntimeAnswer("error", body, kind))
        return ACCEPTED

    def _runtime_init_error(self, req: _Request) -> bytes:
        if self._state != STARTED:
            return state_forbidden(self._state, INIT_ERROR)
        if req.oversize:
            return self._too_large
        self._state = INIT_ERROR
        kind = valid_runtime_error_type(_text(req.headers.get(b"lambda-runtime-function-error-type")))
        self._init_failed(RuntimeAnswer("init_error", req.body, kind))
        return ACCEPTED

    # -- Extensions API ------------------------------------------------------------------------

    def _extension_register(self, req: _Request) -> bytes:
        name = _text(req.headers.get(b"lambda-extension-name"))
        if not name:
            raise forbidden("Extension.InvalidExtensionName", "Empty extension name")
        if req.oversize:
            return self._too_large
        ext = self._registry.register(name, parse_register_body(req.body))
        identity = self.identity
        body: dict[str, str] = {}
        if (
            accepts_account_id(_text(req.headers.get(b"lambda-extension-accept-feature")))
            and identity.account_id
        ):
            body["accountId"] = identity.account_id
        body |= {
            "functionName": identity.function_name,
            "functionVersion": identity.function_version,
            "handler": identity.handler,
        }
        self._check()
        header = b"Lambda-Extension-Identifier: " + ext.id.encode() + b"\r\n"
        return http_response(200, go_json(body) + b"\n", _JSON, header)

    def _extension_next(self, conn: _Connection, req: _Request) -> bytes | None:
        self._registry.next(_text(req.headers.get(b"lambda-extension-identifier")), conn)
        self._check()
        return None  # answered through conn.deliver_event, now or later

    def _extension_error(self, req: _Request, *, init: bool) -> bytes:
        agent = _text(req.headers.get(b"lambda-extension-identifier"))
        kind = _text(req.headers.get(b"lambda-extension-function-error-type"))
        if init:
            ext = self._registry.init_error(agent, kind)
        else:
            ext = self._registry.exit_error(agent, kind)
            if self._fatal_error is None:
                self._fatal_error = ext.error_type
        body = b"" if req.oversize else req.body
        self._init_failed(RuntimeAnswer("init_error", body, ext.error_type))
        self._check()
        return ACCEPTED

    def _telemetry_subscribe(self, req: _Request) -> bytes:
        agent_id, ext = self._registry.identify(_text(req.headers.get(b"lambda-extension-identifier")))
        if ext is None:
            raise forbidden(ERR_ID_UNKNOWN, f"Unknown extension {agent_id}")
        try:
            self._hub.subscribe(ext.name, b"" if req.oversize else req.body)
        except SubscriptionInvalidError as err:
            return http_response(400, validation_error_body(str(err)))
        except SubscriptionsClosedError as err:
            raise forbidden(err.error_type, err.message) from None
        except AlreadySubscribedError:
            return INTERNAL_ERROR
        return TELEMETRY_OK


def _fail(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if fut.done():
        return
    fut.set_exception(exc)
    fut.exception()  # retrieved: nobody need await it for the loop to stay quiet
