"""External extensions from a layer: Extensions API and Telemetry API through the real server.

The extension (plain Python, in /opt/extensions) registers for INVOKE and SHUTDOWN, subscribes
to the Telemetry API with a listener of its own, prints every event it gets (its stdout is the
function's log stream), and reports telemetry records that carry a marker the function logs.
Both runtime paths: lamina's own Python runtime, and a custom runtime over the Runtime API.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import pytest

from .conftest import LaminaServer, create_function, unique, wait_for_log
from .test_custom_runtimes import PY_BOOTSTRAP, executable_zip

BASE_PYTHON = os.path.realpath(sys.executable)

EXTENSION = f"""#!{BASE_PYTHON}
import http.client, http.server, json, os, sys, threading

host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
name = os.path.basename(sys.argv[0])


def call(method, path, body=None, headers=None):
    conn = http.client.HTTPConnection(host, int(port), timeout=300)
    conn.request(method, path, body=body, headers=headers or {{}})
    resp = conn.getresponse()
    return resp.status, resp, resp.read()


status, resp, body = call("POST", "/2020-01-01/extension/register",
                          json.dumps({{"events": ["INVOKE", "SHUTDOWN"]}}), {{"Lambda-Extension-Name": name}})
ext_id = resp.getheader("Lambda-Extension-Identifier")
print(f"[ext] registered {{status}} {{json.loads(body)['functionName']}}", flush=True)


class Listener(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        events = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        for event in events:
            record = event.get("record")
            if event["type"] == "function" and "telemetry-marker" in str(record):
                print("[ext] telemetry saw the function's line", flush=True)
            if event["type"] == "platform.report":
                print(f"[ext] telemetry report {{record['requestId']}}", flush=True)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


listener = http.server.HTTPServer(("127.0.0.1", 0), Listener)
threading.Thread(target=listener.serve_forever, daemon=True).start()
subscription = {{
    "schemaVersion": "2022-12-13",
    "destination": {{"protocol": "HTTP", "URI": f"http://sandbox.localdomain:{{listener.server_port}}"}},
    "types": ["platform", "function"],
    "buffering": {{"timeoutMs": 25}},
}}
ident = {{"Lambda-Extension-Identifier": ext_id}}
status, _, _ = call("PUT", "/2022-07-01/telemetry", json.dumps(subscription), ident)
print(f"[ext] subscribed {{status}}", flush=True)
while True:
    _, _, body = call("GET", "/2020-01-01/extension/event/next", headers=ident)
    event = json.loads(body)
    print(f"[ext] {{event['eventType']}} {{event.get('requestId', event.get('shutdownReason'))}}", flush=True)
    if event["eventType"] == "SHUTDOWN":
        sys.exit(0)
"""

HANDLER = """
def handler(event, context):
    print("telemetry-marker from the function")
    return {"ok": True}
"""


def make_layer(lam: Any) -> str:
    zipped = executable_zip({"extensions/probe-ext": EXTENSION})
    return str(
        lam.publish_layer_version(LayerName=unique("ext"), Content={"ZipFile": zipped})["LayerVersionArn"]
    )


@pytest.mark.parametrize("runtime", ["python3.11", "provided.al2023"])
def test_extension_lifecycle_and_telemetry(lam: Any, server: LaminaServer, runtime: str) -> None:
    layer = make_layer(lam)
    if runtime == "provided.al2023":
        code = executable_zip({"bootstrap": PY_BOOTSTRAP})
        name = create_function(lam, code, Runtime=runtime, Handler="x.y", Layers=[layer], Timeout=30)
    else:
        name = create_function(lam, HANDLER, Runtime=runtime, Layers=[layer], Timeout=30)
    group = f"/aws/lambda/{name}"
    rids = []
    for _ in range(2):
        resp = lam.invoke(FunctionName=name, Payload=json.dumps({"x": 1}))
        assert "FunctionError" not in resp, resp["Payload"].read()
        rids.append(resp["ResponseMetadata"]["RequestId"])
    messages = wait_for_log(server.data_dir, group, f"[ext] INVOKE {rids[1]}")
    assert f"[ext] registered 200 {name}" in messages
    assert "[ext] subscribed 200" in messages
    assert f"[ext] INVOKE {rids[0]}" in messages
    # the first invocation's platform.report reaches the listener
    wait_for_log(server.data_dir, group, f"[ext] telemetry report {rids[0]}")
    if runtime == "python3.11":
        wait_for_log(server.data_dir, group, "[ext] telemetry saw the function's line")
    # an update retires the environment: SHUTDOWN before it goes
    lam.update_function_configuration(FunctionName=name, Timeout=25)
    wait_for_log(server.data_dir, group, "[ext] SHUTDOWN spindown")


WRAPPER = """#!/bin/sh
# an internal extension's wrapper script: it sees the runtime's command and execs it
export WRAPPED_BY="wrapper with $# args"
echo "wrapper: last arg $(basename "$(eval echo \\${$#})")"
exec "$@"
"""

WRAPPED_PY = """
import os

def handler(event, context):
    print("in the handler")
    if event.get("fail"):
        raise KeyError("missing")
    return {"wrapped": os.environ.get("WRAPPED_BY"), "fn": context.function_name}
"""


def test_exec_wrapper_wraps_the_python_runtime(lam: Any, server: LaminaServer) -> None:
    layer = lam.publish_layer_version(
        LayerName=unique("wrap"), Content={"ZipFile": executable_zip({"wrapper.sh": WRAPPER})}
    )["LayerVersionArn"]
    name = create_function(
        lam,
        WRAPPED_PY,
        Layers=[layer],
        Environment={"Variables": {"AWS_LAMBDA_EXEC_WRAPPER": "/opt/wrapper.sh"}},
    )
    resp = lam.invoke(FunctionName=name, Payload=b"{}")
    rid = resp["ResponseMetadata"]["RequestId"]
    body = json.loads(resp["Payload"].read())
    assert "FunctionError" not in resp, body
    assert body["fn"] == name and body["wrapped"].startswith("wrapper with ")
    resp = lam.invoke(FunctionName=name, Payload=b'{"fail": true}')
    error = json.loads(resp["Payload"].read())
    assert resp["FunctionError"] == "Unhandled"
    assert error["errorType"] == "KeyError" and error["errorMessage"] == "'missing'"
    assert error["requestId"] == resp["ResponseMetadata"]["RequestId"]
    messages = wait_for_log(server.data_dir, f"/aws/lambda/{name}", f"REPORT RequestId: {rid}")
    assert "wrapper: last arg bootstrap.py" in messages  # the script last, as wrappers expect
    assert "in the handler" in messages
