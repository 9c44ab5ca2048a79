"""Response streaming: a function's response bytes, handed on as the runtime produces them.

``ChunkQueue`` is the invocation's stream sink (``InvocationInput.stream``): a runtime that
streams (Runtime API ``Lambda-Runtime-Function-Response-Mode: streaming``) fills it chunk by
chunk while the invocation runs.  ``started`` tells a caller whether the response is streaming
(a first chunk came) or the invocation finished whole -- then its error, if it failed to run
(throttled, no such function), is raised there, before anything was sent.

``invoke_events`` turns either into InvokeWithResponseStream's event stream: PayloadChunk events,
then InvokeComplete with the function's error (ErrorCode, ErrorDetails) and the log tail.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from lamina.protocol import eventstream

OCTETS = "application/octet-stream"


class ChunkQueue:
    def __init__(self) -> None:
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._arrived = asyncio.Event()  # a first chunk is here (never consumed by ``started``)
        self.streamed = False
        self.content_type = "application/octet-stream"

    def begin(self, content_type: str) -> None:
        self.content_type = content_type

    def put(self, chunk: bytes) -> None:
        self.streamed = True
        self._queue.put_nowait(chunk)
        self._arrived.set()

    async def started(self, task: asyncio.Future[Any]) -> bool:
        """True once a first chunk is here; False when ``task`` finished first (its error, if it
        failed, raised here).  Nothing is taken off the queue: order is kept."""
        if not self._arrived.is_set() and not task.done():
            arrived = asyncio.ensure_future(self._arrived.wait())
            await asyncio.wait({arrived, task}, return_when=asyncio.FIRST_COMPLETED)
            arrived.cancel()
        if self._arrived.is_set():
            return True
        task.result()
        return False

    async def chunks(self, task: asyncio.Future[Any]) -> AsyncIterator[bytes]:
        """Each chunk as it comes, until ``task`` is done and nothing is left."""
        while True:
            while not self._queue.empty():
                yield self._queue.get_nowait()
            if task.done():
                return
            getter = asyncio.ensure_future(self._queue.get())
            await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                yield getter.result()
            else:
                getter.cancel()


def complete_event(function_error: str | None, payload: bytes, log_tail: str | None) -> bytes:
    complete: dict[str, str] = {}
    if function_error:
        complete["ErrorCode"] = function_error
        complete["ErrorDetails"] = payload.decode(errors="replace")
    if log_tail is not None:
        complete["LogResult"] = log_tail
    return eventstream.event("InvokeComplete", json.dumps(complete).encode(), "application/json")


def whole_events(function_error: str | None, payload: bytes, log_tail: str | None) -> bytes:
    """The event stream of a response that came whole: one chunk (none for an error), then the end."""
    chunk = b"" if function_error or not payload else eventstream.event("PayloadChunk", payload, OCTETS)
    return chunk + complete_event(function_error, payload, log_tail)


async def streamed_events(queue: ChunkQueue, task: asyncio.Future[Any]) -> AsyncIterator[bytes]:
    """The event stream of a streaming response: each chunk as it comes, then the end."""
    try:
        async for chunk in queue.chunks(task):
            yield eventstream.event("PayloadChunk", chunk, OCTETS)
        try:
            result = task.result()
        except Exception as exc:  # the stream has begun: the failure goes in InvokeComplete
            code = getattr(exc, "code", "ServiceException")
            yield complete_event(code, json.dumps({"errorMessage": str(exc)}).encode(), None)
            return
        error = result.function_error
        yield complete_event(error, result.payload if error else b"", result.log_tail)
    finally:
        if not task.done():
            task.cancel()  # the client went away mid-stream
