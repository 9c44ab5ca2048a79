"""The one scheduler task: fires schedules and scheduled rules at their times, durably, once.

Each timer's next fire time is persisted (``lamina.store.timers``).  The task sleeps until the
earliest one (or until the API changes a timer) -- no polling tick.  A firing is one transaction:
the async invokes of its targets (the rows ``InvocationService.enqueue_arn`` would commit), the
dead letters of targets that cannot be invoked, and the timer's advance; then the async queue and
the destination outbox are told.  A crash before the commit loses nothing (the firing happens
after the restart); after it, the restart sees the advanced time: a firing is never doubled.

Missed firings (the server was down): like a schedule whose target could not be reached, a
missed firing is delivered late, once -- however many times the expression came round while the
server was down -- if it is younger than its target's RetryPolicy.MaximumEventAgeInSeconds
(default 24 h); an older one is not run, and goes to the target's dead-letter queue when it has
one (AWS: events older than the maximum age are dropped or sent to the DLQ).  The next firing is
computed from the current time.

Concurrency invariant: event loop only.  The API changes a timer by committing it and then
calling ``put``/``remove``; a firing that raced such a change fails its guard and commits nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Any, Protocol

from lamina.aio import stop_task
from lamina.errors import AwsError
from lamina.events.timers import (
    TargetSend,
    TimerKind,
    TimerPhase,
    iso,
    move,
    plan_next,
    rule_sends,
    schedule_sends,
)
from lamina.store.metadata import MetadataStore
from lamina.store.timers import Firing, FiringConflict, TimerKey, TimerRow

log = logging.getLogger("lamina.scheduler")

LATE_S = 60.0  # a firing this much past its planned time was missed (the server was down)


class EventRows(Protocol):
    def event_row(self, arn: str, payload: bytes) -> dict[str, Any]: ...


class Scheduler:
    def __init__(
        self,
        *,
        store: MetadataStore,
        invocations: EventRows,
        notify: Callable[[], None],
        account_id: str,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._invocations = invocations
        self._notify = notify  # the queue and the outbox: rows were committed behind their backs
        self._account = account_id
        self._clock = clock
        self._rng = rng or random.Random()
        self._timers: dict[TimerKey, TimerRow] = {}
        self._phases: dict[TimerKey, TimerPhase] = {}
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- what the API services use ---------------------------------------------------------------
    def timers(self, kind: TimerKind, region: str) -> list[TimerRow]:
        return [t for t in self._timers.values() if t.kind == kind and t.region == region]

    def get(self, key: TimerKey) -> TimerRow | None:
        return self._timers.get(key)

    def view(self, region: str) -> list[dict[str, Any]]:
        """What ``lamina schedules`` shows: every schedule and rule of ``region`` with its state,
        its next and last firings (epoch seconds) and the last firing's result."""
        out = []
        for t in sorted(self._timers.values(), key=lambda t: (t.kind, t.scope, t.name)):
            if t.region != region:
                continue
            targets = [t.data["Target"]] if t.kind == TimerKind.SCHEDULE else t.data.get("Targets", [])
            out.append(
                {
                    "Kind": t.kind,
                    "Group": t.scope,
                    "Name": t.name,
                    "Arn": t.data.get("Arn"),
                    "State": t.data.get("State", "ENABLED"),
                    "ScheduleExpression": t.data.get("ScheduleExpression"),
                    "Timezone": t.data.get("ScheduleExpressionTimezone", "UTC"),
                    "Targets": [x.get("Arn") for x in targets],
                    "NextFire": t.next_fire,
                    "LastFire": t.last_fire,
                    "LastResult": t.last_result,
                }
            )
        return out

    def planned(self, row: TimerRow, now: float | None = None) -> TimerRow:
        """``row`` with its next firing computed from now (a new or changed timer)."""
        row.next_fire, row.next_nominal = plan_next(row, self._clock() if now is None else now, self._rng)
        return row

    def put(self, row: TimerRow) -> None:
        """A committed timer (new or changed) is scheduled."""
        self._timers[row.key] = row
        phase = self._phases.get(row.key, TimerPhase.IDLE)
        if phase is not TimerPhase.FIRING:
            to = TimerPhase.WAITING if row.next_fire is not None else TimerPhase.IDLE
            self._phases[row.key] = move(phase, to)
        self._changed.set()

    def remove(self, key: TimerKey) -> None:
        self._timers.pop(key, None)
        self._phases.pop(key, None)
        self._changed.set()

    # -- lifecycle -------------------------------------------------------------------------------
    async def load(self) -> None:
        for row in await self._store.call(self._store.load_timers):
            self._timers[row.key] = row
            self._phases[row.key] = TimerPhase.WAITING if row.next_fire is not None else TimerPhase.IDLE
        self._task = asyncio.get_running_loop().create_task(self._run(), name="lamina-scheduler")

    async def close(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            self._changed.clear()
            now = self._clock()
            due = sorted(
                (t for t in self._timers.values() if t.next_fire is not None and t.next_fire <= now),
                key=lambda t: t.next_fire or 0.0,
            )
            for row in due:
                try:
                    await self._fire(row, now)
                except asyncio.CancelledError:
                    raise
                except Exception:  # the store failed: keep the task alive, try again shortly
                    log.exception("could not fire a schedule", extra={"timer": "/".join(row.key)})
                    await asyncio.sleep(1.0)
            upcoming = [t.next_fire for t in self._timers.values() if t.next_fire is not None]
            timeout = max(min(upcoming) - self._clock(), 0.0) if upcoming else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)

    # -- one firing ------------------------------------------------------------------------------
    def _sends(self, row: TimerRow, nominal: float) -> list[TargetSend]:
        if row.kind == TimerKind.RULE:
            return rule_sends(row, nominal, self._account)
        return schedule_sends(row, nominal)

    async def _fire(self, row: TimerRow, now: float) -> None:
        key = row.key
        if self._timers.get(key) is not row or row.next_fire is None:
            return  # changed since the list was made
        nominal = row.next_nominal if row.next_nominal is not None else row.next_fire
        events: list[dict[str, Any]] = []
        dead: list[dict[str, Any]] = []
        problems: list[str] = []
        for send in self._sends(row, nominal):
            if now - nominal > send.max_event_age_s:
                problem = f"EventAgeExceeded: missed firing of {iso(nominal)}"
            else:
                try:
                    events.append(self._invocations.event_row(send.arn, send.payload))
                    continue
                except AwsError as exc:  # the function is gone: AWS does not retry this
                    problem = f"{exc.code}: {exc.message}"
            problems.append(problem)
            dead.extend(self._dead_letter(row, send, problem, now))
        # On time (a flexible window's delay included): the next is the expression's next after
        # this one.  Late (the server was down): the next after now, the missed ones skipped.
        on_time = now - row.next_fire < LATE_S
        next_fire, next_nominal = plan_next(row, nominal if on_time else max(now, nominal), self._rng)
        delete = next_fire is None and row.data.get("ActionAfterCompletion") == "DELETE"
        result = "; ".join(problems) if problems else f"OK: {len(events)} invoke(s) queued"
        firing = Firing(
            key=key,
            expected_next=row.next_fire,
            events=events,
            dead_letters=dead,
            fired_at=now,
            result=result,
            next_fire=next_fire,
            next_nominal=next_nominal,
            delete=delete,
        )
        self._phases[key] = move(self._phases.get(key, TimerPhase.WAITING), TimerPhase.FIRING)
        try:
            await self._store.call(self._store.fire_timer, firing)
        except FiringConflict:
            return  # the API changed it meanwhile; its new state is in memory already
        finally:
            if self._phases.get(key) is TimerPhase.FIRING:
                self._phases[key] = TimerPhase.WAITING
        log_fn = log.warning if problems else log.info
        log_fn(
            "schedule fired",
            extra={"timer": "/".join(key), "scheduled": iso(nominal), "result": result, "deleted": delete},
        )
        # The guard held, so the stored timer is advanced: so must be the one in memory, even if
        # the API replaced it meanwhile with the same next firing (else it would fire twice).
        current = self._timers.get(key)
        if current is not None and current.next_fire == firing.expected_next:
            if delete:
                self.remove(key)
            else:
                current.next_fire, current.next_nominal = next_fire, next_nominal
                current.last_fire, current.last_result = now, result
                self._phases[key] = TimerPhase.WAITING if next_fire is not None else TimerPhase.IDLE
        self._notify()

    def _dead_letter(self, row: TimerRow, send: TargetSend, problem: str, now: float) -> list[dict[str, Any]]:
        """The DLQ message of a target that could not be invoked; never silently dropped: without
        a DLQ the problem is logged and kept as the timer's last result."""
        if not send.dead_letter_arn:
            log.warning(
                "schedule target could not be invoked and has no dead-letter queue",
                extra={"timer": "/".join(row.key), "target": send.arn, "error": problem},
            )
            return []
        code, _, message = problem.partition(": ")
        attributes = {
            "ERROR_CODE": code,
            "ERROR_MESSAGE": message[:1024],
            "EXHAUSTED_RETRY_CONDITION": "MaximumEventAgeInSeconds"
            if code == "EventAgeExceeded"
            else "NonRetryableError",
            "RETRY_ATTEMPTS": "0",
            "SCHEDULE_ARN" if row.kind == TimerKind.SCHEDULE else "RULE_ARN": str(row.data.get("Arn")),
            "TARGET_ARN": send.arn,
        }
        return [
            {
                "request_id": send.execution_id,
                "target_arn": send.dead_letter_arn,
                "body": send.payload.decode("utf-8", "replace"),
                "data": {"kind": "dead_letter", "attributes": attributes, "region": row.region},
                "attempts": 0,
                "not_before": now,
                "created_at": now,
            }
        ]
