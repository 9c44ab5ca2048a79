"""The environments' seccomp filter (``runtimes/python/lamina_rt_seccomp.py``), installed in a child
process that then tries what it refuses and what it must keep allowing."""

from __future__ import annotations

import importlib.util
import json
import platform
import re
import struct
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from lamina.execution.catalog import RUNTIMES_DIR

SECCOMP = RUNTIMES_DIR / "python" / "lamina_rt_seccomp.py"
HEADERS = {
    "x86_64": Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h"),
    "aarch64": Path("/usr/include/asm-generic/unistd.h"),
}


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lamina_rt_seccomp_under_test", SECCOMP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_syscall_numbers_match_the_kernels_headers(machine: str) -> None:
    header = HEADERS[machine]
    if not header.exists():
        pytest.skip(f"{header} is not installed (linux-libc-dev)")
    numbers = {k: int(v) for k, v in re.findall(r"#define __NR_(\w+)\s+(\d+)", header.read_text())}
    table = load().ARCHES[machine][1]
    assert table, machine
    for name, nr in table.items():
        assert numbers.get(name) == nr, (machine, name)
    # every name the filter refuses has a number wherever the architecture has that call
    mod = load()
    for name in (*mod.DENIED, *mod.NOT_IMPLEMENTED, "clone"):
        if name in numbers:
            assert name in table, (machine, name)


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_the_program_is_well_formed(machine: str) -> None:
    """Every jump lands inside the program and every path ends in a return."""
    insns = [struct.unpack("HBBI", raw) for raw in load().program(machine)]
    for i, (code, jt, jf, _) in enumerate(insns):
        if code & 0x07 == 0x05:  # BPF_JMP
            assert i + 1 + max(jt, jf) < len(insns)
    assert insns[-1][0] == 0x06 and insns[-2][0] == 0x06


def test_an_unknown_architecture_is_refused_not_guessed() -> None:
    mod = load()
    with pytest.raises(mod.Unsupported):
        mod.program("riscv64")


# Run in a child: a seccomp filter cannot be removed from the process that installed it.
CHILD = r"""
import ctypes, errno, importlib.util, json, os, subprocess, sys, threading
spec = importlib.util.spec_from_file_location("s", sys.argv[1])
s = importlib.util.module_from_spec(spec); spec.loader.exec_module(s)
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
NR = s.ARCHES[os.uname().machine][1]
def call(name, *args):
    ctypes.set_errno(0)
    r = libc.syscall(NR[name], *[ctypes.c_long(a) for a in args])
    return "ok" if r >= 0 else errno.errorcode[ctypes.get_errno()]
s.install(libc)
out = {
    "unshare_user": call("unshare", 0x10000000),
    "unshare_files": call("unshare", 0x400),
    "clone_newuser": call("clone", 0x10000000 | 17, 0, 0, 0, 0),
    "clone_newnet": call("clone", 0x40000000 | 17, 0, 0, 0, 0),
    "setns": call("setns", 0, 0),
    "mount": call("mount", 0, 0, 0, 0, 0),
    "keyctl": call("keyctl", 0, 0, 0, 0, 0),
    "add_key": call("add_key", 0, 0, 0, 0, 0),
    "bpf": call("bpf", 0, 0, 0),
    "perf_event_open": call("perf_event_open", 0, 0, 0, 0, 0),
    "userfaultfd": call("userfaultfd", 0),
    "io_uring_setup": call("io_uring_setup", 1, 0),
    "clone3": call("clone3", 0, 0),
}
# What must keep working: processes, threads, subprocesses (glibc tries clone3 first), files
pid = os.fork()
if pid == 0:
    os._exit(7)
out["fork"] = os.WEXITSTATUS(os.waitpid(pid, 0)[1])
box = []
t = threading.Thread(target=box.append, args=(1,)); t.start(); t.join()
out["thread"] = box
run = subprocess.run([sys.executable, "-c", "print(6 * 7)"], capture_output=True, text=True)
out["subprocess"] = run.stdout.strip()
out["no_new_privs"] = [l.split()[1] for l in open("/proc/self/status") if l.startswith("NoNewPrivs")][0]
out["seccomp_mode"] = [l.split()[1] for l in open("/proc/self/status") if l.startswith("Seccomp:")][0]
print(json.dumps(out))
"""


@pytest.mark.skipif(platform.machine() not in ("x86_64", "aarch64"), reason="no table for this machine")
def test_the_filter_refuses_the_dangerous_calls_and_keeps_the_rest() -> None:
    run = subprocess.run(
        [sys.executable, "-c", CHILD, str(SECCOMP)], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    for name in ("unshare_user", "unshare_files", "clone_newuser", "clone_newnet", "setns", "mount"):
        assert out[name] == "EPERM", (name, out)
    for name in ("keyctl", "add_key", "bpf", "perf_event_open", "userfaultfd"):
        assert out[name] == "EPERM", (name, out)
    assert out["io_uring_setup"] == "ENOSYS" and out["clone3"] == "ENOSYS", out
    assert out["fork"] == 7 and out["thread"] == [1] and out["subprocess"] == "42", out
    assert out["no_new_privs"] == "1" and out["seccomp_mode"] == "2", out
