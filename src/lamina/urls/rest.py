"""The API Gateway REST API shape (Lambda proxy integration, payload format 1.0) for a function URL.

For functions written for a REST API with a greedy proxy resource (``ANY /{proxy+}`` and ``ANY /``)
and tagged ``lamina:url-event-format=apigateway-rest``.  Sources: the API Gateway developer guide,
"Lambda proxy integrations" -> "Input format of a Lambda function for proxy integration", "Support
for multi-value headers and query string parameters" and "Output format ..."; the single-value
fields keep the last value of a repeated header or parameter (aws-lambda-go #42, answered by AWS).

Where lamina differs: header names reach the function lower-cased (lamina's HTTP front keeps no
original case; AWS passes them as sent); the stage is ``$default`` and ``requestContext.path`` is
the path as sent, as behind a custom domain name without a base path.  Pure, no I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any
from urllib.parse import parse_qsl, unquote

from lamina.urls.event import EventSource, body_field, clf_time, domain_prefix, source_ip
from lamina.web.connection import Headers, Reply, Request

_DROPPED = frozenset({"connection"})
_JSON = (b"content-type", b"application/json")
_FRAMING = frozenset({b"content-length", b"transfer-encoding", b"connection", b"keep-alive"})
# "Additional fields are not allowed": any other member is a "Malformed Lambda proxy response"
# (AWS knowledge center, malformed-502-api-gateway; e.g. payload 2.0's ``cookies``, nitro #504).
RESPONSE_MEMBERS = frozenset({"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"})
IDENTITY_NULLS = (
    "accessKey",
    "accountId",
    "caller",
    "cognitoAuthenticationProvider",
    "cognitoAuthenticationType",
    "cognitoIdentityId",
    "cognitoIdentityPoolId",
    "principalOrgId",
)


def internal_error() -> Reply:
    """API Gateway's answer for a function error or a malformed proxy response."""
    return (
        502,
        [_JSON, (b"x-amzn-errortype", b"InternalServerErrorException")],
        b'{"message": "Internal server error"}',
    )


def multi_headers(req: Request, src: EventSource) -> dict[str, list[str]]:
    """The request's headers as lists (lower-case names) with what API Gateway and ALB add."""
    out: dict[str, list[str]] = {}
    for raw_name, raw_value in req.headers:
        name = raw_name.decode("latin-1")
        if name not in _DROPPED:
            out.setdefault(name, []).append(raw_value.decode("latin-1"))
    ip = source_ip(req.peer)
    forwarded = out.get("x-forwarded-for")
    out["x-amzn-trace-id"] = [src.trace_id]  # where AWS's example events have it: before x-forwarded-*
    out["x-forwarded-for"] = [f"{', '.join(forwarded)}, {ip}" if forwarded else ip]
    out["x-forwarded-port"] = [str(src.port)]
    out["x-forwarded-proto"] = ["http"]
    return out


def identity(req: Request, src: EventSource, user_agent: str) -> dict[str, Any]:
    ident: dict[str, Any] = dict.fromkeys(IDENTITY_NULLS)
    if src.iam is not None:  # AWS_IAM: the caller (lamina's credentials are the account's root)
        iam = src.iam
        ident.update(accessKey=iam["accessKey"], accountId=iam["accountId"], caller=iam["callerId"])
    ident["sourceIp"] = source_ip(req.peer)
    ident["user"] = src.iam["userId"] if src.iam else None
    ident["userAgent"] = user_agent
    ident["userArn"] = src.iam["userArn"] if src.iam else None
    return ident


def build_rest_event(req: Request, src: EventSource, *, now: float) -> dict[str, Any]:
    """The payload 1.0 event of a REST API's ``/{proxy+}`` resource (``/`` for the root path)."""
    multi = multi_headers(req, src)
    raw_path = req.path.decode("latin-1")
    path = unquote(raw_path)
    resource = "/" if path == "/" else "/{proxy+}"
    pairs = parse_qsl(req.query.decode("latin-1"), keep_blank_values=True)
    multi_query: dict[str, list[str]] = {}
    for key, value in pairs:
        multi_query.setdefault(key, []).append(value)
    host = multi.get("host", [""])[-1]
    user_agent = multi.get("user-agent", [""])[-1]
    context = {
        "accountId": src.account_id,
        "apiId": src.url_id[:10],
        "domainName": host,
        "domainPrefix": domain_prefix(host, src.url_id[:10]),
        "extendedRequestId": src.request_id,
        "httpMethod": req.method,
        "identity": identity(req, src, user_agent),
        "path": raw_path,
        "protocol": f"HTTP/{req.version}",
        "requestId": src.request_id,
        "requestTime": clf_time(now),
        "requestTimeEpoch": int(now * 1000),
        "resourceId": src.url_id[10:16],
        "resourcePath": resource,
        "stage": "$default",
    }
    body: str | None = None
    encoded = False
    if req.body:
        body, encoded = body_field(req.body, multi.get("content-type", [""])[-1])
    return {
        "resource": resource,
        "path": path,
        "httpMethod": req.method,
        "headers": {k: v[-1] for k, v in multi.items()},
        "multiValueHeaders": multi,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": None if resource == "/" else {"proxy": path[1:]},
        "stageVariables": None,
        "requestContext": context,
        "body": body,
        "isBase64Encoded": encoded,
    }


def header_bytes(value: Any) -> bytes:
    if isinstance(value, bool):
        return b"true" if value else b"false"
    return str(value).encode("latin-1", errors="replace")


def response_headers(result: dict[str, Any], *, single: bool, multi: bool) -> Headers | None:
    """``multiValueHeaders`` then ``headers`` (a pair present in both once), framing dropped;
    None when either is not an object."""
    headers: Headers = []
    mv = result.get("multiValueHeaders") if multi else None
    sv = result.get("headers") if single else None
    if (mv is not None and not isinstance(mv, dict)) or (sv is not None and not isinstance(sv, dict)):
        return None
    for name, values in (mv or {}).items():
        for value in values if isinstance(values, list) else [values]:
            headers.append((str(name).lower().encode("latin-1"), header_bytes(value)))
    for name, value in (sv or {}).items():
        pair = (str(name).lower().encode("latin-1"), header_bytes(value))
        if pair not in headers:
            headers.append(pair)
    return [h for h in headers if h[0] not in _FRAMING]


def response_body(result: dict[str, Any]) -> bytes | None:
    """The body of a proxy response: a string (base64 with ``isBase64Encoded``) or null; None
    when it is neither, or not valid base64."""
    body = result.get("body")
    if body is None:
        return b""
    if not isinstance(body, str):
        return None
    if not result.get("isBase64Encoded"):
        return body.encode()
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return None


def rest_reply(payload: bytes, function_error: str | None) -> Reply:
    """API Gateway's mapping of a proxy integration's result: ``statusCode``, ``headers``,
    ``multiValueHeaders``, ``body`` and ``isBase64Encoded``, nothing else; otherwise a 502."""
    if function_error is not None:
        return internal_error()
    try:
        result = json.loads(payload) if payload else None
    except (ValueError, UnicodeDecodeError):
        return internal_error()
    if not isinstance(result, dict) or not RESPONSE_MEMBERS.issuperset(result):
        return internal_error()
    try:
        status = int(result["statusCode"])
    except (KeyError, TypeError, ValueError):
        return internal_error()
    headers = response_headers(result, single=True, multi=True)
    body = response_body(result)
    if not 100 <= status <= 599 or headers is None or body is None:
        return internal_error()
    if not any(name == b"content-type" for name, _ in headers):
        headers.insert(0, _JSON)
    return status, headers, body
