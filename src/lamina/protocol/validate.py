"""Model constraints (required, length, range, pattern, enum) checked the way AWS words them.

The wording follows AWS's (Coral) validator as seen in real Lambda responses::

    Value 'x y' at 'functionName' failed to satisfy constraint: Member must satisfy regular ...
    Value null at 'role' failed to satisfy constraint: Member must not be null
    Value at 'environment.variables' failed to satisfy constraint: Map keys must satisfy ...

* Paths are lowerCamelCase member names joined by '.'; structures inside lists are
  ``list.N.member`` (1-based).
* A list of scalars is reported once, at the list, as ``Member must satisfy constraint: [...]``
  listing every constraint of the element shape plus ``Member must not be null``; maps likewise
  report ``Map keys must satisfy constraint: [...]`` / ``Map value must satisfy constraint: [...]``.
* A sensitive value (or a container holding one) is never echoed: ``Value at '...'``.

Validators are compiled once per shape object and cached on it; patterns are compiled by the
``PatternCompiler`` cached on the model's shape resolver, so every shape of a service shares it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from botocore.model import Shape

from lamina.protocol.model import SCALAR_TYPES, cached_on, is_document, is_sensitive, lower_camel
from lamina.protocol.patterns import PatternCompiler

Check = Callable[[Any, str, list[str]], None]
Test = Callable[[Any], bool]

_NOT_NULL = "Member must not be null"


def validate(shape: Shape, params: Mapping[str, Any]) -> list[str]:
    """Every constraint violation in ``params`` (an input structure), in member order."""
    problems: list[str] = []
    _checker(shape)(params, "", problems)
    return problems


def _patterns(shape: Shape) -> PatternCompiler:
    owner = getattr(shape, "_shape_resolver", None) or shape
    return cached_on(owner, "patterns", PatternCompiler)


def _checker(shape: Shape) -> Check:
    return cached_on(shape, "check", lambda: _build(shape, set()))


def _build(shape: Shape, building: set[str]) -> Check:
    """Compile ``shape``'s checker; ``building`` holds shape names on the current stack, so a
    recursive model gets a lazy reference instead of compiling forever."""
    if shape.name in building:
        return lambda value, path, problems: _checker(shape)(value, path, problems)
    building = building | {shape.name}
    kind = shape.type_name
    if kind == "structure" and not is_document(shape):
        return _structure(shape, building)
    if kind == "list":
        return _list(shape, building)
    if kind == "map":
        return _map(shape, building)
    tests = _scalar_tests(shape)
    if not tests:
        return _no_check
    hide = _hides_value(shape)

    def check_scalar(value: Any, path: str, problems: list[str]) -> None:
        for test, message in tests:
            if not test(value):
                problems.append(_problem(value, path, message, hide))

    return check_scalar


def _no_check(value: Any, path: str, problems: list[str]) -> None:
    return None


def _structure(shape: Shape, building: set[str]) -> Check:
    required = set(shape.required_members)
    members = [
        (name, lower_camel(name), name in required, _build(member, building))
        for name, member in shape.members.items()
    ]

    def check_structure(value: Any, path: str, problems: list[str]) -> None:
        if not isinstance(value, Mapping):
            return
        prefix = path + "." if path else ""
        for name, key, is_required, check in members:
            item = value.get(name)
            if item is None:
                if is_required:
                    problems.append(_null(prefix + key))
            elif check is not _no_check:
                check(item, prefix + key, problems)

    return check_structure


def _list(shape: Shape, building: set[str]) -> Check:
    own = _length_tests(shape)
    hide = _hides_value(shape)
    member = shape.member
    element: Check | None = None
    summary = ""
    tests: list[tuple[Test, str]] = []
    if member.type_name in SCALAR_TYPES or is_document(member):
        tests = _scalar_tests(member)
        summary = _summary([m for _, m in tests] + [_NOT_NULL], "Member must satisfy constraint")
    else:
        element = _build(member, building)

    def check_list(value: Any, path: str, problems: list[str]) -> None:
        for test, message in own:
            if not test(value):
                problems.append(_problem(value, path, message, hide))
        if element is None:
            if any(item is None or _fails(tests, item) for item in value):
                problems.append(_problem(value, path, summary, hide))
            return
        for index, item in enumerate(value, 1):
            where = f"{path}.{index}.member"
            if item is None:
                problems.append(_null(where))
            else:
                element(item, where, problems)

    return check_list


def _map(shape: Shape, building: set[str]) -> Check:
    own = _length_tests(shape)
    hide = _hides_value(shape)
    key_tests = _scalar_tests(shape.key)
    key_summary = _summary([m for _, m in key_tests], "Map keys must satisfy constraint")
    value_shape = shape.value
    value_check: Check | None = None
    value_tests: list[tuple[Test, str]] = []
    if value_shape.type_name in SCALAR_TYPES or is_document(value_shape):
        value_tests = _scalar_tests(value_shape)
    else:
        value_check = _build(value_shape, building)
    value_summary = _summary([m for _, m in value_tests], "Map value must satisfy constraint")

    def check_map(value: Any, path: str, problems: list[str]) -> None:
        for test, message in own:
            if not test(value):
                problems.append(_problem(value, path, message, hide))
        if key_tests and any(_fails(key_tests, k) for k in value):
            problems.append(_problem(value, path, key_summary, hide))
        if value_check is not None:
            for k, item in value.items():
                if item is not None:
                    value_check(item, f"{path}.{k}", problems)
        elif value_tests and any(v is not None and _fails(value_tests, v) for v in value.values()):
            problems.append(_problem(value, path, value_summary, hide))

    return check_map


# ---- constraints of one shape ------------------------------------------------------------------


def _scalar_tests(shape: Shape) -> list[tuple[Test, str]]:
    """(predicate, AWS wording) per constraint, in AWS's order: max, min, pattern, enum."""
    kind = shape.type_name
    meta = shape.metadata
    tests: list[tuple[Test, str]] = []
    if kind in ("integer", "long", "float", "double"):
        if "max" in meta:
            hi = meta["max"]
            tests.append((lambda v: v <= hi, f"Member must have value less than or equal to {hi}"))
        if "min" in meta:
            lo = meta["min"]
            tests.append((lambda v: v >= lo, f"Member must have value greater than or equal to {lo}"))
        return tests
    if kind in ("string", "blob"):
        tests.extend(_length_tests(shape))
    if kind == "string":
        regex = _compile_pattern(shape)
        if regex is not None:
            tests.append(
                (
                    lambda v: regex.fullmatch(v) is not None,
                    f"Member must satisfy regular expression pattern: {meta['pattern']}",
                )
            )
        enum = shape.enum
        if enum:
            allowed = frozenset(enum)
            tests.append((lambda v: v in allowed, f"Member must satisfy enum value set: [{', '.join(enum)}]"))
    return tests


def _compile_pattern(shape: Shape) -> re.Pattern[str] | None:
    pattern = shape.metadata.get("pattern")
    if pattern is None:
        return None
    try:
        return _patterns(shape).compile(pattern)
    except (re.error, ValueError):
        # A handful of patterns across all AWS models use Java-only syntax (inline flags
        # mid-pattern, quantified anchors). Refusing every request would be worse than
        # not checking that one constraint; the whole Lambda model is covered by a test.
        return None


def _length_tests(shape: Shape) -> list[tuple[Test, str]]:
    meta = shape.metadata
    size: Callable[[Any], int] = _utf16_len if shape.type_name == "string" else len
    tests: list[tuple[Test, str]] = []
    if "max" in meta:
        hi = meta["max"]
        tests.append((lambda v: size(v) <= hi, f"Member must have length less than or equal to {hi}"))
    if "min" in meta:
        lo = meta["min"]
        tests.append((lambda v: size(v) >= lo, f"Member must have length greater than or equal to {lo}"))
    return tests


def _fails(tests: list[tuple[Test, str]], value: Any) -> bool:
    return not all(test(value) for test, _ in tests)


def _null(path: str) -> str:
    return f"Value null at '{path}' failed to satisfy constraint: {_NOT_NULL}"


def _utf16_len(value: str) -> int:
    """Java counts UTF-16 code units, so a character outside the BMP counts twice."""
    return len(value) if value.isascii() else len(value.encode("utf-16-le")) // 2


def _summary(messages: list[str], lead: str) -> str:
    return f"{lead}: [{', '.join(messages)}]"


# ---- how a value is shown ----------------------------------------------------------------------


def _hides_value(shape: Shape) -> bool:
    """Sensitive here or anywhere inside: rendering a container would print its contents."""
    return cached_on(shape, "hides", lambda: _contains_sensitive(shape, set()))


def _contains_sensitive(shape: Shape, seen: set[str]) -> bool:
    if is_sensitive(shape):
        return True
    if shape.name in seen:
        return False
    seen.add(shape.name)
    kind = shape.type_name
    if kind == "structure" and not is_document(shape):
        return any(_contains_sensitive(m, seen) for m in shape.members.values())
    if kind == "list":
        return _contains_sensitive(shape.member, seen)
    if kind == "map":
        return _contains_sensitive(shape.key, seen) or _contains_sensitive(shape.value, seen)
    return False


def _problem(value: Any, path: str, message: str, hide: bool) -> str:
    shown = "Value" if hide else f"Value '{render(value)}'"
    return f"{shown} at '{path}' failed to satisfy constraint: {message}"


def render(value: Any) -> str:
    """A value as AWS's Java validator prints it (``toString`` of the deserialized object)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, bytes | bytearray | memoryview):
        n = len(value)
        return f"java.nio.HeapByteBuffer[pos=0 lim={n} cap={n}]"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(render(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{render(k)}={render(v)}" for k, v in value.items()) + "}"
    if isinstance(value, datetime):
        return value.strftime("%a %b %d %H:%M:%S UTC %Y")
    return str(value)
