"""Versions and aliases through boto3 against the real server: publishing, qualifiers, routing."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from .conftest import LaminaServer, create_function, make_zip, unique

ACCOUNT = "123456789012"
V = (
    "import os\ndef handler(event, context):\n    return {'tag': %r, 'env': os.environ.get('TAG'),\n"
    "            'version': context.function_version, 'arn': context.invoked_function_arn,\n"
    "            'env_version': os.environ['AWS_LAMBDA_FUNCTION_VERSION']}\n"
)


def code(tag: str) -> str:
    return V % tag


def error_code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def call(lam: Any, name: str, qualifier: str | None = None) -> tuple[dict[str, Any], str]:
    kw = {"Qualifier": qualifier} if qualifier else {}
    resp = lam.invoke(FunctionName=name, **kw)
    return json.loads(resp["Payload"].read()), resp["ExecutedVersion"]


def new_code(lam: Any, name: str, tag: str) -> None:
    lam.update_function_code(FunctionName=name, ZipFile=make_zip({"app.py": code(tag)}))


def test_publish_freezes_code_and_configuration(lam: Any, create_fn: Any) -> None:
    name = create_fn(code("one"), Environment={"Variables": {"TAG": "a"}}, Description="fn")
    v1 = lam.publish_version(FunctionName=name, Description="first")
    assert v1["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert v1["Version"] == "1" and v1["Description"] == "first"
    assert v1["FunctionArn"] == f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}:1"
    new_code(lam, name, "two")
    lam.update_function_configuration(FunctionName=name, Environment={"Variables": {"TAG": "b"}}, Timeout=9)
    old = lam.get_function_configuration(FunctionName=name, Qualifier="1")
    assert old["Timeout"] == 3 and old["Environment"] == {"Variables": {"TAG": "a"}}
    assert old["CodeSha256"] == v1["CodeSha256"]
    assert lam.get_function(FunctionName=name, Qualifier="1")["Configuration"]["Version"] == "1"
    out, ran = call(lam, name, "1")
    assert (out["tag"], out["env"], ran) == ("one", "a", "1")
    assert out["version"] == "1" and out["env_version"] == "1"
    assert out["arn"] == f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}:1"
    out, ran = call(lam, name)
    assert (out["tag"], out["env"], ran, out["version"]) == ("two", "b", "$LATEST", "$LATEST")
    # name:qualifier and a qualified ARN reach the version too
    resp = lam.invoke(FunctionName=f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}:1")
    assert json.loads(resp["Payload"].read())["tag"] == "one" and resp["ExecutedVersion"] == "1"
    assert lam.get_function_configuration(FunctionName=f"{name}:1")["Version"] == "1"
    with pytest.raises(ClientError) as exc:  # a published version stays frozen
        lam.update_function_configuration(FunctionName=f"{name}:1", Timeout=30)
    assert error_code(exc) == "InvalidParameterValueException"


def test_unchanged_latest_returns_existing_version_and_numbers_never_reused(lam: Any, create_fn: Any) -> None:
    name = create_fn(code("one"))
    assert lam.publish_version(FunctionName=name)["Version"] == "1"
    assert lam.publish_version(FunctionName=name)["Version"] == "1"
    new_code(lam, name, "two")
    assert lam.publish_version(FunctionName=name)["Version"] == "2"
    lam.delete_function(FunctionName=name, Qualifier="2")
    with pytest.raises(ClientError) as exc:
        lam.get_function(FunctionName=name, Qualifier="2")
    assert error_code(exc) == "ResourceNotFoundException"
    new_code(lam, name, "three")
    assert lam.publish_version(FunctionName=name)["Version"] == "3"
    assert lam.get_function(FunctionName=name)["Configuration"]["Version"] == "$LATEST"  # still there
    with pytest.raises(ClientError) as exc:
        lam.delete_function(FunctionName=name, Qualifier="$LATEST")
    assert error_code(exc) == "InvalidParameterValueException"


def test_publish_preconditions(lam: Any, create_fn: Any) -> None:
    name = create_fn(code("one"))
    latest = lam.get_function_configuration(FunctionName=name)
    with pytest.raises(ClientError) as exc:
        lam.publish_version(FunctionName=name, CodeSha256="bogus")
    assert error_code(exc) == "InvalidParameterValueException"
    assert "is different from current CodeSHA256 in $LATEST" in exc.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as exc:
        lam.publish_version(FunctionName=name, RevisionId="not-the-revision")
    assert error_code(exc) == "PreconditionFailedException"
    v = lam.publish_version(
        FunctionName=name, CodeSha256=latest["CodeSha256"], RevisionId=latest["RevisionId"]
    )
    assert v["Version"] == "1"
    with pytest.raises(ClientError) as exc:
        lam.publish_version(FunctionName="no-such-function")
    assert error_code(exc) == "ResourceNotFoundException"


def test_list_versions_paginates_latest_first(lam: Any, create_fn: Any) -> None:
    name = create_fn(code("0"))
    for i in range(1, 4):
        lam.update_function_configuration(FunctionName=name, Timeout=3 + i)
        lam.publish_version(FunctionName=name)
    page = lam.list_versions_by_function(FunctionName=name, MaxItems=2)
    assert [v["Version"] for v in page["Versions"]] == ["$LATEST", "1"]
    rest = lam.list_versions_by_function(FunctionName=name, Marker=page["NextMarker"])
    assert [v["Version"] for v in rest["Versions"]] == ["2", "3"] and "NextMarker" not in rest
    pages = lam.get_paginator("list_versions_by_function").paginate(
        FunctionName=name, PaginationConfig={"PageSize": 1}
    )
    assert [v["Timeout"] for p in pages for v in p["Versions"]] == [6, 4, 5, 6]


def test_alias_crud_and_invoke(lam: Any, create_fn: Any) -> None:
    name = create_fn(code("one"))
    lam.publish_version(FunctionName=name)
    alias = lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1", Description="d")
    assert alias["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert alias["AliasArn"] == f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}:live"
    assert lam.get_alias(FunctionName=name, Name="live")["FunctionVersion"] == "1"
    new_code(lam, name, "two")
    out, ran = call(lam, name, "live")
    assert (out["tag"], ran, out["version"]) == ("one", "1", "1")
    assert out["arn"] == alias["AliasArn"]
    resp = lam.invoke(FunctionName=alias["AliasArn"])
    assert resp["ExecutedVersion"] == "1"
    assert lam.get_function_configuration(FunctionName=name, Qualifier="live")["Version"] == "1"
    lam.publish_version(FunctionName=name)
    with pytest.raises(ClientError) as exc:
        lam.update_alias(FunctionName=name, Name="live", FunctionVersion="2", RevisionId="stale")
    assert error_code(exc) == "PreconditionFailedException"
    upd = lam.update_alias(
        FunctionName=name, Name="live", FunctionVersion="2", RevisionId=alias["RevisionId"]
    )
    assert upd["FunctionVersion"] == "2" and upd["Description"] == "d"
    assert call(lam, name, "live")[1] == "2"
    lam.create_alias(FunctionName=name, Name="dev", FunctionVersion="$LATEST")
    assert call(lam, name, "dev")[1] == "$LATEST"
    listed = lam.list_aliases(FunctionName=name, MaxItems=1)
    assert [a["Name"] for a in listed["Aliases"]] == ["dev"]
    more = lam.list_aliases(FunctionName=name, Marker=listed["NextMarker"])
    assert [a["Name"] for a in more["Aliases"]] == ["live"]
    assert [a["Name"] for a in lam.list_aliases(FunctionName=name, FunctionVersion="2")["Aliases"]] == [
        "live"
    ]
    lam.delete_alias(FunctionName=name, Name="dev")
    with pytest.raises(ClientError) as exc:
        lam.get_alias(FunctionName=name, Name="dev")
    assert error_code(exc) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as exc:
        lam.invoke(FunctionName=name, Qualifier="dev")
    assert error_code(exc) == "ResourceNotFoundException"


def test_alias_rules(lam: Any, create_fn: Any) -> None:
    name = create_fn(code("one"))
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="a", FunctionVersion="1")
    with pytest.raises(ClientError) as exc:
        lam.create_alias(FunctionName=name, Name="a", FunctionVersion="1")
    assert error_code(exc) == "ResourceConflictException"
    with pytest.raises(ClientError) as exc:  # an alias cannot point to an alias
        lam.create_alias(FunctionName=name, Name="b", FunctionVersion="a")
    assert error_code(exc) == "ValidationException"
    with pytest.raises(ClientError) as exc:
        lam.create_alias(FunctionName=name, Name="b", FunctionVersion="9")
    assert error_code(exc) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as exc:
        lam.create_alias(FunctionName=name, Name="42", FunctionVersion="1")
    assert error_code(exc) == "ValidationException"
    with pytest.raises(ClientError) as exc:
        lam.delete_function(FunctionName=name, Qualifier="1")
    assert error_code(exc) == "ResourceConflictException"
    with pytest.raises(ClientError) as exc:  # the extra version may not be the primary
        lam.create_alias(
            FunctionName=name,
            Name="c",
            FunctionVersion="1",
            RoutingConfig={"AdditionalVersionWeights": {"1": 0.5}},
        )
    assert error_code(exc) == "InvalidParameterValueException"
    with pytest.raises(ClientError) as exc:  # weights only over published versions
        lam.create_alias(
            FunctionName=name,
            Name="c",
            FunctionVersion="1",
            RoutingConfig={"AdditionalVersionWeights": {"$LATEST": 0.5}},
        )
    assert error_code(exc) == "ValidationException"
    lam.delete_alias(FunctionName=name, Name="a")
    lam.delete_function(FunctionName=name, Qualifier="1")


def test_weighted_alias_routes_by_weight(lam: Any, create_fn: Any) -> None:
    name = create_fn(code("one"))
    lam.publish_version(FunctionName=name)
    new_code(lam, name, "two")
    lam.publish_version(FunctionName=name)

    def routed(weight: float, n: int) -> Counter[str]:
        lam.update_alias(
            FunctionName=name, Name="w", RoutingConfig={"AdditionalVersionWeights": {"2": weight}}
        )
        seen: Counter[str] = Counter()
        for _ in range(n):
            out, ran = call(lam, name, "w")
            assert out["tag"] == {"1": "one", "2": "two"}[ran] and out["version"] == ran
            seen[ran] += 1
        return seen

    lam.create_alias(FunctionName=name, Name="w", FunctionVersion="1")
    half = routed(0.5, 200)
    assert half["1"] > 40 and half["2"] > 40  # P(fail) ~ 1e-18 for a fair split
    assert routed(0.0, 20) == Counter({"1": 20})
    assert routed(1.0, 20) == Counter({"2": 20})
    got = lam.get_alias(FunctionName=name, Name="w")
    assert got["RoutingConfig"] == {"AdditionalVersionWeights": {"2": 1.0}}
    assert [a["Name"] for a in lam.list_aliases(FunctionName=name, FunctionVersion="2")["Aliases"]] == ["w"]


def test_delete_function_removes_versions_and_aliases(lam: Any, create_fn: Any) -> None:
    name = create_fn(code("one"))
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="x", FunctionVersion="1")
    lam.delete_function(FunctionName=name)
    create_fn(code("again"), name=name)
    with pytest.raises(ClientError) as exc:
        lam.get_alias(FunctionName=name, Name="x")
    assert error_code(exc) == "ResourceNotFoundException"
    assert [v["Version"] for v in lam.list_versions_by_function(FunctionName=name)["Versions"]] == ["$LATEST"]
    assert lam.publish_version(FunctionName=name)["Version"] == "1"


def test_versions_and_aliases_survive_restart(tmp_path: Path) -> None:
    srv = LaminaServer(tmp_path / "data")
    srv.start()
    try:
        lam = srv.client()
        name = unique()
        create_function(lam, code("one"), name=name)
        lam.publish_version(FunctionName=name)
        new_code(lam, name, "two")
        lam.publish_version(FunctionName=name)
        lam.delete_function(FunctionName=name, Qualifier="2")
        lam.create_alias(
            FunctionName=name, Name="p", FunctionVersion="1", RoutingConfig={"AdditionalVersionWeights": {}}
        )
    finally:
        srv.stop()
    srv.start()
    try:
        lam = srv.client()
        assert lam.get_alias(FunctionName=name, Name="p")["FunctionVersion"] == "1"
        out, ran = call(lam, name, "p")
        assert (out["tag"], ran) == ("one", "1")
        new_code(lam, name, "three")
        assert lam.publish_version(FunctionName=name)["Version"] == "3"  # 2 is not reused
    finally:
        srv.stop()
