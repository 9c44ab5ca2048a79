"""Pipe bytes -> lines with CloudWatch's size limit, linear in the input."""

from __future__ import annotations

import time

from lamina.telemetry.linesplit import LineSplitter


def test_short_lines_and_partials() -> None:
    s = LineSplitter(limit=10)
    assert s.feed(b"ab\ncd") == [b"ab"]
    assert s.feed(b"ef\n\ngh") == [b"cdef", b""]
    assert s.flush() == b"gh"
    assert s.flush() == b""


def test_long_lines_are_cut_at_the_limit_between_characters() -> None:
    s = LineSplitter(limit=5)
    assert s.feed(b"0123456789ab\n") == [b"01234", b"56789", b"ab"]
    text = "é" * 6  # 2 bytes each: a 5-byte cut would split one
    out = s.feed(text.encode()[:7]) + s.feed(text.encode()[7:] + b"\n")
    assert [p.decode() for p in out] == ["éé", "éé", "éé"]
    assert all(len(p) <= 5 for p in out)


def test_a_huge_unterminated_line_costs_linear_time() -> None:
    s = LineSplitter(limit=256 * 1024)
    chunk = b"x" * (256 * 1024)
    start = time.perf_counter()
    pieces = [p for _ in range(400) for p in s.feed(chunk)]  # 100 MB, no newline
    elapsed = time.perf_counter() - start
    assert sum(map(len, pieces)) + len(s.flush()) == 400 * len(chunk)
    assert all(len(p) == 256 * 1024 for p in pieces)
    assert elapsed < 2.0  # quadratic re-joining would copy ~20 GB here
