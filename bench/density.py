"""Density: what one idle warm Python environment costs in memory, measured on a real server.

    python bench/density.py                     # 200 functions, one idle environment each
    python bench/density.py --count 1000 --ratio 8
    python bench/density.py --preload boto3     # the zygote preloads boto3 (LAMINA_PRELOAD)

Starts ``lamina serve`` (``lamina_server.py``), creates ``--count`` functions (a handler that
returns its log stream, which names its environment), invokes each once so each has exactly one
idle warm environment, then reads every environment's unique memory (USS = Private_Clean +
Private_Dirty of ``/proc/<pid>/smaps_rollup``: what the host gets back when that process goes)
and prints median, p95 and sum -- beside the floor, a bare forked idle Python process (``python
-I -S``, nothing imported, forked, blocked on a read) measured the same way, lamina's own spare
processes (forked from the zygote and warmed up, no function yet) and, as root, the init (pid 1)
of each environment's pid namespace.  An environment is found among the zygotes' children by
its memory cgroup, named after it (its own pid, 2 in its namespace, says nothing on the host):
this needs cgroups.  Also: the host's MemAvailable drop per environment (USS plus what the
kernel keeps per process: page tables, cgroup, socket buffers), and where the median
environment's unique pages are (by mapping, from ``smaps``).

Host capacity: the server admits environments while the sum of their MemorySize stays within
host memory x the overcommit ratio (2.0 by default: ~376 environments of 128 MB on 24 GB).  For
more idle environments than that pass ``--ratio`` (sets ``LAMINA_OVERCOMMIT_RATIO``); without it
the older environments are evicted and the table says how many were still alive.

Writes bench/results/density.json.  Needs Linux with smaps_rollup (4.14+).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
import zipfile
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from lamina_server import ROLE, LaminaServer  # noqa: E402

RESULTS = BENCH_DIR / "results" / "density.json"
RUNTIME = "python3.11"
TARGET_MB = 15.0  # issue 5: an idle warm Python environment costs <= 15 MB USS
PID_SOURCE = "def handler(event, context):\n    return context.log_stream_name\n"
MAPPING_RE = re.compile(r"^[0-9a-f]+-[0-9a-f]+ ")
# The floor: a bare interpreter forks a child that blocks on a pipe; its pid on stdout; the
# parent waits for stdin to close (then the child's read sees EOF and it exits too).
FLOOR_SCRIPT = """
import os, sys
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(w)
    os.read(r, 1)
    os._exit(0)
print(pid, flush=True)
sys.stdin.read()
"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- /proc
def rollup_kb(pid: int) -> dict[str, int]:
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            fields[parts[0].rstrip(":")] = int(parts[1])
    return fields


def uss_kb(pid: int) -> int:
    fields = rollup_kb(pid)
    return fields["Private_Clean"] + fields["Private_Dirty"]


def unique_by_mapping(pid: int) -> dict[str, int]:
    """kB of private pages per mapping name ([heap], [anon], libpython3.11.so, ...)."""
    by_name: dict[str, int] = defaultdict(int)
    name = "?"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        if MAPPING_RE.match(line):
            parts = line.split(maxsplit=5)
            name = (
                os.path.basename(parts[5])
                if len(parts) > 5 and parts[5].startswith("/")
                else (parts[5] if len(parts) > 5 else "[anon]")
            )
        elif line.startswith(("Private_Clean:", "Private_Dirty:")):
            by_name[name] += int(line.split()[1])
    return dict(by_name)


def mem_available_kb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    raise RuntimeError("no MemAvailable")


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def memory_cgroup_leaf(pid: int) -> str | None:
    """The last component of ``pid``'s memory cgroup (v1) or its one group (v2)."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(",") or (controllers == "" and line.startswith("0::")):
            return path.rsplit("/", 1)[-1]
    return None


def namespace_pid(pid: int) -> int | None:
    """``pid`` as its own (innermost) pid namespace numbers it: 1 for an environment's init."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    except OSError:
        pass
    return None


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def mb(kb: float) -> float:
    return kb / 1024


# --------------------------------------------------------------------------- floor
def python_for(runtime: str) -> str:
    from lamina.execution import interpreters

    found = asyncio.run(interpreters.discover({}))
    if runtime not in found:
        raise SystemExit(f"{runtime} is not on this host")
    return found[runtime]


def floor_uss_kb(interpreter: str, samples: int = 5) -> list[int]:
    """USS of a bare forked idle Python process (``-I -S``, nothing imported)."""
    values = []
    for _ in range(samples):
        proc = subprocess.Popen(
            [interpreter, "-I", "-S", "-c", FLOOR_SCRIPT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={"LC_CTYPE": "C.UTF-8"},  # what the zygote runs with
        )
        try:
            assert proc.stdout is not None
            child = int(proc.stdout.readline())
            values.append(uss_kb(child))
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(10)
    return values


# --------------------------------------------------------------------------- lamina
def function_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("app.py", PID_SOURCE)
    return buf.getvalue()


def make_environments(server: LaminaServer, count: int, memory_mb: int, workers: int) -> list[str]:
    """``count`` functions, each invoked once: the id of each one's (now idle) environment."""
    client = server.client()
    code = function_zip()
    prefix = f"density-{uuid.uuid4().hex[:6]}"

    def one(i: int) -> str:
        name = f"{prefix}-{i:05d}"
        client.create_function(
            FunctionName=name,
            Runtime=RUNTIME,
            Role=ROLE,
            Handler="app.handler",
            Code={"ZipFile": code},
            MemorySize=memory_mb,
            Timeout=30,
        )
        out = client.invoke(FunctionName=name, Payload=b"{}")
        body = out["Payload"].read()
        if out.get("FunctionError"):
            raise RuntimeError(f"{name}: {body!r}")
        return str(json.loads(body)).rsplit("]", 1)[1]  # <date>/[<version>]<environment id>

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, range(count)))


def lamina_processes(server_pid: int, env_ids: set[str]) -> dict[str, list[int]]:
    """The server's zygotes and their children: environments (by their cgroup's name), the
    inits of their pid namespaces (pid 1 there), and spares (the rest)."""
    zygotes = [p for p in children(server_pid) if "zygote" in cmdline(p)]
    found: dict[str, list[int]] = {"zygotes": zygotes, "envs": [], "inits": [], "spares": []}
    for child in (c for z in zygotes for c in children(z)):
        if memory_cgroup_leaf(child) in env_ids:
            found["envs"].append(child)
        elif namespace_pid(child) == 1:
            found["inits"].append(child)
        else:
            found["spares"].append(child)
    return found


# --------------------------------------------------------------------------- main
def summary(values_kb: list[int]) -> dict[str, float]:
    return {
        "n": len(values_kb),
        "median_mb": round(mb(statistics.median(values_kb)), 2),
        "p95_mb": round(mb(percentile([float(v) for v in values_kb], 0.95)), 2),
        "max_mb": round(mb(max(values_kb)), 2),
        "sum_mb": round(mb(sum(values_kb)), 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=200, help="functions, one idle environment each")
    ap.add_argument("--memory", type=int, default=128, help="their MemorySize (MB)")
    ap.add_argument("--ratio", type=float, default=None, help="LAMINA_OVERCOMMIT_RATIO for the server")
    ap.add_argument("--preload", default=None, help="LAMINA_PRELOAD for the server, e.g. boto3")
    ap.add_argument("--workers", type=int, default=4, help="client threads creating and invoking")
    args = ap.parse_args()

    if not Path("/proc/self/smaps_rollup").exists():
        raise SystemExit("needs /proc/<pid>/smaps_rollup (Linux 4.14+)")
    interpreter = python_for(RUNTIME)
    log(f"floor: bare forked idle {interpreter} -I -S ...")
    floor = floor_uss_kb(interpreter)

    settings = {}
    if args.ratio is not None:
        settings["LAMINA_OVERCOMMIT_RATIO"] = str(args.ratio)
    if args.preload:
        settings["LAMINA_PRELOAD"] = args.preload
    server = LaminaServer(extra_env=settings)
    with server:
        assert server.proc is not None
        time.sleep(0.5)  # let the spares settle before the baseline (not a synchronisation)
        available_before = mem_available_kb()
        log(f"creating {args.count} functions and invoking each once ...")
        t0 = time.monotonic()
        env_ids = make_environments(server, args.count, args.memory, args.workers)
        elapsed = time.monotonic() - t0
        available_after = mem_available_kb()
        processes = lamina_processes(server.proc.pid, set(env_ids))
        zygotes = processes["zygotes"]
        alive_pids = [p for p in processes["envs"] if alive(p)]
        if not alive_pids:
            raise SystemExit("no environment found by its memory cgroup: density needs cgroups")
        envs = [uss_kb(p) for p in alive_pids]
        spare_uss = [uss_kb(p) for p in processes["spares"] if alive(p)]
        init_uss = [uss_kb(p) for p in processes["inits"] if alive(p)]
        zygote_info = {" ".join(cmdline(z)[:1]): rollup_kb(z) for z in zygotes}
        median_pid = sorted(alive_pids, key=uss_kb)[len(alive_pids) // 2] if alive_pids else None
        breakdown = unique_by_mapping(median_pid) if median_pid is not None else {}

    per_env_host_kb = (available_before - available_after) / max(1, len(alive_pids))
    env_summary = summary(envs) if envs else {}
    report: dict[str, Any] = {
        "count": args.count,
        "memory_mb": args.memory,
        "ratio": args.ratio,
        "preload": args.preload,
        "alive": len(alive_pids),
        "setup_s": round(elapsed, 1),
        "env_uss": env_summary,
        "floor_uss": summary(floor),
        "spare_uss": summary(spare_uss) if spare_uss else {},
        "init_uss": summary(init_uss) if init_uss else {},
        "host_memory_per_env_mb": round(mb(per_env_host_kb), 2),
        "zygotes": {
            name: {
                "rss_mb": round(mb(f["Rss"]), 1),
                "uss_mb": round(mb(f["Private_Clean"] + f["Private_Dirty"]), 1),
            }
            for name, f in zygote_info.items()
        },
        "median_env_unique_by_mapping_kb": dict(sorted(breakdown.items(), key=lambda kv: -kv[1])[:12]),
        "target_mb": TARGET_MB,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")

    print(
        f"\nDensity: {args.count} functions x {args.memory} MB, one idle {RUNTIME} environment each "
        f"({len(alive_pids)} alive at the end; set up in {elapsed:.1f} s)"
        + (f", preload={args.preload}" if args.preload else "")
    )
    print(f"{'USS per process':<42} {'median':>8} {'p95':>8} {'max':>8} {'sum':>10}")
    rows = [
        ("idle warm environment", env_summary),
        ("lamina spare (forked, warmed, no function)", report["spare_uss"]),
        ("pid 1 of an environment's pid namespace", report["init_uss"]),
        ("floor: bare forked idle python -I -S", report["floor_uss"]),
    ]
    for label, s in rows:
        if s:
            print(
                f"{label:<42} {s['median_mb']:>6.2f}MB {s['p95_mb']:>6.2f}MB {s['max_mb']:>6.2f}MB "
                f"{s['sum_mb']:>8.1f}MB"
            )
    print(
        f"host MemAvailable drop per environment: {mb(per_env_host_kb):.2f} MB "
        "(USS + kernel: page tables, cgroup, sockets; noisy)"
    )
    for name, z in report["zygotes"].items():
        print(f"zygote {name}: RSS {z['rss_mb']} MB (shared with every environment), USS {z['uss_mb']} MB")
    print(
        "median environment's unique memory by mapping (kB): "
        + ", ".join(f"{k} {v}" for k, v in report["median_env_unique_by_mapping_kb"].items())
    )
    if env_summary:
        ok = env_summary["median_mb"] <= TARGET_MB
        fit = int(24 * 1024 / max(env_summary["median_mb"], per_env_host_kb / 1024, 0.01))
        print(
            f"target: median USS <= {TARGET_MB:g} MB: {'met' if ok else 'MISSED'} "
            f"(~{fit:,} idle environments per 24 GB by memory alone)"
        )
        return 0 if ok else 1
    return 1


if __name__ == "__main__":
    sys.exit(main())
