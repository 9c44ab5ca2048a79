"""rest-json routing: (method, raw path[, query]) -> operation and its decoded URI labels.

Every ``requestUri`` is compiled in ``__init__`` into one segment trie per HTTP method. Matching
walks the trie once, preferring a literal segment over a label at each level (so the most literal
route wins) and backtracking only on a dead end; a route's literal query part (``?find=...``)
decides between operations that share method and path. Labels are split on the raw path before
percent-decoding, so an encoded ``%2F`` stays inside its label as clients intend.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass, field
from urllib.parse import unquote, unquote_plus

from botocore.model import OperationModel, ServiceModel

# A captured label as segment indices [start, end): a greedy label spans several segments.
_Span = tuple[int, int]
_MALFORMED_ESCAPE = re.compile("%(?![0-9A-Fa-f]{2})")


@dataclass(slots=True)
class _Route:
    op: OperationModel
    labels: tuple[str, ...]  # label names in path order
    greedy: frozenset[str]  # which of them are {Name+}
    query_keys: frozenset[str]  # literal query keys the request must carry


@dataclass(slots=True)
class _Node:
    literals: dict[str, _Node] = field(default_factory=dict)
    label: _Node | None = None
    greedy: _Node | None = None
    routes: list[_Route] = field(default_factory=list)


MATCH_CACHE = 1024  # requests' (method, path, query) remembered; the cache is emptied when full
_Match = tuple[OperationModel, tuple[tuple[str, str], ...]]  # the operation and its label items


class RestRouter:
    """Routes requests for one service model; build once, share freely (the tree is read-only
    after init; ``match`` remembers its recent answers)."""

    def __init__(self, model: ServiceModel) -> None:
        self._roots: dict[str, _Node] = {}
        # (method, path, query) -> (operation, label items): the same few paths come again and
        # again (a function's invokes), and walking the tree was ~3% of the server's CPU per invoke
        self._matched: dict[tuple[str, str, str], _Match | None] = {}
        for name in model.operation_names:
            op = model.operation_model(name)
            self._add(op.http.get("method", "POST").upper(), op.http["requestUri"], op)
        for root in self._roots.values():
            _sort_routes(root)

    def _add(self, method: str, request_uri: str, op: OperationModel) -> None:
        path, _, literal_query = request_uri.partition("?")
        node = self._roots.setdefault(method, _Node())
        labels: list[str] = []
        greedy: set[str] = set()
        for seg in _segments(path):
            if seg.startswith("{") and seg.endswith("}"):
                name = seg[1:-1]
                if name.endswith("+"):
                    name = name[:-1]
                    greedy.add(name)
                    node.greedy = node.greedy or _Node()
                    node = node.greedy
                else:
                    node.label = node.label or _Node()
                    node = node.label
                labels.append(name)
            else:
                node = node.literals.setdefault(seg, _Node())
        keys = frozenset(unquote_plus(kv.partition("=")[0]) for kv in literal_query.split("&") if kv)
        node.routes.append(_Route(op, tuple(labels), frozenset(greedy), keys))

    def match(self, method: str, path: str, query: str = "") -> tuple[OperationModel, dict[str, str]] | None:
        """The operation for a request and its percent-decoded labels, or None if none fits.

        ``path`` is the raw path without the query string; ``query`` the raw query string, only
        consulted when two operations share method and path.
        """
        key = (method, path, query)
        try:
            hit = self._matched[key]
        except KeyError:
            hit = self._match(method, path, query)
            if len(self._matched) >= MATCH_CACHE:
                self._matched.clear()
            self._matched[key] = hit
        return None if hit is None else (hit[0], dict(hit[1]))  # a dict of its own for each caller

    def _match(self, method: str, path: str, query: str) -> _Match | None:
        root = self._roots.get(method.upper())
        if root is None:
            return None
        found = _match_path(root, path, query, use_query=True)
        if found is None:
            return None
        route, values = found
        return route.op, tuple(zip(route.labels, values, strict=True))

    def path_known(self, path: str) -> bool:
        """Whether any operation (under any method) has this path -- for telling a wrong method
        from an unknown path."""
        return any(_match_path(root, path, "", use_query=False) for root in self._roots.values())


def _segments(path: str) -> list[str]:
    return path.split("/")[1:] if path.startswith("/") else path.split("/")


def _match_path(root: _Node, path: str, query: str, use_query: bool) -> tuple[_Route, list[str]] | None:
    if not path.startswith("/"):
        return None
    segs = path.split("/")[1:]
    found = _walk(root, segs, query, use_query)
    if found is None and len(segs) > 1 and segs[-1] == "":
        # A trailing slash is tolerated; tried second so a greedy label could keep it.
        found = _walk(root, segs[:-1], query, use_query)
    return found


def _walk(root: _Node, segs: list[str], query: str, use_query: bool) -> tuple[_Route, list[str]] | None:
    spans: list[_Span] = []
    route = _descend(root, segs, 0, spans, query, use_query)
    if route is None:
        return None
    return route, [_unquote("/".join(segs[a:b])) for a, b in spans]


def _unquote(text: str) -> str:
    """``urllib.parse.unquote``, ~8x faster for the common case (an encoded ARN on every invoke).

    ``%XX`` is quoted-printable's ``=XX``, which binascii decodes in C; only text that quoted-
    printable would read differently (a literal '=' or a malformed escape) takes the slow path.
    """
    if "%" not in text:
        return text
    if "=" in text or _MALFORMED_ESCAPE.search(text):
        return unquote(text)
    return binascii.a2b_qp(text.replace("%", "=")).decode("utf-8", "replace")


def _descend(
    node: _Node, segs: list[str], i: int, spans: list[_Span], query: str, use_query: bool
) -> _Route | None:
    if i == len(segs):
        return _pick(node.routes, query, use_query)
    seg = segs[i]
    nxt = node.literals.get(seg)
    if nxt is not None:
        found = _descend(nxt, segs, i + 1, spans, query, use_query)
        if found is not None:
            return found
    if seg and node.label is not None:
        spans.append((i, i + 1))
        found = _descend(node.label, segs, i + 1, spans, query, use_query)
        if found is not None:
            return found
        spans.pop()
    if seg and node.greedy is not None:
        for end in range(len(segs), i, -1):  # longest first: greedy
            spans.append((i, end))
            found = _descend(node.greedy, segs, end, spans, query, use_query)
            if found is not None:
                return found
            spans.pop()
    return None


def _pick(routes: list[_Route], query: str, use_query: bool) -> _Route | None:
    if not routes:
        return None
    if not use_query:
        return routes[0]
    present: frozenset[str] | None = None
    for route in routes:  # sorted: routes demanding more literal query keys come first
        if not route.query_keys:
            return route
        if present is None:
            present = frozenset(unquote_plus(kv.partition("=")[0]) for kv in query.split("&") if kv)
        if route.query_keys <= present:
            return route
    return None


def _sort_routes(node: _Node) -> None:
    node.routes.sort(key=lambda r: -len(r.query_keys))
    for child in (*node.literals.values(), node.label, node.greedy):
        if child is not None:
            _sort_routes(child)
