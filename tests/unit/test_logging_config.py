"""LoggingConfig: AWS's rules (model/logging_config.py), the variables, JSON platform records
(execution/jsonlogs.py) and the Python runtime's JSON records against awslambdaric's own."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from lamina.errors import AwsError
from lamina.execution import catalog, jsonlogs
from lamina.execution.environment import function_environment
from lamina.execution.logs import init_report_line, init_start_line, report_line
from lamina.execution.types import EnvironmentSpec, InvocationOutcome, JsonLogging, LogEvent
from lamina.model import logging_config as lc
from tests.unit.python_runtime import runtime_module

RID = "0c90003a-8970-474c-b696-fca5336ef4f5"


# ------------------------------------------------------------------------------ the API's rules
def test_json_gets_both_levels_and_text_none() -> None:
    assert lc.merge(None) == {"LogFormat": "Text"}
    assert lc.merge({"LogFormat": "JSON"}) == {
        "LogFormat": "JSON",
        "ApplicationLogLevel": "INFO",
        "SystemLogLevel": "INFO",
    }
    stored = lc.merge({"LogFormat": "JSON", "ApplicationLogLevel": "TRACE", "LogGroup": "/g"})
    assert lc.to_api(stored, "fn") == {
        "LogFormat": "JSON",
        "ApplicationLogLevel": "TRACE",
        "SystemLogLevel": "INFO",
        "LogGroup": "/g",
    }
    assert lc.to_api(None, "fn") == {"LogFormat": "Text", "LogGroup": "/aws/lambda/fn"}
    assert lc.json_levels(stored) == ("TRACE", "INFO") and lc.json_levels(None) is None
    assert lc.log_group(stored, "fn") == "/g" and lc.log_group({}, "fn") == "/aws/lambda/fn"


@pytest.mark.parametrize(
    ("requested", "current"),
    [
        ({"ApplicationLogLevel": "INFO"}, None),
        ({"LogFormat": "Text", "SystemLogLevel": "WARN"}, None),
        ({"SystemLogLevel": "WARN"}, {"LogFormat": "Text"}),
        ({"LogFormat": "Text", "ApplicationLogLevel": "ERROR"}, {"LogFormat": "JSON"}),
    ],
)
def test_a_level_without_json_is_refused(requested: dict[str, Any], current: dict[str, Any] | None) -> None:
    with pytest.raises(AwsError) as info:
        lc.merge(requested, current)
    assert info.value.code == "InvalidParameterValueException"
    assert info.value.message == (
        'LogLevel is not supported when LogFormat is set to "Text". Remove LogLevel from your '
        'request or change the LogFormat to "Json" and try again.'
    )


def test_updates_merge() -> None:
    current = lc.merge({"LogFormat": "JSON", "SystemLogLevel": "DEBUG", "LogGroup": "/g"})
    assert lc.merge({"ApplicationLogLevel": "ERROR"}, current) == {
        "LogFormat": "JSON",
        "ApplicationLogLevel": "ERROR",
        "SystemLogLevel": "DEBUG",
        "LogGroup": "/g",
    }
    assert lc.merge({"LogFormat": "Text"}, current) == {"LogFormat": "Text", "LogGroup": "/g"}


# ------------------------------------------------------------------------------ variables
def spec(levels: JsonLogging | None = None, *, runtime: str = "python3.12") -> EnvironmentSpec:
    return EnvironmentSpec(
        function_name="fn",
        function_arn="arn:aws:lambda:us-east-1:123456789012:function:fn",
        version="$LATEST",
        revision="r1",
        runtime=runtime,
        interpreter="/usr/bin/python3",
        handler="app.handler",
        code_dir=Path("/code"),
        memory_mb=256,
        timeout_s=3,
        region="us-east-1",
        account_id="123456789012",
        log_group="/custom/group",
        json_logging=levels,
    )


def test_variables_follow_the_format() -> None:
    text = function_environment(spec(), log_stream="s", runtime_dir=catalog.PYTHON_BOOTSTRAP.parent)
    assert "AWS_LAMBDA_LOG_FORMAT" not in text and "AWS_LAMBDA_LOG_LEVEL" not in text
    assert text["AWS_LAMBDA_LOG_GROUP_NAME"] == "/custom/group"
    for runtime in ("python3.12", "nodejs20.x", "provided.al2023"):
        env = function_environment(
            spec(JsonLogging("DEBUG", "WARN"), runtime=runtime),
            log_stream="s",
            runtime_dir=catalog.PYTHON_BOOTSTRAP.parent,
        )
        assert env["AWS_LAMBDA_LOG_FORMAT"] == "JSON" and env["AWS_LAMBDA_LOG_LEVEL"] == "DEBUG"


# ------------------------------------------------------------------------------ platform records
STREAM = "2026/10/08/[$LATEST]22be53a8cfde4e68b844f8ec293b2543"


def fake_env(levels: JsonLogging, *, provisioned: bool = False) -> Any:
    return SimpleNamespace(spec=spec(levels), provisioned=provisioned, log_stream=STREAM)


def cold_outcome(
    *lines: str, function_error: str | None = None, report: str | None = None
) -> InvocationOutcome:
    events = [LogEvent(1_700_000_000_000, init_start_line("python3.12", "us-east-1"))]
    events.append(LogEvent(1_700_000_000_001, f"START RequestId: {RID} Version: $LATEST"))
    events += [LogEvent(1_700_000_000_002, line) for line in lines]
    events.append(LogEvent(1_700_000_000_003, f"END RequestId: {RID}"))
    if report is None:
        report = report_line(request_id=RID, duration_ms=1.5, memory_mb=256, max_used_mb=20, init_ms=2.25)
    events.append(LogEvent(1_700_000_000_003, report))
    return InvocationOutcome(
        payload=b'{"ok":1}',
        function_error=function_error,
        log_stream=STREAM,
        log_events=tuple(events),
        duration_ms=1.5,
        billed_duration_ms=2,
        max_memory_used_mb=20,
        init_duration_ms=2.25,
    )


def lines_of(outcome: InvocationOutcome) -> list[Any]:
    return [json.loads(e.message) if e.message.startswith("{") else e.message for e in outcome.log_events]


def test_info_records_as_cloudwatch_shows_them() -> None:
    out = jsonlogs.invocation(fake_env(JsonLogging("INFO", "INFO")), RID, cold_outcome("hello"))
    got = lines_of(out)
    assert got == [
        {
            "time": "2023-11-14T22:13:20.000Z",
            "type": "platform.initStart",
            "record": {
                "initializationType": "on-demand",
                "phase": "init",
                "runtimeVersion": "python:3.12.v1",
                "runtimeVersionArn": "arn:aws:lambda:us-east-1::runtime:lamina-python3.12",
                "functionName": "fn",
                "functionVersion": "$LATEST",
                "instanceId": "2026/10/08/fn[$LATEST]22be53a8cfde4e68b844f8ec293b2543",
                "instanceMaxMemory": 268435456,
            },
        },
        {
            "time": "2023-11-14T22:13:20.001Z",
            "type": "platform.start",
            "record": {"requestId": RID, "functionArn": spec().function_arn, "version": "$LATEST"},
        },
        "hello",
        {
            "time": "2023-11-14T22:13:20.003Z",
            "type": "platform.report",
            "record": {
                "requestId": RID,
                "metrics": {
                    "durationMs": 1.5,
                    "billedDurationMs": 2,
                    "memorySizeMB": 256,
                    "maxMemoryUsedMB": 20,
                    "initDurationMs": 2.25,
                },
                "status": "success",
            },
        },
    ]
    assert out.log_events[0].message.startswith('{"time":"2023-11-14T22:13:20.000Z","type":')  # compact


def test_system_levels() -> None:
    debug = lines_of(jsonlogs.invocation(fake_env(JsonLogging("INFO", "DEBUG")), RID, cold_outcome()))
    assert [r["type"] for r in debug] == [
        "platform.initStart",
        "platform.initRuntimeDone",
        "platform.initReport",
        "platform.start",
        "platform.runtimeDone",
        "platform.report",
    ]
    assert debug[2]["record"] == {
        "initializationType": "on-demand",
        "phase": "init",
        "status": "success",
        "metrics": {"durationMs": 2.25},
    }
    assert debug[4]["record"] == {
        "requestId": RID,
        "status": "success",
        "metrics": {"durationMs": 1.5, "producedBytes": 8},
    }
    assert lines_of(jsonlogs.invocation(fake_env(JsonLogging("INFO", "WARN")), RID, cold_outcome("x"))) == [
        "x"
    ]


def test_application_levels_filter_what_the_runtime_let_through() -> None:
    written = (
        '{"level":"DEBUG","message":"d"}',
        '{"timestamp":"t","level":"WARNING","message":"w"}',
        '{"level":"error"}',
        '{"no level":1}',
        "{not json",
        "plain",
        '["a list"]',
    )
    for level, kept in [
        ("TRACE", list(written)),
        ("INFO", list(written[1:])),
        ("WARN", list(written[1:3])),
        ("FATAL", []),
    ]:
        out = jsonlogs.invocation(fake_env(JsonLogging(level, "WARN")), RID, cold_outcome(*written))
        assert [e.message for e in out.log_events] == kept, level


def test_failures_say_it_in_the_report() -> None:
    died = f"RequestId: {RID} Error: Runtime exited with error: exit status 1\nRuntime.ExitError"
    timed = f"2026-01-01T00:00:00.000Z {RID} Task timed out after 3.00 seconds"
    report = report_line(
        request_id=RID,
        duration_ms=1.5,
        memory_mb=256,
        max_used_mb=20,
        status="error",
        error_type="Runtime.ExitError",
    )
    out = cold_outcome("before", died, function_error="Unhandled", report=report)
    got = lines_of(jsonlogs.invocation(fake_env(JsonLogging("INFO", "INFO")), RID, out))
    assert got[2] == "before" and len(got) == 4  # the exit line has no JSON form
    assert got[-1]["record"]["status"] == "error" and got[-1]["record"]["errorType"] == "Runtime.ExitError"
    assert "initDurationMs" not in got[-1]["record"]["metrics"]  # not in the text REPORT either
    report = report_line(request_id=RID, duration_ms=3000, memory_mb=256, max_used_mb=20, status="timeout")
    out = cold_outcome(timed, function_error="Unhandled", report=report)
    got = lines_of(jsonlogs.invocation(fake_env(JsonLogging("INFO", "INFO")), RID, out))
    assert [r["type"] for r in got] == ["platform.initStart", "platform.start", "platform.report"]
    assert got[-1]["record"]["status"] == "timeout"


def test_a_printed_platform_line_is_not_forged() -> None:
    forged = ("START RequestId: someone-else Version: $LATEST", "END RequestId: x", "REPORT RequestId: x\t")
    got = lines_of(jsonlogs.invocation(fake_env(JsonLogging("INFO", "WARN")), RID, cold_outcome(*forged)))
    assert got == list(forged)


def test_init_failure_and_idle_lines() -> None:
    env = fake_env(JsonLogging("INFO", "INFO"), provisioned=True)
    events = [
        LogEvent(0, init_start_line("python3.12", "us-east-1")),
        LogEvent(1, "init output"),
        LogEvent(2, init_report_line(init_ms=12.5, status="error", error_type="Runtime.ImportModuleError")),
    ]
    got = [
        json.loads(e.message) if e.message.startswith("{") else e.message
        for e in jsonlogs.idle_lines(env, events)
    ]
    assert got[0]["record"]["initializationType"] == "provisioned-concurrency"
    assert got[1] == "init output"
    assert got[2]["type"] == "platform.initReport" and got[2]["record"] == {
        "initializationType": "provisioned-concurrency",
        "phase": "init",
        "status": "error",
        "errorType": "Runtime.ImportModuleError",
        "metrics": {"durationMs": 12.5},
    }


# ------------------------------------------------------------------------------ the Python runtime
@pytest.fixture(scope="module")
def aws() -> ModuleType:
    return runtime_module("lamina_rt_aws")  # awslambdaric's behaviour: records, error lines


def records() -> list[logging.LogRecord]:
    """Fresh records of every shape (formatters mutate them): args, dict, extra, exceptions."""
    try:
        raise KeyError("missing")
    except KeyError:
        exc_info = sys.exc_info()
    made = [
        logging.LogRecord("app", logging.INFO, "/code/app.py", 3, "hello %s", ("you",), None),
        logging.LogRecord("app", logging.WARNING, "/code/app.py", 4, {"a": [1, 2]}, None, None),
        logging.LogRecord("app", 25, "/code/app.py", 5, "odd level caf\u00e9", None, None),
        logging.LogRecord("app.x", logging.ERROR, "/code/app.py", 6, "caught", None, exc_info, "handler"),
        logging.LogRecord("root", logging.CRITICAL, "/code/app.py", 7, "%s and %s", ("x", "y"), None),
    ]
    made[2].__dict__.update({"order": 7, "obj": object, "aws_request_id": "ignored", "requestId": "no"})
    for record in made:
        record.aws_request_id = RID
    return made


def test_json_records_are_awslambdaric_s(aws: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    from awslambdaric.lambda_runtime_log_utils import JsonFormatter as RicFormatter

    monkeypatch.setattr(logging.Formatter, "converter", time.gmtime)  # both runtimes set it
    ours = [aws.JsonFormatter().format(r) for r in records()]
    theirs = [RicFormatter().format(r) for r in records()]
    assert ours == theirs
    first = json.loads(ours[0])
    assert list(first) == ["timestamp", "level", "message", "logger", "requestId"]
    assert json.loads(ours[2])["level"] == "INFO" and json.loads(ours[2])["order"] == 7
    assert json.loads(ours[3])["location"] == "/code/app.py:handler:6"


def test_json_error_lines(aws: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    error = aws.make_error("boom", "ValueError", ['  File "x.py", line 1, in h\n    raise\n'], RID)
    aws.ErrorLog.json_encoder = aws.ResultEncoder(ensure_ascii=True)
    try:
        aws.log_error(error)
    finally:
        aws.ErrorLog.json_encoder = None
    line = capsys.readouterr().out
    assert line.endswith("}\n") and line.count("\n") == 1
    assert list(json.loads(line)) == [
        "timestamp",
        "level",
        "errorMessage",
        "errorType",
        "requestId",
        "stackTrace",
    ]
    assert line.startswith('{"timestamp": "') and '"level": "ERROR", "errorMessage": "boom"' in line
