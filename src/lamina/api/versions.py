"""Version handlers: PublishVersion, ListVersionsByFunction — thin: rules live in lamina.functions."""

from __future__ import annotations

from lamina.functions.versions import VersionService
from lamina.types import Handler, Output, Params, RequestContext


def handlers(versions: VersionService, account: str) -> dict[str, Handler]:
    async def publish_version(ctx: RequestContext, p: Params) -> Output:
        fv = await versions.publish(
            ctx.region,
            p["FunctionName"],
            code_sha256=p.get("CodeSha256"),
            description=p.get("Description"),
            revision_id=p.get("RevisionId"),
        )
        return fv.to_configuration(account)

    async def list_versions_by_function(ctx: RequestContext, p: Params) -> Output:
        return versions.list(ctx.region, p["FunctionName"], p.get("Marker"), p.get("MaxItems"))

    return {"PublishVersion": publish_version, "ListVersionsByFunction": list_versions_by_function}
