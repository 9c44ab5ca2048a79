"""CloudWatch filter patterns: parsing and matching."""

from __future__ import annotations

import pytest

from lamina.telemetry.logfilter import FilterPatternError, compile_pattern

LINES = [
    "START RequestId: 1 Version: $LATEST",
    "[ERROR] ValueError: boom",
    "[WARN] disk almost full",
    "Task timed out after 3.00 seconds",
    '{"level": "ERROR", "latency": 150, "user": {"id": 7, "tags": ["a", "b"]}, "ok": false, "x": null}',
    '{"level": "INFO", "latency": 5, "user": {"id": 8}, "ok": true}',
    "END RequestId: 1",
]


def matching(pattern: str) -> list[int]:
    match = compile_pattern(pattern)
    return [i for i, line in enumerate(LINES) if match(line)]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("", [0, 1, 2, 3, 4, 5, 6]),
        ('""', [0, 1, 2, 3, 4, 5, 6]),
        ("ERROR", [1, 4]),
        ("error", []),  # case-sensitive, as CloudWatch
        ("RequestId START", [0]),  # every term
        ('"timed out"', [3]),
        ('"Task timed out after"', [3]),
        ("?WARN ?timed", [2, 3]),
        ("RequestId -END", [0]),
        ("-ERROR -RequestId", [2, 3, 5]),
        ("%Val.*Error%", [1]),
        ("%^END%", [6]),
    ],
)
def test_text_terms(pattern: str, expected: list[int]) -> None:
    assert matching(pattern) == expected


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ('{ $.level = "ERROR" }', [4]),
        ("{ $.level = ERROR }", [4]),
        ('{ $.level != "ERROR" }', [5]),
        ('{ $.level = "ERR*" }', [4]),
        ("{ $.latency > 100 }", [4]),
        ("{ $.latency >= 5 }", [4, 5]),
        ("{ $.latency < 100 }", [5]),
        ("{ $.latency = 5 }", [5]),
        ("{ $.latency != 5 }", [4]),
        ("{ $.user.id = 8 }", [5]),
        ('{ $.user.tags[1] = "b" }', [4]),
        ('{ $.level = "ERROR" && $.latency > 100 }', [4]),
        ('{ $.level = "INFO" || $.latency > 100 }', [4, 5]),
        ('{ ($.level = "INFO" || $.level = "ERROR") && $.user.id = 7 }', [4]),
        ("{ $.x IS NULL }", [4]),
        ("{ $.ok IS TRUE }", [5]),
        ("{ $.ok IS FALSE }", [4]),
        ("{ $.x NOT EXISTS }", [5]),
        ('{$.level="INFO"}', [5]),
    ],
)
def test_json_patterns(pattern: str, expected: list[int]) -> None:
    assert matching(pattern) == expected


@pytest.mark.parametrize(
    "pattern",
    [
        "{ $.level = ",
        "{ $.level }",
        "{ level = 1 }",
        "{ $.a > abc }",
        "{ $.a = 1 && }",
        "{ ($.a = 1 }",
        "{ $.a IS MAYBE }",
        '"unterminated',
        "? alone",
        "%[%",
        "[ip, user",
        "[ip, 1x]",
        "[ip, status > abc]",
        '[ip = "open]',
    ],
)
def test_bad_patterns(pattern: str) -> None:
    with pytest.raises(FilterPatternError):
        compile_pattern(pattern)


def test_json_pattern_ignores_non_json_and_arrays() -> None:
    match = compile_pattern('{ $.level = "ERROR" }')
    assert not match("not json at all")
    assert not match('{"level": "ERROR"')  # truncated
    assert not match('[{"level": "ERROR"}]')


ACCESS = [
    '127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /index.html HTTP/1.0" 404 1534',
    '10.0.0.2 - - [10/Oct/2000:13:25:16 -0700] "GET /app.js HTTP/1.0" 200 99',
    '10.0.0.3 - bob [10/Oct/2000:13:25:17 -0700] "POST /api HTTP/1.0" 503 12000',
]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("[ip, identity, user, timestamp, request, status, bytes]", [0, 1, 2]),
        ("[ip, identity, user, timestamp, request, status]", []),  # field count must agree
        ("[ip, identity, user = frank, ...]", [0]),
        ('[..., request = "*html*", status, bytes]', [0]),
        ("[..., status = 4* || status = 5*, bytes]", [0, 2]),
        ("[..., status >= 400 && status < 500, bytes]", [0]),
        ("[..., bytes > 1000]", [0, 2]),
        ("[ip = 10.*, ...]", [1, 2]),
        ("[ip != 10.*, ...]", [0]),
        ("[ip, ..., bytes = 99]", [1]),
    ],
)
def test_space_delimited_patterns(pattern: str, expected: list[int]) -> None:
    match = compile_pattern(pattern)
    assert [i for i, line in enumerate(ACCESS) if match(line)] == expected
