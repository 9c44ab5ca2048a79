"""Invoke's payload check: the short way (``_plain_json``) only ever accepts what json.loads
accepts, and everything else gets json.loads's verdict and AWS's error."""

from __future__ import annotations

import json

import pytest

from lamina.errors import AwsError
from lamina.invocation.service import _plain_json, check_payload

ACCEPTED_SHORT = [
    b"{}",
    b"[]",
    b'{"a": [1, 2.5, null, true]}',
    b'{"k": "\\u00e9 caf\xc3\xa9"}',
    b"{} \n\t\r",
    b"[NaN]",
]
NOT_SHORT = [
    b" {}",  # leading whitespace: json.loads takes it, the short way does not look
    b"42",
    b'"text"',
    b"null",
    "{}".encode("utf-16"),  # a BOM: json.loads reads UTF-16
    '{"a": 1}'.encode("utf-16-le"),  # no BOM, but a zero second byte: UTF-16 to json.loads
    b"\xef\xbb\xbf{}",  # UTF-8 BOM
    b'{"s": "\xed\xa0\x80"}',  # a lone surrogate: json.loads decodes with surrogatepass
]
REFUSED = [b"{", b"{} {}", b"{}x", b"[1,]", b"{'a': 1}", b"\xff{}", b"{\xff}", b"[" * 100_000]


@pytest.mark.parametrize("payload", ACCEPTED_SHORT)
def test_the_short_way_accepts_what_json_loads_accepts(payload: bytes) -> None:
    json.loads(payload)
    assert _plain_json(payload)
    check_payload(payload, 1 << 20)


@pytest.mark.parametrize("payload", NOT_SHORT)
def test_the_rest_goes_to_json_loads(payload: bytes) -> None:
    assert not _plain_json(payload)
    check_payload(payload, 1 << 20)  # json.loads accepts each of them


@pytest.mark.parametrize("payload", REFUSED)
def test_what_json_loads_refuses_is_refused_with_its_words(payload: bytes) -> None:
    assert not _plain_json(payload)
    with pytest.raises(AwsError) as err:
        check_payload(payload, 1 << 20)
    assert err.value.code == "InvalidRequestContentException"
    assert err.value.message.startswith("Could not parse request body into json: Could not parse payload")


def test_too_large_comes_first() -> None:
    with pytest.raises(AwsError) as err:
        check_payload(b"{}" * 10, 5)
    assert err.value.code == "RequestTooLargeException"
