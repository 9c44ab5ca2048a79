"""lamina's Python runtime: the environment's end of its channel to the engine (frame codec, log pipe).

Part of the runtime bootstrap.py imports at start-up (see its docstring); standard library only."""

from __future__ import annotations

import array
import fcntl
import json
import os
import select
import socket
import struct
import termios
from json.decoder import JSONDecoder

# The frame codec is duplicated in lamina/execution/channel.py: this file cannot import lamina.
# A unit test checks both sides agree.  Frame: !II (JSON header length, payload length), the
# JSON header, then the raw payload bytes (never re-encoded).
FRAME_HEADER = struct.Struct("!II")
SMALL_FRAME = 64 * 1024
FRAME_JSON = json.JSONEncoder(separators=(",", ":"))  # one encoder, not one per json.dumps call
SCAN = JSONDecoder().scan_once  # the C scanner: json.loads' wrappers cost more than a header's parse


def encode_frame(header, payload=b""):
    body = FRAME_JSON.encode(header).encode()
    return FRAME_HEADER.pack(len(body), len(payload)) + body, payload


class Channel:
    """The environment's end of its private socketpair (blocking; one frame at a time)."""

    def __init__(self, fd):
        os.set_inheritable(fd, False)  # a user's subprocess must not hold the channel open
        self.sock = socket.socket(fileno=fd)
        self.buf = b""  # received, not yet taken (a frame read whole in one recv mostly)
        # Wait for input in poll(), never in a blocking recv: the kernel wakes every task asleep
        # on a unix socket each time its peer reads what the socket sent (unix_write_space), so
        # a recv-blocked environment was woken -- an IPI, two context switches -- for nothing
        # each time the engine read its answer.  poll's waiter ignores that write-space wake.
        self.wait = select.poll()
        self.wait.register(fd, select.POLLIN)

    def take(self, n):
        """The next ``n`` bytes from the channel (fewer only at EOF)."""
        buf = self.buf
        if len(buf) >= n:
            self.buf = buf[n:]
            return buf[:n]
        if n - len(buf) > SMALL_FRAME:
            return self._take_large(n)
        parts, have = [buf], len(buf)
        recv, wait = self.sock.recv, self.wait.poll
        while have < n:
            wait()
            chunk = recv(SMALL_FRAME)
            if not chunk:
                break
            parts.append(chunk)
            have += len(chunk)
        data = b"".join(parts)
        self.buf = data[n:]
        return data[:n]

    def _take_large(self, n):
        """A large payload straight into its own buffer (not SMALL_FRAME chunks joined)."""
        out = bytearray(n)
        have = len(self.buf)
        out[:have] = self.buf
        self.buf = b""
        view = memoryview(out)
        while have < n:
            self.wait.poll()
            got = self.sock.recv_into(view[have:])
            if not got:
                return bytes(view[:have])
            have += got
        return bytes(out)

    def read(self):
        take = self.take
        head = take(FRAME_HEADER.size)
        if len(head) < FRAME_HEADER.size:
            return None, b""
        hlen, plen = FRAME_HEADER.unpack(head)
        header = SCAN(take(hlen).decode(), 0)[0]  # the engine's own JSON: no need to check
        payload = take(plen) if plen else b""
        if len(payload) < plen:
            return None, b""
        return header, payload

    def write(self, header, payload=b""):
        self.write_raw(FRAME_JSON.encode(header).encode(), payload)

    def write_raw(self, body, payload=b""):
        """A frame whose JSON header ``body`` is already encoded."""
        head = FRAME_HEADER.pack(len(body), len(payload)) + body
        if len(payload) < SMALL_FRAME:
            self.sock.sendall(head + payload)
        else:  # do not copy a large payload just to save a syscall
            self.sock.sendall(head)
            self.sock.sendall(payload)


class LogPipe:
    """How many bytes of the log pipe the engine has not read yet (FIONREAD on our copy of it).

    Sent with every frame, after a flush: when it is 0 the engine has already read everything
    written before the frame -- by Python, C code or a subprocess alike -- and can skip a read.
    Our own copy of the write end, so a user's dup2 over fd 1 or 2 cannot blind it.
    """

    def __init__(self, fd):
        os.set_inheritable(fd, False)
        self.fd = fd
        self.buf = array.array("i", [0])

    def unread(self):
        try:
            fcntl.ioctl(self.fd, termios.FIONREAD, self.buf, True)
        except OSError:
            return 1  # unknown: let the engine read
        return self.buf[0]
