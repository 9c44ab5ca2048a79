"""Layer versions and their per-layer version counters (SQLAlchemy Core, on the shared schema).

Importing this module registers its tables on ``lamina.store.db.metadata``; ``sqlite_engine``
creates them with the rest.  Every method is blocking: run it through ``MetadataStore.call`` so
it executes on the store's single worker thread.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column, Engine, Integer, String, Table, and_, delete, insert, select, update

from lamina.store.db import metadata

layer_versions = Table(
    "layer_versions",
    metadata,
    Column("region", String(32), primary_key=True),
    Column("name", String(140), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("data", JSON, nullable=False),
)

# Layer version numbers are never reused, even after a delete: the counter lives apart.
layer_counters = Table(
    "layer_counters",
    metadata,
    Column("region", String(32), primary_key=True),
    Column("name", String(140), primary_key=True),
    Column("last_version", Integer, nullable=False),
)


def _key(region: str, name: str, version: int) -> Any:
    return and_(
        layer_versions.c.region == region,
        layer_versions.c.name == name,
        layer_versions.c.version == version,
    )


class LayerRows:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def load(self) -> list[dict[str, Any]]:
        with self._engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(layer_versions.c.data)).scalars().all()]

    def publish(self, region: str, name: str, data: dict[str, Any]) -> int:
        """Take the next version number and store ``data`` under it, in one transaction."""
        ckey = and_(layer_counters.c.region == region, layer_counters.c.name == name)
        with self._engine.begin() as conn:
            last = conn.execute(select(layer_counters.c.last_version).where(ckey)).scalar()
            version = (last or 0) + 1
            if last is None:
                conn.execute(insert(layer_counters).values(region=region, name=name, last_version=version))
            else:
                conn.execute(update(layer_counters).where(ckey).values(last_version=version))
            row = {**data, "version": version}
            conn.execute(insert(layer_versions).values(region=region, name=name, version=version, data=row))
        return version

    def put(self, region: str, name: str, version: int, data: dict[str, Any]) -> None:
        with self._engine.begin() as conn:
            conn.execute(update(layer_versions).where(_key(region, name, version)).values(data=data))

    def delete(self, region: str, name: str, version: int) -> None:
        with self._engine.begin() as conn:
            conn.execute(delete(layer_versions).where(_key(region, name, version)))
