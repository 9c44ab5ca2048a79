"""Tags through boto3 against the real server: TagResource, UntagResource, ListTags, AWS's rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from .conftest import LaminaServer, create_function, unique

ACCOUNT = "123456789012"
CODE = "def handler(e, c):\n    return e\n"


def arn(name: str, qualifier: str | None = None) -> str:
    base = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}"
    return f"{base}:{qualifier}" if qualifier else base


def error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    err = exc.value.response["Error"]
    return str(err["Code"]), str(err["Message"])


def test_tag_untag_list(lam: Any, create_fn: Any) -> None:
    name = create_fn(CODE, Tags={"team": "a", "stage": "dev"})
    assert lam.list_tags(Resource=arn(name))["Tags"] == {"team": "a", "stage": "dev"}
    resp = lam.tag_resource(Resource=arn(name), Tags={"stage": "prod", "cost": "42"})
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert lam.list_tags(Resource=arn(name))["Tags"] == {"team": "a", "stage": "prod", "cost": "42"}
    assert lam.get_function(FunctionName=name)["Tags"] == {"team": "a", "stage": "prod", "cost": "42"}
    resp = lam.untag_resource(Resource=arn(name), TagKeys=["team", "cost", "absent"])
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert lam.list_tags(Resource=arn(name))["Tags"] == {"stage": "prod"}
    lam.untag_resource(Resource=arn(name), TagKeys=["stage"])
    assert lam.list_tags(Resource=arn(name))["Tags"] == {}


def test_qualified_arn_and_missing_function(lam: Any, create_fn: Any) -> None:
    name = create_fn(CODE)
    lam.publish_version(FunctionName=name)
    for qualified in (arn(name, "1"), arn(name, "$LATEST")):
        with pytest.raises(ClientError) as exc:
            lam.tag_resource(Resource=qualified, Tags={"a": "b"})
        assert error(exc)[0] == "InvalidParameterValueException"
        assert "aliases and versions" in error(exc)[1]
        with pytest.raises(ClientError) as exc:
            lam.list_tags(Resource=qualified)
        assert error(exc)[0] == "InvalidParameterValueException"
    missing = arn(unique("nope"))
    for call in (
        lambda: lam.list_tags(Resource=missing),
        lambda: lam.tag_resource(Resource=missing, Tags={"a": "b"}),
        lambda: lam.untag_resource(Resource=missing, TagKeys=["a"]),
    ):
        with pytest.raises(ClientError) as exc:
            call()
        assert error(exc) == ("ResourceNotFoundException", f"Function not found: {missing}")
    lam.delete_function(FunctionName=name)
    with pytest.raises(ClientError) as exc:
        lam.list_tags(Resource=arn(name))
    assert error(exc)[0] == "ResourceNotFoundException"


@pytest.mark.parametrize(
    "tags",
    [
        {"aws:reserved": "x"},
        {"k" * 129: "x"},
        {"k": "v" * 257},
        {f"k{i}": "v" for i in range(51)},
    ],
    ids=["aws-prefix", "long-key", "long-value", "too-many"],
)
def test_limits(lam: Any, create_fn: Any, tags: dict[str, str]) -> None:
    name = create_fn(CODE, Tags={"keep": "me"})
    with pytest.raises(ClientError) as exc:
        lam.tag_resource(Resource=arn(name), Tags=tags)
    assert error(exc)[0] in ("InvalidParameterValueException", "ValidationException")
    assert lam.list_tags(Resource=arn(name))["Tags"] == {"keep": "me"}
    with pytest.raises(ClientError) as exc:
        create_fn(CODE, Tags=tags)
    assert error(exc)[0] in ("InvalidParameterValueException", "ValidationException")


def test_fifty_tags_is_the_limit(lam: Any, create_fn: Any) -> None:
    name = create_fn(CODE, Tags={f"k{i}": "v" for i in range(48)})
    # overwriting a key does not count twice: 48 + 2 new = 50, the limit; longest key and value
    lam.tag_resource(Resource=arn(name), Tags={"k0": "again", "k48": "v", "k" * 128: "v" * 256})
    assert len(lam.list_tags(Resource=arn(name))["Tags"]) == 50
    with pytest.raises(ClientError) as exc:
        lam.tag_resource(Resource=arn(name), Tags={"one-more": "v"})
    assert error(exc)[0] == "InvalidParameterValueException"
    assert lam.list_tags(Resource=arn(name))["Tags"]["k0"] == "again"


def test_tags_survive_restart(tmp_path: Path) -> None:
    srv = LaminaServer(tmp_path / "data")
    srv.start()
    try:
        lam = srv.client()
        name = create_function(lam, CODE, Tags={"a": "1"})
        lam.tag_resource(Resource=arn(name), Tags={"b": "2"})
        lam.untag_resource(Resource=arn(name), TagKeys=["a"])
        srv.stop()
        srv.start()
        assert srv.client().list_tags(Resource=arn(name))["Tags"] == {"b": "2"}
    finally:
        srv.stop()
