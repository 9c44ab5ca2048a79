"""Metrics through real clients: boto3's cloudwatch client and the aws CLI against the CloudWatch
API, and an HTTP scrape of /metrics, after real invokes of the real server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from .conftest import ACCESS_KEY, REGION, SECRET_KEY, LaminaServer, create_function, free_port

T = TypeVar("T")
CODE = (
    "def handler(event, context):\n    if event.get('fail'):\n        raise ValueError('no')\n    return 1\n"
)


def poll(probe: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    """``probe()`` until it answers something truthy (metrics are harvested once a second)."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def stat(cw: Any, metric: str, dims: dict[str, str], statistic: str = "Sum") -> float:
    now = datetime.now(UTC)
    out = cw.get_metric_statistics(
        Namespace="AWS/Lambda",
        MetricName=metric,
        Dimensions=[{"Name": k, "Value": v} for k, v in dims.items()],
        StartTime=now - timedelta(minutes=30),
        EndTime=now + timedelta(minutes=1),
        Period=3600,
        Statistics=[statistic],
    )
    return float(sum(p[statistic] for p in out["Datapoints"]))


def wait_stat(cw: Any, metric: str, dims: dict[str, str], want: float, statistic: str = "Sum") -> None:
    seen: list[float] = []

    def probe() -> bool:
        seen.append(stat(cw, metric, dims, statistic))
        return seen[-1] == want

    try:
        poll(probe, f"{metric} {statistic} {dims} == {want}")
    except AssertionError as exc:
        raise AssertionError(f"{exc} (last seen: {seen[-1:]})") from None


def scrape(srv: LaminaServer, headers: dict[str, str]) -> str:
    req = urllib.request.Request(f"{srv.endpoint}/metrics", headers=headers)
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return str(r.read().decode())


def sample(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_invokes_reach_cloudwatch_and_prometheus(server: LaminaServer, lam: Any) -> None:
    cw = server.client("cloudwatch")
    name = create_function(lam, CODE)
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    for fail in (True, False, False):
        lam.invoke(FunctionName=name, Payload=json.dumps({"fail": fail}))
    for _ in range(2):
        assert lam.invoke(FunctionName=name, Qualifier="live", Payload=b"{}")["ExecutedVersion"] == "1"
    fn = {"FunctionName": name}
    wait_stat(cw, "Invocations", fn, 5)
    assert stat(cw, "Errors", fn) == 1
    assert stat(cw, "Errors", fn, "Average") == pytest.approx(0.2)
    assert stat(cw, "Duration", fn, "SampleCount") == 5 and stat(cw, "Duration", fn, "Maximum") > 0
    assert stat(cw, "Invocations", {**fn, "Resource": f"{name}:live"}) == 2
    assert stat(cw, "Invocations", {**fn, "Resource": f"{name}:live", "ExecutedVersion": "1"}) == 2
    assert stat(cw, "ConcurrentExecutions", fn, "Maximum") >= 1
    listed = cw.list_metrics(Namespace="AWS/Lambda", Dimensions=[{"Name": "FunctionName", "Value": name}])
    assert {"Invocations", "Errors", "Duration"} <= {m["MetricName"] for m in listed["Metrics"]}
    data = cw.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "inv",
                "MetricStat": {
                    "Metric": {"Namespace": "AWS/Lambda", "MetricName": "Invocations",
                               "Dimensions": [{"Name": "FunctionName", "Value": name}]},
                    "Period": 60,
                    "Stat": "Sum",
                },
            }
        ],
        StartTime=datetime.now(UTC) - timedelta(minutes=30),
        EndTime=datetime.now(UTC) + timedelta(minutes=1),
    )  # fmt: skip
    assert sum(data["MetricDataResults"][0]["Values"]) == 5
    with pytest.raises(ClientError) as err:
        now = datetime.now(UTC)
        cw.get_metric_statistics(
            Namespace="AWS/Lambda",
            MetricName="Invocations",
            StartTime=now,
            EndTime=now,
            Period=10,
            Statistics=["Sum"],
        )
    assert err.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400

    token = (server.data_dir / "metrics-token").read_text().strip()
    assert (server.data_dir / "metrics-token").stat().st_mode & 0o077 == 0
    text = scrape(server, {"Authorization": f"Bearer {token}"})
    assert sample(text, "lamina_invocations_total", resource=name, executed_version="$LATEST") == 3
    assert sample(text, "lamina_errors_total", resource=name, executed_version="$LATEST") == 1
    assert sample(text, "lamina_invocations_total", resource=f"{name}:live", executed_version="1") == 2
    assert sample(text, "lamina_duration_seconds_count", resource=f"{name}:live") == 2
    cold_starts = sample(text, "lamina_init_duration_seconds_count", resource=name)
    assert cold_starts is not None and cold_starts >= 1  # the first invoke started an environment
    assert token not in server.logs_text()
    for bad in ({}, {"Authorization": "Bearer wrong"}):
        with pytest.raises(urllib.error.HTTPError) as refused:
            scrape(server, bad)
        assert refused.value.code == 401
    unsigned = urllib.request.Request(
        f"{server.endpoint}/service/GraniteServiceVersion20100801/operation/ListMetrics",
        data=b"\xa0",
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(unsigned, timeout=10)
    assert refused.value.code == 403
    assert refused.value.headers["x-amzn-query-error"] == "MissingAuthenticationToken;Sender"
    signed = AWSRequest(method="GET", url=f"{server.endpoint}/metrics")
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "monitoring", REGION).add_auth(signed)
    assert "lamina_invocations_total" in scrape(server, dict(signed.headers.items()))


def test_throttles_and_async_events(server: LaminaServer, lam: Any) -> None:
    cw = server.client("cloudwatch")
    stopped = create_function(lam, CODE)
    lam.put_function_concurrency(FunctionName=stopped, ReservedConcurrentExecutions=0)
    once = boto3.client(
        "lambda",
        endpoint_url=server.endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(retries={"max_attempts": 0}),  # one request, whatever boto3's retry quota
    )
    with pytest.raises(ClientError) as throttled:
        once.invoke(FunctionName=stopped, Payload=b"{}")
    assert throttled.value.response["Error"]["Code"] == "TooManyRequestsException"
    wait_stat(cw, "Throttles", {"FunctionName": stopped}, 1)  # one per refused request

    failing = create_function(lam, CODE)
    lam.put_function_event_invoke_config(FunctionName=failing, MaximumRetryAttempts=0)
    for _ in range(2):
        lam.invoke(FunctionName=failing, InvocationType="Event", Payload=json.dumps({"fail": True}))
    fn = {"FunctionName": failing}
    wait_stat(cw, "AsyncEventsDropped", fn, 2)
    assert stat(cw, "AsyncEventsReceived", fn) == 2
    assert stat(cw, "AsyncEventAge", fn, "SampleCount") == 2
    assert stat(cw, "Errors", fn) == 2


@pytest.mark.skipif(
    not (Path(sys.executable).parent / "aws").exists() and not shutil.which("aws"), reason="no aws CLI"
)
def test_aws_cli_get_metric_statistics(server: LaminaServer, lam: Any) -> None:
    name = create_function(lam, CODE)
    lam.invoke(FunctionName=name, Payload=b"{}")
    aws = (
        str(Path(sys.executable).parent / "aws") if (Path(sys.executable).parent / "aws").exists() else "aws"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_DEFAULT_REGION=REGION)
    start = (datetime.now(UTC) - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (datetime.now(UTC) + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    argv = [aws, "--endpoint-url", server.endpoint, "cloudwatch", "get-metric-statistics", "--namespace",
            "AWS/Lambda", "--metric-name", "Invocations", "--dimensions", f"Name=FunctionName,Value={name}",
            "--start-time", start, "--end-time", end, "--period", "3600", "--statistics", "Sum"]  # fmt: skip

    def datapoints() -> list[dict[str, Any]]:
        out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=True)
        return list(json.loads(out.stdout)["Datapoints"])

    points = poll(datapoints, "the aws CLI to see the invocation")
    assert points[0]["Sum"] == 1.0 and points[0]["Unit"] == "Count"


def test_metrics_survive_a_restart_and_count_delivery_failures(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens: every delivery fails
    srv = LaminaServer(
        tmp_path_factory.mktemp("metrics") / "data",
        extra_env={"AWS_ENDPOINT_URL_SQS": nowhere, "LAMINA_METRICS_TOKEN": "s3cret-token"},
    )
    srv.start()
    try:
        lam = srv.client()
        name = create_function(lam, CODE)
        queue = f"arn:aws:sqs:{REGION}:123456789012:nowhere"
        lam.put_function_event_invoke_config(
            FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": queue}}
        )
        lam.invoke(FunctionName=name, InvocationType="Event", Payload=b"{}")
        lam.invoke(FunctionName=name, Payload=b"{}")
        auth = {"Authorization": "Bearer s3cret-token"}
        failures = "lamina_destination_delivery_failures_total"
        poll(
            lambda: sample(scrape(srv, auth), failures, function_name=name), "a failed delivery to be counted"
        )
        assert not (srv.data_dir / "metrics-token").exists()  # the given token is used, not written
        cw = srv.client("cloudwatch")
        wait_stat(cw, "Invocations", {"FunctionName": name}, 2)
        assert stat(cw, "DestinationDeliveryFailures", {"FunctionName": name}) >= 1
    finally:
        assert srv.stop() == 0
    srv.port = free_port()
    srv.start()
    try:
        cw = srv.client("cloudwatch")
        assert stat(cw, "Invocations", {"FunctionName": name}) == 2  # flushed at shutdown, read back
        listed = cw.list_metrics(
            MetricName="Invocations", Dimensions=[{"Name": "FunctionName", "Value": name}]
        )
        assert len(listed["Metrics"]) == 2  # FunctionName, and FunctionName + Resource
    finally:
        srv.stop()


def client_speaking(srv: LaminaServer, protocol: str, tmp: Path) -> Any:
    """A boto3 cloudwatch client that speaks ``protocol`` (json: SDKs of 2023-25; query: older ones),
    built from botocore's own model with only its protocol changed."""
    import botocore.session
    from botocore.loaders import Loader

    model = Loader().load_service_model("cloudwatch", "service-2")
    model["metadata"] = {**model["metadata"], "protocol": protocol, "protocols": [protocol]}
    folder = tmp / "cloudwatch" / model["metadata"]["apiVersion"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "service-2.json").write_text(json.dumps(model))
    core = botocore.session.get_session()
    core.get_component("data_loader").search_paths.insert(0, str(tmp))
    return boto3.Session(botocore_session=core).client(
        "cloudwatch",
        endpoint_url=srv.endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )


@pytest.mark.parametrize("protocol", ["json", "query"])
def test_older_clients_protocols(server: LaminaServer, lam: Any, protocol: str, tmp_path: Path) -> None:
    cw = client_speaking(server, protocol, tmp_path)
    name = create_function(lam, CODE)
    lam.invoke(FunctionName=name, Payload=b"{}")
    wait_stat(cw, "Invocations", {"FunctionName": name}, 1)
    metrics = cw.list_metrics(MetricName="Invocations", Dimensions=[{"Name": "FunctionName", "Value": name}])
    assert len(metrics["Metrics"]) == 2
    with pytest.raises(ClientError) as err:
        now = datetime.now(UTC)
        cw.get_metric_statistics(
            Namespace="AWS/Lambda",
            MetricName="Invocations",
            StartTime=now,
            EndTime=now + timedelta(hours=1),
            Period=60,
        )
    assert err.value.response["Error"]["Code"] == "InvalidParameterCombination"


def test_provisioned_concurrency_utilisation(server: LaminaServer, lam: Any) -> None:
    name = create_function(lam, CODE)
    lam.publish_version(FunctionName=name)
    lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=1
    )
    poll(
        lambda: lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="1")["Status"] == "READY",
        "provisioned concurrency to be READY",
    )
    lam.invoke(FunctionName=name, Qualifier="1", Payload=b"{}")
    token = (server.data_dir / "metrics-token").read_text().strip()
    text = scrape(server, {"Authorization": f"Bearer {token}"})
    assert sample(text, "lamina_provisioned_concurrency_utilization", resource=f"{name}:1") == 0.0
    cw = server.client("cloudwatch")
    dims = [{"Name": "FunctionName", "Value": name}, {"Name": "Resource", "Value": f"{name}:1"}]
    poll(
        lambda: cw.list_metrics(MetricName="ProvisionedConcurrencyUtilization", Dimensions=dims)["Metrics"],
        "ProvisionedConcurrencyUtilization to be published",
    )
    assert (
        stat(
            cw,
            "ProvisionedConcurrencyUtilization",
            {"FunctionName": name, "Resource": f"{name}:1"},
            "Maximum",
        )
        <= 1
    )
    lam.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="1")
