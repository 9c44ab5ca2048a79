"""Hostile input: every operation of every service lamina serves, fuzzed from botocore's model.

Hypothesis builds parameters from each operation's input shape -- random strings (control
characters, unicode, huge), extreme numbers, wrong types, missing members, random blobs --
botocore serializes and SigV4-signs them exactly as a client would, and the raw request goes to
a real ``lamina serve``.  Whatever comes in, the answer must be AWS-shaped: never a 5xx (501 for
an operation lamina does not implement is the one allowed), never a hang, never a traceback, and
the server stays healthy.  Raw garbage (bodies, paths, headers) gets the same checks.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import urllib.parse
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, prepare_request_dict
from botocore.credentials import Credentials
from botocore.model import OperationModel, Shape
from botocore.serialize import create_serializer

from lamina.protocol import load_service_model

from .conftest import ACCESS_KEY, REGION, SECRET_KEY, LaminaServer

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

EXAMPLES = 12  # per operation: ~100 operations, a few seconds each service
ALLOWED_5XX = {501}  # NotImplementedException names an operation lamina does not implement

_TEXT = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=8),
    st.sampled_from(
        ["", " ", "a" * 300, "../../etc/passwd", "arn:aws:lambda:us-east-1:1:function:x", "$LATEST"]
    ),
)


def shape_strategy(shape: Shape, depth: int = 0) -> st.SearchStrategy[Any]:
    kind = shape.type_name
    if depth > 3:
        return st.none()
    if kind == "structure":
        members = {
            name: st.one_of(st.none(), shape_strategy(member, depth + 1))
            for name, member in shape.members.items()
            if not member.serialization.get("eventstream")
        }
        return st.fixed_dictionaries(members).map(lambda d: {k: v for k, v in d.items() if v is not None})
    if kind == "list":
        return st.lists(shape_strategy(shape.member, depth + 1), max_size=3)
    if kind == "map":
        return st.dictionaries(st.text(max_size=10), shape_strategy(shape.value, depth + 1), max_size=3)
    if kind == "string":
        enum = shape.enum or []
        return st.one_of(_TEXT, st.sampled_from(enum)) if enum else _TEXT
    if kind in ("integer", "long"):
        return st.integers(min_value=-(2**40), max_value=2**40)
    if kind in ("float", "double"):
        return st.floats(allow_nan=False, allow_infinity=False, width=32)
    if kind == "boolean":
        return st.booleans()
    if kind == "blob":
        return st.binary(max_size=64)
    if kind == "timestamp":
        return st.datetimes(min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(2100, 1, 1))
    return st.none()


def send(server: LaminaServer, service: str, op: OperationModel, params: dict[str, Any]) -> tuple[int, bytes]:
    protocol = op.metadata.get("protocol", "rest-json")
    serializer = create_serializer(protocol, include_validation=False)
    try:
        request_dict = serializer.serialize_to_request(params, op)
    except Exception:  # a value botocore itself cannot put on the wire: nothing to send
        return 0, b""
    prepare_request_dict(request_dict, endpoint_url=server.endpoint)
    request = AWSRequest(
        method=request_dict["method"],
        url=request_dict["url"],
        data=request_dict["body"],
        headers=request_dict["headers"],
    )
    signing_name = op.metadata.get("signingName") or op.metadata.get("endpointPrefix") or service
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), signing_name, REGION).add_auth(request)
    prepared = request.prepare()
    url = urllib.parse.urlsplit(prepared.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        body = prepared.body
        if isinstance(body, str):
            body = body.encode()
        conn.request(
            prepared.method,
            url.path + (f"?{url.query}" if url.query else ""),
            body=body,
            # raw UTF-8 where a value is not latin-1: bytes a hostile client can send
            headers={k: v.encode() if isinstance(v, str) else v for k, v in prepared.headers.items()},
        )
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def check(status: int, body: bytes, where: str) -> None:
    if status == 0:
        return
    assert status < 500 or status in ALLOWED_5XX, f"{where}: {status} {body[:300]!r}"
    assert b"Traceback" not in body, where
    if status >= 400 and body:
        doc = json.loads(body) if body.lstrip().startswith(b"{") else None
        assert doc is None or "__type" in doc or "message" in doc or "Message" in doc, (
            f"{where}: {body[:300]!r}"
        )


SERVICES = ("lambda", "logs", "scheduler", "events")
# Operations botocore sends to another host (a "stream-" prefix) cannot reach any endpoint URL,
# from any client: not lamina's to answer.
OPERATIONS = [
    (service, name)
    for service in SERVICES
    for name in load_service_model(service).operation_names
    if not load_service_model(service).operation_model(name).endpoint
]


@pytest.mark.parametrize(("service", "operation"), OPERATIONS)
def test_operation_never_fails_on_bad_input(server: LaminaServer, service: str, operation: str) -> None:
    op = load_service_model(service).operation_model(operation)
    strategy = shape_strategy(op.input_shape) if op.input_shape is not None else st.just({})

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,  # the same inputs on every run: a failure is reproducible
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(params=strategy)
    def fuzz(params: dict[str, Any]) -> None:
        status, body = send(server, service, op, params)
        check(status, body, f"{service}.{operation}({params!r:.200})")

    fuzz()


@pytest.mark.parametrize(
    ("method", "path", "body", "headers"),
    [
        ("POST", "/2015-03-31/functions", b"\x00\xff" * 100, {}),
        ("POST", "/2015-03-31/functions", b"[[[[[[[[[[" * 1000, {}),
        ("POST", "/2015-03-31/functions", b'{"FunctionName": ' + b"9" * 5000 + b"}", {}),
        ("GET", "/2015-03-31/functions/%00%ff%2e%2e%2f", b"", {}),
        ("GET", "/2015-03-31/functions/" + "a" * 5000, b"", {}),
        (
            "PUT",
            "/2015-03-31/functions/x/configuration",
            b'{"Environment": {"Variables": {"\\u0000": 1}}}',
            {},
        ),
        ("POST", "/", b"{}", {"X-Amz-Target": "Logs_20140328.DescribeLogGroups\x7f"}),
        ("POST", "/", b"not json", {"X-Amz-Target": "Logs_20140328.FilterLogEvents"}),
        ("GET", "/2015-03-31/functions/", b"", {"X-Amz-Date": "garbage"}),
    ],
)
def test_raw_garbage_is_answered_in_aws_shape(
    server: LaminaServer, method: str, path: str, body: bytes, headers: dict[str, str]
) -> None:
    request = AWSRequest(method=method, url=server.endpoint + path, data=body, headers=headers)
    service = "logs" if "X-Amz-Target" in headers else "lambda"
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), service, REGION).add_auth(request)
    if headers.get("X-Amz-Date") == "garbage":
        request.headers.replace_header("X-Amz-Date", "garbage")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=dict(request.headers.items()))
        resp = conn.getresponse()
        status, out = resp.status, resp.read()
    finally:
        conn.close()
    check(status, out, f"{method} {path[:60]}")
    assert 400 <= status < 500


def test_server_still_healthy_after_the_fuzz(server: LaminaServer) -> None:
    lam = server.client()
    assert "Functions" in lam.list_functions()
