"""Destinations and dead-letter queues of async events: AWS's invocation record, delivered durably.

AWS ("Capturing records of Lambda asynchronous invocations"): after an async event succeeds its
``OnSuccess`` destination gets an invocation record; when it is discarded (retries exhausted, or
too old) its ``OnFailure`` destination gets one and the function's ``DeadLetterConfig`` queue or
topic gets the event itself, with RequestID, ErrorCode and ErrorMessage message attributes.  A
destination may be a lamina function (queued into lamina's own async queue, as an Event invoke),
an SQS queue, an SNS topic, an EventBridge bus or (``OnFailure`` only) an S3 bucket, reached with
boto3 at the endpoint the server's environment names (``Settings.aws_endpoints``) or real AWS.

Never silently dropped: the final hook commits every delivery to the outbox table before the
event leaves the queue; a worker sends them and deletes each one only once its target accepted
it.  A failed try is logged (request id, target ARN, error), counted (per row and in ``stats``)
and retried after 1 s doubling up to 5 min, for as long as it takes, across restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from lamina.aio import stop_task
from lamina.invocation.retries import FinalCondition, FinalResult, RetryPolicy, log_final
from lamina.store.deliveries import Delivery
from lamina.store.metadata import MetadataStore, QueuedEvent
from lamina.telemetry.metrics import MetricsRegistry

log = logging.getLogger("lamina.destinations")

BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 300.0
BATCH = 32
ERROR_MESSAGE_MAX = 1024  # AWS: "The first 1 KB of the error message"
# Remote calls fail fast; the outbox does the retrying (with its own backoff).
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 20.0

# Invokes the lamina function an ARN names, asynchronously, with a payload (the record).
SubmitFunction = Callable[[str, bytes], Awaitable[None]]

# What Lambda puts on an EventBridge bus.  AWS's guide now names the source ``aws.lambda``, but
# its earlier text and the events users captured from real buses say ``lambda``; and EventBridge
# keeps ``aws.`` sources for AWS services (NotAuthorizedForSourceException), so lamina, which
# calls PutEvents as a customer of the bus's account, uses ``lambda``.
EVENT_SOURCE = "lambda"
DETAIL_TYPE = "Lambda Function Invocation Result - {kind}"


# The largest message each service takes (SQS, SNS: 256 KiB; an EventBridge entry: 256 KB).
MESSAGE_LIMITS = {"sqs": 262_144, "sns": 262_144, "events": 256_000}


def _service(arn: str) -> str:
    parts = arn.split(":")
    return parts[2] if len(parts) > 5 else ""


def _region(arn: str) -> str:
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 else ""


def _resource(arn: str) -> str:
    """The part after the account: a queue's or topic's name, ``event-bus/NAME``, a bucket's name."""
    return arn.split(":", 5)[5] if arn.count(":") >= 5 else ""


def _json_or_text(payload: bytes) -> Any:
    if not payload:
        return None
    try:
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return payload.decode(errors="replace")


def timestamp(now: float) -> str:
    """AWS's record timestamp: ISO 8601 in UTC with milliseconds, e.g. 2019-11-14T18:16:05.568Z."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def s3_key(function_name: str, now: float) -> str:
    """AWS's object name for a record in an S3 destination:
    ``aws/lambda/async/<function-name>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<random UUID>``."""
    at = datetime.fromtimestamp(now, UTC)
    return f"aws/lambda/async/{function_name}/{at:%Y/%m/%d}/{at:%Y-%m-%dT%H.%M.%S}-{uuid.uuid4()}"


def record_function_arn(event: QueuedEvent, result: FinalResult) -> str:
    """The ARN the event was invoked with, qualified (``:$LATEST`` added when it was not)."""
    arn = event.invoked_arn
    return arn if arn.count(":") > 6 else f"{arn}:{result.executed_version}"


def invocation_record(
    event: QueuedEvent, condition: FinalCondition, result: FinalResult, now: float
) -> dict[str, Any]:
    """The record AWS sends to a destination (version 1.0)."""
    runs = event.attempts if result.ran else event.attempts - 1  # an expired event's lease ran nothing
    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": timestamp(now),
        "requestContext": {
            "requestId": event.request_id,
            "functionArn": record_function_arn(event, result),
            "condition": condition.value,
            "approximateInvokeCount": max(runs, 0),
        },
        "requestPayload": _json_or_text(event.payload),
    }
    if result.ran:
        response: dict[str, Any] = {"statusCode": 200, "executedVersion": result.executed_version}
        if result.function_error is not None:
            response["functionError"] = result.function_error
        record["responseContext"] = response
        record["responsePayload"] = _json_or_text(result.payload)
    return record


def dead_letter_attributes(
    event: QueuedEvent, condition: FinalCondition, result: FinalResult
) -> dict[str, str]:
    """RequestID, ErrorCode (the 3-digit status of the last run) and the first 1 KB of its error."""
    message = ""
    if result.ran:
        body = _json_or_text(result.payload)
        message = str(body.get("errorMessage", "")) if isinstance(body, dict) else str(body or "")
        message = message or (result.function_error or "")
    else:
        message = "Event age exceeded the function's MaximumEventAgeInSeconds"
    return {
        "RequestID": event.request_id,
        "ErrorCode": "200",
        "ErrorMessage": message.encode()[:ERROR_MESSAGE_MAX].decode(errors="ignore") or condition.value,
    }


def plan(
    event: QueuedEvent, condition: FinalCondition, policy: RetryPolicy, result: FinalResult, now: float
) -> list[Delivery]:
    """The deliveries an event's final outcome makes: its destination's record, its dead letter."""
    success = condition is FinalCondition.SUCCESS
    out: list[Delivery] = []
    target = (policy.destinations.get("OnSuccess" if success else "OnFailure") or {}).get("Destination")
    if target:
        record = invocation_record(event, condition, result, now)
        body = json.dumps(record)
        limit = MESSAGE_LIMITS.get(_service(target))
        if limit is not None and len(body.encode()) > limit:
            # AWS: "If the combined size of the function request and response payload exceeds
            # the limit, Lambda will drop the payload" -- the record goes without them.
            record.pop("requestPayload", None)
            record.pop("responsePayload", None)
            body = json.dumps(record)
        data: dict[str, Any] = {
            "kind": "record",
            "detail_type": DETAIL_TYPE.format(kind="Success" if success else "Failure"),
            "function_arn": record["requestContext"]["functionArn"],
            "region": event.region,
        }
        if _service(target) == "s3":
            # Named once, here: a retried delivery rewrites the same object instead of adding one.
            data["s3_key"] = s3_key(event.function_name, now)
        out.append(Delivery(event.request_id, target, body, data))
    # AWS sends a discarded event to the dead-letter queue whether or not OnFailure is set.
    if not success and result.dead_letter_arn:
        attributes = dead_letter_attributes(event, condition, result)
        body = event.payload.decode(errors="replace")
        out.append(
            Delivery(
                event.request_id,
                result.dead_letter_arn,
                body,
                {"kind": "dead_letter", "attributes": attributes, "function_arn": event.invoked_arn},
            )
        )
    return out


def _message_attributes(attributes: Mapping[str, str]) -> dict[str, dict[str, str]]:
    return {
        name: {"DataType": "Number" if name == "ErrorCode" else "String", "StringValue": value}
        for name, value in attributes.items()
    }


class DeliveryFailed(Exception):
    pass


class RemoteTargets:
    """boto3 clients per (service, region), built lazily in worker threads; calls block (run them
    with ``asyncio.to_thread``).  Credentials come from boto3's usual chain in the server's
    environment; endpoints from ``Settings.aws_endpoints`` (absent: real AWS)."""

    def __init__(self, endpoints: Mapping[str, str]) -> None:
        self._endpoints = dict(endpoints)
        self._lock = threading.Lock()  # boto3 sessions are not thread-safe; clients are
        self._session: Any = None
        self._clients: dict[tuple[str, str], Any] = {}
        self._queue_urls: dict[str, str] = {}

    def client(self, service: str, region: str) -> Any:
        with self._lock:
            client = self._clients.get((service, region))
            if client is None:
                import boto3  # deferred: only servers that deliver remotely pay for it
                from botocore.config import Config

                if self._session is None:
                    self._session = boto3.session.Session()
                endpoint = self._endpoints.get(service)
                client = self._session.client(
                    service,
                    region_name=region,
                    endpoint_url=endpoint,
                    config=Config(
                        connect_timeout=CONNECT_TIMEOUT_S,
                        read_timeout=READ_TIMEOUT_S,
                        retries={"max_attempts": 1, "mode": "standard"},
                        # A self-hosted S3 (moto, MinIO, LocalStack) is addressed by path, not by
                        # a bucket host name that would not resolve.
                        s3={"addressing_style": "path"} if service == "s3" and endpoint else None,
                    ),
                )
                self._clients[(service, region)] = client
            return client

    def send(self, delivery: Delivery, function_arn: str) -> None:
        arn = delivery.target_arn
        # A bucket's ARN names no region: the function's (S3 redirects a client to the bucket's).
        service = _service(arn)
        region = _region(arn) or delivery.data.get("region") or _region(function_arn) or "us-east-1"
        attributes = _message_attributes(delivery.data.get("attributes") or {})
        if service == "sqs":
            sqs = self.client("sqs", region)
            url = self._queue_urls.get(arn)
            if url is None:
                account, name = arn.split(":")[4], arn.split(":")[5]
                url = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
                self._queue_urls[arn] = url
            sqs.send_message(QueueUrl=url, MessageBody=delivery.body, MessageAttributes=attributes)
        elif service == "sns":
            sns = self.client("sns", region)
            sns.publish(TopicArn=arn, Message=delivery.body, MessageAttributes=attributes)
        elif service == "events":
            entry = {
                "Source": EVENT_SOURCE,
                "DetailType": delivery.data.get("detail_type", "Lambda Function Invocation Result"),
                "Detail": delivery.body,
                "EventBusName": arn,
                # AWS: "the function and destination ARNs" (the bus first, as AWS's events have it).
                "Resources": [arn, function_arn] if function_arn else [arn],
            }
            out = self.client("events", region).put_events(Entries=[entry])
            if out.get("FailedEntryCount"):
                failed = out["Entries"][0]
                raise DeliveryFailed(f"{failed.get('ErrorCode')}: {failed.get('ErrorMessage')}")
        elif service == "s3" and delivery.data.get("kind") == "record":
            function_name = function_arn.split(":")[6] if function_arn.count(":") >= 6 else "unknown"
            key = delivery.data.get("s3_key") or s3_key(function_name, time.time())
            self.client("s3", region).put_object(
                Bucket=_resource(arn),
                Key=key,
                Body=delivery.body.encode(),
                ContentType="application/json",
            )
        else:
            raise DeliveryFailed(f"lamina does not deliver to {service or 'this kind of'} targets yet")


class DeliveryOutbox:
    """The ``on_final`` hook and the worker that empties the outbox."""

    def __init__(
        self,
        store: MetadataStore,
        submit: SubmitFunction,
        remote: RemoteTargets,
        metrics: MetricsRegistry | None = None,
    ) -> None:
        self._store = store
        self._metrics = MetricsRegistry() if metrics is None else metrics
        self._submit = submit
        self._remote = remote
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.stats = {"delivered": 0, "failed_tries": 0}  # since start; rows keep their own count

    async def on_final(
        self, event: QueuedEvent, condition: FinalCondition, policy: RetryPolicy, result: FinalResult
    ) -> None:
        log_final(event, condition)
        await self.submit(plan(event, condition, policy, result, time.time()))

    async def submit(self, items: list[Delivery]) -> None:
        """Commit deliveries to the outbox (they are delivered, and retried, from there)."""
        if items:
            await self._store.call(self._store.add_deliveries, items, time.time())
            self._wake.set()

    def notify(self) -> None:
        """Deliveries were committed by another writer (a schedule's dead letters): look now."""
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="lamina-destinations")

    async def close(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            self._wake.clear()  # before reading: a row committed after this wakes the wait below
            try:
                due = await self._store.call(self._store.due_deliveries, BATCH, time.time())
                if due:
                    await asyncio.gather(*(self._deliver(d) for d in due))
                    continue
                next_due = await self._store.call(self._store.next_delivery_due)
            except Exception:  # the store failed: keep the worker alive and look again later
                log.exception("could not read the destination outbox")
                next_due = time.time() + BACKOFF_MIN_S
            timeout = None if next_due is None else max(next_due - time.time(), 0.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _deliver(self, d: Delivery) -> None:
        function_arn = d.data.get("function_arn", "")
        try:
            if _service(d.target_arn) == "lambda":
                await self._submit(d.target_arn, d.body.encode())
            else:
                await asyncio.to_thread(self._remote.send, d, function_arn)
        except Exception as exc:
            # Anything: a refused connection, an AWS error, a function deleted since. Retried.
            failures = d.attempts + 1
            delay = min(BACKOFF_MIN_S * 2.0 ** (failures - 1), BACKOFF_MAX_S)
            self.stats["failed_tries"] += 1
            self._metrics.delivery_failed(function_arn, dead_letter=d.data.get("kind") == "dead_letter")
            log.warning(
                "destination delivery failed; retrying",
                extra={
                    "request_id": d.request_id,
                    "destination": d.target_arn,
                    "kind": d.data.get("kind"),
                    "error": f"{type(exc).__name__}: {exc}"[:500],
                    "failures": failures,
                    "retry_in_s": delay,
                },
            )
            await self._store.call(self._store.retry_delivery, d.id, time.time() + delay)
            return
        await self._store.call(self._store.finish_delivery, d.id)
        self.stats["delivered"] += 1
        log.info(
            "destination delivered",
            extra={"request_id": d.request_id, "destination": d.target_arn, "kind": d.data.get("kind")},
        )
