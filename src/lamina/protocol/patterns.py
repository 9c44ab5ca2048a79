"""Java regular expressions (what AWS's models are written in) as Python ``re`` patterns.

AWS validates ``pattern`` constraints with ``java.util.regex`` and ``Matcher.matches()``. Python's
``re`` differs in a few places that occur in real models, translated here:

* ``\\p{L}``, ``\\P{N}``, ``\\p{IsLu}``... (Unicode categories), ``\\p{Alpha}``-style POSIX classes
  and ``\\p{LD}``, which ``re`` lacks: expanded to explicit code point ranges (negated ones too).
* ``\\d``, ``\\w``, ``\\s`` and ``\\b`` are ASCII-only in Java: compiled with ``re.ASCII``.
* ``.`` excludes all Java line terminators (``\\r``, ``\\u0085``, ``\\u2028``...), not just ``\\n``.
* ``\\uD800\\uDC00`` (a surrogate pair) is one supplementary code point in Java.
* Inside a class, ``-`` after a shorthand (``[\\w-_]``) and ``|``/``~``/``&`` are literals.
* ``\\z``, ``\\Z``, ``\\h``, ``\\x{...}`` and ``\\Q...\\E`` quoting.

Across every botocore model, 8 of ~9,900 patterns remain untranslatable (inline flags mid-pattern,
quantified ``$``); none is in Lambda's. ``&&`` (class intersection) is not supported.
"""

from __future__ import annotations

import re
import string
import sys
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType

_DOT = "[^\\n\\r\\u0085\\u2028\\u2029]"
_H_SPACE = " \\t\\xa0\\u1680\\u180e\\u2000-\\u200a\\u202f\\u205f\\u3000"
# Class shorthands after which Java reads '-' as a literal (Python rejects the "range").
_SHORTHANDS = frozenset("dDwWsShHvV")
Runs = tuple[tuple[int, int], ...]


_HEX4 = re.compile("[0-9A-Fa-f]{4}")


def _runs_of(points: Iterable[int]) -> Runs:
    """Sorted code points -> inclusive (first, last) runs."""
    runs: list[list[int]] = []
    for cp in points:
        if runs and runs[-1][1] == cp - 1:
            runs[-1][1] = cp
        else:
            runs.append([cp, cp])
    return tuple((a, b) for a, b in runs)


def _merge(runs: Iterable[tuple[int, int]]) -> Runs:
    """Union of runs, coalescing overlapping and adjacent ones."""
    out: list[list[int]] = []
    for a, b in sorted(runs):
        if out and a <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return tuple((a, b) for a, b in out)


def _complement(runs: Runs) -> Runs:
    out: list[tuple[int, int]] = []
    start = 0
    for a, b in runs:
        if a > start:
            out.append((start, a - 1))
        start = b + 1
    if start <= sys.maxunicode:
        out.append((start, sys.maxunicode))
    return tuple(out)


def _range(a: int, b: int | None = None) -> str:
    lo = f"\\U{a:08x}"
    return lo if b is None or a == b else f"{lo}-\\U{b:08x}"


def _ascii(test: Callable[[str], bool]) -> Runs:
    return _runs_of(i for i in range(128) if test(chr(i)))


# POSIX classes are US-ASCII only in Java (without UNICODE_CHARACTER_CLASS).
_POSIX: Mapping[str, Runs] = MappingProxyType(
    {
        "Lower": _ascii(str.islower),
        "Upper": _ascii(str.isupper),
        "ASCII": ((0, 127),),
        "Alpha": _ascii(str.isalpha),
        "Digit": _ascii(str.isdigit),
        "Alnum": _ascii(str.isalnum),
        "Punct": _ascii(lambda c: c in string.punctuation),
        "Graph": ((0x21, 0x7E),),
        "Print": ((0x20, 0x7E),),
        "Blank": _ascii(lambda c: c in " \t"),
        "Cntrl": ((0, 0x1F), (0x7F, 0x7F)),
        "XDigit": _ascii(lambda c: c in string.hexdigits),
        "Space": _ascii(lambda c: c in " \t\n\x0b\f\r"),
        "all": ((0, sys.maxunicode),),
        "Whitespace": _runs_of([9, 10, 11, 12, 13, 32, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B)])
        + _runs_of([0x2028, 0x2029, 0x202F, 0x205F, 0x3000]),
    }
)
_ALIASES: Mapping[str, str] = MappingProxyType(
    {"Letter": "L", "Alphabetic": "L", "White_Space": "Whitespace"}
)


class PatternCompiler:
    """Translates and compiles model patterns; owns the (lazily built) Unicode category tables."""

    def __init__(self) -> None:
        self._compiled: dict[str, re.Pattern[str]] = {}
        self._categories: dict[str, Runs] | None = None

    def compile(self, java_pattern: str) -> re.Pattern[str]:
        found = self._compiled.get(java_pattern)
        if found is None:
            found = re.compile(self.translate(java_pattern), re.ASCII)
            self._compiled[java_pattern] = found
        return found

    def translate(self, src: str) -> str:
        out: list[str] = []
        i, n, in_class, after_set = 0, len(src), False, False
        while i < n:
            c = src[i]
            if c == "\\" and i + 1 < n:
                after_set = in_class and (src[i + 1] in _SHORTHANDS or src[i + 1] in "pP")
                piece, i = self._escape(src, i, in_class)
                out.append(piece)
                continue
            if in_class:
                if c == "]" and out[-1] not in ("[", "[^"):
                    in_class = False
                    out.append(c)
                elif c in "|~&" or (c == "-" and after_set):
                    out.append("\\" + c)  # literal in Java; Python warns or reads a range
                else:
                    out.append(c)
            elif c == "[":
                in_class = True
                caret = src.startswith("[^", i)
                out.append("[^" if caret else "[")
                i += 1 + caret
                after_set = False
                continue
            else:
                out.append(_DOT if c == "." else c)
            after_set = False
            i += 1
        return "".join(out)

    def _escape(self, src: str, i: int, in_class: bool) -> tuple[str, int]:
        """One escape sequence starting at ``src[i] == '\\\\'``; returns (python text, next index)."""
        e = src[i + 1]
        if e in "pP":
            if src.startswith("{", i + 2):
                end = src.index("}", i + 2)
                name, nxt = src[i + 3 : end], end + 1
            else:
                name, nxt = src[i + 2], i + 3
            runs = self._property(name)
            if e == "P":
                runs = _complement(runs)
            text = "".join(_range(a, b) for a, b in runs)
            return (text if in_class else f"[{text}]"), nxt
        if e == "Q":
            end = src.find("\\E", i + 2)
            if end < 0:
                return re.escape(src[i + 2 :]), len(src)
            return re.escape(src[i + 2 : end]), end + 2
        if e == "x" and src.startswith("{", i + 2):
            end = src.index("}", i + 2)
            return _range(int(src[i + 3 : end], 16)), end + 1
        if e == "u" and _HEX4.fullmatch(src, i + 2, i + 6):
            high = int(src[i + 2 : i + 6], 16)
            if (
                0xD800 <= high < 0xDC00
                and src.startswith("\\u", i + 6)
                and _HEX4.fullmatch(src, i + 8, i + 12)
            ):
                low = int(src[i + 8 : i + 12], 16)
                if 0xDC00 <= low < 0xE000:  # Java reads a surrogate pair as one supplementary char
                    return _range(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)), i + 12
            return _range(high), i + 6
        if e == "h":
            return (_H_SPACE if in_class else f"[{_H_SPACE}]"), i + 2
        if e == "z" and not in_class:
            return "\\Z", i + 2
        if e == "Z" and not in_class:
            return "(?=[\\n\\r\\u0085\\u2028\\u2029]?\\Z)", i + 2
        return src[i : i + 2], i + 2

    def _property(self, name: str) -> Runs:
        """Code point runs for a Java property name (``L``, ``IsLu``, ``Alpha``, ``LD``...)."""
        if name.startswith("Is"):
            name = name[2:]
        name = _ALIASES.get(name, name)
        if name in _POSIX:
            return _POSIX[name]
        table = self._category_table()
        if name == "LD":  # Java: letter or digit
            return _merge(table["L"] + table["Nd"])
        if name not in table:
            raise ValueError(f"unsupported Java regex property \\p{{{name}}}")
        return table[name]

    def _category_table(self) -> dict[str, Runs]:
        # Built once per compiler (~0.15 s): only models that use \p{..} ever pay for it.
        if self._categories is None:
            runs: dict[str, list[tuple[int, int]]] = {}
            prev, start = unicodedata.category("\0"), 0
            for cp in range(1, sys.maxunicode + 2):
                cat = unicodedata.category(chr(cp)) if cp <= sys.maxunicode else ""
                if cat != prev:
                    runs.setdefault(prev, []).append((start, cp - 1))
                    prev, start = cat, cp
            table = {cat: tuple(r) for cat, r in runs.items()}
            for major in {cat[0] for cat in runs}:
                table[major] = _merge(r for cat, rs in runs.items() if cat[0] == major for r in rs)
            self._categories = table
        return self._categories
