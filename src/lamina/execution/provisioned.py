"""Provisioned concurrency in the engine: environments initialised ahead for one spec, kept warm.

A ``ProvisionedPool`` holds what one spec (one published version) is promised: ``target``
environments initialised with ``AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency``, never
reaped for idleness, never evicted for host memory (they are counted by host capacity like any
environment), replaced when one dies.  The ``Provisioner`` sets targets, starts the missing
environments in the background (all at once: AWS initialises a burst in parallel) and retires
the surplus, idle first.  An INIT failure makes the pool FAILED (``FUNCTION_ERROR_INIT_FAILURE``,
AWS's StatusReason): the failed environment is not kept and no more are started until a new
target is set (environments initialised before stay: they are healthy and keep serving).

Status lifecycle (guarded): IN_PROGRESS -> READY | FAILED; READY -> IN_PROGRESS (raised target,
a lost environment) | FAILED; FAILED -> IN_PROGRESS (a new target).

Concurrency invariants (one event loop, like the engine):
- ``pool.envs`` holds the pool's initialised environments that stay (idle or busy).  An
  environment leaves it *before* the provisioner destroys or retires it, so the engine's
  ``lost`` callback only reports deaths nobody asked for.
- ``pool.idle`` is the engine's warm list for the pool key (the same list object): the engine
  pops from it on invoke and appends on release, so the provisioner only adds new environments
  and removes the ones it retires.
- ``pool.starting`` counts spawns in flight; the fill task is the only spawner of a pool, and a
  spawn that finishes after its pool shrank or went away destroys what it made.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from lamina.errors import AwsError
from lamina.execution.environment import Environment, EnvState, Phase, PhaseResult
from lamina.execution.outcomes import init_failure_report
from lamina.execution.types import EnvironmentSpec, ProvisionedState, ProvisionStatus

INIT_FAILURE = "FUNCTION_ERROR_INIT_FAILURE"  # AWS's StatusReason when the function's INIT fails
# A provisioned environment's INIT may take 130 s or the function's timeout, whichever is longer
# (AWS's "Init phase" notes: nobody is waiting on it), instead of on-demand's 10 s.
PROVISIONED_INIT_TIMEOUT_S = 130.0
# An environment lost within this long of its last use is replaced only after this long: one that
# dies on its own right after INIT must not turn into a fork loop.
REFILL_BACKOFF_S = 1.0

TRANSITIONS: dict[ProvisionStatus, frozenset[ProvisionStatus]] = {
    ProvisionStatus.IN_PROGRESS: frozenset({ProvisionStatus.READY, ProvisionStatus.FAILED}),
    ProvisionStatus.READY: frozenset({ProvisionStatus.IN_PROGRESS, ProvisionStatus.FAILED}),
    ProvisionStatus.FAILED: frozenset({ProvisionStatus.IN_PROGRESS}),
}

log = logging.getLogger(__name__)


class IllegalProvisionTransitionError(RuntimeError):
    pass


class ProvisionFailedError(Exception):
    """A provisioned environment could not be made; ``reason`` becomes the pool's StatusReason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# (spec, pool key, INIT timeout) -> a provisioned environment and how its INIT went (the engine
# raises AwsError when it cannot make one: host memory fully committed, no process)
Spawn = Callable[[EnvironmentSpec, str, float], Awaitable[tuple[Environment, PhaseResult]]]


class ProvisionedPool:
    """One spec's provisioned environments and the status of their allocation."""

    def __init__(self, spec: EnvironmentSpec, key: str) -> None:
        self.spec = spec
        self.key = key
        self.target = 0
        self.envs: set[Environment] = set()
        self.retiring: set[Environment] = set()  # surplus ones still busy: they die when done
        self.idle: list[Environment] = []  # the engine's warm list for ``key``
        self.starting = 0
        self.status = ProvisionStatus.IN_PROGRESS
        self.reason: str | None = None
        self.removed = False  # target 0 and gone from the provisioner
        self.task: asyncio.Task[None] | None = None

    def transition(self, to: ProvisionStatus, reason: str | None = None) -> None:
        if to is not self.status:
            if to not in TRANSITIONS[self.status]:
                raise IllegalProvisionTransitionError(f"{self.key}: {self.status.name} -> {to.name}")
            self.status = to
        self.reason = reason

    def allocated(self) -> int:
        return sum(1 for e in self.envs if e.state is EnvState.IDLE or e.state is EnvState.BUSY)

    def state(self) -> ProvisionedState:
        available = self.allocated()
        return ProvisionedState(
            requested=self.target,
            allocated=available + len(self.retiring),
            available=available,
            status=self.status,
            reason=self.reason,
        )

    def settle_status(self) -> None:
        """READY when every requested environment is initialised, else IN_PROGRESS (FAILED stays)."""
        if self.status is ProvisionStatus.FAILED:
            return
        ready = self.starting == 0 and self.allocated() >= self.target
        self.transition(ProvisionStatus.READY if ready else ProvisionStatus.IN_PROGRESS)


class Provisioner:
    """Targets and background allocation of provisioned environments, per pool key."""

    def __init__(
        self,
        *,
        spawn: Spawn,
        destroy: Callable[[Environment], None],
        settle: Callable[[Iterable[str]], Awaitable[None]],
        deliver_logs: Callable[[Environment], None],
        warm: dict[str, list[Environment]],
        init_timeout_s: float = PROVISIONED_INIT_TIMEOUT_S,
    ) -> None:
        self._spawn = spawn
        self._destroy = destroy
        self._settle = settle
        self._deliver_logs = deliver_logs  # what an environment wrote, to the log sink now
        self._init_timeout_s = init_timeout_s
        self._warm = warm  # the engine's idle lists of provisioned environments, by pool key
        self._pools: dict[str, ProvisionedPool] = {}
        self._closed = False

    def state(self, key: str) -> ProvisionedState | None:
        pool = self._pools.get(key)
        return None if pool is None else pool.state()

    async def set(self, spec: EnvironmentSpec, key: str, count: int) -> ProvisionedState:
        pool = self._pools.get(key)
        if pool is None:
            if count <= 0:
                return ProvisionedState(0, 0, 0, ProvisionStatus.READY)
            pool = self._pools[key] = ProvisionedPool(spec, key)
            self._warm[key] = pool.idle
        pool.spec = spec
        pool.target = max(count, 0)
        if pool.status is ProvisionStatus.FAILED:
            pool.transition(ProvisionStatus.IN_PROGRESS)
        retired = self._trim(pool)
        if pool.target == 0:
            pool.removed = True
            del self._pools[key]
            self._warm.pop(key, None)
        else:
            pool.settle_status()
            self._fill_soon(pool)
        state = pool.state()
        await self._settle(e.id for e in retired)
        return state

    def lost(self, env: Environment) -> None:
        """``env`` (provisioned) died or was destroyed by the engine: replace it if it was wanted."""
        pool = self._pools.get(env.pool_key)
        if pool is None:
            return
        pool.retiring.discard(env)
        if env not in pool.envs:
            return
        pool.envs.discard(env)
        if env in pool.idle:
            pool.idle.remove(env)
        if not self._closed:
            pool.settle_status()
            if time.monotonic() - env.last_used < REFILL_BACKOFF_S:
                asyncio.get_running_loop().call_later(REFILL_BACKOFF_S, self._fill_soon, pool)
            else:
                self._fill_soon(pool)

    def close(self) -> None:
        self._closed = True
        for pool in self._pools.values():
            if pool.task is not None:
                pool.task.cancel()

    # -- internals ------------------------------------------------------------------------------
    def _trim(self, pool: ProvisionedPool) -> list[Environment]:
        """Retire environments above the target, idle ones first; busy ones die when done."""
        surplus = len(pool.envs) - pool.target
        retired: list[Environment] = []
        while surplus > 0 and pool.idle:
            env = pool.idle.pop(0)  # the least recently used
            pool.envs.discard(env)
            self._destroy(env)
            retired.append(env)
            surplus -= 1
        for env in list(pool.envs):
            if surplus <= 0:
                break
            if env.state is EnvState.BUSY:
                pool.envs.discard(env)
                pool.retiring.add(env)
                env.retiring = True  # the engine destroys it when its invocation ends
                surplus -= 1
        return retired

    def _fill_soon(self, pool: ProvisionedPool) -> None:
        if self._closed or pool.removed or pool.status is ProvisionStatus.FAILED:
            return
        if len(pool.envs) + pool.starting >= pool.target:
            return
        if pool.task is None or pool.task.done():
            pool.task = asyncio.ensure_future(self._fill(pool))

    async def _fill(self, pool: ProvisionedPool) -> None:
        while not (self._closed or pool.removed) and pool.status is not ProvisionStatus.FAILED:
            missing = pool.target - len(pool.envs) - pool.starting
            if missing <= 0:
                break
            pool.starting += missing
            pool.settle_status()
            results = await asyncio.gather(*(self._one(pool) for _ in range(missing)), return_exceptions=True)
            for outcome in results:
                if isinstance(outcome, ProvisionFailedError):
                    self._fail(pool, outcome.reason)
                elif isinstance(outcome, BaseException) and not isinstance(outcome, asyncio.CancelledError):
                    log.error("provisioning %s failed", pool.spec.function_arn, exc_info=outcome)
                    self._fail(pool, f"lamina could not start an environment: {outcome}")
            if not (self._closed or pool.removed):
                pool.settle_status()

    async def _one(self, pool: ProvisionedPool) -> None:
        try:
            env = await self._start(pool.spec, pool.key)
        finally:
            pool.starting -= 1
        if env.state is not EnvState.IDLE:  # died between its ready and now: INIT did not hold
            self._destroy(env)
            raise ProvisionFailedError(INIT_FAILURE)
        wanted = not (self._closed or pool.removed) and pool.status is not ProvisionStatus.FAILED
        if not wanted or len(pool.envs) >= pool.target:
            self._destroy(env)  # the target fell (or the pool failed) while it was starting
            return
        env.last_used = time.monotonic()
        pool.envs.add(env)
        pool.idle.append(env)

    async def _start(self, spec: EnvironmentSpec, key: str) -> Environment:
        """One provisioned environment through INIT, IDLE.  Its INIT lines go to the log sink now
        (no request waits for them) and its first REPORT has no Init Duration, as on AWS."""
        try:
            env, result = await self._spawn(spec, key, max(self._init_timeout_s, float(spec.timeout_s)))
        except AwsError as exc:  # not the function's fault: say what it was
            raise ProvisionFailedError(exc.message) from exc
        env.init_ms = None
        if result.phase is not Phase.OK:
            env.logs.pending.append(init_failure_report(result))
            self._deliver_logs(env)
            self._destroy(env)
            raise ProvisionFailedError(INIT_FAILURE)
        self._deliver_logs(env)
        return env

    def _fail(self, pool: ProvisionedPool, reason: str) -> None:
        """FAILED with ``reason``: the environment that failed is gone (the engine destroyed it),
        spawns still in flight are destroyed as they finish, and no more are started until a new
        target.  Environments initialised before keep serving: they are healthy, and Allocated
        says how many there are."""
        if pool.status is not ProvisionStatus.FAILED:
            pool.transition(ProvisionStatus.FAILED, reason)
            log.warning(
                "provisioned concurrency failed",
                extra={"function": pool.spec.function_arn, "version": pool.spec.version, "reason": reason},
            )
