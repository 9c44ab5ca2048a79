"""The stream poller of an event source mapping (Kinesis, DynamoDB Streams), as Lambda reads them.

One worker per shard reads in order from the mapping's checkpoint (else ``StartingPosition``),
up to ``BatchSize`` records within ``MaximumBatchingWindowInSeconds``, and hands them to the
function; the shard advances only once the batch is settled -- succeeded, or discarded after
``MaximumRetryAttempts`` / ``MaximumRecordAgeInSeconds`` (-1: until the record expires), with
``BisectBatchOnFunctionError`` splitting a failing batch (splits do not count as retries) and a
record of each discarded batch sent to ``DestinationConfig.OnFailure``.  With
``ReportBatchItemFailures`` a partial failure (``itemIdentifier`` = sequence number) retries
from the first failed record.  ``ParallelizationFactor`` > 1 processes each batch as that many
sub-batches at once, split by partition key, so each key keeps its order.  A closed shard's
children start once it is finished (resharding).  ``TumblingWindowInSeconds`` carries the
function's returned ``state`` across the invocations of a window, with a final invocation
(``isFinalInvokeForWindow``) when the window ends.  Checkpoints are stored: a restart resumes
after the last settled record.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from lamina.errors import AwsError
from lamina.events.patterns import Matcher
from lamina.events.sqs import failed_items
from lamina.events.stream_sources import Shard, StreamSource
from lamina.store.esm import SHARD_END

log = logging.getLogger("lamina.events.streams")

IDLE_S = 1.0  # a shard with nothing new is read again after this (AWS: once a second)
SHARD_REFRESH_S = 10.0
RETRY_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)

Invoke = Callable[[bytes], Awaitable[tuple[str | None, bytes]]]
RunBlocking = Callable[..., Awaitable[Any]]
Discard = Callable[
    [str, str, list[dict[str, Any]], int, str | None], Awaitable[None]
]  # shard, why, raws, tries, error
Checkpoint = Callable[[str, str], Awaitable[None]]


class StreamPoller:
    def __init__(
        self,
        *,
        source: StreamSource,
        settings: dict[str, Any],
        checkpoints: dict[str, str],
        run_blocking: RunBlocking,
        invoke: Invoke,
        save: Checkpoint,
        discard: Discard,
        on_result: Callable[[str], None],
        role: str,
        filters: list[Matcher],
        iterator_age: Callable[[float], None] = lambda age_ms: None,
    ) -> None:
        self._filters = filters
        self._iterator_age = iterator_age  # AWS/Lambda IteratorAge, per batch handed to the function
        self._source = source
        self._s = settings
        self._checkpoints = checkpoints
        self._run = run_blocking
        self._invoke = invoke
        self._save = save
        self._discard = discard
        self._on_result = on_result
        self._role = role
        self._workers: dict[str, asyncio.Task[None]] = {}

    async def run(self) -> None:
        try:
            while True:
                try:
                    shards = await self._run(self._source.shards)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._on_result(f"PROBLEM: {type(exc).__name__}: {exc}")
                    log.warning(
                        "stream shards unreadable", extra={"stream": self._source.arn, "error": str(exc)}
                    )
                    shards = []
                known = {s.shard_id for s in shards}
                for shard in shards:
                    parent_done = (
                        shard.parent_id is None
                        or shard.parent_id not in known
                        or self._checkpoints.get(shard.parent_id) == SHARD_END
                    )
                    if (
                        shard.shard_id not in self._workers
                        and parent_done
                        and self._checkpoints.get(shard.shard_id) != SHARD_END
                    ):
                        task = asyncio.get_running_loop().create_task(self._shard(shard))
                        self._workers[shard.shard_id] = task
                await asyncio.sleep(SHARD_REFRESH_S)
        finally:
            for task in self._workers.values():
                task.cancel()

    # -- one shard --------------------------------------------------------------------------
    async def _shard(self, shard: Shard) -> None:
        sid = shard.shard_id
        position = str(self._s.get("StartingPosition") or "LATEST")
        at = self._s.get("StartingPositionTimestamp")
        iterator: str | None = None
        window = _Window(int(self._s.get("TumblingWindowInSeconds") or 0))
        while True:
            try:
                if iterator is None:
                    iterator = await self._run(
                        self._source.iterator,
                        sid,
                        after=self._checkpoints.get(sid),
                        position=position,
                        at=None if at is None else float(at),
                    )
                raws, iterator = await self._gather(iterator)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # expired iterator, throttled read, stream gone: read again
                self._on_result(f"PROBLEM: {type(exc).__name__}: {exc}")
                log.warning(
                    "stream read failed", extra={"stream": self._source.arn, "shard": sid, "error": str(exc)}
                )
                iterator = None
                await asyncio.sleep(RETRY_S[0])
                continue
            if window.size and window.over() and window.started:
                await self._final_window_invoke(sid, window)
            if raws:
                await self._settle(sid, raws, window)
            if iterator is None:  # a closed shard, read to its end: its children may start
                self._checkpoints[sid] = SHARD_END
                await self._save(sid, SHARD_END)
                return
            if not raws:
                await asyncio.sleep(IDLE_S)

    async def _gather(self, iterator: str) -> tuple[list[dict[str, Any]], str | None]:
        batch = int(self._s.get("BatchSize") or 100)
        window = float(self._s.get("MaximumBatchingWindowInSeconds") or 0)
        deadline = time.monotonic() + window
        out: list[dict[str, Any]] = []
        next_it: str | None = iterator
        while next_it is not None and len(out) < batch:
            got, next_it = await self._run(self._source.read, next_it, batch - len(out))
            out.extend(got)
            if not got and (not window or time.monotonic() >= deadline):
                break
            if not got:
                await asyncio.sleep(min(IDLE_S, max(deadline - time.monotonic(), 0)))
        return out, next_it

    async def _settle(self, sid: str, read: list[dict[str, Any]], window: _Window) -> None:
        raws = [r for r in read if self._passes(r, sid)]  # filtered-out records are skipped
        factor = max(1, int(self._s.get("ParallelizationFactor") or 1))
        if not raws:
            pass
        elif factor == 1:
            await self._deliver(sid, raws, window)
        else:
            groups: list[list[dict[str, Any]]] = [[] for _ in range(factor)]
            for raw in raws:
                groups[zlib.crc32(self._source.partition_key(raw).encode()) % factor].append(raw)
            await asyncio.gather(*(self._deliver(sid, g, window) for g in groups if g))
        last = self._source.sequence(read[-1])
        self._checkpoints[sid] = last
        await self._save(sid, last)

    def _passes(self, raw: dict[str, Any], sid: str) -> bool:
        if not self._filters:
            return True
        view = self._source.filter_view(raw, sid, self._role)
        return any(f(view) for f in self._filters)

    async def _deliver(self, sid: str, raws: list[dict[str, Any]], window: _Window) -> None:
        """Settle one batch: invoke until it succeeds or is discarded (see the module docstring)."""
        tries_setting = self._s.get("MaximumRetryAttempts")
        max_tries = -1 if tries_setting is None else int(tries_setting)
        max_age = int(self._s.get("MaximumRecordAgeInSeconds") or -1)
        bisect = bool(self._s.get("BisectBatchOnFunctionError"))
        report = "ReportBatchItemFailures" in (self._s.get("FunctionResponseTypes") or [])
        pending = [raws]
        retries = 0
        while pending:
            batch = pending[0]
            if max_age >= 0 and time.time() - self._source.arrival(batch[0]) > max_age:
                await self._discard(sid, "RecordAgeExceeded", batch, retries + 1, None)
                pending.pop(0)
                retries = 0
                continue
            self._iterator_age(max(time.time() - self._source.arrival(batch[-1]), 0.0) * 1000)
            try:
                error, response = await self._invoke(self._payload(sid, batch, window))
            except AwsError as exc:  # throttled (or the function is gone): retried, not counted
                self._on_result(f"PROBLEM: {exc.code}")
                await asyncio.sleep(RETRY_S[min(retries, len(RETRY_S) - 1)])
                continue
            failed_from: int | None = 0 if error is not None else None
            if error is None and report:
                seqs = {self._source.sequence(r): i for i, r in enumerate(batch)}
                failed = failed_items(response, set(seqs))
                failed_from = 0 if failed is None else (min(seqs[s] for s in failed) if failed else None)
            if failed_from is None:
                window.absorb(response)
                pending.pop(0)
                retries = 0
                self._on_result("OK")
                continue
            self._on_result("PROBLEM: Function call failed")
            if failed_from > 0:  # the records before the first failure are done
                batch = pending[0] = batch[failed_from:]
            if bisect and len(batch) > 1:  # a split is not a retry (AWS)
                half = len(batch) // 2
                pending[0:1] = [batch[:half], batch[half:]]
                continue
            retries += 1
            if max_tries >= 0 and retries > max_tries:
                await self._discard(sid, "RetryAttemptsExhausted", batch, retries, error or "Unhandled")
                pending.pop(0)
                retries = 0
                continue
            await asyncio.sleep(RETRY_S[min(retries - 1, len(RETRY_S) - 1)])

    def _payload(self, sid: str, raws: list[dict[str, Any]], window: _Window, final: bool = False) -> bytes:
        event: dict[str, Any] = {"Records": [self._source.record(r, sid, self._role) for r in raws]}
        if window.size:
            window.start_if_needed()
            event.update(
                window={"start": _iso(window.start), "end": _iso(window.start + window.size)},
                state=window.state,
                shardId=sid,
                eventSourceARN=self._source.arn,
                isFinalInvokeForWindow=final,
                isWindowTerminatedEarly=False,
            )
        return json.dumps(event).encode()

    async def _final_window_invoke(self, sid: str, window: _Window) -> None:
        try:
            await self._invoke(self._payload(sid, [], window, final=True))
        except AwsError as exc:
            log.warning("final window invoke failed", extra={"stream": self._source.arn, "error": exc.code})
        window.reset()


class _Window:
    """A tumbling window's bounds and the state the function carries through it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.start = 0.0
        self.started = False
        self.state: dict[str, Any] = {}

    def start_if_needed(self) -> None:
        if not self.started:
            self.start = time.time() // self.size * self.size
            self.started = True

    def over(self) -> bool:
        return self.started and time.time() >= self.start + self.size

    def absorb(self, response: bytes) -> None:
        if not self.size:
            return
        try:
            body = json.loads(response)
        except (ValueError, RecursionError):
            return
        if isinstance(body, dict) and isinstance(body.get("state"), dict):
            self.state = body["state"]

    def reset(self) -> None:
        self.started = False
        self.state = {}


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def discard_record(
    *,
    function_arn: str,
    condition: str,
    tries: int,
    error: str | None,
    batch_key: str,
    batch_info: dict[str, Any],
) -> dict[str, Any]:
    """The OnFailure record of a discarded stream batch (AWS's shape)."""
    response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
    if error is not None:
        response["functionError"] = error
    return {
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": tries,
        },
        "responseContext": response,
        "version": "1.0",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        batch_key: batch_info,
    }
