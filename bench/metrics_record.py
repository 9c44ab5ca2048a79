"""What recording one invocation's metrics costs on the invoke path, beside a floor.

    .venv/bin/python bench/metrics_record.py

Times exactly what ``InvocationService.invoke`` does per invoke (series lookup, enter, leave,
done) with timeit, and an empty function call as the floor, best of 5 rounds of 1M each.
"""

from __future__ import annotations

import timeit

from lamina.protocol.cloudwatch_wire import protocol_of
from lamina.telemetry.metrics import MetricsRegistry

N = 1_000_000
ARN = "arn:aws:lambda:us-east-1:123456789012:function:hello"


def main() -> None:
    registry = MetricsRegistry()

    def record() -> None:
        series = registry.series(ARN, "$LATEST")
        series.enter()
        series.running -= 1
        series.done(0.35, None, False)

    def floor() -> None:
        pass

    path, hmap = (
        b"/2015-03-31/functions/hello/invocations",
        {b"host": b"h", b"content-type": b"application/json"},
    )

    def route() -> None:
        _ = path == b"/metrics" or protocol_of("POST", path, hmap)

    for name, fn in (
        ("record one invoke", record),
        ("routing check per request", route),
        ("floor (empty call)", floor),
    ):
        best = min(timeit.repeat(fn, number=N, repeat=5)) / N * 1e6
        print(f"{name:28s} {best:6.3f} us")


if __name__ == "__main__":
    main()
