"""Where environments run (execution/placement.py): the plan for each setting, and confinement."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lamina.config import Settings
from lamina.execution.placement import Placement, check_setting, plan


def test_auto_keeps_the_highest_cpu_for_the_loop() -> None:
    assert plan("auto", {0, 1}) == Placement(loop_cpu=1, env_cpus=frozenset({0}))
    assert plan("auto", {2, 5, 7}) == Placement(loop_cpu=7, env_cpus=frozenset({2, 5}))


def test_nothing_is_kept_on_one_cpu_or_when_off() -> None:
    assert plan("auto", {3}) == Placement()
    assert plan("off", {0, 1, 2}) == Placement()
    assert plan("0", {0}) == Placement()


def test_a_number_keeps_that_cpu_if_the_server_may_run_there() -> None:
    assert plan("0", {0, 1, 2}) == Placement(loop_cpu=0, env_cpus=frozenset({1, 2}))
    with pytest.raises(ValueError, match=r"may only run on CPUs \[0, 1\]"):
        plan("4", {0, 1})


@pytest.mark.parametrize("bad", ["", "on", "-1", "1.5", "cpu1", "1234567", "\u00b2"])
def test_anything_else_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="LAMINA_LOOP_CPU must be"):
        check_setting(bad)


def test_setting_from_the_environment(tmp_path: Path) -> None:
    base = {"LAMINA_DATA_DIR": str(tmp_path)}
    assert Settings.from_env(base).loop_cpu == "auto"
    assert Settings.from_env({**base, "LAMINA_LOOP_CPU": " OFF "}).loop_cpu == "off"
    some_cpu = str(min(os.sched_getaffinity(0)))
    assert Settings.from_env({**base, "LAMINA_LOOP_CPU": some_cpu}).loop_cpu == some_cpu
    with pytest.raises(ValueError, match="LAMINA_LOOP_CPU"):
        Settings.from_env({**base, "LAMINA_LOOP_CPU": "fast"})
    allowed = os.sched_getaffinity(0)
    if len(allowed) > 1:  # a CPU this server may not run on is refused with the settings
        with pytest.raises(ValueError, match="may only run on CPUs"):
            Settings.from_env({**base, "LAMINA_LOOP_CPU": str(max(allowed) + 1)})


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_confine_moves_a_process_and_what_it_forks() -> None:
    allowed = set(os.sched_getaffinity(0))
    placement = plan("auto", allowed)
    assert placement.env_cpus is not None
    # The child waits for a line on stdin, then forks and reports its grandchild's mask.
    code = (
        "import os, sys\n"
        "sys.stdin.readline()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    print(sorted(os.sched_getaffinity(0)), flush=True); os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        placement.confine(proc.pid)
        assert os.sched_getaffinity(proc.pid) == set(placement.env_cpus)
        out, _ = proc.communicate("go\n", timeout=30)
    finally:
        proc.kill()
    assert out.strip() == str(sorted(placement.env_cpus))


def test_confining_a_process_that_is_gone_is_only_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    Placement(loop_cpu=1, env_cpus=frozenset({0})).confine(proc.pid)
    assert "could not keep a zygote off" in caplog.text
    Placement().confine(proc.pid)  # nothing to do: not even a look
