"""Function identifiers and configuration rules (no server)."""

from __future__ import annotations

import pytest

from lamina.errors import AwsError
from lamina.functions.arns import FunctionRef, parse_function_ref, resolve_qualifier
from lamina.functions.rules import check_configuration, check_runtime


@pytest.mark.parametrize(
    ("ident", "expected"),
    [
        ("fn", FunctionRef("fn", None)),
        ("fn:$LATEST", FunctionRef("fn", "$LATEST")),
        ("fn:prod", FunctionRef("fn", "prod")),
        ("123456789012:function:fn", FunctionRef("fn", None, None, "123456789012")),
        ("123456789012:function:fn:7", FunctionRef("fn", "7", None, "123456789012")),
        (
            "arn:aws:lambda:eu-west-1:123456789012:function:fn",
            FunctionRef("fn", None, "eu-west-1", "123456789012"),
        ),
        (
            "arn:aws:lambda:us-gov-west-1:123456789012:function:fn:1",
            FunctionRef("fn", "1", "us-gov-west-1", "123456789012"),
        ),
    ],
)
def test_function_identifiers(ident: str, expected: FunctionRef) -> None:
    assert parse_function_ref(ident) == expected


@pytest.mark.parametrize("ident", ["bad name", "fn:bad qualifier", "a" * 65, "fn:a:b", "arn:aws:s3:::bucket"])
def test_bad_identifiers_are_validation_errors(ident: str) -> None:
    with pytest.raises(AwsError) as exc:
        parse_function_ref(ident)
    assert exc.value.code == "ValidationException"


def test_qualifier_in_name_and_parameter_must_agree() -> None:
    ref = parse_function_ref("fn:1")
    assert resolve_qualifier(ref, None) == "1"
    assert resolve_qualifier(ref, "1") == "1"
    with pytest.raises(AwsError):
        resolve_qualifier(ref, "2")


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"MemorySize": 10241}, "less than or equal to 10240"),
        ({"Timeout": 0}, "greater than or equal to 1"),
        ({"EphemeralStorage": {"Size": 20000}}, "ephemeralStorage.size"),
        (
            {"Environment": {"Variables": {"AWS_REGION": "x", "LAMBDA_TASK_ROOT": "y"}}},
            "AWS_REGION, LAMBDA_TASK_ROOT",
        ),
        ({"Environment": {"Variables": {"BIG": "v" * 4090}}}, "4KB"),
    ],
)
def test_configuration_rules(params: dict[str, object], fragment: str) -> None:
    with pytest.raises(AwsError) as exc:
        check_configuration(params)
    assert fragment in exc.value.message


def test_environment_at_the_limit_is_accepted() -> None:
    # {"BIG":"…"} is 10 bytes of JSON around the value
    check_configuration({"Environment": {"Variables": {"BIG": "v" * (4096 - 10)}}})


def test_runtime_rules() -> None:
    with pytest.raises(AwsError) as exc:
        check_runtime(None, "app.handler", {"python3.11": "/usr/bin/python3.11"})
    assert "mandatory" in exc.value.message
    with pytest.raises(AwsError) as exc:
        check_runtime("python3.14", "app.handler", {"python3.11": "/usr/bin/python3.11"})
    assert "python3.11" in exc.value.message  # names what this host has
    check_runtime("python3.11", "app.handler", {"python3.11": "/usr/bin/python3.11"})
