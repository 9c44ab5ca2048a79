"""Writes to the log store other than events: groups and streams, retention, the size bound.

Plain functions over a Connection inside a transaction; ``LogStore`` runs them on its thread.
Sizes are CloudWatch's: UTF-8 bytes of the message plus 26 per event (``_SIZE``).
"""

from __future__ import annotations

from sqlalchemy import Connection, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from lamina.telemetry.logschema import log_groups, log_streams

DAY_MS = 86_400_000
_SIZE = "length(CAST(message AS BLOB)) + 26"
_GROUP_STREAMS = "SELECT id FROM log_streams WHERE group_name = ?"
_TRIM_CHUNK = 5000

# CloudWatch's allowed retention periods, in days.
RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip


def group_exists(conn: Connection, group: str) -> bool:
    found = conn.execute(select(log_groups.c.name).where(log_groups.c.name == group)).first()
    return found is not None


def create_group(conn: Connection, group: str, now: int, retention_days: int | None = None) -> bool:
    """False when it already exists."""
    done = conn.execute(
        sqlite_insert(log_groups).on_conflict_do_nothing(),
        {"name": group, "created_ms": now, "retention_days": retention_days},
    )
    return bool(done.rowcount)


def delete_group(conn: Connection, group: str) -> bool:
    """The group, its streams and events; False when there was no such group."""
    conn.exec_driver_sql(f"DELETE FROM log_events WHERE stream_id IN ({_GROUP_STREAMS})", (group,))
    conn.exec_driver_sql("DELETE FROM log_streams WHERE group_name = ?", (group,))
    done = conn.exec_driver_sql("DELETE FROM log_groups WHERE name = ?", (group,))
    return bool(done.rowcount)


def set_retention(conn: Connection, group: str, days: int | None) -> bool:
    done = conn.exec_driver_sql("UPDATE log_groups SET retention_days = ? WHERE name = ?", (days, group))
    return bool(done.rowcount)


def stream_id(conn: Connection, group: str, stream: str) -> int | None:
    found = conn.execute(
        select(log_streams.c.id).where((log_streams.c.group_name == group) & (log_streams.c.name == stream))
    ).first()
    return None if found is None else int(found[0])


def create_stream(conn: Connection, group: str, stream: str, now: int) -> bool:
    done = conn.execute(
        sqlite_insert(log_streams).on_conflict_do_nothing(),
        {"group_name": group, "name": stream, "created_ms": now},
    )
    return bool(done.rowcount)


def ensure_stream(conn: Connection, group: str, stream: str, now: int, retention_days: int | None) -> int:
    """The stream's id, creating it (and its group, with ``retention_days``) when missing."""
    create_group(conn, group, now, retention_days)
    create_stream(conn, group, stream, now)
    sid = stream_id(conn, group, stream)
    assert sid is not None  # just inserted, in this transaction
    return sid


def delete_stream(conn: Connection, group: str, stream: str) -> bool:
    sid = stream_id(conn, group, stream)
    if sid is None:
        return False
    conn.exec_driver_sql("DELETE FROM log_events WHERE stream_id = ?", (sid,))
    conn.exec_driver_sql("DELETE FROM log_streams WHERE id = ?", (sid,))
    return True


def group_bytes(conn: Connection, group: str) -> int:
    row = conn.exec_driver_sql(
        "SELECT coalesce(sum(stored_bytes), 0) FROM log_streams WHERE group_name = ?", (group,)
    ).first()
    return int(row[0]) if row else 0


def trim_oldest(conn: Connection, group: str, excess: int) -> tuple[int, int]:
    """Delete the group's earliest-written events until ``excess`` bytes are freed: (bytes, events).

    Oldest by arrival (rowid), which for a function's own output is oldest by time, and needs no
    sort across streams.
    """
    freed = count = 0
    last_rowid = 0
    per_stream: dict[int, int] = {}
    while freed < excess:
        rows = conn.exec_driver_sql(
            f"SELECT rowid, stream_id, {_SIZE} FROM log_events WHERE stream_id IN ({_GROUP_STREAMS}) "
            "AND rowid > ? ORDER BY rowid LIMIT ?",
            (group, last_rowid, _TRIM_CHUNK),
        ).all()
        if not rows:
            break
        for rowid, sid, size in rows:
            freed += size
            count += 1
            per_stream[sid] = per_stream.get(sid, 0) + size
            last_rowid = rowid
            if freed >= excess:
                break
    if count:
        conn.exec_driver_sql(
            f"DELETE FROM log_events WHERE stream_id IN ({_GROUP_STREAMS}) AND rowid <= ?",
            (group, last_rowid),
        )
        _shrink_streams(conn, per_stream)
    return freed, count


def expire(conn: Connection, now: int) -> int:
    """Delete events older than their group's retention, and streams left empty by it."""
    deleted = 0
    for group, days in conn.exec_driver_sql(
        "SELECT name, retention_days FROM log_groups WHERE retention_days IS NOT NULL"
    ).all():
        cutoff = now - int(days) * DAY_MS
        sizes = conn.exec_driver_sql(
            f"SELECT stream_id, sum({_SIZE}), count(*) FROM log_events "
            f"WHERE stream_id IN ({_GROUP_STREAMS}) AND timestamp_ms < ? GROUP BY stream_id",
            (group, cutoff),
        ).all()
        if sizes:
            conn.exec_driver_sql(
                f"DELETE FROM log_events WHERE stream_id IN ({_GROUP_STREAMS}) AND timestamp_ms < ?",
                (group, cutoff),
            )
            _shrink_streams(conn, {int(sid): int(size) for sid, size, _ in sizes})
            deleted += sum(int(n) for _, _, n in sizes)
        # As CloudWatch, a stream whose every event has expired goes too.
        conn.exec_driver_sql(
            "DELETE FROM log_streams WHERE group_name = ? AND first_event_ms IS NULL "
            "AND coalesce(last_event_ms, created_ms) < ?",
            (group, cutoff),
        )
    return deleted


def count_legacy_sizes(conn: Connection) -> None:
    """Streams written before sizes were kept (a data dir from an older lamina) get theirs counted
    once, so the size bound sees them; afterwards no stream with events has zero bytes."""
    conn.exec_driver_sql(
        f"UPDATE log_streams SET stored_bytes = (SELECT coalesce(sum({_SIZE}), 0) FROM log_events "
        "WHERE stream_id = log_streams.id) WHERE stored_bytes = 0 AND first_event_ms IS NOT NULL"
    )


def _shrink_streams(conn: Connection, freed: dict[int, int]) -> None:
    conn.exec_driver_sql(
        "UPDATE log_streams SET stored_bytes = max(0, stored_bytes - ?), "
        "first_event_ms = (SELECT min(timestamp_ms) FROM log_events WHERE stream_id = ?) WHERE id = ?",
        [(size, sid, sid) for sid, size in freed.items()],
    )
