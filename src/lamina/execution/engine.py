"""PythonEngine: runs invocations in forked Python environments, warm-reused and reaped idle.

Concurrency invariants (everything runs on one event loop, no threads except the default
executor for deleting /tmp dirs -- unbounded disk I/O with no async equivalent):
- An environment is in ``_idle`` iff its state is IDLE; ``invoke`` pops it and makes it BUSY
  before the first ``await``, so no two invocations ever share one.
- ``_envs`` holds every environment not yet fully destroyed (for exit reports, retire, close).
- ``_destroy`` is idempotent: it moves the env to DEAD at once (so it can never be handed out
  again) and finishes (kill, wait for exit, remove cgroup and /tmp) in a tracked task that
  ``close`` awaits.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import operator
import shutil
import time
import uuid
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

from lamina.errors import AwsError
from lamina.execution import interpreters
from lamina.execution.cgroup import MemoryCgroups, detect_memory_root
from lamina.execution.environment import (
    Environment,
    EnvState,
    Phase,
    PlatformError,
    function_environment,
)
from lamina.execution.logs import now_ms
from lamina.execution.outcomes import OutcomeContext, init_failure_outcome, invocation_outcome
from lamina.execution.types import EnvironmentSpec, InvocationInput, InvocationOutcome, LogEvent
from lamina.execution.zygote import ExitStatus, Zygote, ZygoteError

BOOTSTRAP = Path(__file__).resolve().parent.parent / "runtimes" / "python" / "bootstrap.py"
INIT_TIMEOUT_S = 10.0  # AWS's limit on the init phase
# Every field but the (unhashable) ``environment`` mapping, read at C speed.
_PLAIN_FIELDS = operator.attrgetter(
    *(f.name for f in dataclasses.fields(EnvironmentSpec) if f.name != "environment")
)

log = logging.getLogger(__name__)


def pool_key(spec: EnvironmentSpec) -> Hashable:
    """Specs that compare equal share environments (``environment`` is a mapping: frozen here)."""
    return _PLAIN_FIELDS(spec), frozenset(spec.environment.items())


class PythonEngine:
    def __init__(
        self,
        *,
        runtime_dir: Path,
        idle_timeout_s: float = 300.0,
        interpreters: Mapping[str, str] | None = None,
        cgroups: bool = True,
        init_timeout_s: float = INIT_TIMEOUT_S,
    ) -> None:
        self._runtime_dir = runtime_dir
        self._tmp_root = runtime_dir / "env-tmp"
        self._idle_timeout_s = idle_timeout_s
        self._overrides = dict(interpreters or {})
        self._use_cgroups = cgroups
        self._init_timeout_s = init_timeout_s
        self._cgroups: MemoryCgroups | None = None
        self._runtimes: dict[str, str] = {}
        self._zygotes: dict[str, Zygote] = {}
        self._envs: dict[str, Environment] = {}
        self._idle: dict[Hashable, list[Environment]] = {}
        self._destroying: dict[str, asyncio.Task[None]] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, shutil.rmtree, self._tmp_root, True)  # ours, from a previous run
        self._tmp_root.mkdir(parents=True, exist_ok=True)
        if self._use_cgroups:
            found = detect_memory_root()
            if found is not None:
                self._cgroups = MemoryCgroups(*found)
                self._cgroups.setup()
            else:
                log.warning("no writable memory cgroup: memory limits are enforced by RSS polling")
        self._runtimes = await interpreters.discover(self._overrides)
        results = await asyncio.gather(
            *(self._zygote(path).ensure_running() for path in self._runtimes.values()),
            return_exceptions=True,
        )
        for path, result in zip(self._runtimes.values(), results, strict=True):
            if isinstance(result, BaseException):
                log.warning("zygote for %s did not start: %s", path, result)
        self._reaper = asyncio.ensure_future(self._reap_idle())

    def available_runtimes(self) -> Mapping[str, str]:
        return dict(self._runtimes)

    @property
    def cgroups_enabled(self) -> bool:
        return self._cgroups is not None

    def environments(self) -> list[tuple[str, str, str]]:
        """(env id, function ARN, state) of every live environment (for tests and metrics)."""
        return [(e.id, e.spec.function_arn, e.state.value) for e in self._envs.values()]

    async def retire(self, function_arn: str) -> None:
        for env in list(self._envs.values()):
            if env.spec.function_arn == function_arn:
                env.retiring = True
                if env.state is EnvState.IDLE:
                    self._destroy(env)
        await self._settle(e.id for e in self._envs.values() if e.spec.function_arn == function_arn)

    async def close(self) -> None:
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for env in list(self._envs.values()):
            self._destroy(env)
        await self._settle(list(self._destroying))
        await asyncio.gather(*(z.close() for z in self._zygotes.values()))
        if self._cgroups is not None:
            self._cgroups.remove_base()
        await asyncio.get_running_loop().run_in_executor(None, shutil.rmtree, self._tmp_root, True)

    # ------------------------------------------------------------------ invoke
    async def invoke(self, spec: EnvironmentSpec, inv: InvocationInput) -> InvocationOutcome:
        if self._closed:
            raise AwsError("ServiceException", "The execution engine is shut down.")
        key = pool_key(spec)
        idle = self._idle.get(key)
        env = idle.pop() if idle else None
        if env is not None:
            env.transition(EnvState.BUSY)
            prefix: list[LogEvent] = []
        else:
            env, prefix, failure = await self._create(spec, inv)
            if failure is not None:
                return failure
            if env.state is not EnvState.IDLE:  # stopped while starting (close)
                raise AwsError("ServiceException", "The execution environment was stopped.")
            env.transition(EnvState.BUSY)
        ctx = self._context(env, inv)
        assert env.logs is not None
        events = prefix
        events.append(LogEvent(now_ms(), f"START RequestId: {inv.request_id} Version: {spec.version}"))
        events.extend(env.logs.take())
        try:
            result = await env.run(inv)
        except BaseException:  # cancelled mid-invocation: the env's state is unknown
            self._destroy(env)
            raise
        env.logs.flush_partial()  # a last line without '\n' still belongs to this invocation
        events.extend(env.logs.take())
        init_ms, env.init_ms = env.init_ms, None
        outcome = invocation_outcome(
            ctx, result, events=events, init_ms=init_ms, max_used_mb=env.max_memory_mb()
        )
        if result.phase in (Phase.TIMEOUT, Phase.DIED) or env.retiring or self._closed:
            self._destroy(env)
        elif env.state is EnvState.BUSY:
            env.transition(EnvState.IDLE)
            env.last_used = time.monotonic()
            self._idle.setdefault(key, []).append(env)
        return outcome

    @staticmethod
    def _context(env: Environment, inv: InvocationInput) -> OutcomeContext:
        spec = env.spec
        return OutcomeContext(inv.request_id, spec.version, spec.memory_mb, spec.timeout_s, env.log_stream)

    async def _create(
        self, spec: EnvironmentSpec, inv: InvocationInput
    ) -> tuple[Environment, list[LogEvent], InvocationOutcome | None]:
        """A new environment through INIT: (env, its init log events, outcome if INIT failed)."""
        env_id = uuid.uuid4().hex
        tmp_dir = self._tmp_root / env_id
        try:
            tmp_dir.mkdir()
            tmp_dir.chmod(0o1777)
            cgroup = self._cgroups.create(env_id, spec.memory_mb) if self._cgroups is not None else None
        except OSError as exc:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise AwsError("ServiceException", f"Cannot create an execution environment: {exc}") from exc
        env = Environment(env_id=env_id, spec=spec, tmp_dir=tmp_dir, cgroup=cgroup)
        self._envs[env_id] = env
        try:
            result = await env.start(
                self._zygote(spec.interpreter),
                config=self._spawn_config(env),
                init_timeout_s=self._init_timeout_s,
            )
        except (ZygoteError, PlatformError, OSError) as exc:
            self._destroy(env)
            raise AwsError("ServiceException", f"Cannot start an execution environment: {exc}") from exc
        except BaseException:
            self._destroy(env)
            raise
        assert env.logs is not None
        events = env.logs.take()
        if result.phase is Phase.OK:
            return env, events, None
        outcome = init_failure_outcome(
            self._context(env, inv),
            result,
            events=events,
            init_timeout_s=self._init_timeout_s,
            max_used_mb=env.max_memory_mb(),
        )
        self._destroy(env)
        return env, events, outcome

    def _spawn_config(self, env: Environment) -> dict[str, Any]:
        spec = env.spec
        pyver = spec.runtime.removeprefix("python")
        return {
            "environment": function_environment(
                spec, log_stream=env.log_stream, runtime_dir=BOOTSTRAP.parent
            ),
            "task_root": str(spec.code_dir),
            "extra_paths": [f"/opt/python/lib/python{pyver}/site-packages", "/opt/python"],
            "handler": spec.handler,
            "cgroup_procs": str(env.cgroup.procs_file) if env.cgroup is not None else None,
            "tmp_dir": str(env.tmp_dir),
        }

    def _zygote(self, interpreter: str) -> Zygote:
        zygote = self._zygotes.get(interpreter)
        if zygote is None:
            zygote = Zygote(interpreter=interpreter, bootstrap=BOOTSTRAP, on_exit=self._on_exit)
            self._zygotes[interpreter] = zygote
        return zygote

    # ------------------------------------------------------------------ death
    def _on_exit(self, env_id: str, status: ExitStatus) -> None:
        env = self._envs.get(env_id)
        if env is None:
            return
        env.on_exit(status)
        if env.state is EnvState.IDLE:  # died between invocations (a thread called os._exit...)
            self._destroy(env)

    def _destroy(self, env: Environment) -> None:
        if env.id in self._destroying:
            return
        if env.state is EnvState.IDLE:
            pool = self._idle.get(pool_key(env.spec))
            if pool is not None and env in pool:
                pool.remove(env)
        if env.state is not EnvState.DEAD:
            env.transition(EnvState.DEAD)
        task = asyncio.ensure_future(self._finish(env))
        self._destroying[env.id] = task

    async def _finish(self, env: Environment) -> None:
        try:
            env.kill()
            await env.wait_exit()
            if env.channel is not None:
                env.channel.close()
            if env.logs is not None:
                env.logs.close()
            if env.cgroup is not None:
                for _ in range(100):  # the kernel may hold the group a moment after the exit
                    if env.cgroup.remove():
                        break
                    env.cgroup.kill()
                    await asyncio.sleep(0.01)
            await asyncio.get_running_loop().run_in_executor(None, shutil.rmtree, env.tmp_dir, True)
        finally:
            self._envs.pop(env.id, None)
            self._destroying.pop(env.id, None)

    async def _settle(self, env_ids: Any) -> None:
        tasks = [t for i in list(env_ids) if (t := self._destroying.get(i)) is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _reap_idle(self) -> None:
        interval = min(5.0, self._idle_timeout_s / 4)
        while True:
            await asyncio.sleep(interval)
            cutoff = time.monotonic() - self._idle_timeout_s
            for key, pool in list(self._idle.items()):
                for env in [e for e in pool if e.last_used <= cutoff]:
                    self._destroy(env)
                if not pool:  # specs of old revisions must not accumulate
                    del self._idle[key]
