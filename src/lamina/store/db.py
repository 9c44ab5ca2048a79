"""The metadata schema (SQLAlchemy Core) and the SQLite engine of the embedded default.

The schema is plain Core tables so the multi-node mode can point the same code at PostgreSQL.
SQLite runs in WAL mode with synchronous=FULL: a commit is on disk when it returns, which is what
"nothing accepted is lost" needs for async events; WAL keeps readers off the writer's back.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Engine,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    and_,
    create_engine,
    event,
    insert,
    inspect,
    text,
    update,
)
from sqlalchemy.schema import CreateColumn

metadata = MetaData()

functions = Table(
    "functions",
    metadata,
    Column("region", String(32), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("tags", JSON, nullable=False, default=dict),
    Column("created_at", Float, nullable=False),
)

function_versions = Table(
    "function_versions",
    metadata,
    Column("region", String(32), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("version", String(16), primary_key=True),
    Column("data", JSON, nullable=False),
)

# The last published version number per function: numbers are never reused, even after the
# version is deleted, so the counter lives apart from the versions themselves.
version_counters = Table(
    "version_counters",
    metadata,
    Column("region", String(32), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("last_version", Integer, nullable=False),
)

aliases = Table(
    "aliases",
    metadata,
    Column("region", String(32), primary_key=True),
    Column("function_name", String(64), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("data", JSON, nullable=False),
)

async_events = Table(
    "async_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(64), nullable=False),
    Column("region", String(32), nullable=False),
    Column("function_name", String(64), nullable=False),
    Column("qualifier", String(128), nullable=False),
    Column("invoked_arn", Text, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("client_context", Text, nullable=True),
    Column("received_at", Float, nullable=False),
    # queued -> leased -> (deleted when done); a lease left behind by a crash is re-queued at start
    Column("state", String(16), nullable=False, index=True),
    Column("attempts", Integer, nullable=False, default=0),  # runs of the function (retries + 1)
    # Retries: not leased before this epoch time; consecutive system errors (their backoff's exponent).
    Column("not_before", Float, nullable=False, server_default="0"),
    Column("system_errors", Integer, nullable=False, server_default="0"),
    # Why the event is waiting (for `lamina events`): the last try's error type and message, or
    # the throttle's reason; empty until something went wrong.
    Column("last_error_type", Text, nullable=False, server_default=""),
    Column("last_error_message", Text, nullable=False, server_default=""),
    # The invoke's X-Amzn-Trace-Id: the runs of an async event continue the caller's trace.
    Column("trace_id", Text, nullable=True),
    Column("trace_generated", Integer, nullable=False, server_default="0"),
)


def sqlite_engine(path: Path, schema: MetaData = metadata, *, synchronous: str = "FULL") -> Engine:
    """An engine on a SQLite file in WAL mode with ``schema`` created; ``synchronous`` per database."""

    def pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA busy_timeout=5000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    engine = create_engine(f"sqlite:///{path}", future=True)
    event.listen(engine, "connect", pragmas)
    schema.create_all(engine)
    add_missing_columns(engine, schema)
    return engine


def add_missing_columns(engine: Engine, schema: MetaData) -> None:
    """``create_all`` makes missing tables but not columns added to existing ones since: a database
    written by an older lamina gets them here (each such column has a server default)."""
    present = inspect(engine)
    with engine.begin() as conn:
        for table in schema.sorted_tables:
            if not present.has_table(table.name):
                continue
            have = {c["name"] for c in present.get_columns(table.name)}
            for column in table.columns:
                if column.name not in have:
                    ddl = CreateColumn(column).compile(dialect=engine.dialect)
                    conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {ddl}"))


def upsert(conn: Connection, table: Table, key: Mapping[str, Any], values: Mapping[str, Any]) -> None:
    """Write the row whose primary key is ``key``: update its ``values``, or insert it."""
    where = and_(*(table.c[name] == value for name, value in key.items()))
    if conn.execute(update(table).where(where).values(**values)).rowcount == 0:
        conn.execute(insert(table).values(**key, **values))
