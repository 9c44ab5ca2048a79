"""The SigV4 fast path only ever accepts what the full verifier accepts, and takes the common case."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import replace
from typing import Any
from unittest import mock

import pytest

from lamina.auth.fastpath import FastSigV4
from lamina.errors import AwsError

from .test_auth_sigv4 import AK, ARN_PATH, ENDPOINT, NOW_EPOCH, SK, Wire, invoke_wire, sign, verifier


def fast(clock_offset_s: float = 0.0) -> FastSigV4:
    v = verifier(clock_offset_s)
    return FastSigV4(
        {AK: SK}, signing_key=v._signing_key, clock=lambda: NOW_EPOCH + clock_offset_s, max_skew_s=900
    )


def fast_accepts(wire: Wire, f: FastSigV4 | None = None) -> Any:
    """The verdict, which must not depend on whether the front's header dict is passed along."""
    f = f or fast()
    args = (wire.method, wire.path.encode(), wire.query.encode(), wire.headers, wire.body)
    hmap: dict[bytes, bytes] = {}
    for name, value in wire.headers:  # as the front builds Request.hmap: repeats joined with ","
        hmap[name] = value if name not in hmap else hmap[name] + b"," + value
    verdict = f.verify(*args)
    assert f.verify(*args, hmap) == verdict
    return verdict


def full_accepts(wire: Wire, clock_offset_s: float = 0.0) -> bool:
    """The full verifier's own verdict: SigV4Verifier.verify with its fast path switched off."""
    v = verifier(clock_offset_s)
    try:
        with mock.patch.object(v._fast, "verify", return_value=None):
            v.verify(wire.method, wire.path, wire.query, wire.headers, wire.body)
    except AwsError:
        return False
    return True


COMMON = [
    lambda: invoke_wire(),
    lambda: sign("GET", f"{ENDPOINT}/2015-03-31/functions/"),
    lambda: sign("GET", f"{ENDPOINT}/2015-03-31/functions/", params={"MaxItems": "2", "Marker": "a b+c"}),
    lambda: sign("POST", f"{ENDPOINT}/2015-03-31/functions", json.dumps({"FunctionName": "f"}).encode()),
    lambda: sign("DELETE", f"{ENDPOINT}/2015-03-31/functions/f"),
    lambda: sign(
        "POST", f"{ENDPOINT}{ARN_PATH}", b"\x00\xff binary", [("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")]
    ),
]


@pytest.mark.parametrize("make", COMMON)
def test_common_requests_take_the_fast_path(make: Any) -> None:
    wire = make()
    assert fast_accepts(wire) == (AK, "us-east-1", "lambda")
    assert full_accepts(wire)


def mutations(wire: Wire) -> list[Wire]:
    body = wire.body or b"{}"
    return [
        replace(wire, body=body + b" "),
        replace(wire, path=wire.path + "x"),
        replace(wire, query=wire.query + "&extra=1"),
        replace(wire, method="PUT"),
        wire.with_header("X-Amz-Date", "20240101T003001Z"),
        wire.with_header("Authorization", wire.header("Authorization")[:-1] + "0"),
        wire.with_header("Host", "evil.example"),
        wire.without_header("X-Amz-Date"),
        wire.with_header("Authorization", wire.header("Authorization").replace(AK, "LKIAUNKNOWNUNKNOWN12")),
        wire.with_header("Authorization", wire.header("Authorization").replace("us-east-1", "US_EAST")),
    ]


@pytest.mark.parametrize("make", COMMON)
def test_fast_path_never_accepts_what_the_full_verifier_rejects(make: Any) -> None:
    for wire in mutations(make()):
        if not full_accepts(wire):
            assert fast_accepts(wire) is None


def test_skewed_clock_and_repeated_headers_go_to_the_full_verifier() -> None:
    wire = invoke_wire()
    assert fast_accepts(wire, fast(clock_offset_s=901)) is None
    assert not full_accepts(wire, clock_offset_s=901)
    doubled = Wire(
        wire.method, wire.path, wire.query, [*wire.headers, (b"x-amz-log-type", b"Tail")], wire.body
    )
    assert fast_accepts(doubled) is None


def test_presigned_requests_go_to_the_full_verifier() -> None:
    wire = sign("GET", f"{ENDPOINT}/2015-03-31/functions/", presign_expires=300)
    assert fast_accepts(wire) is None
    assert full_accepts(wire)


def test_a_removed_or_changed_secret_is_never_accepted_from_the_scope_cache() -> None:
    """The per-scope cache (a keyed HMAC) is checked against the live secrets on every request."""
    secrets = {AK: SK}
    f = FastSigV4(secrets, signing_key=verifier()._signing_key, clock=lambda: NOW_EPOCH, max_skew_s=900)
    first = invoke_wire()
    assert fast_accepts(first, f) == (AK, "us-east-1", "lambda")
    secrets[AK] = "rotated-secret"  # the old signature no longer holds
    assert fast_accepts(first, f) is None
    second = invoke_wire(secret="rotated-secret")
    assert fast_accepts(second, f) == (AK, "us-east-1", "lambda")
    del secrets[AK]  # a deleted account's key
    assert fast_accepts(second, f) is None


def signed_as_sent(wire: Wire, method: str | None = None, query: str | None = None) -> Wire:
    """``wire`` re-signed over its header values exactly as sent (no whitespace folding, which the
    full verifier applies as botocore does) and over ``method`` as given (the full verifier
    upper-cases it): what a careless signer sends, which the full verifier rejects when folding
    or upper-casing changes anything.
    ``query``: the canonical query signed, when not the query as sent."""
    auth = wire.header("authorization")
    names = auth.split("SignedHeaders=", 1)[1].split(", Signature=", 1)[0].split(";")
    lines = b"".join(
        n.encode() + b":" + next(v for k, v in wire.headers if k == n.encode()) + b"\n" for n in names
    )
    canonical = b"\n".join(
        [
            (method or wire.method).encode(),
            wire.path.replace("%", "%25").encode(),
            (wire.query if query is None else query).encode(),
            lines,
            ";".join(names).encode(),
            hashlib.sha256(wire.body).hexdigest().encode(),
        ]
    )
    stamp = wire.header("x-amz-date")
    to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{stamp[:8]}/us-east-1/lambda/aws4_request\n"
    to_sign += hashlib.sha256(canonical).hexdigest()
    key = ("AWS4" + SK).encode()
    for part in (stamp[:8], "us-east-1", "lambda", "aws4_request"):
        key = hmac.digest(key, part.encode(), "sha256")
    sig = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    resigned = wire.with_header("Authorization", auth.rsplit("Signature=", 1)[0] + "Signature=" + sig)
    return replace(resigned, method=method or wire.method)


@pytest.mark.parametrize(
    "value",
    [
        " leading space",
        "trailing space ",
        "two  spaces",
        "a\ttab",
        "a\rcarriage return",
        "a\x0bvertical tab",
        "a\x0cform feed",
        "a\nline break",
        "space before \nline break",
        " ",
        "caf\u00e9",
    ],
)
def test_signed_values_that_the_full_verifier_folds_or_reads_twice_go_to_it(value: str) -> None:
    # botocore signs the value folded (runs of whitespace as one space, ends stripped): the full
    # verifier accepts that, and the fast path, which signs values as they stand, leaves it to it.
    wire = sign("POST", f"{ENDPOINT}{ARN_PATH}", b"{}", [("X-Custom", value)]).with_header("X-Custom", value)
    assert fast_accepts(wire) is None
    assert full_accepts(wire)
    # Signed over the value as sent, the full verifier rejects it (but for the latin-1 value, which
    # folding leaves alone), and the fast path must not accept it.
    as_sent = signed_as_sent(wire)
    assert full_accepts(as_sent) == (value == "caf\u00e9")
    assert fast_accepts(as_sent) is None


def test_single_spaces_inside_values_take_the_fast_path() -> None:
    wire = sign("POST", f"{ENDPOINT}{ARN_PATH}", b"{}", [("Content-Type", "application/json; charset=utf-8")])
    assert fast_accepts(wire) == (AK, "us-east-1", "lambda")
    assert full_accepts(wire)


def test_a_signed_header_not_sent_goes_to_the_full_verifier() -> None:
    wire = sign("POST", f"{ENDPOINT}{ARN_PATH}", b"{}", [("X-Custom", "v")]).without_header("X-Custom")
    assert fast_accepts(wire) is None
    assert not full_accepts(wire)  # signed over "x-custom:v", checked as "x-custom:"


def test_the_method_is_signed_upper_case() -> None:
    # The full verifier signs method.upper(): a signature over "post" must not pass the fast path.
    wire = invoke_wire()
    assert not full_accepts(signed_as_sent(wire, method="post"))
    assert fast_accepts(signed_as_sent(wire, method="post")) is None
    assert full_accepts(replace(wire, method="post"))
    assert fast_accepts(replace(wire, method="post")) == (AK, "us-east-1", "lambda")


def test_a_percent_encoded_pre_signing_parameter_goes_to_the_full_verifier() -> None:
    # Decoded, the key is X-Amz-Algorithm: the full verifier refuses header and query auth together.
    def encoded(key: str) -> Wire:
        wire = sign("GET", f"{ENDPOINT}/2015-03-31/functions/", params={key: "AWS4-HMAC-SHA256"})
        sent = replace(wire, query=wire.query.replace(key, key.replace("-", "%2D")))
        return signed_as_sent(sent, query=wire.query)  # signed as both verifiers canonicalise it

    assert full_accepts(encoded("X-Other"))
    assert fast_accepts(encoded("X-Other")) == (AK, "us-east-1", "lambda")
    assert not full_accepts(encoded("X-Amz-Algorithm"))
    assert fast_accepts(encoded("X-Amz-Algorithm")) is None


@pytest.mark.parametrize("name", ["x y", "x,y", "x\ty", "x\x1cy"])
def test_signed_header_names_the_full_verifier_reads_otherwise_go_to_it(name: str) -> None:
    # The full verifier splits Authorization at commas and whitespace (str.split()'s, with
    # \x1c-\x1f), so such a "name" is not one name to it.  (No HTTP parser delivers a header so
    # named; a direct caller can.)
    wire = invoke_wire()
    auth = wire.header("Authorization").replace("SignedHeaders=", f"SignedHeaders={name};", 1)
    wire = wire.with_header("Authorization", auth)
    wire = replace(wire, headers=[*wire.headers, (name.encode(), b"v")])
    wire = signed_as_sent(wire)
    assert not full_accepts(wire)
    assert fast_accepts(wire) is None


def test_no_signing_key_is_derived_for_a_request_out_of_its_time() -> None:
    """Key derivation (four HMACs) happens for an unseen header only when X-Amz-Date is of the
    present and the scope names its day: a caller who knows a key id cannot make the server derive
    keys for whatever dates it sends."""
    f = fast(clock_offset_s=3600)  # the request below is an hour old: outside the 15 minutes
    calls: list[tuple[str, ...]] = []
    derive = f._signing_key
    f._signing_key = lambda *a: calls.append(a) or derive(*a)  # type: ignore[method-assign]
    assert fast_accepts(invoke_wire(), f) is None
    assert calls == [] and f._heads == {}
    f = fast()
    f._signing_key = lambda *a: calls.append(a) or derive(*a)  # type: ignore[method-assign]
    assert fast_accepts(invoke_wire(), f) is not None
    assert len(calls) == 1
