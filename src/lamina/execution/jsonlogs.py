"""Log lines as AWS writes them for a function whose LoggingConfig says ``LogFormat: JSON``.

Lambda's own lines become platform records, one compact JSON object per log event, as
CloudWatch shows them::

    {"time":"2024-05-20T16:29:44.833Z","type":"platform.initStart","record":{"initializationType":
     "on-demand","phase":"init","runtimeVersion":"python:3.12.v1","runtimeVersionArn":...,
     "functionName":"f","functionVersion":"$LATEST","instanceId":...,"instanceMaxMemory":134217728}}
    {"time":...,"type":"platform.start","record":{"requestId":...,"functionArn":...,"version":"$LATEST"}}
    {"time":...,"type":"platform.report","record":{"requestId":...,"metrics":{"durationMs":11.642,
     "billedDurationMs":12,"memorySizeMB":128,"maxMemoryUsedMB":67,"initDurationMs":174.055},
     "status":"success"}}

``SystemLogLevel`` filters them: initStart, start, report and a failed initReport are INFO;
initRuntimeDone, a successful initReport and runtimeDone (what END was) are DEBUG, so the
default (INFO) shows initStart/start/report, DEBUG adds the rest and WARN drops them all.
The lines Text mode writes for a timeout or a runtime exit have no JSON form: the report's
``status`` (``timeout``, ``error`` with ``errorType``) says it.

``ApplicationLogLevel`` filters the function's own lines the way Lambda does for any runtime:
a line that is a JSON object with a ``level`` is kept at that level or above; any other line
counts as INFO.  (The runtimes filter their own logging first: AWS_LAMBDA_LOG_LEVEL.)

Cost: nothing for Text functions -- the engine looks at ``spec.json_logging`` once per
invocation and calls this module only when it is set.  Lambda's lines are recognised by exact
text (they carry this invocation's request id), not by prefix alone, so a function that prints
"START RequestId: ..." does not forge a platform record.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any

from lamina.execution.environment import PROVISIONED, Environment
from lamina.execution.logs import (
    init_start_line,
    invocation_status,
    iso_time,
    runtime_version,
    runtime_version_arn,
)
from lamina.execution.types import InvocationOutcome, JsonLogging, LogEvent

TRACE, DEBUG, INFO, WARN, ERROR, FATAL = 1, 2, 3, 4, 5, 6
# Level names as AWS takes them, plus the names Python's logging writes.
LEVELS = {
    "TRACE": TRACE,
    "DEBUG": DEBUG,
    "INFO": INFO,
    "WARN": WARN,
    "WARNING": WARN,
    "ERROR": ERROR,
    "FATAL": FATAL,
    "CRITICAL": FATAL,
}
_DECODE = json.JSONDecoder().decode
# Lambda's own lines start with one of these (START, END, REPORT, INIT_*, a timeout's time, and
# "RequestId: ..." of a runtime that died); any other line is the function's, at once.
_PLATFORM_INITIALS = frozenset("SERI0123456789")


def _unencodable(value: object) -> object:
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# json.dumps(separators=(",", ":")) without its per-call set-up: the C encoder, built once.  No
# cycle check (markers None): records are trees of our own making.
_C_ENCODE = c_make_encoder(None, _unencodable, encode_basestring, None, ":", ",", False, False, True)


def _encode(record: dict[str, Any]) -> str:
    return "".join(_C_ENCODE(record, 0))


class _Filter:
    """One invocation's (or one batch of idle lines') conversion for one environment."""

    def __init__(self, env: Environment, levels: JsonLogging) -> None:
        self.env = env
        self.spec = env.spec
        self.system = LEVELS.get(levels.system_level, INFO)
        self.application = LEVELS.get(levels.application_level, INFO)
        self.out: list[LogEvent] = []

    def platform(self, level: int, stamp: int, kind: str, record: dict[str, Any]) -> None:
        if level >= self.system:
            line = _encode({"time": iso_time(stamp), "type": kind, "record": record})
            self.out.append(LogEvent(stamp, line))

    def function_line(self, event: LogEvent) -> None:
        if self.application <= TRACE or _level_of(event.message) >= self.application:
            self.out.append(event)

    def init_fields(self) -> dict[str, Any]:
        kind = PROVISIONED if self.env.provisioned else "on-demand"
        return {"initializationType": kind, "phase": "init"}

    def init_start(self, stamp: int) -> None:
        spec = self.spec
        record = {
            **self.init_fields(),
            "runtimeVersion": runtime_version(spec.runtime),
            "runtimeVersionArn": runtime_version_arn(spec.runtime, spec.region),
            "functionName": spec.function_name,
            "functionVersion": spec.version,
            # AWS's instanceId is the log stream with the function's name before the version
            "instanceId": self.env.log_stream.replace("/[", f"/{spec.function_name}[", 1),
            "instanceMaxMemory": spec.memory_mb * 1024 * 1024,
        }
        self.platform(INFO, stamp, "platform.initStart", record)

    def init_report(self, stamp: int, message: str) -> None:
        """A failed INIT's ``INIT_REPORT Init Duration: 1.00 ms\\tPhase: init\\tStatus: error...``."""
        parts = message.removeprefix("INIT_REPORT ").split("\t")
        fields = dict(part.split(": ", 1) for part in parts if ": " in part)
        record: dict[str, Any] = {**self.init_fields(), "status": fields.get("Status", "error")}
        if "Error Type" in fields:
            record["errorType"] = fields["Error Type"]
        duration = fields.get("Init Duration", "0 ms").removesuffix(" ms")
        record["metrics"] = {"durationMs": _float(duration)}
        self.platform(INFO, stamp, "platform.initReport", record)


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0


def _level_of(message: str) -> int:
    """The level Lambda gives a function's line: a JSON object's ``level``, else INFO."""
    if not message.startswith("{"):
        return INFO
    try:
        obj = _DECODE(message)
    except ValueError:
        return INFO
    level = obj.get("level") if isinstance(obj, dict) else None
    return LEVELS.get(level.upper(), INFO) if isinstance(level, str) else INFO


def invocation(env: Environment, request_id: str, outcome: InvocationOutcome) -> InvocationOutcome:
    """``outcome`` with its log events as JSON-format Lambda writes them (env.spec.json_logging)."""
    levels = env.spec.json_logging
    assert levels is not None
    conv = _Filter(env, levels)
    spec = env.spec
    status = invocation_status(outcome)
    start = f"START RequestId: {request_id} Version: {spec.version}"
    end = f"END RequestId: {request_id}"
    report = f"REPORT RequestId: {request_id}\t"
    died = f"RequestId: {request_id} Error: "
    timed_out = f" {request_id} Task timed out after "
    init_reported = False
    out = conv.out
    threshold = conv.application
    keep_all, keep_plain = threshold <= TRACE, threshold <= INFO
    for event in outcome.log_events:
        message = event.message
        initial = message[:1]
        if initial not in _PLATFORM_INITIALS:  # the function's line (most are)
            if keep_all or (keep_plain if initial != "{" else _level_of(message) >= threshold):
                out.append(event)
            continue
        stamp = event.timestamp_ms
        if message == start:
            if outcome.init_duration_ms is not None and not init_reported:  # a cold start's INIT ended well
                init = conv.init_fields()
                conv.platform(DEBUG, stamp, "platform.initRuntimeDone", {**init, "status": "success"})
                metrics = {"durationMs": round(outcome.init_duration_ms, 3)}
                conv.platform(
                    DEBUG, stamp, "platform.initReport", {**init, "status": "success", "metrics": metrics}
                )
            record = {"requestId": request_id, "functionArn": spec.function_arn, "version": spec.version}
            conv.platform(INFO, stamp, "platform.start", record)
        elif message == end:
            metrics = {"durationMs": round(outcome.duration_ms, 3), "producedBytes": len(outcome.payload)}
            done = {"requestId": request_id, "status": status, "metrics": metrics}
            conv.platform(DEBUG, stamp, "platform.runtimeDone", done)
        elif message.startswith(report):
            record = _report(request_id, message, outcome, spec.memory_mb, status)
            conv.platform(INFO, stamp, "platform.report", record)
        elif initial == "I" and message == init_start_line(spec.runtime, spec.region):
            conv.init_start(stamp)
        elif message.startswith("INIT_REPORT Init Duration: "):
            init_reported = True
            conv.init_report(stamp, message)
        elif message.startswith(died) or (message.endswith(" seconds") and timed_out in message):
            continue  # the report's status and errorType say it
        else:
            conv.function_line(event)
    return InvocationOutcome(
        payload=outcome.payload,
        function_error=outcome.function_error,
        log_stream=outcome.log_stream,
        log_events=tuple(out),
        duration_ms=outcome.duration_ms,
        billed_duration_ms=outcome.billed_duration_ms,
        max_memory_used_mb=outcome.max_memory_used_mb,
        init_duration_ms=outcome.init_duration_ms,
    )


def _report(
    request_id: str, message: str, outcome: InvocationOutcome, memory_mb: int, status: str
) -> dict[str, Any]:
    metrics: dict[str, Any] = {
        "durationMs": round(outcome.duration_ms, 3),
        "billedDurationMs": outcome.billed_duration_ms,
        "memorySizeMB": memory_mb,
        "maxMemoryUsedMB": outcome.max_memory_used_mb,
    }
    if outcome.init_duration_ms is not None and "Init Duration: " in message:
        metrics["initDurationMs"] = round(outcome.init_duration_ms, 3)
    record: dict[str, Any] = {"requestId": request_id, "metrics": metrics, "status": status}
    _, marker, error_type = message.partition("Error Type: ")
    if marker:
        record["errorType"] = error_type.split("\t", 1)[0]
    return record


def idle_lines(env: Environment, events: Sequence[LogEvent]) -> list[LogEvent]:
    """Lines written outside an invocation (a provisioned INIT, an idle thread), JSON-format."""
    levels = env.spec.json_logging
    assert levels is not None
    conv = _Filter(env, levels)
    init_start = init_start_line(env.spec.runtime, env.spec.region)
    for event in events:
        if event.message == init_start:
            conv.init_start(event.timestamp_ms)
        elif event.message.startswith("INIT_REPORT Init Duration: "):
            conv.init_report(event.timestamp_ms, event.message)
        else:
            conv.function_line(event)
    return conv.out
