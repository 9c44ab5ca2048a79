"""Layers through boto3 against the real server: the layer API, policies, /opt in environments."""

from __future__ import annotations

import io
import json
import stat
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from .conftest import LaminaServer, create_function, make_zip, unique

ACCOUNT = "123456789012"


def error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    err = exc.value.response["Error"]
    return str(err["Code"]), str(err["Message"])


def layer_zip(files: dict[str, str], executable: tuple[str, ...] = ()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            info = zipfile.ZipInfo(name)
            mode = 0o755 if name in executable else 0o644
            info.external_attr = (stat.S_IFREG | mode) << 16
            zf.writestr(info, content)
    return buf.getvalue()


def publish(lam: Any, name: str, files: dict[str, str], **kw: Any) -> dict[str, Any]:
    return dict(lam.publish_layer_version(LayerName=name, Content={"ZipFile": layer_zip(files, **kw)}))


def call(lam: Any, name: str, qualifier: str | None = None) -> Any:
    kw = {"Qualifier": qualifier} if qualifier else {}
    resp = lam.invoke(FunctionName=name, **kw)
    body = json.loads(resp["Payload"].read())
    assert "FunctionError" not in resp, body
    return body


def test_publish_get_list_delete(lam: Any) -> None:
    name = unique("layer")
    content = layer_zip({"python/mylib.py": "VALUE = 1\n"})
    v1 = lam.publish_layer_version(
        LayerName=name,
        Content={"ZipFile": content},
        CompatibleRuntimes=["python3.11"],
        CompatibleArchitectures=["x86_64"],
        LicenseInfo="MIT",
        Description="first",
    )
    assert v1["ResponseMetadata"]["HTTPStatusCode"] == 201
    arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:layer:{name}"
    assert (v1["Version"], v1["LayerArn"], v1["LayerVersionArn"]) == (1, arn, f"{arn}:1")
    assert v1["CompatibleRuntimes"] == ["python3.11"] and v1["LicenseInfo"] == "MIT"
    assert v1["Content"]["CodeSize"] == len(content)
    v2 = lam.publish_layer_version(
        LayerName=arn, Content={"ZipFile": layer_zip({"python/mylib.py": "VALUE = 2\n"})},
        CompatibleRuntimes=["python3.12"],
    )  # fmt: skip
    assert v2["Version"] == 2
    got = lam.get_layer_version(LayerName=name, VersionNumber=1)
    assert got["Description"] == "first" and got["CompatibleArchitectures"] == ["x86_64"]
    assert got["Content"]["CodeSha256"] == v1["Content"]["CodeSha256"]
    with urllib.request.urlopen(got["Content"]["Location"]) as r:
        assert r.read() == content
    by_arn = lam.get_layer_version_by_arn(Arn=f"{arn}:2")
    assert by_arn["Version"] == 2 and by_arn["LayerArn"] == arn
    versions = lam.list_layer_versions(LayerName=name)["LayerVersions"]
    assert [v["Version"] for v in versions] == [2, 1]
    only = lam.list_layer_versions(LayerName=name, CompatibleRuntime="python3.11")["LayerVersions"]
    assert [v["Version"] for v in only] == [1]
    page = lam.list_layer_versions(LayerName=name, MaxItems=1)
    assert [v["Version"] for v in page["LayerVersions"]] == [2]
    rest = lam.list_layer_versions(LayerName=name, MaxItems=1, Marker=page["NextMarker"])
    assert [v["Version"] for v in rest["LayerVersions"]] == [1] and "NextMarker" not in rest
    layers = {
        item["LayerName"]: item
        for pg in lam.get_paginator("list_layers").paginate(PaginationConfig={"PageSize": 1})
        for item in pg["Layers"]
    }
    assert layers[name]["LatestMatchingVersion"]["Version"] == 2 and layers[name]["LayerArn"] == arn
    matching = lam.list_layers(CompatibleRuntime="python3.11")["Layers"]
    assert [x["LatestMatchingVersion"]["Version"] for x in matching if x["LayerName"] == name] == [1]
    assert name not in [x["LayerName"] for x in lam.list_layers(CompatibleArchitecture="arm64")["Layers"]]

    lam.delete_layer_version(LayerName=name, VersionNumber=1)
    lam.delete_layer_version(LayerName=name, VersionNumber=1)  # AWS: deleting again is fine
    with pytest.raises(ClientError) as exc:
        lam.get_layer_version(LayerName=name, VersionNumber=1)
    assert error(exc)[0] == "ResourceNotFoundException"
    assert publish(lam, name, {"python/x.py": ""})["Version"] == 3  # numbers are never reused


def test_layer_version_policy(lam: Any) -> None:
    name = unique("layer")
    publish(lam, name, {"python/x.py": ""})
    with pytest.raises(ClientError) as exc:
        lam.get_layer_version_policy(LayerName=name, VersionNumber=1)
    assert error(exc)[0] == "ResourceNotFoundException"
    added = lam.add_layer_version_permission(
        LayerName=name, VersionNumber=1, StatementId="all", Action="lambda:GetLayerVersion", Principal="*"
    )
    assert added["ResponseMetadata"]["HTTPStatusCode"] == 201
    statement = json.loads(added["Statement"])
    resource = f"arn:aws:lambda:us-east-1:{ACCOUNT}:layer:{name}:1"
    assert statement == {
        "Sid": "all", "Effect": "Allow", "Principal": "*", "Action": "lambda:GetLayerVersion",
        "Resource": resource,
    }  # fmt: skip
    second = lam.add_layer_version_permission(
        LayerName=name, VersionNumber=1, StatementId="acct", Action="lambda:GetLayerVersion",
        Principal="210987654321", RevisionId=added["RevisionId"],
    )  # fmt: skip
    assert json.loads(second["Statement"])["Principal"] == {"AWS": "arn:aws:iam::210987654321:root"}
    policy = lam.get_layer_version_policy(LayerName=name, VersionNumber=1)
    doc = json.loads(policy["Policy"])
    assert doc["Version"] == "2012-10-17" and [s["Sid"] for s in doc["Statement"]] == ["all", "acct"]
    assert policy["RevisionId"] == second["RevisionId"]
    with pytest.raises(ClientError) as exc:
        lam.add_layer_version_permission(
            LayerName=name, VersionNumber=1, StatementId="all", Action="lambda:GetLayerVersion", Principal="*"
        )
    assert error(exc)[0] == "ResourceConflictException"
    with pytest.raises(ClientError) as exc:
        lam.remove_layer_version_permission(
            LayerName=name, VersionNumber=1, StatementId="all", RevisionId=added["RevisionId"]
        )
    assert error(exc)[0] == "PreconditionFailedException"
    lam.remove_layer_version_permission(LayerName=name, VersionNumber=1, StatementId="all")
    with pytest.raises(ClientError) as exc:
        lam.remove_layer_version_permission(LayerName=name, VersionNumber=1, StatementId="all")
    assert error(exc)[0] == "ResourceNotFoundException"
    left = json.loads(lam.get_layer_version_policy(LayerName=name, VersionNumber=1)["Policy"])
    assert [s["Sid"] for s in left["Statement"]] == ["acct"]


FN = """
import os, subprocess
import mylib, shared, shadow

def handler(event, context):
    return {
        "mylib": mylib.VALUE, "shared": shared.VALUE, "shadow": shadow.VALUE,
        "hello": subprocess.run(["hello"], capture_output=True, text=True).stdout.strip(),
        "mylib_file": mylib.__file__,
        "env": {k: os.environ.get(k) for k in ("PATH", "LD_LIBRARY_PATH", "NODE_PATH")},
    }
"""


def test_function_uses_layers_in_order(lam: Any) -> None:
    a = publish(
        lam,
        unique("layer-a"),
        {
            "python/mylib.py": "VALUE = 'from layer a'\n",
            "python/shared.py": "VALUE = 'a'\n",
            "python/shadow.py": "VALUE = 'layer'\n",
            "bin/hello": "#!/bin/sh\necho hello from a layer\n",
        },
        executable=("bin/hello",),
    )
    b = publish(lam, unique("layer-b"), {"python/shared.py": "VALUE = 'b'\n"})
    arns = [a["LayerVersionArn"], b["LayerVersionArn"]]
    name = create_function(lam, {"app.py": FN, "shadow.py": "VALUE = 'function'\n"}, Layers=arns)
    cfg = lam.get_function_configuration(FunctionName=name)
    assert cfg["Layers"] == [
        {"Arn": a["LayerVersionArn"], "CodeSize": a["Content"]["CodeSize"]},
        {"Arn": b["LayerVersionArn"], "CodeSize": b["Content"]["CodeSize"]},
    ]
    out = call(lam, name)
    assert (out["mylib"], out["shared"], out["shadow"]) == ("from layer a", "b", "function")
    assert out["hello"] == "hello from a layer"
    assert out["mylib_file"] == "/opt/python/mylib.py"
    assert "/opt/bin" in out["env"]["PATH"].split(":")
    assert "/opt/lib" in out["env"]["LD_LIBRARY_PATH"].split(":")
    assert out["env"]["NODE_PATH"] == "/opt/nodejs/node_modules"


def test_layer_change_gets_new_environment_and_versions_freeze_layers(lam: Any) -> None:
    one = publish(lam, unique("layer"), {"python/mylib.py": "VALUE = 1\n"})
    two = publish(lam, unique("layer"), {"python/mylib.py": "VALUE = 2\n"})
    code = "import mylib\ndef handler(event, context):\n    return mylib.VALUE\n"
    name = create_function(lam, code, Layers=[one["LayerVersionArn"]])
    assert call(lam, name) == 1
    lam.publish_version(FunctionName=name)
    lam.update_function_configuration(FunctionName=name, Layers=[two["LayerVersionArn"]])
    assert call(lam, name) == 2
    assert call(lam, name, "1") == 1
    frozen = lam.get_function_configuration(FunctionName=name, Qualifier="1")["Layers"]
    assert frozen[0]["Arn"] == one["LayerVersionArn"]
    lam.update_function_configuration(FunctionName=name, Layers=[])
    assert "Layers" not in lam.get_function_configuration(FunctionName=name)
    resp = lam.invoke(FunctionName=name)
    assert resp.get("FunctionError") == "Unhandled"
    assert json.loads(resp["Payload"].read())["errorType"] == "Runtime.ImportModuleError"


def test_deleted_layer_version_keeps_working_for_its_functions(lam: Any) -> None:
    layer = unique("layer")
    lv = publish(lam, layer, {"python/mylib.py": "VALUE = 'kept'\n"})
    code = "import mylib\ndef handler(event, context):\n    return mylib.VALUE\n"
    name = create_function(lam, code, Layers=[lv["LayerVersionArn"]])
    lam.delete_layer_version(LayerName=layer, VersionNumber=1)
    lam.update_function_configuration(FunctionName=name, Timeout=5)  # a new environment
    assert call(lam, name) == "kept"
    with pytest.raises(ClientError) as exc:
        create_function(lam, code, Layers=[lv["LayerVersionArn"]])
    assert error(exc) == (
        "InvalidParameterValueException",
        f"Layer version {lv['LayerVersionArn']} does not exist.",
    )


def test_layer_errors(lam: Any) -> None:
    missing = f"arn:aws:lambda:us-east-1:{ACCOUNT}:layer:{unique('nope')}:1"
    with pytest.raises(ClientError) as exc:
        create_function(lam, "def handler(e, c):\n    return 1\n", Layers=[missing])
    assert error(exc) == ("InvalidParameterValueException", f"Layer version {missing} does not exist.")
    arns = [publish(lam, unique("layer"), {"python/x.py": ""})["LayerVersionArn"] for _ in range(6)]
    with pytest.raises(ClientError) as exc:
        create_function(lam, "def handler(e, c):\n    return 1\n", Layers=arns)
    assert error(exc)[0] == "InvalidParameterValueException"
    name = create_function(lam, "def handler(e, c):\n    return 1\n", Layers=arns[:5])
    assert len(lam.get_function_configuration(FunctionName=name)["Layers"]) == 5
    with pytest.raises(ClientError) as exc:
        lam.update_function_configuration(FunctionName=name, Layers=arns)
    assert error(exc)[0] == "InvalidParameterValueException"
    with pytest.raises(ClientError) as exc:
        lam.update_function_configuration(FunctionName=name, Layers=[missing])
    assert error(exc)[1] == f"Layer version {missing} does not exist."


def _zeros_zip(entries: dict[str, int], extra: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in (extra or {}).items():
            zf.writestr(name, content)
        for name, mib in entries.items():
            with zf.open(name, "w") as f:
                chunk = b"\0" * (1 << 20)
                for _ in range(mib):
                    f.write(chunk)
    return buf.getvalue()


def test_combined_size_limit(lam: Any) -> None:
    big = lam.publish_layer_version(
        LayerName=unique("big"), Content={"ZipFile": _zeros_zip({"big.bin": 200})}
    )
    code = _zeros_zip({"pad.bin": 60}, {"app.py": "def handler(e, c):\n    return 1\n"})
    with pytest.raises(ClientError) as exc:
        create_function(lam, code, Layers=[big["LayerVersionArn"]])
    actual = 260 * (1 << 20) + len("def handler(e, c):\n    return 1\n")
    assert error(exc) == (
        "InvalidParameterValueException",
        "Function code combined with layers exceeds the maximum allowed size of 262144000 bytes. "
        f"The actual size is {actual} bytes.",
    )
    name = create_function(lam, code)  # alone it fits, and so does the layer
    with pytest.raises(ClientError) as exc:
        lam.update_function_configuration(FunctionName=name, Layers=[big["LayerVersionArn"]])
    assert error(exc)[1].endswith(f"The actual size is {actual} bytes.")


def test_layers_survive_restart(tmp_path: Path) -> None:
    srv = LaminaServer(tmp_path / "data")
    srv.start()
    try:
        lam = srv.client()
        lv = publish(lam, "persisted", {"python/mylib.py": "VALUE = 'persisted'\n"})
        lam.add_layer_version_permission(
            LayerName="persisted", VersionNumber=1, StatementId="s", Action="lambda:GetLayerVersion",
            Principal="*",
        )  # fmt: skip
        code = "import mylib\ndef handler(event, context):\n    return mylib.VALUE\n"
        create_function(lam, make_zip({"app.py": code}), name="uses-layer", Layers=[lv["LayerVersionArn"]])
        assert call(lam, "uses-layer") == "persisted"
        assert srv.stop() == 0
        srv.start()
        lam = srv.client()
        got = lam.get_layer_version(LayerName="persisted", VersionNumber=1)
        assert got["Content"]["CodeSha256"] == lv["Content"]["CodeSha256"]
        with urllib.request.urlopen(got["Content"]["Location"]) as r:
            assert len(r.read()) == lv["Content"]["CodeSize"]
        policy = json.loads(lam.get_layer_version_policy(LayerName="persisted", VersionNumber=1)["Policy"])
        assert [s["Sid"] for s in policy["Statement"]] == ["s"]
        assert call(lam, "uses-layer") == "persisted"
        assert publish(lam, "persisted", {"python/x.py": ""})["Version"] == 2
    finally:
        srv.stop()
