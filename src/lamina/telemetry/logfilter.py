"""CloudWatch Logs filter patterns: parsed once into a predicate over a message.

Supported (CloudWatch's syntax and meaning):

* ``""`` or nothing: every event.
* Terms (unstructured): ``ERROR``, ``"Task timed out"`` (quoted phrase), ``%regex%``.  An event
  must contain every plain term, none of the ``-term`` exclusions and, when there are ``?term``
  alternatives, at least one of them.  Matching is case-sensitive.
* JSON: ``{ $.level = "ERROR" }``, ``{ $.latency > 100 }``, ``!=``, ``<``, ``<=``, ``>=``, ``*``
  wildcards in string values, ``IS NULL``, ``IS TRUE``, ``IS FALSE``, ``NOT EXISTS``, ``&&``,
  ``||`` and parentheses; selectors ``$.a.b``, ``$.list[0]``.  Only messages that are one JSON
  object can match.
* Space-delimited: ``[ip, user, ..., status = 4*, bytes > 1000]`` (lamina.telemetry.logfields).

Anything else raises ``FilterPatternError`` (the API answers InvalidParameterException).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from lamina.telemetry.logfields import FieldPatternError, compile_fields, finite_number

Matcher = Callable[[str], bool]
JsonTest = Callable[[Any], bool]

_MISSING = object()  # a selector that leads nowhere (distinct from JSON null)
_JSON_TOKEN = re.compile(
    r"""\s*(?:(?P<op>&&|\|\||!=|<=|>=|=|<|>|\(|\))|(?P<str>"(?:[^"\\]|\\.)*")|(?P<word>[^\s()=!<>&|"]+))"""
)
_SELECTOR_PART = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]")


class FilterPatternError(ValueError):
    pass


def compile_pattern(pattern: str | None) -> Matcher:
    text = (pattern or "").strip()
    if text in ("", '""'):
        return _everything
    if text.startswith("{"):
        if not text.endswith("}"):
            raise FilterPatternError("a JSON filter pattern must end with '}'")
        test = _JsonParser(text[1:-1]).parse()
        return lambda message: _json_match(test, message)
    if text.startswith("["):
        if not text.endswith("]"):
            raise FilterPatternError("a space-delimited filter pattern must end with ']'")
        try:
            return compile_fields(text[1:-1])
        except (FieldPatternError, ValueError) as exc:
            raise FilterPatternError(str(exc)) from None
    return _terms(text)


def _everything(message: str) -> bool:
    return True


# ---- terms ---------------------------------------------------------------------------------------

Term = Callable[[str], bool]


def _terms(text: str) -> Matcher:
    required: list[Term] = []
    optional: list[Term] = []
    excluded: list[Term] = []
    i = 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        kind = text[i] if text[i] in "?-" else ""
        i += len(kind)
        term, i = _one_term(text, i)
        {"": required, "?": optional, "-": excluded}[kind].append(term)
    if not (required or optional or excluded):
        return _everything

    def match(message: str) -> bool:
        return (
            all(t(message) for t in required)
            and not any(t(message) for t in excluded)
            and (not optional or any(t(message) for t in optional))
        )

    return match


def _one_term(text: str, i: int) -> tuple[Term, int]:
    if i >= len(text) or text[i].isspace():
        raise FilterPatternError("'?' and '-' must be followed by a term")
    if text[i] == '"':
        end = i + 1
        while end < len(text) and text[end] != '"':
            end += 2 if text[end] == "\\" else 1
        if end >= len(text):
            raise FilterPatternError("unterminated quoted term")
        phrase = _unescape(text[i : end + 1])
        return (lambda m: phrase in m), end + 1
    if text[i] == "%":
        end = text.find("%", i + 1)
        if end < 0:
            raise FilterPatternError("unterminated %regex% term")
        try:
            regex = re.compile(text[i + 1 : end])
        except re.error as exc:
            raise FilterPatternError(f"invalid regular expression: {exc}") from None
        return (lambda m: regex.search(m) is not None), end + 1
    end = i
    while end < len(text) and not text[end].isspace():
        if text[end] == '"':
            raise FilterPatternError(f"invalid character '\"' in term '{text[i:end]}'")
        end += 1
    word = text[i:end]
    return (lambda m: word in m), end


def _unescape(quoted: str) -> str:
    try:
        value = json.loads(quoted)
    except (ValueError, RecursionError):
        raise FilterPatternError(f"invalid quoted term {quoted}") from None
    if not isinstance(value, str):
        raise FilterPatternError(f"invalid quoted term {quoted}")
    return value


# ---- JSON ----------------------------------------------------------------------------------------


def _json_match(test: JsonTest, message: str) -> bool:
    start = message.lstrip()[:1]
    if start != "{":  # cheap refusal before parsing: only JSON objects can match
        return False
    try:
        document = json.loads(message)
    except (ValueError, RecursionError):
        return False
    return isinstance(document, dict) and test(document)


@dataclass(slots=True)
class _Token:
    kind: str  # "op", "str", "word"
    text: str


class _JsonParser:
    def __init__(self, body: str) -> None:
        self._tokens: list[_Token] = []
        pos = 0
        body = body.rstrip()
        while pos < len(body):
            m = _JSON_TOKEN.match(body, pos)
            if m is None or m.end() == pos:
                raise FilterPatternError(
                    f"unexpected character in JSON filter pattern at '{body[pos:].strip()}'"
                )
            kind = m.lastgroup or "word"
            self._tokens.append(_Token(kind, m.group(kind)))
            pos = m.end()
        self._i = 0

    def parse(self) -> JsonTest:
        if not self._tokens:
            raise FilterPatternError("empty JSON filter pattern")
        test = self._or()
        if self._i != len(self._tokens):
            raise FilterPatternError(f"unexpected '{self._tokens[self._i].text}' in JSON filter pattern")
        return test

    def _peek(self) -> _Token | None:
        return self._tokens[self._i] if self._i < len(self._tokens) else None

    def _take(self) -> _Token:
        tok = self._peek()
        if tok is None:
            raise FilterPatternError("JSON filter pattern ends too early")
        self._i += 1
        return tok

    def _or(self) -> JsonTest:
        parts = [self._and()]
        while (tok := self._peek()) is not None and tok.text == "||":
            self._i += 1
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else (lambda d: any(p(d) for p in parts))

    def _and(self) -> JsonTest:
        parts = [self._primary()]
        while (tok := self._peek()) is not None and tok.text == "&&":
            self._i += 1
            parts.append(self._primary())
        return parts[0] if len(parts) == 1 else (lambda d: all(p(d) for p in parts))

    def _primary(self) -> JsonTest:
        tok = self._take()
        if tok.kind == "op" and tok.text == "(":
            inner = self._or()
            if self._take().text != ")":
                raise FilterPatternError("missing ')' in JSON filter pattern")
            return inner
        if tok.kind != "word" or not tok.text.startswith("$"):
            raise FilterPatternError(f"expected a selector like $.field, got '{tok.text}'")
        select = _selector(tok.text)
        op = self._take()
        if op.kind == "word" and op.text.upper() in ("IS", "NOT"):
            return _keyword_test(select, op.text.upper(), self._take().text.upper())
        if op.kind != "op" or op.text not in ("=", "!=", "<", ">", "<=", ">="):
            raise FilterPatternError(f"expected a comparison after {tok.text}, got '{op.text}'")
        value = self._take()
        if value.kind == "op":
            raise FilterPatternError(f"expected a value after {op.text}, got '{value.text}'")
        return _comparison(select, op.text, value)


def _selector(text: str) -> Callable[[Any], Any]:
    rest = text[1:]
    steps: list[str | int] = []
    pos = 0
    while pos < len(rest):
        m = _SELECTOR_PART.match(rest, pos)
        if m is None:
            raise FilterPatternError(f"invalid selector '{text}'")
        steps.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    if not steps:
        raise FilterPatternError(f"invalid selector '{text}'")

    def select(document: Any) -> Any:
        node = document
        for step in steps:
            if isinstance(step, str):
                if not isinstance(node, dict) or step not in node:
                    return _MISSING
                node = node[step]
            elif isinstance(node, list) and step < len(node):
                node = node[step]
            else:
                return _MISSING
        return node

    return select


def _keyword_test(select: Callable[[Any], Any], first: str, second: str) -> JsonTest:
    if first == "NOT" and second == "EXISTS":
        return lambda d: select(d) is _MISSING
    if first == "IS" and second == "NULL":
        return lambda d: select(d) is None
    if first == "IS" and second in ("TRUE", "FALSE"):
        want = second == "TRUE"
        return lambda d: select(d) is want
    raise FilterPatternError(f"expected IS NULL, IS TRUE, IS FALSE or NOT EXISTS, got '{first} {second}'")


def _comparison(select: Callable[[Any], Any], op: str, value: _Token) -> JsonTest:
    number = finite_number(value.text) if value.kind == "word" else None
    if number is not None:
        return _numeric(select, op, number)
    if op not in ("=", "!="):
        raise FilterPatternError(f"'{op}' needs a number, got {value.text}")
    text = _unescape(value.text) if value.kind == "str" else value.text
    if "*" in text:
        regex = re.compile(".*".join(re.escape(part) for part in text.split("*")), re.DOTALL)
        equal: Callable[[str], bool] = lambda s: regex.fullmatch(s) is not None  # noqa: E731
    else:
        equal = text.__eq__
    if op == "=":
        return lambda d: isinstance(v := select(d), str) and equal(v)
    return lambda d: (v := select(d)) is not _MISSING and not (isinstance(v, str) and equal(v))


_NUMERIC_OPS: MappingProxyType[str, Callable[[float, float], bool]] = MappingProxyType(
    {
        "=": float.__eq__,
        "!=": float.__ne__,
        "<": float.__lt__,
        ">": float.__gt__,
        "<=": float.__le__,
        ">=": float.__ge__,
    }
)


def _numeric(select: Callable[[Any], Any], op: str, number: float) -> JsonTest:
    compare = _NUMERIC_OPS[op]

    def test(document: Any) -> bool:
        v = select(document)
        if isinstance(v, bool) or not isinstance(v, int | float):
            return False
        return bool(compare(float(v), number))

    return test
