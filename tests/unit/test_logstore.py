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
