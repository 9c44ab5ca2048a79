"""The client verbs' pure parts: packaging, vendoring, option parsing, credentials, rendering.

Nothing here talks to a lamina server; the verbs against a real server are integration tests.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shlex
import socket
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import click
import pytest
from botocore.exceptions import WaiterError
from botocore.response import StreamingBody
from botocore.stub import Stubber
from click.testing import CliRunner

from lamina.cli.client import (
    CliError,
    Connection,
    DeploySpec,
    ResolvedCredentials,
    config_update_params,
    create_params,
    decode_log_tail,
    deploy_function,
    export_lines,
    format_last_modified,
    format_table,
    parse_env_pairs,
    read_payload,
    register_client_commands,
    render_payload,
    resolve_credentials,
    waiter_failure,
)
from lamina.cli.packaging import (
    Package,
    PackagingError,
    build_zip,
    code_sha256,
    collect_files,
    human_size,
    package_directory,
)

ENV_VARS = (
    "LAMINA_ACCESS_KEY_ID",
    "LAMINA_SECRET_ACCESS_KEY",
    "LAMINA_ENDPOINT_URL",
    "LAMINA_DATA_DIR",
    "LAMINA_ACCOUNT_ID",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def cli() -> click.Group:
    # Not lamina.cli.main: the client verbs must work without importing the server.
    group = click.Group("lamina")
    register_client_commands(group)
    return group


def write_tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def zip_names(data: bytes) -> list[str]:
    return zipfile.ZipFile(io.BytesIO(data)).namelist()


def write_credentials(data_dir: Path, key: str = "AKIDFILE", secret: str = "file-secret") -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "credentials.json"
    path.write_text(json.dumps({"access_key_id": key, "secret_access_key": secret}))
    return path


# --- deterministic zip ------------------------------------------------------------------------


def test_same_tree_gives_same_bytes_whatever_the_mtimes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_tree(src, {"app.py": "def handler(e, c): return e\n", "lib/util.py": "X = 1\n"})
    first = build_zip(collect_files(src))
    for path in src.rglob("*"):
        os.utime(path, (1_000_000, 1_000_000))
    second = build_zip(collect_files(src))
    assert first == second
    assert code_sha256(first) == base64.b64encode(hashlib.sha256(second).digest()).decode()
    assert zip_names(first) == ["app.py", "lib/util.py"]


def test_entries_are_sorted_and_timestamps_fixed(tmp_path: Path) -> None:
    write_tree(tmp_path, {"b.py": "", "a/z.py": "", "a/b.py": "", "C.txt": ""})
    data = build_zip(collect_files(tmp_path))
    infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    assert [i.filename for i in infos] == ["C.txt", "a/b.py", "a/z.py", "b.py"]
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}


def test_skips_pycache_git_and_pyc(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "app.py": "",
            "stale.pyc": "",
            "__pycache__/app.cpython-311.pyc": "",
            "pkg/__pycache__/mod.cpython-311.pyc": "",
            "pkg/mod.py": "",
            ".git/config": "",
            ".gitignore": "",
        },
    )
    assert sorted(collect_files(tmp_path)) == [".gitignore", "app.py", "pkg/mod.py"]


def test_executable_bit_is_kept_and_modes_normalised(tmp_path: Path) -> None:
    write_tree(tmp_path, {"run.sh": "#!/bin/sh\n", "app.py": ""})
    (tmp_path / "run.sh").chmod(0o700)
    (tmp_path / "app.py").chmod(0o600)
    infos = {
        i.filename: i for i in zipfile.ZipFile(io.BytesIO(build_zip(collect_files(tmp_path)))).infolist()
    }
    assert infos["run.sh"].external_attr >> 16 & 0o777 == 0o755
    assert infos["app.py"].external_attr >> 16 & 0o777 == 0o644


def test_symlinks_are_stored_as_files_and_cycles_end(tmp_path: Path) -> None:
    outside = tmp_path / "outside.py"
    outside.write_text("SHARED = True\n")
    src = tmp_path / "src"
    write_tree(src, {"app.py": "", "pkg/mod.py": ""})
    (src / "shared.py").symlink_to(outside)
    (src / "pkg" / "loop").symlink_to(src / "pkg")
    data = build_zip(collect_files(src))
    zf = zipfile.ZipFile(io.BytesIO(data))
    assert sorted(zf.namelist()) == ["app.py", "pkg/mod.py", "shared.py"]
    assert zf.read("shared.py") == b"SHARED = True\n"


def test_broken_symlink_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "gone.py").symlink_to(tmp_path / "missing.py")
    with pytest.raises(PackagingError, match="broken symlink"):
        collect_files(tmp_path)


def test_excluded_dir_is_left_out(tmp_path: Path) -> None:
    write_tree(tmp_path, {"app.py": "", ".lamina/lamina.sqlite3": "", ".lamina/credentials.json": ""})
    assert list(collect_files(tmp_path, exclude=[tmp_path / ".lamina"])) == ["app.py"]


def test_empty_directory_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    with pytest.raises(PackagingError, match="nothing to package"):
        package_directory(tmp_path / "src", tmp_path / "build")


def test_human_size() -> None:
    assert human_size(512) == "512 B"
    assert human_size(1536) == "1.5 KB"
    assert human_size(int(1.2 * 1024 * 1024)) == "1.2 MB"


# --- vendoring --------------------------------------------------------------------------------


def make_wheel(dest: Path) -> Path:
    """A minimal pure-Python wheel, built by hand so pip needs neither network nor a backend."""
    dist = "tinypkg-1.0.dist-info"
    files = {
        "tinypkg/__init__.py": b"VALUE = 42\n",
        f"{dist}/METADATA": b"Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n",
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, body in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(body)}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    dest.mkdir(parents=True, exist_ok=True)
    wheel = dest / "tinypkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, body in files.items():
            zf.writestr(name, body)
    return wheel


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_requirements_are_vendored_into_the_zip_without_touching_the_source(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "wheels")
    src = tmp_path / "src"
    write_tree(
        src,
        {
            "app.py": "import tinypkg\ndef handler(e, c): return tinypkg.VALUE\n",
            "requirements.txt": f"--no-index\n{wheel}\n",
        },
    )
    before = snapshot(src)
    messages: list[str] = []

    first = package_directory(src, tmp_path / "build1", progress=messages.append)
    second = package_directory(src, tmp_path / "build2")

    names = zip_names(first.data)
    assert {"app.py", "requirements.txt", "tinypkg/__init__.py"} <= set(names)
    assert any(n.startswith("tinypkg-1.0.dist-info/") for n in names)
    assert snapshot(src) == before
    assert messages[0] == "Vendoring requirements…"
    assert first.code_sha256 == second.code_sha256


def test_vendoring_failure_shows_pips_output(tmp_path: Path) -> None:
    write_tree(tmp_path / "src", {"app.py": "", "requirements.txt": "--no-index\nno-such-package-xyz\n"})
    with pytest.raises(PackagingError) as info:
        package_directory(tmp_path / "src", tmp_path / "build")
    assert "pip install -r requirements.txt failed" in str(info.value)
    assert "no-such-package-xyz" in str(info.value)


# --- --env ------------------------------------------------------------------------------------


def test_parse_env_pairs() -> None:
    assert parse_env_pairs(["AA=1", "B_2=x=y", "EMPTY=", "AA=2"]) == {"AA": "2", "B_2": "x=y", "EMPTY": ""}
    assert parse_env_pairs([]) == {}


@pytest.mark.parametrize("bad", ["NOEQUALS", "=value"])
def test_parse_env_pairs_rejects_bad_forms(bad: str) -> None:
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_env_pairs([bad])


@pytest.mark.parametrize("bad", [" KEY=v", "1KEY=v", "A=v", "MY-KEY=v"])
def test_parse_env_pairs_rejects_names_lambda_refuses(bad: str) -> None:
    with pytest.raises(ValueError, match="not a valid variable name"):
        parse_env_pairs([bad])


def test_bad_env_is_a_usage_error(cli: click.Group, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("")
    result = CliRunner().invoke(cli, ["deploy", str(tmp_path), "--name", "f", "--env", "NOPE"])
    assert result.exit_code == 2
    assert "KEY=VALUE" in result.output


# --- credentials ------------------------------------------------------------------------------


def test_credentials_order(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    lamina_env = {"LAMINA_ACCESS_KEY_ID": "AKIDLAMINA", "LAMINA_SECRET_ACCESS_KEY": "s1"}
    aws_env = {"AWS_ACCESS_KEY_ID": "AKIDAWS", "AWS_SECRET_ACCESS_KEY": "s3"}

    assert resolve_credentials({}, data_dir) is None
    assert resolve_credentials(aws_env, data_dir) == ResolvedCredentials(
        "AKIDAWS", "s3", "environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"
    )
    path = write_credentials(data_dir)
    assert resolve_credentials(aws_env, data_dir) == ResolvedCredentials("AKIDFILE", "file-secret", str(path))
    creds = resolve_credentials({**aws_env, **lamina_env}, data_dir)
    assert creds is not None
    assert (creds.access_key_id, creds.secret_access_key) == ("AKIDLAMINA", "s1")


def test_half_a_lamina_pair_is_an_error(tmp_path: Path) -> None:
    write_credentials(tmp_path)
    with pytest.raises(CliError, match="LAMINA_SECRET_ACCESS_KEY is set"):
        resolve_credentials({"LAMINA_SECRET_ACCESS_KEY": "s"}, tmp_path)


def test_half_an_aws_pair_does_not_count(tmp_path: Path) -> None:
    assert resolve_credentials({"AWS_ACCESS_KEY_ID": "AKIDAWS"}, tmp_path) is None


def test_malformed_credentials_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "credentials.json").write_text('{"access_key_id": "only"}')
    with pytest.raises(CliError, match=r"credentials\.json must hold"):
        resolve_credentials({}, tmp_path)


def test_secret_is_not_in_repr() -> None:
    assert "hidden" not in repr(ResolvedCredentials("AKID", "hidden", "x"))


def test_credentials_verb_shows_key_not_secret(cli: click.Group, tmp_path: Path) -> None:
    path = write_credentials(tmp_path)
    result = CliRunner().invoke(cli, ["credentials", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "AKIDFILE" in result.stdout
    assert str(path.resolve()) in result.stdout
    assert "file-secret" not in result.output


def test_credentials_export_can_be_evaluated(cli: click.Group, tmp_path: Path) -> None:
    write_credentials(tmp_path, secret="with space'quote")
    result = CliRunner().invoke(
        cli,
        ["credentials", "--export", "--data-dir", str(tmp_path)],
        env={"LAMINA_ENDPOINT_URL": "http://127.0.0.1:9999", "AWS_REGION": "eu-west-1"},
    )
    assert result.exit_code == 0, result.output
    exported = dict(shlex.split(line)[1].split("=", 1) for line in result.stdout.splitlines())
    assert exported == {
        "AWS_ACCESS_KEY_ID": "AKIDFILE",
        "AWS_SECRET_ACCESS_KEY": "with space'quote",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9999",
    }


def test_export_lines_quote_values() -> None:
    lines = export_lines(
        ResolvedCredentials("AKID", "a$b", ""), Connection("http://h:1", "us-east-1", Path("."))
    )
    assert lines[1] == "export AWS_SECRET_ACCESS_KEY='a$b'"


def test_no_credentials_is_a_clear_error(cli: click.Group, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["ls", "--data-dir", str(tmp_path / "nowhere")])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no credentials found")
    assert "LAMINA_ACCESS_KEY_ID" in result.stderr
    assert "Traceback" not in result.output


# --- talking to a server that is not there -----------------------------------------------------


@pytest.fixture
def dead_endpoint() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("args", [["ls"], ["invoke", "f"], ["rm", "f", "--yes"]])
def test_unreachable_server_is_one_line(
    cli: click.Group, tmp_path: Path, dead_endpoint: str, args: list[str]
) -> None:
    write_credentials(tmp_path)
    result = CliRunner().invoke(cli, [*args, "--data-dir", str(tmp_path), "--endpoint-url", dead_endpoint])
    assert result.exit_code == 1
    assert result.stderr == f"error: cannot reach lamina at {dead_endpoint} — is `lamina serve` running?\n"


def test_invoke_rejects_non_json_payload_and_logs_with_async(cli: click.Group) -> None:
    assert CliRunner().invoke(cli, ["invoke", "f", "{not json"]).exit_code == 2
    assert CliRunner().invoke(cli, ["invoke", "f", "--async", "--logs"]).exit_code == 2


# --- request building -------------------------------------------------------------------------


def test_create_params_fill_defaults() -> None:
    params = create_params(DeploySpec(name="f"), b"zip", account_id="111122223333")
    assert params == {
        "FunctionName": "f",
        "Runtime": "python3.12",
        "Handler": "app.handler",
        "Role": "arn:aws:iam::111122223333:role/lamina",
        "MemorySize": 128,
        "Timeout": 3,
        "PackageType": "Zip",
        "Code": {"ZipFile": b"zip"},
    }


def test_config_update_sends_only_what_was_given() -> None:
    assert config_update_params(DeploySpec(name="f")) is None
    assert config_update_params(DeploySpec(name="f", memory_mb=256, environment={"AA": "1"})) == {
        "FunctionName": "f",
        "MemorySize": 256,
        "Environment": {"Variables": {"AA": "1"}},
    }


def stubbed_client() -> tuple[Any, Stubber]:
    client = botocore.session.Session().create_client(
        "lambda", region_name="us-east-1", aws_access_key_id="AKID", aws_secret_access_key="secret"
    )
    return client, Stubber(client)


ARN = "arn:aws:lambda:us-east-1:123456789012:function:f"


def test_deploy_creates_then_waits_for_active() -> None:
    client, stub = stubbed_client()
    package = Package(data=b"PK-zip", file_count=1)
    expected = create_params(DeploySpec(name="f", timeout_s=10), package.data, account_id="123456789012")
    stub.add_response("create_function", {"FunctionArn": ARN}, expected)
    stub.add_response("get_function", {"Configuration": {"State": "Active"}}, {"FunctionName": "f"})
    messages: list[str] = []
    with stub:
        arn = deploy_function(
            client,
            DeploySpec(name="f", timeout_s=10),
            package,
            exists=False,
            account_id="123456789012",
            progress=messages.append,
        )
    assert arn == ARN
    assert messages[-1] == f"Active: {ARN}"
    stub.assert_no_pending_responses()


def test_deploy_updates_code_then_configuration() -> None:
    client, stub = stubbed_client()
    updated = {"Configuration": {"LastUpdateStatus": "Successful"}}
    stub.add_response("update_function_code", {"FunctionArn": ARN}, {"FunctionName": "f", "ZipFile": b"z"})
    stub.add_response("get_function", updated, {"FunctionName": "f"})
    stub.add_response(
        "update_function_configuration", {"FunctionArn": ARN}, {"FunctionName": "f", "Handler": "m.h"}
    )
    stub.add_response("get_function", updated, {"FunctionName": "f"})
    with stub:
        arn = deploy_function(
            client,
            DeploySpec(name="f", handler="m.h"),
            Package(b"z", 1),
            exists=True,
            account_id="123456789012",
            progress=lambda _m: None,
        )
    assert arn == ARN
    stub.assert_no_pending_responses()


def test_deploy_update_without_options_skips_configuration() -> None:
    client, stub = stubbed_client()
    stub.add_response("update_function_code", {"FunctionArn": ARN}, {"FunctionName": "f", "ZipFile": b"z"})
    stub.add_response(
        "get_function", {"Configuration": {"LastUpdateStatus": "Successful"}}, {"FunctionName": "f"}
    )
    with stub:
        deploy_function(
            client,
            DeploySpec(name="f"),
            Package(b"z", 1),
            exists=True,
            account_id="123456789012",
            progress=lambda _m: None,
        )
    stub.assert_no_pending_responses()


def test_waiter_failure_reports_the_servers_reason() -> None:
    err = WaiterError(
        name="FunctionActiveV2",
        reason="terminal failure",
        last_response={
            "Configuration": {"StateReasonCode": "InvalidRuntime", "StateReason": "no python3.99"}
        },
    )
    assert waiter_failure(err) == "InvalidRuntime: no python3.99"
    timeout = WaiterError(
        name="FunctionUpdatedV2",
        reason="Max attempts exceeded",
        last_response={"Configuration": {"LastUpdateStatus": "InProgress"}},
    )
    assert waiter_failure(timeout).endswith("(last status: InProgress)")


# --- rendering --------------------------------------------------------------------------------


def test_read_payload(tmp_path: Path) -> None:
    assert read_payload("{}", lambda: "unused") == b"{}"
    assert read_payload("-", lambda: '{"a": 1}') == b'{"a": 1}'
    with pytest.raises(ValueError, match="not JSON"):
        read_payload("nope", lambda: "")


def test_render_payload() -> None:
    assert render_payload(b'{"b":1,"a":"\xc3\xa9"}') == '{\n  "b": 1,\n  "a": "é"\n}'
    assert render_payload(b"plain text") == b"plain text"


def test_decode_log_tail() -> None:
    assert decode_log_tail(base64.b64encode(b"START\nEND\n").decode()) == "START\nEND\n"
    assert decode_log_tail("!!!") == ""


def test_format_table() -> None:
    table = format_table(
        [
            {
                "FunctionName": "zeta",
                "Runtime": "python3.12",
                "MemorySize": 128,
                "Timeout": 3,
                "LastModified": "2024-05-01T12:00:00.000+0000",
                "State": "Active",
            },
            {"FunctionName": "alpha", "Runtime": "python3.11", "MemorySize": 1024, "Timeout": 900},
        ]
    )
    lines = table.splitlines()
    assert lines[0].split() == ["NAME", "RUNTIME", "MEMORY", "TIMEOUT", "LAST", "MODIFIED", "STATE"]
    assert lines[1].split() == ["alpha", "python3.11", "1024MB", "900s", "-", "-"]
    assert lines[2].split() == ["zeta", "python3.12", "128MB", "3s", "2024-05-01", "12:00:00", "Active"]


def test_format_last_modified_passes_unknown_text_through() -> None:
    assert format_last_modified("yesterday") == "yesterday"


# --- verbs wired to a stubbed client ------------------------------------------------------------


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Stubber]:
    """The verbs' client replaced by a botocore Stubber; credentials come from a data dir."""
    write_credentials(tmp_path)
    monkeypatch.setenv("LAMINA_DATA_DIR", str(tmp_path))
    client, stubber = stubbed_client()
    monkeypatch.setattr("lamina.cli.client.make_client", lambda *_a, **_k: client)
    with stubber:
        yield stubber
    stubber.assert_no_pending_responses()


def test_deploy_verb_creates_a_missing_function(cli: click.Group, stub: Stubber, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_tree(src, {"app.py": "def handler(e, c): return e\n"})
    stub.add_client_error("get_function", "ResourceNotFoundException", "Function not found", 404)
    stub.add_response("create_function", {"FunctionArn": ARN})
    stub.add_response("get_function", {"Configuration": {"State": "Active"}})
    result = CliRunner().invoke(cli, ["deploy", str(src), "--name", "f", "--env", "AA=1"])
    assert result.exit_code == 0, result.output
    assert result.stdout == ARN + "\n"
    assert "Creating f…" in result.stderr
    assert f"Active: {ARN}" in result.stderr


def test_server_error_is_one_line(cli: click.Group, stub: Stubber) -> None:
    stub.add_client_error("delete_function", "ResourceNotFoundException", "Function not found: f", 404)
    result = CliRunner().invoke(cli, ["rm", "f"])
    assert result.exit_code == 1
    assert result.stderr == "error: ResourceNotFoundException: Function not found: f\n"


def streaming(data: bytes) -> StreamingBody:
    return StreamingBody(io.BytesIO(data), len(data))


def test_invoke_prints_payload_and_log_tail(cli: click.Group, stub: Stubber) -> None:
    stub.add_response(
        "invoke",
        {
            "StatusCode": 200,
            "Payload": streaming(b'{"ok":true}'),
            "LogResult": base64.b64encode(b"START RequestId: 1\n").decode(),
        },
        {"FunctionName": "f", "Payload": b'{"x": 1}', "InvocationType": "RequestResponse", "LogType": "Tail"},
    )
    result = CliRunner().invoke(cli, ["invoke", "f", "-", "--logs"], input='{"x": 1}')
    assert result.exit_code == 0, result.output
    assert result.stdout == '{\n  "ok": true\n}\n'
    assert result.stderr == "START RequestId: 1\n"


def test_invoke_function_error_exits_1(cli: click.Group, stub: Stubber) -> None:
    error = b'{"errorMessage": "boom", "errorType": "Exception"}'
    stub.add_response(
        "invoke", {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": streaming(error)}
    )
    result = CliRunner().invoke(cli, ["invoke", "f"])
    assert result.exit_code == 1
    assert json.loads(result.stdout) == json.loads(error)
    assert result.stderr == "error: function f failed (Unhandled)\n"


def test_invoke_async_prints_status(cli: click.Group, stub: Stubber) -> None:
    stub.add_response(
        "invoke",
        {"StatusCode": 202, "Payload": streaming(b"")},
        {"FunctionName": "f", "Payload": b"{}", "InvocationType": "Event", "Qualifier": "1"},
    )
    result = CliRunner().invoke(cli, ["invoke", "f", "--async", "--qualifier", "1"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "202 Accepted\n"


def test_ls_paginates_and_fills_missing_state(cli: click.Group, stub: Stubber) -> None:
    fn = {"FunctionName": "a", "Runtime": "python3.12", "MemorySize": 128, "Timeout": 3}
    stub.add_response("list_functions", {"Functions": [fn], "NextMarker": "m"})
    stub.add_response("list_functions", {"Functions": [{**fn, "FunctionName": "b", "State": "Active"}]})
    stub.add_response("get_function_configuration", {"State": "Pending"}, {"FunctionName": "a"})
    result = CliRunner().invoke(cli, ["ls"])
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    assert [(r[0], r[-1]) for r in rows] == [("a", "Pending"), ("b", "Active")]


def test_events_table_shows_each_group_and_why() -> None:
    from lamina.cli.events import format_events

    now = 1000.0
    view = {
        "queued": [
            {
                "RequestId": "q1",
                "ReceivedAt": 990.0,
                "Attempts": 0,
                "NextAttemptAt": None,
                "LastErrorType": "Throttled",
                "LastErrorMessage": "ReservedFunctionConcurrentInvocationLimitExceeded",
            }
        ],
        "in_flight": [{"RequestId": "i1", "ReceivedAt": 999.0, "Attempts": 1, "NextAttemptAt": None}],
        "retrying": [
            {
                "RequestId": "r1",
                "ReceivedAt": 700.0,
                "Attempts": 1,
                "NextAttemptAt": 1060.0,
                "LastErrorType": "ValueError",
                "LastErrorMessage": "boom\nline two",
            }
        ],
        "failed": [
            {
                "RequestId": "f1",
                "ReceivedAt": 0.0,
                "Attempts": 3,
                "Condition": "RetriesExhausted",
                "ErrorType": "ValueError",
                "ErrorMessage": "bad",
            }
        ],
        "counts": {"queued": 1, "in_flight": 1, "retrying": 1, "failed": 1},
    }
    lines = format_events(view, now).splitlines()
    assert lines[0].split() == ["REQUEST", "ID", "STATE", "ATTEMPTS", "AGE", "NEXT", "ATTEMPT", "/", "REASON"]
    assert lines[1].split()[:4] == ["q1", "queued", "0", "10s"] and "Throttled: Reserved" in lines[1]
    assert lines[2].split() == ["i1", "in-flight", "1", "1s", "-"]
    assert "next in 60s (ValueError: boom line two)" in lines[3] and "5m" in lines[3]
    assert "RetriesExhausted: ValueError: bad" in lines[4] and " 17m " in lines[4]
    assert lines[5] == "1 queued, 1 in-flight, 1 retrying, 1 failed"
    assert format_events({"counts": {}}, now) == "0 queued, 0 in-flight, 0 retrying, 0 failed"
