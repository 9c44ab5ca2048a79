"""Layer handlers: PublishLayerVersion, Get/List/Delete, layer version policies — rules live in
lamina.functions.layers."""

from __future__ import annotations

from collections.abc import Callable

from lamina.functions.layers import LayerService
from lamina.types import Handler, Output, Params, RequestContext

# (blob hex, base URL) -> a signed download URL on this server (FunctionService.blob_location)
Locator = Callable[[str, str], str]


def handlers(layers: LayerService, locate: Locator) -> dict[str, Handler]:
    async def publish_layer_version(ctx: RequestContext, p: Params) -> Output:
        lv = await layers.publish(ctx.region, p)
        return layers.describe(lv, locate(lv.code_hex, ctx.base_url))

    async def get_layer_version(ctx: RequestContext, p: Params) -> Output:
        lv = layers.get(ctx.region, p["LayerName"], p["VersionNumber"])
        return layers.describe(lv, locate(lv.code_hex, ctx.base_url))

    async def get_layer_version_by_arn(ctx: RequestContext, p: Params) -> Output:
        lv = layers.get_by_arn(ctx.region, p["Arn"])
        return layers.describe(lv, locate(lv.code_hex, ctx.base_url))

    async def list_layers(ctx: RequestContext, p: Params) -> Output:
        return layers.list_layers(ctx.region, p)

    async def list_layer_versions(ctx: RequestContext, p: Params) -> Output:
        return layers.list_versions(ctx.region, p)

    async def delete_layer_version(ctx: RequestContext, p: Params) -> Output:
        await layers.delete(ctx.region, p["LayerName"], p["VersionNumber"])
        return {}

    async def add_layer_version_permission(ctx: RequestContext, p: Params) -> Output:
        return await layers.add_permission(ctx.region, p)

    async def remove_layer_version_permission(ctx: RequestContext, p: Params) -> Output:
        await layers.remove_permission(ctx.region, p)
        return {}

    async def get_layer_version_policy(ctx: RequestContext, p: Params) -> Output:
        return layers.policy(ctx.region, p["LayerName"], p["VersionNumber"])

    return {
        "PublishLayerVersion": publish_layer_version,
        "GetLayerVersion": get_layer_version,
        "GetLayerVersionByArn": get_layer_version_by_arn,
        "ListLayers": list_layers,
        "ListLayerVersions": list_layer_versions,
        "DeleteLayerVersion": delete_layer_version,
        "AddLayerVersionPermission": add_layer_version_permission,
        "RemoveLayerVersionPermission": remove_layer_version_permission,
        "GetLayerVersionPolicy": get_layer_version_policy,
    }
