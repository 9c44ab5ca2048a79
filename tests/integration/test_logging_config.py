"""LoggingConfig (advanced logging controls) end to end: the API's rules, JSON logs, levels, LogGroup.

The function's lines are read from the invoke's own ``LogType=Tail`` answer (no waiting on the
log store), except for the custom LogGroup, whose point is the log store.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
from botocore.exceptions import ClientError

from .conftest import ROLE, LaminaServer, create_function, make_zip, unique, wait_for_log

LEVEL_WITH_TEXT = (
    'LogLevel is not supported when LogFormat is set to "Text". Remove LogLevel from your '
    'request or change the LogFormat to "Json" and try again.'
)

APP = """
import logging
import os

logger = logging.getLogger("app")


def handler(event, context):
    print("plain print")
    logger.debug("debug %s", 1)
    logger.info("info %s", event.get("k"))
    logger.warning("careful", extra={"order": 7})
    logger.info({"structured": True})
    try:
        {}["missing"]
    except KeyError:
        logger.exception("caught")
    if event.get("fail"):
        raise ValueError("boom")
    return {"level": logging.getLogger().level, "format": os.environ.get("AWS_LAMBDA_LOG_FORMAT"),
            "log_level": os.environ.get("AWS_LAMBDA_LOG_LEVEL"),
            "group": os.environ["AWS_LAMBDA_LOG_GROUP_NAME"], "ctx_group": context.log_group_name}
"""


def tail_of(lam: Any, name: str, event: Any) -> tuple[dict[str, Any], Any, list[str]]:
    resp = lam.invoke(FunctionName=name, Payload=json.dumps(event), LogType="Tail")
    body = json.loads(resp["Payload"].read())
    return resp, body, base64.b64decode(resp["LogResult"]).decode().splitlines()


def records(lines: list[str]) -> list[dict[str, Any]]:
    """Every line must be one JSON object in JSON mode, except what print() wrote."""
    return [json.loads(line) for line in lines if line != "plain print"]


def config_of(lam: Any, name: str) -> dict[str, Any]:
    return lam.get_function_configuration(FunctionName=name)["LoggingConfig"]


def refused(call: Any, **kw: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as info:
        call(**kw)
    return info.value.response["Error"]


# ------------------------------------------------------------------------------ the API's rules
def test_defaults_and_what_get_function_configuration_returns(lam: Any) -> None:
    text = create_function(lam, APP)
    assert config_of(lam, text) == {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{text}"}
    json_fn = create_function(lam, APP, LoggingConfig={"LogFormat": "JSON"})
    assert config_of(lam, json_fn) == {
        "LogFormat": "JSON",
        "ApplicationLogLevel": "INFO",
        "SystemLogLevel": "INFO",
        "LogGroup": f"/aws/lambda/{json_fn}",
    }
    own = create_function(
        lam, APP, LoggingConfig={"LogFormat": "JSON", "SystemLogLevel": "WARN", "LogGroup": "/my/group"}
    )
    created = config_of(lam, own)
    assert created == {
        "LogFormat": "JSON",
        "ApplicationLogLevel": "INFO",
        "SystemLogLevel": "WARN",
        "LogGroup": "/my/group",
    }
    assert lam.get_function(FunctionName=own)["Configuration"]["LoggingConfig"] == created


def test_levels_need_json(lam: Any) -> None:
    for cfg in ({"LogFormat": "Text", "ApplicationLogLevel": "DEBUG"}, {"SystemLogLevel": "WARN"}):
        error = refused(lam.create_function, **_create_args(LoggingConfig=cfg))
        assert error == {"Code": "InvalidParameterValueException", "Message": LEVEL_WITH_TEXT}
    name = create_function(lam, APP)
    error = refused(
        lam.update_function_configuration, FunctionName=name, LoggingConfig={"ApplicationLogLevel": "ERROR"}
    )
    assert error["Message"] == LEVEL_WITH_TEXT


def test_enums_and_log_group_pattern_from_the_model(lam: Any) -> None:
    error = refused(lam.create_function, **_create_args(LoggingConfig={"LogFormat": "XML"}))
    assert error["Code"] == "ValidationException"
    assert "Member must satisfy enum value set: [JSON, Text]" in error["Message"]
    error = refused(
        lam.create_function,
        **_create_args(LoggingConfig={"LogFormat": "JSON", "SystemLogLevel": "ERROR"}),
    )
    assert "Member must satisfy enum value set: [DEBUG, INFO, WARN]" in error["Message"]
    error = refused(lam.create_function, **_create_args(LoggingConfig={"LogGroup": "bad group!"}))
    assert error["Code"] == "ValidationException"
    assert "Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+" in error["Message"]


def test_updates_merge_into_what_is_set(lam: Any) -> None:
    name = create_function(lam, APP, LoggingConfig={"LogFormat": "JSON", "ApplicationLogLevel": "DEBUG"})
    lam.update_function_configuration(FunctionName=name, LoggingConfig={"LogGroup": "/elsewhere"})
    assert config_of(lam, name) == {
        "LogFormat": "JSON",
        "ApplicationLogLevel": "DEBUG",
        "SystemLogLevel": "INFO",
        "LogGroup": "/elsewhere",
    }
    lam.update_function_configuration(FunctionName=name, LoggingConfig={"LogFormat": "Text"})
    assert config_of(lam, name) == {"LogFormat": "Text", "LogGroup": "/elsewhere"}
    lam.update_function_configuration(FunctionName=name, Description="other things keep it")
    assert config_of(lam, name) == {"LogFormat": "Text", "LogGroup": "/elsewhere"}


def _create_args(**kw: Any) -> dict[str, Any]:
    return {
        "FunctionName": unique(),
        "Runtime": "python3.11",
        "Role": ROLE,
        "Handler": "app.handler",
        "Code": {"ZipFile": make_zip({"app.py": APP})},
        **kw,
    }


# ------------------------------------------------------------------------------ what functions log
def test_text_format_is_unchanged(lam: Any) -> None:
    name = create_function(lam, APP)
    resp, body, lines = tail_of(lam, name, {"k": "v"})
    rid = resp["ResponseMetadata"]["RequestId"]
    assert body["format"] is None and body["log_level"] is None
    assert body["level"] == 30  # the root logger stays at WARNING, as on AWS
    assert lines[0].startswith("INIT_START Runtime Version: python:3.11.v1\t")
    assert lines[1] == f"START RequestId: {rid} Version: $LATEST"
    assert "plain print" in lines and any(line.startswith("[WARNING]\t") for line in lines)
    assert lines[-2] == f"END RequestId: {rid}" and lines[-1].startswith(f"REPORT RequestId: {rid}\t")


def test_python_json_records_levels_and_platform_lines(lam: Any) -> None:
    name = create_function(lam, APP, LoggingConfig={"LogFormat": "JSON"})
    resp, body, lines = tail_of(lam, name, {"k": "v"})
    rid = resp["ResponseMetadata"]["RequestId"]
    assert body["format"] == "JSON" and body["log_level"] == "INFO" and body["level"] == 20
    got = records(lines)
    kinds = [r.get("type") or r["level"] for r in got]
    # SystemLogLevel INFO: initStart, start, report; ApplicationLogLevel INFO: no debug record
    assert kinds == [
        "platform.initStart",
        "platform.start",
        "INFO",
        "WARNING",
        "INFO",
        "ERROR",
        "platform.report",
    ]
    assert "plain print" in lines  # print() output stays a plain line
    init = got[0]["record"]
    assert init["initializationType"] == "on-demand" and init["phase"] == "init"
    assert init["runtimeVersion"] == "python:3.11.v1" and init["functionName"] == name
    assert init["functionVersion"] == "$LATEST" and init["instanceMaxMemory"] == 128 * 1024 * 1024
    assert re.fullmatch(rf"\d{{4}}/\d\d/\d\d/{name}\[\$LATEST\][0-9a-f]{{32}}", init["instanceId"])
    assert got[1]["record"] == {
        "requestId": rid,
        "functionArn": f"arn:aws:lambda:us-east-1:123456789012:function:{name}",
        "version": "$LATEST",
    }
    info = got[2]
    assert list(info) == ["timestamp", "level", "message", "logger", "requestId"]
    assert info["message"] == "info v" and info["logger"] == "app" and info["requestId"] == rid
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info["timestamp"])
    assert got[3]["message"] == "careful" and got[3]["order"] == 7  # extra fields are keys
    assert got[4]["message"] == {"structured": True}  # a dict message stays an object
    caught = got[5]
    assert caught["errorType"] == "KeyError" and caught["errorMessage"] == "'missing'"
    assert caught["location"].endswith("app.py:handler:17") and caught["stackTrace"]
    report = got[-1]["record"]
    assert report["requestId"] == rid and report["status"] == "success"
    assert set(report["metrics"]) == {
        "durationMs",
        "billedDurationMs",
        "memorySizeMB",
        "maxMemoryUsedMB",
        "initDurationMs",
    }
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["time"]) for r in got if "type" in r)
    _, _, warm = tail_of(lam, name, {"k": "w"})
    assert [r["type"] for r in records(warm) if "type" in r] == ["platform.start", "platform.report"]
    assert "initDurationMs" not in records(warm)[-1]["record"]["metrics"]


def test_handler_error_is_one_json_record(lam: Any) -> None:
    name = create_function(lam, APP, LoggingConfig={"LogFormat": "JSON", "ApplicationLogLevel": "ERROR"})
    resp, body, lines = tail_of(lam, name, {"fail": True})
    rid = resp["ResponseMetadata"]["RequestId"]
    assert resp["FunctionError"] == "Unhandled" and body["errorType"] == "ValueError"
    assert "plain print" not in lines
    app = [r for r in records(lines) if "type" not in r]  # a plain line is INFO to Lambda: below ERROR
    assert [r["level"] for r in app] == ["ERROR", "ERROR"]  # logger.exception, then the handler's error
    error = app[-1]
    assert list(error) == ["timestamp", "level", "errorMessage", "errorType", "requestId", "stackTrace"]
    assert error["errorMessage"] == "boom" and error["requestId"] == rid
    report = records(lines)[-1]
    assert report["type"] == "platform.report" and report["record"]["status"] == "failure"


def test_system_log_level(lam: Any) -> None:
    quiet = create_function(lam, APP, LoggingConfig={"LogFormat": "JSON", "SystemLogLevel": "WARN"})
    _, _, lines = tail_of(lam, quiet, {})
    assert not [r for r in records(lines) if "type" in r]  # WARN: no INFO platform record
    loud = create_function(
        lam,
        APP,
        LoggingConfig={"LogFormat": "JSON", "SystemLogLevel": "DEBUG", "ApplicationLogLevel": "TRACE"},
    )
    _, body, lines = tail_of(lam, loud, {})
    assert body["level"] == 10 and body["log_level"] == "TRACE"  # TRACE is DEBUG to Python's logging
    got = records(lines)
    assert [r["type"] for r in got if "type" in r] == [
        "platform.initStart",
        "platform.initRuntimeDone",
        "platform.initReport",
        "platform.start",
        "platform.runtimeDone",
        "platform.report",
    ]
    assert any(r.get("level") == "DEBUG" and r["message"] == "debug 1" for r in got)
    done = next(r for r in got if r.get("type") == "platform.runtimeDone")["record"]
    assert done["status"] == "success" and set(done["metrics"]) == {"durationMs", "producedBytes"}


def test_timeout_in_json(lam: Any) -> None:
    name = create_function(
        lam,
        "import time\ndef handler(e, c):\n    time.sleep(5)\n",
        Timeout=1,
        LoggingConfig={"LogFormat": "JSON"},
    )
    _, body, lines = tail_of(lam, name, {})
    assert body["errorType"] == "Sandbox.Timedout"
    got = records(lines)
    assert not any("Task timed out" in line for line in lines)
    assert got[-1]["type"] == "platform.report" and got[-1]["record"]["status"] == "timeout"


def test_custom_log_group(lam: Any, server: LaminaServer) -> None:
    group = f"/custom/{unique('group')}"
    name = create_function(lam, APP, LoggingConfig={"LogFormat": "Text", "LogGroup": group})
    resp, body, _ = tail_of(lam, name, {"k": 1})
    rid = resp["ResponseMetadata"]["RequestId"]
    assert body["group"] == group and body["ctx_group"] == group
    messages = wait_for_log(server.data_dir, group, f"REPORT RequestId: {rid}")
    assert f"START RequestId: {rid} Version: $LATEST" in messages
