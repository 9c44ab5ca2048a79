"""The SQS poller's pure parts: records, partial-batch reports, filter views, and the settings rules."""

from __future__ import annotations

from typing import Any

import pytest

from lamina.errors import AwsError
from lamina.events.esm_rules import compile_filters, settings_for_create, settings_for_update
from lamina.events.sqs import failed_items, filter_view, record

ARN = "arn:aws:sqs:us-east-1:123456789012:q"


def test_record_is_awss_shape() -> None:
    message: dict[str, Any] = {
        "MessageId": "m1",
        "ReceiptHandle": "rh",
        "Body": '{"a": 1}',
        "MD5OfBody": "md5",
        "MD5OfMessageAttributes": "md5a",
        "Attributes": {"ApproximateReceiveCount": "1"},
        "MessageAttributes": {"bin": {"DataType": "Binary", "BinaryValue": b"\x00\x01"}},
    }
    rec = record(message, ARN, "us-east-1")
    assert list(rec) == [
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "md5OfMessageAttributes",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    ]
    assert rec["messageAttributes"]["bin"] == {
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "Binary",
        "binaryValue": "AAE=",
    }
    assert filter_view(rec)["body"] == {"a": 1} and rec["body"] == '{"a": 1}'
    assert filter_view({**rec, "body": "text"})["body"] == "text"


@pytest.mark.parametrize(
    ("response", "failed"),
    [
        (b"", set()),
        (b"null", set()),
        (b'"ok"', set()),
        (b"{}", set()),
        (b'{"batchItemFailures": []}', set()),
        (b'{"batchItemFailures": [{"itemIdentifier": "a"}]}', {"a"}),
        (b'{"batchItemFailures": [{"itemIdentifier": "zzz"}]}', None),
        (b'{"batchItemFailures": [{"itemIdentifier": ""}]}', None),
        (b'{"batchItemFailures": [{}]}', None),
        (b'{"batchItemFailures": "a"}', None),
        (b"not json", None),
    ],
)
def test_failed_items(response: bytes, failed: set[str] | None) -> None:
    assert failed_items(response, {"a", "b"}) == failed


def test_settings_defaults_and_rules() -> None:
    assert settings_for_create(ARN, {}) == {
        "BatchSize": 10,
        "MaximumBatchingWindowInSeconds": 0,
        "FunctionResponseTypes": [],
    }
    big = settings_for_create(ARN, {"BatchSize": 500, "MaximumBatchingWindowInSeconds": 5})
    assert big["BatchSize"] == 500
    updated = settings_for_update(ARN, big, {"BatchSize": 20, "FunctionName": "ignored"})
    assert updated["BatchSize"] == 20 and updated["MaximumBatchingWindowInSeconds"] == 5


@pytest.mark.parametrize(
    "params",
    [
        {"BatchSize": 11},
        {"BatchSize": 0},
        {"MaximumBatchingWindowInSeconds": 301},
        {"StartingPosition": "LATEST"},
        {"MaximumRetryAttempts": 1},
        {"FunctionResponseTypes": ["Other"]},
        {"ScalingConfig": {"MaximumConcurrency": 1}},
        {"FilterCriteria": {"Filters": [{"Pattern": "x"}]}},
        {"FilterCriteria": {"Filters": [{"Pattern": "{}"}] * 6}},
    ],
)
def test_settings_refused(params: dict[str, Any]) -> None:
    with pytest.raises(AwsError) as err:
        settings_for_create(ARN, params)
    assert err.value.code == "InvalidParameterValueException"


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:kinesis:us-east-1:123456789012:stream/s",
        "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2020",
        "arn:aws:sns:us-east-1:123456789012:t",
        "not an arn",
    ],
)
def test_sources_not_polled(arn: str) -> None:
    with pytest.raises(AwsError):
        settings_for_create(arn, {})


def test_compile_filters() -> None:
    (f,) = compile_filters({"Filters": [{"Pattern": '{"body": {"k": ["v"]}}'}]})
    assert f({"body": {"k": "v"}}) and not f({"body": {"k": "w"}})
    assert compile_filters(None) == [] and compile_filters({"Filters": []}) == []
