"""lamina's HTTP/1.1 front over real sockets, with a small app standing in for lamina's."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from lamina.web import server as web_server
from lamina.web.connection import MAX_HEAD_BYTES, Reply, Request, Streamed
from lamina.web.server import FrontServer, ServerState


class EchoApp:
    """Echoes method, path, query and body; ``/slow`` waits for ``release``; ``/refuse`` is
    refused at its head; bodies over 10 bytes are too large."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.seen: list[Request] = []

    def admit(self, request: Request) -> int | Reply:
        if request.path == b"/refuse":
            return 403, [(b"content-type", b"text/plain")], b"refused"
        return 10

    async def chunks(self) -> AsyncIterator[bytes]:
        yield b"first;"
        await asyncio.sleep(0)
        yield b""  # nothing to send: no empty chunk (it would end the body)
        yield b"second"

    def too_large(self, request: Request, limit: int) -> Reply:
        return 413, [], b"too large: %d" % limit

    async def handle(self, request: Request) -> Reply | Streamed:
        self.seen.append(request)
        if request.path == b"/stream":
            return Streamed(200, [(b"content-type", b"text/plain")], self.chunks())
        if request.path == b"/slow":
            await self.release.wait()
        if request.path == b"/boom":
            raise RuntimeError("a bug")
        body = b"%s %s %s %s" % (request.method.encode(), request.path, request.query, request.body)
        return 200, [(b"x-echo", b"1")], body


Front = tuple[FrontServer, EchoApp, int]


def with_front(test: Callable[[Front], Awaitable[None]]) -> None:
    """Run ``test`` against a fresh front on its own event loop, bounded in time."""

    async def main() -> None:
        app = EchoApp()
        srv = FrontServer(app, host="127.0.0.1", port=0, keep_alive_s=0.3, stall_s=0.3)
        await srv.bind()
        await srv.serve()
        port = srv.port
        try:
            await asyncio.wait_for(test((srv, app, port)), 20)
        finally:
            app.release.set()
            if srv.state is ServerState.SERVING:
                await srv.drain(1.0, _nothing)

    asyncio.run(main())


async def _nothing() -> None:
    return None


async def _exchange(port: int, data: bytes, *, until_close: bool = False, responses: int = 1) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    out = b""
    try:
        if until_close:
            out = await asyncio.wait_for(reader.read(-1), 5)
        else:
            while out.count(b"HTTP/1.1 ") < responses or not _complete(out):
                chunk = await asyncio.wait_for(reader.read(65536), 5)
                if not chunk:
                    break
                out += chunk
    finally:
        writer.close()
    return out


def _complete(data: bytes) -> bool:
    head, sep, body = data.rpartition(b"\r\n\r\n")
    if not sep:
        return False
    last_head = head.rsplit(b"HTTP/1.1 ", 1)[-1].lower()
    length = int(last_head.split(b"content-length: ")[1].split(b"\r\n")[0])
    return len(body) >= length


def test_request_and_keep_alive() -> None:
    with_front(_request_and_keep_alive)


async def _request_and_keep_alive(front: Front) -> None:
    _, app, port = front
    req = b"POST /a?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
    out = await _exchange(port, req + req, responses=2)
    assert out.count(b"HTTP/1.1 200 OK\r\n") == 2
    assert b"POST /a x=1 abc" in out and b"x-echo: 1" in out
    assert app.seen[0].hmap[b"host"] == b"h"


def test_pipelined_requests_answer_in_order() -> None:
    with_front(_pipelined_requests_answer_in_order)


async def _pipelined_requests_answer_in_order(front: Front) -> None:
    _, _, port = front
    reqs = b"".join(b"GET /%d HTTP/1.1\r\nHost: h\r\n\r\n" % i for i in range(5))
    out = await _exchange(port, reqs, responses=5)
    bodies = [part.split(b"\r\n\r\n", 1)[1][:7] for part in out.split(b"HTTP/1.1 ")[1:]]
    assert bodies == [b"GET /%d " % i for i in range(5)]


def test_repeated_headers_joined() -> None:
    with_front(_repeated_headers_joined)


async def _repeated_headers_joined(front: Front) -> None:
    _, app, port = front
    await _exchange(port, b"GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2\r\n\r\n")
    assert app.seen[0].hmap[b"x-a"] == b"1,2"
    assert app.seen[0].repeated_headers


def test_refused_at_head_closes_when_a_body_follows() -> None:
    with_front(_refused_at_head_closes_when_a_body_follows)


async def _refused_at_head_closes_when_a_body_follows(front: Front) -> None:
    _, app, port = front
    out = await _exchange(
        port, b"POST /refuse HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n", until_close=True
    )
    assert out.startswith(b"HTTP/1.1 403 Forbidden\r\n") and b"connection: close" in out
    assert not app.seen  # never handled, its body never awaited


def test_refused_without_body_keeps_the_connection() -> None:
    with_front(_refused_without_body_keeps_the_connection)


async def _refused_without_body_keeps_the_connection(front: Front) -> None:
    _, _, port = front
    out = await _exchange(
        port, b"GET /refuse HTTP/1.1\r\nHost: h\r\n\r\nGET /ok HTTP/1.1\r\nHost: h\r\n\r\n", responses=2
    )
    assert out.startswith(b"HTTP/1.1 403") and b"HTTP/1.1 200 OK" in out


def test_declared_body_over_limit_refused() -> None:
    with_front(_declared_body_over_limit_refused)


async def _declared_body_over_limit_refused(front: Front) -> None:
    _, _, port = front
    out = await _exchange(
        port, b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n" + b"x" * 11, until_close=True
    )
    assert out.startswith(b"HTTP/1.1 413") and b"too large: 10" in out


def test_chunked_body_over_limit_refused_while_reading() -> None:
    with_front(_chunked_body_over_limit_refused_while_reading)


async def _chunked_body_over_limit_refused_while_reading(front: Front) -> None:
    _, app, port = front
    chunks = b"6\r\nabcdef\r\n6\r\nghijkl\r\n0\r\n\r\n"
    out = await _exchange(
        port, b"POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks, until_close=True
    )
    assert out.startswith(b"HTTP/1.1 413") and not app.seen


def test_chunked_body_within_limit() -> None:
    with_front(_chunked_body_within_limit)


async def _chunked_body_within_limit(front: Front) -> None:
    _, _, port = front
    out = await _exchange(
        port,
        b"POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    )
    assert b"POST /a  abcde" in out


def test_expect_continue() -> None:
    with_front(_expect_continue)


async def _expect_continue(front: Front) -> None:
    _, _, port = front
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
    assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"ok")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200")
    writer.close()


def test_malformed_request_gets_400() -> None:
    with_front(_malformed_request_gets_400)


async def _malformed_request_gets_400(front: Front) -> None:
    _, _, port = front
    out = await _exchange(port, b"NOT HTTP AT ALL\r\n\r\n", until_close=True)
    assert out.startswith(b"HTTP/1.1 400 Bad Request")


def test_oversized_head_gets_431() -> None:
    with_front(_oversized_head_gets_431)


async def _oversized_head_gets_431(front: Front) -> None:
    _, _, port = front
    big = b"X-Big: " + b"a" * (MAX_HEAD_BYTES + 1) + b"\r\n"
    out = await _exchange(port, b"GET / HTTP/1.1\r\nHost: h\r\n" + big + b"\r\n", until_close=True)
    assert out.startswith(b"HTTP/1.1 431")


def test_app_bug_is_a_500_not_a_hang() -> None:
    with_front(_app_bug_is_a_500_not_a_hang)


async def _app_bug_is_a_500_not_a_hang(front: Front) -> None:
    _, _, port = front
    out = await _exchange(port, b"GET /boom HTTP/1.1\r\nHost: h\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 500") and b"a bug" not in out


def test_head_request_has_no_body() -> None:
    with_front(_head_request_has_no_body)


async def _head_request_has_no_body(front: Front) -> None:
    _, _, port = front
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"HEAD /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert b"content-length: 9" in head  # of "HEAD /a  ", not sent
    # no body follows: the next bytes are the second response
    assert (await asyncio.wait_for(reader.readuntil(b"\r\n"), 5)).startswith(b"HTTP/1.1 200")
    writer.close()


def test_idle_and_stalled_connections_are_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web_server, "SWEEP_S", 0.05)
    with_front(_idle_and_stalled_connections_are_closed)


async def _idle_and_stalled_connections_are_closed(front: Front) -> None:
    srv, _, port = front
    srv._sweeper.cancel() if srv._sweeper else None
    srv._sweeper = asyncio.get_running_loop().create_task(srv._sweep())
    idle_r, idle_w = await asyncio.open_connection("127.0.0.1", port)
    stalled_r, stalled_w = await asyncio.open_connection("127.0.0.1", port)
    stalled_w.write(b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nab")  # 3 bytes never come
    assert await asyncio.wait_for(idle_r.read(), 5) == b""
    assert await asyncio.wait_for(stalled_r.read(), 5) == b""
    idle_w.close()
    stalled_w.close()


def test_drain_lets_in_flight_requests_finish() -> None:
    with_front(_drain_lets_in_flight_requests_finish)


async def _drain_lets_in_flight_requests_finish(front: Front) -> None:
    srv, app, port = front
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
    idle_r, idle_w = await asyncio.open_connection("127.0.0.1", port)
    while not app.seen:
        await asyncio.sleep(0.01)
    grace_over = asyncio.Event()

    async def on_grace_over() -> None:
        grace_over.set()

    drain = asyncio.ensure_future(srv.drain(5.0, on_grace_over))
    assert await asyncio.wait_for(idle_r.read(), 5) == b""  # idle keep-alive closed at once
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()  # no longer accepting
    app.release.set()
    answer = await asyncio.wait_for(reader.read(), 5)
    assert answer.startswith(b"HTTP/1.1 200") and b"connection: close" in answer
    await asyncio.wait_for(drain, 5)
    assert srv.state is ServerState.STOPPED and not grace_over.is_set()
    writer.close()
    idle_w.close()


def test_streamed_reply_is_chunked_and_keeps_the_connection() -> None:
    with_front(_streamed_reply_is_chunked_and_keeps_the_connection)


async def _streamed_reply_is_chunked_and_keeps_the_connection(front: Front) -> None:
    _, _, port = front
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /stream HTTP/1.1\r\nHost: h\r\n\r\nGET /after HTTP/1.1\r\nHost: h\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in head
    assert b"content-length" not in head
    body = await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 5)
    assert body == b"6\r\nfirst;\r\n6\r\nsecond\r\n0\r\n\r\n"
    # the next pipelined request is answered on the same connection
    assert (await asyncio.wait_for(reader.readuntil(b"\r\n"), 5)).startswith(b"HTTP/1.1 200")
    writer.close()
