"""Event invoke config handlers: thin — the rules live in lamina.functions.event_invoke."""

from __future__ import annotations

from lamina.functions.event_invoke import EventInvokeService
from lamina.types import Handler, Output, Params, RequestContext


def handlers(configs: EventInvokeService) -> dict[str, Handler]:
    async def put_function_event_invoke_config(ctx: RequestContext, p: Params) -> Output:
        return await configs.put(ctx.region, p["FunctionName"], p.get("Qualifier"), dict(p))

    async def update_function_event_invoke_config(ctx: RequestContext, p: Params) -> Output:
        return await configs.update(ctx.region, p["FunctionName"], p.get("Qualifier"), dict(p))

    async def get_function_event_invoke_config(ctx: RequestContext, p: Params) -> Output:
        return configs.get(ctx.region, p["FunctionName"], p.get("Qualifier"))

    async def delete_function_event_invoke_config(ctx: RequestContext, p: Params) -> Output:
        await configs.delete(ctx.region, p["FunctionName"], p.get("Qualifier"))
        return {}

    async def list_function_event_invoke_configs(ctx: RequestContext, p: Params) -> Output:
        return configs.list(ctx.region, p["FunctionName"], p.get("Marker"), p.get("MaxItems"))

    return {
        "PutFunctionEventInvokeConfig": put_function_event_invoke_config,
        "UpdateFunctionEventInvokeConfig": update_function_event_invoke_config,
        "GetFunctionEventInvokeConfig": get_function_event_invoke_config,
        "DeleteFunctionEventInvokeConfig": delete_function_event_invoke_config,
        "ListFunctionEventInvokeConfigs": list_function_event_invoke_configs,
    }
