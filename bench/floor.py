"""The floor: the least work a Lambda-shaped server can do per invoke, to measure lamina against.

An asyncio HTTP/1.1 server (uvloop when installed) that parses each request, hands its body over
a ``socket.socketpair`` to a warm worker process (forked, one invocation at a time, like a Lambda
execution environment), which decodes it, "calls" a no-op handler and writes the encoded result
back; the server returns that as the response.  Workers are forked on demand when every existing
one is busy (concurrent requests get their own, as Lambda gives them their own environment) and
reused afterwards.  No authentication, no routing, no logs: nothing lamina could skip.

Run standalone:  python bench/floor.py --port 9100   (GET any path -> 200, POST -> invoke)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import uuid
from collections.abc import Callable
from typing import Any

_LEN = struct.Struct("!I")
_HEALTH = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n" + b'{"status":"ok"}'
)


def handler(event: Any, context: Any) -> Any:
    """The same no-op the benchmark deploys to lamina."""
    return None


# --------------------------------------------------------------------------- the worker process
def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    chunks = []
    while n:
        chunk = sock.recv(n)
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _worker_main(sock: socket.socket, fn: Callable[[Any, Any], Any]) -> None:
    """The forked child: read a payload, call the handler, write the result; EOF ends it."""
    while True:
        head = _recv_exact(sock, 4)
        if head is None:
            return
        payload = _recv_exact(sock, _LEN.unpack(head)[0])
        if payload is None:
            return
        result = json.dumps(fn(json.loads(payload), None)).encode()
        sock.sendall(_LEN.pack(len(result)) + result)


class Worker:
    def __init__(self, pid: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.pid = pid
        self.reader = reader
        self.writer = writer

    @classmethod
    async def fork(cls) -> Worker:
        ours, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:  # child: keep only stdio and our end, never touch the parent's event loop
            code = 0
            try:
                keep = theirs.fileno()
                os.closerange(3, keep)
                os.closerange(keep + 1, 65536)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                _worker_main(theirs, handler)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        theirs.close()
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        return cls(pid, reader, writer)

    async def call(self, payload: bytes) -> bytes:
        self.writer.write(_LEN.pack(len(payload)) + payload)
        (n,) = _LEN.unpack(await self.reader.readexactly(4))
        return await self.reader.readexactly(n)

    def stop(self) -> None:
        self.writer.close()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


class WorkerPool:
    def __init__(self) -> None:
        self.idle: list[Worker] = []
        self.all: list[Worker] = []

    async def invoke(self, payload: bytes) -> bytes:
        worker = self.idle.pop() if self.idle else await self._spawn()
        try:
            result = await worker.call(payload)
        except BaseException:
            worker.stop()
            self.all.remove(worker)
            raise
        self.idle.append(worker)
        return result

    async def _spawn(self) -> Worker:
        worker = await Worker.fork()
        self.all.append(worker)
        return worker

    async def prewarm(self) -> None:
        self.idle.append(await self._spawn())

    def close(self) -> None:
        for worker in self.all:
            worker.stop()
        self.all.clear()
        self.idle.clear()


# --------------------------------------------------------------------------- the HTTP server
def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            return int(line[15:])
    return 0


def _response(status: bytes, body: bytes, request_id: str) -> bytes:
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\nContent-Type: application/json\r\nX-Amz-Executed-Version: $LATEST\r\nx-amzn-RequestId: "
        + request_id.encode()
        + b"\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


def make_handler(
    pool: WorkerPool,
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = _content_length(head)
                body = await reader.readexactly(length) if length else b""
                if head.startswith(b"GET "):
                    writer.write(_HEALTH)
                else:
                    request_id = str(uuid.uuid4())
                    try:
                        result = await pool.invoke(body or b"{}")
                        writer.write(_response(b"200 OK", result, request_id))
                    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                        err = json.dumps({"message": f"floor worker failed: {exc}"}).encode()
                        writer.write(_response(b"500 Internal Server Error", err, request_id))
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    return handle


async def serve(host: str, port: int) -> None:
    pool = WorkerPool()
    await pool.prewarm()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await asyncio.start_server(make_handler(pool), host, port, backlog=1024)
    print(f"floor listening on http://{host}:{port}", file=sys.stderr, flush=True)
    try:
        await stop.wait()
    finally:
        server.close()
        pool.close()


# --------------------------------------------------------------------------- as a subprocess
class FloorProcess:
    """``python bench/floor.py --port P`` in its own session, for the harness; killed on ``stop``."""

    def __init__(self, port: int, host: str = "127.0.0.1", *, log_path: str | None = None) -> None:
        self.host = host
        self.port = port
        self.endpoint = f"http://{host}:{port}"
        self._log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> None:
        from client import wait_http_ok

        log = open(self._log_path or os.devnull, "ab")  # noqa: SIM115  # handed to the child
        try:
            self.proc = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--host", self.host, "--port", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        if not wait_http_ok(self.host, self.port, "/health", timeout=timeout):
            self.stop()
            raise RuntimeError(f"the floor server did not start on port {self.port}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # any worker left in the group we started

    def __enter__(self) -> FloorProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--no-uvloop", action="store_true", help="use the stock asyncio event loop")
    args = parser.parse_args(argv)
    if not args.no_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            uvloop.run(serve(args.host, args.port))
            return
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
