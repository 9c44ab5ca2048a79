"""Schedules, schedule groups and scheduled EventBridge rules behind ``MetadataStore``.

A *timer* is one row per schedule (``kind`` ``schedule``, ``scope`` its group) or rule (``kind``
``rule``, ``scope`` its event bus): the API's document in ``data`` and the scheduler's own state in
columns: when it fires next (``next_fire``, with any flexible-window delay; ``next_nominal``, the
time the expression named), when it fired last, and the last firing's result.

``fire_timer`` is the one write a firing makes: the async events of its targets, the dead letters
of the targets it could not invoke, and the timer's advance (or its deletion after its last
firing) in ONE transaction, guarded on the ``next_fire`` the scheduler read.  So a crash either
loses the whole firing (it happens after the restart) or keeps it whole (the restart sees the
advanced time): never doubled, never half-done.  Like every store method these block and run on
the store's single worker thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import JSON, Column, Engine, Float, String, Table, Text, and_, delete, insert, select, update

from lamina.store.db import async_events, metadata
from lamina.store.deliveries import deliveries

timers = Table(
    "timers",
    metadata,
    Column("kind", String(16), primary_key=True),  # "schedule" | "rule"
    Column("region", String(32), primary_key=True),
    Column("scope", String(64), primary_key=True),  # schedule group, or event bus
    Column("name", String(64), primary_key=True),
    Column("data", JSON, nullable=False),
    Column("anchor", Float, nullable=False),  # where a rate() counts its periods from
    Column("next_fire", Float, nullable=True),  # None: nothing left to fire (or disabled)
    Column("next_nominal", Float, nullable=True),
    Column("last_fire", Float, nullable=True),
    Column("last_result", Text, nullable=False, server_default=""),
)

schedule_groups = Table(
    "schedule_groups",
    metadata,
    Column("region", String(32), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("data", JSON, nullable=False),
)

TimerKey = tuple[str, str, str, str]  # kind, region, scope, name


class FiringConflict(Exception):
    """The timer changed (updated, deleted) after the scheduler read it: nothing was committed."""


@dataclass(slots=True)
class TimerRow:
    kind: str
    region: str
    scope: str
    name: str
    data: dict[str, Any]
    anchor: float
    next_fire: float | None = None
    next_nominal: float | None = None
    last_fire: float | None = None
    last_result: str = ""

    @property
    def key(self) -> TimerKey:
        return (self.kind, self.region, self.scope, self.name)


@dataclass(frozen=True, slots=True)
class Firing:
    """Everything one firing commits."""

    key: TimerKey
    expected_next: float | None  # the guard: the timer's next_fire when it was read
    events: Sequence[dict[str, Any]]  # async_events rows, as InvocationService.event_row builds
    dead_letters: Sequence[dict[str, Any]] = ()  # deliveries rows
    fired_at: float = 0.0
    result: str = ""
    next_fire: float | None = None
    next_nominal: float | None = None
    delete: bool = False  # ActionAfterCompletion DELETE after the last firing
    extra: dict[str, Any] = field(default_factory=dict)


def _where(key: TimerKey) -> Any:
    kind, region, scope, name = key
    t = timers.c
    return and_(t.kind == kind, t.region == region, t.scope == scope, t.name == name)


class TimerRows:
    _engine: Engine

    def load_timers(self) -> list[TimerRow]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(timers)).all()
        return [
            TimerRow(
                r.kind,
                r.region,
                r.scope,
                r.name,
                dict(r.data),
                float(r.anchor),
                r.next_fire,
                r.next_nominal,
                r.last_fire,
                r.last_result,
            )
            for r in rows
        ]

    def put_timer(self, row: TimerRow) -> None:
        values = {
            "data": row.data,
            "anchor": row.anchor,
            "next_fire": row.next_fire,
            "next_nominal": row.next_nominal,
            "last_fire": row.last_fire,
            "last_result": row.last_result,
        }
        with self._engine.begin() as conn:
            done = conn.execute(update(timers).where(_where(row.key)).values(**values)).rowcount
            if not done:
                kind, region, scope, name = row.key
                conn.execute(
                    insert(timers).values(kind=kind, region=region, scope=scope, name=name, **values)
                )

    def put_timer_data(self, key: TimerKey, data: dict[str, Any]) -> None:
        """The API document only (a rule's targets): the scheduling columns stay the firings'."""
        with self._engine.begin() as conn:
            conn.execute(update(timers).where(_where(key)).values(data=data))

    def delete_timers(self, keys: Sequence[TimerKey]) -> None:
        with self._engine.begin() as conn:
            for key in keys:
                conn.execute(delete(timers).where(_where(key)))

    def fire_timer(self, firing: Firing) -> None:
        """Commit one firing whole, or raise FiringConflict and commit nothing."""
        with self._engine.begin() as conn:
            guard = and_(_where(firing.key), timers.c.next_fire == firing.expected_next)
            if firing.delete:
                done = conn.execute(delete(timers).where(guard)).rowcount
            else:
                done = conn.execute(
                    update(timers)
                    .where(guard)
                    .values(
                        next_fire=firing.next_fire,
                        next_nominal=firing.next_nominal,
                        last_fire=firing.fired_at,
                        last_result=firing.result,
                    )
                ).rowcount
            if not done:
                raise FiringConflict(str(firing.key))  # rolls the transaction back
            if firing.events:
                conn.execute(
                    insert(async_events),
                    [{**row, "state": "queued", "attempts": 0} for row in firing.events],
                )
            if firing.dead_letters:
                conn.execute(insert(deliveries), list(firing.dead_letters))

    # -- schedule groups -------------------------------------------------------------------------
    def load_schedule_groups(self) -> list[tuple[str, str, dict[str, Any]]]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(schedule_groups)).all()
        return [(r.region, r.name, dict(r.data)) for r in rows]

    def put_schedule_group(self, region: str, name: str, data: dict[str, Any]) -> None:
        with self._engine.begin() as conn:
            conn.execute(insert(schedule_groups).values(region=region, name=name, data=data))

    def delete_schedule_group(self, region: str, name: str) -> None:
        """The group and its schedules, together."""
        g, t = schedule_groups.c, timers.c
        with self._engine.begin() as conn:
            conn.execute(delete(schedule_groups).where(and_(g.region == region, g.name == name)))
            conn.execute(
                delete(timers).where(and_(t.kind == "schedule", t.region == region, t.scope == name))
            )
