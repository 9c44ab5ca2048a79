"""Deadlines of every running phase (INIT or invoke) on one event-loop timer.

A loop timer per invocation costs ~1 us to arm and cancel (uvloop: a handle, a heap insert and
removal, a close callback on the next iteration), and nearly every one is cancelled.  Here,
arming is a dict insert and cancelling a dict pop; the one loop timer stands at the earliest
deadline known when it was armed.  When it fires, what is due is called and the timer is re-armed
for the earliest deadline left -- with invocations far shorter than their timeouts, it fires about
once per timeout period, finding nothing due.

Concurrency invariants: event loop only.  ``_at`` is when the armed timer fires (``inf``: none
armed); every entry's deadline is >= ``_at`` when a timer is armed, so none can be missed.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable


class Deadlines:
    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._entries: dict[object, tuple[float, Callable[[], None]]] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._at = math.inf

    def add(self, key: object, timeout_s: float, callback: Callable[[], None]) -> None:
        """Call ``callback`` in ``timeout_s`` unless ``discard(key)`` comes first."""
        at = self._loop.time() + timeout_s
        self._entries[key] = (at, callback)
        if at < self._at:
            self._arm(at)

    def discard(self, key: object) -> None:
        self._entries.pop(key, None)  # the timer stays: firing with nothing due is cheap

    def _arm(self, at: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._at = at
        self._handle = self._loop.call_at(at, self._fire)

    def _fire(self) -> None:
        self._handle, self._at = None, math.inf
        now = self._loop.time()
        due = [key for key, (at, _) in self._entries.items() if at <= now]
        for key in due:
            _, callback = self._entries.pop(key)
            callback()
        if self._entries:
            self._arm(min(at for at, _ in self._entries.values()))

    def close(self) -> None:
        self._entries.clear()
        if self._handle is not None:
            self._handle.cancel()
            self._handle, self._at = None, math.inf
