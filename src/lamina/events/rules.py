"""EventBridge rules with a ScheduleExpression: PutRule, DescribeRule, DeleteRule, ListRules,
EnableRule, DisableRule, PutTargets, RemoveTargets, ListTargetsByRule.

AWS's rules: a schedule is ``rate()`` or ``cron()`` in UTC (``at()`` is Scheduler's), on the
default bus only; a rule needs a ScheduleExpression or an EventPattern (a pattern-only rule is
kept, but lamina has no event bus to match it against, so it never fires); a rule with targets
cannot be deleted ("Rule can't be deleted since it has targets."); at most 5 targets; targets
that cannot be put are answered in ``FailedEntries``, not as an error.  A ``rate()`` rule fires
one period after it was put.

Concurrency invariant: event loop only; memory changes after the store committed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from lamina.errors import EventsError
from lamina.events.expressions import ExpressionError, Rate, parse_expression, zone_of
from lamina.events.scheduler import Scheduler
from lamina.events.timers import TimerKind, serialized
from lamina.store.metadata import MetadataStore
from lamina.store.timers import TimerKey, TimerRow

DEFAULT_BUS = "default"
MAX_TARGETS = 5
_LIMIT = 100
_RULE_MEMBERS = ("Name", "Arn", "EventPattern", "ScheduleExpression", "State", "Description", "RoleArn")


def invalid(message: str) -> EventsError:
    return EventsError("ValidationException", message)


class RuleService:
    def __init__(self, *, store: MetadataStore, scheduler: Scheduler, account_id: str) -> None:
        self._store = store
        self._scheduler = scheduler
        self._account = account_id
        self._lock = asyncio.Lock()

    def _key(self, region: str, bus: str | None, name: str) -> TimerKey:
        return (TimerKind.RULE.value, region, _bus(bus), name)

    def _rule(self, region: str, bus: str | None, name: str) -> TimerRow:
        row = self._scheduler.get(self._key(region, bus, name))
        if row is None:
            raise EventsError(
                "ResourceNotFoundException", f"Rule {name} does not exist on EventBus {_bus(bus)}."
            )
        return row

    async def _save(self, row: TimerRow, now: float) -> None:
        self._scheduler.planned(row, now)
        await self._store.call(self._store.put_timer, row)
        self._scheduler.put(row)

    @serialized
    async def put_rule(self, region: str, p: dict[str, Any]) -> dict[str, Any]:
        name, bus = p["Name"], _bus(p.get("EventBusName"))
        expr_text = p.get("ScheduleExpression")
        if not expr_text and not p.get("EventPattern"):
            raise invalid("Parameter(s) EventPattern or ScheduleExpression must be specified.")
        period = 0.0
        if expr_text:
            if bus != DEFAULT_BUS:
                raise invalid("ScheduleExpression is supported only on the default event bus.")
            try:
                expr = parse_expression(str(expr_text), zone_of("UTC"), allow_at=False)
            except ExpressionError:
                raise invalid("Parameter ScheduleExpression is not valid.") from None
            if isinstance(expr, Rate):
                period = expr.period.total_seconds()
        now = time.time()
        old = self._scheduler.get(self._key(region, bus, name))
        arn_name = name if bus == DEFAULT_BUS else f"{bus}/{name}"
        data: dict[str, Any] = {
            "Name": name,
            "Arn": f"arn:aws:events:{region}:{self._account}:rule/{arn_name}",
            "EventBusName": bus,
            "State": p.get("State") or "ENABLED",
            "Targets": list(old.data.get("Targets", [])) if old else [],
        }
        for member in ("ScheduleExpression", "EventPattern", "Description", "RoleArn"):
            if p.get(member) is not None:
                data[member] = p[member]
        same = old is not None and old.data.get("ScheduleExpression") == expr_text
        anchor = old.anchor if old is not None and same else now + period
        row = TimerRow(TimerKind.RULE.value, region, bus, name, data, anchor)
        if old is not None:
            row.last_fire, row.last_result = old.last_fire, old.last_result
        await self._save(row, now)
        return {"RuleArn": data["Arn"]}

    def describe_rule(self, region: str, p: dict[str, Any]) -> dict[str, Any]:
        data = self._rule(region, p.get("EventBusName"), p["Name"]).data
        return {**_rule_out(data), "EventBusName": data["EventBusName"], "CreatedBy": self._account}

    @serialized
    async def set_state(self, region: str, p: dict[str, Any], state: str) -> dict[str, Any]:
        old = self._rule(region, p.get("EventBusName"), p["Name"])
        row = TimerRow(old.kind, old.region, old.scope, old.name, {**old.data, "State": state}, old.anchor)
        row.last_fire, row.last_result = old.last_fire, old.last_result
        await self._save(row, time.time())
        return {}

    @serialized
    async def delete_rule(self, region: str, p: dict[str, Any]) -> dict[str, Any]:
        row = self._scheduler.get(self._key(region, p.get("EventBusName"), p["Name"]))
        if row is None:
            return {}  # AWS: deleting a rule that does not exist succeeds
        if row.data.get("Targets"):
            raise invalid("Rule can't be deleted since it has targets.")
        await self._store.call(self._store.delete_timers, [row.key])
        self._scheduler.remove(row.key)
        return {}

    def list_rules(self, region: str, p: dict[str, Any]) -> dict[str, Any]:
        bus, prefix = _bus(p.get("EventBusName")), p.get("NamePrefix") or ""
        rows = sorted(
            (r for r in self._scheduler.timers(TimerKind.RULE, region) if r.scope == bus),
            key=lambda r: r.name,
        )
        found = [{**_rule_out(r.data), "EventBusName": bus} for r in rows if r.name.startswith(prefix)]
        start = int(p["NextToken"]) if str(p.get("NextToken") or "").isdigit() else 0
        end = start + min(int(p.get("Limit") or _LIMIT), _LIMIT)
        out: dict[str, Any] = {"Rules": found[start:end]}
        if end < len(found):
            out["NextToken"] = str(end)
        return out

    @serialized
    async def put_targets(self, region: str, p: dict[str, Any]) -> dict[str, Any]:
        old = self._rule(region, p.get("EventBusName"), p["Rule"])
        targets = {t["Id"]: t for t in old.data.get("Targets", [])}
        failed: list[dict[str, str]] = []
        for target in p["Targets"]:
            problem = _target_problem(target)
            if problem is not None:
                failed.append(
                    {"TargetId": target["Id"], "ErrorCode": "ValidationException", "ErrorMessage": problem}
                )
                continue
            targets[target["Id"]] = dict(target)
        if len(targets) > MAX_TARGETS:
            raise EventsError(
                "LimitExceededException",
                f"The requested resource exceeds the maximum number allowed ({MAX_TARGETS}).",
            )
        await self._replace_targets(old, list(targets.values()))
        return {"FailedEntryCount": len(failed), "FailedEntries": failed}

    @serialized
    async def remove_targets(self, region: str, p: dict[str, Any]) -> dict[str, Any]:
        old = self._rule(region, p.get("EventBusName"), p["Rule"])
        ids = set(p["Ids"])
        await self._replace_targets(old, [t for t in old.data.get("Targets", []) if t["Id"] not in ids])
        return {"FailedEntryCount": 0, "FailedEntries": []}

    async def _replace_targets(self, old: TimerRow, targets: list[dict[str, Any]]) -> None:
        """Targets do not move the time: only the document is written, so a firing committing
        meanwhile keeps its advance (in the store and in memory)."""
        data = {**old.data, "Targets": targets}
        await self._store.call(self._store.put_timer_data, old.key, data)
        current = self._scheduler.get(old.key)
        if current is not None:
            current.data = data

    def list_targets(self, region: str, p: dict[str, Any]) -> dict[str, Any]:
        row = self._rule(region, p.get("EventBusName"), p["Rule"])
        return {"Targets": list(row.data.get("Targets", []))}


def _bus(name: str | None) -> str:
    """A bus named by name or ARN (``arn:aws:events:…:event-bus/NAME``)."""
    if not name:
        return DEFAULT_BUS
    return name.rsplit("event-bus/", 1)[-1] if name.startswith("arn:") else name


def _rule_out(data: dict[str, Any]) -> dict[str, Any]:
    return {k: data[k] for k in _RULE_MEMBERS if k in data}


def _target_problem(target: dict[str, Any]) -> str | None:
    arn = str(target["Arn"])
    if ":lambda:" not in arn or ":function:" not in arn:
        return f"Target {arn}: lamina's scheduled rules invoke Lambda functions and aliases only."
    if target.get("InputTransformer") is not None:
        return "InputTransformer is not supported by lamina; use Input or InputPath."
    if target.get("Input") is not None and target.get("InputPath") is not None:
        return "Only one of Input, InputPath, or InputTransformer can be specified."
    dlq = (target.get("DeadLetterConfig") or {}).get("Arn")
    if dlq is not None and not str(dlq).startswith("arn:aws:sqs:"):
        return f"Invalid DeadLetterConfig ARN {dlq}: it must be an Amazon SQS queue."
    return None
