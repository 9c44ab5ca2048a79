"""A function URL sending the API Gateway REST (payload 1.0) or ALB event, chosen with the function tag
``lamina:url-event-format``, against the real server: echo handlers called with urllib and curl."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest
from botocore.exceptions import ClientError

from .conftest import create_function
from .test_function_urls import http, public

TAG = "lamina:url-event-format"
ECHO = """
import json

def handler(event, context):
    query = event.get("queryStringParameters") or event.get("multiValueQueryStringParameters") or {}
    if "error" in query:
        raise RuntimeError("boom")
    if "bare" in query:
        return {"no": "statusCode"}
    headers = {"content-type": "application/json"}
    multi = {"set-cookie": ["a=1", "b=2"], "x-shape": ["multi"]}
    out = {"statusCode": 200, "headers": headers, "multiValueHeaders": multi, "body": json.dumps(event)}
    if "elb" in event.get("requestContext", {}):
        out["statusDescription"] = "200 OK"
    if "extra" in query:
        out["cookies"] = ["c=1"]
    return out
"""


def url_for(lam: Any, fmt: str | None) -> tuple[str, str]:
    kw = {"Tags": {TAG: fmt}} if fmt else {}
    name = create_function(lam, ECHO, **kw)
    url = str(lam.create_function_url_config(FunctionName=name, AuthType="NONE")["FunctionUrl"])
    public(lam, name)
    return name, url


def test_api_gateway_rest_shape(lam: Any) -> None:
    name, url = url_for(lam, "apigateway-rest")
    status, headers, body = http(
        "POST",
        url + "shop/items?a=1&a=2&b=x%20y",
        b'{"k": 1}',
        {"content-type": "application/json", "X-Tag": "t"},
    )
    assert status == 200, body
    event = json.loads(body)
    assert (event["resource"], event["path"], event["httpMethod"]) == ("/{proxy+}", "/shop/items", "POST")
    assert event["pathParameters"] == {"proxy": "shop/items"} and event["stageVariables"] is None
    assert event["queryStringParameters"] == {"a": "2", "b": "x y"}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": ["x y"]}
    assert event["headers"]["x-tag"] == "t" and event["multiValueHeaders"]["x-tag"] == ["t"]
    assert (event["body"], event["isBase64Encoded"]) == ('{"k": 1}', False)
    ctx = event["requestContext"]
    assert ctx["requestId"] == headers["x-amzn-RequestId"] and ctx["identity"]["sourceIp"] == "127.0.0.1"
    assert ctx["resourcePath"] == "/{proxy+}" and ctx["httpMethod"] == "POST" and ctx["stage"] == "$default"
    assert ctx["accountId"] == "123456789012" and isinstance(ctx["requestTimeEpoch"], int)
    assert headers.get_all("set-cookie") == ["a=1", "b=2"] and headers["x-shape"] == "multi"
    assert http("GET", url + "?extra=1")[0] == 502  # a member REST APIs do not know: malformed
    status, headers, body = http("GET", url + "?bare=1")  # no inference: a malformed proxy response
    assert (status, body) == (502, b'{"message": "Internal server error"}')
    assert headers["x-amzn-ErrorType"] == "InternalServerErrorException"
    assert http("GET", url + "?error=1")[0] == 502
    lam.delete_function(FunctionName=name)


@pytest.mark.parametrize("fmt", ["alb", "alb-multivalue"])
def test_alb_shapes(lam: Any, fmt: str) -> None:
    name, url = url_for(lam, fmt)
    status, headers, body = http("GET", url + "lb?a=1&a=2&b=x%20y", headers={"X-Tag": "t"})
    assert status == 200, body
    event = json.loads(body)
    assert event["requestContext"]["elb"]["targetGroupArn"].startswith(
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/lamina-"
    )
    assert (event["httpMethod"], event["path"], event["body"], event["isBase64Encoded"]) == (
        "GET",
        "/lb",
        "",
        False,
    )
    if fmt == "alb":
        assert event["queryStringParameters"] == {"a": "2", "b": "x%20y"}
        assert event["headers"]["x-tag"] == "t" and "multiValueHeaders" not in event
        assert headers["set-cookie"] is None and headers["content-type"] == "application/json"
    else:
        assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": ["x%20y"]}
        assert event["multiValueHeaders"]["x-tag"] == ["t"] and "headers" not in event
        assert headers.get_all("set-cookie") == ["a=1", "b=2"] and headers["content-type"] is None
    status, headers, body = http("GET", url + "?error=1")
    assert status == 502 and b"<h1>502 Bad Gateway</h1>" in body and headers["server"] == "awselb/2.0"
    assert http("GET", url + "?bare=1")[0] == 502
    lam.delete_function(FunctionName=name)


def test_the_tag_applies_to_the_next_request(lam: Any) -> None:
    name, url = url_for(lam, None)
    arn = lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    assert json.loads(http("GET", url)[2])["version"] == "2.0"
    lam.tag_resource(Resource=arn, Tags={TAG: "apigateway-rest"})
    assert json.loads(http("GET", url)[2])["resource"] == "/"
    lam.tag_resource(Resource=arn, Tags={TAG: "alb"})
    assert "elb" in json.loads(http("GET", url)[2])["requestContext"]
    lam.untag_resource(Resource=arn, TagKeys=[TAG])
    assert json.loads(http("GET", url)[2])["version"] == "2.0"
    with pytest.raises(ClientError) as exc:
        lam.tag_resource(Resource=arn, Tags={TAG: "apigateway-http"})
    assert exc.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert (
        "must be one of function-url, apigateway-rest, alb, alb-multivalue"
        in exc.value.response["Error"]["Message"]
    )
    lam.delete_function(FunctionName=name)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_through_the_alb_shape(lam: Any) -> None:
    name, url = url_for(lam, "alb-multivalue")
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "-i",
            "-H",
            "Cookie: s=1",
            "--data-binary",
            "@-",
            "-H",
            "content-type: image/png",
            url + "up",
        ],
        input=b"\x89PNG\r\n",
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    event = json.loads(body)
    assert event["isBase64Encoded"] is True and event["body"] == "iVBORw0K"
    assert event["multiValueHeaders"]["cookie"] == ["s=1"]
    assert event["multiValueHeaders"]["user-agent"][0].startswith("curl/")
    lam.delete_function(FunctionName=name)


def test_a_permission_change_applies_to_the_next_request(lam: Any) -> None:
    """The front memoises its last auth decision on the (immutable) config and policy objects."""
    name, url = url_for(lam, None)
    assert http("GET", url)[0] == 200
    assert http("GET", url)[0] == 200  # memoised
    lam.remove_permission(FunctionName=name, StatementId="url")
    assert http("GET", url)[0] == 403
    public(lam, name)
    assert http("GET", url)[0] == 200
    lam.update_function_url_config(FunctionName=name, AuthType="AWS_IAM")
    assert http("GET", url)[0] == 403
    lam.delete_function(FunctionName=name)
