"""_X_AMZN_TRACE_ID per invocation (the Python runtime's ``TraceVar``, lamina_rt_invoke.py): seen by
os.environ, os.getenv, C's getenv and subprocesses, as awslambdaric's ``os.environ[...] = ...`` is --
without the memory that glibc's setenv keeps for every value it was ever given."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.unit.python_runtime import RUNTIME_DIR

# In a process of its own: it changes the environment and measures its own memory
PROBE = """
import ctypes, json, os, subprocess, sys
sys.path.insert(0, sys.argv[1])  # the runtime's dir
from lamina_rt_invoke import TraceVar
libc = ctypes.CDLL(None, use_errno=True)
libc.getenv.restype = ctypes.c_char_p
def rss_kb():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0])
def trace(i):
    return "Root=1-%08x-%024x;Parent=%016x;Sampled=0" % (i, i, i)
mode, count = sys.argv[2], int(sys.argv[3])
var = TraceVar(libc)
for i in range(2000):  # warm up the allocator either way
    var.set(trace(i)) if mode == "trace_var" else os.environ.__setitem__("_X_AMZN_TRACE_ID", trace(i))
before = rss_kb()
for i in range(count):
    var.set(trace(i)) if mode == "trace_var" else os.environ.__setitem__("_X_AMZN_TRACE_ID", trace(i))
grown = rss_kb() - before
seen = {"environ": os.environ.get("_X_AMZN_TRACE_ID"), "getenv": os.getenv("_X_AMZN_TRACE_ID"),
        "c": libc.getenv(b"_X_AMZN_TRACE_ID").decode(),
        "child": subprocess.run(["sh", "-c", "printf %s \\"$_X_AMZN_TRACE_ID\\""], capture_output=True,
                                text=True).stdout}
os.environ["_X_AMZN_TRACE_ID"] = "user-set"  # user code may set it (setenv drops our pointer)...
var.set("Root=again")
after_user_set = libc.getenv(b"_X_AMZN_TRACE_ID").decode()
var.clear()
cleared = (os.environ.get("_X_AMZN_TRACE_ID"), libc.getenv(b"_X_AMZN_TRACE_ID"))
var.set("Root=back")
back = [os.environ["_X_AMZN_TRACE_ID"], libc.getenv(b"_X_AMZN_TRACE_ID").decode()]
print(json.dumps({"grown_kb": grown, "seen": seen, "last": trace(count - 1),
                  "after_user_set": after_user_set, "cleared": cleared, "back": back}))
"""


def run(mode: str, count: int) -> dict[str, object]:
    argv = [sys.executable, "-c", PROBE, str(RUNTIME_DIR), mode, str(count)]
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


def test_each_value_is_seen_everywhere_and_memory_stays_flat() -> None:
    got = run("trace_var", 200_000)
    last = got["last"]
    assert got["seen"] == {"environ": last, "getenv": last, "c": last, "child": last}
    assert got["after_user_set"] == "Root=again"
    assert got["cleared"] == [None, None]
    assert got["back"] == ["Root=back", "Root=back"]
    assert isinstance(got["grown_kb"], int) and got["grown_kb"] < 2048  # flat (setenv: ~27 MB here)


def test_setenv_would_have_kept_every_value() -> None:
    """The reason for TraceVar: the same loop through os.environ grows by ~140 bytes a value."""
    got = run("os_environ", 200_000)
    assert isinstance(got["grown_kb"], int) and got["grown_kb"] > 10_000
