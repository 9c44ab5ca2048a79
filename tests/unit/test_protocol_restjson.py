"""Round trips through botocore itself: its serializer builds the request lamina parses, and its
parser reads the response lamina serializes. Equality on both sides is the contract."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.awsrequest import HeadersDict, prepare_request_dict
from botocore.model import OperationModel, ServiceModel
from botocore.parsers import create_parser
from botocore.serialize import create_serializer

from lamina.errors import AwsError
from lamina.protocol import RestRouter, parse_request, serialize_response

ENDPOINT = "http://127.0.0.1:9000"
ARN = "arn:aws:lambda:us-east-1:123456789012:function:my-fn"
ROLE = "arn:aws:iam::123456789012:role/service-role/lambda"
LAYER = "arn:aws:lambda:us-east-1:123456789012:layer:deps:3"


def to_wire(op: OperationModel, params: dict[str, Any]) -> tuple[str, str, str, dict[str, str], bytes]:
    request = create_serializer("rest-json", include_validation=False).serialize_to_request(params, op)
    prepare_request_dict(request, endpoint_url=ENDPOINT)
    url = urlsplit(request["url"])
    body = request["body"]
    body = body.encode() if isinstance(body, str) else bytes(body)
    headers = {k.lower(): str(v) for k, v in request["headers"].items()}
    return request["method"], url.path, url.query, headers, body


def send(model: ServiceModel, router: RestRouter, name: str, params: dict[str, Any]) -> dict[str, Any]:
    method, path, query, headers, body = to_wire(model.operation_model(name), params)
    found = router.match(method, path, query)
    assert found is not None and found[0].name == name
    return parse_request(found[0], found[1], query, headers, body)


def receive(
    op: OperationModel, result: dict[str, Any], **kwargs: Any
) -> tuple[dict[str, Any], int, dict[str, str]]:
    status, headers, body = serialize_response(op, result, **kwargs)
    assert all(isinstance(k, bytes) and isinstance(v, bytes) for k, v in headers)
    wire_headers = HeadersDict({k.decode(): v.decode() for k, v in headers})
    parsed = create_parser("rest-json").parse(
        {"status_code": status, "headers": wire_headers, "body": body}, op.output_shape
    )
    parsed.pop("ResponseMetadata", None)
    return parsed, status, dict(wire_headers)


ROUND_TRIPS: list[tuple[str, dict[str, Any]]] = [
    (
        "CreateFunction",
        {
            "FunctionName": "my-fn",
            "Runtime": "python3.12",
            "Role": ROLE,
            "Handler": "app.handler",
            "Code": {"ZipFile": b"PK\x03\x04\x00\xff binary"},
            "Description": "d é ☃",
            "Timeout": 30,
            "MemorySize": 256,
            "Publish": True,
            "Environment": {"Variables": {"STAGE": "prod", "EMPTY": ""}},
            "Tags": {"team": "core", "unicodé": "välue"},
            "Layers": [LAYER, "arn:aws:lambda:us-east-1:123456789012:layer:other:1"],
            "Architectures": ["arm64"],
            "TracingConfig": {"Mode": "Active"},
            "EphemeralStorage": {"Size": 1024},
            "VpcConfig": {"SubnetIds": ["subnet-1"], "SecurityGroupIds": ["sg-1"]},
            "ImageConfig": {"Command": ["a", "b"], "EntryPoint": [], "WorkingDirectory": "/w"},
            "LoggingConfig": {"LogFormat": "JSON", "ApplicationLogLevel": "INFO"},
        },
    ),
    ("Invoke", {"FunctionName": f"{ARN}:$LATEST", "Payload": b'{"k": [1, 2]}', "InvocationType": "Event"}),
    (
        "Invoke",
        {
            "FunctionName": "my-fn",
            "Qualifier": "live",
            "Payload": b"\x00\xffnot json",
            "LogType": "Tail",
            "ClientContext": base64.b64encode(b'{"custom":{}}').decode(),
            "InvocationType": "RequestResponse",
        },
    ),
    ("ListFunctions", {"Marker": "next/token==", "MaxItems": 10, "FunctionVersion": "ALL"}),
    ("GetFunction", {"FunctionName": f"{ARN}:$LATEST"}),
    ("GetFunction", {"FunctionName": "my-fn", "Qualifier": "$LATEST"}),
    ("UpdateFunctionCode", {"FunctionName": "my-fn", "ZipFile": b"zip", "Publish": False, "DryRun": True}),
    ("GetAccountSettings", {}),
    ("PutFunctionConcurrency", {"FunctionName": "my-fn", "ReservedConcurrentExecutions": 0}),
    (
        "AddPermission",
        {
            "FunctionName": "my-fn",
            "StatementId": "s3-invoke",
            "Action": "lambda:InvokeFunction",
            "Principal": "s3.amazonaws.com",
            "SourceArn": "arn:aws:s3:::bucket",
            "Qualifier": "1",
        },
    ),
    ("ListVersionsByFunction", {"FunctionName": ARN, "Marker": "m", "MaxItems": 50}),
    (
        "CreateAlias",
        {
            "FunctionName": "my-fn",
            "Name": "live",
            "FunctionVersion": "1",
            "RoutingConfig": {"AdditionalVersionWeights": {"2": 0.25}},
        },
    ),
    ("GetLayerVersionByArn", {"Arn": LAYER}),
    ("DeleteLayerVersion", {"LayerName": "deps", "VersionNumber": 3}),
    ("UntagResource", {"Resource": ARN, "TagKeys": ["a", "b c", "d:e/f=g"]}),
    ("ListProvisionedConcurrencyConfigs", {"FunctionName": "my-fn", "MaxItems": 5}),
    (
        "ListDurableExecutionsByFunction",
        {
            "FunctionName": "my-fn",
            "Statuses": ["RUNNING", "FAILED"],
            "StartedAfter": datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC),
            "StartedBefore": datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC),
            "ReverseOrder": True,
        },
    ),
    (
        "CreateEventSourceMapping",
        {
            "FunctionName": "my-fn",
            "EventSourceArn": "arn:aws:sqs:us-east-1:123456789012:q",
            "StartingPositionTimestamp": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
            "BatchSize": 10,
            "FilterCriteria": {"Filters": [{"Pattern": '{"a": ["b"]}'}]},
        },
    ),
    (
        "PublishLayerVersion",
        {
            "LayerName": "deps",
            "Content": {"ZipFile": b"zipped"},
            "CompatibleRuntimes": ["python3.12", "python3.11"],
            "CompatibleArchitectures": ["x86_64"],
        },
    ),
]


@pytest.mark.parametrize(("name", "params"), ROUND_TRIPS, ids=[n for n, _ in ROUND_TRIPS])
def test_request_round_trip(
    model: ServiceModel, router: RestRouter, name: str, params: dict[str, Any]
) -> None:
    expected = dict(params)
    if name == "Invoke":
        expected.setdefault("Payload", b"")
    assert send(model, router, name, params) == expected


def test_invoke_without_payload_reads_empty_bytes(model: ServiceModel, router: RestRouter) -> None:
    assert send(model, router, "Invoke", {"FunctionName": "f"}) == {"FunctionName": "f", "Payload": b""}


def test_structure_and_blob_payloads(model: ServiceModel, router: RestRouter) -> None:
    callback = "Y2ItMQ=="
    got = send(
        model, router, "SendDurableExecutionCallbackSuccess", {"CallbackId": callback, "Result": b"\x01"}
    )
    assert got == {"CallbackId": callback, "Result": b"\x01"}
    error = {"ErrorMessage": "boom", "ErrorType": "E", "StackTrace": ["a", "b"]}
    got = send(model, router, "SendDurableExecutionCallbackFailure", {"CallbackId": callback, "Error": error})
    assert got == {"CallbackId": callback, "Error": error}
    got = send(model, router, "SendDurableExecutionCallbackFailure", {"CallbackId": callback})
    assert got == {"CallbackId": callback}


def test_body_edge_cases(model: ServiceModel) -> None:
    op = model.operation_model("PublishVersion")
    labels = {"FunctionName": "f"}
    assert parse_request(op, labels, "", {}, b"") == {"FunctionName": "f"}
    assert parse_request(op, labels, "", {"content-type": "text/plain"}, b" \n") == {"FunctionName": "f"}
    assert parse_request(op, labels, "", {}, b'{"Description": "x", "Unknown": 1, "CodeSha256": null}') == {
        "FunctionName": "f",
        "Description": "x",
    }
    # A body member named like a URI label does not override the label.
    assert parse_request(op, labels, "", {}, b'{"FunctionName": "other"}') == {"FunctionName": "f"}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "Could not parse request body into json: Expecting property name"),
        (b'{"Description": NaN}', "Could not parse request body into json: "),
        (b"\xff\xfe", "Could not parse request body into json: Invalid UTF-8 start byte 0xff"),
        (
            b'{"Description": 5}',
            "Could not parse payload into json: Cannot deserialize value of type `java.lang.String`",
        ),
        (b'{"Description": "x", "RevisionId": ["a"]}', "from Array value"),
        (
            b"[]",
            "Could not parse payload into json: Cannot deserialize value of type `PublishVersionRequest`",
        ),
    ],
)
def test_unreadable_bodies(model: ServiceModel, body: bytes, fragment: str) -> None:
    with pytest.raises(AwsError) as info:
        parse_request(model.operation_model("PublishVersion"), {"FunctionName": "f"}, "", {}, body)
    assert info.value.code == "InvalidRequestContentException"
    assert fragment in info.value.message


def test_wrong_json_types(model: ServiceModel) -> None:
    op = model.operation_model("CreateFunction")
    base = {"FunctionName": "f", "Role": ROLE, "Code": {"ZipFile": "UEsDBA=="}}
    for member, value, java in [
        ("MemorySize", "256", "java.lang.Integer"),
        ("Publish", "true", "java.lang.Boolean"),
        ("Layers", "x", "java.util.ArrayList"),
        ("Tags", [], "java.util.HashMap"),
        ("Timeout", 1.5, "java.lang.Integer"),
    ]:
        with pytest.raises(AwsError) as info:
            parse_request(op, {}, "", {}, json.dumps({**base, member: value}).encode())
        assert info.value.code == "InvalidRequestContentException"
        assert info.value.message.startswith(
            "Could not parse request body into json: Could not parse payload into json: "
            f"Cannot deserialize value of type `{java}`"
        )
    # 5.0 is an acceptable int, as it is for Jackson
    got = parse_request(op, {}, "", {}, json.dumps({**base, "Timeout": 5.0}).encode())
    assert got["Timeout"] == 5 and isinstance(got["Timeout"], int)


def test_malformed_base64_blob(model: ServiceModel) -> None:
    body = json.dumps({"FunctionName": "f", "Role": ROLE, "Code": {"ZipFile": "not base64!"}}).encode()
    with pytest.raises(AwsError) as info:
        parse_request(model.operation_model("CreateFunction"), {}, "", {}, body)
    assert info.value.code == "InvalidRequestContentException"
    assert "base64" in info.value.message


def test_parse_validates(model: ServiceModel, router: RestRouter) -> None:
    with pytest.raises(AwsError) as info:
        send(model, router, "CreateFunction", {"FunctionName": "bad name", "Code": {}, "MemorySize": 64})
    assert info.value.code == "ValidationException"
    assert info.value.message.startswith("3 validation errors detected: Value 'bad name' at 'functionName'")
    assert "Value null at 'role' failed to satisfy constraint: Member must not be null" in info.value.message


def test_unconvertible_query_value(model: ServiceModel) -> None:
    with pytest.raises(AwsError) as info:
        parse_request(model.operation_model("ListFunctions"), {}, "MaxItems=ten", {}, b"")
    assert info.value.code == "ValidationException"
    assert "Value 'ten' at 'maxItems'" in info.value.message


# ---- responses ---------------------------------------------------------------------------------

CONFIG: dict[str, Any] = {
    "FunctionName": "my-fn",
    "FunctionArn": ARN,
    "Runtime": "python3.12",
    "Role": ROLE,
    "Handler": "app.handler",
    "CodeSize": 1234,
    "Description": "d é",
    "Timeout": 3,
    "MemorySize": 128,
    "LastModified": "2024-01-02T03:04:05.000+0000",
    "CodeSha256": "abc=",
    "Version": "$LATEST",
    "Environment": {"Variables": {"A": "b"}},
    "Layers": [{"Arn": LAYER, "CodeSize": 10}],
    "State": "Active",
    "Architectures": ["x86_64"],
    "EphemeralStorage": {"Size": 512},
}


def test_function_configuration(model: ServiceModel) -> None:
    op = model.operation_model("GetFunctionConfiguration")
    parsed, status, headers = receive(op, {**CONFIG, "KMSKeyArn": None, "NotInModel": "dropped"})
    assert parsed == CONFIG
    assert status == 200
    assert headers["content-type"] == "application/json"


def test_create_function_status(model: ServiceModel) -> None:
    parsed, status, _ = receive(model.operation_model("CreateFunction"), CONFIG)
    assert (parsed, status) == (CONFIG, 201)


def test_get_function(model: ServiceModel) -> None:
    result = {
        "Configuration": CONFIG,
        "Code": {"RepositoryType": "S3", "Location": "http://127.0.0.1:9000/code/x.zip"},
        "Tags": {"team": "core"},
        "Concurrency": {"ReservedConcurrentExecutions": 5},
    }
    parsed, _, _ = receive(model.operation_model("GetFunction"), result)
    assert parsed == result


def test_list_functions(model: ServiceModel) -> None:
    result = {"Functions": [CONFIG, {**CONFIG, "FunctionName": "other"}], "NextMarker": "m"}
    parsed, _, _ = receive(model.operation_model("ListFunctions"), result)
    assert parsed == result


def test_invoke_response(model: ServiceModel) -> None:
    op = model.operation_model("Invoke")
    payload = b'{"errorMessage": "boom"}'
    result: dict[str, Any] = {
        "StatusCode": 200,
        "Payload": payload,
        "FunctionError": "Unhandled",
        "LogResult": base64.b64encode(b"START RequestId ...").decode(),
        "ExecutedVersion": "$LATEST",
    }
    parsed, status, headers = receive(op, result)
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert parsed == {**result, "Payload": payload.decode()}  # botocore's parser decodes a test body
    _, status, headers = receive(op, {"StatusCode": 202, "Payload": b""})
    assert status == 202
    _, _, headers = receive(op, {"StatusCode": 200, "Payload": "text"}, content_type="text/plain")
    assert headers["content-type"] == "text/plain"


def test_status_code_member_and_empty_outputs(model: ServiceModel) -> None:
    assert serialize_response(model.operation_model("DeleteFunction"), {"StatusCode": 204})[0] == 204
    status, headers, body = serialize_response(model.operation_model("DeleteAlias"), {})
    assert (status, headers, body) == (204, [], b"")
    parsed, status, _ = receive(model.operation_model("GetAccountSettings"), {})
    assert (parsed, status) == ({}, 200)


def test_timestamps_and_doubles(model: ServiceModel) -> None:
    when = datetime(2024, 1, 2, 3, 4, 5, 250000, tzinfo=UTC)
    result = {
        "UUID": "u",
        "LastModified": when,
        "StartingPositionTimestamp": datetime(2024, 1, 2, tzinfo=UTC),
        "BatchSize": 10,
    }
    parsed, _, _ = receive(model.operation_model("GetEventSourceMapping"), result)
    assert parsed == result
    _, _, body = serialize_response(model.operation_model("GetEventSourceMapping"), result)
    assert json.loads(body)["LastModified"] == 1704164645.25  # epoch seconds, as AWS sends them
    alias = {"Name": "live", "RoutingConfig": {"AdditionalVersionWeights": {"2": 0.5}}}
    parsed, _, _ = receive(model.operation_model("GetAlias"), alias)
    assert parsed == alias


# ---- traits the Lambda model does not use (but other rest-json services do) ------------------

HEADERS_AND_BODY: dict[str, Any] = {
    "Doc": {"shape": "Str", "location": "header", "locationName": "X-Doc", "jsonvalue": True},
    "Count": {"shape": "Int", "location": "header", "locationName": "X-Count"},
    "On": {"shape": "Bool", "location": "header", "locationName": "X-On"},
    "Since": {"shape": "Time", "location": "header", "locationName": "X-Since"},
    "Names": {"shape": "StrList", "location": "header", "locationName": "X-Names"},
    "Meta": {"shape": "StrMap", "location": "headers", "locationName": "x-meta-"},
    "Weight": {"shape": "Double"},
    "At": {"shape": "Time"},
    "Data": {"shape": "Blob"},
    "Nested": {"shape": "Nested"},
}

SYNTHETIC = {
    "metadata": {
        "protocol": "rest-json",
        "apiVersion": "2020-01-01",
        "endpointPrefix": "x",
        "serviceId": "X",
    },
    "operations": {
        "Op": {
            "name": "Op",
            "http": {"method": "POST", "requestUri": "/things/{Id}", "responseCode": 200},
            "input": {"shape": "In"},
            "output": {"shape": "Out"},
        }
    },
    "shapes": {
        "In": {
            "type": "structure",
            "required": ["Id"],
            "members": {
                "Id": {"shape": "Long", "location": "uri", "locationName": "Id"},
                "Flag": {"shape": "Bool", "location": "querystring", "locationName": "flag"},
                "When": {"shape": "Time", "location": "querystring", "locationName": "when"},
                "Ratio": {"shape": "Double", "location": "querystring", "locationName": "ratio"},
                "Extra": {"shape": "StrMap", "location": "querystring"},
                **HEADERS_AND_BODY,
            },
        },
        "Out": {"type": "structure", "members": {**HEADERS_AND_BODY, "IsoAt": {"shape": "IsoTime"}}},
        "Nested": {
            "type": "structure",
            "members": {
                "Renamed": {"shape": "Str", "locationName": "renamed_on_wire"},
                "Deeper": {"shape": "Nested"},
            },
        },
        "Long": {"type": "long"},
        "Int": {"type": "integer"},
        "Bool": {"type": "boolean"},
        "Double": {"type": "double"},
        "Str": {"type": "string"},
        "Blob": {"type": "blob"},
        "Time": {"type": "timestamp"},
        "IsoTime": {"type": "timestamp", "timestampFormat": "iso8601"},
        "StrList": {"type": "list", "member": {"shape": "Str"}},
        "StrMap": {"type": "map", "key": {"shape": "Str"}, "value": {"shape": "Str"}},
    },
}


def test_synthetic_request_traits() -> None:
    model = ServiceModel(SYNTHETIC)
    router = RestRouter(model)
    params = {
        "Id": 42,
        "Flag": False,
        "When": datetime(2024, 2, 3, 4, 5, 6, tzinfo=UTC),
        "Ratio": 0.5,
        "Extra": {"free": "form", "other": ""},
        "Doc": {"a": [1, {"b": None}]},
        "Count": -3,
        "On": True,
        "Since": datetime(2023, 1, 1, 12, 0, 0, tzinfo=UTC),
        "Names": ["x", "has,comma", 'q"uote'],
        "Meta": {"color": "blue"},
        "Weight": 1.25,
        "At": datetime(2024, 1, 1, 0, 0, 1, 500000, tzinfo=UTC),
        "Data": b"\x00\x01",
        "Nested": {"Renamed": "r", "Deeper": {"Renamed": "deep"}},
    }
    assert send(model, router, "Op", params) == params


def test_synthetic_response_traits() -> None:
    op = ServiceModel(SYNTHETIC).operation_model("Op")
    result = {
        "Doc": {"k": "v"},
        "Count": 7,
        "On": False,
        "Since": datetime(2023, 1, 1, 12, 0, 0, tzinfo=UTC),
        "Names": ["x", "y"],
        "Meta": {"color": "blue"},
        "Weight": 0.75,
        "At": datetime(2024, 1, 1, 0, 0, 1, tzinfo=UTC),
        "IsoAt": datetime(2024, 1, 1, 0, 0, 1, 123000, tzinfo=UTC),
        "Data": b"\x00\x01",
        "Nested": {"Renamed": "r"},
    }
    parsed, _, headers = receive(op, result)
    assert parsed == result
    assert headers["x-since"] == "Sun, 01 Jan 2023 12:00:00 GMT"
    _, _, body = serialize_response(op, {"IsoAt": result["IsoAt"], "Weight": float("nan")})
    assert json.loads(body) == {"IsoAt": "2024-01-01T00:00:01.123Z", "Weight": "NaN"}
    _, _, body = serialize_response(op, {"Nested": {"Renamed": "r"}})
    assert body == b'{"Nested":{"renamed_on_wire":"r"}}'


def test_synthetic_bad_header_and_label() -> None:
    op = ServiceModel(SYNTHETIC).operation_model("Op")
    with pytest.raises(AwsError) as info:
        parse_request(op, {"Id": "x1"}, "flag=maybe", {"x-count": "3"}, b"")
    assert info.value.code == "ValidationException"
    assert "Value 'x1' at 'id'" in info.value.message
    assert "Value 'maybe' at 'flag'" in info.value.message
