"""lamina's Node.js runtime (runtimes/nodejs/bootstrap.mjs) against a fake Runtime API.

Each test starts ``node bootstrap.mjs`` the way the engine does (cwd = task root, AWS's variables,
AWS_LAMBDA_RUNTIME_API pointing at a ThreadingHTTPServer in this process), feeds it invocations
and checks what it posts back -- bodies and headers -- and what it prints, against the behaviour
of AWS's runtime interface client.  Synchronisation is by queues with timeouts, never by sleeping.
"""

from __future__ import annotations

import json
import queue
import re
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

BOOTSTRAP = Path(__file__).resolve().parents[2] / "src" / "lamina" / "runtimes" / "nodejs" / "bootstrap.mjs"
TIMEOUT = 10.0
ARN = "arn:aws:lambda:us-east-1:123456789012:function:fn"
LINE_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)\t(\S+)\t([A-Z]+)\t(.*)$")


def _node() -> str | None:
    node = shutil.which("node")
    if node is None:
        return None
    try:
        out = subprocess.run(
            [node, "-p", "process.versions.node"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    major = out.stdout.strip().split(".")[0]
    return node if out.returncode == 0 and major.isdigit() and int(major) >= 18 else None


NODE = _node()
pytestmark = pytest.mark.skipif(NODE is None, reason="no node >= 18 on this host")


# ----------------------------------------------------------------------------- fake Runtime API
@dataclass
class Post:
    kind: str  # "response", "error" or "init_error"
    request_id: str | None
    body: bytes
    headers: dict[str, str]
    peer: tuple[str, int]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Invocation:
    request_id: str
    body: bytes
    headers: dict[str, str]


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the runtime killed mid-request (end of a test) is not a failure


@dataclass
class FakeRuntimeAPI:
    invocations: queue.Queue[Invocation] = field(default_factory=queue.Queue)
    posts: queue.Queue[Post] = field(default_factory=queue.Queue)
    peers: list[tuple[str, int]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    server: QuietServer | None = None

    def start(self) -> str:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                api.peers.append(self.client_address[:2])
                if self.path != "/2018-06-01/runtime/invocation/next":
                    self.reply(404)
                    return
                while not api.stop.is_set():
                    try:
                        inv = api.invocations.get(timeout=0.05)
                    except queue.Empty:
                        continue
                    headers = {
                        "Content-Type": "application/json",
                        "Lambda-Runtime-Aws-Request-Id": inv.request_id,
                    }
                    self.reply(200, inv.body, headers | inv.headers)
                    return
                self.reply(503)

            def read_chunked(self, headers: dict[str, str]) -> bytes:
                """A chunked body; its trailers join ``headers``."""
                parts = []
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()
                while (line := self.rfile.readline().strip()) != b"":
                    name, _, value = line.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                return b"".join(parts)

            def do_POST(self) -> None:
                api.peers.append(self.client_address[:2])
                headers = {k.lower(): v for k, v in self.headers.items()}
                if headers.get("transfer-encoding") == "chunked":  # a streamed response
                    body = self.read_chunked(headers)
                else:
                    body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                match = re.fullmatch(r"/2018-06-01/runtime/invocation/([^/]+)/(response|error)", self.path)
                if match:
                    kind, request_id = match.group(2), match.group(1)
                elif self.path == "/2018-06-01/runtime/init/error":
                    kind, request_id = "init_error", None
                else:
                    self.reply(404)
                    return
                api.posts.put(Post(kind, request_id, body, headers, self.client_address[:2]))
                self.reply(202, b'{"status":"OK"}', {"Content-Type": "application/json"})

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()
        return f"127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.stop.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


Shape = Callable[[str, str, list[tuple[str, str]], bytes], list[bytes]]


def render(status: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    """An answer framed by Content-Length, as lamina's server writes it."""
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers), f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def render_chunked(status: str, headers: list[tuple[str, str]], body: bytes, sizes: list[int]) -> bytes:
    """An answer with a chunked body: chunks of ``sizes`` (then the rest), extensions, trailers."""
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers), "Transfer-Encoding: chunked"]
    out = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    at = 0
    for n, size in enumerate([*sizes, len(body)]):
        piece = body[at : at + size]
        at += len(piece)
        if piece:
            ext = ";name=value" if n % 2 else ""
            out += b"%X%s\r\n%s\r\n" % (len(piece), ext.encode(), piece)
    return out + b"0\r\nX-Trailer: done\r\n\r\n"


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@dataclass
class RawRuntimeAPI:
    """The Runtime API on bare sockets, so that a test decides how each answer reaches the runtime:
    ``shape(kind, status, headers, body)`` gives the segments to write (a short pause between two,
    so each tends to be a read of its own), ``close_after(kind)`` whether to close the connection
    once the answer is written; kind is "next", "response", "error" or "init_error"."""

    shape: Shape = lambda _kind, status, headers, body: [render(status, headers, body)]
    close_after: Callable[[str], bool] = lambda _kind: False
    invocations: queue.Queue[Invocation] = field(default_factory=queue.Queue)
    posts: queue.Queue[Post] = field(default_factory=queue.Queue)
    received: queue.Queue[str] = field(default_factory=queue.Queue)  # each request's kind, on arrival
    peers: list[tuple[str, int]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    listener: socket.socket | None = None
    conns: list[socket.socket] = field(default_factory=list)

    def start(self) -> str:
        self.listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, daemon=True).start()
        return f"127.0.0.1:{self.listener.getsockname()[1]}"

    def close(self) -> None:
        self.stop.set()
        for sock in [self.listener, *self.conns]:
            if sock is not None:
                sock.close()

    def _accept(self) -> None:
        assert self.listener is not None
        while not self.stop.is_set():
            try:
                conn, peer = self.listener.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn, peer[:2]), daemon=True).start()

    def _serve(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                request_line, *lines = head.decode("latin-1").split("\r\n")
                method, path, _ = request_line.split(" ")
                fields = (line.partition(":") for line in lines)
                headers = {k.strip().lower(): v.strip() for k, _, v in fields}
                size = int(headers.get("content-length", "0"))
                while len(buf) < size:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                body, buf = buf[:size], buf[size:]
                self.peers.append(peer)
                if method == "GET" and path == "/2018-06-01/runtime/invocation/next":
                    kind = "next"
                    self.received.put(kind)
                    while True:
                        try:
                            inv = self.invocations.get(timeout=0.05)
                            break
                        except queue.Empty:
                            if self.stop.is_set():
                                return
                    answer = (
                        "200 OK",
                        [
                            ("Content-Type", "application/json"),
                            ("Lambda-Runtime-Aws-Request-Id", inv.request_id),
                            *inv.headers.items(),
                        ],
                        inv.body,
                    )
                else:
                    match = re.fullmatch(r"/2018-06-01/runtime/invocation/([^/]+)/(response|error)", path)
                    if match:
                        kind, request_id = match.group(2), match.group(1)
                    else:
                        assert path == "/2018-06-01/runtime/init/error", path
                        kind, request_id = "init_error", None
                    self.posts.put(Post(kind, request_id, body, headers, peer))
                    self.received.put(kind)
                    answer = ("202 Accepted", [("Content-Type", "application/json")], b'{"status":"OK"}\n')
                segments = self.shape(kind, *answer)
                for n, segment in enumerate(segments):
                    if n:
                        time.sleep(0.002)
                    conn.sendall(segment)
                if self.close_after(kind):
                    conn.close()
                    return
        except OSError:
            return


# ----------------------------------------------------------------------------------- the runtime
class NodeRuntime:
    def __init__(
        self,
        task_root: Path,
        handler: str,
        env: dict[str, str],
        api: FakeRuntimeAPI | RawRuntimeAPI | None = None,
    ) -> None:
        self.api = api if api is not None else FakeRuntimeAPI()
        address = self.api.start()
        self.lines: list[str] = []
        self.cond = threading.Condition()
        environment = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "AWS_LAMBDA_RUNTIME_API": address,
            "_HANDLER": handler,
            "LAMBDA_TASK_ROOT": str(task_root),
            "AWS_LAMBDA_FUNCTION_NAME": "fn",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/fn",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2024/01/01/[$LATEST]0123456789abcdef",
            "AWS_REGION": "us-east-1",
            "AWS_EXECUTION_ENV": "AWS_Lambda_nodejs20.x",
            "NODE_PATH": "/opt/nodejs/node_modules",
        }
        environment.update(env)
        assert NODE is not None
        self.proc = subprocess.Popen(
            [NODE, str(BOOTSTRAP)],
            cwd=task_root,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            with self.cond:
                self.lines.append(raw.decode().rstrip("\n"))
                self.cond.notify_all()

    def invoke(
        self,
        event: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        deadline_ms: int | None = None,
    ) -> Post:
        request_id = str(uuid.uuid4())
        deadline = deadline_ms if deadline_ms is not None else int(time.time() * 1000) + 30_000
        all_headers = {
            "Lambda-Runtime-Deadline-Ms": str(deadline),
            "Lambda-Runtime-Invoked-Function-Arn": ARN,
        }
        all_headers.update(headers or {})
        body = raw if raw is not None else json.dumps(event if event is not None else {}).encode()
        self.api.invocations.put(Invocation(request_id, body, all_headers))
        post = self.next_post()
        assert post.request_id == request_id, post
        return post

    def next_post(self) -> Post:
        try:
            return self.api.posts.get(timeout=TIMEOUT)
        except queue.Empty:
            raise AssertionError(f"nothing posted; logs: {self.lines}") from None

    def wait_exit(self) -> int:
        return self.proc.wait(timeout=TIMEOUT)

    def wait_line(self, predicate: Callable[[str], bool]) -> str:
        deadline = time.monotonic() + TIMEOUT
        with self.cond:
            while True:
                for line in self.lines:
                    if predicate(line):
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no such line in {self.lines}")
                self.cond.wait(remaining)

    def all_lines(self) -> list[str]:
        """Every line, once the process has exited (so its output is complete)."""
        self.wait_exit()
        self.reader.join(TIMEOUT)
        return list(self.lines)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=TIMEOUT)
        self.reader.join(TIMEOUT)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.api.close()


# ---------------------------------------------------------------------------------- the handlers
FILES = {
    "index.js": """
let count = 0;
console.log('module loaded');
exports.handler = async (event) => ({ count: ++count, event, pid: process.pid });
exports.context = async (event, context) => ({
  functionName: context.functionName,
  functionVersion: context.functionVersion,
  invokedFunctionArn: context.invokedFunctionArn,
  memoryLimitInMB: context.memoryLimitInMB,
  awsRequestId: context.awsRequestId,
  logGroupName: context.logGroupName,
  logStreamName: context.logStreamName,
  identity: context.identity ?? null,
  clientContext: context.clientContext ?? null,
  remaining: context.getRemainingTimeInMillis(),
  waits: context.callbackWaitsForEmptyEventLoop,
  trace: process.env._X_AMZN_TRACE_ID ?? null,
  json: JSON.parse(JSON.stringify(context)),
});
exports.nested = { deeper: { fn: async () => 'deep' } };
exports.notfn = 42;
exports.promise = (event) => Promise.resolve({ via: 'promise' });
exports.sync = (event, context) => {};
exports.never = async () => new Promise(() => {});
exports.throws = async () => { throw new Error('boom'); };
exports.custom = async () => {
  class MyError extends Error { constructor(m) { super(m); this.name = 'MyError'; } }
  throw new MyError('custom');
};
exports.throwString = async () => { throw 'oops'; };
exports.syncThrow = (event, context) => { throw new TypeError('sync bad'); };
exports.logs = async () => {
  console.log('hello %s', 'world', { a: 1 });
  console.info('info');
  console.warn('warn');
  console.error('error');
  console.debug('debug');
  console.trace('trace');
  console.log('line1\\nline2');
  return 'logged';
};
exports.uncaught = async () => {
  setTimeout(() => { throw new Error('kaboom'); }, 0);
  return new Promise(() => {});
};
exports.unhandled = async () => {
  Promise.reject(new Error('nope'));
  await new Promise((resolve) => setTimeout(resolve, 50));
  return 'late';
};
exports.circular = async () => { const o = {}; o.self = o; return o; };
exports.slow = async (event) => { await new Promise((resolve) => setTimeout(resolve, 150)); return event; };
""",
    "callback.js": """
exports.wait = (event, context, callback) => {
  const result = { fired: false };
  setTimeout(() => { result.fired = true; }, 30);
  callback(null, result);
};
exports.nowait = (event, context, callback) => {
  context.callbackWaitsForEmptyEventLoop = false;
  const result = { fired: false };
  setTimeout(() => { result.fired = true; }, 30);
  callback(null, result);
};
exports.cbError = (event, context, callback) => callback(new Error('cb failed'));
exports.cbObject = (event, context, callback) => callback({ a: 1 });
exports.succeed = (event, context) => { context.succeed({ ok: true }); };
exports.fail = (event, context) => { context.fail('failed hard'); };
exports.failEmpty = (event, context) => { context.fail(); };
exports.done = (event, context) => { context.done(null, 'done!'); };
exports.doneErr = (event, context) => { context.done(new RangeError('range')); };
exports.never = (event, context, callback) => {};
exports.twice = (event, context, callback) => { callback(null, 1); callback(null, 2); };
""",
    "esm.mjs": """
const started = await Promise.resolve('tla');
let count = 0;
export const handler = async (event, context) =>
  ({ count: ++count, started, requestId: context.awsRequestId });
""",
    "pkg/package.json": '{"type": "module"}',
    "pkg/app.js": "export const handler = async () => ({ esm: typeof require === 'undefined' });",
    "lib/sub/mod.js": "module.exports.handler = async () => ({ cjs: typeof require === 'function' });",
    "legacy.cjs": "exports.handler = async () => 'cjs';",
    "syntax.js": "exports.handler = async () => {",
    "esmsyntax.mjs": "export const handler = ;",
    "topthrow.js": "throw new Error('at import');",
    "streaming.mjs": """
export const handler = awslambda.streamifyResponse(async (event, responseStream) => {
  responseStream.setContentType('text/plain');
  responseStream.write('hello ');
  responseStream.end('stream');
});
""",
}


@pytest.fixture(scope="module")
def task_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("task")
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.fixture
def start(task_root: Path) -> Iterator[Callable[..., NodeRuntime]]:
    started: list[NodeRuntime] = []

    def launch(handler: str, api: FakeRuntimeAPI | RawRuntimeAPI | None = None, **env: str) -> NodeRuntime:
        runtime = NodeRuntime(task_root, handler, env, api)
        started.append(runtime)
        return runtime

    yield launch
    for runtime in started:
        runtime.close()


def parsed(line: str) -> tuple[str, str, str]:
    match = LINE_RE.match(line)
    assert match, line
    return match.group(2), match.group(3), match.group(4)


# ----------------------------------------------------------------------------------------- tests
def test_warm_invokes_reuse_the_module_on_one_connection(start: Callable[..., NodeRuntime]) -> None:
    rt = start("index.handler")
    results = [rt.invoke({"n": n}).json() for n in range(3)]
    assert [r["count"] for r in results] == [1, 2, 3]
    assert [r["event"] for r in results] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert len({r["pid"] for r in results}) == 1
    loaded = [line for line in rt.lines if line.endswith("\tmodule loaded")]
    assert len(loaded) == 1
    assert parsed(loaded[0])[:2] == ("undefined", "INFO")  # outside an invocation
    # keep-alive, one socket: every GET and POST came from the same client port
    assert len(set(rt.api.peers)) == 1
    assert rt.proc.poll() is None


def test_context_fields_remaining_time_and_trace_id(start: Callable[..., NodeRuntime]) -> None:
    rt = start("index.context")
    deadline = int(time.time() * 1000) + 5000
    headers = {
        "Lambda-Runtime-Trace-Id": "Root=1-5e1b4151-5ac6c58f5b9b5e5c0c4e0d2a;Parent=1;Sampled=0",
        "Lambda-Runtime-Client-Context": json.dumps({"custom": {"k": "v"}}),
        "Lambda-Runtime-Cognito-Identity": json.dumps({"cognitoIdentityId": "id-1"}),
    }
    post = rt.invoke({}, headers=headers, deadline_ms=deadline)
    assert post.kind == "response"
    assert post.headers["content-type"] == "application/json"
    ctx = post.json()
    assert ctx["functionName"] == "fn"
    assert ctx["functionVersion"] == "$LATEST"
    assert ctx["invokedFunctionArn"] == ARN
    assert ctx["memoryLimitInMB"] == "256"  # a string, as on AWS
    assert ctx["awsRequestId"] == post.request_id
    assert ctx["logGroupName"] == "/aws/lambda/fn"
    assert ctx["logStreamName"] == "2024/01/01/[$LATEST]0123456789abcdef"
    assert ctx["identity"] == {"cognitoIdentityId": "id-1"}
    assert ctx["clientContext"] == {"custom": {"k": "v"}}
    assert 0 < ctx["remaining"] <= 5000
    assert ctx["waits"] is True
    assert ctx["trace"] == headers["Lambda-Runtime-Trace-Id"]
    # JSON.stringify(context): the RIC's key order, functions left out
    assert list(ctx["json"]) == [
        "callbackWaitsForEmptyEventLoop", "functionVersion", "functionName", "memoryLimitInMB",
        "logGroupName", "logStreamName", "clientContext", "identity", "invokedFunctionArn", "awsRequestId",
    ]  # fmt: skip
    # the next invocation has no trace header: the variable is removed, and no client context
    second = rt.invoke({}).json()
    assert second["trace"] is None
    assert second["clientContext"] is None and second["identity"] is None


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        ("index.nested.deeper.fn", "deep"),
        ("index.promise", {"via": "promise"}),
        ("index.sync", None),  # no callback, no promise: null once the event loop is empty
        ("lib/sub/mod.handler", {"cjs": True}),
        ("pkg/app.handler", {"esm": True}),  # .js under "type": "module"
        ("legacy.handler", "cjs"),
        ("streaming.handler", None),
    ],
)
def test_handler_forms_and_module_kinds(
    start: Callable[..., NodeRuntime], handler: str, expected: Any
) -> None:
    rt = start(handler)
    post = rt.invoke({})
    assert post.kind == "response"
    if handler == "streaming.handler":  # streamed to the Runtime API as it is written
        assert post.body == b"hello stream"
        assert post.headers["content-type"] == "text/plain"
        assert post.headers["lambda-runtime-function-response-mode"] == "streaming"
    else:
        assert post.json() == expected
    assert rt.invoke({}).kind == "response"  # and the loop goes on


def test_esm_with_top_level_await(start: Callable[..., NodeRuntime]) -> None:
    rt = start("esm.handler")
    first, second = rt.invoke({}), rt.invoke({})
    assert first.json() == {"count": 1, "started": "tla", "requestId": first.request_id}
    assert second.json()["count"] == 2


def test_callback_waits_for_the_empty_event_loop(start: Callable[..., NodeRuntime]) -> None:
    rt = start("callback.wait")
    # the timer mutates the result after callback(): it is serialized only once the loop is empty
    assert rt.invoke({}).json() == {"fired": True}
    assert rt.invoke({}).json() == {"fired": True}


def test_callback_without_waiting_posts_at_once(start: Callable[..., NodeRuntime]) -> None:
    rt = start("callback.nowait")
    assert rt.invoke({}).json() == {"fired": False}
    assert rt.invoke({}).json() == {"fired": False}


@pytest.mark.parametrize(
    ("handler", "kind", "body"),
    [
        ("callback.succeed", "response", {"ok": True}),
        ("callback.done", "response", "done!"),
        ("callback.never", "response", None),
        ("callback.twice", "response", 1),
        ("callback.fail", "error", {"errorType": "string", "errorMessage": "failed hard", "trace": []}),
        ("callback.failEmpty", "error", {"errorType": "string", "errorMessage": "handled", "trace": []}),
        (
            "callback.cbObject",
            "error",
            {"errorType": "object", "errorMessage": "[object Object]", "trace": []},
        ),
        ("index.throwString", "error", {"errorType": "string", "errorMessage": "oops", "trace": []}),
    ],
)
def test_callbacks_and_context_methods(
    start: Callable[..., NodeRuntime], handler: str, kind: str, body: Any
) -> None:
    rt = start(handler)
    post = rt.invoke({})
    assert (post.kind, post.json()) == (kind, body)
    if kind == "error":
        assert post.headers["lambda-runtime-function-error-type"] == body["errorType"]
    assert rt.invoke({}).kind == kind  # the runtime carries on


@pytest.mark.parametrize(
    ("handler", "error_type", "message"),
    [
        ("index.throws", "Error", "boom"),
        ("index.custom", "MyError", "custom"),
        ("index.syncThrow", "TypeError", "sync bad"),
        ("callback.cbError", "Error", "cb failed"),
        ("callback.doneErr", "RangeError", "range"),
        ("index.circular", "Error", "Unable to stringify response body"),
    ],
)
def test_error_shapes(start: Callable[..., NodeRuntime], handler: str, error_type: str, message: str) -> None:
    rt = start(handler)
    post = rt.invoke({})
    assert post.kind == "error"
    body = post.json()
    assert list(body) == ["errorType", "errorMessage", "trace"]
    assert (body["errorType"], body["errorMessage"]) == (error_type, message)
    assert body["trace"][0] == f"{error_type}: {message}"
    assert all(line.startswith("    at ") for line in body["trace"][1:])
    assert post.headers["lambda-runtime-function-error-type"] == error_type
    line = rt.wait_line(lambda s: "\tInvoke Error \t" in s)
    request_id, level, text = parsed(line)
    assert (request_id, level) == (post.request_id, "ERROR")
    logged = json.loads(text.removeprefix("Invoke Error \t"))
    assert (logged["errorType"], logged["errorMessage"]) == (error_type, message)
    assert logged["stack"] == body["trace"]
    assert rt.invoke({}).kind == "error"  # not fatal


def test_bad_event_json_is_an_invocation_error(start: Callable[..., NodeRuntime]) -> None:
    rt = start("index.handler")
    post = rt.invoke(raw=b"{not json")
    assert (post.kind, post.json()["errorType"]) == ("error", "SyntaxError")
    assert rt.invoke({"ok": 1}).json()["count"] == 1


def test_async_handler_that_never_settles(start: Callable[..., NodeRuntime]) -> None:
    rt = start("index.never")
    post = rt.invoke({})
    assert post.kind == "error"
    assert post.json()["errorType"] == "Runtime.NodeJsExit"
    assert post.json()["errorMessage"].startswith(
        "The Lambda runtime client detected an unexpected Node.js exit"
    )
    assert rt.invoke({}).kind == "error"


def test_uncaught_exception_posts_and_exits(start: Callable[..., NodeRuntime]) -> None:
    rt = start("index.uncaught")
    post = rt.invoke({})
    assert post.kind == "error"
    assert post.json()["errorType"] == "Error" and post.json()["errorMessage"] == "kaboom"
    assert post.headers["lambda-runtime-function-error-type"] == "Error"
    assert rt.wait_exit() == 129
    line = next(s for s in rt.all_lines() if "\tUncaught Exception \t" in s)
    assert parsed(line)[:2] == (post.request_id, "ERROR")


def test_unhandled_rejection_posts_and_exits(start: Callable[..., NodeRuntime]) -> None:
    rt = start("index.unhandled")
    post = rt.invoke({})
    body = post.json()
    assert post.kind == "error"
    assert (body["errorType"], body["errorMessage"]) == ("Runtime.UnhandledPromiseRejection", "Error: nope")
    assert body["trace"][0] == "Runtime.UnhandledPromiseRejection: Error: nope"
    assert rt.wait_exit() == 128
    line = next(s for s in rt.all_lines() if "\tUnhandled Promise Rejection \t" in s)
    logged = json.loads(parsed(line)[2].removeprefix("Unhandled Promise Rejection \t"))
    assert logged["reason"]["errorMessage"] == "nope"
    assert rt.api.posts.empty()  # the late 'late' result is never posted


@pytest.mark.parametrize(
    ("handler", "error_type", "message"),
    [
        ("missing.handler", "Runtime.ImportModuleError", "Error: Cannot find module 'missing'"),
        ("index.nothere", "Runtime.HandlerNotFound", "index.nothere is undefined or not exported"),
        ("index.notfn", "Runtime.HandlerNotFound", "index.notfn is not a function"),
        ("index", "Runtime.MalformedHandlerName", "Bad handler"),
        (
            "../index.handler",
            "Runtime.MalformedHandlerName",
            "'../index.handler' is not a valid handler name",
        ),
        ("syntax.handler", "Runtime.UserCodeSyntaxError", "SyntaxError: "),
        ("esmsyntax.handler", "Runtime.UserCodeSyntaxError", "SyntaxError: "),
        ("topthrow.handler", "Error", "at import"),
    ],
)
def test_init_errors(start: Callable[..., NodeRuntime], handler: str, error_type: str, message: str) -> None:
    rt = start(handler)
    post = rt.next_post()
    body = post.json()
    assert post.kind == "init_error"
    assert body["errorType"] == error_type
    assert body["errorMessage"].startswith(message)
    assert body["trace"][0].startswith(f"{error_type}: {message}")
    assert post.headers["lambda-runtime-function-error-type"] == error_type
    assert rt.wait_exit() == 129
    line = next(s for s in rt.all_lines() if "\tUncaught Exception \t" in s)
    assert parsed(line)[:2] == ("undefined", "ERROR")
    assert json.loads(parsed(line)[2].removeprefix("Uncaught Exception \t"))["errorType"] == error_type
    assert rt.api.peers and all(p == post.peer for p in rt.api.peers)  # no GET was ever made


def test_log_line_format(start: Callable[..., NodeRuntime]) -> None:
    rt = start("index.logs")
    post = rt.invoke({})
    assert post.json() == "logged"
    rt.proc.kill()
    lines = [parsed(s) for s in rt.all_lines() if LINE_RE.match(s) and parsed(s)[0] == post.request_id]
    assert lines == [
        (post.request_id, "INFO", "hello world { a: 1 }"),
        (post.request_id, "INFO", "info"),
        (post.request_id, "WARN", "warn"),
        (post.request_id, "ERROR", "error"),
        (post.request_id, "DEBUG", "debug"),
        (post.request_id, "TRACE", "trace"),
        (post.request_id, "INFO", "line1\rline2"),
    ]


def test_json_log_format_and_level(start: Callable[..., NodeRuntime]) -> None:
    rt = start("index.logs", AWS_LAMBDA_LOG_FORMAT="JSON", AWS_LAMBDA_LOG_LEVEL="WARN")
    post = rt.invoke({})
    rt.proc.kill()
    records = [json.loads(s) for s in rt.all_lines() if s.startswith("{")]
    assert [(r["level"], r["message"], r["requestId"]) for r in records] == [
        ("WARN", "warn", post.request_id),
        ("ERROR", "error", post.request_id),
    ]
    assert all(list(r) == ["timestamp", "level", "requestId", "message"] for r in records)


def test_callback_handlers_warn_before_node24_and_fail_init_from_node24(
    start: Callable[..., NodeRuntime],
) -> None:
    old = start("callback.wait")
    assert old.invoke({}).kind == "response"
    warning = old.wait_line(lambda s: "plans to remove support for callback-based function handlers" in s)
    assert parsed(warning)[:2] == ("undefined", "WARN")

    new = start("callback.wait", AWS_EXECUTION_ENV="AWS_Lambda_nodejs24.x")
    post = new.next_post()
    assert (post.kind, post.json()["errorType"]) == ("init_error", "Runtime.CallbackHandlerDeprecated")
    assert new.wait_exit() == 129
    assert start("index.handler", AWS_EXECUTION_ENV="AWS_Lambda_nodejs24.x").invoke({}).kind == "response"


# ------------------------------------------------------------------------ the runtime's HTTP client
# bootstrap.mjs speaks HTTP/1.1 itself, on one persistent connection: answers in any number of
# reads, several answers in one read, chunked bodies, bodies read to the close, reconnects.


def utf8(event: Any) -> bytes:
    return json.dumps(event, ensure_ascii=False).encode()


def test_answers_split_across_many_reads(start: Callable[..., NodeRuntime]) -> None:
    # every answer in 3-byte pieces: the blank line after the head, the body, its UTF-8 characters
    api = RawRuntimeAPI(shape=lambda _kind, status, headers, body: pieces(render(status, headers, body), 3))
    rt = start("index.handler", api=api)
    for n in range(2):
        event = {"text": "é€😀" * 8, "n": n}
        assert rt.invoke(raw=utf8(event)).json() == {"count": n + 1, "event": event, "pid": rt.proc.pid}
    assert len(set(api.peers)) == 1  # still one connection


@pytest.mark.parametrize("piece", [0, 5])
def test_chunked_answers(start: Callable[..., NodeRuntime], piece: int) -> None:
    # chunks of 1, 2, 5 bytes then the rest (a chunk boundary inside a 4-byte character), chunk
    # extensions, a trailer; the whole answer in one write (0) or in 5-byte pieces
    def shape(_kind: str, status: str, headers: list[tuple[str, str]], body: bytes) -> list[bytes]:
        data = render_chunked(status, headers, body, [1, 2, 5])
        return pieces(data, piece) if piece else [data]

    api = RawRuntimeAPI(shape=shape)
    rt = start("index.handler", api=api)
    for n in range(2):
        event = {"t": "😀é€" * 5, "n": n}
        assert rt.invoke(raw=utf8(event)).json()["event"] == event
    assert len(set(api.peers)) == 1


def test_informational_answers_and_the_final_one_in_one_read(start: Callable[..., NodeRuntime]) -> None:
    # 100 and 103 before the answer, all in one write; header names in any case, values padded
    def shape(_kind: str, status: str, headers: list[tuple[str, str]], body: bytes) -> list[bytes]:
        odd = [(k.lower() if n % 2 else k.upper(), f"  {v} ") for n, (k, v) in enumerate(headers)]
        early = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
        return [early + render(status, odd, body)]

    rt = start("index.context", api=RawRuntimeAPI(shape=shape))
    trace = "Root=1-5e1b4151-5ac6c58f5b9b5e5c0c4e0d2a;Parent=1;Sampled=0"
    headers = {"Lambda-Runtime-Trace-Id": trace, "Lambda-Runtime-Client-Context": json.dumps({"k": "v"})}
    for _ in range(2):
        post = rt.invoke({}, headers=headers)
        ctx = post.json()
        assert (ctx["awsRequestId"], ctx["invokedFunctionArn"]) == (post.request_id, ARN)
        assert (ctx["trace"], ctx["clientContext"]) == (trace, {"k": "v"})
        assert 0 < ctx["remaining"] <= 30_000


def test_a_body_read_to_the_close(start: Callable[..., NodeRuntime]) -> None:
    # next answered without a length: the body ends where the server closes; the result then goes
    # on a new connection
    def shape(kind: str, status: str, headers: list[tuple[str, str]], body: bytes) -> list[bytes]:
        if kind != "next":
            return [render(status, headers, body)]
        lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers)]
        return [("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), body]

    api = RawRuntimeAPI(shape=shape, close_after=lambda kind: kind == "next")
    rt = start("index.handler", api=api)
    for n in range(2):
        assert rt.invoke({"n": n}).json()["event"] == {"n": n}
    # GET (1st connection), POST + GET (2nd), POST (3rd)
    assert len(set(api.peers)) == 3
    assert rt.proc.poll() is None


@pytest.mark.parametrize("closed_after", ["response", "next"])
def test_reconnects_when_the_connection_closed_between_requests(
    start: Callable[..., NodeRuntime], closed_after: str
) -> None:
    # "response": the 202 says Connection: close, and the server closes; "next": the server drops
    # the connection after handing over the event, while the (slow) function runs
    def shape(kind: str, status: str, headers: list[tuple[str, str]], body: bytes) -> list[bytes]:
        if kind == closed_after == "response":
            headers = [*headers, ("Connection", "close")]
        return [render(status, headers, body)]

    api = RawRuntimeAPI(shape=shape, close_after=lambda kind: kind == closed_after)
    rt = start("index.slow", api=api)
    for n in range(3):
        assert rt.invoke({"n": n}).json() == {"n": n}
    assert len(set(api.peers)) >= 3
    assert rt.proc.poll() is None


def test_connection_lost_while_waiting_for_next_is_fatal(start: Callable[..., NodeRuntime]) -> None:
    api = RawRuntimeAPI()
    rt = start("index.handler", api=api)
    first = rt.invoke({})
    # the GET next after the result is parked: drop the connection under it
    assert [api.received.get(timeout=TIMEOUT) for _ in range(3)] == ["next", "response", "next"]
    for conn in api.conns:
        conn.shutdown(socket.SHUT_RDWR)
    post = rt.next_post()
    assert (post.kind, post.request_id) == ("error", first.request_id)
    assert post.json()["errorMessage"] == "socket hang up"
    assert post.headers["lambda-runtime-function-error-type"] == "Error"
    assert post.peer != first.peer  # on a connection of its own
    assert rt.wait_exit() == 129
    assert any(line.endswith("Unexpected Top Level Error: Error: socket hang up") for line in rt.all_lines())


def test_large_event_and_result(start: Callable[..., NodeRuntime]) -> None:
    # ~5 MB each way: an event over many reads, a result in one large write
    rt = start("index.handler")
    event = {"blob": "x€" * 1_500_000, "n": 1}
    result = rt.invoke(raw=utf8(event)).json()
    assert result["event"] == event
    assert rt.invoke({"n": 2}).json()["event"] == {"n": 2}
