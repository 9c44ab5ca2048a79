"""PythonEngine: runs invocations in forked Python environments, warm-reused and reaped idle.

A cold start claims a spare process (``spares.py``: forked, in its cgroup, warmed up ahead of
need), sets its memory limit and sends it its function; the spare is replaced once that cold
invocation is answered.  Warm invocations take the most recently used idle environment of the
same pool key.  See docs/execution.md for the whole picture and measured figures.

Concurrency invariants (everything runs on one event loop, no threads except the default
executor for deleting /tmp dirs -- unbounded disk I/O with no async equivalent):
- An environment is in ``_idle`` (on-demand) or ``_warm`` (provisioned, ``provisioned.py``) iff
  its state is IDLE; ``invoke`` pops it and makes it BUSY before the first ``await``, so no two
  invocations ever share one.  ``invoke`` looks in ``_warm`` first: provisioned before on-demand.
- ``_procs`` holds every environment process not yet disposed, spare or not (exit reports go
  through it); ``_envs`` the environments among them (for retire, close and ``environments()``).
- ``_destroy``/``_discard`` are idempotent: an environment moves to DEAD at once (so it can never
  be handed out again) and its process is disposed of (kill, wait for exit, remove cgroup and
  /tmp) in a tracked task that ``close`` awaits.
- Host capacity (``capacity.py``): ``_admitted_mb`` is the sum of ``admitted_mb`` over the
  environments not DEAD, plus the reservations of cold starts that have not made their
  environment yet.  ``_admit`` checks, evicts and reserves with no ``await`` in between, so two
  cold starts can never both take the last megabytes; ``_destroy`` gives an environment's share
  back exactly once (it zeroes ``admitted_mb``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import operator
import os
import shutil
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lamina.aio import stop_task
from lamina.errors import AwsError
from lamina.execution import capacity, catalog, interpreters, jsonlogs, nodes, telemetry_events
from lamina.execution.api_environment import ApiEnvironment
from lamina.execution.capacity import HostCapacity
from lamina.execution.catalog import RuntimeLaunch
from lamina.execution.cgroup import CGROUP_FS, PIDS_MAX, MemoryCgroups, detect_memory_root
from lamina.execution.deadlines import Deadlines
from lamina.execution.environment import Environment, EnvState, Phase, PhaseResult, PlatformError, init_config
from lamina.execution.logs import now_ms
from lamina.execution.netns import NETWORK_NONE
from lamina.execution.outcomes import init_failure_outcome, invocation_outcome
from lamina.execution.placement import Placement
from lamina.execution.process import EXIT_WAIT_S, EnvProcess
from lamina.execution.provisioned import PROVISIONED_INIT_TIMEOUT_S, Provisioner
from lamina.execution.sandbox import (
    DEFAULT_TMP_MB,
    HOME_DIRS,
    NOFILE,
    UID_BASE,
    UidBlock,
    root_layout,
    runtime_prefixes,
)
from lamina.execution.spares import SparePool
from lamina.execution.types import (
    EnvironmentSpec,
    InvocationInput,
    InvocationOutcome,
    LogEvent,
    LogSink,
    ProvisionedState,
)
from lamina.execution.zygote import ExitStatus, Zygote, ZygoteError

BOOTSTRAP = catalog.PYTHON_BOOTSTRAP
INIT_TIMEOUT_S = 10.0  # AWS's limit on the init phase
# MemorySize is a ceiling most functions stay far below (an idle Python environment holds ~3 MB
# of its 128): 2x lets a burst of 200 first invokes of 128 MB functions run on 24 GB, and an
# environment still cannot take more than its own limit.
DEFAULT_OVERCOMMIT_RATIO = 2.0
SPARES_PER_RUNTIME = 2
DEFAULT_MEMORY_MB = 128  # Lambda's default MemorySize
POOL_KEY_CACHE = 4096  # specs remembered by identity; the service keeps one spec per version
# Every field but the (unhashable) ``environment`` mapping, read at C speed.
_PLAIN_FIELDS = operator.attrgetter(
    *(f.name for f in dataclasses.fields(EnvironmentSpec) if f.name != "environment")
)

log = logging.getLogger(__name__)


def _last_used(env: Environment) -> float:
    return env.last_used


def pool_key(spec: EnvironmentSpec) -> str:
    """Specs that compare equal share environments; equal keys iff equal specs.

    A str, not a tuple: a str caches its hash, a tuple rehashes every field (a Path's hash is
    Python code) on every dict lookup.  JSON keeps it injective (quoting, fixed field order).
    """
    fields = [str(v) if isinstance(v, Path) else v for v in _PLAIN_FIELDS(spec)]
    return json.dumps([fields, sorted(spec.environment.items())])


class PythonEngine:
    """Runs invocations in environments forked from per-interpreter zygotes.

    ``overcommit_ratio``: environments are admitted while the sum of their MemorySize stays
    within host memory x this ratio (default 2.0, see docs/execution.md).  1.0 is the largest
    ratio that cannot overcommit: every environment is capped by its own cgroup at its MemorySize, so together
    they can never take more than the host has, whatever they do.  (The server, its zygotes and
    spares -- some 100 MB -- come on top; they fit in the headroom functions leave below their
    MemorySize, which in practice is most of it.  Below 1 reserves room for them and for other
    work on the host even when every function uses its whole MemorySize.)  Above 1 packs more
    environments -- an idle 128 MB Python environment really holds ~3 MB -- at the price of that
    guarantee: if they all grew to their limits at once, the kernel's OOM killer would choose.
    ``host_memory_mb`` overrides what ``capacity.host_memory_mb`` finds (tests).

    ``preload``: modules every Python zygote imports before ``gc.freeze()``, so environments
    fork with them already in memory, shared copy-on-write (e.g. ``boto3``).  They are looked up
    in ``preload_paths``, then in the interpreter's own site-packages; one an interpreter lacks
    is skipped with a warning.  See docs/execution.md ("Preloaded packages").
    """

    def __init__(
        self,
        *,
        runtime_dir: Path,
        idle_timeout_s: float = 300.0,
        interpreters: Mapping[str, str] | None = None,
        cgroups: bool = True,
        init_timeout_s: float = INIT_TIMEOUT_S,
        spares: int = SPARES_PER_RUNTIME,
        overcommit_ratio: float = DEFAULT_OVERCOMMIT_RATIO,
        host_memory_mb: int | None = None,
        preload: Sequence[str] = (),
        preload_paths: Sequence[Path] = (),
        provisioned_init_timeout_s: float = PROVISIONED_INIT_TIMEOUT_S,
        hide: Sequence[Path] = (),
        uid_base: int | None = UID_BASE,
        minimal_root: bool = True,
        isolation: bool = True,
        cgroup_fs: Path = CGROUP_FS,
        placement: Placement | None = None,
    ) -> None:
        if overcommit_ratio <= 0:
            raise ValueError(f"overcommit_ratio must be positive, not {overcommit_ratio}")
        self._runtime_dir = runtime_dir
        self._tmp_root = runtime_dir / "env-tmp"
        self._idle_timeout_s = idle_timeout_s
        # Overrides by runtime: python3.x -> interpreter, nodejs<N>.x -> node binary
        self._overrides = {k: v for k, v in (interpreters or {}).items() if not catalog.is_node(k)}
        self._node_overrides = {k: v for k, v in (interpreters or {}).items() if catalog.is_node(k)}
        self._launches: dict[str, RuntimeLaunch] = {}
        # isolation=False (LAMINA_ISOLATION=off): plain forked processes, as an unprivileged server
        # runs them -- no namespaces, minimal root, uid or cgroups (what the sandbox costs is
        # measured against this: bench/isolation.py)
        self._isolation = isolation
        self._use_cgroups = cgroups and isolation
        self._cgroup_fs = cgroup_fs  # where cgroupfs is mounted (tests: a fake tree)
        self._init_timeout_s = init_timeout_s
        self._cgroups: MemoryCgroups | None = None
        self._runtimes: dict[str, str] = {}
        self._zygotes: dict[str, Zygote] = {}
        self._placement = placement or Placement()  # the CPUs environments run on (placement.py)
        self._procs: dict[str, EnvProcess] = {}
        self._envs: dict[str, Environment] = {}
        self._idle: dict[str, list[Environment]] = {}
        self._warm: dict[str, list[Environment]] = {}  # idle provisioned environments, by pool key
        self._provisioner = Provisioner(
            spawn=self._spawn_provisioned,
            destroy=self._destroy,
            settle=self._settle,
            deliver_logs=self._orphan_logs,
            warm=self._warm,
            init_timeout_s=provisioned_init_timeout_s,
        )
        self._keys: dict[int, tuple[EnvironmentSpec, str]] = {}
        self._destroying: dict[str, asyncio.Task[None]] = {}
        self._spares = SparePool(target=spares, make=self._new_process, discard=self._discard)
        # No-network spares (their own network namespace, netns.py): kept only once a function
        # without network has taken one, so hosts without such functions pay nothing for them
        self._isolated_spares = SparePool(target=spares, make=self._new_isolated, discard=self._discard)
        self._deadlines: Deadlines | None = None  # made by start(): it needs the running loop
        # Hints for spares, from the last environment started: most functions share them
        self._code_parent: str | None = None  # the parent dir of its code dir
        self._memory_mb = DEFAULT_MEMORY_MB  # its MemorySize: a spare's limit until claimed
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False
        self._log_sink: LogSink | None = None
        self._background: set[asyncio.Task[None]] = set()  # post-invocation extension waits
        self._overcommit_ratio = overcommit_ratio
        self._host_memory_mb = host_memory_mb  # found by start() unless given
        self._capacity_mb = 0  # host memory x ratio, set by start()
        self._admitted_mb = 0  # see the invariants at the top
        self._preload = (tuple(preload), tuple(str(p) for p in preload_paths))
        # The sandbox (docs/security.md): dirs hidden from environments (the data dir, home
        # dirs), one unprivileged uid per live environment (root servers only)
        self._hide = [str(p) for p in hide] + [d for d in HOME_DIRS if d not in {str(p) for p in hide}]
        self._uid_base = uid_base if uid_base is not None and isolation and os.geteuid() == 0 else None
        self._uids: UidBlock | None = None  # acquired by start()
        self._expose: list[str] = []  # what runtimes run from: bound back if under a hidden dir
        self._tmp_mb = DEFAULT_TMP_MB  # the last function's EphemeralStorage: a spare's hint
        # A minimal root filesystem (docs/security.md); False: the host's root read-only, with the
        # data dir and home dirs (``hide``) covered -- for a runtime that needs more of the host
        self._root = root_layout() if minimal_root and isolation else None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._deadlines = Deadlines()
        if self._host_memory_mb is None:
            self._host_memory_mb = capacity.host_memory_mb()
        self._capacity_mb = int(self._host_memory_mb * self._overcommit_ratio)
        await loop.run_in_executor(None, shutil.rmtree, self._tmp_root, True)  # ours, from a previous run
        self._tmp_root.mkdir(parents=True, exist_ok=True)
        if self._uid_base is not None:
            try:
                self._uids = UidBlock.acquire(self._uid_base)
            except OSError as exc:
                log.warning("environments will run as the server's user: %s", exc)
        if self._use_cgroups:
            self._cgroups = self._setup_cgroups()
        self._runtimes, found_nodes = await asyncio.gather(
            interpreters.discover(self._overrides), nodes.discover(self._node_overrides)
        )
        self._launches = catalog.build(self._runtimes, found_nodes)
        self._expose = runtime_prefixes([*self._runtimes.values(), *found_nodes.values()])
        self._expose.append(str(catalog.RUNTIMES_DIR))  # lamina's bootstraps (exec'd runtimes run them)
        results = await asyncio.gather(
            *(self._zygote(path).ensure_running() for path in self._runtimes.values()),
            return_exceptions=True,
        )
        for path, result in zip(self._runtimes.values(), results, strict=True):
            if isinstance(result, BaseException):
                log.warning("zygote for %s did not start: %s", path, result)
            else:
                self._spares.fill(path)
        self._reaper = asyncio.ensure_future(self._reap_idle())

    def _setup_cgroups(self) -> MemoryCgroups | None:
        """This server's cgroups, or None (a warning: MemorySize is then enforced by RSS polling)."""
        found = detect_memory_root(self._cgroup_fs)
        if found is None:
            log.warning("no writable memory cgroup: memory limits are enforced by RSS polling")
            return None
        groups = MemoryCgroups(*found, cpus=capacity.host_cpus(), fs=self._cgroup_fs)
        try:
            groups.setup()
        except OSError as exc:
            log.warning("no usable memory cgroup (%s): memory limits are enforced by RSS polling", exc)
            groups.remove_base()
            return None
        missing = [name for name, held in groups.limits.items() if not held]
        if missing:
            log.warning("no writable %s cgroup: those limits are not enforced", " or ".join(missing))
        return groups

    def set_log_sink(self, sink: LogSink) -> None:
        self._log_sink = sink

    def _orphan_logs(self, env: Environment) -> None:
        """Deliver what ``env`` wrote outside any invocation (an idle thread, an extension)."""
        logs = env.logs
        if logs.pending and self._log_sink is not None:
            events = logs.take()
            if env.spec.json_logging is not None:
                events = jsonlogs.idle_lines(env, events)
            self._log_sink(env.spec.log_group, env.log_stream, events)

    def available_runtimes(self) -> Mapping[str, str]:
        return {name: launch.served_by for name, launch in self._launches.items()}

    def launches(self) -> Mapping[str, RuntimeLaunch]:
        return dict(self._launches)

    @property
    def cgroups_enabled(self) -> bool:
        return self._cgroups is not None

    def environments(self) -> list[tuple[str, str, str]]:
        """(env id, function ARN, state) of every live environment (for tests and metrics)."""
        return [(e.id, e.spec.function_arn, e.state.value) for e in self._envs.values()]

    def capacity(self) -> HostCapacity:
        """What the host admits and what live environments hold (for tests and metrics)."""
        return HostCapacity(
            host_memory_mb=self._host_memory_mb or 0,
            overcommit_ratio=self._overcommit_ratio,
            total_mb=self._capacity_mb,
            admitted_mb=self._admitted_mb,
            environments=sum(1 for e in self._envs.values() if e.state is not EnvState.DEAD),
            cpus=capacity.host_cpus(),
        )

    async def retire(self, function_arn: str) -> None:
        """On-demand environments only: provisioned ones serve published versions, which never
        change, and leave through ``provision(spec, 0)``."""
        for env in list(self._envs.values()):
            if env.spec.function_arn == function_arn and not env.provisioned:
                env.retiring = True
                if env.state is EnvState.IDLE:
                    self._destroy(env)
        await self._settle(e.id for e in self._envs.values() if e.spec.function_arn == function_arn)

    async def provision(self, spec: EnvironmentSpec, count: int) -> ProvisionedState:
        if self._closed:
            raise AwsError("ServiceException", "The execution engine is not running.")
        return await self._provisioner.set(spec, pool_key(spec), count)

    def provisioned(self, spec: EnvironmentSpec) -> ProvisionedState | None:
        return self._provisioner.state(pool_key(spec))

    async def close(self) -> None:
        self._closed = True
        self._provisioner.close()
        await stop_task(self._reaper)
        self._spares.close()
        self._isolated_spares.close()
        for task in list(self._background):
            task.cancel()
        for env in list(self._envs.values()):
            self._destroy(env)
        await self._settle(list(self._destroying))
        await asyncio.gather(*(z.close() for z in self._zygotes.values()))
        if self._deadlines is not None:
            self._deadlines.close()
        if self._cgroups is not None:
            self._cgroups.remove_base()
        if self._uids is not None:
            self._uids.close()
        await asyncio.get_running_loop().run_in_executor(None, shutil.rmtree, self._tmp_root, True)

    # ------------------------------------------------------------------ invoke
    async def invoke(
        self, spec: EnvironmentSpec, inv: InvocationInput, *, defer_report: bool = False
    ) -> InvocationOutcome:
        """Run ``inv``.  ``defer_report``: the outcome may leave its END and REPORT lines to
        ``InvocationOutcome.complete`` (the caller answers first)."""
        deadlines = self._deadlines
        if self._closed or deadlines is None:
            raise AwsError("ServiceException", "The execution engine is not running.")
        key = self._pool_key(spec)
        idle = self._warm.get(key) or self._idle.get(key)
        if idle:
            env = idle.pop()
            env.transition(EnvState.BUSY)
            start = LogEvent(now_ms(), f"START RequestId: {inv.request_id} Version: {spec.version}")
            return await self._run(env, inv, [start], defer_report)
        try:
            env, events, failure = await self._create(spec, key, inv, deadlines)
            if failure is not None:
                return failure
            if env.state is not EnvState.IDLE:  # stopped while starting (close)
                raise AwsError("ServiceException", "The execution environment was stopped.")
            env.transition(EnvState.BUSY)
            events.append(LogEvent(now_ms(), f"START RequestId: {inv.request_id} Version: {spec.version}"))
            return await self._run(env, inv, events, defer_report)
        finally:
            # The spare taken is replaced once this cold invocation is answered: the zygote's
            # fork and our mkdirs would compete with it for the CPU any sooner.
            asyncio.get_running_loop().call_soon(self._spare_pool(spec).fill, spec.interpreter)

    async def _run(
        self, env: Environment, inv: InvocationInput, events: list[LogEvent], defer_report: bool = False
    ) -> InvocationOutcome:
        """Run ``inv`` in ``env`` (BUSY); ``events`` so far end with START."""
        logs = env.logs
        if logs.pending:  # written while idle (a background thread): delivered after START
            events.extend(logs.take())
        try:
            result = await env.run(inv)
        except BaseException:  # cancelled mid-invocation: the env's state is unknown
            self._destroy(env)
            raise
        logs.flush_partial()  # a last line without '\n' still belongs to this invocation
        if logs.pending:
            events.extend(logs.take())
        init_ms, env.init_ms = env.init_ms, None
        api = env.api if type(env) is ApiEnvironment else None
        telemetry = api is not None and bool(api.telemetry().subscribers)
        json_logs = env.spec.json_logging is not None  # Text functions pay this test only
        ending = result.phase is Phase.TIMEOUT or result.phase is Phase.DIED or env.retiring or self._closed
        # REPORT after the reply only from a plain environment that stays (its memory peak still
        # readable), whose lines nobody transforms or subscribes to here
        later = defer_report and not (telemetry or json_logs or ending)
        outcome = invocation_outcome(
            env, inv.request_id, result, events=events, init_ms=init_ms, defer_report=later
        )
        if telemetry and api is not None:
            telemetry_events.emit_invocation(api.telemetry(), env.spec, inv.request_id, outcome)
        if json_logs:
            outcome = jsonlogs.invocation(env, inv.request_id, outcome)
        if ending:
            self._destroy(env)
        elif type(env) is ApiEnvironment and env.spec.extensions:
            # The caller has its answer now; the environment stays BUSY until every extension
            # has asked for its next event (AWS's post-runtime extension phase).
            task = asyncio.ensure_future(self._release_after_extensions(env))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        elif env.state is EnvState.BUSY:
            self._release(env)
        return outcome

    def _release(self, env: Environment) -> None:
        """A BUSY environment back to its pool, the most recently used last."""
        env.transition(EnvState.IDLE)
        env.last_used = time.monotonic()
        pool = (self._warm if env.provisioned else self._idle).get(env.pool_key)
        if pool is not None:
            pool.append(env)
        elif env.provisioned:  # its pool is gone (it would have been retiring: belt and braces)
            self._destroy(env)
        else:
            self._idle[env.pool_key] = [env]

    async def _release_after_extensions(self, env: ApiEnvironment) -> None:
        done = await env.extensions_done()
        if not done or env.retiring or self._closed:
            self._destroy(env)  # an extension that never finishes costs its environment
        elif env.state is EnvState.BUSY:
            self._release(env)

    def _pool_key(self, spec: EnvironmentSpec) -> str:
        """``pool_key`` remembered per spec object: building and hashing it costs ~1.5 us."""
        cached = self._keys.get(id(spec))
        if cached is not None and cached[0] is spec:  # the entry holds spec: its id is not reused
            return cached[1]
        if len(self._keys) >= POOL_KEY_CACHE:
            self._keys.clear()
        key = pool_key(spec)
        self._keys[id(spec)] = (spec, key)
        return key

    async def _create(
        self, spec: EnvironmentSpec, key: str, inv: InvocationInput, deadlines: Deadlines
    ) -> tuple[Environment, list[LogEvent], InvocationOutcome | None]:
        """A new environment through INIT: (env, its init log events, outcome if INIT failed)."""
        env, result = await self._spawn(spec, key, deadlines, timeout_s=self._init_timeout_s)
        events = env.logs.take()
        if result.phase is Phase.OK:
            return env, events, None
        outcome = init_failure_outcome(
            env, inv.request_id, result, events=events, init_timeout_s=self._init_timeout_s
        )
        if spec.json_logging is not None:
            outcome = jsonlogs.invocation(env, inv.request_id, outcome)
        self._destroy(env)
        return env, events, outcome

    async def _spawn(
        self,
        spec: EnvironmentSpec,
        key: str,
        deadlines: Deadlines,
        *,
        timeout_s: float,
        provisioned: bool = False,
    ) -> tuple[Environment, PhaseResult]:
        """A claimed process sent its function and through INIT (the caller handles a failed INIT)."""
        evicted = self._admit(spec.memory_mb)  # raises the throttle: nothing to undo yet
        try:
            proc = await self._claim(spec, evicted, init_burst=not provisioned)
        except BaseException:
            self._admitted_mb -= spec.memory_mb
            raise
        if spec.command is not None or spec.extensions:
            env: Environment = ApiEnvironment(spec=spec, proc=proc, deadlines=deadlines)
        else:
            env = Environment(spec=spec, proc=proc, deadlines=deadlines)
        env.admitted_mb = spec.memory_mb  # the reservation is the environment's now
        env.pool_key = key
        env.provisioned = provisioned
        self._envs[env.id] = env
        try:
            result = await env.specialise(init_config(env), init_timeout_s=timeout_s)
            if proc.cgroup is not None:
                proc.cgroup.cap_cpu()  # INIT is over: its CPU burst too
        except (PlatformError, OSError) as exc:
            self._destroy(env)
            raise AwsError("ServiceException", f"Cannot start an execution environment: {exc}") from exc
        except BaseException:
            self._destroy(env)
            raise
        return env, result

    async def _spawn_provisioned(
        self, spec: EnvironmentSpec, key: str, timeout_s: float
    ) -> tuple[Environment, PhaseResult]:
        deadlines = self._deadlines
        if self._closed or deadlines is None:
            raise AwsError("ServiceException", "The execution engine is not running.")
        try:
            return await self._spawn(spec, key, deadlines, timeout_s=timeout_s, provisioned=True)
        finally:  # nobody waits on this one: replace the spare it took at once
            asyncio.get_running_loop().call_soon(self._spare_pool(spec).fill, spec.interpreter)

    def _spare_pool(self, spec: EnvironmentSpec) -> SparePool:
        return self._isolated_spares if spec.network == NETWORK_NONE else self._spares

    async def _claim(
        self, spec: EnvironmentSpec, evicted: list[Environment], *, init_burst: bool
    ) -> EnvProcess:
        """A spare (or a new process) limited to the function's MemorySize."""
        if evicted:
            # Their memory is free once they have exited (SIGKILL: a millisecond or so; up to 2 s
            # if extensions get SHUTDOWN): start this one only then, so the host never holds both.
            await asyncio.wait([e.proc.exit_status for e in evicted], timeout=EXIT_WAIT_S)
        self._code_parent = str(spec.code_dir.parent)
        self._memory_mb = spec.memory_mb
        self._tmp_mb = spec.ephemeral_storage_mb
        try:
            proc = await self._spare_pool(spec).take(spec.interpreter)
        except (ZygoteError, OSError) as exc:
            raise AwsError("ServiceException", f"Cannot start an execution environment: {exc}") from exc
        try:
            if proc.cgroup is not None:
                # On-demand INIT runs on a whole CPU, as AWS's does (burst CPU, up to its 10 s);
                # the MemorySize's share applies from the first invoke (``_spawn``), and to
                # provisioned environments from the start, as AWS gives them no burst.
                proc.cgroup.set_limit(spec.memory_mb, cpu_capped=not init_burst)
        except OSError as exc:
            self._discard(proc)
            raise AwsError("ServiceException", f"Cannot create an execution environment: {exc}") from exc
        return proc

    def _admit(self, memory_mb: int) -> list[Environment]:
        """Reserve ``memory_mb`` of host capacity, evicting idle on-demand environments LRU if need
        be (never provisioned ones: they are what a provisioned concurrency config promises).

        Returns the evicted (the caller waits for their exit); raises the throttle if even
        evicting every idle environment would not make room -- and then evicts none, since
        destroying warm environments for nothing would only cost their next cold starts.
        Spares are not counted: they run no user code, so they cannot grow past the few MB the
        warm-up gives them (their cgroup limit is only a hint), and there are ``spares`` of
        them per interpreter.  A claimed spare is counted at its function's MemorySize here.
        """
        free = self._capacity_mb - self._admitted_mb
        evicted: list[Environment] = []
        if memory_mb > free:
            idle = sorted((e for pool in self._idle.values() for e in pool), key=_last_used)
            held = self._admitted_mb - sum(e.admitted_mb for e in idle)
            if memory_mb > self._capacity_mb - held:
                raise capacity.host_full_error(need_mb=memory_mb, held_mb=held, capacity=self.capacity())
            for env in idle:  # least recently used first
                self._destroy(env)  # gives its admitted_mb back
                evicted.append(env)
                if memory_mb <= self._capacity_mb - self._admitted_mb:
                    break
            log.debug(
                "host memory full: evicted %d idle environment(s) to admit one of %d MB",
                len(evicted),
                memory_mb,
            )
        self._admitted_mb += memory_mb
        return evicted

    def _new_isolated(self, interpreter: str) -> EnvProcess:
        return self._new_process(interpreter, network=NETWORK_NONE)

    def _new_process(self, interpreter: str, *, network: str | None = None) -> EnvProcess:
        """A process to be, with its cgroup and /tmp (or OSError): registered, so its exit is heard.

        Runs on the loop: a mkdir, a chmod and a cgroup mkdir -- tens of microseconds, no disk wait.
        """
        proc_id = uuid.uuid4().hex
        uid = self._take_uid()  # first: it may raise (every uid held) with nothing to undo
        tmp_dir = self._tmp_root / proc_id
        cgroup = None
        try:
            tmp_dir.mkdir()
            tmp_dir.chmod(0o1777)
            if self._cgroups is not None:
                cgroup = self._cgroups.create(proc_id)
                # The likeliest MemorySize now, so that claiming it needs no write.  (A spare
                # runs no user code: any limit above its few MB is as safe as none; and no CPU
                # quota, as an on-demand INIT has none either.)
                cgroup.set_limit(self._memory_mb, cpu_capped=False)
        except OSError:
            if cgroup is not None:
                cgroup.remove()
            with contextlib.suppress(OSError):
                tmp_dir.rmdir()
            if uid is not None and self._uids is not None:
                self._uids.give_back(uid)
            raise
        zygote = self._zygote(interpreter)
        pids_cgroup = self._cgroups is not None and self._cgroups.limits["pids"]
        sandbox: dict[str, Any] = {
            "uid": uid,
            # Without a pids cgroup, RLIMIT_NPROC of the environment's own uid caps it instead
            "nproc": PIDS_MAX if uid is not None and not pids_cgroup else None,
            "nofile": NOFILE,
            "tmp_mb": self._tmp_mb,
            "hide": self._hide,
            "minimal_dev": True,
            "read_only_root": True,
            "hide_pids": uid is not None,  # hidepid hides other uids: useless without our own
            "pid_ns": uid is not None,  # its own pid namespace (bootstrap's PidNamespace): root only
            "root": self._root,  # a minimal root filesystem (bootstrap's minimal_root)
            "expose": self._expose,
            "namespaces": self._isolation,
            "seccomp": self._isolation,  # bootstrap's lamina_rt_seccomp: the calls no function needs
        }
        if network is not None:
            sandbox["network"] = network
        proc = EnvProcess(proc_id=proc_id, zygote=zygote, cgroup=cgroup, tmp_dir=tmp_dir, sandbox=sandbox)
        # Only without a minimal root is code bound back at its own path (with one it is bound
        # at /var/task, made with the root): the parent dirs are worth making ahead only then
        proc.code_parent = self._code_parent if self._root is None else None
        self._procs[proc_id] = proc
        return proc

    def _take_uid(self) -> int | None:
        """An unprivileged uid no live environment has (None: this server cannot switch users)."""
        return None if self._uids is None else self._uids.take()

    def _zygote(self, interpreter: str) -> Zygote:
        zygote = self._zygotes.get(interpreter)
        if zygote is None:
            names, paths = self._preload
            zygote = Zygote(
                interpreter=interpreter,
                bootstrap=BOOTSTRAP,
                on_exit=self._on_exit,
                preload=names,
                preload_paths=paths,
                placement=self._placement,
            )
            self._zygotes[interpreter] = zygote
        return zygote

    # ------------------------------------------------------------------ death
    def _on_exit(self, proc_id: str, status: ExitStatus) -> None:
        proc = self._procs.get(proc_id)
        if proc is None:
            return
        proc.on_exit(status)
        env = self._envs.get(proc_id)
        if env is not None:
            if env.state is EnvState.IDLE:  # died between invocations (a thread called os._exit...)
                self._destroy(env)
        elif not self._spares.on_exit(proc_id):
            self._isolated_spares.on_exit(proc_id)

    def _destroy(self, env: Environment) -> None:
        if env.state is EnvState.IDLE:
            pool = (self._warm if env.provisioned else self._idle).get(env.pool_key)
            if pool is not None and env in pool:
                pool.remove(env)
        if env.state is not EnvState.DEAD:
            env.transition(EnvState.DEAD)
        self._admitted_mb -= env.admitted_mb
        env.admitted_mb = 0
        self._discard(env.proc, env)
        if env.provisioned:
            self._provisioner.lost(env)  # replaced if its pool still wants it

    def _discard(self, proc: EnvProcess, env: Environment | None = None) -> None:
        if proc.id not in self._destroying:
            self._destroying[proc.id] = asyncio.ensure_future(self._finish(proc, env))

    async def _finish(self, proc: EnvProcess, env: Environment | None = None) -> None:
        try:
            if env is not None:
                with contextlib.suppress(Exception):  # its extensions' SHUTDOWN: best effort
                    await env.stop()
            await proc.dispose()
            if env is not None:  # dispose drained the pipe to its end
                self._orphan_logs(env)
            await asyncio.get_running_loop().run_in_executor(None, shutil.rmtree, proc.tmp_dir, True)
        finally:
            self._envs.pop(proc.id, None)
            self._procs.pop(proc.id, None)
            self._destroying.pop(proc.id, None)
            uid = proc.sandbox.get("uid")
            if uid is not None and self._uids is not None and proc.exited:
                # Reused only once the process is gone and its cgroup (every process it started)
                # emptied.  Without cgroups a setsid daemon can outlive it: docs/security.md.
                self._uids.give_back(uid)

    async def _settle(self, env_ids: Any) -> None:
        tasks = [t for i in list(env_ids) if (t := self._destroying.get(i)) is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _reap_idle(self) -> None:
        interval = min(5.0, self._idle_timeout_s / 4)
        while True:
            await asyncio.sleep(interval)
            cutoff = time.monotonic() - self._idle_timeout_s
            for warm in self._warm.values():  # provisioned: never reaped, but their logs flow
                for env in warm:
                    self._orphan_logs(env)
            for key, pool in list(self._idle.items()):
                for env in pool:
                    self._orphan_logs(env)
                for env in [e for e in pool if e.last_used <= cutoff]:
                    self._destroy(env)
                if not pool:  # specs of old revisions must not accumulate
                    del self._idle[key]
