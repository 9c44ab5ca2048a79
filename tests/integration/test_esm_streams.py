"""Kinesis and DynamoDB Streams mappings against moto's server: order per shard, AWS's records,
retries and bisection with OnFailure records, filters, and checkpoints that survive a restart."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import LaminaServer, create_function
from .peers import Moto, delivery_env
from .test_esm_sqs import batches, enabled, queue, wait_until
from .test_metrics import scrape

pytest.importorskip("moto.server")

RECORDS = "import json\n\ndef handler(event, context):\n    print('BATCH ' + json.dumps(event))\n"
FAILS_ON_BAD = (
    "import base64, json\n\n"
    "def handler(event, context):\n"
    "    print('BATCH ' + json.dumps(event))\n"
    "    if any(b'bad' in base64.b64decode(r['kinesis']['data']) for r in event['Records']):\n"
    "        raise ValueError('bad record')\n"
)


def env(moto: Moto) -> dict[str, str]:
    return {
        **delivery_env(moto.url),
        "AWS_ENDPOINT_URL_KINESIS": moto.url,
        "AWS_ENDPOINT_URL_DYNAMODB": moto.url,
    }


@pytest.fixture(scope="module")
def srv(moto: Moto, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaminaServer]:
    s = LaminaServer(tmp_path_factory.mktemp("streams") / "data", extra_env=env(moto))
    s.start()
    try:
        yield s
    finally:
        s.stop()


def stream(moto: Moto, name: str, shards: int = 1) -> str:
    k = moto.client("kinesis")
    k.create_stream(StreamName=name, ShardCount=shards)
    return str(k.describe_stream(StreamName=name)["StreamDescription"]["StreamARN"])


def datas(data_dir: Path, name: str) -> list[str]:
    return [
        base64.b64decode(r["kinesis"]["data"]).decode()
        for batch in batches(data_dir, name)
        for r in batch["Records"]
    ]


def test_kinesis_records_in_order_with_awss_shape(srv: LaminaServer, moto: Moto) -> None:
    lam = srv.client()
    name = create_function(lam, RECORDS)
    arn = stream(moto, "kin-order", shards=2)
    k = moto.client("kinesis")
    for i in range(8):
        k.put_record(StreamARN=arn, Data=f"r{i}".encode(), PartitionKey=f"key-{i % 3}")
    m = lam.create_event_source_mapping(
        EventSourceArn=arn, FunctionName=name, StartingPosition="TRIM_HORIZON", BatchSize=3
    )
    assert m["StartingPosition"] == "TRIM_HORIZON" and m["BatchSize"] == 3
    assert m["MaximumRetryAttempts"] == -1 and m["ParallelizationFactor"] == 1
    got = wait_until(lambda: len(d := datas(srv.data_dir, name)) >= 8 and d)
    assert sorted(got) == sorted(f"r{i}" for i in range(8))  # each once
    rec = batches(srv.data_dir, name)[0]["Records"][0]
    assert rec["eventSource"] == "aws:kinesis" and rec["eventName"] == "aws:kinesis:record"
    assert rec["eventSourceARN"] == arn and rec["eventID"].startswith("shardId-")
    assert rec["invokeIdentityArn"].startswith("arn:aws:iam::")
    assert set(rec["kinesis"]) == {
        "kinesisSchemaVersion",
        "partitionKey",
        "sequenceNumber",
        "data",
        "approximateArrivalTimestamp",
    }
    # per partition key, in order
    for key in range(3):
        mine = [d for i, d in enumerate(f"r{j}" for j in range(8)) if i % 3 == key]
        assert [d for d in got if d in mine] == mine
    token = (srv.data_dir / "metrics-token").read_text().strip()
    text = scrape(srv, {"Authorization": f"Bearer {token}"})
    assert any(
        line.startswith("lamina_iterator_age_seconds_count") and f'function_name="{name}"' in line
        for line in text.splitlines()
    )
    lam.delete_event_source_mapping(UUID=m["UUID"])


def test_failed_batch_bisected_then_discarded_to_on_failure(srv: LaminaServer, moto: Moto) -> None:
    lam = srv.client()
    name = create_function(lam, FAILS_ON_BAD)
    arn = stream(moto, "kin-bisect")
    url, qarn = queue(moto, "kin-failures")
    k = moto.client("kinesis")
    for data in ("ok-1", "ok-2", "bad-3", "ok-4"):
        k.put_record(StreamARN=arn, Data=data.encode(), PartitionKey="p")
    m = lam.create_event_source_mapping(
        EventSourceArn=arn,
        FunctionName=name,
        StartingPosition="TRIM_HORIZON",
        BatchSize=4,
        MaximumBatchingWindowInSeconds=1,
        BisectBatchOnFunctionError=True,
        MaximumRetryAttempts=0,
        DestinationConfig={"OnFailure": {"Destination": qarn}},
    )
    sqs = moto.client("sqs")
    msg = wait_until(lambda: sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages"))
    record = json.loads(msg[0]["Body"])
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["responseContext"]["functionError"] == "Unhandled"
    info = record["KinesisBatchInfo"]
    assert info["batchSize"] == 1 and info["streamArn"] == arn and info["shardId"].startswith("shardId-")
    # the good records got through the bisected halves; the stream went on past the bad one
    k.put_record(StreamARN=arn, Data=b"ok-5", PartitionKey="p")
    wait_until(lambda: "ok-5" in datas(srv.data_dir, name))
    ok = {d for d in datas(srv.data_dir, name) if d.startswith("ok")}
    assert ok == {"ok-1", "ok-2", "ok-4", "ok-5"}
    lam.delete_event_source_mapping(UUID=m["UUID"])


def test_kinesis_filter_on_data(srv: LaminaServer, moto: Moto) -> None:
    lam = srv.client()
    name = create_function(lam, RECORDS)
    arn = stream(moto, "kin-filter")
    k = moto.client("kinesis")
    for body in ({"kind": "keep", "n": 1}, {"kind": "drop", "n": 2}, {"kind": "keep", "n": 3}):
        k.put_record(StreamARN=arn, Data=json.dumps(body).encode(), PartitionKey="p")
    m = lam.create_event_source_mapping(
        EventSourceArn=arn,
        FunctionName=name,
        StartingPosition="TRIM_HORIZON",
        FilterCriteria={"Filters": [{"Pattern": json.dumps({"data": {"kind": ["keep"]}})}]},
    )
    got = wait_until(lambda: len(d := datas(srv.data_dir, name)) >= 2 and d)
    assert [json.loads(d)["n"] for d in got] == [1, 3]
    lam.delete_event_source_mapping(UUID=m["UUID"])


def test_dynamodb_stream_records(srv: LaminaServer, moto: Moto) -> None:
    lam = srv.client()
    name = create_function(lam, RECORDS)
    ddb = moto.client("dynamodb")
    ddb.create_table(
        TableName="esm-table",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    arn = ddb.describe_table(TableName="esm-table")["Table"]["LatestStreamArn"]
    m = lam.create_event_source_mapping(
        EventSourceArn=arn, FunctionName=name, StartingPosition="TRIM_HORIZON"
    )
    ddb.put_item(TableName="esm-table", Item={"pk": {"S": "a"}, "v": {"N": "1"}})
    ddb.put_item(TableName="esm-table", Item={"pk": {"S": "a"}, "v": {"N": "2"}})
    recs = wait_until(
        lambda: len(r := [x for b in batches(srv.data_dir, name) for x in b["Records"]]) >= 2 and r
    )
    assert [r["eventName"] for r in recs] == ["INSERT", "MODIFY"]
    first, second = recs
    assert first["eventSource"] == "aws:dynamodb" and first["eventSourceARN"] == arn
    assert first["dynamodb"]["Keys"] == {"pk": {"S": "a"}} and second["dynamodb"]["OldImage"]["v"] == {
        "N": "1"
    }
    assert isinstance(first["dynamodb"]["ApproximateCreationDateTime"], int)
    lam.delete_event_source_mapping(UUID=m["UUID"])


def test_checkpoint_survives_restart(moto: Moto, tmp_path: Path) -> None:
    s = LaminaServer(tmp_path / "data", extra_env=env(moto))
    s.start()
    try:
        lam = s.client()
        name = create_function(lam, RECORDS)
        arn = stream(moto, "kin-restart")
        k = moto.client("kinesis")
        k.put_record(StreamARN=arn, Data=b"before", PartitionKey="p")
        m = lam.create_event_source_mapping(
            EventSourceArn=arn, FunctionName=name, StartingPosition="TRIM_HORIZON"
        )
        wait_until(lambda: datas(s.data_dir, name) == ["before"])
        s.stop()
        k.put_record(StreamARN=arn, Data=b"while down", PartitionKey="p")
        s.start()
        lam = s.client()
        enabled(lam, m["UUID"])
        wait_until(lambda: "while down" in datas(s.data_dir, name))
        assert datas(s.data_dir, name) == ["before", "while down"]  # resumed after the checkpoint
    finally:
        s.stop()


def test_stream_validation(srv: LaminaServer, moto: Moto) -> None:
    lam = srv.client()
    name = create_function(lam, RECORDS)
    arn = stream(moto, "kin-validate")
    with pytest.raises(lam.exceptions.ClientError):
        lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=name)  # no StartingPosition
    with pytest.raises(lam.exceptions.ClientError, match="parallelizationFactor"):  # the model's bound
        lam.create_event_source_mapping(
            EventSourceArn=arn, FunctionName=name, StartingPosition="LATEST", ParallelizationFactor=11
        )
    with pytest.raises(lam.exceptions.InvalidParameterValueException, match="ScalingConfig"):
        lam.create_event_source_mapping(
            EventSourceArn=arn,
            FunctionName=name,
            StartingPosition="LATEST",
            ScalingConfig={"MaximumConcurrency": 5},
        )
