"""CloudWatch Logs on the real server: boto3's ``logs`` client, the aws CLI and ``lamina logs``."""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from .conftest import ACCESS_KEY, REGION, SECRET_KEY, LaminaServer, create_function, wait_for_log
from .test_cli import AWS, aws, cli_env, lamina

APP = """
import json
def handler(event, context):
    print("hello from", context.function_name)
    print(json.dumps({"level": event.get("level", "INFO"), "latency": event.get("latency", 1)}))
    if event.get("big"):
        print("B" * event["big"])
    return "ok"
"""
STREAM = re.compile(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}")


@pytest.fixture(scope="module")
def logs(server: LaminaServer) -> Any:
    return server.client("logs")


@pytest.fixture(scope="module")
def fn(server: LaminaServer, lam: Any) -> str:
    """A function invoked three times: INFO (1 ms), ERROR (150 ms), INFO (5 ms)."""
    name = create_function(lam, APP)
    lam.get_waiter("function_active_v2").wait(FunctionName=name)
    for event in ({}, {"level": "ERROR", "latency": 150}, {"latency": 5}):
        lam.invoke(FunctionName=name, Payload=json.dumps(event))
    wait_for_log(server.data_dir, f"/aws/lambda/{name}", '"latency": 5')
    return name


def error(call: Callable[[], Any]) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as info:
        call()
    resp = info.value.response
    return resp["Error"]["Code"], resp["ResponseMetadata"]["HTTPStatusCode"], resp["Error"]["Message"]


def test_function_logs_through_boto3(logs: Any, fn: str) -> None:
    group = f"/aws/lambda/{fn}"
    groups = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert [g["logGroupName"] for g in groups] == [group] and groups[0]["storedBytes"] > 0
    streams = logs.describe_log_streams(logGroupName=group, orderBy="LastEventTime", descending=True)
    stream = streams["logStreams"][0]["logStreamName"]
    assert STREAM.fullmatch(stream)
    head = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True, limit=3)
    assert head["events"][0]["message"].startswith(("INIT_START", "START RequestId: "))
    # follow the forward tokens to the end: the same token comes back when there is nothing more
    token, seen = head["nextForwardToken"], [e["message"] for e in head["events"]]
    for _ in range(50):
        page = logs.get_log_events(logGroupName=group, logStreamName=stream, nextToken=token, limit=3)
        seen += [e["message"] for e in page["events"]]
        if page["nextForwardToken"] == token:
            break
        token = page["nextForwardToken"]
    assert sum(m.startswith("REPORT RequestId: ") for m in seen) == 3
    assert sum(m.startswith("hello from") for m in seen) == 3
    errors = logs.filter_log_events(logGroupName=group, filterPattern='{ $.level = "ERROR" }')["events"]
    assert [json.loads(e["message"])["latency"] for e in errors] == [150]
    assert errors[0]["logStreamName"] == stream
    slow = logs.filter_log_events(logGroupName=group, filterPattern="{ $.latency > 1 }")["events"]
    assert [json.loads(e["message"])["latency"] for e in slow] == [150, 5]
    paginator = logs.get_paginator("filter_log_events")
    pages = list(
        paginator.paginate(logGroupName=group, filterPattern="?REPORT ?END", PaginationConfig={"PageSize": 2})
    )
    messages = [e["message"] for p in pages for e in p["events"]]
    assert len(messages) == 6 and len(pages) >= 3
    assert logs.filter_log_events(logGroupName=group, filterPattern='"hello from" -hello')["events"] == []


def test_errors_are_aws_shaped(logs: Any) -> None:
    assert error(lambda: logs.filter_log_events(logGroupName="/aws/lambda/nope")) == (
        "ResourceNotFoundException",
        400,
        "The specified log group does not exist.",
    )
    logs.create_log_group(logGroupName="/lamina/test/errors")
    assert error(lambda: logs.create_log_group(logGroupName="/lamina/test/errors"))[:2] == (
        "ResourceAlreadyExistsException",
        400,
    )
    code, status, message = error(
        lambda: logs.put_retention_policy(logGroupName="/lamina/test/errors", retentionInDays=2)
    )
    assert (code, status) == ("InvalidParameterException", 400) and "enum value set: [1, 3, 5" in message
    assert error(lambda: logs.describe_log_streams(logGroupName="/lamina/test/errors", orderBy="Sideways"))[
        0
    ] == ("InvalidParameterException")
    assert error(
        lambda: logs.filter_log_events(logGroupName="/lamina/test/errors", filterPattern="{ $.a > }")
    )[0] == ("InvalidParameterException")
    assert error(lambda: logs.get_log_events(logGroupName="/lamina/test/errors", logStreamName="s"))[0] == (
        "ResourceNotFoundException"
    )
    assert error(lambda: logs.describe_metric_filters())[:2] == ("NotImplementedException", 501)
    logs.delete_log_group(logGroupName="/lamina/test/errors")
    assert (
        error(lambda: logs.delete_log_group(logGroupName="/lamina/test/errors"))[0]
        == "ResourceNotFoundException"
    )


def test_retention_policy_deletes_old_events(logs: Any) -> None:
    group, now = "/lamina/test/retention", int(time.time() * 1000)
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    for age_days, text in ((5, "five days old"), (2, "two days old"), (0, "fresh")):
        logs.put_log_events(
            logGroupName=group,
            logStreamName="s",
            logEvents=[{"timestamp": now - age_days * 86_400_000, "message": text}],
        )
    logs.put_retention_policy(logGroupName=group, retentionInDays=3)
    assert logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"][0]["retentionInDays"] == 3
    kept = [
        e["message"]
        for e in logs.get_log_events(logGroupName=group, logStreamName="s", startFromHead=True)["events"]
    ]
    assert kept == ["two days old", "fresh"]
    logs.put_retention_policy(logGroupName=group, retentionInDays=1)
    assert [e["message"] for e in logs.filter_log_events(logGroupName=group)["events"]] == ["fresh"]
    logs.delete_retention_policy(logGroupName=group)
    assert "retentionInDays" not in logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"][0]


def test_long_lines_are_split(server: LaminaServer, lam: Any, logs: Any, fn: str) -> None:
    lam.invoke(FunctionName=fn, Payload=json.dumps({"big": 600_000}))
    group = f"/aws/lambda/{fn}"
    wait_for_log(server.data_dir, group, "B" * 1000)
    pieces = logs.filter_log_events(logGroupName=group, filterPattern="BBBBBBBB")["events"]
    assert [len(e["message"]) for e in pieces] == [262_118, 262_118, 600_000 - 2 * 262_118]


def test_aws_cli_logs(server: LaminaServer, fn: str) -> None:
    if not Path(AWS).exists():
        pytest.skip("aws CLI not installed in this environment")
    group = f"/aws/lambda/{fn}"
    r = aws(server, "logs", "describe-log-groups", "--log-group-name-prefix", group)
    assert r.returncode == 0, r.stderr
    assert [g["logGroupName"] for g in json.loads(r.stdout)["logGroups"]] == [group]
    r = aws(
        server,
        "logs",
        "filter-log-events",
        "--log-group-name",
        group,
        "--filter-pattern",
        '{ $.level = "ERROR" }',
    )
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["events"]) == 1
    r = aws(server, "logs", "put-retention-policy", "--log-group-name", group, "--retention-in-days", "4")
    assert r.returncode != 0 and "InvalidParameterException" in r.stderr


def test_lamina_logs_verb(server: LaminaServer, fn: str) -> None:
    r = lamina(server, "logs", fn, "--since", "1h")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert sum("REPORT RequestId: " in line for line in lines) >= 3
    assert "\x1b[" not in r.stdout  # not a terminal: no colours
    start = next(ln for ln in lines if " START " in ln)
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z START RequestId: ", start)
    r = lamina(server, "logs", fn, "--since", "1h", "--filter", "{ $.latency > 100 }")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 1 and '"latency": 150' in r.stdout
    r = lamina(server, "logs", "no-such-function")
    assert r.returncode == 1 and "log group /aws/lambda/no-such-function does not exist" in r.stderr


def test_lamina_logs_reads_a_custom_log_group(server: LaminaServer, lam: Any) -> None:
    name = create_function(
        lam,
        "def handler(e, c):\n    print('to my own group')\n",
        LoggingConfig={"LogFormat": "Text", "LogGroup": "/custom/team-logs"},
    )
    lam.invoke(FunctionName=name)
    wait_for_log(server.data_dir, "/custom/team-logs", "to my own group")
    r = lamina(server, "logs", name, "--since", "1h")
    assert r.returncode == 0, r.stderr
    assert "to my own group" in r.stdout


def _lines(proc: subprocess.Popen[str]) -> Iterator[str]:
    assert proc.stdout is not None
    yield from proc.stdout


def test_lamina_logs_follow(server: LaminaServer, lam: Any, fn: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lamina", "logs", fn, "--follow", "--since", "1h", "--interval", "0.2"],
        env=cli_env(server),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    got: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [got.put(line) for line in _lines(proc)], daemon=True).start()

    def wait_for(text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if text in got.get(timeout=max(deadline - time.monotonic(), 0.01)):
                    return
            except queue.Empty:
                raise AssertionError(f"{text!r} never printed by lamina logs --follow") from None

    try:
        wait_for('"latency": 150')  # history first
        lam.invoke(FunctionName=fn, Payload=json.dumps({"latency": 4242}))
        wait_for('"latency": 4242')  # then what happens next
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture(scope="module")
def tight_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaminaServer]:
    """A server with a small log rate (64 KB/s a function) and size bound (256 KB a function)."""
    srv = LaminaServer(
        tmp_path_factory.mktemp("tight") / "data",
        extra_env={"LAMINA_LOG_RATE_KB": "64", "LAMINA_LOG_MAX_MB": "0.25"},
    )
    srv.start()
    yield srv
    srv.stop()


def test_flooding_function_is_capped_and_counted(tight_server: LaminaServer) -> None:
    lam, logs = tight_server.client(), tight_server.client("logs")
    flood = create_function(
        lam, "def handler(e, c):\n    for i in range(30000):\n        print('x' * 100, i)\n"
    )
    quiet = create_function(lam, "def handler(e, c):\n    print('quiet one here')\n")
    for name in (flood, quiet):
        lam.get_waiter("function_active_v2").wait(FunctionName=name)
    assert lam.invoke(FunctionName=flood)["StatusCode"] == 200
    assert lam.invoke(FunctionName=quiet)["StatusCode"] == 200
    wait_for_log(tight_server.data_dir, f"/aws/lambda/{flood}", "LOGS_DROPPED DroppedRecords: ")
    wait_for_log(tight_server.data_dir, f"/aws/lambda/{quiet}", "quiet one here")  # the neighbour is intact
    dropped = logs.filter_log_events(logGroupName=f"/aws/lambda/{flood}", filterPattern="LOGS_DROPPED")[
        "events"
    ]
    count = int(re.search(r"DroppedRecords: (\d+)", dropped[0]["message"]).group(1))  # type: ignore[union-attr]
    assert count > 25_000  # ~3.5 MB offered against a 128 KB burst + 64 KB/s
    group = logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{flood}")["logGroups"][0]
    assert group["storedBytes"] <= 256 * 1024


def _signed_logs_call(server: LaminaServer, target: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    """A raw json-protocol request, SigV4-signed for ``logs`` (what botocore cannot be made to send)."""
    headers = {"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"}
    request = AWSRequest(method="POST", url=server.endpoint + "/", data=body, headers=headers)
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "logs", REGION).add_auth(request)
    req = urllib.request.Request(server.endpoint + "/", data=body, headers=dict(request.headers.items()))
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


@pytest.mark.parametrize(
    ("target", "body", "code"),
    [
        ("Logs_20140328.NoSuchThing", b"{}", "UnknownOperationException"),
        ("Logs_20140328.DescribeLogGroups", b"{not json", "SerializationException"),
        ("Logs_20140328.DescribeLogGroups", b"[1]", "SerializationException"),
        ("Logs_20140328.DescribeLogGroups", b'{"limit": "ten"}', "SerializationException"),
        ("Logs_20140328.CreateLogGroup", b"{}", "InvalidParameterException"),
    ],
)
def test_malformed_requests_get_json_protocol_errors(
    server: LaminaServer, target: str, body: bytes, code: str
) -> None:
    status, headers, out = _signed_logs_call(server, target, body)
    assert status == 400
    assert headers["content-type"] == "application/x-amz-json-1.1"
    doc = json.loads(out)
    assert doc["__type"] == code and doc["message"]


def test_ok_response_is_json_1_1(server: LaminaServer) -> None:
    status, headers, out = _signed_logs_call(server, "Logs_20140328.DescribeLogGroups", b'{"limit": 1}')
    assert status == 200 and headers["content-type"] == "application/x-amz-json-1.1"
    assert "logGroups" in json.loads(out)
