"""Event invoke configs and async retries through boto3 against the real server."""

from __future__ import annotations

import datetime
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from .conftest import LaminaServer, create_function, log_messages, unique, wait_for_log

ACCOUNT = "123456789012"
REGION = "us-east-1"
NOTHING_SET = "You must specify at least one of error handling or destination setting."


def arn(name: str, qualifier: str | None = None) -> str:
    base = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
    return f"{base}:{qualifier}" if qualifier else base


def error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    return exc.value.response["Error"]["Code"], exc.value.response["Error"]["Message"]


def test_put_get_update_delete_round_trip(lam: Any, create_fn: Any) -> None:
    name = create_fn("def handler(e, c):\n    return 1\n")
    before = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=5)
    out = lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1)
    assert out["FunctionArn"] == arn(name, "$LATEST")
    assert out["MaximumRetryAttempts"] == 1
    assert "MaximumEventAgeInSeconds" not in out
    assert out["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {}}
    assert isinstance(out["LastModified"], datetime.datetime) and out["LastModified"] > before

    got = lam.get_function_event_invoke_config(FunctionName=name)
    assert got["MaximumRetryAttempts"] == 1 and got["FunctionArn"] == arn(name, "$LATEST")

    # Update merges: the retry setting stays.
    target = arn(create_fn("def handler(e, c):\n    return 1\n"))
    upd = lam.update_function_event_invoke_config(
        FunctionName=name,
        MaximumEventAgeInSeconds=120,
        DestinationConfig={"OnFailure": {"Destination": target}},
    )
    assert upd["MaximumRetryAttempts"] == 1 and upd["MaximumEventAgeInSeconds"] == 120
    assert upd["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {"Destination": target}}

    # Put replaces: what it leaves out is removed.
    put = lam.put_function_event_invoke_config(FunctionName=name, MaximumEventAgeInSeconds=60)
    assert "MaximumRetryAttempts" not in put and put["DestinationConfig"] == {
        "OnSuccess": {},
        "OnFailure": {},
    }

    lam.delete_function_event_invoke_config(FunctionName=name)
    with pytest.raises(ClientError) as exc:
        lam.get_function_event_invoke_config(FunctionName=name)
    assert error(exc) == (
        "ResourceNotFoundException",
        f"The function {arn(name, '$LATEST')} doesn't have an EventInvokeConfig",
    )
    with pytest.raises(ClientError) as exc:
        lam.delete_function_event_invoke_config(FunctionName=name)
    assert error(exc) == (
        "ResourceNotFoundException",
        f"The function {arn(name)} doesn't have an EventInvokeConfig",
    )


def test_qualifiers_list_and_drop_with_version_alias_function(lam: Any, create_fn: Any) -> None:
    name = create_fn("def handler(e, c):\n    return 1\n")
    version = lam.publish_version(FunctionName=name)["Version"]
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion=version)
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    lam.put_function_event_invoke_config(FunctionName=name, Qualifier=version, MaximumRetryAttempts=1)
    lam.put_function_event_invoke_config(FunctionName=f"{name}:live", MaximumRetryAttempts=2)
    assert lam.get_function_event_invoke_config(FunctionName=name, Qualifier="live")["FunctionArn"] == arn(
        name, "live"
    )

    listed = lam.list_function_event_invoke_configs(FunctionName=name)["FunctionEventInvokeConfigs"]
    assert [(c["FunctionArn"], c["MaximumRetryAttempts"]) for c in listed] == [
        (arn(name, "$LATEST"), 0),
        (arn(name, version), 1),
        (arn(name, "live"), 2),
    ]
    page = lam.list_function_event_invoke_configs(FunctionName=name, MaxItems=2)
    assert len(page["FunctionEventInvokeConfigs"]) == 2 and page["NextMarker"]
    rest = lam.list_function_event_invoke_configs(FunctionName=name, Marker=page["NextMarker"])
    assert [c["FunctionArn"] for c in rest["FunctionEventInvokeConfigs"]] == [arn(name, "live")]

    lam.delete_alias(FunctionName=name, Name="live")
    lam.delete_function(FunctionName=name, Qualifier=version)
    listed = lam.list_function_event_invoke_configs(FunctionName=name)["FunctionEventInvokeConfigs"]
    assert [c["FunctionArn"] for c in listed] == [arn(name, "$LATEST")]

    lam.delete_function(FunctionName=name)
    with pytest.raises(ClientError) as exc:
        lam.list_function_event_invoke_configs(FunctionName=name)
    assert error(exc) == ("ResourceNotFoundException", "The function doesn't exist.")


def test_validation_errors(lam: Any, create_fn: Any, server: LaminaServer) -> None:
    raw = server.client(parameter_validation=False)
    name = create_fn("def handler(e, c):\n    return 1\n")
    with pytest.raises(ClientError) as exc:
        lam.put_function_event_invoke_config(FunctionName=name)
    assert error(exc) == ("InvalidParameterValueException", NOTHING_SET)
    with pytest.raises(ClientError) as exc:
        lam.update_function_event_invoke_config(FunctionName=name)
    assert error(exc) == ("InvalidParameterValueException", NOTHING_SET)
    with pytest.raises(ClientError) as exc:
        lam.update_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1)
    assert error(exc) == (
        "ResourceNotFoundException",
        f"The function {arn(name, '$LATEST')} doesn't have an EventInvokeConfig",
    )
    for kw in (
        {"MaximumRetryAttempts": 3},
        {"MaximumEventAgeInSeconds": 59},
        {"MaximumEventAgeInSeconds": 21601},
    ):
        with pytest.raises(ClientError) as exc:
            raw.put_function_event_invoke_config(FunctionName=name, **kw)
        assert exc.value.response["Error"]["Code"] == "ValidationException", kw
    for missing in (unique("nope"), f"{name}:7", f"{name}:nope"):
        with pytest.raises(ClientError) as exc:
            lam.put_function_event_invoke_config(FunctionName=missing, MaximumRetryAttempts=1)
        assert error(exc) == ("ResourceNotFoundException", "The function doesn't exist.")

    queue = f"arn:aws:sqs:{REGION}:{ACCOUNT}:q"
    for ok in (
        queue,
        f"arn:aws:sns:{REGION}:{ACCOUNT}:t",
        f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default",
    ):
        lam.put_function_event_invoke_config(
            FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": ok}}
        )
    bucket = "arn:aws:s3:::bucket"
    lam.put_function_event_invoke_config(
        FunctionName=name, DestinationConfig={"OnFailure": {"Destination": bucket}}
    )
    with pytest.raises(ClientError) as exc:
        lam.put_function_event_invoke_config(
            FunctionName=name,
            DestinationConfig={"OnSuccess": {"Destination": bucket}, "OnFailure": {"Destination": queue}},
        )
    assert error(exc) == (
        "InvalidParameterValueException",
        f"The provided destination config DestinationConfig(onSuccess=OnSuccess(destination={bucket}), "
        f"onFailure=OnFailure(destination={queue})) is invalid.",
    )
    missing_fn = arn(unique("gone"))
    with pytest.raises(ClientError) as exc:
        lam.put_function_event_invoke_config(
            FunctionName=name, DestinationConfig={"OnFailure": {"Destination": missing_fn}}
        )
    assert error(exc) == ("InvalidParameterValueException", f"The destination ARN {missing_fn} is invalid.")
    with pytest.raises(ClientError) as exc:
        lam.put_function_event_invoke_config(
            FunctionName=name, DestinationConfig={"OnFailure": {"Destination": arn(name)}}
        )
    assert error(exc) == (
        "InvalidParameterValueException",
        "You can't specify the function as a destination for itself.",
    )


def test_configs_survive_a_restart(tmp_path: Path) -> None:
    srv = LaminaServer(tmp_path / "data")
    srv.start()
    try:
        lam = srv.client()
        name = create_function(lam, "def handler(e, c):\n    return 1\n")
        lam.put_function_event_invoke_config(
            FunctionName=name, MaximumRetryAttempts=1, MaximumEventAgeInSeconds=90
        )
        srv.stop()
        srv.start()
        got = srv.client().get_function_event_invoke_config(FunctionName=name)
        assert (got["MaximumRetryAttempts"], got["MaximumEventAgeInSeconds"]) == (1, 90)
    finally:
        srv.stop()


# ---------------------------------------------------------------------------------------------
# Retries: a server of its own with short delays.  The handler prints a marker per attempt with
# its request id; with a "port" it asks the test's counter whether this attempt should fail (an
# environment's /tmp is private and may be replaced, so the count lives in the test).
FLAKY = """
import socket
def handler(event, context):
    print("attempt", event["tag"], context.aws_request_id)
    fail = event.get("fail", False)
    if "port" in event:
        with socket.create_connection(("127.0.0.1", event["port"]), timeout=30) as s:
            s.sendall(event["tag"].encode() + b"\\n")
            fail = s.recv(16).startswith(b"fail")
    if fail:
        raise RuntimeError("failing on purpose")
    print("succeeded", event["tag"], context.aws_request_id)
    return "ok"
"""


class FailingCounter:
    """Answers "fail" to the first ``failures`` connections per tag, "ok" after."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.counts: dict[str, int] = {}
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                tag = conn.makefile().readline().strip()
                self.counts[tag] = self.counts.get(tag, 0) + 1
                conn.sendall(b"fail" if self.counts[tag] <= self.failures else b"ok")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def retry_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaminaServer]:
    srv = LaminaServer(
        tmp_path_factory.mktemp("retries") / "data", extra_env={"LAMINA_ASYNC_RETRY_DELAYS": "0.2,0.4"}
    )
    srv.start()
    yield srv
    srv.stop()


def attempts(srv: LaminaServer, name: str, tag: str) -> list[str]:
    """Request ids of the attempts logged for ``tag``."""
    return [
        m.split()[2]
        for m in log_messages(srv.data_dir, f"/aws/lambda/{name}")
        if m.startswith(f"attempt {tag} ")
    ]


def wait_attempts(srv: LaminaServer, name: str, tag: str, count: int, timeout: float = 30.0) -> list[str]:
    """Poll the (batched) log store until ``count`` attempts of ``tag`` are there."""
    deadline = time.monotonic() + timeout
    while len(found := attempts(srv, name, tag)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def wait_discarded(srv: LaminaServer, request_id: str, timeout: float = 30.0) -> dict[str, Any]:
    """Poll lamina's own log for the line that says the event was dropped for good."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in srv.logs_text().splitlines():
            if request_id in line and "async event discarded" in line:
                return dict(json.loads(line))
        time.sleep(0.05)
    raise AssertionError(f"event {request_id} was not discarded: {srv.logs_text()[-2000:]}")


def invoke_event(lam: Any, name: str, payload: dict[str, Any], **kw: Any) -> str:
    out = lam.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps(payload), **kw)
    assert out["StatusCode"] == 202
    return str(out["ResponseMetadata"]["RequestId"])


def test_failing_twice_then_succeeding_is_three_attempts_with_one_request_id(
    retry_server: LaminaServer,
) -> None:
    lam = retry_server.client()
    name = create_function(lam, FLAKY)
    counter = FailingCounter(failures=2)
    try:
        request_id = invoke_event(lam, name, {"tag": "flaky", "port": counter.port})
        wait_for_log(retry_server.data_dir, f"/aws/lambda/{name}", f"succeeded flaky {request_id}")
        assert attempts(retry_server, name, "flaky") == [request_id] * 3
    finally:
        counter.close()


def test_retries_follow_the_invoked_qualifiers_config(retry_server: LaminaServer) -> None:
    lam = retry_server.client()
    name = create_function(lam, FLAKY)
    version = lam.publish_version(FunctionName=name)["Version"]
    lam.create_alias(FunctionName=name, Name="none", FunctionVersion=version)
    lam.create_alias(FunctionName=name, Name="other", FunctionVersion=version)
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1)
    lam.put_function_event_invoke_config(FunctionName=name, Qualifier="none", MaximumRetryAttempts=0)
    cases = {  # tag -> (qualifier, attempts): the alias's own config, else the function's ($LATEST's)
        "plain": (None, 2),
        "none": ("none", 1),
        "other": ("other", 2),
    }
    ids = {}
    for tag, (qualifier, _) in cases.items():
        extra = {"Qualifier": qualifier} if qualifier else {}
        ids[tag] = invoke_event(lam, name, {"tag": tag, "fail": True}, **extra)
    for tag, (_, expected) in cases.items():
        record = wait_discarded(retry_server, ids[tag])
        assert record["condition"] == "RetriesExhausted" and record["attempts"] == expected, (tag, record)
        assert wait_attempts(retry_server, name, tag, expected) == [ids[tag]] * expected, tag


def test_default_policy_is_two_retries(retry_server: LaminaServer) -> None:
    lam = retry_server.client()
    name = create_function(lam, FLAKY)
    request_id = invoke_event(lam, name, {"tag": "always", "fail": True})
    assert wait_discarded(retry_server, request_id)["attempts"] == 3
    assert wait_attempts(retry_server, name, "always", 3) == [request_id] * 3
