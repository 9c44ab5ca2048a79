"""Burst: N concurrent first invokes of N different functions, end to end at the client.

    python bench/burst.py                  # 200 functions (issue 5's figure)
    python bench/burst.py --count 50 --memory 256

Starts ``lamina serve`` (``lamina_server.py``), creates ``--count`` python3.11 functions (each
with its own zip, so each gets its own code dir, as distinct functions do), then releases one
thread per function at once (a barrier), each sending one signed RequestResponse Invoke on its
own connection -- every one a cold start, all at the same time.  Reports how many answered 200
without a function error (the target: all of them), the p50/p99/max of the client-side latency,
the wall time of the whole burst, and the REPORT lines' Init Duration p50 (LogType Tail).

Writes bench/results/burst.json.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import re
import statistics
import sys
import threading
import time
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from client import KeepAliveClient, percentile, sign_invoke  # noqa: E402
from lamina_server import ROLE, LaminaServer  # noqa: E402

RESULTS = BENCH_DIR / "results" / "burst.json"
INIT_RE = re.compile(r"Init Duration: ([0-9.]+) ms")


def function_zip(i: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("app.py", f"N = {i}\ndef handler(event, context):\n    return {{'n': N}}\n")
    return buf.getvalue()


def create_functions(server: LaminaServer, count: int, memory_mb: int) -> list[str]:
    client = server.client()
    prefix = f"burst-{uuid.uuid4().hex[:6]}"
    names = [f"{prefix}-{i:04d}" for i in range(count)]

    def one(i: int) -> None:
        client.create_function(
            FunctionName=names[i],
            Runtime="python3.11",
            Role=ROLE,
            Handler="app.handler",
            Code={"ZipFile": function_zip(i)},
            MemorySize=memory_mb,
            Timeout=30,
        )

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(count)))
    return names


def burst(server: LaminaServer, names: list[str]) -> list[dict[str, Any]]:
    key, secret = server.access_key, server.secret_key
    requests = [sign_invoke(server.endpoint, n, key, secret, log_tail=True).raw for n in names]
    host, port = "127.0.0.1", server.port
    clients = [KeepAliveClient(host, port, timeout=120) for _ in names]  # connected before the start
    barrier = threading.Barrier(len(names))
    results: list[dict[str, Any]] = [{} for _ in names]

    def one(i: int) -> None:
        barrier.wait()
        t0 = time.perf_counter()
        try:
            resp = clients[i].send(requests[i])
        except Exception as exc:
            results[i] = {"ok": False, "problem": repr(exc), "ms": (time.perf_counter() - t0) * 1000}
            return
        ms = (time.perf_counter() - t0) * 1000
        tail = base64.b64decode(resp.headers.get("x-amz-log-result", "")).decode(errors="replace")
        init = INIT_RE.search(tail)
        results[i] = {
            "ok": resp.problem() is None,
            "problem": resp.problem(),
            "ms": ms,
            "init_ms": float(init.group(1)) if init else None,
        }

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(names))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in clients:
        c.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--memory", type=int, default=128, help="MemorySize of each function")
    parser.add_argument("--ratio", type=float, default=None, help="LAMINA_OVERCOMMIT_RATIO for the run")
    args = parser.parse_args()
    env = {} if args.ratio is None else {"LAMINA_OVERCOMMIT_RATIO": str(args.ratio)}
    with LaminaServer(extra_env=env) as server:
        t0 = time.perf_counter()
        names = create_functions(server, args.count, args.memory)
        created_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        results = burst(server, names)
        wall_ms = (time.perf_counter() - t0) * 1000
        if not all(r.get("ok") for r in results):
            print(server.log_tail(15))
    ok = [r for r in results if r.get("ok")]
    latencies = [r["ms"] for r in results if "ms" in r]
    inits = [r["init_ms"] for r in ok if r.get("init_ms") is not None]
    problems = sorted({str(r.get("problem")) for r in results if not r.get("ok")})
    summary = {
        "count": args.count,
        "memory_mb": args.memory,
        "ratio": args.ratio,
        "ok": len(ok),
        "errors": args.count - len(ok),
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies),
        "wall_ms": wall_ms,
        "init_p50_ms": statistics.median(inits) if inits else None,
        "cold": len(inits),
        "problems": problems[:5],
        "create_s": created_s,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=2))
    print(f"burst of {args.count} first invokes of {args.count} functions ({args.memory} MB each)")
    print(f"  ok {len(ok)}/{args.count}  (cold starts: {len(inits)})")
    p50, p99, top = summary["p50_ms"], summary["p99_ms"], summary["max_ms"]
    print(f"  latency p50 {p50:.1f} ms  p99 {p99:.1f} ms  max {top:.1f} ms")
    print(f"  whole burst {wall_ms:.0f} ms; Init Duration p50 {summary['init_p50_ms']} ms")
    for p in problems[:5]:
        print(f"  problem: {p}")
    return 0 if len(ok) == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
