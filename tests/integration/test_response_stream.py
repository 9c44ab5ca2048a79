"""InvokeWithResponseStream through boto3: AWS's event stream of PayloadChunk and InvokeComplete."""

from __future__ import annotations

import base64
import http.client
import json
import time
import urllib.parse
from typing import Any

import pytest

from .conftest import create_function
from .test_custom_runtimes import BASE_PYTHON, provided

# A custom runtime that streams its response (Runtime API streaming mode, chunked): one chunk,
# then -- as if it were still working -- another 1.5 s later.
STREAMING_BOOTSTRAP = f"""#!{BASE_PYTHON}
import http.client, json, os, time

host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
conn = http.client.HTTPConnection(host, int(port))
while True:
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    resp = conn.getresponse()
    rid = resp.getheader("Lambda-Runtime-Aws-Request-Id")
    event = json.loads(resp.read())

    def body():
        yield b"first;"
        time.sleep(event.get("pause", 0))
        yield b"second;"
        yield json.dumps(event).encode()

    conn.request("POST", f"/2018-06-01/runtime/invocation/{{rid}}/response", body=body(),
                 headers={{"Lambda-Runtime-Function-Response-Mode": "streaming",
                          "Transfer-Encoding": "chunked"}}, encode_chunked=True)
    conn.getresponse().read()
"""


def events(resp: Any) -> list[dict[str, Any]]:
    return list(resp["EventStream"])


def test_stream_of_a_buffered_function(lam: Any) -> None:
    name = create_function(lam, "def handler(e, c):\n    print('hello log')\n    return {'got': e}\n")
    resp = lam.invoke_with_response_stream(FunctionName=name, Payload=b'{"a": 1}', LogType="Tail")
    assert resp["StatusCode"] == 200 and resp["ExecutedVersion"] == "$LATEST"
    assert resp["ResponseStreamContentType"] == "application/vnd.amazon.eventstream"
    got = events(resp)
    chunks = b"".join(e["PayloadChunk"]["Payload"] for e in got if "PayloadChunk" in e)
    assert json.loads(chunks) == {"got": {"a": 1}}
    complete = got[-1]["InvokeComplete"]
    assert "ErrorCode" not in complete
    assert "hello log" in base64.b64decode(complete["LogResult"]).decode()


def test_stream_of_a_failing_function(lam: Any) -> None:
    name = create_function(lam, "def handler(e, c):\n    raise ValueError('nope')\n")
    got = events(lam.invoke_with_response_stream(FunctionName=name))
    assert [list(e) for e in got] == [["InvokeComplete"]]
    complete = got[0]["InvokeComplete"]
    assert complete["ErrorCode"] == "Unhandled"
    details = json.loads(complete["ErrorDetails"])
    assert details["errorType"] == "ValueError" and details["errorMessage"] == "nope"


def test_stream_dry_run_and_missing_function(lam: Any) -> None:
    name = create_function(lam, "def handler(e, c):\n    return 1\n")
    assert lam.invoke_with_response_stream(FunctionName=name, InvocationType="DryRun")["StatusCode"] == 204
    try:
        lam.invoke_with_response_stream(FunctionName="no-such-function")
    except lam.exceptions.ResourceNotFoundException:
        return
    raise AssertionError("expected ResourceNotFoundException")


class Timed:
    """An InvokeWithResponseStream call read to its end: when each chunk came, and the end."""

    def __init__(self, lam: Any, name: str, event: Any) -> None:
        t0 = time.monotonic()
        resp = lam.invoke_with_response_stream(FunctionName=name, Payload=json.dumps(event).encode())
        self.arrivals: list[tuple[float, bytes]] = []
        self.complete: dict[str, Any] = {}
        for ev in resp["EventStream"]:
            if "PayloadChunk" in ev:
                self.arrivals.append((time.monotonic() - t0, ev["PayloadChunk"]["Payload"]))
            else:
                self.complete = ev["InvokeComplete"]
        self.total = time.monotonic() - t0

    @property
    def body(self) -> bytes:
        return b"".join(chunk for _, chunk in self.arrivals)

    def first_came_early(self, by: float = 1.0) -> bool:
        """The first chunk reached the caller at least ``by`` seconds before the stream ended."""
        return self.arrivals[0][0] < self.total - by


def test_a_streaming_runtime_streams_to_the_caller(lam: Any) -> None:
    name = provided(lam, {"bootstrap": STREAMING_BOOTSTRAP})
    lam.invoke(FunctionName=name, Payload=b"{}")  # warm, so timing below is the stream's alone
    got = Timed(lam, name, {"pause": 1.5})
    assert got.body == b'first;second;{"pause": 1.5}'
    assert got.arrivals[0][1] == b"first;" and len(got.arrivals) >= 2
    # the first chunk reached the caller while the function was still working (1.5 s to go)
    assert got.first_came_early()
    assert "ErrorCode" not in got.complete


def test_plain_invoke_of_a_streaming_function_gets_it_whole(lam: Any) -> None:
    name = provided(lam, {"bootstrap": STREAMING_BOOTSTRAP})
    resp = lam.invoke(FunctionName=name, Payload=b'{"n": 1}')
    assert resp["Payload"].read() == b'first;second;{"n": 1}'


NODE_STREAMING = """
export const handler = awslambda.streamifyResponse(async (event, responseStream) => {
  responseStream.setContentType('text/plain');
  responseStream.write('first;');
  await new Promise((resolve) => setTimeout(resolve, event.pause || 0));
  if (event.fail) throw new RangeError('midway');
  responseStream.write('second;');
  responseStream.end('done');
});
"""


def test_node_streamify_response_streams_live(lam: Any) -> None:
    from .test_nodejs import MAJOR, RUNTIME

    if MAJOR is None or MAJOR < 18:
        pytest.skip("no node >= 18 on this host")
    name = create_function(lam, {"index.mjs": NODE_STREAMING}, Runtime=RUNTIME, Handler="index.handler")
    lam.invoke(FunctionName=name, Payload=b"{}")  # warm
    timed = Timed(lam, name, {"pause": 1500})
    assert timed.body == b"first;second;done"
    assert timed.first_came_early()  # the first write reached the caller before the pause ended
    # an error after the first byte: the stream so far, then InvokeComplete naming it
    got = list(lam.invoke_with_response_stream(FunctionName=name, Payload=b'{"fail": true}')["EventStream"])
    assert b"".join(e["PayloadChunk"]["Payload"] for e in got if "PayloadChunk" in e) == b"first;"
    complete = got[-1]["InvokeComplete"]
    assert complete["ErrorCode"] == "Unhandled"
    assert json.loads(complete["ErrorDetails"])["errorType"] == "RangeError"


PY_STREAMING = """
import time
from lamina_streaming import stream_response


@stream_response
def handler(event, context):
    yield b"first;"
    time.sleep(event.get("pause", 0))
    if event.get("fail"):
        raise KeyError("midway")
    yield "second;"
    yield b"done"
"""


def test_python_stream_response_helper(lam: Any) -> None:
    name = create_function(lam, PY_STREAMING)
    assert lam.invoke(FunctionName=name, Payload=b"{}")["Payload"].read() == b"first;second;done"
    timed = Timed(lam, name, {"pause": 1.5})
    assert timed.body == b"first;second;done"
    assert timed.first_came_early()
    got = list(lam.invoke_with_response_stream(FunctionName=name, Payload=b'{"fail": true}')["EventStream"])
    assert b"".join(e["PayloadChunk"]["Payload"] for e in got if "PayloadChunk" in e) == b"first;"
    complete = got[-1]["InvokeComplete"]
    assert (
        complete["ErrorCode"] == "Unhandled"
        and json.loads(complete["ErrorDetails"])["errorType"] == "KeyError"
    )


NODE_URL_STREAMING = """
export const handler = awslambda.streamifyResponse(async (event, responseStream) => {
  responseStream = awslambda.HttpResponseStream.from(responseStream, {
    statusCode: 201,
    headers: {'Content-Type': 'text/plain', 'X-Custom': 'yes'},
    cookies: ['a=1'],
  });
  responseStream.write('first;');
  await new Promise((resolve) => setTimeout(resolve, 1500));
  responseStream.end('second');
});
"""


def test_response_stream_function_url(lam: Any) -> None:
    from .test_function_urls import public
    from .test_nodejs import MAJOR, RUNTIME

    if MAJOR is None or MAJOR < 18:
        pytest.skip("no node >= 18 on this host")
    name = create_function(lam, {"index.mjs": NODE_URL_STREAMING}, Runtime=RUNTIME, Handler="index.handler")
    public(lam, name)
    url = lam.create_function_url_config(FunctionName=name, AuthType="NONE", InvokeMode="RESPONSE_STREAM")[
        "FunctionUrl"
    ]
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    t0 = time.monotonic()
    conn.request("GET", "/")
    resp = conn.getresponse()
    head_at = time.monotonic() - t0
    assert resp.status == 201 and resp.getheader("Transfer-Encoding") == "chunked"
    assert resp.getheader("Content-Type") == "text/plain" and resp.getheader("X-Custom") == "yes"
    assert resp.getheader("Set-Cookie") == "a=1" and resp.getheader("x-amzn-RequestId")
    first = resp.read1(64)
    first_at = time.monotonic() - t0
    rest = resp.read()
    total = time.monotonic() - t0
    conn.close()
    assert first + rest == b"first;second" and first.startswith(b"first;")
    assert head_at < total - 1.0 and first_at < total - 1.0  # status and first bytes came early
    # Invoke returns the stream as written, prelude included: only URLs read the prelude.
    whole = lam.invoke(FunctionName=name)["Payload"].read()
    assert whole.endswith(b"first;second") and b"\x00" * 8 in whole


def test_a_stream_past_20_mb_ends_with_the_size_error(lam: Any) -> None:
    name = create_function(
        lam,
        "from lamina_streaming import stream_response\n\n"
        "@stream_response\n"
        "def handler(event, context):\n"
        "    for _ in range(21):\n"
        "        yield b'x' * (1024 * 1024)\n",
        MemorySize=512,
    )
    got = list(lam.invoke_with_response_stream(FunctionName=name)["EventStream"])
    streamed = sum(len(e["PayloadChunk"]["Payload"]) for e in got if "PayloadChunk" in e)
    assert streamed == 20 * 1024 * 1024  # all that fit
    complete = got[-1]["InvokeComplete"]
    assert complete["ErrorCode"] == "Unhandled"
    assert json.loads(complete["ErrorDetails"])["errorType"] == "Function.ResponseSizeTooLarge"
