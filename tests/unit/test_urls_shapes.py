"""The API Gateway REST (payload 1.0) and ALB event shapes a function URL can send, and their replies."""

from __future__ import annotations

import base64
import json

import pytest

from lamina.errors import AwsError
from lamina.functions.tags import check_tags
from lamina.urls import formats
from lamina.urls.alb import alb_reply, build_alb_event, target_group_arn
from lamina.urls.event import EventSource
from lamina.urls.rest import build_rest_event, rest_reply
from lamina.urls.shapes import DEFAULT, SHAPES, shape_for

from .test_urls_payload import NOW, request

SOURCE = EventSource(
    url_id="abcdefghij0123456789klmnopqrstuv",
    port=9123,
    request_id="rid-1",
    trace_id="Root=1-aaa",
    account_id="123456789012",
    region="us-east-1",
    function_name="shop",
)
HEADERS = [
    (b"host", b"127.0.0.1:9123"),
    (b"user-agent", b"agent"),
    (b"cookie", b"c=1"),
    (b"x-multi", b"v1"),
    (b"x-multi", b"v2"),
    (b"connection", b"keep-alive"),
    (b"content-type", b"application/json"),
]
TARGET = b"/my/path%20x?p1=a%2Bb&p1=c&p2=&flag"


def test_rest_event_as_api_gateway_builds_it() -> None:
    event = build_rest_event(request("POST", TARGET, HEADERS, b'{"k": 1}'), SOURCE, now=NOW)
    assert list(event) == [
        "resource",
        "path",
        "httpMethod",
        "headers",
        "multiValueHeaders",
        "queryStringParameters",
        "multiValueQueryStringParameters",
        "pathParameters",
        "stageVariables",
        "requestContext",
        "body",
        "isBase64Encoded",
    ]
    assert event["resource"] == "/{proxy+}" and event["path"] == "/my/path x"
    assert event["pathParameters"] == {"proxy": "my/path x"} and event["stageVariables"] is None
    assert event["headers"]["x-multi"] == "v2" and event["multiValueHeaders"]["x-multi"] == ["v1", "v2"]
    assert event["headers"]["cookie"] == "c=1" and "connection" not in event["headers"]
    assert event["headers"]["x-forwarded-for"] == "10.1.2.3"
    assert event["headers"]["x-amzn-trace-id"] == "Root=1-aaa"
    assert event["queryStringParameters"] == {"p1": "c", "p2": "", "flag": ""}
    assert event["multiValueQueryStringParameters"] == {"p1": ["a+b", "c"], "p2": [""], "flag": [""]}
    assert (event["body"], event["isBase64Encoded"]) == ('{"k": 1}', False)
    ctx = event["requestContext"]
    assert ctx == {
        "accountId": "123456789012",
        "apiId": "abcdefghij",
        "domainName": "127.0.0.1:9123",
        "domainPrefix": "abcdefghij",
        "extendedRequestId": "rid-1",
        "httpMethod": "POST",
        "identity": {
            "accessKey": None,
            "accountId": None,
            "caller": None,
            "cognitoAuthenticationProvider": None,
            "cognitoAuthenticationType": None,
            "cognitoIdentityId": None,
            "cognitoIdentityPoolId": None,
            "principalOrgId": None,
            "sourceIp": "10.1.2.3",
            "user": None,
            "userAgent": "agent",
            "userArn": None,
        },
        "path": "/my/path%20x",
        "protocol": "HTTP/1.1",
        "requestId": "rid-1",
        "requestTime": "04/Mar/2020:19:03:58 +0000",
        "requestTimeEpoch": 1583348638390,
        "resourceId": "0123456789"[:6],
        "resourcePath": "/{proxy+}",
        "stage": "$default",
    }


def test_rest_event_root_and_empty() -> None:
    event = build_rest_event(request("GET", b"/"), SOURCE, now=NOW)
    assert (event["resource"], event["pathParameters"]) == ("/", None)
    assert event["queryStringParameters"] is None and event["multiValueQueryStringParameters"] is None
    assert (event["body"], event["isBase64Encoded"]) == (None, False)
    binary = build_rest_event(
        request("PUT", b"/f", [(b"content-type", b"image/png")], b"\x89PNG"), SOURCE, now=NOW
    )
    assert (binary["body"], binary["isBase64Encoded"]) == (base64.b64encode(b"\x89PNG").decode(), True)


def test_rest_identity_for_aws_iam() -> None:
    iam = {"accessKey": "AK", "accountId": "123456789012", "callerId": "123456789012"}
    iam |= {"userArn": "arn:aws:iam::123456789012:root", "userId": "123456789012"}
    src = EventSource(
        url_id="u" * 32, port=1, request_id="r", trace_id="t", iam=iam, account_id="123456789012"
    )
    ident = build_rest_event(request(), src, now=NOW)["requestContext"]["identity"]
    assert (ident["accessKey"], ident["caller"], ident["user"]) == ("AK", "123456789012", "123456789012")
    assert ident["userArn"] == "arn:aws:iam::123456789012:root"


def test_rest_reply() -> None:
    ok = json.dumps(
        {
            "statusCode": 201,
            "headers": {"X-One": "1", "Set-Cookie": "a=1"},
            "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
            "body": "made",
        }
    ).encode()
    status, headers, body = rest_reply(ok, None)
    assert (status, body) == (201, b"made")
    assert headers == [
        (b"content-type", b"application/json"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
        (b"x-one", b"1"),
    ]
    binary = {"statusCode": 200, "body": base64.b64encode(b"\x00\x01").decode(), "isBase64Encoded": True}
    assert rest_reply(json.dumps(binary).encode(), None)[2] == b"\x00\x01"
    internal = (502, b'{"message": "Internal server error"}')
    for bad in (
        b'{"body": "no status"}',
        b'"a string"',
        b'{"statusCode": 200, "body": {"an": "object"}}',
        b'{"statusCode": 200, "cookies": ["a=1"]}',  # a 2.0 member: "Malformed Lambda proxy response"
        b"nope",
    ):
        status, headers, body = rest_reply(bad, None)
        assert (status, body) == internal
        assert (b"x-amzn-errortype", b"InternalServerErrorException") in headers
    assert rest_reply(b'{"statusCode": 200}', "Unhandled")[0] == 502
    assert rest_reply(b'{"statusCode": 204}', None) == (204, [(b"content-type", b"application/json")], b"")


@pytest.mark.parametrize("multi", [False, True])
def test_alb_event_as_a_target_group_gets_it(multi: bool) -> None:
    event = build_alb_event(request("POST", TARGET, HEADERS, b'{"k": 1}'), SOURCE, now=NOW, multi_value=multi)
    arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/lamina-shop/"
    assert event["requestContext"]["elb"]["targetGroupArn"].startswith(arn)
    assert event["httpMethod"] == "POST" and event["path"] == "/my/path%20x"
    if multi:
        assert list(event) == [
            "requestContext",
            "httpMethod",
            "path",
            "multiValueQueryStringParameters",
            "multiValueHeaders",
            "body",
            "isBase64Encoded",
        ]
        assert event["multiValueQueryStringParameters"] == {"p1": ["a%2Bb", "c"], "p2": [""], "flag": [""]}
        assert event["multiValueHeaders"]["x-multi"] == ["v1", "v2"]
        assert event["multiValueHeaders"]["cookie"] == ["c=1"]
    else:
        assert list(event) == [
            "requestContext",
            "httpMethod",
            "path",
            "queryStringParameters",
            "headers",
            "body",
            "isBase64Encoded",
        ]
        assert event["queryStringParameters"] == {"p1": "c", "p2": "", "flag": ""}  # as sent, last wins
        headers = event["headers"]
        assert headers["x-multi"] == "v2" and "connection" not in headers
        assert headers["x-forwarded-proto"] == "http" and headers["x-forwarded-port"] == "9123"
        assert headers["x-forwarded-for"] == "10.1.2.3" and headers["x-amzn-trace-id"] == "Root=1-aaa"
    assert (event["body"], event["isBase64Encoded"]) == ('{"k": 1}', False)
    empty = build_alb_event(request(), SOURCE, now=NOW, multi_value=multi)
    assert (empty["body"], empty["isBase64Encoded"]) == ("", False)
    assert empty["multiValueQueryStringParameters" if multi else "queryStringParameters"] == {}


def test_alb_target_group_arn_is_stable_and_valid() -> None:
    long = EventSource(url_id="x", port=1, request_id="r", trace_id="t", function_name="f" * 64)
    name = target_group_arn(long).split("/")[1]
    assert len(name) == 32 and target_group_arn(long) == target_group_arn(long)


def test_alb_reply() -> None:
    result = {
        "statusCode": 200,
        "statusDescription": "200 OK",
        "headers": {"Content-Type": "text/plain"},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
        "body": "hi",
        "isBase64Encoded": False,
    }
    payload = json.dumps(result).encode()
    assert alb_reply(payload, None, multi_value=False) == (200, [(b"content-type", b"text/plain")], b"hi")
    assert alb_reply(payload, None, multi_value=True) == (
        200,
        [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")],
        b"hi",
    )
    for bad in (
        b'{"body": "x"}',
        b"[]",
        b"not json",
        json.dumps({"statusCode": 200, "body": "x" * 1048577}).encode(),
    ):
        status, headers, body = alb_reply(bad, None, multi_value=False)
        assert status == 502 and b"502 Bad Gateway" in body and (b"server", b"awselb/2.0") in headers
    assert alb_reply(payload, "Unhandled", multi_value=True)[0] == 502


def test_shape_for_the_tag() -> None:
    assert shape_for({}) is DEFAULT and DEFAULT.name == formats.FUNCTION_URL
    for name in formats.FORMATS:
        assert shape_for({formats.FORMAT_TAG: name}) is SHAPES[name]
    check_tags({formats.FORMAT_TAG: "alb-multivalue"})
    with pytest.raises(AwsError) as exc:
        check_tags({formats.FORMAT_TAG: "apigateway-http"})
    assert exc.value.code == "InvalidParameterValueException"
    assert "lamina:url-event-format must be one of function-url, apigateway-rest, alb, alb-multivalue" in str(
        exc.value.message
    )
