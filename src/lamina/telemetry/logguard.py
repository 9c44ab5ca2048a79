"""Flood protection between a function's output and the log store: split, rate-cap, count drops.

A function that prints without pause must neither fill the disk nor starve other functions of the
log writer (one thread, shared by all).  So, per log group (= per function):

* a line over CloudWatch's event limit (256 KB, 26 bytes of it overhead) is split into several
  events, cut on UTF-8 character boundaries;
* a token bucket caps the bytes per second the store accepts; what is over the cap is dropped and
  counted, never queued (a queue would only move the flood into memory);
* after drops, one ``LOGS_DROPPED`` line (at most one a second) says how much was lost, in the
  function's own stream, where its owner will look.

Everything here runs on the event loop inside ``LogStore.put``: O(1) per event in the common case
(short ASCII lines under the cap), no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter

from lamina.execution.types import LogEvent

EVENT_OVERHEAD = 26  # bytes CloudWatch counts per event on top of its message
MAX_EVENT_BYTES = 256 * 1024
MAX_MESSAGE_BYTES = MAX_EVENT_BYTES - EVENT_OVERHEAD
# A str of at most this many characters cannot exceed MAX_MESSAGE_BYTES in UTF-8 (4 bytes each).
_SAFE_CHARS = MAX_MESSAGE_BYTES // 4
_MESSAGE = attrgetter("message")
NOTICE_INTERVAL_S = 1.0


def message_size(message: str) -> int:
    """UTF-8 bytes of ``message`` (``isascii`` is O(1) on CPython, so ASCII costs no encode)."""
    return len(message) if message.isascii() else len(message.encode("utf-8", "replace"))


def messages_size(messages: Sequence[str]) -> int:
    """UTF-8 bytes of all ``messages``: for ASCII throughout (the common case, tested in one C
    call) the sum of their lengths, with no per-message Python work."""
    if "".join(messages).isascii():
        return sum(map(len, messages))
    return sum(map(message_size, messages))


def event_size(message: str) -> int:
    return message_size(message) + EVENT_OVERHEAD


def split_message(message: str, limit: int = MAX_MESSAGE_BYTES) -> list[str]:
    """``message`` cut into pieces of at most ``limit`` UTF-8 bytes, never inside a character."""
    if len(message) <= limit // 4 or message_size(message) <= limit:
        return [message]
    data = message.encode("utf-8", "replace")
    pieces: list[str] = []
    start = 0
    while start < len(data):
        end = min(start + limit, len(data))
        while end < len(data) and end > start and (data[end] & 0xC0) == 0x80:
            end -= 1  # back off a continuation byte: the cut falls before its character
        pieces.append(data[start:end].decode("utf-8", "replace"))
        start = end
    return pieces


@dataclass(slots=True)
class GroupCounters:
    """What the guard did to one log group since the server started (for stats and the drop line)."""

    accepted_events: int = 0
    accepted_bytes: int = 0
    dropped_events: int = 0
    dropped_bytes: int = 0
    split_lines: int = 0
    unreported_events: int = 0  # dropped since the last LOGS_DROPPED line
    unreported_bytes: int = 0
    last_notice: float = float("-inf")  # guard clock time of the last LOGS_DROPPED line
    notices: int = 0  # LOGS_DROPPED lines written


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class LogGuard:
    """Per-group token buckets.  ``rate_bytes_s`` <= 0 means no rate cap (splitting still applies)."""

    def __init__(
        self,
        *,
        rate_bytes_s: float,
        burst_bytes: float,
        clock: Callable[[], float],
        on_notice: Callable[[str, GroupCounters], None] | None = None,
    ) -> None:
        self._on_notice = on_notice  # told of every LOGS_DROPPED line (the server log, stats)
        self._rate = rate_bytes_s
        self._burst = max(burst_bytes, float(MAX_EVENT_BYTES))
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self.counters: dict[str, GroupCounters] = {}

    def take(self, group: str, messages: Sequence[str]) -> bool:
        """The common case in one pass: True when all of ``messages`` are short, within the rate and
        no drop notice is due -- they are then counted and charged, to be stored as they are.
        False changes nothing: ``admit`` decides (and splits, drops, notes) event by event."""
        counters = self.counters.get(group)
        if counters is None or counters.unreported_events or max(map(len, messages), default=0) > _SAFE_CHARS:
            return False
        total = messages_size(messages) + EVENT_OVERHEAD * len(messages)
        if self._rate > 0:
            bucket = self._refill(group)
            if bucket.tokens < total:
                return False
            bucket.tokens -= total
        counters.accepted_events += len(messages)
        counters.accepted_bytes += total
        return True

    def admit(self, group: str, events: Sequence[LogEvent]) -> list[LogEvent]:
        """The events of ``group`` to store now: split, within the rate, plus a drop notice if due."""
        if not events:
            return []
        if self.take(group, list(map(_MESSAGE, events))):
            return list(events)
        counters = self.counters.get(group)
        if counters is None:
            counters = self.counters[group] = GroupCounters()
        bucket = self._refill(group) if self._rate > 0 else None
        out = self._admit_each(counters, bucket, events)
        self._notice(group, counters, out, events[-1].timestamp_ms)
        return out

    def _admit_each(
        self, counters: GroupCounters, bucket: _Bucket | None, events: Sequence[LogEvent]
    ) -> list[LogEvent]:
        out: list[LogEvent] = []
        for ev in events:
            message = ev.message
            pieces = [message] if len(message) <= _SAFE_CHARS else split_message(message)
            if len(pieces) > 1:
                counters.split_lines += 1
            for piece in pieces:
                size = event_size(piece)
                if bucket is not None:
                    if bucket.tokens < size:
                        counters.dropped_events += 1
                        counters.dropped_bytes += size
                        counters.unreported_events += 1
                        counters.unreported_bytes += size
                        continue
                    bucket.tokens -= size
                counters.accepted_events += 1
                counters.accepted_bytes += size
                out.append(ev if piece is message else LogEvent(ev.timestamp_ms, piece))
        return out

    def _notice(self, group: str, counters: GroupCounters, out: list[LogEvent], stamp: int) -> None:
        """Append a LOGS_DROPPED line after the events drops cut short, at most once per
        NOTICE_INTERVAL_S per group: the notices of a flood must not become a flood (they are
        not charged to the bucket)."""
        if not counters.unreported_events:
            return
        now = self._clock()
        if now - counters.last_notice >= NOTICE_INTERVAL_S:
            out.append(LogEvent(stamp, self._drop_line(counters)))
            counters.unreported_events = counters.unreported_bytes = 0
            counters.last_notice = now
            counters.notices += 1
            if self._on_notice is not None:
                self._on_notice(group, counters)

    def _refill(self, group: str) -> _Bucket:
        now = self._clock()
        bucket = self._buckets.get(group)
        if bucket is None:
            bucket = self._buckets[group] = _Bucket(self._burst, now)
        else:
            bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.stamp) * self._rate)
            bucket.stamp = now
        return bucket

    def _drop_line(self, counters: GroupCounters) -> str:
        # Shaped like Lambda's platform lines (tab-separated "Key: value"), so filters can find it.
        return (
            f"LOGS_DROPPED DroppedRecords: {counters.unreported_events}\t"
            f"DroppedBytes: {counters.unreported_bytes}\t"
            f"Reason: over the log rate limit of {int(self._rate)} bytes/s for this function\t"
        )

    def forget(self, group: str) -> None:
        self._buckets.pop(group, None)
