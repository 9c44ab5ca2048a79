"""The SigV4 fast path only ever accepts what the full verifier accepts, and takes the common case."""

from __future__ import annotations

import json
from typing import Any

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
    try:
        verifier(clock_offset_s).verify(wire.method, wire.path, wire.query, wire.headers, wire.body)
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
    from dataclasses import replace

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
