"""The benchmark's client side: pre-signed Invoke requests, a keep-alive replay client, percentiles.

The same code drives lamina and the floor server, so any cost it adds is paid by both.  It is
deliberately minimal: one blocking socket (TCP_NODELAY), the request sent as pre-built bytes, the
response read by Content-Length.  No HTTP library sits between the timer and the socket.
"""

from __future__ import annotations

import gc
import socket
import statistics
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

REGION = "us-east-1"
_MAX_HEAD = 64 * 1024


# --------------------------------------------------------------------------- signed requests
@dataclass(frozen=True)
class SignedRequest:
    """One SigV4-signed request, as fields (for wrk) and as the exact bytes to replay."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @property
    def raw(self) -> bytes:
        lines = [f"{self.method} {self.path} HTTP/1.1"]
        lines.extend(f"{k}: {v}" for k, v in self.headers)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body

    def wrk_file(self) -> bytes:
        """The format ``bench/invoke.lua`` reads: request line, header lines, blank line, body."""
        return self.raw


def sign_invoke(
    endpoint: str,
    function_name: str,
    access_key: str,
    secret_key: str,
    *,
    payload: bytes = b"{}",
    log_tail: bool = False,
    region: str = REGION,
    invocation_type: str = "RequestResponse",
) -> SignedRequest:
    """An Invoke (RequestResponse unless ``invocation_type`` says Event or DryRun) signed exactly as
    botocore signs it (valid for 15 minutes)."""
    quoted = urllib.parse.quote(function_name, safe="")
    url = f"{endpoint.rstrip('/')}/2015-03-31/functions/{quoted}/invocations"
    netloc = urllib.parse.urlsplit(url).netloc
    headers = {
        "Host": netloc,
        "Content-Type": "application/json",
        "Content-Length": str(len(payload)),
        "X-Amz-Invocation-Type": invocation_type,
    }
    if log_tail:
        headers["X-Amz-Log-Type"] = "Tail"
    request = AWSRequest(method="POST", url=url, data=payload, headers=headers)
    SigV4Auth(Credentials(access_key, secret_key), "lambda", region).add_auth(request)
    path = urllib.parse.urlsplit(url).path
    return SignedRequest("POST", path, tuple((k, str(v)) for k, v in request.headers.items()), payload)


def retarget(req: SignedRequest, endpoint: str) -> SignedRequest:
    """The same request aimed at another server (the floor does not check signatures)."""
    netloc = urllib.parse.urlsplit(endpoint).netloc
    headers = tuple((k, netloc if k.lower() == "host" else v) for k, v in req.headers)
    return SignedRequest(req.method, req.path, headers, req.body)


# --------------------------------------------------------------------------- the replay client
@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def problem(self) -> str | None:
        """Why this is not a successful invoke, or None: non-200, or a function error."""
        if self.status != 200:
            return f"HTTP {self.status}: {self.body[:300]!r}"
        fn_error = self.headers.get("x-amz-function-error")
        if fn_error:
            return f"FunctionError={fn_error}: {self.body[:300]!r}"
        return None


class KeepAliveClient:
    """One HTTP/1.1 keep-alive connection; ``send`` writes bytes and reads one response."""

    def __init__(self, host: str, port: int, *, timeout: float = 30.0) -> None:
        self._sock = socket.create_connection((host, port), timeout=timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = bytearray()

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> KeepAliveClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fill(self) -> None:
        chunk = self._sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self._buf += chunk

    def send(self, raw: bytes) -> Response:
        self._sock.sendall(raw)
        buf = self._buf
        while (end := buf.find(b"\r\n\r\n")) < 0:
            if len(buf) > _MAX_HEAD:
                raise ConnectionError("response head too large")
            self._fill()
        lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
        del buf[: end + 4]
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise ConnectionError(f"bad status line {lines[0]!r}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" not in headers:
            raise ConnectionError(f"response without Content-Length: {headers}")
        length = int(headers["content-length"])
        while len(buf) < length:
            self._fill()
        body = bytes(buf[:length])
        del buf[:length]
        if headers.get("connection", "").lower() == "close":
            raise ConnectionError("server closed the keep-alive connection")
        return Response(int(parts[1]), headers, body)


@dataclass
class ReplayResult:
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    aborted: str | None = None

    @property
    def ok(self) -> bool:
        return self.errors == 0 and self.aborted is None


def replay(
    host: str,
    port: int,
    raw: bytes,
    count: int,
    *,
    warmup: int = 0,
    deadline_s: float = 120.0,
    max_errors: int = 20,
    timeout: float = 30.0,
) -> ReplayResult:
    """Send ``raw`` ``warmup + count`` times on one connection; time the last ``count``.

    Bounded: stops at ``deadline_s`` of wall clock or after ``max_errors`` failed invokes.
    The garbage collector is paused while timing so the client's own pauses do not show up.
    """
    result = ReplayResult()
    end = time.monotonic() + deadline_s
    perf = time.perf_counter_ns
    gc_was_enabled = gc.isenabled()
    try:
        with KeepAliveClient(host, port, timeout=timeout) as client:
            gc.disable()
            for i in range(warmup + count):
                t0 = perf()
                resp = client.send(raw)
                dt = perf() - t0
                problem = resp.problem()
                if problem is not None:
                    result.errors += 1
                    if len(result.error_samples) < 5:
                        result.error_samples.append(problem)
                    if result.errors >= max_errors:
                        result.aborted = f"{result.errors} failed invokes"
                        break
                elif i >= warmup:
                    result.latencies_ms.append(dt / 1e6)
                if not i & 63 and time.monotonic() > end:
                    result.aborted = f"deadline of {deadline_s:.0f}s reached after {i + 1} requests"
                    break
    except OSError as exc:  # ConnectionError, timeouts
        result.aborted = f"{type(exc).__name__}: {exc}"
    finally:
        if gc_was_enabled:
            gc.enable()
    return result


# --------------------------------------------------------------------------- output
def print_rows(rows: Sequence[Sequence[str]]) -> None:
    """The benches' tables: the first row is the header (underlined), the first column left-aligned,
    the others right-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print(
            "  ".join(
                c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if i == 0:
            print("  ".join("-" * w for w in widths))


# --------------------------------------------------------------------------- statistics
def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear interpolation between closest ranks."""
    if not values:
        raise ValueError("no values")
    data = sorted(values)
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def summarize(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": float(len(values)),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "mean": statistics.fmean(values),
        "min": min(values),
        "max": max(values),
    }


def median_of(rounds: Sequence[Mapping[str, float]], key: str) -> float:
    """The median over rounds of one statistic (e.g. the median of the round p50s)."""
    return statistics.median(r[key] for r in rounds)


def wait_http_ok(host: str, port: int, path: str, *, timeout: float = 30.0) -> bool:
    """Poll ``GET path`` until it answers 200 or ``timeout`` passes."""
    raw = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with KeepAliveClient(host, port, timeout=2.0) as client:
                if client.send(raw).status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
