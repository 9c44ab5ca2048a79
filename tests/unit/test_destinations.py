"""Destination planning: which targets an event's final outcome reaches, and what they get."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from lamina.invocation.destinations import DeliveryFailed, RemoteTargets, plan, s3_key, timestamp
from lamina.invocation.retries import FinalCondition, FinalResult, RetryPolicy
from lamina.store.metadata import QueuedEvent

ARN = "arn:aws:lambda:us-east-1:123456789012:function:f"
QUEUE = "arn:aws:sqs:us-east-1:123456789012:q"
TOPIC = "arn:aws:sns:us-east-1:123456789012:t"
BUS = "arn:aws:events:us-east-1:123456789012:event-bus/b"
BUCKET = "arn:aws:s3:::bkt"


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


@pytest.mark.parametrize("target", [QUEUE, TOPIC, BUS])
def test_a_record_over_the_targets_limit_goes_without_its_payloads(target: str) -> None:
    big = json.dumps({"data": "x" * 200_000}).encode()
    event = QueuedEvent(1, "req-1", "us-east-1", "f", "$LATEST", ARN, big, None, 0.0, 1, 0)
    result = FinalResult("$LATEST", payload=big)
    policy = RetryPolicy(destinations={"OnSuccess": {"Destination": target}})
    (delivery,) = plan(event, FinalCondition.SUCCESS, policy, result, 0.0)
    record = json.loads(delivery.body)
    assert "requestPayload" not in record and "responsePayload" not in record
    assert record["requestContext"]["requestId"] == "req-1" and record["responseContext"]["statusCode"] == 200
    # a lamina function takes the whole record (its async payload limit is the invoke's)
    fn_policy = RetryPolicy(destinations={"OnSuccess": {"Destination": ARN + "2"}})
    small = QueuedEvent(1, "req-1", "us-east-1", "f", "$LATEST", ARN, b'{"n": 1}', None, 0.0, 1, 0)
    (whole,) = plan(small, FinalCondition.SUCCESS, fn_policy, FinalResult("$LATEST", payload=b"1"), 0.0)
    assert json.loads(whole.body)["requestPayload"] == {"n": 1}


def test_no_destinations_no_deliveries() -> None:
    result = FinalResult("$LATEST", payload=b'{"errorMessage": "x"}', function_error="Unhandled")
    assert plan(_event(), FinalCondition.RETRIES_EXHAUSTED, RetryPolicy(), result, 0.0) == []


def test_s3_key_is_awss_naming_convention() -> None:
    key = s3_key("f", 1573755365.568)
    assert re.fullmatch(
        r"aws/lambda/async/f/2019/11/14/2019-11-14T18\.16\.05-"
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        key,
    ), key
    assert s3_key("f", 0.0) != s3_key("f", 0.0)  # a random UUID each


def _failure_to(target: str) -> Any:
    policy = RetryPolicy(destinations={"OnFailure": {"Destination": target}})
    result = FinalResult("$LATEST", payload=b'{"errorMessage": "x"}', function_error="Unhandled")
    (only,) = plan(_event(), FinalCondition.RETRIES_EXHAUSTED, policy, result, 1573755365.568)
    return only


def test_an_s3_record_is_named_once_when_planned() -> None:
    d = _failure_to(BUCKET)
    assert d.data["s3_key"].startswith("aws/lambda/async/f/2019/11/14/2019-11-14T18.16.05-")
    assert d.data["function_arn"] == ARN + ":$LATEST" and d.data["region"] == "us-east-1"
    assert "s3_key" not in _failure_to(QUEUE).data


class _Fake:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def put_events(self, **kw: Any) -> dict[str, Any]:
        self.calls.append(("put_events", kw))
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "1"}]}

    def put_object(self, **kw: Any) -> dict[str, Any]:
        self.calls.append(("put_object", kw))
        return {}


def _remote(service: str) -> tuple[RemoteTargets, _Fake]:
    remote, fake = RemoteTargets({}), _Fake()
    remote._clients[(service, "us-east-1")] = fake  # no boto3: the calls are what is checked
    return remote, fake


def test_eventbridge_entry_is_awss() -> None:
    remote, fake = _remote("events")
    d = _failure_to(BUS)
    remote.send(d, d.data["function_arn"])
    ((op, kw),) = fake.calls
    (entry,) = kw["Entries"]
    assert op == "put_events"
    assert entry["Source"] == "lambda"
    assert entry["DetailType"] == "Lambda Function Invocation Result - Failure"
    assert entry["EventBusName"] == BUS
    assert entry["Resources"] == [BUS, ARN + ":$LATEST"]
    assert json.loads(entry["Detail"])["requestContext"]["condition"] == "RetriesExhausted"


def test_s3_record_is_put_under_its_planned_key_in_the_functions_region() -> None:
    remote, fake = _remote("s3")
    d = _failure_to(BUCKET)
    remote.send(d, d.data["function_arn"])
    remote.send(d, d.data["function_arn"])  # a retry rewrites the same object
    (op, first), (_, second) = fake.calls
    assert op == "put_object" and first == second
    assert first["Bucket"] == "bkt" and first["Key"] == d.data["s3_key"]
    assert first["ContentType"] == "application/json"
    assert json.loads(first["Body"]) == json.loads(d.body)


def test_a_dead_letter_to_s3_is_refused_not_dropped() -> None:
    remote, _ = _remote("s3")
    result = FinalResult("$LATEST", dead_letter_arn=BUCKET, payload=b"{}", function_error="Unhandled")
    (letter,) = plan(_event(), FinalCondition.RETRIES_EXHAUSTED, RetryPolicy(), result, 0.0)
    with pytest.raises(DeliveryFailed):
        remote.send(letter, ARN)
