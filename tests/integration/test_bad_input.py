"""Bad input answered with AWS-shaped 4xx errors: raw signed requests the SDKs would never send."""

from __future__ import annotations

import http.client
import io
import json
import zipfile
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from .conftest import ACCESS_KEY, REGION, ROLE, SECRET_KEY, create_function, signed, unique


def assert_aws_error(status: int, headers: dict[str, str], body: bytes, code: str, http_status: int) -> None:
    assert status == http_status, body
    assert headers["x-amzn-errortype"] == code
    doc = json.loads(body)
    assert doc["Type"] == "User" and doc["Message"]
    assert "Traceback" not in body.decode()
    assert headers.get("x-amzn-requestid")


def test_malformed_json_body(server: Any) -> None:
    r = signed(server, "POST", "/2015-03-31/functions", b"{not json", {"Content-Type": "application/json"})
    assert_aws_error(*r, "InvalidRequestContentException", 400)


def test_wrong_json_types(server: Any) -> None:
    body = json.dumps(
        {
            "FunctionName": unique(),
            "Role": ROLE,
            "Code": {"ZipFile": "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="},
            "MemorySize": "lots",
            "Runtime": "python3.11",
            "Handler": "app.handler",
        }
    ).encode()
    r = signed(server, "POST", "/2015-03-31/functions", body)
    assert_aws_error(*r, "InvalidRequestContentException", 400)


def test_missing_required_member(server: Any) -> None:
    r = signed(server, "POST", "/2015-03-31/functions", json.dumps({"Role": ROLE}).encode())
    assert_aws_error(*r, "ValidationException", 400)
    assert "Member must not be null" in json.loads(r[2])["Message"]


def test_json_array_body(server: Any) -> None:
    r = signed(server, "POST", "/2015-03-31/functions", b"[1, 2, 3]")
    assert r[0] == 400 and r[1]["x-amzn-errortype"] in (
        "InvalidRequestContentException",
        "ValidationException",
    )


def test_bad_base64_zip(server: Any) -> None:
    body = json.dumps(
        {
            "FunctionName": unique(),
            "Role": ROLE,
            "Runtime": "python3.11",
            "Handler": "app.handler",
            "Code": {"ZipFile": "!!!not base64!!!"},
        }
    ).encode()
    r = signed(server, "POST", "/2015-03-31/functions", body)
    assert r[0] == 400


def test_unknown_path(server: Any) -> None:
    r = signed(server, "GET", "/2015-03-31/nothing-here")
    assert_aws_error(*r, "UnknownOperationException", 404)


def _declare_big_body(server: Any, headers: dict[str, str]) -> http.client.HTTPResponse:
    u = urlsplit(server.endpoint)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.putrequest("POST", "/2015-03-31/functions/x/invocations")
    for k, v in {**headers, "Content-Length": str(100 * 1024 * 1024)}.items():
        conn.putheader(k, v)
    conn.endheaders()
    conn.send(b"{" * 1024)  # far less than declared: the answer must not wait for the rest
    return conn.getresponse()


def test_declared_oversized_body_refused_before_reading(server: Any) -> None:
    req = AWSRequest(method="POST", url=server.endpoint + "/2015-03-31/functions/x/invocations", data=b"{}")
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "lambda", REGION).add_auth(req)
    signed_headers = {k: v for k, v in req.headers.items() if k.lower() != "content-length"}
    resp = _declare_big_body(server, signed_headers)
    assert resp.status == 413
    assert resp.getheader("x-amzn-ErrorType") == "RequestTooLargeException"
    assert resp.getheader("Connection") == "close"  # the unread rest is never parsed as a request


def test_unsigned_big_body_refused_before_reading(server: Any) -> None:
    resp = _declare_big_body(server, {})
    assert resp.status == 403
    assert resp.getheader("x-amzn-ErrorType") == "MissingAuthenticationTokenException"
    assert resp.getheader("Connection") == "close"


def test_huge_zip_unzipped_limit(lam: Any) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("app.py", "def handler(e, c):\n    return 1\n")
        with zf.open("big.bin", "w") as f:
            chunk = b"\0" * (1 << 20)
            for _ in range(251):
                f.write(chunk)
    with pytest.raises(ClientError) as exc:
        create_function(lam, buf.getvalue())
    assert exc.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert "262144000" in exc.value.response["Error"]["Message"]


def test_zipped_over_50mb(server: Any) -> None:
    import os

    lam = server.client(parameter_validation=False)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("app.py", "def handler(e, c):\n    return 1\n")
        zf.writestr("noise.bin", os.urandom(51 * 1024 * 1024))
    with pytest.raises(ClientError) as exc:
        create_function(lam, buf.getvalue())
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413


def test_invalid_marker(lam: Any) -> None:
    with pytest.raises(ClientError) as exc:
        lam.list_functions(Marker="%%%")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_qualifier_mismatch(lam: Any, create_fn: Any) -> None:
    name = create_fn("def handler(e, c):\n    return 1\n")
    with pytest.raises(ClientError) as exc:
        lam.get_function(FunctionName=f"{name}:$LATEST", Qualifier="1")
    assert exc.value.response["Error"]["Code"] == "InvalidParameterValueException"


def test_other_account_arn(lam: Any, create_fn: Any) -> None:
    name = create_fn("def handler(e, c):\n    return 1\n")
    with pytest.raises(ClientError) as exc:
        lam.get_function(FunctionName=f"arn:aws:lambda:us-east-1:999999999999:function:{name}")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] in (403, 404)


def test_server_still_healthy(lam: Any) -> None:
    assert "Functions" in lam.list_functions()
