"""The invocation service: from a resolved function version to an outcome, sync or queued.

The sync path does no database I/O: the function comes from the registry, the environment spec
from a per-revision cache, the concurrency lease from in-memory counters, logs go to the batched
log store.  Queued events take the same path; a throttle sends them back to the queue, a
function or system error schedules a retry (``lamina.invocation.retries``), kept with its error;
a discarded event is recorded (``lamina.store.failed_events``) before its final hook runs.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lamina.errors import AwsError
from lamina.execution import catalog
from lamina.execution.channel import SCAN_JSON
from lamina.execution.types import (
    EnvironmentSpec,
    ExecutionEngine,
    InvocationInput,
    InvocationOutcome,
    JsonLogging,
    LogEvent,
)
from lamina.functions import optdir
from lamina.functions.arns import parse_function_ref
from lamina.functions.codestore import CodeStore
from lamina.functions.network import NetworkPolicies
from lamina.functions.service import FunctionService
from lamina.invocation.concurrency import ConcurrencyLimiter
from lamina.invocation.queue import AsyncQueue, RetryLater, Throttled
from lamina.invocation.retries import (
    DEFAULT_RETRY_DELAYS,
    FinalCondition,
    FinalHook,
    FinalResult,
    RetryPolicy,
    expired,
    function_error_delay,
    only_log_final,
    system_error_delay,
)
from lamina.model import logging_config
from lamina.model.function import FunctionVersion
from lamina.store.failed_events import FailedEvent
from lamina.store.metadata import MetadataStore, QueuedEvent
from lamina.telemetry.logstore import LogStore
from lamina.telemetry.metrics import MetricsRegistry, Series
from lamina.telemetry.tracing import InvokeRecord, SpanExporter

log = logging.getLogger("lamina.async")

SYNC_PAYLOAD_MAX = 6 * 1024 * 1024  # 6291456: AWS's synchronous request and response limit
ASYNC_PAYLOAD_MAX = 1024 * 1024  # 1 MB for Event invocations
RESPONSE_MAX = 6291556  # AWS's response limit counts a little envelope on top of 6 MB
TAIL_BYTES = 4096
CLIENT_CONTEXT_MAX = 3583
ERROR_TEXT_MAX = 1024  # of an error message kept for `lamina events` (AWS's dead letters keep 1 KB)


@dataclass(slots=True)  # not frozen: made per invoke; a frozen __init__ costs 2-4x as much
class SyncResult:
    outcome: InvocationOutcome
    payload: bytes
    function_error: str | None
    log_tail: str | None  # base64, when LogType=Tail


def decode_client_context(value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) > CLIENT_CONTEXT_MAX:
        raise AwsError(
            "InvalidParameterValueException",
            f"Client context must be smaller than {CLIENT_CONTEXT_MAX} bytes when base64-encoded.",
        )
    try:
        text = base64.b64decode(value, validate=True).decode()
        if not isinstance(json.loads(text), dict):
            raise ValueError("not an object")
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise AwsError(
            "InvalidRequestContentException", "Client context must be a valid Base64-encoded JSON object."
        ) from exc
    return text


_JSON_SPACE = " \t\n\r"


def _plain_json(payload: bytes) -> bool:
    """True when ``payload`` is certainly one JSON value in UTF-8 -- what json.loads would accept
    -- checked the short way (json.loads's C scanner alone, without its Python-level encoding
    detection and wrappers: ~2% of the server's CPU per invoke); False means only "not certain":
    json.loads then decides (and words the error).  Object and array payloads only, and none
    json.loads could read as UTF-16/32."""
    if payload[:1] not in (b"{", b"[") or (len(payload) > 1 and payload[1] == 0):
        return False
    try:
        text = payload.decode("utf-8")
        _, end = SCAN_JSON(text, 0)
    except (ValueError, StopIteration, RecursionError):
        return False
    return end == len(text) or not text[end:].strip(_JSON_SPACE)


def check_payload(payload: bytes, limit: int) -> None:
    if len(payload) > limit:
        raise AwsError(
            "RequestTooLargeException",
            f"Request must be smaller than {limit} bytes for the InvokeFunction operation",
        )
    if payload and not _plain_json(payload):
        try:
            json.loads(payload)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise AwsError(
                "InvalidRequestContentException",
                f"Could not parse request body into json: Could not parse payload into json: {exc}",
            ) from exc


def error_of(payload: bytes, function_error: str | None) -> tuple[str, str]:
    """A failed run's error type and message: the ``errorType`` / ``errorMessage`` of the function's
    error payload, else the function error and the payload's text."""
    try:
        body = json.loads(payload) if payload else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        body = None
    if isinstance(body, dict):
        kind = str(body.get("errorType") or function_error or "")
        message = str(body.get("errorMessage") or "")
    else:
        kind, message = function_error or "", payload.decode(errors="replace")
    return kind, message.encode()[:ERROR_TEXT_MAX].decode(errors="ignore")


def log_tail(events: tuple[LogEvent, ...]) -> str:
    text = "".join(e.message + "\n" for e in events).encode()
    return base64.b64encode(text[-TAIL_BYTES:]).decode()


class InvocationService:
    def __init__(
        self,
        *,
        functions: FunctionService,
        engine: ExecutionEngine,
        code: CodeStore,
        logs: LogStore,
        store: MetadataStore,
        limiter: ConcurrencyLimiter,
        policy: Callable[[str, str, str | None], RetryPolicy] = lambda region, name, qualifier: RetryPolicy(),
        retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS,
        on_final: FinalHook = only_log_final,
        tracer: SpanExporter | None = None,
        metrics: MetricsRegistry | None = None,
    ) -> None:
        self._functions = functions
        self._tracer = tracer  # None: no OTLP endpoint configured, nothing done per invoke
        self._metrics = MetricsRegistry() if metrics is None else metrics
        self._policy = policy  # (region, name, invoked qualifier) -> its event invoke config's settings
        self._retry_delays = retry_delays
        self._on_final = on_final
        self._store = store
        self._limiter = limiter
        self._engine = engine
        engine.set_log_sink(logs.put)
        self._code = code
        self._logs = logs
        self._specs: dict[tuple[str, str, str, str], EnvironmentSpec] = {}
        # Each function's ``lamina:network`` policy; the platform keeps it current and calls
        # ``retire`` when it changes (specs cached here carry the old one)
        self.network = NetworkPolicies()
        self.queue = AsyncQueue(store, self._run_queued)

    def spec_for(self, fv: FunctionVersion) -> EnvironmentSpec:
        key = (fv.region, fv.name, fv.version, fv.revision_id)
        spec = self._specs.get(key)
        if spec is None:
            launch = self._engine.launches().get(fv.runtime)
            if launch is not None:
                launch = catalog.with_environment(launch, fv.runtime, fv.environment)
            if launch is None:
                raise AwsError(
                    "InvalidRuntimeException",
                    f"The runtime {fv.runtime} is not available on this lamina host (see `lamina runtimes`).",
                )
            opt_dir = self._opt_dir(fv)
            logs_cfg = fv.extra.get("LoggingConfig")
            levels = logging_config.json_levels(logs_cfg)
            spec = EnvironmentSpec(
                function_name=fv.name,
                function_arn=fv.arn(self._functions.account_id),
                version=fv.version,
                revision=fv.revision_id,
                runtime=fv.runtime,
                interpreter=launch.interpreter,
                handler=fv.handler,
                code_dir=self._code.code_path(fv.code_hex),
                memory_mb=fv.memory_size,
                timeout_s=fv.timeout,
                region=fv.region,
                account_id=self._functions.account_id,
                log_group=logging_config.log_group(logs_cfg, fv.name),
                environment=dict(fv.environment),
                ephemeral_storage_mb=fv.ephemeral_storage,
                opt_dir=opt_dir,
                command=launch.command,
                extensions=optdir.extensions(opt_dir),
                json_logging=None if levels is None else JsonLogging(*levels),
                network=self.network.of(fv.region, fv.name),
            )
            self._specs[key] = spec
        return spec

    def _opt_dir(self, fv: FunctionVersion) -> Path | None:
        path = optdir.opt_path(self._code, fv.layers)
        if path is not None and not path.is_dir():
            # Built when the layers were set; only a crash mid-build leaves it missing.
            optdir.build_opt(self._code, fv.layers)
        return path

    async def invoke(self, fv: FunctionVersion, inv: InvocationInput, *, tail: bool = False) -> SyncResult:
        spec = self.spec_for(fv)
        series = self._metrics.series(inv.invoked_function_arn, fv.version)
        try:
            lease = self._limiter.acquire(fv.region, fv.name, fv.version)  # or AWS's 429, before any work
        except AwsError:
            series.throttles += 1
            raise
        series.enter()
        start_ns = time.time_ns() if self._tracer is not None else 0  # only spans need it
        try:
            outcome = await self._engine.invoke(spec, inv, defer_report=not tail)
        finally:
            lease.release()
            series.running -= 1
        end_ns = time.time_ns() if self._tracer is not None else 0
        payload, error = outcome.payload, outcome.function_error
        if len(payload) > RESPONSE_MAX:
            payload = json.dumps(
                {
                    "errorMessage": "Response payload size exceeded maximum allowed payload size "
                    f"({RESPONSE_MAX} bytes).",
                    "errorType": "Function.ResponseSizeTooLarge",
                }
            ).encode()
            error = "Unhandled"
        if tail:
            self._record(spec, inv, outcome, series, error is not None, (start_ns, end_ns))
            return SyncResult(outcome, payload, error, log_tail(outcome.log_events))
        # The caller's answer goes out first: this returns up to the HTTP front within the same
        # step, and the logs and metrics are stored by the very next callback of the loop, before
        # any other request is read (call_soon's order), ~3% of the server's CPU off the reply.
        asyncio.get_running_loop().call_soon(
            self._record, spec, inv, outcome, series, error is not None, (start_ns, end_ns)
        )
        return SyncResult(outcome, payload, error, None)

    def _record(
        self,
        spec: EnvironmentSpec,
        inv: InvocationInput,
        outcome: InvocationOutcome,
        series: Series,
        failed: bool,
        span: tuple[int, int],
    ) -> None:
        """An invocation's log lines, its metrics and its span."""
        try:
            outcome.complete()
            self._logs.put(spec.log_group, outcome.log_stream, outcome.log_events)
            series.done(outcome.duration_ms, outcome.init_duration_ms, failed)
            if self._tracer is not None:
                self._trace(spec, inv, outcome, *span)
        except Exception:  # a callback of the loop: nobody above to tell
            log.exception("could not record an invocation", extra={"request_id": inv.request_id})

    def _trace(
        self,
        spec: EnvironmentSpec,
        inv: InvocationInput,
        outcome: InvocationOutcome,
        start_ns: int,
        end_ns: int,
    ) -> None:
        assert self._tracer is not None
        self._tracer.record(
            InvokeRecord(
                trace_header=inv.trace_id,
                trace_generated=inv.trace_generated,
                request_id=inv.request_id,
                function_name=spec.function_name,
                function_arn=inv.invoked_function_arn,
                version=spec.version,
                region=spec.region,
                account_id=spec.account_id,
                start_ns=start_ns,
                end_ns=end_ns,
                init_ms=outcome.init_duration_ms,
                duration_ms=outcome.duration_ms,
                function_error=outcome.function_error,
                trigger="other",
                memory_mb=spec.memory_mb,
            )
        )

    async def enqueue(self, fv: FunctionVersion, inv: InvocationInput, qualifier: str) -> None:
        await self.queue.submit(_queue_row(fv, inv, qualifier))
        self._metrics.series(inv.invoked_function_arn, fv.version).async_received += 1

    async def _run_queued(self, ev: QueuedEvent) -> None:
        try:
            fv = self._functions.resolve(ev.region, ev.function_name, ev.qualifier)
        except AwsError:
            return  # the function was deleted after the event was accepted: AWS drops it too
        inv = InvocationInput(
            request_id=ev.request_id,
            payload=ev.payload,
            invoked_function_arn=ev.invoked_arn,
            client_context=ev.client_context,
            trace_id=ev.trace_id,
            trace_generated=ev.trace_generated,
        )
        # The settings of the qualifier the caller invoked (an alias's, not its version's).
        policy = self._policy(ev.region, ev.function_name, parse_function_ref(ev.invoked_arn).qualifier)
        dead_letter = (fv.extra.get("DeadLetterConfig") or {}).get("TargetArn") or None
        if expired(ev.received_at, policy, time.time()):
            result = FinalResult(fv.version, dead_letter, ran=False)
            # Not run again: the reason it waited is the previous try's error (or throttle).
            why = (ev.last_error_type, ev.last_error_message)
            await self._record_failed(ev, FinalCondition.EVENT_AGE_EXCEEDED, ev.attempts - 1, *why)
            await self._on_final(ev, FinalCondition.EVENT_AGE_EXCEEDED, policy, result)
            return
        series = self._metrics.series(ev.invoked_arn, fv.version)
        series.async_age.observe((time.time() - ev.received_at) * 1000.0)
        try:
            run = await self.invoke(fv, inv)
        except AwsError as exc:
            if exc.code == "TooManyRequestsException":
                raise Throttled(exc.fields["Reason"]) from None  # back to the queue, retried later
            delay = system_error_delay(ev.system_errors + 1)
            log.warning(
                "async event hit a system error; retrying",
                extra={"request_id": ev.request_id, "error": exc.code, "retry_in_s": delay},
            )
            series.async_retried += 1
            raise RetryLater(
                delay, system_error=True, error_type=exc.code, error_message=exc.message
            ) from exc
        final = FinalResult(fv.version, dead_letter, payload=run.payload, function_error=run.function_error)
        if run.function_error is None:
            await self._on_final(ev, FinalCondition.SUCCESS, policy, final)
            return
        error_type, error_message = error_of(run.payload, run.function_error)
        retry_in = function_error_delay(ev.attempts, policy, self._retry_delays)
        if retry_in is None:
            await self._record_failed(
                ev, FinalCondition.RETRIES_EXHAUSTED, ev.attempts, error_type, error_message
            )
            await self._on_final(ev, FinalCondition.RETRIES_EXHAUSTED, policy, final)
            return
        series.async_retried += 1
        raise RetryLater(retry_in, error_type=error_type, error_message=error_message)

    async def _record_failed(
        self, ev: QueuedEvent, condition: FinalCondition, runs: int, error_type: str, error_message: str
    ) -> None:
        """Committed before the event leaves the queue: a crash in between records it twice at worst."""
        self._metrics.series(ev.invoked_arn, ev.qualifier).dropped(condition.value)
        failed = FailedEvent(
            request_id=ev.request_id,
            invoked_arn=ev.invoked_arn,
            condition=condition.value,
            attempts=max(runs, 0),
            error_type=error_type,
            error_message=error_message,
            received_at=ev.received_at,
            failed_at=time.time(),
        )
        await self._store.call(self._store.record_failed, ev.region, ev.function_name, failed)

    async def enqueue_arn(self, arn: str, payload: bytes) -> None:
        """Queue an async invoke of the function ``arn`` names (a destination record), as Invoke with
        InvocationType Event would; raises AwsError when there is no such function."""
        await self.queue.submit(self.event_row(arn, payload))

    def event_row(self, arn: str, payload: bytes) -> dict[str, Any]:
        """The queue row ``enqueue_arn`` commits, for a caller that commits it in its own
        transaction (a schedule's firing: ``lamina.store.timers``) and then calls
        ``queue.notify()``; raises AwsError when there is no such function."""
        ref = parse_function_ref(arn)
        if ref.region is None:
            raise AwsError("InvalidParameterValueException", f"The destination ARN {arn} is invalid.")
        fv = self._functions.resolve(ref.region, arn, routed=True)
        inv = InvocationInput(
            request_id=str(uuid.uuid4()),
            payload=payload,
            invoked_function_arn=fv.arn(self._functions.account_id)
            + (f":{ref.qualifier}" if ref.qualifier else ""),
        )
        return _queue_row(fv, inv, fv.version)

    async def retire(self, function_arn: str) -> None:
        """After an update or delete: no old environment or cached spec may serve that function again."""
        for key in [k for k, spec in self._specs.items() if spec.function_arn == function_arn]:
            del self._specs[key]
        await self._engine.retire(function_arn)


def _queue_row(fv: FunctionVersion, inv: InvocationInput, qualifier: str) -> dict[str, Any]:
    return {
        "request_id": inv.request_id,
        "region": fv.region,
        "function_name": fv.name,
        "qualifier": qualifier,
        "invoked_arn": inv.invoked_function_arn,
        "payload": inv.payload,
        "client_context": inv.client_context,
        "received_at": time.time(),
        "trace_id": inv.trace_id,
        "trace_generated": inv.trace_generated,
    }
