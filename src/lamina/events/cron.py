"""AWS's six-field cron (``cron(min hour day-of-month month day-of-week year)``): parse, next fire.

Pure: no I/O, no clock.  The fields are AWS's (EventBridge Scheduler and rules share them):

| field | values | wildcards |
|---|---|---|
| minutes | 0-59 | ``, - * /`` |
| hours | 0-23 | ``, - * /`` |
| day-of-month | 1-31 | ``, - * ? / L W`` (``L``, ``LW``, ``15W``, ``L-3``) |
| month | 1-12 or JAN-DEC | ``, - * /`` |
| day-of-week | 1-7, SUN-SAT (1 = Sunday) | ``, - * ? L #`` (``L``: Saturday; ``6L``: last Friday; ``2#1``) |
| year | 1970-2199 | ``, - * /`` |

One of day-of-month and day-of-week must be ``?`` (AWS: "you must use a ? in the other").
Times are evaluated as wall-clock times in a zone; AWS's daylight-saving rules: a time skipped by
spring-forward does not fire, and a time repeated by fall-back fires once (its first instant).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

YEAR_MIN, YEAR_MAX = 1970, 2199
_MONTHS = {m.upper(): i for i, m in enumerate(calendar.month_abbr) if m}
_DAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}


class CronError(ValueError):
    """The expression is not AWS cron."""


@dataclass(frozen=True, slots=True)
class DaySpec:
    """What day-of-month or day-of-week asks beyond a plain set of numbers."""

    values: frozenset[int] = frozenset()
    last: bool = False  # dom L (or L-n with offset), dow nL / L
    last_offset: int = 0  # dom L-3: three days before the last
    weekday_near: int = 0  # dom 15W: the weekday nearest the 15th (LW: with last=True)
    nth: tuple[int, int] = (0, 0)  # dow 3#2: (weekday, n)
    any: bool = False  # ?


@dataclass(frozen=True, slots=True)
class Cron:
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    dom: DaySpec
    months: frozenset[int]
    dow: DaySpec
    years: frozenset[int]

    def matches_day(self, d: date) -> bool:
        if d.year not in self.years or d.month not in self.months:
            return False
        if self.dom.any:
            return _dow_matches(self.dow, d)
        return _dom_matches(self.dom, d)

    def next_after(self, after: datetime, zone: ZoneInfo) -> datetime | None:
        """The first fire time strictly after ``after`` (aware), in UTC; None if there is none."""
        local = after.astimezone(zone)
        day = local.date()
        after_utc = after.astimezone(UTC)
        while day.year <= YEAR_MAX:
            if day.year not in self.years:
                later = [y for y in self.years if y > day.year]
                if not later:
                    return None
                day = date(min(later), 1, 1)
                continue
            if self.matches_day(day):
                for hour in self.hours:
                    for minute in self.minutes:
                        naive = datetime(day.year, day.month, day.day, hour, minute)
                        fire = _instant(naive, zone)
                        if fire is not None and fire > after_utc:
                            return fire
            day += timedelta(days=1)
        return None


def _instant(naive: datetime, zone: ZoneInfo) -> datetime | None:
    """The UTC instant of a wall-clock time; None when daylight saving skips it (AWS: no run).
    A repeated wall-clock time maps to its first instant only (AWS: runs once)."""
    aware = naive.replace(tzinfo=zone, fold=0)
    utc = aware.astimezone(UTC)
    if utc.astimezone(zone).replace(tzinfo=None) != naive:
        return None
    return utc


def _last_day(d: date) -> int:
    return calendar.monthrange(d.year, d.month)[1]


def _nearest_weekday(year: int, month: int, day: int) -> int:
    """AWS/Quartz ``W``: the weekday nearest ``day`` without leaving the month."""
    last = calendar.monthrange(year, month)[1]
    day = min(day, last)
    wd = date(year, month, day).weekday()  # Monday 0 .. Sunday 6
    if wd == 5:  # Saturday: Friday before, or Monday after when the 1st
        return day - 1 if day > 1 else day + 2
    if wd == 6:  # Sunday: Monday after, or Friday before when the last day
        return day + 1 if day < last else day - 2
    return day


def _dom_matches(spec: DaySpec, d: date) -> bool:
    last = _last_day(d)
    if spec.last and spec.weekday_near:  # LW
        return d.day == _nearest_weekday(d.year, d.month, last)
    if spec.last:
        return d.day == last - spec.last_offset
    if spec.weekday_near:
        return d.day == _nearest_weekday(d.year, d.month, spec.weekday_near)
    return d.day in spec.values


def _aws_weekday(d: date) -> int:
    return (d.weekday() + 1) % 7 + 1  # Sunday 1 .. Saturday 7


def _dow_matches(spec: DaySpec, d: date) -> bool:
    wd = _aws_weekday(d)
    if spec.nth != (0, 0):
        weekday, n = spec.nth
        return wd == weekday and (d.day - 1) // 7 + 1 == n
    if spec.last:  # nL: the last such weekday of the month (L alone: Saturday)
        return wd in spec.values and d.day + 7 > _last_day(d)
    return wd in spec.values


def _number(text: str, names: dict[str, int], lo: int, hi: int) -> int:
    value = names.get(text.upper()) if names else None
    if value is None:
        if not text.isdigit():
            raise CronError(text)
        value = int(text)
    if not lo <= value <= hi:
        raise CronError(text)
    return value


def _values(field: str, lo: int, hi: int, names: dict[str, int] | None = None) -> frozenset[int]:
    """A plain field: ``*``, ``n``, ``a-b``, ``a/s``, ``*/s``, ``a-b/s`` and lists of them."""
    out: set[int] = set()
    for part in field.split(","):
        rng, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(part)
            step = int(step_text)
        if rng == "*":
            start, end = lo, hi
        elif "-" in rng:
            a, _, b = rng.partition("-")
            start, end = _number(a, names or {}, lo, hi), _number(b, names or {}, lo, hi)
            if start > end:  # AWS allows wrapping ranges (FRI-MON, 22-2)
                out.update(range(start, hi + 1, step))
                out.update(range(lo, end + 1, step))
                continue
        else:
            start = _number(rng, names or {}, lo, hi)
            end = hi if slash else start
        out.update(range(start, end + 1, step))
    if not out:
        raise CronError(field)
    return frozenset(out)


def _dom(field: str) -> DaySpec:
    f = field.upper()
    if f == "?":
        return DaySpec(any=True)
    if f == "L":
        return DaySpec(last=True)
    if f == "LW":
        return DaySpec(last=True, weekday_near=1)
    if f.startswith("L-") and f[2:].isdigit() and int(f[2:]) <= 30:
        return DaySpec(last=True, last_offset=int(f[2:]))
    if f.endswith("W") and f[:-1].isdigit() and 1 <= int(f[:-1]) <= 31:
        return DaySpec(weekday_near=int(f[:-1]))
    return DaySpec(values=_values(f, 1, 31))


def _dow(field: str) -> DaySpec:
    f = field.upper()
    if f == "?":
        return DaySpec(any=True)
    if f == "L":
        return DaySpec(values=frozenset({7}))  # AWS: L alone in day-of-week is Saturday
    if "#" in f:
        day, _, n = f.partition("#")
        if not n.isdigit() or not 1 <= int(n) <= 5:
            raise CronError(field)
        return DaySpec(nth=(_number(day, _DAYS, 1, 7), int(n)))
    if f.endswith("L"):
        return DaySpec(values=frozenset({_number(f[:-1], _DAYS, 1, 7)}), last=True)
    return DaySpec(values=_values(f, 1, 7, _DAYS))


def parse_cron(body: str) -> Cron:
    """The six fields inside ``cron(...)``; raises CronError."""
    fields = body.split()
    if len(fields) != 6:
        raise CronError(body)
    minutes, hours, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        raise CronError("exactly one of day-of-month and day-of-week must be ?")
    return Cron(
        minutes=tuple(sorted(_values(minutes, 0, 59))),
        hours=tuple(sorted(_values(hours, 0, 23))),
        dom=_dom(dom),
        months=_values(month, 1, 12, _MONTHS),
        dow=_dow(dow),
        years=_values(year, YEAR_MIN, YEAR_MAX),
    )
