"""Destinations and dead-letter queues delivered to SNS topics, EventBridge buses and S3 buckets,
with moto's server as the peer: what arrives is read back through moto (a queue subscribed to the
topic, a queue a bus rule targets, the bucket's objects)."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import LaminaServer, create_function, unique
from .peers import Moto, delivery_env
from .test_destinations import (
    ACCOUNT,
    FAILS,
    REGION,
    SUCCEEDS,
    invoke_event,
    make_queue,
    receive,
    wait_for_server_log,
)

pytest.importorskip("moto.server")

# Succeeds, or fails when the event says so: one function feeds both OnSuccess and OnFailure.
EITHER = (
    "def handler(event, context):\n"
    "    if event.get('fail'):\n"
    "        raise ValueError('boom ' + str(event['n']))\n"
    "    return {'doubled': event['n'] * 2}\n"
)
SUCCESS = "Lambda Function Invocation Result - Success"
FAILURE = "Lambda Function Invocation Result - Failure"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@pytest.fixture(scope="module")
def peer_server(tmp_path_factory: pytest.TempPathFactory, moto: Moto) -> Iterator[LaminaServer]:
    srv = LaminaServer(tmp_path_factory.mktemp("peers") / "data", extra_env=delivery_env(moto.url))
    srv.start()
    yield srv
    srv.stop()


def function_arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


def subscribe(moto: Moto, topic_arn: str, *, raw: bool) -> str:
    """A new queue subscribed to the topic (raw message delivery or not); its URL."""
    url, queue_arn = make_queue(moto)
    moto.client("sns").subscribe(
        TopicArn=topic_arn,
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes={"RawMessageDelivery": "true" if raw else "false"},
    )
    return url


def assert_failure_record(record: dict[str, Any], request_id: str, name: str, n: int) -> None:
    assert record["version"] == "1.0"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["timestamp"])
    assert record["requestContext"] == {
        "requestId": request_id,
        "functionArn": f"{function_arn(name)}:$LATEST",
        "condition": "RetriesExhausted",
        "approximateInvokeCount": 1,
    }
    assert record["requestPayload"] == {"n": n}
    assert record["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert record["responsePayload"]["errorType"] == "ValueError"
    assert record["responsePayload"]["errorMessage"] == f"boom {n}"


# -- SNS ------------------------------------------------------------------------------------------


def test_on_failure_to_sns_arrives_as_the_notification_message(peer_server: LaminaServer, moto: Moto) -> None:
    lam = peer_server.client()
    topic = moto.client("sns").create_topic(Name=unique("t"))["TopicArn"]
    enveloped = subscribe(moto, topic, raw=False)
    raw = subscribe(moto, topic, raw=True)
    name = create_function(lam, FAILS)
    lam.put_function_event_invoke_config(
        FunctionName=name, MaximumRetryAttempts=0, DestinationConfig={"OnFailure": {"Destination": topic}}
    )
    request_id = invoke_event(lam, name, {"n": 5})

    # Without raw message delivery SNS wraps the record (Publish's Message) in its envelope.
    notification = json.loads(receive(moto, enveloped)["Body"])
    assert notification["Type"] == "Notification"
    assert notification["TopicArn"] == topic
    assert "MessageAttributes" not in notification  # a record is sent without attributes
    assert_failure_record(json.loads(notification["Message"]), request_id, name, 5)
    # With it, the queue gets the record itself.
    assert_failure_record(json.loads(receive(moto, raw)["Body"]), request_id, name, 5)


def test_on_success_to_sns_gets_the_success_record(peer_server: LaminaServer, moto: Moto) -> None:
    lam = peer_server.client()
    topic = moto.client("sns").create_topic(Name=unique("t"))["TopicArn"]
    url = subscribe(moto, topic, raw=True)
    name = create_function(lam, SUCCEEDS)
    lam.put_function_event_invoke_config(
        FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": topic}}
    )
    request_id = invoke_event(lam, name, {"n": 4})
    record = json.loads(receive(moto, url)["Body"])
    assert record["requestContext"] == {
        "requestId": request_id,
        "functionArn": f"{function_arn(name)}:$LATEST",
        "condition": "Success",
        "approximateInvokeCount": 1,
    }
    assert record["requestPayload"] == {"n": 4}
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
    assert record["responsePayload"] == {"doubled": 8}


def test_dead_letter_topic_gets_the_event_with_its_attributes(peer_server: LaminaServer, moto: Moto) -> None:
    lam = peer_server.client()
    topic = moto.client("sns").create_topic(Name=unique("dlt"))["TopicArn"]
    enveloped = subscribe(moto, topic, raw=False)
    raw = subscribe(moto, topic, raw=True)
    name = create_function(lam, FAILS, DeadLetterConfig={"TargetArn": topic})
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    request_id = invoke_event(lam, name, {"n": 9})

    notification = json.loads(receive(moto, enveloped)["Body"])
    assert json.loads(notification["Message"]) == {"n": 9}
    assert notification["MessageAttributes"] == {
        "RequestID": {"Type": "String", "Value": request_id},
        "ErrorCode": {"Type": "Number", "Value": "200"},
        "ErrorMessage": {"Type": "String", "Value": "boom 9"},
    }
    # Raw delivery turns SNS's message attributes into the SQS message's.
    message = receive(moto, raw)
    assert json.loads(message["Body"]) == {"n": 9}
    attributes = message["MessageAttributes"]
    assert attributes["RequestID"] == {"DataType": "String", "StringValue": request_id}
    assert attributes["ErrorCode"] == {"DataType": "Number", "StringValue": "200"}
    assert attributes["ErrorMessage"] == {"DataType": "String", "StringValue": "boom 9"}


# -- EventBridge ----------------------------------------------------------------------------------


def bus_with_rule(moto: Moto, detail_type: str, bus: str | None = None) -> tuple[str, str]:
    """A bus (new unless named) with a rule for lamina's events of ``detail_type`` targeting a new
    queue: (bus ARN, queue URL)."""
    events = moto.client("events")
    bus = bus or unique("bus")
    try:
        bus_arn = events.create_event_bus(Name=bus)["EventBusArn"]
    except events.exceptions.ResourceAlreadyExistsException:
        bus_arn = events.describe_event_bus(Name=bus)["Arn"]
    url, queue_arn = make_queue(moto)
    rule = unique("rule")
    events.put_rule(
        Name=rule,
        EventBusName=bus,
        EventPattern=json.dumps({"source": ["lambda"], "detail-type": [detail_type]}),
    )
    events.put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": "q", "Arn": queue_arn}])
    return bus_arn, url


def test_eventbridge_bus_rules_route_success_and_failure_records(
    peer_server: LaminaServer, moto: Moto
) -> None:
    lam = peer_server.client()
    bus_arn, successes = bus_with_rule(moto, SUCCESS)
    _, failures = bus_with_rule(moto, FAILURE, bus=bus_arn.rsplit("/", 1)[1])
    name = create_function(lam, EITHER)
    lam.put_function_event_invoke_config(
        FunctionName=name,
        MaximumRetryAttempts=0,
        DestinationConfig={"OnSuccess": {"Destination": bus_arn}, "OnFailure": {"Destination": bus_arn}},
    )
    ok_id = invoke_event(lam, name, {"n": 2})
    fail_id = invoke_event(lam, name, {"n": 3, "fail": True})

    ok = json.loads(receive(moto, successes)["Body"])  # the rule target gets the whole event
    assert ok["source"] == "lambda"
    assert ok["detail-type"] == SUCCESS
    assert ok["region"] == REGION  # (moto's default target input leaves out "account")
    assert ok["resources"] == [bus_arn, f"{function_arn(name)}:$LATEST"]
    assert ok["detail"]["requestContext"]["requestId"] == ok_id
    assert ok["detail"]["requestContext"]["condition"] == "Success"
    assert ok["detail"]["responsePayload"] == {"doubled": 4}

    failed = json.loads(receive(moto, failures)["Body"])
    assert failed["source"] == "lambda"
    assert failed["detail-type"] == FAILURE
    assert failed["resources"] == [bus_arn, f"{function_arn(name)}:$LATEST"]
    assert failed["detail"]["requestContext"]["requestId"] == fail_id
    assert failed["detail"]["requestContext"]["condition"] == "RetriesExhausted"
    assert failed["detail"]["requestPayload"] == {"n": 3, "fail": True}
    assert failed["detail"]["responseContext"]["functionError"] == "Unhandled"
    # Each rule matched only its own detail type.
    sqs = moto.client("sqs")
    for url in (successes, failures):
        assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)


# -- S3 -------------------------------------------------------------------------------------------


def wait_for_objects(moto: Moto, bucket: str, prefix: str, timeout: float = 30.0) -> list[str]:
    s3 = moto.client("s3")
    deadline = time.monotonic() + timeout
    while True:
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
        if keys:
            return keys
        assert time.monotonic() < deadline, f"nothing under s3://{bucket}/{prefix} after {timeout}s"
        time.sleep(0.05)  # poll-with-timeout


def test_on_failure_to_s3_writes_the_record_under_awss_key(peer_server: LaminaServer, moto: Moto) -> None:
    lam = peer_server.client()
    bucket = unique("bucket")
    moto.client("s3").create_bucket(Bucket=bucket)
    name = create_function(lam, FAILS)
    lam.put_function_event_invoke_config(
        FunctionName=name,
        MaximumRetryAttempts=0,
        DestinationConfig={"OnFailure": {"Destination": f"arn:aws:s3:::{bucket}"}},
    )
    request_id = invoke_event(lam, name, {"n": 6})
    (key,) = wait_for_objects(moto, bucket, f"aws/lambda/async/{name}/")
    # aws/lambda/async/<function-name>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<random UUID>
    m = re.fullmatch(
        rf"aws/lambda/async/{name}/(\d{{4}})/(\d\d)/(\d\d)/(\d{{4}})-(\d\d)-(\d\d)T\d\d\.\d\d\.\d\d-{UUID}",
        key,
    )
    assert m is not None, key
    assert m.group(1, 2, 3) == m.group(4, 5, 6)
    obj = moto.client("s3").get_object(Bucket=bucket, Key=key)
    assert obj["ContentType"] == "application/json"
    record = json.loads(obj["Body"].read())
    assert_failure_record(record, request_id, name, 6)
    assert key.split("/")[-1].startswith(record["timestamp"][:19].replace(":", "."))


# -- unreachable targets --------------------------------------------------------------------------


def outbox_failures(srv: LaminaServer, request_id: str) -> list[int]:
    """The failure counts of the event's deliveries still in the outbox (read from the server's DB)."""
    with sqlite3.connect(f"file:{srv.data_dir / 'lamina.sqlite3'}?mode=ro", uri=True, timeout=5) as conn:
        rows = conn.execute("SELECT attempts FROM deliveries WHERE request_id = ?", (request_id,)).fetchall()
    return [int(r[0]) for r in rows]


def wait_for_outbox_count(srv: LaminaServer, request_id: str, at_least: int, timeout: float = 30.0) -> None:
    """Poll the outbox until the event's delivery row counts ``at_least`` failed tries (the row is
    updated just after the failure is logged)."""
    deadline = time.monotonic() + timeout
    while True:
        counts = outbox_failures(srv, request_id)
        if counts and counts[0] >= at_least:
            return
        assert time.monotonic() < deadline, f"{request_id}: outbox counts {counts}, want >= {at_least}"
        time.sleep(0.05)  # poll-with-timeout


def wait_for_failures(
    srv: LaminaServer, request_id: str, at_least: int, timeout: float = 30.0
) -> dict[str, Any]:
    """Poll lamina's log until the delivery of ``request_id`` failed ``at_least`` times."""
    deadline = time.monotonic() + timeout
    while True:
        for line in srv.logs_text().splitlines():
            if request_id in line and "destination delivery failed" in line:
                entry = json.loads(line)
                if entry["failures"] >= at_least:
                    return dict(entry)
        assert time.monotonic() < deadline, (
            f"{request_id}: not {at_least} failures: {srv.logs_text()[-2000:]}"
        )
        time.sleep(0.05)  # poll-with-timeout


def test_unreachable_sns_s3_and_bus_targets_are_retried_counted_then_delivered(
    peer_server: LaminaServer, moto: Moto
) -> None:
    lam = peer_server.client()
    topic_name, bucket, bus = unique("late-t"), unique("late-b"), unique("late-bus")
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:{topic_name}"
    bucket_arn = f"arn:aws:s3:::{bucket}"
    bus_arn = f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{bus}"
    ids: dict[str, str] = {}
    for target in (topic, bucket_arn, bus_arn):
        name = create_function(lam, FAILS)
        lam.put_function_event_invoke_config(
            FunctionName=name,
            MaximumRetryAttempts=0,
            DestinationConfig={"OnFailure": {"Destination": target}},
        )
        ids[target] = invoke_event(lam, name, {"n": 1})

    for target, request_id in ids.items():
        failure = wait_for_failures(peer_server, request_id, at_least=2)  # retried, and counted
        assert failure["destination"] == target
        assert failure["msg"] == "destination delivery failed; retrying"
        assert failure["kind"] == "record" and failure["retry_in_s"] >= 1
        wait_for_outbox_count(peer_server, request_id, at_least=2)  # kept, with its count
    sns_error = wait_for_failures(peer_server, ids[topic], 1)["error"]
    assert "NotFound" in sns_error, sns_error
    assert "NoSuchBucket" in wait_for_failures(peer_server, ids[bucket_arn], 1)["error"]
    assert "ResourceNotFound" in wait_for_failures(peer_server, ids[bus_arn], 1)["error"]

    # The targets appear: the next tries deliver what was kept.
    moto.client("sns").create_topic(Name=topic_name)
    url = subscribe(moto, topic, raw=True)
    moto.client("s3").create_bucket(Bucket=bucket)
    _, bus_queue = bus_with_rule(moto, FAILURE, bus=bus)
    assert json.loads(receive(moto, url, timeout=60)["Body"])["requestContext"]["requestId"] == ids[topic]
    event = json.loads(receive(moto, bus_queue, timeout=60)["Body"])
    assert event["detail"]["requestContext"]["requestId"] == ids[bus_arn]
    (key,) = wait_for_objects(moto, bucket, "aws/lambda/async/", timeout=60)
    record = json.loads(moto.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    assert record["requestContext"]["requestId"] == ids[bucket_arn]
    for request_id in ids.values():
        wait_for_server_log(peer_server, request_id, "destination delivered")
        assert outbox_failures(peer_server, request_id) == []
