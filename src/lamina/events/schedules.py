"""EventBridge Scheduler's API: schedules and schedule groups (Create/Get/Update/Delete/List).

The rules are AWS's: a schedule lives in a group (``default`` always exists and cannot be
deleted); names are unique per group (``ConflictException``); Update replaces the whole schedule;
deleting a group deletes its schedules.  Targets are Lambda functions or aliases (the only thing
lamina runs); a dead-letter queue is an SQS queue.  Expressions are checked by
``lamina.events.expressions``; firing is ``lamina.events.scheduler``'s business.

Concurrency invariant: event loop only; memory changes after the store committed.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

from lamina.errors import AwsError
from lamina.events.expressions import ExpressionError, parse_expression, zone_of
from lamina.events.scheduler import Scheduler
from lamina.events.timers import TimerKind, serialized
from lamina.store.metadata import MetadataStore
from lamina.store.timers import TimerKey, TimerRow

DEFAULT_GROUP = "default"
START_GRACE_S = 300  # AWS: a StartDate may be at most 5 minutes in the past
_MAX_RESULTS = 100


def invalid(message: str) -> AwsError:
    return AwsError("ValidationException", message)


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    return value.timestamp() if isinstance(value, datetime) else float(value)


def _page(items: list[Any], token: str | None, limit: int | None) -> tuple[list[Any], str | None]:
    start = int(token) if token and token.isdigit() else 0
    size = min(limit or _MAX_RESULTS, _MAX_RESULTS)
    end = start + size
    return items[start:end], (str(end) if end < len(items) else None)


class ScheduleService:
    def __init__(self, *, store: MetadataStore, scheduler: Scheduler, account_id: str) -> None:
        self._store = store
        self._scheduler = scheduler
        self._account = account_id
        self._lock = asyncio.Lock()
        self._groups: dict[tuple[str, str], dict[str, Any]] = {}

    async def load(self) -> None:
        for region, name, data in await self._store.call(self._store.load_schedule_groups):
            self._groups[(region, name)] = data

    def _arn(self, region: str, kind: str, name: str) -> str:
        return f"arn:aws:scheduler:{region}:{self._account}:{kind}/{name}"

    # -- groups ----------------------------------------------------------------------------------
    def _group(self, region: str, name: str | None) -> dict[str, Any]:
        name = name or DEFAULT_GROUP
        group = self._groups.get((region, name))
        if group is not None:
            return group
        if name == DEFAULT_GROUP:
            return {
                "Arn": self._arn(region, "schedule-group", DEFAULT_GROUP),
                "Name": DEFAULT_GROUP,
                "State": "ACTIVE",
                "CreationDate": time.time(),  # stored with the region's first schedule
                "LastModificationDate": time.time(),
            }
        raise AwsError("ResourceNotFoundException", f"Schedule group {name} does not exist.")

    @serialized
    async def create_group(self, region: str, name: str) -> dict[str, Any]:
        if name == DEFAULT_GROUP or (region, name) in self._groups:
            raise AwsError("ConflictException", f"Schedule group {name} already exists.")
        now = time.time()
        data = {
            "Arn": self._arn(region, "schedule-group", name),
            "Name": name,
            "State": "ACTIVE",
            "CreationDate": now,
            "LastModificationDate": now,
        }
        await self._store.call(self._store.put_schedule_group, region, name, data)
        self._groups[(region, name)] = data
        return {"ScheduleGroupArn": data["Arn"]}

    def get_group(self, region: str, name: str) -> dict[str, Any]:
        return _group_out(self._group(region, name))

    @serialized
    async def delete_group(self, region: str, name: str) -> dict[str, Any]:
        if name == DEFAULT_GROUP:
            raise invalid("You cannot delete the default schedule group.")
        self._group(region, name)
        await self._store.call(self._store.delete_schedule_group, region, name)
        del self._groups[(region, name)]
        for row in self._scheduler.timers(TimerKind.SCHEDULE, region):
            if row.scope == name:
                self._scheduler.remove(row.key)
        return {}

    def list_groups(
        self, region: str, prefix: str | None, token: str | None, limit: int | None
    ) -> dict[str, Any]:
        names = {DEFAULT_GROUP} | {n for r, n in self._groups if r == region}
        found = [self._group(region, n) for n in sorted(names) if n.startswith(prefix or "")]
        page, nxt = _page(found, token, limit)
        out: dict[str, Any] = {"ScheduleGroups": [_group_out(g) for g in page]}
        if nxt:
            out["NextToken"] = nxt
        return out

    # -- schedules -------------------------------------------------------------------------------
    def _key(self, region: str, group: str | None, name: str) -> TimerKey:
        return (TimerKind.SCHEDULE.value, region, group or DEFAULT_GROUP, name)

    def _existing(self, region: str, group: str | None, name: str) -> TimerRow:
        self._group(region, group)
        row = self._scheduler.get(self._key(region, group, name))
        if row is None:
            raise AwsError("ResourceNotFoundException", f"Schedule {name} does not exist.")
        return row

    def _document(self, region: str, p: dict[str, Any], created: float) -> dict[str, Any]:
        """The stored schedule, checked as AWS checks it."""
        now = time.time()
        expr_text = str(p["ScheduleExpression"])
        try:
            zone = zone_of(p.get("ScheduleExpressionTimezone"))
        except ExpressionError:
            raise invalid(f"Invalid timezone: {p.get('ScheduleExpressionTimezone')}") from None
        try:
            parse_expression(expr_text, zone)
        except ExpressionError:
            raise invalid(f"Invalid Schedule Expression {expr_text}.") from None
        start, end = _epoch(p.get("StartDate")), _epoch(p.get("EndDate"))
        if start is not None and start < now - START_GRACE_S:
            raise invalid(
                "The StartDate you specify cannot be earlier than 5 minutes prior to the current time."
            )
        if end is not None and end < now:
            raise invalid("The EndDate you specify cannot be earlier than the current time.")
        if start is not None and end is not None and end <= start:
            raise invalid("The EndDate must be after the StartDate.")
        window = dict(p["FlexibleTimeWindow"])
        if window.get("Mode") == "FLEXIBLE" and window.get("MaximumWindowInMinutes") is None:
            raise invalid(
                "MaximumWindowInMinutes must be specified when the FlexibleTimeWindow Mode is FLEXIBLE."
            )
        if window.get("Mode") == "OFF" and window.get("MaximumWindowInMinutes") is not None:
            raise invalid(
                "MaximumWindowInMinutes must not be specified when the FlexibleTimeWindow Mode is OFF."
            )
        target = dict(p["Target"])
        if ":lambda:" not in str(target["Arn"]) or ":function:" not in str(target["Arn"]):
            raise invalid(
                f"Invalid target ARN {target['Arn']}: lamina's schedules invoke Lambda functions and aliases."
            )
        dlq = (target.get("DeadLetterConfig") or {}).get("Arn")
        if dlq is not None and not str(dlq).startswith("arn:aws:sqs:"):
            raise invalid(f"Invalid DeadLetterConfig ARN {dlq}: it must be an Amazon SQS queue.")
        group = p.get("GroupName") or DEFAULT_GROUP
        doc: dict[str, Any] = {
            "Arn": self._arn(region, "schedule", f"{group}/{p['Name']}"),
            "Name": p["Name"],
            "GroupName": group,
            "ScheduleExpression": expr_text,
            "ScheduleExpressionTimezone": p.get("ScheduleExpressionTimezone") or "UTC",
            "State": p.get("State") or "ENABLED",
            "FlexibleTimeWindow": window,
            "Target": target,
            "ActionAfterCompletion": p.get("ActionAfterCompletion") or "NONE",
            "CreationDate": created,
            "LastModificationDate": now,
        }
        for member in ("Description", "KmsKeyArn"):
            if p.get(member) is not None:
                doc[member] = p[member]
        if start is not None:
            doc["StartDate"] = start
        if end is not None:
            doc["EndDate"] = end
        return doc

    @serialized
    async def create(self, region: str, p: dict[str, Any]) -> dict[str, Any]:
        self._group(region, p.get("GroupName"))
        key = self._key(region, p.get("GroupName"), p["Name"])
        if self._scheduler.get(key) is not None:
            raise AwsError("ConflictException", f"Schedule {p['Name']} already exists.")
        doc = self._document(region, p, time.time())
        if key[2] == DEFAULT_GROUP and (region, DEFAULT_GROUP) not in self._groups:
            group = self._group(region, DEFAULT_GROUP)
            await self._store.call(self._store.put_schedule_group, region, DEFAULT_GROUP, group)
            self._groups[(region, DEFAULT_GROUP)] = group
        return await self._save(key, doc, None)

    @serialized
    async def update(self, region: str, p: dict[str, Any]) -> dict[str, Any]:
        old = self._existing(region, p.get("GroupName"), p["Name"])
        doc = self._document(region, p, float(old.data["CreationDate"]))
        return await self._save(old.key, doc, old)

    async def _save(self, key: TimerKey, doc: dict[str, Any], old: TimerRow | None) -> dict[str, Any]:
        _, region, group, name = key
        now = time.time()
        row = TimerRow(TimerKind.SCHEDULE.value, region, group, name, doc, anchor=doc.get("StartDate") or now)
        if old is not None:
            row.last_fire, row.last_result = old.last_fire, old.last_result
        self._scheduler.planned(row, now - 0.001)  # a rate() with no StartDate runs at once (AWS)
        await self._store.call(self._store.put_timer, row)
        self._scheduler.put(row)
        return {"ScheduleArn": doc["Arn"]}

    def get(self, region: str, name: str, group: str | None) -> dict[str, Any]:
        return dict(self._existing(region, group, name).data)

    @serialized
    async def delete(self, region: str, name: str, group: str | None) -> dict[str, Any]:
        row = self._existing(region, group, name)
        await self._store.call(self._store.delete_timers, [row.key])
        self._scheduler.remove(row.key)
        return {}

    def list(self, region: str, p: dict[str, Any]) -> dict[str, Any]:
        group, prefix, state = p.get("GroupName"), p.get("NamePrefix") or "", p.get("State")
        rows = sorted(self._scheduler.timers(TimerKind.SCHEDULE, region), key=lambda r: (r.scope, r.name))
        found = [
            r.data
            for r in rows
            if (group is None or r.scope == group)
            and r.name.startswith(prefix)
            and (state is None or r.data.get("State") == state)
        ]
        page, nxt = _page(found, p.get("NextToken"), p.get("MaxResults"))
        out: dict[str, Any] = {"Schedules": [_summary(d) for d in page]}
        if nxt:
            out["NextToken"] = nxt
        return out


def _group_out(g: dict[str, Any]) -> dict[str, Any]:
    return {k: g[k] for k in ("Arn", "Name", "State", "CreationDate", "LastModificationDate")}


def _summary(d: dict[str, Any]) -> dict[str, Any]:
    return {
        "Arn": d["Arn"],
        "Name": d["Name"],
        "GroupName": d["GroupName"],
        "State": d["State"],
        "CreationDate": d["CreationDate"],
        "LastModificationDate": d["LastModificationDate"],
        "Target": {"Arn": d["Target"]["Arn"]},
    }
