"""Accounts (issue 10 item 6): `lamina accounts` against a running server, isolation between
accounts, cross-account access through resource policies only, deletion."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from .conftest import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    LaminaServer,
    create_function,
    log_messages,
    make_zip,
    unique,
    wait_for_log,
)

ROOT_ACCOUNT = "123456789012"
CODE = "def handler(event, context):\n    return {'who': %r, 'arn': context.invoked_function_arn}\n"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaminaServer]:
    s = LaminaServer(tmp_path_factory.mktemp("accounts") / "data")
    s.start()
    yield s
    s.stop()


def accounts_cli(srv: LaminaServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAMINA_", "AWS_"))}
    return subprocess.run(
        [sys.executable, "-m", "lamina", "accounts", *args, "--data-dir", str(srv.data_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def create_account(srv: LaminaServer, name: str) -> dict[str, str]:
    r = accounts_cli(srv, "create", name, "--json")
    assert r.returncode == 0, r.stderr
    acc: dict[str, str] = json.loads(r.stdout)
    return acc


def client_of(srv: LaminaServer, acc: dict[str, str], service: str = "lambda") -> Any:
    return srv.client(
        service, aws_access_key_id=acc["access_key_id"], aws_secret_access_key=acc["secret_access_key"]
    )


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str, int]:
    err = exc.value.response
    return err["Error"]["Code"], err["Error"]["Message"], err["ResponseMetadata"]["HTTPStatusCode"]


def invoke_json(client: Any, name: str) -> Any:
    resp = client.invoke(FunctionName=name, Payload=b"{}")
    assert "FunctionError" not in resp, resp["Payload"].read()
    return json.load(resp["Payload"])


def test_create_list_and_use_an_account_on_a_running_server(srv: LaminaServer) -> None:
    acc = create_account(srv, "team-a")
    assert len(acc["account_id"]) == 12 and acc["account_id"].isdigit()
    assert acc["account_id"] != ROOT_ACCOUNT
    assert acc["access_key_id"].startswith("LKIA") and len(acc["secret_access_key"]) == 40
    path = srv.data_dir / "accounts.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # Works at once, without a restart: the server reads the file on the unknown key.
    lam_a = client_of(srv, acc)
    assert lam_a.list_functions()["Functions"] == []
    settings = lam_a.get_account_settings()
    assert settings["AccountLimit"]["ConcurrentExecutions"] == 1000
    listed = accounts_cli(srv, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)["Accounts"]
    assert [r["Name"] for r in rows][:1] == ["root"] and "team-a" in [r["Name"] for r in rows]
    assert acc["secret_access_key"] not in listed.stdout
    text = accounts_cli(srv, "list")
    assert acc["account_id"] in text.stdout and acc["secret_access_key"] not in text.stdout


def test_same_name_functions_in_two_accounts_are_independent(srv: LaminaServer) -> None:
    acc = create_account(srv, unique("twin"))
    root, lam_a = srv.client(), client_of(srv, acc)
    name = unique("same")
    create_function(root, CODE % "root", name=name, Environment={"Variables": {"WHO": "root"}})
    create_function(lam_a, CODE % "a", name=name, MemorySize=256)
    for c in (root, lam_a):
        c.get_waiter("function_active_v2").wait(FunctionName=name)
    root_cfg, a_cfg = root.get_function(FunctionName=name), lam_a.get_function(FunctionName=name)
    arn_of = f"arn:aws:lambda:{REGION}:%s:function:{name}"
    assert root_cfg["Configuration"]["FunctionArn"] == arn_of % ROOT_ACCOUNT
    assert a_cfg["Configuration"]["FunctionArn"] == arn_of % acc["account_id"]
    assert (root_cfg["Configuration"]["MemorySize"], a_cfg["Configuration"]["MemorySize"]) == (128, 256)
    assert "Environment" not in a_cfg["Configuration"]
    # Each runs its own code, in its own environments, and sees its own ARN.
    assert invoke_json(root, name) == {"who": "root", "arn": root_cfg["Configuration"]["FunctionArn"]}
    assert invoke_json(lam_a, name) == {"who": "a", "arn": a_cfg["Configuration"]["FunctionArn"]}
    # Concurrency, versions and deletion stay in their account.
    lam_a.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=5)
    assert "Concurrency" not in root.get_function(FunctionName=name)
    assert lam_a.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"] == 995
    assert root.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"] == 1000
    assert lam_a.publish_version(FunctionName=name)["Version"] == "1"
    versions = [v["Version"] for v in root.list_versions_by_function(FunctionName=name)["Versions"]]
    assert versions == ["$LATEST"]
    # Listings: each account sees only its own functions, log groups and metrics.
    assert [f["FunctionName"] for f in lam_a.list_functions()["Functions"]] == [name]
    assert name in [f["FunctionName"] for f in root.list_functions()["Functions"]]
    groups_a = [g["logGroupName"] for g in client_of(srv, acc, "logs").describe_log_groups()["logGroups"]]
    assert groups_a == [f"/aws/lambda/{name}"]
    lam_a.delete_function(FunctionName=name)
    assert invoke_json(root, name)["who"] == "root"
    with pytest.raises(ClientError) as exc:
        lam_a.get_function(FunctionName=name)
    code, message, _ = error_of(exc)
    assert code == "ResourceNotFoundException" and acc["account_id"] in message


def scrape_metrics(srv: LaminaServer, headers: dict[str, str]) -> str:
    req = urllib.request.Request(f"{srv.endpoint}/metrics", headers=headers)
    with urllib.request.urlopen(req, timeout=10) as r:
        return str(r.read().decode())


def invocations(text: str, name: str) -> dict[str, str]:
    """account_id (or "-") -> the lamina_invocations_total sample of function ``name``."""
    found = {}
    for line in text.splitlines():
        if line.startswith("lamina_invocations_total{") and f'function_name="{name}"' in line:
            account = line.split('account_id="', 1)[1].split('"', 1)[0] if "account_id=" in line else "-"
            found[account] = line.rsplit(" ", 1)[1]
    return found


def test_the_operators_metrics_token_sees_every_account_a_signer_its_own(srv: LaminaServer) -> None:
    acc = create_account(srv, unique("metrics"))
    root, lam_a = srv.client(), client_of(srv, acc)
    name = unique("counted")
    for client, times in ((root, 1), (lam_a, 2)):
        create_function(client, CODE % "x", name=name)
        client.get_waiter("function_active_v2").wait(FunctionName=name)
        for _ in range(times):
            invoke_json(client, name)
    token = (srv.data_dir / "metrics-token").read_text().strip()
    every = invocations(scrape_metrics(srv, {"Authorization": f"Bearer {token}"}), name)
    assert every == {ROOT_ACCOUNT: "1", acc["account_id"]: "2"}
    signed = AWSRequest(method="GET", url=f"{srv.endpoint}/metrics")
    credentials = Credentials(acc["access_key_id"], acc["secret_access_key"])
    SigV4Auth(credentials, "monitoring", REGION).add_auth(signed)
    assert invocations(scrape_metrics(srv, dict(signed.headers.items())), name) == {"-": "2"}


def test_layers_and_schedules_are_per_account(srv: LaminaServer) -> None:
    acc = create_account(srv, unique("layers"))
    root, lam_a = srv.client(), client_of(srv, acc)
    layer = unique("lay")
    content = {"ZipFile": make_zip({"python/x.py": ""})}
    published = lam_a.publish_layer_version(LayerName=layer, Content=content)
    assert f":{acc['account_id']}:layer:{layer}:1" in published["LayerVersionArn"]
    assert layer not in [entry["LayerName"] for entry in root.list_layers()["Layers"]]
    assert [entry["LayerName"] for entry in lam_a.list_layers()["Layers"]] == [layer]
    sched_a = client_of(srv, acc, "scheduler")
    assert sched_a.list_schedules()["Schedules"] == []


def test_cross_account_invoke_needs_the_owners_resource_policy(srv: LaminaServer) -> None:
    acc = create_account(srv, unique("caller"))
    root, lam_b = srv.client(), client_of(srv, acc)
    name = create_function(root, CODE % "owner")
    root.get_waiter("function_active_v2").wait(FunctionName=name)
    arn = f"arn:aws:lambda:{REGION}:{ROOT_ACCOUNT}:function:{name}"
    principal = f"arn:aws:iam::{acc['account_id']}:root"
    with pytest.raises(ClientError) as exc:
        lam_b.invoke(FunctionName=arn, Payload=b"{}")
    assert error_of(exc) == (
        "AccessDeniedException",
        f"User: {principal} is not authorized to perform: lambda:InvokeFunction on resource: {arn} "
        "because no resource-based policy allows the lambda:InvokeFunction action",
        403,
    )
    # A name alone is the caller's own namespace: B has no such function.
    with pytest.raises(ClientError) as exc:
        lam_b.invoke(FunctionName=name, Payload=b"{}")
    assert error_of(exc)[0] == "ResourceNotFoundException"
    root.add_permission(
        FunctionName=name, StatementId="xacct", Action="lambda:InvokeFunction", Principal=acc["account_id"]
    )
    assert invoke_json(lam_b, arn) == {"who": "owner", "arn": arn}
    # Only what the policy grants: reading the function or changing it stays denied.
    with pytest.raises(ClientError) as exc:
        lam_b.get_function(FunctionName=arn)
    code, message, status = error_of(exc)
    assert (code, status) == ("AccessDeniedException", 403) and "lambda:GetFunction" in message
    with pytest.raises(ClientError) as exc:
        lam_b.update_function_configuration(FunctionName=arn, MemorySize=512)
    assert error_of(exc)[0] == "AccessDeniedException"
    with pytest.raises(ClientError) as exc:
        lam_b.delete_function(FunctionName=arn)
    assert error_of(exc)[0] == "AccessDeniedException"
    assert root.get_function(FunctionName=name)["Configuration"]["MemorySize"] == 128
    # Another account, or a missing function of the owner: denied alike (nothing to probe).
    with pytest.raises(ClientError) as exc:
        lam_b.invoke(FunctionName=f"arn:aws:lambda:{REGION}:{ROOT_ACCOUNT}:function:nope", Payload=b"{}")
    assert error_of(exc)[0] == "AccessDeniedException"
    with pytest.raises(ClientError) as exc:
        lam_b.invoke(FunctionName=f"arn:aws:lambda:{REGION}:999999999999:function:{name}", Payload=b"{}")
    assert error_of(exc)[0] == "AccessDeniedException"
    # The grant can be taken back.
    root.remove_permission(FunctionName=name, StatementId="xacct")
    with pytest.raises(ClientError) as exc:
        lam_b.invoke(FunctionName=arn, Payload=b"{}")
    assert error_of(exc)[0] == "AccessDeniedException"


def test_invalid_names_are_rejected(srv: LaminaServer) -> None:
    for bad in ("bad name", "root", "ROOT", "_lead", "a.b", "x" * 65, ""):
        r = accounts_cli(srv, "create", bad)
        assert r.returncode != 0 and r.stderr.startswith("error: "), (bad, r.stdout, r.stderr)
        assert r.stdout == ""
    create_account(srv, "dupe")
    r = accounts_cli(srv, "create", "dupe")
    assert r.returncode == 1 and "already exists" in r.stderr
    r = accounts_cli(srv, "delete", "nobody", "--yes")
    assert r.returncode == 1 and "no account named 'nobody'" in r.stderr


def test_a_deleted_accounts_key_is_refused_and_its_resources_go(srv: LaminaServer) -> None:
    acc = create_account(srv, unique("gone"))
    lam_x = client_of(srv, acc)
    name = create_function(lam_x, CODE % "x")
    lam_x.get_waiter("function_active_v2").wait(FunctionName=name)
    home = srv.data_dir / "accounts" / acc["account_id"]
    assert (home / "lamina.sqlite3").exists()
    r = accounts_cli(srv, "delete", acc["name"], "--yes")
    assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + 10
    while True:
        try:
            lam_x.list_functions()
        except ClientError as exc:
            error = exc.response["Error"]
            assert error["Code"] == "UnrecognizedClientException"
            assert error["Message"] == "The security token included in the request is invalid."
            break
        assert time.monotonic() < deadline, "the deleted account's key still works"
        time.sleep(0.1)
    deadline = time.monotonic() + 10
    while home.exists():
        assert time.monotonic() < deadline, "the deleted account's data is still there"
        time.sleep(0.1)


def test_accounts_and_their_functions_survive_a_restart(tmp_path: Path) -> None:
    s = LaminaServer(tmp_path / "data")
    s.start()
    try:
        acc = create_account(s, "keeper")
        name = create_function(client_of(s, acc), CODE % "kept")
    finally:
        s.stop()
    orphan = s.data_dir / "accounts" / "111111111111"
    orphan.mkdir(parents=True)  # an account deleted while no server ran
    s.start()
    try:
        lam = client_of(s, acc)
        lam.get_waiter("function_active_v2").wait(FunctionName=name)
        assert invoke_json(lam, name)["who"] == "kept"
        assert name not in [f["FunctionName"] for f in s.client().list_functions()["Functions"]]
        assert not orphan.exists()
    finally:
        s.stop()


def test_another_accounts_layer_needs_its_layer_version_policy(srv: LaminaServer) -> None:
    acc = create_account(srv, unique("layeruser"))
    root, lam_b = srv.client(), client_of(srv, acc)
    layer = unique("shared")
    zipped = make_zip({"python/shared_mod.py": "VALUE = 'from the root account'\n"})
    arn = root.publish_layer_version(LayerName=layer, Content={"ZipFile": zipped})["LayerVersionArn"]
    assert f":{ROOT_ACCOUNT}:layer:{layer}:1" in arn
    code = "import shared_mod\ndef handler(e, c):\n    return shared_mod.VALUE\n"
    principal = f"arn:aws:iam::{acc['account_id']}:root"
    with pytest.raises(ClientError) as exc:
        lam_b.get_layer_version_by_arn(Arn=arn)
    assert error_of(exc) == (
        "AccessDeniedException",
        f"User: {principal} is not authorized to perform: lambda:GetLayerVersion on resource: {arn} "
        "because no resource-based policy allows the lambda:GetLayerVersion action",
        403,
    )
    with pytest.raises(ClientError) as exc:
        create_function(lam_b, code, Layers=[arn])
    assert error_of(exc)[0] == "AccessDeniedException"
    root.add_layer_version_permission(
        LayerName=layer,
        VersionNumber=1,
        StatementId="b",
        Action="lambda:GetLayerVersion",
        Principal=acc["account_id"],
    )
    got = lam_b.get_layer_version(LayerName=arn.rsplit(":", 1)[0], VersionNumber=1)
    assert got["LayerVersionArn"] == arn
    assert lam_b.get_layer_version_by_arn(Arn=arn)["LayerVersionArn"] == arn
    name = create_function(lam_b, code, Layers=[arn])
    lam_b.get_waiter("function_active_v2").wait(FunctionName=name)
    assert lam_b.get_function(FunctionName=name)["Configuration"]["Layers"][0]["Arn"] == arn
    assert invoke_json(lam_b, name) == "from the root account"
    # Reading is all the grant gives: B cannot delete or re-grant the root's layer.
    with pytest.raises(ClientError) as exc:
        lam_b.delete_layer_version(LayerName=arn.rsplit(":", 1)[0], VersionNumber=1)
    assert error_of(exc)[0] == "AccessDeniedException"
    assert layer not in [entry["LayerName"] for entry in lam_b.list_layers()["Layers"]]


def test_an_aws_iam_url_takes_another_account_only_with_a_grant(srv: LaminaServer) -> None:
    acc = create_account(srv, unique("urlcaller"))
    # A URL does not re-read the accounts file on an unknown key (the API does): the key's first
    # API request makes it known at once, as the poll would within half a second.
    client_of(srv, acc).list_functions()
    root = srv.client()
    code = (
        "import json\n"
        "def handler(e, c):\n    return {'statusCode': 200, 'body': json.dumps(e['requestContext'])}\n"
    )
    name = create_function(root, code)
    url = root.create_function_url_config(FunctionName=name, AuthType="AWS_IAM")["FunctionUrl"]
    root.get_waiter("function_active_v2").wait(FunctionName=name)

    def call(key: str, secret: str) -> tuple[int, bytes]:
        req = AWSRequest(method="GET", url=url, data=b"")
        SigV4Auth(Credentials(key, secret), "lambda", REGION).add_auth(req)
        try:
            with urllib.request.urlopen(
                urllib.request.Request(url, headers=dict(req.headers.items())), timeout=60
            ) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    status, body = call(ACCESS_KEY, SECRET_KEY)  # the owner
    assert status == 200 and json.loads(body)["authorizer"]["iam"]["accountId"] == ROOT_ACCOUNT
    status, body = call(acc["access_key_id"], acc["secret_access_key"])
    assert status == 403 and b"Forbidden" in body
    root.add_permission(
        FunctionName=name,
        StatementId="b-url",
        Action="lambda:InvokeFunctionUrl",
        Principal=acc["account_id"],
        FunctionUrlAuthType="AWS_IAM",
    )
    status, body = call(acc["access_key_id"], acc["secret_access_key"])
    assert status == 200, body
    iam = json.loads(body)["authorizer"]["iam"]
    assert (iam["accountId"], iam["userArn"]) == (acc["account_id"], f"arn:aws:iam::{acc['account_id']}:root")


def test_async_invokes_run_and_log_in_their_own_account(srv: LaminaServer) -> None:
    acc = create_account(srv, unique("async"))
    root, lam_a = srv.client(), client_of(srv, acc)
    name = unique("ev")
    code = "def handler(e, c):\n    print('event for', c.invoked_function_arn)\n"
    for client in (root, lam_a):
        create_function(client, code, name=name)
        client.get_waiter("function_active_v2").wait(FunctionName=name)
    assert lam_a.invoke(FunctionName=name, InvocationType="Event", Payload=b"{}")["StatusCode"] == 202
    logs_a, group = client_of(srv, acc, "logs"), f"/aws/lambda/{name}"
    a_arn = f"arn:aws:lambda:{REGION}:{acc['account_id']}:function:{name}"

    def logged() -> bool:
        try:
            return bool(logs_a.filter_log_events(logGroupName=group, filterPattern=f'"{a_arn}"')["events"])
        except ClientError as exc:  # the group appears with the event's first log lines
            assert exc.response["Error"]["Code"] == "ResourceNotFoundException"
            return False

    deadline = time.monotonic() + 30
    while not logged():
        assert time.monotonic() < deadline, "the event did not run in its account"
        time.sleep(0.2)
    with pytest.raises(ClientError) as exc:  # the root's function of that name never ran
        srv.client("logs").filter_log_events(logGroupName=group)
    assert error_of(exc)[0] == "ResourceNotFoundException"


def until(predicate: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_a_destination_in_another_account_needs_its_resource_policy(srv: LaminaServer) -> None:
    """AWS's cross-account destinations: another account's function receives the record only once
    its resource policy lets the source account invoke it; until then the delivery is refused
    and retried, never lost."""
    acc = create_account(srv, unique("dest"))
    root, lam_a = srv.client(), client_of(srv, acc)
    target = create_function(root, "import json\ndef handler(e, c):\n    print('RECORD ' + json.dumps(e))\n")
    source = create_function(lam_a, CODE % "source")
    target_arn = f"arn:aws:lambda:{REGION}:{ROOT_ACCOUNT}:function:{target}"
    lam_a.put_function_event_invoke_config(
        FunctionName=source, DestinationConfig={"OnSuccess": {"Destination": target_arn}}
    )
    out = lam_a.invoke(FunctionName=source, InvocationType="Event", Payload=b'{"n": 1}')
    request_id = out["ResponseMetadata"]["RequestId"]
    until(
        lambda: any(
            "destination delivery failed" in line and target_arn in line and "AccessDeniedException" in line
            for line in srv.logs_text().splitlines()
        ),
        "the refused delivery to be logged",
    )
    assert not any(request_id in m for m in log_messages(srv.data_dir, f"/aws/lambda/{target}"))
    root.add_permission(
        FunctionName=target, StatementId="from-a", Action="lambda:InvokeFunction", Principal=acc["account_id"]
    )
    messages = wait_for_log(srv.data_dir, f"/aws/lambda/{target}", request_id)
    record = json.loads(next(m for m in messages if m.startswith("RECORD "))[len("RECORD ") :])
    assert record["requestContext"]["requestId"] == request_id
    assert record["requestContext"]["functionArn"].startswith(
        f"arn:aws:lambda:{REGION}:{acc['account_id']}:function:{source}"
    )
    assert record["requestPayload"] == {"n": 1}
