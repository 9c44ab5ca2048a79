"""The pieces of the runtimes figure (``bench/run.py --only runtimes``) that are not lamina's.

- the provided.al2023 runtime: ``bench/runtimes/bootstrap.c`` compiled with ``cc -O2`` at bench
  time (else ``bench/runtimes/bootstrap.py`` behind a ``#!python -I -S`` line, and the table says so);
- the nodejs20.x echo handler and the node lamina would pick for nodejs20.x;
- zips with the executable bit kept (``ZipInfo.external_attr``);
- the floors: one exec of a binary, spawn to exit (``os.posix_spawn`` + a blocking ``waitpid``),
  and one keep-alive HTTP round trip on loopback, timed by the runtime's own client stack
  (the C bootstrap's send/parse code, node's ``http`` Agent) against a tiny server (the C
  bootstrap's ``--hop-server``), both placed on the CPUs lamina's environments run on.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

RUNTIMES_DIR = Path(__file__).resolve().parent / "runtimes"
BOOTSTRAP_C = RUNTIMES_DIR / "bootstrap.c"
BOOTSTRAP_PY = RUNTIMES_DIR / "bootstrap.py"
NODE_HOP_CLIENT = RUNTIMES_DIR / "hop_client.mjs"
NODE_HANDLER = "exports.handler = async (e) => e;\n"
SPAWN_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class CustomBootstrap:
    """The executable that goes into the provided.al2023 zip as ``bootstrap``."""

    path: Path
    native: bool  # False: the Python stand-in (no C compiler)
    label: str

    def bare_argv(self) -> list[str]:
        return [str(self.path), "--bare"]

    def hop_server_argv(self) -> list[str]:
        return [str(self.path), "--hop-server"]

    def hop_client_argv(self, port: int, count: int, warmup: int) -> list[str]:
        return [str(self.path), "--hop-client", str(port), str(count), str(warmup)]


def build_bootstrap(workdir: Path) -> CustomBootstrap:
    """``cc -O2`` the C bootstrap into ``workdir``; the Python stand-in when that is not possible."""
    out = workdir / "bootstrap"
    why = "no C compiler (cc, gcc, clang) on PATH"
    compiler = next((c for c in ("cc", "gcc", "clang") if shutil.which(c)), None)
    if compiler is not None:
        proc = subprocess.run(
            [compiler, "-O2", "-o", str(out), str(BOOTSTRAP_C)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if proc.returncode == 0:
            return CustomBootstrap(out, True, f"C, {compiler} -O2")
        why = f"{compiler} failed: {(proc.stderr or proc.stdout).strip()[:300]}"
    # Python stand-in: the interpreter's real path, so the shebang works inside the sandbox.
    python = os.path.realpath(sys.executable)
    base = getattr(sys, "_base_executable", None)
    if base:
        python = os.path.realpath(base)
    out.write_text(f"#!{python} -IS\n" + BOOTSTRAP_PY.read_text())
    out.chmod(0o755)
    return CustomBootstrap(out, False, f"Python stand-in ({why})")


def find_node20() -> tuple[str | None, str]:
    """(the node lamina runs nodejs20.x on, or None; why not)."""
    try:
        from lamina.execution import nodes
    except ImportError as exc:
        return None, f"cannot import lamina's node discovery: {exc}"
    found = asyncio.run(nodes.discover())
    node = found.get("nodejs20.x")
    if node is None:
        seen = ", ".join(f"{k} ({v})" for k, v in sorted(found.items())) or "none"
        return None, f"no Node.js 20 on this host (nodes found: {seen})"
    return node, ""


def function_zip(files: Mapping[str, tuple[bytes, int]]) -> bytes:
    """A zip of ``name -> (data, mode)``; the mode (e.g. 0o755) is kept in the entry's external_attr."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, (data, mode) in files.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return buf.getvalue()


def spawn_wait_ms(argv: Sequence[str], env: Mapping[str, str] | None = None) -> float:
    """Wall clock of one process, spawn to exit: ``posix_spawn`` then a blocking ``waitpid``.

    stdio on /dev/null; a watchdog kills it after SPAWN_TIMEOUT_S.  Raises on a non-zero exit.
    """
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
    ]
    environ = dict(os.environ if env is None else env)
    t0 = time.perf_counter()
    pid = os.posix_spawn(argv[0], list(argv), environ, file_actions=actions)
    watchdog = threading.Timer(SPAWN_TIMEOUT_S, lambda: _kill(pid))
    watchdog.start()
    try:
        _, status = os.waitpid(pid, 0)
    finally:
        watchdog.cancel()
    elapsed = (time.perf_counter() - t0) * 1000
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise subprocess.CalledProcessError(code, list(argv))
    return elapsed


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


class HopServer:
    """The tiny keep-alive HTTP server of the round-trip floor: echoes each request's body."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.isdigit():
            self.stop()
            raise RuntimeError(f"hop server {self.argv[0]} did not print its port: {line!r}")
        self.port = int(line)

    def stop(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            self.proc.wait(10)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.proc = None


def hop_round_trips(argv: Sequence[str], cpus: set[int] | None) -> list[float]:
    """Run a hop client (it prints one round trip in ns per line); its round trips in ms.

    ``cpus``: where the client runs (the CPUs of lamina's environments when pinned).
    """

    def place() -> None:
        if cpus:
            os.sched_setaffinity(0, cpus)

    proc = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=place if cpus else None,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {proc.stderr.strip()[-300:]}")
    samples = [int(x) / 1e6 for x in proc.stdout.split()]
    if not samples:
        raise RuntimeError(f"{argv[0]} printed no round trips")
    return samples


def cpu_ns(pids: Sequence[int]) -> dict[int, int]:
    """CPU time (ns) each process has run so far, all its threads (/proc/PID/task/*/schedstat)."""
    out: dict[int, int] = {}
    for pid in pids:
        total = 0
        with contextlib.suppress(OSError):
            for task in os.scandir(f"/proc/{pid}/task"):
                with (
                    contextlib.suppress(OSError, ValueError, IndexError),
                    open(f"/proc/{pid}/task/{task.name}/schedstat") as f,
                ):
                    total += int(f.read().split()[0])
        out[pid] = total
    return out
