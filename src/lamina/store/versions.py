"""Published versions, their never-reused counter, and aliases: rows behind ``MetadataStore``.

Like every store method these are blocking and run on the store's single worker thread, so the
read-increment-insert of ``publish_version`` cannot interleave with another publish.
"""

from __future__ import annotations

from sqlalchemy import Engine, and_, delete, insert, select, update

from lamina.model.alias import Alias
from lamina.model.function import FunctionVersion
from lamina.store.db import aliases, function_versions, upsert, version_counters


class VersionRows:
    _engine: Engine

    def publish_version(self, fv: FunctionVersion) -> FunctionVersion:
        """Insert ``fv`` under the next number of its function (one transaction); return it numbered."""
        key = and_(version_counters.c.region == fv.region, version_counters.c.name == fv.name)
        with self._engine.begin() as conn:
            last = conn.execute(select(version_counters.c.last_version).where(key)).scalar()
            number = (last or 0) + 1
            if last is None:
                conn.execute(
                    insert(version_counters).values(region=fv.region, name=fv.name, last_version=number)
                )
            else:
                conn.execute(update(version_counters).where(key).values(last_version=number))
            published = fv.replace(version=str(number))
            conn.execute(
                insert(function_versions).values(
                    region=fv.region, name=fv.name, version=published.version, data=published.to_row()
                )
            )
        return published

    def delete_version(self, region: str, name: str, version: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                delete(function_versions).where(
                    and_(
                        function_versions.c.region == region,
                        function_versions.c.name == name,
                        function_versions.c.version == version,
                    )
                )
            )

    def load_aliases(self) -> list[Alias]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(aliases.c.data)).scalars().all()
        return [Alias.from_row(r) for r in rows]

    def put_alias(self, alias: Alias) -> None:
        key = {"region": alias.region, "function_name": alias.function_name, "name": alias.name}
        with self._engine.begin() as conn:
            upsert(conn, aliases, key, {"data": alias.to_row()})

    def delete_alias(self, region: str, function_name: str, name: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                delete(aliases).where(
                    and_(
                        aliases.c.region == region,
                        aliases.c.function_name == function_name,
                        aliases.c.name == name,
                    )
                )
            )

    def delete_function_versions(self, region: str, name: str) -> None:
        """Aliases and the counter of a function being deleted (its versions go with its rows)."""
        with self._engine.begin() as conn:
            conn.execute(
                delete(aliases).where(and_(aliases.c.region == region, aliases.c.function_name == name))
            )
            conn.execute(
                delete(version_counters).where(
                    and_(version_counters.c.region == region, version_counters.c.name == name)
                )
            )
