"""Event source mapping handlers: thin -- the rules live in lamina.events."""

from __future__ import annotations

from lamina.events.mappings import EsmService
from lamina.types import Handler, Output, Params, RequestContext


def handlers(mappings: EsmService) -> dict[str, Handler]:
    async def create_event_source_mapping(ctx: RequestContext, p: Params) -> Output:
        return await mappings.create(ctx.region, dict(p))

    async def get_event_source_mapping(ctx: RequestContext, p: Params) -> Output:
        return mappings.get(ctx.region, p["UUID"])

    async def update_event_source_mapping(ctx: RequestContext, p: Params) -> Output:
        return await mappings.update(ctx.region, dict(p))

    async def delete_event_source_mapping(ctx: RequestContext, p: Params) -> Output:
        return await mappings.delete(ctx.region, p["UUID"])

    async def list_event_source_mappings(ctx: RequestContext, p: Params) -> Output:
        return mappings.list(
            ctx.region, p.get("EventSourceArn"), p.get("FunctionName"), p.get("Marker"), p.get("MaxItems")
        )

    return {
        "CreateEventSourceMapping": create_event_source_mapping,
        "GetEventSourceMapping": get_event_source_mapping,
        "UpdateEventSourceMapping": update_event_source_mapping,
        "DeleteEventSourceMapping": delete_event_source_mapping,
        "ListEventSourceMappings": list_event_source_mappings,
    }
