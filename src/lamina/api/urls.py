"""Function URL config handlers: thin — the rules live in lamina.urls.service."""

from __future__ import annotations

from lamina.types import Handler, Output, Params, RequestContext
from lamina.urls.service import FunctionUrlService


def handlers(urls: FunctionUrlService) -> dict[str, Handler]:
    async def create_function_url_config(ctx: RequestContext, p: Params) -> Output:
        return await urls.create(ctx.region, p["FunctionName"], p.get("Qualifier"), p)

    async def get_function_url_config(ctx: RequestContext, p: Params) -> Output:
        return urls.get(ctx.region, p["FunctionName"], p.get("Qualifier"))

    async def update_function_url_config(ctx: RequestContext, p: Params) -> Output:
        return await urls.update(ctx.region, p["FunctionName"], p.get("Qualifier"), p)

    async def delete_function_url_config(ctx: RequestContext, p: Params) -> Output:
        await urls.delete(ctx.region, p["FunctionName"], p.get("Qualifier"))
        return {}

    async def list_function_url_configs(ctx: RequestContext, p: Params) -> Output:
        return urls.list(ctx.region, p["FunctionName"], p.get("Marker"), p.get("MaxItems"))

    return {
        "CreateFunctionUrlConfig": create_function_url_config,
        "GetFunctionUrlConfig": get_function_url_config,
        "UpdateFunctionUrlConfig": update_function_url_config,
        "DeleteFunctionUrlConfig": delete_function_url_config,
        "ListFunctionUrlConfigs": list_function_url_configs,
    }
