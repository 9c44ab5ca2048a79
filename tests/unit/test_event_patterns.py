"""EventBridge's pattern language (Lambda FilterCriteria), checked against AWS's documented examples."""

from __future__ import annotations

from typing import Any

import pytest

from lamina.events.patterns import PatternError, compile_pattern

EVENT: dict[str, Any] = {
    "body": {
        "RetailerID": "rid-1234",
        "State": "Delivered",
        "Type": "Premium",
        "Price": 45,
        "Tags": ["a", "b"],
        "Address": {"City": "Seattle", "Zip": "98101"},
        "Ip": "10.0.0.12",
        "Note": None,
        "Flag": True,
    },
    "attributes": {"ApproximateReceiveCount": "1"},
}


@pytest.mark.parametrize(
    ("pattern", "matches"),
    [
        ({"body": {"State": ["Delivered"]}}, True),
        ({"body": {"State": ["Pending", "Delivered"]}}, True),
        ({"body": {"State": ["Pending"]}}, False),
        ({"body": {"Price": [45]}}, True),
        ({"body": {"Price": [45.0]}}, True),
        ({"body": {"Price": ["45"]}}, False),
        ({"body": {"Note": [None]}}, True),
        ({"body": {"Flag": [True]}}, True),
        ({"body": {"Tags": ["b"]}}, True),
        ({"body": {"Address": {"City": ["Seattle"]}}}, True),
        ({"body": {"Address": {"City": ["Boston"]}}}, False),
        ({"body": {"RetailerID": [{"prefix": "rid-"}]}}, True),
        ({"body": {"RetailerID": [{"prefix": {"equals-ignore-case": "RID-"}}]}}, True),
        ({"body": {"RetailerID": [{"suffix": "234"}]}}, True),
        ({"body": {"State": [{"equals-ignore-case": "delivered"}]}}, True),
        ({"body": {"RetailerID": [{"wildcard": "rid-*4"}]}}, True),
        ({"body": {"RetailerID": [{"wildcard": "x*"}]}}, False),
        ({"body": {"State": [{"anything-but": "Pending"}]}}, True),
        ({"body": {"State": [{"anything-but": ["Pending", "Delivered"]}]}}, False),
        ({"body": {"State": [{"anything-but": {"prefix": "Del"}}]}}, False),
        ({"body": {"Price": [{"numeric": [">", 10, "<=", 45]}]}}, True),
        ({"body": {"Price": [{"numeric": ["<", 10]}]}}, False),
        ({"body": {"Missing": [{"exists": False}]}}, True),
        ({"body": {"Missing": [{"exists": True}]}}, False),
        ({"body": {"Price": [{"exists": True}]}}, True),
        ({"body": {"Price": [{"exists": False}]}}, False),
        ({"body": {"Missing": ["x"]}}, False),
        ({"body": {"Ip": [{"cidr": "10.0.0.0/24"}]}}, True),
        ({"body": {"Ip": [{"cidr": "10.1.0.0/24"}]}}, False),
        ({"body": {"$or": [{"State": ["Pending"]}, {"Type": ["Premium"]}]}}, True),
        ({"body": {"$or": [{"State": ["Pending"]}, {"Type": ["Basic"]}]}}, False),
        ({"body": {"State": ["Delivered"], "Type": ["Basic"]}}, False),
        ({"attributes": {"ApproximateReceiveCount": ["1"]}}, True),
    ],
)
def test_pattern(pattern: dict[str, Any], matches: bool) -> None:
    assert compile_pattern(pattern)(EVENT) is matches


def test_pattern_from_json_text_and_plain_string_body() -> None:
    assert compile_pattern('{"body": ["hello"]}')({"body": "hello"})
    assert not compile_pattern('{"body": {"a": ["1"]}}')({"body": "hello"})


@pytest.mark.parametrize(
    "bad",
    [
        "not json",
        "[1]",
        {"a": "b"},
        {"a": []},
        {"a": [{"prefix": 1}]},
        {"a": [{"numeric": [">", "x"]}]},
        {"a": [{"numeric": ["!", 1]}]},
        {"a": [{"exists": "yes"}]},
        {"a": [{"nope": "x"}]},
        {"a": [{"wildcard": "a**b"}]},
        {"$or": [{"a": ["1"]}]},
        {"a": [{"cidr": "nonsense"}]},
    ],
)
def test_invalid_patterns(bad: Any) -> None:
    with pytest.raises(PatternError):
        compile_pattern(bad)
