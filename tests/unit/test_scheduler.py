"""The scheduler's firings against a real store (SQLite in tmp) with a fake clock: payloads,
catch-up after downtime, event age, dead letters, completion, guards and restarts."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from lamina.errors import AwsError
from lamina.events.scheduler import Scheduler
from lamina.events.timers import TimerKind, json_path
from lamina.store.db import async_events, sqlite_engine
from lamina.store.deliveries import deliveries
from lamina.store.metadata import MetadataStore
from lamina.store.timers import Firing, FiringConflict, TimerRow

FN = "arn:aws:lambda:us-east-1:123456789012:function:tick"
GONE = "arn:aws:lambda:us-east-1:123456789012:function:gone"
DLQ = "arn:aws:sqs:us-east-1:123456789012:dlq"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp()


class FakeInvocations:
    def event_row(self, arn: str, payload: bytes) -> dict[str, Any]:
        if arn == GONE:
            raise AwsError("ResourceNotFoundException", f"Function not found: {arn}")
        return {
            "request_id": "r",
            "region": "us-east-1",
            "function_name": arn.split(":")[6],
            "qualifier": "$LATEST",
            "invoked_arn": arn,
            "payload": payload,
            "client_context": None,
            "received_at": T0,
            "trace_id": None,
            "trace_generated": False,
        }


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def run(coro: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(coro())


@pytest.fixture
def store(tmp_path: Path) -> MetadataStore:
    s = MetadataStore(sqlite_engine(tmp_path / "lamina.sqlite3"))
    yield s  # type: ignore[misc]
    s.close()


def make(store: MetadataStore, clock: Clock, notes: list[str] | None = None) -> Scheduler:
    return Scheduler(
        store=store,
        invocations=FakeInvocations(),
        notify=lambda: (notes if notes is not None else []).append("notify"),
        account_id="123456789012",
        clock=clock,
        rng=random.Random(7),
    )


def schedule(name: str, expr: str, *, target: dict[str, Any] | None = None, **data: Any) -> TimerRow:
    doc = {
        "Arn": f"arn:aws:scheduler:us-east-1:123456789012:schedule/default/{name}",
        "Name": name,
        "ScheduleExpression": expr,
        "State": "ENABLED",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": target or {"Arn": FN, "RoleArn": "r"},
        **data,
    }
    return TimerRow(TimerKind.SCHEDULE.value, "us-east-1", "default", name, doc, anchor=T0)


def rule(name: str, expr: str, targets: list[dict[str, Any]]) -> TimerRow:
    doc = {
        "Arn": f"arn:aws:events:us-east-1:123456789012:rule/{name}",
        "Name": name,
        "ScheduleExpression": expr,
        "State": "ENABLED",
        "Targets": targets,
    }
    return TimerRow(TimerKind.RULE.value, "us-east-1", "default", name, doc, anchor=T0)


async def add(sched: Scheduler, store: MetadataStore, row: TimerRow, after: float) -> TimerRow:
    sched.planned(row, after)
    await store.call(store.put_timer, row)
    sched.put(row)
    return row


def queued(store: MetadataStore) -> list[Any]:
    with store._engine.connect() as conn:
        return list(conn.execute(select(async_events)).all())


def dead_letters(store: MetadataStore) -> list[Any]:
    with store._engine.connect() as conn:
        return list(conn.execute(select(deliveries)).all())


def test_rule_gets_the_scheduled_event(store: MetadataStore) -> None:
    async def go() -> None:
        clock = Clock(T0)
        sched = make(store, clock)
        row = await add(sched, store, rule("nightly", "cron(0/5 * * * ? *)", [{"Id": "1", "Arn": FN}]), T0)
        assert row.next_fire == T0 + 300
        clock.now = T0 + 300.2
        await sched._fire(row, clock.now)
        (event,) = queued(store)
        body = json.loads(event.payload)
        assert body["detail-type"] == "Scheduled Event"
        assert body["source"] == "aws.events"
        assert body["account"] == "123456789012"
        assert body["time"] == "2026-03-01T12:05:00Z"
        assert body["resources"] == ["arn:aws:events:us-east-1:123456789012:rule/nightly"]
        assert body["detail"] == {} and body["version"] == "0" and body["region"] == "us-east-1"
        assert row.next_fire == T0 + 600 and row.last_fire == clock.now

    run(go)


def test_rule_target_input_and_input_path(store: MetadataStore) -> None:
    async def go() -> None:
        clock = Clock(T0)
        sched = make(store, clock)
        targets = [
            {"Id": "a", "Arn": FN, "Input": '{"fixed": 1}'},
            {"Id": "b", "Arn": FN, "InputPath": "$.time"},
        ]
        row = await add(sched, store, rule("r", "rate(5 minutes)", targets), T0 - 1)
        clock.now = T0
        await sched._fire(row, clock.now)
        payloads = sorted(e.payload for e in queued(store))
        assert payloads == [b'"2026-03-01T12:00:00Z"', b'{"fixed": 1}']

    run(go)


def test_schedule_input_with_context_attributes(store: MetadataStore) -> None:
    async def go() -> None:
        clock = Clock(T0)
        sched = make(store, clock)
        target = {"Arn": FN, "RoleArn": "r", "Input": '{"at": "<aws.scheduler.scheduled-time>"}'}
        row = await add(sched, store, schedule("s", "rate(1 hour)", target=target), T0 - 1)
        assert row.next_fire == T0  # a rate() starts at its anchor (AWS: at once)
        await sched._fire(row, T0)
        assert json.loads(queued(store)[0].payload) == {"at": "2026-03-01T12:00:00Z"}

    run(go)


def test_schedule_without_input_gets_an_empty_object(store: MetadataStore) -> None:
    async def go() -> None:
        sched = make(store, Clock(T0))
        row = await add(sched, store, schedule("s", "rate(1 hour)"), T0 - 1)
        await sched._fire(row, T0)
        assert queued(store)[0].payload == b"{}"

    run(go)


def test_missed_firings_catch_up_once(store: MetadataStore) -> None:
    async def go() -> None:
        clock = Clock(T0)
        sched = make(store, clock)
        await add(sched, store, schedule("s", "rate(1 minute)"), T0 - 1)
        # the server was down for 10 minutes: a new scheduler loads the stored timer
        clock.now = T0 + 600.5
        again = make(store, clock)
        await again.load()
        await again.close()
        row = again.get(("schedule", "us-east-1", "default", "s"))
        assert row is not None
        await again._fire(row, clock.now)
        assert len(queued(store)) == 1
        assert row.next_fire == T0 + 660  # from now on, not the missed ones

    run(go)


def test_too_old_firing_goes_to_the_dead_letter_queue(store: MetadataStore) -> None:
    async def go() -> None:
        clock = Clock(T0)
        sched = make(store, clock)
        target = {
            "Arn": FN,
            "RoleArn": "r",
            "RetryPolicy": {"MaximumEventAgeInSeconds": 60},
            "DeadLetterConfig": {"Arn": DLQ},
        }
        row = await add(sched, store, schedule("s", "cron(0 * * * ? *)", target=target), T0 - 1)
        clock.now = row.next_fire + 120 if row.next_fire else 0
        await sched._fire(row, clock.now)
        assert queued(store) == []
        (dl,) = dead_letters(store)
        assert dl.target_arn == DLQ
        assert dl.data["attributes"]["ERROR_CODE"] == "EventAgeExceeded"
        assert dl.data["attributes"]["SCHEDULE_ARN"].endswith("schedule/default/s")
        assert row.last_result.startswith("EventAgeExceeded")

    run(go)


def test_missing_function_goes_to_the_dead_letter_queue(store: MetadataStore) -> None:
    async def go() -> None:
        notes: list[str] = []
        sched = make(store, Clock(T0), notes)
        target = {"Arn": GONE, "RoleArn": "r", "Input": '{"x": 1}', "DeadLetterConfig": {"Arn": DLQ}}
        row = await add(sched, store, schedule("s", "rate(1 hour)", target=target), T0 - 1)
        await sched._fire(row, T0)
        (dl,) = dead_letters(store)
        assert dl.body == '{"x": 1}'
        assert dl.data["kind"] == "dead_letter"
        assert dl.data["attributes"]["ERROR_CODE"] == "ResourceNotFoundException"
        assert dl.data["attributes"]["TARGET_ARN"] == GONE
        assert notes == ["notify"]

    run(go)


def test_missing_function_without_dlq_is_recorded_not_dropped_silently(store: MetadataStore) -> None:
    async def go() -> None:
        sched = make(store, Clock(T0))
        row = await add(
            sched, store, schedule("s", "rate(1 hour)", target={"Arn": GONE, "RoleArn": "r"}), T0 - 1
        )
        await sched._fire(row, T0)
        assert dead_letters(store) == [] and queued(store) == []
        assert row.last_result.startswith("ResourceNotFoundException")
        (stored,) = await store.call(store.load_timers)
        assert stored.last_result == row.last_result

    run(go)


def test_at_with_delete_after_completion(store: MetadataStore) -> None:
    async def go() -> None:
        clock = Clock(T0)
        sched = make(store, clock)
        row = schedule("once", "at(2026-03-01T12:00:30)", ActionAfterCompletion="DELETE")
        await add(sched, store, row, T0)
        assert row.next_fire == T0 + 30
        clock.now = T0 + 30
        await sched._fire(row, clock.now)
        assert len(queued(store)) == 1
        assert await store.call(store.load_timers) == []
        assert sched.get(row.key) is None

    run(go)


def test_at_without_delete_stays_idle(store: MetadataStore) -> None:
    async def go() -> None:
        sched = make(store, Clock(T0))
        row = await add(sched, store, schedule("once", "at(2026-03-01T12:00:30)"), T0)
        await sched._fire(row, T0 + 30)
        (stored,) = await store.call(store.load_timers)
        assert stored.next_fire is None and stored.last_fire == T0 + 30

    run(go)


def test_end_date_ends_a_recurring_schedule_and_deletes_it(store: MetadataStore) -> None:
    async def go() -> None:
        sched = make(store, Clock(T0))
        row = schedule("s", "rate(1 minute)", EndDate=T0 + 90, ActionAfterCompletion="DELETE")
        await add(sched, store, row, T0 - 1)
        await sched._fire(row, T0)
        assert row.next_fire == T0 + 60
        await sched._fire(row, T0 + 60)
        assert await store.call(store.load_timers) == []
        assert len(queued(store)) == 2

    run(go)


def test_disabled_schedule_has_no_next_fire(store: MetadataStore) -> None:
    async def go() -> None:
        sched = make(store, Clock(T0))
        row = await add(sched, store, schedule("s", "rate(1 minute)", State="DISABLED"), T0)
        assert row.next_fire is None

    run(go)


def test_flexible_window_delays_within_the_window(store: MetadataStore) -> None:
    async def go() -> None:
        sched = make(store, Clock(T0))
        window = {"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 10}
        row = await add(sched, store, schedule("s", "cron(0 13 * * ? *)", FlexibleTimeWindow=window), T0)
        assert row.next_nominal == T0 + 3600
        assert row.next_fire is not None and T0 + 3600 <= row.next_fire <= T0 + 3600 + 600

    run(go)


def test_a_committed_firing_is_not_repeated_after_a_restart(store: MetadataStore) -> None:
    async def go() -> None:
        clock = Clock(T0)
        sched = make(store, clock)
        row = await add(sched, store, schedule("s", "cron(1 12 * * ? *)"), T0)
        clock.now = T0 + 60
        await sched._fire(row, clock.now)
        # a crash right after the commit: the next server reads the advanced time
        again = make(store, clock)
        await again.load()
        await again.close()
        loaded = again.get(row.key)
        assert loaded is not None and loaded.next_fire == T0 + 86400 + 60
        assert len(queued(store)) == 1

    run(go)


def test_a_firing_racing_an_update_commits_nothing(store: MetadataStore) -> None:
    async def go() -> None:
        sched = make(store, Clock(T0))
        row = await add(sched, store, schedule("s", "rate(1 minute)"), T0 - 1)
        stale = Firing(key=row.key, expected_next=(row.next_fire or 0) - 1, events=[{"x": 1}])
        with pytest.raises(FiringConflict):
            await store.call(store.fire_timer, stale)
        assert queued(store) == []

    run(go)


def test_json_path() -> None:
    doc = {"a": {"b": [1]}, "t": "x"}
    assert json_path(doc, "$") == doc
    assert json_path(doc, "$.a.b") == [1]
    assert json_path(doc, "$.missing") is None


def test_a_row_replaced_during_the_commit_is_advanced_too(store: MetadataStore) -> None:
    """The API replaced the timer (same next firing, e.g. new targets) while the firing committed:
    the replacement must not fire the same time again."""

    async def go() -> None:
        sched = make(store, Clock(T0))
        row = await add(sched, store, schedule("s", "rate(1 minute)"), T0 - 1)
        replacement = TimerRow(row.kind, row.region, row.scope, row.name, dict(row.data), row.anchor)
        replacement.next_fire, replacement.next_nominal = row.next_fire, row.next_nominal
        real_call = store.call

        async def racing_call(fn: Any, *args: Any) -> Any:
            if getattr(fn, "__name__", "") == "fire_timer":
                sched.put(replacement)
            return await real_call(fn, *args)

        store.call = racing_call  # type: ignore[method-assign]
        try:
            await sched._fire(row, T0)
        finally:
            store.call = real_call  # type: ignore[method-assign]
        assert sched.get(row.key) is replacement
        assert replacement.next_fire == T0 + 60 and replacement.last_fire == T0

    run(go)


def test_a_flexible_delay_longer_than_the_period_skips_no_firing(store: MetadataStore) -> None:
    async def go() -> None:
        sched = make(store, Clock(T0))
        window = {"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 5}
        row = await add(sched, store, schedule("s", "rate(1 minute)", FlexibleTimeWindow=window), T0 - 1)
        assert row.next_nominal == T0
        fire_at = row.next_fire or 0.0
        await sched._fire(row, fire_at)
        assert row.next_nominal == T0 + 60  # the next period, not the next after the delayed firing

    run(go)
