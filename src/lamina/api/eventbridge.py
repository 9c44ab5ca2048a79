"""EventBridge's rule operations (json protocol, ``X-Amz-Target: AWSEvents.<Operation>``).

``EventsService.handle`` is the one entry point the HTTP layer calls: parse and validate from the
botocore model, run the handler, serialize.  Thin: the rules live in lamina.events.rules.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from lamina.errors import EventsError
from lamina.events.rules import RuleService
from lamina.protocol.jsonrpc import JsonProtocol
from lamina.protocol.model import load_service_model
from lamina.types import Output, Params, RequestContext

TARGET_PREFIX = "AWSEvents"
EventsHandler = Callable[[RequestContext, Params], Awaitable[Output]]


class EventsService:
    def __init__(self, rules: RuleService) -> None:
        self._protocol = JsonProtocol(
            load_service_model("events"), validation_code="ValidationException", error=EventsError
        )

        def state(value: str) -> EventsHandler:
            async def set_state(ctx: RequestContext, p: Params) -> Output:
                return await rules.set_state(ctx.region, dict(p), value)

            return set_state

        async def put_rule(ctx: RequestContext, p: Params) -> Output:
            return await rules.put_rule(ctx.region, dict(p))

        async def describe_rule(ctx: RequestContext, p: Params) -> Output:
            return rules.describe_rule(ctx.region, dict(p))

        async def delete_rule(ctx: RequestContext, p: Params) -> Output:
            return await rules.delete_rule(ctx.region, dict(p))

        async def list_rules(ctx: RequestContext, p: Params) -> Output:
            return rules.list_rules(ctx.region, dict(p))

        async def put_targets(ctx: RequestContext, p: Params) -> Output:
            return await rules.put_targets(ctx.region, dict(p))

        async def remove_targets(ctx: RequestContext, p: Params) -> Output:
            return await rules.remove_targets(ctx.region, dict(p))

        async def list_targets_by_rule(ctx: RequestContext, p: Params) -> Output:
            return rules.list_targets(ctx.region, dict(p))

        self._handlers: dict[str, EventsHandler] = {
            "PutRule": put_rule,
            "DescribeRule": describe_rule,
            "DeleteRule": delete_rule,
            "ListRules": list_rules,
            "EnableRule": state("ENABLED"),
            "DisableRule": state("DISABLED"),
            "PutTargets": put_targets,
            "RemoveTargets": remove_targets,
            "ListTargetsByRule": list_targets_by_rule,
        }

    async def handle(self, operation: str, body: bytes, ctx: RequestContext) -> bytes:
        op = self._protocol.operation(operation)
        handler = self._handlers.get(operation)
        if handler is None:
            raise EventsError(
                "NotImplementedException", f"lamina does not implement the EventBridge {operation} operation."
            )
        params: dict[str, Any] = self._protocol.parse(op, body)
        return self._protocol.serialize(op, await handler(ctx, params))
