"""Spare environment processes (pre-forked, already in their cgroup) and the shared deadline timer."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from lamina.execution.deadlines import Deadlines
from lamina.execution.engine import PythonEngine
from lamina.execution.process import EnvProcess
from lamina.execution.spares import SpareState
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


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    harness = Harness(tmp_path_factory.mktemp("run"), uvloop=True)
    yield harness
    harness.close()


def _waiting(engine: PythonEngine, interpreter: str) -> list[EnvProcess]:
    queue = engine._spares._queues.get(interpreter, ())
    return [s.proc for s in queue if s.state is SpareState.WAITING]


def test_a_cold_start_takes_the_oldest_spare_and_the_pool_refills(h: Harness, tmp_path: Path) -> None:
    spec = make_spec(h.engine, write_code(tmp_path, PID_CODE))
    target = h.engine._spares.target
    assert h.run(poll(lambda: len(_waiting(h.engine, spec.interpreter)) == target))
    oldest = _waiting(h.engine, spec.interpreter)[0]
    assert oldest.id not in {env_id for env_id, _, _ in h.engine.environments()}  # spares are not envs
    if oldest.cgroup is not None:  # it joined its cgroup as a spare, before any function needed it
        assert h.run(poll(lambda: str(oldest.pid) in (oldest.cgroup.procs_file).read_text().split()))
    out = h.invoke(spec)
    assert host_pid(h.engine, out) == oldest.pid and out.log_stream.endswith(oldest.id)
    assert out.init_duration_ms is not None
    assert h.run(poll(lambda: len(_waiting(h.engine, spec.interpreter)) == target))
    assert oldest.id not in {p.id for p in _waiting(h.engine, spec.interpreter)}


def test_the_claimed_spare_gets_the_functions_memory_limit(h: Harness, tmp_path: Path) -> None:
    if not h.engine.cgroups_enabled:
        pytest.skip("no writable memory cgroup on this host")
    code = write_code(
        tmp_path,
        """
        def handler(event, context):
            with open("/proc/self/cgroup") as f:
                return next(line.split(":", 2)[2].strip() for line in f if ":memory:" in line)
        """,
    )
    for memory_mb in (256, 128, 1024):  # raised and lowered from whatever the spare had
        spec = make_spec(h.engine, code, memory_mb=memory_mb)
        out = h.invoke(spec)
        [env] = [e for e in h.engine._envs.values() if e.spec.function_arn == spec.function_arn]
        assert env.proc.cgroup is not None
        assert result(out).endswith(env.proc.cgroup.path.name)
        limit = int((env.proc.cgroup.path / "memory.limit_in_bytes").read_text())
        assert limit == memory_mb * 1024 * 1024


def test_a_spare_that_dies_is_dropped_not_respawned(tmp_path: Path) -> None:
    async def scenario() -> None:
        engine = PythonEngine(runtime_dir=tmp_path / "run", spares=1)
        await engine.start()
        try:
            spec = make_spec(engine, write_code(tmp_path, PID_CODE))
            assert await poll(lambda: len(_waiting(engine, spec.interpreter)) == 1)
            [spare] = _waiting(engine, spec.interpreter)
            assert spare.pid is not None
            os.kill(spare.pid, signal.SIGKILL)
            assert await poll(lambda: spare.id not in engine._procs)  # disposed of
            assert not engine._spares._queues[spec.interpreter]  # and no replacement (no fork loop)
            out = await engine.invoke(spec, make_input(spec))  # a process forked on demand
            assert host_pid(engine, out) != spare.pid
            assert await poll(lambda: len(_waiting(engine, spec.interpreter)) == 1)  # refilled now
        finally:
            await engine.close()

    asyncio.run(scenario())


def test_close_kills_spares_and_removes_their_cgroups_and_tmp(tmp_path: Path) -> None:
    async def scenario() -> list[EnvProcess]:
        engine = PythonEngine(runtime_dir=tmp_path / "run", spares=2)
        await engine.start()
        interpreter = next(iter(engine.available_runtimes().values()))
        assert await poll(lambda: len(_waiting(engine, interpreter)) == 2)
        spares = _waiting(engine, interpreter)
        await engine.close()
        return spares

    spares = asyncio.run(scenario())
    for proc in spares:
        assert proc.pid is not None and not alive(proc.pid)
        assert not proc.tmp_dir.exists()
        assert proc.cgroup is None or not proc.cgroup.path.exists()


def test_deadlines_fire_in_order_and_discard_cancels() -> None:
    async def scenario() -> None:
        deadlines = Deadlines()
        fired: list[str] = []
        done = asyncio.get_running_loop().create_future()

        def call(name: str) -> None:
            fired.append(name)
            if name == "last":
                done.set_result(None)

        deadlines.add("late", 0.05, lambda: call("late"))
        deadlines.add("early", 0.01, lambda: call("early"))  # earlier than the armed timer
        deadlines.add("dropped", 0.02, lambda: call("dropped"))
        deadlines.add("last", 0.06, lambda: call("last"))
        deadlines.discard("dropped")
        await asyncio.wait_for(done, 5)
        assert fired == ["early", "late", "last"]
        deadlines.close()

    asyncio.run(scenario())


def test_concurrent_cold_starts_past_a_full_zygote_socket_all_complete(tmp_path: Path) -> None:
    """Regression: senders waiting for the zygote's control socket to drain each registered a
    writer callback for the same fd, and only the last one was ever woken (a burst of 200 cold
    starts stranded ~25 of them).  A tiny send buffer makes every spawn past the first few wait."""
    import socket as socket_module

    h = Harness(tmp_path / "run", uvloop=True, spares=0)
    try:
        spec = make_spec(h.engine, write_code(tmp_path, PID_CODE))
        zygote = h.engine._zygote(spec.interpreter)
        h.run(zygote.ensure_running())
        assert zygote._sock is not None
        zygote._sock.setsockopt(socket_module.SOL_SOCKET, socket_module.SO_SNDBUF, 1024)

        async def burst() -> list[int]:
            outs = await asyncio.gather(*(h.engine.invoke(spec, make_input(spec, None)) for _ in range(24)))
            return [result(o) for o in outs]

        pids = h.run(burst())
        assert len(set(pids)) == 24  # one environment per concurrent invocation, none stranded
    finally:
        h.close()
