"""The CloudWatch Logs service behind ``handle()``: protocol, errors, tokens, retention, size bound."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from lamina.api.logs import LogsService
from lamina.errors import AwsError
from lamina.execution.types import LogEvent
from lamina.telemetry.logmaint import DAY_MS
from lamina.telemetry.logstore import LogLimits, LogStore
from lamina.types import RequestContext

CTX = RequestContext(request_id="r", region="eu-west-1", access_key_id="k", base_url="http://x")
NOW_MS = 1_700_000_000_000


class Clock:
    def __init__(self) -> None:
        self.ms = NOW_MS

    def __call__(self) -> float:
        return self.ms / 1000


Call = Callable[..., Awaitable[dict[str, Any]]]


def run(tmp_path: Path, body: Callable[[Call, LogStore, Clock], Awaitable[None]], **limits: Any) -> None:
    async def main() -> None:
        clock = Clock()
        store = LogStore(
            tmp_path / "logs.sqlite3", flush_interval_s=3600, limits=LogLimits(**limits), clock=clock
        )
        store.start()
        service = LogsService(store, "123456789012")

        async def call(op: str, **params: Any) -> dict[str, Any]:
            out = await service.handle(op, json.dumps(params).encode(), CTX)
            return json.loads(out) if out else {}

        try:
            await body(call, store, clock)
        finally:
            await store.close()

    asyncio.run(main())


async def error_of(call: Call, op: str, **params: Any) -> tuple[str, int, str]:
    with pytest.raises(AwsError) as info:
        await call(op, **params)
    return info.value.code, info.value.status, info.value.message


def test_groups_streams_and_errors(tmp_path: Path) -> None:
    async def body(call: Call, store: LogStore, clock: Clock) -> None:
        for i in range(3):
            await call("CreateLogGroup", logGroupName=f"/app/{i}")
        assert await error_of(call, "CreateLogGroup", logGroupName="/app/0") == (
            "ResourceAlreadyExistsException",
            400,
            "The specified log group already exists",
        )
        assert (await error_of(call, "DeleteLogGroup", logGroupName="/nope"))[:2] == (
            "ResourceNotFoundException",
            400,
        )
        code, status, message = await error_of(call, "CreateLogGroup", logGroupName="bad name!")
        assert (code, status) == ("InvalidParameterException", 400)
        assert message.startswith("1 validation error detected: Value 'bad name!' at 'logGroupName'")
        assert (await error_of(call, "DescribeLogGroups", limit=0))[0] == "InvalidParameterException"
        assert (await error_of(call, "DescribeLogGroups", limit="x"))[0] == "SerializationException"
        assert (await error_of(call, "NoSuchOperation"))[0] == "UnknownOperationException"
        assert (await error_of(call, "StartLiveTail", logGroupIdentifiers=["/app/0"]))[:2] == (
            "NotImplementedException",
            501,
        )
        # pagination by name, then a prefix
        page = await call("DescribeLogGroups", limit=2)
        assert [g["logGroupName"] for g in page["logGroups"]] == ["/app/0", "/app/1"]
        assert page["logGroups"][0]["arn"] == "arn:aws:logs:eu-west-1:123456789012:log-group:/app/0:*"
        rest = await call("DescribeLogGroups", limit=2, nextToken=page["nextToken"])
        assert [g["logGroupName"] for g in rest["logGroups"]] == ["/app/2"] and "nextToken" not in rest
        assert (await error_of(call, "DescribeLogGroups", nextToken="garbage"))[
            0
        ] == "InvalidParameterException"
        assert len((await call("DescribeLogGroups", logGroupNamePrefix="/app/1"))["logGroups"]) == 1
        # streams: ordered by name or last event time, descending, paginated
        for name in ("b", "a", "c"):
            await call("CreateLogStream", logGroupName="/app/0", logStreamName=name)
        assert (await error_of(call, "CreateLogStream", logGroupName="/app/0", logStreamName="a"))[0] == (
            "ResourceAlreadyExistsException"
        )
        assert (await error_of(call, "CreateLogStream", logGroupName="/nope", logStreamName="a"))[0] == (
            "ResourceNotFoundException"
        )
        for i, name in enumerate(("c", "a", "b")):
            await call(
                "PutLogEvents",
                logGroupName="/app/0",
                logStreamName=name,
                logEvents=[{"timestamp": NOW_MS - 100 + i, "message": name}],
            )
        by_name = await call("DescribeLogStreams", logGroupName="/app/0", limit=2)
        assert [s["logStreamName"] for s in by_name["logStreams"]] == ["a", "b"]
        more = await call(
            "DescribeLogStreams", logGroupName="/app/0", limit=2, nextToken=by_name["nextToken"]
        )
        assert [s["logStreamName"] for s in more["logStreams"]] == ["c"]
        by_time = await call(
            "DescribeLogStreams", logGroupIdentifier="/app/0", orderBy="LastEventTime", descending=True
        )
        assert [s["logStreamName"] for s in by_time["logStreams"]] == ["b", "a", "c"]
        assert (
            await error_of(
                call,
                "DescribeLogStreams",
                logGroupName="/app/0",
                orderBy="LastEventTime",
                logStreamNamePrefix="a",
            )
        )[0] == "InvalidParameterException"
        arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/app/0"  # logGroupArn (no :*)
        assert len((await call("DescribeLogStreams", logGroupIdentifier=arn))["logStreams"]) == 3
        await call("DeleteLogGroup", logGroupName="/app/0")
        assert (await error_of(call, "DescribeLogStreams", logGroupName="/app/0"))[
            0
        ] == "ResourceNotFoundException"

    run(tmp_path, body)


def test_get_log_events_tokens(tmp_path: Path) -> None:
    async def body(call: Call, store: LogStore, clock: Clock) -> None:
        # five events, two in the same millisecond: the token position breaks the tie exactly
        store.put_direct("/g", "s", [LogEvent(NOW_MS + t, f"m{i}") for i, t in enumerate([1, 2, 2, 3, 4])])
        head = await call("GetLogEvents", logGroupName="/g", logStreamName="s", startFromHead=True, limit=2)
        assert [e["message"] for e in head["events"]] == ["m0", "m1"]
        assert head["nextForwardToken"].startswith("f/") and head["nextBackwardToken"].startswith("b/")
        nxt = await call(
            "GetLogEvents", logGroupName="/g", logStreamName="s", limit=2, nextToken=head["nextForwardToken"]
        )
        assert [e["message"] for e in nxt["events"]] == ["m2", "m3"]
        last = await call(
            "GetLogEvents", logGroupName="/g", logStreamName="s", limit=2, nextToken=nxt["nextForwardToken"]
        )
        assert [e["message"] for e in last["events"]] == ["m4"]
        end = await call(
            "GetLogEvents", logGroupName="/g", logStreamName="s", nextToken=last["nextForwardToken"]
        )
        assert (
            end["events"] == [] and end["nextForwardToken"] == last["nextForwardToken"]
        )  # same token: at the end
        # new events show up behind the same forward token (what --follow relies on)
        store.put_direct("/g", "s", [LogEvent(NOW_MS + 9, "m5")])
        grown = await call(
            "GetLogEvents", logGroupName="/g", logStreamName="s", nextToken=end["nextForwardToken"]
        )
        assert [e["message"] for e in grown["events"]] == ["m5"]
        # without a token the newest come first ... and backward tokens walk towards the oldest
        tail = await call("GetLogEvents", logGroupName="/g", logStreamName="s", limit=2)
        assert [e["message"] for e in tail["events"]] == ["m4", "m5"]
        back = await call(
            "GetLogEvents", logGroupName="/g", logStreamName="s", limit=3, nextToken=tail["nextBackwardToken"]
        )
        assert [e["message"] for e in back["events"]] == ["m1", "m2", "m3"]
        first = await call(
            "GetLogEvents", logGroupName="/g", logStreamName="s", limit=3, nextToken=back["nextBackwardToken"]
        )
        assert [e["message"] for e in first["events"]] == ["m0"]
        none = await call(
            "GetLogEvents", logGroupName="/g", logStreamName="s", nextToken=first["nextBackwardToken"]
        )
        assert none["events"] == [] and none["nextBackwardToken"] == first["nextBackwardToken"]
        # a time window: [start, end)
        window = await call(
            "GetLogEvents",
            logGroupName="/g",
            logStreamName="s",
            startFromHead=True,
            startTime=NOW_MS + 2,
            endTime=NOW_MS + 4,
        )
        assert [e["message"] for e in window["events"]] == ["m1", "m2", "m3"]
        assert (await error_of(call, "GetLogEvents", logGroupName="/g", logStreamName="s", nextToken="f/x"))[
            0
        ] == ("InvalidParameterException")
        assert (await error_of(call, "GetLogEvents", logGroupName="/g", logStreamName="nope"))[2] == (
            "The specified log stream does not exist."
        )

    run(tmp_path, body)


def test_filter_log_events_pages_and_stream_filters(tmp_path: Path) -> None:
    async def body(call: Call, store: LogStore, clock: Clock) -> None:
        for i in range(30):
            stream = "2024/01/01/[$LATEST]aa" if i % 2 else "2024/01/01/[1]bb"
            level = "ERROR" if i % 3 == 0 else "INFO"
            store.put_direct("/g", stream, [LogEvent(NOW_MS + i, json.dumps({"level": level, "i": i}))])
        pages, token = [], None
        while True:
            page = await call(
                "FilterLogEvents",
                logGroupName="/g",
                filterPattern='{ $.level = "ERROR" }',
                limit=3,
                **({"nextToken": token} if token else {}),
            )
            pages.append([json.loads(e["message"])["i"] for e in page["events"]])
            token = page.get("nextToken")
            if not token:
                break
        assert [i for p in pages for i in p] == list(range(0, 30, 3))
        assert all(len(p) <= 3 for p in pages)
        odd = await call(
            "FilterLogEvents",
            logGroupName="/g",
            logStreamNamePrefix="2024/01/01/[$LATEST]",
            startTime=NOW_MS + 10,
            endTime=NOW_MS + 15,
        )
        assert [json.loads(e["message"])["i"] for e in odd["events"]] == [11, 13, 15]
        assert odd["events"][0]["logStreamName"] == "2024/01/01/[$LATEST]aa" and odd["events"][0]["eventId"]
        named = await call("FilterLogEvents", logGroupName="/g", logStreamNames=["2024/01/01/[1]bb"], limit=2)
        assert [json.loads(e["message"])["i"] for e in named["events"]] == [0, 2]
        assert (await error_of(call, "FilterLogEvents", logGroupName="/g", filterPattern="{ $.x = "))[0] == (
            "InvalidParameterException"
        )
        assert (
            await error_of(
                call, "FilterLogEvents", logGroupName="/g", logStreamNames=["a"], logStreamNamePrefix="a"
            )
        )[0] == "InvalidParameterException"
        assert (await error_of(call, "FilterLogEvents", logGroupName="/nope"))[
            0
        ] == "ResourceNotFoundException"

    run(tmp_path, body)


def test_retention_is_enforced(tmp_path: Path) -> None:
    async def body(call: Call, store: LogStore, clock: Clock) -> None:
        await call("CreateLogGroup", logGroupName="/r")
        await call("CreateLogStream", logGroupName="/r", logStreamName="old")
        await call("CreateLogStream", logGroupName="/r", logStreamName="new")
        out = await call(
            "PutLogEvents",
            logGroupName="/r",
            logStreamName="old",
            logEvents=[
                {"timestamp": NOW_MS - 15 * DAY_MS, "message": "too old"},
                {"timestamp": NOW_MS - 15 * DAY_MS + 1, "message": "too old too"},
            ],
        )
        assert out == {"rejectedLogEventsInfo": {"tooOldLogEventEndIndex": 1}}
        code, _, message = await error_of(
            call,
            "PutLogEvents",
            logGroupName="/r",
            logStreamName="old",
            logEvents=[
                {"timestamp": NOW_MS - 3 * DAY_MS, "message": "three days"},
                {"timestamp": NOW_MS - DAY_MS, "message": "one day"},
            ],
        )
        assert code == "InvalidParameterException" and "24 hours" in message
        for days in (3, 2):
            await call(
                "PutLogEvents",
                logGroupName="/r",
                logStreamName="old",
                logEvents=[{"timestamp": NOW_MS - days * DAY_MS - 1000, "message": f"{days} days"}],
            )
        await call(
            "PutLogEvents",
            logGroupName="/r",
            logStreamName="new",
            logEvents=[{"timestamp": NOW_MS, "message": "today"}],
        )
        code, _, message = await error_of(call, "PutRetentionPolicy", logGroupName="/r", retentionInDays=2)
        assert (
            code == "InvalidParameterException"
            and "Member must satisfy enum value set: [1, 3, 5, 7" in message
        )
        await call("PutRetentionPolicy", logGroupName="/r", retentionInDays=3)
        groups = (await call("DescribeLogGroups", logGroupNamePrefix="/r"))["logGroups"]
        assert groups[0]["retentionInDays"] == 3
        messages = [e["message"] for e in (await call("FilterLogEvents", logGroupName="/r"))["events"]]
        assert messages == ["2 days", "today"]  # three days old is past a 3-day retention
        await call("PutRetentionPolicy", logGroupName="/r", retentionInDays=1)  # deletes now
        assert [e["message"] for e in (await call("FilterLogEvents", logGroupName="/r"))["events"]] == [
            "today"
        ]
        streams = (await call("DescribeLogStreams", logGroupName="/r"))["logStreams"]
        assert [s["logStreamName"] for s in streams] == ["new"]  # emptied by retention: gone too
        clock.ms += 2 * DAY_MS  # time passes: the maintenance round expires the rest
        assert await store.expire() == 1
        assert (await call("FilterLogEvents", logGroupName="/r"))["events"] == []
        await call("DeleteRetentionPolicy", logGroupName="/r")
        assert (
            "retentionInDays"
            not in (await call("DescribeLogGroups", logGroupNamePrefix="/r"))["logGroups"][0]
        )
        assert (await error_of(call, "PutRetentionPolicy", logGroupName="/x", retentionInDays=1))[0] == (
            "ResourceNotFoundException"
        )

    run(tmp_path, body)


def test_group_size_is_bounded(tmp_path: Path) -> None:
    async def body(call: Call, store: LogStore, clock: Clock) -> None:
        line = "z" * 974  # 1,000 bytes as CloudWatch counts
        for batch in range(10):
            store.put("/aws/lambda/big", "s", [LogEvent(NOW_MS + batch * 100 + i, line) for i in range(100)])
            store.put("/aws/lambda/small", "s", [LogEvent(NOW_MS + batch, "tiny")])
            await store.flush()
        groups = {g["logGroupName"]: g for g in (await call("DescribeLogGroups"))["logGroups"]}
        assert groups["/aws/lambda/big"]["storedBytes"] <= 200_000
        assert groups["/aws/lambda/small"]["storedBytes"] == 10 * 30  # untouched by its neighbour
        kept = (await call("FilterLogEvents", logGroupName="/aws/lambda/big"))["events"]
        assert kept and kept[-1]["timestamp"] == NOW_MS + 999  # the newest survive, the oldest went
        assert kept[0]["timestamp"] > NOW_MS + 700
        assert store.stats()["trimmed_events"] == 1000 - len(kept)

    run(tmp_path, body, max_group_bytes=200_000)


def test_function_groups_get_the_default_retention_and_maintenance_expires(tmp_path: Path) -> None:
    async def body(call: Call, store: LogStore, clock: Clock) -> None:
        store.put("/aws/lambda/f", "s", [LogEvent(NOW_MS - 2 * DAY_MS, "old"), LogEvent(NOW_MS, "new")])
        groups = (await call("DescribeLogGroups"))["logGroups"]
        assert [(g["logGroupName"], g["retentionInDays"]) for g in groups] == [("/aws/lambda/f", 1)]
        # the background round (every loop here) deletes what retention hides from reads
        deadline = asyncio.get_running_loop().time() + 10
        while store.expired_events < 1:
            assert asyncio.get_running_loop().time() < deadline, "maintenance never expired the old event"
            store._wake.set()  # a flusher round now rather than after flush_interval_s
            await asyncio.sleep(0.01)  # polling the background task's counter
        assert [e.message for e in await store.events("/aws/lambda/f")] == ["new"]

    run(tmp_path, body, default_retention_days=1, maintenance_interval_s=0.0)


def test_log_settings_are_checked() -> None:
    from lamina.config import Settings

    env = {"LAMINA_DATA_DIR": "/tmp/x"}
    assert Settings.from_env(env).log_retention_days is None
    assert Settings.from_env({**env, "LAMINA_LOG_RETENTION_DAYS": "14"}).log_retention_days == 14
    with pytest.raises(ValueError, match="one of CloudWatch's periods"):
        Settings.from_env({**env, "LAMINA_LOG_RETENTION_DAYS": "2"})
    with pytest.raises(ValueError, match="non-negative"):
        Settings.from_env({**env, "LAMINA_LOG_RATE_KB": "-1"})
