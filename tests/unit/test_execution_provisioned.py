"""Provisioned concurrency in the engine: environments initialised ahead, kept warm, spill-over.

Real environments through the real engine (``Harness``); waits are polls with a timeout, and a
handler that must stay busy blocks on a file the test creates.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lamina.execution.types import EnvironmentSpec, LogEvent, ProvisionedState, ProvisionStatus
from tests.unit.test_execution_support import (
    Harness,
    host_pid,
    make_input,
    make_spec,
    messages,
    poll,
    result,
    seen_at,
    write_code,
)

# With a "gate" in the event the handler waits (up to 30 s) until that file exists.
REPORTER = """
import os, time
ENV = os.urandom(8).hex()  # an id of this environment (its pid is 2 in every one)
print("init ran", os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"])
def handler(event, context):
    gate = event.get("gate")
    while gate and not os.path.exists(gate):
        time.sleep(0.005)
    return {"type": os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"], "env": ENV}
"""
BROKEN = """
raise RuntimeError("no database")
def handler(event, context):
    return 1
"""


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    harness = Harness(tmp_path_factory.mktemp("run"), uvloop=True, idle_timeout_s=0.2)
    yield harness
    harness.close()


@pytest.fixture
def sink(h: Harness) -> list[tuple[str, LogEvent]]:
    lines: list[tuple[str, LogEvent]] = []
    h.engine.set_log_sink(lambda group, stream, events: lines.extend((stream, e) for e in events))
    return lines


def state(h: Harness, spec: EnvironmentSpec) -> ProvisionedState:
    found = h.engine.provisioned(spec)
    assert found is not None
    return found


def until(h: Harness, predicate: Any) -> None:
    assert h.run(poll(predicate, timeout_s=20)), "condition not met in time"


def ready(h: Harness, spec: EnvironmentSpec, count: int) -> ProvisionedState:
    until(h, lambda: state(h, spec).status is ProvisionStatus.READY)
    got = state(h, spec)
    assert (got.requested, got.allocated, got.available, got.reason) == (count, count, count, None)
    return got


def live_envs(h: Harness, spec: EnvironmentSpec) -> list[tuple[str, str, str]]:
    return [e for e in h.engine.environments() if e[1] == spec.function_arn and e[2] != "dead"]


def test_provisioned_environments_start_ahead_and_serve_without_init(
    h: Harness, tmp_path: Path, sink: list[tuple[str, LogEvent]]
) -> None:
    spec = make_spec(h.engine, write_code(tmp_path, REPORTER), version="1")
    before = h.engine.capacity().admitted_mb
    first = h.run(h.engine.provision(spec, 2))
    assert first.requested == 2 and first.status is ProvisionStatus.IN_PROGRESS
    ready(h, spec, 2)
    assert len(live_envs(h, spec)) == 2
    assert h.engine.capacity().admitted_mb == before + 2 * spec.memory_mb  # counted like any
    # INIT ran at allocation: its lines are in the log store already, no request involved.
    inits = [(stream, e.message) for stream, e in sink if e.message.startswith(("INIT_START", "init ran"))]
    assert sorted(m for _, m in inits).count("init ran provisioned-concurrency") == 2
    assert len({stream for stream, _ in inits}) == 2
    out = h.invoke(spec)
    assert result(out)["type"] == "provisioned-concurrency"
    assert out.init_duration_ms is None
    assert not any("Init Duration" in m or m.startswith("INIT_START") for m in messages(out))
    assert messages(out)[-1].startswith("REPORT RequestId: ")
    assert out.log_stream in {stream for stream, _ in inits}
    # Warm reuse stays on the provisioned environments: no new process.
    envs = {result(h.invoke(spec))["env"] for _ in range(6)}
    assert len(envs) <= 2 and len(live_envs(h, spec)) == 2
    h.run(h.engine.provision(spec, 0))
    assert h.engine.provisioned(spec) is None


def test_spill_over_goes_to_an_on_demand_environment(h: Harness, tmp_path: Path) -> None:
    code = write_code(tmp_path, REPORTER)
    spec = make_spec(h.engine, code, version="3")
    h.run(h.engine.provision(spec, 1))
    ready(h, spec, 1)
    gate = code / "gate"  # environments see their code dir (their /tmp is their own), there:
    event = {"gate": f"{seen_at(code)}/gate"}

    async def two_at_once() -> list[Any]:
        first = asyncio.ensure_future(h.engine.invoke(spec, make_input(spec, event)))
        assert await poll(lambda: state(h, spec).allocated == 1 and busy(h, spec) == 1)
        second = asyncio.ensure_future(h.engine.invoke(spec, make_input(spec, event)))
        assert await poll(lambda: busy(h, spec) == 2)
        gate.touch()
        return list(await asyncio.gather(first, second))

    provisioned, spilled = h.run(two_at_once())
    assert result(provisioned)["type"] == "provisioned-concurrency" and provisioned.init_duration_ms is None
    assert result(spilled)["type"] == "on-demand"
    assert spilled.init_duration_ms is not None
    assert "Init Duration" in messages(spilled)[-1]
    # Both stay warm; the next invoke takes the provisioned one first.
    assert result(h.invoke(spec))["type"] == "provisioned-concurrency"
    h.run(h.engine.provision(spec, 0))


def busy(h: Harness, spec: EnvironmentSpec) -> int:
    return sum(1 for e in live_envs(h, spec) if e[2] == "busy")


def test_lowering_the_count_retires_idle_surplus_and_raising_it_adds(h: Harness, tmp_path: Path) -> None:
    spec = make_spec(h.engine, write_code(tmp_path, REPORTER), version="4")
    h.run(h.engine.provision(spec, 3))
    ready(h, spec, 3)
    lowered = h.run(h.engine.provision(spec, 1))
    assert (lowered.requested, lowered.allocated) == (1, 1)
    assert len(live_envs(h, spec)) == 1  # the idle surplus is gone once provision returns
    h.run(h.engine.provision(spec, 2))
    ready(h, spec, 2)
    h.run(h.engine.provision(spec, 0))
    assert live_envs(h, spec) == []


def test_never_reaped_for_idleness_and_replaced_when_one_dies(h: Harness, tmp_path: Path) -> None:
    spec = make_spec(h.engine, write_code(tmp_path, REPORTER), version="5")
    on_demand = make_spec(h.engine, write_code(tmp_path, REPORTER))
    h.invoke(on_demand)
    h.run(h.engine.provision(spec, 1))
    ready(h, spec, 1)
    # The reaper (idle timeout 0.2 s here) takes the on-demand environment, not the provisioned.
    until(h, lambda: live_envs(h, on_demand) == [])
    assert len(live_envs(h, spec)) == 1
    [(old_id, _, _)] = live_envs(h, spec)
    os.kill(host_pid(h.engine, h.invoke(spec)), signal.SIGKILL)
    until(h, lambda: [e[0] for e in live_envs(h, spec) if e[2] == "idle"] not in ([], [old_id]))
    ready(h, spec, 1)
    assert result(h.invoke(spec))["type"] == "provisioned-concurrency"
    h.run(h.engine.provision(spec, 0))


def test_retire_leaves_provisioned_environments_of_published_versions(h: Harness, tmp_path: Path) -> None:
    code = write_code(tmp_path, REPORTER)
    published = make_spec(h.engine, code, version="6")
    latest = make_spec(h.engine, code, name=published.function_name)
    h.run(h.engine.provision(published, 1))
    ready(h, published, 1)
    env = result(h.invoke(published))["env"]
    h.invoke(latest)
    assert len(live_envs(h, latest)) == 2
    h.run(h.engine.retire(published.function_arn))  # what UpdateFunctionCode of $LATEST does
    assert [e[2] for e in live_envs(h, published)] == ["idle"]
    assert result(h.invoke(published))["env"] == env
    assert state(h, published).status is ProvisionStatus.READY
    h.run(h.engine.provision(published, 0))


def test_init_failure_makes_it_failed_and_keeps_nothing(
    h: Harness, tmp_path: Path, sink: list[tuple[str, LogEvent]]
) -> None:
    spec = make_spec(h.engine, write_code(tmp_path, BROKEN), version="7")
    h.run(h.engine.provision(spec, 2))
    until(h, lambda: state(h, spec).status is ProvisionStatus.FAILED)
    got = state(h, spec)
    assert (got.requested, got.allocated, got.available) == (2, 0, 0)
    assert got.reason == "FUNCTION_ERROR_INIT_FAILURE"
    until(h, lambda: live_envs(h, spec) == [])
    lines = [e.message for _, e in sink]
    assert any("RuntimeError: no database" in m for m in lines)
    assert any(m.startswith("INIT_REPORT Init Duration: ") and "Status: error" in m for m in lines)
    # An invoke still works the on-demand way (and fails the on-demand way).
    out = h.invoke(spec)
    assert out.function_error == "Unhandled"
    assert json.loads(out.payload)["errorType"] == "RuntimeError"
    h.run(h.engine.provision(spec, 0))
    assert h.engine.provisioned(spec) is None
