"""The registry, the harvest into per-minute CloudWatch datapoints, and their SQLite store."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from lamina.auth.sigv4 import SigV4Verifier
from lamina.telemetry.cloudwatch_store import MetricStore, minute_of
from lamina.telemetry.harvest import harvest
from lamina.telemetry.metrics import MetricsRegistry
from lamina.telemetry.metrics_service import MetricsService

ARN = "arn:aws:lambda:us-east-1:123456789012:function:fn"
FN = (("FunctionName", "fn"),)


def points(registry: MetricsRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], tuple[float, ...]]:
    return {(metric, dims): stats for _, metric, dims, stats in harvest(registry)}


def test_series_are_keyed_by_resource_and_executed_version() -> None:
    r = MetricsRegistry()
    a = r.series(ARN + ":live", "3")
    assert r.series(ARN + ":live", "3") is a
    assert r.series(ARN + ":live", "4") is not a
    assert (a.key.region, a.key.function_name, a.key.resource, a.key.executed_version) == (
        "us-east-1", "fn", "fn:live", "3")  # fmt: skip
    assert a.key.alias and not r.series(ARN + ":3", "3").key.alias and not r.series(ARN, "$LATEST").key.alias


def test_harvest_publishes_aws_shaped_datapoints_once() -> None:
    r = MetricsRegistry()
    s = r.series(ARN + ":live", "3")
    for duration, failed in ((2.0, False), (8.0, True), (5.0, False)):
        s.enter()
        s.running -= 1
        s.done(duration, 100.0 if duration == 2.0 else None, failed)
    s.throttles += 2
    s.async_received += 1
    s.async_age.observe(40.0)
    s.dropped("RetriesExhausted")
    r.delivery_failed(ARN + ":live", dead_letter=True)
    got = points(r)
    res = (*FN, ("Resource", "fn:live"))
    exe = (("ExecutedVersion", "3"), *res)
    for dims in ((), FN, res, exe):
        assert got[("Invocations", dims)] == (3, 3, 1.0, 1.0)
        assert got[("Errors", dims)] == (3, 1, 0.0, 1.0)  # 0 or 1 per invocation: Average = error rate
        assert got[("Duration", dims)] == (3, 15.0, 2.0, 8.0)
        assert got[("Throttles", dims)] == (2, 2, 1.0, 1.0)
        assert got[("ConcurrentExecutions", dims)] == (1, 1, 1, 1)
        assert got[("AsyncEventsReceived", dims)] == (1, 1, 1.0, 1.0)
        assert got[("AsyncEventAge", dims)] == (1, 40.0, 40.0, 40.0)
        assert got[("AsyncEventsDropped", dims)] == (1, 1, 1.0, 1.0)
    # the delivery's series has no executed version: no ExecutedVersion dimension set
    assert got[("DeadLetterErrors", res)] == (1, 1, 1.0, 1.0) and ("DeadLetterErrors", exe) not in got
    assert points(r) == {}  # published once: the next harvest has nothing new
    s.done(1.0, None, False)
    assert points(r)[("Duration", FN)] == (1, 1.0, 1.0, 1.0)  # min/max are per harvest


def test_concurrency_is_summed_over_a_functions_series_and_provisioned_sampled() -> None:
    r = MetricsRegistry()
    a, b = r.series(ARN, "$LATEST"), r.series(ARN + ":live", "3")
    a.enter(), a.enter(), b.enter()
    r.provisioned = lambda: [("us-east-1", "fn", "live", 1, 4)]
    got = points(r)
    assert got[("ConcurrentExecutions", FN)] == (1, 3, 3, 3)
    assert got[("ConcurrentExecutions", (*FN, ("Resource", "fn")))] == (1, 2, 2, 2)
    util = got[("ProvisionedConcurrencyUtilization", (*FN, ("Resource", "fn:live")))]
    assert util == (1, 0.25, 0.25, 0.25)
    assert points(r)[("ConcurrentExecutions", FN)] == (1, 3, 3, 3)  # still running: sampled again


def test_store_buckets_persist_and_add_up_across_restarts(tmp_path: Path) -> None:
    db = tmp_path / "metrics.sqlite3"
    now = time.time()
    minute = minute_of(now)
    series = ("us-east-1", "Duration", FN)

    async def first() -> None:
        r = MetricsRegistry()
        store = MetricStore(db, r, harvest_interval_s=3600)
        await store.start()
        s = r.series(ARN, "$LATEST")
        s.done(4.0, None, False)
        store.collect(now)
        s.done(6.0, None, False)
        store.collect(now)
        # unwritten buckets are visible at once, merged per minute
        assert await store.minutes(series, minute, minute + 60) == {minute: (2, 10.0, 4.0, 6.0)}
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT count(*) FROM metric_minutes").fetchone() == (0,)  # no I/O yet
        await store.close()  # flushes

    async def second() -> None:
        r = MetricsRegistry()
        store = MetricStore(db, r, harvest_interval_s=3600)
        await store.start()
        assert store.series()[series] == minute  # ListMetrics knows it from the series table
        r.series(ARN, "$LATEST").done(1.0, None, False)
        store.collect(now)
        await store._flush()
        # the restarted minute continues: count and sum add up, min and max combine
        assert await store.minutes(series, minute, minute + 60) == {minute: (3, 11.0, 1.0, 6.0)}
        assert await store.minutes(series, minute + 60, minute + 120) == {}
        await store.close()

    asyncio.run(first())
    asyncio.run(second())


def test_store_prunes_past_retention(tmp_path: Path) -> None:
    async def run() -> None:
        r = MetricsRegistry()
        store = MetricStore(tmp_path / "m.sqlite3", r, retention_days=1)
        await store.start()
        now = time.time()
        point = [("us-east-1", "Invocations", FN, (1.0, 1.0, 1.0, 1.0))]
        store.add(point, now - 3 * 86400)
        store.add(point, now)
        store._last_prune = 0.0  # due
        await store._flush()
        series = ("us-east-1", "Invocations", FN)
        assert list(await store.minutes(series, 0, minute_of(now) + 60)) == [minute_of(now)]
        await store.close()

    asyncio.run(run())


def test_a_deleted_function_is_forgotten_after_its_last_harvest(tmp_path: Path) -> None:
    async def run() -> None:
        service = await MetricsService.start(tmp_path, SigV4Verifier({}), "token")
        r = service.registry
        r.series(ARN, "$LATEST").done(3.0, None, False)
        busy = r.series(ARN.replace(":fn", ":other"), "$LATEST")
        busy.enter()
        await service.forget("us-east-1", "fn", "1")  # a version: the function's series stay
        assert len(list(r.all())) == 2
        await service.forget("us-east-1", "fn", None)
        await service.forget("us-east-1", "other", None)  # still running: kept
        assert [s.key.function_name for s in r.all()] == ["other"]
        minute = minute_of(time.time())
        got = await service.store.minutes(("us-east-1", "Invocations", FN), minute - 60, minute + 60)
        assert sum(stats[0] for stats in got.values()) == 1  # harvested before it went
        await service.close()

    asyncio.run(run())


def test_a_failed_write_keeps_the_datapoints_for_the_next_flush(tmp_path: Path) -> None:
    async def run() -> None:
        store = MetricStore(tmp_path / "m.sqlite3", MetricsRegistry(), harvest_interval_s=3600)
        await store.start()
        now = time.time()
        store.add([("us-east-1", "Invocations", FN, (2.0, 2.0, 1.0, 1.0))], now)
        real_write = store._write

        def broken(*args: object) -> None:
            raise OSError("disk full")

        store._write = broken  # type: ignore[method-assign]
        with pytest.raises(OSError):
            await store._flush()
        store.add([("us-east-1", "Invocations", FN, (1.0, 1.0, 1.0, 1.0))], now)
        store._write = real_write  # type: ignore[method-assign]
        await store._flush()
        series = ("us-east-1", "Invocations", FN)
        minute = minute_of(now)
        assert await store.minutes(series, minute, minute + 60) == {minute: (3.0, 3.0, 1.0, 1.0)}
        with sqlite3.connect(tmp_path / "m.sqlite3") as conn:
            assert conn.execute("SELECT count, sum FROM metric_minutes").fetchall() == [(3.0, 3.0)]
        await store.close()

    asyncio.run(run())
