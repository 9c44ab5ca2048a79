"""`lamina events` and GET /_lamina/functions/{name}/events against the real server."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lamina.cli.client import CliError, Connection, ResolvedCredentials
from lamina.cli.events import signed_get

from .conftest import ACCESS_KEY, REGION, SECRET_KEY, LaminaServer, create_function
from .test_cli import lamina

FAILING = "def handler(e, c):\n    raise ValueError(f\"boom {e['n']}\")\n"


@pytest.fixture(scope="module")
def events_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaminaServer]:
    # Long retry delays: a retrying event stays retrying for the whole test.
    srv = LaminaServer(
        tmp_path_factory.mktemp("events") / "data", extra_env={"LAMINA_ASYNC_RETRY_DELAYS": "30,30"}
    )
    srv.start()
    yield srv
    srv.stop()


def view(server: LaminaServer, name: str, secret: str = SECRET_KEY) -> dict[str, Any]:
    conn = Connection(server.endpoint, REGION, Path("/nonexistent"))
    return signed_get(conn, ResolvedCredentials(ACCESS_KEY, secret), f"/_lamina/functions/{name}/events")


def wait_view(
    server: LaminaServer, name: str, cond: Callable[[dict[str, Any]], bool], timeout: float = 30.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        v = view(server, name)
        if cond(v):
            return v
        assert time.monotonic() < deadline, f"condition not met: {json.dumps(v)}"
        time.sleep(0.05)  # poll-with-timeout


def event_invoke(lam: Any, name: str, n: int) -> None:
    resp = lam.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"n": n}))
    assert resp["StatusCode"] == 202


def test_throttled_events_are_queued_with_the_reason(events_server: LaminaServer) -> None:
    lam = events_server.client()
    name = create_function(lam, "def handler(e, c):\n    return 1\n")
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    event_invoke(lam, name, 1)
    event_invoke(lam, name, 2)

    v = wait_view(
        events_server,
        name,
        lambda v: v["counts"]["queued"] == 2 and all(e["LastErrorType"] == "Throttled" for e in v["queued"]),
    )
    assert v["FunctionName"] == name and v["FunctionArn"].endswith(f":function:{name}")
    assert v["counts"] == {"queued": 2, "in_flight": 0, "retrying": 0, "failed": 0}
    for ev in v["queued"]:
        assert ev["LastErrorMessage"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
        assert ev["Attempts"] == 0 and ev["NextAttemptAt"] is None

    r = lamina(events_server, "events", name)
    assert r.returncode == 0, r.stderr
    assert "REQUEST ID" in r.stdout and r.stdout.count("Throttled") == 2
    assert "2 queued, 0 in-flight, 0 retrying, 0 failed" in r.stdout
    r = lamina(events_server, "events", name, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["counts"]["queued"] == 2


def test_a_failing_event_shows_as_retrying_with_its_error(events_server: LaminaServer) -> None:
    lam = events_server.client()
    name = create_function(lam, FAILING)
    event_invoke(lam, name, 42)

    v = wait_view(events_server, name, lambda v: v["counts"]["retrying"] == 1)
    [ev] = v["retrying"]
    assert (ev["LastErrorType"], ev["LastErrorMessage"]) == ("ValueError", "boom 42")
    assert ev["Attempts"] == 1
    assert ev["NextAttemptAt"] > time.time() + 10  # the 30 s delay, not yet due
    assert v["counts"]["failed"] == 0

    r = lamina(events_server, "events", name)
    assert r.returncode == 0, r.stderr
    assert "retrying" in r.stdout and "next in" in r.stdout and "ValueError: boom 42" in r.stdout


def test_a_discarded_event_is_recorded_as_failed_and_deleted_with_the_function(
    events_server: LaminaServer,
) -> None:
    lam = events_server.client()
    name = create_function(lam, FAILING)
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    event_invoke(lam, name, 7)

    v = wait_view(events_server, name, lambda v: v["counts"]["failed"] == 1)
    [ev] = v["failed"]
    assert ev["Condition"] == "RetriesExhausted"
    assert (ev["ErrorType"], ev["ErrorMessage"]) == ("ValueError", "boom 7")
    assert ev["Attempts"] == 1 and ev["FailedAt"] >= ev["ReceivedAt"]
    assert v["counts"] == {"queued": 0, "in_flight": 0, "retrying": 0, "failed": 1}

    r = lamina(events_server, "events", name)
    assert r.returncode == 0, r.stderr
    assert "failed" in r.stdout and "RetriesExhausted: ValueError: boom 7" in r.stdout

    lam.delete_function(FunctionName=name)
    with pytest.raises(CliError, match="ResourceNotFoundException"):
        view(events_server, name)
    create_function(lam, FAILING, name=name)
    assert view(events_server, name)["counts"]["failed"] == 0  # the record went with the function


def test_the_view_is_signed_like_every_api_request(events_server: LaminaServer) -> None:
    lam = events_server.client()
    name = create_function(lam, "def handler(e, c):\n    return 1\n")
    url = f"{events_server.endpoint}/_lamina/functions/{name}/events"
    with pytest.raises(urllib.error.HTTPError) as unsigned:
        urllib.request.urlopen(url, timeout=10)
    assert unsigned.value.code == 403
    assert unsigned.value.headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"
    with pytest.raises(CliError, match="InvalidSignatureException"):
        view(events_server, name, secret="not-the-secret")
    with pytest.raises(CliError, match="ResourceNotFoundException"):
        view(events_server, "no-such-function")

    r = lamina(events_server, "events", "no-such-function")
    assert r.returncode == 1 and "ResourceNotFoundException" in r.stderr
