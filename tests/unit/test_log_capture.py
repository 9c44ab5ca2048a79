"""LogCapture: an environment's log pipe read into events, in batches after a wake-up."""

from __future__ import annotations

import asyncio
import os

from lamina.execution.logs import LogCapture


async def _until(predicate: object, timeout: float = 5.0) -> None:
    assert callable(predicate)
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.001)


def test_lines_written_during_the_pause_are_read_in_one_go() -> None:
    async def scenario() -> None:
        r, w = os.pipe()
        capture = LogCapture(r)
        reads: list[int] = []
        drain = capture.drain

        def counting_drain() -> None:
            reads.append(1)
            drain()

        capture.drain = counting_drain  # type: ignore[method-assign]
        os.write(w, b"one\n")
        await _until(lambda: not capture._watched)  # the pipe woke the loop: the pause began
        for i in range(9):  # written while nobody watches: no wake-up, no read
            os.write(w, b"line %d\n" % i)
        await _until(lambda: len(capture.pending) == 10)
        assert len(reads) == 1  # all ten lines in one read, when the pause ended
        assert [e.message for e in capture.take()] == ["one"] + [f"line {i}" for i in range(9)]
        assert capture._watched  # watched again
        os.close(w)
        await _until(lambda: capture._fd is None)  # EOF still closes it
        capture.close()

    asyncio.run(scenario())


def test_an_explicit_drain_reads_at_once_and_close_during_the_pause_is_safe() -> None:
    async def scenario() -> None:
        r, w = os.pipe()
        capture = LogCapture(r)
        os.write(w, b"a\n")
        await _until(lambda: not capture._watched)
        os.write(w, b"b\npartial")
        capture.drain()  # what the engine does when a frame says bytes are unread
        capture.flush_partial()
        assert [e.message for e in capture.take()] == ["a", "b", "partial"]
        capture.close()  # mid-pause: the pending timer must find it closed
        capture._watch()  # what that timer runs: a no-op now, not a read of a closed fd
        assert capture._fd is None and capture.take() == []
        os.close(w)

    asyncio.run(scenario())
