"""The destination outbox behind ``MetadataStore``: records and dead letters not yet delivered.

An async event's final hook commits its deliveries here before the event leaves the queue, so a
crash never loses one (at worst it is delivered twice, as the event may run twice).  A row is
deleted once its target accepted it; a failed try pushes ``not_before`` out and counts in
``attempts``.  The table joins the shared schema at import, before the engine is created, so
``create_all`` makes it on new and existing databases alike.  Like every store method these block
and run on the store's single worker thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Column, Engine, Float, Integer, String, Table, Text, delete, func, insert, select
from sqlalchemy import update as sql_update

from lamina.store.db import metadata

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(64), nullable=False),  # the async event's
    Column("target_arn", Text, nullable=False),  # a function, queue, topic or event bus
    Column("body", Text, nullable=False),  # the invocation record, or the event itself (dead letter)
    Column("data", JSON, nullable=False),  # kind ("record" | "dead_letter"), attributes, detail type
    Column("attempts", Integer, nullable=False, default=0),  # failed tries so far
    Column("not_before", Float, nullable=False, index=True),
    Column("created_at", Float, nullable=False),
)


@dataclass(frozen=True, slots=True)
class Delivery:
    request_id: str
    target_arn: str
    body: str
    data: dict[str, Any]
    id: int = 0
    attempts: int = 0


class DeliveryRows:
    _engine: Engine

    def add_deliveries(self, items: Sequence[Delivery], now: float) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                insert(deliveries),
                [
                    {
                        "request_id": d.request_id,
                        "target_arn": d.target_arn,
                        "body": d.body,
                        "data": d.data,
                        "attempts": 0,
                        "not_before": now,
                        "created_at": now,
                    }
                    for d in items
                ],
            )

    def due_deliveries(self, limit: int, now: float) -> list[Delivery]:
        t = deliveries
        with self._engine.connect() as conn:
            rows = conn.execute(select(t).where(t.c.not_before <= now).order_by(t.c.id).limit(limit)).all()
        return [Delivery(r.request_id, r.target_arn, r.body, dict(r.data), r.id, r.attempts) for r in rows]

    def next_delivery_due(self) -> float | None:
        with self._engine.connect() as conn:
            due = conn.execute(select(func.min(deliveries.c.not_before))).scalar()
        return None if due is None else float(due)

    def finish_delivery(self, delivery_id: int) -> None:
        with self._engine.begin() as conn:
            conn.execute(delete(deliveries).where(deliveries.c.id == delivery_id))

    def retry_delivery(self, delivery_id: int, not_before: float) -> None:
        t = deliveries
        with self._engine.begin() as conn:
            conn.execute(
                sql_update(t)
                .where(t.c.id == delivery_id)
                .values(attempts=t.c.attempts + 1, not_before=not_before)
            )
