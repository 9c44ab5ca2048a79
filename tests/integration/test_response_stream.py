"""InvokeWithResponseStream through boto3: AWS's event stream of PayloadChunk and InvokeComplete."""

from __future__ import annotations

import base64
import json
from typing import Any

from .conftest import create_function


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
