"""Prometheus text exposition (format 0.0.4) of the metrics registry.

Rendered on each scrape from the live ``Series`` objects: nothing is kept between scrapes, and
the invoke path never formats anything.  Durations and ages are converted to seconds (Prometheus's
base unit).  A family lists the series it is about: invocation families every series that was
invoked or throttled, async families every series with async events, delivery failures the series
that have any, iterator age the series an event source fed.

One account's registry renders as is (what an account's own signed scrape sees); several (the
operator's scrape: every account's) render as one exposition, each family once, every sample
labelled with its ``account_id``.
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


def _labels(prefix: str, s: Series) -> str:
    k = s.key
    return (
        f'{prefix}region="{_escape(k.region)}",function_name="{_escape(k.function_name)}",'
        f'resource="{_escape(k.resource)}",executed_version="{_escape(k.executed_version)}"'
    )


Row = tuple[str, Series]  # (the series' labels, the series)


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


def _config_labels(prefix: str, region: str, name: str, qualifier: str) -> str:
    resource = _escape(f"{name}:{qualifier}")
    return f'{prefix}region="{_escape(region)}",function_name="{_escape(name)}",resource="{resource}"'


def _invoked(s: Series) -> bool:
    return bool(s.invocations or s.throttles or s.running)


def _async(s: Series) -> bool:
    return bool(
        s.async_received or s.async_age.count or s.async_retried or s.dropped_age or s.dropped_retries
    )


def _counters(w: _Writer, series: list[Row]) -> None:
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
        rows = [(labels, s) for labels, s in series if shown(s)]
        if rows:
            w.family(name, "counter", help_text)
            for labels, s in rows:
                w.sample(name, labels, value(s))
    dropped = [(labels, s) for labels, s in series if _async(s)]
    if dropped:
        name = "lamina_async_events_dropped_total"
        w.family(name, "counter", "Async events discarded without success (AWS/Lambda AsyncEventsDropped).")
        for labels, s in dropped:
            w.sample(name, labels + ',reason="EventAgeExceeded"', s.dropped_age)
            w.sample(name, labels + ',reason="RetriesExhausted"', s.dropped_retries)


def _histograms(w: _Writer, series: list[Row]) -> None:
    table: list[tuple[str, str, Callable[[Series], bool], Callable[[Series], Distribution]]] = [
        ("lamina_duration_seconds", "Time the function ran per invocation (AWS/Lambda Duration).",
         _invoked, lambda s: s.duration),
        ("lamina_init_duration_seconds", "Init phase of cold starts (the REPORT line's Init Duration).",
         _invoked, lambda s: s.init_duration),
        ("lamina_async_event_age_seconds", "Time from an async event's acceptance to each run of it "
         "(AWS/Lambda AsyncEventAge).", _async, lambda s: s.async_age),
        ("lamina_iterator_age_seconds", "Age of the last record of each event source batch "
         "(AWS/Lambda IteratorAge).", lambda s: s.iterator_age.count > 0, lambda s: s.iterator_age),
    ]  # fmt: skip
    for name, help_text, shown, dist in table:
        rows = [(labels, s) for labels, s in series if shown(s)]
        if rows:
            w.family(name, "histogram", help_text)
            for labels, s in rows:
                w.histogram(name, labels, dist(s))


def render(registry: MetricsRegistry) -> bytes:
    """One account's series (no account label)."""
    return render_accounts([("", registry)])


def render_all(registries: Iterable[tuple[str, MetricsRegistry]]) -> bytes:
    """Every account's series: (account id, its registry) each; samples say their account_id."""
    return render_accounts([(f'account_id="{_escape(account)}",', reg) for account, reg in registries])


def render_accounts(registries: list[tuple[str, MetricsRegistry]]) -> bytes:
    """``registries``: (label prefix, registry) each."""
    series = [(_labels(prefix, s), s) for prefix, registry in registries for s in registry.all()]
    w = _Writer()
    _counters(w, series)
    _histograms(w, series)
    running = [(labels, s) for labels, s in series if _invoked(s)]
    if running:
        name = "lamina_concurrent_executions"
        w.family(name, "gauge", "Invocations in flight now (AWS/Lambda ConcurrentExecutions).")
        for labels, s in running:
            w.sample(name, labels, s.running)
    usage = [(prefix, *row) for prefix, registry in registries for row in registry.provisioned()]
    if usage:
        util, busy = "lamina_provisioned_concurrency_utilization", "lamina_provisioned_concurrent_executions"
        w.family(util, "gauge", "Provisioned environments busy / allocated, per config "
                 "(AWS/Lambda ProvisionedConcurrencyUtilization).")  # fmt: skip
        for prefix, region, name, qualifier, in_use, allocated in usage:
            labels = _config_labels(prefix, region, name, qualifier)
            w.sample(util, labels, in_use / allocated if allocated else 0.0)
        w.family(
            busy, "gauge", "Provisioned environments busy now (AWS/Lambda ProvisionedConcurrentExecutions)."
        )
        for prefix, region, name, qualifier, in_use, _ in usage:
            labels = _config_labels(prefix, region, name, qualifier)
            w.sample(busy, labels, in_use)
    w.lines.append("")
    return "\n".join(w.lines).encode()
