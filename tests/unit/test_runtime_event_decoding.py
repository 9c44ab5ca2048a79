"""The Python runtime's event decoding: the short way (``load_event``) gives json.loads's value,
and json.loads's own error for what it refuses (the handler's Runtime.UnmarshalError)."""

from __future__ import annotations

import json
import os

import pytest

from tests.unit.python_runtime import runtime_module

PAYLOADS = [
    b"{}",
    b'{"a": [1, 2.5, -0.0, 1e400, null, true], "b": {"c": "d"}}',
    b'{"k": "\\u00e9 caf\xc3\xa9 \\ud83d\\ude00"}',
    b"[1, 2] \n",
    b" {}",
    b"42",
    b'"text"',
    "{}".encode("utf-16"),
    '{"a": 1}'.encode("utf-16-le"),
    b"\xef\xbb\xbf{}",
    b'{"s": "\xed\xa0\x80"}',
    b"[NaN, Infinity]",
]
BAD = [b"{", b"{} {}", b"{}x", b"[1,]", b"{'a': 1}", b"\xff{}", b"{\xff}"]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_the_same_value_as_json_loads(payload: bytes) -> None:
    load_event = runtime_module("lamina_rt_invoke").load_event
    assert repr(load_event(payload)) == repr(json.loads(payload))


@pytest.mark.parametrize("payload", BAD)
def test_the_same_error_as_json_loads(payload: bytes) -> None:
    load_event = runtime_module("lamina_rt_invoke").load_event
    with pytest.raises(Exception) as ours:
        load_event(payload)
    with pytest.raises(Exception) as theirs:
        json.loads(payload)
    assert (type(ours.value), str(ours.value)) == (type(theirs.value), str(theirs.value))


def test_context_reads_the_variables_per_invocation() -> None:
    aws = runtime_module("lamina_rt_aws")
    os.environ["AWS_LAMBDA_FUNCTION_NAME"] = "first"
    try:
        assert aws.LambdaContext({"id": "r", "deadline": 0}).function_name == "first"
        os.environ["AWS_LAMBDA_FUNCTION_NAME"] = "changed by the handler"
        assert aws.LambdaContext({"id": "r", "deadline": 0}).function_name == "changed by the handler"
        del os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        assert aws.LambdaContext({"id": "r", "deadline": 0}).function_name is None
    finally:
        os.environ.pop("AWS_LAMBDA_FUNCTION_NAME", None)
