"""Event source mappings: Create/Get/Update/Delete/ListEventSourceMappings and their pollers.

A mapping's lifecycle is AWS's (``EsmState``, guarded transitions): the API answers at once with
the transitional state (Creating, Updating, Enabling, Disabling, Deleting) and the mapping settles
(Enabled, Disabled, or gone) once its pollers have started or stopped -- clients wait with
GetEventSourceMapping, as on AWS.  Mappings are stored, so they survive restarts and resume
polling at start.  A mapping belongs to its function: deleting the function (or the alias it
names) deletes its mappings.

Sources: SQS queues (``lamina.events.sqs``), Kinesis and DynamoDB streams (``lamina.events.streams``;
their per-shard checkpoints are stored with the mapping).

Concurrency invariant: event loop only; writes change memory after the store committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from lamina.errors import AwsError
from lamina.events import esm_rules
from lamina.events.patterns import Matcher
from lamina.events.sqs import SqsPoller
from lamina.events.stream_sources import StreamSource
from lamina.events.streams import StreamPoller, discard_record
from lamina.functions.arns import parse_function_ref, resolve_qualifier
from lamina.functions.service import FunctionService
from lamina.store.deliveries import Delivery
from lamina.store.esm import MappingRow
from lamina.store.metadata import MetadataStore
from lamina.telemetry.metrics import MetricsRegistry

log = logging.getLogger("lamina.events")

DEFAULT_POLLERS = 2  # SQS pollers per mapping without ScalingConfig.MaximumConcurrency
POLL_THREADS = 32  # long polls block a thread each

Invoke = Callable[[str, str, bytes], Awaitable[tuple[str | None, bytes]]]  # region, function ARN, payload


class EsmState(enum.Enum):
    CREATING = "Creating"
    ENABLING = "Enabling"
    ENABLED = "Enabled"
    DISABLING = "Disabling"
    DISABLED = "Disabled"
    UPDATING = "Updating"
    DELETING = "Deleting"


_TRANSITIONS = {
    EsmState.CREATING: {EsmState.ENABLED, EsmState.DISABLED, EsmState.DELETING},
    EsmState.ENABLING: {EsmState.ENABLED, EsmState.DELETING},
    EsmState.ENABLED: {EsmState.UPDATING, EsmState.DISABLING, EsmState.DELETING},
    EsmState.DISABLING: {EsmState.DISABLED, EsmState.DELETING},
    EsmState.DISABLED: {EsmState.UPDATING, EsmState.ENABLING, EsmState.DELETING},
    EsmState.UPDATING: {EsmState.ENABLED, EsmState.DISABLED, EsmState.DELETING},
    EsmState.DELETING: set(),
}


@dataclass
class Mapping:
    row: MappingRow
    state: EsmState
    filters: list[Matcher]
    reason: str = "USER_INITIATED"
    last_result: str = "No records processed"
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def record_result(self, text: str) -> None:
        """The pollers' LastProcessingResult."""
        self.last_result = text

    def transition(self, to: EsmState) -> None:
        if to not in _TRANSITIONS[self.state]:
            raise AwsError(
                "ResourceInUseException",
                f"Cannot update the event source mapping because it is in use (state {self.state.value}).",
            )
        self.state = to


class EsmService:
    def __init__(
        self,
        *,
        functions: FunctionService,
        store: MetadataStore,
        invoke: Invoke,
        client: Callable[[str, str], Any],
        deliver: Callable[[list[Delivery]], Awaitable[None]],
        metrics: MetricsRegistry | None = None,
    ) -> None:
        self._metrics = metrics
        self._deliver = deliver  # the destinations outbox: OnFailure records of discarded batches
        self._functions = functions
        self._store = store
        self._invoke = invoke
        self._client = client  # (service, region) -> boto3 client (destinations' RemoteTargets.client)
        self._mappings: dict[str, Mapping] = {}
        self._executor = ThreadPoolExecutor(max_workers=POLL_THREADS, thread_name_prefix="lamina-esm")
        self._background: set[asyncio.Task[None]] = set()

    async def load(self) -> None:
        for row in await self._store.call(self._store.load_mappings):
            try:
                filters = esm_rules.compile_filters(row.data.get("FilterCriteria"))
            except AwsError:
                filters = []
            mapping = Mapping(row, EsmState.ENABLING if row.enabled else EsmState.DISABLED, filters)
            self._mappings[row.uuid] = mapping
            if row.enabled:
                self._settle(mapping, EsmState.ENABLED)

    async def close(self) -> None:
        for mapping in self._mappings.values():
            await self._stop(mapping)
        for task in list(self._background):
            task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- the API ------------------------------------------------------------------------------
    async def create(self, region: str, params: dict[str, Any]) -> dict[str, Any]:
        source = params["EventSourceArn"]
        settings = esm_rules.settings_for_create(source, params)
        filters = esm_rules.compile_filters(settings.get("FilterCriteria"))
        function_arn, name = self._function(region, params["FunctionName"])
        async with self._functions.lock(region, name):
            self._function(region, params["FunctionName"])  # still there under the lock
            for other in self._mappings.values():
                if other.row.event_source_arn == source and other.row.function_arn == function_arn:
                    raise AwsError(
                        "ResourceConflictException",
                        f'An event source mapping with SQS arn (" {source} ") and function (" {name} ") '
                        "already exists. Please update or delete the existing mapping with UUID "
                        f"{other.row.uuid}",
                    )
            enabled = params.get("Enabled", True) is not False
            row = MappingRow(
                str(uuid.uuid4()), region, name, function_arn, source, settings, enabled, time.time()
            )
            await self._store.call(partial(self._store.put_mapping, row, new=True))
        mapping = Mapping(row, EsmState.CREATING, filters)
        self._mappings[row.uuid] = mapping
        out = self.describe(mapping)
        self._settle(mapping, EsmState.ENABLED if enabled else EsmState.DISABLED)
        return out

    def get(self, region: str, ident: str) -> dict[str, Any]:
        return self.describe(self._mapping(region, ident))

    async def update(self, region: str, params: dict[str, Any]) -> dict[str, Any]:
        mapping = self._mapping(region, params["UUID"])
        settings = esm_rules.settings_for_update(mapping.row.event_source_arn, mapping.row.data, params)
        filters = esm_rules.compile_filters(settings.get("FilterCriteria"))
        function_arn, name = mapping.row.function_arn, mapping.row.function_name
        if params.get("FunctionName"):
            function_arn, name = self._function(region, params["FunctionName"])
        enabled = mapping.row.enabled if params.get("Enabled") is None else bool(params["Enabled"])
        was = mapping.state
        to = EsmState.UPDATING
        if (
            settings == mapping.row.data
            and function_arn == mapping.row.function_arn
            and enabled != mapping.row.enabled
        ):
            to = EsmState.ENABLING if enabled else EsmState.DISABLING
        mapping.transition(to)
        row = replace(
            mapping.row,
            function_arn=function_arn,
            function_name=name,
            data=settings,
            enabled=enabled,
            last_modified=time.time(),
        )
        try:
            await self._store.call(partial(self._store.put_mapping, row, new=False))
        except Exception:
            mapping.state = was
            raise
        mapping.row, mapping.filters = row, filters
        out = self.describe(mapping)
        self._settle(mapping, EsmState.ENABLED if enabled else EsmState.DISABLED)
        return out

    async def delete(self, region: str, ident: str) -> dict[str, Any]:
        mapping = self._mapping(region, ident)
        mapping.transition(EsmState.DELETING)
        out = self.describe(mapping)
        await self._store.call(self._store.delete_mapping, mapping.row.uuid)
        await self._stop(mapping)
        self._mappings.pop(mapping.row.uuid, None)
        return out

    def list(
        self, region: str, source: str | None, function: str | None, marker: str | None, max_items: int | None
    ) -> dict[str, Any]:
        wanted_fn = None
        if function:
            ref = parse_function_ref(function)
            wanted_fn = (ref.name, resolve_qualifier(ref, None))
        found = []
        for m in self._mappings.values():
            if m.row.region != region or (source and m.row.event_source_arn != source):
                continue
            if wanted_fn is not None:
                name, qualifier = wanted_fn
                arn_ref = parse_function_ref(m.row.function_arn)
                if arn_ref.name != name or (qualifier is not None and arn_ref.qualifier != qualifier):
                    continue
            found.append(m)
        found.sort(key=lambda m: m.row.uuid)
        start = 0
        if marker:
            start = next((i for i, m in enumerate(found) if m.row.uuid > marker), len(found))
        size = max_items or 100
        page = found[start : start + size]
        out: dict[str, Any] = {"EventSourceMappings": [self.describe(m) for m in page]}
        if start + size < len(found):
            out["NextMarker"] = page[-1].row.uuid
        return out

    async def forget(self, region: str, name: str, qualifier: str | None) -> None:
        """A function (qualifier None) or one of its aliases/versions is gone: so are its mappings."""
        for mapping in list(self._mappings.values()):
            ref = parse_function_ref(mapping.row.function_arn)
            if (
                mapping.row.region == region
                and ref.name == name
                and (qualifier is None or ref.qualifier == qualifier)
            ):
                await self._store.call(self._store.delete_mapping, mapping.row.uuid)
                await self._stop(mapping)
                self._mappings.pop(mapping.row.uuid, None)

    def describe(self, mapping: Mapping) -> dict[str, Any]:
        row = mapping.row
        out: dict[str, Any] = {
            "UUID": row.uuid,
            "EventSourceArn": row.event_source_arn,
            "FunctionArn": row.function_arn,
            "LastModified": row.last_modified,
            "State": mapping.state.value,
            "StateTransitionReason": mapping.reason,
            "LastProcessingResult": mapping.last_result,
            "EventSourceMappingArn": (
                f"arn:aws:lambda:{row.region}:{self._functions.account_id}:event-source-mapping:{row.uuid}"
            ),
            **row.data,
        }
        return out

    # -- pollers --------------------------------------------------------------------------------
    def _settle(self, mapping: Mapping, to: EsmState) -> None:
        task = asyncio.get_running_loop().create_task(self._settle_now(mapping, to))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _settle_now(self, mapping: Mapping, to: EsmState) -> None:
        await self._stop(mapping)
        if to is EsmState.ENABLED:
            if esm_rules.source_type(mapping.row.event_source_arn) == "sqs":
                self._start(mapping)
            else:
                await self._start_stream(mapping)
        if mapping.state is not EsmState.DELETING and mapping.row.uuid in self._mappings:
            mapping.transition(to)

    def _start(self, mapping: Mapping) -> None:
        row = mapping.row
        region = row.event_source_arn.split(":")[3]
        client = self._client("sqs", region)
        count = int((row.data.get("ScalingConfig") or {}).get("MaximumConcurrency") or DEFAULT_POLLERS)

        for _ in range(count):
            poller = SqsPoller(
                queue_arn=row.event_source_arn,
                settings=row.data,
                filters=mapping.filters,
                client=client,
                run_blocking=self._run_blocking,
                invoke=partial(self._invoke, row.region, row.function_arn),
                on_result=mapping.record_result,
            )
            mapping.tasks.append(asyncio.get_running_loop().create_task(poller.run(), name=f"esm-{row.uuid}"))

    async def _start_stream(self, mapping: Mapping) -> None:
        row = mapping.row
        kind = esm_rules.source_type(row.event_source_arn)
        region = row.event_source_arn.split(":")[3]
        client = self._client("kinesis" if kind == "kinesis" else "dynamodbstreams", region)
        checkpoints = await self._store.call(self._store.load_checkpoints, row.uuid)
        fv = self._functions.resolve(row.region, row.function_arn)

        async def save(shard_id: str, sequence: str) -> None:
            await self._store.call(self._store.put_checkpoint, row.uuid, shard_id, sequence)

        source = StreamSource(kind, row.event_source_arn, client)

        async def discard(
            shard_id: str, condition: str, raws: list[dict[str, Any]], tries: int, error: str | None
        ) -> None:
            key, info = source.batch_info(shard_id, raws)
            log.warning(
                "stream batch discarded",
                extra={"mapping": row.uuid, "shard": shard_id, "condition": condition, "records": len(raws)},
            )
            target = ((row.data.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
            if target:
                record = discard_record(
                    function_arn=row.function_arn,
                    condition=condition,
                    tries=tries,
                    error=error,
                    batch_key=key,
                    batch_info=info,
                )
                data = {"kind": "record", "function_arn": row.function_arn, "region": row.region}
                await self._deliver(
                    [Delivery(record["requestContext"]["requestId"], target, json.dumps(record), data)]
                )

        poller = StreamPoller(
            source=source,
            settings=row.data,
            checkpoints=checkpoints,
            run_blocking=self._run_blocking,
            invoke=partial(self._invoke, row.region, row.function_arn),
            save=save,
            discard=discard,
            on_result=mapping.record_result,
            role=fv.role,
            filters=mapping.filters,
            iterator_age=partial(self._metrics.iterator_age, row.function_arn, fv.version)
            if self._metrics is not None
            else lambda age_ms: None,
        )
        mapping.tasks.append(asyncio.get_running_loop().create_task(poller.run(), name=f"esm-{row.uuid}"))

    async def _stop(self, mapping: Mapping) -> None:
        tasks, mapping.tasks = mapping.tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _run_blocking(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, partial(fn, *args, **kwargs))

    # -- lookups --------------------------------------------------------------------------------
    def _function(self, region: str, ident: str) -> tuple[str, str]:
        """(the function ARN as the mapping stores it -- qualified when named so --, its name)."""
        ref = parse_function_ref(ident)
        qualifier = resolve_qualifier(ref, None)
        fv = self._functions.resolve(region, ident)  # ResourceNotFoundException as AWS words it
        arn = fv.arn(self._functions.account_id)
        return (f"{arn}:{qualifier}" if qualifier else arn), fv.name

    def _mapping(self, region: str, ident: str) -> Mapping:
        mapping = self._mappings.get(ident)
        if mapping is None or mapping.row.region != region:
            raise AwsError("ResourceNotFoundException", "The resource you requested does not exist.")
        return mapping
