"""The composition root: builds every component from Settings, starts and stops them in order."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
from typing import IO

from lamina.accounts.registry import Accounts
from lamina.accounts.store import ROOT_NAME
from lamina.accounts.tenant import Shared, Tenant
from lamina.api.cloudwatch import CloudWatchApi
from lamina.api.cloudwatch_endpoint import CloudWatchEndpoint
from lamina.auth.credentials import Credentials, load_or_create, usage_text
from lamina.auth.sigv4 import SigV4Verifier
from lamina.config import Settings
from lamina.errors import AwsError
from lamina.execution import placement
from lamina.execution.engine import PythonEngine
from lamina.functions.codestore import CodeStore
from lamina.ids import IdFactory
from lamina.invocation.destinations import RemoteTargets
from lamina.protocol import RestRouter, load_service_model
from lamina.protocol.prefix_router import PrefixRouter
from lamina.telemetry.metrics import MetricsRegistry
from lamina.telemetry.metrics_http import MetricsEndpoint, load_or_create_token
from lamina.telemetry.tracing import SpanExporter

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
        # One mapping for every account's key: the accounts registry adds and removes keys in it.
        self._secrets = {self.credentials.access_key_id: self.credentials.secret_access_key}
        self.verifier = SigV4Verifier(self._secrets)
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
            isolation=s.isolation,
            placement=placement.plan(s.loop_cpu, os.sched_getaffinity(0)),
        )
        if not s.isolation:
            log.warning("LAMINA_ISOLATION=off: environments are not isolated from each other or the host")
        await self.engine.start()
        self.code = CodeStore(s.blob_dir, s.code_dir)
        self.tracer = SpanExporter(s.tracing) if s.tracing is not None else None
        if self.tracer is not None:
            self.tracer.start()
        shared = Shared(
            settings=s,
            engine=self.engine,
            code=self.code,
            verifier=self.verifier,
            ids=self.ids,
            remote=RemoteTargets(s.aws_endpoints),
            tracer=self.tracer,
            url_key=hashlib.sha256(
                b"lamina-code-url:" + self.credentials.secret_access_key.encode()
            ).digest(),
            metrics_token=await asyncio.to_thread(load_or_create_token, s.data_dir, s.metrics_token),
            account_of=lambda key: self.accounts.account_of(key),
        )
        # The operator's account keeps the data dir's own files, as before accounts existed.
        root = Tenant(name=ROOT_NAME, account_id=s.account_id, home=s.data_dir, shared=shared)
        await root.start()
        self.accounts = Accounts(shared, root, self._secrets, self.credentials.access_key_id)
        tenants = await self.accounts.start()
        # The code store is shared: only the union of every account's references says what is unused.
        live = set().union(*(t.live_code() for t in tenants))
        await asyncio.to_thread(self.code.remove_orphans, live)
        self.metrics_http = MetricsEndpoint(
            root.metrics.registry,
            self.verifier,
            shared.metrics_token or "",
            registry_for=self._registry_for,
            every_account=lambda: [(t.account_id, t.metrics.registry) for t in self.accounts.tenants()],
        )
        self.cloudwatch = CloudWatchEndpoint(
            root.metrics.cloudwatch_api, self.verifier, api_for=self._cloudwatch_for
        )
        self._started = True
        log.info(
            "lamina ready",
            extra={
                "endpoint": s.endpoint_url,
                "data_dir": str(s.data_dir),
                "runtimes": sorted(self.engine.available_runtimes()),
                "accounts": len(tenants),
            },
        )

    def tenant(self, access_key_id: str) -> Tenant:
        """The account a verified key acts as (its key may have been deleted since: refused)."""
        tenant = self.accounts.by_key.get(access_key_id)
        if tenant is None:
            raise AwsError(
                "UnrecognizedClientException", "The security token included in the request is invalid."
            )
        return tenant

    def _registry_for(self, access_key_id: str) -> MetricsRegistry | None:
        tenant = self.accounts.by_key.get(access_key_id)
        return tenant.metrics.registry if tenant is not None else None

    def _cloudwatch_for(self, access_key_id: str) -> CloudWatchApi | None:
        tenant = self.accounts.by_key.get(access_key_id)
        return tenant.metrics.cloudwatch_api if tenant is not None else None

    async def drain_urls(self, grace_s: float) -> None:
        """Shutdown: the function URLs stop accepting and finish what they have in hand."""
        if self._started:
            await asyncio.gather(
                *(t.drain_urls(grace_s, self.stop_environments) for t in self.accounts.tenants())
            )

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
        await self.accounts.close(self._kill_environments)
        if self.tracer is not None:
            await self.tracer.close()
        await self.engine.close()
        if self._lock_file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None
