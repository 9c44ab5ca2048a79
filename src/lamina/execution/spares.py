"""Spare environment processes: forked and placed in their cgroup before any function needs them.

Why: on cgroup v1, moving a task into a cgroup (the write to ``cgroup.procs``) waits for an RCU
grace period -- 10-20 ms here, nearly all of a cold start.  A spare has paid for that (and for
the fork, and for warming up) in the background; a cold start takes one and only sends it the
function to become.  Each interpreter keeps ``target`` spares; whoever takes one refills the
pool once its process is initialised -- off its path, and not competing with it for the CPU.
Spares run no user code, have no memory limit until claimed (the claimer writes MemorySize: one
cheap write), and are visible nowhere outside this pool.

Lifecycle of a spare (guarded): SPAWNING -> WAITING -> TAKEN; SPAWNING/WAITING -> DEAD.  A spare
that dies while waiting is dropped, not replaced: only a take leads to a replacement, so a
process that dies at once can never turn into a fork loop.

Concurrency invariants: everything runs on the event loop.  ``_queues[interpreter]`` holds that
interpreter's spares in spawn order (FIFO: the oldest is the likeliest to have joined its cgroup
already) and ``_by_id`` indexes exactly the spares in a queue; a spare leaves both at once,
exactly once (``take``, ``on_exit`` or ``close``), and is then either returned to the caller
(TAKEN) or handed to ``discard`` (DEAD).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from collections.abc import Callable

from lamina.execution.process import EnvProcess

log = logging.getLogger(__name__)


class SpareState(enum.Enum):
    SPAWNING = "spawning"
    WAITING = "waiting"
    TAKEN = "taken"
    DEAD = "dead"

    __hash__ = object.__hash__  # members are singletons; Enum's own __hash__ is Python code


SPARE_TRANSITIONS: dict[SpareState, frozenset[SpareState]] = {
    SpareState.SPAWNING: frozenset({SpareState.WAITING, SpareState.DEAD}),
    SpareState.WAITING: frozenset({SpareState.TAKEN, SpareState.DEAD}),
    SpareState.TAKEN: frozenset(),
    SpareState.DEAD: frozenset(),
}


class IllegalSpareTransitionError(RuntimeError):
    pass


class Spare:
    def __init__(self, proc: EnvProcess, interpreter: str) -> None:
        self.proc = proc
        self.interpreter = interpreter
        self.state = SpareState.SPAWNING
        self.ready: asyncio.Task[None] = asyncio.ensure_future(self._spawn())
        self.ready.add_done_callback(_log_failure)

    def transition(self, to: SpareState) -> None:
        if to not in SPARE_TRANSITIONS[self.state]:
            raise IllegalSpareTransitionError(f"spare {self.proc.id}: {self.state.name} -> {to.name}")
        self.state = to

    async def _spawn(self) -> None:
        await self.proc.spawn()
        if self.state is SpareState.SPAWNING:
            self.transition(SpareState.WAITING)


ProcessFactory = Callable[[str], EnvProcess]  # interpreter -> a registered, not yet spawned process
Discard = Callable[[EnvProcess], None]  # kill and clean up (the engine tracks it until done)


class SparePool:
    def __init__(self, *, target: int, make: ProcessFactory, discard: Discard) -> None:
        self.target = target
        self._make = make
        self._discard_proc = discard
        self._queues: dict[str, deque[Spare]] = {}
        self._by_id: dict[str, Spare] = {}
        self._closed = False

    def fill(self, interpreter: str) -> None:
        """Start spares for ``interpreter`` until ``target`` are waiting or on their way."""
        queue = self._queues.setdefault(interpreter, deque())
        while not self._closed and len(queue) < self.target:
            try:
                proc = self._make(interpreter)
            except OSError as exc:  # e.g. no cgroup could be made: cold starts will say why
                log.warning("cannot prepare a spare environment: %s", exc)
                return
            spare = Spare(proc, interpreter)
            queue.append(spare)
            self._by_id[proc.id] = spare

    async def take(self, interpreter: str) -> EnvProcess:
        """The oldest spare of ``interpreter`` -- or, if none is left, a process forked now.

        The caller calls ``fill`` once the process has its function: a replacement made at once
        (a fork in the zygote, mkdirs here) would compete for the CPU with that initialisation.
        Raises what spawning raises (``ZygoteError``, ``OSError``) when no process can be had.
        """
        queue = self._queues.setdefault(interpreter, deque())
        while queue:
            spare = queue.popleft()
            del self._by_id[spare.proc.id]
            try:
                await asyncio.shield(spare.ready)  # nearly always done already
            except asyncio.CancelledError:
                self._discard(spare)
                raise
            except Exception:  # its spawn failed (zygote restarting...): try the next
                self._discard(spare)
                continue
            if spare.state is SpareState.WAITING and not spare.proc.exited:
                spare.transition(SpareState.TAKEN)
                return spare.proc
            self._discard(spare)
        proc = self._make(interpreter)
        try:
            await proc.spawn()
        except BaseException:
            self._discard_proc(proc)
            raise
        return proc

    def on_exit(self, proc_id: str) -> bool:
        """A process exited: True if it was a queued spare (now dropped)."""
        spare = self._by_id.pop(proc_id, None)
        if spare is None:
            return False
        self._queues[spare.interpreter].remove(spare)
        self._discard(spare)
        return True

    def close(self) -> None:
        """Discard every spare; the engine awaits their disposal with everything else's."""
        self._closed = True
        for queue in self._queues.values():
            for spare in queue:
                spare.ready.cancel()
                self._discard(spare)
        self._queues.clear()
        self._by_id.clear()

    def _discard(self, spare: Spare) -> None:
        if spare.state is not SpareState.DEAD:
            spare.transition(SpareState.DEAD)
        self._discard_proc(spare.proc)


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("spare environment did not start: %s", task.exception())
