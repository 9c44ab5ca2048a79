"""Schedules against the real server: boto3's ``scheduler`` and ``events`` clients, firings seen in
the function's logs, a kill -9 right after a firing, and ``lamina schedules``."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from .conftest import LaminaServer, create_function, log_messages, unique, wait_for_log
from .test_cli import lamina

ROLE = "arn:aws:iam::123456789012:role/scheduler"
CODE = (
    "import time\n"
    "def handler(event, context):\n"
    "    if isinstance(event, dict) and event.get('slow'):\n"
    "        time.sleep(1.5)\n"
    "    marker = event.get('marker') if isinstance(event, dict) else None\n"
    "    print('FIRED', marker, context.aws_request_id, json_dumps(event))\n"
    "def json_dumps(e):\n"
    "    import json\n"
    "    return json.dumps(e, sort_keys=True)\n"
)


@pytest.fixture(scope="module")
def sched_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaminaServer]:
    srv = LaminaServer(tmp_path_factory.mktemp("schedules") / "data")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def fn(sched_server: LaminaServer) -> str:
    lam = sched_server.client()
    name = create_function(lam, CODE)
    return str(lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"])


def at_in(seconds: float) -> str:
    when = datetime.now(UTC) + timedelta(seconds=seconds)
    return f"at({when.strftime('%Y-%m-%dT%H:%M:%S')})"


def group_of(arn: str) -> str:
    return "/aws/lambda/" + arn.split(":")[6]


def error_code(exc: ClientError) -> str:
    return str(exc.response["Error"]["Code"])


def timer_row(data_dir: Path, name: str) -> tuple[Any, ...] | None:
    with sqlite3.connect(data_dir / "lamina.sqlite3", timeout=5) as conn:
        row = conn.execute(
            "SELECT next_fire, last_fire, last_result FROM timers WHERE name = ?", (name,)
        ).fetchone()
    return tuple(row) if row else None


def wait_until(cond: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)  # poll-with-timeout


def test_schedule_and_group_api(sched_server: LaminaServer, fn: str) -> None:
    sch = sched_server.client("scheduler")
    group = unique("grp")
    arn = sch.create_schedule_group(Name=group)["ScheduleGroupArn"]
    assert arn.endswith(f":schedule-group/{group}")
    with pytest.raises(ClientError) as err:
        sch.create_schedule_group(Name=group)
    assert error_code(err.value) == "ConflictException"
    assert sch.get_schedule_group(Name=group)["State"] == "ACTIVE"
    names = [g["Name"] for g in sch.list_schedule_groups()["ScheduleGroups"]]
    assert "default" in names and group in names

    target = {"Arn": fn, "RoleArn": ROLE, "Input": '{"a": 1}', "RetryPolicy": {"MaximumRetryAttempts": 3}}
    out = sch.create_schedule(
        Name="nightly",
        GroupName=group,
        ScheduleExpression="cron(0 3 ? * MON-FRI *)",
        ScheduleExpressionTimezone="Europe/Paris",
        FlexibleTimeWindow={"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 15},
        Target=target,
        Description="weekday report",
    )
    assert out["ScheduleArn"].endswith(f":schedule/{group}/nightly")
    got = sch.get_schedule(Name="nightly", GroupName=group)
    assert got["ScheduleExpressionTimezone"] == "Europe/Paris"
    assert got["FlexibleTimeWindow"] == {"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 15}
    assert got["Target"]["Input"] == '{"a": 1}' and got["State"] == "ENABLED"
    assert got["ActionAfterCompletion"] == "NONE" and got["Description"] == "weekday report"
    with pytest.raises(ClientError) as err:
        sch.get_schedule(Name="nightly")  # the default group has none
    assert error_code(err.value) == "ResourceNotFoundException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as err:
        sch.create_schedule(
            Name="nightly", GroupName=group, ScheduleExpression="rate(1 hour)",
            FlexibleTimeWindow={"Mode": "OFF"}, Target=target,
        )  # fmt: skip
    assert error_code(err.value) == "ConflictException"

    sch.update_schedule(
        Name="nightly", GroupName=group, ScheduleExpression="rate(2 hours)", State="DISABLED",
        FlexibleTimeWindow={"Mode": "OFF"}, Target={"Arn": fn, "RoleArn": ROLE},
    )  # fmt: skip
    got = sch.get_schedule(Name="nightly", GroupName=group)
    assert got["ScheduleExpression"] == "rate(2 hours)" and got["State"] == "DISABLED"
    assert "Input" not in got["Target"] and "Description" not in got  # Update replaces the whole schedule

    listed = sch.list_schedules(GroupName=group)["Schedules"]
    assert [s["Name"] for s in listed] == ["nightly"]
    assert listed[0]["Target"] == {"Arn": fn}
    assert sch.list_schedules(GroupName=group, State="ENABLED")["Schedules"] == []

    sch.delete_schedule_group(Name=group)
    with pytest.raises(ClientError) as err:
        sch.get_schedule(Name="nightly", GroupName=group)
    assert error_code(err.value) == "ResourceNotFoundException"


@pytest.mark.parametrize(
    ("expression", "zone"),
    [
        ("cron(0 12 * * * *)", None),
        ("cron(0 12 * * ?)", None),
        ("rate(1 minutes)", None),
        ("at(2026-13-01T00:00:00)", None),
        ("rate(5 minutes)", "Mars/Olympus"),
    ],
)
def test_invalid_schedules_are_validation_errors(
    sched_server: LaminaServer, fn: str, expression: str, zone: str | None
) -> None:
    sch = sched_server.client("scheduler")
    extra = {"ScheduleExpressionTimezone": zone} if zone else {}
    with pytest.raises(ClientError) as err:
        sch.create_schedule(
            Name=unique("bad"), ScheduleExpression=expression, FlexibleTimeWindow={"Mode": "OFF"},
            Target={"Arn": fn, "RoleArn": ROLE}, **extra,
        )  # fmt: skip
    assert error_code(err.value) == "ValidationException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_at_schedule_invokes_with_its_input_and_deletes_itself(sched_server: LaminaServer, fn: str) -> None:
    sch = sched_server.client("scheduler")
    marker = unique("at")
    name = unique("once")
    sch.create_schedule(
        Name=name,
        ScheduleExpression=at_in(2),
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": fn, "RoleArn": ROLE, "Input": json.dumps({"marker": marker, "k": "v"})},
        ActionAfterCompletion="DELETE",
    )
    messages = wait_for_log(sched_server.data_dir, group_of(fn), f"FIRED {marker}")
    line = next(m for m in messages if f"FIRED {marker}" in m)
    assert line.rstrip().endswith(json.dumps({"k": "v", "marker": marker}, sort_keys=True))

    def gone() -> bool:
        try:
            sch.get_schedule(Name=name)
        except ClientError as exc:
            return error_code(exc) == "ResourceNotFoundException"
        return False

    wait_until(gone)


def test_scheduled_rule_api_and_firing(sched_server: LaminaServer, fn: str) -> None:
    events = sched_server.client("events")
    name = unique("rule")
    with pytest.raises(ClientError) as err:
        events.put_rule(Name=name, ScheduleExpression="rate(1 minutes)")
    assert error_code(err.value) == "ValidationException"
    assert err.value.response["Error"]["Message"] == "Parameter ScheduleExpression is not valid."
    with pytest.raises(ClientError) as err:
        events.put_targets(Rule="no-such-rule", Targets=[{"Id": "1", "Arn": fn}])
    assert error_code(err.value) == "ResourceNotFoundException"

    arn = events.put_rule(Name=name, ScheduleExpression="cron(* * * * ? *)")["RuleArn"]
    assert arn == f"arn:aws:events:us-east-1:123456789012:rule/{name}"
    out = events.put_targets(
        Rule=name,
        Targets=[{"Id": "fn", "Arn": fn}, {"Id": "q", "Arn": "arn:aws:sqs:us-east-1:123456789012:q"}],
    )
    assert out["FailedEntryCount"] == 1 and out["FailedEntries"][0]["TargetId"] == "q"
    assert [t["Id"] for t in events.list_targets_by_rule(Rule=name)["Targets"]] == ["fn"]
    described = events.describe_rule(Name=name)
    assert described["ScheduleExpression"] == "cron(* * * * ? *)" and described["State"] == "ENABLED"
    assert name in [r["Name"] for r in events.list_rules(NamePrefix="rule-")["Rules"]]

    # cron's precision is the minute: the next minute boundary fires it
    messages = wait_for_log(sched_server.data_dir, group_of(fn), f'"resources": ["{arn}"]', timeout=75)
    fired = json.loads(next(m for m in messages if arn in m).split(" ", 3)[3])
    assert fired["detail-type"] == "Scheduled Event" and fired["source"] == "aws.events"
    assert fired["detail"] == {} and fired["account"] == "123456789012" and fired["time"].endswith(":00Z")

    with pytest.raises(ClientError) as err:
        events.delete_rule(Name=name)
    assert err.value.response["Error"]["Message"] == "Rule can't be deleted since it has targets."
    events.remove_targets(Rule=name, Ids=["fn"])
    events.delete_rule(Name=name)
    assert name not in [r["Name"] for r in events.list_rules()["Rules"]]


def test_lamina_schedules_lists_next_and_last_firing(sched_server: LaminaServer, fn: str) -> None:
    sch = sched_server.client("scheduler")
    name = unique("cli")
    sch.create_schedule(
        Name=name, ScheduleExpression="cron(30 4 * * ? *)", ScheduleExpressionTimezone="Asia/Tokyo",
        FlexibleTimeWindow={"Mode": "OFF"}, Target={"Arn": fn, "RoleArn": ROLE},
    )  # fmt: skip
    r = lamina(sched_server, "schedules", "--json")
    assert r.returncode == 0, r.stderr
    timer = next(t for t in json.loads(r.stdout)["Timers"] if t["Name"] == name)
    assert timer["State"] == "ENABLED" and timer["Kind"] == "schedule" and timer["LastFire"] is None
    next_local = datetime.fromtimestamp(timer["NextFire"], UTC).astimezone(tz=None)
    assert datetime.fromtimestamp(timer["NextFire"], UTC).strftime("%H:%M") == "19:30"  # 04:30 JST
    assert next_local > datetime.now(UTC).astimezone(tz=None)
    r = lamina(sched_server, "schedules")
    assert r.returncode == 0, r.stderr
    assert name in r.stdout and "cron(30 4 * * ? *) Asia/Tokyo" in r.stdout and "NEXT FIRING" in r.stdout
    sch.delete_schedule(Name=name)


def test_a_firing_is_not_doubled_by_a_kill_and_restart(sched_server: LaminaServer, fn: str) -> None:
    sch = sched_server.client("scheduler")
    first, barrier = unique("m1"), unique("m2")
    name = unique("crash")
    sch.create_schedule(
        Name=name,
        ScheduleExpression=at_in(2),
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": fn, "RoleArn": ROLE, "Input": json.dumps({"marker": first, "slow": True})},
    )
    fired = wait_until(lambda: (row := timer_row(sched_server.data_dir, name)) and row[1] is not None and row)
    # The firing is committed (and its invoke is running, slowly): kill -9 and restart.
    sched_server.stop(signal.SIGKILL)
    sched_server.start()
    assert timer_row(sched_server.data_dir, name) == fired  # not fired again at start
    sch = sched_server.client("scheduler")
    sch.create_schedule(
        Name=unique("barrier"),
        ScheduleExpression=at_in(2),
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": fn, "RoleArn": ROLE, "Input": json.dumps({"marker": barrier})},
        ActionAfterCompletion="DELETE",
    )
    wait_for_log(sched_server.data_dir, group_of(fn), f"FIRED {barrier}")
    wait_for_log(sched_server.data_dir, group_of(fn), f"FIRED {first}")
    runs = [m.split()[2] for m in log_messages(sched_server.data_dir, group_of(fn)) if f"FIRED {first}" in m]
    # One firing: one request id (a run cut short by the kill is redelivered with the same id).
    assert len(set(runs)) == 1, runs
    assert timer_row(sched_server.data_dir, name) == fired


def test_an_alias_target_is_invoked_through_the_alias(sched_server: LaminaServer, fn: str) -> None:
    lam = sched_server.client()
    name = fn.split(":")[6]
    version = lam.publish_version(FunctionName=name)["Version"]
    alias = unique("live")
    alias_arn = lam.create_alias(FunctionName=name, Name=alias, FunctionVersion=version)["AliasArn"]
    marker = unique("alias")
    sched_server.client("scheduler").create_schedule(
        Name=unique("via-alias"),
        ScheduleExpression=at_in(2),
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": alias_arn, "RoleArn": ROLE, "Input": json.dumps({"marker": marker})},
        ActionAfterCompletion="DELETE",
    )
    wait_for_log(sched_server.data_dir, group_of(fn), f"FIRED {marker}")
