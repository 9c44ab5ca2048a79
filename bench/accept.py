"""Durable accept rate of Event invokes beside the floor of raw SQLite inserts with the same durability.

    python bench/accept.py                          # both modes, 3 rounds of 10 s (issue 6's figure)
    python bench/accept.py --mode queued --rounds 1 --duration 3

Starts ``lamina serve`` (``lamina_server.py``), creates a no-op python3.11 function and drives
signed ``X-Amz-Invocation-Type: Event`` invokes at it with wrk (``invoke.lua``, expecting 202) at
16 connections for ``--duration`` seconds: accepted events/s (202s per second) and the p50/p99 of
the 202 at the client.  Any answer that is not a 202 makes the round an error (never benchmarked).

Two modes (``--mode``, default both, each with its own server):

* ``queued``: the function has ReservedConcurrentExecutions=0, so accepted events only accumulate
  in the durable queue (they are throttled, held back, never run): the accept path alone.  After
  the run the queue's row count is checked against the 202s (every 202 must be a row).
* ``processing``: no reservation; the events run (no-op handler) while others are accepted, so
  the accept path shares the two vCPUs with the dispatcher and the environments: the realistic case.

The floor, measured in alternating rounds in the same run: lamina's own group commit without
lamina.  One asyncio loop, 16 producer coroutines (one per connection, closed loop: each submits
one row and waits until it is durable before the next, as a wrk connection waits for its 202),
one writer thread that takes every pending row, INSERTs them with ``executemany`` and COMMITs once
(one fsync per batch) -- the same shape as ``AsyncQueue._commit_loop`` + ``enqueue_events``, but
raw ``sqlite3``: no HTTP, no SigV4, no SQLAlchemy.  Same disk (a temp dir beside the server's data
dir), same schema (``lamina.store.db.async_events``, its index included), same pragmas
(``journal_mode=WAL``, ``synchronous=FULL``, as ``lamina.store.db.sqlite_engine``), same row.
That is the fair floor: 16 threads each committing their own insert would measure fsyncs per
second (SQLite serialises writers), a design lamina deliberately does not have; that figure is
printed for information ("commit per insert").

Prints a table, writes bench/results/accept.json; exits 1 when the target (>= 5,000 accepted
events/s at 16 connections, on the queued mode) is missed or a figure could not be measured.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from client import percentile, print_rows, sign_invoke  # noqa: E402
from lamina_server import LaminaServer  # noqa: E402

RESULTS = BENCH_DIR / "results" / "accept.json"
LUA_SCRIPT = BENCH_DIR / "invoke.lua"
WRK_RE = re.compile(r"BENCH_RESULT (.*)")
TARGET = 5000.0
FUNCTION = "bench-accept-noop"
ARN = f"arn:aws:lambda:us-east-1:000000000000:function:{FUNCTION}"


def log(msg: str) -> None:
    print(f"[accept {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- lamina side (wrk)
def run_wrk(
    url: str, request_file: Path, duration_s: float, connections: int, threads: int
) -> dict[str, Any]:
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration_s:g}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA_SCRIPT),
        url,
        "--",
        str(request_file),
        "202",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 60, check=False)
    out = proc.stdout + proc.stderr
    match = WRK_RE.search(out)
    if proc.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed (exit {proc.returncode}): {out[-800:]}")
    fields = {k: int(v) for k, v in (kv.split("=", 1) for kv in match.group(1).split())}
    keys = ("non200", "function_errors", "connect_errors", "read_errors", "write_errors", "timeouts")
    bad = {("non202" if k == "non200" else k): fields[k] for k in keys if fields[k]}
    first_bad = re.search(r"BENCH_FIRST_BAD (.*)", out)
    return {
        "eps": fields["responses"] / (fields["duration_us"] / 1e6),
        "accepted": fields["responses"],
        "p50_ms": fields["p50_us"] / 1000,
        "p99_ms": fields["p99_us"] / 1000,
        "bad": bad,
        "first_bad": first_bad.group(1)[:300] if first_bad else None,
    }


def queued_rows(server: LaminaServer) -> int:
    db = sqlite3.connect(f"file:{server.data_dir / 'lamina.sqlite3'}?mode=ro", uri=True, timeout=10)
    try:
        return int(db.execute("SELECT count(*) FROM async_events").fetchone()[0])
    finally:
        db.close()


# --------------------------------------------------------------------------- the floor
def floor_db(directory: Path) -> Path:
    """A database with lamina's schema (tables and indexes), created by lamina's own engine."""
    from lamina.store.db import sqlite_engine

    path = directory / "floor.sqlite3"
    sqlite_engine(path).dispose()
    return path


def floor_connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute("PRAGMA foreign_keys=ON")
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    return conn


INSERT = (
    "INSERT INTO async_events (request_id, region, function_name, qualifier, invoked_arn, payload,"
    " client_context, received_at, state, attempts, not_before, system_errors)"
    " VALUES (?, 'us-east-1', ?, '$LATEST', ?, ?, NULL, ?, 'queued', 0, 0, 0)"
)


def row() -> tuple[Any, ...]:
    return (str(uuid.uuid4()), FUNCTION, ARN, b"{}", time.time())


async def floor_group_commit(path: Path, duration_s: float, connections: int) -> dict[str, Any]:
    """16 closed-loop producers, one writer thread: batch INSERT + one COMMIT per batch."""
    conn = floor_connect(path)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="floor-writer")
    loop = asyncio.get_running_loop()
    pending: list[tuple[tuple[Any, ...], asyncio.Future[None]]] = []
    have = asyncio.Event()
    batches: list[int] = []

    def commit(rows: list[tuple[Any, ...]]) -> None:
        conn.execute("BEGIN")
        conn.executemany(INSERT, rows)
        conn.execute("COMMIT")

    async def writer() -> None:
        nonlocal pending
        while True:
            await have.wait()
            have.clear()
            batch, pending = pending, []
            if not batch:
                continue
            await loop.run_in_executor(executor, commit, [r for r, _ in batch])
            batches.append(len(batch))
            for _, fut in batch:
                fut.set_result(None)

    latencies: list[float] = []
    perf = time.perf_counter
    start = perf()
    end = start + duration_s

    async def producer() -> None:
        while perf() < end:
            t0 = perf()
            fut = loop.create_future()
            pending.append((row(), fut))
            have.set()
            await fut
            latencies.append((perf() - t0) * 1000)

    w = loop.create_task(writer())
    await asyncio.gather(*(producer() for _ in range(connections)))
    elapsed = perf() - start
    w.cancel()
    executor.shutdown(wait=True)
    conn.close()
    return {
        "eps": len(latencies) / elapsed,
        "accepted": len(latencies),
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "mean_batch": statistics.fmean(batches) if batches else 0.0,
    }


def floor_commit_per_insert(path: Path, duration_s: float, connections: int) -> dict[str, Any]:
    """For information: ``connections`` threads, each its own connection, one COMMIT per insert."""
    latencies: list[list[float]] = [[] for _ in range(connections)]
    perf = time.perf_counter
    barrier = threading.Barrier(connections + 1)
    end = [0.0]

    def worker(i: int) -> None:
        conn = floor_connect(path)
        conn.execute("PRAGMA busy_timeout=60000")  # 16 writers on one lock: some wait long
        barrier.wait()
        while perf() < end[0]:
            t0 = perf()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(INSERT, row())
            conn.execute("COMMIT")
            latencies[i].append((perf() - t0) * 1000)
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    start = perf()
    end[0] = start + duration_s
    barrier.wait()
    for t in threads:
        t.join()
    elapsed = perf() - start
    flat = [v for lat in latencies for v in lat]
    return {
        "eps": len(flat) / elapsed,
        "accepted": len(flat),
        "p50_ms": percentile(flat, 50),
        "p99_ms": percentile(flat, 99),
    }


# --------------------------------------------------------------------------- one mode
def bench_mode(mode: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"mode": mode, "lamina": [], "floor": [], "errors": []}
    with LaminaServer() as server:
        client = server.client()
        server.create_noop(client, FUNCTION)
        client.get_waiter("function_active_v2").wait(FunctionName=FUNCTION)
        if mode == "queued":
            client.put_function_concurrency(FunctionName=FUNCTION, ReservedConcurrentExecutions=0)
        req = sign_invoke(
            server.endpoint, FUNCTION, server.access_key, server.secret_key, invocation_type="Event"
        )
        request_file = tmp / f"event-{mode}.http"
        request_file.write_bytes(req.wrk_file())
        fdir = Path(tempfile.mkdtemp(prefix="lamina-bench-floor-", dir=server.data_dir.parent))
        try:
            fpath = floor_db(fdir)
            # Warm-up, not counted: page cache, the server's first requests, the floor's file.
            run_wrk(server.endpoint, request_file, 2, args.connections, args.threads)
            asyncio.run(floor_group_commit(fpath, 1, args.connections))
            for r in range(args.rounds):
                for side in ("floor", "lamina") if r % 2 == 0 else ("lamina", "floor"):
                    if side == "lamina":
                        try:
                            res = run_wrk(
                                server.endpoint, request_file, args.duration, args.connections, args.threads
                            )
                        except (RuntimeError, subprocess.TimeoutExpired) as exc:
                            out["errors"].append(f"round {r + 1}: {exc}")
                            continue
                        if res["bad"]:
                            out["errors"].append(f"round {r + 1}: {res['bad']} first: {res['first_bad']}")
                            continue
                    else:
                        res = asyncio.run(floor_group_commit(fpath, args.duration, args.connections))
                    out[side].append(res)
                    extra = f" mean batch {res['mean_batch']:.1f}" if "mean_batch" in res else ""
                    log(
                        f"{mode} round {r + 1} {side:6s} {res['eps']:8.0f} events/s "
                        f"p50 {res['p50_ms']:.2f} ms p99 {res['p99_ms']:.2f} ms (n={res['accepted']}){extra}"
                    )
            if args.per_insert:
                res = floor_commit_per_insert(fpath, min(args.duration, 5), args.connections)
                out["per_insert"] = res
                log(f"{mode} commit-per-insert floor {res['eps']:.0f} inserts/s p50 {res['p50_ms']:.2f} ms")
        finally:
            shutil.rmtree(fdir, ignore_errors=True)
        if mode == "queued" and out["lamina"]:
            time.sleep(0.5)
            rows = queued_rows(server)
            accepted = sum(r["accepted"] for r in out["lamina"])  # + the warm-up's, not counted
            out["rows_in_queue"] = rows
            if rows < accepted:
                out["errors"].append(f"only {rows} rows in the queue for {accepted} counted 202s")
        if out["errors"]:
            out["server_log_tail"] = server.log_tail(30)
    return out


def median(rounds: list[dict[str, Any]], key: str) -> float | None:
    return statistics.median(r[key] for r in rounds) if rounds else None


def summarize_mode(m: dict[str, Any]) -> dict[str, Any]:
    s: dict[str, Any] = {}
    for key in ("eps", "p50_ms", "p99_ms"):
        s[key] = {"lamina": median(m["lamina"], key), "floor": median(m["floor"], key)}
    ratios = [a["eps"] / b["eps"] for a, b in zip(m["lamina"], m["floor"], strict=False) if b["eps"]]
    s["eps"]["ratio"] = statistics.median(ratios) if ratios else None
    s["floor_mean_batch"] = median(m["floor"], "mean_batch")
    return s


def print_table(modes: list[dict[str, Any]], connections: int) -> bool:
    rows = [("figure", "lamina", "floor", "ratio", "target", "result")]
    passed = True
    for m in modes:
        s = m["summary"]
        eps = s["eps"]
        lam = eps["lamina"]
        gated = m["mode"] == "queued"
        if gated:
            ok = lam is not None and lam >= TARGET and not m["errors"]
            passed = passed and ok
            verdict, target = (
                ("PASS" if ok else "MISSED" if lam is not None else "FAIL"),
                f">= {TARGET:,.0f}/s",
            )
        else:
            verdict, target = ("ERROR" if m["errors"] else "info"), "-"
        ratio = f"{eps['ratio']:.2f}x" if eps["ratio"] else "-"

        def f(v: float | None, spec: str) -> str:
            return "-" if v is None else format(v, spec)

        rows.append(
            (
                f"{m['mode']}: accepted events/s, {connections} conns",
                f(lam, ",.0f"),
                f(eps["floor"], ",.0f"),
                ratio,
                target,
                verdict,
            )
        )
        for key, label in (("p50_ms", "p50"), ("p99_ms", "p99")):
            v = s[key]
            rows.append(
                (
                    f"{m['mode']}: {label} of the 202 (ms)",
                    f(v["lamina"], ".2f"),
                    f(v["floor"], ".2f"),
                    "-",
                    "-",
                    "info",
                )
            )
        if "per_insert" in m:
            p = m["per_insert"]
            rows.append(
                (f"{m['mode']}: floor, commit per insert (info)", "-", f(p["eps"], ",.0f"), "-", "-", "info")
            )
    print_rows(rows)
    print(
        "\nfloor: raw sqlite3, lamina's schema and pragmas (WAL, synchronous=FULL) on the same disk,"
        f" {connections} closed-loop producers and one writer doing lamina's group commit (one COMMIT"
        " per batch of everything pending); figures are medians over rounds, the ratio the median"
        " of per-round lamina/floor"
    )
    for m in modes:
        if "rows_in_queue" in m:
            print(f"{m['mode']}: {m['rows_in_queue']} rows in the durable queue after the run")
        for e in m["errors"]:
            print(f"ERROR ({m['mode']}): {e}")
    return passed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=["queued", "processing", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per round and side")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--no-per-insert", dest="per_insert", action="store_false")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 1
    started = dt.datetime.now(dt.UTC)
    modes = ["queued", "processing"] if args.mode == "both" else [args.mode]
    tmp = Path(tempfile.mkdtemp(prefix="lamina-bench-accept-"))
    results = []
    try:
        for mode in modes:
            log(f"mode {mode}")
            m = bench_mode(mode, args, tmp)
            m["summary"] = summarize_mode(m)
            results.append(m)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    passed = print_table(results, args.connections)
    out = {
        "date": started.isoformat(timespec="seconds"),
        "duration_s": round((dt.datetime.now(dt.UTC) - started).total_seconds(), 1),
        "cpus": len(os.sched_getaffinity(0)),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "target_events_per_s": TARGET,
        "modes": results,
        "passed": passed,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {args.output}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
