"""Invoke through boto3 against the real server: payloads, errors, logs tail, limits, context, env."""

from __future__ import annotations

import base64
import json
import re
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from .conftest import log_messages, make_zip, wait_for_log

ECHO = """
import json, os
def handler(event, context):
    return {"event": event, "request_id": context.aws_request_id,
            "arn": context.invoked_function_arn, "memory": context.memory_limit_in_mb,
            "name": context.function_name, "version": context.function_version,
            "group": context.log_group_name, "stream": context.log_stream_name,
            "remaining": context.get_remaining_time_in_millis(),
            "client_context": (context.client_context.custom if context.client_context else None),
            "env": dict(os.environ)}
"""


def invoke(lam: Any, name: str, payload: Any = None, **kw: Any) -> tuple[dict[str, Any], Any]:
    args: dict[str, Any] = {"FunctionName": name, **kw}
    if payload is not None:
        args["Payload"] = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    resp = lam.invoke(**args)
    body = resp["Payload"].read()
    return resp, (json.loads(body) if body else None)


def test_request_response_context_and_env(lam: Any, create_fn: Any) -> None:
    name = create_fn(ECHO, Environment={"Variables": {"MY_VAR": "mine"}})
    resp, out = invoke(lam, name, {"k": [1, 2]})
    assert resp["StatusCode"] == 200
    assert "FunctionError" not in resp
    assert resp["ExecutedVersion"] == "$LATEST"
    assert out["event"] == {"k": [1, 2]}
    assert out["request_id"] == resp["ResponseMetadata"]["RequestId"]
    assert out["arn"] == f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
    assert out["name"] == name and out["version"] == "$LATEST" and str(out["memory"]) == "128"
    assert out["group"] == f"/aws/lambda/{name}"
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}", out["stream"])
    assert 0 < out["remaining"] <= 3000
    env = out["env"]
    assert env["MY_VAR"] == "mine"
    for key in (
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_EXECUTION_ENV",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
        "_HANDLER",
        "TZ",
    ):
        assert key in env, key
    assert env["AWS_REGION"] == "us-east-1" and env["_HANDLER"] == "app.handler"
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.11"
    assert "LAMINA_TEST_MARKER_SHOULD_NOT_LEAK" not in env
    assert not any(k.startswith("LAMINA_") for k in env)


def test_qualified_arn_and_empty_payload(lam: Any, create_fn: Any) -> None:
    name = create_fn(ECHO)
    arn = f"arn:aws:lambda:us-east-1:123456789012:function:{name}:$LATEST"
    _resp, out = invoke(lam, arn)
    assert out["event"] == {}
    assert out["arn"] == arn


def test_client_context(lam: Any, create_fn: Any) -> None:
    name = create_fn(ECHO)
    cc = base64.b64encode(json.dumps({"custom": {"a": "b"}}).encode()).decode()
    _, out = invoke(lam, name, {}, ClientContext=cc)
    assert out["client_context"] == {"a": "b"}
    with pytest.raises(ClientError):
        lam.invoke(FunctionName=name, ClientContext="%%%not-base64")


def test_handler_exception_shape_and_tail(lam: Any, create_fn: Any) -> None:
    name = create_fn("def handler(e, c):\n    print('about to fail')\n    raise ValueError('boom')\n")
    resp, out = invoke(lam, name, {}, LogType="Tail")
    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    assert out["errorType"] == "ValueError" and out["errorMessage"] == "boom"
    assert out["requestId"] == resp["ResponseMetadata"]["RequestId"]
    assert any("raise ValueError" in frame for frame in out["stackTrace"])
    tail = base64.b64decode(resp["LogResult"]).decode()
    rid = resp["ResponseMetadata"]["RequestId"]
    assert f"START RequestId: {rid} Version: $LATEST" in tail
    assert "about to fail" in tail
    assert "[ERROR] ValueError: boom" in tail
    assert f"END RequestId: {rid}" in tail
    assert re.search(
        rf"REPORT RequestId: {rid}\tDuration: [\d.]+ ms\tBilled Duration: \d+ ms\t"
        r"Memory Size: 128 MB\tMax Memory Used: \d+ MB",
        tail,
    )


def test_tail_is_last_4kb(lam: Any, create_fn: Any) -> None:
    name = create_fn("def handler(e, c):\n    for i in range(500):\n        print('line', i, 'x' * 40)\n")
    resp, _ = invoke(lam, name, {}, LogType="Tail")
    tail = base64.b64decode(resp["LogResult"])
    assert len(tail) == 4096
    assert b"REPORT RequestId" in tail


@pytest.mark.parametrize(
    ("files", "handler", "error_type"),
    [
        ({"app.py": "def handler(e, c):\n    return 1\n"}, "missing.handler", "Runtime.ImportModuleError"),
        ({"app.py": "def handler(e, c)\n    return 1\n"}, "app.handler", "Runtime.UserCodeSyntaxError"),
        ({"app.py": "def other(e, c):\n    return 1\n"}, "app.handler", "Runtime.HandlerNotFound"),
        ({"app.py": "def handler(e, c):\n    return {1, 2}\n"}, "app.handler", "Runtime.MarshalError"),
        ({"app.py": "raise RuntimeError('init failed')\n"}, "app.handler", "RuntimeError"),
    ],
)
def test_runtime_errors(
    lam: Any, create_fn: Any, files: dict[str, str], handler: str, error_type: str
) -> None:
    name = create_fn(files, Handler=handler)
    resp, out = invoke(lam, name, {})
    assert resp["FunctionError"] == "Unhandled"
    assert out["errorType"] == error_type
    # the next invoke behaves the same (init retried in a fresh environment, not a hang)
    _resp2, out2 = invoke(lam, name, {})
    assert out2["errorType"] == error_type


def test_timeout_then_fresh_environment(lam: Any, create_fn: Any) -> None:
    code = (
        "import time\ncount = 0\ndef handler(e, c):\n    global count\n    count += 1\n"
        "    if e.get('sleep'):\n        time.sleep(30)\n"
        "    return {'count': count, 'stream': c.log_stream_name}\n"
    )
    name = create_fn(code, Timeout=1)
    _, first = invoke(lam, name, {})
    start = time.monotonic()
    resp, out = invoke(lam, name, {"sleep": True})
    elapsed = time.monotonic() - start
    assert resp["FunctionError"] == "Unhandled"
    assert "Task timed out after 1.00 seconds" in out["errorMessage"]
    assert elapsed < 5
    _, after = invoke(lam, name, {})
    assert after["count"] == 1 and after["stream"] != first["stream"]


def test_warm_reuse_and_tmp(lam: Any, create_fn: Any) -> None:
    code = (
        "import os\ncount = 0\ndef handler(e, c):\n    global count\n    count += 1\n"
        "    p = os.path.join(os.environ.get('TMPDIR', '/tmp'), 'marker')\n    existed = os.path.exists(p)\n"
        "    open(p, 'w').write('x')\n    return {'count': count, 'existed': existed}\n"
    )
    name = create_fn(code)
    _, a = invoke(lam, name, {})
    _, b = invoke(lam, name, {})
    assert (a["count"], b["count"]) == (1, 2)
    assert (a["existed"], b["existed"]) == (False, True)


def test_update_retires_old_environments(lam: Any, create_fn: Any) -> None:
    name = create_fn("V = 'one'\ndef handler(e, c):\n    return V\n")
    assert invoke(lam, name, {})[1] == "one"
    lam.update_function_configuration(FunctionName=name, Environment={"Variables": {"XX": "1"}})
    lam.get_waiter("function_updated_v2").wait(FunctionName=name)
    lam.update_function_code(
        FunctionName=name, ZipFile=make_zip({"app.py": "V = 'two'\ndef handler(e, c):\n    return V\n"})
    )
    assert invoke(lam, name, {})[1] == "two"


def test_memory_limit(lam: Any, create_fn: Any) -> None:
    code = (
        "def handler(e, c):\n    if e.get('bomb'):\n        b = []\n        while True:\n"
        "            b.append(bytearray(10 * 1024 * 1024))\n    return 'ok'\n"
    )
    name = create_fn(code, MemorySize=128, Timeout=20)
    resp, out = invoke(lam, name, {"bomb": True}, LogType="Tail")
    assert resp["FunctionError"] == "Unhandled"
    assert out["errorType"] == "Runtime.OutOfMemory"
    assert invoke(lam, name, {})[1] == "ok"


def test_payload_limits_and_bad_json(lam: Any, create_fn: Any) -> None:
    name = create_fn("def handler(e, c):\n    return len(e['s'])\n")
    with pytest.raises(ClientError) as exc:
        lam.invoke(FunctionName=name, Payload=b"{not json")
    assert exc.value.response["Error"]["Code"] == "InvalidRequestContentException"
    big = json.dumps({"s": "x" * (6 * 1024 * 1024)}).encode()
    with pytest.raises(ClientError) as exc:
        lam.invoke(FunctionName=name, Payload=big)
    assert exc.value.response["Error"]["Code"] == "RequestTooLargeException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    ok = json.dumps({"s": "x" * (5 * 1024 * 1024)}).encode()
    assert invoke(lam, name, ok)[1] == 5 * 1024 * 1024
    with pytest.raises(ClientError) as exc:
        lam.invoke(
            FunctionName=name, InvocationType="Event", Payload=json.dumps({"s": "x" * 1_100_000}).encode()
        )
    assert exc.value.response["Error"]["Code"] == "RequestTooLargeException"


def test_oversized_response_is_function_error(lam: Any, create_fn: Any) -> None:
    name = create_fn("def handler(e, c):\n    return 'x' * (7 * 1024 * 1024)\n")
    resp, out = invoke(lam, name, {})
    assert resp["FunctionError"] == "Unhandled"
    assert out["errorType"] == "Function.ResponseSizeTooLarge"


def test_dry_run(lam: Any, create_fn: Any) -> None:
    name = create_fn("def handler(e, c):\n    raise SystemExit('must not run')\n")
    resp = lam.invoke(FunctionName=name, InvocationType="DryRun")
    assert resp["StatusCode"] == 204


def test_event_invoke_runs_in_background(lam: Any, create_fn: Any, server: Any) -> None:
    name = create_fn("def handler(e, c):\n    print('event ran', c.aws_request_id, e['n'])\n")
    resp = lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"n": 7}')
    assert resp["StatusCode"] == 202
    assert resp["Payload"].read() == b""
    rid = resp["ResponseMetadata"]["RequestId"]
    messages = wait_for_log(server.data_dir, f"/aws/lambda/{name}", f"event ran {rid} 7")
    assert f"START RequestId: {rid} Version: $LATEST" in messages


def test_python_logging_format(lam: Any, create_fn: Any) -> None:
    code = (
        "import logging\nlogger = logging.getLogger()\nlogger.setLevel(logging.INFO)\n"
        "def handler(e, c):\n    logger.info('hello %s', 'log')\n    return 1\n"
    )
    name = create_fn(code)
    resp, _ = invoke(lam, name, {}, LogType="Tail")
    tail = base64.b64decode(resp["LogResult"]).decode()
    rid = resp["ResponseMetadata"]["RequestId"]
    assert re.search(rf"\[INFO\]\t\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z\t{rid}\thello log", tail)


@pytest.mark.parametrize("runtime", ["python3.12", "python3.13"])
def test_other_python_runtimes(lam: Any, create_fn: Any, runtime: str) -> None:
    code = "import sys\ndef handler(e, c):\n    return list(sys.version_info[:2])\n"
    try:
        name = create_fn(code, Runtime=runtime)
    except ClientError as exc:
        if "not available" in str(exc):
            pytest.skip(f"{runtime} not on this host")
        raise
    _, out = invoke(lam, name, {})
    assert out == [int(p) for p in runtime.removeprefix("python").split(".")]


def test_many_concurrent_event_invokes_all_run(lam: Any, create_fn: Any, server: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    name = create_fn("def handler(e, c):\n    print('event', e['i'])\n")
    client = server.client(max_pool_connections=20)

    def send(i: int) -> int:
        return int(
            client.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"i": i}))[
                "StatusCode"
            ]
        )

    with ThreadPoolExecutor(20) as pool:
        assert set(pool.map(send, range(60))) == {202}
    expected = {f"event {i}" for i in range(60)}
    deadline = time.monotonic() + 30
    while not expected <= set(log_messages(server.data_dir, f"/aws/lambda/{name}")):
        assert time.monotonic() < deadline, "not every accepted event ran"
        time.sleep(0.05)
    assert lam.get_function(FunctionName=name)["Configuration"]["State"] == "Active"


@pytest.mark.parametrize(
    ("runtime", "raw"), [("python3.11", b'"caf\\u00e9"'), ("python3.12", '"café"'.encode())]
)
def test_unicode_in_results_as_each_runtime_sends_it(
    lam: Any, create_fn: Any, runtime: str, raw: bytes
) -> None:
    try:
        name = create_fn("def handler(e, c):\n    return 'café'\n", Runtime=runtime)
    except ClientError as exc:
        if "not available" in str(exc):
            pytest.skip(f"{runtime} not on this host")
        raise
    assert lam.invoke(FunctionName=name)["Payload"].read() == raw
