"""Tag handlers: thin — the rules live in lamina.functions.tags."""

from __future__ import annotations

from lamina.functions.tags import TagService
from lamina.types import Handler, Output, Params, RequestContext


def handlers(tags: TagService) -> dict[str, Handler]:
    async def tag_resource(ctx: RequestContext, p: Params) -> Output:
        await tags.tag(ctx.region, p["Resource"], p.get("Tags") or {})
        return {}

    async def untag_resource(ctx: RequestContext, p: Params) -> Output:
        await tags.untag(ctx.region, p["Resource"], p.get("TagKeys") or [])
        return {}

    async def list_tags(ctx: RequestContext, p: Params) -> Output:
        return {"Tags": await tags.list(ctx.region, p["Resource"])}

    return {"TagResource": tag_resource, "UntagResource": untag_resource, "ListTags": list_tags}
