"""The HTTP/1.1 server plumbing lamina's two servers share: the API front (``web.connection``)
and each environment's Runtime API (``execution.runtime_http``).

``Http1Connection`` feeds bytes to ``httptools`` and maps its failures to a reply that closes the
connection; keeps the URL of the request being parsed; queues complete requests so they are
answered strictly in order (pipelining), and stops reading past ``PIPELINE_DEPTH`` queued
requests until the queue drains; aborts a connection without ever writing a second answer over
one still due.  Subclasses parse headers and bodies their own way and answer their own way.

Concurrency invariants: event loop only.  ``closed`` is set before the transport is closed and
is final; ``busy`` means a request was taken and its answer is not written yet.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Generic, TypeVar, cast

import httptools

log = logging.getLogger("lamina.http")

PIPELINE_DEPTH = 16  # requests queued behind a busy one before we stop reading the connection

R = TypeVar("R")


class Http1Connection(asyncio.Protocol, Generic[R]):
    PARSER_BUG: bytes = b""  # the reply to an exception raised in a parser callback (a bug of ours)
    MALFORMED: bytes = b""  # the reply to bytes httptools cannot parse
    NAME = "http"  # for logs

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.closed = False
        self.busy = False
        self._paused = False
        self._queue: deque[R] = deque()
        self._url = b""

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: a cast, not an isinstance check
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.closed or not self._accepting():
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError:
            log.exception("%s: request handling failed", self.NAME)
            self._abort(self.PARSER_BUG)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            self._abort(self.MALFORMED)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._queue.clear()
        self._lost()

    # -- hooks ---------------------------------------------------------------------------

    def _accepting(self) -> bool:
        """Whether bytes just received may be parsed (else the subclass has dealt with them)."""
        return True

    def _lost(self) -> None:
        """The connection is gone."""

    # -- httptools callbacks and the queue ---------------------------------------------------

    def on_url(self, url: bytes) -> None:
        self._url += url

    def _enqueue(self, request: R) -> None:
        """A complete request joins the queue; past PIPELINE_DEPTH waiting, stop reading."""
        self._queue.append(request)
        if len(self._queue) > PIPELINE_DEPTH and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def _resume_if_drained(self) -> None:
        if self._paused and not self._queue and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()

    def _abort(self, reply: bytes) -> None:
        """Close now, answering with ``reply`` -- unless an answer is still due (``busy``): a second
        one would be read as that answer."""
        if self.closed:
            return
        self.closed = True
        self._queue.clear()
        if self.transport is not None:
            if not self.busy and reply:
                self.transport.write(reply)
            self.transport.close()
