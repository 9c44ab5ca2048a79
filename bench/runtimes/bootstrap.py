"""The Python stand-in for bootstrap.c, used only when the host has no C compiler.

Same modes and the same wire behaviour as bootstrap.c (see there): the runtime loop (GET next,
POST the event back as the response, one keep-alive connection with blocking sockets),
``--bare``, ``--hop-server`` and ``--hop-client PORT N WARMUP``.  The benchmark writes it into the
function's zip as ``bootstrap`` behind a ``#!<python> -I -S`` line, so it needs nothing but the
standard library.  Its figures measure a Python runtime, not a native one: the table says so.
"""

import os
import socket
import sys
import time

HEAD_MAX = 64 * 1024
REQUEST_ID = "8476a536-e9f4-11e8-9739-2dfe598c3fcd"


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def read_message(self):
        """(status, headers, body) of one message with a Content-Length body; None at EOF."""
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            if len(self.buf) > HEAD_MAX:
                raise ConnectionError("head too large")
            chunk = self.sock.recv(65536)
            if not chunk:
                if not self.buf:
                    return None
                raise ConnectionError("connection closed mid-message")
            self.buf += chunk
        lines = self.buf[:end].decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buf) < end + 4 + length:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed mid-body")
            self.buf += chunk
        body = self.buf[end + 4 : end + 4 + length]
        self.buf = self.buf[end + 4 + length :]
        status = int(lines[0].split(" ", 2)[1]) if lines[0].startswith("HTTP/1.") else 0
        return status, headers, body


def connect(host, port):
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return Conn(sock)


def runtime_loop(api):
    host, _, port = api.rpartition(":")
    conn = connect(host, int(port))
    next_request = f"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: {api}\r\n\r\n".encode()
    while True:
        conn.sock.sendall(next_request)
        message = conn.read_message()
        if message is None:
            return 0
        status, headers, event = message
        request_id = headers.get("lambda-runtime-aws-request-id")
        if status != 200 or not request_id:
            print(f"bootstrap: next answered {status}", file=sys.stderr)
            return 1
        head = (
            f"POST /2018-06-01/runtime/invocation/{request_id}/response HTTP/1.1\r\nHost: {api}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(event)}\r\n\r\n"
        )
        conn.sock.sendall(head.encode() + event)
        if conn.read_message() is None:
            return 0


def hop_client(port, count, warmup):
    conn = connect("127.0.0.1", port)
    body = b"{}"
    raw = (
        f"POST /2018-06-01/runtime/invocation/{REQUEST_ID}/response HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    samples = []
    perf = time.perf_counter_ns
    for i in range(warmup + count):
        t0 = perf()
        conn.sock.sendall(raw)
        if conn.read_message() is None:
            raise ConnectionError("hop server closed")
        dt = perf() - t0
        if i >= warmup:
            samples.append(dt)
    sys.stdout.write("".join(f"{ns}\n" for ns in samples))
    return 0


def hop_server():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    print(listener.getsockname()[1], flush=True)
    while True:  # one connection at a time, until killed
        sock, _ = listener.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = Conn(sock)
        while (message := conn.read_message()) is not None:
            body = message[2]
            head = (
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                f"Lambda-Runtime-Aws-Request-Id: {REQUEST_ID}\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            sock.sendall(head.encode() + body)
        sock.close()


def main(argv):
    if argv[1:2] == ["--bare"] or os.environ.get("LAMINA_BENCH_BARE") == "1":
        return 0
    if argv[1:2] == ["--hop-server"]:
        return hop_server()
    if argv[1:2] == ["--hop-client"] and len(argv) > 4:
        return hop_client(int(argv[2]), int(argv[3]), int(argv[4]))
    api = os.environ.get("AWS_LAMBDA_RUNTIME_API")
    if not api:
        print("bootstrap: AWS_LAMBDA_RUNTIME_API is not set", file=sys.stderr)
        return 1
    return runtime_loop(api)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
