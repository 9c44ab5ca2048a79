"""Provisioned concurrency handlers: thin — the rules live in lamina.functions.provisioned."""

from __future__ import annotations

from lamina.functions.provisioned import ProvisionedService
from lamina.types import Handler, Output, Params, RequestContext


def handlers(provisioned: ProvisionedService) -> dict[str, Handler]:
    async def put_provisioned_concurrency_config(ctx: RequestContext, p: Params) -> Output:
        return await provisioned.put(
            ctx.region, p["FunctionName"], p["Qualifier"], p["ProvisionedConcurrentExecutions"]
        )

    async def get_provisioned_concurrency_config(ctx: RequestContext, p: Params) -> Output:
        return provisioned.get(ctx.region, p["FunctionName"], p["Qualifier"])

    async def delete_provisioned_concurrency_config(ctx: RequestContext, p: Params) -> Output:
        await provisioned.delete(ctx.region, p["FunctionName"], p["Qualifier"])
        return {}

    async def list_provisioned_concurrency_configs(ctx: RequestContext, p: Params) -> Output:
        return provisioned.list(ctx.region, p["FunctionName"], p.get("Marker"), p.get("MaxItems"))

    return {
        "PutProvisionedConcurrencyConfig": put_provisioned_concurrency_config,
        "GetProvisionedConcurrencyConfig": get_provisioned_concurrency_config,
        "DeleteProvisionedConcurrencyConfig": delete_provisioned_concurrency_config,
        "ListProvisionedConcurrencyConfigs": list_provisioned_concurrency_configs,
    }
