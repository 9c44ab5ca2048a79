"""Event invoke configs behind ``MetadataStore``: one row per function qualifier that has one.

The key is region + function + qualifier ($LATEST, a version number or an alias name: AWS keeps a
config on the qualifier it was put on; a Put without a qualifier is $LATEST's).  The settings are
one JSON document so a new member needs no schema change.  The table joins the shared schema at
import, before the engine is created, so ``create_all`` makes it on new and existing databases
alike.  Like every store method these block and run on the store's single worker thread;
``delete_function`` removes a function's rows with it, the event invoke service a qualifier's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Column, Engine, Float, String, Table, and_, delete, select

from lamina.store.db import metadata, upsert

event_invoke_configs = Table(
    "event_invoke_configs",
    metadata,
    Column("region", String(32), primary_key=True),
    Column("function_name", String(64), primary_key=True),
    Column("qualifier", String(128), primary_key=True),
    Column("data", JSON, nullable=False),  # MaximumRetryAttempts, MaximumEventAgeInSeconds, DestinationConfig
    Column("last_modified", Float, nullable=False),  # epoch seconds: the wire's LastModified
)


@dataclass(frozen=True, slots=True)
class EventInvokeConfig:
    region: str
    function_name: str
    qualifier: str
    data: dict[str, Any]
    last_modified: float


class EventInvokeRows:
    _engine: Engine

    def load_event_invoke_configs(self) -> list[EventInvokeConfig]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(event_invoke_configs)).all()
        return [
            EventInvokeConfig(r.region, r.function_name, r.qualifier, dict(r.data), float(r.last_modified))
            for r in rows
        ]

    def put_event_invoke_config(self, config: EventInvokeConfig) -> None:
        t = event_invoke_configs
        values = {"data": config.data, "last_modified": config.last_modified}
        key = {"region": config.region, "function_name": config.function_name, "qualifier": config.qualifier}
        with self._engine.begin() as conn:
            upsert(conn, t, key, values)

    def delete_event_invoke_configs(
        self, region: str, function_name: str, qualifier: str | None = None
    ) -> None:
        """The config of one qualifier, or (``qualifier`` None) every config of the function."""
        t = event_invoke_configs
        where = and_(t.c.region == region, t.c.function_name == function_name)
        if qualifier is not None:
            where = and_(where, t.c.qualifier == qualifier)
        with self._engine.begin() as conn:
            conn.execute(delete(t).where(where))
