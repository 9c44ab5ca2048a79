"""From the live registry to CloudWatch datapoints: what changed since the last harvest, per
AWS/Lambda metric and dimension set.

Run about once a second on the event loop (``MetricStore``), never on the invoke path.  Each
series contributes to the dimension sets AWS publishes Lambda metrics under: none (the whole
account and region), ``FunctionName``, ``FunctionName`` + ``Resource`` (``name`` or
``name:qualifier`` as invoked) and, for invocations through an alias, ``FunctionName`` +
``Resource`` + ``ExecutedVersion``.

A datapoint is (count, sum, min, max) of the values published, as CloudWatch keeps them:
Invocations, Throttles, AsyncEventsReceived, AsyncEventsDropped, DeadLetterErrors and
DestinationDeliveryFailures publish 1 per occurrence; Errors publishes 1 or 0 per invocation (so
its Average is the error rate); Duration, AsyncEventAge and IteratorAge publish each observed value
(ms); ConcurrentExecutions publishes, per harvest, the most invocations in flight at once since the
previous one (summed over a function's series); ProvisionedConcurrencyUtilization publishes busy /
allocated of each provisioned concurrency config per harvest.
"""

from __future__ import annotations

from lamina.telemetry.metrics import COUNTERS, MetricsRegistry, Series

Dims = tuple[tuple[str, str], ...]  # sorted by dimension name
Stats = tuple[float, float, float, float]  # count, sum, min, max
Point = tuple[str, str, Dims, Stats]  # region, metric name, dimensions, stats

# Metric name -> CloudWatch unit (the Unit of its datapoints).
UNITS = {
    "Invocations": "Count",
    "Errors": "Count",
    "Throttles": "Count",
    "Duration": "Milliseconds",
    "ConcurrentExecutions": "Count",
    "ProvisionedConcurrencyUtilization": "None",
    "ProvisionedConcurrentExecutions": "Count",
    "AsyncEventsReceived": "Count",
    "AsyncEventAge": "Milliseconds",
    "AsyncEventsDropped": "Count",
    "DeadLetterErrors": "Count",
    "DestinationDeliveryFailures": "Count",
    "IteratorAge": "Milliseconds",
}

_INVOCATIONS, _ERRORS, _THROTTLES, _RECEIVED, _RETRIED, _DROP_AGE, _DROP_RETRIES, _DLQ, _DEST = range(
    len(COUNTERS)
)


def dimension_sets(s: Series) -> list[Dims]:
    k = s.key
    name = (("FunctionName", k.function_name),)
    sets: list[Dims] = [(), name, (*name, ("Resource", k.resource))]
    if k.alias and k.executed_version:
        sets.append((("ExecutedVersion", k.executed_version), *name, ("Resource", k.resource)))
    return sets


def _ones(n: int) -> Stats:
    return (n, n, 1.0, 1.0)


def _series_points(s: Series) -> list[tuple[str, Stats]]:
    """This series' (metric, stats) since the last harvest."""
    now = s.counters()
    # Idle since the last harvest, the common case, costs one tuple comparison (a duration is only
    # ever observed with an invocation; the two ages are observed on their own).
    ages = s.async_age, s.iterator_age
    if now == s.taken and all(a.count == a.taken_count for a in ages):
        return []
    d = [a - b for a, b in zip(now, s.taken, strict=True)]
    s.taken = now
    out: list[tuple[str, Stats]] = []
    if d[_INVOCATIONS]:
        n, errors = d[_INVOCATIONS], d[_ERRORS]
        out.append(("Invocations", _ones(n)))
        out.append(("Errors", (n, errors, 0.0 if errors < n else 1.0, 1.0 if errors else 0.0)))
    for index, metric in ((_THROTTLES, "Throttles"), (_RECEIVED, "AsyncEventsReceived"),
                          (_DLQ, "DeadLetterErrors"), (_DEST, "DestinationDeliveryFailures")):  # fmt: skip
        if d[index]:
            out.append((metric, _ones(d[index])))
    if d[_DROP_AGE] + d[_DROP_RETRIES]:
        out.append(("AsyncEventsDropped", _ones(d[_DROP_AGE] + d[_DROP_RETRIES])))
    for metric, dist in (("Duration", s.duration), ("AsyncEventAge", s.async_age),
                         ("IteratorAge", s.iterator_age)):  # fmt: skip
        taken = dist.take()
        if taken is not None:
            out.append((metric, taken))
    s.init_duration.take()  # not an AWS/Lambda metric (Prometheus only); keeps its window fresh
    return out


def _merge(into: dict[tuple[str, str, Dims], Stats], key: tuple[str, str, Dims], stats: Stats) -> None:
    had = into.get(key)
    if had is None:
        into[key] = stats
    else:
        into[key] = (had[0] + stats[0], had[1] + stats[1], min(had[2], stats[2]), max(had[3], stats[3]))


def harvest(registry: MetricsRegistry) -> list[Point]:
    """Everything published since the previous call, merged per (region, metric, dimensions)."""
    merged: dict[tuple[str, str, Dims], Stats] = {}
    concurrency: dict[tuple[str, Dims], int] = {}
    for s in registry.all():
        points = _series_points(s)
        peak, s.peak = s.peak, s.running
        if not points and not peak:
            continue
        region = s.key.region
        for dims in dimension_sets(s):
            for metric, stats in points:
                _merge(merged, (region, metric, dims), stats)
            if peak:
                concurrency[(region, dims)] = concurrency.get((region, dims), 0) + peak
    for (region, dims), peak in concurrency.items():
        merged[(region, "ConcurrentExecutions", dims)] = (1, peak, peak, peak)
    for region, name, qualifier, in_use, allocated in registry.provisioned():
        if allocated <= 0:
            continue
        dims = (("FunctionName", name), ("Resource", f"{name}:{qualifier}"))
        ratio = in_use / allocated
        merged[(region, "ProvisionedConcurrencyUtilization", dims)] = (1, ratio, ratio, ratio)
        merged[(region, "ProvisionedConcurrentExecutions", dims)] = (1, in_use, in_use, in_use)
    return [(region, metric, dims, stats) for (region, metric, dims), stats in merged.items()]
