"""Destination planning: which targets an event's final outcome reaches, and what they get."""

from __future__ import annotations

import json

from lamina.invocation.destinations import plan, timestamp
from lamina.invocation.retries import FinalCondition, FinalResult, RetryPolicy
from lamina.store.metadata import QueuedEvent

ARN = "arn:aws:lambda:us-east-1:123456789012:function:f"
QUEUE = "arn:aws:sqs:us-east-1:123456789012:q"
TOPIC = "arn:aws:sns:us-east-1:123456789012:t"


def _event(attempts: int = 3) -> QueuedEvent:
    return QueuedEvent(1, "req-1", "us-east-1", "f", "$LATEST", ARN, b'{"n": 1}', None, 0.0, attempts, 0)


def _policy() -> RetryPolicy:
    return RetryPolicy(
        destinations={"OnSuccess": {"Destination": TOPIC}, "OnFailure": {"Destination": QUEUE}}
    )


def test_timestamp_is_utc_with_milliseconds() -> None:
    assert timestamp(1573755365.568) == "2019-11-14T18:16:05.568Z"


def test_success_goes_to_on_success_only() -> None:
    result = FinalResult("$LATEST", dead_letter_arn=QUEUE, payload=b'"ok"')
    (only,) = plan(_event(1), FinalCondition.SUCCESS, _policy(), result, 0.0)
    assert only.target_arn == TOPIC
    record = json.loads(only.body)
    assert record["requestContext"]["functionArn"] == ARN + ":$LATEST"
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
    assert record["responsePayload"] == "ok"


def test_an_expired_event_goes_to_on_failure_and_the_dead_letter_queue() -> None:
    result = FinalResult("$LATEST", dead_letter_arn=TOPIC, ran=False)
    record, letter = plan(_event(3), FinalCondition.EVENT_AGE_EXCEEDED, _policy(), result, 0.0)
    body = json.loads(record.body)
    assert body["requestContext"]["condition"] == "EventAgeExceeded"
    assert body["requestContext"]["approximateInvokeCount"] == 2  # the expiring lease ran nothing
    assert "responseContext" not in body and "responsePayload" not in body
    assert record.data["detail_type"] == "Lambda Function Invocation Result - Failure"
    assert letter.target_arn == TOPIC and letter.body == '{"n": 1}'
    assert letter.data["attributes"]["RequestID"] == "req-1"
    assert letter.data["attributes"]["ErrorMessage"]


def test_no_destinations_no_deliveries() -> None:
    result = FinalResult("$LATEST", payload=b'{"errorMessage": "x"}', function_error="Unhandled")
    assert plan(_event(), FinalCondition.RETRIES_EXHAUSTED, RetryPolicy(), result, 0.0) == []
