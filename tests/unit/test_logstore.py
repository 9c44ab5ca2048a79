"""The batched log store on a real SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from lamina.execution.types import LogEvent
from lamina.telemetry.logstore import LogStore


def test_batched_writes_and_reads(tmp_path: Path) -> None:
    async def run() -> None:
        store = LogStore(tmp_path / "logs.sqlite3", flush_interval_s=3600)  # only explicit flushes
        store.start()
        store.put("/aws/lambda/a", "s1", [LogEvent(10, "one"), LogEvent(30, "three")])
        store.put("/aws/lambda/a", "s2", [LogEvent(20, "two")])
        store.put("/aws/lambda/b", "s1", [LogEvent(5, "other")])
        # nothing is written until a flush: the invoke path does no I/O
        with sqlite3.connect(tmp_path / "logs.sqlite3") as conn:
            assert conn.execute("SELECT count(*) FROM log_events").fetchone() == (0,)
        events = await store.events("/aws/lambda/a")
        assert [(e.stream, e.message) for e in events] == [("s1", "one"), ("s2", "two"), ("s1", "three")]
        assert [e.message for e in await store.events("/aws/lambda/a", "s1")] == ["one", "three"]
        store.put("/aws/lambda/a", "s1", [LogEvent(5, "early"), LogEvent(40, "late")])
        await store.close()
        with sqlite3.connect(tmp_path / "logs.sqlite3") as conn:
            row = conn.execute(
                "SELECT first_event_ms, last_event_ms FROM log_streams WHERE group_name = ? AND name = ?",
                ("/aws/lambda/a", "s1"),
            ).fetchone()
            assert row == (5, 40)
            groups = {r[0] for r in conn.execute("SELECT name FROM log_groups")}
            assert groups == {"/aws/lambda/a", "/aws/lambda/b"}

    asyncio.run(run())


def test_flusher_writes_in_background(tmp_path: Path) -> None:
    async def run() -> None:
        store = LogStore(tmp_path / "logs.sqlite3", flush_interval_s=0.01)
        store.start()
        store.put("/g", "s", [LogEvent(1, "x")])
        deadline = asyncio.get_running_loop().time() + 5
        while asyncio.get_running_loop().time() < deadline:
            with sqlite3.connect(tmp_path / "logs.sqlite3") as conn:
                if conn.execute("SELECT count(*) FROM log_events").fetchone() == (1,):
                    break
            await asyncio.sleep(0.01)  # polling the file the background task writes
        else:
            raise AssertionError("the background flusher never wrote")
        await store.close()

    asyncio.run(run())


def test_sizes_of_an_older_data_dir_are_counted_at_start(tmp_path: Path) -> None:
    async def run() -> None:
        store = LogStore(tmp_path / "logs.sqlite3", flush_interval_s=3600)
        store.start()
        store.put("/g", "s", [LogEvent(1, "abcd"), LogEvent(2, "é")])
        await store.close()
        with sqlite3.connect(tmp_path / "logs.sqlite3") as conn:  # as an older lamina left it
            conn.execute("UPDATE log_streams SET stored_bytes = 0")
        store = LogStore(tmp_path / "logs.sqlite3", flush_interval_s=3600)
        store.start()
        await store.close()
        with sqlite3.connect(tmp_path / "logs.sqlite3") as conn:
            assert conn.execute("SELECT stored_bytes FROM log_streams").fetchone() == (4 + 26 + 2 + 26,)

    asyncio.run(run())


def test_a_flush_counts_utf8_bytes_and_keeps_the_order_of_puts(tmp_path: Path) -> None:
    async def run() -> None:
        store = LogStore(tmp_path / "logs.sqlite3", flush_interval_s=3600)
        store.start()
        store.put("/g", "s", [LogEvent(7, "b"), LogEvent(7, "é")])  # same timestamp: arrival order
        store.put("/g", "t", [LogEvent(3, "other stream")])
        store.put("/g", "s", [LogEvent(7, "a"), LogEvent(2, "earliest")])
        await store.close()
        with sqlite3.connect(tmp_path / "logs.sqlite3") as conn:
            rows = conn.execute(
                "SELECT e.message FROM log_events e JOIN log_streams s ON s.id = e.stream_id "
                "WHERE s.name = 's' ORDER BY e.timestamp_ms, e.rowid"
            ).fetchall()
            assert [r[0] for r in rows] == ["earliest", "b", "é", "a"]
            sizes = dict(conn.execute("SELECT name, stored_bytes FROM log_streams").fetchall())
            assert sizes == {"s": 1 + 2 + 1 + 8 + 4 * 26, "t": 12 + 26}
            spans = conn.execute("SELECT first_event_ms, last_event_ms FROM log_streams WHERE name = 's'")
            assert spans.fetchone() == (2, 7)

    asyncio.run(run())


def test_buffered_lines_are_nothing_the_garbage_collector_tracks(tmp_path: Path) -> None:
    """~1,000 invokes' lines wait for each flush: kept as LogEvent objects they were traversed and
    promoted by every collection (4% of the event loop's time under load); as ints and strs in two
    lists per stream, only the lists are tracked."""
    import gc

    async def run() -> None:
        store = LogStore(tmp_path / "logs.sqlite3", flush_interval_s=3600)
        store.start()
        for i in range(100):
            store.put("/g", "s", [LogEvent(i, f"START {i}"), LogEvent(i, f"END {i}")])
        buffered = store._pending[("/g", "s")]
        assert [len(column) for column in buffered] == [200, 200]
        assert not any(gc.is_tracked(item) for column in buffered for item in column)
        await store.close()

    asyncio.run(run())
