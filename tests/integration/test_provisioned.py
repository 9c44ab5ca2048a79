"""Provisioned concurrency through boto3: the API with AWS's errors, READY, warm environments
initialised ahead, spill-over to on-demand ones, the limits it counts against, restarts."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from .conftest import LaminaServer, create_function, log_messages, make_zip, wait_for_log
from .test_concurrency import Gate, assert_throttled

ACCOUNT = "123456789012"
REGION = "us-east-1"

# With a "port" in the event the handler checks in at the test's gate and blocks until released.
REPORTER = """
import os, socket
print("init ran", os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"])
def handler(event, context):
    if "port" in event:
        with socket.create_connection(("127.0.0.1", event["port"]), timeout=60) as s:
            s.sendall(b"in\\n")
            s.recv(1)
    return {"type": os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"], "id": context.aws_request_id,
            "stream": context.log_stream_name, "version": context.function_version}
"""
BROKEN = """
raise RuntimeError("cannot reach the database")
def handler(event, context):
    return 1
"""

UNPUBLISHED = "Provisioned Concurrency Configs cannot be applied to unpublished function versions."
NOT_PUBLISHED = "The function resource provided must be an alias or a published version."
LAST_MODIFIED = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+0000$")


@pytest.fixture
def gate() -> Iterator[Gate]:
    g = Gate()
    yield g
    g.close()


def arn(name: str, qualifier: str | None = None) -> str:
    base = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
    return f"{base}:{qualifier}" if qualifier else base


def error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str, str]:
    resp = exc.value.response
    return resp["ResponseMetadata"]["HTTPStatusCode"], resp["Error"]["Code"], resp["Error"]["Message"]


def invoke(lam: Any, name: str, event: dict[str, Any] | None = None) -> Any:
    resp = lam.invoke(FunctionName=name, Payload=json.dumps(event or {}).encode())
    assert "FunctionError" not in resp, resp["Payload"].read()
    return json.loads(resp["Payload"].read())


def wait_status(lam: Any, name: str, qualifier: str, status: str, timeout: float = 30.0) -> dict[str, Any]:
    """Poll GetProvisionedConcurrencyConfig until it reports ``status`` (or fail after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        got: dict[str, Any] = lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier=qualifier)
        if got["Status"] == status:
            return got
        assert time.monotonic() < deadline, f"still {got['Status']} after {timeout}s: {got}"
        time.sleep(0.05)


def report_of(srv: LaminaServer, name: str, request_id: str) -> str:
    messages = wait_for_log(srv.data_dir, f"/aws/lambda/{name}", f"REPORT RequestId: {request_id}")
    return next(m for m in messages if m.startswith(f"REPORT RequestId: {request_id}"))


def published(lam: Any, code: str = REPORTER, **kw: Any) -> str:
    name = create_function(lam, code, **kw)
    assert lam.publish_version(FunctionName=name)["Version"] == "1"
    return name


def unreserved(lam: Any) -> int:
    return int(lam.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"])


# -- the API ------------------------------------------------------------------------------------------


def test_put_get_list_delete(lam: Any) -> None:
    name = published(lam)
    before = unreserved(lam)
    put = lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=2
    )
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert put["RequestedProvisionedConcurrentExecutions"] == 2
    assert put["Status"] == "IN_PROGRESS"
    assert isinstance(put["AllocatedProvisionedConcurrentExecutions"], int)
    assert isinstance(put["AvailableProvisionedConcurrentExecutions"], int)
    assert LAST_MODIFIED.match(put["LastModified"])
    ready = wait_status(lam, name, "1", "READY")
    assert ready["AllocatedProvisionedConcurrentExecutions"] == 2
    assert ready["AvailableProvisionedConcurrentExecutions"] == 2
    assert ready["RequestedProvisionedConcurrentExecutions"] == 2
    assert ready["LastModified"] == put["LastModified"] and "StatusReason" not in ready
    # It counts against the account's unreserved concurrency (the function has no reservation).
    assert unreserved(lam) == before - 2
    listed = lam.list_provisioned_concurrency_configs(FunctionName=arn(name))
    [item] = listed["ProvisionedConcurrencyConfigs"]
    assert item["FunctionArn"] == arn(name, "1")
    assert item["Status"] == "READY" and item["RequestedProvisionedConcurrentExecutions"] == 2
    resp = lam.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="1")
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as exc:
        lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="1")
    assert error(exc) == (
        404,
        "ProvisionedConcurrencyConfigNotFoundException",
        "No Provisioned Concurrency Config found for this function",
    )
    assert unreserved(lam) == before
    lam.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="1")  # none: still 204
    assert lam.list_provisioned_concurrency_configs(FunctionName=name)["ProvisionedConcurrencyConfigs"] == []


def test_list_pages_with_marker(lam: Any) -> None:
    name = published(lam)
    lam.update_function_code(FunctionName=name, ZipFile=make_zip({"app.py": REPORTER + "\n# 2\n"}))
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="blue", FunctionVersion="2")
    for qualifier in ("1", "blue"):
        lam.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier=qualifier, ProvisionedConcurrentExecutions=1
        )
    first = lam.list_provisioned_concurrency_configs(FunctionName=name, MaxItems=1)
    assert [c["FunctionArn"] for c in first["ProvisionedConcurrencyConfigs"]] == [arn(name, "1")]
    rest = lam.list_provisioned_concurrency_configs(FunctionName=name, Marker=first["NextMarker"])
    assert [c["FunctionArn"] for c in rest["ProvisionedConcurrencyConfigs"]] == [arn(name, "blue")]
    assert "NextMarker" not in rest
    paginator = lam.get_paginator("list_provisioned_concurrency_configs")
    pages = list(paginator.paginate(FunctionName=name, PaginationConfig={"PageSize": 1}))
    assert sum(len(p["ProvisionedConcurrencyConfigs"]) for p in pages) == 2
    lam.delete_function(FunctionName=name)


def test_aws_errors(lam: Any, server: LaminaServer) -> None:
    name = published(lam)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    lam.create_alias(FunctionName=name, Name="latest", FunctionVersion="$LATEST")

    def put(qualifier: str, n: int = 1, ident: str = name) -> Any:
        return lam.put_provisioned_concurrency_config(
            FunctionName=ident, Qualifier=qualifier, ProvisionedConcurrentExecutions=n
        )

    with pytest.raises(ClientError) as exc:
        put("$LATEST")
    assert error(exc) == (400, "InvalidParameterValueException", UNPUBLISHED)
    for call in (lam.get_provisioned_concurrency_config, lam.delete_provisioned_concurrency_config):
        with pytest.raises(ClientError) as exc:
            call(FunctionName=name, Qualifier="$LATEST")
        assert error(exc) == (400, "InvalidParameterValueException", NOT_PUBLISHED)
    with pytest.raises(ClientError) as exc:
        put("latest")  # an alias on $LATEST is no better
    assert error(exc) == (400, "InvalidParameterValueException", UNPUBLISHED)
    with pytest.raises(ClientError) as exc:
        put("7")
    assert error(exc) == (404, "ResourceNotFoundException", f"Function not found: {arn(name, '7')}")
    with pytest.raises(ClientError) as exc:
        lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="nope")
    assert error(exc) == (404, "ResourceNotFoundException", f"Cannot find alias arn: {arn(name, 'nope')}")
    with pytest.raises(ClientError) as exc:
        lam.list_provisioned_concurrency_configs(FunctionName="no-such-fn")
    assert error(exc) == (404, "ResourceNotFoundException", f"Function not found: {arn('no-such-fn')}")
    with pytest.raises(ClientError) as exc:
        put("live", ident=f"{name}:1")
    assert error(exc)[1:] == (
        "InvalidParameterValueException",
        "The derived qualifier from the function name does not match the specified qualifier.",
    )
    # One config per version: directly, or through an alias, never both.
    put("1")
    with pytest.raises(ClientError) as exc:
        put("live")
    assert error(exc) == (
        409,
        "ResourceConflictException",
        "Alias can't be used for Provisioned Concurrency configuration on an already Provisioned version",
    )
    lam.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="1")
    put("live")
    with pytest.raises(ClientError) as exc:
        put("1")
    assert error(exc) == (
        409,
        "ResourceConflictException",
        "Version is pointed by a Provisioned Concurrency alias",
    )
    lam.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="live")
    # Without a reservation it comes out of the account's unreserved concurrency (>= 100 stay).
    with pytest.raises(ClientError) as exc:
        put("1", 1001)
    assert error(exc) == (
        400,
        "InvalidParameterValueException",
        "Specified ConcurrentExecutions for function is greater than account's unreserved concurrency "
        "[1000].",
    )
    with pytest.raises(ClientError) as exc:
        put("1", unreserved(lam) - 99)
    assert error(exc) == (
        400,
        "InvalidParameterValueException",
        "Specified ConcurrentExecutions for function decreases account's UnreservedConcurrentExecution "
        "below its minimum value of [100].",
    )
    # The model's minimum is enforced by the server too (botocore checks it client-side by default).
    raw = server.client(parameter_validation=False)
    with pytest.raises(ClientError) as exc:
        raw.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=0
        )
    assert error(exc)[:2] == (400, "ValidationException")
    assert "provisionedConcurrentExecutions" in error(exc)[2]
    lam.delete_function(FunctionName=name)


def test_reserved_concurrency_bounds_it_and_on_demand_gets_the_rest(lam: Any, gate: Gate) -> None:
    name = published(lam, Timeout=60)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=2)
    before = unreserved(lam)
    with pytest.raises(ClientError) as exc:
        lam.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=3
        )
    assert error(exc) == (
        400,
        "InvalidParameterValueException",
        "Requested Provisioned Concurrency should not be greater than the reservedConcurrentExecution "
        "for function",
    )
    lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=1
    )
    assert unreserved(lam) == before  # carved out of the reservation, not the account again
    with pytest.raises(ClientError) as exc:
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    assert error(exc) == (
        400,
        "InvalidParameterValueException",
        " ReservedConcurrentExecutions  0 should not be lower than function's total provisioned "
        "concurrency [1].",
    )
    wait_status(lam, name, "1", "READY")
    # reserved 2 - provisioned 1 = 1 on-demand execution for everything but version 1's slot.
    with ThreadPoolExecutor(2) as pool:
        held: Future[Any] = pool.submit(invoke, lam, name, {"port": gate.port})
        gate.arrival()  # $LATEST holds the on-demand one
        with pytest.raises(ClientError) as exc:
            invoke(lam, name)
        assert_throttled(exc, "ReservedFunctionConcurrentInvocationLimitExceeded")
        provisioned: Future[Any] = pool.submit(invoke, lam, f"{name}:1", {"port": gate.port})
        gate.arrival()  # version 1 runs on its provisioned slot all the same
        with pytest.raises(ClientError) as exc:
            invoke(lam, f"{name}:1")  # and its spill-over finds the on-demand one taken
        assert_throttled(exc, "ReservedFunctionConcurrentInvocationLimitExceeded")
        gate.release()
        assert held.result(timeout=60)["type"] == "on-demand"
        assert provisioned.result(timeout=60)["type"] == "provisioned-concurrency"
    lam.delete_function(FunctionName=name)


# -- environments ---------------------------------------------------------------------------------------


def test_provisioned_invoke_has_its_init_type_and_no_init_duration(lam: Any, server: LaminaServer) -> None:
    name = published(lam)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="live", ProvisionedConcurrentExecutions=1
    )
    ready = wait_status(lam, name, "live", "READY")
    assert ready["AllocatedProvisionedConcurrentExecutions"] == 1
    group = f"/aws/lambda/{name}"
    wait_for_log(server.data_dir, group, "init ran provisioned-concurrency")  # INIT ran ahead
    out = invoke(lam, f"{name}:live")
    assert out["type"] == "provisioned-concurrency" and out["version"] == "1"
    report = report_of(server, name, out["id"])
    assert "Init Duration" not in report
    # The version itself runs on the same environment (the config is the version's, via its alias).
    direct = invoke(lam, f"{name}:1")
    assert direct["type"] == "provisioned-concurrency" and direct["stream"] == out["stream"]
    # $LATEST is never provisioned.
    latest = invoke(lam, name)
    assert latest["type"] == "on-demand"
    assert "Init Duration" in report_of(server, name, latest["id"])
    lam.delete_function(FunctionName=name)


def test_spill_over_runs_on_an_on_demand_environment(lam: Any, server: LaminaServer, gate: Gate) -> None:
    name = published(lam, Timeout=60)
    lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=1
    )
    wait_status(lam, name, "1", "READY")
    with ThreadPoolExecutor(2) as pool:
        first: Future[Any] = pool.submit(invoke, lam, f"{name}:1", {"port": gate.port})
        gate.arrival()
        second: Future[Any] = pool.submit(invoke, lam, f"{name}:1", {"port": gate.port})
        gate.arrival()  # both inside their handlers at once
        gate.release()
        outs = [first.result(timeout=60), second.result(timeout=60)]
    by_type = {o["type"]: o for o in outs}
    assert set(by_type) == {"provisioned-concurrency", "on-demand"}
    assert by_type["provisioned-concurrency"]["stream"] != by_type["on-demand"]["stream"]
    assert "Init Duration" not in report_of(server, name, by_type["provisioned-concurrency"]["id"])
    assert "Init Duration: " in report_of(server, name, by_type["on-demand"]["id"])
    lam.delete_function(FunctionName=name)


def test_update_of_latest_keeps_them_and_an_alias_takes_its_config_along(
    lam: Any, server: LaminaServer
) -> None:
    name = published(lam)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="live", ProvisionedConcurrentExecutions=1
    )
    wait_status(lam, name, "live", "READY")
    before = invoke(lam, f"{name}:live")
    # Published versions never change: an update of $LATEST leaves their environments warm.
    lam.update_function_code(FunctionName=name, ZipFile=make_zip({"app.py": REPORTER + "\n# v2\n"}))
    assert lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="live")["Status"] == "READY"
    again = invoke(lam, f"{name}:live")
    assert again["type"] == "provisioned-concurrency" and again["stream"] == before["stream"]
    # Moving the alias moves its provisioned concurrency to the new version.
    assert lam.publish_version(FunctionName=name)["Version"] == "2"
    lam.update_alias(FunctionName=name, Name="live", FunctionVersion="2")
    wait_status(lam, name, "live", "READY")
    moved = invoke(lam, f"{name}:live")
    assert moved["version"] == "2" and moved["type"] == "provisioned-concurrency"
    assert invoke(lam, f"{name}:1")["type"] == "on-demand"  # version 1's went
    # An alias with a config cannot be moved onto a version with its own, nor onto $LATEST.
    lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=1
    )
    with pytest.raises(ClientError) as exc:
        lam.update_alias(FunctionName=name, Name="live", FunctionVersion="1")
    assert error(exc)[:2] == (409, "ResourceConflictException")
    with pytest.raises(ClientError) as exc:
        lam.update_alias(FunctionName=name, Name="live", FunctionVersion="$LATEST")
    assert error(exc) == (400, "InvalidParameterValueException", UNPUBLISHED)
    assert lam.get_alias(FunctionName=name, Name="live")["FunctionVersion"] == "2"
    lam.delete_function(FunctionName=name)


def test_init_failure_makes_it_failed_with_aws_reason(lam: Any, server: LaminaServer) -> None:
    name = published(lam, BROKEN)
    lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=2
    )
    failed = wait_status(lam, name, "1", "FAILED")
    assert failed["StatusReason"] == "FUNCTION_ERROR_INIT_FAILURE"
    assert failed["AllocatedProvisionedConcurrentExecutions"] == 0
    assert failed["AvailableProvisionedConcurrentExecutions"] == 0
    messages = wait_for_log(server.data_dir, f"/aws/lambda/{name}", "INIT_REPORT")
    assert any("RuntimeError: cannot reach the database" in m for m in messages)
    lam.delete_function(FunctionName=name)


def test_deleting_version_alias_or_function_deletes_configs(lam: Any) -> None:
    name = published(lam)
    lam.update_function_code(FunctionName=name, ZipFile=make_zip({"app.py": REPORTER + "\n# 2\n"}))
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="blue", FunctionVersion="2")
    lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=1
    )
    lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="blue", ProvisionedConcurrentExecutions=1
    )
    before = unreserved(lam)
    lam.delete_function(FunctionName=name, Qualifier="1")
    lam.delete_alias(FunctionName=name, Name="blue")
    assert lam.list_provisioned_concurrency_configs(FunctionName=name)["ProvisionedConcurrencyConfigs"] == []
    assert unreserved(lam) == before + 2
    lam.create_alias(FunctionName=name, Name="blue", FunctionVersion="2")
    lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="blue", ProvisionedConcurrentExecutions=1
    )
    lam.delete_function(FunctionName=name)
    assert unreserved(lam) == before + 2
    create_function(lam, REPORTER, name=name)
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="blue", FunctionVersion="1")
    with pytest.raises(ClientError) as exc:
        lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="blue")
    assert error(exc)[1] == "ProvisionedConcurrencyConfigNotFoundException"
    lam.delete_function(FunctionName=name)


def test_configs_survive_a_restart_and_are_ready_again(tmp_path: Path) -> None:
    srv = LaminaServer(tmp_path / "data")
    srv.start()
    try:
        lam = srv.client()
        name = published(lam)
        lam.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=2
        )
        put = wait_status(lam, name, "1", "READY")
        srv.stop()
        srv.start()
        lam = srv.client()
        ready = wait_status(lam, name, "1", "READY")
        assert ready["AllocatedProvisionedConcurrentExecutions"] == 2
        assert ready["LastModified"] == put["LastModified"]
        assert lam.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"] == 998
        out = invoke(lam, f"{name}:1")
        assert out["type"] == "provisioned-concurrency"
        # INIT ran twice per start (the log store flushes in batches: poll)
        deadline = time.monotonic() + 30
        while log_messages(srv.data_dir, f"/aws/lambda/{name}").count("init ran provisioned-concurrency") < 4:
            assert time.monotonic() < deadline, log_messages(srv.data_dir, f"/aws/lambda/{name}")
            time.sleep(0.05)
    finally:
        srv.stop()
