"""SQS event source mappings against moto's server: the API, AWS's event shape, deletes, partial
batch failures, filters, FIFO order, and mappings that survive a restart."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import LaminaServer, create_function, log_messages
from .peers import Moto, delivery_env
from .test_cli import lamina

pytest.importorskip("moto.server")

RECORDS = "import json\n\ndef handler(event, context):\n    print('BATCH ' + json.dumps(event))\n"
PARTIAL = (
    "import json\n\n"
    "def handler(event, context):\n"
    "    print('BATCH ' + json.dumps(event))\n"
    "    bad = [r['messageId'] for r in event['Records'] if 'fail' in r['body']]\n"
    "    return {'batchItemFailures': [{'itemIdentifier': i} for i in bad]}\n"
)


@pytest.fixture(scope="module")
def srv(moto: Moto, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaminaServer]:
    s = LaminaServer(tmp_path_factory.mktemp("esm") / "data", extra_env=delivery_env(moto.url))
    s.start()
    try:
        yield s
    finally:
        s.stop()


def batches(data_dir: Path, name: str) -> list[dict[str, Any]]:
    return [
        json.loads(m[len("BATCH ") :])
        for m in log_messages(data_dir, f"/aws/lambda/{name}")
        if m.startswith("BATCH ")
    ]


def wait_until(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.1)  # poll-with-timeout: the pollers run on their own schedule
    raise AssertionError("condition not met in time")


def queue(moto: Moto, name: str, **attributes: str) -> tuple[str, str]:
    sqs = moto.client("sqs")
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def enabled(lam: Any, uuid: str) -> dict[str, Any]:
    found: dict[str, Any] = wait_until(
        lambda: (m := lam.get_event_source_mapping(UUID=uuid))["State"] == "Enabled" and m
    )
    return found


def test_mapping_api_and_event_shape(srv: LaminaServer, moto: Moto) -> None:
    lam = srv.client()
    name = create_function(lam, RECORDS)
    url, arn = queue(moto, "esm-shape")
    created = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=name, BatchSize=5)
    assert created["State"] == "Creating" and created["BatchSize"] == 5
    assert created["FunctionArn"].endswith(f":function:{name}") and created["EventSourceArn"] == arn
    assert created["EventSourceMappingArn"].endswith(f":event-source-mapping:{created['UUID']}")
    enabled(lam, created["UUID"])
    assert [m["UUID"] for m in lam.list_event_source_mappings(FunctionName=name)["EventSourceMappings"]] == [
        created["UUID"]
    ]
    with pytest.raises(lam.exceptions.ResourceConflictException):
        lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=name)

    sqs = moto.client("sqs")
    sqs.send_message(
        QueueUrl=url,
        MessageBody="hello",
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "greeting"}},
    )
    (batch,) = wait_until(lambda: batches(srv.data_dir, name))
    (rec,) = batch["Records"]
    assert rec["body"] == "hello" and rec["eventSource"] == "aws:sqs" and rec["eventSourceARN"] == arn
    assert rec["awsRegion"] == "us-east-1" and rec["md5OfBody"] and rec["receiptHandle"]
    assert rec["attributes"]["ApproximateReceiveCount"] == "1" and "SentTimestamp" in rec["attributes"]
    assert rec["messageAttributes"]["kind"] == {
        "stringValue": "greeting",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    # deleted once the function succeeded
    wait_until(
        lambda: (
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"][
                "ApproximateNumberOfMessagesNotVisible"
            ]
            == "0"
        )
    )
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)
    listed = lamina(srv, "sources", name)
    assert listed.returncode == 0, listed.stderr
    assert created["UUID"] in listed.stdout and "Enabled" in listed.stdout and "OK" in listed.stdout

    disabled = lam.update_event_source_mapping(UUID=created["UUID"], Enabled=False)
    assert disabled["State"] == "Disabling"
    wait_until(lambda: lam.get_event_source_mapping(UUID=created["UUID"])["State"] == "Disabled")
    deleted = lam.delete_event_source_mapping(UUID=created["UUID"])
    assert deleted["State"] == "Deleting"
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_event_source_mapping(UUID=created["UUID"])


def test_validation(srv: LaminaServer, moto: Moto) -> None:
    lam = srv.client()
    name = create_function(lam, RECORDS)
    _, arn = queue(moto, "esm-validation")
    with pytest.raises(lam.exceptions.InvalidParameterValueException, match="batch window"):
        lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=name, BatchSize=100)
    with pytest.raises(lam.exceptions.InvalidParameterValueException, match="StartingPosition"):
        lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=name, StartingPosition="LATEST")
    with pytest.raises(lam.exceptions.InvalidParameterValueException, match="filter pattern"):
        lam.create_event_source_mapping(
            EventSourceArn=arn, FunctionName=name, FilterCriteria={"Filters": [{"Pattern": "{nope"}]}
        )
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.create_event_source_mapping(EventSourceArn=arn, FunctionName="no-such-function")


def test_partial_batch_failures_stay_on_the_queue(srv: LaminaServer, moto: Moto) -> None:
    lam = srv.client()
    name = create_function(lam, PARTIAL)
    url, arn = queue(moto, "esm-partial", VisibilityTimeout="1")
    sqs = moto.client("sqs")
    for body in ("ok-1", "fail-2", "ok-3"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    m = lam.create_event_source_mapping(
        EventSourceArn=arn,
        FunctionName=name,
        BatchSize=10,
        MaximumBatchingWindowInSeconds=1,
        FunctionResponseTypes=["ReportBatchItemFailures"],
    )
    # the failed message comes back (visibility timeout 1 s) and is delivered again
    seen = wait_until(
        lambda: (
            (b := [r["body"] for batch in batches(srv.data_dir, name) for r in batch["Records"]]).count(
                "fail-2"
            )
            >= 2
            and b
        )
    )
    assert seen.count("ok-1") == 1 and seen.count("ok-3") == 1
    lam.delete_event_source_mapping(UUID=m["UUID"])


def test_filter_criteria_drop_and_delete_the_rest(srv: LaminaServer, moto: Moto) -> None:
    lam = srv.client()
    name = create_function(lam, RECORDS)
    url, arn = queue(moto, "esm-filter")
    sqs = moto.client("sqs")
    for body in (
        {"kind": "order", "n": 1},
        {"kind": "noise", "n": 2},
        "plain text",
        {"kind": "order", "n": 3},
    ):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body) if isinstance(body, dict) else body)
    m = lam.create_event_source_mapping(
        EventSourceArn=arn,
        FunctionName=name,
        FilterCriteria={"Filters": [{"Pattern": json.dumps({"body": {"kind": ["order"]}})}]},
    )
    got = wait_until(
        lambda: (
            len(b := [json.loads(r["body"])["n"] for x in batches(srv.data_dir, name) for r in x["Records"]])
            >= 2
            and b
        )
    )
    assert sorted(got) == [1, 3]
    # the filtered-out messages were deleted, not left to come back
    wait_until(
        lambda: (
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"][
                "ApproximateNumberOfMessages"
            ]
            == "0"
            and sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"][
                "ApproximateNumberOfMessagesNotVisible"
            ]
            == "0"
        )
    )
    lam.delete_event_source_mapping(UUID=m["UUID"])


def test_fifo_keeps_group_order(srv: LaminaServer, moto: Moto) -> None:
    lam = srv.client()
    name = create_function(lam, RECORDS)
    url, arn = queue(moto, "esm-order.fifo", FifoQueue="true", ContentBasedDeduplication="true")
    sqs = moto.client("sqs")
    for i in range(12):
        sqs.send_message(QueueUrl=url, MessageBody=f"a-{i}", MessageGroupId="a")
    m = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=name, BatchSize=3)
    got = wait_until(
        lambda: len(b := [r["body"] for x in batches(srv.data_dir, name) for r in x["Records"]]) >= 12 and b
    )
    assert got == [f"a-{i}" for i in range(12)]
    rec = batches(srv.data_dir, name)[0]["Records"][0]
    assert rec["attributes"]["MessageGroupId"] == "a"  # (moto omits SequenceNumber; SQS sends it)
    lam.delete_event_source_mapping(UUID=m["UUID"])


def test_mapping_survives_restart_and_dies_with_its_function(moto: Moto, tmp_path: Path) -> None:
    s = LaminaServer(tmp_path / "data", extra_env=delivery_env(moto.url))
    s.start()
    try:
        lam = s.client()
        name = create_function(lam, RECORDS)
        url, arn = queue(moto, "esm-restart")
        m = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=name)
        enabled(lam, m["UUID"])
        s.stop()
        moto.client("sqs").send_message(QueueUrl=url, MessageBody="while down")
        s.start()
        lam = s.client()
        assert enabled(lam, m["UUID"])["EventSourceArn"] == arn
        wait_until(lambda: batches(s.data_dir, name))
        lam.delete_function(FunctionName=name)
        with pytest.raises(lam.exceptions.ResourceNotFoundException):
            lam.get_event_source_mapping(UUID=m["UUID"])
    finally:
        s.stop()
