"""Hostile code against a real `lamina serve`: each attack is contained, and the server keeps serving.

Every test runs code that tries to harm the host, the server or another function, and then checks
that the server still answers Invokes of an ordinary function correctly (``assert_server_fine``).
Processes a test's function starts carry a marker in their name (``/proc/<pid>/comm``), so the
test can wait for them to be gone -- and kills any left over, even when it fails.

The server runs as root here (as in production on this host): the sandbox is what stops it.
Where this host cannot sandbox (not root, no namespaces), the tests that need it skip and say why.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lamina.execution.catalog import RUNTIMES_DIR
from lamina.execution.sandbox import ROOT_ETC

from .conftest import LaminaServer, create_function, wait_for_log
from .test_custom_runtimes import PY_BOOTSTRAP, provided

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="the sandbox needs a root server (namespaces, uids)"
)

ECHO = "def handler(event, context):\n    return {'echo': event}\n"

# Names a hostile function's processes by prctl(PR_SET_NAME) so the test can find them.
NAME_PROCESS = """
import ctypes, os
LIBC = ctypes.CDLL(None)  # loaded once, before any fork: a child only makes the call
def name_process(marker):
    LIBC.prctl(15, marker.encode()[:15], 0, 0, 0)
"""


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaminaServer]:
    """A server of its own: a failed containment must not take the session's server with it."""
    srv = LaminaServer(tmp_path_factory.mktemp("hostile") / "data", extra_args=["--idle-timeout", "60"])
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def lam(hostile: LaminaServer) -> Any:
    return hostile.client()


@pytest.fixture(scope="module")
def echo(lam: Any) -> str:
    return create_function(lam, ECHO)


@pytest.fixture
def marker() -> Iterator[str]:
    """A process-name marker; whatever still carries it at the end is killed."""
    mark = "lh" + uuid.uuid4().hex[:10]
    yield mark
    for pid in marked(mark):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def marked(mark: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() == mark:
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


def wait_gone(mark: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while marked(mark):
        assert time.monotonic() < deadline, f"processes {marked(mark)} survived their environment"
        time.sleep(0.05)  # poll-with-timeout: no event says when the kernel has reaped them


def invoke(lam: Any, name: str, event: Any = None) -> tuple[dict[str, Any], Any]:
    resp = lam.invoke(FunctionName=name, Payload=json.dumps(event if event is not None else {}))
    return resp, json.loads(resp["Payload"].read())


def assert_server_fine(lam: Any, server: LaminaServer, echo: str) -> None:
    assert server.proc is not None and server.proc.poll() is None, server.logs_text()[-3000:]
    token = uuid.uuid4().hex
    resp, body = invoke(lam, echo, {"token": token})
    assert "FunctionError" not in resp and body == {"echo": {"token": token}}


def retire(lam: Any, name: str) -> None:
    """Destroy the function's environments (a configuration change retires them)."""
    lam.update_function_configuration(FunctionName=name, Description=uuid.uuid4().hex)
    lam.get_waiter("function_updated_v2").wait(FunctionName=name)


def test_fork_bomb_is_capped_by_the_pids_limit(
    lam: Any, hostile: LaminaServer, echo: str, marker: str
) -> None:
    code = NAME_PROCESS + (
        "import time\n"
        "def handler(event, context):\n"
        "    made = 0\n"
        "    error = None\n"
        "    while made < 2000:\n"  # bounded: a failed containment must not take the host down
        "        try:\n"
        "            pid = os.fork()\n"
        "        except OSError as exc:\n"
        "            error = exc.errno\n"
        "            break\n"
        "        if pid == 0:\n"
        f"            name_process({marker!r})\n"
        "            time.sleep(120)\n"
        "            os._exit(0)\n"
        "        made += 1\n"
        "    return {'made': made, 'errno': error}\n"
    )
    # 3,538 MB: two CPUs' quota and room for 1,023 forked interpreters' copied pages, so the
    # bomb meets the pids limit quickly even on a loaded host
    name = create_function(lam, code, Timeout=120, MemorySize=3538)
    started = time.monotonic()
    resp, body = invoke(lam, name)
    elapsed = time.monotonic() - started
    assert "FunctionError" not in resp, body
    assert body["made"] < 1024 and body["errno"] == 11, (body, elapsed)  # EAGAIN from the pids cgroup
    assert_server_fine(lam, hostile, echo)
    retire(lam, name)
    wait_gone(marker)


def test_memory_bomb_is_out_of_memory(lam: Any, hostile: LaminaServer, echo: str) -> None:
    code = (
        "def handler(event, context):\n"
        "    hog = []\n"
        "    while True:\n"
        "        hog.append(bytearray(16 << 20))\n"
    )
    name = create_function(lam, code, MemorySize=128)
    resp, body = invoke(lam, name)
    assert resp["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.OutOfMemory"
    assert_server_fine(lam, hostile, echo)


def test_filling_tmp_stops_at_ephemeral_storage(lam: Any, hostile: LaminaServer, echo: str) -> None:
    code = (
        "import os\n"
        "def handler(event, context):\n"
        "    chunk = b'x' * (1 << 20)\n"
        "    written = 0\n"
        "    error = None\n"
        "    with open('/tmp/fill', 'wb', buffering=0) as f:\n"
        "        while written < 800:\n"  # bounded: a failed containment must not fill the disk
        "            try:\n"
        "                f.write(chunk)\n"
        "            except OSError as exc:\n"
        "                error = exc.errno\n"
        "                break\n"
        "            written += 1\n"
        "    os.unlink('/tmp/fill')\n"
        "    return {'written_mb': written, 'errno': error}\n"
    )
    name = create_function(lam, code, MemorySize=1024, Timeout=60, EphemeralStorage={"Size": 512})
    resp, body = invoke(lam, name)
    assert "FunctionError" not in resp, body
    assert body["errno"] == 28 and 500 <= body["written_mb"] <= 512  # ENOSPC at 512 MB
    assert_server_fine(lam, hostile, echo)


def test_the_hosts_other_scratch_dirs_are_not_writable_from_a_function(
    lam: Any, hostile: LaminaServer, echo: str
) -> None:
    mark = "lamina-hostile-" + uuid.uuid4().hex
    code = (
        "import os\n"
        "def handler(event, context):\n"
        "    out = {}\n"
        "    for d in ('/var/tmp', '/run/lock', '/dev/shm'):\n"
        "        try:\n"
        "            with open(os.path.join(d, event['mark']), 'w') as f:\n"
        "                f.write('x')\n"
        "            out[d] = 'written'\n"
        "        except OSError as exc:\n"
        "            out[d] = type(exc).__name__\n"
        "    return out\n"
    )
    name = create_function(lam, code)
    _, body = invoke(lam, name, {"mark": mark})
    for scratch in ("/var/tmp", "/run/lock", "/dev/shm"):
        assert not os.path.exists(os.path.join(scratch, mark)), f"{scratch} of the host written: {body}"
    assert body["/var/tmp"] == "written"  # its own: the /tmp tmpfs
    assert_server_fine(lam, hostile, echo)


def test_infinite_output_times_out_and_is_capped(lam: Any, hostile: LaminaServer, echo: str) -> None:
    code = (
        "import sys\n"
        "def handler(event, context):\n"
        "    line = 'y' * 65535 + '\\n'\n"
        "    while True:\n"
        "        sys.stdout.write(line)\n"
    )
    name = create_function(lam, code, Timeout=3)
    started = time.monotonic()
    _resp, body = invoke(lam, name)
    assert time.monotonic() - started < 30
    assert body["errorType"] == "Sandbox.Timedout"
    # The flood went over the function's log rate: dropped and counted, not buffered
    wait_for_log(hostile.data_dir, f"/aws/lambda/{name}", "LOGS_DROPPED")
    assert_server_fine(lam, hostile, echo)


def test_orphaned_and_daemonised_children_die_with_the_environment(
    lam: Any, hostile: LaminaServer, echo: str, marker: str
) -> None:
    code = NAME_PROCESS + (
        "import time\n"
        "def handler(event, context):\n"
        "    if os.fork() == 0:\n"  # an orphan: its parent exits at once
        "        if os.fork() == 0:\n"
        "            os.setsid()\n"  # a daemon: own session, reparented away from the runtime
        "            if os.fork() == 0:\n"
        f"                name_process({marker!r})\n"
        "                time.sleep(300)\n"
        "            os._exit(0)\n"
        f"        name_process({marker!r})\n"
        "        time.sleep(300)\n"
        "        os._exit(0)\n"
        "    deadline = time.monotonic() + 10\n"
        f"    while len([p for p in os.listdir('/proc') if p.isdigit() and _named(p)]) < 2:\n"
        "        assert time.monotonic() < deadline\n"
        "        time.sleep(0.01)\n"
        "    return 'spawned'\n"
        "def _named(pid):\n"
        "    try:\n"
        f"        return open(f'/proc/{{pid}}/comm').read().strip() == {marker!r}\n"
        "    except OSError:\n"
        "        return False\n"
    )
    name = create_function(lam, code, Timeout=30)
    _resp, body = invoke(lam, name)
    assert body == "spawned", body
    assert len(marked(marker)) == 2
    retire(lam, name)
    wait_gone(marker)
    assert_server_fine(lam, hostile, echo)


def test_handler_ignoring_sigterm_still_times_out(lam: Any, hostile: LaminaServer, echo: str) -> None:
    code = (
        "import signal, time\n"
        "def handler(event, context):\n"
        "    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):\n"
        "        signal.signal(sig, signal.SIG_IGN)\n"
        "    time.sleep(120)\n"
    )
    name = create_function(lam, code, Timeout=2)
    started = time.monotonic()
    _resp, body = invoke(lam, name)
    assert body["errorType"] == "Sandbox.Timedout" and time.monotonic() - started < 20
    assert_server_fine(lam, hostile, echo)


PROBE = """
import os, signal
def attempt(kind, path):
    try:
        if kind == "read":
            with open(path, "rb") as f:
                return "read " + f.read(200).decode(errors="replace")
        if kind == "list":
            return "listed " + ",".join(sorted(os.listdir(path))[:20])
        if kind == "kill":
            os.kill(int(path), signal.SIGKILL)
            return "killed"
    except OSError as exc:
        return type(exc).__name__
    return "?"
def handler(event, context):
    return {f"{k} {p}": attempt(k, p) for k, p in event["tries"]}
"""

VICTIM = (
    NAME_PROCESS
    + """
ENV = os.urandom(8).hex()  # which environment answered (its pid is 2 in every one)
def handler(event, context):
    name_process(event["mark"])  # how the test finds its host pid
    with open("/tmp/victim-secret", "w") as f:
        f.write("victim tmp secret")
    return {"env": ENV, "pid": os.getpid(), "task_root": os.environ["LAMBDA_TASK_ROOT"]}
"""
)

DENIED = ("PermissionError", "FileNotFoundError", "ProcessLookupError")


def probe(lam: Any, name: str, tries: list[tuple[str, str]]) -> dict[str, str]:
    resp, body = invoke(lam, name, {"tries": tries})
    assert "FunctionError" not in resp, body
    return body


def test_another_functions_code_tmp_and_the_data_dir_are_out_of_reach(
    lam: Any, hostile: LaminaServer, echo: str, marker: str
) -> None:
    victim = create_function(lam, {"app.py": VICTIM, "secret.py": "KEY = 'victim code secret'\n"})
    _, seen = invoke(lam, victim, {"mark": marker})
    [host_pid] = marked(marker)
    assert seen["task_root"] == "/var/task"  # as every function's: its own code, bound there
    # Where the victim's code really is: its dir in the code store, named by its zip's sha256
    digest = base64.b64decode(lam.get_function_configuration(FunctionName=victim)["CodeSha256"]).hex()
    [task_root] = [str(p) for p in hostile.data_dir.rglob(digest) if p.is_dir()]
    attacker = create_function(lam, PROBE)
    data = str(hostile.data_dir)
    body = probe(
        lam,
        attacker,
        [
            ("read", f"{task_root}/secret.py"),
            ("list", task_root),
            # By its host pid (no such process in the attacker's pid namespace) ...
            ("read", f"/proc/{host_pid}/root/tmp/victim-secret"),
            ("read", f"/proc/{host_pid}/root{task_root}/secret.py"),
            ("read", f"/proc/{host_pid}/root/var/task/secret.py"),
            ("read", "/var/task/secret.py"),  # its own /var/task: the attacker's code only
            ("list", f"/proc/{host_pid}/root/tmp"),
            ("read", f"/proc/{host_pid}/environ"),
            # ... and by its own pid, which names the attacker itself there
            ("read", f"/proc/{seen['pid']}/root/tmp/victim-secret"),
            ("list", data),
            ("list", f"{data}/code"),
            ("list", str(hostile.data_dir / "run")),
            ("list", "/root"),
        ],
    )
    for what, result in body.items():
        assert result in DENIED, f"{what}: {result}"
    assert_server_fine(lam, hostile, echo)


def test_the_servers_credentials_and_environment_are_out_of_reach(
    lam: Any, hostile: LaminaServer, echo: str
) -> None:
    assert hostile.proc is not None
    server_pid = hostile.proc.pid
    attacker = create_function(lam, PROBE)
    credentials = hostile.data_dir / "credentials.json"
    tries = [
        ("read", str(credentials)),
        ("read", f"/proc/{server_pid}/environ"),
        ("read", f"/proc/{server_pid}/root{credentials}"),
        ("list", f"/proc/{server_pid}/fd"),
        ("read", f"/proc/{server_pid}/cmdline"),
    ]
    body = probe(lam, attacker, tries)
    for (kind, path), result in zip(tries, body.values(), strict=True):
        assert result in DENIED, f"{kind} {path}: {result}"
    assert all("should-not-leak" not in r and "secret" not in r for r in body.values()), body
    assert_server_fine(lam, hostile, echo)


def test_signalling_the_servers_processes_fails(
    lam: Any, hostile: LaminaServer, echo: str, marker: str
) -> None:
    assert hostile.proc is not None
    attacker = create_function(lam, PROBE)
    victim = create_function(lam, VICTIM)
    _, seen = invoke(lam, victim, {"mark": marker})
    [victim_pid] = marked(marker)
    with open(f"/proc/{victim_pid}/stat") as f:
        zygote_pid = int(f.read().rsplit(")", 1)[1].split()[1])  # the parent of every environment
    # Host pids name nothing in an environment's pid namespace; its pid 1 is root's
    tries = [("kill", str(hostile.proc.pid)), ("kill", str(victim_pid)), ("kill", str(zygote_pid))]
    body = probe(lam, attacker, [*tries, ("kill", "1")])
    assert body.pop("kill 1") == "PermissionError"
    for what, result in body.items():
        assert result in DENIED, f"{what}: {result}"
    assert hostile.proc.poll() is None, "the server was killed from a function"
    _, again = invoke(lam, victim, {"mark": marker})
    assert again["env"] == seen["env"], "another function's environment was killed"
    assert marked(marker) == [victim_pid]
    assert_server_fine(lam, hostile, echo)


def test_another_environments_runtime_api_refuses_a_function(
    lam: Any, hostile: LaminaServer, echo: str
) -> None:
    runtime = provided(lam, {"bootstrap": PY_BOOTSTRAP})
    _, first = invoke(lam, runtime, {})
    address = first["api"]
    thief = create_function(
        lam,
        "import http.client\n"
        "def handler(event, context):\n"
        "    host, port = event['api'].split(':')\n"
        "    conn = http.client.HTTPConnection(host, int(port), timeout=10)\n"
        "    try:\n"
        "        conn.request('GET', '/2018-06-01/runtime/invocation/next')\n"
        "        return conn.getresponse().status\n"
        "    except (OSError, http.client.HTTPException):\n"
        "        return 0\n",
        Timeout=30,
    )
    _, status = invoke(lam, thief, {"api": address})
    assert status in (0, 403)
    _, after = invoke(lam, runtime, {"still": "mine"})
    assert after["event"] == {"still": "mine"} and after["count"] == 2
    assert_server_fine(lam, hostile, echo)


LIMITS = """
import os, resource
def cgroup_file(controller, name):
    for line in open("/proc/self/cgroup"):
        _, controllers, path = line.rstrip("\\n").split(":", 2)
        if controller in controllers.split(","):
            try:
                return open(f"/sys/fs/cgroup/{controller}{path}/{name}").read().strip()
            except OSError:
                return None
    return None
def handler(event, context):
    tmp = os.statvfs("/tmp")
    return {
        "nofile": resource.getrlimit(resource.RLIMIT_NOFILE),
        "uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
        "tmp_mb": tmp.f_blocks * tmp.f_frsize // (1 << 20),
        "pids_max": cgroup_file("pids", "pids.max"),
        "cfs_quota_us": cgroup_file("cpu", "cpu.cfs_quota_us"),
        "cfs_period_us": cgroup_file("cpu", "cpu.cfs_period_us"),
    }
"""


def test_init_runs_without_the_cpu_quota_the_invocations_then_get(
    lam: Any, hostile: LaminaServer, echo: str
) -> None:
    """AWS gives an on-demand INIT a whole vCPU (burst CPU, up to its 10 s) and the handler its
    MemorySize's share: read from inside, at import time and in the handler."""
    source = (
        LIMITS
        + "\nAT_INIT = cgroup_file('cpu', 'cpu.cfs_quota_us')\n"
        + (
            "def handler(event, context):\n"
            "    return {'init': AT_INIT, 'invoke': cgroup_file('cpu', 'cpu.cfs_quota_us')}\n"
        )
    )
    name = create_function(lam, source, MemorySize=128)
    _, body = invoke(lam, name)
    if body["invoke"] is None:
        pytest.skip("no cgroup v1 cpu hierarchy on this host (v2 is covered by the unit tests)")
    assert body == {"init": "-1", "invoke": str(128 * 100000 // 1769)}
    assert_server_fine(lam, hostile, echo)


def test_limits_inside_an_environment(lam: Any, hostile: LaminaServer, echo: str) -> None:
    small = create_function(lam, LIMITS, MemorySize=128)
    big = create_function(lam, LIMITS, MemorySize=3538, EphemeralStorage={"Size": 1024})
    _, body = invoke(lam, small)
    assert body["nofile"] == [1024, 1024]
    assert body["uid"] != 0 and body["gid"] != 0 and body["groups"] == []
    assert body["tmp_mb"] == 512  # EphemeralStorage's default
    _, large = invoke(lam, big)
    assert large["tmp_mb"] == 1024
    assert large["uid"] != body["uid"]  # one uid per environment
    if body["pids_max"] is None or body["cfs_quota_us"] is None:
        pytest.skip("no cgroup v1 pids and cpu hierarchies on this host (v2 is covered by the unit tests)")
    assert body["pids_max"] == "1024"
    assert body["cfs_period_us"] == "100000"
    assert int(body["cfs_quota_us"]) == 128 * 100000 // 1769  # 1,769 MB = one vCPU
    cpus = len(os.sched_getaffinity(0))
    assert int(large["cfs_quota_us"]) == min(2, cpus) * 100000  # capped at the host's CPUs
    assert_server_fine(lam, hostile, echo)


def test_an_environment_sees_only_its_own_processes(lam: Any, hostile: LaminaServer, echo: str) -> None:
    name = create_function(
        lam,
        "import os, subprocess\n"
        "def handler(event, context):\n"
        "    child = subprocess.Popen(['sleep', '30'])\n"
        "    try:\n"
        "        seen = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
        "        child_status = open(f'/proc/{child.pid}/status').read().startswith('Name:')\n"
        "    finally:\n"
        "        child.kill()\n"
        "        child.wait()\n"
        "    return {'seen': seen, 'me': os.getpid(), 'child': child.pid, 'child_status': child_status,\n"
        "            'meminfo': open('/proc/meminfo').read().startswith('MemTotal')}\n",
    )
    _, body = invoke(lam, name)
    assert body["seen"] == sorted([body["me"], body["child"]])
    assert body["me"] == 2 and body["child"] < 100  # pids of its own namespace, not the host's
    assert body["child_status"] and body["meminfo"]
    assert_server_fine(lam, hostile, echo)


ORPHANS = """
import os, time
def state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:  # ENOENT, or ESRCH if it goes mid-read
        return "gone"
def handler(event, context):
    told, tell = os.pipe()  # the orphan's pid, to us
    wait, go = os.pipe()  # our go, to the orphan
    child = os.fork()
    if child == 0:  # its child outlives it: an orphan, reparented to the namespace's pid 1
        grandchild = os.fork()
        if grandchild == 0:
            os.read(wait, 1)  # until its parent is gone
            os._exit(0)
        os.write(tell, str(grandchild).encode().ljust(16))
        os._exit(0)
    orphan = int(os.read(told, 16))
    os.waitpid(child, 0)
    os.write(go, b"x")  # the orphan may exit now: someone must reap it
    for fd in (told, tell, wait, go):
        os.close(fd)
    seen = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        seen.append(state(orphan))
        if seen[-1] == "gone":
            break
        time.sleep(0.01)  # poll-with-timeout: nothing tells us when pid 1 has reaped it
    return {"pid": os.getpid(), "ppid": os.getppid(), "orphan": orphan, "states": seen[-3:]}
"""


def test_an_environment_has_its_own_pid_namespace_whose_init_reaps_orphans(
    lam: Any, hostile: LaminaServer, echo: str
) -> None:
    name = create_function(lam, ORPHANS, Timeout=30)
    _, body = invoke(lam, name)
    # The runtime is pid 2: pid 1 is the namespace's init; its parent (the zygote) is not in it
    assert body.get("pid") == 2 and body["ppid"] == 0, body
    assert body["orphan"] < 100
    assert body["states"][-1] == "gone", body  # reaped, not left a zombie
    _, again = invoke(lam, name)  # and again, in the same (warm) environment
    assert again["states"][-1] == "gone" and again["orphan"] > body["orphan"], again
    assert_server_fine(lam, hostile, echo)


KERNEL_SURFACE = """
import ctypes, errno, os, subprocess
LIBC = ctypes.CDLL(None, use_errno=True)
def attempt(name, *args):
    ctypes.set_errno(0)
    ok = getattr(LIBC, name)(*args) >= 0
    return "ok" if ok else errno.errorcode[ctypes.get_errno()]
def handler(event, context):
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return {
        "user_namespace": attempt("unshare", 0x10000000),  # CLONE_NEWUSER: root inside it
        "keyring": attempt("syscall", 250 if os.uname().machine == "x86_64" else 219, 1, 0, 0, 0, 0),
        "seccomp": status["Seccomp"].strip(),
        "subprocess": subprocess.run(["/bin/sh", "-c", "echo fine"], capture_output=True, text=True).stdout,
    }
"""


def test_the_kernels_riskiest_interfaces_are_refused(lam: Any, hostile: LaminaServer, echo: str) -> None:
    """Namespaces (this host lets any user make a user namespace), the keyring: refused by the
    environment's seccomp filter; ordinary processes still work."""
    name = create_function(lam, KERNEL_SURFACE)
    _, body = invoke(lam, name)
    expected = {"user_namespace": "EPERM", "keyring": "EPERM", "seccomp": "2", "subprocess": "fine\n"}
    assert body == expected, body
    assert_server_fine(lam, hostile, echo)


# A custom runtime (exec'd: the filter must have survived execve) that reports what unshare(1)
# and a grep of its own status say, for each event.
EXECED_PROBE = """#!/bin/sh
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation"
while true; do
  HEADERS="$(mktemp)"
  curl -sS -LD "$HEADERS" "$API/next" > /dev/null
  REQUEST_ID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)
  if unshare --user --map-root-user true 2>/dev/null; then NS=made; else NS=refused; fi
  MODE=$(grep '^Seccomp:' /proc/self/status | tr -dc '0-9')
  BODY="{\\"user_namespace\\": \\"$NS\\", \\"seccomp\\": \\"$MODE\\"}"
  curl -sS -o /dev/null "$API/$REQUEST_ID/response" -d "$BODY"
  rm -f "$HEADERS"
done
"""


def test_an_execd_runtime_and_its_children_keep_the_filter(
    lam: Any, hostile: LaminaServer, echo: str
) -> None:
    name = provided(lam, {"bootstrap": EXECED_PROBE})
    _, body = invoke(lam, name)
    assert body == {"user_namespace": "refused", "seccomp": "2"}, body
    assert_server_fine(lam, hostile, echo)


def test_the_hosts_root_filesystem_is_read_only(lam: Any, hostile: LaminaServer, echo: str) -> None:
    name = create_function(
        lam,
        "def handler(event, context):\n"
        "    mounts = [line.split() for line in open('/proc/self/mounts')]\n"
        "    return {m[1]: m[3].split(',')[0] for m in mounts if m[1] in ('/', '/tmp', '/opt')}\n",
    )
    _, body = invoke(lam, name)
    assert body["/"] == "ro" and body["/tmp"] == "rw"
    assert_server_fine(lam, hostile, echo)


def test_dev_is_minimal(lam: Any, hostile: LaminaServer, echo: str) -> None:
    name = create_function(
        lam,
        "import os, subprocess\n"
        "def handler(event, context):\n"
        "    with open('/dev/null', 'w') as f:\n"
        "        f.write('x')\n"
        "    with open('/dev/urandom', 'rb') as f:\n"
        "        random = len(f.read(16))\n"
        "    with open('/dev/shm/x', 'w') as f:\n"
        "        f.write('shared')\n"
        "    shell = subprocess.run(['sh', '-c', 'echo to-stderr >/dev/stderr; echo ok'],\n"
        "                           capture_output=True, text=True)\n"
        "    return {'dev': sorted(os.listdir('/dev')), 'random': random, 'shell': shell.stdout.strip()}\n",
    )
    _, body = invoke(lam, name)
    assert body["dev"] == sorted(
        ["fd", "full", "null", "random", "shm", "stderr", "stdin", "stdout", "tty", "urandom", "zero"]
    )
    assert body["random"] == 16 and body["shell"] == "ok"
    assert_server_fine(lam, hostile, echo)


ROOT_PROBE = """
import os, sys
def attempt(path):
    try:
        return sorted(os.listdir(path))
    except OSError as exc:
        return type(exc).__name__
def handler(event, context):
    return {
        "root": sorted(os.listdir("/")),
        "etc": sorted(os.listdir("/etc")),
        "var": sorted(os.listdir("/var")),
        "prefix": sys.base_prefix,
        "task_root": os.environ["LAMBDA_TASK_ROOT"],
        "tries": {path: attempt(path) for path in event["paths"]},
        "secret": attempt(os.path.join(event["secret"], "..")),
    }
"""


def test_the_root_filesystem_is_minimal(lam: Any, hostile: LaminaServer, echo: str) -> None:
    # A host dir outside the allowed set, with something in it a function must not see
    outside = Path("/srv") / f"lamina-test-{uuid.uuid4().hex[:8]}"
    outside.mkdir(parents=True)
    try:
        (outside / "secret").write_text("host secret")
        name = create_function(lam, ROOT_PROBE)
        paths = ["/srv", str(outside), "/home", "/mnt", "/media", "/boot", "/root", str(hostile.data_dir)]
        _, body = invoke(lam, name, {"paths": paths, "secret": str(outside / "secret")})
    finally:
        shutil.rmtree(outside)
    # Only the system dirs, the environment's own mounts, and the (unlistable, 0711) parents of
    # the runtimes' install dirs (a pyenv under /root, lamina's bootstraps) are at the top: the
    # code is at /var/task, not under its code-store path
    runtime_tops = {Path(p).parts[1] for p in (body["prefix"], str(RUNTIMES_DIR))}
    system = {"bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc", "sys"}
    assert set(body["root"]) <= system | {"tmp", "var", "dev", "proc", "opt"} | runtime_tops, body["root"]
    assert {"usr", "etc", "tmp", "dev", "proc", "opt"} <= set(body["root"])
    assert not {"srv", "home", "mnt", "media", "boot"} & set(body["root"])
    assert body["var"] == ["task", "tmp"] and body["task_root"] == "/var/task"
    assert set(body["etc"]) <= {entry.split("/")[0] for entry in ROOT_ETC}, body["etc"]
    assert not {"shadow", "machine-id", "hostname", "ssh"} & set(body["etc"])
    for path, result in body["tries"].items():
        assert result in DENIED, f"{path}: {result}"
    assert body["secret"] in DENIED
    assert_server_fine(lam, hostile, echo)


SYSTEM_SERVICES = """
import datetime, mimetypes, os, pwd, socket, ssl, subprocess, time, zoneinfo
def handler(event, context):
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    return {
        "cas": ssl.create_default_context().cert_store_stats()["x509_ca"],
        "localhost": sorted({a[4][0] for a in socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)}),
        "http_port": socket.getservbyname("http", "tcp"),
        "paris": paris.utcoffset(datetime.datetime(2024, 1, 15)).total_seconds(),
        "utc": time.tzname[0],
        "root_name": pwd.getpwuid(0).pw_name,
        "json_type": mimetypes.guess_type("x.json")[0],
        "ls": subprocess.run(["ls", "/usr"], capture_output=True, text=True).stdout.split(),
        "openssl_cnf": os.path.exists("/etc/ssl/openssl.cnf"),
    }
"""


def test_ssl_dns_users_and_time_zones_work_in_the_minimal_root(
    lam: Any, hostile: LaminaServer, echo: str
) -> None:
    name = create_function(lam, SYSTEM_SERVICES)
    resp, body = invoke(lam, name)
    assert "FunctionError" not in resp, body
    assert body["cas"] > 0  # the CA bundle loads: TLS to the outside world verifies
    assert body["localhost"] and set(body["localhost"]) <= {"127.0.0.1", "::1"}
    assert body["http_port"] == 80
    assert body["paris"] == 3600.0  # tzdata from /usr/share/zoneinfo
    assert body["utc"] == "UTC"  # TZ=:UTC, as on AWS
    assert body["root_name"] == "root" and body["json_type"] == "application/json"
    assert "bin" in body["ls"]  # a dynamically linked binary runs (ld.so.cache, /lib)
    assert body["openssl_cnf"]
    assert_server_fine(lam, hostile, echo)
