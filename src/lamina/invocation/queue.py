"""The durable async-invoke queue: group-committed acceptance, leased processing, redelivery after a crash.

Invariants: ``submit`` returns only after the event's row is committed (fsync'd), so a 202 never
precedes durability; concurrent submits share one transaction (group commit) so the accept rate
is bounded by fsyncs per batch, not per event.  An event is ``leased`` while it runs and deleted
only after it ran; a crash leaves it leased and ``start`` puts it back in the queue, so every
accepted event runs at least once, with its original request id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from lamina.store.metadata import MetadataStore, QueuedEvent

log = logging.getLogger("lamina.queue")


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

    async def start(self) -> None:
        requeued = await self._store.call(self._store.requeue_leased)
        if requeued:
            log.info("requeued events left in flight by the previous run", extra={"count": requeued})
        self._have_events.set()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._commit_loop(), name="lamina-queue-commit"),
            loop.create_task(self._dispatch_loop(), name="lamina-queue-dispatch"),
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
            self._have_events.set()

    async def _dispatch_loop(self) -> None:
        while True:
            await self._have_events.wait()
            self._have_events.clear()
            while True:
                while self._free == 0:
                    await self._slot_freed.wait()
                    self._slot_freed.clear()
                # Lease no more than can start now, so leased events are always running events.
                events = await self._store.call(self._store.lease_events, self._free)
                if not events:
                    break
                for ev in events:
                    self._free -= 1
                    task = asyncio.get_running_loop().create_task(self._run_one(ev))
                    self._running.add(task)
                    task.add_done_callback(self._running.discard)

    async def _run_one(self, ev: QueuedEvent) -> None:
        try:
            try:
                await self._run(ev)
            except Exception:  # a platform fault; the function's own errors never raise here
                log.exception("async event failed in the platform", extra={"request_id": ev.request_id})
            # Only a finished run removes the event; cancellation (shutdown) or a crash before this
            # line leaves it leased, and the next start redelivers it.
            await self._store.call(self._store.finish_events, [ev.id])
        finally:
            self._free += 1
            self._slot_freed.set()

    async def close(self) -> None:
        for task in [*self._tasks, *self._running]:
            task.cancel()
        for task in [*self._tasks, *self._running]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
