"""Function CRUD through boto3 against the real server: shapes, defaults, rules, errors, waiters."""

from __future__ import annotations

import base64
import hashlib
import urllib.request
from typing import Any

import pytest
from botocore.exceptions import ClientError, ParamValidationError

from .conftest import ROLE, create_function, make_zip, unique

HELLO = "def handler(event, context):\n    return {'hello': event.get('name', 'world')}\n"


def error_code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_create_defaults_and_shape(lam: Any) -> None:
    name = unique()
    zipped = make_zip({"app.py": HELLO})
    cfg = lam.create_function(
        FunctionName=name, Runtime="python3.11", Role=ROLE, Handler="app.handler", Code={"ZipFile": zipped}
    )
    assert cfg["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert cfg["FunctionName"] == name
    assert cfg["FunctionArn"] == f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
    assert cfg["MemorySize"] == 128 and cfg["Timeout"] == 3
    assert cfg["PackageType"] == "Zip" and cfg["Architectures"] == ["x86_64"]
    assert cfg["Version"] == "$LATEST"
    assert cfg["CodeSha256"] == base64.b64encode(hashlib.sha256(zipped).digest()).decode()
    assert cfg["CodeSize"] == len(zipped)
    assert cfg["State"] == "Active" and cfg["LastUpdateStatus"] == "Successful"
    assert cfg["RevisionId"] and cfg["LastModified"].endswith("+0000")
    lam.get_waiter("function_active_v2").wait(FunctionName=name)


def test_get_function_code_location_downloads_identical_zip(lam: Any, create_fn: Any) -> None:
    name = create_fn(HELLO)
    got = lam.get_function(FunctionName=name)
    assert got["Configuration"]["FunctionName"] == name
    assert got["Code"]["RepositoryType"] == "S3"
    with urllib.request.urlopen(got["Code"]["Location"]) as r:
        data = r.read()
    assert base64.b64encode(hashlib.sha256(data).digest()).decode() == got["Configuration"]["CodeSha256"]
    # A tampered signature is refused.
    bad = got["Code"]["Location"].replace("signature=", "signature=0")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(bad)
    assert exc.value.code == 403


def test_names_partial_and_full_arns_accepted(lam: Any, create_fn: Any) -> None:
    name = create_fn(HELLO)
    for ident in (
        name,
        f"123456789012:function:{name}",
        f"arn:aws:lambda:us-east-1:123456789012:function:{name}",
        f"{name}:$LATEST",
    ):
        assert lam.get_function_configuration(FunctionName=ident)["FunctionName"] == name


def test_not_found_and_conflict(lam: Any, create_fn: Any) -> None:
    with pytest.raises(ClientError) as exc:
        lam.get_function(FunctionName="does-not-exist")
    assert error_code(exc) == "ResourceNotFoundException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert "function:does-not-exist" in exc.value.response["Error"]["Message"]
    name = create_fn(HELLO)
    with pytest.raises(ClientError) as exc:
        create_fn(HELLO, name=name)
    assert error_code(exc) == "ResourceConflictException"
    with pytest.raises(ClientError) as exc:
        lam.get_function(FunctionName=name, Qualifier="7")
    assert error_code(exc) == "ResourceNotFoundException"


@pytest.mark.parametrize(
    ("kwargs", "code", "fragment"),
    [
        ({"MemorySize": 20000}, "ValidationException", "less than or equal to 10240"),
        ({"MemorySize": 64}, "ValidationException", "greater than or equal to 128"),
        ({"Timeout": 901}, "ValidationException", "less than or equal to 900"),
        ({"Runtime": "cobol85"}, "ValidationException", "enum value set"),
        ({"Runtime": "python2.7"}, "InvalidParameterValueException", "not available"),
        ({"Runtime": "python3.9"}, "InvalidParameterValueException", "not available"),
        (
            {"Environment": {"Variables": {"AWS_REGION": "x"}}},
            "InvalidParameterValueException",
            "reserved keys",
        ),
        ({"Environment": {"Variables": {"BIG": "x" * 5000}}}, "InvalidParameterValueException", "4KB"),
        ({"Role": "not-a-role"}, "ValidationException", "regular expression pattern"),
    ],
)
def test_configuration_rules(server: Any, kwargs: dict[str, Any], code: str, fragment: str) -> None:
    # botocore's client-side checks are off so the server's own validation is what answers
    lam = server.client(parameter_validation=False)
    params: dict[str, Any] = {
        "FunctionName": unique(),
        "Runtime": "python3.11",
        "Role": ROLE,
        "Handler": "app.handler",
        "Code": {"ZipFile": make_zip({"app.py": HELLO})},
    }
    params.update(kwargs)
    with pytest.raises(ClientError) as exc:
        lam.create_function(**params)
    assert error_code(exc) == code
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert fragment in exc.value.response["Error"]["Message"]


def test_bad_name_is_validation_error(lam: Any) -> None:
    with pytest.raises(ClientError) as exc:
        lam.get_function(FunctionName="bad name!")
    assert error_code(exc) == "ValidationException"


def test_client_side_validation_still_applies(lam: Any) -> None:
    with pytest.raises(ParamValidationError):
        create_function(lam, HELLO, MemorySize=1)


@pytest.mark.parametrize(
    "entries",
    [
        {"../evil.py": "x = 1"},
        {"/abs/evil.py": "x = 1"},
        {"a/../../evil.py": "x = 1"},
    ],
)
def test_zip_slip_rejected(lam: Any, server: Any, entries: dict[str, str]) -> None:
    with pytest.raises(ClientError) as exc:
        create_function(lam, {"app.py": HELLO, **entries})
    assert error_code(exc) == "InvalidParameterValueException"
    assert not (server.data_dir.parent / "evil.py").exists()
    assert not (server.data_dir / "evil.py").exists()


def test_symlink_out_rejected(lam: Any) -> None:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", HELLO)
        info = zipfile.ZipInfo("link")
        info.external_attr = 0o120777 << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(ClientError) as exc:
        create_function(lam, buf.getvalue())
    assert error_code(exc) == "InvalidParameterValueException"


def test_not_a_zip(lam: Any) -> None:
    with pytest.raises(ClientError) as exc:
        create_function(lam, b"definitely not a zip")
    assert error_code(exc) == "InvalidParameterValueException"


def test_update_code_and_configuration(lam: Any, create_fn: Any) -> None:
    name = create_fn(HELLO)
    before = lam.get_function_configuration(FunctionName=name)
    zipped = make_zip({"app.py": "def handler(e, c):\n    return 'v2'\n"})
    after = lam.update_function_code(FunctionName=name, ZipFile=zipped)
    assert after["CodeSha256"] != before["CodeSha256"]
    assert after["RevisionId"] != before["RevisionId"]
    lam.get_waiter("function_updated_v2").wait(FunctionName=name)
    cfg = lam.update_function_configuration(
        FunctionName=name, MemorySize=256, Timeout=10, Description="d", Environment={"Variables": {"AB": "1"}}
    )
    assert cfg["MemorySize"] == 256 and cfg["Timeout"] == 10 and cfg["Description"] == "d"
    assert cfg["Environment"] == {"Variables": {"AB": "1"}}
    with pytest.raises(ClientError) as exc:
        lam.update_function_configuration(FunctionName=name, Timeout=5, RevisionId="stale")
    assert error_code(exc) == "PreconditionFailedException"


def test_list_functions_pagination(lam: Any, create_fn: Any) -> None:
    names = {create_fn(HELLO, name=unique("page")) for _ in range(5)}
    seen: list[str] = []
    marker = None
    while True:
        kw = {"MaxItems": 2, **({"Marker": marker} if marker else {})}
        page = lam.list_functions(**kw)
        assert len(page["Functions"]) <= 2
        seen.extend(f["FunctionName"] for f in page["Functions"])
        marker = page.get("NextMarker")
        if not marker:
            break
    assert names <= set(seen)
    assert len(seen) == len(set(seen))
    paginated = [
        f["FunctionName"] for p in lam.get_paginator("list_functions").paginate() for f in p["Functions"]
    ]
    assert names <= set(paginated)


def test_delete(lam: Any, create_fn: Any) -> None:
    name = create_fn(HELLO)
    resp = lam.delete_function(FunctionName=name)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as exc:
        lam.get_function(FunctionName=name)
    assert error_code(exc) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as exc:
        lam.delete_function(FunctionName=name)
    assert error_code(exc) == "ResourceNotFoundException"


def test_account_settings(lam: Any, create_fn: Any) -> None:
    create_fn(HELLO)
    s = lam.get_account_settings()
    assert s["AccountLimit"]["ConcurrentExecutions"] == 1000
    assert s["AccountLimit"]["CodeSizeUnzipped"] == 262144000
    assert s["AccountUsage"]["FunctionCount"] >= 1


def test_unimplemented_operation_is_named(lam: Any, create_fn: Any) -> None:
    name = create_fn(HELLO)
    with pytest.raises(ClientError) as exc:
        lam.get_function_code_signing_config(FunctionName=name)
    assert "GetFunctionCodeSigningConfig" in exc.value.response["Error"]["Message"]
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501


def test_regions_are_separate(server: Any, create_fn: Any) -> None:
    name = create_fn(HELLO)
    west = server.client(region_name="us-west-2")
    with pytest.raises(ClientError) as exc:
        west.get_function(FunctionName=name)
    assert error_code(exc) == "ResourceNotFoundException"


def test_publish_flag_on_create_and_update_publishes(lam: Any, create_fn: Any) -> None:
    name = unique()
    cfg = lam.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": HELLO})},
        Publish=True,
    )
    assert cfg["Version"] == "1"
    assert cfg["FunctionArn"].endswith(f":function:{name}:1")
    changed = make_zip({"app.py": HELLO.replace("hello", "hi")})
    cfg = lam.update_function_code(FunctionName=name, ZipFile=changed, Publish=True)
    assert cfg["Version"] == "2"
    assert cfg["CodeSha256"] == base64.b64encode(hashlib.sha256(changed).digest()).decode()
    assert lam.get_function_configuration(FunctionName=name)["Version"] == "$LATEST"
