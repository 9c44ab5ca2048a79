"""The composition root: builds every component from Settings, starts and stops them in order."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
from collections.abc import Mapping
from typing import IO

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
from lamina.api.invoke_express import ExpressInvoke
from lamina.api.logs import TARGET_PREFIX as LOGS_TARGET
from lamina.api.logs import LogsService
from lamina.auth.credentials import Credentials, load_or_create, usage_text
from lamina.auth.sigv4 import SigV4Verifier
from lamina.config import Settings
from lamina.events.mappings import EsmService
from lamina.events.rules import RuleService
from lamina.events.scheduler import Scheduler
from lamina.events.schedules import ScheduleService
from lamina.execution.engine import PythonEngine
from lamina.execution.types import InvocationInput
from lamina.functions.aliases import AliasService
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
from lamina.protocol import RestRouter, load_service_model
from lamina.protocol.jsonrpc import JsonService
from lamina.protocol.prefix_router import PrefixRouter
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

log = logging.getLogger("lamina.platform")


class DataDirLocked(RuntimeError):
    pass


class Platform:
    """Everything one `lamina serve` runs.  Built cheaply; ``start`` does the I/O."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        scheduler_routes = RestRouter(load_service_model("scheduler"))  # issue 9: schedules
        self.router = PrefixRouter(
            RestRouter(load_service_model("lambda")),
            {"schedules": scheduler_routes, "schedule-groups": scheduler_routes},
        )
        # json-protocol services on the same endpoint, by X-Amz-Target prefix (filled by start()).
        self.json_services: dict[str, JsonService] = {}
        self.handlers: dict[str, Handler] = {}
        self.express_invoke: ExpressInvoke | None = None  # set at start, with the handlers
        self.ids = IdFactory()
        self._lock_file: IO[str] | None = None
        self._started = False
        self._stopping = asyncio.Lock()

    def prepare(self) -> tuple[Credentials, bool]:
        """Synchronous start-up steps that must fail loudly before the server binds its port."""
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock_file = open(s.data_dir / "lock", "w")  # noqa: SIM115  # held for the process lifetime
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise DataDirLocked(f"another lamina server is using {s.data_dir}") from exc
        self.credentials, created = load_or_create(s.data_dir, s.access_key_id, s.secret_access_key)
        self.verifier = SigV4Verifier({self.credentials.access_key_id: self.credentials.secret_access_key})
        return self.credentials, created

    def usage(self) -> str:
        s = self.settings
        return usage_text(s.data_dir / "credentials.json", s.endpoint_url, region=s.default_region)

    async def start(self) -> None:
        s = self.settings
        if self._lock_file is None:
            self.prepare()
        self.engine = PythonEngine(
            runtime_dir=s.runtime_dir,
            idle_timeout_s=s.idle_timeout_s,
            interpreters=s.interpreters,
            overcommit_ratio=s.overcommit_ratio,
            preload=s.preload,
            preload_paths=s.preload_paths,
            hide=[s.data_dir],
        )
        await self.engine.start()
        db = await asyncio.to_thread(sqlite_engine, s.db_path)
        self.store = MetadataStore(db)
        self.code = CodeStore(s.blob_dir, s.code_dir)
        url_key = hashlib.sha256(b"lamina-code-url:" + self.credentials.secret_access_key.encode()).digest()
        self.functions = FunctionService(
            store=self.store,
            code=self.code,
            account_id=s.account_id,
            runtimes=self.engine.available_runtimes,
            on_change=self._on_function_change,
            url_key=url_key,
        )
        self.layers = LayerService(
            store=self.store, rows=LayerRows(db), code=self.code, account_id=s.account_id
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
        self.logs = LogStore(s.data_dir / "logs.sqlite3", limits=limits)
        self.logs.start()
        self.json_services[LOGS_TARGET] = LogsService(self.logs, s.account_id)
        self.metrics = await MetricsService.start(s.data_dir, self.verifier, s.metrics_token)
        event_invoke = EventInvokeService(functions=self.functions, store=self.store)
        await event_invoke.load()
        self.functions.on_drop.append(event_invoke.forget)
        limiter = ConcurrencyLimiter(s.account_concurrency)
        self.tracer = SpanExporter(s.tracing) if s.tracing is not None else None
        if self.tracer is not None:
            self.tracer.start()
        # Records to lamina functions go back into the async queue (late-bound: it is built next).
        remote = RemoteTargets(s.aws_endpoints)
        self.destinations = DeliveryOutbox(
            self.store,
            lambda arn, payload: self.invocations.enqueue_arn(arn, payload),
            remote,
            self.metrics.registry,
        )
        self.invocations = InvocationService(
            functions=self.functions,
            engine=self.engine,
            code=self.code,
            logs=self.logs,
            store=self.store,
            limiter=limiter,
            policy=event_invoke.policy_for,
            retry_delays=s.async_retry_delays,
            on_final=self.destinations.on_final,
            tracer=self.tracer,
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
            engine=self.engine,
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
            client=remote.client,
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
            verifier=self.verifier,
            ids=self.ids,
            require_invoke_function=s.url_require_invoke_function,
        )
        await self.urls.load()  # every stored URL listens again, on its stored port
        self.functions.on_drop.append(self.urls.forget)
        schedules = await self._start_schedules()
        self.express_invoke = ExpressInvoke(
            verifier=self.verifier, functions=self.functions, invocations=self.invocations, ids=self.ids
        )
        self.handlers = {
            **functions_api.handlers(self.functions, versions, concurrency),
            **concurrency_api.handlers(concurrency, self.functions),
            **event_invoke_api.handlers(event_invoke),
            **versions_api.handlers(versions, s.account_id),
            **aliases_api.handlers(aliases, s.account_id),
            **policy_api.handlers(self.policies),
            **provisioned_api.handlers(provisioned),
            **invoke_api.handlers(self.functions, self.invocations, self.ids),
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
        self._started = True
        log.info(
            "lamina ready",
            extra={
                "endpoint": s.endpoint_url,
                "data_dir": str(s.data_dir),
                "runtimes": sorted(self.engine.available_runtimes()),
            },
        )

    async def _start_schedules(self) -> ScheduleService:
        """Issue 9: EventBridge Scheduler's schedules and EventBridge's scheduled rules, one task."""
        account = self.settings.account_id

        def notify() -> None:
            self.invocations.queue.notify()
            self.destinations.notify()

        self.scheduler = Scheduler(
            store=self.store, invocations=self.invocations, notify=notify, account_id=account
        )
        schedules = ScheduleService(store=self.store, scheduler=self.scheduler, account_id=account)
        await schedules.load()
        rules = RuleService(store=self.store, scheduler=self.scheduler, account_id=account)
        self.json_services[EVENTS_TARGET] = EventsService(rules)
        await self.scheduler.load()  # due firings (missed while down) fire from here
        return schedules

    async def _invoke_for_source(
        self, region: str, function_arn: str, payload: bytes
    ) -> tuple[str | None, bytes]:
        """A synchronous invoke of a batch from an event source; (function error, response)."""
        fv = self.functions.resolve(region, function_arn, routed=True)
        inv = InvocationInput(
            request_id=self.ids.request_id(),
            payload=payload,
            invoked_function_arn=function_arn,
            trace_id=self.ids.trace_id(),
            trace_generated=True,
        )
        result = await self.invocations.invoke(fv, inv)
        return result.function_error, result.payload

    def _url_app(self, key: UrlKey) -> FrontApp:
        return UrlFront(self._url_deps, key)

    async def drain_urls(self, grace_s: float) -> None:
        """Shutdown: the function URLs stop accepting and finish what they have in hand."""
        if self._started:
            await self.url_servers.drain(grace_s, self.stop_environments)

    async def _on_function_change(self, function_arn: str) -> None:
        await self.invocations.retire(function_arn)

    async def _network_tag_changed(self, region: str, name: str, tags: Mapping[str, str]) -> None:
        """A function's ``lamina:network`` policy changed: as on a configuration change, no
        environment with the old policy serves it again (on-demand ones are retired, provisioned
        ones replaced) by the time TagResource / UntagResource answers."""
        if self.invocations.network.set(region, name, tags):
            await self.invocations.retire(function_arn(region, self.settings.account_id, name))
            await self._provisioned.respec(region, name)

    async def stop_environments(self) -> None:
        """Kill every environment now: in-flight invokes answer with an error instead of hanging.
        The main endpoint and every function URL may ask at once: one close at a time."""
        if self._started:
            await self._kill_environments()

    async def _kill_environments(self) -> None:
        async with self._stopping:
            await self.engine.close()

    async def close(self) -> None:
        if not self._started:
            return
        self._started = False
        await self.scheduler.close()
        await self.mappings.close()
        await self.url_servers.drain(0.0, self._kill_environments)  # none left after a normal shutdown
        await self.destinations.close()
        if self.tracer is not None:
            await self.tracer.close()
        await self.invocations.queue.close()
        await self.engine.close()
        await self.metrics.close()
        await self.logs.close()
        self.store.close()
        if self._lock_file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None
