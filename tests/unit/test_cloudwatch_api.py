"""The CloudWatch metrics API in each wire protocol, encoded and decoded by botocore itself."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.parsers import create_parser
from botocore.serialize import create_serializer

from lamina.api.cloudwatch import CloudWatchApi
from lamina.api.cloudwatch_endpoint import CloudWatchEndpoint
from lamina.api.cloudwatch_params import CloudWatchError
from lamina.auth.sigv4 import SigV4Verifier
from lamina.protocol import cloudwatch_wire as wire
from lamina.protocol.model import load_service_model
from lamina.telemetry.cloudwatch_store import MetricStore, minute_of
from lamina.telemetry.metrics import MetricsRegistry

MODEL = load_service_model("cloudwatch")
PROTOCOLS = ("smithy-rpc-v2-cbor", "json", "query")
FN = (("FunctionName", "fn"),)
T0 = minute_of(time.time()) - 3600  # an hour ago, on a minute boundary


class Harness:
    def __init__(self, tmp: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.store = MetricStore(tmp / "m.sqlite3", MetricsRegistry(), harvest_interval_s=3600)
        self.loop.run_until_complete(self.store.start())
        self.endpoint = CloudWatchEndpoint(CloudWatchApi(self.store), SigV4Verifier({"AKID": "SECRET"}))

    def seed(
        self, metric: str, minute: int, stats: tuple[float, float, float, float], dims: Any = FN
    ) -> None:
        self.store.add([("us-east-1", metric, dims, stats)], minute)

    def raw(
        self,
        protocol: str,
        op_name: str,
        params: dict[str, Any],
        *,
        secret: str = "SECRET",
        service: str = "monitoring",
    ) -> tuple[int, dict[str, str], bytes]:
        op = MODEL.operation_model(op_name)
        req = create_serializer(protocol).serialize_to_request(params, op)
        aws = AWSRequest(
            method=req["method"], url="http://h" + req["url_path"], data=req["body"], headers=req["headers"]
        )
        aws.headers["Host"] = "h"
        SigV4Auth(Credentials("AKID", secret), service, "us-east-1").add_auth(aws)
        prepared = aws.prepare()
        headers = [(k.lower().encode(), v.encode()) for k, v in prepared.headers.items()]
        hmap = dict(headers)
        path = prepared.url[len("http://h") :].encode()
        body = prepared.body if isinstance(prepared.body, bytes) else (prepared.body or "").encode()
        found = wire.protocol_of(prepared.method, path, hmap)
        assert found == {"smithy-rpc-v2-cbor": "cbor"}.get(protocol, protocol)
        status, out, data = self.loop.run_until_complete(
            self.endpoint.handle(
                found,
                method=prepared.method,
                raw_path=path,
                raw_query=b"",
                headers=headers,
                hmap=hmap,
                body=body,
                request_id="req-1",
            )
        )
        return status, {k.decode(): v.decode() for k, v in out}, data

    def call(self, protocol: str, op_name: str, **params: Any) -> dict[str, Any]:
        status, headers, body = self.raw(protocol, op_name, params)
        op = MODEL.operation_model(op_name)
        parsed: dict[str, Any] = create_parser(protocol).parse(
            {"status_code": status, "headers": headers, "body": body}, op.output_shape
        )
        if status >= 300:
            raise CallError(status, parsed["Error"]["Code"], parsed["Error"]["Message"])
        assert parsed["ResponseMetadata"]["RequestId"] == "req-1"
        return parsed


class CallError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    yield harness
    harness.loop.run_until_complete(harness.store.close())
    harness.loop.close()


def at(t: int) -> datetime:
    return datetime.fromtimestamp(t, UTC)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_statistics_per_period(h: Harness, protocol: str) -> None:
    h.seed("Duration", T0, (2, 10.0, 4.0, 6.0))
    h.seed("Duration", T0 + 60, (1, 1.0, 1.0, 1.0))
    h.seed("Duration", T0 + 180, (1, 30.0, 30.0, 30.0))
    h.seed("Duration", T0 + 60, (5, 5.0, 1.0, 1.0), dims=())  # another dimension set: not mixed in
    out = h.call(
        protocol,
        "GetMetricStatistics",
        Namespace="AWS/Lambda",
        MetricName="Duration",
        Dimensions=[{"Name": "FunctionName", "Value": "fn"}],
        StartTime=at(T0 + 5),
        EndTime=at(T0 + 240),
        Period=120,
        Statistics=["SampleCount", "Sum", "Average", "Minimum", "Maximum"],
    )
    points = sorted(out["Datapoints"], key=lambda p: p["Timestamp"])
    assert out["Label"] == "Duration"
    assert [p["Timestamp"].timestamp() for p in points] == [T0, T0 + 120]
    first, second = points
    assert (first["SampleCount"], first["Sum"], first["Minimum"], first["Maximum"]) == (3, 11.0, 1.0, 6.0)
    assert first["Average"] == pytest.approx(11 / 3) and first["Unit"] == "Milliseconds"
    assert (second["SampleCount"], second["Sum"]) == (1, 30.0)
    # other namespaces, unknown metrics and other units answer no datapoints, like AWS
    for other in ({"Namespace": "AWS/EC2"}, {"MetricName": "Nope"}, {"Unit": "Seconds"}):
        args = {
            "Namespace": "AWS/Lambda",
            "MetricName": "Duration",
            "StartTime": at(T0),
            "EndTime": at(T0 + 240),
            "Period": 60,
            "Statistics": ["Sum"],
            "Dimensions": [{"Name": "FunctionName", "Value": "fn"}],
            **other,
        }
        assert h.call(protocol, "GetMetricStatistics", **args)["Datapoints"] == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_metric_data_and_pagination(h: Harness, protocol: str) -> None:
    for i in range(3):
        h.seed("Invocations", T0 + 60 * i, (i + 1, i + 1, 1.0, 1.0))
    query = {
        "Id": "inv",
        "MetricStat": {
            "Metric": {
                "Namespace": "AWS/Lambda",
                "MetricName": "Invocations",
                "Dimensions": [{"Name": "FunctionName", "Value": "fn"}],
            },
            "Period": 60,
            "Stat": "Sum",
        },
    }
    out = h.call(protocol, "GetMetricData", MetricDataQueries=[query], StartTime=at(T0), EndTime=at(T0 + 600))
    (result,) = out["MetricDataResults"]
    assert result["Id"] == "inv" and result["Label"] == "Invocations" and result["StatusCode"] == "Complete"
    assert [t.timestamp() for t in result["Timestamps"]] == [T0 + 120, T0 + 60, T0]  # newest first
    assert result["Values"] == [3.0, 2.0, 1.0]
    pages, token = [], None
    while True:
        extra = {"NextToken": token} if token else {}
        page = h.call(
            protocol,
            "GetMetricData",
            MetricDataQueries=[query],
            StartTime=at(T0),
            EndTime=at(T0 + 600),
            ScanBy="TimestampAscending",
            MaxDatapoints=2,
            **extra,
        )
        pages.append(page["MetricDataResults"][0]["Values"])
        token = page.get("NextToken")
        if not token:
            break
    assert pages == [[1.0, 2.0], [3.0]]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_list_metrics_filters(h: Harness, protocol: str) -> None:
    now = time.time()
    h.seed("Invocations", int(now), (1, 1, 1, 1))
    h.seed("Invocations", int(now), (1, 1, 1, 1), dims=(*FN, ("Resource", "fn:live")))
    h.seed("Errors", int(now) - 86400, (1, 0, 0, 0))
    h.store.add([("eu-west-1", "Invocations", FN, (1, 1, 1, 1))], now)  # another region: not listed

    def names(**params: Any) -> list[tuple[str, list[tuple[str, str]]]]:
        out = h.call(protocol, "ListMetrics", **params)["Metrics"]
        return [(m["MetricName"], [(d["Name"], d["Value"]) for d in m.get("Dimensions", [])]) for m in out]

    assert len(names()) == 3
    assert names(MetricName="Invocations", Dimensions=[{"Name": "Resource"}]) == [
        ("Invocations", [("FunctionName", "fn"), ("Resource", "fn:live")])
    ]
    assert [n for n, _ in names(RecentlyActive="PT3H")] == ["Invocations", "Invocations"]
    assert names(Namespace="AWS/SQS") == []
    assert names(Dimensions=[{"Name": "FunctionName", "Value": "other"}]) == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_errors_are_aws_shaped(h: Harness, protocol: str) -> None:
    base = {"Namespace": "AWS/Lambda", "MetricName": "Duration", "StartTime": at(T0), "EndTime": at(T0 + 60)}

    def error(op: str, **params: Any) -> tuple[int, str, str]:
        with pytest.raises(CallError) as caught:
            h.call(protocol, op, **params)
        return caught.value.status, caught.value.code, caught.value.message

    assert error("GetMetricStatistics", **base, Period=30, Statistics=["Sum"])[:2] == (
        400,
        "InvalidParameterValue",
    )
    assert error("GetMetricStatistics", **base, Period=60)[:2] == (400, "InvalidParameterCombination")
    too_many = {**base, "EndTime": at(T0 + 86400 * 2)}
    status, code, message = error("GetMetricStatistics", **too_many, Period=60, Statistics=["Sum"])
    assert (status, code) == (400, "InvalidParameterCombination") and "exceeds the limit of 1,440" in message
    backwards = {**base, "StartTime": at(T0 + 60), "EndTime": at(T0)}
    assert (
        error("GetMetricStatistics", **backwards, Period=60, Statistics=["Sum"])[1] == "InvalidParameterValue"
    )
    assert (
        error("GetMetricStatistics", **base, Period=60, ExtendedStatistics=["p99"])[1]
        == "InvalidParameterValue"
    )
    window = {"StartTime": at(T0), "EndTime": at(T0 + 60)}
    status, code, message = error(
        "GetMetricData", MetricDataQueries=[{"Id": "e", "Expression": "SUM(METRICS())"}], **window
    )
    assert (status, code) == (400, "ValidationError") and "metric math" in message
    assert error("GetMetricData", MetricDataQueries=[{"Id": "Bad"}], **window)[1] == "ValidationError"
    stat = {"Metric": {"Namespace": "AWS/Lambda", "MetricName": "Errors"}, "Period": 60, "Stat": "Sum"}
    valid = [{"Id": "x", "MetricStat": stat}]
    assert (
        error("GetMetricData", MetricDataQueries=valid, NextToken="garbage", **window)[1]
        == "InvalidNextToken"
    )
    bad_stat = [{"Id": "x", "MetricStat": {**stat, "Stat": "p99"}}]
    assert error("GetMetricData", MetricDataQueries=bad_stat, **window)[1] == "ValidationError"
    status, code, message = error(
        "PutMetricData", Namespace="Mine", MetricData=[{"MetricName": "a", "Value": 1}]
    )
    assert (status, code) == (501, "NotImplemented") and "PutMetricData" in message


def test_auth_and_malformed_bodies(h: Harness) -> None:
    args = {"Namespace": "AWS/Lambda"}
    status, headers, _ = h.raw("smithy-rpc-v2-cbor", "ListMetrics", args, secret="WRONG")
    assert status == 403 and headers["x-amzn-query-error"] == "SignatureDoesNotMatch;Sender"
    status, headers, _ = h.raw("query", "ListMetrics", args, service="lambda")
    assert status == 403
    status, out, _ = h.loop.run_until_complete(
        h.endpoint.handle(
            "cbor",
            method="POST",
            raw_path=b"/service/GraniteServiceVersion20100801/operation/X",
            raw_query=b"",
            headers=[],
            hmap={},
            body=b"",
            request_id="r",
        )
    )
    assert status == 403 and dict(out)[b"x-amzn-query-error"] == b"MissingAuthenticationToken;Sender"


def test_malformed_cbor_is_a_400(h: Harness) -> None:
    verifier = SigV4Verifier({"AKID": "SECRET"})
    aws = AWSRequest(
        method="POST",
        url="http://h/service/GraniteServiceVersion20100801/operation/ListMetrics",
        data=b"\xbf\x61",
        headers={"Host": "h", "smithy-protocol": "rpc-v2-cbor"},
    )
    SigV4Auth(Credentials("AKID", "SECRET"), "monitoring", "us-east-1").add_auth(aws)
    headers = [(k.lower().encode(), v.encode()) for k, v in aws.headers.items()]
    endpoint = CloudWatchEndpoint(CloudWatchApi(h.store), verifier)
    status, out, _ = h.loop.run_until_complete(
        endpoint.handle(
            "cbor",
            method="POST",
            raw_path=b"/service/GraniteServiceVersion20100801/operation/ListMetrics",
            raw_query=b"",
            headers=headers,
            hmap=dict(headers),
            body=b"\xbf\x61",
            request_id="r",
        )
    )
    assert status == 400 and dict(out)[b"x-amzn-query-error"] == b"MalformedInput;Sender"


def test_protocol_detection() -> None:
    assert wire.protocol_of("POST", b"/2015-03-31/functions/f/invocations", {}) is None
    assert wire.protocol_of("POST", b"/", {b"x-amz-target": b"Logs_20140328.GetLogEvents"}) is None
    assert wire.protocol_of("POST", b"/", {b"content-type": b"application/json"}) is None
    assert wire.unflatten({"A.member.2.B": "y", "A.member.1.B": "x", "C": "z"}) == {
        "A": [{"B": "x"}, {"B": "y"}],
        "C": "z",
    }


STAT = {"Metric": {}, "Period": 60, "Stat": "Sum"}
WINDOW = {"StartTime": 0, "EndTime": 60}
BAD_INPUTS: list[tuple[str, dict[str, Any]]] = [
    ("GetMetricStatistics", {}),
    ("GetMetricStatistics", {"Namespace": "AWS/Lambda", "MetricName": "Errors", "StartTime": "yesterday",
                             "EndTime": 5, "Period": 60, "Statistics": ["Sum"]}),
    ("GetMetricStatistics", {"Namespace": "AWS/Lambda", "MetricName": "Errors", "StartTime": float("nan"),
                             "EndTime": 5, "Period": 60, "Statistics": ["Sum"]}),
    ("GetMetricStatistics", {"Namespace": "AWS/Lambda", "MetricName": "Errors", "StartTime": 0,
                             "EndTime": 1e300, "Period": 60, "Statistics": ["Sum"]}),
    ("GetMetricStatistics", {"Namespace": "AWS/Lambda", "MetricName": "Errors", "StartTime": 0, "EndTime": 60,
                             "Period": "sixty", "Statistics": 7}),
    ("GetMetricStatistics", {"Namespace": "AWS/Lambda", "MetricName": "Errors", "StartTime": 0, "EndTime": 60,
                             "Period": 60, "Statistics": ["Sum"], "Dimensions": [1, 2]}),
    ("GetMetricStatistics", {"Namespace": "AWS/Lambda", "MetricName": "Errors", "StartTime": 0, "EndTime": 60,
                             "Period": 60, "Statistics": ["Sum"], "Dimensions": {"Name": "x"}}),
    ("GetMetricData", {"MetricDataQueries": "all", "StartTime": 0, "EndTime": 60}),
    ("GetMetricData", {"MetricDataQueries": [7], "StartTime": 0, "EndTime": 60}),
    ("GetMetricData", {"MetricDataQueries": [{"Id": "a", "MetricStat": {**STAT, "Metric": 3}}], **WINDOW}),
    ("GetMetricData", {"MetricDataQueries": [{"Id": "a", "MetricStat": STAT}, {"Id": "a", "Expression": "m"}],
                       **WINDOW}),
    ("GetMetricData", {"MetricDataQueries": [{"Id": "a", "MetricStat": STAT}], "MaxDatapoints": 0, **WINDOW}),
    ("ListMetrics", {"Dimensions": "FunctionName"}),
    ("ListMetrics", {"Dimensions": [{"Value": "x"}]}),
    ("ListMetrics", {"RecentlyActive": "PT1H"}),
    ("ListMetrics", {"NextToken": "%%%"}),
]  # fmt: skip


@pytest.mark.parametrize(("op", "params"), BAD_INPUTS)
def test_bad_input_is_a_cloudwatch_error_never_a_crash(h: Harness, op: str, params: dict[str, Any]) -> None:
    api = CloudWatchApi(h.store)
    handler = {"GetMetricStatistics": api.get_metric_statistics, "GetMetricData": api.get_metric_data}.get(op)

    async def run() -> Any:
        return await handler("us-east-1", params) if handler else api.list_metrics("us-east-1", params)

    with pytest.raises(CloudWatchError) as caught:
        h.loop.run_until_complete(run())
    assert caught.value.code in (
        "InvalidParameterValue",
        "MissingParameter",
        "ValidationError",
        "InvalidNextToken",
    )


def test_admit_refuses_unsigned_and_oversized_requests_before_their_body(h: Harness) -> None:
    unsigned = h.endpoint.admit("json", {b"content-length": b"10"}, b"", "r1")
    assert isinstance(unsigned, tuple) and unsigned[0] == 403
    assert (b"x-amzn-query-error", b"MissingAuthenticationToken;Sender") in unsigned[1]
    huge = h.endpoint.admit(
        "query", {b"authorization": b"AWS4-HMAC-SHA256 ...", b"content-length": b"9999999"}, b"", "r2"
    )
    assert isinstance(huge, tuple) and huge[0] == 413 and b"<Code>RequestEntityTooLarge</Code>" in huge[2]
    assert h.endpoint.admit("cbor", {b"authorization": b"AWS4-HMAC-SHA256 ..."}, b"", "r3") == 1024 * 1024
    assert h.endpoint.admit("cbor", {}, b"X-Amz-Signature=abc", "r4") == 1024 * 1024  # pre-signed
