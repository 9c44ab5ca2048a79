"""One account's half of the platform: every store and service that holds or acts on its resources.

Why a whole set of services per account rather than an account column in every table: isolation
is then structural.  An account's FunctionService, policies, layers, async queue, event source
mappings, function URLs, schedules, logs and metrics are objects built over *its* databases
(``<data-dir>`` for the operator's account, ``<data-dir>/accounts/<id>/`` for the others) and
never see another account's rows, so no query can forget a filter.  What the host has once is
shared and passed in (``Shared``): the execution engine (host memory and CPU are one pool; an
environment's identity, its spec, carries the function ARN and so the account, so two accounts
never share an environment), the content-addressed code store, the SigV4 verifier, ids, tracing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lamina.api import aliases as aliases_api
from lamina.api import concurrency as concurrency_api
from lamina.api import esm as esm_api
from lamina.api import event_invoke_config as event_invoke_api
from lamina.api import functions as functions_api
from lamina.api import invoke as invoke_api
from lamina.api import layers as layers_api
from lamina.api import policy as policy_api
from lamina.api import provisioned as provisioned_api
from lamina.api import scheduler as scheduler_api
from lamina.api import tags as tags_api
from lamina.api import urls as urls_api
from lamina.api import versions as versions_api
from lamina.api.eventbridge import TARGET_PREFIX as EVENTS_TARGET
from lamina.api.eventbridge import EventsService
from lamina.api.logs import TARGET_PREFIX as LOGS_TARGET
from lamina.api.logs import LogsService
from lamina.auth.sigv4 import SigV4Verifier
from lamina.config import Settings
from lamina.errors import AwsError
from lamina.events.mappings import EsmService
from lamina.events.rules import RuleService
from lamina.events.scheduler import Scheduler
from lamina.events.schedules import ScheduleService
from lamina.execution.engine import PythonEngine
from lamina.execution.types import InvocationInput
from lamina.functions.aliases import AliasService
from lamina.functions.arns import parse_function_ref
from lamina.functions.codestore import CodeStore
from lamina.functions.concurrency import ConcurrencyService
from lamina.functions.event_invoke import EventInvokeService
from lamina.functions.layers import LayerService
from lamina.functions.provisioned import ProvisionedService
from lamina.functions.service import FunctionService
from lamina.functions.tags import TagService
from lamina.functions.versions import VersionService
from lamina.ids import IdFactory
from lamina.invocation.concurrency import ConcurrencyLimiter
from lamina.invocation.destinations import DeliveryOutbox, RemoteTargets
from lamina.invocation.service import InvocationService
from lamina.model.function import function_arn
from lamina.policy.service import PolicyService
from lamina.protocol.jsonrpc import JsonService
from lamina.store.db import sqlite_engine
from lamina.store.layers import LayerRows
from lamina.store.metadata import MetadataStore
from lamina.telemetry.logstore import LogLimits, LogStore
from lamina.telemetry.metrics_service import MetricsService
from lamina.telemetry.tracing import SpanExporter
from lamina.types import Handler
from lamina.urls.front import UrlDeps, UrlFront
from lamina.urls.listeners import UrlServers
from lamina.urls.service import FunctionUrlService, UrlKey
from lamina.web.connection import FrontApp

log = logging.getLogger("lamina.accounts")


@dataclass(frozen=True, slots=True)
class Shared:
    """What every account's services use from the one host."""

    settings: Settings
    engine: PythonEngine
    code: CodeStore
    verifier: SigV4Verifier
    ids: IdFactory
    remote: RemoteTargets
    tracer: SpanExporter | None
    url_key: bytes  # signs GetFunction's code download URLs
    metrics_token: str | None  # the operator's bearer token for GET /metrics
    account_of: Callable[[str], str | None]  # access key id -> account id (AWS_IAM function URLs)


Route = Callable[["Tenant", str, str, Mapping[str, Any]], "Tenant"]  # (caller, op, region, params)


class Tenant:
    """Everything one account owns.  ``start`` does the I/O; ``close`` stops what it started."""

    def __init__(self, *, name: str, account_id: str, home: Path, shared: Shared) -> None:
        self.name = name
        self.account_id = account_id
        self.home = home  # its databases: lamina.sqlite3, logs.sqlite3, metrics.sqlite3
        self._s = shared
        self.handlers: dict[str, Handler] = {}
        self.json_services: dict[str, JsonService] = {}  # by X-Amz-Target prefix
        # Which account serves what this one asks of a function ARN (set by the accounts
        # registry, ``Accounts.route``: another account's only through its resource policy).
        self.route: Route = lambda caller, _op, _region, _params: caller
        self._started = False

    async def start(self) -> None:
        sh, s = self._s, self._s.settings
        await asyncio.to_thread(self.home.mkdir, mode=0o700, parents=True, exist_ok=True)
        db = await asyncio.to_thread(sqlite_engine, self.home / "lamina.sqlite3")
        self.store = MetadataStore(db)
        self.functions = FunctionService(
            store=self.store,
            code=sh.code,
            account_id=self.account_id,
            runtimes=sh.engine.available_runtimes,
            on_change=self._on_function_change,
            url_key=sh.url_key,
        )
        self.layers = LayerService(
            store=self.store, rows=LayerRows(db), code=sh.code, account_id=self.account_id
        )
        await self.layers.load()
        self.functions.layers = self.layers
        await self.functions.load()
        versions = VersionService(functions=self.functions, store=self.store)
        aliases = AliasService(functions=self.functions, store=self.store)
        self.policies = PolicyService(functions=self.functions, store=self.store)
        await self.policies.load()
        self.functions.on_drop.append(self.policies.forget)
        rate = s.log_rate_kb_s * 1024
        limits = LogLimits(
            rate_bytes_s=rate,
            burst_bytes=rate * 2,
            max_group_bytes=int(s.log_max_mb * 1024 * 1024),
            default_retention_days=s.log_retention_days,
        )
        self.logs = LogStore(self.home / "logs.sqlite3", limits=limits)
        self.logs.start()
        self.json_services[LOGS_TARGET] = LogsService(self.logs, self.account_id)
        self.metrics = await MetricsService.start(self.home, sh.verifier, sh.metrics_token)
        event_invoke = EventInvokeService(functions=self.functions, store=self.store)
        await event_invoke.load()
        self.functions.on_drop.append(event_invoke.forget)
        # AWS's model: the concurrency quota is the account's; the host's memory stays one pool
        # (the engine admits environments against it whichever account asks).
        limiter = ConcurrencyLimiter(s.account_concurrency)
        # Records to lamina functions go back into the async queue (late-bound: it is built next).
        self.destinations = DeliveryOutbox(
            self.store, self._record_to_function, sh.remote, self.metrics.registry
        )
        self.invocations = InvocationService(
            functions=self.functions,
            engine=sh.engine,
            code=sh.code,
            logs=self.logs,
            store=self.store,
            limiter=limiter,
            policy=event_invoke.policy_for,
            retry_delays=s.async_retry_delays,
            on_final=self.destinations.on_final,
            tracer=sh.tracer,
            metrics=self.metrics.registry,
        )
        # Network policies (the ``lamina:network`` tag) before anything builds a spec
        self.invocations.network.load(await self.store.call(self.store.load_tags))
        self.functions.on_create.append(self.invocations.network.set)
        concurrency = ConcurrencyService(
            functions=self.functions, store=self.store, limiter=limiter, on_change=self.invocations.queue.wake
        )
        await concurrency.load()  # before the queue starts: requeued events meet their reservations
        self.functions.on_drop.append(concurrency.forget)
        provisioned = ProvisionedService(
            functions=self.functions,
            store=self.store,
            concurrency=concurrency,
            limiter=limiter,
            engine=sh.engine,
            specs=self.invocations.spec_for,
        )
        await provisioned.load()  # environments are initialised in the background from here
        self._provisioned = provisioned
        self.functions.on_drop.append(provisioned.forget)
        self.metrics.registry.provisioned = provisioned.utilisation
        self.functions.on_drop.append(self.metrics.forget)
        aliases.watcher = provisioned
        await self.invocations.queue.start()
        await self.destinations.start()
        self.mappings = EsmService(
            functions=self.functions,
            store=self.store,
            invoke=self._invoke_for_source,
            client=sh.remote.client,
            deliver=self.destinations.submit,
            metrics=self.metrics.registry,
        )
        await self.mappings.load()  # enabled mappings start polling
        self.functions.on_drop.append(self.mappings.forget)
        self.url_servers = UrlServers(self._url_app, host=s.host, ports=s.url_ports)
        self.urls = FunctionUrlService(
            functions=self.functions,
            store=self.store,
            listeners=self.url_servers,
            url_host=s.function_url_host,
        )
        self._url_deps = UrlDeps(
            urls=self.urls,
            functions=self.functions,
            invocations=self.invocations,
            policies=self.policies,
            verifier=sh.verifier,
            ids=sh.ids,
            require_invoke_function=s.url_require_invoke_function,
            account_of=sh.account_of,
        )
        await self.urls.load()  # every stored URL listens again, on its stored port
        self.functions.on_drop.append(self.urls.forget)
        schedules = await self._start_schedules()
        self.handlers = {
            **functions_api.handlers(self.functions, versions, concurrency),
            **concurrency_api.handlers(concurrency, self.functions),
            **event_invoke_api.handlers(event_invoke),
            **versions_api.handlers(versions, self.account_id),
            **aliases_api.handlers(aliases, self.account_id),
            **policy_api.handlers(self.policies),
            **provisioned_api.handlers(provisioned),
            **invoke_api.handlers(self.functions, self.invocations, sh.ids),
            **layers_api.handlers(self.layers, self.functions.blob_location),
            **tags_api.handlers(
                TagService(
                    functions=self.functions,
                    store=self.store,
                    on_change=[self.urls.tags_changed, self._network_tag_changed],
                )
            ),
            **esm_api.handlers(self.mappings),
            **urls_api.handlers(self.urls),
            **scheduler_api.handlers(schedules),
        }
        self._versions = versions
        self._started = True

    async def _start_schedules(self) -> ScheduleService:
        """Issue 9: EventBridge Scheduler's schedules and EventBridge's scheduled rules, one task."""

        def notify() -> None:
            self.invocations.queue.notify()
            self.destinations.notify()

        self.scheduler = Scheduler(
            store=self.store, invocations=self.invocations, notify=notify, account_id=self.account_id
        )
        schedules = ScheduleService(store=self.store, scheduler=self.scheduler, account_id=self.account_id)
        await schedules.load()
        rules = RuleService(store=self.store, scheduler=self.scheduler, account_id=self.account_id)
        self.json_services[EVENTS_TARGET] = EventsService(rules)
        await self.scheduler.load()  # due firings (missed while down) fire from here
        return schedules

    async def _record_to_function(self, arn: str, payload: bytes) -> None:
        """A destination record for a function: queued as an async invoke in its own account --
        this one, or another whose resource policy lets this account invoke it (AWS's
        cross-account destinations); AccessDeniedException otherwise (the outbox retries)."""
        ref = parse_function_ref(arn)
        owner = self.route(self, "Invoke", ref.region or "", {"FunctionName": arn})
        if ref.account is not None and ref.account != owner.account_id:
            # Not routed (yet): the registry wires ``route`` once this account has started, and
            # the outbox may deliver before that.  Never by name into the wrong account: retried.
            raise AwsError("ResourceNotFoundException", f"Function not found: {arn}")
        await owner.invocations.enqueue_arn(arn, payload)

    def live_code(self) -> set[str]:
        """The code and merged-layer entries this account's functions and layers still use."""
        return self.functions.live_code()

    async def _invoke_for_source(
        self, region: str, function_arn: str, payload: bytes
    ) -> tuple[str | None, bytes]:
        """A synchronous invoke of a batch from an event source; (function error, response)."""
        fv = self.functions.resolve(region, function_arn, routed=True)
        ids = self._s.ids
        inv = InvocationInput(
            request_id=ids.request_id(),
            payload=payload,
            invoked_function_arn=function_arn,
            trace_id=ids.trace_id(),
            trace_generated=True,
        )
        result = await self.invocations.invoke(fv, inv)
        return result.function_error, result.payload

    def _url_app(self, key: UrlKey) -> FrontApp:
        return UrlFront(self._url_deps, key)

    async def _on_function_change(self, function_arn: str) -> None:
        await self.invocations.retire(function_arn)

    async def _network_tag_changed(self, region: str, name: str, tags: Mapping[str, str]) -> None:
        """A function's ``lamina:network`` policy changed: as on a configuration change, no
        environment with the old policy serves it again (on-demand ones are retired, provisioned
        ones replaced) by the time TagResource / UntagResource answers."""
        if self.invocations.network.set(region, name, tags):
            await self.invocations.retire(function_arn(region, self.account_id, name))
            await self._provisioned.respec(region, name)

    async def drain_urls(self, grace_s: float, on_grace_over: Callable[[], Awaitable[None]]) -> None:
        if self._started:
            await self.url_servers.drain(grace_s, on_grace_over)

    async def delete_everything(self) -> None:
        """The account is being deleted: every function goes as DeleteFunction takes it (its
        URLs close, its mappings stop, its provisioned environments are released, its on-demand
        environments retire), so nothing of the account keeps running."""
        for region, name in self.functions.names():
            with contextlib.suppress(AwsError):
                await self._versions.delete(region, name, None)
            with contextlib.suppress(AwsError):
                await self.invocations.retire(self.functions.unqualified_arn(region, name))

    async def close(self, on_grace_over: Callable[[], Awaitable[None]] | None = None) -> None:
        """``on_grace_over``: how URL requests still in flight are ended (at shutdown, the
        platform kills every environment); None when the account's functions are already gone."""
        if not self._started:
            return
        self._started = False
        await self.scheduler.close()
        await self.mappings.close()
        await self.url_servers.drain(0.0, on_grace_over or _nothing)
        await self.destinations.close()
        await self.invocations.queue.close()
        await self.metrics.close()
        await self.logs.close()
        self.store.close()


async def _nothing() -> None:
    return None
