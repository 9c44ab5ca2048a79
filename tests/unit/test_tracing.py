"""Trace header parsing, OTLP settings and span records (no network)."""

from __future__ import annotations

import json

import pytest

from lamina.telemetry import tracing
from lamina.telemetry.tracing import (
    InvokeRecord,
    SpanExporter,
    TraceContext,
    TracingSettings,
    parse_trace_header,
)


def test_parse_trace_header() -> None:
    assert parse_trace_header(
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    ) == (TraceContext("5759e988bd862e3fe1be46a994272793", "53995c3f42cd8ad8", True))
    assert parse_trace_header("Root=1-5759E988-BD862E3FE1BE46A994272793") == TraceContext(
        "5759e988bd862e3fe1be46a994272793", None, None
    )


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Parent=53995c3f42cd8ad8",
        "Root=2-5759e988-bd862e3fe1be46a994272793",
        "Root=1-5759e98-bd862e3fe1be46a994272793",
        "Root=1-zzzzzzzz-bd862e3fe1be46a994272793",
        "Root=1-00000000-000000000000000000000000",
    ],
)
def test_unusable_trace_headers(header: str | None) -> None:
    assert parse_trace_header(header) is None


def test_bad_parent_is_dropped_not_fatal() -> None:
    ctx = parse_trace_header("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=xyz")
    assert ctx is not None and ctx.parent_span_id is None


def test_settings_from_env() -> None:
    assert TracingSettings.from_env({}) is None
    s = TracingSettings.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/", "OTEL_SERVICE_NAME": "x"})
    assert s == TracingSettings("http://c:4318/v1/traces", {}, "x")
    s = TracingSettings.from_env(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://ignored:4318",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://c/traces",
            "OTEL_EXPORTER_OTLP_HEADERS": "a=1, b=two%20words,broken",
        }
    )
    assert s == TracingSettings("https://c/traces", {"a": "1", "b": "two words"}, "lamina")
    with pytest.raises(ValueError, match="http"):
        TracingSettings.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "grpc://c:4317"})


def record(**kw: object) -> InvokeRecord:
    base: dict[str, object] = {
        "trace_header": None,
        "trace_generated": False,
        "request_id": "r1",
        "function_name": "f",
        "function_arn": "arn:aws:lambda:us-east-1:123456789012:function:f",
        "version": "$LATEST",
        "region": "us-east-1",
        "account_id": "123456789012",
        "start_ns": 1_000_000_000,
        "end_ns": 1_020_000_000,
        "init_ms": None,
        "duration_ms": 5.0,
        "function_error": None,
        "trigger": "other",
        "memory_mb": 128,
    }
    base.update(kw)
    return InvokeRecord(**base)  # type: ignore[arg-type]


def test_spans_of_a_cold_invoke() -> None:
    exp = SpanExporter(TracingSettings("http://c/v1/traces"))
    exp.record(record(init_ms=8.0))
    root, init, run = exp._buffer
    assert root["kind"] == 2 and "parentSpanId" not in root
    assert init["name"] == "Init" and run["name"] == "Invoke"
    assert init["parentSpanId"] == run["parentSpanId"] == root["spanId"]
    assert int(init["endTimeUnixNano"]) == int(run["startTimeUnixNano"]) == 1_015_000_000
    assert int(init["startTimeUnixNano"]) == 1_007_000_000
    doc = json.loads(exp._payload(exp._buffer))
    assert doc["resourceSpans"][0]["resource"]["attributes"][0]["value"] == {"stringValue": "lamina"}


def test_generated_header_parent_is_the_invoke_span() -> None:
    exp = SpanExporter(TracingSettings("http://c/v1/traces"))
    header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0"
    exp.record(record(trace_header=header, trace_generated=True))
    exp.record(record(trace_header=header, trace_generated=False))
    mine, _, theirs, _ = exp._buffer
    assert mine["spanId"] == "53995c3f42cd8ad8" and "parentSpanId" not in mine
    assert theirs["parentSpanId"] == "53995c3f42cd8ad8" and theirs["spanId"] != "53995c3f42cd8ad8"


def test_full_buffer_drops_and_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "MAX_BUFFER", 4)
    exp = SpanExporter(TracingSettings("http://c/v1/traces"))
    for _ in range(4):
        exp.record(record())
    assert len(exp._buffer) == 4 and exp.dropped == 2
