"""SigV4 on every request: missing, unknown key, bad signature, skewed clock."""

from __future__ import annotations

import datetime
import urllib.error
import urllib.request
from typing import Any
from unittest import mock

import pytest
from botocore.exceptions import ClientError


def code_of(fn: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as exc:
        fn()
    return exc.value.response["Error"]["Code"], exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_unsigned_request(server: Any) -> None:
    req = urllib.request.Request(f"{server.endpoint}/2015-03-31/functions/")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req)
    assert exc.value.code == 403
    assert exc.value.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


def test_unknown_key(server: Any) -> None:
    lam = server.client(aws_access_key_id="LKIAUNKNOWNUNKNOWN00")
    assert code_of(lam.list_functions) == ("UnrecognizedClientException", 403)


def test_bad_signature(server: Any) -> None:
    from .conftest import ACCESS_KEY

    lam = server.client(aws_access_key_id=ACCESS_KEY, aws_secret_access_key="wrong-secret")
    assert code_of(lam.list_functions) == ("InvalidSignatureException", 403)


def test_clock_skew(server: Any) -> None:
    lam = server.client()
    skewed = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - datetime.timedelta(minutes=20)
    with mock.patch("botocore.auth.get_current_datetime", return_value=skewed):
        code, status = code_of(lam.list_functions)
    assert (code, status) == ("InvalidSignatureException", 403)


def test_signed_request_succeeds(lam: Any) -> None:
    assert "Functions" in lam.list_functions()
