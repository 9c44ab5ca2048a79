"""One listening port per function URL: stored ports reused, taken ones replaced, ranges honoured."""

from __future__ import annotations

import asyncio
import socket

import pytest

from lamina.urls.listeners import NoFreePort, UrlServers
from lamina.web.connection import Reply, Request


class HelloApp:
    def admit(self, request: Request) -> int | Reply:
        return 1024

    def too_large(self, request: Request, limit: int) -> Reply:
        return 413, [], b""

    async def handle(self, request: Request) -> Reply:
        return 200, [], b"hello " + request.hmap.get(b"host", b"")


async def get(port: int, host: bytes = b"anything.example") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
    data = await reader.read()
    writer.close()
    return data


def free_ports(n: int) -> list[int]:
    """``n`` consecutive free ports (retried until a free run is found)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            first = int(s.getsockname()[1])
        if first + n > 65535:
            continue
        try:
            for p in range(first, first + n):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", p))
        except OSError:
            continue
        return list(range(first, first + n))
    raise RuntimeError("no run of free ports")


def test_open_serves_any_host_and_close_stops() -> None:
    async def main() -> None:
        servers = UrlServers(lambda key: HelloApp(), host="127.0.0.1")
        key = ("us-east-1", "fn", "$LATEST")
        port = await servers.open(key, None)
        assert servers.ports == {key: port}
        assert (await get(port)).endswith(b"hello anything.example")
        await servers.close(key)
        assert servers.ports == {}
        with pytest.raises(OSError):
            await get(port)

    asyncio.run(main())


def test_stored_port_reused_or_replaced_when_taken() -> None:
    async def main() -> None:
        servers = UrlServers(lambda key: HelloApp(), host="127.0.0.1")
        first = await servers.open(("r", "a", "$LATEST"), None)
        await servers.close(("r", "a", "$LATEST"))
        assert await servers.open(("r", "a", "$LATEST"), first) == first  # free again: the same port
        moved = await servers.open(("r", "b", "$LATEST"), first)  # taken by "a": a new one
        assert moved != first and (await get(moved)).endswith(b"hello anything.example")
        await servers.drain(1.0, _nothing)
        assert servers.ports == {}

    asyncio.run(main())


def test_port_range() -> None:
    async def main() -> None:
        lo, hi = free_ports(2)
        servers = UrlServers(lambda key: HelloApp(), host="127.0.0.1", ports=(lo, hi))
        got = {await servers.open(("r", name, "$LATEST"), None) for name in ("a", "b")}
        assert got == {lo, hi}
        with pytest.raises(NoFreePort):
            await servers.open(("r", "c", "$LATEST"), None)
        await servers.drain(1.0, _nothing)

    asyncio.run(main())


async def _nothing() -> None:
    return None
