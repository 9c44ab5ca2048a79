"""Alias handlers: thin — the rules live in lamina.functions.aliases."""

from __future__ import annotations

from lamina.functions.aliases import AliasService
from lamina.types import Handler, Output, Params, RequestContext


def handlers(aliases: AliasService, account: str) -> dict[str, Handler]:
    async def create_alias(ctx: RequestContext, p: Params) -> Output:
        return (await aliases.create(ctx.region, p)).to_output(account)

    async def get_alias(ctx: RequestContext, p: Params) -> Output:
        return aliases.get(ctx.region, p["FunctionName"], p["Name"]).to_output(account)

    async def update_alias(ctx: RequestContext, p: Params) -> Output:
        return (await aliases.update(ctx.region, p)).to_output(account)

    async def delete_alias(ctx: RequestContext, p: Params) -> Output:
        await aliases.delete(ctx.region, p["FunctionName"], p["Name"])
        return {}

    async def list_aliases(ctx: RequestContext, p: Params) -> Output:
        return aliases.list(
            ctx.region, p["FunctionName"], p.get("FunctionVersion"), p.get("Marker"), p.get("MaxItems")
        )

    return {
        "CreateAlias": create_alias,
        "GetAlias": get_alias,
        "UpdateAlias": update_alias,
        "DeleteAlias": delete_alias,
        "ListAliases": list_aliases,
    }
