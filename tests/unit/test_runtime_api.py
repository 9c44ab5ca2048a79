"""The Runtime API server over real loopback sockets: AWS's status codes, bodies and states.

Every test runs its own event loop (``asyncio.run``) and talks to the server as a runtime does:
raw HTTP over asyncio streams (``Client``, which can pipeline), ``http.client`` in a thread, or a
separate Python process.  Nothing waits on a sleep: responses, futures and events say when.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import os
import subprocess
import sys
import textwrap
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httptools
import pytest

from lamina.execution.runtime_api import (
    ApiIdentity,
    ApiInvocation,
    RuntimeAnswer,
    RuntimeApiClosedError,
    RuntimeApiServer,
)

T = TypeVar("T")
IDENTITY = ApiIdentity(
    function_name="fn", function_version="$LATEST", handler="index.handler", account_id="123456789012"
)
NEXT = "/2018-06-01/runtime/invocation/next"
TIMEOUT_S = 20.0


def run(coro: Coroutine[Any, Any, T]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, TIMEOUT_S)

    return asyncio.run(bounded())


async def until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Poll ``predicate`` on every loop iteration (no sleeping) until true, or fail."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while not predicate():
        if loop.time() > end:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Parsing:
    done: deque[Response] = field(default_factory=deque)
    headers: dict[str, str] = field(default_factory=dict)
    body: list[bytes] = field(default_factory=list)
    parser: Any = None

    def on_message_begin(self) -> None:
        self.headers, self.body = {}, []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode().lower()] = value.decode()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.done.append(Response(self.parser.get_status_code(), self.headers, b"".join(self.body)))


class Client:
    """A keep-alive HTTP/1.1 client on asyncio streams; requests may be pipelined."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self._parsing = _Parsing()
        self._parsing.parser = httptools.HttpResponseParser(self._parsing)

    @classmethod
    async def connect(cls, address: str) -> Client:
        host, port = address.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        return cls(reader, writer)

    @staticmethod
    def render(method: str, path: str, body: bytes = b"", headers: Iterable[tuple[str, str]] = ()) -> bytes:
        lines = [f"{method} {path} HTTP/1.1", "Host: localhost"]
        lines += [f"{k}: {v}" for k, v in headers]
        if body or method in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def send(
        self, method: str, path: str, body: bytes = b"", headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        self.writer.write(self.render(method, path, body, headers))

    async def response(self) -> Response:
        while not self._parsing.done:
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("closed before a response")
            self._parsing.parser.feed_data(data)
        return self._parsing.done.popleft()

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: Iterable[tuple[str, str]] = ()
    ) -> Response:
        self.send(method, path, body, headers)
        return await self.response()

    async def closed_by_server(self) -> bool:
        return await self.reader.read() == b""

    def close(self) -> None:
        self.writer.close()


def error(message: str, error_type: str) -> bytes:
    return (
        json.dumps({"errorMessage": message, "errorType": error_type}, separators=(",", ":")).encode() + b"\n"
    )


def invocation(request_id: str = "req-1", payload: bytes = b'{"k":"v"}', **kw: Any) -> ApiInvocation:
    return ApiInvocation(
        request_id=request_id,
        payload=payload,
        deadline_ms=1_700_000_000_000,
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:fn",
        **kw,
    )


async def started(**kw: Any) -> tuple[RuntimeApiServer, str]:
    kw.setdefault("allowed_pids", lambda: [os.getpid()])
    server = RuntimeApiServer(identity=IDENTITY, **kw)
    return server, await server.start()


async def ready_runtime(server: RuntimeApiServer, address: str) -> Client:
    """A runtime connection whose first ``next`` is parked (INIT done)."""
    client = await Client.connect(address)
    client.send("GET", NEXT)
    assert await server.expect_init() == RuntimeAnswer("ready")
    return client


async def invoke(server: RuntimeApiServer, client: Client, inv: ApiInvocation) -> Response:
    """Hand ``inv`` in; the runtime's parked next gets it."""
    server.send_invoke(inv)
    got = await client.response()
    assert got.status == 200 and got.headers["lambda-runtime-aws-request-id"] == inv.request_id
    return got


# -- the invocation cycle ------------------------------------------------------------------------


def test_warm_invocations_reuse_one_connection() -> None:
    async def scenario() -> None:
        server, address = await started()
        client = await ready_runtime(server, address)
        for n in range(3):
            inv = invocation(
                f"req-{n}",
                b'{"n":%d}' % n,
                trace_id="Root=1-5e1b4151-5ac6c58f3dc8c3a6b8f1e2a4;Parent=1;Sampled=1",
                client_context='{"custom":{"a":"b"}}',
                cognito_identity='{"cognitoIdentityId":"id","cognitoIdentityPoolId":"pool"}',
            )
            answer = server.send_invoke(inv)
            got = await client.response()
            assert got.status == 200
            assert got.body == inv.payload
            assert got.headers["content-type"] == "application/json"
            assert got.headers["lambda-runtime-aws-request-id"] == f"req-{n}"
            assert got.headers["lambda-runtime-deadline-ms"] == "1700000000000"
            assert got.headers["lambda-runtime-invoked-function-arn"] == inv.invoked_function_arn
            assert got.headers["lambda-runtime-trace-id"] == inv.trace_id
            assert got.headers["lambda-runtime-client-context"] == inv.client_context
            assert got.headers["lambda-runtime-cognito-identity"] == inv.cognito_identity
            assert not answer.done()
            posted = await client.request(
                "POST", f"/2018-06-01/runtime/invocation/req-{n}/response", b"[%d]" % n
            )
            assert (posted.status, posted.body) == (202, b'{"status":"OK"}\n')
            assert posted.headers["content-type"] == "application/json"
            assert await answer == RuntimeAnswer("result", b"[%d]" % n)
            client.send("GET", NEXT)
        assert len(server._connections) == 1  # keep-alive: one connection for everything
        await server.close()

    run(scenario())


def test_optional_headers_are_left_out() -> None:
    async def scenario() -> None:
        server, address = await started()
        client = await ready_runtime(server, address)
        got = await invoke(server, client, invocation())
        for name in (
            "lambda-runtime-trace-id",
            "lambda-runtime-client-context",
            "lambda-runtime-cognito-identity",
        ):
            assert name not in got.headers
        await server.close()

    run(scenario())


def test_an_invocation_waits_for_the_next_request() -> None:
    async def scenario() -> None:
        server, address = await started()
        answer = server.send_invoke(invocation("early"))  # before the runtime asked
        client = await Client.connect(address)
        got = await client.request("GET", NEXT)
        assert got.headers["lambda-runtime-aws-request-id"] == "early"
        await client.request("POST", "/2018-06-01/runtime/invocation/early/response", b"1")
        assert (await answer).body == b"1"
        with pytest.raises(RuntimeError):  # one outstanding invocation at a time
            server.send_invoke(invocation("a"))
            server.send_invoke(invocation("b"))
        await server.close()

    run(scenario())


def test_a_repeated_next_while_running_gets_the_same_invocation() -> None:
    async def scenario() -> None:  # AWS's Running state lets next through and renders it again
        server, address = await started()
        client = await ready_runtime(server, address)
        await invoke(server, client, invocation("again"))
        got = await client.request("GET", NEXT)
        assert got.headers["lambda-runtime-aws-request-id"] == "again"
        await server.close()

    run(scenario())


def test_http_client_in_a_thread() -> None:
    async def scenario() -> None:
        server, address = await started()
        host, port = address.split(":")

        def runtime() -> tuple[int, bytes]:
            conn = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT_S)
            conn.request("GET", NEXT)
            event = conn.getresponse()
            payload = event.read()
            request_id = event.getheader("Lambda-Runtime-Aws-Request-Id")
            conn.request("POST", f"/2018-06-01/runtime/invocation/{request_id}/response", body=payload[::-1])
            done = conn.getresponse()
            result = done.status, done.read()
            conn.close()
            return result

        thread = asyncio.ensure_future(asyncio.to_thread(runtime))
        assert (await server.expect_init()).kind == "ready"
        answer = await server.send_invoke(invocation(payload=b"abcdef"))
        assert answer == RuntimeAnswer("result", b"fedcba")
        assert await thread == (202, b'{"status":"OK"}\n')
        await server.close()

    run(scenario())


# -- request bodies and connections --------------------------------------------------------------


def test_a_response_larger_than_one_read() -> None:
    async def scenario() -> None:
        server, address = await started()
        client = await ready_runtime(server, address)
        big = os.urandom(3 * 1024 * 1024)
        answer = server.send_invoke(invocation(payload=big))  # the event too is larger than a read
        got = await client.response()
        assert got.body == big
        posted = await client.request("POST", "/2018-06-01/runtime/invocation/req-1/response", big[::-1])
        assert posted.status == 202
        assert (await answer).body == big[::-1]
        await server.close()

    run(scenario())


def test_chunked_request_body() -> None:
    async def scenario() -> None:
        server, address = await started()
        client = await ready_runtime(server, address)
        answer = server.send_invoke(invocation())
        await client.response()
        client.writer.write(
            b"POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        for chunk in (b'{"he', b"llo", b'":1}'):
            client.writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await client.writer.drain()
        client.writer.write(b"0\r\n\r\n")
        assert (await client.response()).status == 202
        assert (await answer).body == b'{"hello":1}'
        await server.close()

    run(scenario())


def test_pipelined_requests_are_answered_in_order() -> None:
    async def scenario() -> None:
        server, address = await started()
        client = await ready_runtime(server, address)
        answer = server.send_invoke(invocation("p1"))
        await client.response()
        # the response, the next request and an unknown route in one write
        client.writer.write(
            Client.render("POST", "/2018-06-01/runtime/invocation/p1/response", b"one")
            + Client.render("GET", NEXT)
            + Client.render("GET", "/nowhere")
        )
        assert (await client.response()).status == 202
        assert (await answer).body == b"one"
        second = server.send_invoke(invocation("p2"))
        got = await client.response()  # the parked next, answered before the 404 queued behind it
        assert got.headers["lambda-runtime-aws-request-id"] == "p2"
        assert (await client.response()).status == 404
        await client.request("POST", "/2018-06-01/runtime/invocation/p2/response", b"two")
        assert (await second).body == b"two"
        await server.close()

    run(scenario())


def test_expect_100_continue() -> None:
    async def scenario() -> None:  # curl waits for it before sending a body over 1 KiB
        server, address = await started()
        client = await ready_runtime(server, address)
        answer = server.send_invoke(invocation())
        await client.response()
        body = b"x" * 5000
        client.writer.write(
            b"POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.1\r\nHost: x\r\n"
            b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        assert await client.reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        client.writer.write(body)
        assert (await client.response()).status == 202
        assert (await answer).body == body
        await server.close()

    run(scenario())


def test_malformed_request_gets_400_and_is_closed() -> None:
    async def scenario() -> None:
        server, address = await started()
        client = await Client.connect(address)
        client.writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n")
        got = await client.response()
        assert (got.status, got.body, got.headers["connection"]) == (400, b"400 Bad Request", "close")
        assert await client.closed_by_server()
        await server.close()

    run(scenario())


def test_unknown_routes_and_methods() -> None:
    async def scenario() -> None:
        server, address = await started()
        client = await Client.connect(address)
        missing = await client.request("GET", "/2018-06-01/runtime/nothing")
        assert (missing.status, missing.body) == (404, b"404 page not found\n")
        assert missing.headers["content-type"] == "text/plain; charset=utf-8"
        wrong = await client.request("GET", "/2018-06-01/runtime/invocation/x/response")
        assert (wrong.status, wrong.body, wrong.headers["allow"]) == (405, b"", "POST")
        wrong = await client.request("POST", NEXT)
        assert (wrong.status, wrong.headers["allow"]) == (405, "GET")
        logs = await client.request("PUT", "/2020-08-15/logs", b"{}")  # AWS's emulator's stub
        assert (logs.status, logs.body) == (202, error("Logs API is not supported", "Logs.NotSupported"))
        await server.close()

    run(scenario())


# -- responses and errors from the runtime -------------------------------------------------------


def test_response_refusals() -> None:
    async def scenario() -> None:
        server, address = await started()
        client = await ready_runtime(server, address)
        await invoke(server, client, invocation("good"))
        stale = await client.request("POST", "/2018-06-01/runtime/invocation/other/response", b"x")
        assert (stale.status, stale.body) == (400, error("Invalid request ID", "InvalidRequestID"))
        assert (
            await client.request("POST", "/2018-06-01/runtime/invocation/good/response", b"1")
        ).status == 202
        again = await client.request("POST", "/2018-06-01/runtime/invocation/good/response", b"2")
        assert again.status == 403
        assert again.body == error(
            "State transition from RuntimeResponseSentState to InvocationResponse failed for runtime. "
            "Error: State transition is not allowed",
            "InvalidStateTransition",
        )
        late = await client.request("POST", "/2018-06-01/runtime/invocation/good/error", b"{}")
        assert late.body == error(
            "State transition from RuntimeResponseSentState to InvocationErrorResponse failed for runtime. "
            "Error: State transition is not allowed",
            "InvalidStateTransition",
        )
        await server.close()

    run(scenario())


def test_response_too_large() -> None:
    async def scenario() -> None:
        server, address = await started()
        client = await ready_runtime(server, address)
        answer = server.send_invoke(invocation())
        await client.response()
        too_big = b"a" * (6 * 1024 * 1024 + 101)
        got = await client.request("POST", "/2018-06-01/runtime/invocation/req-1/response", too_big)
        assert got.status == 413
        assert got.body == error(
            "Exceeded maximum allowed payload size (6291556 bytes).", "RequestEntityTooLarge"
        )
        result = await answer
        assert (result.kind, result.error_type) == ("error", "Function.ResponseSizeTooLarge")
        assert json.loads(result.body) == {
            "errorType": "Function.ResponseSizeTooLarge",
            "errorMessage": "Response payload size (6291557 bytes) exceeded maximum allowed payload size "
            "(6291556 bytes).",
        }
        # the invocation is over for the runtime too: it may ask for the next one
        client.send("GET", NEXT)
        await invoke(server, client, invocation("req-2"))
        await server.close()

    run(scenario())


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "Runtime.Unknown"),
        ("Unhandled", "Runtime.Unknown"),
        ("Runtime.ImportModuleError", "Runtime.ImportModuleError"),
        ("Function.oops", "Function.Unknown"),
        ("Function.MyError", "Function.MyError"),
    ],
)
def test_invocation_error(header: str | None, expected: str) -> None:
    async def scenario() -> None:
        server, address = await started()
        client = await ready_runtime(server, address)
        answer = server.send_invoke(invocation())
        await client.response()
        headers = [("Lambda-Runtime-Function-Error-Type", header)] if header else []
        body = b"not even json"  # passed through as posted
        got = await client.request("POST", "/2018-06-01/runtime/invocation/req-1/error", body, headers)
        assert (got.status, got.body) == (202, b'{"status":"OK"}\n')
        assert await answer == RuntimeAnswer("error", body, expected)
        await server.close()

    run(scenario())


@pytest.mark.parametrize(
    ("posted", "answered"),
    [
        (
            b'{"errorMessage":"m","errorType":"T","stackTrace":["a"],"errorCause":{"paths":[]}}',
            {"errorMessage": "m", "errorType": "T", "stackTrace": ["a"]},
        ),
        (b'{"foo":bar}', "Invalid error body"),
    ],
)
def test_error_cause_content_type(posted: bytes, answered: object) -> None:
    async def scenario() -> None:  # the cause goes to X-Ray on AWS, not into the answer
        server, address = await started()
        client = await ready_runtime(server, address)
        answer = server.send_invoke(invocation())
        await client.response()
        headers = [("Content-Type", "application/vnd.aws.lambda.error.cause+json")]
        await client.request("POST", "/2018-06-01/runtime/invocation/req-1/error", posted, headers)
        assert json.loads((await answer).body) == answered
        await server.close()

    run(scenario())


def test_streamed_response_failing_midway() -> None:
    async def scenario() -> None:
        server, address = await started()
        client = await ready_runtime(server, address)
        answer = server.send_invoke(invocation())
        await client.response()
        error_body = base64.b64encode(b'{"errorMessage":"boom"}')
        client.writer.write(
            b"POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.1\r\nHost: x\r\n"
            b"Lambda-Runtime-Function-Response-Mode: streaming\r\nTransfer-Encoding: chunked\r\n"
            b"Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n\r\n"
            b"2\r\nhi\r\n0\r\nLambda-Runtime-Function-Error-Type: Function.Boom\r\n"
            b"Lambda-Runtime-Function-Error-Body: " + error_body + b"\r\n\r\n"
        )
        assert (await client.response()).status == 202
        assert await answer == RuntimeAnswer("error", b'{"errorMessage":"boom"}', "Function.Boom")
        await server.close()

    run(scenario())


def test_invalid_response_mode() -> None:
    async def scenario() -> None:
        server, address = await started()
        client = await ready_runtime(server, address)
        answer = server.send_invoke(invocation())
        await client.response()
        got = await client.request(
            "POST",
            "/2018-06-01/runtime/invocation/req-1/response",
            b"x",
            [("Lambda-Runtime-Function-Response-Mode", "odd")],
        )
        assert got.body == error("Invalid function response mode", "InvalidFunctionResponseMode")
        assert await answer == RuntimeAnswer("error", b"", "Runtime.InvalidResponseModeHeader")
        await server.close()

    run(scenario())


def test_header_values_cannot_break_the_response() -> None:
    async def scenario() -> None:
        server, address = await started()
        client = await ready_runtime(server, address)
        got = await invoke(server, client, invocation(client_context='{"a":\r\n"b"}'))
        assert got.headers["lambda-runtime-client-context"] == '{"a":  "b"}'
        assert json.loads(got.headers["lambda-runtime-client-context"]) == {"a": "b"}
        await server.close()

    run(scenario())


# -- INIT ----------------------------------------------------------------------------------------


def test_init_error() -> None:
    async def scenario() -> None:
        server, address = await started()
        client = await Client.connect(address)
        body = b'{"errorMessage":"cannot import","errorType":"Runtime.ImportModuleError"}'
        got = await client.request(
            "POST",
            "/2018-06-01/runtime/init/error",
            body,
            [("Lambda-Runtime-Function-Error-Type", "Runtime.ImportModuleError")],
        )
        assert (got.status, got.body) == (202, b'{"status":"OK"}\n')
        assert await server.expect_init() == RuntimeAnswer("init_error", body, "Runtime.ImportModuleError")
        again = await client.request("POST", "/2018-06-01/runtime/init/error", body)
        assert again.body == error(
            "State transition from InitError to InitError failed for runtime. "
            "Error: State transition is not allowed",
            "InvalidStateTransition",
        )
        refused = await client.request("GET", NEXT)
        assert refused.status == 403
        assert json.loads(refused.body)["errorMessage"].startswith("State transition from InitError to Ready")
        # an invocation after a failed INIT is answered with INIT's error, as AWS does
        assert await server.send_invoke(invocation()) == RuntimeAnswer(
            "init_error", body, "Runtime.ImportModuleError"
        )
        await server.close()

    run(scenario())


def test_init_error_after_init_is_refused() -> None:
    async def scenario() -> None:
        server, address = await started()
        await ready_runtime(server, address)
        other = await Client.connect(address)
        got = await other.request("POST", "/2018-06-01/runtime/init/error", b"{}")
        assert json.loads(got.body)["errorMessage"].startswith(
            "State transition from Ready to InitError failed"
        )
        await server.close()

    run(scenario())


# -- failing and closing ---------------------------------------------------------------------------


def test_fail_and_close() -> None:
    async def scenario() -> None:
        server, address = await started()
        client = await ready_runtime(server, address)
        answer = server.send_invoke(invocation())
        await client.response()
        assert server.fail(TimeoutError("too slow"))
        assert not server.fail(TimeoutError("again"))
        with pytest.raises(TimeoutError):
            await answer
        late = await client.request("POST", "/2018-06-01/runtime/invocation/req-1/response", b"x")
        assert late.status == 403  # the invocation is over
        idle = await Client.connect(address)
        await idle.request("GET", "/nowhere")  # connected and served
        await server.close()
        assert await idle.closed_by_server()
        with pytest.raises(RuntimeApiClosedError):
            await server.send_invoke(invocation("after"))

    run(scenario())


def test_close_fails_what_is_pending() -> None:
    async def scenario() -> None:
        server, _ = await started(expected_extensions=["ext"])
        init, registered = server.expect_init(), server.extensions_registered()
        await server.close()
        for fut in (init, registered):
            with pytest.raises(RuntimeApiClosedError):
                await fut

    run(scenario())


# -- who may connect -------------------------------------------------------------------------------

CLIENT_SCRIPT = textwrap.dedent(
    """
    import http.client, sys
    sys.stdin.readline()  # connect only once the parent knows our pid
    host, port = sys.argv[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=20)
    conn.request("POST", "/2018-06-01/runtime/init/error", body=b"{}")
    response = conn.getresponse()
    print(response.status, response.read().decode())
    """
)


def _client_process(address: str, allowed: list[int], admit: bool) -> str:
    proc = subprocess.Popen(
        [sys.executable, "-c", CLIENT_SCRIPT, address],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    if admit:
        allowed.append(proc.pid)
    out, _ = proc.communicate("go\n", timeout=TIMEOUT_S)
    return out.strip()


def test_only_the_environments_processes_may_connect() -> None:
    async def scenario() -> None:
        allowed: list[int] = []
        server, address = await started(allowed_pids=lambda: list(allowed))
        # this process is not in the set either
        client = await Client.connect(address)
        got = await client.request("GET", NEXT)
        assert got.status == 403 and json.loads(got.body)["errorType"] == "Forbidden"
        assert await client.closed_by_server()
        stranger = await asyncio.to_thread(_client_process, address, allowed, False)
        assert stranger.startswith("403 ")
        assert not server.expect_init().done()
        member = await asyncio.to_thread(_client_process, address, allowed, True)
        assert member == '202 {"status":"OK"}'
        assert (await server.expect_init()).kind == "init_error"
        await server.close()

    run(scenario())


def test_peer_check_is_made_once_per_connection() -> None:
    async def scenario() -> None:
        calls: list[int] = []

        def pids() -> list[int]:
            calls.append(1)
            return [os.getpid()]

        server, address = await started(allowed_pids=pids)
        client = await Client.connect(address)
        for _ in range(5):
            assert (await client.request("GET", "/nowhere")).status == 404
        assert len(calls) == 1
        await server.close()

    run(scenario())
