"""An invocation's log lines as Telemetry API events (telemetry-schema-reference, 2022-12-13).

The engine builds every invocation's CloudWatch lines anyway (INIT_START ... REPORT); a
subscribed extension gets the same story as events: ``platform.initStart``,
``platform.initRuntimeDone``/``initReport``, ``platform.start``, one ``function`` record per
line the function wrote, ``platform.runtimeDone`` and ``platform.report`` with the metrics.
Emitted once the invocation is answered (not line by line as AWS streams them): the order and
content match, the delivery is up to one invocation later.  Extensions' own lines share the
function's log pipe here, so they arrive as ``function`` records.
"""

from __future__ import annotations

from typing import Any

from lamina.execution.logs import invocation_status, iso_time, runtime_version
from lamina.execution.telemetry_api import TelemetryHub
from lamina.execution.types import EnvironmentSpec, InvocationOutcome, LogEvent

PLATFORM_PREFIXES = (
    "START RequestId: ",
    "END RequestId: ",
    "REPORT RequestId: ",
    "INIT_START ",
    "INIT_REPORT ",
)


def emit_invocation(
    hub: TelemetryHub, spec: EnvironmentSpec, request_id: str, outcome: InvocationOutcome
) -> None:
    """Every event of one invocation (and of the INIT it paid for, if any), in order."""
    status = invocation_status(outcome)
    for event in outcome.log_events:
        for item in _events(event, spec, request_id, outcome, status):
            hub.emit(item)


def _events(
    event: LogEvent, spec: EnvironmentSpec, request_id: str, outcome: InvocationOutcome, status: str
) -> list[dict[str, Any]]:
    time = iso_time(event.timestamp_ms)
    message = event.message
    if not message.startswith(PLATFORM_PREFIXES):
        return [{"time": time, "type": "function", "record": message}]
    init: dict[str, Any] = {"initializationType": "on-demand", "phase": "init"}
    if message.startswith("INIT_START "):
        record = {**init, "runtimeVersion": runtime_version(spec.runtime), "functionName": spec.function_name}
        return [
            {
                "time": time,
                "type": "platform.initStart",
                "record": {**record, "functionVersion": spec.version},
            }
        ]
    if message.startswith("INIT_REPORT "):
        init_status = "timeout" if "Status: timeout" in message else "error"
        return [{"time": time, "type": "platform.initReport", "record": {**init, "status": init_status}}]
    if message.startswith("START "):
        started = [
            {
                "time": time,
                "type": "platform.start",
                "record": {"requestId": request_id, "version": spec.version},
            }
        ]
        if outcome.init_duration_ms is not None:  # a cold start that succeeded: its INIT is done
            init_metrics = {"durationMs": round(outcome.init_duration_ms, 3)}
            done = {"time": time, "type": "platform.initRuntimeDone", "record": {**init, "status": "success"}}
            report = {
                "time": time,
                "type": "platform.initReport",
                "record": {**init, "status": "success", "metrics": init_metrics},
            }
            started[:0] = [done, report]
        return started
    if message.startswith("END "):
        done_metrics = {"durationMs": round(outcome.duration_ms, 3), "producedBytes": len(outcome.payload)}
        done_record = {"requestId": request_id, "status": status, "metrics": done_metrics}
        return [{"time": time, "type": "platform.runtimeDone", "record": done_record}]
    metrics: dict[str, Any] = {
        "durationMs": round(outcome.duration_ms, 3),
        "billedDurationMs": outcome.billed_duration_ms,
        "memorySizeMB": spec.memory_mb,
        "maxMemoryUsedMB": outcome.max_memory_used_mb,
    }
    if outcome.init_duration_ms is not None:
        metrics["initDurationMs"] = round(outcome.init_duration_ms, 3)
    report_record = {"requestId": request_id, "status": status, "metrics": metrics}
    return [{"time": time, "type": "platform.report", "record": report_record}]
