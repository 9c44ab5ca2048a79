"""Metrics, assembled: the registry the invoke path records into, the per-minute CloudWatch store
behind it, and the two HTTP entry points (``GET /metrics`` and the CloudWatch API).

The composition root starts one ``MetricsService`` and hands ``registry`` to the invocation
service and the destinations outbox; the HTTP app routes requests to ``metrics_http`` and
``cloudwatch`` (see docs/metrics.md).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from lamina.api.cloudwatch import CloudWatchApi
from lamina.api.cloudwatch_endpoint import CloudWatchEndpoint
from lamina.auth.sigv4 import SigV4Verifier
from lamina.telemetry.cloudwatch_store import MetricStore
from lamina.telemetry.metrics import MetricsRegistry
from lamina.telemetry.metrics_http import MetricsEndpoint, load_or_create_token

METRICS_DB = "metrics.sqlite3"


class MetricsService:
    def __init__(
        self, registry: MetricsRegistry, store: MetricStore, verifier: SigV4Verifier, token: str
    ) -> None:
        self.registry = registry
        self.store = store
        self.metrics_http = MetricsEndpoint(registry, verifier, token)
        self.cloudwatch_api = CloudWatchApi(store)
        self.cloudwatch = CloudWatchEndpoint(self.cloudwatch_api, verifier)

    @classmethod
    async def start(cls, data_dir: Path, verifier: SigV4Verifier, token: str | None) -> MetricsService:
        """``token``: LAMINA_METRICS_TOKEN, or None to use (or make) ``<data_dir>/metrics-token``."""
        registry = MetricsRegistry()
        store = await asyncio.to_thread(MetricStore, data_dir / METRICS_DB, registry)
        await store.start()
        bearer = await asyncio.to_thread(load_or_create_token, data_dir, token)
        return cls(registry, store, verifier, bearer)

    async def forget(self, region: str, name: str, qualifier: str | None) -> None:
        """``FunctionService.on_drop``: a deleted function's series are harvested, then dropped."""
        if qualifier is None:
            self.store.collect()
            self.registry.forget_function(region, name)

    async def close(self) -> None:
        await self.store.close()
