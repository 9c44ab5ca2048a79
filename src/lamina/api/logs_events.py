"""CloudWatch Logs event operations: GetLogEvents, FilterLogEvents, PutLogEvents.

GetLogEvents tokens are CloudWatch's ``f/…`` (forward) and ``b/…`` (backward) over the position
``(timestamp, rowid)`` of the boundary event: a forward token returns the events after it, a
backward token those before it, and when there are none the same token comes back, which is how
clients (and ``lamina logs --follow``) know they are at the end.  Events older than the group's
retention are never returned, even in the moments before maintenance deletes them.
"""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy import Connection

from lamina.api.logs_support import (
    BAD_TOKEN,
    NO_STREAM,
    decode_token,
    encode_token,
    group_name,
    invalid,
    not_found,
)
from lamina.execution.types import LogEvent
from lamina.telemetry import logmaint, logquery
from lamina.telemetry.logfilter import FilterPatternError, compile_pattern
from lamina.telemetry.logguard import MAX_MESSAGE_BYTES, message_size
from lamina.telemetry.logstore import LogStore
from lamina.types import Output, Params, RequestContext

_EVENTS_LIMIT = 10_000
_SCAN_BUDGET = 20_000  # rows one FilterLogEvents call reads; the rest is the next page's work
_END = 2**62
_TOO_OLD_MS = 14 * logmaint.DAY_MS  # PutLogEvents: CloudWatch refuses events older than 14 days
_TOO_NEW_MS = 2 * 3_600_000  # ... and more than 2 hours ahead
_MAX_SPAN_MS = logmaint.DAY_MS


def _position_token(direction: str, pos: logquery.Position) -> str:
    # 40 digits after the direction: the timestamp shifted to be non-negative, then the rowid.
    return f"{direction}/{pos[0] + 1:020d}{pos[1]:020d}"


def _parse_position(token: str) -> tuple[bool, logquery.Position]:
    direction, _, digits = token.partition("/")
    if direction not in ("f", "b") or len(digits) != 40 or not digits.isdigit():
        raise invalid(BAD_TOKEN)
    return direction == "f", (int(digits[:20]) - 1, int(digits[20:]))


def _retention_start(conn: Connection, group: str, now: int) -> int | None:
    """The earliest visible timestamp of ``group``; None when the group does not exist."""
    row = conn.exec_driver_sql("SELECT retention_days FROM log_groups WHERE name = ?", (group,)).first()
    if row is None:
        return None
    return 0 if row[0] is None else now - int(row[0]) * logmaint.DAY_MS


class LogEventHandlers:
    def __init__(self, store: LogStore) -> None:
        self._store = store

    async def get_log_events(self, ctx: RequestContext, params: Params) -> Output:
        group, stream = group_name(params), params["logStreamName"]
        start, end = params.get("startTime", 0), params.get("endTime", _END)
        token = params.get("nextToken")
        forward, position = _parse_position(token) if token else (bool(params.get("startFromHead")), None)
        limit = params.get("limit", _EVENTS_LIMIT)
        now = self._store.now_ms()

        def read(c: Connection) -> list[logquery.EventRow] | str:
            visible = _retention_start(c, group, now)
            if visible is None:
                return "group"
            sid = logmaint.stream_id(c, group, stream)
            if sid is None:
                return "stream"
            return logquery.stream_events(
                c, sid, start=max(start, visible), end=end, position=position, forward=forward, limit=limit
            )

        events = await self._store.read(read)
        if isinstance(events, str):
            raise not_found() if events == "group" else not_found(NO_STREAM)
        if events:
            first, last = events[0].position, events[-1].position
        else:  # nothing further that way: the same position (and so the same token) comes back
            first = last = position or logquery.FIRST
        return {
            "events": [
                {"timestamp": e.timestamp_ms, "message": e.message, "ingestionTime": e.ingestion_ms}
                for e in events
            ],
            "nextForwardToken": _position_token("f", last),
            "nextBackwardToken": _position_token("b", first),
        }

    async def filter_log_events(self, ctx: RequestContext, params: Params) -> Output:
        group = group_name(params)
        names, prefix = params.get("logStreamNames"), params.get("logStreamNamePrefix")
        if names is not None and prefix is not None:
            raise invalid("logStreamNames and logStreamNamePrefix are mutually exclusive parameters.")
        try:
            match = compile_pattern(params.get("filterPattern"))
        except FilterPatternError as exc:
            raise invalid(f"Invalid filter pattern: {exc}") from None
        start, end = params.get("startTime", 0), params.get("endTime", _END)
        after: logquery.Position = logquery.FIRST
        token = params.get("nextToken")
        if token:
            value = decode_token("filter", token)
            if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value)):
                raise invalid(BAD_TOKEN)
            after = (value[0], value[1])
        limit = params.get("limit", _EVENTS_LIMIT)
        now = self._store.now_ms()

        def read(c: Connection) -> tuple[list[logquery.EventRow], logquery.Position | None] | None:
            visible = _retention_start(c, group, now)
            if visible is None:
                return None
            return logquery.filter_events(
                c,
                group,
                streams=names,
                prefix=prefix,
                start=max(start, visible),
                end=end,
                after=after,
                limit=limit,
                match=match,
                scan_budget=_SCAN_BUDGET,
            )

        found = await self._store.read(read)
        if found is None:
            raise not_found()
        events, resume = found
        out: Output = {
            "events": [
                {
                    "logStreamName": e.stream,
                    "timestamp": e.timestamp_ms,
                    "message": e.message,
                    "ingestionTime": e.ingestion_ms,
                    "eventId": str(e.rowid),
                }
                for e in events
            ]
        }
        if resume is not None:
            out["nextToken"] = encode_token("filter", list(resume))
        return out

    async def put_log_events(self, ctx: RequestContext, params: Params) -> Output:
        group, stream = params["logGroupName"], params["logStreamName"]
        events: list[dict[str, Any]] = params["logEvents"]
        stamps = [int(e["timestamp"]) for e in events]
        if any(b < a for a, b in itertools.pairwise(stamps)):
            raise invalid("Log events in a single PutLogEvents request must be in chronological order.")
        if stamps[-1] - stamps[0] > _MAX_SPAN_MS:
            raise invalid(
                "The batch of log events in a single PutLogEvents request cannot span more than 24 hours."
            )
        for e in events:
            if message_size(e["message"]) > MAX_MESSAGE_BYTES:
                raise invalid(f"Log event too large: the limit is {MAX_MESSAGE_BYTES} bytes of message.")
        now = self._store.now_ms()

        def check(c: Connection) -> tuple[int | None, bool]:
            visible = _retention_start(c, group, now)
            return visible, visible is not None and logmaint.stream_id(c, group, stream) is not None

        visible, has_stream = await self._store.read(check)
        if visible is None:
            raise not_found()
        if not has_stream:
            raise not_found(NO_STREAM)
        oldest = max(now - _TOO_OLD_MS, visible)
        rejected: dict[str, int] = {}
        accepted: list[LogEvent] = []
        for i, ts in enumerate(stamps):
            if ts < now - _TOO_OLD_MS:
                rejected["tooOldLogEventEndIndex"] = i
            elif ts < oldest:
                rejected["expiredLogEventEndIndex"] = i
            elif ts > now + _TOO_NEW_MS:
                rejected.setdefault("tooNewLogEventStartIndex", i)
            else:
                accepted.append(LogEvent(ts, events[i]["message"]))
        self._store.put_direct(group, stream, accepted)
        return {"rejectedLogEventsInfo": rejected} if rejected else {}
