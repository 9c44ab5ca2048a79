"""One execution environment: a forked process, its channel, log pipe, cgroup, /tmp and timers.

Lifecycle (guarded): STARTING -> INITIALIZING -> IDLE <-> BUSY, any -> DEAD.  An illegal
transition raises ``IllegalTransitionError``.

Concurrency invariants: all methods run on the event loop.  The engine gives an environment at
most one invocation at a time (state BUSY), so ``run`` is never re-entered.  ``exit_status`` is
resolved once, by the zygote's exit report (or by the zygote's own death).  A timeout fails the
pending receive first and kills second, so the caller is answered without waiting for the kill.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import signal
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lamina.execution.cgroup import EnvCgroup
from lamina.execution.channel import ChannelClosedError, EnvChannel
from lamina.execution.logs import LogCapture, init_start_line, log_stream_name
from lamina.execution.types import EnvironmentSpec, InvocationInput
from lamina.execution.zygote import ExitStatus, Zygote

EXIT_WAIT_S = 5.0  # how long to wait for the zygote's exit report after a channel EOF
RSS_POLL_S = 0.05

# Keys the function cannot override (AWS rejects them in the configuration).
RESERVED = frozenset(
    {
        "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
    }
)  # fmt: skip


class EnvState(enum.Enum):
    STARTING = "starting"
    INITIALIZING = "initializing"
    IDLE = "idle"
    BUSY = "busy"
    DEAD = "dead"


TRANSITIONS: dict[EnvState, frozenset[EnvState]] = {
    EnvState.STARTING: frozenset({EnvState.INITIALIZING, EnvState.DEAD}),
    EnvState.INITIALIZING: frozenset({EnvState.IDLE, EnvState.DEAD}),
    EnvState.IDLE: frozenset({EnvState.BUSY, EnvState.DEAD}),
    EnvState.BUSY: frozenset({EnvState.IDLE, EnvState.DEAD}),
    EnvState.DEAD: frozenset(),
}


class IllegalTransitionError(RuntimeError):
    pass


class PlatformError(Exception):
    """The environment could not be set up (not the function's fault)."""


class TimedOutError(Exception):
    pass


class Phase(enum.Enum):
    OK = "ok"  # init: ready; invoke: a result
    FUNCTION_ERROR = "function_error"  # the runtime reported an error object
    TIMEOUT = "timeout"
    DIED = "died"  # the process exited


@dataclass(frozen=True, slots=True)
class PhaseResult:
    phase: Phase
    duration_ms: float
    payload: bytes = b""
    exit: ExitStatus | None = None
    oom: bool = False
    rss_kb: int | None = None


def function_environment(spec: EnvironmentSpec, *, log_stream: str, runtime_dir: Path) -> dict[str, str]:
    """Exactly AWS's variables plus the user's; nothing of the server's environment."""
    task = str(spec.code_dir)
    pyver = spec.runtime.removeprefix("python")
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin:/opt/bin",
        "LD_LIBRARY_PATH": f"{task}:{task}/lib:/opt/lib",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "PYTHONPATH": f"{task}:/opt/python/lib/python{pyver}/site-packages:/opt/python",
    }
    env.update({k: v for k, v in spec.environment.items() if k not in RESERVED})
    env.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": spec.log_group,
            "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_REGION": spec.region,
            "AWS_DEFAULT_REGION": spec.region,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
            "LAMBDA_TASK_ROOT": task,
            "LAMBDA_RUNTIME_DIR": str(runtime_dir),
            "_HANDLER": spec.handler,
        }
    )
    return env


class Environment:
    def __init__(
        self, *, env_id: str, spec: EnvironmentSpec, tmp_dir: Path, cgroup: EnvCgroup | None
    ) -> None:
        self.id = env_id
        self.spec = spec
        self.tmp_dir = tmp_dir
        self.cgroup = cgroup
        self.created = datetime.now(UTC)
        self.log_stream = log_stream_name(spec.version, env_id, self.created)
        self.state = EnvState.STARTING
        self.pid: int | None = None
        self.private_tmp = False
        self.retiring = False  # die after the current invocation (retire / code change)
        self.last_used = time.monotonic()
        self.init_ms: float | None = None  # reported by the first invocation, then cleared
        self.rss_kb: int | None = None
        self.exit_status: asyncio.Future[ExitStatus] = asyncio.get_running_loop().create_future()
        self.channel: EnvChannel | None = None
        self.logs: LogCapture | None = None
        self.oom_by_watch = False
        self._last_header: dict[str, Any] = {}

    def transition(self, to: EnvState) -> None:
        if to not in TRANSITIONS[self.state]:
            raise IllegalTransitionError(f"environment {self.id}: {self.state.name} -> {to.name}")
        self.state = to

    def on_exit(self, status: ExitStatus) -> None:
        if not self.exit_status.done():
            self.exit_status.set_result(status)

    # -- start + INIT
    async def start(self, zygote: Zygote, *, config: dict[str, Any], init_timeout_s: float) -> PhaseResult:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        read_fd, write_fd = os.pipe()
        self.logs = LogCapture(read_fd)  # owns read_fd from here on (closed when destroyed)
        self.logs.add(init_start_line(self.spec.runtime, self.spec.region))
        try:
            _, self.channel = await loop.create_unix_connection(EnvChannel, sock=ours)
            t0 = time.perf_counter()
            self.pid = await zygote.spawn(self.id, config, [theirs.fileno(), write_fd])
        except BaseException:
            if self.channel is None:
                ours.close()
            raise
        finally:  # the zygote has its own copies now (or never will)
            theirs.close()
            os.close(write_fd)
        if self.state is EnvState.STARTING:  # else destroyed meanwhile; _receive sees the death
            self.transition(EnvState.INITIALIZING)
        result = await self._receive(t0, init_timeout_s)
        if result.phase is Phase.OK:
            header = self._last_header
            if header.get("t") == "fail":
                raise PlatformError(str(header.get("error")))
            self.private_tmp = bool(header.get("private_tmp"))
            self.init_ms = result.duration_ms
            if self.state is EnvState.INITIALIZING:
                self.transition(EnvState.IDLE)
        return result

    # -- one invocation
    async def run(self, inv: InvocationInput) -> PhaseResult:
        assert self.channel is not None
        timeout = float(self.spec.timeout_s)
        header: dict[str, Any] = {
            "t": "invoke",
            "id": inv.request_id,
            "deadline": int((time.time() + timeout) * 1000),
            "arn": inv.invoked_function_arn,
        }
        if inv.client_context:
            header["cc"] = inv.client_context
        if inv.cognito_identity:
            header["ci"] = inv.cognito_identity
        if inv.trace_id:
            header["trace"] = inv.trace_id
        t0 = time.perf_counter()
        with contextlib.suppress(ChannelClosedError):  # a dead env is reported by _receive
            self.channel.send(header, inv.payload)
        watch = None if self.cgroup is not None else RssWatch(self)
        try:
            return await self._receive(t0, timeout)
        finally:
            if watch is not None:
                watch.cancel()

    async def _receive(self, t0: float, timeout_s: float) -> PhaseResult:
        assert self.channel is not None and self.logs is not None
        loop = asyncio.get_running_loop()
        timer = loop.call_later(timeout_s, self._on_timeout)
        try:
            header, payload = await self.channel.receive()
        except TimedOutError:
            self.logs.drain()
            return PhaseResult(Phase.TIMEOUT, (time.perf_counter() - t0) * 1000)
        except ChannelClosedError:
            timer.cancel()
            status = await self.wait_exit()
            self.logs.drain()
            self.logs.flush_partial()
            oom = self.oom_by_watch or (
                status.signal == signal.SIGKILL and self.cgroup is not None and self.cgroup.oom_killed()
            )
            return PhaseResult(Phase.DIED, (time.perf_counter() - t0) * 1000, exit=status, oom=oom)
        finally:
            timer.cancel()
        duration = (time.perf_counter() - t0) * 1000
        self.logs.drain()
        self._last_header = header
        if "rss_kb" in header:
            self.rss_kb = header["rss_kb"]
        kind = header.get("t")
        if kind in ("error", "init_error"):
            return PhaseResult(Phase.FUNCTION_ERROR, duration, payload)
        return PhaseResult(Phase.OK, duration, payload)

    def _on_timeout(self) -> None:
        # Only if the answer is still awaited: a result that arrived in this same loop
        # iteration wins, and the environment stays usable.
        if self.channel is not None and self.channel.fail(TimedOutError()):
            self.kill()

    def read_status_kb(self, key: str) -> int | None:
        if self.pid is None:
            return None
        try:
            with open(f"/proc/{self.pid}/status", "rb") as f:
                for line in f:
                    if line.startswith(key.encode()):
                        return int(line.split()[1])
        except (OSError, ValueError, IndexError):
            return None
        return None

    def max_memory_mb(self) -> int:
        peak = self.cgroup.peak_bytes() if self.cgroup is not None else None
        if peak is None:  # the runtime reports its VmHWM (ru_maxrss) with every result
            hwm = self.rss_kb or self.read_status_kb("VmHWM") or 0
            peak = hwm * 1024
        return max(1, -(-peak // (1024 * 1024)))

    # -- death
    def kill(self) -> None:
        if self.cgroup is not None:
            self.cgroup.kill()
        if self.pid is not None and not self.exit_status.done():
            for kill in (os.killpg, os.kill):
                with contextlib.suppress(OSError):
                    kill(self.pid, signal.SIGKILL)

    async def wait_exit(self) -> ExitStatus:
        try:
            return await asyncio.wait_for(asyncio.shield(self.exit_status), EXIT_WAIT_S)
        except TimeoutError:
            # Channel closed but the process lingers (or no report came): kill it.
            self.kill()
            return ExitStatus(signal=signal.SIGKILL)


class RssWatch:
    """No cgroup: poll VmRSS every 50 ms while busy and SIGKILL past the limit.

    Best effort -- a fast allocator can overshoot between polls, and children are not counted;
    the kernel's cgroup limit is the real enforcement where cgroups are writable.
    """

    def __init__(self, env: Environment) -> None:
        self._env = env
        self._limit_kb = env.spec.memory_mb * 1024
        self._loop = asyncio.get_running_loop()
        self._handle = self._loop.call_later(RSS_POLL_S, self._check)

    def _check(self) -> None:
        rss = self._env.read_status_kb("VmRSS")
        if rss is not None and rss > (self._env.rss_kb or 0):
            self._env.rss_kb = rss  # the peak it reached, for Max Memory Used after a kill
        if rss is not None and rss > self._limit_kb:
            self._env.oom_by_watch = True
            self._env.kill()
            return
        self._handle = self._loop.call_later(RSS_POLL_S, self._check)

    def cancel(self) -> None:
        self._handle.cancel()
