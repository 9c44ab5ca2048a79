"""Constraint checks and AWS's wording for them (forms taken from real Lambda responses)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from botocore.model import ServiceModel, Shape

from lamina.errors import validation_error
from lamina.protocol import load_service_model, validate
from lamina.protocol.patterns import PatternCompiler

ROLE = "arn:aws:iam::123456789012:role/r"


@pytest.fixture(scope="module")
def model() -> ServiceModel:
    return load_service_model("lambda")


def input_of(model: ServiceModel, name: str) -> Shape:
    return model.operation_model(name).input_shape


def create(model: ServiceModel, **params: Any) -> list[str]:
    base: dict[str, Any] = {"FunctionName": "f", "Role": ROLE, "Code": {"ZipFile": b"z"}}
    base.update(params)
    return validate(input_of(model, "CreateFunction"), {k: v for k, v in base.items() if v is not None})


def constraint(value: str | None, path: str, message: str) -> str:
    shown = "Value null" if value is None else f"Value '{value}'"
    return f"{shown} at '{path}' failed to satisfy constraint: {message}"


def test_valid_input_has_no_problems(model: ServiceModel) -> None:
    assert create(model, Runtime="python3.12", MemorySize=128, Timeout=900, Tags={"k": "v"}) == []


def test_required_member(model: ServiceModel) -> None:
    assert create(model, Role=None) == [constraint(None, "role", "Member must not be null")]


def test_pattern_and_lengths(model: ServiceModel) -> None:
    fn = input_of(model, "GetFunction")
    pattern = fn.members["FunctionName"].metadata["pattern"]
    assert validate(fn, {"FunctionName": "x y"}) == [
        constraint("x y", "functionName", f"Member must satisfy regular expression pattern: {pattern}")
    ]
    assert validate(fn, {"FunctionName": ""}) == [
        constraint("", "functionName", "Member must have length greater than or equal to 1"),
        constraint("", "functionName", f"Member must satisfy regular expression pattern: {pattern}"),
    ]
    long_text = "d" * 257
    assert create(model, Description=long_text) == [
        constraint(long_text, "description", "Member must have length less than or equal to 256")
    ]


def test_numeric_ranges(model: ServiceModel) -> None:
    assert create(model, MemorySize=100) == [
        constraint("100", "memorySize", "Member must have value greater than or equal to 128")
    ]
    assert create(model, MemorySize=40000, Timeout=0) == [
        constraint("0", "timeout", "Member must have value greater than or equal to 1"),
        constraint("40000", "memorySize", "Member must have value less than or equal to 32768"),
    ]


def test_enum(model: ServiceModel) -> None:
    enum = model.shape_for("Runtime").enum
    assert create(model, Runtime="java") == [
        constraint("java", "runtime", f"Member must satisfy enum value set: [{', '.join(enum)}]")
    ]
    assert enum[:2] == ["nodejs", "nodejs4.3"]


def test_nested_paths_and_order(model: ServiceModel) -> None:
    problems = create(
        model,
        FunctionName="bad name",
        Code={"S3Bucket": "bucket"},
        VpcConfig={"SubnetIds": ["subnet-1"] * 17},
        TracingConfig={"Mode": "Sometimes"},
        FileSystemConfigs=[{"Arn": "nope", "LocalMountPath": "/mnt/x"}, {"LocalMountPath": "/mnt/y"}],
    )
    paths = [re.search(r" at '([^']*)'", p).group(1) for p in problems]  # type: ignore[union-attr]
    assert paths == [
        "functionName",
        "vpcConfig.subnetIds",
        "tracingConfig.mode",
        "fileSystemConfigs",  # at most one
        "fileSystemConfigs.1.member.arn",
        "fileSystemConfigs.2.member.arn",
    ]
    assert problems[1].startswith("Value '[subnet-1, subnet-1,")
    assert problems[1].endswith("Member must have length less than or equal to 16")
    assert problems[3].startswith("Value '[{Arn=nope, LocalMountPath=/mnt/x}, {LocalMountPath=/mnt/y}]'")
    assert problems[5] == constraint(None, "fileSystemConfigs.2.member.arn", "Member must not be null")


def test_scalar_list_elements_reported_once_at_the_list(model: ServiceModel) -> None:
    layer_pattern = model.shape_for("LayerVersionArn").metadata["pattern"]
    assert create(model, Layers=["ok-not-an-arn", ""]) == [
        "Value '[ok-not-an-arn, ]' at 'layers' failed to satisfy constraint: Member must satisfy constraint: "
        "[Member must have length less than or equal to 2048, Member must have length greater than or equal "
        f"to 1, Member must satisfy regular expression pattern: {layer_pattern}"
        ", Member must not be null]"
    ]
    assert create(model, Architectures=["sparc"]) == [
        "Value '[sparc]' at 'architectures' failed to satisfy constraint: Member must satisfy constraint: "
        "[Member must satisfy enum value set: [x86_64, arm64], Member must not be null]"
    ]
    assert create(model, Architectures=["x86_64", "arm64"]) == [
        "Value '[x86_64, arm64]' at 'architectures' failed to satisfy constraint: "
        "Member must have length less than or equal to 1"
    ]


def test_map_keys_and_values(model: ServiceModel) -> None:
    tag_pattern = model.shape_for("TagValue").metadata["pattern"]
    assert create(model, Tags={"ok": "semi;colon"}) == [
        "Value '{ok=semi;colon}' at 'tags' failed to satisfy constraint: Map value must satisfy constraint: "
        "[Member must have length less than or equal to 256, Member must have length greater than or equal "
        f"to 0, Member must satisfy regular expression pattern: {tag_pattern}]"
    ]
    assert create(model, Tags={"": "v"})[0].startswith(
        "Value '{=v}' at 'tags' failed to satisfy constraint: Map keys must satisfy constraint: [Member must"
    )
    assert create(model, Tags={"ключ 1": "значение"}) == []  # \p{L}, \p{Z} and \p{N}


def test_sensitive_values_are_not_echoed(model: ServiceModel) -> None:
    problems = create(model, Environment={"Variables": {"my-secret-name": "hunter2"}})
    assert problems == [
        "Value at 'environment.variables' failed to satisfy constraint: Map keys must satisfy constraint: "
        "[Member must satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+]"
    ]
    assert "hunter2" not in problems[0] and "my-secret-name" not in problems[0]
    big = b"x" * (1048576 + 1)
    problems = validate(
        input_of(model, "SendDurableExecutionCallbackSuccess"), {"CallbackId": "YQ==", "Result": big}
    )
    assert problems == [
        "Value at 'result' failed to satisfy constraint: "
        "Member must have length less than or equal to 1048576"
    ]


def test_aggregated_message(model: ServiceModel) -> None:
    err = validation_error(create(model, Role=None, MemorySize=1))
    assert err.message.startswith("2 validation errors detected: Value null at 'role' failed")
    assert "; Value '1' at 'memorySize'" in err.message


def test_lengths_count_utf16_units_and_bytes(model: ServiceModel) -> None:
    assert create(model, Description="😀" * 128) == []
    assert len(create(model, Description="😀" * 129)) == 1


def test_every_lambda_pattern_compiles(model: ServiceModel) -> None:
    compiler = PatternCompiler()
    patterns = {
        model.shape_for(name).metadata["pattern"]
        for name in model.shape_names
        if "pattern" in model.shape_for(name).metadata
    }
    assert len(patterns) > 50
    for pattern in patterns:
        compiler.compile(pattern)


@pytest.mark.parametrize(
    ("pattern", "good", "bad"),
    [
        ("\\d+", "123", "١٢٣"),  # Java's \d is ASCII only
        (".*", "a b", "a\rb"),  # Java's . stops at every line terminator
        ("[\\p{L}]+", "héllo", "h3llo"),
        ("\\P{N}+", "abc", "a1c"),
        ("\\p{Alpha}+", "abc", "ábc"),  # POSIX classes are ASCII in Java
        ("\\Qa.b\\E", "a.b", "axb"),
        ("a\\x{263A}", "a☺", "a"),
        ("[^ /\\.$\\x22]*", "abc", 'a"c'),
        ("(?!^[0-9]+$)([a-zA-Z0-9-_]+)", "v1", "123"),
        ("[\\w-_]+", "a-_b", "a.b"),  # '-' after a shorthand is a literal in Java
        ("[\\P{C}]+", "abc", "a\x00c"),
        ("[\\uD800\\uDC00-\\uDBFF\\uDFFF]", "😀", "a"),  # a surrogate pair is one code point
        ("\\p{LD}+", "a1é", "a-1"),
        ("[a|b]+", "a|b", "c"),
    ],
)
def test_java_regex_translation(pattern: str, good: str, bad: str) -> None:
    regex = PatternCompiler().compile(pattern)
    assert regex.fullmatch(good)
    assert not regex.fullmatch(bad)


def test_recursive_shapes_terminate() -> None:
    model = ServiceModel(
        {
            "metadata": {"protocol": "rest-json", "apiVersion": "1", "endpointPrefix": "x", "serviceId": "X"},
            "operations": {},
            "shapes": {
                "Node": {
                    "type": "structure",
                    "required": ["Name"],
                    "members": {"Name": {"shape": "Name"}, "Children": {"shape": "Nodes"}},
                },
                "Nodes": {"type": "list", "member": {"shape": "Node"}},
                "Name": {"type": "string", "min": 1},
            },
        }
    )
    tree = {"Name": "a", "Children": [{"Name": "b", "Children": [{"Name": ""}, {}]}]}
    assert validate(model.shape_for("Node"), tree) == [
        constraint(
            "",
            "children.1.member.children.1.member.name",
            "Member must have length greater than or equal to 1",
        ),
        constraint(None, "children.1.member.children.2.member.name", "Member must not be null"),
    ]
