"""Invoke's express lane (lamina.api.invoke_express) answers exactly as the general path does.

Each case is sent twice to the same function: once in the plain shape the express lane takes, once
with ``X-Amz-Log-Type: None`` -- a header that changes nothing in AWS's answer but sends the
request down the general, model-driven path.  Status, headers and body must be the same, apart
from the request id (and the function's own echo of it).
"""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from .conftest import ACCESS_KEY, REGION, create_function, signed, unique

ECHO = """
import json
def handler(event, context):
    if isinstance(event, dict) and event.get("fail"):
        raise ValueError("asked to fail")
    return {"event": event, "arn": context.invoked_function_arn, "version": context.function_version}
"""

GENERAL = {"X-Amz-Log-Type": "None"}


def invoke_both(server: Any, path: str, body: bytes, headers: dict[str, str] | None = None) -> list[Any]:
    out = []
    for extra in ({}, GENERAL):
        status, hdrs, data = signed(server, "POST", path, body, {**(headers or {}), **extra})
        request_id = hdrs.pop("x-amzn-requestid")
        hdrs.pop("date", None)
        hdrs.pop("x-amzn-trace-id", None)
        out.append((status, hdrs, data.replace(request_id.encode(), b"<id>")))
    return out


@pytest.fixture(scope="module")
def echo_fn(lam: Any) -> str:
    name = create_function(lam, ECHO, name=unique("express"))
    version = lam.publish_version(FunctionName=name)["Version"]
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion=version)
    return name


@pytest.mark.parametrize(
    ("suffix", "body"),
    [
        ("", b'{"a": 1}'),
        ("", b""),  # no payload: the handler gets {}
        ("?Qualifier=1", b'[1, 2, "three"]'),
        ("?Qualifier=live", b'"text"'),
        ("", b'{"fail": true}'),  # a function error: X-Amz-Function-Error and the error object
    ],
)
def test_same_answer_as_the_general_path(server: Any, echo_fn: str, suffix: str, body: bytes) -> None:
    fast, general = invoke_both(server, f"/2015-03-31/functions/{echo_fn}/invocations{suffix}", body)
    assert fast == general
    assert fast[0] == 200
    assert fast[1]["content-type"] == "application/json"
    if b"fail" in body:
        assert fast[1]["x-amz-function-error"] == "Unhandled"
        assert json.loads(fast[2])["errorType"] == "ValueError"
    else:
        assert "x-amz-function-error" not in fast[1]
        result = json.loads(fast[2])
        assert result["event"] == (json.loads(body) if body else {})
        assert fast[1]["x-amz-executed-version"] == ("$LATEST" if not suffix else "1")
        assert result["arn"].endswith(f":function:{echo_fn}" + (f":{suffix.split('=')[1]}" if suffix else ""))


@pytest.mark.parametrize(
    ("path", "body", "code", "status"),
    [
        ("/2015-03-31/functions/{fn}-missing/invocations", b"{}", "ResourceNotFoundException", 404),
        ("/2015-03-31/functions/{fn}/invocations?Qualifier=9", b"{}", "ResourceNotFoundException", 404),
        (
            "/2015-03-31/functions/{fn}/invocations?Qualifier=nosuchalias",
            b"{}",
            "ResourceNotFoundException",
            404,
        ),
        ("/2015-03-31/functions/{fn}/invocations", b"{not json", "InvalidRequestContentException", 400),
    ],
)
def test_same_errors_as_the_general_path(
    server: Any, echo_fn: str, path: str, body: bytes, code: str, status: int
) -> None:
    fast, general = invoke_both(server, path.format(fn=echo_fn), body)
    assert fast == general
    assert fast[0] == status
    assert fast[1]["x-amzn-errortype"] == code


def test_throttled_the_same(server: Any, lam: Any) -> None:
    name = create_function(lam, ECHO, name=unique("express-throttle"))
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    fast, general = invoke_both(server, f"/2015-03-31/functions/{name}/invocations", b"{}")
    assert fast == general
    assert fast[0] == 429
    assert json.loads(fast[2])["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"


def test_a_bad_signature_is_refused_the_same(server: Any, echo_fn: str) -> None:
    url = f"{server.endpoint}/2015-03-31/functions/{echo_fn}/invocations"
    answers = []
    for extra in ({}, GENERAL):
        req = AWSRequest(method="POST", url=url, data=b"{}", headers=dict(extra))
        SigV4Auth(Credentials(ACCESS_KEY, "not-the-secret"), "lambda", REGION).add_auth(req)
        u = urlsplit(server.endpoint)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        try:
            conn.request("POST", urlsplit(url).path, body=b"{}", headers=dict(req.headers.items()))
            resp = conn.getresponse()
            answers.append((resp.status, resp.getheader("x-amzn-ErrorType"), json.loads(resp.read())))
        finally:
            conn.close()
    assert answers[0] == answers[1]
    assert answers[0][:2] == (403, "InvalidSignatureException")
