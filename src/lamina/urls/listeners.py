"""One listening port per function URL: a ``FrontServer`` of lamina's own HTTP front each.

Why a port per URL: AWS tells URLs apart by host name (``<url-id>.lambda-url.<region>.on.aws``),
but ``*.localhost`` names do not resolve for every client (glibc's resolver, hence Python, does
not), so a URL that curl, a browser and httpx can all call "as is" is ``http://<host>:<port>/``.
The port is picked once -- any free port, or the first free one of ``LAMINA_URL_PORTS`` -- and
stored with the URL, which keeps it across restarts; a stored port found taken at start is
replaced by a new one (the service logs it and stores the new port).

Concurrency invariant: only the event loop touches ``_servers``; ``open`` and ``close`` for one
key are serialised by the function's lock held by their callers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from lamina.urls.service import UrlKey
from lamina.web.connection import FrontApp
from lamina.web.server import FrontServer, ServerState

log = logging.getLogger("lamina.urls")

DELETE_GRACE_S = 5.0  # requests in hand when a URL is deleted may finish for this long


class NoFreePort(OSError):
    pass


class UrlServers:
    def __init__(
        self,
        app_for: Callable[[UrlKey], FrontApp],
        *,
        host: str,
        ports: tuple[int, int] | None = None,
    ) -> None:
        self._app_for = app_for
        self._host = host  # the address the main endpoint listens on
        self._ports = ports  # (first, last) inclusive, or None: the kernel picks
        self._servers: dict[UrlKey, FrontServer] = {}

    @property
    def ports(self) -> dict[UrlKey, int]:
        return {key: server.port for key, server in self._servers.items()}

    async def open(self, key: UrlKey, port: int | None) -> int:
        """Serve ``key`` on ``port``, or (``None``, or taken) on a new port; the port it got."""
        await self.close(key)
        if port is not None:
            try:
                return await self._start(key, port)
            except OSError as exc:
                log.error("function URL port unavailable", extra={"port": port, "error": str(exc)})
        for candidate in self._candidates():
            try:
                return await self._start(key, candidate)
            except OSError:
                continue
        raise NoFreePort(f"no free port for function URLs in {self._ports}")

    def _candidates(self) -> list[int]:
        if self._ports is None:
            return [0]
        used = {s.port for s in self._servers.values()}
        first, last = self._ports
        return [p for p in range(first, last + 1) if p not in used]

    async def _start(self, key: UrlKey, port: int) -> int:
        server = FrontServer(self._app_for(key), host=self._host, port=port)
        await server.bind()
        await server.serve()
        self._servers[key] = server
        return server.port

    async def close(self, key: UrlKey) -> None:
        server = self._servers.pop(key, None)
        if server is not None and server.state is ServerState.SERVING:
            await server.drain(DELETE_GRACE_S, _nothing)

    async def drain(self, grace_s: float, on_grace_over: Callable[[], Awaitable[None]]) -> None:
        """Shutdown: every URL stops accepting and finishes what it has in hand."""
        servers = [s for s in self._servers.values() if s.state is ServerState.SERVING]
        self._servers.clear()
        await asyncio.gather(*(s.drain(grace_s, on_grace_over) for s in servers))


async def _nothing() -> None:
    return None
