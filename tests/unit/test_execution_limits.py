"""Timeouts, crashes, memory limits, idle reaping, shutdown and other interpreters -- real processes."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lamina.execution.cgroup import detect_memory_root
from lamina.execution.engine import PythonEngine
from tests.unit.test_execution_support import (
    Harness,
    alive,
    host_pid,
    make_input,
    make_spec,
    messages,
    poll,
    result,
    write_code,
)


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    harness = Harness(tmp_path_factory.mktemp("run"), uvloop=True)
    yield harness
    harness.close()


def test_timeout_answers_promptly_and_next_invoke_is_fresh(h: Harness, tmp_path: Path) -> None:
    code = write_code(
        tmp_path,
        """
        import time
        def handler(event, context):
            if event.get("sleep"):
                print("before sleeping")
                time.sleep(30)
            return "ok"
        """,
    )
    spec = make_spec(h.engine, code, timeout_s=1)
    warm = h.invoke(spec)
    inv = make_input(spec, {"sleep": True})
    started = time.monotonic()
    out = h.run(h.engine.invoke(spec, inv))
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 1.8
    assert out.function_error == "Unhandled"
    assert result(out) == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": f"RequestId: {inv.request_id} Error: Task timed out after 1.00 seconds",
    }
    lines = messages(out)
    assert "before sleeping" in lines
    assert re.fullmatch(
        rf"\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z {inv.request_id} Task timed out after 1\.00 seconds",
        lines[-3],
    )
    assert lines[-1].endswith("\tStatus: timeout\t") and out.billed_duration_ms == 1000
    after = h.invoke(spec)
    assert result(after) == "ok" and after.log_stream != warm.log_stream and after.init_duration_ms


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("os._exit(1)", "exit status 1"),
        ("os.kill(os.getpid(), signal.SIGSEGV)", "signal: segmentation fault"),
        ("os.kill(os.getpid(), signal.SIGKILL)", "signal: killed"),
    ],
)
def test_runtime_death_mid_invoke(h: Harness, tmp_path: Path, body: str, reason: str) -> None:
    code = write_code(
        tmp_path,
        f"""
        import os, signal
        def handler(event, context):
            if event.get("die"):
                {body}
            return "alive"
        """,
    )
    spec = make_spec(h.engine, code)
    first = h.invoke(spec)
    inv = make_input(spec, {"die": True})
    out = h.run(h.engine.invoke(spec, inv))
    assert out.function_error == "Unhandled"
    assert result(out) == {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {inv.request_id} Error: Runtime exited with error: {reason}",
    }
    assert messages(out)[-1].endswith("\tStatus: error\tError Type: Runtime.ExitError\t")
    after = h.invoke(spec)
    assert result(after) == "alive" and after.log_stream != first.log_stream


MEMORY_BOMB = """
def handler(event, context):
    if event.get("bomb"):
        hog = []
        for _ in range(64):
            hog.append(bytearray(16 * 1024 * 1024) + b"x")  # touched pages: really resident
    return "fine"
"""


def _check_oom(h: Harness, tmp_path: Path) -> None:
    spec = make_spec(h.engine, write_code(tmp_path, MEMORY_BOMB), memory_mb=128)
    inv = make_input(spec, {"bomb": True})
    out = h.run(h.engine.invoke(spec, inv))
    assert out.function_error == "Unhandled"
    assert result(out) == {
        "errorType": "Runtime.OutOfMemory",
        "errorMessage": f"RequestId: {inv.request_id} Error: Runtime exited with error: signal: killed",
    }
    assert messages(out)[-1].endswith("\tStatus: error\tError Type: Runtime.OutOfMemory\t")
    assert out.max_memory_used_mb >= 100
    after = h.invoke(spec)
    assert result(after) == "fine" and after.log_stream != out.log_stream


def test_out_of_memory_with_cgroup(h: Harness, tmp_path: Path) -> None:
    if not h.engine.cgroups_enabled:
        pytest.skip("no writable memory cgroup on this host")
    _check_oom(h, tmp_path)


def test_out_of_memory_without_cgroup_rss_polling(tmp_path: Path) -> None:
    harness = Harness(tmp_path / "run", cgroups=False)
    try:
        assert not harness.engine.cgroups_enabled
        _check_oom(harness, tmp_path)
    finally:
        harness.close()


def test_init_timeout(tmp_path: Path) -> None:
    harness = Harness(tmp_path / "run", init_timeout_s=0.5)
    try:
        code = write_code(tmp_path, "import time\ntime.sleep(30)\ndef handler(e, c):\n    return 1\n")
        inv_spec = make_spec(harness.engine, code)
        inv = make_input(inv_spec)
        out = harness.run(harness.engine.invoke(inv_spec, inv))
        assert result(out) == {
            "errorType": "Sandbox.Timedout",
            "errorMessage": f"RequestId: {inv.request_id} Error: Task timed out after 0.50 seconds",
        }
        assert any(re.fullmatch(r"INIT_REPORT Init Duration: \d+\.\d\d ms\tPhase: init\tStatus: timeout", m)
                   for m in messages(out))  # fmt: skip
    finally:
        harness.close()


def test_idle_environments_are_reaped(tmp_path: Path) -> None:
    async def scenario() -> None:
        engine = PythonEngine(runtime_dir=tmp_path / "run", idle_timeout_s=0.2)
        await engine.start()
        try:
            code = write_code(tmp_path, "import os\ndef handler(e, c):\n    return os.getpid()\n")
            spec = make_spec(engine, code)
            pid = host_pid(engine, await engine.invoke(spec, make_input(spec)))
            [(env_id, _, _)] = engine.environments()
            tmp_dir = tmp_path / "run" / "env-tmp" / env_id  # (spares waiting have theirs too)
            assert tmp_dir.is_dir()
            assert await poll(lambda: not engine.environments(), timeout_s=5)
            assert await poll(lambda: not alive(pid) and not tmp_dir.exists(), timeout_s=5)
            again = await engine.invoke(spec, make_input(spec))
            assert again.init_duration_ms is not None
        finally:
            await engine.close()

    asyncio.run(scenario())


def test_close_leaves_no_process(tmp_path: Path) -> None:
    marker = f"lamina-close-marker-{uuid.uuid4().hex}"
    code = write_code(
        tmp_path,
        f"""
        import os, subprocess, sys
        def handler(event, context):
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "{marker}"])
            return child.pid
        """,
    )

    async def scenario() -> list[int]:
        engine = PythonEngine(runtime_dir=tmp_path / "run")
        await engine.start()
        spec = make_spec(engine, code)
        outs = await asyncio.gather(*(engine.invoke(spec, make_input(spec)) for _ in range(2)))
        pids = [host_pid(engine, o) for o in outs]  # the children: by the marker, below
        pids += [z.pid for z in engine._zygotes.values() if z.pid is not None]
        await engine.close()
        return pids

    pids = asyncio.run(scenario())
    assert len(pids) >= 3
    leftovers = [p for p in pids if alive(p)]
    assert leftovers == []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            assert marker.encode() not in cmdline


def _with_marker(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.mark.skipif(os.geteuid() != 0, reason="pid namespaces need a root server")
def test_without_cgroups_a_daemon_still_dies_with_its_environment(tmp_path: Path) -> None:
    """No cgroup to kill: the environment's pid namespace is what ends a setsid daemon it left."""
    marker = f"lamina-pidns-daemon-{uuid.uuid4().hex}"
    code = write_code(
        tmp_path,
        f"""
        import os, subprocess, sys
        def handler(event, context):
            daemon = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "{marker}"],
                                      start_new_session=True)  # own session and process group
            return daemon.pid
        """,
    )

    async def scenario() -> None:
        engine = PythonEngine(runtime_dir=tmp_path / "run", cgroups=False)
        await engine.start()
        try:
            spec = make_spec(engine, code)
            out = await engine.invoke(spec, make_input(spec))
            assert 2 < result(out) < 100, out  # a pid of the environment's own namespace
            assert await poll(lambda: len(_with_marker(marker)) == 1, timeout_s=10), out
            [daemon] = _with_marker(marker)
            await engine.retire(spec.function_arn)
            assert await poll(lambda: not alive(daemon), timeout_s=10)
        finally:
            await engine.close()
            for pid in _with_marker(marker):  # a failed test leaves nothing behind
                os.kill(pid, signal.SIGKILL)

    asyncio.run(scenario())


@pytest.mark.parametrize("runtime", ["python3.12", "python3.13", "python3.14"])
def test_other_interpreters(h: Harness, tmp_path: Path, runtime: str) -> None:
    if runtime not in h.engine.available_runtimes():
        pytest.skip(f"{runtime} is not installed on this host")
    code = write_code(
        tmp_path,
        """
        import os, sys
        def handler(event, context):
            print("running", sys.version_info[:2])
            return {"v": "%d.%d" % sys.version_info[:2], "env": os.environ["AWS_EXECUTION_ENV"], "u": "é"}
        """,
    )
    spec = make_spec(h.engine, code, runtime=runtime)
    out = h.invoke(spec)
    assert result(out) == {"v": runtime[6:], "env": f"AWS_Lambda_{runtime}", "u": "é"}
    assert messages(out)[0].startswith(f"INIT_START Runtime Version: python:{runtime[6:]}.v1\t")
    assert h.invoke(spec).log_stream == out.log_stream


def test_stale_cgroups_of_dead_servers_are_removed(tmp_path: Path) -> None:
    found = detect_memory_root()
    if found is None:
        pytest.skip("no writable memory cgroup on this host")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    stale = found[0] / "lamina" / f"{int(dead.stdout)}-deadbeef"
    (stale / "env").mkdir(parents=True, exist_ok=True)

    async def scenario() -> None:
        engine = PythonEngine(runtime_dir=tmp_path / "run", interpreters={})
        await engine.start()
        await engine.close()

    asyncio.run(scenario())
    assert not stale.exists()


def test_zygote_is_restarted_after_it_dies(tmp_path: Path) -> None:
    async def scenario() -> None:
        engine = PythonEngine(runtime_dir=tmp_path / "run")
        await engine.start()
        try:
            code = write_code(tmp_path, "def handler(e, c):\n    return 'ok'\n")
            spec = make_spec(engine, code)
            before = await engine.invoke(spec, make_input(spec))
            zygote = engine._zygotes[spec.interpreter]
            old_pid = zygote.pid
            assert old_pid is not None
            os.kill(old_pid, signal.SIGKILL)  # its environments die with it (PDEATHSIG)
            assert await poll(lambda: zygote.pid != old_pid and zygote.state.value == "running")
            assert await poll(lambda: not engine.environments())
            after = await engine.invoke(spec, make_input(spec))
            assert result(after) == "ok" and after.log_stream != before.log_stream
        finally:
            await engine.close()

    asyncio.run(scenario())


@pytest.mark.skipif(os.geteuid() != 0, reason="a per-environment uid needs a root engine")
def test_without_a_pids_cgroup_rlimit_nproc_of_the_environments_uid_caps_forks(tmp_path: Path) -> None:
    """The fallback where no pids controller is writable: RLIMIT_NPROC, which counts the processes
    of the environment's own uid -- so only its own."""
    harness = Harness(tmp_path / "run", cgroups=False)
    try:
        code = write_code(
            tmp_path,
            """
            import os, resource, time
            def handler(event, context):
                made, error, children = 0, None, []
                while made < 2000:  # bounded: a failed containment must not take the host down
                    try:
                        pid = os.fork()
                    except OSError as exc:
                        error = exc.errno
                        break
                    if pid == 0:
                        time.sleep(60)
                        os._exit(0)
                    children.append(pid)
                    made += 1
                for pid in children:
                    os.kill(pid, 9)
                    os.waitpid(pid, 0)
                return {"made": made, "errno": error, "nproc": resource.getrlimit(resource.RLIMIT_NPROC)}
            """,
        )
        spec = make_spec(harness.engine, code, timeout_s=60)
        body = result(harness.invoke(spec))
        assert body["nproc"] == [1024, 1024]
        assert body["errno"] == 11 and body["made"] < 1024
    finally:
        harness.close()


def test_cpu_quota_is_proportional_to_memory_and_capped_at_the_hosts_cpus() -> None:
    from lamina.execution.cgroup import cpu_quota_us

    assert cpu_quota_us(1769, cpus=2) == 100_000  # one vCPU per 100 ms period
    assert cpu_quota_us(128, cpus=2) == 128 * 100_000 // 1769
    assert cpu_quota_us(3538, cpus=2) == 200_000
    assert cpu_quota_us(10240, cpus=2) == 200_000  # no more than the host has
    assert cpu_quota_us(10240, cpus=8) == 10240 * 100_000 // 1769


def test_two_servers_never_hold_the_same_block_of_uids(tmp_path: Path) -> None:
    from lamina.execution.sandbox import UIDS_PER_SERVER, UidBlock

    first = UidBlock.acquire(1000, tmp_path)
    second = UidBlock.acquire(1000, tmp_path)
    try:
        assert second.base == first.base + UIDS_PER_SERVER
        a, b = first.take(), first.take()
        assert a != b and first.base < a < first.base + UIDS_PER_SERVER
        first.give_back(a)
        assert first.take() == a
    finally:
        first.close()
        second.close()
    third = UidBlock.acquire(1000, tmp_path)  # a closed (or dead) server's block is free again
    try:
        assert third.base == 1000
    finally:
        third.close()
