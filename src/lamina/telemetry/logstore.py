"""The log store behind CloudWatch Logs: groups, streams, events, written in batches.

Invocations hand their lines to ``put`` (memory only, no I/O on the invoke path); a background
task flushes the buffer to SQLite every ``flush_interval_s`` or when it grows large, in one
transaction on the store's own thread.  Logs live in their own database file so their write
volume never delays a metadata commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    select,
    text,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from lamina.execution.types import LogEvent
from lamina.store.db import sqlite_engine

_meta = MetaData()
log_groups = Table(
    "log_groups",
    _meta,
    Column("name", String(512), primary_key=True),
    Column("created_ms", Integer, nullable=False),
    Column("retention_days", Integer, nullable=True),
)
log_streams = Table(
    "log_streams",
    _meta,
    Column("id", Integer, primary_key=True),
    Column("group_name", String(512), nullable=False),
    Column("name", String(512), nullable=False),
    Column("created_ms", Integer, nullable=False),
    Column("first_event_ms", Integer, nullable=True),
    Column("last_event_ms", Integer, nullable=True),
    Column("last_ingestion_ms", Integer, nullable=True),
    UniqueConstraint("group_name", "name", name="uq_stream"),
)
# Events refer to their stream by id: rows and the one index stay small, which is most of what a
# flush costs (the log writer competes with the event loop for the CPU on every invoke).
log_events = Table(
    "log_events",
    _meta,
    Column("stream_id", Integer, nullable=False),
    Column("timestamp_ms", Integer, nullable=False),
    Column("ingestion_ms", Integer, nullable=False),
    Column("message", Text, nullable=False),
    Index("ix_events_stream_time", "stream_id", "timestamp_ms"),
)


_ROWS_PER_INSERT = 2000  # 4 parameters a row, under SQLite's 32766-variable limit


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


class LogStore:
    def __init__(self, path: Path, *, flush_interval_s: float = 0.1, max_pending: int = 5000) -> None:
        # Logs survive a crash of lamina (WAL); only an OS crash may lose the last flush: not worth
        # an fsync per batch on the invoke-heavy path.
        self._engine: Engine = sqlite_engine(path, _meta, synchronous="OFF")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lamina-logs")
        self._pending: list[tuple[str, str, LogEvent]] = []
        self._interval = flush_interval_s
        self._max_pending = max_pending
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stream_ids: dict[tuple[str, str], int] = {}  # only the writer thread touches it

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="lamina-log-flusher")

    def put(self, group: str, stream: str, events: Sequence[LogEvent]) -> None:
        self._pending.extend((group, stream, e) for e in events)
        if len(self._pending) >= self._max_pending:
            self._wake.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        await asyncio.get_running_loop().run_in_executor(self._executor, self._write, batch)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
        self._executor.shutdown(wait=True)
        self._engine.dispose()

    def _stream_id(self, conn: Connection, group: str, stream: str, now: int) -> int:
        key = (group, stream)
        sid = self._stream_ids.get(key)
        if sid is None:
            conn.execute(
                sqlite_insert(log_groups).on_conflict_do_nothing(),
                {"name": group, "created_ms": now, "retention_days": None},
            )
            conn.execute(
                sqlite_insert(log_streams).on_conflict_do_nothing(),
                {"group_name": group, "name": stream, "created_ms": now},
            )
            sid = conn.execute(
                select(log_streams.c.id).where(
                    (log_streams.c.group_name == group) & (log_streams.c.name == stream)
                )
            ).scalar_one()
            self._stream_ids[key] = sid
        return sid

    def _write(self, batch: list[tuple[str, str, LogEvent]]) -> None:
        now = int(time.time() * 1000)
        with self._engine.begin() as conn:
            ranges: dict[int, tuple[int, int]] = {}
            rows = []
            for group, stream, ev in batch:
                sid = self._stream_id(conn, group, stream, now)
                ts = ev.timestamp_ms
                lo, hi = ranges.get(sid, (ts, ts))
                ranges[sid] = (min(lo, ts), max(hi, ts))
                rows.append((sid, ts, now, ev.message))
            # Multi-row INSERTs, not executemany: the sqlite3 module releases and re-takes the GIL
            # around every statement step, and each re-take waits on the event loop's thread, so a
            # per-row executemany stalled invokes for milliseconds (p99) and crawled under load.
            for start in range(0, len(rows), _ROWS_PER_INSERT):
                chunk = rows[start : start + _ROWS_PER_INSERT]
                conn.exec_driver_sql(_insert_sql(len(chunk)), tuple(v for row in chunk for v in row))
            conn.exec_driver_sql(
                "UPDATE log_streams SET first_event_ms = min(coalesce(first_event_ms, ?), ?), "
                "last_event_ms = max(coalesce(last_event_ms, ?), ?), last_ingestion_ms = ? WHERE id = ?",
                [(lo, lo, hi, hi, now, sid) for sid, (lo, hi) in ranges.items()],
            )

    async def events(self, group: str, stream: str | None = None) -> list[StoredLogEvent]:
        """Events of a group (or one stream) in time order; flushes first so callers see their writes."""
        await self.flush()
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._read, group, stream)

    def _read(self, group: str, stream: str | None) -> list[StoredLogEvent]:
        q = (
            select(log_streams.c.group_name, log_streams.c.name, log_events)
            .join(log_streams, log_streams.c.id == log_events.c.stream_id)
            .where(log_streams.c.group_name == group)
        )
        if stream is not None:
            q = q.where(log_streams.c.name == stream)
        with self._engine.connect() as conn:
            rows = conn.execute(q.order_by(log_events.c.timestamp_ms, text("log_events.rowid"))).all()
        return [StoredLogEvent(r.group_name, r.name, r.timestamp_ms, r.ingestion_ms, r.message) for r in rows]
