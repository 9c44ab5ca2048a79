"""CloudWatch's space-delimited filter patterns: ``[ip, user, ..., status = 4*, bytes > 1000]``.

A message is split into fields on whitespace; text in double quotes or square brackets is one
field (matched without its quotes or brackets).  The pattern names one field per comma-separated
item, in order; ``...`` stands for any number of fields.  An item may test its field with ``=``,
``!=`` (strings, ``*`` wildcards, or numbers), ``<``, ``<=``, ``>``, ``>=`` (numbers), joined by
``&&`` and ``||`` (``&&`` binds tighter).  Without ``...`` the message must have exactly as many
fields as the pattern.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence

FieldTest = Callable[[str], bool]
Matcher = Callable[[str], bool]
ELLIPSIS = None  # a pattern item that matches any number of fields

_FIELD = re.compile(r'"([^"]*)"|\[([^\]]*)\]|(\S+)')
_CONDITION = re.compile(r'\s*(!=|<=|>=|=|<|>)\s*("(?:[^"\\]|\\.)*"|[^\s&|]+)\s*')
_NAME = re.compile(r"\s*([A-Za-z_][\w.-]*)\s*")


class FieldPatternError(ValueError):
    pass


def compile_fields(body: str) -> Matcher:
    """``body`` is the text between ``[`` and ``]``."""
    items = [_item(part) for part in _split_items(body)]
    if not items:
        raise FieldPatternError("a space-delimited pattern names at least one field")

    def match(message: str) -> bool:
        fields = [m.group(1) or m.group(2) or m.group(3) or "" for m in _FIELD.finditer(message)]
        return _match(items, 0, fields, 0)

    return match


def _split_items(body: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in body:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if quoted:
        raise FieldPatternError("unterminated quoted value")
    parts.append("".join(current))
    if len(parts) == 1 and not parts[0].strip():
        return []
    return parts


def _item(text: str) -> FieldTest | None:
    if text.strip() == "...":
        return ELLIPSIS
    m = _NAME.match(text)
    if m is None:
        raise FieldPatternError(f"expected a field name, got '{text.strip()}'")
    rest = text[m.end() :]
    if not rest:
        return _anything
    alternatives: list[list[FieldTest]] = [[]]
    pos = 0
    while True:
        c = _CONDITION.match(rest, pos)
        if c is None:
            raise FieldPatternError(f"invalid condition '{rest.strip()}' for field {m.group(1)}")
        alternatives[-1].append(_test(c.group(1), c.group(2)))
        pos = c.end()
        if pos >= len(rest):
            break
        joiner = rest[pos : pos + 2]
        if joiner not in ("&&", "||"):
            raise FieldPatternError(f"expected && or || in '{rest.strip()}'")
        if joiner == "||":
            alternatives.append([])
        pos += 2
        # the field name may be repeated after the operator: `status = 4* || status = 5*`
        again = _NAME.match(rest, pos)
        if again is not None and again.group(1) == m.group(1):
            pos = again.end()
    return lambda value: any(all(t(value) for t in tests) for tests in alternatives)


def _anything(value: str) -> bool:
    return True


def finite_number(text: str) -> float | None:
    """``text`` as a finite float, or None (filter patterns compare numbers only when both are)."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _test(op: str, raw: str) -> FieldTest:
    quoted = raw.startswith('"')
    text = json.loads(raw) if quoted else raw
    number = None if quoted else finite_number(text)
    if number is not None:
        compare: Callable[[float], bool] = {
            "=": lambda v: v == number,
            "!=": lambda v: v != number,
            "<": lambda v: v < number,
            "<=": lambda v: v <= number,
            ">": lambda v: v > number,
            ">=": lambda v: v >= number,
        }[op]

        def numeric(value: str) -> bool:
            v = finite_number(value)
            return v is not None and compare(v)

        return numeric
    if op not in ("=", "!="):
        raise FieldPatternError(f"'{op}' needs a number, got {raw}")
    regex = re.compile(".*".join(re.escape(p) for p in text.split("*")), re.DOTALL)
    if op == "=":
        return lambda value: regex.fullmatch(value) is not None
    return lambda value: regex.fullmatch(value) is None


def _match(items: Sequence[FieldTest | None], i: int, fields: Sequence[str], j: int) -> bool:
    while i < len(items):
        test = items[i]
        if test is ELLIPSIS:
            return any(_match(items, i + 1, fields, k) for k in range(j, len(fields) + 1))
        if j >= len(fields) or not test(fields[j]):
            return False
        i += 1
        j += 1
    return j == len(fields)
