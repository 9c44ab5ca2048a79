"""Reserved and account concurrency through boto3: the API with AWS's errors, throttles, queued events."""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from .conftest import LaminaServer, create_function, log_messages, unique, wait_for_log

ACCOUNT = "123456789012"
REGION = "us-east-1"

# With a "port" in the event the handler checks in at the test's gate and blocks until released:
# the invocation holds its concurrency slot exactly as long as the test wants, no sleeps involved.
BLOCKER = """
import socket
def handler(event, context):
    if "port" in event:
        with socket.create_connection(("127.0.0.1", event["port"]), timeout=60) as s:
            s.sendall(b"in\\n")
            s.recv(1)
    print("ran", event.get("tag", ""))
    return "released" if "port" in event else "quick"
"""

QUALIFIED_MESSAGE = (
    "This operation is permitted on Lambda functions only. Aliases and versions do not support this "
    "operation. Please specify either a function name or an unqualified function ARN."
)


def min_unreserved_message(minimum: int) -> str:
    return (
        "Specified ReservedConcurrentExecutions for function decreases account's "
        f"UnreservedConcurrentExecution below its minimum value of [{minimum}]."
    )


class Gate:
    """A listening socket blocked handlers check in at; ``release`` lets them all return."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(30)
        self.port = int(self._sock.getsockname()[1])
        self._held: list[socket.socket] = []

    def arrival(self) -> None:
        """Wait (up to 30 s) until one more handler is inside, holding its slot."""
        conn, _ = self._sock.accept()
        conn.settimeout(30)
        assert conn.recv(3) == b"in\n"
        self._held.append(conn)

    def release(self) -> None:
        for conn in self._held:
            conn.sendall(b"x")
            conn.close()
        self._held.clear()

    def close(self) -> None:
        self.release()
        self._sock.close()


@pytest.fixture
def gate() -> Iterator[Gate]:
    g = Gate()
    yield g
    g.close()


def error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    err = exc.value.response["Error"]
    return err["Code"], err["Message"]


def invoke(lam: Any, name: str, event: dict[str, Any] | None = None) -> Any:
    resp = lam.invoke(FunctionName=name, Payload=json.dumps(event or {}).encode())
    return json.loads(resp["Payload"].read())


def assert_throttled(exc: pytest.ExceptionInfo[ClientError], reason: str) -> None:
    resp = exc.value.response
    assert resp["Error"]["Code"] == "TooManyRequestsException"
    assert resp["Error"]["Message"] == "Rate Exceeded."
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert resp["Reason"] == reason
    assert resp["Type"] == "User"
    assert resp["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "1"
    assert resp["retryAfterSeconds"] == "1"  # botocore reads the modeled header too


def unreserved(lam: Any) -> int:
    return int(lam.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"])


# -- the API ------------------------------------------------------------------------------------------


def test_put_get_delete_and_get_function(lam: Any, create_fn: Any) -> None:
    name = create_fn(BLOCKER)
    assert "ReservedConcurrentExecutions" not in lam.get_function_concurrency(FunctionName=name)
    assert "Concurrency" not in lam.get_function(FunctionName=name)
    before = unreserved(lam)
    put = lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=5)
    assert put["ReservedConcurrentExecutions"] == 5
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 200
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
    assert lam.get_function_concurrency(FunctionName=arn)["ReservedConcurrentExecutions"] == 5
    assert lam.get_function(FunctionName=name)["Concurrency"] == {"ReservedConcurrentExecutions": 5}
    settings = lam.get_account_settings()
    assert settings["AccountLimit"]["ConcurrentExecutions"] == 1000
    assert settings["AccountLimit"]["UnreservedConcurrentExecutions"] == before - 5
    # A new value replaces the old one (it is not added to it).
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=7)
    assert unreserved(lam) == before - 7
    assert invoke(lam, name) == "quick"
    resp = lam.delete_function_concurrency(FunctionName=name)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert "ReservedConcurrentExecutions" not in lam.get_function_concurrency(FunctionName=name)
    assert unreserved(lam) == before
    lam.delete_function_concurrency(FunctionName=name)  # nothing reserved: still 204


def test_aws_errors(lam: Any, create_fn: Any, server: LaminaServer) -> None:
    name = create_fn(BLOCKER)
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    for ident in (f"{name}:$LATEST", f"{name}:1", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}:live"):
        with pytest.raises(ClientError) as exc:
            lam.put_function_concurrency(FunctionName=ident, ReservedConcurrentExecutions=1)
        assert error(exc) == ("InvalidParameterValueException", QUALIFIED_MESSAGE)
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as exc:
        lam.put_function_concurrency(FunctionName="no-such-fn", ReservedConcurrentExecutions=1)
    assert error(exc) == (
        "ResourceNotFoundException",
        f"Function not found: arn:aws:lambda:{REGION}:{ACCOUNT}:function:no-such-fn:$LATEST",
    )
    for call in (lam.get_function_concurrency, lam.delete_function_concurrency):
        with pytest.raises(ClientError) as exc:
            call(FunctionName="no-such-fn")
        assert error(exc) == (
            "ResourceNotFoundException",
            f"Function not found: arn:aws:lambda:{REGION}:{ACCOUNT}:function:no-such-fn",
        )
    # At least 100 must stay unreserved: one more than that is refused, exactly that is accepted.
    room = unreserved(lam) - 100
    with pytest.raises(ClientError) as exc:
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=room + 1)
    assert error(exc) == ("InvalidParameterValueException", min_unreserved_message(100))
    with pytest.raises(ClientError) as exc:
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=5000)
    assert error(exc) == ("InvalidParameterValueException", min_unreserved_message(100))
    try:
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=room)
        assert unreserved(lam) == 100
        # Its own reservation does not count against a new value for the same function.
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=room)
    finally:
        lam.delete_function_concurrency(FunctionName=name)
    # The model's range is enforced by the server too (botocore checks it client-side by default).
    raw = server.client(parameter_validation=False)
    with pytest.raises(ClientError) as exc:
        raw.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=-1)
    assert exc.value.response["Error"]["Code"] == "ValidationException"
    assert "reservedConcurrentExecutions" in exc.value.response["Error"]["Message"]


def test_delete_function_drops_the_reservation(lam: Any) -> None:
    name = unique()
    create_function(lam, BLOCKER, name=name)
    before = unreserved(lam)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=3)
    assert unreserved(lam) == before - 3
    lam.delete_function(FunctionName=name)
    assert unreserved(lam) == before
    create_function(lam, BLOCKER, name=name)  # the same name again starts without a reservation
    assert "ReservedConcurrentExecutions" not in lam.get_function_concurrency(FunctionName=name)
    assert invoke(lam, name) == "quick"
    lam.delete_function(FunctionName=name)


# -- sync throttling ----------------------------------------------------------------------------------


def test_reserved_zero_throttles_every_sync_invoke(lam: Any, create_fn: Any) -> None:
    name = create_fn(BLOCKER)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    for ident in (name, f"{name}:$LATEST"):
        with pytest.raises(ClientError) as exc:
            invoke(lam, ident)
        assert_throttled(exc, "ReservedFunctionConcurrentInvocationLimitExceeded")
    # Event invokes are still accepted: they wait in the queue (see the restart test below).
    assert lam.invoke(FunctionName=name, InvocationType="DryRun")["StatusCode"] == 204
    lam.delete_function_concurrency(FunctionName=name)
    assert invoke(lam, name) == "quick"


def test_reserved_one_throttles_the_second_concurrent_invoke(lam: Any, create_fn: Any, gate: Gate) -> None:
    name = create_fn(BLOCKER, Timeout=60)
    other = create_fn(BLOCKER)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    with ThreadPoolExecutor(1) as pool:
        first: Future[Any] = pool.submit(invoke, lam, name, {"port": gate.port})
        gate.arrival()  # the first invoke is inside the handler, holding the one slot
        with pytest.raises(ClientError) as exc:
            invoke(lam, name)
        assert_throttled(exc, "ReservedFunctionConcurrentInvocationLimitExceeded")
        assert invoke(lam, other) == "quick"  # functions without a reservation are not affected
        gate.release()
        assert first.result(timeout=60) == "released"
    assert invoke(lam, name) == "quick"  # the slot came back


# -- the account pool ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaminaServer]:
    """A server whose account may run only 2 executions at once."""
    srv = LaminaServer(
        tmp_path_factory.mktemp("small") / "data", extra_env={"LAMINA_ACCOUNT_CONCURRENCY": "2"}
    )
    srv.start()
    yield srv
    srv.stop()


def test_account_limit_settings_and_minimum(small: LaminaServer) -> None:
    lam = small.client()
    name = create_function(lam, BLOCKER)
    limit = lam.get_account_settings()["AccountLimit"]
    assert limit["ConcurrentExecutions"] == 2 and limit["UnreservedConcurrentExecutions"] == 2
    # Below 100 the minimum is the whole limit (AWS answers "[10]" on 10-execution accounts):
    # nothing above 0 can be reserved, and 0 (stop the function) still can.
    with pytest.raises(ClientError) as exc:
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    assert error(exc) == ("InvalidParameterValueException", min_unreserved_message(2))
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    assert lam.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"] == 2
    with pytest.raises(ClientError) as exc:
        invoke(lam, name)
    assert_throttled(exc, "ReservedFunctionConcurrentInvocationLimitExceeded")
    lam.delete_function(FunctionName=name)


def test_account_pool_throttles_beyond_the_limit(small: LaminaServer, gate: Gate) -> None:
    lam = small.client(max_pool_connections=4)
    names = [create_function(lam, BLOCKER, Timeout=60) for _ in range(3)]
    with ThreadPoolExecutor(2) as pool:
        held = [pool.submit(invoke, lam, n, {"port": gate.port}) for n in names[:2]]
        gate.arrival()
        gate.arrival()  # both of the account's executions are taken, by two different functions
        with pytest.raises(ClientError) as exc:
            invoke(lam, names[2])
        assert_throttled(exc, "ConcurrentInvocationLimitExceeded")
        gate.release()
        assert [f.result(timeout=60) for f in held] == ["released", "released"]
    assert invoke(lam, names[2]) == "quick"
    usage = lam.get_account_settings()["AccountUsage"]
    assert usage["FunctionCount"] >= 3 and usage["TotalCodeSize"] > 0


# -- queued events ------------------------------------------------------------------------------------


def throttle_logs(srv: LaminaServer, name: str) -> int:
    return sum(
        1
        for line in srv.logs_text().splitlines()
        if '"async events throttled; retrying later"' in line and f'"function": "{name}"' in line
    )


def wait_until(cond: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_queued_events_wait_out_reserved_zero_across_a_restart(tmp_path: Path) -> None:
    srv = LaminaServer(tmp_path / "data")
    srv.start()
    try:
        lam = srv.client()
        name = create_function(lam, BLOCKER)
        group = f"/aws/lambda/{name}"
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
        tags = [f"event-{i}" for i in range(3)]
        for tag in tags:
            resp = lam.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"tag": tag}))
            assert resp["StatusCode"] == 202
        wait_until(lambda: throttle_logs(srv, name) >= 1)  # the dispatcher tried them, and held them
        assert not any(m.startswith("ran") for m in log_messages(srv.data_dir, group))
        assert srv.stop() == 0

        srv.start()
        lam = srv.client()
        assert lam.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 0
        wait_until(lambda: throttle_logs(srv, name) >= 2)  # still there, still held after the restart
        assert not any(m.startswith("ran") for m in log_messages(srv.data_dir, group))

        lam.delete_function_concurrency(FunctionName=name)  # they run now, not after the backoff
        for tag in tags:
            wait_for_log(srv.data_dir, group, f"ran {tag}", timeout=30)
        wait_until(lambda: queued_rows(srv.data_dir) == 0)
        ran = [m for m in log_messages(srv.data_dir, group) if m.startswith("ran")]
        assert sorted(ran) == sorted(f"ran {t}" for t in tags)  # each exactly once
    finally:
        srv.stop()


def queued_rows(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "lamina.sqlite3", timeout=5) as conn:
        return int(conn.execute("SELECT count(*) FROM async_events").fetchone()[0])


def test_queued_events_run_one_at_a_time_under_reserved_one(lam: Any, create_fn: Any, server: Any) -> None:
    name = create_fn(BLOCKER)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    tags = [f"serial-{i}" for i in range(4)]
    for tag in tags:
        lam.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"tag": tag}))
    for tag in tags:
        wait_for_log(server.data_dir, f"/aws/lambda/{name}", f"ran {tag}", timeout=60)
    lam.delete_function_concurrency(FunctionName=name)
