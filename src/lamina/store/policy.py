"""Resource-policy rows behind ``MetadataStore``: one row per function or qualifier (version/alias).

The table joins the shared schema (``lamina.store.db.metadata``) at import, which happens before
the engine is created, so ``create_all`` makes it on new and existing databases alike.  Like every
store method these block and run on the store's single worker thread.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column, Engine, String, Table, and_, delete, insert, select, update

from lamina.store.db import metadata

UNQUALIFIED = ""  # the qualifier column of the function's own (unqualified) policy

function_policies = Table(
    "function_policies",
    metadata,
    Column("region", String(32), primary_key=True),
    Column("function_name", String(64), primary_key=True),
    Column("qualifier", String(128), primary_key=True),
    # {"revision_id": str, "statements": [statement, ...]} in the order they were added
    Column("data", JSON, nullable=False),
)

PolicyKey = tuple[str, str, str]  # region, function name, qualifier ("" when unqualified)


class PolicyRows:
    _engine: Engine

    def load_policies(self) -> dict[PolicyKey, dict[str, Any]]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(function_policies)).all()
        return {(r.region, r.function_name, r.qualifier): dict(r.data) for r in rows}

    def put_policy(self, key: PolicyKey, data: dict[str, Any] | None) -> None:
        """Insert, replace, or (``data`` None) delete the policy row of ``key``."""
        region, name, qualifier = key
        where = and_(
            function_policies.c.region == region,
            function_policies.c.function_name == name,
            function_policies.c.qualifier == qualifier,
        )
        with self._engine.begin() as conn:
            if data is None:
                conn.execute(delete(function_policies).where(where))
            elif conn.execute(select(function_policies.c.qualifier).where(where)).first() is None:
                conn.execute(
                    insert(function_policies).values(
                        region=region, function_name=name, qualifier=qualifier, data=data
                    )
                )
            else:
                conn.execute(update(function_policies).where(where).values(data=data))

    def delete_policies(self, region: str, name: str, qualifier: str | None = None) -> None:
        """Every policy of a function (``qualifier`` None), or the one of a version/alias."""
        where = and_(function_policies.c.region == region, function_policies.c.function_name == name)
        if qualifier is not None:
            where = and_(where, function_policies.c.qualifier == qualifier)
        with self._engine.begin() as conn:
            conn.execute(delete(function_policies).where(where))
