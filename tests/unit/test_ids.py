"""Hot-path identifiers: well-formed, and different every time."""

from __future__ import annotations

import re
import time
import uuid

from lamina.ids import IdFactory

TRACE = re.compile(r"Root=1-([0-9a-f]{8})-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0")


def test_request_ids_are_canonical_version_4_uuids() -> None:
    ids = IdFactory()
    seen = {ids.request_id() for _ in range(5000)}
    assert len(seen) == 5000
    for text in seen:
        u = uuid.UUID(text)
        assert str(u) == text and u.version == 4 and u.variant == uuid.RFC_4122
    # every variant digit turns up: the nibble is random, not fixed
    assert {text[19] for text in seen} == set("89ab")


def test_trace_ids_carry_the_current_second_and_fresh_randomness() -> None:
    ids = IdFactory()
    before = int(time.time())
    traces = [ids.trace_id() for _ in range(2000)]
    after = int(time.time())
    assert len(set(traces)) == 2000
    for trace in traces:
        m = TRACE.fullmatch(trace)
        assert m is not None, trace
        assert before <= int(m.group(1), 16) <= after
