"""The aws CLI and the lamina client verbs against the real server."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import ACCESS_KEY, REGION, ROLE, SECRET_KEY, make_zip, unique

AWS = str(Path(sys.executable).parent / "aws")


def cli_env(server: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LAMINA_"))}
    env.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        LAMINA_ACCESS_KEY_ID=ACCESS_KEY,
        LAMINA_SECRET_ACCESS_KEY=SECRET_KEY,
        LAMINA_ENDPOINT_URL=server.endpoint,
    )
    return env


def aws(server: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AWS, "--endpoint-url", server.endpoint, *args],
        env=cli_env(server),
        capture_output=True,
        text=True,
        timeout=120,
    )


def lamina(server: Any, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lamina", *args],
        env=cli_env(server),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_aws_cli_create_wait_invoke(server: Any, tmp_path: Path) -> None:
    if not Path(AWS).exists():
        pytest.skip("aws CLI not installed in this environment")
    name = unique("cli")
    zip_path = tmp_path / "fn.zip"
    zip_path.write_bytes(
        make_zip({"app.py": "def handler(e, c):\n    print('hi from cli')\n    return {'got': e}\n"})
    )
    r = aws(
        server,
        "lambda",
        "create-function",
        "--function-name",
        name,
        "--runtime",
        "python3.11",
        "--handler",
        "app.handler",
        "--zip-file",
        f"fileb://{zip_path}",
        "--role",
        ROLE,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["FunctionName"] == name
    r = aws(server, "lambda", "wait", "function-active-v2", "--function-name", name)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out.json"
    r = aws(
        server,
        "lambda",
        "invoke",
        "--function-name",
        name,  # aws CLI v1: the payload is sent raw
        "--payload",
        '{"x": 1}',
        "--log-type",
        "Tail",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    meta = json.loads(r.stdout)
    assert meta["StatusCode"] == 200 and meta["ExecutedVersion"] == "$LATEST"
    assert "hi from cli" in base64.b64decode(meta["LogResult"]).decode()
    assert json.loads(out.read_text()) == {"got": {"x": 1}}
    r = aws(server, "lambda", "list-functions", "--query", "Functions[].FunctionName")
    assert name in json.loads(r.stdout)
    r = aws(server, "lambda", "get-function", "--function-name", "nope-" + name)
    assert r.returncode != 0 and "ResourceNotFoundException" in r.stderr
    r = aws(server, "lambda", "delete-function", "--function-name", name)
    assert r.returncode == 0, r.stderr


def test_lamina_deploy_invoke_ls_rm(server: Any, tmp_path: Path) -> None:
    name = unique("verb")
    src = tmp_path / "fn"
    src.mkdir()
    (src / "app.py").write_text(
        "import os\ndef handler(e, c):\n    print('log line')\n"
        "    return {'stage': os.environ['STAGE'], 'e': e}\n"
    )
    r = lamina(server, "deploy", str(src), "--name", name, "--runtime", "python3.11", "--env", "STAGE=dev")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith(f"function:{name}")
    r = lamina(server, "invoke", name, '{"a": 1}', "--logs")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"stage": "dev", "e": {"a": 1}}
    assert "log line" in r.stderr and "REPORT RequestId" in r.stderr
    r = lamina(server, "invoke", name, "-", stdin='{"b": 2}')
    assert json.loads(r.stdout)["e"] == {"b": 2}
    # redeploy updates in place
    (src / "app.py").write_text("def handler(e, c):\n    raise ValueError('v2 fails')\n")
    r = lamina(server, "deploy", str(src), "--name", name)
    assert r.returncode == 0, r.stderr
    r = lamina(server, "invoke", name)
    assert r.returncode == 1 and "v2 fails" in r.stdout
    r = lamina(server, "ls", "--json")
    assert r.returncode == 0 and name in r.stdout
    r = lamina(server, "rm", name, "--yes")
    assert r.returncode == 0, r.stderr
    r = lamina(server, "rm", name, "--yes")
    assert r.returncode == 1 and "ResourceNotFoundException" in r.stderr


def test_lamina_cli_unreachable(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LAMINA_"))}
    env.update(LAMINA_ACCESS_KEY_ID=ACCESS_KEY, LAMINA_SECRET_ACCESS_KEY=SECRET_KEY)
    r = subprocess.run(
        [sys.executable, "-m", "lamina", "ls", "--endpoint-url", "http://127.0.0.1:9"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1
    assert "cannot reach lamina" in r.stderr and "Traceback" not in r.stderr


def test_invoke_zip_with_package_dir(lam: Any) -> None:
    name = unique()
    files = {"pkg/__init__.py": "", "pkg/mod.py": "def handler(e, c):\n    return 'nested'\n"}
    lam.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="pkg/mod.handler",
        Code={"ZipFile": make_zip(files)},
    )
    assert json.loads(lam.invoke(FunctionName=name)["Payload"].read()) == "nested"


def test_lamina_publish_alias_deploy_publish(server: Any, lam: Any, tmp_path: Path) -> None:
    name = unique("ver")
    src = tmp_path / "fn"
    src.mkdir()
    (src / "app.py").write_text("def handler(e, c):\n    return c.function_version\n")
    r = lamina(server, "deploy", str(src), "--name", name, "--publish")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "1" and f"function:{name}:1" in r.stderr
    (src / "app.py").write_text("def handler(e, c):\n    return 'two:' + c.function_version\n")
    r = lamina(server, "deploy", str(src), "--name", name)
    assert r.returncode == 0, r.stderr
    r = lamina(server, "publish", name, "--description", "second")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "2"
    assert lam.get_function_configuration(FunctionName=name, Qualifier="2")["Description"] == "second"
    r = lamina(server, "alias", name, "live", "1", "--weight", "2=0.25", "--description", "canary")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"arn:aws:lambda:{REGION}:123456789012:function:{name}:live"
    got = lam.get_alias(FunctionName=name, Name="live")
    assert got["FunctionVersion"] == "1" and got["Description"] == "canary"
    assert got["RoutingConfig"] == {"AdditionalVersionWeights": {"2": 0.25}}
    # updating the alias without --weight points it at one version only
    r = lamina(server, "alias", name, "live", "2")
    assert r.returncode == 0, r.stderr
    got = lam.get_alias(FunctionName=name, Name="live")
    assert got["FunctionVersion"] == "2" and not got.get("RoutingConfig", {}).get("AdditionalVersionWeights")
    r = lamina(server, "invoke", name, "--qualifier", "live")
    assert json.loads(r.stdout) == "two:2"
    # errors are one line
    r = lamina(server, "alias", name, "live", "9")
    assert r.returncode == 1 and r.stderr.startswith("error: ResourceNotFoundException")
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    r = lamina(server, "publish", "nope-" + name)
    assert r.returncode == 1 and r.stderr.startswith("error: ResourceNotFoundException")
    r = lamina(server, "alias", name, "live", "1", "--weight", "2=7")
    assert r.returncode == 2 and "between 0 and 1" in r.stderr
    lam.delete_function(FunctionName=name)


def test_lamina_runtimes_lists_what_the_host_has() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LAMINA_"))}
    env["LAMINA_PYTHON_3_13"] = "/nonexistent/python3.13"
    r = subprocess.run(
        [sys.executable, "-m", "lamina", "runtimes", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    found = json.loads(r.stdout)
    assert "python3.13" not in found  # a broken override is not a runtime
    assert Path(found["python3.11"]).exists()
    text = subprocess.run(
        [sys.executable, "-m", "lamina", "runtimes"], env=env, capture_output=True, text=True, timeout=120
    ).stdout
    assert re.search(r"^python3\.13 +\(not on this host\)$", text, re.M), text
    assert re.search(r"^provided\.al2023 +the function's bootstrap", text, re.M), text
    env["LAMINA_NODEJS_22_X"] = "/nonexistent/node22"
    found = json.loads(
        subprocess.run(
            [sys.executable, "-m", "lamina", "runtimes", "--json"], env=env, capture_output=True, timeout=120
        ).stdout
    )
    assert "nodejs22.x" not in found and "provided.al2023" in found
