"""SQS event source mapping throughput beside the floor of the same poll-and-delete loop.

    python bench/sqs.py                      # 3 rounds of 3,000 messages (issue 9's figure)
    python bench/sqs.py --messages 1000 --rounds 1

Starts moto's server (the SQS peer) and ``lamina serve`` pointed at it, then per round:

* **floor**: the same work without a function -- ``pollers`` threads each long-polling
  ReceiveMessage for 10 messages and deleting them with DeleteMessageBatch, until the queue is
  empty.  That is what a mapping's pollers must do at least (against the same moto).
* **lamina**: a no-op python3.11 function and an event source mapping (BatchSize 10,
  MaximumConcurrency = ``pollers``) on a queue holding the same number of messages; the clock
  runs from the mapping's creation until the queue is empty (visible and in flight).

Messages/s of each, and the ratio (median of the per-round ratios; sides alternate which goes
first).  Target: >= 0.7x the floor.  Prints a table, writes bench/results/sqs.json, exits 1 when
the target is missed or a figure could not be measured.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import boto3  # noqa: E402

from client import free_port, print_rows  # noqa: E402
from lamina_server import LaminaServer  # noqa: E402

RESULTS = BENCH_DIR / "results" / "sqs.json"
TARGET = 0.7
REGION = "us-east-1"


def log(msg: str) -> None:
    print(f"[sqs {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class MotoServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1):
                    return
            except OSError:
                time.sleep(0.05)  # poll-with-timeout for the port to open
        raise RuntimeError("moto did not start")

    def sqs(self) -> Any:
        return boto3.client(
            "sqs", endpoint_url=self.url, region_name=REGION, aws_access_key_id="t", aws_secret_access_key="t"
        )

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def fill(sqs: Any, name: str, count: int) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for start in range(0, count, 10):
        entries = [
            {"Id": str(i), "MessageBody": json.dumps({"n": start + i})} for i in range(min(10, count - start))
        ]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)
    return url, arn


def remaining(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def floor_round(moto: MotoServer, name: str, count: int, pollers: int) -> float:
    setup = moto.sqs()
    url, _ = fill(setup, name, count)
    done = [0]
    lock = threading.Lock()

    def poll() -> None:
        sqs = moto.sqs()
        while True:
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
                "Messages", []
            )
            if not got:
                return
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)]
            sqs.delete_message_batch(QueueUrl=url, Entries=entries)
            with lock:
                done[0] += len(got)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=poll) for _ in range(pollers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if done[0] != count:
        raise RuntimeError(f"floor deleted {done[0]} of {count}")
    return count / elapsed


def lamina_round(server: LaminaServer, moto: MotoServer, name: str, count: int, pollers: int) -> float:
    sqs = moto.sqs()
    url, arn = fill(sqs, name, count)
    lam = server.client()
    fn = f"sqs-bench-{name}"
    server.create_noop(lam, fn)
    lam.get_waiter("function_active_v2").wait(FunctionName=fn)
    lam.invoke(FunctionName=fn, Payload=b"{}")  # warm one environment first, as the floor has no cold start
    t0 = time.perf_counter()
    mapping = lam.create_event_source_mapping(
        EventSourceArn=arn, FunctionName=fn, BatchSize=10, ScalingConfig={"MaximumConcurrency": pollers}
    )
    deadline = time.monotonic() + 600
    while remaining(sqs, url) and time.monotonic() < deadline:
        time.sleep(0.05)  # poll-with-timeout: the queue drains at the pollers' pace
    elapsed = time.perf_counter() - t0
    lam.delete_event_source_mapping(UUID=mapping["UUID"])
    if remaining(sqs, url):
        raise RuntimeError("lamina did not drain the queue in 10 minutes")
    return count / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pollers", type=int, default=2, help="concurrent pollers on each side")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    moto = MotoServer()
    lamina_rates: list[float] = []
    floor_rates: list[float] = []
    error = None
    try:
        with LaminaServer(
            extra_env={
                "AWS_ENDPOINT_URL_SQS": moto.url,
                "AWS_ACCESS_KEY_ID": "t",
                "AWS_SECRET_ACCESS_KEY": "t",
            }
        ) as server:
            for r in range(args.rounds):
                sides = ("floor", "lamina") if r % 2 == 0 else ("lamina", "floor")
                for side in sides:
                    name = f"r{r}-{side}"
                    if side == "floor":
                        rate = floor_round(moto, name, args.messages, args.pollers)
                        floor_rates.append(rate)
                    else:
                        rate = lamina_round(server, moto, name, args.messages, args.pollers)
                        lamina_rates.append(rate)
                    log(f"round {r + 1} {side:6s} {rate:,.0f} messages/s")
    except Exception as exc:  # reported, never benchmarked
        error = f"{type(exc).__name__}: {exc}"
    finally:
        moto.stop()
    ratios = [a / b for a, b in zip(lamina_rates, floor_rates, strict=False) if b]
    ratio = statistics.median(ratios) if ratios else None
    passed = error is None and ratio is not None and ratio >= TARGET
    lamina = statistics.median(lamina_rates) if lamina_rates else None
    floor = statistics.median(floor_rates) if floor_rates else None
    print_rows(
        [
            ("figure", "lamina", "floor", "ratio", "target", "result"),
            (
                f"SQS mapping, batch 10, {args.pollers} pollers (messages/s)",
                f"{lamina:,.0f}" if lamina else "-",
                f"{floor:,.0f}" if floor else "-",
                f"{ratio:.2f}x" if ratio else "-",
                f">= {TARGET}x",
                "PASS" if passed else "FAIL",
            ),
        ]
    )
    if error:
        print(f"\nerror: {error}")
    result = {
        "date": started.isoformat(timespec="seconds"),
        "config": vars(args) | {"output": str(args.output)},
        "lamina_rounds": lamina_rates,
        "floor_rounds": floor_rates,
        "ratios": ratios,
        "ratio": ratio,
        "passed": passed,
        "error": error,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.output}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
