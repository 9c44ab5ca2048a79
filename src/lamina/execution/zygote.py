"""One zygote per interpreter: a pre-started bootstrap that forks environments on request.

Control socket: SOCK_SEQPACKET (one JSON message per packet; spawn requests carry the env's
channel end and log-pipe write end via SCM_RIGHTS).  Zygote -> engine: ``hello`` (with the
modules it preloaded and those it could not), ``spawned`` (env id -> pid) and ``exit`` (env id,
pid, code or signal) for every child it reaps.  What to preload is its last argument (JSON).

Concurrency invariants: everything runs on the event loop; the control socket is read by a loop
reader callback.  ``_live`` holds env ids spawned and not yet reported exited: when the zygote
dies, its children die with it (PR_SET_PDEATHSIG) and are reported as killed, since no ``exit``
message can come any more.  The zygote's own exit is seen through a pidfd (no threads, no
child watcher).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import os
import signal
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lamina.execution.placement import Placement

START_TIMEOUT_S = 15.0


class ZygoteState(enum.Enum):
    STARTING = "starting"
    RUNNING = "running"
    DEAD = "dead"


class ZygoteError(Exception):
    """The zygote is not running, or failed to start or spawn."""


@dataclass(frozen=True, slots=True)
class ExitStatus:
    code: int | None = None
    signal: int | None = None

    def describe(self) -> str:
        """How AWS (its Go runtime manager) words it: 'exit status 1', 'signal: killed'."""
        if self.signal is not None:
            name = SIGNAL_NAMES.get(self.signal)
            return "signal: " + (name if name is not None else f"signal {self.signal}")
        return f"exit status {self.code}"


# Go's syscall.Signal.String() for the signals a runtime dies of.
SIGNAL_NAMES: dict[int, str] = {
    signal.SIGHUP: "hangup",
    signal.SIGINT: "interrupt",
    signal.SIGQUIT: "quit",
    signal.SIGILL: "illegal instruction",
    signal.SIGTRAP: "trace/breakpoint trap",
    signal.SIGABRT: "aborted",
    signal.SIGBUS: "bus error",
    signal.SIGFPE: "floating point exception",
    signal.SIGKILL: "killed",
    signal.SIGUSR1: "user defined signal 1",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGUSR2: "user defined signal 2",
    signal.SIGPIPE: "broken pipe",
    signal.SIGALRM: "alarm clock",
    signal.SIGTERM: "terminated",
    signal.SIGXCPU: "CPU time limit exceeded",
    signal.SIGXFSZ: "file size limit exceeded",
    signal.SIGSYS: "bad system call",
}

ExitCallback = Callable[[str, ExitStatus], None]
log = logging.getLogger(__name__)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("zygote restart failed: %s", task.exception())


class Zygote:
    def __init__(
        self,
        *,
        interpreter: str,
        bootstrap: Path,
        on_exit: ExitCallback,
        preload: Sequence[str] = (),
        preload_paths: Sequence[str] = (),
        placement: Placement | None = None,
    ) -> None:
        self.interpreter = interpreter
        self._placement = placement or Placement()  # the CPUs it, and so every fork of it, runs on
        self.bootstrap = bootstrap
        # Imported by the zygote before gc.freeze(): every environment forks with them in memory
        self.preload = list(preload)
        self.preload_paths = list(preload_paths)
        self.preloaded: list[str] = []  # what the running zygote did import (its hello says)
        self._warned: set[str] = set()  # modules whose failure to preload was logged already
        self.state = ZygoteState.DEAD
        self.pid: int | None = None
        self._on_exit = on_exit
        self._sock: socket.socket | None = None
        self._hello: asyncio.Future[dict[str, Any]] | None = None
        self._spawns: dict[str, asyncio.Future[int]] = {}
        self._live: set[str] = set()
        self._send_lock = asyncio.Lock()  # see _send
        self._exited: asyncio.Event = asyncio.Event()
        self._starting: asyncio.Task[None] | None = None
        self._closing = False

    async def ensure_running(self) -> None:
        if self.state is ZygoteState.RUNNING:
            return
        if self._starting is None or self._starting.done():
            self._starting = asyncio.ensure_future(self._start())
        await asyncio.shield(self._starting)

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        self.state = ZygoteState.STARTING
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        child_fd = theirs.fileno()
        try:
            argv = [self.interpreter, "-I", "-S", str(self.bootstrap), "zygote", "3"]
            if self.preload:
                argv.append(json.dumps({"preload": self.preload, "preload_paths": self.preload_paths}))
            actions: list[tuple[Any, ...]] = [
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, child_fd, 3),
            ]
            if child_fd == 3:  # dup2(3, 3) would keep close-on-exec
                child_fd = os.dup(3)
                actions[1] = (os.POSIX_SPAWN_DUP2, child_fd, 3)
            # C.UTF-8: the zygote's locale, inherited by every fork (AWS uses a UTF-8 locale too)
            pid = os.posix_spawn(
                self.interpreter, argv, {"LC_CTYPE": "C.UTF-8"}, file_actions=actions, setsid=True
            )
        except OSError as exc:
            ours.close()
            self.state = ZygoteState.DEAD
            raise ZygoteError(f"cannot start {self.interpreter}: {exc}") from exc
        finally:
            if child_fd != theirs.fileno():
                os.close(child_fd)
            theirs.close()
        self.pid = pid
        self._placement.confine(pid)  # before its hello: it forks nothing until asked
        self._exited = asyncio.Event()
        pidfd = os.pidfd_open(pid)
        loop.add_reader(pidfd, self._on_pidfd, pid, pidfd, self._exited)
        ours.setblocking(False)
        self._sock = ours
        self._hello = loop.create_future()
        loop.add_reader(ours.fileno(), self._on_readable)
        try:
            await asyncio.wait_for(asyncio.shield(self._hello), START_TIMEOUT_S)
        except (TimeoutError, ZygoteError) as exc:
            self.kill()
            raise ZygoteError(f"zygote for {self.interpreter} did not start") from exc
        self.state = ZygoteState.RUNNING

    async def spawn(self, env_id: str, config: dict[str, Any], fds: list[int]) -> int:
        """Fork an environment; returns its pid.  The caller closes its copies of ``fds``."""
        await self.ensure_running()
        sock = self._sock
        if sock is None:
            raise ZygoteError("zygote is not running")
        message = json.dumps({"t": "spawn", "id": env_id, "cfg": config}).encode()
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._spawns[env_id] = future
        self._live.add(env_id)
        try:
            await self._send(sock, message, fds)
            return await future
        except BaseException:
            self._spawns.pop(env_id, None)
            raise

    async def _send(self, sock: socket.socket, message: bytes, fds: list[int]) -> None:
        # One sender at a time once the socket is full: the loop keeps one writer callback per
        # fd, so a second add_writer would replace the first waiter's and strand it forever
        # (a burst of 200 cold starts lost ~25 spawns that way).
        if not self._send_lock.locked():
            try:
                socket.send_fds(sock, [message], fds)
                return
            except BlockingIOError:
                pass
            except OSError as exc:
                raise ZygoteError(f"zygote control socket: {exc}") from exc
        async with self._send_lock:
            loop = asyncio.get_running_loop()
            while True:
                try:
                    socket.send_fds(sock, [message], fds)
                    return
                except BlockingIOError:
                    writable: asyncio.Future[None] = loop.create_future()
                    loop.add_writer(sock.fileno(), _resolve, writable)
                    try:
                        await writable
                    finally:
                        loop.remove_writer(sock.fileno())
                except OSError as exc:
                    raise ZygoteError(f"zygote control socket: {exc}") from exc

    def _on_readable(self) -> None:
        sock = self._sock
        while sock is not None:
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._lost()
                return
            self._dispatch(json.loads(data))

    def _dispatch(self, msg: dict[str, Any]) -> None:
        kind = msg.get("t")
        if kind == "spawned":
            future = self._spawns.pop(msg["id"], None)
            if future is not None and not future.done():
                future.set_result(int(msg["pid"]))
        elif kind == "exit":
            env_id = msg.get("id")
            if env_id is not None:
                self._live.discard(env_id)
                self._on_exit(env_id, ExitStatus(code=msg.get("code"), signal=msg.get("signal")))
        elif kind == "hello" and self._hello is not None and not self._hello.done():
            self._preload_report(msg)
            self._hello.set_result(msg)

    def _preload_report(self, msg: dict[str, Any]) -> None:
        """Log once per module (not at every restart) what this interpreter could not preload."""
        self.preloaded = [str(name) for name in msg.get("preloaded") or ()]
        skipped = msg.get("skipped") or {}
        for name, reason in skipped.items():
            if name not in self._warned:
                self._warned.add(name)
                log.warning("%s cannot preload %r, skipped: %s", self.interpreter, name, reason)

    def _lost(self) -> None:
        """Control socket EOF: the zygote is gone; so are its children (PDEATHSIG)."""
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        self.state = ZygoteState.DEAD
        error = ZygoteError(f"zygote for {self.interpreter} exited")
        for future in self._spawns.values():
            if not future.done():
                future.set_exception(error)
        self._spawns.clear()
        if self._hello is not None and not self._hello.done():
            self._hello.set_exception(error)
        live, self._live = self._live, set()
        for env_id in live:
            self._on_exit(env_id, ExitStatus(signal=signal.SIGKILL))
        if not self._closing and (self._starting is None or self._starting.done()):
            # Restart now, so the next cold start does not pay for it.
            self._starting = asyncio.ensure_future(self._start())
            self._starting.add_done_callback(_log_failure)

    @staticmethod
    def _on_pidfd(pid: int, pidfd: int, exited: asyncio.Event) -> None:
        """This zygote process (not necessarily the current one, after a restart) has exited."""
        asyncio.get_running_loop().remove_reader(pidfd)
        os.close(pidfd)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        exited.set()

    def kill(self) -> None:
        if self.pid is not None and not self._exited.is_set():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    async def close(self, timeout_s: float = 5.0) -> None:
        """EOF on the control socket: the zygote kills and reaps its children, then exits."""
        self._closing = True
        if self._starting is not None and not self._starting.done():
            with contextlib.suppress(Exception):
                await self._starting
        if self.pid is None:
            return
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_WR)
        try:
            await asyncio.wait_for(self._exited.wait(), timeout_s)
        except TimeoutError:
            self.kill()
            await self._exited.wait()
        if self._sock is not None:
            self._lost()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():  # the writer may fire again before the waiter removes it
        future.set_result(None)
