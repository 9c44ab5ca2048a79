"""Runs the platform behind lamina's HTTP front on uvloop, with Lambda-like graceful shutdown.

Order: bind the port (taken -> exit 1 at once), start the platform, accept.  On SIGTERM/SIGINT
the front drains (``lamina.web.server``): in-flight sync invokes finish for up to ``grace_s``,
then the environments are killed so any invoke still running answers with an error rather than
hanging; the platform then closes, leaving no environment process behind.  A clean shutdown
exits 0.
"""

from __future__ import annotations

import asyncio
import logging

from lamina.app import LaminaApp
from lamina.platform import Platform
from lamina.web.server import FrontServer, install_signal_handlers

log = logging.getLogger("lamina.server")


def run(platform: Platform, *, grace_s: float = 10.0) -> int:
    """Serve until a signal; the process's exit status."""
    try:
        import uvloop
    except ImportError:  # uvloop is not built for every platform: asyncio's loop still works
        return asyncio.run(_serve(platform, grace_s))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_serve(platform, grace_s))


async def _serve(platform: Platform, grace_s: float) -> int:
    s = platform.settings
    front = FrontServer(LaminaApp(platform), host=s.host, port=s.port)
    stop = asyncio.Event()

    def on_signal(sig: int) -> None:
        if not stop.is_set():
            log.info("shutting down", extra={"signal": sig, "grace_s": grace_s})
            stop.set()

    install_signal_handlers(on_signal)  # before anything starts: no signal leaves processes behind
    try:
        await front.bind()
    except OSError as exc:
        log.error("cannot listen", extra={"host": s.host, "port": s.port, "error": str(exc)})
        return 1
    try:
        await platform.start()
    except Exception:
        log.exception("startup failed")
        front.stop_unstarted()
        await platform.close()
        return 1
    if stop.is_set():  # asked to stop while starting
        front.stop_unstarted()
    else:
        await front.serve()
        await stop.wait()
        await asyncio.gather(front.drain(grace_s, platform.stop_environments), platform.drain_urls(grace_s))
    await platform.close()
    return 0
