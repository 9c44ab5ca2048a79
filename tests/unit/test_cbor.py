"""The CBOR codec against botocore's own rpcv2Cbor serializer and parser (what boto3 sends and reads)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.parsers import RpcV2CBORParser
from botocore.serialize import RpcV2CBORSerializer

from lamina.protocol import cbor
from lamina.protocol.model import load_service_model

MODEL = load_service_model("cloudwatch")


def test_decodes_what_botocore_sends() -> None:
    op = MODEL.operation_model("GetMetricData")
    params: dict[str, Any] = {
        "MetricDataQueries": [
            {
                "Id": "q1",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/Lambda",
                        "MetricName": "Duration",
                        "Dimensions": [{"Name": "FunctionName", "Value": "fn-é" * 30}],
                    },
                    "Period": 86400 * 400,
                    "Stat": "Average",
                },
                "ReturnData": False,
            }
        ],
        "StartTime": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "EndTime": datetime(2026, 1, 2, 3, 4, 5, 500000, tzinfo=UTC),
        "MaxDatapoints": 100800,
    }
    request = RpcV2CBORSerializer().serialize_to_request(params, op)
    assert request["url_path"] == "/service/GraniteServiceVersion20100801/operation/GetMetricData"
    assert request["headers"]["smithy-protocol"] == "rpc-v2-cbor"
    decoded = cbor.loads(request["body"])
    assert decoded["MetricDataQueries"] == params["MetricDataQueries"]
    assert decoded["StartTime"] == params["StartTime"] and decoded["EndTime"] == params["EndTime"]
    assert decoded["MaxDatapoints"] == 100800


def test_botocore_parses_what_we_send() -> None:
    op = MODEL.operation_model("GetMetricStatistics")
    body = cbor.dumps(
        {
            "Label": "Duration",
            "Datapoints": [
                {
                    "Timestamp": datetime(2026, 1, 2, 3, 4, tzinfo=UTC),
                    "Average": 1.5,
                    "Sum": 3.0,
                    "Unit": "Count",
                }
            ],
        }
    )
    response = {"status_code": 200, "headers": {"x-amzn-requestid": "r1"}, "body": body}
    parsed = RpcV2CBORParser().parse(response, op.output_shape)
    assert parsed["Label"] == "Duration"
    point = parsed["Datapoints"][0]
    assert point["Timestamp"].timestamp() == datetime(2026, 1, 2, 3, 4, tzinfo=UTC).timestamp()
    assert (point["Average"], point["Sum"], point["Unit"]) == (1.5, 3.0, "Count")


@pytest.mark.parametrize(
    "value",
    [0, 23, 24, 255, 256, 65536, 2**32, 2**63, -1, -25, -(2**40), 1.5, -0.0, math.inf, "", "ü" * 300,
     b"\x00\xff", [], [1, [2, [3]]], {"a": {"b": None}}, True, False, None],
)  # fmt: skip
def test_round_trip(value: Any) -> None:
    assert cbor.loads(cbor.dumps(value)) == value


def test_indefinite_lengths_and_small_floats() -> None:
    # [_ "ab" "c"] as an indefinite text string, an indefinite array, an indefinite map, half float
    assert cbor.loads(b"\x7f\x62ab\x61c\xff") == "abc"
    assert cbor.loads(b"\x9f\x01\x02\xff") == [1, 2]
    assert cbor.loads(b"\xbf\x61a\x01\xff") == {"a": 1}
    assert cbor.loads(b"\xf9\x3c\x00") == 1.0
    assert cbor.loads(b"\xfa\x3f\xc0\x00\x00") == 1.5


@pytest.mark.parametrize(
    "data",
    [b"", b"\x18", b"\x62a", b"\x9b\xff\xff\xff\xff\xff\xff\xff\xff", b"\xa1\x80\x01", b"\xc2\x01",
     b"\x01\x02", b"\x62\xff\xfe", b"\x81" * 100 + b"\x01", b"\x1c", b"\xf8\x20"],
)  # fmt: skip
def test_malformed_input_is_refused(data: bytes) -> None:
    with pytest.raises(cbor.CborError):
        cbor.loads(data)
