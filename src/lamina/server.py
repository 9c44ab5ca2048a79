"""Runs the platform under uvicorn (httptools + uvloop) with Lambda-like graceful shutdown.

On SIGTERM/SIGINT: stop accepting, let in-flight sync invokes finish for up to ``grace_s``, then
kill the environments so any invoke still running answers with an error rather than hanging;
the lifespan shutdown then closes everything, leaving no environment process behind.
"""

from __future__ import annotations

import asyncio
import logging
from types import FrameType

import uvicorn

from lamina.app import LaminaApp
from lamina.platform import Platform

log = logging.getLogger("lamina.server")


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, platform: Platform, grace_s: float) -> None:
        super().__init__(config)
        self._platform = platform
        self._grace_s = grace_s
        self._killer: asyncio.TimerHandle | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._killer is None and not self.should_exit:
            log.info("shutting down", extra={"signal": sig, "grace_s": self._grace_s})
            loop = asyncio.get_event_loop()
            self._killer = loop.call_later(
                self._grace_s, lambda: loop.create_task(self._platform.stop_environments())
            )
        super().handle_exit(sig, frame)
        # uvicorn re-raises a captured signal after shutting down, so the process would die "by
        # SIGTERM"; a clean, complete shutdown exits 0 instead.
        self._captured_signals.clear()


def run(platform: Platform, *, grace_s: float = 10.0) -> None:
    s = platform.settings
    config = uvicorn.Config(
        LaminaApp(platform),
        host=s.host,
        port=s.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        # lamina is the edge: no proxy in front whose X-Forwarded-* headers it should trust (and the
        # middleware that reads them costs on every request).
        proxy_headers=False,
        log_config=None,
        server_header=False,
        date_header=False,
        timeout_keep_alive=75,
        timeout_graceful_shutdown=int(grace_s) + 5,
    )
    _Server(config, platform, grace_s).run()
