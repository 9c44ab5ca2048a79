"""Turn what an environment did into AWS's outcome: payload, error object and log lines."""

from __future__ import annotations

import json

from lamina.execution.environment import Environment, Phase, PhaseResult
from lamina.execution.logs import (
    billed_ms,
    init_report_line,
    now_ms,
    report_line,
    timeout_line,
)
from lamina.execution.types import InvocationOutcome, LogEvent

UNHANDLED = "Unhandled"


def _error(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


def _error_type(payload: bytes) -> str:
    """The errorType of an error object a runtime posted (a custom runtime may post anything)."""
    try:
        error = json.loads(payload)
    except (ValueError, RecursionError):
        return "Runtime.Unknown"
    kind = error.get("errorType") if isinstance(error, dict) else None
    return kind if isinstance(kind, str) and kind else "Runtime.Unknown"


def _event(message: str) -> LogEvent:
    return LogEvent(now_ms(), message)


def _death(request_id: str, result: PhaseResult) -> tuple[str, bytes, LogEvent]:
    """(error type, payload, log event) of a runtime that exited mid-phase."""
    assert result.exit is not None
    if result.exit.code == 0 and result.exit.signal is None:
        reason = "Runtime exited without providing a reason"
    else:
        reason = f"Runtime exited with error: {result.exit.describe()}"
    error_type = "Runtime.OutOfMemory" if result.oom else "Runtime.ExitError"
    message = f"RequestId: {request_id} Error: {reason}"
    return error_type, _error(error_type, message), _event(f"{message}\n{error_type}")


def _timeout(request_id: str, seconds: float) -> tuple[bytes, LogEvent]:
    message = f"RequestId: {request_id} Error: Task timed out after {seconds:.2f} seconds"
    return _error("Sandbox.Timedout", message), _event(timeout_line(request_id, seconds))


def invocation_outcome(
    env: Environment,
    request_id: str,
    result: PhaseResult,
    *,
    events: list[LogEvent],
    init_ms: float | None,
    defer_report: bool = False,
) -> InvocationOutcome:
    """The outcome of an invocation that reached the handler.  ``events`` start with START.

    ``defer_report``: a result or a function error leaves END and REPORT -- the memory peak's read
    and the line's formatting -- to ``InvocationOutcome.complete``, after the caller's reply.
    """
    spec = env.spec
    payload = result.payload
    function_error: str | None = None
    status: str | None = None
    error_type: str | None = None
    phase = result.phase
    if phase is Phase.OK:
        billed = billed_ms(result.duration_ms)
    elif phase is Phase.FUNCTION_ERROR:
        function_error = UNHANDLED
        billed = billed_ms(result.duration_ms)
    elif phase is Phase.TIMEOUT:
        function_error, status = UNHANDLED, "timeout"
        payload, line = _timeout(request_id, float(spec.timeout_s))
        events.append(line)
        billed = spec.timeout_s * 1000
    else:
        function_error, status = UNHANDLED, "error"
        error_type, payload, line = _death(request_id, result)
        events.append(line)
        billed = billed_ms(result.duration_ms)
    outcome = InvocationOutcome(
        payload=payload,
        function_error=function_error,
        log_stream=env.log_stream,
        log_events=(),
        duration_ms=result.duration_ms,
        billed_duration_ms=billed,
        max_memory_used_mb=0,
        init_duration_ms=init_ms,
    )
    end = now_ms()  # when the invocation ended, whenever its END line is written

    def report() -> None:
        outcome.max_memory_used_mb = max_used_mb = env.max_memory_mb()
        line = report_line(
            request_id=request_id,
            duration_ms=result.duration_ms,
            billed=billed,
            memory_mb=spec.memory_mb,
            max_used_mb=max_used_mb,
            init_ms=init_ms,
            status=status,
            error_type=error_type,
        )
        events.append(LogEvent(end, f"END RequestId: {request_id}"))  # END and REPORT together
        events.append(LogEvent(end, line))
        outcome.log_events = tuple(events)

    if defer_report and status is None:
        outcome.pending = report
    else:
        report()
    return outcome


def init_failure_report(result: PhaseResult) -> LogEvent:
    """The INIT_REPORT line of a failed INIT (error, timeout, crash, unexecutable runtime)."""
    if result.entrypoint_error is not None:  # the runtime could not even be exec'd
        status, error_type = "error", "Runtime.InvalidEntrypoint"
    elif result.phase is Phase.FUNCTION_ERROR:
        status, error_type = "error", _error_type(result.payload)
    elif result.phase is Phase.TIMEOUT:
        status, error_type = "timeout", None
    else:
        status, error_type = "error", "Runtime.OutOfMemory" if result.oom else "Runtime.ExitError"
    return _event(init_report_line(init_ms=result.duration_ms, status=status, error_type=error_type))


def init_failure_outcome(
    env: Environment,
    request_id: str,
    result: PhaseResult,
    *,
    events: list[LogEvent],
    init_timeout_s: float,
) -> InvocationOutcome:
    """INIT failed (error, timeout, crash): INIT_REPORT, then START/END/REPORT with the error.

    ``events`` hold INIT_START and the init output.  An init timeout is reported as AWS reports
    a timeout (``Sandbox.Timedout``, "Task timed out after 10.00 seconds") with an INIT_REPORT
    of ``Status: timeout``.
    """
    spec = env.spec
    init_ms = result.duration_ms
    events.append(init_failure_report(result))
    if result.entrypoint_error is not None:
        error_type = "Runtime.InvalidEntrypoint"
        message = f"RequestId: {request_id} Error: {result.entrypoint_error}"
        payload, death_line = _error(error_type, message), _event(f"{message}\n{error_type}")
    elif result.phase is Phase.FUNCTION_ERROR:
        payload = result.payload
        error_type = _error_type(payload)
        death_line = None
    elif result.phase is Phase.TIMEOUT:
        error_type = "Sandbox.Timedout"
        payload, death_line = _timeout(request_id, init_timeout_s)
    else:
        error_type, payload, death_line = _death(request_id, result)
    events.append(_event(f"START RequestId: {request_id} Version: {spec.version}"))
    if death_line is not None:
        events.append(death_line)
    events.append(_event(f"END RequestId: {request_id}"))
    status = "timeout" if result.phase is Phase.TIMEOUT else "error"
    max_used_mb = env.max_memory_mb()
    events.append(
        _event(
            report_line(
                request_id=request_id,
                duration_ms=init_ms,
                memory_mb=spec.memory_mb,
                max_used_mb=max_used_mb,
                status=status,
                error_type=None if status == "timeout" else error_type,
            )
        )
    )
    return InvocationOutcome(
        payload=payload,
        function_error=UNHANDLED,
        log_stream=env.log_stream,
        log_events=tuple(events),
        duration_ms=init_ms,
        billed_duration_ms=billed_ms(init_ms),
        max_memory_used_mb=max_used_mb,
        init_duration_ms=init_ms,
    )
