"""Function URLs' pure parts: the payload 2.0 event, the inferred response, CORS, times, config."""

from __future__ import annotations

import base64
import json
import re

import pytest

from lamina.config import Settings, parse_port_range
from lamina.urls import cors
from lamina.urls.event import EventSource, build_event, clf_time, domain_prefix, is_text, source_ip
from lamina.urls.reply import function_reply
from lamina.urls.service import new_url_id, wire_time
from lamina.web.connection import Request

SOURCE = EventSource(url_id="abc123", port=9123, request_id="rid-1", trace_id="Root=1-aaa")
NOW = 1583348638.390


def request(
    method: str = "GET",
    target: bytes = b"/",
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes = b"",
) -> Request:
    path, _, query = target.partition(b"?")
    pairs = headers if headers is not None else [(b"host", b"127.0.0.1:9123")]
    hmap: dict[bytes, bytes] = {}
    for name, value in pairs:
        hmap[name] = value if name not in hmap else hmap[name] + b"," + value
    req = Request(method, path, query, pairs, hmap)
    req.body = body
    req.peer = "10.1.2.3"
    return req


def test_event_shape_as_aws_builds_it() -> None:
    req = request(
        "POST",
        b"/my/path?parameter1=value1&parameter1=value2&parameter2=value",
        [
            (b"host", b"127.0.0.1:9123"),
            (b"user-agent", b"agent"),
            (b"cookie", b"cookie1=a; cookie2=b"),
            (b"x-multi", b"v1"),
            (b"x-multi", b"v2"),
            (b"connection", b"keep-alive"),
            (b"content-type", b"text/plain"),
        ],
        b"Hello from client!",
    )
    event = build_event(req, SOURCE, now=NOW)
    assert list(event) == [
        "version",
        "routeKey",
        "rawPath",
        "rawQueryString",
        "cookies",
        "headers",
        "queryStringParameters",
        "requestContext",
        "body",
        "isBase64Encoded",
    ]
    assert event["rawQueryString"] == "parameter1=value1&parameter1=value2&parameter2=value"
    assert event["queryStringParameters"] == {"parameter1": "value1,value2", "parameter2": "value"}
    assert event["cookies"] == ["cookie1=a", "cookie2=b"]
    assert event["headers"] == {
        "host": "127.0.0.1:9123",
        "user-agent": "agent",
        "x-multi": "v1,v2",
        "content-type": "text/plain",
        "x-forwarded-for": "10.1.2.3",
        "x-forwarded-proto": "http",
        "x-forwarded-port": "9123",
        "x-amzn-trace-id": "Root=1-aaa",
    }
    assert event["requestContext"] == {
        "accountId": "anonymous",
        "apiId": "abc123",
        "domainName": "127.0.0.1:9123",
        "domainPrefix": "abc123",
        "http": {
            "method": "POST",
            "path": "/my/path",
            "protocol": "HTTP/1.1",
            "sourceIp": "10.1.2.3",
            "userAgent": "agent",
        },
        "requestId": "rid-1",
        "routeKey": "$default",
        "stage": "$default",
        "time": "04/Mar/2020:19:03:58 +0000",
        "timeEpoch": 1583348638390,
    }
    assert (event["body"], event["isBase64Encoded"]) == ("Hello from client!", False)
    assert "pathParameters" not in event and "stageVariables" not in event


def test_event_without_query_body_or_cookies() -> None:
    event = build_event(request(), SOURCE, now=NOW)
    assert "queryStringParameters" not in event and "cookies" not in event and "body" not in event
    assert event["isBase64Encoded"] is False and event["rawQueryString"] == ""


def test_iam_authorizer_and_forwarded_for_appended() -> None:
    iam = {"accessKey": "AK", "accountId": "111122223333", "callerId": "X", "cognitoIdentity": None}
    src = EventSource(url_id="u", port=1, request_id="r", trace_id="t", iam=iam)
    req = request(headers=[(b"host", b"abc.lambda-url.example"), (b"x-forwarded-for", b"1.1.1.1")])
    event = build_event(req, src, now=NOW)
    ctx = event["requestContext"]
    assert ctx["accountId"] == "111122223333" and ctx["authorizer"] == {"iam": iam}
    assert ctx["domainPrefix"] == "abc"
    assert event["headers"]["x-forwarded-for"] == "1.1.1.1, 10.1.2.3"


@pytest.mark.parametrize(
    ("content_type", "body", "encoded"),
    [
        ("application/json", b'{"a":1}', False),
        ("text/html; charset=utf-8", "é".encode(), False),
        ("application/vnd.api+json", b"{}", False),
        ("application/xml", b"<a/>", False),
        ("application/octet-stream", b"\x00\x01", True),
        ("application/x-www-form-urlencoded", b"a=1", True),
        ("multipart/form-data; boundary=x", b"--x--", True),
        ("", b"raw", True),
        ("text/plain", b"\xff\xfe", True),  # not UTF-8: base64 whatever the type says
    ],
)
def test_body_text_or_base64(content_type: str, body: bytes, encoded: bool) -> None:
    headers = [(b"host", b"h")] + ([(b"content-type", content_type.encode())] if content_type else [])
    event = build_event(request("POST", b"/", headers, body), SOURCE, now=NOW)
    assert event["isBase64Encoded"] is encoded
    assert (base64.b64decode(event["body"]) if encoded else event["body"].encode()) == body


def test_helpers() -> None:
    assert clf_time(0) == "01/Jan/1970:00:00:00 +0000"
    assert source_ip("::ffff:10.0.0.1") == "10.0.0.1" and source_ip("::1") == "::1"
    assert is_text("Application/JSON") and not is_text("image/png")
    assert domain_prefix("[::1]:80", "id") == "id" and domain_prefix("localhost:9000", "id") == "id"
    assert domain_prefix("fn.example.com", "id") == "fn"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", wire_time(1700000000.25))
    assert wire_time(1700000000.25) == "2023-11-14T22:13:20.250000Z"
    assert re.fullmatch(r"[a-z0-9]{32}", new_url_id())


# -- the response Lambda infers ---------------------------------------------------------------


def test_plain_values_are_json_bodies() -> None:
    assert function_reply(b'"Hello, world!"', None) == (
        200,
        [(b"content-type", b"application/json")],
        b'"Hello, world!"',
    )
    assert function_reply(b'{"message": "hi"}', None)[2] == b'{"message": "hi"}'
    assert function_reply(b"3.1", None)[0] == 200
    assert function_reply(b"null", None)[2] == b"null"


def test_structured_response() -> None:
    payload = {
        "statusCode": "201",
        "headers": {"My-Custom-Header": "Custom Value", "Content-Length": "999", "X-Flag": True},
        "multiValueHeaders": {"X-Multi": ["a", "b"]},
        "cookies": ["Cookie_1=Value1; Expires=21 Oct 2021 07:48 GMT", "Cookie_2=Value2; Max-Age=78000"],
        "body": '{"message": "Hello, world!"}',
        "isBase64Encoded": False,
    }
    status, headers, body = function_reply(json.dumps(payload).encode(), None)
    assert status == 201 and body == b'{"message": "Hello, world!"}'
    assert headers == [
        (b"content-type", b"application/json"),
        (b"x-multi", b"a"),
        (b"x-multi", b"b"),
        (b"my-custom-header", b"Custom Value"),
        (b"x-flag", b"true"),
        (b"set-cookie", b"Cookie_1=Value1; Expires=21 Oct 2021 07:48 GMT"),
        (b"set-cookie", b"Cookie_2=Value2; Max-Age=78000"),
    ]


def test_base64_body_and_own_content_type() -> None:
    data = bytes(range(256))
    payload = {
        "statusCode": 200,
        "headers": {"content-type": "image/png"},
        "body": base64.b64encode(data).decode(),
        "isBase64Encoded": True,
    }
    assert function_reply(json.dumps(payload).encode(), None) == (
        200,
        [(b"content-type", b"image/png")],
        data,
    )
    assert function_reply(b'{"statusCode": 204}', None)[:3:2] == (204, b"")
    assert function_reply(b'{"statusCode": 200, "body": {"a": 1}}', None)[2] == b'{"a": 1}'


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b'{"errorMessage": "boom"}', "Unhandled"),
        (b'{"statusCode": "nope"}', None),
        (b'{"statusCode": 99}', None),
        (b'{"statusCode": 200, "body": "***", "isBase64Encoded": true}', None),
        (b"not json", None),
    ],
)
def test_bad_gateway(payload: bytes, error: str | None) -> None:
    status, _, body = function_reply(payload, error)
    assert (status, body) == (502, b"Internal Server Error")


# -- CORS --------------------------------------------------------------------------------------

CORS = {
    "AllowOrigins": ["https://app.example"],
    "AllowMethods": ["GET", "POST"],
    "AllowHeaders": ["content-type", "x-api-key"],
    "ExposeHeaders": ["x-custom"],
    "MaxAge": 300,
    "AllowCredentials": True,
}
PREFLIGHT = {b"origin": b"https://APP.example", b"access-control-request-method": b"POST"}


def test_preflight() -> None:
    assert cors.is_preflight("OPTIONS", PREFLIGHT) and not cors.is_preflight("GET", PREFLIGHT)
    assert not cors.is_preflight("OPTIONS", {b"origin": b"x"})  # not a preflight: the function's
    assert cors.preflight(CORS, PREFLIGHT) == (
        200,
        [
            (b"access-control-allow-origin", b"https://APP.example"),
            (b"access-control-allow-methods", b"GET,POST"),
            (b"access-control-allow-headers", b"content-type,x-api-key"),
            (b"access-control-allow-credentials", b"true"),
            (b"access-control-max-age", b"300"),
        ],
        b"",
    )


def test_preflight_from_another_origin_is_not_allowed() -> None:
    headers = dict(cors.preflight(CORS, {**PREFLIGHT, b"origin": b"https://evil.example"})[1])
    assert b"access-control-allow-origin" not in headers


def test_wildcards_and_empty_lists() -> None:
    star = {"AllowOrigins": ["*"], "AllowMethods": ["*"], "AllowHeaders": []}
    headers = dict(cors.preflight(star, PREFLIGHT)[1])
    assert headers == {b"access-control-allow-origin": b"*", b"access-control-allow-methods": b"*"}
    with_credentials = {**star, "AllowCredentials": True}  # AWS reflects the origin then
    assert dict(cors.preflight(with_credentials, PREFLIGHT)[1])[b"access-control-allow-origin"] == (
        b"https://APP.example"
    )


def test_actual_response_headers() -> None:
    reply = (200, [(b"access-control-allow-origin", b"*"), (b"x-custom", b"1")], b"ok")
    assert cors.apply(CORS, b"https://app.example", reply) == (
        200,
        [  # the function's own CORS header stays next to the configured one, as on AWS
            (b"access-control-allow-origin", b"*"),
            (b"x-custom", b"1"),
            (b"access-control-allow-origin", b"https://app.example"),
            (b"access-control-expose-headers", b"x-custom"),
            (b"access-control-allow-credentials", b"true"),
        ],
        b"ok",
    )
    only_expose = {"ExposeHeaders": ["x-request-id"]}  # no origins configured: none allowed
    assert cors.apply(only_expose, b"https://app.example", (200, [], b""))[1] == [
        (b"access-control-expose-headers", b"x-request-id")
    ]
    assert cors.apply(None, b"https://evil.example", reply) == reply  # no Cors config: untouched


def test_url_settings() -> None:
    assert parse_port_range("") is None and parse_port_range("9100-9199") == (9100, 9199)
    assert parse_port_range("9100") == (9100, 9100)
    for bad in ("a-b", "9199-9100", "0-5", "70000"):
        with pytest.raises(ValueError, match="function URL ports"):
            parse_port_range(bad)
    settings = Settings.from_env({"LAMINA_URL_PORTS": "9100-9101"}, host="0.0.0.0", data_dir="/tmp/x")
    assert settings.url_ports == (9100, 9101) and settings.function_url_host == "127.0.0.1"
    named = Settings.from_env({"LAMINA_URL_HOST": "devbox.lan"}, host="0.0.0.0", data_dir="/tmp/x")
    assert named.function_url_host == "devbox.lan"
