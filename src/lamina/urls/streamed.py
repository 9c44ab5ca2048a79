"""A function URL in InvokeMode RESPONSE_STREAM: the response goes to the client as it is produced.

A stream whose content type is ``application/vnd.awslambda.http-integration-response`` (what
``awslambda.HttpResponseStream.from`` sets) starts with a JSON prelude -- statusCode, headers,
cookies -- and eight NUL bytes; the rest is the body.  Any other stream is the body itself, sent
with status 200 and the stream's content type (AWS's default for a stream without a prelude).
A function that does not stream is answered whole, as a buffered URL would be.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from lamina.invocation.streaming import ChunkQueue
from lamina.web.connection import Headers, Streamed

HTTP_INTEGRATION = "application/vnd.awslambda.http-integration-response"
DELIMITER = b"\0" * 8
PRELUDE_MAX = 64 * 1024  # a prelude is headers: more than this and it is not one


async def streamed_reply(queue: ChunkQueue, task: asyncio.Future[Any]) -> Streamed:
    """The reply of a response that has started streaming (``queue.started`` said so)."""
    chunks = queue.chunks(task)
    status, headers, first = 200, [(b"content-type", queue.content_type.encode("latin-1"))], b""
    if queue.content_type == HTTP_INTEGRATION:
        status, headers, first = await _prelude(chunks)
    return Streamed(status, headers, _body(first, chunks, task))


async def _prelude(chunks: AsyncIterator[bytes]) -> tuple[int, Headers, bytes]:
    """Read up to the delimiter: (status, headers, what followed it)."""
    seen = b""
    at = -1
    async for chunk in chunks:
        seen += chunk
        at = seen.find(DELIMITER)
        if at >= 0 or len(seen) > PRELUDE_MAX:
            break
    if at < 0:
        return 200, [(b"content-type", b"application/octet-stream")], seen
    try:
        prelude = json.loads(seen[:at])
    except (ValueError, RecursionError):
        prelude = {}
    if not isinstance(prelude, dict):
        prelude = {}
    status = prelude.get("statusCode", 200)
    headers: Headers = []
    for name, value in (prelude.get("headers") or {}).items():
        headers.append(
            (str(name).lower().encode("latin-1", "replace"), str(value).encode("latin-1", "replace"))
        )
    for cookie in prelude.get("cookies") or []:
        headers.append((b"set-cookie", str(cookie).encode("latin-1", "replace")))
    if not any(name == b"content-type" for name, _ in headers):
        headers.append((b"content-type", b"application/octet-stream"))
    code = int(status) if isinstance(status, int) or str(status).isdigit() else 200
    return code, headers, seen[at + len(DELIMITER) :]


async def _body(
    first: bytes, chunks: AsyncIterator[bytes], task: asyncio.Future[Any]
) -> AsyncIterator[bytes]:
    try:
        if first:
            yield first
        async for chunk in chunks:
            yield chunk
    finally:
        if not task.done():
            task.cancel()  # the client went away mid-stream
