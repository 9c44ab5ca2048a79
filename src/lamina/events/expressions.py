"""Schedule expressions: ``at(...)``, ``rate(...)``, ``cron(...)`` parsed into values with a next fire.

Pure: the caller passes the clock (``after``) and the anchor of a rate, so tests need no waiting.
AWS's rules:

* ``at(yyyy-mm-ddThh:mm:ss)``: once, at that wall-clock time in the schedule's zone (Scheduler
  only; EventBridge rules refuse it).
* ``rate(value unit)``: ``value`` a positive whole number, ``unit`` ``minute``/``hour``/``day``,
  singular exactly when the value is 1 (AWS: "If the value is equal to 1, then the unit must be
  singular").  A day is 24 hours of elapsed time whatever daylight saving does (AWS: "days
  represents a 24-hour duration").  Runs every period from its anchor on.
* ``cron(...)``: ``lamina.events.cron``, in the schedule's zone (rules: always UTC).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lamina.events.cron import Cron, CronError, parse_cron

_AT = re.compile(r"^at\((\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\)$")
_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\((.*)\)$")
_UNIT_S = {"minute": 60, "hour": 3600, "day": 86400}


class ExpressionError(ValueError):
    """Not a valid schedule expression (or time zone)."""


@dataclass(frozen=True, slots=True)
class At:
    when: datetime  # UTC

    def next_after(self, after: datetime, anchor: datetime) -> datetime | None:
        return self.when if self.when > after else None


@dataclass(frozen=True, slots=True)
class Rate:
    period: timedelta

    def next_after(self, after: datetime, anchor: datetime) -> datetime | None:
        """The first of ``anchor + k * period`` (k >= 0) strictly after ``after``."""
        if anchor > after:
            return anchor
        k = int((after - anchor) / self.period) + 1
        return anchor + k * self.period


@dataclass(frozen=True, slots=True)
class CronSchedule:
    cron: Cron
    zone: ZoneInfo

    def next_after(self, after: datetime, anchor: datetime) -> datetime | None:
        return self.cron.next_after(after, self.zone)


Expression = At | Rate | CronSchedule


def zone_of(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ExpressionError(f"Invalid time zone {name}") from exc


def parse_expression(text: str, zone: ZoneInfo, *, allow_at: bool = True) -> Expression:
    """Raises ExpressionError saying what is wrong."""
    text = text.strip()
    m = _AT.match(text)
    if m:
        if not allow_at:
            raise ExpressionError(text)
        try:
            y, mo, d, h, mi, sec = (int(g) for g in m.groups())
            naive = datetime(y, mo, d, h, mi, sec)
        except ValueError as exc:
            raise ExpressionError(text) from exc
        return At(naive.replace(tzinfo=zone).astimezone(UTC))
    m = _RATE.match(text)
    if m:
        value, unit = int(m.group(1)), m.group(2)
        if value < 1 or (value == 1) != (not unit.endswith("s")):
            raise ExpressionError(text)
        return Rate(timedelta(seconds=value * _UNIT_S[unit.rstrip("s")]))
    m = _CRON.match(text)
    if m:
        try:
            return CronSchedule(parse_cron(m.group(1)), zone)
        except CronError as exc:
            raise ExpressionError(text) from exc
    raise ExpressionError(text)


def next_fire(
    expr: Expression,
    after: datetime,
    *,
    anchor: datetime,
    start: datetime | None = None,
    end: datetime | None = None,
) -> datetime | None:
    """The next fire strictly after ``after`` within [start, end] (AWS: a recurring schedule runs
    from its StartDate to its EndDate; a one-time ``at()`` ignores both); None when none is left."""
    if isinstance(expr, At):
        return expr.next_after(after, anchor)
    if start is not None and start > after:
        after = start - timedelta(microseconds=1)
    fire = expr.next_after(after, anchor)
    if fire is None or (end is not None and fire > end):
        return None
    return fire
