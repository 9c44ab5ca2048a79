"""nodejs runtimes end to end: the host's node, lamina's Node runtime, the real server and boto3.

The handler forms, errors and console format in depth are covered against a fake Runtime API in
tests/unit/test_nodejs_runtime.py; here the whole path: CreateFunction, cold and warm invokes,
logs in the log store, a runtime whose node major is missing on the host.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from typing import Any

import pytest
from botocore.exceptions import ClientError

from .conftest import LaminaServer, create_function, make_zip, wait_for_log


def host_node_major() -> int | None:
    try:
        out = subprocess.run(
            ["node", "-p", "process.versions.node"], capture_output=True, text=True, timeout=30
        )
    except OSError:
        return None
    return int(out.stdout.split(".")[0]) if out.returncode == 0 else None


MAJOR = host_node_major()
RUNTIME = f"nodejs{MAJOR}.x"
pytestmark = pytest.mark.skipif(MAJOR is None or MAJOR < 18, reason="no node >= 18 on this host")

CJS = """
let calls = 0;
exports.handler = async (event, context) => {
  calls += 1;
  console.log("got", JSON.stringify(event));
  console.error("to stderr");
  return {
    event, calls,
    fn: context.functionName,
    rid: context.awsRequestId,
    remaining: context.getRemainingTimeInMillis() > 0,
    arn: context.invokedFunctionArn,
  };
};
exports.cb = (event, context, callback) => { callback(null, {via: "callback"}); };
exports.fails = async () => { const e = new TypeError("bad input"); throw e; };
"""

ESM = """
const started = Date.now();
export const handler = async (event) => ({esm: true, started, event});
"""


def invoke(lam: Any, name: str, event: Any = None) -> tuple[dict[str, Any], Any]:
    resp = lam.invoke(FunctionName=name, Payload=json.dumps(event if event is not None else {}))
    return resp, json.loads(resp["Payload"].read())


def test_async_handler_context_logs_and_warm_state(lam: Any, server: LaminaServer) -> None:
    name = create_function(lam, make_zip({"index.js": CJS}), Runtime=RUNTIME, Handler="index.handler")
    resp, first = invoke(lam, name, {"a": 1})
    assert "FunctionError" not in resp, first
    rid = resp["ResponseMetadata"]["RequestId"]
    assert first["event"] == {"a": 1} and first["calls"] == 1 and first["fn"] == name
    assert first["rid"] == rid and first["remaining"] is True
    assert first["arn"].endswith(f":function:{name}")
    _, second = invoke(lam, name, {"a": 2})
    assert second["calls"] == 2  # module state kept across warm invokes
    messages = wait_for_log(server.data_dir, f"/aws/lambda/{name}", f"REPORT RequestId: {rid}")
    assert any(m.startswith(f"INIT_START Runtime Version: nodejs:{MAJOR}.") for m in messages)
    line = next(m for m in messages if 'got {"a":1}' in m)
    assert re.fullmatch(rf'\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z\t{rid}\tINFO\tgot {{"a":1}}', line), (
        line
    )
    assert any(m.endswith(f"\t{rid}\tERROR\tto stderr") for m in messages)


def test_callback_handler(lam: Any) -> None:
    name = create_function(lam, make_zip({"index.js": CJS}), Runtime=RUNTIME, Handler="index.cb")
    _, body = invoke(lam, name)
    assert body == {"via": "callback"}


def test_error_shape(lam: Any) -> None:
    name = create_function(lam, make_zip({"index.js": CJS}), Runtime=RUNTIME, Handler="index.fails")
    resp, body = invoke(lam, name)
    assert resp["FunctionError"] == "Unhandled"
    assert body["errorType"] == "TypeError" and body["errorMessage"] == "bad input"
    assert isinstance(body["trace"], list) and body["trace"][0].startswith("TypeError: bad input")


LEVELS_JS = """
exports.handler = async (event) => {
  console.debug("debug"); console.info("info"); console.log("log", {a: 1});
  console.warn("warn %s", "formatted"); console.error("error", new RangeError("inner"));
  process.stdout.write("raw stdout\\n");
  if (event.fail) { throw new TypeError("bad input"); }
  return {format: process.env.AWS_LAMBDA_LOG_FORMAT, level: process.env.AWS_LAMBDA_LOG_LEVEL};
};
"""


def test_json_logging_config(lam: Any) -> None:
    name = create_function(
        lam,
        make_zip({"index.js": LEVELS_JS}),
        Runtime=RUNTIME,
        Handler="index.handler",
        LoggingConfig={"LogFormat": "JSON", "ApplicationLogLevel": "WARN"},
    )
    resp = lam.invoke(FunctionName=name, Payload=json.dumps({"fail": True}), LogType="Tail")
    rid = resp["ResponseMetadata"]["RequestId"]
    assert json.loads(resp["Payload"].read())["errorType"] == "TypeError"
    lines = base64.b64decode(resp["LogResult"]).decode().splitlines()
    platform = [json.loads(line) for line in lines if line.startswith('{"time":')]
    assert [r["type"] for r in platform] == ["platform.initStart", "platform.start", "platform.report"]
    assert platform[0]["record"]["runtimeVersion"] == f"nodejs:{MAJOR}.v1"
    # console.* below WARN is dropped by the runtime; a raw stdout line is INFO to Lambda: dropped too
    app = [json.loads(line) for line in lines if line.startswith('{"timestamp":')]
    assert len(app) + len(platform) == len(lines), lines
    assert [(r["level"], r["requestId"]) for r in app] == [("WARN", rid), ("ERROR", rid), ("ERROR", rid)]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["timestamp"]) for r in app)
    assert app[0]["message"] == "warn formatted"
    # more than one argument: a util.format message, and the first Error's fields beside it
    assert app[1]["message"].startswith("error RangeError: inner") and app[1]["errorType"] == "RangeError"
    assert app[1]["errorMessage"] == "inner" and app[1]["stackTrace"][0] == "RangeError: inner"
    # the handler's error (the RIC's "Invoke Error"): the error object itself as the message
    invoke_error = app[2]["message"]
    assert invoke_error["errorType"] == "TypeError" and invoke_error["errorMessage"] == "bad input"
    assert invoke_error["stackTrace"][0] == "TypeError: bad input"
    resp = lam.invoke(FunctionName=name, Payload=json.dumps({}))
    assert json.loads(resp["Payload"].read()) == {"format": "JSON", "level": "WARN"}


def test_es_module(lam: Any) -> None:
    name = create_function(lam, make_zip({"index.mjs": ESM}), Runtime=RUNTIME, Handler="index.handler")
    _, first = invoke(lam, name, {"x": 1})
    _, second = invoke(lam, name, {"x": 2})
    assert first["esm"] is True and first["event"] == {"x": 1}
    assert second["started"] == first["started"]


def test_missing_module_is_import_error(lam: Any) -> None:
    name = create_function(lam, make_zip({"index.js": CJS}), Runtime=RUNTIME, Handler="nothere.handler")
    resp, body = invoke(lam, name)
    assert resp["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.ImportModuleError"


def test_absent_node_major_is_refused_at_create(lam: Any) -> None:
    for other in ("nodejs18.x", "nodejs20.x", "nodejs22.x", "nodejs24.x"):
        if other == RUNTIME:
            continue
        try:
            create_function(lam, make_zip({"index.js": CJS}), Runtime=other, Handler="index.handler")
        except ClientError as exc:
            err = exc.response["Error"]
            assert err["Code"] == "InvalidParameterValueException"
            assert f"The runtime parameter of {other} is not available on this lamina host" in err["Message"]
            assert "lamina runtimes" in err["Message"]
            return
    pytest.skip("every nodejs major is installed on this host")


def test_exec_wrapper_wraps_node(lam: Any) -> None:
    from .test_custom_runtimes import executable_zip
    from .test_extensions import WRAPPER

    layer = lam.publish_layer_version(
        LayerName="node-wrapper", Content={"ZipFile": executable_zip({"wrapper.sh": WRAPPER})}
    )["LayerVersionArn"]
    code = "exports.handler = async () => ({wrapped: process.env.WRAPPED_BY || null});"
    name = create_function(
        lam,
        make_zip({"index.js": code}),
        Runtime=RUNTIME,
        Handler="index.handler",
        Layers=[layer],
        Environment={"Variables": {"AWS_LAMBDA_EXEC_WRAPPER": "/opt/wrapper.sh"}},
    )
    _, body = invoke(lam, name)
    assert body["wrapped"] == "wrapper with 2 args"  # node and lamina's Node runtime
