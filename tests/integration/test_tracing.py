"""Trace headers reach the function, and invoke spans reach an OTLP/HTTP collector when configured."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from .conftest import LaminaServer, create_function

TRACE_ECHO = "import os\ndef handler(e, c):\n    return os.environ.get('_X_AMZN_TRACE_ID')\n"
ROOT = "1-5759e988-bd862e3fe1be46a994272793"
HEADER = f"Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=1"


class Collector:
    """A stand-in OTLP/HTTP collector: keeps every span POSTed to /v1/traces."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.headers: list[str | None] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                collector.paths.append(self.path)
                collector.headers.append(self.headers.get("x-team"))
                for rs in json.loads(body)["resourceSpans"]:
                    for ss in rs["scopeSpans"]:
                        collector.spans.extend(ss["spans"])
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait_for(self, name: str, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [s for s in self.spans if s["name"] == name]
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(
            f"{count} spans named {name!r} not exported; got {[s['name'] for s in self.spans]}"
        )


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LaminaServer, Collector]]:
    collector = Collector()
    srv = LaminaServer(
        tmp_path_factory.mktemp("traced") / "data",
        extra_env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.port}",
            "OTEL_EXPORTER_OTLP_HEADERS": "x-team=lamina%20tests",
            "OTEL_SERVICE_NAME": "lamina-test",
        },
    )
    srv.start()
    try:
        yield srv, collector
    finally:
        srv.stop()
        collector.httpd.shutdown()


def test_trace_header_reaches_the_function(lam: Any) -> None:
    name = create_function(lam, TRACE_ECHO)

    def with_header(params: Any, **kw: Any) -> None:
        params["headers"]["X-Amzn-Trace-Id"] = HEADER

    lam.meta.events.register("before-call.lambda.Invoke", with_header)
    try:
        got = json.loads(lam.invoke(FunctionName=name)["Payload"].read())
    finally:
        lam.meta.events.unregister("before-call.lambda.Invoke", with_header)
    assert got == HEADER
    # without one, Lambda makes one up: a fresh root per invocation
    a = json.loads(lam.invoke(FunctionName=name)["Payload"].read())
    b = json.loads(lam.invoke(FunctionName=name)["Payload"].read())
    assert a.startswith("Root=1-") and ";Parent=" in a and a.split(";")[0] != b.split(";")[0]


def test_invoke_spans_exported_over_otlp(traced: tuple[LaminaServer, Collector]) -> None:
    srv, collector = traced
    lam = srv.client()
    name = create_function(lam, TRACE_ECHO)

    def with_header(params: Any, **kw: Any) -> None:
        params["headers"]["X-Amzn-Trace-Id"] = HEADER

    lam.meta.events.register("before-call.lambda.Invoke", with_header)
    lam.invoke(FunctionName=name)  # cold
    lam.invoke(FunctionName=name)  # warm
    roots = collector.wait_for(f"{name} invoke", 2)
    trace_id = ROOT.replace("1-", "", 1).replace("-", "")
    assert all(r["traceId"] == trace_id and r["parentSpanId"] == "53995c3f42cd8ad8" for r in roots)
    attrs = [{a["key"]: next(iter(a["value"].values())) for a in r["attributes"]} for r in roots]
    assert [a["faas.coldstart"] for a in attrs] == [True, False]
    assert all(a["faas.name"] == name and a["cloud.region"] == "us-east-1" for a in attrs)
    assert len({a["faas.invocation_id"] for a in attrs}) == 2
    inits = collector.wait_for("Init", 1)
    runs = collector.wait_for("Invoke", 2)
    root_ids = {r["spanId"] for r in roots}
    assert all(s["parentSpanId"] in root_ids and s["traceId"] == trace_id for s in inits + runs)
    cold_root = next(r for r, a in zip(roots, attrs, strict=True) if a["faas.coldstart"])
    assert inits[0]["parentSpanId"] == cold_root["spanId"]
    for span in [*roots, *inits, *runs]:
        assert int(span["startTimeUnixNano"]) <= int(span["endTimeUnixNano"])
    assert set(collector.paths) == {"/v1/traces"} and set(collector.headers) == {"lamina tests"}


def test_function_error_marks_the_span(traced: tuple[LaminaServer, Collector]) -> None:
    srv, collector = traced
    lam = srv.client()
    name = create_function(lam, "def handler(e, c):\n    raise ValueError('no')\n")
    assert lam.invoke(FunctionName=name)["FunctionError"] == "Unhandled"
    (root,) = collector.wait_for(f"{name} invoke", 1)
    assert root["status"] == {"code": 2, "message": "Unhandled"}
    assert len(root["traceId"]) == 32 and "parentSpanId" not in root  # a trace lamina started


def test_made_up_header_parents_the_functions_spans_under_the_invoke(
    traced: tuple[LaminaServer, Collector],
) -> None:
    srv, collector = traced
    lam = srv.client()
    name = create_function(lam, TRACE_ECHO)
    seen = json.loads(lam.invoke(FunctionName=name)["Payload"].read())  # no header sent
    (root,) = collector.wait_for(f"{name} invoke", 1)
    parent = dict(p.split("=", 1) for p in seen.split(";"))["Parent"]
    assert root["spanId"] == parent and "parentSpanId" not in root


def test_async_invoke_continues_the_callers_trace(traced: tuple[LaminaServer, Collector]) -> None:
    srv, collector = traced
    lam = srv.client()
    name = create_function(lam, TRACE_ECHO)

    def with_header(params: Any, **kw: Any) -> None:
        params["headers"]["X-Amzn-Trace-Id"] = HEADER

    lam.meta.events.register("before-call.lambda.Invoke", with_header)
    assert lam.invoke(FunctionName=name, InvocationType="Event")["StatusCode"] == 202
    (root,) = collector.wait_for(f"{name} invoke", 1)
    assert root["traceId"] == ROOT.replace("1-", "", 1).replace("-", "")


def test_unreachable_collector_costs_nothing_but_spans(tmp_path: Path) -> None:
    srv = LaminaServer(tmp_path / "data", extra_env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
    srv.start()
    try:
        lam = srv.client()
        name = create_function(lam, TRACE_ECHO)
        for _ in range(3):
            assert lam.invoke(FunctionName=name)["StatusCode"] == 200
    finally:
        srv.stop()
    assert "OTLP export failed" in (srv.log_path.read_text() if srv.log_path else "")
