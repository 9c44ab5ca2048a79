"""lamina's benchmark: each figure beside a floor measured in the same run with the same client code.

    python bench/run.py                 # everything, 3 rounds (make bench)
    python bench/run.py --quick         # one short round of each, for a smoke check
    python bench/run.py --only cold  # warm|alias|logs|throughput|urls|cold|cold-nonet|runtimes (repeatable)

Figures (see docs/benchmarks.md): warm invoke p50/p99 over one keep-alive connection, sync
throughput with wrk at 16 connections, cold start p50 of freshly created functions; "alias" is the
warm invoke through an alias with a routing weight beside the same function's plain warm invoke;
"runtimes" is cold and warm p50 of nodejs20.x and a provided.al2023 bootstrap over the Runtime API,
beside the floors of exec'ing the same binary bare and of one HTTP round trip on loopback.  Each is the
median over rounds of the per-round statistic; rounds alternate lamina and floor so drift in the
machine's load hits both.  Prints a table, writes bench/results/latest.json, exits 1 when a target
is missed or a figure could not be measured (errors are never benchmarked).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from client import (  # noqa: E402
    KeepAliveClient,
    ReplayResult,
    SignedRequest,
    free_port,
    print_rows,
    replay,
    retarget,
    sign_invoke,
    summarize,
)
from floor import FloorProcess  # noqa: E402
from lamina_server import NOOP_SOURCE, ROLE, LaminaServer, noop_zip  # noqa: E402
from runtimes_bench import (  # noqa: E402
    NODE_HANDLER,
    NODE_HOP_CLIENT,
    CustomBootstrap,
    HopServer,
    build_bootstrap,
    cpu_ns,
    find_node20,
    function_zip,
    hop_round_trips,
    spawn_wait_ms,
)

RESULTS = BENCH_DIR / "results" / "latest.json"
LUA_SCRIPT = BENCH_DIR / "invoke.lua"
RUNTIME = "python3.11"
INIT_RE = re.compile(r"Init Duration: ([0-9.]+) ms")
WRK_RE = re.compile(r"BENCH_RESULT (.*)")
NOTES: list[str] = []  # printed under the table and kept in the JSON (e.g. a runtime skipped)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Config:
    rounds: int
    warm_rounds: int
    warm_requests: int
    warm_warmup: int
    wrk_duration_s: int
    wrk_connections: int
    wrk_threads: int
    cold_functions: int
    runtime_cold_samples: int  # cold starts per runtime per round
    exec_samples: int  # bare execs per binary per round
    hop_requests: int  # timed HTTP round trips per hop floor per round

    @classmethod
    def full(cls) -> Config:
        return cls(
            rounds=3,
            warm_rounds=5,
            warm_requests=3000,
            warm_warmup=300,
            wrk_duration_s=10,
            wrk_connections=16,
            wrk_threads=2,
            cold_functions=20,
            runtime_cold_samples=20,
            exec_samples=30,
            hop_requests=3000,
        )

    @classmethod
    def quick(cls) -> Config:
        return cls(
            rounds=1,
            warm_rounds=1,
            warm_requests=500,
            warm_warmup=100,
            wrk_duration_s=3,
            wrk_connections=16,
            wrk_threads=2,
            cold_functions=5,
            runtime_cold_samples=5,
            exec_samples=10,
            hop_requests=500,
        )


@dataclass
class Figure:
    key: str
    name: str
    unit: str
    lamina: float | None = None
    floor: float | None = None
    # The target on lamina/floor: ("<=", 3.0) means ratio <= 3.0; None: reported for information.
    target_op: str | None = None
    target: float | None = None
    # True: the target applies to the lamina figure itself, in ``unit`` (e.g. <= 0.2 ms), not a ratio.
    absolute: bool = False
    error: str | None = None
    rounds: dict[str, list[Any]] = field(default_factory=dict)
    # lamina/floor of each round, both measured back to back: robust to the machine's slow drifts.
    paired_ratios: list[float] = field(default_factory=list)

    def set_from_rounds(self, lamina: list[float], floor: list[float]) -> None:
        """Figures are medians of the round statistics; the ratio is the median paired ratio."""
        self.rounds.setdefault("lamina", [round(v, 4) for v in lamina])
        self.rounds.setdefault("floor", [round(v, 4) for v in floor])
        self.lamina = statistics.median(lamina) if lamina else None
        self.floor = statistics.median(floor) if floor else None
        self.paired_ratios = [round(a / b, 4) for a, b in zip(lamina, floor, strict=False) if b]

    @property
    def ratio(self) -> float | None:
        if self.absolute:
            return None
        if self.paired_ratios:
            return statistics.median(self.paired_ratios)
        if self.lamina is None or self.floor is None or self.floor == 0:
            return None
        return self.lamina / self.floor

    @property
    def passed(self) -> bool | None:
        if self.error is not None:
            return False
        if self.target_op is None or self.target is None:
            return None
        ratio = self.lamina if self.absolute else self.ratio
        if ratio is None:
            return False
        ops: dict[str, Callable[[float, float], bool]] = {
            "<=": lambda a, b: a <= b,
            "<": lambda a, b: a < b,
            ">=": lambda a, b: a >= b,
        }
        return ops[self.target_op](ratio, self.target)

    @property
    def target_text(self) -> str:
        if self.target_op is None or self.target is None:
            return "-"
        if self.absolute:
            return f"{self.target_op} {self.target:g} {self.unit}"
        return f"{self.target_op} {self.target:g}x"

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(ratio=self.ratio, passed=self.passed, target_text=self.target_text)
        return out


# --------------------------------------------------------------------------- helpers
def alternate(round_no: int) -> tuple[str, str]:
    """Which side goes first this round: alternate so drift and warm caches favour neither."""
    return ("floor", "lamina") if round_no % 2 == 0 else ("lamina", "floor")


def ensure_noop(server: LaminaServer, name: str) -> None:
    client = server.client()
    try:
        client.get_function(FunctionName=name)
    except client.exceptions.ResourceNotFoundException:
        server.create_noop(client, name, runtime=RUNTIME)


def probe_invoke(server: LaminaServer, name: str) -> str | None:
    """One signed invoke on a fresh connection: None when it succeeds, else what went wrong."""
    req = sign_invoke(server.endpoint, name, server.access_key, server.secret_key)
    try:
        with KeepAliveClient("127.0.0.1", server.port, timeout=60.0) as conn:
            return conn.send(req.raw).problem()
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"


def replay_error(result: ReplayResult) -> str | None:
    if result.ok and result.latencies_ms:
        return None
    parts = []
    if result.errors:
        parts.append(f"{result.errors} failed invokes, e.g. {result.error_samples[:2]}")
    if result.aborted:
        parts.append(f"aborted: {result.aborted}")
    if not result.latencies_ms:
        parts.append("no successful request timed")
    return "; ".join(parts)


def replay_stats(
    port: int, raw: bytes, requests: int, warmup: int
) -> tuple[dict[str, float] | None, str | None]:
    """Replay ``raw`` on one keep-alive connection: (its summary, None), or (None, what went wrong)."""
    result = replay("127.0.0.1", port, raw, requests, warmup=warmup)
    err = replay_error(result)
    return (None, err) if err is not None else (summarize(result.latencies_ms), None)


# --------------------------------------------------------------------------- CPU placement
def process_tree(root: int) -> list[int]:
    """``root`` and every process descended from it (environments are grandchildren of lamina)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def set_tree_affinity(root: int, cpus: set[int]) -> dict[int, set[int]]:
    """Every thread of every process in the tree (sched_setaffinity is per thread on Linux); the
    masks they had before, by thread id, for ``restore_affinity``."""
    before: dict[int, set[int]] = {}
    for pid in process_tree(root):
        for task in Path(f"/proc/{pid}/task").glob("[0-9]*"):
            with contextlib.suppress(OSError):
                tid = int(task.name)
                before[tid] = set(os.sched_getaffinity(tid))
                os.sched_setaffinity(tid, cpus)
    return before


def restore_affinity(root: int, before: dict[int, set[int]], default: set[int]) -> None:
    """Put back what ``set_tree_affinity`` found: lamina keeps its environments off the event
    loop's CPU (execution/placement.py), which "every CPU" would undo for the rest of the run.
    A process started meanwhile (an environment forked while pinned) gets its parent's mask."""
    masks: dict[int, set[int]] = {}
    for pid in process_tree(root):  # parents before their children
        try:
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        inherited = masks.get(ppid, default)
        masks[pid] = before.get(pid, inherited)
        for task in Path(f"/proc/{pid}/task").glob("[0-9]*"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(task.name), before.get(int(task.name), masks[pid]))


@contextlib.contextmanager
def pinned(enabled: bool, server_roots: list[int]) -> Iterator[str]:
    """Client on one CPU, the servers (and all they spawned) on the others, restored afterwards.

    Unpinned, a ping-pong of three processes on 2 vCPUs flips between two regimes: all on one
    CPU (no cross-CPU wake-ups: the floor takes 0.04 ms) or spread (each hand-off wakes an idle
    vCPU: 0.12 ms), for seconds at a time, so the ratio depended on luck.  Pinned it is stable.
    """
    try:
        everything = set(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        everything = set()
    if not enabled or len(everything) < 2:
        yield "unpinned"
        return
    client_cpu = {min(everything)}
    server_cpus = everything - client_cpu
    os.sched_setaffinity(0, client_cpu)
    before = [set_tree_affinity(root, server_cpus) for root in server_roots]
    try:
        yield f"client on CPU {min(client_cpu)}, servers on CPU {','.join(map(str, sorted(server_cpus)))}"
    finally:
        os.sched_setaffinity(0, everything)
        for root, masks in zip(server_roots, before, strict=True):
            restore_affinity(root, masks, everything)


# --------------------------------------------------------------------------- 1. warm invoke
def bench_warm(cfg: Config, server: LaminaServer, floor: FloorProcess, *, pin: bool = True) -> list[Figure]:
    p50 = Figure("warm_p50_ms", "warm invoke p50", "ms", target_op="<=", target=2.0)
    p99 = Figure("warm_p99_ms", "warm invoke p99", "ms")
    name = "bench-warm-noop"
    ensure_noop(server, name)
    problem = probe_invoke(server, name)  # the first invoke: makes it warm
    if problem is None:
        problem = probe_invoke(server, name)
    req = sign_invoke(server.endpoint, name, server.access_key, server.secret_key)
    targets = {
        "lamina": (server.port, req.raw),
        "floor": (floor.port, retarget(req, floor.endpoint).raw),
    }
    stats: dict[str, list[dict[str, float]]] = {"lamina": [], "floor": []}
    errors: dict[str, str] = {}
    if problem is not None:
        errors["lamina"] = f"warm-up invoke failed: {problem}"
    roots = [p.pid for p in (server.proc, floor.proc) if p is not None]
    with pinned(pin, roots) as placement:
        log(f"warm: {placement}")
        p50.rounds["placement"] = p99.rounds["placement"] = [placement]
        for r in range(cfg.warm_rounds):
            for side in alternate(r):
                if side in errors:
                    continue
                port, raw = targets[side]
                s, err = replay_stats(port, raw, cfg.warm_requests, cfg.warm_warmup)
                if s is None:
                    errors[side] = f"round {r + 1}: {err}"
                    continue
                stats[side].append(s)
                log(
                    f"warm round {r + 1} {side:6s} p50={s['p50']:.3f} ms "
                    f"p99={s['p99']:.3f} ms n={int(s['n'])}"
                )
    for fig, key in ((p50, "p50"), (p99, "p99")):
        fig.set_from_rounds(
            [s[key] for s in stats["lamina"]] if "lamina" not in errors else [],
            [s[key] for s in stats["floor"]] if "floor" not in errors else [],
        )
        if errors:
            fig.error = "; ".join(f"{k}: {v}" for k, v in errors.items())
    return [p50, p99]


# --------------------------------------------------------------------------- 1b. warm invoke via an alias
ALIAS_FUNCTION = "bench-alias-noop"


def ensure_weighted_alias(server: LaminaServer, name: str) -> None:
    """Versions 1 and 2 of the no-op function and alias ``live`` -> 1 with {"2": 0.5}."""
    client = server.client()
    ensure_noop(server, name)
    client.get_waiter("function_active_v2").wait(FunctionName=name)
    versions = {v["Version"] for v in client.list_versions_by_function(FunctionName=name)["Versions"]}
    if "1" not in versions:
        client.publish_version(FunctionName=name)
    if "2" not in versions:
        client.update_function_configuration(
            FunctionName=name, Environment={"Variables": {"BENCH_VERSION": "2"}}
        )
        client.get_waiter("function_updated_v2").wait(FunctionName=name)
        client.publish_version(FunctionName=name)
    # "live" splits traffic over two warm versions; "steady" resolves an alias to one version, so the
    # cost of qualifier resolution is seen apart from the cost of alternating environments.
    for alias, weights in (("live", {"2": 0.5}), ("steady", {})):
        routing = {"AdditionalVersionWeights": weights}
        try:
            client.update_alias(FunctionName=name, Name=alias, FunctionVersion="1", RoutingConfig=routing)
        except client.exceptions.ResourceNotFoundException:
            client.create_alias(FunctionName=name, Name=alias, FunctionVersion="1", RoutingConfig=routing)


def replay_sides(
    cfg: Config,
    server: LaminaServer,
    raws: dict[str, bytes],
    sides: tuple[str, ...],
    errors: dict[str, str],
    *,
    pin: bool,
    label: str,
) -> dict[str, list[dict[str, float]]]:
    """Replay each side's signed request on one server, ``warm_rounds`` times, each side going
    first in turn; the per-round statistics by side (and ``placement``).  Stops at the first error
    (recorded in ``errors``): a figure with errors is never benchmarked."""
    stats: dict[str, list[Any]] = {side: [] for side in sides}
    roots = [server.proc.pid] if server.proc is not None else []
    with pinned(pin, roots) as placement:
        log(f"{label}: {placement}")
        stats["placement"] = [placement]
        for r in range(cfg.warm_rounds):
            for side in sides[r % len(sides) :] + sides[: r % len(sides)]:
                if errors:
                    return stats
                s, err = replay_stats(server.port, raws[side], cfg.warm_requests, cfg.warm_warmup)
                if s is None:
                    errors[side] = f"round {r + 1}: {err}"
                    return stats
                stats[side].append(s)
                log(f"{label} round {r + 1} {side:7s} p50={s['p50']:.3f} ms p99={s['p99']:.3f} ms")
    return stats


def bench_warm_alias(cfg: Config, server: LaminaServer, *, pin: bool = True) -> list[Figure]:
    """Warm invoke through ``live`` (weighted 50/50 over two versions) against the plain warm invoke
    of the same function, replayed the same way in alternating rounds.  The "lamina" column holds
    the alias figure, the "floor" column the plain one: the ratio is alias/plain (information)."""
    p50 = Figure("warm_alias_p50_ms", "warm p50 alias/plain", "ms")
    p99 = Figure("warm_alias_p99_ms", "warm p99 alias/plain", "ms")
    steady = Figure("warm_steady_alias_p50_ms", "warm p50 unweighted alias/plain", "ms")
    name = ALIAS_FUNCTION
    errors: dict[str, str] = {}
    try:
        ensure_weighted_alias(server, name)
    except Exception as exc:  # reported as the figure's error, never benchmarked
        errors["setup"] = f"{type(exc).__name__}: {exc}"
    targets = {"alias": f"{name}:live", "steady": f"{name}:steady", "plain": name}
    raws = {}
    for side, fn in targets.items():
        if errors:
            break
        # Warm both routed versions (and $LATEST) before timing.
        for _ in range(4):
            problem = probe_invoke(server, fn)
            if problem is not None:
                errors[side] = f"warm-up invoke failed: {problem}"
                break
        raws[side] = sign_invoke(server.endpoint, fn, server.access_key, server.secret_key).raw
    stats = replay_sides(cfg, server, raws, ("plain", "alias", "steady"), errors, pin=pin, label="warm alias")
    placement = stats.pop("placement", [])
    for fig in (p50, p99, steady):
        fig.rounds["placement"] = placement
    for fig, side, key in ((p50, "alias", "p50"), (p99, "alias", "p99"), (steady, "steady", "p50")):
        fig.set_from_rounds([s[key] for s in stats[side]], [s[key] for s in stats["plain"]])
        if errors:
            fig.error = "; ".join(f"{k}: {v}" for k, v in errors.items())
    return [p50, p99, steady]


# --------------------------------------------------------------------------- 1c. warm invoke that logs
LOGS_FUNCTION = "bench-logs-print10"
PRINT10_SOURCE = (
    "def handler(e, c):\n"
    "    for i in range(10):\n"
    "        print('line', i, 'of this invocation: some text, as long as a real log line often is')\n"
    "    return None\n"
)


def bench_logs(cfg: Config, server: LaminaServer, *, pin: bool = True) -> list[Figure]:
    """Warm invoke of a handler that prints 10 lines beside the same no-op without output, replayed
    the same way in alternating rounds on one server: what logging costs an invocation (issue 7:
    <= 1.2x).  The "lamina" column is the printing function, the "floor" column the silent one."""
    p50 = Figure("logs_p50_ms", "warm p50, 10 lines/none", "ms", target_op="<=", target=1.2)
    errors: dict[str, str] = {}
    names = {"quiet": "bench-logs-noop", "print10": LOGS_FUNCTION}
    client = server.client()
    try:
        ensure_noop(server, names["quiet"])
        try:
            client.get_function(FunctionName=LOGS_FUNCTION)
        except client.exceptions.ResourceNotFoundException:
            client.create_function(
                FunctionName=LOGS_FUNCTION,
                Runtime=RUNTIME,
                Role=ROLE,
                Handler="app.handler",
                Code={"ZipFile": noop_zip(PRINT10_SOURCE)},
                Timeout=30,
            )
            client.get_waiter("function_active_v2").wait(FunctionName=LOGS_FUNCTION)
        tail = client.invoke(FunctionName=LOGS_FUNCTION, LogType="Tail")["LogResult"]
        if base64.b64decode(tail).count(b"of this invocation") != 10:
            errors["print10"] = "the 10 lines are not in the invocation's log"
    except Exception as exc:  # reported as the figure's error, never benchmarked
        errors["setup"] = f"{type(exc).__name__}: {exc}"
    raws = {}
    for side, fn in names.items():
        if errors:
            break
        problem = probe_invoke(server, fn) or probe_invoke(server, fn)
        if problem is not None:
            errors[side] = f"warm-up invoke failed: {problem}"
        raws[side] = sign_invoke(server.endpoint, fn, server.access_key, server.secret_key).raw
    stats = replay_sides(cfg, server, raws, ("quiet", "print10"), errors, pin=pin, label="warm logs")
    p50.rounds["placement"] = stats.pop("placement", [])
    p50.set_from_rounds([s["p50"] for s in stats["print10"]], [s["p50"] for s in stats["quiet"]])
    if errors:
        p50.error = "; ".join(f"{k}: {v}" for k, v in errors.items())
    return [p50]


# --------------------------------------------------------------------------- 2. throughput
def run_wrk(cfg: Config, url: str, request_file: Path, duration_s: int) -> dict[str, Any]:
    cmd = [
        "wrk",
        f"-t{cfg.wrk_threads}",
        f"-c{cfg.wrk_connections}",
        f"-d{duration_s}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA_SCRIPT),
        url,
        "--",
        str(request_file),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 60, check=False)
    out = proc.stdout + proc.stderr
    match = WRK_RE.search(out)
    if proc.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed (exit {proc.returncode}): {out[-800:]}")
    fields = {k: int(v) for k, v in (kv.split("=", 1) for kv in match.group(1).split())}
    rps = fields["requests"] / (fields["duration_us"] / 1e6)
    bad = {
        k: fields[k]
        for k in (
            "non200",
            "function_errors",
            "connect_errors",
            "read_errors",
            "write_errors",
            "timeouts",
            "status_errors",
        )
        if fields[k]
    }
    first_bad = re.search(r"BENCH_FIRST_BAD (.*)", out)
    return {
        "rps": rps,
        "fields": fields,
        "bad": bad,
        "first_bad": first_bad.group(1)[:300] if first_bad else None,
    }


def bench_throughput(cfg: Config, server: LaminaServer, floor: FloorProcess, tmp: Path) -> list[Figure]:
    fig = Figure(
        "throughput_rps",
        f"sync throughput, {cfg.wrk_connections} conns",
        "req/s",
        target_op=">=",
        target=0.5,
    )
    lat = Figure("throughput_p50_ms", f"latency p50 under {cfg.wrk_connections} conns", "ms")
    if shutil.which("wrk") is None:
        fig.error = lat.error = "wrk is not installed (apt-get install wrk, or make bench)"
        return [fig, lat]
    name = "bench-tput-noop"
    ensure_noop(server, name)
    errors: dict[str, str] = {}
    problem = probe_invoke(server, name)
    if problem is not None:
        errors["lamina"] = f"warm-up invoke failed: {problem}"
    req = sign_invoke(server.endpoint, name, server.access_key, server.secret_key)
    targets: dict[str, tuple[str, Path]] = {}
    for side, endpoint, signed in (
        ("lamina", server.endpoint, req),
        ("floor", floor.endpoint, retarget(req, floor.endpoint)),
    ):
        path = tmp / f"request-{side}.http"
        path.write_bytes(signed.wrk_file())
        targets[side] = (endpoint, path)
    rps: dict[str, list[float]] = {"lamina": [], "floor": []}
    p50: dict[str, list[float]] = {"lamina": [], "floor": []}
    # Warm-up (not counted): lets each side bring up as many warm workers as it needs.
    for side in ("floor", "lamina"):
        if side in errors:
            continue
        try:
            res = run_wrk(cfg, *targets[side], duration_s=2)
            if res["bad"]:
                errors[side] = f"warm-up: {res['bad']} first: {res['first_bad']}"
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            errors[side] = f"warm-up: {exc}"
    for r in range(cfg.rounds):
        for side in alternate(r):
            if side in errors:
                continue
            try:
                res = run_wrk(cfg, *targets[side], duration_s=cfg.wrk_duration_s)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                errors[side] = f"round {r + 1}: {exc}"
                continue
            if res["bad"]:
                errors[side] = f"round {r + 1}: {res['bad']} first: {res['first_bad']}"
                continue
            rps[side].append(res["rps"])
            p50[side].append(res["fields"]["p50_us"] / 1000)
            log(
                f"throughput round {r + 1} {side:6s} {res['rps']:.0f} req/s "
                f"({res['fields']['requests']} requests, p50 {res['fields']['p50_us'] / 1000:.2f} ms)"
            )
    for f, data in ((fig, rps), (lat, p50)):
        f.set_from_rounds(
            data["lamina"] if "lamina" not in errors else [],
            data["floor"] if "floor" not in errors else [],
        )
        if errors:
            f.error = "; ".join(f"{k}: {v}" for k, v in errors.items())
    return [fig, lat]


# --------------------------------------------------------------------------- 2b. function URL requests
URL_FUNCTION = "bench-url-noop"


def url_request(url: str) -> SignedRequest:
    """The unsigned request replayed on the URL's port: the invoke's body, as a client posts JSON."""
    netloc = urllib.parse.urlsplit(url).netloc
    headers = (("Host", netloc), ("Content-Type", "application/json"), ("Content-Length", "2"))
    return SignedRequest("POST", "/", headers, b"{}")


def ensure_public_url(server: LaminaServer, name: str) -> str:
    """``name``'s function URL (AuthType NONE, the public permission): its URL."""
    client = server.client()
    ensure_noop(server, name)
    client.get_waiter("function_active_v2").wait(FunctionName=name)
    try:
        return str(client.get_function_url_config(FunctionName=name)["FunctionUrl"])
    except client.exceptions.ResourceNotFoundException:
        url = str(client.create_function_url_config(FunctionName=name, AuthType="NONE")["FunctionUrl"])
    client.add_permission(
        FunctionName=name,
        StatementId="public-url",
        Action="lambda:InvokeFunctionUrl",
        Principal="*",
        FunctionUrlAuthType="NONE",
    )
    return url


def bench_urls(cfg: Config, server: LaminaServer, tmp: Path, *, pin: bool = True) -> list[Figure]:
    """A function URL request (AuthType NONE, POST ``{}``) beside the signed warm Invoke of the same
    no-op function, replayed the same way in alternating rounds: p50 on one keep-alive connection
    (pinned like the warm figure), then req/s with wrk at 16 connections (unpinned, like the
    throughput figure).  The "lamina" column is the URL, the "floor" column the Invoke (issue 8:
    URL <= 1.3x the warm invoke, throughput >= 1/1.3x)."""
    p50 = Figure("urls_p50_ms", "URL request p50 / warm invoke p50", "ms", target_op="<=", target=1.3)
    p99 = Figure("urls_p99_ms", "URL request p99 / warm invoke p99", "ms")
    rps = Figure(
        "urls_rps",
        f"URL req/s / invoke req/s, {cfg.wrk_connections} conns",
        "req/s",
        target_op=">=",
        target=round(1 / 1.3, 3),
    )
    lat = Figure("urls_load_p50_ms", f"URL / invoke p50 under {cfg.wrk_connections} conns", "ms")
    figures = [p50, p99, rps, lat]
    errors: dict[str, str] = {}
    try:
        url = ensure_public_url(server, URL_FUNCTION)
    except Exception as exc:  # reported as the figure's error, never benchmarked
        for f in figures:
            f.error = f"setup: {type(exc).__name__}: {exc}"
        return figures
    url_port = urllib.parse.urlsplit(url).port or 80
    invoke = sign_invoke(server.endpoint, URL_FUNCTION, server.access_key, server.secret_key)
    requests = {"url": (url_port, url_request(url)), "invoke": (server.port, invoke)}
    for side, (port, req) in requests.items():
        try:
            with KeepAliveClient("127.0.0.1", port, timeout=60.0) as conn:
                problem = conn.send(req.raw).problem() or conn.send(req.raw).problem()
        except OSError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if problem is not None:
            errors[side] = f"warm-up request failed: {problem}"
    stats: dict[str, list[dict[str, float]]] = {"url": [], "invoke": []}
    roots = [server.proc.pid] if server.proc is not None else []
    with pinned(pin, roots) as placement:
        log(f"urls: {placement}")
        p50.rounds["placement"] = p99.rounds["placement"] = [placement]
        for r in range(cfg.warm_rounds):
            for side in ("invoke", "url") if r % 2 == 0 else ("url", "invoke"):
                if errors:
                    break
                port, req = requests[side]
                s, err = replay_stats(port, req.raw, cfg.warm_requests, cfg.warm_warmup)
                if s is None:
                    errors[side] = f"round {r + 1}: {err}"
                    break
                stats[side].append(s)
                log(f"urls round {r + 1} {side:6s} p50={s['p50']:.3f} ms p99={s['p99']:.3f} ms")
    for fig, key in ((p50, "p50"), (p99, "p99")):
        fig.set_from_rounds([s[key] for s in stats["url"]], [s[key] for s in stats["invoke"]])
    if shutil.which("wrk") is None:
        errors["wrk"] = "wrk is not installed (apt-get install wrk, or make bench)"
    files = {}
    for side, (port, req) in requests.items():
        files[side] = (f"http://127.0.0.1:{port}", tmp / f"urls-{side}.http")
        files[side][1].write_bytes(req.wrk_file())
    load: dict[str, list[float]] = {"url": [], "invoke": []}
    load_p50: dict[str, list[float]] = {"url": [], "invoke": []}
    for r in range(-1, cfg.rounds):  # round -1: the untimed warm-up (16 environments)
        for side in ("invoke", "url") if r % 2 == 0 else ("url", "invoke"):
            if errors:
                break
            try:
                res = run_wrk(cfg, *files[side], duration_s=2 if r < 0 else cfg.wrk_duration_s)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                errors[side] = f"wrk round {r + 1}: {exc}"
                break
            if res["bad"]:
                errors[side] = f"wrk round {r + 1}: {res['bad']} first: {res['first_bad']}"
                break
            if r >= 0:
                load[side].append(res["rps"])
                load_p50[side].append(res["fields"]["p50_us"] / 1000)
                log(f"urls throughput round {r + 1} {side:6s} {res['rps']:.0f} req/s")
    rps.set_from_rounds(load["url"], load["invoke"])
    lat.set_from_rounds(load_p50["url"], load_p50["invoke"])
    if errors:
        for f in figures:
            f.error = "; ".join(f"{k}: {v}" for k, v in errors.items())
    return figures


# --------------------------------------------------------------------------- 3. cold start
def real_interpreter(runtime: str) -> str | None:
    """The executable behind ``python3.11`` (through a pyenv shim, if that is what PATH has)."""
    found = shutil.which(runtime)
    candidates = [found] if found else []
    if found and Path(found).parent.name == "shims":
        version = runtime.removeprefix("python")
        root = Path(found).parent.parent
        candidates += [str(p) for p in sorted(root.glob(f"versions/{version}.*/bin/{runtime}"), reverse=True)]
    for cand in candidates:
        try:
            out = subprocess.run(
                [cand, "-c", "import sys; print(sys.executable)"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            continue
        if out:
            return out
    return None


FLOOR_COLD_CMD = "import app; app.handler({}, None)"
# -I drops the current directory from sys.path, so the strict variant puts the app dir back itself.
FLOOR_COLD_STRICT = ("-I", "-S", "-c", "import sys; sys.path.insert(0, '.'); " + FLOOR_COLD_CMD)


def floor_cold_once(
    interpreter: str, app_dir: Path, env: dict[str, str], args: tuple[str, ...] = ("-c", FLOOR_COLD_CMD)
) -> float:
    """Wall clock of one whole fresh interpreter that imports the app and calls its handler.

    The wait blocks in waitpid: ``subprocess.run(timeout=...)`` polls with growing sleeps (0.5 ms
    doubling up to 50 ms), which would round every sample up to its next poll (16, 32, 64 ms).
    A watchdog timer kills the child instead, so the run stays bounded.
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [interpreter, *args],
        cwd=app_dir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    watchdog = threading.Timer(30.0, proc.kill)
    watchdog.start()
    try:
        code = proc.wait()
    finally:
        watchdog.cancel()
    elapsed = (time.perf_counter() - t0) * 1000
    if code != 0:
        raise subprocess.CalledProcessError(code, [interpreter, *args])
    return elapsed


def lamina_cold_round(
    server: LaminaServer, count: int, round_no: int, *, tags: dict[str, str] | None = None
) -> tuple[list[float], list[float], str | None]:
    """Create ``count`` fresh functions (with ``tags``), time each one's first invoke; delete
    them afterwards."""
    client = server.client()
    tag = uuid.uuid4().hex[:6]
    names = [f"bench-cold-{round_no}-{i:02d}-{tag}" for i in range(count)]
    latencies: list[float] = []
    inits: list[float] = []
    error: str | None = None
    failures = 0
    try:
        for n in names:
            server.create_noop(client, n, runtime=RUNTIME, tags=tags)
        requests = [
            sign_invoke(server.endpoint, n, server.access_key, server.secret_key, log_tail=True)
            for n in names
        ]
        with KeepAliveClient("127.0.0.1", server.port, timeout=60.0) as conn:
            conn.send(b"GET /_lamina/health HTTP/1.1\r\nHost: bench\r\n\r\n")  # connection warmed up
            for req in requests:
                time.sleep(0.05)  # let the previous invoke's background work settle
                t0 = time.perf_counter()
                resp = conn.send(req.raw)
                ms = (time.perf_counter() - t0) * 1000
                problem = resp.problem()
                if problem is not None:
                    failures += 1
                    error = problem
                    if failures >= 2:
                        break
                    continue
                latencies.append(ms)
                tail = base64.b64decode(resp.headers.get("x-amz-log-result", "")).decode(errors="replace")
                m = INIT_RE.search(tail)
                if m:
                    inits.append(float(m.group(1)))
    except OSError as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        for n in names:
            with contextlib.suppress(Exception):
                client.delete_function(FunctionName=n)
    if failures:
        error = f"{failures} failed cold invokes, e.g. {error}"
    return latencies, inits, error


def bench_cold(cfg: Config, server: LaminaServer, tmp: Path) -> list[Figure]:
    fig = Figure("cold_p50_ms", "cold start p50", "ms", target_op="<", target=1.0)
    strict = Figure("cold_p50_strict_ms", "cold start p50 vs `-I -S` interpreter", "ms")
    init = Figure("cold_init_p50_ms", "cold Init Duration p50 (REPORT)", "ms")
    figures = [fig, strict, init]
    interpreter = real_interpreter(RUNTIME)
    app_dir = tmp / "cold-app"
    app_dir.mkdir()
    (app_dir / "app.py").write_text(NOOP_SOURCE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LAMINA_", "AWS_"))}
    errors: dict[str, str] = {}
    if interpreter is None:
        errors["floor"] = f"{RUNTIME} not found"
    else:
        log(f"cold floor interpreter: {interpreter}")
        try:  # untimed: writes app's .pyc, warms the page cache
            floor_cold_once(interpreter, app_dir, env)
            floor_cold_once(interpreter, app_dir, env, FLOOR_COLD_STRICT)
        except (OSError, subprocess.SubprocessError) as exc:
            errors["floor"] = f"{interpreter} failed: {exc}"
    lam: list[list[float]] = []
    flo: list[list[float]] = []
    flo_strict: list[list[float]] = []
    inits: list[list[float]] = []
    for r in range(cfg.rounds):
        for side in alternate(r):
            if side in errors:
                continue
            if side == "floor":
                assert interpreter is not None
                plain: list[float] = []
                bare: list[float] = []
                for _ in range(cfg.cold_functions):
                    time.sleep(0.05)
                    plain.append(floor_cold_once(interpreter, app_dir, env))
                    time.sleep(0.05)
                    bare.append(floor_cold_once(interpreter, app_dir, env, FLOOR_COLD_STRICT))
                flo.append(plain)
                flo_strict.append(bare)
                log(
                    f"cold round {r + 1} floor  p50={statistics.median(plain):.2f} ms "
                    f"(-I -S: {statistics.median(bare):.2f} ms, n={len(plain)})"
                )
            else:
                latencies, init_ms, err = lamina_cold_round(server, cfg.cold_functions, r)
                if err is not None:
                    errors["lamina"] = f"round {r + 1}: {err}"
                    continue
                lam.append(latencies)
                inits.append(init_ms)
                init_txt = f", Init Duration p50={statistics.median(init_ms):.2f} ms" if init_ms else ""
                log(f"cold round {r + 1} lamina p50={statistics.median(latencies):.2f} ms{init_txt}")

    def medians(rounds: list[list[float]]) -> list[float]:
        return [round(statistics.median(x), 3) for x in rounds if x]

    fig.rounds = {
        "lamina_all_ms": [[round(v, 3) for v in x] for x in lam],
        "floor_all_ms": [[round(v, 3) for v in x] for x in flo],
    }
    lam_ok = medians(lam) if "lamina" not in errors else []
    flo_ok = "floor" not in errors
    fig.set_from_rounds(lam_ok, medians(flo) if flo_ok else [])
    strict.set_from_rounds(lam_ok, medians(flo_strict) if flo_ok else [])
    init.rounds = {"lamina": medians(inits)}
    if lam_ok:
        if inits and all(inits):
            init.lamina = statistics.median(medians(inits))
        else:
            init.error = "no Init Duration in the REPORT line of some cold invokes"
    if errors:
        for f in figures:
            f.error = "; ".join(f"{k}: {v}" for k, v in errors.items())
    return figures


def bench_cold_no_network(cfg: Config, server: LaminaServer) -> list[Figure]:
    """Cold start of a function tagged ``lamina:network`` = ``none`` (its own network namespace,
    from the no-network spares) beside the same function with the host's network (the floor
    column here), rounds alternating; the first no-network round also fills that spare pool."""
    fig = Figure("cold_nonet_p50_ms", "cold start p50, no network (floor: default network)", "ms")
    init = Figure("cold_nonet_init_p50_ms", "cold Init Duration p50, no network (floor: default)", "ms")
    no_network = {"lamina:network": "none"}
    lamina_cold_round(server, 2, -1, tags=no_network)  # untimed: the no-network spares exist from here
    runs: dict[str, list[list[float]]] = {"none": [], "default": []}
    init_runs: dict[str, list[list[float]]] = {"none": [], "default": []}
    errors: list[str] = []
    for r in range(cfg.rounds):
        for side in ("none", "default") if r % 2 == 0 else ("default", "none"):
            tags = no_network if side == "none" else None
            latencies, init_ms, err = lamina_cold_round(server, cfg.cold_functions, r, tags=tags)
            if err is not None:
                errors.append(f"{side} round {r + 1}: {err}")
                continue
            runs[side].append(latencies)
            init_runs[side].append(init_ms)
            log(
                f"cold round {r + 1} network={side:7s} p50={statistics.median(latencies):.2f} ms, "
                f"Init Duration p50={statistics.median(init_ms) if init_ms else float('nan'):.2f} ms"
            )

    def medians(rounds: list[list[float]]) -> list[float]:
        return [round(statistics.median(x), 3) for x in rounds if x]

    fig.set_from_rounds(medians(runs["none"]), medians(runs["default"]))
    init.set_from_rounds(medians(init_runs["none"]), medians(init_runs["default"]))
    if errors:
        fig.error = init.error = "; ".join(errors)
    return [fig, init]


# --------------------------------------------------------------------------- 4. exec'd runtimes
PROVIDED = "provided.al2023"
NODE = "nodejs20.x"
RT_FUNCTIONS = {RUNTIME: "bench-rt-python", NODE: "bench-rt-node", PROVIDED: "bench-rt-provided"}
RUNTIME_API_TARGET_MS = 0.2
# Untimed invokes of each function before the first round: node's JIT takes a few thousand
# invokes to settle (its first 3000 run ~10 % slower), which would otherwise skew round 1 and --quick.
RT_PRIME_INVOKES = 2000
ECHO_PROBE = b'{"bench":"echo"}'


@dataclass
class RuntimeUnderTest:
    """One exec'd runtime of the runtimes figure, and what its floors run."""

    runtime: str
    label: str  # what serves it: the node, or how the bootstrap was built
    code: bytes
    handler: str
    bare_argv: list[str]  # the floor of exec'ing the same binary bare
    bare_text: str
    hop_client: Callable[[int, int, int], list[str]]  # (port, count, warmup) -> argv
    hop_text: str


def runtimes_under_test(tmp: Path) -> tuple[list[RuntimeUnderTest], CustomBootstrap]:
    boot = build_bootstrap(tmp)
    if boot.native:
        log(f"runtimes: {PROVIDED} bootstrap built from bench/runtimes/bootstrap.c ({boot.label})")
    else:
        NOTES.append(f"{PROVIDED}: the bootstrap is the Python stand-in, not C: {boot.label}")
        log(f"runtimes: {NOTES[-1]}")
    under_test = [
        RuntimeUnderTest(
            runtime=PROVIDED,
            label=boot.label,
            code=function_zip({"bootstrap": (boot.path.read_bytes(), 0o755)}),
            handler="bootstrap",
            bare_argv=boot.bare_argv(),
            bare_text="bootstrap --bare" if boot.native else "Python bootstrap --bare",
            hop_client=boot.hop_client_argv,
            hop_text="C client" if boot.native else "Python client",
        )
    ]
    node, why = find_node20()
    if node is None:
        NOTES.append(f"{NODE} skipped: {why}")
        log(f"runtimes: {NOTES[-1]}")
    else:
        log(f"runtimes: {NODE} on {node}")
        under_test.insert(
            0,
            RuntimeUnderTest(
                runtime=NODE,
                label=node,
                code=function_zip({"index.js": (NODE_HANDLER.encode(), 0o644)}),
                handler="index.handler",
                bare_argv=[node, "-e", "0"],
                bare_text="node -e 0",
                hop_client=lambda port, n, w: [node, str(NODE_HOP_CLIENT), str(port), str(n), str(w)],
                hop_text="node net socket",
            ),
        )
    return under_test, boot


def create_function(client: Any, name: str, rt: RuntimeUnderTest) -> None:
    client.create_function(
        FunctionName=name,
        Runtime=rt.runtime,
        Role=ROLE,
        Handler=rt.handler,
        Code={"ZipFile": rt.code},
        Timeout=30,
    )
    client.get_waiter("function_active_v2").wait(FunctionName=name)


def echo_problem(server: LaminaServer, name: str, expect: bytes | None) -> str | None:
    """One invoke with a small event: None when it answers 200 with ``expect`` (if given)."""
    req = sign_invoke(server.endpoint, name, server.access_key, server.secret_key, payload=ECHO_PROBE)
    try:
        with KeepAliveClient("127.0.0.1", server.port, timeout=60.0) as conn:
            resp = conn.send(req.raw)
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    problem = resp.problem()
    if problem is None and expect is not None and resp.body != expect:
        problem = f"expected the event back, got {resp.body[:200]!r}"
    return problem


def wait_updated(client: Any, name: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        status = client.get_function_configuration(FunctionName=name).get("LastUpdateStatus")
        if status == "Successful":
            return
        if status == "Failed" or time.monotonic() > deadline:
            raise RuntimeError(f"{name}: LastUpdateStatus {status}")
        time.sleep(0.01)


def runtime_cold_round(
    server: LaminaServer, client: Any, name: str, count: int
) -> tuple[list[float], list[float], str | None]:
    """``count`` cold starts of one function: each after UpdateFunctionConfiguration (a changed
    variable retires the warm environment), timed from the invoke's send to its response."""
    req = sign_invoke(server.endpoint, name, server.access_key, server.secret_key, log_tail=True)
    latencies: list[float] = []
    inits: list[float] = []
    tag = uuid.uuid4().hex[:8]
    try:
        with KeepAliveClient("127.0.0.1", server.port, timeout=60.0) as conn:
            conn.send(b"GET /_lamina/health HTTP/1.1\r\nHost: bench\r\n\r\n")
            for i in range(count):
                client.update_function_configuration(
                    FunctionName=name, Environment={"Variables": {"BENCH_COLD": f"{tag}-{i}"}}
                )
                wait_updated(client, name)
                time.sleep(0.05)  # let the retired environment's teardown settle
                t0 = time.perf_counter()
                resp = conn.send(req.raw)
                ms = (time.perf_counter() - t0) * 1000
                problem = resp.problem()
                if problem is not None:
                    return latencies, inits, f"cold invoke {i + 1}: {problem}"
                tail = base64.b64decode(resp.headers.get("x-amz-log-result", "")).decode(errors="replace")
                m = INIT_RE.search(tail)
                if m is None:
                    return latencies, inits, f"cold invoke {i + 1} was not cold (no Init Duration): {tail!r}"
                latencies.append(ms)
                inits.append(float(m.group(1)))
    except (OSError, RuntimeError) as exc:
        return latencies, inits, f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # boto3's ClientError and friends: reported, never benchmarked
        return latencies, inits, f"{type(exc).__name__}: {exc}"
    return latencies, inits, None


def bench_runtimes(cfg: Config, server: LaminaServer, tmp: Path, *, pin: bool = True) -> list[Figure]:
    """Warm and cold p50 of nodejs20.x and provided.al2023 beside their floors (docs/benchmarks.md)."""
    workdir = tmp / "runtimes"
    workdir.mkdir()
    under_test, boot = runtimes_under_test(workdir)
    client = server.client()
    errors: dict[str, str] = {}  # runtime (or "hop") -> what went wrong
    for rt in [None, *under_test]:
        runtime = RUNTIME if rt is None else rt.runtime
        name = RT_FUNCTIONS[runtime]
        try:
            if rt is None:
                server.create_noop(client, name, runtime=RUNTIME)
                client.get_waiter("function_active_v2").wait(FunctionName=name)
            else:
                create_function(client, name, rt)
                create_function(client, name + "-cold", rt)
        except Exception as exc:  # reported as the figure's error, never benchmarked
            errors[runtime] = f"setup: {type(exc).__name__}: {exc}"
            continue
        for _ in range(3):  # the first is the cold start; then it is warm
            problem = echo_problem(server, name, None if rt is None else ECHO_PROBE)
            if problem is not None:
                errors[runtime] = f"warm-up invoke failed: {problem}"
                break
    hop = HopServer(boot.hop_server_argv())
    try:
        hop.start()
    except (OSError, RuntimeError) as exc:
        errors["hop"] = f"hop server: {exc}"
    try:
        warm, hops, cpu, placement = runtime_warm_rounds(cfg, server, hop, under_test, errors, pin=pin)
    finally:
        hop.stop()
    cold, inits, bare = runtime_cold_rounds(cfg, server, client, under_test, errors)

    figures: list[Figure] = []
    py_warm = warm[RUNTIME]
    for rt in under_test:
        r = rt.runtime
        vs_py = Figure(f"rt_{r}_warm_p50_ms", f"{r} warm p50 / python3.11 warm p50", "ms")
        hop_fig = Figure(f"rt_{r}_hop_p50_ms", f"{r} floor: 1 HTTP round trip ({rt.hop_text})", "ms")
        over = Figure(
            f"rt_{r}_runtime_api_overhead_ms",
            f"{r} Runtime API overhead (warm - py - hop)",
            "ms",
            target_op="<=",
            target=RUNTIME_API_TARGET_MS,
            absolute=True,
        )
        cpu_fig = Figure(f"rt_{r}_lamina_cpu_us", f"{r} lamina CPU per warm invoke / python3.11's", "us")
        cold_fig = Figure(f"rt_{r}_cold_p50_ms", f"{r} cold p50 / floor: exec `{rt.bare_text}`", "ms")
        init_fig = Figure(f"rt_{r}_cold_init_p50_ms", f"{r} cold Init Duration p50 (REPORT)", "ms")
        for f in (vs_py, hop_fig, over, cpu_fig):
            f.rounds["placement"] = [placement]
        vs_py.rounds["served_by"] = [rt.label]
        vs_py.set_from_rounds(warm[r], py_warm)
        hop_fig.floor = statistics.median(hops[r]) if hops[r] else None
        hop_fig.rounds = {"floor": [round(v, 4) for v in hops[r]]}
        n = min(len(warm[r]), len(py_warm), len(hops[r]))
        per_round = [warm[r][i] - py_warm[i] - hops[r][i] for i in range(n)]
        over.rounds = {
            "lamina": [round(v, 4) for v in per_round],
            "warm": [round(v, 4) for v in warm[r]],
            "python3.11_warm": [round(v, 4) for v in py_warm],
            "hop": [round(v, 4) for v in hops[r]],
        }
        over.lamina = statistics.median(per_round) if per_round else None
        over.floor = hop_fig.floor
        # lamina's own side of the Runtime API against its private channel: server CPU per invoke.
        cpu_fig.set_from_rounds([a for a, _ in cpu[r]], [a for a, _ in cpu[RUNTIME]])
        cpu_fig.rounds["environment_us"] = [round(b, 1) for _, b in cpu[r]]
        cpu_fig.rounds["python3.11_environment_us"] = [round(b, 1) for _, b in cpu[RUNTIME]]
        cold_fig.set_from_rounds(
            [statistics.median(x) for x in cold[r] if x], [statistics.median(x) for x in bare[r] if x]
        )
        cold_fig.rounds["lamina_all_ms"] = [[round(v, 3) for v in x] for x in cold[r]]
        cold_fig.rounds["floor_all_ms"] = [[round(v, 3) for v in x] for x in bare[r]]
        init_rounds = [statistics.median(x) for x in inits[r] if x]
        init_fig.rounds = {"lamina": [round(v, 3) for v in init_rounds]}
        init_fig.lamina = statistics.median(init_rounds) if init_rounds else None
        # Each figure carries the errors of what it was computed from.
        sources = {
            "warm": (r, RUNTIME),
            "hop": ("hop",),
            "over": (r, RUNTIME, "hop"),
            "cold": (r, f"{r} cold", f"{r} floor"),
        }
        for f, src in (
            (vs_py, "warm"),
            (hop_fig, "hop"),
            (over, "over"),
            (cpu_fig, "warm"),
            (cold_fig, "cold"),
            (init_fig, "cold"),
        ):
            relevant = {k: v for k, v in errors.items() if k in sources[src]}
            if relevant:
                f.error = "; ".join(f"{k}: {v}" for k, v in relevant.items())
        figures += [vs_py, hop_fig, over, cpu_fig, cold_fig, init_fig]
    breakdown = [
        f"{side} {statistics.median(a for a, _ in rs):.0f} + {statistics.median(b for _, b in rs):.0f}"
        for side, rs in cpu.items()
        if rs
    ]
    if breakdown:
        NOTES.append(
            "CPU per warm invoke, lamina server + the function's environment (us, median over rounds): "
            + "; ".join(breakdown)
        )
    return figures


def runtime_warm_rounds(
    cfg: Config,
    server: LaminaServer,
    hop: HopServer,
    under_test: list[RuntimeUnderTest],
    errors: dict[str, str],
    *,
    pin: bool,
) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, list[tuple[float, float]]], str]:
    """Warm p50 per round of python3.11 and each runtime (the warm figure's client and path), and
    the p50 of each runtime's hop floor, all in the same rounds: (warm, hops, cpu, placement).

    ``cpu[runtime]``: per round, the CPU microseconds per invoke of lamina's server process and of
    everything it spawned (the function's environment; idle zygotes and spares add ~0).  On the
    pinned layout server and environment share one CPU, so the two add up to the warm p50.
    """
    raws = {
        r: sign_invoke(server.endpoint, name, server.access_key, server.secret_key).raw
        for r, name in RT_FUNCTIONS.items()
    }
    sides = [RUNTIME, *(rt.runtime for rt in under_test)]
    warm: dict[str, list[float]] = {s: [] for s in sides}
    cpu: dict[str, list[tuple[float, float]]] = {s: [] for s in sides}
    hops: dict[str, list[float]] = {rt.runtime: [] for rt in under_test}
    server_pid = server.proc.pid if server.proc is not None else 0
    roots = [p for p in (server_pid, hop.pid) if p]
    with pinned(pin, roots) as placement:
        log(f"runtimes warm: {placement}")
        # The hop floor runs where lamina's environments run (the "server" CPUs when pinned).
        hop_cpus = os.sched_getaffinity(hop.pid) if pin and hop.pid is not None else None
        for side in sides:
            if side not in errors:
                err = replay_error(replay("127.0.0.1", server.port, raws[side], RT_PRIME_INVOKES))
                if err is not None:
                    errors[side] = f"untimed warm-up: {err}"
        for r in range(cfg.warm_rounds):
            k = r % len(sides)
            for side in sides[k:] + sides[:k]:  # each goes first in turn
                if side in errors:
                    continue
                tree = process_tree(server_pid) if server_pid else []
                before = cpu_ns(tree)
                s, err = replay_stats(server.port, raws[side], cfg.warm_requests, cfg.warm_warmup)
                after = cpu_ns(tree)
                if s is None:
                    errors[side] = f"round {r + 1}: {err}"
                    continue
                warm[side].append(s["p50"])
                invokes = cfg.warm_requests + cfg.warm_warmup
                spent = {p: after[p] - before[p] for p in after}
                server_us = spent.pop(server_pid, 0) / invokes / 1000
                env_us = sum(spent.values()) / invokes / 1000
                cpu[side].append((server_us, env_us))
                log(
                    f"runtimes warm round {r + 1} {side:15s} p50={s['p50']:.3f} ms p99={s['p99']:.3f} ms; "
                    f"CPU per invoke: lamina {server_us:.0f} us + environment {env_us:.0f} us"
                )
            for rt in under_test:
                if "hop" in errors:
                    break
                try:
                    argv = rt.hop_client(hop.port, cfg.hop_requests, max(1000, cfg.hop_requests // 3))
                    trips = hop_round_trips(argv, hop_cpus)
                except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
                    errors["hop"] = f"round {r + 1}, {rt.hop_text}: {exc}"
                    break
                s = summarize(trips)
                hops[rt.runtime].append(s["p50"])
                log(f"runtimes hop  round {r + 1} {rt.hop_text:15s} p50={s['p50']:.4f} ms n={int(s['n'])}")
    return warm, hops, cpu, placement


def runtime_cold_rounds(
    cfg: Config, server: LaminaServer, client: Any, under_test: list[RuntimeUnderTest], errors: dict[str, str]
) -> tuple[dict[str, list[list[float]]], dict[str, list[list[float]]], dict[str, list[list[float]]]]:
    """Cold starts and bare execs, alternating per round (unpinned, like the cold figure)."""
    cold: dict[str, list[list[float]]] = {rt.runtime: [] for rt in under_test}
    inits: dict[str, list[list[float]]] = {rt.runtime: [] for rt in under_test}
    bare: dict[str, list[list[float]]] = {rt.runtime: [] for rt in under_test}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAMINA_", "AWS_", "NODE_"))}
    for rt in under_test:  # untimed: page cache, node's code cache
        try:
            spawn_wait_ms(rt.bare_argv, env)
        except (OSError, subprocess.SubprocessError) as exc:
            errors[f"{rt.runtime} floor"] = f"`{rt.bare_text}` failed: {exc}"
    for r in range(cfg.rounds):
        for rt in under_test:
            for side in alternate(r):
                if side == "floor" and f"{rt.runtime} floor" not in errors:
                    samples = []
                    try:
                        for _ in range(cfg.exec_samples):
                            time.sleep(0.01)
                            samples.append(spawn_wait_ms(rt.bare_argv, env))
                    except (OSError, subprocess.SubprocessError) as exc:
                        errors[f"{rt.runtime} floor"] = f"round {r + 1}: `{rt.bare_text}` failed: {exc}"
                        continue
                    bare[rt.runtime].append(samples)
                    log(
                        f"runtimes cold round {r + 1} {rt.runtime:15s} floor  `{rt.bare_text}` "
                        f"p50={statistics.median(samples):.2f} ms n={len(samples)}"
                    )
                elif side == "lamina" and not {rt.runtime, f"{rt.runtime} cold"} & errors.keys():
                    name = RT_FUNCTIONS[rt.runtime] + "-cold"
                    lat, init_ms, err = runtime_cold_round(server, client, name, cfg.runtime_cold_samples)
                    if err is not None:
                        errors[f"{rt.runtime} cold"] = f"round {r + 1}: {err}"
                        continue
                    cold[rt.runtime].append(lat)
                    inits[rt.runtime].append(init_ms)
                    log(
                        f"runtimes cold round {r + 1} {rt.runtime:15s} lamina "
                        f"p50={statistics.median(lat):.2f} ms "
                        f"(Init Duration p50={statistics.median(init_ms):.2f} ms) n={len(lat)}"
                    )
    return cold, inits, bare


# --------------------------------------------------------------------------- report
def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "req/s":
        return f"{value:,.0f}"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def print_table(figures: list[Figure]) -> None:
    rows = [("figure", "unit", "lamina", "floor", "ratio", "target", "result")]
    for f in figures:
        verdict = {True: "PASS", False: "MISSED" if f.absolute and not f.error else "FAIL", None: "info"}[
            f.passed
        ]
        ratio = f"{f.ratio:.2f}x" if f.ratio is not None else "-"
        rows.append(
            (f.name, f.unit, fmt(f.lamina, f.unit), fmt(f.floor, f.unit), ratio, f.target_text, verdict)
        )
    print_rows(rows)
    errors: dict[str, list[str]] = {}
    for f in figures:
        if f.error:
            errors.setdefault(f.error, []).append(f.name)
    print(
        "\nfigures: median over rounds; ratio: median of per-round lamina/floor (both measured back to back)"
    )
    for error, names in errors.items():
        print(f"\nERROR in {', '.join(names)}:\n  {error}")
    for note in NOTES:
        print(f"\nNOTE: {note}")


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count() or 0
    return {
        "cpus": affinity,
        "cpu_model": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg_at_start": list(os.getloadavg()),
    }


def git_revision() -> str | None:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=BENCH_DIR, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=BENCH_DIR, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}{'+dirty' if dirty else ''}" if head else None


@contextlib.contextmanager
def servers(need_floor: bool) -> Iterator[tuple[LaminaServer, FloorProcess | None, Path]]:
    tmp = Path(tempfile.mkdtemp(prefix="lamina-bench-run-"))
    lamina = LaminaServer()
    floor = FloorProcess(free_port(), log_path=str(tmp / "floor.log")) if need_floor else None
    try:
        log("starting lamina")
        lamina.start()
        if floor is not None:
            log("starting the floor server")
            floor.start()
        yield lamina, floor, tmp
    finally:
        if floor is not None:
            floor.stop()
        lamina.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop the servers


def main(argv: list[str] | None = None) -> int:
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    parser = argparse.ArgumentParser(description="lamina benchmark (see docs/benchmarks.md)")
    parser.add_argument("--quick", action="store_true", help="one short round of each figure")
    parser.add_argument(
        "--only",
        action="append",
        choices=["warm", "alias", "logs", "throughput", "urls", "cold", "cold-nonet", "runtimes"],
        help="run only this figure",
    )
    parser.add_argument("--rounds", type=int, default=None, help="override the number of rounds")
    parser.add_argument(
        "--no-pin", action="store_true", help="warm figure: let the scheduler place client and servers"
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")
    args = parser.parse_args(argv)
    cfg = Config.quick() if args.quick else Config.full()
    if args.rounds:
        cfg = Config(**{**asdict(cfg), "rounds": max(1, args.rounds), "warm_rounds": max(1, args.rounds)})
    only = set(args.only or ["warm", "alias", "logs", "throughput", "urls", "cold", "runtimes"])
    started = dt.datetime.now(dt.UTC)
    figures: list[Figure] = []
    server_log = ""
    with servers(need_floor=bool(only & {"warm", "throughput"})) as (lamina, floor, tmp):
        if "warm" in only:
            assert floor is not None
            log("warm invoke")
            figures += bench_warm(cfg, lamina, floor, pin=not args.no_pin)
        if "alias" in only:
            log("warm invoke through a weighted alias")
            figures += bench_warm_alias(cfg, lamina, pin=not args.no_pin)
        if "logs" in only:
            log("warm invoke that prints 10 lines")
            figures += bench_logs(cfg, lamina, pin=not args.no_pin)
        if "throughput" in only:
            assert floor is not None
            log("throughput")
            figures += bench_throughput(cfg, lamina, floor, tmp)
        if "urls" in only:
            log("function URL requests beside the warm invoke")
            figures += bench_urls(cfg, lamina, tmp, pin=not args.no_pin)
        if "cold" in only:
            log("cold start")
            figures += bench_cold(cfg, lamina, tmp)
        if "cold-nonet" in only:
            log("cold start without network")
            figures += bench_cold_no_network(cfg, lamina)
        if "runtimes" in only:
            log("runtimes: nodejs20.x and provided.al2023")
            figures += bench_runtimes(cfg, lamina, tmp, pin=not args.no_pin)
        if any(f.error for f in figures):
            server_log = lamina.log_tail(60)
    print()
    print_table(figures)
    result = {
        "date": started.isoformat(timespec="seconds"),
        "duration_s": round((dt.datetime.now(dt.UTC) - started).total_seconds(), 1),
        "revision": git_revision(),
        "machine": machine(),
        "config": asdict(cfg),
        "quick": args.quick,
        "figures": [f.as_json() for f in figures],
        "passed": all(f.passed is not False for f in figures),
        "notes": NOTES,
        "lamina_log_tail": server_log or None,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.output}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
