"""The metrics registry: per-invocation counters and distributions, recorded on the hot path.

One ``Series`` per (invoked resource, executed version): the invoke path looks it up once (a
dict hit on a tuple of two cached-hash strings) and bumps plain attributes on it -- no locks, no
I/O, no allocation after the first invoke of that resource.  Everything heavier (Prometheus text,
per-minute CloudWatch buckets, SQLite) reads these objects later, off the invoke path.

Concurrency invariant: the server runs one event loop and every method here is synchronous, so a
read-modify-write never interleaves with another; readers (exposition, the bucket harvester) run
on the same loop, between invocations, and see consistent values.

Units: durations and ages are recorded in milliseconds (what the engine measures and what
CloudWatch's AWS/Lambda metrics use); the Prometheus exposition converts to seconds.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass

# Histogram upper bounds (ms): Lambda durations run from sub-millisecond warm invokes to 15 min.
DURATION_BOUNDS_MS: tuple[float, ...] = (
    0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 900000,
)  # fmt: skip
# Async event and iterator ages (ms): from a prompt dispatch to AWS's 6-hour maximum event age.
AGE_BOUNDS_MS: tuple[float, ...] = (
    10, 50, 100, 500, 1000, 5000, 10000, 60000, 300000, 900000, 3600000, 21600000,
)  # fmt: skip

# Why an async event was dropped: FinalCondition values (lamina.invocation.retries).
DROP_EVENT_AGE = "EventAgeExceeded"
DROP_RETRIES = "RetriesExhausted"

# The counters a Series holds, in the order ``Series.counters`` reports them.
COUNTERS = (
    "invocations",
    "errors",
    "throttles",
    "async_received",
    "async_retried",
    "dropped_age",
    "dropped_retries",
    "dead_letter_errors",
    "destination_failures",
)


class Distribution:
    """Count, sum and buckets since start (Prometheus), and min/max since the last ``take``
    (CloudWatch's per-minute Minimum/Maximum cannot be derived from cumulative values)."""

    __slots__ = ("bounds", "buckets", "count", "hi", "lo", "taken_count", "taken_total", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.buckets = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.count = 0
        self.total = 0.0
        self.lo = math.inf
        self.hi = -math.inf
        self.taken_count = 0
        self.taken_total = 0.0

    def observe(self, value: float) -> None:
        self.count += 1
        self.total += value
        if value < self.lo:
            self.lo = value
        if value > self.hi:
            self.hi = value
        # bisect_left: the first bound >= value, i.e. Prometheus's "le" bucket.
        self.buckets[bisect_left(self.bounds, value)] += 1

    def take(self) -> tuple[int, float, float, float] | None:
        """(count, sum, min, max) of what was observed since the last take, or None."""
        n = self.count - self.taken_count
        if n == 0:
            return None
        out = (n, self.total - self.taken_total, self.lo, self.hi)
        self.taken_count, self.taken_total = self.count, self.total
        self.lo, self.hi = math.inf, -math.inf
        return out


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """What a series is about: the resource as invoked and the version that ran ("" if unknown)."""

    region: str
    function_name: str
    resource: str  # "name" unqualified, else "name:qualifier" (an alias or a version)
    executed_version: str

    @property
    def alias(self) -> bool:
        qualifier = self.resource.partition(":")[2]
        return bool(qualifier) and not qualifier.isdigit() and qualifier != "$LATEST"


class Series:
    """One resource/version's numbers.  The invoke path touches attributes directly (cheapest)."""

    __slots__ = (
        "async_age",
        "async_received",
        "async_retried",
        "dead_letter_errors",
        "destination_failures",
        "dropped_age",
        "dropped_retries",
        "duration",
        "errors",
        "init_duration",
        "invocations",
        "iterator_age",
        "key",
        "peak",
        "running",
        "taken",
        "throttles",
    )

    def __init__(self, key: SeriesKey) -> None:
        self.key = key
        self.invocations = 0
        self.errors = 0
        self.throttles = 0
        self.running = 0  # in flight now
        self.peak = 0  # most in flight at once since the last harvest
        self.async_received = 0
        self.async_retried = 0
        self.dropped_age = 0
        self.dropped_retries = 0
        self.dead_letter_errors = 0
        self.destination_failures = 0
        self.duration = Distribution(DURATION_BOUNDS_MS)
        self.init_duration = Distribution(DURATION_BOUNDS_MS)
        self.async_age = Distribution(AGE_BOUNDS_MS)
        self.iterator_age = Distribution(AGE_BOUNDS_MS)
        self.taken: tuple[int, ...] = (0,) * len(COUNTERS)  # counter values at the last harvest

    def enter(self) -> None:
        running = self.running + 1
        self.running = running
        if running > self.peak:
            self.peak = running

    def done(self, duration_ms: float, init_ms: float | None, failed: bool) -> None:
        """One finished invocation (``failed``: a function error, AWS's Errors metric)."""
        self.invocations += 1
        if failed:
            self.errors += 1
        self.duration.observe(duration_ms)
        if init_ms is not None:
            self.init_duration.observe(init_ms)

    def dropped(self, condition: str) -> None:
        if condition == DROP_EVENT_AGE:
            self.dropped_age += 1
        else:
            self.dropped_retries += 1

    def counters(self) -> tuple[int, ...]:
        return (
            self.invocations,
            self.errors,
            self.throttles,
            self.async_received,
            self.async_retried,
            self.dropped_age,
            self.dropped_retries,
            self.dead_letter_errors,
            self.destination_failures,
        )


# (region, function name, configured qualifier, in use, allocated): one provisioned concurrency
# config's environments busy right now and allocated to it (``ProvisionedService.utilisation``).
ProvisionedUsage = tuple[str, str, str, int, int]


def parse_invoked(arn: str) -> tuple[str, str, str]:
    """(region, function name, resource) of an invoked function ARN (``name[:qualifier]`` resource)."""
    parts = arn.split(":")
    if len(parts) >= 7 and parts[0] == "arn" and parts[5] == "function":
        return parts[3], parts[6], ":".join(parts[6:8])
    return "", arn, arn  # not an ARN (never from the invoke path): keep it, readable


class MetricsRegistry:
    """Every Series, by (invoked ARN, executed version), plus the gauges read at collection time."""

    def __init__(self) -> None:
        self._series: dict[tuple[str, str], Series] = {}
        # Set by the composition root once provisioned concurrency exists (read on collection).
        self.provisioned: Callable[[], list[ProvisionedUsage]] = list

    def series(self, invoked_arn: str, executed_version: str) -> Series:
        """The series of invocations of ``invoked_arn`` that ran ``executed_version``."""
        found = self._series.get((invoked_arn, executed_version))
        if found is None:
            found = self._create(invoked_arn, executed_version)
        return found

    def _create(self, invoked_arn: str, executed_version: str) -> Series:
        region, name, resource = parse_invoked(invoked_arn)
        made = self._series[(invoked_arn, executed_version)] = Series(
            SeriesKey(region, name, resource, executed_version)
        )
        return made

    def delivery_failed(self, invoked_arn: str, *, dead_letter: bool) -> None:
        """A destination record or dead letter of an event of ``invoked_arn`` failed to arrive
        (one try; the outbox retries).  The executed version is not known there: ""."""
        s = self.series(invoked_arn, "")
        if dead_letter:
            s.dead_letter_errors += 1
        else:
            s.destination_failures += 1

    def iterator_age(self, invoked_arn: str, executed_version: str, age_ms: float) -> None:
        """The hook for event-source pollers (Kinesis, DynamoDB streams, ...): once per batch handed
        to the function, the age of its last record (AWS/Lambda IteratorAge)."""
        self.series(invoked_arn, executed_version).iterator_age.observe(age_ms)

    def all(self) -> Iterator[Series]:
        return iter(list(self._series.values()))

    def forget_function(self, region: str, name: str) -> None:
        """A deleted function's series go, so /metrics stops showing it and memory stays bounded
        (harvest first: its CloudWatch datapoints stay until they age out).  One still running
        keeps its series until a later deletion of the same name."""
        for key, s in list(self._series.items()):
            if s.key.function_name == name and s.key.region == region and s.running == 0:
                del self._series[key]
