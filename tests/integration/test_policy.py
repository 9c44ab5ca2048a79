"""Resource-based policies through boto3 against the real server: add, get and remove permissions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from .conftest import LaminaServer, create_function, unique

ACCOUNT = "123456789012"
CODE = "def handler(event, context):\n    return 'ok'\n"
BUCKET = "arn:aws:s3:::my-bucket"


def arn(name: str, qualifier: str | None = None) -> str:
    return f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}" + (f":{qualifier}" if qualifier else "")


def error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str, int]:
    r = exc.value.response
    return r["Error"]["Code"], r["Error"]["Message"], r["ResponseMetadata"]["HTTPStatusCode"]


def add(lam: Any, name: str, sid: str, **kw: Any) -> Any:
    kw.setdefault("Action", "lambda:InvokeFunction")
    kw.setdefault("Principal", "s3.amazonaws.com")
    return lam.add_permission(FunctionName=name, StatementId=sid, **kw)


def test_add_get_remove_with_exact_json(lam: Any, create_fn: Any) -> None:
    name = create_fn(CODE)
    resp = add(lam, name, "s3", SourceArn=BUCKET, SourceAccount="111122223333")
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert resp["Statement"] == (
        '{"Sid":"s3","Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},'
        f'"Action":"lambda:InvokeFunction","Resource":"{arn(name)}",'
        '"Condition":{"StringEquals":{"AWS:SourceAccount":"111122223333"},'
        f'"ArnLike":{{"AWS:SourceArn":"{BUCKET}"}}}}}}'
    )
    add(lam, name, "acct", Principal="111122223333", Action="lambda:GetFunction")
    add(lam, name, "url", Principal="*", Action="lambda:InvokeFunctionUrl", FunctionUrlAuthType="NONE")
    got = lam.get_policy(FunctionName=name)
    assert got["RevisionId"]
    s3 = json.loads(resp["Statement"])
    assert got["Policy"] == json.dumps(
        {
            "Version": "2012-10-17",
            "Id": "default",
            "Statement": [
                s3,
                {
                    "Sid": "acct",
                    "Effect": "Allow",
                    "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
                    "Action": "lambda:GetFunction",
                    "Resource": arn(name),
                },
                {
                    "Sid": "url",
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "lambda:InvokeFunctionUrl",
                    "Resource": arn(name),
                    "Condition": {"StringEquals": {"lambda:FunctionUrlAuthType": "NONE"}},
                },
            ],
        },
        separators=(",", ":"),
    )
    removed = lam.remove_permission(FunctionName=name, StatementId="acct")
    assert removed["ResponseMetadata"]["HTTPStatusCode"] == 204
    sids = [s["Sid"] for s in json.loads(lam.get_policy(FunctionName=name)["Policy"])["Statement"]]
    assert sids == ["s3", "url"]
    lam.remove_permission(FunctionName=name, StatementId="s3")
    lam.remove_permission(FunctionName=name, StatementId="url")
    with pytest.raises(ClientError) as exc:  # the last statement gone, the policy is gone
        lam.get_policy(FunctionName=name)
    assert error(exc) == ("ResourceNotFoundException", "The resource you requested does not exist.", 404)


def test_not_found_cases(lam: Any, create_fn: Any) -> None:
    name = create_fn(CODE)
    with pytest.raises(ClientError) as exc:
        lam.get_policy(FunctionName=name)
    assert error(exc) == ("ResourceNotFoundException", "The resource you requested does not exist.", 404)
    with pytest.raises(ClientError) as exc:
        lam.remove_permission(FunctionName=name, StatementId="nope")
    assert error(exc) == ("ResourceNotFoundException", "Statement nope is not found in resource policy.", 404)
    missing = unique()
    for call in (
        lambda: add(lam, missing, "a"),
        lambda: lam.get_policy(FunctionName=missing),
        lambda: lam.remove_permission(FunctionName=missing, StatementId="a"),
        lambda: add(lam, name, "a", Qualifier="7"),
        lambda: add(lam, name, "a", Qualifier="no-such-alias"),
        lambda: lam.get_policy(FunctionName=name, Qualifier="7"),
    ):
        with pytest.raises(ClientError) as exc:
            call()
        assert error(exc)[0] == "ResourceNotFoundException"
        assert error(exc)[1].startswith("Function not found: arn:aws:lambda:us-east-1:")


def test_duplicate_statement_id(lam: Any, create_fn: Any) -> None:
    name = create_fn(CODE)
    add(lam, name, "dup")
    with pytest.raises(ClientError) as exc:
        add(lam, name, "dup", Principal="sns.amazonaws.com")
    assert error(exc) == (
        "ResourceConflictException",
        "The statement id (dup) provided already exists. Please provide a new statement id, "
        "or remove the existing statement.",
        409,
    )


def test_invalid_inputs(lam: Any, create_fn: Any) -> None:
    name = create_fn(CODE)
    with pytest.raises(ClientError) as exc:
        add(lam, name, "p", Principal="nobody")
    assert error(exc)[0] == "InvalidParameterValueException"
    with pytest.raises(ClientError) as exc:
        add(lam, name, "p", Qualifier="$LATEST")
    assert error(exc)[0] == "InvalidParameterValueException"
    with pytest.raises(ClientError) as exc:
        add(lam, name, "p", Action="s3:GetObject")
    assert error(exc)[0] == "ValidationException"


def test_revision_id_precondition(lam: Any, create_fn: Any) -> None:
    name = create_fn(CODE)
    fn_rev = lam.get_function_configuration(FunctionName=name)["RevisionId"]
    with pytest.raises(ClientError) as exc:
        add(lam, name, "a", RevisionId="not-the-revision")
    assert error(exc)[0] == "PreconditionFailedException" and error(exc)[2] == 412
    add(lam, name, "a", RevisionId=fn_rev)  # before any policy: the function's revision
    rev1 = lam.get_policy(FunctionName=name)["RevisionId"]
    add(lam, name, "b", RevisionId=rev1)
    rev2 = lam.get_policy(FunctionName=name)["RevisionId"]
    assert rev2 != rev1
    with pytest.raises(ClientError) as exc:
        add(lam, name, "c", RevisionId=rev1)
    assert error(exc)[0] == "PreconditionFailedException"
    with pytest.raises(ClientError) as exc:
        lam.remove_permission(FunctionName=name, StatementId="a", RevisionId=rev1)
    assert error(exc)[0] == "PreconditionFailedException"
    lam.remove_permission(FunctionName=name, StatementId="a", RevisionId=rev2)


def test_qualifier_specific_policies(lam: Any, create_fn: Any) -> None:
    name = create_fn(CODE)
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    on_version = json.loads(add(lam, name, "v", Qualifier="1")["Statement"])
    assert on_version["Resource"] == arn(name, "1")
    on_alias = json.loads(add(lam, f"{name}:live", "al")["Statement"])  # qualifier in the name
    assert on_alias["Resource"] == arn(name, "live")
    add(lam, name, "same-sid-elsewhere", Qualifier="live")
    add(lam, name, "v")  # the same Sid on another resource is no conflict

    def sids(q: dict[str, str]) -> list[str]:
        return [s["Sid"] for s in json.loads(lam.get_policy(FunctionName=name, **q)["Policy"])["Statement"]]

    assert sids({"Qualifier": "1"}) == ["v"]
    assert sids({"Qualifier": "live"}) == ["al", "same-sid-elsewhere"]
    assert sids({}) == ["v"]
    assert sids({"Qualifier": "$LATEST"}) == ["v"]  # $LATEST shares the function's policy
    # deleting the alias drops its policy; a re-created alias starts with none
    lam.delete_alias(FunctionName=name, Name="live")
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    with pytest.raises(ClientError) as exc:
        lam.get_policy(FunctionName=name, Qualifier="live")
    assert error(exc)[0] == "ResourceNotFoundException"
    lam.delete_alias(FunctionName=name, Name="live")
    lam.delete_function(FunctionName=name, Qualifier="1")
    assert sids({}) == ["v"]  # the function's own policy stays


def test_deleting_the_function_drops_its_policies(lam: Any, create_fn: Any) -> None:
    name = create_fn(CODE)
    lam.publish_version(FunctionName=name)
    add(lam, name, "a")
    add(lam, name, "b", Qualifier="1")
    lam.delete_function(FunctionName=name)
    create_function(lam, CODE, name=name)
    lam.publish_version(FunctionName=name)
    with pytest.raises(ClientError) as exc:
        lam.get_policy(FunctionName=name)
    assert error(exc)[0] == "ResourceNotFoundException"
    add(lam, name, "a")  # the old Sid is free again


def test_policies_survive_restart(tmp_path: Path) -> None:
    srv = LaminaServer(tmp_path / "data")
    srv.start()
    try:
        lam = srv.client()
        name = create_function(lam, CODE)
        lam.publish_version(FunctionName=name)
        add(lam, name, "s3", SourceArn=BUCKET)
        add(lam, name, "v1", Qualifier="1", Principal="111122223333")
        before = lam.get_policy(FunctionName=name)
        before_v1 = lam.get_policy(FunctionName=name, Qualifier="1")
    finally:
        assert srv.stop() == 0
    srv.start()
    try:
        lam = srv.client()
        after = lam.get_policy(FunctionName=name)
        assert (after["Policy"], after["RevisionId"]) == (before["Policy"], before["RevisionId"])
        assert lam.get_policy(FunctionName=name, Qualifier="1")["Policy"] == before_v1["Policy"]
        with pytest.raises(ClientError) as exc:
            add(lam, name, "s3")
        assert error(exc)[0] == "ResourceConflictException"
    finally:
        srv.stop()
