"""The concurrency limiter (pools, reservations, leases) and the async queue's throttle backoff."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from lamina.config import Settings
from lamina.errors import AwsError, render_rest_json
from lamina.invocation import queue as queue_mod
from lamina.invocation.concurrency import ACCOUNT_EXCEEDED, RESERVED_EXCEEDED, ConcurrencyLimiter
from lamina.invocation.queue import AsyncQueue, Throttled
from lamina.store.db import sqlite_engine
from lamina.store.metadata import MetadataStore, QueuedEvent

R = "us-east-1"


def reason(exc: pytest.ExceptionInfo[AwsError]) -> str:
    return str(exc.value.fields["Reason"])


def test_shared_pool_throttles_at_the_account_limit() -> None:
    lim = ConcurrencyLimiter(2)
    a = lim.acquire(R, "a")
    b = lim.acquire(R, "b")
    with pytest.raises(AwsError) as exc:
        lim.acquire(R, "c")
    assert exc.value.code == "TooManyRequestsException" and reason(exc) == ACCOUNT_EXCEEDED
    a.release()
    lim.acquire(R, "c").release()
    b.release()
    assert lim.running(R, "a") == lim.running(R, "b") == lim.running(R, "c") == 0


def test_throttle_renders_as_lambdas_429() -> None:
    lim = ConcurrencyLimiter(1)
    lim.set_reserved(R, "f", 0)
    with pytest.raises(AwsError) as exc:
        lim.acquire(R, "f")
    status, headers, body = render_rest_json(exc.value)
    assert status == 429
    assert (b"retry-after", b"1") in headers
    assert (b"x-amzn-errortype", b"TooManyRequestsException") in headers
    assert b'"Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"' in body
    assert b'"message": "Rate Exceeded."' in body and b'"Type": "User"' in body


def test_reserved_pool_is_its_own_and_limits_the_function() -> None:
    lim = ConcurrencyLimiter(5)
    lim.set_reserved(R, "res", 2)
    assert lim.unreserved(R) == 3
    held = [lim.acquire(R, "res"), lim.acquire(R, "res")]
    with pytest.raises(AwsError) as exc:
        lim.acquire(R, "res")
    assert reason(exc) == RESERVED_EXCEEDED
    # The shared pool is the other 3, whatever the reserved function does.
    shared = [lim.acquire(R, f"u{i}") for i in range(3)]
    with pytest.raises(AwsError) as exc:
        lim.acquire(R, "u9")
    assert reason(exc) == ACCOUNT_EXCEEDED
    for lease in held + shared:
        lease.release()
    lim.acquire(R, "res").release()


def test_reserved_zero_throttles_everything() -> None:
    lim = ConcurrencyLimiter(1000)
    lim.set_reserved(R, "off", 0)
    for _ in range(3):
        with pytest.raises(AwsError) as exc:
            lim.acquire(R, "off")
        assert reason(exc) == RESERVED_EXCEEDED
    assert lim.unreserved(R) == 1000


def test_reservation_change_while_running_keeps_counts_balanced() -> None:
    lim = ConcurrencyLimiter(3)
    first = lim.acquire(R, "f")  # in the shared pool
    other = lim.acquire(R, "g")
    lim.set_reserved(R, "f", 1)  # f's running execution moves to its own pool
    assert lim.unreserved(R) == 2
    with pytest.raises(AwsError) as exc:
        lim.acquire(R, "f")
    assert reason(exc) == RESERVED_EXCEEDED
    lim.acquire(R, "h").release()  # g + h fit in the 2 left
    first.release()
    lim.set_reserved(R, "f", None)
    assert lim.unreserved(R) == 3
    leases = [lim.acquire(R, "f"), lim.acquire(R, "f")]
    with pytest.raises(AwsError):
        lim.acquire(R, "f")  # g still holds the third
    other.release()
    for lease in leases:
        lease.release()
    assert [lim.acquire(R, "x") for _ in range(3)]


def test_forget_returns_the_reservation_and_in_flight_leases_still_balance() -> None:
    lim = ConcurrencyLimiter(4)
    lim.set_reserved(R, "gone", 2)
    lease = lim.acquire(R, "gone")
    lim.forget(R, "gone")
    assert lim.unreserved(R) == 4 and lim.reserved(R, "gone") is None
    others = [lim.acquire(R, f"o{i}") for i in range(3)]  # 3 + the in-flight one = 4
    with pytest.raises(AwsError):
        lim.acquire(R, "o9")
    lease.release()
    lim.acquire(R, "o9").release()
    for o in others:
        o.release()


def test_regions_are_separate_pools() -> None:
    lim = ConcurrencyLimiter(1)
    lim.acquire("us-east-1", "f")
    lim.acquire("eu-west-1", "f").release()
    with pytest.raises(AwsError):
        lim.acquire("us-east-1", "g")


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ConcurrencyLimiter(0)


def test_account_limit_from_the_environment(tmp_path: Path) -> None:
    assert Settings.from_env({"LAMINA_DATA_DIR": str(tmp_path)}).account_concurrency == 1000
    env = {"LAMINA_DATA_DIR": str(tmp_path), "LAMINA_ACCOUNT_CONCURRENCY": "2"}
    assert Settings.from_env(env).account_concurrency == 2
    with pytest.raises(ValueError, match="at least 1"):
        Settings.from_env({**env, "LAMINA_ACCOUNT_CONCURRENCY": "0"})


def test_hot_path_is_cheap() -> None:
    """acquire + release is a dict lookup and a few integer operations: well under a microsecond."""
    lim = ConcurrencyLimiter(1000)
    lim.acquire(R, "f").release()
    n = 100_000
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            lim.acquire(R, "f").release()
        best = min(best, (time.perf_counter() - start) / n)
    assert best < 5e-6, f"{best * 1e9:.0f} ns per acquire+release"


# -- the async queue under throttling -----------------------------------------------------------------


def _row(i: int, fn: str) -> dict[str, Any]:
    return {
        "request_id": f"req-{i}",
        "region": R,
        "function_name": fn,
        "qualifier": "$LATEST",
        "invoked_arn": f"arn:aws:lambda:{R}:123456789012:function:{fn}",
        "payload": b"{}",
        "client_context": None,
        "received_at": 0.0,
    }


async def _until(cond: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_throttled_events_wait_without_spinning_and_run_when_woken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queue_mod, "BACKOFF_MIN_S", 0.05)
    store = MetadataStore(sqlite_engine(tmp_path / "q.sqlite3"))
    attempts: dict[str, int] = {}
    ran: list[str] = []
    stopped = {"fn": True}

    async def run(ev: QueuedEvent) -> None:
        attempts[ev.request_id] = attempts.get(ev.request_id, 0) + 1
        if ev.function_name == "stopped" and stopped["fn"]:
            raise Throttled(RESERVED_EXCEEDED)
        ran.append(ev.request_id)

    async def scenario() -> None:
        q = AsyncQueue(store, run)
        await q.start()
        try:
            await q.submit(_row(1, "stopped"))
            await q.submit(_row(2, "stopped"))
            await q.submit(_row(3, "free"))
            await _until(lambda: "req-3" in ran)  # another function's event is not held up
            await asyncio.sleep(0.5)
            # Backing off 0.05, 0.1, 0.2, 0.4 s: a handful of attempts in 0.5 s, not a busy loop.
            assert 1 <= attempts["req-1"] <= 6, attempts
            assert "req-1" not in ran and await store.call(store.queued_count) == 2
            stopped["fn"] = False
            q.wake(R, "stopped")  # what a reservation change does: retry now, not after the backoff
            await _until(lambda: {"req-1", "req-2"} <= set(ran), timeout=1.0)
            await _until(lambda: store.queued_count() == 0)
        finally:
            await q.close()

    try:
        asyncio.run(scenario())
    finally:
        store.close()
    assert ran.count("req-1") == ran.count("req-2") == 1


def test_throttled_event_goes_back_to_the_queue_not_counted_as_an_attempt(tmp_path: Path) -> None:
    db = tmp_path / "q.sqlite3"
    store = MetadataStore(sqlite_engine(db))
    calls: list[str] = []

    async def run(ev: QueuedEvent) -> None:
        calls.append(ev.request_id)
        raise Throttled(ACCOUNT_EXCEEDED)

    def rows() -> list[tuple[str, int]]:
        with sqlite3.connect(db) as conn:
            return [(r[0], r[1]) for r in conn.execute("SELECT state, attempts FROM async_events")]

    async def scenario() -> None:
        q = AsyncQueue(store, run)
        await q.start()
        try:
            await q.submit(_row(1, "f"))
            await _until(lambda: calls and rows() == [("queued", 0)])
        finally:
            await q.close()

    try:
        asyncio.run(scenario())
        assert rows() == [("queued", 0)]  # committed as queued: a restart (or crash) keeps it
    finally:
        store.close()
