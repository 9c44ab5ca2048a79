"""The engine's end of a no-network environment's network namespace (``lamina:network`` = none).

Such an environment unshares a network namespace as a spare (bootstrap's ``isolate_network``):
its only interface is its own loopback.  Exec'd runtimes and extensions still need the Runtime,
Extensions and Telemetry APIs, which the engine serves -- from the host's namespace, where the
environment's 127.0.0.1 does not lead.  So the spare listens on 127.0.0.1:9001 inside its
namespace and sends the listening socket, with an fd of the namespace itself, over a
SOCK_SEQPACKET line made for it (SCM_RIGHTS); ``PrivateNetwork`` receives them.

- The engine serves the Runtime API on that listener: connections come from inside the
  environment's namespace, which nothing but the environment's own processes can enter
  (``setns`` needs CAP_SYS_ADMIN; they run as an unprivileged uid).  So no peer check is needed
  -- nor possible: sock_diag, like every socket table, is per namespace.
- The Telemetry API connects *out* to a listener an extension runs in the environment: that
  socket is made in the environment's namespace by a short-lived thread that ``setns`` into it
  (``setns`` changes the calling thread only, and that thread ends right after), then connected
  from the event loop like any other.

Concurrency invariants: everything but ``_socket_in`` runs on the event loop; the thread only
makes one socket and hands it over through the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import socket
import threading

NETWORK_NONE = "none"  # EnvironmentSpec.network: no network at all
NETWORK_DEFAULT = "default"  # the host's network, as Lambda functions have the internet
CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)


class PrivateNetwork:
    """The listener and namespace fd one no-network spare sends; owned by its ``EnvProcess``."""

    def __init__(self, line: socket.socket) -> None:
        line.setblocking(False)
        self._line: socket.socket | None = line
        self._listener: socket.socket | None = None
        self._netns: int | None = None

    async def listener(self) -> socket.socket:
        """The Runtime API's listening socket, in the environment's namespace (once the spare
        has made it; OSError if it could not and exited instead)."""
        if self._listener is None:
            await self._receive()
        assert self._listener is not None
        return self._listener

    async def _receive(self) -> None:
        line = self._line
        if line is None:
            raise OSError("the environment's network line is closed")
        loop = asyncio.get_running_loop()
        while True:
            try:
                msg, fds, _, _ = socket.recv_fds(line, 64, 2)
                break
            except BlockingIOError:
                readable: asyncio.Future[None] = loop.create_future()
                loop.add_reader(line.fileno(), _resolve, readable)
                try:
                    await readable
                finally:
                    loop.remove_reader(line.fileno())
        if msg != b"netns" or len(fds) != 2:
            for fd in fds:
                os.close(fd)
            raise OSError("the environment could not make its network namespace")
        self._listener = socket.socket(fileno=fds[0])
        self._listener.setblocking(False)
        self._netns = fds[1]
        self._close_line()

    async def open_connection(self, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A TCP connection to 127.0.0.1:``port`` as seen from inside the environment."""
        await self.listener()  # the namespace fd comes with it
        netns = self._netns
        if netns is None:
            raise OSError("the environment's network namespace is closed")
        loop = asyncio.get_running_loop()
        made: asyncio.Future[socket.socket] = loop.create_future()
        threading.Thread(target=_socket_in, args=(netns, loop, made), daemon=True).start()
        sock = await made
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, ("127.0.0.1", port))
            return await asyncio.open_connection(sock=sock)
        except BaseException:
            sock.close()
            raise

    def _close_line(self) -> None:
        if self._line is not None:
            self._line.close()
            self._line = None

    def close(self) -> None:
        self._close_line()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._netns is not None:
            os.close(self._netns)
            self._netns = None


def _socket_in(netns: int, loop: asyncio.AbstractEventLoop, made: asyncio.Future[socket.socket]) -> None:
    """In a thread of its own: enter the namespace, make a TCP socket, hand it to the loop."""
    try:
        if _libc.setns(netns, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "cannot enter the environment's network namespace")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    except OSError as exc:
        loop.call_soon_threadsafe(_fail, made, exc)
        return
    loop.call_soon_threadsafe(_deliver, made, sock)


def _deliver(made: asyncio.Future[socket.socket], sock: socket.socket) -> None:
    if made.done():  # the waiter was cancelled meanwhile
        sock.close()
    else:
        made.set_result(sock)


def _fail(made: asyncio.Future[socket.socket], exc: BaseException) -> None:
    if not made.done():
        made.set_exception(exc)


def _resolve(future: asyncio.Future[None]) -> None:
    with contextlib.suppress(asyncio.InvalidStateError):
        future.set_result(None)
