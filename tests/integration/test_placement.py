"""Environments run off the CPU lamina keeps for its event loop (execution/placement.py): seen
from inside a function, with the default (auto) and with LAMINA_LOOP_CPU=off; a bad value stops
the server before it listens."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import LaminaServer, create_function

PROBE = """
import os
def handler(event, context):
    return sorted(os.sched_getaffinity(0))
"""
ALLOWED = set(os.sched_getaffinity(0))  # the server inherits the test process's CPUs


def cpus_seen(lam: Any) -> list[int]:
    name = create_function(lam, PROBE)
    resp = lam.invoke(FunctionName=name)
    assert "FunctionError" not in resp
    return list(json.loads(resp["Payload"].read()))


def test_environments_leave_the_loop_cpu_alone(lam: Any) -> None:
    expected = ALLOWED - {max(ALLOWED)} if len(ALLOWED) > 1 else ALLOWED
    assert cpus_seen(lam) == sorted(expected)


@pytest.fixture(scope="module")
def unplaced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaminaServer]:
    srv = LaminaServer(tmp_path_factory.mktemp("unplaced") / "data", extra_env={"LAMINA_LOOP_CPU": "off"})
    srv.start()
    yield srv
    srv.stop()


def test_off_gives_environments_every_cpu(unplaced: LaminaServer) -> None:
    assert cpus_seen(unplaced.client()) == sorted(ALLOWED)


def test_a_bad_setting_stops_the_server_with_its_reason(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMINA_")}
    env["LAMINA_LOOP_CPU"] = "fastest"
    proc = subprocess.run(
        [sys.executable, "-m", "lamina", "serve", "--port", "0", "--data-dir", str(tmp_path / "d")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "LAMINA_LOOP_CPU must be 'auto', 'off' or a CPU number" in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr
