"""Resource-policy handlers: AddPermission, RemovePermission, GetPolicy — rules in lamina.policy."""

from __future__ import annotations

from lamina.policy.service import PolicyService
from lamina.policy.statements import dumps
from lamina.types import Handler, Output, Params, RequestContext


def handlers(policies: PolicyService) -> dict[str, Handler]:
    async def add_permission(ctx: RequestContext, p: Params) -> Output:
        return {"Statement": dumps(await policies.add(ctx.region, p))}

    async def remove_permission(ctx: RequestContext, p: Params) -> Output:
        await policies.remove(
            ctx.region,
            p["FunctionName"],
            p["StatementId"],
            qualifier=p.get("Qualifier"),
            revision_id=p.get("RevisionId"),
        )
        return {}

    async def get_policy(ctx: RequestContext, p: Params) -> Output:
        return policies.get(ctx.region, p["FunctionName"], p.get("Qualifier"))

    return {"AddPermission": add_permission, "RemovePermission": remove_permission, "GetPolicy": get_policy}
