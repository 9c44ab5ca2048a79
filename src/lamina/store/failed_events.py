"""Discarded async events behind ``MetadataStore``, and the queue as ``lamina events`` shows it.

A discarded event (retries exhausted, or too old) leaves the queue for good; its destinations get
a record, but without one configured nothing else would say it ever existed.  So the service keeps
a row per discarded event here: why (``condition``), how many runs, the last error, when.  The
table is bounded: only the newest ``FAILED_KEEP`` rows of a function are kept (older ones are
deleted in the same transaction as each insert), and a function's rows go with the function.
The table joins the shared schema at import, before the engine is created, so ``create_all``
makes it on new and existing databases alike.  Like every store method these block and run on the
store's single worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Engine, Float, Integer, String, Table, Text, and_, delete, func, insert, select

from lamina.store.db import async_events, metadata

# Per function: enough to see a pattern in, small enough that a function failing every event for
# days cannot grow the database without bound.
FAILED_KEEP = 1000
# Rows per group in a view: the counts are exact, the listed rows the oldest (queued) or newest
# (failed) this many.
VIEW_ROWS = 100

failed_events = Table(
    "failed_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("region", String(32), nullable=False),
    Column("function_name", String(64), nullable=False, index=True),
    Column("request_id", String(64), nullable=False),
    Column("invoked_arn", Text, nullable=False),
    Column("condition", String(32), nullable=False),  # RetriesExhausted | EventAgeExceeded
    Column("attempts", Integer, nullable=False),  # runs of the function
    Column("error_type", Text, nullable=False),
    Column("error_message", Text, nullable=False),
    Column("received_at", Float, nullable=False),
    Column("failed_at", Float, nullable=False),
)


@dataclass(frozen=True, slots=True)
class FailedEvent:
    request_id: str
    invoked_arn: str
    condition: str
    attempts: int
    error_type: str
    error_message: str
    received_at: float
    failed_at: float


class FailedEventRows:
    _engine: Engine

    def record_failed(self, region: str, name: str, event: FailedEvent, keep: int = FAILED_KEEP) -> None:
        t = failed_events
        of_function = and_(t.c.region == region, t.c.function_name == name)
        with self._engine.begin() as conn:
            conn.execute(
                insert(t).values(
                    region=region,
                    function_name=name,
                    request_id=event.request_id,
                    invoked_arn=event.invoked_arn,
                    condition=event.condition,
                    attempts=event.attempts,
                    error_type=event.error_type,
                    error_message=event.error_message,
                    received_at=event.received_at,
                    failed_at=event.failed_at,
                )
            )
            # The keep-th newest id of the function; everything older goes.
            cutoff = conn.execute(
                select(t.c.id).where(of_function).order_by(t.c.id.desc()).offset(keep - 1).limit(1)
            ).scalar()
            if cutoff is not None:
                conn.execute(delete(t).where(and_(of_function, t.c.id < cutoff)))

    def delete_failed_events(self, region: str, name: str) -> None:
        t = failed_events
        with self._engine.begin() as conn:
            conn.execute(delete(t).where(and_(t.c.region == region, t.c.function_name == name)))

    def function_events(self, region: str, name: str, now: float, rows: int = VIEW_ROWS) -> dict[str, Any]:
        """The function's events by group: queued (due, or held by a throttle), in flight (leased),
        retrying (not due before a future time), failed (discarded); exact counts, ``rows`` each."""
        q = async_events
        mine = and_(q.c.region == region, q.c.function_name == name)
        groups = {
            "queued": and_(mine, q.c.state == "queued", q.c.not_before <= now),
            "in_flight": and_(mine, q.c.state == "leased"),
            "retrying": and_(mine, q.c.state == "queued", q.c.not_before > now),
        }
        cols = [
            q.c.request_id,
            q.c.qualifier,
            q.c.received_at,
            q.c.attempts,
            q.c.not_before,
            q.c.last_error_type,
            q.c.last_error_message,
        ]
        out: dict[str, Any] = {}
        counts: dict[str, int] = {}
        with self._engine.connect() as conn:
            for group, where in groups.items():
                counts[group] = int(conn.execute(select(func.count()).where(where)).scalar() or 0)
                found = conn.execute(select(*cols).where(where).order_by(q.c.id).limit(rows)).all()
                out[group] = [
                    {
                        "RequestId": r.request_id,
                        "Qualifier": r.qualifier,
                        "ReceivedAt": r.received_at,
                        "Attempts": r.attempts,
                        "NextAttemptAt": r.not_before if r.not_before > now else None,
                        "LastErrorType": r.last_error_type or None,
                        "LastErrorMessage": r.last_error_message or None,
                    }
                    for r in found
                ]
            f = failed_events
            of_function = and_(f.c.region == region, f.c.function_name == name)
            counts["failed"] = int(conn.execute(select(func.count()).where(of_function)).scalar() or 0)
            failed = conn.execute(select(f).where(of_function).order_by(f.c.id.desc()).limit(rows)).all()
        out["failed"] = [
            {
                "RequestId": r.request_id,
                "InvokedArn": r.invoked_arn,
                "Condition": r.condition,
                "Attempts": r.attempts,
                "ReceivedAt": r.received_at,
                "FailedAt": r.failed_at,
                "ErrorType": r.error_type or None,
                "ErrorMessage": r.error_message or None,
            }
            for r in failed
        ]
        out["counts"] = counts
        return out
