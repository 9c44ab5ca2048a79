"""The listening side of the front: bind, serve, sweep idle connections, shut down like Lambda.

Lifecycle (``ServerState``, guarded): STARTING -> SERVING -> DRAINING -> STOPPED.  The port is
bound before the platform starts, so a port in use fails fast, but nothing is accepted until the
platform is ready.  On SIGTERM/SIGINT: stop accepting, close idle keep-alive connections, let
requests in hand finish for up to ``grace_s`` (their connections close after their answer), then
kill the environments so any invoke still running answers with an error rather than hanging;
then the platform closes, leaving no environment process behind.

The sweeper runs every ``SWEEP_S``: a keep-alive connection idle for ``keep_alive_s`` is closed,
and so is one stalled mid-request (no bytes for ``stall_s``) -- slow or half-open clients cannot
hold connections and buffers forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import signal
import socket
import time
from collections.abc import Awaitable, Callable

from lamina.aio import stop_task
from lamina.web.connection import FrontApp, FrontConnection

log = logging.getLogger("lamina.server")

SWEEP_S = 5.0
BACKLOG = 2048


class ServerState(enum.Enum):
    STARTING = "starting"
    SERVING = "serving"
    DRAINING = "draining"
    STOPPED = "stopped"


_TRANSITIONS = {
    ServerState.STARTING: {ServerState.SERVING, ServerState.STOPPED},
    ServerState.SERVING: {ServerState.DRAINING},
    ServerState.DRAINING: {ServerState.STOPPED},
    ServerState.STOPPED: set(),
}


class FrontServer:
    def __init__(
        self,
        app: FrontApp,
        *,
        host: str,
        port: int,
        keep_alive_s: float = 75.0,
        stall_s: float = 60.0,
    ) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._keep_alive_s = keep_alive_s
        self._stall_s = stall_s
        self.state = ServerState.STARTING
        self.connections: set[FrontConnection] = set()
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    def _transition(self, to: ServerState) -> None:
        if to not in _TRANSITIONS[self.state]:
            raise RuntimeError(f"front server: {self.state.name} -> {to.name}")
        self.state = to

    async def bind(self) -> None:
        """Bind the port (raises OSError when it is taken); accept nothing yet."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: FrontConnection(self._app, self.connections),
            self._host,
            self._port,
            backlog=BACKLOG,
            reuse_address=True,
            start_serving=False,
        )
        for sock in self._server.sockets:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def port(self) -> int:
        """The bound port (the one asked for, or the kernel's pick for 0)."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def serve(self) -> None:
        assert self._server is not None
        self._transition(ServerState.SERVING)
        await self._server.start_serving()
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def drain(self, grace_s: float, on_grace_over: Callable[[], Awaitable[None]]) -> None:
        """Stop accepting; wait for requests in hand; after ``grace_s`` call ``on_grace_over``
        (which makes them answer) and wait a little more."""
        self._transition(ServerState.DRAINING)
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.closing = True
            if conn.idle:
                conn.close()
        if not await self._wait_idle(grace_s):
            log.warning("grace period over: stopping environments", extra={"grace_s": grace_s})
            await on_grace_over()
            await self._wait_idle(5.0)
        for conn in list(self.connections):
            conn.close()
        await stop_task(self._sweeper)
        self._transition(ServerState.STOPPED)

    def stop_unstarted(self) -> None:
        if self._server is not None:
            self._server.close()
        self._transition(ServerState.STOPPED)

    async def _wait_idle(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while any(not c.idle for c in self.connections if not c.closed):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.02)  # a poll bounded by the deadline; shutdown only
        return True

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_S)
            now = time.monotonic()
            for conn in list(self.connections):
                quiet = now - conn.last_active
                if (conn.idle and quiet > self._keep_alive_s) or (
                    not conn.busy and not conn.idle and quiet > self._stall_s
                ):
                    conn.close()


def install_signal_handlers(on_signal: Callable[[int], None]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
