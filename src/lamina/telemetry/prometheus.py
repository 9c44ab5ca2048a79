"""Prometheus text exposition (format 0.0.4) of the metrics registry.

Rendered on each scrape from the live ``Series`` objects: nothing is kept between scrapes, and
the invoke path never formats anything.  Durations and ages are converted to seconds (Prometheus's
base unit).  A family lists the series it is about: invocation families every series that was
invoked or throttled, async families every series with async events, delivery failures the series
that have any, iterator age the series an event source fed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from lamina.telemetry.metrics import Distribution, MetricsRegistry, Series

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _labels(s: Series) -> str:
    k = s.key
    return (
        f'region="{_escape(k.region)}",function_name="{_escape(k.function_name)}",'
        f'resource="{_escape(k.resource)}",executed_version="{_escape(k.executed_version)}"'
    )


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, labels: str, value: float) -> None:
        self.lines.append(f"{name}{{{labels}}} {_number(value)}")

    def histogram(self, name: str, labels: str, dist: Distribution) -> None:
        cumulative = 0
        for bound, n in zip(dist.bounds, dist.buckets, strict=False):
            cumulative += n
            self.sample(f"{name}_bucket", f'{labels},le="{_number(bound / 1000)}"', cumulative)
        self.sample(f"{name}_bucket", f'{labels},le="+Inf"', dist.count)
        self.sample(f"{name}_sum", labels, dist.total / 1000)
        self.sample(f"{name}_count", labels, dist.count)


def _config_labels(region: str, name: str, qualifier: str) -> str:
    resource = _escape(f"{name}:{qualifier}")
    return f'region="{_escape(region)}",function_name="{_escape(name)}",resource="{resource}"'


def _invoked(s: Series) -> bool:
    return bool(s.invocations or s.throttles or s.running)


def _async(s: Series) -> bool:
    return bool(
        s.async_received or s.async_age.count or s.async_retried or s.dropped_age or s.dropped_retries
    )


def _counters(w: _Writer, series: list[Series]) -> None:
    table: list[tuple[str, str, Callable[[Series], bool], Callable[[Series], int]]] = [
        ("lamina_invocations_total", "Invocations run (AWS/Lambda Invocations).", _invoked,
         lambda s: s.invocations),
        ("lamina_errors_total", "Invocations that ended in a function error (AWS/Lambda Errors).", _invoked,
         lambda s: s.errors),
        ("lamina_throttles_total", "Invoke requests refused for concurrency (AWS/Lambda Throttles).",
         _invoked, lambda s: s.throttles),
        ("lamina_async_events_received_total", "Async events accepted (AWS/Lambda AsyncEventsReceived).",
         _async, lambda s: s.async_received),
        ("lamina_async_events_retried_total", "Async event runs scheduled for a retry after an error.",
         _async, lambda s: s.async_retried),
        ("lamina_dead_letter_errors_total",
         "Failed tries to send a dead letter (AWS/Lambda DeadLetterErrors).",
         lambda s: s.dead_letter_errors > 0, lambda s: s.dead_letter_errors),
        ("lamina_destination_delivery_failures_total",
         "Failed tries to deliver a destination record (AWS/Lambda DestinationDeliveryFailures).",
         lambda s: s.destination_failures > 0, lambda s: s.destination_failures),
    ]  # fmt: skip
    for name, help_text, shown, value in table:
        rows = [s for s in series if shown(s)]
        if rows:
            w.family(name, "counter", help_text)
            for s in rows:
                w.sample(name, _labels(s), value(s))
    dropped = [s for s in series if _async(s)]
    if dropped:
        name = "lamina_async_events_dropped_total"
        w.family(name, "counter", "Async events discarded without success (AWS/Lambda AsyncEventsDropped).")
        for s in dropped:
            w.sample(name, _labels(s) + ',reason="EventAgeExceeded"', s.dropped_age)
            w.sample(name, _labels(s) + ',reason="RetriesExhausted"', s.dropped_retries)


def _histograms(w: _Writer, series: list[Series]) -> None:
    table: list[tuple[str, str, Iterable[Series], Callable[[Series], Distribution]]] = [
        ("lamina_duration_seconds", "Time the function ran per invocation (AWS/Lambda Duration).",
         [s for s in series if _invoked(s)], lambda s: s.duration),
        ("lamina_init_duration_seconds", "Init phase of cold starts (the REPORT line's Init Duration).",
         [s for s in series if _invoked(s)], lambda s: s.init_duration),
        ("lamina_async_event_age_seconds", "Time from an async event's acceptance to each run of it "
         "(AWS/Lambda AsyncEventAge).", [s for s in series if _async(s)], lambda s: s.async_age),
        ("lamina_iterator_age_seconds", "Age of the last record of each event source batch "
         "(AWS/Lambda IteratorAge).", [s for s in series if s.iterator_age.count], lambda s: s.iterator_age),
    ]  # fmt: skip
    for name, help_text, rows, dist in table:
        rows = list(rows)
        if rows:
            w.family(name, "histogram", help_text)
            for s in rows:
                w.histogram(name, _labels(s), dist(s))


def render(registry: MetricsRegistry) -> bytes:
    series = list(registry.all())
    w = _Writer()
    _counters(w, series)
    _histograms(w, series)
    running = [s for s in series if _invoked(s)]
    if running:
        name = "lamina_concurrent_executions"
        w.family(name, "gauge", "Invocations in flight now (AWS/Lambda ConcurrentExecutions).")
        for s in running:
            w.sample(name, _labels(s), s.running)
    usage = registry.provisioned()
    if usage:
        util, busy = "lamina_provisioned_concurrency_utilization", "lamina_provisioned_concurrent_executions"
        w.family(util, "gauge", "Provisioned environments busy / allocated, per config "
                 "(AWS/Lambda ProvisionedConcurrencyUtilization).")  # fmt: skip
        for region, name, qualifier, in_use, allocated in usage:
            labels = _config_labels(region, name, qualifier)
            w.sample(util, labels, in_use / allocated if allocated else 0.0)
        w.family(
            busy, "gauge", "Provisioned environments busy now (AWS/Lambda ProvisionedConcurrentExecutions)."
        )
        for region, name, qualifier, in_use, _ in usage:
            labels = _config_labels(region, name, qualifier)
            w.sample(busy, labels, in_use)
    w.lines.append("")
    return "\n".join(w.lines).encode()
