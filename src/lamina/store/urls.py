"""Function URL configs behind ``MetadataStore``: one row per (function, qualifier) that has a URL.

The qualifier is ``$LATEST`` for the function's own URL or an alias name (AWS refuses versions).
Each row keeps the URL's id and the port lamina serves it on, so a URL survives restarts; the
settings (AuthType, Cors, InvokeMode) are one JSON document.  The table joins the shared schema at
import, before the engine is created, so ``create_all`` makes it on new and existing databases.
Like every store method these block and run on the store's single worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import JSON, Column, Engine, Integer, String, Table, and_, delete, select

from lamina.store.db import metadata, upsert

function_urls = Table(
    "function_urls",
    metadata,
    Column("region", String(32), primary_key=True),
    Column("function_name", String(64), primary_key=True),
    Column("qualifier", String(128), primary_key=True),
    Column("url_id", String(64), nullable=False, unique=True),
    Column("port", Integer, nullable=False),
    Column("data", JSON, nullable=False),  # AuthType, Cors, InvokeMode
    Column("creation_time", String(40), nullable=False),  # the wire's CreationTime
    Column("last_modified_time", String(40), nullable=False),
)


@dataclass(frozen=True, slots=True)
class UrlConfig:
    region: str
    function_name: str
    qualifier: str  # $LATEST or an alias name
    url_id: str
    port: int
    creation_time: str
    last_modified_time: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def auth_type(self) -> str:
        return str(self.data.get("AuthType", "AWS_IAM"))

    @property
    def cors(self) -> dict[str, Any] | None:
        cors = self.data.get("Cors")
        return dict(cors) if cors is not None else None


class UrlRows:
    _engine: Engine

    def load_url_configs(self) -> list[UrlConfig]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(function_urls)).all()
        return [
            UrlConfig(
                region=r.region,
                function_name=r.function_name,
                qualifier=r.qualifier,
                url_id=r.url_id,
                port=int(r.port),
                creation_time=r.creation_time,
                last_modified_time=r.last_modified_time,
                data=dict(r.data),
            )
            for r in rows
        ]

    def put_url_config(self, config: UrlConfig) -> None:
        t = function_urls
        values = {
            "url_id": config.url_id,
            "port": config.port,
            "data": config.data,
            "creation_time": config.creation_time,
            "last_modified_time": config.last_modified_time,
        }
        key = {"region": config.region, "function_name": config.function_name, "qualifier": config.qualifier}
        with self._engine.begin() as conn:
            upsert(conn, t, key, values)

    def delete_url_configs(self, region: str, function_name: str, qualifier: str | None = None) -> None:
        """The URL of one qualifier, or (``qualifier`` None) every URL of the function."""
        t = function_urls
        where = and_(t.c.region == region, t.c.function_name == function_name)
        if qualifier is not None:
            where = and_(where, t.c.qualifier == qualifier)
        with self._engine.begin() as conn:
            conn.execute(delete(t).where(where))
