"""The SQS poller of an event source mapping: receive, filter, invoke, delete -- as Lambda does.

Each poller long-polls the queue for up to ``BatchSize`` messages (10 per ReceiveMessage; more
within ``MaximumBatchingWindowInSeconds``, never more than the 6 MB invoke payload), builds
AWS's event (``Records`` of ``aws:sqs`` records), drops what the mapping's FilterCriteria reject
(deleted, as Lambda deletes filtered-out messages), invokes the function synchronously and
deletes what succeeded.  A function error leaves the batch on the queue: its messages come back
after their visibility timeout (and go to the queue's redrive DLQ after maxReceiveCount, as on
AWS).  With ``FunctionResponseTypes: [ReportBatchItemFailures]`` only the messages named in the
response's ``batchItemFailures`` stay; a response that is not a valid report fails the whole
batch.  A throttle (429) leaves the batch too and the poller backs off.  ``ScalingConfig.
MaximumConcurrency`` pollers run side by side (SQS FIFO queues keep each message group in order
themselves: a group with messages in flight hands out no more).

Blocking boto3 calls run on the mapping service's own thread pool (``run_blocking``), so a
long poll never ties up the event loop or the default executor.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from lamina.errors import AwsError
from lamina.events.patterns import Matcher

log = logging.getLogger("lamina.events.sqs")

WAIT_S = 5  # long-poll seconds per ReceiveMessage (short enough to stop promptly)
PAYLOAD_MAX = 6 * 1024 * 1024 - 1024  # the invoke payload limit, with room for the envelope
BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)

Invoke = Callable[[bytes], Awaitable[tuple[str | None, bytes]]]  # payload -> (function error, response)
RunBlocking = Callable[..., Awaitable[Any]]


def record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """A ReceiveMessage message as the record Lambda puts in the event."""
    out: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": {
            name: _message_attribute(value)
            for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
    }
    if message.get("MD5OfMessageAttributes"):
        out["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    out.update(eventSource="aws:sqs", eventSourceARN=queue_arn, awsRegion=region)
    return out


def _message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": value.get("DataType", ""),
    }
    if "StringValue" in value:
        out["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        out["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    return out


def filter_view(rec: dict[str, Any]) -> dict[str, Any]:
    """What a FilterCriteria pattern sees: the record, its body parsed when it is JSON."""
    body = rec["body"]
    try:
        parsed: Any = json.loads(body)
    except (ValueError, RecursionError):
        parsed = body
    return {**rec, "body": parsed}


def failed_items(response: bytes, ids: set[str]) -> set[str] | None:
    """The message ids a ReportBatchItemFailures response names; None when it is not a valid report
    (AWS then fails the whole batch).  An empty or null list, or no response at all, is success."""
    if not response.strip() or response.strip() == b"null":
        return set()
    try:
        body = json.loads(response)
    except (ValueError, RecursionError):
        return None
    if not isinstance(body, dict):
        return set()
    failures = body.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return None
    out = set()
    for item in failures:
        ident = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(ident, str) or ident not in ids:
            return None  # an empty, null or unknown identifier fails the batch (AWS)
        out.add(ident)
    return out


class SqsPoller:
    def __init__(
        self,
        *,
        queue_arn: str,
        settings: dict[str, Any],
        filters: Sequence[Matcher],
        client: Any,
        run_blocking: RunBlocking,
        invoke: Invoke,
        on_result: Callable[[str], None],
    ) -> None:
        parts = queue_arn.split(":")
        self._arn = queue_arn
        self._region, self._account, self._name = parts[3], parts[4], parts[5]
        self._batch = int(settings.get("BatchSize") or 10)
        self._window = float(settings.get("MaximumBatchingWindowInSeconds") or 0)
        self._report = "ReportBatchItemFailures" in (settings.get("FunctionResponseTypes") or [])
        self._filters = list(filters)
        self._client = client
        self._run = run_blocking
        self._invoke = invoke
        self._on_result = on_result
        self._url: str | None = None
        self._failures = 0

    async def run(self) -> None:
        """Poll until cancelled; errors from SQS are logged and retried with backoff."""
        while True:
            try:
                if self._url is None:
                    self._url = (
                        await self._run(
                            self._client.get_queue_url,
                            QueueName=self._name,
                            QueueOwnerAWSAccountId=self._account,
                        )
                    )["QueueUrl"]
                messages = await self._gather()
                if messages:
                    await self._process(messages)
                self._failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # boto3/botocore errors: the queue is gone, unreachable, ...
                delay = BACKOFF_S[min(self._failures, len(BACKOFF_S) - 1)]
                self._failures += 1
                self._url = None
                self._on_result(f"PROBLEM: {type(exc).__name__}: {exc}")
                log.warning(
                    "sqs poll failed; retrying",
                    extra={"queue": self._arn, "error": str(exc), "retry_in_s": delay},
                )
                await asyncio.sleep(delay)

    async def _gather(self) -> list[dict[str, Any]]:
        """One batch: a long poll, then more receives while the batching window is open."""
        out: list[dict[str, Any]] = []
        size = 0
        deadline = time.monotonic() + self._window
        while len(out) < self._batch:
            left = deadline - time.monotonic()
            wait = WAIT_S if not out else max(0, min(WAIT_S, int(left)))
            got = (
                await self._run(
                    self._client.receive_message,
                    QueueUrl=self._url,
                    MaxNumberOfMessages=min(10, self._batch - len(out)),
                    WaitTimeSeconds=wait,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                )
            ).get("Messages", [])
            for message in got:
                size += len(message.get("Body", "")) + 1024
                out.append(message)
            if not out or left <= 0 or size >= PAYLOAD_MAX or (not got and out):
                break
        return out

    async def _process(self, messages: list[dict[str, Any]]) -> None:
        records = [record(m, self._arn, self._region) for m in messages]
        if self._filters:
            kept = [r for r in records if any(f(filter_view(r)) for f in self._filters)]
            dropped = [r for r in records if r not in kept]
            await self._delete(dropped)
            records = kept
        if not records:
            return
        try:
            error, response = await self._invoke(json.dumps({"Records": records}).encode())
        except AwsError as exc:  # throttled, or the function is gone: the batch stays on the queue
            self._on_result(f"PROBLEM: {exc.code}")
            log.warning("sqs batch not invoked", extra={"queue": self._arn, "error": exc.code})
            await asyncio.sleep(BACKOFF_S[0])
            return
        if error is not None:
            self._on_result("PROBLEM: Function call failed")
            return  # back on the queue after its visibility timeout
        done = records
        if self._report:
            failed = failed_items(response, {r["messageId"] for r in records})
            if failed is None:
                self._on_result("PROBLEM: Invalid batchItemFailures in the function response")
                return
            done = [r for r in records if r["messageId"] not in failed]
        await self._delete(done)
        self._on_result("OK")

    async def _delete(self, records: list[dict[str, Any]]) -> None:
        for i in range(0, len(records), 10):
            chunk = records[i : i + 10]
            entries = [{"Id": str(n), "ReceiptHandle": r["receiptHandle"]} for n, r in enumerate(chunk)]
            out = await self._run(self._client.delete_message_batch, QueueUrl=self._url, Entries=entries)
            if out.get("Failed"):
                log.warning("sqs delete failed", extra={"queue": self._arn, "failed": out["Failed"]})
