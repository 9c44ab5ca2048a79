"""Log capture from an environment's stdout/stderr pipe, and Lambda's own log lines.

The environment's fds 1 and 2 are the write end of one pipe; the engine holds the read end,
non-blocking, watched by the event loop (so a chatty function never blocks on a full pipe).
The bootstrap flushes before it sends a frame and then asks the kernel how many bytes of the pipe
are still unread (FIONREAD on its own copy of the write end); the frame carries that count.  If it
is not zero the engine calls ``drain()`` on the frame, so everything written before the result is
in hand -- deterministically, no sleeps, whoever wrote it (Python, C code, a subprocess).  If it
is zero, the loop's reader callback has already read it all, and the engine skips a read that
could only answer EAGAIN.

Attribution: each line becomes one LogEvent in ``pending``; the engine takes them per
invocation.  Lines written while an environment is idle (a background thread) are delivered
with the next invocation, right after its START line.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from datetime import UTC, datetime
from typing import Any

from lamina.execution.types import InvocationOutcome, LogEvent
from lamina.telemetry.linesplit import LineSplitter

READ_CHUNK = 256 * 1024


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def log_stream_name(version: str, env_id: str, created: datetime) -> str:
    """``YYYY/MM/DD/[$LATEST]<32 hex>`` with the UTC date of the environment's creation."""
    return f"{created.astimezone(UTC):%Y/%m/%d}/[{version}]{env_id}"


def runtime_version(runtime: str) -> str:
    """AWS's ``python:3.12.v1``, ``nodejs:20.v1``, ``provided:al2023.v1`` naming."""
    if runtime.startswith("nodejs"):
        return "nodejs:" + runtime.removeprefix("nodejs").removesuffix(".x") + ".v1"
    if runtime.startswith("provided"):
        return "provided:" + (runtime.partition(".")[2] or "al") + ".v1"
    return runtime.replace("python", "python:") + ".v1"


def runtime_version_arn(runtime: str, region: str) -> str:
    return f"arn:aws:lambda:{region}::runtime:lamina-{runtime}"


def init_start_line(runtime: str, region: str) -> str:
    arn = runtime_version_arn(runtime, region)
    return f"INIT_START Runtime Version: {runtime_version(runtime)}\tRuntime Version ARN: {arn}"


# The last second formatted by iso_time: [epoch second, its text].  Event-loop thread only.
_LAST_SECOND: list[Any] = [-1, ""]


def iso_time(ms: int) -> str:
    """``2024-01-01T00:00:00.000Z``: the ``time`` of platform records (Telemetry API, JSON logs).

    The seconds part is formatted once per second (0.3 us instead of 1.9 for a datetime)."""
    second, milli = divmod(ms, 1000)
    cached = _LAST_SECOND
    if cached[0] != second:
        cached[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        cached[0] = second
    return f"{cached[1]}.{milli:03d}Z"


def invocation_status(outcome: InvocationOutcome) -> str:
    """The ``status`` of an invocation's platform records: success, error, timeout, failure."""
    if outcome.function_error is None:
        return "success"
    report = outcome.log_events[-1].message if outcome.log_events else ""
    return "timeout" if "Status: timeout" in report else "error" if "Status: error" in report else "failure"


def billed_ms(duration_ms: float) -> int:
    billed = math.ceil(duration_ms)
    return billed if billed > 1 else 1


def report_line(
    *,
    request_id: str,
    duration_ms: float,
    memory_mb: int,
    max_used_mb: int,
    init_ms: float | None = None,
    status: str | None = None,
    error_type: str | None = None,
    billed: int | None = None,
) -> str:
    if billed is None:
        billed = billed_ms(duration_ms)
    line = (
        f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\tBilled Duration: {billed} ms\t"
        f"Memory Size: {memory_mb} MB\tMax Memory Used: {max_used_mb} MB\t"
    )  # AWS ends its REPORT line with a tab
    if init_ms is not None:
        line += f"Init Duration: {init_ms:.2f} ms\t"
    if status is not None:
        line += f"Status: {status}\t"
    if error_type is not None:
        line += f"Error Type: {error_type}\t"
    return line


def init_report_line(*, init_ms: float, status: str, error_type: str | None) -> str:
    line = f"INIT_REPORT Init Duration: {init_ms:.2f} ms\tPhase: init\tStatus: {status}"
    return line + (f"\tError Type: {error_type}" if error_type else "")


def timeout_line(request_id: str, timeout_s: float) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return f"{stamp} {request_id} Task timed out after {timeout_s:.2f} seconds"


READ_PAUSE_S = 0.002  # after the pipe wakes us, how long it may fill before we watch it again


class LogCapture:
    """Reads one environment's log pipe into LogEvents (one per line, '\\n' stripped).

    A pipe wakes its reader on every write, and a handler printing ten lines would wake the event
    loop ten times per invocation (a context switch and a read each: measured 7.8 server wake-ups
    per invoke).  So once the pipe has woken us, it is not watched for READ_PAUSE_S: what is
    written meanwhile waits in the pipe (64 KB) and is read in one go -- when the pause ends, or at
    once when the environment's frame says bytes are unread (the engine calls ``drain``).
    """

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd
        self._splitter = LineSplitter()  # lines over 256 KB cut; linear however long a line runs
        self.pending: list[LogEvent] = []
        os.set_blocking(fd, False)
        self._loop = asyncio.get_running_loop()
        self._watched = True
        self._loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        if self._fd is None or not self._watched:
            return
        self._watched = False
        self._loop.remove_reader(self._fd)
        self._loop.call_later(READ_PAUSE_S, self._watch)

    def _watch(self) -> None:
        """The pause is over: read what came meanwhile, and watch the pipe again."""
        if self._fd is None or self._watched:
            return
        self.drain()
        if self._fd is not None:  # not at EOF
            self._watched = True
            self._loop.add_reader(self._fd, self._readable)

    def add(self, message: str) -> None:
        self.pending.append(LogEvent(now_ms(), message))

    def drain(self) -> None:
        """Read what the pipe holds.  A read shorter than READ_CHUNK emptied it: no second read to
        learn so (EAGAIN costs a system call and an exception on every invocation that logs);
        bytes written after it make the pipe readable again and bring us back."""
        fd = self._fd
        while fd is not None:
            try:
                data = os.read(fd, READ_CHUNK)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._eof()
                return
            self._lines(data)
            if len(data) < READ_CHUNK:
                return

    def _lines(self, data: bytes) -> None:
        stamp = now_ms()
        lines = self._splitter.feed(data)
        self.pending.extend(LogEvent(stamp, line.decode("utf-8", "replace")) for line in lines)

    def flush_partial(self) -> None:
        """A last line without '\\n' is still one event."""
        rest = self._splitter.flush()
        if rest:
            self.add(rest.decode("utf-8", "replace"))

    def take(self) -> list[LogEvent]:
        events, self.pending = self.pending, []
        return events

    def _eof(self) -> None:
        self.flush_partial()
        self.close()

    def close(self) -> None:
        if self._fd is not None:
            if self._watched:
                self._loop.remove_reader(self._fd)
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
