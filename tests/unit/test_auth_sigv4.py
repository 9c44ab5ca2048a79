"""SigV4 verification against requests signed by botocore itself (and, over HTTP, boto3 and the aws CLI)."""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth, _host_from_url
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials as BotoCredentials
from botocore.utils import percent_encode_sequence

from lamina.auth import SignedIdentity, SigV4Verifier
from lamina.errors import AwsError

AK = "LKIAEXAMPLEEXAMPLE12"
SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
ENDPOINT = "http://127.0.0.1:9000"
NOW = dt.datetime(2024, 1, 1, 0, 30, 0)  # naive UTC, as botocore's clock returns it
NOW_EPOCH = float(calendar.timegm(NOW.timetuple()))
ARN = "arn:aws:lambda:us-east-1:123456789012:function:f"
ARN_PATH = "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Af/invocations"
BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)


@dataclass(frozen=True)
class Wire:
    """A request as the server receives it."""

    method: str
    path: str
    query: str
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def with_header(self, name: str, value: str) -> Wire:
        key = name.lower().encode()
        kept = [(k, v) for k, v in self.headers if k != key]
        return replace(self, headers=[*kept, (key, value.encode("latin-1"))])

    def without_header(self, name: str) -> Wire:
        key = name.lower().encode()
        return replace(self, headers=[(k, v) for k, v in self.headers if k != key])

    def header(self, name: str) -> str:
        return next(v.decode("latin-1") for k, v in self.headers if k == name.lower().encode())


def to_wire(req: AWSRequest) -> Wire:
    prepared = req.prepare()
    parts = urlsplit(prepared.url)
    headers = [(k.lower().encode(), v.encode("latin-1")) for k, v in prepared.headers.items()]
    if not any(k == b"host" for k, _ in headers):
        # urllib3 adds Host when it sends; botocore signs the same value.
        headers.insert(0, (b"host", _host_from_url(prepared.url).encode()))
    body = prepared.body or b""
    return Wire(
        prepared.method, parts.path, parts.query, headers, body if isinstance(body, bytes) else body.encode()
    )


def sign(
    method: str,
    url: str,
    body: bytes = b"",
    headers: Sequence[tuple[str, str]] = (),
    *,
    params: Any = None,
    key: str = AK,
    secret: str = SK,
    token: str | None = None,
    service: str = "lambda",
    region: str = "us-east-1",
    when: dt.datetime = NOW,
    presign_expires: int | None = None,
) -> Wire:
    req = AWSRequest(method=method, url=url, data=body, params=params or {})
    for name, value in headers:
        req.headers.add_header(name, value)
    creds = BotoCredentials(key, secret, token)
    signer = (
        SigV4Auth(creds, service, region)
        if presign_expires is None
        else SigV4QueryAuth(creds, service, region, expires=presign_expires)
    )
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        signer.add_auth(req)
    return to_wire(req)


def verifier(clock_offset_s: float = 0.0, secrets: dict[str, str] | None = None) -> SigV4Verifier:
    return SigV4Verifier({AK: SK} if secrets is None else secrets, clock=lambda: NOW_EPOCH + clock_offset_s)


def check(wire: Wire, v: SigV4Verifier | None = None) -> SignedIdentity:
    return (v or verifier()).verify(wire.method, wire.path, wire.query, wire.headers, wire.body)


def rejected(wire: Wire, code: str, v: SigV4Verifier | None = None) -> AwsError:
    with pytest.raises(AwsError) as info:
        check(wire, v)
    assert info.value.code == code, info.value.message
    return info.value


def invoke_wire(**kw: Any) -> Wire:
    return sign(
        "POST",
        f"{ENDPOINT}{ARN_PATH}?Qualifier=%24LATEST",
        json.dumps({"key": "value", "n": [1, 2, 3]}).encode(),
        [("X-Amz-Invocation-Type", "RequestResponse"), ("X-Amz-Log-Type", "Tail")],
        **kw,
    )


# --- accepted -----------------------------------------------------------------------------------


def test_invoke_with_percent_encoded_arn_and_latest_qualifier() -> None:
    wire = invoke_wire()
    assert "%3A" in wire.path and wire.query == "Qualifier=%24LATEST"
    assert check(wire) == SignedIdentity(AK, "us-east-1", "lambda")


def test_identity_carries_region_and_service_from_the_scope() -> None:
    wire = sign(
        "POST",
        f"{ENDPOINT}/",
        b"{}",
        [("X-Amz-Target", "Logs_20140328.DescribeLogGroups")],
        service="logs",
        region="eu-west-3",
    )
    assert check(wire) == SignedIdentity(AK, "eu-west-3", "logs")


def test_bytes_path_and_query_as_asgi_gives_them() -> None:
    wire = invoke_wire()
    assert verifier().verify(wire.method, wire.path.encode(), wire.query.encode(), wire.headers, wire.body)


def test_query_with_repeated_keys_spaces_and_unicode_in_the_url() -> None:
    query = percent_encode_sequence([("b", "2"), ("a", "z"), ("a", "y y"), ("Marker", "ünï~code/+=&")])
    wire = sign("GET", f"{ENDPOINT}/2015-03-31/functions/?{query}")
    assert check(wire).access_key_id == AK


def test_query_from_params_sent_with_plus_for_space() -> None:
    # AWSRequest params are urlencoded with '+' for space on the wire but signed as %20.
    wire = sign("GET", f"{ENDPOINT}/2015-03-31/functions/", params=[("a", "x y"), ("a", "é"), ("b", "~")])
    assert "+" in wire.query
    assert check(wire).service == "lambda"


def test_path_with_unicode_dollar_and_spaces() -> None:
    wire = sign("GET", f"{ENDPOINT}/2015-03-31/functions/f%20%C3%A9%24LATEST/configuration")
    assert check(wire).region == "us-east-1"


def test_path_dot_segments_and_double_slashes_normalised_like_botocore() -> None:
    wire = sign("GET", f"{ENDPOINT}/2015-03-31//functions/./x/../f/configuration/")
    assert wire.path == "/2015-03-31//functions/./x/../f/configuration/"
    assert check(wire).access_key_id == AK


def test_binary_body_with_x_amz_content_sha256() -> None:
    body = bytes(range(256)) * 4
    wire = sign(
        "PUT",
        f"{ENDPOINT}/2015-03-31/functions/f/code",
        body,
        [
            ("X-Amz-Content-SHA256", hashlib.sha256(body).hexdigest()),
            ("Content-Type", "application/octet-stream"),
        ],
    )
    assert check(wire).access_key_id == AK


def test_unsigned_payload_accepts_any_body() -> None:
    wire = sign("POST", f"{ENDPOINT}{ARN_PATH}", b"original", [("X-Amz-Content-SHA256", "UNSIGNED-PAYLOAD")])
    assert check(replace(wire, body=b"anything")).access_key_id == AK


def test_empty_body_get() -> None:
    assert check(sign("GET", f"{ENDPOINT}/2015-03-31/functions/")).access_key_id == AK


def test_session_token_is_signed_and_accepted() -> None:
    wire = sign("POST", f"{ENDPOINT}{ARN_PATH}", b"{}", token="FwoGZXIvYXdzEJr//session+token==")
    assert "x-amz-security-token" in wire.header("authorization")
    assert check(wire).access_key_id == AK


def test_whitespace_folding_and_repeated_headers() -> None:
    wire = sign(
        "POST",
        f"{ENDPOINT}{ARN_PATH}",
        b"{}",
        [("X-Custom", "  a   b\tc  "), ("X-Custom", "second"), ("X-Amz-Client-Context", "e30=")],
    )
    # botocore's prepare() merges repeats into one header; on the wire (HTTP/1.1) each is its own line.
    headers = [(k, v) for k, v in wire.headers if k != b"x-custom"]
    headers += [(b"x-custom", b"  a   b\tc  "), (b"x-custom", b"second")]
    assert check(replace(wire, headers=headers)).access_key_id == AK
    # One line holding the joined values canonicalises the same; dropping one of the two does not.
    assert check(replace(wire, headers=[*headers[:-2], (b"x-custom", b"a b c,second")])).access_key_id == AK
    rejected(replace(wire, headers=[*headers[:-2], (b"x-custom", b"second")]), "InvalidSignatureException")


def test_latin1_header_value_signed_by_botocore() -> None:
    wire = sign("POST", f"{ENDPOINT}{ARN_PATH}", b"{}", [("X-Custom", "caf\u00e9")])
    assert check(wire).access_key_id == AK


def test_utf8_header_value_signed_over_its_bytes() -> None:
    # Go, JS and Java SDKs hash a UTF-8 header value as the bytes they send; recompute the signature so.
    wire = sign("POST", f"{ENDPOINT}{ARN_PATH}", b"{}", [("X-Custom", "placeholder")])
    utf8 = "caf\u00e9 \u2603".encode()
    headers = [(k, utf8 if k == b"x-custom" else v) for k, v in wire.headers]
    resigned = _resign(replace(wire, headers=headers))
    assert check(resigned).access_key_id == AK


def test_unsigned_headers_added_in_transit_are_ignored() -> None:
    wire = invoke_wire().with_header("User-Agent", "changed/1.0").with_header("Accept-Encoding", "identity")
    assert check(wire).access_key_id == AK


def test_http_date_header_instead_of_x_amz_date() -> None:
    req = AWSRequest(method="GET", url=f"{ENDPOINT}/2015-03-31/functions/", data=b"")
    req.headers["Date"] = "placeholder"  # botocore then signs with Date and drops X-Amz-Date
    with mock.patch("botocore.auth.get_current_datetime", return_value=NOW):
        SigV4Auth(BotoCredentials(AK, SK), "lambda", "us-east-1").add_auth(req)
    wire = to_wire(req)
    assert wire.header("date") == "Mon, 01 Jan 2024 00:30:00 -0000"
    assert not any(k == b"x-amz-date" for k, _ in wire.headers)
    assert check(wire).access_key_id == AK


def test_within_skew_is_accepted() -> None:
    wire = invoke_wire()
    assert check(wire, verifier(+14 * 60)).access_key_id == AK
    assert check(wire, verifier(-14 * 60)).access_key_id == AK


def test_presigned_url() -> None:
    wire = sign("GET", f"{ENDPOINT}/2015-03-31/functions/?MaxItems=5&Marker=a%20b", presign_expires=300)
    assert "X-Amz-Signature=" in wire.query and not any(k == b"authorization" for k, _ in wire.headers)
    assert check(wire) == SignedIdentity(AK, "us-east-1", "lambda")


def test_presigned_url_with_session_token() -> None:
    wire = sign("GET", f"{ENDPOINT}/2015-03-31/functions/f", presign_expires=900, token="tok/en+==")
    assert "X-Amz-Security-Token" in wire.query
    assert check(wire).access_key_id == AK


def test_several_keys() -> None:
    wire = invoke_wire(key="LKIASECOND0000000000", secret="other-secret")
    assert check(wire, verifier(secrets={AK: SK, "LKIASECOND0000000000": "other-secret"})).access_key_id == (
        "LKIASECOND0000000000"
    )


@pytest.mark.parametrize(
    ("query", "signature"),
    [
        ("", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),  # get-vanilla
        ("Param2=value2&Param1=value1", "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
    ],
)
def test_aws_sigv4_test_suite_vectors(query: str, signature: str) -> None:
    # From AWS's published SigV4 test suite, so the check does not rest on botocore alone.
    when = float(calendar.timegm(dt.datetime(2015, 8, 30, 12, 36).timetuple()))
    v = SigV4Verifier({"AKIDEXAMPLE": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}, clock=lambda: when)
    auth = (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={signature}"
    )
    headers = [
        (b"host", b"example.amazonaws.com"),
        (b"x-amz-date", b"20150830T123600Z"),
        (b"authorization", auth.encode()),
    ]
    assert v.verify("GET", "/", query, headers, b"") == SignedIdentity("AKIDEXAMPLE", "us-east-1", "service")


# --- rejected -----------------------------------------------------------------------------------


def test_tampered_body_byte() -> None:
    wire = invoke_wire()
    body = bytearray(wire.body)
    body[3] ^= 1
    assert rejected(replace(wire, body=bytes(body)), "InvalidSignatureException").message == BAD_SIGNATURE


def test_tampered_signed_header() -> None:
    rejected(invoke_wire().with_header("X-Amz-Invocation-Type", "Event"), "InvalidSignatureException")


def test_tampered_host() -> None:
    rejected(invoke_wire().with_header("Host", "127.0.0.1:9001"), "InvalidSignatureException")


def test_tampered_path() -> None:
    wire = invoke_wire()
    rejected(
        replace(wire, path=wire.path.replace("function%3Af", "function%3Ag")), "InvalidSignatureException"
    )


def test_tampered_query() -> None:
    rejected(replace(invoke_wire(), query="Qualifier=1"), "InvalidSignatureException")
    rejected(replace(invoke_wire(), query=""), "InvalidSignatureException")
    rejected(replace(invoke_wire(), query="Qualifier=%24LATEST&extra=1"), "InvalidSignatureException")


def test_tampered_method() -> None:
    rejected(replace(invoke_wire(), method="PUT"), "InvalidSignatureException")


def test_wrong_secret() -> None:
    rejected(invoke_wire(secret=SK + "x"), "InvalidSignatureException")


def test_unknown_access_key() -> None:
    err = rejected(invoke_wire(key="LKIAUNKNOWN000000000"), "UnrecognizedClientException")
    assert err.message == "The security token included in the request is invalid."
    assert err.status == 403


def test_signature_expired_message() -> None:
    err = rejected(invoke_wire(), "InvalidSignatureException", verifier(+16 * 60))
    assert err.message == (
        "Signature expired: 20240101T003000Z is now earlier than 20240101T003100Z "
        "(20240101T004600Z - 15 min.)"
    )


def test_signature_not_yet_current_message() -> None:
    err = rejected(invoke_wire(), "InvalidSignatureException", verifier(-16 * 60))
    assert err.message == (
        "Signature not yet current: 20240101T003000Z is still later than 20240101T002900Z "
        "(20240101T001400Z + 15 min.)"
    )


def test_tampered_x_amz_date() -> None:
    rejected(invoke_wire().with_header("X-Amz-Date", "20240101T003001Z"), "InvalidSignatureException")


def test_bad_x_amz_date_format() -> None:
    err = rejected(
        invoke_wire().with_header("X-Amz-Date", "2024-01-01T00:30:00Z"), "IncompleteSignatureException"
    )
    assert err.message.startswith("Date must be in ISO-8601 'basic format'. Got '2024-01-01T00:30:00Z'.")


def test_scope_date_must_match_request_date() -> None:
    wire = invoke_wire()
    auth = wire.header("authorization").replace("/20240101/", "/20240102/")
    err = rejected(wire.with_header("Authorization", auth), "InvalidSignatureException")
    assert "Date in Credential scope does not match" in err.message


def test_missing_authentication() -> None:
    err = rejected(invoke_wire().without_header("Authorization"), "MissingAuthenticationTokenException")
    assert err.message == "Missing Authentication Token" and err.status == 403
    rejected(invoke_wire().with_header("Authorization", "Bearer abc"), "MissingAuthenticationTokenException")


def test_incomplete_authorization_names_what_is_missing_and_redacts_signature() -> None:
    wire = invoke_wire()
    auth = wire.header("authorization")
    signature = auth.rsplit("Signature=", 1)[1]
    no_credential = ", ".join(p for p in auth.split(", ") if not p.startswith("AWS4-HMAC-SHA256 Credential="))
    err = rejected(
        wire.with_header("Authorization", "AWS4-HMAC-SHA256 " + no_credential), "IncompleteSignatureException"
    )
    assert err.message.startswith("Authorization header requires 'Credential' parameter. Authorization=")
    assert signature not in err.message and "Signature=<redacted>" in err.message
    assert err.status == 400


def test_missing_date_header() -> None:
    err = rejected(invoke_wire().without_header("X-Amz-Date"), "IncompleteSignatureException")
    assert "requires existence of either a 'X-Amz-Date' or a 'Date' header" in err.message


def test_pair_without_equals_sign() -> None:
    wire = invoke_wire()
    err = rejected(
        wire.with_header("Authorization", wire.header("authorization") + ", Bogus"),
        "IncompleteSignatureException",
    )
    assert err.message.startswith("'Bogus' not a valid key=value pair (missing equal-sign)")
    assert wire.header("authorization").rsplit("Signature=", 1)[1] not in err.message


def test_host_must_be_signed() -> None:
    wire = invoke_wire()
    auth = wire.header("authorization").replace("SignedHeaders=host;", "SignedHeaders=")
    err = rejected(wire.with_header("Authorization", auth), "InvalidSignatureException")
    assert err.message == "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."


def test_unsupported_algorithm() -> None:
    wire = invoke_wire()
    auth = wire.header("authorization").replace("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256")
    err = rejected(wire.with_header("Authorization", auth), "IncompleteSignatureException")
    assert err.message.startswith("Unsupported AWS 'algorithm': 'AWS4-ECDSA-P256-SHA256'")


def test_credential_with_wrong_number_of_parts() -> None:
    wire = invoke_wire()
    auth = wire.header("authorization").replace("/lambda/aws4_request", "/aws4_request")
    err = rejected(wire.with_header("Authorization", auth), "IncompleteSignatureException")
    assert err.message.startswith("Credential must have exactly 5 slash-delimited elements")


def test_credential_with_bad_terminator() -> None:
    wire = invoke_wire()
    auth = wire.header("authorization").replace("/aws4_request", "/aws4_reqest")
    err = rejected(wire.with_header("Authorization", auth), "InvalidSignatureException")
    assert "valid terminator" in err.message


def test_content_sha256_must_match_body() -> None:
    wire = sign(
        "POST", f"{ENDPOINT}{ARN_PATH}", b"{}", [("X-Amz-Content-SHA256", hashlib.sha256(b"{}").hexdigest())]
    )
    err = rejected(replace(wire, body=b"[]"), "InvalidSignatureException")
    assert "x-amz-content-sha256" in err.message
    rejected(
        wire.with_header("X-Amz-Content-SHA256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
        "IncompleteSignatureException",
    )


def test_both_header_and_query_auth() -> None:
    wire = sign("GET", f"{ENDPOINT}/2015-03-31/functions/", presign_expires=300)
    header_auth = invoke_wire().header("authorization")
    rejected(wire.with_header("Authorization", header_auth), "InvalidSignatureException")


def test_presigned_tampered_signature_and_path() -> None:
    wire = sign("GET", f"{ENDPOINT}/2015-03-31/functions/f", presign_expires=300)
    sig = wire.query.rsplit("X-Amz-Signature=", 1)[1]
    flipped = ("0" if sig[0] != "0" else "1") + sig[1:]
    rejected(replace(wire, query=wire.query.replace(sig, flipped)), "InvalidSignatureException")
    rejected(replace(wire, path="/2015-03-31/functions/g"), "InvalidSignatureException")


def test_presigned_expiry() -> None:
    wire = sign("GET", f"{ENDPOINT}/2015-03-31/functions/f", presign_expires=300)
    assert check(wire, verifier(+299)).access_key_id == AK
    err = rejected(wire, "AccessDeniedException", verifier(+301))
    assert err.message == "Request has expired"
    # Even a long X-Amz-Expires does not stretch the skew window: AWS's non-S3 services hold to it.
    long_lived = sign("GET", f"{ENDPOINT}/2015-03-31/functions/f", presign_expires=3600)
    assert rejected(long_lived, "InvalidSignatureException", verifier(+16 * 60)).message.startswith(
        "Signature expired:"
    )


def test_presigned_missing_parameters() -> None:
    wire = sign("GET", f"{ENDPOINT}/2015-03-31/functions/f", presign_expires=300)
    query = "&".join(p for p in wire.query.split("&") if not p.startswith("X-Amz-Credential="))
    err = rejected(replace(wire, query=query), "IncompleteSignatureException")
    assert err.message == (
        "AWS query-string parameters must include 'X-Amz-Credential'. Re-examine the query-string parameters."
    )


def test_presigned_bad_expires() -> None:
    wire = sign("GET", f"{ENDPOINT}/2015-03-31/functions/f", presign_expires=300)
    for bad in ("abc", "-1", "604801"):
        rejected(
            replace(wire, query=wire.query.replace("X-Amz-Expires=300", f"X-Amz-Expires={bad}")),
            "IncompleteSignatureException",
        )


def test_signing_key_cache_is_bounded() -> None:
    v = verifier()
    for i in range(300):
        check(invoke_wire(region=f"region-{i}"), v)
    assert len(v._keys) <= v._MAX_CACHED_KEYS
    assert check(invoke_wire(), v).access_key_id == AK


def test_exception_text_never_contains_the_secret() -> None:
    for wire, v in [(invoke_wire(secret="bad"), verifier()), (invoke_wire(), verifier(3600))]:
        with pytest.raises(AwsError) as info:
            check(wire, v)
        assert SK not in str(info.value) and SK not in repr(info.value)


# --- real clients over HTTP ---------------------------------------------------------------------


@dataclass
class Seen:
    results: list[SignedIdentity | AwsError]


@pytest.fixture
def server() -> Iterator[tuple[str, Seen]]:
    seen = Seen([])
    v = SigV4Verifier({AK: SK})

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            path, _, query = self.path.partition("?")
            headers = [
                (k.lower().encode("latin-1"), val.encode("latin-1")) for k, val in self.headers.items()
            ]
            try:
                seen.results.append(v.verify(self.command, path, query, headers, body))
                status, payload = 200, b"{}"
            except AwsError as err:
                seen.results.append(err)
                status, payload = err.status, json.dumps({"message": err.message}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            if status != 200:
                self.send_header("x-amzn-ErrorType", seen.results[-1].code)  # type: ignore[union-attr]
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def _boto_client(endpoint: str, service: str = "lambda", secret: str = SK) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=AK,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )


def test_boto3_over_http(server: tuple[str, Seen]) -> None:
    endpoint, seen = server
    client = _boto_client(endpoint)
    client.invoke(FunctionName=ARN, Qualifier="$LATEST", Payload=b'{"hello": "w\xc3\xb6rld"}', LogType="Tail")
    client.list_functions(MaxItems=10, Marker="a b/c~d")
    client.get_function(FunctionName="my-function:$LATEST")
    _boto_client(endpoint, "logs").describe_log_groups(logGroupNamePrefix="/aws/lambda/")
    assert [r.service if isinstance(r, SignedIdentity) else r for r in seen.results] == [
        "lambda",
        "lambda",
        "lambda",
        "logs",
    ]


def test_boto3_wrong_secret_gets_invalid_signature(server: tuple[str, Seen]) -> None:
    endpoint, seen = server
    with pytest.raises(Exception, match="InvalidSignatureException"):
        _boto_client(endpoint, secret="wrong").list_functions()
    assert isinstance(seen.results[-1], AwsError)


def test_boto3_presigned_url_over_http(server: tuple[str, Seen]) -> None:
    import urllib.request

    endpoint, seen = server
    url = _boto_client(endpoint).generate_presigned_url(
        "get_function", Params={"FunctionName": ARN}, ExpiresIn=60
    )
    with urllib.request.urlopen(url) as resp:
        assert resp.status == 200
    assert isinstance(seen.results[-1], SignedIdentity)


def test_aws_cli_invoke_over_http(server: tuple[str, Seen], tmp_path: Path) -> None:
    aws = Path(sys.executable).with_name("aws")
    if not aws.exists():
        pytest.skip("aws CLI not installed in the venv")
    endpoint, seen = server
    env = {
        **{k: val for k, val in os.environ.items() if not k.startswith("AWS_")},
        "AWS_ACCESS_KEY_ID": AK,
        "AWS_SECRET_ACCESS_KEY": SK,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    payload = tmp_path / "in.json"
    payload.write_text('{"k": "v w"}')
    proc = subprocess.run(
        [
            str(aws),
            "--endpoint-url",
            endpoint,
            "lambda",
            "invoke",
            "--function-name",
            ARN,
            "--qualifier",
            "$LATEST",
            "--payload",
            f"fileb://{payload}",
            str(tmp_path / "out.json"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert seen.results == [SignedIdentity(AK, "us-east-1", "lambda")]


# --- helpers ------------------------------------------------------------------------------------


def _resign(wire: Wire) -> Wire:
    """Re-sign ``wire`` the way a bytes-hashing SDK would (header values hashed as sent)."""
    import hmac

    auth = wire.header("authorization")
    signed_names = auth.split("SignedHeaders=", 1)[1].split(",", 1)[0].split(";")
    canon_headers = b"".join(
        n.encode()
        + b":"
        + b",".join(b" ".join(v.split()) for k, v in wire.headers if k == n.encode())
        + b"\n"
        for n in signed_names
    )
    canonical = b"\n".join(
        [
            wire.method.encode(),
            wire.path.replace("%", "%25").encode(),
            wire.query.encode(),
            canon_headers,
            ";".join(signed_names).encode(),
            hashlib.sha256(wire.body).hexdigest().encode(),
        ]
    )
    stamp = wire.header("x-amz-date")
    scope = f"{stamp[:8]}/us-east-1/lambda/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical).hexdigest()}"
    key = ("AWS4" + SK).encode()
    for part in (stamp[:8], "us-east-1", "lambda", "aws4_request"):
        key = hmac.digest(key, part.encode(), "sha256")
    sig = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return wire.with_header("Authorization", auth.rsplit("Signature=", 1)[0] + "Signature=" + sig)
