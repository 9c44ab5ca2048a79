"""Flood protection: splitting long lines, the per-group rate cap, drop counting."""

from __future__ import annotations

from lamina.execution.types import LogEvent
from lamina.telemetry.logguard import MAX_MESSAGE_BYTES, LogGuard, event_size, split_message


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_split_respects_utf8_boundaries() -> None:
    text = "é" * 10  # 2 bytes each
    pieces = split_message(text, limit=5)
    assert "".join(pieces) == text
    assert all(len(p.encode()) <= 5 for p in pieces)
    assert split_message("short") == ["short"]


def test_lines_over_256kb_are_split() -> None:
    guard = LogGuard(rate_bytes_s=0, burst_bytes=0, clock=FakeClock())
    big = "x" * (MAX_MESSAGE_BYTES * 2 + 10)
    out = guard.admit("/g", [LogEvent(5, big), LogEvent(6, "small")])
    assert [len(e.message) for e in out] == [MAX_MESSAGE_BYTES, MAX_MESSAGE_BYTES, 10, 5]
    assert all(e.timestamp_ms == 5 for e in out[:3])
    assert guard.counters["/g"].split_lines == 1
    assert guard.counters["/g"].dropped_events == 0


def test_rate_cap_drops_counts_and_reports() -> None:
    clock = FakeClock()
    line = "y" * 974  # 1000 bytes with CloudWatch's 26-byte overhead
    assert event_size(line) == 1000
    guard = LogGuard(rate_bytes_s=1000, burst_bytes=0, clock=clock)  # burst floors at 256 KB
    first = guard.admit("/g", [LogEvent(1, line)] * 300)
    assert [e.message for e in first[:262]] == [line] * 262  # 262,144 bytes of burst
    assert first[262].message.startswith("LOGS_DROPPED DroppedRecords: 38\tDroppedBytes: 38000\t")
    assert len(first) == 263
    c = guard.counters["/g"]
    assert (c.accepted_events, c.dropped_events, c.dropped_bytes) == (262, 38, 38_000)
    # other groups have their own bucket: one function's flood costs the others nothing
    assert len(guard.admit("/other", [LogEvent(1, line)] * 10)) == 10
    clock.now += 0.5  # 500 bytes of tokens: nothing fits, and no second notice within a second
    assert guard.admit("/g", [LogEvent(8, line)] * 2) == []
    clock.now += 1.5  # 2,000 bytes of tokens
    later = guard.admit("/g", [LogEvent(9, line)] * 5)
    assert [e.message for e in later[:2]] == [line, line]
    assert later[2].message.startswith("LOGS_DROPPED DroppedRecords: 5\tDroppedBytes: 5000\t")
    assert guard.counters["/g"].dropped_events == 43


def test_take_charges_the_common_case_and_otherwise_changes_nothing() -> None:
    clock = FakeClock()
    line = "y" * 974  # 1000 bytes with the overhead
    guard = LogGuard(rate_bytes_s=1000, burst_bytes=0, clock=clock)  # 262,144 bytes of burst
    assert guard.admit("/g", [LogEvent(1, line)] * 200) != []  # the group's counters exist now
    c = guard.counters["/g"]
    assert guard.take("/g", [line] * 60)  # 60,000 of the 62,144 bytes left: taken and counted
    assert (c.accepted_events, c.accepted_bytes) == (260, 260_000)
    assert not guard.take("/g", [line] * 3)  # 3,000 > 2,144: not taken, nothing charged
    assert (c.accepted_events, c.dropped_events) == (260, 0)
    assert guard.take("/g", ["é"] * 2)  # UTF-8 bytes are charged, not characters
    assert c.accepted_bytes == 260_000 + 2 * (2 + 26)
    assert not guard.take("/g", ["x" * (MAX_MESSAGE_BYTES + 1)])  # to be split: admit's work
    # a drop: admit stores what fits and the LOGS_DROPPED notice (the first one is due at once)
    out = guard.admit("/g", [LogEvent(2, line)] * 3)
    assert [e.message for e in out[:2]] == [line, line] and out[2].message.startswith("LOGS_DROPPED")
    assert (c.dropped_events, c.unreported_events, c.notices) == (1, 0, 1)
    assert guard.admit("/g", [LogEvent(3, line)]) == []  # dropped again; no notice within a second
    assert c.unreported_events == 1
    clock.now += 0.5  # tokens for a short line, but a notice is due: take leaves the line to admit
    assert not guard.take("/g", ["z"])
    assert c.accepted_events == 264
    clock.now += 1.0
    out = guard.admit("/g", [LogEvent(4, "z")])
    assert out[0].message == "z" and out[1].message.startswith("LOGS_DROPPED DroppedRecords: 1\t")
