"""What a schedule or a scheduled rule sends when it fires, and when it fires next.  Pure.

Payloads (AWS):

* a Scheduler schedule's target gets ``Target.Input`` verbatim, with the context attributes
  ``<aws.scheduler.schedule-arn>``, ``<aws.scheduler.scheduled-time>``,
  ``<aws.scheduler.execution-id>`` and ``<aws.scheduler.attempt-number>`` replaced; without an
  Input, ``{}``.
* an EventBridge rule's target gets the "Scheduled Event" (``version`` 0, ``detail-type``
  ``Scheduled Event``, ``source`` ``aws.events``, ``resources`` [the rule's ARN], ``detail``
  {}), or the target's ``Input`` (JSON text, verbatim) or the part of the event its ``InputPath``
  names.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import json
import random
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from lamina.events.expressions import Expression, next_fire, parse_expression, zone_of
from lamina.store.timers import TimerRow

DEFAULT_MAX_EVENT_AGE_S = 86400  # both services' RetryPolicy default: 24 hours

P = ParamSpec("P")
T = TypeVar("T")


class HasLock(Protocol):
    _lock: asyncio.Lock


S = TypeVar("S", bound=HasLock)


Method = Callable[Concatenate[S, P], Coroutine[Any, Any, T]]


def serialized(method: Method[S, P, T]) -> Method[S, P, T]:
    """One change at a time per service: a check ("already exists") and the write that follows it
    are not interleaved with another request's (they are split by the store's await)."""

    @functools.wraps(method)
    async def run(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        async with self._lock:
            return await method(self, *args, **kwargs)

    return run


class TimerKind(enum.StrEnum):
    SCHEDULE = "schedule"
    RULE = "rule"


class TimerPhase(enum.Enum):
    """A timer's lifecycle in the scheduler: WAITING for ``next_fire``; FIRING while its firing
    commits; IDLE when disabled or nothing is left to fire (an ``at()`` that fired, a passed EndDate)."""

    WAITING = "waiting"
    FIRING = "firing"
    IDLE = "idle"


_MOVES = {
    TimerPhase.WAITING: {TimerPhase.FIRING, TimerPhase.IDLE, TimerPhase.WAITING},
    TimerPhase.FIRING: {TimerPhase.WAITING, TimerPhase.IDLE},
    TimerPhase.IDLE: {TimerPhase.WAITING, TimerPhase.IDLE},
}


def move(current: TimerPhase, to: TimerPhase) -> TimerPhase:
    if to not in _MOVES[current]:
        raise RuntimeError(f"timer cannot go from {current.value} to {to.value}")
    return to


@dataclass(frozen=True, slots=True)
class TargetSend:
    """One target of one firing: what to invoke with what, and where it goes if it cannot be."""

    arn: str
    payload: bytes
    dead_letter_arn: str | None
    max_event_age_s: int
    execution_id: str


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def expression_of(row: TimerRow) -> Expression:
    if row.kind == TimerKind.RULE:
        return parse_expression(row.data["ScheduleExpression"], zone_of("UTC"), allow_at=False)
    zone = zone_of(row.data.get("ScheduleExpressionTimezone"))
    return parse_expression(row.data["ScheduleExpression"], zone)


def enabled(row: TimerRow) -> bool:
    return str(row.data.get("State", "ENABLED")) == "ENABLED" and bool(row.data.get("ScheduleExpression"))


def plan_next(row: TimerRow, after: float, rng: random.Random) -> tuple[float | None, float | None]:
    """(when to fire, the time the expression names) of the next firing strictly after ``after``;
    a FLEXIBLE window adds a random delay of up to MaximumWindowInMinutes (AWS: "invokes the
    target within the window")."""
    if not enabled(row):
        return None, None
    nominal = next_fire(
        expression_of(row),
        _dt(after) or datetime.now(UTC),
        anchor=_dt(row.anchor) or datetime.now(UTC),
        start=_dt(row.data.get("StartDate")),
        end=_dt(row.data.get("EndDate")),
    )
    if nominal is None:
        return None, None
    at = nominal.timestamp()
    window = row.data.get("FlexibleTimeWindow") or {}
    if window.get("Mode") == "FLEXIBLE":
        at += rng.uniform(0, float(window.get("MaximumWindowInMinutes", 1)) * 60)
    return at, nominal.timestamp()


def scheduled_event(rule_arn: str, account_id: str, region: str, when: float) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account_id,
        "time": iso(when),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }


def json_path(document: Any, path: str) -> Any:
    """The simple JSONPath EventBridge's InputPath takes: ``$`` or ``$.a.b`` (missing: None)."""
    if path in ("", "$"):
        return document
    value = document
    for part in path.removeprefix("$.").split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def schedule_sends(row: TimerRow, nominal: float) -> list[TargetSend]:
    target = row.data["Target"]
    execution_id = str(uuid.uuid4())
    text = target.get("Input")
    if text is None:
        text = "{}"
    for name, value in (
        ("schedule-arn", row.data["Arn"]),
        ("scheduled-time", iso(nominal)),
        ("execution-id", execution_id),
        ("attempt-number", "1"),
    ):
        text = text.replace(f"<aws.scheduler.{name}>", value)
    policy = target.get("RetryPolicy") or {}
    return [
        TargetSend(
            arn=target["Arn"],
            payload=text.encode(),
            dead_letter_arn=(target.get("DeadLetterConfig") or {}).get("Arn"),
            max_event_age_s=int(policy.get("MaximumEventAgeInSeconds", DEFAULT_MAX_EVENT_AGE_S)),
            execution_id=execution_id,
        )
    ]


def rule_sends(row: TimerRow, nominal: float, account_id: str) -> list[TargetSend]:
    event = scheduled_event(row.data["Arn"], account_id, row.region, nominal)
    out: list[TargetSend] = []
    for target in row.data.get("Targets", []):
        if target.get("Input") is not None:
            payload = str(target["Input"]).encode()
        else:
            payload = json.dumps(json_path(event, target.get("InputPath") or "$")).encode()
        policy = target.get("RetryPolicy") or {}
        out.append(
            TargetSend(
                arn=target["Arn"],
                payload=payload,
                dead_letter_arn=(target.get("DeadLetterConfig") or {}).get("Arn"),
                max_event_age_s=int(policy.get("MaximumEventAgeInSeconds", DEFAULT_MAX_EVENT_AGE_S)),
                execution_id=event["id"],
            )
        )
    return out
