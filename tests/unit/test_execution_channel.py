"""The frame codec is duplicated in the Python runtime (lamina_rt_wire.py: it cannot import lamina):
both sides must agree."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import pytest

from lamina.execution import channel, logs
from lamina.execution.engine import BOOTSTRAP
from tests.unit.python_runtime import runtime_module


@pytest.fixture(scope="module")
def wire() -> ModuleType:
    return runtime_module("lamina_rt_wire")


@pytest.fixture(scope="module")
def aws() -> ModuleType:
    return runtime_module("lamina_rt_aws")


def test_constants_agree(wire: ModuleType) -> None:
    assert wire.FRAME_HEADER.format == channel.FRAME_HEADER.format
    assert wire.SMALL_FRAME == channel.SMALL_FRAME
    header = {"t": "invoke", "id": "r-1", "é": [1, None]}
    assert wire.encode_frame(header, b"x") == channel.encode_frame(header, b"x")


@pytest.mark.parametrize("payload", [b"", b'{"a": 1}', bytes(range(256)) * 30000])
def test_engine_frames_decode_in_the_runtime_and_back(wire: ModuleType, payload: bytes) -> None:
    ours, theirs = socket.socketpair()
    env_side = wire.Channel(theirs.detach())
    head, body = channel.encode_frame({"t": "invoke", "id": "r-1", "é": [1, None]}, payload)

    def writer() -> None:  # a 7 MB frame does not fit the socket buffer: write while reading
        ours.sendall(head + body)

    t = threading.Thread(target=writer)
    t.start()
    header, got = env_side.read()
    t.join()
    assert header == {"t": "invoke", "id": "r-1", "é": [1, None]} and got == payload

    decoder = channel.FrameDecoder()
    reply = threading.Thread(target=env_side.write, args=({"t": "result", "rss_kb": 1}, payload))
    reply.start()
    frames: list[channel.Frame] = []
    while not frames:
        frames = decoder.feed(ours.recv(1 << 20))
    reply.join()
    assert frames == [({"t": "result", "rss_kb": 1}, payload)]
    ours.close()
    env_side.sock.close()


def test_the_runtime_reads_split_coalesced_and_truncated_frames(wire: ModuleType) -> None:
    ours, theirs = socket.socketpair()
    env_side = wire.Channel(theirs.detach())
    big = bytes(range(256)) * 400  # over SMALL_FRAME: read straight into its own buffer
    frames = [channel.encode_frame({"n": 1}, b"abc"), channel.encode_frame({"n": 2}, big)]
    stream = b"".join(b"".join(f) for f in frames)

    def trickle() -> None:  # byte by byte at first, then the rest (and the next frame) at once
        for i in range(20):
            ours.sendall(stream[i : i + 1])
        ours.sendall(stream[20:] + b"".join(channel.encode_frame({"n": 3}, b"xy"))[:-1])
        ours.shutdown(socket.SHUT_WR)  # the third frame ends one byte short

    t = threading.Thread(target=trickle)
    t.start()
    assert env_side.read() == ({"n": 1}, b"abc")
    assert env_side.read() == ({"n": 2}, big)
    assert env_side.read() == (None, b"")  # a truncated frame is the end, not a short payload
    t.join()
    ours.close()
    env_side.sock.close()


def test_decoder_handles_split_and_coalesced_frames() -> None:
    a = b"".join(channel.encode_frame({"n": 1}, b"abc"))
    b = b"".join(channel.encode_frame({"n": 2}, b""))
    stream = a + b
    decoder = channel.FrameDecoder()
    got: list[channel.Frame] = []
    for i in range(len(stream)):
        got.extend(decoder.feed(stream[i : i + 1]))
    assert got == [({"n": 1}, b"abc"), ({"n": 2}, b"")]
    assert channel.FrameDecoder().feed(stream) == got


def test_env_channel_protocol_over_a_socketpair(wire: ModuleType) -> None:
    async def scenario() -> None:
        ours, theirs = socket.socketpair()
        env_side = wire.Channel(theirs.detach())
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_unix_connection(channel.EnvChannel, sock=ours)
        env_side.write({"t": "ready"})
        assert await proto.receive() == ({"t": "ready"}, b"")
        proto.send({"t": "invoke"}, b"x" * 10)
        assert await loop.run_in_executor(None, env_side.read) == ({"t": "invoke"}, b"x" * 10)
        env_side.sock.close()
        with pytest.raises(channel.ChannelClosedError):
            await proto.receive()
        proto.close()

    asyncio.run(scenario())


def test_report_and_stream_formats() -> None:
    line = logs.report_line(request_id="r", duration_ms=1.234, memory_mb=128, max_used_mb=40, init_ms=12.345)
    assert line == (
        "REPORT RequestId: r\tDuration: 1.23 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\t"
        "Max Memory Used: 40 MB\tInit Duration: 12.35 ms\t"
    )
    error = logs.report_line(
        request_id="r",
        duration_ms=5,
        memory_mb=128,
        max_used_mb=1,
        status="error",
        error_type="Runtime.ExitError",
    )
    assert error.endswith("Max Memory Used: 1 MB\tStatus: error\tError Type: Runtime.ExitError\t")
    created = datetime(2024, 3, 9, 23, 59, tzinfo=UTC)
    assert logs.log_stream_name("$LATEST", "a" * 32, created) == "2024/03/09/[$LATEST]" + "a" * 32
    assert logs.init_start_line("python3.12", "eu-west-1") == (
        "INIT_START Runtime Version: python:3.12.v1\t"
        "Runtime Version ARN: arn:aws:lambda:eu-west-1::runtime:lamina-python3.12"
    )
    assert Path(BOOTSTRAP).name == "bootstrap.py"


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"client_context": '{"custom": {"é": "\\n"}}'},
        {"cognito_identity": "{}", "trace_id": "Root=1-a-b"},
    ],
)
def test_invoke_header_is_the_generic_encoding(wire: ModuleType, extra: dict[str, str]) -> None:
    raw = channel.invoke_header('r-\u00e9"1', 1700000000123, "arn:aws:lambda:x", **extra)
    names = {"client_context": "cc", "cognito_identity": "ci", "trace_id": "trace"}
    expected = {"t": "invoke", "id": 'r-é"1', "deadline": 1700000000123, "arn": "arn:aws:lambda:x"}
    expected.update({names[k]: v for k, v in extra.items()})
    head, _ = channel.encode_frame(expected)
    assert raw == head[channel.FRAME_HEADER.size :]
    assert channel.decode_header(raw) == expected
    assert wire.SCAN(raw.decode(), 0)[0] == expected


@pytest.mark.parametrize("raw", [b"[1]", b'{"a": 1} x', b"nope", b'{"a": ', b"\xff"])
def test_bad_headers_are_frame_errors(raw: bytes) -> None:
    with pytest.raises((channel.FrameError, ValueError)):
        channel.decode_header(raw)
    with pytest.raises((channel.FrameError, ValueError)):
        channel.FrameDecoder().feed(channel.FRAME_HEADER.pack(len(raw), 0) + raw)


def test_decoder_reassembles_a_large_frame_fed_in_pieces() -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    stream = b"".join(channel.encode_frame({"t": "result"}, payload))
    stream += b"".join(channel.encode_frame({"n": 2}))
    decoder = channel.FrameDecoder()
    got: list[channel.Frame] = []
    for i in range(0, len(stream), 4096):
        frames = decoder.feed(stream[i : i + 4096])
        assert not frames or i + 4096 >= len(payload)  # nothing before the whole payload is in
        got.extend(frames)
    assert got == [({"t": "result"}, payload), ({"n": 2}, b"")]


def test_result_encoder_matches_the_awslambdaric_encoder(aws: ModuleType) -> None:
    value = {
        "d": [Decimal("1.5"), Decimal("2"), Decimal("NaN")],
        "u": "é\u2028😀",
        "f": [float("inf"), -0.0, 1e300],
        "n": None,
        "nested": {"t": (1, 2), "b": True},
    }
    for ascii_only in (True, False):
        fast, plain = aws.ResultEncoder(ascii_only), aws.Encoder(ensure_ascii=ascii_only)
        assert fast.encode(value) == plain.encode(value)
        assert fast.encode("é") == plain.encode("é")
        cyclic: list[object] = []
        cyclic.append(cyclic)
        with pytest.raises(ValueError):
            fast.encode(cyclic)
        with pytest.raises(TypeError):
            fast.encode({"x": object()})
        assert fast.encode(value) == plain.encode(value)  # usable after a failure


def test_log_pipe_counts_unread_bytes(wire: ModuleType) -> None:
    read_fd, write_fd = os.pipe()
    try:
        pipe = wire.LogPipe(write_fd)
        assert pipe.unread() == 0
        os.write(write_fd, b"hello")
        assert pipe.unread() == 5
        assert os.read(read_fd, 5) == b"hello"
        assert pipe.unread() == 0
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_unicode_escaping_follows_the_runtime() -> None:
    escapes_unicode = runtime_module("lamina_rt_environment").escapes_unicode
    assert escapes_unicode("AWS_Lambda_python3.11")
    assert not escapes_unicode("AWS_Lambda_python3.12")
    assert not escapes_unicode("AWS_Lambda_python3.13")
    assert not escapes_unicode("AWS_Lambda_python3.14")
    assert escapes_unicode("")
