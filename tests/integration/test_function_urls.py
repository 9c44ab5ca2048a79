"""Function URLs against the real server: the config API through boto3, the URL through urllib and
curl (httpx is not installed here), with auth, payload 2.0, the inferred response, CORS, restarts."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from .conftest import ACCESS_KEY, REGION, SECRET_KEY, LaminaServer, create_function, unique

ACCOUNT = "123456789012"
FORBIDDEN = (
    '{"Message":"Forbidden. For troubleshooting Function URL authorization issues, see: '
    'https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html"}'
)
ECHO = """
import base64, json, os

def handler(event, context):
    mode = (event.get("queryStringParameters") or {}).get("mode")
    if mode == "error":
        raise RuntimeError("boom")
    if mode == "plain":
        return "Hello, world!"
    if mode == "dict":
        return {"message": "hi"}
    if mode == "binary":
        return {"statusCode": 200, "headers": {"content-type": "application/octet-stream"},
                "body": base64.b64encode(bytes(range(256))).decode(), "isBase64Encoded": True}
    if mode == "cookies":
        return {"statusCode": 201, "headers": {"X-Custom": "v"}, "cookies": ["a=1; Max-Age=60", "b=2"],
                "body": "made"}
    return {"statusCode": 200, "headers": {"content-type": "application/json"},
            "body": json.dumps({"event": event, "request_id": context.aws_request_id,
                                "trace": os.environ.get("_X_AMZN_TRACE_ID")})}
"""


def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Message, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def signed(method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None) -> dict[str, str]:
    req = AWSRequest(method=method, url=url, data=body, headers=headers or {})
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "lambda", REGION).add_auth(req)
    return dict(req.headers.items())


def public(lam: Any, name: str, **kw: Any) -> None:
    lam.add_permission(
        FunctionName=name,
        StatementId="url",
        Action="lambda:InvokeFunctionUrl",
        Principal="*",
        FunctionUrlAuthType="NONE",
        **kw,
    )


def error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    return exc.value.response["Error"]["Code"], exc.value.response["Error"]["Message"]


@pytest.fixture
def echo_url(lam: Any) -> Iterator[tuple[str, str]]:
    name = create_function(lam, ECHO)
    url = lam.create_function_url_config(FunctionName=name, AuthType="NONE")["FunctionUrl"]
    public(lam, name)
    yield name, url
    lam.delete_function(FunctionName=name)


def test_config_api(lam: Any) -> None:
    name = create_function(lam, ECHO)
    created = lam.create_function_url_config(FunctionName=name, AuthType="AWS_IAM")
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert created["FunctionArn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
    assert created["FunctionUrl"].startswith("http://127.0.0.1:") and created["FunctionUrl"].endswith("/")
    assert created["InvokeMode"] == "BUFFERED" and "LastModifiedTime" not in created
    with pytest.raises(ClientError) as exc:
        lam.create_function_url_config(FunctionName=name, AuthType="NONE")
    assert error(exc) == (
        "ResourceConflictException",
        f"Failed to create function url config for [functionArn = {created['FunctionArn']}]. "
        "Error message:  FunctionUrlConfig exists for this Lambda function",
    )
    for qualifier in ("1", "$LATEST"):
        with pytest.raises(ClientError) as exc:
            lam.create_function_url_config(FunctionName=name, Qualifier=qualifier, AuthType="NONE")
        code, message = error(exc)
        assert code == "ValidationException"
        assert message == (
            f"1 validation error detected: Value '{qualifier}' at 'qualifier' failed to satisfy constraint: "
            r"Member must satisfy regular expression pattern: ((?!^\d+$)^[0-9a-zA-Z-_]+$)"
        )
    with pytest.raises(ClientError) as exc:
        lam.create_function_url_config(FunctionName=name, Qualifier="nope", AuthType="NONE")
    assert error(exc) == ("ResourceNotFoundException", "Function does not exist")
    version = lam.publish_version(FunctionName=name)["Version"]
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion=version)
    alias_url = lam.create_function_url_config(
        FunctionName=name, Qualifier="live", AuthType="NONE", InvokeMode="RESPONSE_STREAM"
    )
    assert alias_url["FunctionArn"].endswith(f":function:{name}:live")
    assert alias_url["FunctionUrl"] != created["FunctionUrl"]
    cors = {"AllowOrigins": ["https://example.com"], "MaxAge": 60}
    updated = lam.update_function_url_config(FunctionName=name, AuthType="NONE", Cors=cors)
    assert updated["AuthType"] == "NONE" and updated["Cors"] == cors
    assert updated["CreationTime"] == created["CreationTime"] and updated["LastModifiedTime"]
    got = lam.get_function_url_config(FunctionName=name)
    assert {k: got[k] for k in ("FunctionUrl", "AuthType", "Cors")} == {
        "FunctionUrl": created["FunctionUrl"],
        "AuthType": "NONE",
        "Cors": cors,
    }
    page = lam.list_function_url_configs(FunctionName=name, MaxItems=1)
    assert [c["FunctionArn"] for c in page["FunctionUrlConfigs"]] == [created["FunctionArn"]]
    rest = lam.list_function_url_configs(FunctionName=name, Marker=page["NextMarker"])
    assert [c["InvokeMode"] for c in rest["FunctionUrlConfigs"]] == ["RESPONSE_STREAM"]
    assert "NextMarker" not in rest
    lam.delete_alias(FunctionName=name, Name="live")  # takes its URL with it
    assert len(lam.list_function_url_configs(FunctionName=name)["FunctionUrlConfigs"]) == 1
    lam.delete_function_url_config(FunctionName=name)
    with pytest.raises(ClientError) as exc:
        lam.get_function_url_config(FunctionName=name)
    assert error(exc) == ("ResourceNotFoundException", "The resource you requested does not exist.")
    with pytest.raises(ClientError) as exc:
        lam.list_function_url_configs(FunctionName=unique())
    assert error(exc) == ("ResourceNotFoundException", "Function does not exist")
    lam.delete_function(FunctionName=name)


def test_auth_none_needs_the_public_permission(lam: Any) -> None:
    name = create_function(lam, ECHO)
    url = lam.create_function_url_config(FunctionName=name, AuthType="NONE")["FunctionUrl"]
    status, headers, body = http("GET", url)
    assert (status, body.decode()) == (403, FORBIDDEN)
    assert headers["x-amzn-ErrorType"] == "AccessDeniedException"
    public(lam, name)
    status, headers, body = http("GET", url + "hello?a=1")
    assert status == 200, body
    event = json.loads(body)["event"]
    assert event["rawPath"] == "/hello" and event["requestContext"]["accountId"] == "anonymous"
    assert "authorizer" not in event["requestContext"]
    lam.delete_function(FunctionName=name)


def test_auth_aws_iam(lam: Any) -> None:
    name = create_function(lam, ECHO)
    url = lam.create_function_url_config(FunctionName=name, AuthType="AWS_IAM")["FunctionUrl"]
    status, _, body = http("POST", url + "x", b"{}", {"content-type": "application/json"})
    assert (status, body.decode()) == (403, FORBIDDEN)
    headers = signed("POST", url + "x", b"{}", {"content-type": "application/json"})
    status, _, body = http("POST", url + "x", b"{}", headers)
    assert status == 200, body
    iam = json.loads(body)["event"]["requestContext"]["authorizer"]["iam"]
    assert iam == {
        "accessKey": ACCESS_KEY,
        "accountId": ACCOUNT,
        "callerId": ACCOUNT,
        "cognitoIdentity": None,
        "principalOrgId": None,
        "userArn": f"arn:aws:iam::{ACCOUNT}:root",
        "userId": ACCOUNT,
    }
    lam.update_function_url_config(FunctionName=name, Cors={"AllowOrigins": ["*"]})
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    status, answer, _ = http("OPTIONS", url + "x", headers=preflight)  # browsers cannot sign it
    assert status == 403 and "access-control-allow-origin" not in answer
    headers["Authorization"] = headers["Authorization"][:-4] + "0000"
    status, _, body = http("POST", url + "x", b"{}", headers)
    assert status == 403 and b"signature" in body
    lam.delete_function(FunctionName=name)


def test_event_and_responses(echo_url: tuple[str, str]) -> None:
    _, url = echo_url
    status, headers, body = http(
        "GET",
        url + "a/b?x=1&x=2&y=%20z",
        headers={"Cookie": "c1=v1; c2=v2", "X-Amzn-Trace-Id": "Root=1-5e1b4151-5ac6c58f5b5dbd6a6f1b3e2c"},
    )
    assert status == 200, body
    got = json.loads(body)
    event = got["event"]
    assert event["version"] == "2.0" and event["routeKey"] == "$default"
    assert event["rawQueryString"] == "x=1&x=2&y=%20z"
    assert event["queryStringParameters"] == {"x": "1,2", "y": " z"}
    assert event["cookies"] == ["c1=v1", "c2=v2"] and "cookie" not in event["headers"]
    assert event["headers"]["x-forwarded-proto"] == "http"
    assert event["isBase64Encoded"] is False and "body" not in event
    ctx = event["requestContext"]
    assert ctx["http"]["method"] == "GET" and ctx["http"]["path"] == "/a/b"
    assert ctx["http"]["sourceIp"] == "127.0.0.1" and ctx["http"]["protocol"] == "HTTP/1.1"
    assert ctx["requestId"] == got["request_id"] == headers["x-amzn-RequestId"]
    assert got["trace"].startswith("Root=1-5e1b4151-5ac6c58f5b5dbd6a6f1b3e2c")
    assert headers["X-Amzn-Trace-Id"] == "Root=1-5e1b4151-5ac6c58f5b5dbd6a6f1b3e2c"
    status, headers, body = http("GET", url + "?mode=plain")
    assert (status, headers["content-type"], body) == (200, "application/json", b'"Hello, world!"')
    status, headers, body = http("GET", url + "?mode=dict")
    assert (status, json.loads(body)) == (200, {"message": "hi"})
    status, headers, body = http("GET", url + "?mode=cookies")
    assert (status, body, headers["x-custom"]) == (201, b"made", "v")
    assert headers.get_all("set-cookie") == ["a=1; Max-Age=60", "b=2"]
    status, _, body = http("GET", url + "?mode=error")
    assert (status, body) == (502, b"Internal Server Error")


def test_binary_round_trip(echo_url: tuple[str, str]) -> None:
    _, url = echo_url
    data = bytes(range(256)) * 4
    status, _, body = http("POST", url, data, {"content-type": "application/octet-stream"})
    event = json.loads(body)["event"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == data
    status, headers, body = http("GET", url + "?mode=binary")
    assert (status, headers["content-type"], body) == (200, "application/octet-stream", bytes(range(256)))


def test_cors_preflight_and_headers(lam: Any, echo_url: tuple[str, str]) -> None:
    name, url = echo_url
    lam.update_function_url_config(
        FunctionName=name,
        Cors={
            "AllowOrigins": ["https://app.example"],
            "AllowMethods": ["GET", "POST"],
            "AllowHeaders": ["content-type"],
            "ExposeHeaders": ["x-custom"],
            "MaxAge": 300,
            "AllowCredentials": True,
        },
    )
    pre = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    status, headers, body = http("OPTIONS", url + "?mode=error", headers=pre)  # not invoked: no 502
    assert (status, body) == (200, b"")
    assert headers["access-control-allow-origin"] == "https://app.example"
    assert headers["access-control-allow-methods"] == "GET,POST"
    assert headers["access-control-max-age"] == "300"
    assert headers["access-control-allow-credentials"] == "true"
    status, headers, _ = http("OPTIONS", url, headers={**pre, "Origin": "https://evil.example"})
    assert status == 200 and "access-control-allow-origin" not in headers
    status, headers, _ = http("GET", url + "?mode=cookies", headers={"Origin": "https://app.example"})
    assert status == 201 and headers["access-control-expose-headers"] == "x-custom"
    assert headers["access-control-allow-origin"] == "https://app.example"


def test_curl(echo_url: tuple[str, str]) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    _, url = echo_url
    out = subprocess.run(
        [curl, "-s", "-X", "POST", url + "c?q=1", "-H", "content-type: text/plain", "-d", "héllo"],
        capture_output=True,
        timeout=60,
        check=True,
    )
    event = json.loads(out.stdout)["event"]
    assert event["body"] == "héllo" and event["isBase64Encoded"] is False
    assert event["requestContext"]["http"]["userAgent"].startswith("curl/")


def test_url_survives_restart(tmp_path: Path) -> None:
    srv = LaminaServer(tmp_path / "data")
    srv.start()
    try:
        lam = srv.client()
        name = create_function(lam, ECHO)
        url = lam.create_function_url_config(FunctionName=name, AuthType="NONE")["FunctionUrl"]
        public(lam, name)
        assert http("GET", url + "?mode=dict")[0] == 200
        srv.stop()
        srv.start()
        assert lam.get_function_url_config(FunctionName=name)["FunctionUrl"] == url
        assert http("GET", url + "?mode=dict")[:3:2] == (200, b'{"message": "hi"}')
        srv.stop()
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        with socket.socket() as squatter:  # the stored port is taken at the next start
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT
            squatter.bind(("127.0.0.1", port))
            squatter.listen()
            srv.start()
            moved = lam.get_function_url_config(FunctionName=name)["FunctionUrl"]
            assert moved != url and http("GET", moved + "?mode=dict")[0] == 200
            assert "function URL port taken" in srv.logs_text()
        lam.delete_function(FunctionName=name)  # takes the URL (and its port) with it
        with pytest.raises(OSError):
            urllib.request.urlopen(moved, timeout=5)
    finally:
        srv.stop()


def test_throttle_and_payload_limits(lam: Any, echo_url: tuple[str, str]) -> None:
    name, url = echo_url
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:  # refused at its head
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6291457\r\n\r\n")
        answer = sock.makefile("rb").read()
    assert answer.startswith(b"HTTP/1.1 413 ") and b"x-amzn-errortype: RequestTooLargeException" in answer
    # within 6 MB as sent, over it once base64-encoded into the event
    status, _, _ = http(
        "POST", url, b"\x00" * (5 * 1024 * 1024), {"content-type": "application/octet-stream"}
    )
    assert status == 413
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    status, headers, _ = http("GET", url)
    assert status == 429 and headers["x-amzn-ErrorType"] == "TooManyRequestsException"


def test_invoke_function_permission_when_required(tmp_path: Path) -> None:
    """LAMINA_URL_REQUIRE_INVOKE_FUNCTION=1: AWS's rule since October 2025, both grants needed."""
    srv = LaminaServer(tmp_path / "data", extra_env={"LAMINA_URL_REQUIRE_INVOKE_FUNCTION": "1"})
    srv.start()
    try:
        lam = srv.client()
        name = create_function(lam, ECHO)
        url = lam.create_function_url_config(FunctionName=name, AuthType="NONE")["FunctionUrl"]
        public(lam, name)
        assert http("GET", url + "?mode=dict")[0] == 403
        lam.add_permission(
            FunctionName=name,
            StatementId="invoke",
            Action="lambda:InvokeFunction",
            Principal="*",
            InvokedViaFunctionUrl=True,
        )
        assert http("GET", url + "?mode=dict")[0] == 200
    finally:
        srv.stop()
