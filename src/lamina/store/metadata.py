"""Function metadata and the async event queue, over SQLAlchemy Core.

Concurrency invariant: every database call runs on this store's single worker thread, so the
event loop never blocks on SQLite and writes never contend with each other inside the process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Engine, and_, delete, func, insert, select, tuple_, update

from lamina.model.function import FunctionVersion
from lamina.store.concurrency import ConcurrencyRows, function_concurrency
from lamina.store.db import async_events, function_versions, functions
from lamina.store.deliveries import DeliveryRows
from lamina.store.esm import EsmRows
from lamina.store.event_invoke import EventInvokeRows
from lamina.store.failed_events import FailedEventRows
from lamina.store.policy import PolicyRows
from lamina.store.provisioned import ProvisionedRows
from lamina.store.timers import TimerRows
from lamina.store.urls import UrlRows
from lamina.store.versions import VersionRows

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    id: int
    request_id: str
    region: str
    function_name: str
    qualifier: str
    invoked_arn: str
    payload: bytes
    client_context: str | None
    received_at: float
    attempts: int  # runs of the function so far, this one included
    system_errors: int  # consecutive tries lost to a platform error before this one
    # Why the previous try did not finish it (error type and message, or a throttle's reason).
    last_error_type: str = ""
    last_error_message: str = ""
    trace_id: str | None = None
    trace_generated: bool = False


_ENQUEUE_COLUMNS = (
    "request_id",
    "region",
    "function_name",
    "qualifier",
    "invoked_arn",
    "payload",
    "client_context",
    "received_at",
    "trace_id",
    "trace_generated",
)
_ENQUEUE_DEFAULTS = {"trace_generated": False}  # the NOT NULL columns a row may leave out
_ENQUEUE_SQL = "INSERT INTO {} ({}, state, attempts) VALUES ({}, 'queued', 0)".format(
    async_events.name, ", ".join(_ENQUEUE_COLUMNS), ", ".join(["?"] * len(_ENQUEUE_COLUMNS))
)


class MetadataStore(
    VersionRows,
    PolicyRows,
    ConcurrencyRows,
    ProvisionedRows,
    EventInvokeRows,
    DeliveryRows,
    FailedEventRows,
    EsmRows,
    UrlRows,
    TimerRows,
):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lamina-store")

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._engine.dispose()

    # -- functions (sync; run through call()) -------------------------------------------------
    def load_versions(self) -> list[FunctionVersion]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(function_versions.c.data)).scalars().all()
        return [FunctionVersion.from_row(r) for r in rows]

    def create_function(self, fv: FunctionVersion, tags: dict[str, str]) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                insert(functions).values(region=fv.region, name=fv.name, tags=tags, created_at=time.time())
            )
            conn.execute(
                insert(function_versions).values(
                    region=fv.region, name=fv.name, version=fv.version, data=fv.to_row()
                )
            )

    def put_version(self, fv: FunctionVersion) -> None:
        key = and_(
            function_versions.c.region == fv.region,
            function_versions.c.name == fv.name,
            function_versions.c.version == fv.version,
        )
        with self._engine.begin() as conn:
            conn.execute(update(function_versions).where(key).values(data=fv.to_row()))

    def get_tags(self, region: str, name: str) -> dict[str, str]:
        with self._engine.connect() as conn:
            tags = conn.execute(
                select(functions.c.tags).where(and_(functions.c.region == region, functions.c.name == name))
            ).scalar()
        return dict(tags or {})

    def load_tags(self) -> list[tuple[str, str, dict[str, str]]]:
        """(region, name, tags) of every function that has tags."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(functions.c.region, functions.c.name, functions.c.tags)).all()
        return [(region, name, dict(tags)) for region, name, tags in rows if tags]

    def put_tags(self, region: str, name: str, tags: dict[str, str]) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                update(functions)
                .where(and_(functions.c.region == region, functions.c.name == name))
                .values(tags=tags)
            )

    def delete_function(self, region: str, name: str) -> None:
        self.delete_function_versions(region, name)
        self.delete_provisioned(region, name)
        self.delete_event_invoke_configs(region, name)
        self.delete_failed_events(region, name)
        with self._engine.begin() as conn:
            conn.execute(
                delete(function_versions).where(
                    and_(function_versions.c.region == region, function_versions.c.name == name)
                )
            )
            conn.execute(
                delete(functions).where(and_(functions.c.region == region, functions.c.name == name))
            )
            conn.execute(
                delete(function_concurrency).where(
                    and_(function_concurrency.c.region == region, function_concurrency.c.name == name)
                )
            )
            conn.execute(
                delete(async_events).where(
                    and_(async_events.c.region == region, async_events.c.function_name == name)
                )
            )

    # -- async events ------------------------------------------------------------------------------
    def enqueue_events(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert a batch in ONE transaction (group commit): one fsync for many 202s, and one
        executemany for all the rows (a statement per row cost more than the fsync)."""
        params = [tuple(row.get(c, _ENQUEUE_DEFAULTS.get(c)) for c in _ENQUEUE_COLUMNS) for row in rows]
        with self._engine.begin() as conn:
            # The driver's executemany on one prepared INSERT: SQLAlchemy's per-row processing of
            # dicts cost as much as the rest of the commit, on the thread the accepts wait on.
            conn.exec_driver_sql(_ENQUEUE_SQL, params)

    def requeue_leased(self) -> int:
        """After a crash, events that were being processed go back to the queue."""
        with self._engine.begin() as conn:
            res = conn.execute(
                update(async_events).where(async_events.c.state == "leased").values(state="queued")
            )
        return int(res.rowcount)

    def lease_events(self, limit: int, skip: Sequence[tuple[str, str]] = ()) -> list[QueuedEvent]:
        """The oldest queued events that are due, leased; none of the (region, function name) pairs
        in ``skip``."""
        where = and_(async_events.c.state == "queued", async_events.c.not_before <= time.time())
        if skip:
            where = and_(where, tuple_(async_events.c.region, async_events.c.function_name).not_in(skip))
        with self._engine.begin() as conn:
            rows = conn.execute(
                select(async_events).where(where).order_by(async_events.c.id).limit(limit)
            ).all()
            if rows:
                conn.execute(
                    update(async_events)
                    .where(async_events.c.id.in_([r.id for r in rows]))
                    .values(state="leased", attempts=async_events.c.attempts + 1)
                )
        return [
            QueuedEvent(
                id=r.id,
                request_id=r.request_id,
                region=r.region,
                function_name=r.function_name,
                qualifier=r.qualifier,
                invoked_arn=r.invoked_arn,
                payload=r.payload,
                client_context=r.client_context,
                received_at=r.received_at,
                attempts=r.attempts + 1,
                system_errors=r.system_errors,
                last_error_type=r.last_error_type,
                last_error_message=r.last_error_message,
                trace_id=r.trace_id,
                trace_generated=bool(r.trace_generated),
            )
            for r in rows
        ]

    def release_events(self, ids: Sequence[int], reason: str = "") -> None:
        """Leased events that could not start (throttled, for ``reason``) go back to the queue; the
        lease that did not run the function does not count as an attempt."""
        why = {"last_error_type": "Throttled", "last_error_message": reason} if reason else {}
        with self._engine.begin() as conn:
            conn.execute(
                update(async_events)
                .where(async_events.c.id.in_(list(ids)))
                .values(state="queued", attempts=async_events.c.attempts - 1, **why)
            )

    def retry_event(
        self,
        event_id: int,
        not_before: float,
        system_error: bool,
        error_type: str = "",
        error_message: str = "",
    ) -> None:
        """A leased event goes back to the queue until ``not_before``: after a function error (an
        attempt spent) or a system error (not an attempt; one more towards its backoff), kept with
        the error's type and message."""
        values: dict[str, Any]
        if system_error:
            values = {
                "attempts": async_events.c.attempts - 1,
                "system_errors": async_events.c.system_errors + 1,
            }
        else:
            values = {"system_errors": 0}
        with self._engine.begin() as conn:
            conn.execute(
                update(async_events)
                .where(async_events.c.id == event_id)
                .values(
                    state="queued",
                    not_before=not_before,
                    last_error_type=error_type,
                    last_error_message=error_message,
                    **values,
                )
            )

    def next_due(self, skip: Sequence[tuple[str, str]] = ()) -> float | None:
        """When the earliest queued event is due (None: nothing is queued).  No filter on the time:
        an event that fell due since ``lease_events`` looked must still answer (at once)."""
        where = async_events.c.state == "queued"
        if skip:
            where = and_(where, tuple_(async_events.c.region, async_events.c.function_name).not_in(skip))
        with self._engine.connect() as conn:
            due = conn.execute(select(func.min(async_events.c.not_before)).where(where)).scalar()
        return None if due is None else float(due)

    def finish_events(self, ids: Sequence[int]) -> None:
        with self._engine.begin() as conn:
            conn.execute(delete(async_events).where(async_events.c.id.in_(list(ids))))

    def queued_count(self) -> int:
        with self._engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(async_events)).scalar() or 0)
