"""Provisioned concurrency configs behind ``MetadataStore``: one row per version or alias that has one.

The key is region + function + qualifier (a version number or an alias name: AWS keeps the
config on the qualifier it was put on).  The table joins the shared schema at import, before the
engine is created, so ``create_all`` makes it on new and existing databases alike.  Like every
store method these block and run on the store's single worker thread; ``delete_function``
removes a function's rows with it, and the provisioned service drops a version's or an alias's.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    Column,
    ColumnElement,
    Engine,
    Integer,
    String,
    Table,
    and_,
    delete,
    select,
)

from lamina.store.db import metadata, upsert

provisioned_concurrency = Table(
    "provisioned_concurrency",
    metadata,
    Column("region", String(32), primary_key=True),
    Column("function_name", String(64), primary_key=True),
    Column("qualifier", String(128), primary_key=True),
    Column("requested", Integer, nullable=False),  # RequestedProvisionedConcurrentExecutions
    Column("last_modified", String(32), nullable=False),  # as AWS renders it: 2019-11-21T19:32:12+0000
)


@dataclass(frozen=True, slots=True)
class ProvisionedConfig:
    region: str
    function_name: str
    qualifier: str
    requested: int
    last_modified: str


class ProvisionedRows:
    _engine: Engine

    def load_provisioned(self) -> list[ProvisionedConfig]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(provisioned_concurrency)).all()
        return [
            ProvisionedConfig(r.region, r.function_name, r.qualifier, int(r.requested), r.last_modified)
            for r in rows
        ]

    def put_provisioned(self, config: ProvisionedConfig) -> None:
        key = {"region": config.region, "function_name": config.function_name, "qualifier": config.qualifier}
        values = {"requested": config.requested, "last_modified": config.last_modified}
        with self._engine.begin() as conn:
            upsert(conn, provisioned_concurrency, key, values)

    def delete_provisioned(self, region: str, function_name: str, qualifier: str | None = None) -> None:
        """The config of one qualifier, or (``qualifier`` None) every config of the function."""
        where = and_(
            provisioned_concurrency.c.region == region,
            provisioned_concurrency.c.function_name == function_name,
        )
        if qualifier is not None:
            where = and_(where, provisioned_concurrency.c.qualifier == qualifier)
        with self._engine.begin() as conn:
            conn.execute(delete(provisioned_concurrency).where(where))


def _key(region: str, function_name: str, qualifier: str) -> ColumnElement[bool]:
    return and_(
        provisioned_concurrency.c.region == region,
        provisioned_concurrency.c.function_name == function_name,
        provisioned_concurrency.c.qualifier == qualifier,
    )
