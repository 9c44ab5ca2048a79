"""The HTTP server behind ``AWS_LAMBDA_RUNTIME_API``: one per execution environment.

Exec'd runtimes (provided.al2023 bootstraps, awslambdaric, our Node runtime) and extensions talk
to it: Runtime API 2018-06-01, Extensions API 2020-01-01 (state in ``extensions_api``), Telemetry
API 2022-07-01 (``telemetry_api``), and the Logs API stub AWS's emulator answers with.  Status
codes, error bodies and state names are those of AWS's Runtime Interface Emulator
(``lambda/rapi``, ``lambda/core``), checked by ``tests/unit/test_runtime_api.py`` and its siblings.

This module holds ``RuntimeApiServer``: what the engine calls and waits for, the runtime's state
machine, and the routing of each request to its handler.  The HTTP/1.1 side (parsing, keep-alive,
pipelining, the peer check on each accepted connection, rendering responses) is
``runtime_http``'s, whose ``Connection`` hands every request to ``RuntimeApiServer.dispatch``;
the messages exchanged with the engine (``ApiInvocation``, ``RuntimeAnswer``, ``ApiIdentity``,
re-exported here) and AWS's bodies, headers and events are ``runtime_wire``'s.

The warm path, which must stay within ~0.2 ms of one bare HTTP round trip: ``send_invoke`` renders
the invocation's headers once and writes them (with the payload) to the runtime's parked
``GET next``; the runtime's ``POST .../response`` resolves the answer future and is answered with
a constant, pre-rendered 202.  One ``transport.write`` per response (two for payloads over 64 KiB,
which are not copied into the header bytes).

Concurrency invariants: one event loop, no threads, nothing here blocks or awaits while handling a
request.  Each connection answers its requests strictly in order (``runtime_http``): a request
whose answer has to wait (``next`` calls) returns None from ``dispatch`` and is answered later
through ``Connection.respond``.  At most one invocation is outstanding (``send_invoke`` refuses a
second before the first's answer); the runtime's state follows AWS's state machine
(Started -> Ready -> Running -> RuntimeResponseSentState -> Ready ...).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

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
from lamina.execution.runtime_http import (
    INTERNAL_ERROR,
    NOT_FOUND,
    Connection,
    Request,
    error_response,
    go_json,
    http_response,
    method_not_allowed,
)
from lamina.execution.runtime_wire import (
    ACCEPTED,
    ERROR_CAUSE_CONTENT_TYPE,
    INVALID_REQUEST_ID,
    INVALID_RESPONSE_MODE,
    LOGS_API_STUB,
    TELEMETRY_OK,
    ApiIdentity,
    ApiInvocation,
    RuntimeAnswer,
    error_cause_body,
    render_invocation_head,
    render_invoke_event,
    render_shutdown_event,
    state_forbidden,
    too_large,
    too_large_payload,
    valid_runtime_error_type,
)
from lamina.execution.telemetry_api import (
    TELEMETRY_PATH,
    AlreadySubscribedError,
    Connector,
    SubscriptionInvalidError,
    SubscriptionsClosedError,
    TelemetryHub,
    validation_error_body,
)
from lamina.execution.types import StreamSink

__all__ = ["ApiIdentity", "ApiInvocation", "RuntimeAnswer", "RuntimeApiClosedError", "RuntimeApiServer"]

MAX_RESPONSE_BYTES = 6 * 1024 * 1024 + 100  # interop.MaxPayloadSize: 6 MiB + 100 bytes

# Runtime state names (lambda/core/runtime_state_names.go)
STARTED = "Started"
INIT_ERROR = "InitError"
READY = "Ready"
RUNNING = "Running"
INVOCATION_RESPONSE = "InvocationResponse"
INVOCATION_ERROR_RESPONSE = "InvocationErrorResponse"
RESPONSE_SENT = "RuntimeResponseSentState"

READY_ANSWER = RuntimeAnswer("ready")

# routes
RUNTIME_NEXT = b"/2018-06-01/runtime/invocation/next"
INVOCATION_PREFIX = b"/2018-06-01/runtime/invocation/"
INIT_ERROR_PATH = b"/2018-06-01/runtime/init/error"
EXT_REGISTER = b"/2020-01-01/extension/register"
EXT_NEXT = b"/2020-01-01/extension/event/next"
EXT_INIT_ERROR = b"/2020-01-01/extension/init/error"
EXT_EXIT_ERROR = b"/2020-01-01/extension/exit/error"
TELEMETRY = TELEMETRY_PATH.encode()
LOGS_API = b"/2020-08-15/logs"


class RuntimeApiClosedError(Exception):
    """The server was closed while this was pending."""


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "replace")


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
        connect: Connector | None = None,
    ) -> None:
        self.identity = identity
        self.max_response_bytes = max_response_bytes
        self._allowed_pids = allowed_pids
        self._registry = ExtensionsRegistry(expected_extensions, allow_internal=allow_internal_extensions)
        self._hub = TelemetryHub(connect)
        self._too_large = too_large(max_response_bytes)
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connections: set[Connection] = set()
        self._closed = False
        # runtime
        self._state = STARTED
        self._parked: deque[Connection] = deque()  # the runtime's GET next requests
        self._current_id = b""  # request id of the last invocation handed in
        self._stream: StreamSink | None = None
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

    async def start(self, listener: socket.socket | None = None) -> str:
        """Listen on 127.0.0.1 at a kernel-chosen port, or on ``listener`` (a no-network
        environment's, in its own namespace: netns.py); returns ``AWS_LAMBDA_RUNTIME_API``."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._init = loop.create_future()
        self._registered = loop.create_future()
        self._settled = loop.create_future()
        self._settled.set_result(None)

        def connection() -> Connection:
            return Connection(self, self.max_response_bytes, self._allowed_pids)

        if listener is None:
            self._server = await loop.create_server(connection, "127.0.0.1", 0)
        else:
            self._server = await loop.create_server(connection, sock=listener)
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

    def send_invoke(
        self, inv: ApiInvocation, stream: StreamSink | None = None
    ) -> asyncio.Future[RuntimeAnswer]:
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
        self._stream = stream  # a streaming caller's sink: a streamed response's chunks go there live
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

    # -- runtime_http.Router: connections and routing ------------------------------------------

    def connection_opened(self, conn: Connection) -> None:
        self._connections.add(conn)

    def connection_lost(self, conn: Connection) -> None:
        self._connections.discard(conn)
        if conn in self._parked:
            self._parked.remove(conn)
        self._registry.forget_sink(conn)

    def stream_sink(self, method: bytes, url: bytes, headers: dict[bytes, bytes]) -> StreamSink | None:
        """The caller's sink, for the streamed response of the invocation running now."""
        if (
            self._stream is None
            or method != b"POST"
            or headers.get(b"lambda-runtime-function-response-mode") != b"streaming"
            or self._state != RUNNING
            or url != b"/2018-06-01/runtime/invocation/" + self._current_id + b"/response"
        ):
            return None
        return self._stream

    def dispatch(self, conn: Connection, req: Request) -> bytes | None:
        """The response to ``req``, or None when ``conn`` was (or will be) answered by ``respond``."""
        url = req.url
        if url.find(b"?") >= 0:  # not ``in``: bytes.__contains__ tries int(needle) first
            url = url.partition(b"?")[0]
        method = req.method
        if url == RUNTIME_NEXT:
            return self._runtime_next(conn) if method == b"GET" else method_not_allowed(b"GET")
        if url.startswith(INVOCATION_PREFIX):
            request_id, _, action = url[len(INVOCATION_PREFIX) :].rpartition(b"/")
            if request_id.find(b"/") < 0 and action in (b"response", b"error"):
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

    def _runtime_next(self, conn: Connection) -> bytes | None:
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

    def _runtime_response(self, req: Request, request_id: bytes) -> bytes:
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

    def _too_large_answer(self, req: Request) -> bytes:
        payload = too_large_payload(req.size, self.max_response_bytes)
        self._resolve(RuntimeAnswer("error", payload, "Function.ResponseSizeTooLarge"))
        return self._too_large

    def _runtime_error(self, req: Request, request_id: bytes) -> bytes:
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

    def _runtime_init_error(self, req: Request) -> bytes:
        if self._state != STARTED:
            return state_forbidden(self._state, INIT_ERROR)
        if req.oversize:
            return self._too_large
        self._state = INIT_ERROR
        kind = valid_runtime_error_type(_text(req.headers.get(b"lambda-runtime-function-error-type")))
        self._init_failed(RuntimeAnswer("init_error", req.body, kind))
        return ACCEPTED

    # -- Extensions API ------------------------------------------------------------------------

    def _extension_register(self, req: Request) -> bytes:
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
        return http_response(200, go_json(body) + b"\n", headers=header)

    def _extension_next(self, conn: Connection, req: Request) -> bytes | None:
        self._registry.next(_text(req.headers.get(b"lambda-extension-identifier")), conn)
        self._check()
        return None  # answered through conn.deliver_event, now or later

    def _extension_error(self, req: Request, *, init: bool) -> bytes:
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

    def _telemetry_subscribe(self, req: Request) -> bytes:
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
