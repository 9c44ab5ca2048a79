"""at(), rate() and AWS cron: parsing and next-fire computation with a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from lamina.events.expressions import (
    At,
    CronSchedule,
    ExpressionError,
    Rate,
    next_fire,
    parse_expression,
)

UTC_ZONE = ZoneInfo("UTC")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def fires(expr: str, after: datetime, n: int, zone: str = "UTC") -> list[datetime]:
    parsed = parse_expression(expr, ZoneInfo(zone))
    out: list[datetime] = []
    t = after
    for _ in range(n):
        nxt = next_fire(parsed, t, anchor=after)
        if nxt is None:
            break
        out.append(nxt)
        t = nxt
    return out


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    "text",
    [
        "rate(1 minutes)",
        "rate(2 minute)",
        "rate(0 minutes)",
        "rate(5 weeks)",
        "cron(0 12 * * * *)",  # neither day field is ?
        "cron(0 12 ? * ? *)",  # both are
        "cron(0 12 * * ?)",  # five fields
        "cron(60 12 * * ? *)",
        "cron(0 24 * * ? *)",
        "cron(0 12 32 * ? *)",
        "cron(0 12 ? * 8 *)",
        "cron(0 12 ? * 2#6 *)",
        "cron(0 12 * * ? 1969)",
        "cron(0/0 12 * * ? *)",
        "at(2026-02-30T10:00:00)",
        "at(2026-01-01 10:00:00)",
        "every minute",
    ],
)
def test_invalid_expressions(text: str) -> None:
    with pytest.raises(ExpressionError):
        parse_expression(text, UTC_ZONE)


def test_at_only_when_allowed() -> None:
    with pytest.raises(ExpressionError):
        parse_expression("at(2026-01-01T10:00:00)", UTC_ZONE, allow_at=False)


def test_at_in_zone_fires_once() -> None:
    expr = parse_expression("at(2026-07-01T09:30:00)", ZoneInfo("America/New_York"))
    assert isinstance(expr, At)
    assert expr.when == utc(2026, 7, 1, 13, 30)
    assert next_fire(expr, T0, anchor=T0) == utc(2026, 7, 1, 13, 30)
    assert next_fire(expr, utc(2026, 7, 1, 13, 30), anchor=T0) is None


def test_rate_from_anchor_first_fire_immediate() -> None:
    expr = parse_expression("rate(5 minutes)", UTC_ZONE)
    assert isinstance(expr, Rate)
    anchor = utc(2026, 1, 1, 0, 0, 30)
    assert next_fire(expr, T0, anchor=anchor) == anchor
    assert next_fire(expr, anchor, anchor=anchor) == anchor + timedelta(minutes=5)
    assert next_fire(expr, utc(2026, 1, 1, 1), anchor=anchor) == utc(2026, 1, 1, 1, 0, 30)


def test_rate_start_and_end_dates() -> None:
    expr = parse_expression("rate(1 hour)", UTC_ZONE)
    start, end = utc(2026, 1, 2), utc(2026, 1, 2, 2)
    assert next_fire(expr, T0, anchor=start, start=start, end=end) == start
    assert next_fire(expr, utc(2026, 1, 2, 1), anchor=start, start=start, end=end) == end
    assert next_fire(expr, end, anchor=start, start=start, end=end) is None


def test_rate_day_is_24_hours_across_dst() -> None:
    expr = parse_expression("rate(1 day)", ZoneInfo("America/New_York"))
    anchor = utc(2026, 3, 7, 17)  # noon EST the day before spring-forward
    assert next_fire(expr, anchor, anchor=anchor) == utc(2026, 3, 8, 17)  # 1 pm EDT


def test_cron_basic_and_steps() -> None:
    assert fires("cron(0/15 * * * ? *)", T0, 3) == [
        utc(2026, 1, 1, 0, 15),
        utc(2026, 1, 1, 0, 30),
        utc(2026, 1, 1, 0, 45),
    ]
    assert fires("cron(*/20 10 * * ? *)", T0, 2) == [utc(2026, 1, 1, 10, 0), utc(2026, 1, 1, 10, 20)]
    assert fires("cron(0 8 ? * MON-FRI *)", utc(2026, 1, 2, 9), 2) == [  # a Friday
        utc(2026, 1, 5, 8),
        utc(2026, 1, 6, 8),
    ]


def test_cron_lists_names_and_years() -> None:
    assert fires("cron(0 12 1 JAN,JUL ? 2026-2027)", T0, 5) == [
        utc(2026, 1, 1, 12),
        utc(2026, 7, 1, 12),
        utc(2027, 1, 1, 12),
        utc(2027, 7, 1, 12),
    ]
    assert fires("cron(0 0 1 1 ? 2030)", T0, 1) == [utc(2030, 1, 1)]
    assert fires("cron(0 0 1 1 ? 2020)", T0, 1) == []


def test_cron_last_day_and_offsets() -> None:
    last = [utc(2026, 1, 31, 5), utc(2026, 2, 28, 5), utc(2026, 3, 31, 5)]
    assert fires("cron(0 5 L * ? *)", T0, 3) == last
    assert fires("cron(0 5 L 2 ? 2028)", T0, 1) == [utc(2028, 2, 29, 5)]
    assert fires("cron(0 5 L-2 * ? *)", T0, 1) == [utc(2026, 1, 29, 5)]


def test_cron_nearest_weekday() -> None:
    # 2026-02-15 is a Sunday -> Monday 16th; 2026-08-15 a Saturday -> Friday 14th
    assert fires("cron(0 9 15W 2 ? 2026)", T0, 1) == [utc(2026, 2, 16, 9)]
    assert fires("cron(0 9 15W 8 ? 2026)", T0, 1) == [utc(2026, 8, 14, 9)]
    # 1W when the 1st is a Saturday (2026-08-01): Monday the 3rd, never the previous month
    assert fires("cron(0 9 1W 8 ? 2026)", T0, 1) == [utc(2026, 8, 3, 9)]
    # LW: the last weekday; 2026-05-31 is a Sunday -> Friday 29th
    assert fires("cron(0 9 LW 5 ? 2026)", T0, 1) == [utc(2026, 5, 29, 9)]


def test_cron_nth_and_last_weekday() -> None:
    # 2#1: first Monday; 2026-02-02 is the first Monday of February
    assert fires("cron(0 9 ? 2 2#1 2026)", T0, 1) == [utc(2026, 2, 2, 9)]
    assert fires("cron(0 9 ? 3 MON#2 2026)", T0, 1) == [utc(2026, 3, 9, 9)]
    # 6L: last Friday; January 2026 -> the 30th
    assert fires("cron(0 9 ? 1 6L 2026)", T0, 1) == [utc(2026, 1, 30, 9)]
    # L alone: Saturday
    assert fires("cron(0 9 ? 1 L 2026)", T0, 2) == [utc(2026, 1, 3, 9), utc(2026, 1, 10, 9)]


def test_cron_in_zone() -> None:
    zone = "Europe/Paris"
    assert fires("cron(0 9 * * ? *)", T0, 1, zone) == [utc(2026, 1, 1, 8)]
    assert fires("cron(0 9 * * ? *)", utc(2026, 7, 1), 1, zone) == [utc(2026, 7, 1, 7)]


def test_cron_spring_forward_skips_missing_time() -> None:
    # America/New_York, 2026-03-08: 02:00 -> 03:00; 02:30 does not exist that day
    got = fires("cron(30 2 * * ? *)", utc(2026, 3, 7, 12), 2, "America/New_York")
    assert got == [utc(2026, 3, 9, 6, 30), utc(2026, 3, 10, 6, 30)]


def test_cron_fall_back_runs_once() -> None:
    # America/New_York, 2026-11-01: 01:30 happens twice; AWS runs it once
    got = fires("cron(30 1 * * ? *)", utc(2026, 10, 31, 12), 2, "America/New_York")
    assert got == [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]


def test_cron_wrapping_range() -> None:
    got = fires("cron(0 22-1 * * ? *)", T0, 4)
    assert got == [utc(2026, 1, 1, 1), utc(2026, 1, 1, 22), utc(2026, 1, 1, 23), utc(2026, 1, 2, 0)]


def test_cron_value_type() -> None:
    assert isinstance(parse_expression("cron(0 0 * * ? *)", UTC_ZONE), CronSchedule)
