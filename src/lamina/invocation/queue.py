"""The durable async-invoke queue: group-committed acceptance, leased processing, redelivery after a crash.

Invariants: ``submit`` returns only after the event's row is committed (fsync'd), so a 202 never
precedes durability; concurrent submits share one transaction (group commit) so the accept rate
is bounded by fsyncs per batch, not per event.  An event is ``leased`` while it runs and deleted
only after it ran; a crash leaves it leased and ``start`` puts it back in the queue, so every
accepted event runs at least once, with its original request id.

Throttles: when the run callback raises ``Throttled`` the function has no concurrency free; the
event goes back to the queue (``queued`` again, committed) and that function's events are skipped
by the dispatcher until its backoff timer fires: 1 s, doubling up to 5 min while the throttles go
on (AWS's retry interval for throttled async events).  A run of that function that completes (a
slot freed) or ``wake`` (its reservation changed) retries the held events at once and resets the
backoff.  So a throttled event is never dropped, never spins, and other functions' events keep
flowing past it.

Retries: when the run callback raises ``RetryLater`` the event goes back to the queue (committed)
with a ``not_before`` time; the dispatcher does not lease it before then, and keeps one timer for
the earliest such time, which it reads from the store whenever it runs dry, so a restart picks
the schedule up where it was.  The callback decides the delays (``lamina.invocation.retries``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from lamina.store.metadata import MetadataStore, QueuedEvent

log = logging.getLogger("lamina.queue")

BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 300.0
GATHER_QUIET = 3  # empty event-loop passes in a row that end a group commit's gathering
GATHER_PASSES = 16  # the most passes it waits

FunctionKey = tuple[str, str]  # region, function name


class Throttled(Exception):
    """Raised by the run callback: the event cannot start now (no concurrency); keep it queued."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RetryLater(Exception):
    """Raised by the run callback: run the event again in ``delay`` seconds.  ``system_error``: the
    try was lost to the platform, not spent by the function (it does not count as an attempt).
    ``error_type`` / ``error_message``: what went wrong, kept on the row for ``lamina events``."""

    def __init__(
        self, delay: float, *, system_error: bool = False, error_type: str = "", error_message: str = ""
    ) -> None:
        super().__init__(f"retry in {delay}s")
        self.delay = delay
        self.system_error = system_error
        self.error_type = error_type
        self.error_message = error_message


@dataclass(slots=True)
class _Backoff:
    delay: float
    timer: asyncio.TimerHandle | None  # pending while the function's events are held back


class AsyncQueue:
    def __init__(
        self,
        store: MetadataStore,
        run: Callable[[QueuedEvent], Awaitable[None]],
        *,
        concurrency: int = 64,
    ) -> None:
        self._store = store
        self._run = run
        self._free = concurrency  # runs that may start now; only the event loop touches it
        self._slot_freed = asyncio.Event()
        self._pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._have_pending = asyncio.Event()
        self._have_events = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._running: set[asyncio.Task[None]] = set()
        self._backoff: dict[FunctionKey, _Backoff] = {}
        self._due_timer: asyncio.TimerHandle | None = None  # wakes the dispatcher for the next retry
        # Finished events, deleted in batches (one transaction for many, like the accepts): until
        # then they stay leased, and a crash only redelivers them (at least once, as AWS).
        self._finished: list[int] = []
        self._have_finished = asyncio.Event()

    async def start(self) -> None:
        requeued = await self._store.call(self._store.requeue_leased)
        if requeued:
            log.info("requeued events left in flight by the previous run", extra={"count": requeued})
        self._have_events.set()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._commit_loop(), name="lamina-queue-commit"),
            loop.create_task(self._dispatch_loop(), name="lamina-queue-dispatch"),
            loop.create_task(self._finish_loop(), name="lamina-queue-finish"),
        ]

    async def submit(self, row: dict[str, Any]) -> None:
        """Durably accept one event; returns once it is committed."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((row, fut))
        self._have_pending.set()
        await fut

    async def _commit_loop(self) -> None:
        while True:
            await self._have_pending.wait()
            await self._gather()
            self._have_pending.clear()
            batch, self._pending = self._pending, []
            if not batch:
                continue
            try:
                await self._store.call(self._store.enqueue_events, [row for row, _ in batch])
            except Exception as exc:  # the callers answer an error; nothing was accepted
                log.exception("could not commit async events")
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for _, fut in batch:
                if not fut.done():
                    fut.set_result(None)
            # Nothing new can start if every event just committed belongs to a function held
            # back after a throttle: its timer wakes the dispatcher.  Waking it anyway made it
            # rescan the whole queue after every commit (1k accepts/s instead of many more).
            held = {key for key, b in self._backoff.items() if b.timer is not None}
            if not held or any((row["region"], row["function_name"]) not in held for row, _ in batch):
                self._have_events.set()

    async def _gather(self) -> None:
        """Let requests already on their way reach ``_pending`` before the batch is taken.

        Each pass of the event loop reads more requests from their sockets; a commit taken at
        the first event would carry one row and leave the rest for the next fsync.  So yield
        until ``GATHER_QUIET`` passes in a row bring nothing new (at most ``GATHER_PASSES``):
        free when idle (a lone request waits a few passes, microseconds), and under load one
        fsync covers a whole wave of connections (batches of ~2 -> ~16 rows at 16 connections,
        accepts 4.8k -> 6.9k/s).  No timer: a delay would cost every lone request its length.
        """
        quiet = 0
        for _ in range(GATHER_PASSES):
            seen = len(self._pending)
            await asyncio.sleep(0)
            quiet = quiet + 1 if len(self._pending) == seen else 0
            if quiet >= GATHER_QUIET:
                return

    async def _dispatch_loop(self) -> None:
        while True:
            await self._have_events.wait()
            self._have_events.clear()
            while True:
                while self._free == 0:
                    await self._slot_freed.wait()
                    self._slot_freed.clear()
                # Lease no more than can start now, so leased events are always running events;
                # none of a function that is backing off after a throttle.
                held = [key for key, b in self._backoff.items() if b.timer is not None]
                events = await self._store.call(self._store.lease_events, self._free, held)
                if not events:
                    await self._arm_due_timer(held)
                    break
                for ev in events:
                    self._free -= 1
                    task = asyncio.get_running_loop().create_task(self._run_one(ev))
                    self._running.add(task)
                    task.add_done_callback(self._running.discard)

    async def _run_one(self, ev: QueuedEvent) -> None:
        key = (ev.region, ev.function_name)
        try:
            try:
                await self._run(ev)
            except Throttled as exc:
                # Held back before it is queued again, so the dispatcher cannot lease it at once.
                self._hold(key, exc.reason)
                await self._store.call(self._store.release_events, [ev.id], exc.reason)
                held = self._backoff.get(key)
                if held is None or held.timer is None:
                    self._have_events.set()  # the hold ended while we released it: look again
                return
            except RetryLater as exc:
                await self._store.call(
                    self._store.retry_event,
                    ev.id,
                    time.time() + exc.delay,
                    exc.system_error,
                    exc.error_type,
                    exc.error_message,
                )
                if key in self._backoff:
                    self._retry_held(key)
                self._have_events.set()  # the dispatcher re-arms its timer for the new due time
                return
            except Exception:  # a platform fault; the function's own errors never raise here
                log.exception("async event failed in the platform", extra={"request_id": ev.request_id})
            if key in self._backoff:
                self._retry_held(key)  # it ran and is done: a slot of that function just freed
            # Only a finished run removes the event; cancellation (shutdown) or a crash before this
            # line leaves it leased, and the next start redelivers it.
            self._finished.append(ev.id)
            self._have_finished.set()
        finally:
            self._free += 1
            self._slot_freed.set()

    async def _finish_loop(self) -> None:
        while True:
            await self._have_finished.wait()
            self._have_finished.clear()
            await self._flush_finished()

    async def _flush_finished(self) -> None:
        ids, self._finished = self._finished, []
        if not ids:
            return
        try:
            await self._store.call(self._store.finish_events, ids)
        except Exception:  # they stay leased: the next start redelivers them (never lost)
            log.exception("could not remove finished async events", extra={"count": len(ids)})

    async def _arm_due_timer(self, held: list[FunctionKey]) -> None:
        """One timer for the earliest event waiting for its retry (none when nothing waits)."""
        due = await self._store.call(self._store.next_due, held)
        if self._due_timer is not None:
            self._due_timer.cancel()
            self._due_timer = None
        if due is not None:
            delay = max(due - time.time(), 0.0)
            self._due_timer = asyncio.get_running_loop().call_later(delay, self._have_events.set)

    def _hold(self, key: FunctionKey, reason: str) -> None:
        """Skip the function's events for the next backoff interval (doubling while throttled)."""
        b = self._backoff.get(key)
        if b is not None and b.timer is not None:
            return  # another of its events was throttled first: same wait
        delay = BACKOFF_MIN_S if b is None else min(b.delay * 2, BACKOFF_MAX_S)
        timer = asyncio.get_running_loop().call_later(delay, self._release_hold, key)
        self._backoff[key] = _Backoff(delay=delay, timer=timer)
        log.info(
            "async events throttled; retrying later",
            extra={"region": key[0], "function": key[1], "reason": reason, "retry_in_s": delay},
        )

    def _release_hold(self, key: FunctionKey) -> None:
        b = self._backoff.get(key)
        if b is not None:
            b.timer = None  # the delay stays, so a new throttle doubles it
        self._have_events.set()

    def _retry_held(self, key: FunctionKey) -> None:
        b = self._backoff.pop(key, None)
        if b is not None and b.timer is not None:
            b.timer.cancel()
        self._have_events.set()

    def notify(self) -> None:
        """Events were committed by another writer (a schedule's firing): look at the queue now."""
        self._have_events.set()

    def wake(self, region: str, name: str) -> None:
        """The function's concurrency changed (a reservation was put or removed): retry it now."""
        self._retry_held((region, name))

    async def close(self) -> None:
        if self._due_timer is not None:
            self._due_timer.cancel()
        for b in self._backoff.values():
            if b.timer is not None:
                b.timer.cancel()
        for task in [*self._tasks, *self._running]:
            task.cancel()
        for task in [*self._tasks, *self._running]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._flush_finished()  # what finished before the stop is not redelivered
