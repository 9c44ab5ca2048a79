"""The log store behind CloudWatch Logs: groups, streams, events, written in batches.

Invocations hand their lines to ``put`` (memory only, no I/O on the invoke path); a background
task flushes the buffer to SQLite every ``flush_interval_s`` or when it grows large, in one
transaction on the store's own thread.  Logs live in their own database file so their write
volume never delays a metadata commit.

Bounds (docs/logs.md): ``put`` passes through a ``LogGuard`` (lines over 256 KB split, a per-group
byte rate, drops counted); the buffer itself is capped; after each flush a group over
``max_group_bytes`` loses its oldest events; every ``maintenance_interval_s`` events older than
their group's retention are deleted.

Concurrency invariant: every database access, and ``_stream_ids`` / ``_group_bytes``, belong to
the one executor thread, so writes, reads, trims and purges are serialized without locks; the
event loop only touches ``_pending`` and the guard.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import chain, repeat
from operator import attrgetter
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, select, text

from lamina.aio import stop_task
from lamina.execution.types import LogEvent
from lamina.store.db import sqlite_engine
from lamina.telemetry import logmaint
from lamina.telemetry.logguard import EVENT_OVERHEAD, GroupCounters, LogGuard, messages_size
from lamina.telemetry.logschema import log_events, log_streams, schema

T = TypeVar("T")
log = logging.getLogger("lamina.logs")

_ROWS_PER_INSERT = 2000  # 4 parameters a row, under SQLite's 32766-variable limit
_WARN_INTERVAL_S = 60.0
_MAX_BACKLOG = 200_000  # events waiting for the writer; beyond it new ones are dropped (and counted)
_STAMP = attrgetter("timestamp_ms")
_MESSAGE = attrgetter("message")


@functools.lru_cache(maxsize=4)
def _insert_sql(rows: int) -> str:
    values = ",".join(["(?,?,?,?)"] * rows)
    return f"INSERT INTO log_events (stream_id, timestamp_ms, ingestion_ms, message) VALUES {values}"


@dataclass(frozen=True, slots=True)
class StoredLogEvent:
    group: str
    stream: str
    timestamp_ms: int
    ingestion_ms: int
    message: str


@dataclass(frozen=True, slots=True)
class LogLimits:
    """How much one log group may hold and take in (0 means unbounded); see docs/logs.md."""

    rate_bytes_s: float = 0.0
    burst_bytes: float = 0.0
    max_group_bytes: int = 0
    default_retention_days: int | None = None  # for groups lamina creates itself (per function)
    maintenance_interval_s: float = 60.0


class LogStore:
    def __init__(
        self,
        path: Path,
        *,
        flush_interval_s: float = 0.1,
        max_pending: int = 5000,
        limits: LogLimits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # Logs survive a crash of lamina (WAL); only an OS crash may lose the last flush: not worth
        # an fsync per batch on the invoke-heavy path.
        self._engine: Engine = sqlite_engine(path, schema, synchronous="OFF")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lamina-logs")
        # What waits for the writer, per stream: its timestamps and messages as two plain lists.
        # Ints and strs are not tracked by the garbage collector, so ~1,000 invokes' lines held
        # between flushes are not traversed (nor promoted through the GC's generations) as the
        # LogEvent objects were -- 4% of the event loop's time under load -- and the writer binds
        # them in C (zip/chain), holding the GIL for the batch, not for each event.
        self._pending: dict[tuple[str, str], tuple[list[int], list[str]]] = {}
        self._pending_events = 0
        self._interval = flush_interval_s
        self._max_pending = max_pending
        self.limits = limits or LogLimits()
        self._clock = clock
        self.guard = LogGuard(
            rate_bytes_s=self.limits.rate_bytes_s,
            burst_bytes=self.limits.burst_bytes,
            clock=time.monotonic,
            on_notice=self._warn_drops,
        )
        self._warned: dict[str, float] = {}  # group -> monotonic time of its last server warning
        self.backlog_dropped = 0
        self.trimmed_events = 0
        self.expired_events = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stream_ids: dict[tuple[str, str], int] = {}  # writer thread only
        self._group_bytes: dict[str, int] = {}  # writer thread only; loaded lazily per group

    def start(self) -> None:
        # First on the store's one thread, so before any read or write of this run.
        self._executor.submit(self._in_transaction, logmaint.count_legacy_sizes)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="lamina-log-flusher")

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    def put(self, group: str, stream: str, events: Sequence[LogEvent]) -> None:
        """A function's output: through the guard (split, rate cap), then buffered."""
        if not events:
            return
        messages = list(map(_MESSAGE, events))
        if self.guard.take(group, messages):  # the common case: stored as they are
            self._buffer(group, stream, list(map(_STAMP, events)), messages)
        else:
            self.put_direct(group, stream, self.guard.admit(group, events))

    def _warn_drops(self, group: str, counters: GroupCounters) -> None:
        """The server's own log says so too, at most once a minute per function."""
        now = time.monotonic()
        if now - self._warned.get(group, float("-inf")) >= _WARN_INTERVAL_S:
            self._warned[group] = now
            log.warning(
                "function output over its log rate: lines dropped",
                extra={
                    "log_group": group,
                    "dropped_events": counters.dropped_events,
                    "dropped_bytes": counters.dropped_bytes,
                    "rate_bytes_s": self.limits.rate_bytes_s,
                },
            )

    def put_direct(self, group: str, stream: str, events: Sequence[LogEvent]) -> None:
        """Buffer ``events`` as they are (PutLogEvents has already checked them)."""
        self._buffer(group, stream, list(map(_STAMP, events)), list(map(_MESSAGE, events)))

    def _buffer(self, group: str, stream: str, stamps: list[int], messages: list[str]) -> None:
        n = len(messages)
        room = _MAX_BACKLOG - self._pending_events
        if n > room:
            self.backlog_dropped += n - max(room, 0)
            del stamps[max(room, 0) :], messages[max(room, 0) :]
            n = len(messages)
        if not n:
            return
        key = (group, stream)
        columns = self._pending.get(key)
        if columns is None:
            self._pending[key] = (stamps, messages)
        else:
            columns[0].extend(stamps)
            columns[1].extend(messages)
        self._pending_events += n
        if self._pending_events >= self._max_pending:
            self._wake.set()

    async def _run(self) -> None:
        next_maintenance = self._clock() + self.limits.maintenance_interval_s
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            try:
                await self.flush()
                if self._clock() >= next_maintenance:
                    next_maintenance = self._clock() + self.limits.maintenance_interval_s
                    await self.expire()
            except Exception:  # a failed batch must not end logging for the server's lifetime
                log.exception("log store flush failed")

    async def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending, self._pending_events = self._pending, {}, 0
        await self._call(self._write, batch)

    async def close(self) -> None:
        await stop_task(self._task)
        await self.flush()
        self._executor.shutdown(wait=True)
        self._engine.dispose()

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def read(self, fn: Callable[[Connection], T]) -> T:
        """``fn(conn)`` on the store's thread after a flush, so callers see every write so far."""
        await self.flush()
        return await self._call(self._with_connection, fn)

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """``fn(conn)`` in one transaction on the store's thread; sizes are recounted after it."""
        await self.flush()
        return await self._call(self._in_transaction, fn)

    def _with_connection(self, fn: Callable[[Connection], T]) -> T:
        with self._engine.connect() as conn:
            return fn(conn)

    def _in_transaction(self, fn: Callable[[Connection], T]) -> T:
        try:
            with self._engine.begin() as conn:
                return fn(conn)
        finally:
            # Whatever fn deleted (a group, a stream), cached ids and sizes may be stale now.
            self._stream_ids.clear()
            self._group_bytes.clear()

    async def expire(self) -> int:
        """Delete every event older than its group's retention; the number deleted."""
        now = self.now_ms()
        deleted: int = await self._call(self._in_transaction, lambda conn: logmaint.expire(conn, now))
        self.expired_events += deleted
        return deleted

    def stats(self) -> dict[str, Any]:
        """What the bounds did since start: per group accepted/dropped/split, and store-wide trims."""
        return {
            "groups": {
                group: {
                    "accepted_events": c.accepted_events,
                    "dropped_events": c.dropped_events,
                    "dropped_bytes": c.dropped_bytes,
                    "split_lines": c.split_lines,
                }
                for group, c in self.guard.counters.items()
            },
            "backlog_dropped_events": self.backlog_dropped,
            "trimmed_events": self.trimmed_events,
            "expired_events": self.expired_events,
        }

    # ---- the writer thread ---------------------------------------------------------------------

    def _stream_id(self, conn: Connection, group: str, stream: str, now: int) -> int:
        key = (group, stream)
        sid = self._stream_ids.get(key)
        if sid is None:
            sid = logmaint.ensure_stream(conn, group, stream, now, self.limits.default_retention_days)
            self._stream_ids[key] = sid
        return sid

    def _write(self, batch: dict[tuple[str, str], tuple[list[int], list[str]]]) -> None:
        now = self.now_ms()
        with self._engine.begin() as conn:
            updates = []  # per stream: (first, first, last, last, now, bytes, id)
            groups: dict[str, int] = {}
            params: list[int | str] = []
            for (group, stream), (stamps, messages) in batch.items():
                sid = self._stream_id(conn, group, stream, now)
                lo, hi = min(stamps), max(stamps)
                size = messages_size(messages) + EVENT_OVERHEAD * len(messages)
                updates.append((lo, lo, hi, hi, now, size, sid))
                groups[group] = groups.get(group, 0) + size
                params += chain.from_iterable(zip(repeat(sid), stamps, repeat(now), messages))
            # Multi-row INSERTs, not executemany: the sqlite3 module releases and re-takes the GIL
            # around every statement step, and each re-take waits on the event loop's thread, so a
            # per-row executemany stalled invokes for milliseconds (p99) and crawled under load.
            per_insert = 4 * _ROWS_PER_INSERT
            for start in range(0, len(params), per_insert):
                chunk = params[start : start + per_insert]
                conn.exec_driver_sql(_insert_sql(len(chunk) // 4), tuple(chunk))
            conn.exec_driver_sql(
                "UPDATE log_streams SET first_event_ms = min(coalesce(first_event_ms, ?), ?), "
                "last_event_ms = max(coalesce(last_event_ms, ?), ?), last_ingestion_ms = ?, "
                "stored_bytes = stored_bytes + ? WHERE id = ?",
                updates,
            )
            cap = self.limits.max_group_bytes
            if cap > 0:
                for group, added in groups.items():
                    self._enforce_cap(conn, group, added, cap)

    def _enforce_cap(self, conn: Connection, group: str, added: int, cap: int) -> None:
        total = self._group_bytes.get(group)
        total = logmaint.group_bytes(conn, group) if total is None else total + added
        if total > cap:
            # Down to 90%: a full group is trimmed once per tenth of its size, not on every flush.
            freed, count = logmaint.trim_oldest(conn, group, total - cap * 9 // 10)
            total -= freed
            self.trimmed_events += count
        self._group_bytes[group] = total

    # ---- compatibility reads (tests, tools) ----------------------------------------------------

    async def events(self, group: str, stream: str | None = None) -> list[StoredLogEvent]:
        """Events of a group (or one stream) in time order; flushes first so callers see their writes."""
        return await self.read(lambda conn: _read_all(conn, group, stream))


def _read_all(conn: Connection, group: str, stream: str | None) -> list[StoredLogEvent]:
    q = (
        select(log_streams.c.group_name, log_streams.c.name, log_events)
        .join(log_streams, log_streams.c.id == log_events.c.stream_id)
        .where(log_streams.c.group_name == group)
    )
    if stream is not None:
        q = q.where(log_streams.c.name == stream)
    rows = conn.execute(q.order_by(log_events.c.timestamp_ms, text("log_events.rowid"))).all()
    return [StoredLogEvent(r.group_name, r.name, r.timestamp_ms, r.ingestion_ms, r.message) for r in rows]
