"""Host capacity (admission, LRU eviction, the throttle), one environment per concurrent invocation,
and what an idle environment costs in memory.

Handlers that must stay busy block on a ``Gate``: they connect to an abstract unix socket (shared
by every mount namespace), say their pid, and wait until the test releases them -- the test knows
exactly when N of them run at once, with no sleep anywhere.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lamina.errors import AwsError
from lamina.execution import capacity
from lamina.execution.engine import PythonEngine
from lamina.execution.types import EnvironmentSpec
from tests.unit.test_execution_support import (
    ENV_ID_CODE,
    Harness,
    alive,
    host_pid,
    make_input,
    make_spec,
    poll,
    result,
    write_code,
)

PID_CODE = ENV_ID_CODE  # an id of the environment: its pid is 2 in every one (own pid namespace)
GATED_CODE = """
import os, socket
ENV = os.urandom(8).hex()  # its pid is 2 in every environment (own pid namespace)
def handler(event, context):
    if event.get("gate"):
        s = socket.socket(socket.AF_UNIX)
        s.connect("\\0" + event["gate"])
        s.sendall(ENV.encode() + b"\\n")
        s.recv(1)  # until the test releases us
    return ENV
"""


class Gate:
    """Handlers call in and block; ``arrived(n)`` waits for n of them; ``release`` frees them all."""

    def __init__(self) -> None:
        self.name = f"lamina-test-gate-{uuid.uuid4().hex}"
        self.pids: list[str] = []  # each handler's environment id
        self._writers: list[asyncio.StreamWriter] = []
        self._changed = asyncio.Event()
        self._server: asyncio.AbstractServer | None = None

    async def open(self) -> Gate:
        self._server = await asyncio.start_unix_server(self._on_client, path="\0" + self.name)
        return self

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.pids.append((await reader.readline()).decode().strip())
        self._writers.append(writer)
        self._changed.set()

    async def arrived(self, n: int) -> None:
        while len(self.pids) < n:
            self._changed.clear()
            await self._changed.wait()

    def release(self) -> None:
        for writer in self._writers:
            writer.write(b"x")
            writer.close()
        self._writers.clear()

    def close(self) -> None:
        self.release()
        if self._server is not None:
            self._server.close()


def live(engine: PythonEngine) -> dict[str, list[str]]:
    """function ARN -> states of its environments that are not dead."""
    found: dict[str, list[str]] = {}
    for _, arn, state in engine.environments():
        if state != "dead":
            found.setdefault(arn, []).append(state)
    return found


def gated(spec: EnvironmentSpec, gate: Gate) -> Any:
    return make_input(spec, {"gate": gate.name})


@pytest.fixture
def small(tmp_path: Path) -> Iterator[Harness]:
    """An engine on a pretend host of 300 MB: two 128 MB environments fit, three do not."""
    harness = Harness(tmp_path / "run", host_memory_mb=300, overcommit_ratio=1.0)
    yield harness
    harness.close()


def test_capacity_is_host_memory_times_the_ratio(tmp_path: Path) -> None:
    harness = Harness(tmp_path / "run", host_memory_mb=1000, overcommit_ratio=1.5)
    try:
        cap = harness.engine.capacity()
        assert (cap.host_memory_mb, cap.total_mb, cap.admitted_mb, cap.environments) == (1000, 1500, 0, 0)
        assert cap.cpus >= 1
        spec = make_spec(harness.engine, write_code(tmp_path, PID_CODE), memory_mb=256)
        harness.invoke(spec)
        cap = harness.engine.capacity()
        assert (cap.admitted_mb, cap.environments) == (256, 1)  # spares are not counted
    finally:
        harness.close()
    with pytest.raises(ValueError):
        PythonEngine(runtime_dir=tmp_path / "run2", overcommit_ratio=0)


def test_a_cold_start_past_capacity_evicts_the_least_recently_used_idle_environment(
    small: Harness, tmp_path: Path
) -> None:
    code = write_code(tmp_path, PID_CODE)
    a, b, c = (make_spec(small.engine, code, memory_mb=128) for _ in range(3))
    small.invoke(a)
    pid_b = host_pid(small.engine, small.invoke(b))
    small.invoke(a)  # a is now the more recently used: b is the LRU
    assert small.engine.capacity().admitted_mb == 256
    out = small.invoke(c)  # 384 > 300: b goes
    assert out.init_duration_ms is not None and out.function_error is None
    assert live(small.engine) == {a.function_arn: ["idle"], c.function_arn: ["idle"]}
    assert not alive(pid_b)  # the cold start waited for the evicted process to exit
    assert small.engine.capacity().admitted_mb == 256
    assert small.invoke(a).init_duration_ms is None  # a stayed warm


def test_the_throttle_names_the_host_and_evicts_nothing_in_vain(small: Harness, tmp_path: Path) -> None:
    code = write_code(tmp_path, GATED_CODE)
    a, d = (make_spec(small.engine, code, memory_mb=128) for _ in range(2))
    big = make_spec(small.engine, code, memory_mb=256)
    pid_d = host_pid(small.engine, small.invoke(d))  # idle

    async def scenario() -> None:
        gate = await Gate().open()
        try:
            busy = asyncio.ensure_future(small.engine.invoke(a, gated(a, gate)))
            await gate.arrived(1)
            # a (busy) holds 128: even with d evicted, 256 more would not fit in 300
            with pytest.raises(AwsError) as caught:
                await small.engine.invoke(big, make_input(big))
            err = caught.value
            assert err.code == "TooManyRequestsException" and err.status == 429
            assert err.fields == {"Reason": "ConcurrentInvocationLimitExceeded", "message": err.message}
            assert err.headers == {"Retry-After": "1"}
            assert "lamina host's memory is fully committed" in err.message
            assert "hold 128 MB of the 300 MB" in err.message and "needs 256 MB" in err.message
            assert alive(pid_d) and live(small.engine)[d.function_arn] == ["idle"]  # not evicted
            gate.release()
            await busy
        finally:
            gate.close()

    small.run(scenario())
    # Now a and d are idle (d the older): both must go, LRU first, to admit 256 MB
    assert small.engine.capacity().admitted_mb == 256
    out = small.invoke(big)
    assert out.function_error is None
    assert live(small.engine) == {big.function_arn: ["idle"]}
    assert small.engine.capacity().admitted_mb == 256


def test_a_starting_environment_holds_its_memory(tmp_path: Path) -> None:
    harness = Harness(tmp_path / "run", host_memory_mb=200, overcommit_ratio=1.0)
    try:
        code = write_code(tmp_path, PID_CODE)
        a, b = (make_spec(harness.engine, code, memory_mb=128) for _ in range(2))

        async def both() -> list[Any]:
            # a reserves before its first await; b is admitted while a is still initialising
            return await asyncio.gather(
                harness.engine.invoke(a, make_input(a)),
                harness.engine.invoke(b, make_input(b)),
                return_exceptions=True,
            )

        first, second = harness.run(both())
        assert isinstance(result(first), str)
        assert isinstance(second, AwsError) and second.code == "TooManyRequestsException"
        assert harness.engine.capacity().admitted_mb == 128
        # a is idle now: b evicts it
        assert isinstance(result(harness.invoke(b)), str)
        assert live(harness.engine) == {b.function_arn: ["idle"]}
    finally:
        harness.close()


def test_a_function_larger_than_the_host_is_throttled(small: Harness, tmp_path: Path) -> None:
    spec = make_spec(small.engine, write_code(tmp_path, PID_CODE), memory_mb=512)
    with pytest.raises(AwsError) as caught:
        small.invoke(spec)
    assert caught.value.code == "TooManyRequestsException" and "needs 512 MB" in caught.value.message
    assert small.engine.capacity().admitted_mb == 0


def test_failed_inits_retire_and_close_give_capacity_back(tmp_path: Path) -> None:
    harness = Harness(tmp_path / "run", host_memory_mb=300, overcommit_ratio=1.0)
    try:
        broken = make_spec(harness.engine, write_code(tmp_path, "import nope\n"), memory_mb=128)
        out = harness.invoke(broken)
        assert out.function_error == "Unhandled" and result(out)["errorType"] == "Runtime.ImportModuleError"
        assert harness.engine.capacity().admitted_mb == 0
        spec = make_spec(harness.engine, write_code(tmp_path, PID_CODE), memory_mb=128)
        harness.invoke(spec)
        assert harness.engine.capacity().admitted_mb == 128
        harness.run(harness.engine.retire(spec.function_arn))
        assert harness.engine.capacity().admitted_mb == 0
        harness.invoke(spec)
        assert harness.engine.capacity().admitted_mb == 128
    finally:
        harness.close()
    assert harness.engine.capacity().admitted_mb == 0


def test_n_concurrent_invocations_get_n_environments(tmp_path: Path) -> None:
    n = 5  # more than the spares: the rest are forked on demand
    harness = Harness(tmp_path / "run", spares=2)
    try:
        spec = make_spec(harness.engine, write_code(tmp_path, GATED_CODE))

        async def scenario() -> None:
            gate = await Gate().open()
            try:
                calls = [
                    asyncio.ensure_future(harness.engine.invoke(spec, gated(spec, gate))) for _ in range(n)
                ]
                await gate.arrived(n)  # n handlers running at the same time
                assert live(harness.engine) == {spec.function_arn: ["busy"] * n}
                assert len(set(gate.pids)) == n
                gate.release()
                outs = await asyncio.gather(*calls)
            finally:
                gate.close()
            assert {result(o) for o in outs} == set(gate.pids)
            assert all(o.init_duration_ms is not None for o in outs)
            assert live(harness.engine) == {spec.function_arn: ["idle"] * n}
            # n more, one after another: each reuses a warm one, none is created
            again = [await harness.engine.invoke(spec, make_input(spec)) for _ in range(n)]
            assert all(o.init_duration_ms is None for o in again)
            assert len(harness.engine.environments()) == n

        harness.run(scenario())
        assert harness.engine.capacity().admitted_mb == n * 128
    finally:
        harness.close()


def _uss_kb(pid: int) -> int:
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            fields[parts[0].rstrip(":")] = int(parts[1])
    return fields["Private_Clean"] + fields["Private_Dirty"]


def test_an_idle_environment_holds_little_unique_memory(tmp_path: Path) -> None:
    """A regression guard, not a benchmark (bench/density.py measures): ~3 MB here, bound 30 MB."""
    if not Path("/proc/self/smaps_rollup").exists():
        pytest.skip("no smaps_rollup on this kernel")
    harness = Harness(tmp_path / "run")
    try:
        spec = make_spec(harness.engine, write_code(tmp_path, PID_CODE))
        pid = host_pid(harness.engine, harness.invoke(spec))
        assert harness.run(poll(lambda: live(harness.engine) == {spec.function_arn: ["idle"]}))
        assert _uss_kb(pid) < 30 * 1024
    finally:
        harness.close()


def test_host_memory_is_memtotal_or_the_own_cgroup_limit_if_lower(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24684084 kB\nMemFree:        1 kB\n")
    fs = tmp_path / "cgroup"
    # v1: the lowest limit on the path to the root counts (here the parent's)
    group = fs / "memory" / "outer" / "inner"
    group.mkdir(parents=True)
    (fs / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    (fs / "memory" / "outer" / "memory.limit_in_bytes").write_text(f"{2048 * capacity.MB}\n")
    (group / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    v1 = tmp_path / "cgroup-v1"
    v1.write_text("5:devices:/\n4:memory:/outer/inner\n0::/\n")
    assert capacity.host_memory_mb(meminfo, v1, fs) == 2048
    # v2: memory.max, "max" for none; a limit above MemTotal changes nothing
    (fs / "svc").mkdir()
    (fs / "svc" / "memory.max").write_text("max\n")
    v2 = tmp_path / "cgroup-v2"
    v2.write_text("0::/svc\n")
    assert capacity.host_memory_mb(meminfo, v2, fs) == 24684084 // 1024
    (fs / "svc" / "memory.max").write_text(f"{512 * capacity.MB}\n")
    assert capacity.host_memory_mb(meminfo, v2, fs) == 512
    (fs / "svc" / "memory.max").write_text(f"{10**15}\n")
    assert capacity.host_memory_mb(meminfo, v2, fs) == 24684084 // 1024
    # no cgroup file at all: MemTotal
    assert capacity.host_memory_mb(meminfo, tmp_path / "absent", fs) == 24684084 // 1024
    assert capacity.host_memory_mb() > 0  # this host
