"""Environments that speak the Runtime API: exec'd runtimes (provided.*, node) and extensions.

An ``ApiEnvironment`` is an ``Environment`` with its own ``RuntimeApiServer`` (runtime_api.py)
at ``AWS_LAMBDA_RUNTIME_API``.  Two shapes share it:
- an exec'd runtime (``spec.command`` not None): the claimed process sets up its sandbox,
  starts the extensions, then execs the runtime; from then on every invocation goes through
  the server (GET next / POST response), and the channel is gone (closed by the exec).
- lamina's Python runtime with external extensions: invocations still use the private channel;
  the server only carries the Extensions and Telemetry APIs.

INIT: send the init frame; if there are extensions, wait for the spare's ``extensions`` frame
and for every one to register, then ``go`` (AWS starts the runtime only then); a frame before
the exec is an entrypoint error (``Runtime.InvalidEntrypoint``) or a platform failure, and the
channel closing is the exec itself.  INIT ends when the runtime asks for its first invocation
(or its ``ready`` frame) and every extension has asked for its next event.

Concurrency invariants: all on the event loop.  At most one answer is awaited at a time (the
engine gives an environment one invocation at a time); a timeout or the process's exit fails
whichever is pending -- the channel's receive or the server's answer -- and the caller reads
the exit status, as for the Python runtime.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from lamina.execution.channel import ChannelClosedError
from lamina.execution.deadlines import Deadlines
from lamina.execution.environment import (
    Environment,
    EnvState,
    Phase,
    PhaseResult,
    PlatformError,
    TimedOutError,
)
from lamina.execution.logs import init_start_line
from lamina.execution.process import EnvProcess
from lamina.execution.runtime_api import (
    ApiIdentity,
    ApiInvocation,
    RuntimeAnswer,
    RuntimeApiClosedError,
    RuntimeApiServer,
)
from lamina.execution.types import EnvironmentSpec, InvocationInput
from lamina.execution.zygote import ExitStatus

SHUTDOWN_TIMEOUT_S = 2.0  # AWS's limit for external extensions' SHUTDOWN phase


class ApiEnvironment(Environment):
    def __init__(self, *, spec: EnvironmentSpec, proc: EnvProcess, deadlines: Deadlines) -> None:
        super().__init__(spec=spec, proc=proc, deadlines=deadlines)
        self.execs = spec.command is not None
        self.api = RuntimeApiServer(
            identity=ApiIdentity(
                function_name=spec.function_name,
                function_version=spec.version,
                handler=spec.handler,
                account_id=spec.account_id,
            ),
            # In its own network namespace the Runtime API listens inside it: only the
            # environment's own processes can reach it at all (netns.py), and sock_diag cannot
            # see across namespaces, so there is no peer check to make.
            allowed_pids=self._pids if proc.network is None else None,
            expected_extensions=spec.extensions,
            connect=None if proc.network is None else proc.network.open_connection,
        )
        proc.exit_status.add_done_callback(self._on_process_exit)

    # -- who may talk to the server: the processes of this sandbox only
    def _pids(self) -> list[int]:
        cgroup = self.proc.cgroup
        if cgroup is not None:
            try:
                return [int(p) for p in cgroup.procs_file.read_text().split()]
            except (OSError, ValueError):
                return []
        pid = self.proc.pid
        return [] if pid is None else _process_group(pid)

    def _on_process_exit(self, _: asyncio.Future[ExitStatus]) -> None:
        closed = ChannelClosedError()
        self.channel.fail(closed)
        self.api.fail(closed)

    def _on_timeout(self) -> None:
        failed = self.channel.fail(TimedOutError())
        if self.api.fail(TimedOutError()) or failed:
            self.proc.kill()

    # -- INIT
    async def specialise(self, config: dict[str, Any], *, init_timeout_s: float) -> PhaseResult:
        network = self.proc.network
        # A spare that never sends its listener (stuck, or gone: OSError) costs INIT's bound at most
        listener = None if network is None else await asyncio.wait_for(network.listener(), init_timeout_s)
        address = await self.api.start(listener)
        config["environment"]["AWS_LAMBDA_RUNTIME_API"] = address
        self.logs.add(init_start_line(self.spec.runtime, self.spec.region))
        t0 = time.perf_counter()
        try:  # noqa: SIM105 -- as in Environment.specialise
            self.channel.send({"t": "init", "cfg": config})
        except ChannelClosedError:
            pass
        if self.state is EnvState.STARTING:
            self.transition(EnvState.INITIALIZING)
        self._deadlines.add(self, init_timeout_s, self._on_timeout)
        try:
            result = await self._init(t0)
        except (TimedOutError, ChannelClosedError) as exc:
            return await self._failed(exc, t0)
        finally:
            self._deadlines.discard(self)
        if result.phase is Phase.OK:
            self.init_ms = result.duration_ms
            self.rss_kb = self._hwm_kb()
            if self.state is EnvState.INITIALIZING:
                self.transition(EnvState.IDLE)
        return result

    async def _init(self, t0: float) -> PhaseResult:
        if self.spec.extensions:
            header, _ = await self.channel.receive()
            if header.get("t") != "extensions":
                return self._pre_exec_frame(header, b"", t0)
            await self.api.extensions_registered()
            self.channel.send({"t": "go"})
        ready = self.api.expect_init()
        if self.execs:
            try:
                header, payload = await self.channel.receive()
            except ChannelClosedError:
                pass  # the exec closed it (or the process died: ``ready`` fails then)
            else:
                return self._pre_exec_frame(header, payload, t0)
        else:  # lamina's Python runtime: its own ready frame, then the extensions' next
            header, payload = await self.channel.receive()
            result = self._answer(header, payload, t0)
            if result.phase is not Phase.OK:
                return result
            if header.get("t") == "fail":
                raise PlatformError(str(header.get("error")))
            self.private_tmp = bool(header.get("private_tmp"))
            self.api.runtime_initialized()
        answer = await ready
        self.logs.drain()
        duration = (time.perf_counter() - t0) * 1000
        if answer.kind == "ready":
            return PhaseResult(Phase.OK, duration)
        return PhaseResult(Phase.FUNCTION_ERROR, duration, _error_body(answer))

    def _pre_exec_frame(self, header: dict[str, Any], payload: bytes, t0: float) -> PhaseResult:
        kind = header.get("t")
        if kind == "entrypoint_error":
            duration = (time.perf_counter() - t0) * 1000
            return PhaseResult(Phase.FUNCTION_ERROR, duration, entrypoint_error=str(header.get("error")))
        if kind == "fail":
            raise PlatformError(str(header.get("error")))
        return self._answer(header, payload, t0)

    # -- one invocation
    async def run(self, inv: InvocationInput) -> PhaseResult:
        deadline_ms = int((time.time() + self._timeout_s) * 1000)
        api_inv = ApiInvocation(
            request_id=inv.request_id,
            payload=inv.payload,
            deadline_ms=deadline_ms,
            invoked_function_arn=inv.invoked_function_arn,
            trace_id=inv.trace_id,
            client_context=inv.client_context,
            cognito_identity=inv.cognito_identity,
        )
        if not self.execs:  # lamina's Python runtime (private channel) with extensions beside it
            self.api.notify_extensions(api_inv)
            return await super().run(inv)
        t0 = time.perf_counter()
        answer_future = self.api.send_invoke(api_inv, inv.stream)
        self._deadlines.add(self, self._timeout_s, self._on_timeout)
        try:
            answer = await answer_future
        except (TimedOutError, ChannelClosedError) as exc:
            return await self._failed(exc, t0)
        finally:
            self._deadlines.discard(self)
        duration = (time.perf_counter() - t0) * 1000
        self.logs.drain()  # everything the runtime wrote before it posted is in the pipe
        cgroup = self.proc.cgroup
        if cgroup is None or not cgroup.peak_exact:
            # An exec'd runtime's pages are all charged to its own cgroup, whose peak is then
            # exact (Environment.max_memory_mb): no /proc read (~20 us) on every invoke -- unless
            # the kernel keeps no peak (v2 before Linux 5.19: memory.current only)
            self.rss_kb = self._hwm_kb()
        if answer.kind == "result":
            return PhaseResult(Phase.OK, duration, answer.body)
        return PhaseResult(Phase.FUNCTION_ERROR, duration, _error_body(answer))

    async def extensions_done(self) -> bool:
        """After an invocation: True once every extension has asked for its next event, False if
        one has not within the function's timeout (or the environment died meanwhile)."""
        idle = self.api.extensions_idle()
        if idle.done():
            return not idle.cancelled() and idle.exception() is None
        try:
            await asyncio.wait_for(idle, self._timeout_s)
        except (TimeoutError, ChannelClosedError, RuntimeApiClosedError):
            return False
        return True

    def _hwm_kb(self) -> int:
        hwm = self.read_status_kb("VmHWM")
        return self.rss_kb if hwm is None or hwm < self.rss_kb else hwm

    async def stop(self) -> None:
        """SHUTDOWN to the extensions (they get up to 2 s), then close the server."""
        try:
            if self.spec.extensions and not (self.proc.exited or self.proc.killed):
                await self.api.shutdown("spindown", SHUTDOWN_TIMEOUT_S)
        finally:
            await self.api.close()


def _error_body(answer: RuntimeAnswer) -> bytes:
    if answer.body:
        return answer.body
    return json.dumps({"errorMessage": "", "errorType": answer.error_type or "Runtime.Unknown"}).encode()


def _process_group(pid: int) -> list[int]:
    """The pids of ``pid``'s process group (no cgroup to ask): a scan of /proc, once per connection."""
    try:
        pgid = os.getpgid(pid)
    except OSError:
        return []
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
            fields = stat[stat.rindex(b")") + 2 :].split()
            if int(fields[2]) == pgid:
                found.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return found
