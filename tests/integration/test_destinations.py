"""Destinations and dead-letter queues of async invokes, against a real moto server for SQS
(SNS, EventBridge and S3 peers: test_destinations_peers.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import LaminaServer, create_function, free_port, unique, wait_for_log
from .peers import Moto, delivery_env

pytest.importorskip("moto.server")

ACCOUNT = "123456789012"
REGION = "us-east-1"

SUCCEEDS = "def handler(event, context):\n    return {'doubled': event['n'] * 2}\n"
FAILS = "def handler(event, context):\n    raise ValueError('boom ' + str(event['n']))\n"
PRINTS = "import json\n\ndef handler(event, context):\n    print('RECORD ' + json.dumps(event))\n"


@pytest.fixture(scope="module")
def dest_server(tmp_path_factory: pytest.TempPathFactory, moto: Moto) -> Iterator[LaminaServer]:
    srv = LaminaServer(tmp_path_factory.mktemp("destinations") / "data", extra_env=delivery_env(moto.url))
    srv.start()
    yield srv
    srv.stop()


def make_queue(moto: Moto) -> tuple[str, str]:
    """A new queue in moto: (url, arn)."""
    name = unique("q")
    url = moto.client("sqs").create_queue(QueueName=name)["QueueUrl"]
    return url, f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"


def receive(moto: Moto, url: str, timeout: float = 30.0) -> dict[str, Any]:
    """Poll the queue until one message arrives."""
    sqs = moto.client("sqs")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=1, MessageAttributeNames=["All"]
        )
        if out.get("Messages"):
            return dict(out["Messages"][0])
    raise AssertionError(f"no message in {url} after {timeout}s")


def invoke_event(lam: Any, name: str, payload: dict[str, Any]) -> str:
    out = lam.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps(payload))
    assert out["StatusCode"] == 202
    return str(out["ResponseMetadata"]["RequestId"])


def test_on_success_to_sqs_gets_the_invocation_record(dest_server: LaminaServer, moto: Moto) -> None:
    lam = dest_server.client()
    name = create_function(lam, SUCCEEDS)
    url, arn = make_queue(moto)
    lam.put_function_event_invoke_config(
        FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": arn}}
    )
    request_id = invoke_event(lam, name, {"n": 21})
    record = json.loads(receive(moto, url)["Body"])
    assert record["version"] == "1.0"
    assert record["timestamp"].endswith("Z") and len(record["timestamp"]) == 24
    assert record["requestContext"] == {
        "requestId": request_id,
        "functionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}:$LATEST",
        "condition": "Success",
        "approximateInvokeCount": 1,
    }
    assert record["requestPayload"] == {"n": 21}
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
    assert record["responsePayload"] == {"doubled": 42}


def test_on_failure_to_a_lamina_function_gets_retries_exhausted(dest_server: LaminaServer) -> None:
    lam = dest_server.client()
    target = create_function(lam, PRINTS)
    name = create_function(lam, FAILS)
    target_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{target}"
    lam.put_function_event_invoke_config(
        FunctionName=name,
        MaximumRetryAttempts=1,
        DestinationConfig={"OnFailure": {"Destination": target_arn}},
    )
    request_id = invoke_event(lam, name, {"n": 7})
    messages = wait_for_log(dest_server.data_dir, f"/aws/lambda/{target}", request_id)
    line = next(m for m in messages if request_id in m and m.startswith("RECORD "))
    record = json.loads(line[len("RECORD ") :])
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 2
    assert record["requestPayload"] == {"n": 7}
    assert record["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert record["responsePayload"]["errorMessage"] == "boom 7"


def test_dead_letter_queue_gets_the_event_with_its_attributes(dest_server: LaminaServer, moto: Moto) -> None:
    lam = dest_server.client()
    url, arn = make_queue(moto)
    name = create_function(lam, FAILS, DeadLetterConfig={"TargetArn": arn})
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    request_id = invoke_event(lam, name, {"n": 3})
    message = receive(moto, url)
    assert json.loads(message["Body"]) == {"n": 3}
    attributes = message["MessageAttributes"]
    assert attributes["RequestID"] == {"DataType": "String", "StringValue": request_id}
    assert attributes["ErrorCode"] == {"DataType": "Number", "StringValue": "200"}
    assert attributes["ErrorMessage"] == {"DataType": "String", "StringValue": "boom 3"}


def test_unreachable_destination_is_retried_logged_then_delivered(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    later = Moto(free_port(), tmp_path_factory.mktemp("moto-later") / "moto.log")
    srv = LaminaServer(tmp_path_factory.mktemp("unreachable") / "data", extra_env=delivery_env(later.url))
    srv.start()
    try:
        lam = srv.client()
        name = create_function(lam, SUCCEEDS)
        queue = unique("q")
        arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}"
        lam.put_function_event_invoke_config(
            FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": arn}}
        )
        request_id = invoke_event(lam, name, {"n": 1})
        failure = wait_for_server_log(srv, request_id, "destination delivery failed")
        assert failure["destination"] == arn and failure["failures"] >= 1
        later.start()
        try:
            url = later.client("sqs").create_queue(QueueName=queue)["QueueUrl"]
            record = json.loads(receive(later, url, timeout=60)["Body"])
            assert record["requestContext"]["requestId"] == request_id
            wait_for_server_log(srv, request_id, "destination delivered")
        finally:
            later.stop()
    finally:
        srv.stop()


def wait_for_server_log(
    srv: LaminaServer, request_id: str, text: str, timeout: float = 30.0
) -> dict[str, Any]:
    """Poll lamina's own (JSON lines) log for a line about ``request_id`` containing ``text``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in srv.logs_text().splitlines():
            if request_id in line and text in line:
                return dict(json.loads(line))
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not logged for {request_id}: {srv.logs_text()[-2000:]}")
