"""provided.al2023 / provided.al2 / provided: the function's own bootstrap, over the Runtime API.

Bootstraps written in shell (curl, as in AWS's tutorial) and in plain Python; AWS's errors for a
missing or non-executable bootstrap, init errors, a runtime that exits mid-invoke, timeouts, the
Runtime API's answers to a wrong request id and a second response, and that no process outside
the environment can take its invocations.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import shutil
import sys
import zipfile
from typing import Any

import pytest

from .conftest import LaminaServer, create_function, make_zip, unique, wait_for_log

# The interpreter behind the venv: no lamina, no test dependencies -- only what a zip brings.
BASE_PYTHON = os.path.realpath(sys.executable)
# Where a function's code is: AWS's /var/task in the minimal root (a root server), else its path
TASK = "/var/task" if os.geteuid() == 0 else ""

SHELL_BOOTSTRAP = """#!/bin/sh
set -eu
echo "shell runtime up: $_HANDLER"
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation"
while true; do
  HEADERS="$(mktemp)"
  EVENT="$(curl -sS -LD "$HEADERS" "$API/next")"
  REQUEST_ID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)
  echo "handling $REQUEST_ID"
  curl -sS -o /dev/null "$API/$REQUEST_ID/response" -d "{\\"echo\\": $EVENT, \\"shell\\": true}"
  rm -f "$HEADERS"
done
"""

PY_BOOTSTRAP = f"""#!{BASE_PYTHON}
import http.client, json, os, sys

host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
VARIABLES = ("_HANDLER", "LAMBDA_TASK_ROOT", "AWS_EXECUTION_ENV", "AWS_LAMBDA_FUNCTION_NAME",
             "AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
conn = http.client.HTTPConnection(host, int(port))
state = {{"count": 0, "statuses": []}}
print("python runtime up", flush=True)


def call(method, path, body=None, headers=None):
    conn.request(method, "/2018-06-01/runtime" + path, body=body, headers=headers or {{}})
    resp = conn.getresponse()
    return resp.status, dict(resp.getheaders()), resp.read()


if os.environ.get("FAIL_INIT"):
    call("POST", "/init/error", json.dumps({{"errorMessage": "no config", "errorType": "Custom.InitFailed"}}),
         {{"Lambda-Runtime-Function-Error-Type": "Custom.InitFailed"}})
    sys.exit(1)

while True:
    status, headers, body = call("GET", "/invocation/next")
    rid = headers["Lambda-Runtime-Aws-Request-Id"]
    event = json.loads(body)
    state["count"] += 1
    print(f"event {{state['count']}} for {{rid}}", flush=True)
    action = event.get("action")
    if action == "crash":
        sys.exit(3)
    if action == "kill":
        os.kill(os.getpid(), 9)
    if action == "sleep":
        import time; time.sleep(60)
    if action == "error":
        err = {{"errorMessage": "bad thing", "errorType": "Custom.Bad", "stackTrace": ["line 1"]}}
        call("POST", f"/invocation/{{rid}}/error", json.dumps(err),
             {{"Lambda-Runtime-Function-Error-Type": "Custom.Bad"}})
        continue
    if action == "big":  # over the 6 MB limit: the runtime hears 413, the caller an error
        status, _, body = call("POST", f"/invocation/{{rid}}/response", b'"' + b"x" * 6_300_000 + b'"')
        state["statuses"] = [[status, body.decode()]]
        continue
    if action == "probe":
        # the Runtime API's answers to a request id it never issued, then to a second response
        bogus = call("POST", "/invocation/not-a-request/response", b"{{}}")
        first = call("POST", f"/invocation/{{rid}}/response", json.dumps({{"probe": True}}))
        second = call("POST", f"/invocation/{{rid}}/response", b"{{}}")
        state["statuses"] = [[bogus[0], bogus[2].decode()], [first[0]], [second[0], second[2].decode()]]
        continue
    result = {{
        "event": event,
        "count": state["count"],
        "statuses": state["statuses"],
        "deadline": headers.get("Lambda-Runtime-Deadline-Ms"),
        "arn": headers.get("Lambda-Runtime-Invoked-Function-Arn"),
        "trace": headers.get("Lambda-Runtime-Trace-Id"),
        "client_context": headers.get("Lambda-Runtime-Client-Context"),
        "api": os.environ["AWS_LAMBDA_RUNTIME_API"],
        "env": {{k: os.environ.get(k) for k in VARIABLES}},
        "cwd": os.getcwd(),
    }}
    call("POST", f"/invocation/{{rid}}/response", json.dumps(result))
"""


def invoke(lam: Any, name: str, event: Any = None, **kw: Any) -> tuple[dict[str, Any], Any]:
    resp = lam.invoke(FunctionName=name, Payload=json.dumps(event if event is not None else {}), **kw)
    return resp, json.loads(resp["Payload"].read())


def provided(lam: Any, files: dict[str, str | bytes], *, runtime: str = "provided.al2023", **kw: Any) -> str:
    return create_function(
        lam, executable_zip(files), Runtime=runtime, Handler=kw.pop("Handler", "function.handler"), **kw
    )


def executable_zip(files: dict[str, str | bytes]) -> bytes:
    """A zip whose bootstrap, *.sh and extensions/* carry the executable bit, as `zip` keeps it."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            info = zipfile.ZipInfo(name)
            executable = name == "bootstrap" or name.endswith(".sh") or name.startswith("extensions/")
            mode = 0o755 if executable else 0o644
            info.external_attr = (0o100000 | mode) << 16
            zf.writestr(info, content)
    return buf.getvalue()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("runtime", ["provided.al2023", "provided.al2", "provided"])
def test_shell_bootstrap_serves_invokes(lam: Any, server: LaminaServer, runtime: str) -> None:
    name = provided(lam, {"bootstrap": SHELL_BOOTSTRAP}, runtime=runtime)
    for i in range(3):
        resp, body = invoke(lam, name, {"n": i})
        assert resp["StatusCode"] == 200 and "FunctionError" not in resp
        assert body == {"echo": {"n": i}, "shell": True}
    messages = wait_for_log(server.data_dir, f"/aws/lambda/{name}", "REPORT RequestId")
    assert any(m == "shell runtime up: function.handler" for m in messages)
    assert any(m.startswith("INIT_START Runtime Version: provided:") for m in messages)
    assert any(m.startswith("handling ") for m in messages)


def test_python_bootstrap_context_env_and_warm_state(lam: Any) -> None:
    name = provided(lam, {"bootstrap": PY_BOOTSTRAP}, MemorySize=256)
    resp, first = invoke(lam, name, {"a": 1}, ClientContext="eyJjdXN0b20iOiB7ImsiOiAidiJ9fQ==")
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp, first
    assert first["event"] == {"a": 1} and first["count"] == 1
    assert first["arn"].endswith(f":function:{name}")
    assert json.loads(first["client_context"]) == {"custom": {"k": "v"}}
    assert int(first["deadline"]) > 0
    env = first["env"]
    assert env["_HANDLER"] == "function.handler" and env["AWS_LAMBDA_FUNCTION_NAME"] == name
    assert env["AWS_EXECUTION_ENV"] is None  # AWS sets none for OS-only runtimes
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert first["cwd"] == env["LAMBDA_TASK_ROOT"] and env["LAMBDA_TASK_ROOT"].endswith(TASK)
    _, second = invoke(lam, name, {"a": 2})
    assert second["count"] == 2 and second["api"] == first["api"]  # the same warm runtime


def test_runtime_error_reaches_caller(lam: Any) -> None:
    name = provided(lam, {"bootstrap": PY_BOOTSTRAP})
    resp, body = invoke(lam, name, {"action": "error"})
    assert resp["FunctionError"] == "Unhandled"
    assert body == {"errorMessage": "bad thing", "errorType": "Custom.Bad", "stackTrace": ["line 1"]}
    _, body = invoke(lam, name, {"a": 1})
    assert body["count"] == 2  # an error leaves the runtime warm


def test_unknown_request_id_and_second_response(lam: Any) -> None:
    name = provided(lam, {"bootstrap": PY_BOOTSTRAP})
    resp, body = invoke(lam, name, {"action": "probe"})
    assert body == {"probe": True} and "FunctionError" not in resp
    _, body = invoke(lam, name, {})
    bogus, first, second = body["statuses"]
    assert first == [202]
    assert bogus[0] in (400, 404) and "errorType" in json.loads(bogus[1])
    assert second[0] in (400, 403) and "errorType" in json.loads(second[1])


def test_init_error_reaches_caller(lam: Any, server: LaminaServer) -> None:
    name = provided(lam, {"bootstrap": PY_BOOTSTRAP}, Environment={"Variables": {"FAIL_INIT": "1"}})
    resp, body = invoke(lam, name, {})
    assert resp["FunctionError"] == "Unhandled"
    assert body == {"errorMessage": "no config", "errorType": "Custom.InitFailed"}
    messages = wait_for_log(server.data_dir, f"/aws/lambda/{name}", "REPORT RequestId")
    assert any("INIT_REPORT" in m and "Error Type: Custom.InitFailed" in m for m in messages)


def test_missing_bootstrap_is_invalid_entrypoint(lam: Any, server: LaminaServer) -> None:
    name = provided(lam, {"main.sh": "echo hi\n"})
    resp, body = invoke(lam, name, {})
    assert resp["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.InvalidEntrypoint"
    rid = resp["ResponseMetadata"]["RequestId"]
    assert body["errorMessage"].startswith(f"RequestId: {rid} Error: Couldn't find valid bootstrap(s): [")
    assert body["errorMessage"].endswith(f"{TASK}/bootstrap /opt/bootstrap]")  # AWS's words exactly
    messages = wait_for_log(server.data_dir, f"/aws/lambda/{name}", "REPORT RequestId")
    assert any("INIT_REPORT" in m and "Error Type: Runtime.InvalidEntrypoint" in m for m in messages)


def test_non_executable_bootstrap_is_invalid_entrypoint(lam: Any) -> None:
    zipped = make_zip({"bootstrap": PY_BOOTSTRAP})  # no executable bit
    name = create_function(lam, zipped, Runtime="provided.al2023", Handler="x.y")
    _resp, body = invoke(lam, name, {})
    assert body["errorType"] == "Runtime.InvalidEntrypoint"
    assert "Error: fork/exec /" in body["errorMessage"]
    assert body["errorMessage"].endswith(f"{TASK}/bootstrap: permission denied")


@pytest.mark.parametrize(("action", "reason"), [("crash", "exit status 3"), ("kill", "signal: killed")])
def test_runtime_exit_mid_invoke_is_exit_error_and_env_replaced(lam: Any, action: str, reason: str) -> None:
    name = provided(lam, {"bootstrap": PY_BOOTSTRAP})
    _, warm = invoke(lam, name, {})
    resp, body = invoke(lam, name, {"action": action})
    assert resp["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.ExitError"
    assert body["errorMessage"].endswith(f"Error: Runtime exited with error: {reason}")
    _, after = invoke(lam, name, {})
    assert after["count"] == 1 and after["api"] != warm["api"]  # a new environment


def test_timeout_is_sandbox_timedout(lam: Any) -> None:
    name = provided(lam, {"bootstrap": PY_BOOTSTRAP}, Timeout=1)
    _resp, body = invoke(lam, name, {"action": "sleep"})
    assert body["errorType"] == "Sandbox.Timedout"
    _, after = invoke(lam, name, {})
    assert after["count"] == 1


def test_no_other_process_can_take_an_environments_invocations(lam: Any) -> None:
    name = provided(lam, {"bootstrap": PY_BOOTSTRAP})
    _, body = invoke(lam, name, {})
    host, port = body["api"].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", "/2018-06-01/runtime/invocation/next")
        resp = conn.getresponse()
        status = resp.status
        resp.read()
    except (ConnectionError, http.client.HTTPException):
        status = 0  # closed on us: refused too
    finally:
        conn.close()
    assert status in (0, 403)
    _, after = invoke(lam, name, {"still": "mine"})
    assert after["event"] == {"still": "mine"} and after["count"] == 2


def test_bootstrap_from_a_layer(lam: Any) -> None:
    layer = lam.publish_layer_version(
        LayerName=unique("rt"), Content={"ZipFile": executable_zip({"bootstrap": PY_BOOTSTRAP})}
    )
    name = provided(lam, {"handler.txt": "code only"}, Layers=[layer["LayerVersionArn"]])
    resp, body = invoke(lam, name, {"from": "layer"})
    assert "FunctionError" not in resp, body
    assert body["event"] == {"from": "layer"}


def test_oversized_response_is_413_to_the_runtime_and_an_error_to_the_caller(lam: Any) -> None:
    name = provided(lam, {"bootstrap": PY_BOOTSTRAP})
    resp, body = invoke(lam, name, {"action": "big"})
    assert resp["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Function.ResponseSizeTooLarge"
    assert "exceeded maximum allowed payload size (6291556 bytes)" in body["errorMessage"]
    _, after = invoke(lam, name, {})
    [[status, answer]] = after["statuses"]
    assert status == 413 and json.loads(answer)["errorType"] == "RequestEntityTooLarge"
