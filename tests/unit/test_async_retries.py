"""Async retries: the schedule, its settings, the queue's durable retry rows, old databases."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from lamina.config import Settings, parse_delays
from lamina.invocation.queue import AsyncQueue, RetryLater
from lamina.invocation.retries import RetryPolicy, expired, function_error_delay, system_error_delay
from lamina.invocation.service import error_of
from lamina.store.db import sqlite_engine
from lamina.store.failed_events import FailedEvent
from lamina.store.metadata import MetadataStore, QueuedEvent

R = "us-east-1"


def test_function_error_schedule_follows_max_retry_attempts() -> None:
    delays = (60.0, 120.0)
    default = RetryPolicy()
    assert [function_error_delay(n, default, delays) for n in (1, 2, 3)] == [60.0, 120.0, None]
    assert function_error_delay(1, RetryPolicy(max_retry_attempts=0), delays) is None
    one = RetryPolicy(max_retry_attempts=1)
    assert [function_error_delay(n, one, delays) for n in (1, 2)] == [60.0, None]
    # Fewer delays than retries: the last one repeats.
    assert function_error_delay(2, default, (5.0,)) == 5.0


def test_system_errors_back_off_exponentially_up_to_five_minutes() -> None:
    assert [system_error_delay(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert system_error_delay(9) == 256.0
    assert system_error_delay(10) == system_error_delay(40) == 300.0


def test_events_older_than_maximum_event_age_are_expired() -> None:
    assert not expired(1000.0, RetryPolicy(), 1000.0 + 21600)
    assert expired(1000.0, RetryPolicy(), 1000.0 + 21600.5)
    assert expired(1000.0, RetryPolicy(max_event_age_s=60), 1061.0)
    assert not expired(1000.0, RetryPolicy(max_event_age_s=60), 1059.0)


def test_retry_delays_come_from_the_environment() -> None:
    assert Settings.from_env({}).async_retry_delays == (60.0, 120.0)
    assert Settings.from_env({"LAMINA_ASYNC_RETRY_DELAYS": "0.2, 0.4"}).async_retry_delays == (0.2, 0.4)
    for bad in ("", "a", "-1,2"):
        with pytest.raises(ValueError):
            parse_delays(bad)


def _row(i: int) -> dict[str, Any]:
    return {
        "request_id": f"req-{i}",
        "region": R,
        "function_name": "f",
        "qualifier": "$LATEST",
        "invoked_arn": f"arn:aws:lambda:{R}:123456789012:function:f",
        "payload": b"{}",
        "client_context": None,
        "received_at": time.time(),
    }


async def _until(cond: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_retried_event_keeps_its_request_id_and_counts_only_function_attempts(tmp_path: Path) -> None:
    store = MetadataStore(sqlite_engine(tmp_path / "q.sqlite3"))
    seen: list[tuple[str, int, int, float]] = []

    async def run(ev: QueuedEvent) -> None:
        seen.append((ev.request_id, ev.attempts, ev.system_errors, time.monotonic()))
        if len(seen) == 1:
            raise RetryLater(0.05, system_error=True)  # not an attempt
        if len(seen) == 2:
            raise RetryLater(0.1)  # a function error: attempt 1 spent

    async def scenario() -> None:
        q = AsyncQueue(store, run)
        await q.start()
        try:
            await q.submit(_row(1))
            await _until(lambda: len(seen) == 3 and store.queued_count() == 0)
        finally:
            await q.close()

    try:
        asyncio.run(scenario())
    finally:
        store.close()
    assert [(r, a, s) for r, a, s, _ in seen] == [
        (
            "req-1",
            1,
            0,
        ),
        ("req-1", 1, 1),
        ("req-1", 2, 0),
    ]
    assert seen[1][3] - seen[0][3] >= 0.04 and seen[2][3] - seen[1][3] >= 0.09  # waited, no early lease


def test_a_scheduled_retry_survives_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "q.sqlite3"
    calls: list[int] = []

    async def fail(ev: QueuedEvent) -> None:
        calls.append(ev.attempts)
        raise RetryLater(0.3)

    async def first_run(store: MetadataStore) -> None:
        q = AsyncQueue(store, fail)
        await q.start()
        try:
            await q.submit(_row(1))
            await _until(lambda: calls == [1])
            await store.call(store.queued_count)  # the retry row is committed before we stop
        finally:
            await q.close()

    async def second_run(store: MetadataStore) -> None:
        async def ok(ev: QueuedEvent) -> None:
            calls.append(ev.attempts)

        q = AsyncQueue(store, ok)
        await q.start()
        try:
            await _until(lambda: len(calls) == 2 and store.queued_count() == 0)
        finally:
            await q.close()

    for scenario in (first_run, second_run):
        store = MetadataStore(sqlite_engine(db))
        try:
            asyncio.run(scenario(store))
        finally:
            store.close()
    assert calls == [1, 2]  # the attempt count continued across the restart


def test_old_database_gets_the_new_queue_columns(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE async_events (id INTEGER PRIMARY KEY, request_id VARCHAR(64) NOT NULL, "
            "region VARCHAR(32) NOT NULL, function_name VARCHAR(64) NOT NULL, "
            "qualifier VARCHAR(128) NOT NULL, invoked_arn TEXT NOT NULL, payload BLOB NOT NULL, "
            "client_context TEXT, received_at FLOAT NOT NULL, state VARCHAR(16) NOT NULL, "
            "attempts INTEGER NOT NULL)"
        )
        conn.execute(
            "INSERT INTO async_events VALUES "
            "(1, 'req-1', ?, 'f', '$LATEST', 'arn', X'7B7D', NULL, 0, 'queued', 0)",
            (R,),
        )
    store = MetadataStore(sqlite_engine(db))
    try:
        [ev] = store.lease_events(10)
        assert (ev.request_id, ev.attempts, ev.system_errors) == ("req-1", 1, 0)
        assert (ev.last_error_type, ev.last_error_message) == ("", "")
    finally:
        store.close()


def test_failed_events_are_bounded_per_function_and_go_with_it(tmp_path: Path) -> None:
    store = MetadataStore(sqlite_engine(tmp_path / "q.sqlite3"))

    def failed(i: int) -> FailedEvent:
        return FailedEvent(f"req-{i}", "arn", "RetriesExhausted", 3, "ValueError", f"boom {i}", 0.0, 1.0)

    try:
        for i in range(5):
            store.record_failed(R, "f", failed(i), keep=3)
        store.record_failed(R, "g", failed(9), keep=3)
        view = store.function_events(R, "f", time.time())
        assert view["counts"]["failed"] == 3
        assert [e["RequestId"] for e in view["failed"]] == ["req-4", "req-3", "req-2"]  # newest kept
        store.delete_function(R, "f")
        assert store.function_events(R, "f", time.time())["counts"]["failed"] == 0
        assert store.function_events(R, "g", time.time())["counts"]["failed"] == 1
    finally:
        store.close()


def test_error_of_reads_the_functions_error_payload() -> None:
    body = b'{"errorType": "ValueError", "errorMessage": "boom", "stackTrace": []}'
    assert error_of(body, "Unhandled") == ("ValueError", "boom")
    assert error_of(b'"just text"', "Unhandled") == ("Unhandled", '"just text"')
    assert error_of(b"not json", None) == ("", "not json")
    assert len(error_of(b'{"errorMessage": "' + b"x" * 5000 + b'"}', "Unhandled")[1]) == 1024
