"""Invoke spans exported over OTLP/HTTP (JSON), when an OpenTelemetry endpoint is configured.

Lambda gives every invocation an X-Ray trace header (``Root=1-<8 hex time>-<24 hex>;Parent=<16
hex>;Sampled=…``), taken from the request's ``X-Amzn-Trace-Id`` or created.  The same trace is
an OpenTelemetry trace: the root's 32 hex digits are the W3C trace id and ``Parent`` the parent
span, which is how AWS's own X-Ray/OTel bridges map them.  Each invocation becomes one SERVER span
("<function> invoke"), with an "Init" child when it paid a cold start and an "Invoke" child for
the handler's run, carrying OpenTelemetry's FaaS attributes.

Configured by OpenTelemetry's standard variables, read once at start (``TracingSettings``):
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (a full URL) or ``OTEL_EXPORTER_OTLP_ENDPOINT`` (+
``/v1/traces``), ``OTEL_EXPORTER_OTLP_HEADERS`` (``k=v,k2=v2``), ``OTEL_SERVICE_NAME``.  OTLP's
JSON encoding needs no dependency (hex ids, string nanoseconds).

Cost: nothing on the invoke path when unconfigured (the service holds None).  When configured, a
few dicts per invoke appended to a bounded buffer; a background task posts batches every
``FLUSH_S`` (in a thread: urllib blocks).  A full buffer drops spans and counts them; a failed
export is logged with the count, never retried forever, never raised into an invoke.

Concurrency invariants: ``record`` and the flush loop run on the event loop; only the HTTP POST
runs in a worker thread, on a batch the loop no longer touches.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lamina.aio import stop_task

log = logging.getLogger("lamina.tracing")

FLUSH_S = 1.0
MAX_BUFFER = 4096  # spans waiting for export; beyond, new ones are dropped (and counted)
BATCH = 512  # spans per POST
EXPORT_TIMEOUT_S = 10.0

_KIND_INTERNAL, _KIND_SERVER = 1, 2
_STATUS_ERROR = 2


@dataclass(frozen=True)
class TracingSettings:
    endpoint: str  # where spans are POSTed (…/v1/traces)
    headers: Mapping[str, str] = field(default_factory=dict)
    service_name: str = "lamina"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TracingSettings | None:
        url = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
        if not url:
            base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
            if not base:
                return None
            url = base.rstrip("/") + "/v1/traces"
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"the OTLP endpoint must be an http(s) URL, not {url!r}")
        headers = {}
        for item in env.get("OTEL_EXPORTER_OTLP_HEADERS", "").split(","):
            key, sep, value = item.partition("=")
            if sep and key.strip():
                headers[key.strip()] = urllib.parse.unquote(value.strip())
        return cls(url, headers, env.get("OTEL_SERVICE_NAME", "").strip() or "lamina")


@dataclass(frozen=True)
class TraceContext:
    trace_id: str  # 32 hex digits
    parent_span_id: str | None  # 16 hex digits
    sampled: bool | None


def parse_trace_header(header: str | None) -> TraceContext | None:
    """The trace an X-Amzn-Trace-Id header names; None when it names none (or not validly)."""
    if not header:
        return None
    fields = {}
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        fields[key] = value
    root = fields.get("Root", "").split("-")
    if len(root) != 3 or root[0] != "1" or len(root[1]) != 8 or len(root[2]) != 24:
        return None
    trace_id = (root[1] + root[2]).lower()
    if not _is_hex(trace_id) or trace_id == "0" * 32:
        return None
    parent = fields.get("Parent", "").lower()
    sampled = fields.get("Sampled")
    return TraceContext(
        trace_id,
        parent if len(parent) == 16 and _is_hex(parent) else None,
        None if sampled not in ("0", "1") else sampled == "1",
    )


def _is_hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return True


def _attr(key: str, value: str | int | bool | float) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"stringValue": value}}


@dataclass(frozen=True)
class InvokeRecord:
    """What one invocation contributes to its trace (see ``SpanExporter.record``)."""

    trace_header: str | None
    trace_generated: bool  # lamina made the header up: its Parent is this invoke's own span
    request_id: str
    function_name: str
    function_arn: str
    version: str
    region: str
    account_id: str
    start_ns: int  # wall clock, when the invoke was taken
    end_ns: int
    init_ms: float | None  # the cold start it paid, if any
    duration_ms: float  # the handler's run
    function_error: str | None
    trigger: str  # OpenTelemetry faas.trigger: "http" (Invoke), "other" (async)
    memory_mb: int


class SpanExporter:
    def __init__(self, settings: TracingSettings) -> None:
        self._settings = settings
        self._buffer: list[dict[str, Any]] = []
        self._rand = random.Random()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        self.exported = 0
        self.failed = 0

    # -- the invoke path -------------------------------------------------------------------

    def record(self, rec: InvokeRecord) -> None:
        if len(self._buffer) >= MAX_BUFFER:
            self.dropped += 1
            return
        ctx = parse_trace_header(rec.trace_header)
        trace_id = ctx.trace_id if ctx is not None else f"{self._rand.getrandbits(128):032x}"
        parent = ctx.parent_span_id if ctx is not None else None
        if rec.trace_generated and parent is not None:
            # The function saw this header: whatever it traces hangs under Parent, so that is
            # this invoke's span, as AWS's Lambda segment is the parent of the function's.
            root_id, parent = parent, None
        else:
            root_id = self._span_id()
        attributes = [
            _attr("faas.invocation_id", rec.request_id),
            _attr("faas.name", rec.function_name),
            _attr("faas.version", rec.version),
            _attr("faas.trigger", rec.trigger),
            _attr("faas.coldstart", rec.init_ms is not None),
            _attr("faas.max_memory", rec.memory_mb * 1024 * 1024),
            _attr("cloud.provider", "aws"),
            _attr("cloud.platform", "aws_lambda"),
            _attr("cloud.region", rec.region),
            _attr("cloud.account.id", rec.account_id),
            _attr("cloud.resource_id", rec.function_arn),
        ]
        if rec.trace_header:
            attributes.append(_attr("aws.xray.trace_header", rec.trace_header))
        root: dict[str, Any] = {
            "traceId": trace_id,
            "spanId": root_id,
            "name": f"{rec.function_name} invoke",
            "kind": _KIND_SERVER,
            "startTimeUnixNano": str(rec.start_ns),
            "endTimeUnixNano": str(rec.end_ns),
            "attributes": attributes,
        }
        if parent is not None:
            root["parentSpanId"] = parent
        if rec.function_error is not None:
            root["status"] = {"code": _STATUS_ERROR, "message": rec.function_error}
        spans = [root]
        # The phases end where the invoke ended; init (if any) came right before the run.
        run_start = rec.end_ns - int(rec.duration_ms * 1e6)
        if rec.init_ms is not None:
            init_start = max(rec.start_ns, run_start - int(rec.init_ms * 1e6))
            spans.append(self._child(trace_id, root_id, "Init", init_start, run_start))
        spans.append(self._child(trace_id, root_id, "Invoke", max(rec.start_ns, run_start), rec.end_ns))
        self._buffer.extend(spans)

    def _child(self, trace_id: str, parent: str, name: str, start_ns: int, end_ns: int) -> dict[str, Any]:
        return {
            "traceId": trace_id,
            "spanId": self._span_id(),
            "parentSpanId": parent,
            "name": name,
            "kind": _KIND_INTERNAL,
            "startTimeUnixNano": str(start_ns),
            "endTimeUnixNano": str(end_ns),
        }

    def _span_id(self) -> str:
        return f"{self._rand.getrandbits(64) or 1:016x}"

    # -- export ----------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._flush_loop(), name="lamina-otlp")

    async def close(self) -> None:
        await stop_task(self._task)
        self._task = None
        await self.flush()  # what was recorded before the stop still goes out

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            await self.flush()

    async def flush(self) -> None:
        while self._buffer:
            batch, self._buffer = self._buffer[:BATCH], self._buffer[BATCH:]
            body = self._payload(batch)
            try:
                await asyncio.to_thread(self._post, body)
            except (OSError, urllib.error.URLError, ValueError) as exc:
                self.failed += len(batch)
                log.warning(
                    "OTLP export failed; spans dropped",
                    extra={"spans": len(batch), "endpoint": self._settings.endpoint, "error": str(exc)},
                )
                return  # the rest waits for the next flush: no hot loop against a dead collector
            self.exported += len(batch)

    def _payload(self, spans: list[dict[str, Any]]) -> bytes:
        resource = {"attributes": [_attr("service.name", self._settings.service_name)]}
        scope = {"name": "lamina"}
        doc = {"resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": scope, "spans": spans}]}]}
        return json.dumps(doc, separators=(",", ":")).encode()

    def _post(self, body: bytes) -> None:
        headers = {"Content-Type": "application/json", **self._settings.headers}
        request = urllib.request.Request(self._settings.endpoint, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=EXPORT_TIMEOUT_S) as response:
            response.read()
