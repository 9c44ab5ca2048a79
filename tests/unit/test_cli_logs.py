"""``lamina logs``: time parsing, group names, colours, and the follow loop against a fake client."""

from __future__ import annotations

from typing import Any

import click
import pytest

from lamina.cli.logs import follow_events, format_event, group_for, parse_since, style_line


def test_parse_since() -> None:
    now = 1_000_000.0
    assert parse_since("10m", now) == (now - 600) * 1000
    assert parse_since("30s", now) == (now - 30) * 1000
    assert parse_since("2h", now) == (now - 7200) * 1000
    assert parse_since("1d", now) == (now - 86400) * 1000
    assert parse_since("2024-01-01T00:00:00Z", now) == 1704067200000
    with pytest.raises(click.BadParameter):
        parse_since("soon", now)


def test_group_for() -> None:
    assert group_for("hello") == "/aws/lambda/hello"
    assert group_for("/custom/group") == "/custom/group"
    assert group_for("arn:aws:lambda:us-east-1:123456789012:function:hello") == "/aws/lambda/hello"


def test_colours_by_line_kind() -> None:
    assert style_line("START RequestId: x Version: $LATEST") == click.style(
        "START RequestId: x Version: $LATEST", fg="cyan", dim=True
    )
    assert "\x1b[36m" in style_line("REPORT RequestId: x\tDuration: 1.00 ms\t")
    assert "\x1b[31m" in style_line("[ERROR] ValueError: boom")
    assert "\x1b[31m" in style_line('{"errorType": "ValueError"}')
    assert "\x1b[33m" in style_line("LOGS_DROPPED DroppedRecords: 3\t")
    assert style_line("hello") == "hello"
    assert click.unstyle(format_event({"timestamp": 1704067200123, "message": "hi\n"})) == (
        "2024-01-01T00:00:00.123Z hi"
    )


class FakeLogs:
    """Answers FilterLogEvents from a growing list, two events a page."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []

    def filter_log_events(self, **params: Any) -> dict[str, Any]:
        self.calls.append(params)
        hits = [e for e in self.events if e["timestamp"] >= params["startTime"]]
        offset = int(params.get("nextToken", 0))
        page: dict[str, Any] = {"events": hits[offset : offset + 2]}
        if offset + 2 < len(hits):
            page["nextToken"] = str(offset + 2)
        return page


def test_follow_pages_dedupes_and_sees_late_lines() -> None:
    client = FakeLogs()
    client.events = [{"timestamp": 10_000 + i, "eventId": str(i), "message": f"m{i}"} for i in range(3)]
    ticks: list[float] = []

    def sleep(seconds: float) -> None:
        ticks.append(seconds)
        n = len(client.events)
        client.events.append({"timestamp": 10_010 + n, "eventId": str(n), "message": f"m{n}"})
        # a line stored late with an earlier timestamp, still inside the look-back window
        client.events.append({"timestamp": 10_001, "eventId": f"late{n}", "message": f"late{n}"})

    got = [
        e["message"]
        for e in follow_events(
            client, {"logGroupName": "/g", "startTime": 0}, sleep=sleep, interval=0.5, polls=3
        )
    ]
    assert got == ["m0", "m1", "m2", "late3", "m3", "late5", "m5"]
    assert ticks == [0.5, 0.5]
    assert client.calls[-1]["startTime"] == 10_013 - 5000  # newest seen before that poll, less the look-back
