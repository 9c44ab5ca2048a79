"""Per-minute CloudWatch datapoints of the AWS/Lambda namespace: kept in memory, flushed to SQLite.

Every second the harvester (``harvest.py``) turns what the registry counted into datapoints, and
they are added to the bucket of the current minute.  Memory holds only what is not yet written
(at most a minute's worth); every ``flush_interval_s`` that is *added* to the rows of
``<data-dir>/metrics.sqlite3`` (count and sum add up, min and max combine), so a restart within a
minute continues its buckets instead of overwriting them.  One-minute resolution is kept for
``retention_days`` (15, as AWS keeps 1-minute data); older rows are pruned hourly.

Ordering invariant: writes and reads of the database go through one worker thread, in submission
order.  A query takes its snapshot of the unwritten buckets and submits its read in one synchronous
step, so every datapoint is counted exactly once: either it was in the snapshot (and its write, if
any, was submitted after the read) or it had been taken out by a flush submitted before the read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import Column, Engine, Float, Integer, MetaData, String, Table, Text

from lamina.aio import stop_task
from lamina.store.db import sqlite_engine
from lamina.telemetry.harvest import Dims, Point, Stats, harvest
from lamina.telemetry.metrics import MetricsRegistry

log = logging.getLogger("lamina.metrics")

RETENTION_DAYS = 15
PRUNE_EVERY_S = 3600.0

SeriesId = tuple[str, str, Dims]  # region, metric, dimensions

_meta = MetaData()
metric_minutes = Table(
    "metric_minutes",
    _meta,
    Column("region", String(32), primary_key=True),
    Column("metric", String(64), primary_key=True),
    Column("dims", Text, primary_key=True),  # JSON: [[name, value], ...] sorted by name
    Column("minute", Integer, primary_key=True),  # epoch seconds, a multiple of 60
    Column("count", Float, nullable=False),
    Column("sum", Float, nullable=False),
    Column("min", Float, nullable=False),
    Column("max", Float, nullable=False),
)
# One row per series, for ListMetrics (and RecentlyActive) without scanning every minute.
metric_series = Table(
    "metric_series",
    _meta,
    Column("region", String(32), primary_key=True),
    Column("metric", String(64), primary_key=True),
    Column("dims", Text, primary_key=True),
    Column("last_minute", Integer, nullable=False),
)

_UPSERT_MINUTE = (
    "INSERT INTO metric_minutes (region, metric, dims, minute, count, sum, min, max) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (region, metric, dims, minute) DO UPDATE SET "
    "count = count + excluded.count, sum = sum + excluded.sum, "
    "min = min(min, excluded.min), max = max(max, excluded.max)"
)
_UPSERT_SERIES = (
    "INSERT INTO metric_series (region, metric, dims, last_minute) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (region, metric, dims) DO UPDATE SET last_minute = max(last_minute, excluded.last_minute)"
)


def dims_key(dims: Dims) -> str:
    return json.dumps([list(pair) for pair in dims], separators=(",", ":"))


def combine(a: Stats, b: Stats) -> Stats:
    return (a[0] + b[0], a[1] + b[1], min(a[2], b[2]), max(a[3], b[3]))


def minute_of(t: float) -> int:
    return int(t // 60) * 60


class MetricStore:
    def __init__(
        self,
        path: Path,
        registry: MetricsRegistry,
        *,
        harvest_interval_s: float = 1.0,
        flush_interval_s: float = 60.0,
        retention_days: int = RETENTION_DAYS,
    ) -> None:
        self._engine: Engine = sqlite_engine(path, _meta, synchronous="NORMAL")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lamina-metrics")
        self._registry = registry
        self._harvest_s = harvest_interval_s
        self._flush_s = flush_interval_s
        self._retention_s = retention_days * 86400
        self._pending: dict[tuple[SeriesId, int], Stats] = {}  # (series, minute) -> unwritten stats
        self._known: dict[SeriesId, int] = {}  # every series -> its last minute with data
        self._task: asyncio.Task[None] | None = None
        self._last_prune = 0.0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for region, metric, dims, last in await loop.run_in_executor(self._executor, self._load_series):
            key = (region, metric, tuple((str(n), str(v)) for n, v in json.loads(dims)))
            self._known[key] = max(self._known.get(key, 0), last)
        self._task = loop.create_task(self._run(), name="lamina-metrics")

    async def close(self) -> None:
        await stop_task(self._task)
        self._task = None
        try:
            self.collect()
        except Exception:  # a source gone first at shutdown: what was collected still gets written
            log.exception("could not collect the last metrics")
        await self._flush()
        self._executor.shutdown(wait=True)
        self._engine.dispose()

    # -- the background work ----------------------------------------------------------------------
    async def _run(self) -> None:
        last_flush = time.monotonic()
        while True:
            await asyncio.sleep(self._harvest_s)
            try:
                self.collect()
                if time.monotonic() - last_flush >= self._flush_s:
                    last_flush = time.monotonic()
                    await self._flush()
            except Exception:  # metrics must never take the server down: log, try again next tick
                log.exception("could not record or write metrics")

    def collect(self, now: float | None = None) -> None:
        """Harvest the registry into the current minute's buckets (cheap; on the event loop)."""
        self.add(harvest(self._registry), time.time() if now is None else now)

    def add(self, points: list[Point], now: float) -> None:
        minute = minute_of(now)
        for region, metric, dims, stats in points:
            series = (region, metric, dims)
            key = (series, minute)
            had = self._pending.get(key)
            self._pending[key] = stats if had is None else combine(had, stats)
            if self._known.get(series, -1) < minute:
                self._known[series] = minute

    async def _flush(self) -> None:
        batch, self._pending = self._pending, {}
        now = time.time()
        cutoff: int | None = None
        if now - self._last_prune >= PRUNE_EVERY_S:
            self._last_prune = now
            cutoff = minute_of(now - self._retention_s)
            self._known = {k: last for k, last in self._known.items() if last >= cutoff}
        if not batch and cutoff is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._write, batch, cutoff)
        except Exception:
            # The transaction rolled back (a full disk, a locked file): the datapoints go back to
            # the unwritten buckets and the next flush tries again, so nothing counted is lost.
            for key, stats in batch.items():
                had = self._pending.get(key)
                self._pending[key] = stats if had is None else combine(stats, had)
            raise

    def _write(self, batch: dict[tuple[SeriesId, int], Stats], cutoff: int | None) -> None:
        minutes = [
            (region, metric, dims_key(dims), minute, *stats)
            for ((region, metric, dims), minute), stats in batch.items()
        ]
        last: dict[tuple[str, str, str], int] = {}
        for region, metric, dims, minute, *_ in minutes:
            key = (region, metric, dims)
            last[key] = max(last.get(key, 0), minute)
        with self._engine.begin() as conn:
            if minutes:
                conn.exec_driver_sql(_UPSERT_MINUTE, minutes)
                conn.exec_driver_sql(_UPSERT_SERIES, [(*key, m) for key, m in last.items()])
            if cutoff is not None:
                conn.exec_driver_sql("DELETE FROM metric_minutes WHERE minute < ?", (cutoff,))
                conn.exec_driver_sql("DELETE FROM metric_series WHERE last_minute < ?", (cutoff,))

    def _load_series(self) -> list[tuple[str, str, str, int]]:
        with self._engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT region, metric, dims, last_minute FROM metric_series")
            return [(r[0], r[1], r[2], int(r[3])) for r in rows]

    # -- queries ----------------------------------------------------------------------------------
    def series(self) -> dict[SeriesId, int]:
        """Every series with data in the retention window -> its last minute with data."""
        self.collect()
        return dict(self._known)

    async def minutes(self, series: SeriesId, start: int, end: int) -> dict[int, Stats]:
        """The series' per-minute stats for minutes in [start, end), written and unwritten."""
        self.collect()  # what was counted up to now is visible at once
        region, metric, dims = series
        unwritten = {m: st for (key, m), st in self._pending.items() if key == series and start <= m < end}
        read = asyncio.get_running_loop().run_in_executor(
            self._executor, self._read, region, metric, dims_key(dims), start, end
        )  # submitted in the same step as the snapshot: see the ordering invariant above
        out = await read
        for m, st in unwritten.items():
            out[m] = combine(out[m], st) if m in out else st
        return out

    def _read(self, region: str, metric: str, dims: str, start: int, end: int) -> dict[int, Stats]:
        with self._engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT minute, count, sum, min, max FROM metric_minutes "
                "WHERE region = ? AND metric = ? AND dims = ? AND minute >= ? AND minute < ?",
                (region, metric, dims, start, end),
            )
            return {int(r[0]): (r[1], r[2], r[3], r[4]) for r in rows}
