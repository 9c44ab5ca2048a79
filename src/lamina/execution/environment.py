"""One execution environment: a specialised environment process, its /tmp, timers and results.

Lifecycle (guarded): STARTING -> INITIALIZING -> IDLE <-> BUSY, any -> DEAD.  An illegal
transition raises ``IllegalTransitionError``.  STARTING is a process claimed from the spares
(``process.py``) that has not been sent its function yet.

Concurrency invariants: all methods run on the event loop.  The engine gives an environment at
most one invocation at a time (state BUSY), so ``run`` is never re-entered.  A timeout fails the
pending receive first and kills second, so the caller is answered without waiting for the kill.

Hot path (a warm ``run``): one pre-encoded frame written with one ``transport.write``, one future
resolved from the channel's ``data_received``, a deadline in the engine's shared ``Deadlines``
(not a loop timer); the log pipe is read only when the environment says bytes wait in it.
"""

from __future__ import annotations

import asyncio
import enum
import os
import signal
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lamina.execution import catalog
from lamina.execution.channel import ChannelClosedError, Header, invoke_header
from lamina.execution.deadlines import Deadlines
from lamina.execution.logs import init_start_line, log_stream_name
from lamina.execution.process import EnvProcess
from lamina.execution.runtime_http import STREAMED_LIMIT
from lamina.execution.runtime_wire import too_large_payload
from lamina.execution.types import EnvironmentSpec, InvocationInput
from lamina.execution.zygote import ExitStatus

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

    __hash__ = object.__hash__  # members are singletons; Enum's own __hash__ is Python code


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

    __hash__ = object.__hash__


@dataclass(slots=True)  # not frozen: one per invoke, and a frozen __init__ costs twice as much
class PhaseResult:
    phase: Phase
    duration_ms: float
    payload: bytes = b""
    exit: ExitStatus | None = None
    oom: bool = False
    entrypoint_error: str | None = None  # the runtime could not be exec'd (Runtime.InvalidEntrypoint)


ON_DEMAND = "on-demand"
PROVISIONED = "provisioned-concurrency"  # AWS_LAMBDA_INITIALIZATION_TYPE of a provisioned environment


# Where an environment with the minimal root sees its code, as on AWS (bootstrap's mount_task)
TASK_ROOT = "/var/task"


def function_environment(
    spec: EnvironmentSpec,
    *,
    log_stream: str,
    runtime_dir: Path,
    initialization_type: str = ON_DEMAND,
    task_root: str | None = None,
) -> dict[str, str]:
    """Exactly AWS's variables for the runtime's family, plus the user's; nothing of the server's.

    ``task_root``: where the environment sees its code (``TASK_ROOT`` in a minimal root), by
    default where it is (the code store).
    """
    task = str(spec.code_dir) if task_root is None else task_root
    runtime = spec.runtime
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin:/opt/bin",
        "LD_LIBRARY_PATH": f"{task}:{task}/lib:/opt/lib",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
    }
    if catalog.is_python(runtime):
        pyver = runtime.removeprefix("python")
        env["PYTHONPATH"] = f"{task}:/opt/python/lib/python{pyver}/site-packages:/opt/python"
        env["NODE_PATH"] = "/opt/nodejs/node_modules"
    elif catalog.is_node(runtime):
        major = runtime.removeprefix("nodejs").split(".")[0]
        env["NODE_PATH"] = (
            f"/opt/nodejs/node{major}/node_modules:/opt/nodejs/node_modules:{runtime_dir}/node_modules:"
            f"{runtime_dir}:{task}"
        )
    env.update({k: v for k, v in spec.environment.items() if k not in RESERVED})
    env.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": spec.log_group,
            "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
            "AWS_LAMBDA_INITIALIZATION_TYPE": initialization_type,
            "AWS_REGION": spec.region,
            "AWS_DEFAULT_REGION": spec.region,
            "LAMBDA_TASK_ROOT": task,
            "LAMBDA_RUNTIME_DIR": str(runtime_dir),
            "_HANDLER": spec.handler,
        }
    )
    if not runtime.startswith("provided"):  # AWS sets none for OS-only runtimes
        env["AWS_EXECUTION_ENV"] = f"AWS_Lambda_{runtime}"
    if spec.json_logging is not None:
        # What the runtimes read (awslambdaric, the Node RIC, lamina's own, custom runtimes)
        env["AWS_LAMBDA_LOG_FORMAT"] = "JSON"
        env["AWS_LAMBDA_LOG_LEVEL"] = spec.json_logging.application_level
    return env


def init_config(env: Environment) -> dict[str, Any]:
    """The ``init`` frame's config: what a claimed process needs to become ``env``'s function."""
    spec = env.spec
    pyver = spec.runtime.removeprefix("python")
    node = catalog.is_node(spec.runtime)
    runtime_dir = (catalog.NODE_BOOTSTRAP if node else catalog.PYTHON_BOOTSTRAP).parent
    # With a minimal root the code is bound at AWS's /var/task and every path names that; the
    # bootstrap points them back at ``code_dir`` if it turns out it cannot (task_fallback).
    # Without one (minimal_root=False, LAMINA_ISOLATION=off) the code stays where it is.
    task_root = TASK_ROOT if env.proc.sandbox.get("root") else str(spec.code_dir)
    config: dict[str, Any] = {
        "environment": function_environment(
            spec,
            log_stream=env.log_stream,
            runtime_dir=runtime_dir,
            initialization_type=PROVISIONED if env.provisioned else ON_DEMAND,
            task_root=task_root,
        ),
        "task_root": task_root,
        "code_dir": str(spec.code_dir),
        "opt_dir": None if spec.opt_dir is None else str(spec.opt_dir),
        "extra_paths": [f"/opt/python/lib/python{pyver}/site-packages", "/opt/python"],
        "handler": spec.handler,
        "extensions": list(spec.extensions),
        "tmp_mb": spec.ephemeral_storage_mb,  # the size of its /tmp (a tmpfs)
    }
    if spec.command is not None:
        # AWS_LAMBDA_EXEC_WRAPPER wraps managed runtimes only, never a custom runtime (())
        config["exec"] = {"argv": list(spec.command), "wrapper": bool(spec.command)}
        # What the exec needs must stay visible past the private /tmp (a checkout under /tmp)
        config["runtime_paths"] = [str(catalog.RUNTIMES_DIR)] + [
            os.path.dirname(arg) for arg in spec.command if arg.startswith("/tmp/")
        ]
    return config


class Environment:
    def __init__(self, *, spec: EnvironmentSpec, proc: EnvProcess, deadlines: Deadlines) -> None:
        assert proc.channel is not None and proc.logs is not None, "a spawned process"
        self.id = proc.id
        self.proc = proc
        self.spec = spec
        self.tmp_dir = proc.tmp_dir
        self.channel = proc.channel
        self.logs = proc.logs
        self.created = datetime.now(UTC)
        self.log_stream = log_stream_name(spec.version, self.id, self.created)
        self.state = EnvState.STARTING
        self.pool_key = ""  # the engine's pool this environment returns to
        self.private_tmp = False
        self.retiring = False  # die after the current invocation (retire / code change)
        self.provisioned = False  # initialised ahead for provisioned concurrency (provisioned.py)
        self.last_used = time.monotonic()
        self.init_ms: float | None = None  # reported by the first invocation, then cleared
        self.rss_kb = 0  # the process's VmHWM (ru_maxrss), reported with every frame
        self.oom_by_watch = False
        self.admitted_mb = 0  # host capacity it holds (the engine's accounting; 0 once DEAD)
        self._deadlines = deadlines
        self._timeout_s = float(spec.timeout_s)

    @property
    def pid(self) -> int | None:
        return self.proc.pid

    def transition(self, to: EnvState) -> None:
        if to not in TRANSITIONS[self.state]:
            raise IllegalTransitionError(f"environment {self.id}: {self.state.name} -> {to.name}")
        self.state = to

    # -- INIT
    async def specialise(self, config: dict[str, Any], *, init_timeout_s: float) -> PhaseResult:
        """Send the claimed process its function, wait for INIT to finish."""
        self.logs.add(init_start_line(self.spec.runtime, self.spec.region))
        t0 = time.perf_counter()
        try:  # noqa: SIM105 -- as in run
            self.channel.send({"t": "init", "cfg": config})
        except ChannelClosedError:
            pass  # died while spare: the receive below reports it
        if self.state is EnvState.STARTING:  # else destroyed meanwhile; the receive sees the death
            self.transition(EnvState.INITIALIZING)
        self._deadlines.add(self, init_timeout_s, self._on_timeout)
        try:
            header, payload = await self.channel.receive()
        except (TimedOutError, ChannelClosedError) as exc:
            return await self._failed(exc, t0)
        finally:
            self._deadlines.discard(self)
        result = self._answer(header, payload, t0)
        if result.phase is Phase.OK:
            if header.get("t") == "fail":
                raise PlatformError(str(header.get("error")))
            self.private_tmp = bool(header.get("private_tmp"))
            self.init_ms = result.duration_ms
            if self.state is EnvState.INITIALIZING:
                self.transition(EnvState.IDLE)
        return result

    # -- one invocation
    async def run(self, inv: InvocationInput) -> PhaseResult:
        head = invoke_header(
            inv.request_id,
            int((time.time() + self._timeout_s) * 1000),
            inv.invoked_function_arn,
            client_context=inv.client_context,
            cognito_identity=inv.cognito_identity,
            trace_id=inv.trace_id,
        )
        t0 = time.perf_counter()
        try:  # noqa: SIM105 -- contextlib.suppress costs more than the send itself
            self.channel.send_raw(head, inv.payload)
        except ChannelClosedError:
            pass  # a dead env is reported by the receive
        self._deadlines.add(self, self._timeout_s, self._on_timeout)
        watch = None if self.proc.cgroup is not None else RssWatch(self)
        try:
            header, payload = await self.channel.receive()
            if header.get("t") == "chunk":  # a streaming handler: chunks first, then the end
                header, payload = await self._streamed(inv, payload)
        except (TimedOutError, ChannelClosedError) as exc:
            return await self._failed(exc, t0)
        finally:
            self._deadlines.discard(self)
            if watch is not None:
                watch.cancel()
        return self._answer(header, payload, t0)

    async def _streamed(self, inv: InvocationInput, first: bytes) -> tuple[Header, bytes]:
        """Chunk frames of a streaming handler (``lamina_streaming``), each handed to the caller's
        stream sink as it comes, up to the end frame; its payload is the whole response."""
        chunks = [first]
        size = len(first)
        sink = inv.stream
        if sink is not None:
            sink.begin("application/octet-stream")
            sink.put(first)
        while True:
            header, payload = await self.channel.receive()
            if header.get("t") != "chunk":
                break
            size += len(payload)
            if size <= STREAMED_LIMIT:  # past it: counted, not kept or passed on
                chunks.append(payload)
                if sink is not None:
                    sink.put(payload)
        if header.get("t") == "result":
            size += len(payload)
            if size > STREAMED_LIMIT:
                return {**header, "t": "error"}, too_large_payload(size, STREAMED_LIMIT)
            payload = b"".join(chunks) + payload
        return header, payload

    def _answer(self, header: Header, payload: bytes, t0: float) -> PhaseResult:
        duration = (time.perf_counter() - t0) * 1000
        if header.get("log_bytes", 1):  # bytes still unread in the log pipe: they come first
            self.logs.drain()
        rss = header.get("rss_kb")
        if type(rss) is int:  # the process writes its frames: never trust their shape
            self.rss_kb = rss
        kind = header.get("t")
        if kind == "error" or kind == "init_error":
            return PhaseResult(Phase.FUNCTION_ERROR, duration, payload)
        return PhaseResult(Phase.OK, duration, payload)  # result; ready or fail: specialise looks

    async def _failed(self, exc: Exception, t0: float) -> PhaseResult:
        if isinstance(exc, TimedOutError):
            self.logs.drain()
            return PhaseResult(Phase.TIMEOUT, (time.perf_counter() - t0) * 1000)
        status = await self.proc.wait_exit()
        self.logs.drain()
        self.logs.flush_partial()
        oom = self.oom_by_watch or (
            status.signal == signal.SIGKILL and self.proc.cgroup is not None and self.proc.cgroup.oom_killed()
        )
        return PhaseResult(Phase.DIED, (time.perf_counter() - t0) * 1000, exit=status, oom=oom)

    def _on_timeout(self) -> None:
        # Only if the answer is still awaited: a result that arrived in this same loop
        # iteration wins, and the environment stays usable.
        if self.channel.fail(TimedOutError()):
            self.proc.kill()

    def read_status_kb(self, key: str) -> int | None:
        if self.proc.pid is None:
            return None
        try:
            with open(f"/proc/{self.proc.pid}/status", "rb") as f:
                for line in f:
                    if line.startswith(key.encode()):
                        return int(line.split()[1])
        except (OSError, ValueError, IndexError):
            return None
        return None

    def max_memory_mb(self) -> int:
        """Max Memory Used: the larger of the cgroup's peak and the process's peak RSS (VmHWM).

        The cgroup counts only what was charged to it: pages the environment shares with its
        zygote (the interpreter, the pre-imported modules) stay charged to the zygote, so a
        hello world would report 1-2 MB.  VmHWM counts every page the process mapped, shared or
        not -- what AWS's figure (the whole sandbox's usage) reflects -- but not its children or
        its page cache, which the cgroup does count.  Neither can exceed the real footprint, so
        the larger is the closer.  VmHWM is ``ru_maxrss``, sent by the runtime with every frame
        (a getrusage in the environment, rather than parsing /proc/<pid>/status on the loop).
        """
        cgroup = self.proc.cgroup
        peak = cgroup.peak_bytes() if cgroup is not None else None
        hwm = self.rss_kb * 1024
        if peak is None or peak < hwm:
            peak = hwm
        return max(1, -(-peak // (1024 * 1024)))

    def kill(self) -> None:
        self.proc.kill()

    async def stop(self) -> None:
        """Before the process is killed: nothing to tell lamina's own Python runtime."""


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
        if rss is not None and rss > self._env.rss_kb:
            self._env.rss_kb = rss  # the peak it reached, for Max Memory Used after a kill
        if rss is not None and rss > self._limit_kb:
            self._env.oom_by_watch = True
            self._env.kill()
            return
        self._handle = self._loop.call_later(RSS_POLL_S, self._check)

    def cancel(self) -> None:
        self._handle.cancel()
