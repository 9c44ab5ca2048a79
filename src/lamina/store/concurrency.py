"""Reserved concurrency rows behind ``MetadataStore``: one row per function that has a reservation.

A reservation belongs to the function (AWS has no per-version one), so the key is region + name.
The table joins the shared schema at import, before the engine is created, so ``create_all`` makes
it on new and existing databases alike.  Like every store method these block and run on the
store's single worker thread; ``delete_function`` removes the row with the function.
"""

from __future__ import annotations

from sqlalchemy import Column, Engine, Integer, String, Table, and_, delete, insert, select, update

from lamina.store.db import metadata

function_concurrency = Table(
    "function_concurrency",
    metadata,
    Column("region", String(32), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("reserved", Integer, nullable=False),  # ReservedConcurrentExecutions
)


class ConcurrencyRows:
    _engine: Engine

    def load_reserved(self) -> dict[tuple[str, str], int]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(function_concurrency)).all()
        return {(r.region, r.name): int(r.reserved) for r in rows}

    def put_reserved(self, region: str, name: str, value: int | None) -> None:
        """Insert, replace, or (``value`` None) delete the function's reservation."""
        where = and_(function_concurrency.c.region == region, function_concurrency.c.name == name)
        with self._engine.begin() as conn:
            if value is None:
                conn.execute(delete(function_concurrency).where(where))
            elif conn.execute(select(function_concurrency.c.name).where(where)).first() is None:
                conn.execute(insert(function_concurrency).values(region=region, name=name, reserved=value))
            else:
                conn.execute(update(function_concurrency).where(where).values(reserved=value))
