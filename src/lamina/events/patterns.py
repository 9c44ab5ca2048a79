"""EventBridge's event pattern language, as Lambda's FilterCriteria use it.

A pattern is a JSON object.  Each key names a field of the event: an object value descends into
it, an array value lists conditions of which one must hold (OR); every key must match (AND); a
``$or`` key holds alternative sub-patterns.  A field that holds an array matches when one of its
elements does.  Conditions: a literal (string, number, boolean, null: equal), ``prefix``,
``suffix`` (each also with ``equals-ignore-case``), ``equals-ignore-case``, ``wildcard`` (``*``),
``anything-but`` (a literal, a list, or a prefix/suffix/wildcard/equals-ignore-case), ``numeric``
(up to two comparisons), ``exists`` and ``cidr``.  A missing field only matches
``{"exists": false}``.

``compile_pattern`` checks a pattern once (``PatternError`` with what is wrong) and returns a
matcher; patterns are compiled when a mapping is saved, never per record.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import math
import re
from collections.abc import Callable
from functools import partial
from typing import Any

Matcher = Callable[[Any], bool]
_MISSING = object()
_NUMERIC_OPS: dict[str, Callable[[float, float], bool]] = {
    "=": lambda a, b: a == b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


class PatternError(ValueError):
    """The pattern is not valid EventBridge pattern syntax."""


def compile_pattern(pattern: str | dict[str, Any]) -> Matcher:
    """A function telling whether an event (a parsed JSON object) matches ``pattern``."""
    if isinstance(pattern, str):
        try:
            pattern = json.loads(pattern)
        except (ValueError, RecursionError) as exc:
            raise PatternError(f"the pattern is not valid JSON: {exc}") from None
    if not isinstance(pattern, dict):
        raise PatternError("the pattern must be a JSON object")
    return _object(pattern)


def _object(pattern: dict[str, Any]) -> Matcher:
    parts: list[Matcher] = []
    for key, spec in pattern.items():
        if key == "$or":
            if not isinstance(spec, list) or len(spec) < 2 or not all(isinstance(p, dict) for p in spec):
                raise PatternError("$or takes a list of at least two patterns")
            alternatives = [_object(p) for p in spec]
            parts.append(partial(_any_of, alternatives))
        elif isinstance(spec, dict):
            inner = _object(spec)
            parts.append(partial(_nested, key=key, matcher=inner))
        elif isinstance(spec, list):
            if not spec:
                raise PatternError(f"the conditions of {key!r} are an empty list")
            conditions = [_condition(c) for c in spec]
            parts.append(partial(_field_matches, key=key, conditions=conditions))
        else:
            raise PatternError(f"{key!r} must hold an object or a list of conditions, not {json.dumps(spec)}")
    return lambda event: all(p(event) for p in parts)


def _any_of(alternatives: list[Matcher], event: Any) -> bool:
    return any(a(event) for a in alternatives)


def _nested(event: Any, *, key: str, matcher: Matcher) -> bool:
    return isinstance(event, dict) and isinstance(event.get(key), dict) and matcher(event[key])


def _field_matches(event: Any, *, key: str, conditions: list[tuple[bool, Matcher]]) -> bool:
    value = event.get(key, _MISSING) if isinstance(event, dict) else _MISSING
    for wants_missing, test in conditions:
        if value is _MISSING:
            if wants_missing and test(_MISSING):
                return True
            continue
        values = value if isinstance(value, list) else [value]
        if any(test(v) for v in values):
            return True
    return False


def _condition(spec: Any) -> tuple[bool, Matcher]:
    """(whether it can match a missing field, the test of one value)."""
    if spec is None or isinstance(spec, (str, bool)) or _is_number(spec):
        return False, _literal(spec)
    if not isinstance(spec, dict) or len(spec) != 1:
        raise PatternError(f"{json.dumps(spec)} is not a condition")
    op, arg = next(iter(spec.items()))
    if op == "exists":
        if not isinstance(arg, bool):
            raise PatternError("exists takes true or false")
        return (not arg), (lambda v, want=arg: (v is not _MISSING) == want)
    if op == "anything-but":
        return False, _anything_but(arg)
    if op == "numeric":
        return False, _numeric(arg)
    if op == "cidr":
        try:
            net = ipaddress.ip_network(arg, strict=False)
        except (TypeError, ValueError):
            raise PatternError(f"cidr takes a network, not {json.dumps(arg)}") from None
        return False, lambda v: isinstance(v, str) and _in_network(v, net)
    return False, _string_op(op, arg)


def _string_op(op: str, arg: Any) -> Matcher:
    if op in ("prefix", "suffix") and isinstance(arg, dict):
        text = arg.get("equals-ignore-case") if len(arg) == 1 else None
        if not isinstance(text, str):
            raise PatternError(f"{op} takes a string or {{'equals-ignore-case': string}}")
        low = text.lower()
        if op == "prefix":
            return lambda v: isinstance(v, str) and v.lower().startswith(low)
        return lambda v: isinstance(v, str) and v.lower().endswith(low)
    if not isinstance(arg, str):
        raise PatternError(f"{op} takes a string, not {json.dumps(arg)}")
    if op == "prefix":
        return lambda v: isinstance(v, str) and v.startswith(arg)
    if op == "suffix":
        return lambda v: isinstance(v, str) and v.endswith(arg)
    if op == "equals-ignore-case":
        low = arg.lower()
        return lambda v: isinstance(v, str) and v.lower() == low
    if op == "wildcard":
        if "**" in arg:
            raise PatternError("wildcard patterns cannot hold consecutive '*'")
        rx = re.compile(fnmatch.translate(arg).replace(".*", "(?s:.*)"), re.DOTALL)
        return lambda v: isinstance(v, str) and rx.fullmatch(v) is not None
    raise PatternError(f"unknown condition {op!r}")


def _literal(expected: Any) -> Matcher:
    if _is_number(expected):
        return lambda v: _is_number(v) and float(v) == float(expected)
    if expected is None:
        return lambda v: v is None
    if isinstance(expected, bool):
        return lambda v: v is expected
    return lambda v: isinstance(v, str) and v == expected


def _anything_but(arg: Any) -> Matcher:
    if isinstance(arg, dict):
        inner = _string_op(*next(iter(arg.items()))) if len(arg) == 1 else None
        if inner is None:
            raise PatternError("anything-but takes one condition")
        return lambda v: not inner(v)
    values = arg if isinstance(arg, list) else [arg]
    if not values or not all(v is None or isinstance(v, str) or _is_number(v) for v in values):
        raise PatternError("anything-but takes strings, numbers or a list of them")
    tests = [_literal(v) for v in values]
    return lambda v: not any(t(v) for t in tests)


def _numeric(arg: Any) -> Matcher:
    if not isinstance(arg, list) or len(arg) not in (2, 4):
        raise PatternError('numeric takes one or two comparisons, e.g. [">", 0, "<=", 5]')
    checks = []
    for op, bound in zip(arg[::2], arg[1::2], strict=True):
        if op not in _NUMERIC_OPS or not _is_number(bound):
            raise PatternError(f"numeric: {op!r} {json.dumps(bound)} is not a comparison")
        checks.append((_NUMERIC_OPS[op], float(bound)))
    return lambda v: _is_number(v) and all(f(float(v), b) for f, b in checks)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _in_network(text: str, net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        return ipaddress.ip_address(text) in net
    except ValueError:
        return False
