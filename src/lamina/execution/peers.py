"""Which process is at the other end of a loopback TCP connection?

An environment's Runtime API listens on 127.0.0.1, where any process on the machine can connect.
The issue's requirement is that "an environment can only ever receive its own invocations -- no
other environment or process on the machine can take them", so every accepted connection is
traced back to the process holding the client socket:

1. the client socket is the one whose *local* end is the peer address of the accepted socket and
   whose *remote* end is our listening address: its inode comes from an exact sock_diag netlink
   lookup of that 4-tuple (~5 us), or, where netlink is not available, from ``/proc/net/tcp``
   (``tcp6`` for a dual-stack client socket speaking IPv4 through a v4-mapped address).  The
   procfs table is the fallback only: the kernel walks its whole socket hash to render it, about
   1 ms per read even with a handful of sockets;
2. a process holds that socket if one of its ``/proc/<pid>/fd/*`` links reads ``socket:[inode]``
   (~1 us per open fd of the candidate processes).

It runs once per connection; runtimes keep theirs alive across invocations.

Everything fails closed (the connection is refused): a client that closed its socket before the
check, processes whose fd table we may not read (another uid without ptrace rights).  Netlink and
procfs are kernel-side lookups that never block on disk, so callers run this on the event loop.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
from collections.abc import Iterable

PROC_NET_TCP = "/proc/net/tcp"
PROC_NET_TCP6 = "/proc/net/tcp6"

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLMSG_ERROR = 2
NLM_F_REQUEST = 1
INET_DIAG_NOCOOKIE = 0xFFFFFFFF
_NLMSG_HEADER = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_DIAG_REQ = struct.Struct("=BBBBI")  # family, protocol, ext, pad, states
_DIAG_MSG_UID_INODE = 16 + 64  # nlmsghdr, then inet_diag_msg's uid and inode (u32 each)


class DiagUnavailableError(Exception):
    """sock_diag cannot answer here (no netlink in this sandbox, or not permitted)."""


def _addr(family: int, host: str) -> bytes:
    if family == socket.AF_INET:
        return socket.inet_aton(host) + bytes(12)
    if ":" not in host:
        host = "::ffff:" + host
    return socket.inet_pton(socket.AF_INET6, host)


def _diag_inode(family: int, local: tuple[str, int], remote: tuple[str, int]) -> int | None:
    """Exact sock_diag lookup of the TCP socket ``local`` -> ``remote``: its inode, or None."""
    sockid = (
        struct.pack("!HH", local[1], remote[1])
        + _addr(family, local[0])
        + _addr(family, remote[0])
        + struct.pack("=III", 0, INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE)
    )
    body = _DIAG_REQ.pack(family, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF) + sockid
    request = _NLMSG_HEADER.pack(_NLMSG_HEADER.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, 1, 0)
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as nl:
            nl.send(request + body)
            reply = nl.recv(1024)
    except (OSError, AttributeError) as exc:  # AttributeError: no AF_NETLINK on this platform
        raise DiagUnavailableError(str(exc)) from exc
    if len(reply) < _NLMSG_HEADER.size:
        raise DiagUnavailableError("short netlink reply")
    msg_type = _NLMSG_HEADER.unpack_from(reply)[1]
    if msg_type == NLMSG_ERROR:
        code = -struct.unpack_from("=i", reply, _NLMSG_HEADER.size)[0]
        if code == errno.ENOENT:
            return None
        raise DiagUnavailableError(os.strerror(code))
    if msg_type != SOCK_DIAG_BY_FAMILY or len(reply) < _DIAG_MSG_UID_INODE + 8:
        raise DiagUnavailableError("unexpected netlink reply")
    inode: int = struct.unpack_from("=I", reply, _DIAG_MSG_UID_INODE + 4)[0]
    return inode or None


def _hex_endpoint(host: str, port: int, *, v6: bool) -> str:
    # procfs prints each 32-bit word of the address in host byte order
    if v6:
        words = struct.unpack("=4I", _addr(socket.AF_INET6, host))
        return "".join(f"{word:08X}" for word in words) + f":{port:04X}"
    return f"{struct.unpack('=I', socket.inet_aton(host))[0]:08X}:{port:04X}"


def _procfs_inode(table: str, needle: bytes) -> int | None:
    try:
        with open(table, "rb") as f:
            text = f.read()
    except OSError:
        return None
    at = text.find(needle)
    while at >= 0:
        start = text.rfind(b"\n", 0, at) + 1
        end = text.find(b"\n", at)
        fields = text[start : end if end >= 0 else len(text)].split()
        # sl local rem st tx:rx tr:when retrnsmt uid timeout inode: the match must be local + rem
        if len(fields) > 9 and fields[1] + b" " + fields[2] == needle:
            inode = int(fields[9])
            return inode or None  # 0: no process holds the socket any more (TIME_WAIT)
        at = text.find(needle, at + 1)
    return None


def _procfs_lookup(local: tuple[str, int], remote: tuple[str, int]) -> int | None:
    if ":" not in local[0] and ":" not in remote[0]:
        v4 = f"{_hex_endpoint(*local, v6=False)} {_hex_endpoint(*remote, v6=False)}"
        inode = _procfs_inode(PROC_NET_TCP, v4.encode())
        if inode is not None:
            return inode
    v6 = f"{_hex_endpoint(*local, v6=True)} {_hex_endpoint(*remote, v6=True)}"
    return _procfs_inode(PROC_NET_TCP6, v6.encode())


def client_socket_inode(peer: tuple[str, int], server: tuple[str, int]) -> int | None:
    """Inode of the TCP socket whose local end is ``peer`` and remote end ``server``; None if gone."""
    family = socket.AF_INET6 if ":" in peer[0] or ":" in server[0] else socket.AF_INET
    try:
        # An AF_INET lookup also finds a dual-stack socket connected through a v4-mapped address:
        # the kernel hashes it under its IPv4 4-tuple.
        return _diag_inode(family, peer, server)
    except DiagUnavailableError:
        return _procfs_lookup(peer, server)


def held_by(inode: int, pids: Iterable[int]) -> int | None:
    """The first of ``pids`` with an fd on socket ``inode``, or None."""
    target = f"socket:[{inode}]"
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        try:
            names = os.listdir(fd_dir)
        except OSError:  # exited, or not ours to read
            continue
        for name in names:
            with contextlib.suppress(OSError):  # fds come and go while we look
                if os.readlink(f"{fd_dir}/{name}") == target:
                    return pid
    return None


def connection_from(peer: tuple[str, int], server: tuple[str, int], pids: Iterable[int]) -> bool:
    """Does one of ``pids`` hold the client end of the connection ``peer`` -> ``server``?"""
    inode = client_socket_inode(peer, server)
    return inode is not None and held_by(inode, pids) is not None


def peer_is_one_of(sock: socket.socket, pids: Iterable[int]) -> bool:
    """Is the process at the other end of the accepted loopback socket ``sock`` one of ``pids``?"""
    try:
        peer = sock.getpeername()
        server = sock.getsockname()
    except OSError:
        return False
    return connection_from((peer[0], peer[1]), (server[0], server[1]), pids)
