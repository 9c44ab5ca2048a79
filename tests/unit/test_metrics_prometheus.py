"""/metrics: the text exposition (format 0.0.4, checked line by line) and its authentication."""

from __future__ import annotations

import itertools
import os
import re
import stat
from pathlib import Path

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from lamina.auth.sigv4 import SigV4Verifier
from lamina.telemetry import prometheus
from lamina.telemetry.metrics import MetricsRegistry
from lamina.telemetry.metrics_http import MetricsEndpoint, load_or_create_token

ARN = "arn:aws:lambda:us-east-1:123456789012:function:fn"
NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(rf"^({NAME})(?:\{{({LABEL}(?:,{LABEL})*)\}})? (\S+)$")
Samples = dict[str, list[tuple[dict[str, str], float]]]


def parse(text: str) -> tuple[dict[str, str], Samples]:
    """A strict reader of the 0.0.4 text format: every sample after its family's TYPE, names and
    label syntax as specified, values that are floats, histograms cumulative and complete."""
    assert text == "" or text.endswith("\n")
    types: dict[str, str] = {}
    samples: Samples = {}
    current = None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name not in types, f"family {name} declared twice"
            assert kind in ("counter", "gauge", "histogram")
            types[name] = kind
            current = name
            continue
        m = SAMPLE.match(line)
        assert m, f"not a valid sample line: {line!r}"
        name, labels, value = m.groups()
        base = (
            re.sub(r"_(bucket|sum|count)$", "", name) if current and types[current] == "histogram" else name
        )
        assert base == current, f"{name} outside its family's block"
        pairs = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', labels or ""))
        samples.setdefault(name, []).append((pairs, float(value)))
    for family, kind in types.items():
        if kind != "histogram":
            continue
        count = {tuple(sorted(lb.items())): v for lb, v in samples[family + "_count"]}
        buckets: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
        for labels, v in samples[family + "_bucket"]:
            lb = dict(labels)
            le = lb.pop("le")
            buckets.setdefault(tuple(sorted(lb.items())), []).append((float(le), v))
        for key, rows in buckets.items():
            assert [le for le, _ in rows] == sorted(le for le, _ in rows) and rows[-1][0] == float("inf")
            assert all(a[1] <= b[1] for a, b in itertools.pairwise(rows)), "buckets must be cumulative"
            assert rows[-1][1] == count[key]
    return types, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    found = [v for lb, v in samples[name] if all(lb.get(k) == x for k, x in labels.items())]
    assert len(found) == 1, (name, labels, samples.get(name))
    return found[0]


def test_exposition_is_valid_and_complete() -> None:
    r = MetricsRegistry()
    s = r.series(ARN + ":live", "3")
    s.done(0.3, 120.0, False)
    s.done(1500.0, None, True)
    s.throttles += 1
    s.enter()
    s.async_received += 2
    s.async_retried += 1
    s.async_age.observe(2500.0)
    s.dropped("EventAgeExceeded")
    r.iterator_age(ARN + ":live", "3", 10.0)
    r.delivery_failed(ARN + ":live", dead_letter=False)
    odd = r.series('arn:aws:lambda:us-east-1:123456789012:function:we"ird\\', "$LATEST")
    odd.done(1.0, None, False)
    r.provisioned = lambda: [("us-east-1", "fn", "live", 3, 4)]
    types, samples = parse(prometheus.render(r).decode())
    labels = {"function_name": "fn", "resource": "fn:live", "executed_version": "3", "region": "us-east-1"}
    assert value(samples, "lamina_invocations_total", **labels) == 2
    assert value(samples, "lamina_errors_total", **labels) == 1
    assert value(samples, "lamina_throttles_total", **labels) == 1
    assert value(samples, "lamina_concurrent_executions", **labels) == 1
    assert value(samples, "lamina_duration_seconds_count", **labels) == 2
    assert value(samples, "lamina_duration_seconds_sum", **labels) == pytest.approx(1.5003)
    assert value(samples, "lamina_duration_seconds_bucket", le="0.0005", **labels) == 1
    assert value(samples, "lamina_duration_seconds_bucket", le="2.5", **labels) == 2
    assert value(samples, "lamina_init_duration_seconds_count", **labels) == 1
    assert value(samples, "lamina_async_events_received_total", **labels) == 2
    assert value(samples, "lamina_async_events_retried_total", **labels) == 1
    assert value(samples, "lamina_async_events_dropped_total", reason="EventAgeExceeded", **labels) == 1
    assert value(samples, "lamina_async_event_age_seconds_sum", **labels) == 2.5
    assert value(samples, "lamina_iterator_age_seconds_count", **labels) == 1
    assert value(samples, "lamina_destination_delivery_failures_total", executed_version="") == 1
    assert value(samples, "lamina_provisioned_concurrency_utilization", resource="fn:live") == 0.75
    assert value(samples, "lamina_provisioned_concurrent_executions", resource="fn:live") == 3
    assert value(samples, "lamina_invocations_total", function_name='we\\"ird\\\\') == 1  # escaped
    assert types["lamina_duration_seconds"] == "histogram" and types["lamina_invocations_total"] == "counter"
    assert "lamina_dead_letter_errors_total" not in types  # a family with nothing to say is left out


def test_every_accounts_series_in_one_valid_exposition() -> None:
    """The operator's view: each family once, every sample with its account_id -- the same
    function name in two accounts is two series, not one."""
    root, other = MetricsRegistry(), MetricsRegistry()
    root.series(ARN, "$LATEST").done(1.0, None, False)
    other_arn = ARN.replace("123456789012", "210987654321")
    for _ in range(3):
        other.series(other_arn, "$LATEST").done(2.0, 50.0, True)
    other.provisioned = lambda: [("us-east-1", "fn", "live", 1, 2)]
    text = prometheus.render_all([("123456789012", root), ("210987654321", other)]).decode()
    _, samples = parse(text)  # parse refuses a family declared twice
    assert value(samples, "lamina_invocations_total", account_id="123456789012", function_name="fn") == 1
    assert value(samples, "lamina_invocations_total", account_id="210987654321", function_name="fn") == 3
    assert value(samples, "lamina_errors_total", account_id="210987654321") == 3
    assert value(samples, "lamina_duration_seconds_count", account_id="123456789012") == 1
    assert value(samples, "lamina_provisioned_concurrency_utilization", account_id="210987654321") == 0.5
    assert all("account_id" in labels for rows in samples.values() for labels, _ in rows)
    # One account's own view is unchanged: no account label
    _, own = parse(prometheus.render(other).decode())
    assert all("account_id" not in labels for rows in own.values() for labels, _ in rows)


def test_empty_registry_renders_an_empty_valid_page() -> None:
    assert parse(prometheus.render(MetricsRegistry()).decode()) == ({}, {})


def test_token_is_generated_private_and_kept(tmp_path: Path) -> None:
    token = load_or_create_token(tmp_path, None)
    path = tmp_path / "metrics-token"
    assert len(token) >= 40 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_token(tmp_path, None) == token
    os.chmod(path, 0o644)
    assert load_or_create_token(tmp_path, None) == token and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_token(tmp_path / "other", "given") == "given"
    assert not (tmp_path / "other").exists()  # a given token is never written


def _endpoint() -> MetricsEndpoint:
    r = MetricsRegistry()
    r.series(ARN, "$LATEST").done(1.0, None, False)
    return MetricsEndpoint(r, SigV4Verifier({"AKID": "SECRET"}), "tok3n")


def _call(
    ep: MetricsEndpoint, headers: dict[str, str], method: str = "GET"
) -> tuple[int, dict[bytes, bytes], bytes]:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    status, out, body = ep.handle(method, b"/metrics", b"", raw, dict(raw))
    return status, dict(out), body


def test_bearer_token_or_sigv4_is_required() -> None:
    ep = _endpoint()
    status, headers, body = _call(ep, {"Host": "h", "Authorization": "Bearer tok3n"})
    assert status == 200 and headers[b"content-type"].startswith(b"text/plain; version=0.0.4")
    assert b"lamina_invocations_total" in body
    for bad in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic dG9rM24="}):
        status, headers, body = _call(ep, {"Host": "h", **bad})
        assert status == 401 and headers[b"www-authenticate"].startswith(b"Bearer") and b"tok3n" not in body
    assert _call(ep, {"Authorization": "Bearer tok3n"}, method="POST")[0] == 405
    signed = AWSRequest(method="GET", url="http://h/metrics", headers={"Host": "h"})
    SigV4Auth(Credentials("AKID", "SECRET"), "monitoring", "us-east-1").add_auth(signed)
    assert _call(ep, dict(signed.headers.items()))[0] == 200
    forged = AWSRequest(method="GET", url="http://h/metrics", headers={"Host": "h"})
    SigV4Auth(Credentials("AKID", "WRONG"), "monitoring", "us-east-1").add_auth(forged)
    assert _call(ep, dict(forged.headers.items()))[0] == 401


def test_the_token_sees_every_account_and_a_signer_only_its_own() -> None:
    mine, theirs = MetricsRegistry(), MetricsRegistry()
    mine.series(ARN, "$LATEST").done(1.0, None, False)
    theirs.series(ARN.replace("123456789012", "210987654321"), "$LATEST").done(1.0, None, False)
    ep = MetricsEndpoint(
        mine,
        SigV4Verifier({"AKID": "SECRET", "THEIRS": "S2"}),
        "tok3n",
        registry_for={"AKID": mine, "THEIRS": theirs}.get,
        every_account=lambda: [("123456789012", mine), ("210987654321", theirs)],
    )
    _, _, body = _call(ep, {"Host": "h", "Authorization": "Bearer tok3n"})
    assert b'account_id="123456789012"' in body and b'account_id="210987654321"' in body
    signed = AWSRequest(method="GET", url="http://h/metrics", headers={"Host": "h"})
    SigV4Auth(Credentials("THEIRS", "S2"), "monitoring", "us-east-1").add_auth(signed)
    status, _, body = _call(ep, dict(signed.headers.items()))
    _, samples = parse(body.decode())
    assert status == 200 and [lb["function_name"] for lb, _ in samples["lamina_invocations_total"]] == ["fn"]
    assert b"account_id" not in body and prometheus.render(theirs) == body


def test_prometheus_clients_own_parser_reads_it() -> None:
    """Where prometheus_client is installed (it is not a lamina dependency), its parser agrees."""
    parser = pytest.importorskip("prometheus_client.parser")
    r = MetricsRegistry()
    s = r.series(ARN + ":live", "3")
    s.done(0.3, 120.0, True)
    s.async_age.observe(2500.0)
    s.dropped("RetriesExhausted")
    r.delivery_failed(ARN, dead_letter=True)
    r.provisioned = lambda: [("us-east-1", "fn", "live", 1, 2)]
    families = {f.name: f for f in parser.text_string_to_metric_families(prometheus.render(r).decode())}
    assert families["lamina_duration_seconds"].type == "histogram"
    assert families["lamina_invocations"].samples[0].value == 1
    assert families["lamina_provisioned_concurrency_utilization"].samples[0].value == 0.5
    every = prometheus.render_all([("123456789012", r), ("210987654321", r)]).decode()
    families = {f.name: f for f in parser.text_string_to_metric_families(every)}
    accounts = {s.labels["account_id"] for s in families["lamina_invocations"].samples}
    assert accounts == {"123456789012", "210987654321"}
