"""Reads of the log store: groups, streams, a stream's events by position, and filtered scans.

Plain functions over a Connection; ``LogStore.read`` runs them on the store's thread.  Events are
ordered by ``(timestamp, rowid)``: that pair is the position pagination tokens carry, so a page
boundary is exact even between events of the same millisecond.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from lamina.telemetry.logguard import event_size

Position = tuple[int, int]  # (timestamp ms, rowid)
MAX_RESPONSE_BYTES = 1024 * 1024  # CloudWatch returns at most 1 MB of events per call
_CHUNK = 2000
_LAST: Position = (2**62, 2**62)  # after every event
FIRST: Position = (-1, 0)  # before every event


@dataclass(frozen=True, slots=True)
class GroupRow:
    name: str
    created_ms: int
    retention_days: int | None
    stored_bytes: int


@dataclass(frozen=True, slots=True)
class StreamRow:
    name: str
    created_ms: int
    first_event_ms: int | None
    last_event_ms: int | None
    last_ingestion_ms: int | None
    stored_bytes: int


@dataclass(frozen=True, slots=True)
class EventRow:
    rowid: int
    stream: str
    timestamp_ms: int
    ingestion_ms: int
    message: str

    @property
    def position(self) -> Position:
        return (self.timestamp_ms, self.rowid)


def describe_groups(
    conn: Connection, *, prefix: str | None, contains: str | None, after: str | None, limit: int
) -> tuple[list[GroupRow], str | None]:
    """Groups by name; the name to continue after when there are more."""
    sql = (
        "SELECT g.name, g.created_ms, g.retention_days, "
        "(SELECT coalesce(sum(stored_bytes), 0) FROM log_streams s WHERE s.group_name = g.name) "
        "FROM log_groups g WHERE 1=1"
    )
    args: list[Any] = []
    if prefix:
        sql += " AND substr(g.name, 1, ?) = ?"
        args += [len(prefix), prefix]
    if contains:  # logGroupNamePattern: case-insensitive substring, as CloudWatch
        sql += " AND instr(lower(g.name), lower(?)) > 0"
        args.append(contains)
    if after is not None:
        sql += " AND g.name > ?"
        args.append(after)
    rows = conn.exec_driver_sql(sql + " ORDER BY g.name LIMIT ?", (*args, limit + 1)).all()
    groups = [GroupRow(r[0], r[1], r[2], int(r[3])) for r in rows[:limit]]
    return groups, (groups[-1].name if len(rows) > limit else None)


def describe_streams(
    conn: Connection,
    group: str,
    *,
    prefix: str | None,
    by_time: bool,
    descending: bool,
    after: tuple[int, str] | None,
    limit: int,
) -> tuple[list[StreamRow], tuple[int, str] | None]:
    """Streams by name or by last event time; the (time, name) key to continue after."""
    key = "coalesce(last_event_ms, 0)" if by_time else "0"
    sql = (
        f"SELECT name, created_ms, first_event_ms, last_event_ms, last_ingestion_ms, stored_bytes, {key} "
        "FROM log_streams WHERE group_name = ?"
    )
    args: list[Any] = [group]
    if prefix:
        sql += " AND substr(name, 1, ?) = ?"
        args += [len(prefix), prefix]
    if after is not None:
        sql += f" AND ({key}, name) {'<' if descending else '>'} (?, ?)"
        args += list(after)
    order = "DESC" if descending else "ASC"
    sql += f" ORDER BY {key + f' {order}, ' if by_time else ''}name {order} LIMIT ?"
    rows = conn.exec_driver_sql(sql, (*args, limit + 1)).all()
    streams = [StreamRow(r[0], r[1], r[2], r[3], r[4], int(r[5])) for r in rows[:limit]]
    more = len(rows) > limit
    return streams, ((int(rows[limit - 1][6]), streams[-1].name) if more else None)


def stream_events(
    conn: Connection,
    sid: int,
    *,
    start: int,
    end: int,
    position: Position | None,
    forward: bool,
    limit: int,
) -> list[EventRow]:
    """Up to ``limit`` events of stream ``sid`` in [start, end), in time order: the first ones after
    ``position`` going forward, or the last ones before it going backward."""
    if position is None:
        position = FIRST if forward else _LAST
    cmp, order = (">", "ASC") if forward else ("<", "DESC")
    rows = conn.exec_driver_sql(
        "SELECT rowid, timestamp_ms, ingestion_ms, message FROM log_events WHERE stream_id = ? "
        f"AND timestamp_ms >= ? AND timestamp_ms < ? AND (timestamp_ms, rowid) {cmp} (?, ?) "
        f"ORDER BY timestamp_ms {order}, rowid {order} LIMIT ?",
        (sid, start, end, position[0], position[1], limit),
    ).all()
    events = _within_budget([EventRow(r[0], "", r[1], r[2], r[3]) for r in rows])
    return events if forward else events[::-1]


def filter_events(
    conn: Connection,
    group: str,
    *,
    streams: Sequence[str] | None,
    prefix: str | None,
    start: int,
    end: int,
    after: Position,
    limit: int,
    match: Callable[[str], bool],
    scan_budget: int,
) -> tuple[list[EventRow], Position | None]:
    """Matching events of the group in time order after ``after``; the position to resume from
    when the scan stopped early (limit, 1 MB, or ``scan_budget`` rows read), else None.

    A k-way merge of per-stream cursors, each walking the (stream, timestamp) index in order: no
    sort of the whole group per page, and streams whose time range misses the window (most of a
    Lambda function's, one per environment) are never read.
    """
    lo = max(start, after[0])
    where = "group_name = ? AND first_event_ms IS NOT NULL AND last_event_ms >= ? AND first_event_ms <= ?"
    args: list[Any] = [group, lo, end]
    if streams is not None:
        where += f" AND name IN ({','.join('?' * len(streams))})"
        args += list(streams)
    if prefix:
        where += " AND substr(name, 1, ?) = ?"
        args += [len(prefix), prefix]
    candidates = conn.exec_driver_sql(f"SELECT id, name FROM log_streams WHERE {where}", tuple(args)).all()
    cursors = [_stream_cursor(conn, int(sid), name, start, end, after) for sid, name in candidates]
    found: list[EventRow] = []
    size = 0
    for scanned, ev in enumerate(heapq.merge(*cursors, key=_position_of), 1):
        if match(ev.message):
            size += event_size(ev.message)
            if size > MAX_RESPONSE_BYTES and found:
                return found, found[-1].position
            found.append(ev)
            if len(found) >= limit:
                return found, ev.position
        if scanned >= scan_budget:
            return found, ev.position
    return found, None


def _position_of(ev: EventRow) -> Position:
    return ev.position


def _stream_cursor(
    conn: Connection, sid: int, name: str, start: int, end: int, after: Position
) -> Iterator[EventRow]:
    """The stream's events in [start, end] after ``after``, in order, read a chunk at a time."""
    position = after
    chunk = 64  # most streams contribute a few events to a page; a busy one grows its reads
    while True:
        rows = conn.exec_driver_sql(
            "SELECT rowid, timestamp_ms, ingestion_ms, message FROM log_events WHERE stream_id = ? "
            "AND timestamp_ms >= ? AND timestamp_ms <= ? AND (timestamp_ms, rowid) > (?, ?) "
            "ORDER BY timestamp_ms, rowid LIMIT ?",
            (sid, start, end, position[0], position[1], chunk),
        ).all()
        for r in rows:
            yield EventRow(r[0], name, r[1], r[2], r[3])
        if len(rows) < chunk:
            return
        position = (rows[-1][1], rows[-1][0])
        chunk = min(chunk * 4, _CHUNK)


def _within_budget(events: list[EventRow]) -> list[EventRow]:
    size = 0
    for i, ev in enumerate(events):
        size += event_size(ev.message)
        if size > MAX_RESPONSE_BYTES and i:
            return events[:i]
    return events
