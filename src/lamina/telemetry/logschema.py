"""The log store's tables (its own SQLite file, apart from the metadata database)."""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, MetaData, String, Table, Text, UniqueConstraint

schema = MetaData()
log_groups = Table(
    "log_groups",
    schema,
    Column("name", String(512), primary_key=True),
    Column("created_ms", Integer, nullable=False),
    Column("retention_days", Integer, nullable=True),
)
log_streams = Table(
    "log_streams",
    schema,
    Column("id", Integer, primary_key=True),
    Column("group_name", String(512), nullable=False),
    Column("name", String(512), nullable=False),
    Column("created_ms", Integer, nullable=False),
    Column("first_event_ms", Integer, nullable=True),
    Column("last_event_ms", Integer, nullable=True),
    Column("last_ingestion_ms", Integer, nullable=True),
    # UTF-8 bytes of its messages + 26 per event, as CloudWatch counts: the size bound is per group.
    Column("stored_bytes", Integer, nullable=False, server_default="0"),
    UniqueConstraint("group_name", "name", name="uq_stream"),
)
# Events refer to their stream by id: rows and the one index stay small, which is most of what a
# flush costs (the log writer competes with the event loop for the CPU on every invoke).  The
# index's implicit rowid tail orders events of equal timestamp by arrival: (timestamp, rowid) is
# the position pagination tokens carry.
log_events = Table(
    "log_events",
    schema,
    Column("stream_id", Integer, nullable=False),
    Column("timestamp_ms", Integer, nullable=False),
    Column("ingestion_ms", Integer, nullable=False),
    Column("message", Text, nullable=False),
    Index("ix_events_stream_time", "stream_id", "timestamp_ms"),
)
