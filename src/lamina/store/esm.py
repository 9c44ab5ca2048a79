"""Event source mappings behind ``MetadataStore``: one row per mapping, keyed by its UUID.

The settings (BatchSize, FilterCriteria, ScalingConfig, ...) are one JSON document, so a member
AWS adds needs no schema change; the function's region and name are columns so a function's
mappings can be found and dropped with it.  Like every store method these block and run on the
store's single worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Column, Engine, Float, String, Table, delete, insert, select, update

from lamina.store.db import metadata, upsert

event_source_mappings = Table(
    "event_source_mappings",
    metadata,
    Column("uuid", String(36), primary_key=True),
    Column("region", String(32), nullable=False, index=True),
    Column("function_name", String(64), nullable=False),
    Column("function_arn", String(256), nullable=False),  # qualified when the mapping named a qualifier
    Column("event_source_arn", String(256), nullable=False),
    Column("data", JSON, nullable=False),
    Column("enabled", String(5), nullable=False),  # "true" / "false": what the user asked for
    Column("last_modified", Float, nullable=False),
)


# Where each shard of a stream mapping is: the last sequence number handed to the function and
# settled (succeeded or discarded); END once a closed shard is finished (its children may start).
esm_checkpoints = Table(
    "esm_checkpoints",
    metadata,
    Column("uuid", String(36), primary_key=True),
    Column("shard_id", String(128), primary_key=True),
    Column("sequence_number", String(128), nullable=False),
)
SHARD_END = "END"


@dataclass(frozen=True, slots=True)
class MappingRow:
    uuid: str
    region: str
    function_name: str
    function_arn: str
    event_source_arn: str
    data: dict[str, Any]
    enabled: bool
    last_modified: float


class EsmRows:
    _engine: Engine

    def load_mappings(self) -> list[MappingRow]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(event_source_mappings)).all()
        return [
            MappingRow(
                r.uuid,
                r.region,
                r.function_name,
                r.function_arn,
                r.event_source_arn,
                dict(r.data),
                r.enabled == "true",
                float(r.last_modified),
            )
            for r in rows
        ]

    def put_mapping(self, row: MappingRow, *, new: bool) -> None:
        values = {
            "region": row.region,
            "function_name": row.function_name,
            "function_arn": row.function_arn,
            "event_source_arn": row.event_source_arn,
            "data": row.data,
            "enabled": "true" if row.enabled else "false",
            "last_modified": row.last_modified,
        }
        t = event_source_mappings
        with self._engine.begin() as conn:
            if new:
                conn.execute(insert(t).values(uuid=row.uuid, **values))
            else:
                conn.execute(update(t).where(t.c.uuid == row.uuid).values(**values))

    def delete_mapping(self, uuid: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(delete(event_source_mappings).where(event_source_mappings.c.uuid == uuid))
            conn.execute(delete(esm_checkpoints).where(esm_checkpoints.c.uuid == uuid))

    def load_checkpoints(self, uuid: str) -> dict[str, str]:
        t = esm_checkpoints
        with self._engine.connect() as conn:
            rows = conn.execute(select(t.c.shard_id, t.c.sequence_number).where(t.c.uuid == uuid)).all()
        return {r.shard_id: r.sequence_number for r in rows}

    def put_checkpoint(self, uuid: str, shard_id: str, sequence_number: str) -> None:
        with self._engine.begin() as conn:
            upsert(
                conn,
                esm_checkpoints,
                {"uuid": uuid, "shard_id": shard_id},
                {"sequence_number": sequence_number},
            )
