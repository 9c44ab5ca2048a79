"""Function CRUD handlers: thin — the rules live in lamina.functions."""

from __future__ import annotations

from lamina.functions.concurrency import ConcurrencyService
from lamina.functions.service import FunctionService
from lamina.functions.versions import VersionService
from lamina.types import Handler, Output, Params, RequestContext


def handlers(
    functions: FunctionService, versions: VersionService, concurrency: ConcurrencyService
) -> dict[str, Handler]:
    account = functions.account_id

    async def create_function(ctx: RequestContext, p: Params) -> Output:
        fv = await functions.create(ctx.region, p)
        if p.get("Publish"):  # the answer then describes the new version, as AWS's does
            fv = await versions.publish(ctx.region, fv.name)
        return fv.to_configuration(account)

    async def get_function(ctx: RequestContext, p: Params) -> Output:
        fv = functions.resolve(ctx.region, p["FunctionName"], p.get("Qualifier"))
        out: Output = {
            "Configuration": fv.to_configuration(account),
            "Code": {"RepositoryType": "S3", "Location": functions.code_location(fv, ctx.base_url)},
        }
        tags = await functions.tags(fv)
        if tags:
            out["Tags"] = tags
        reserved = concurrency.reserved(ctx.region, fv.name)  # the function's, whatever the qualifier
        if reserved is not None:
            out["Concurrency"] = {"ReservedConcurrentExecutions": reserved}
        return out

    async def get_function_configuration(ctx: RequestContext, p: Params) -> Output:
        return functions.resolve(ctx.region, p["FunctionName"], p.get("Qualifier")).to_configuration(account)

    async def list_functions(ctx: RequestContext, p: Params) -> Output:
        return functions.list(ctx.region, p.get("Marker"), p.get("MaxItems"))

    async def update_function_code(ctx: RequestContext, p: Params) -> Output:
        fv = await functions.update_code(ctx.region, p)
        if p.get("Publish") and not p.get("DryRun"):
            fv = await versions.publish(ctx.region, fv.name, revision_id=fv.revision_id)
        return fv.to_configuration(account)

    async def update_function_configuration(ctx: RequestContext, p: Params) -> Output:
        return (await functions.update_configuration(ctx.region, p)).to_configuration(account)

    async def delete_function(ctx: RequestContext, p: Params) -> Output:
        await versions.delete(ctx.region, p["FunctionName"], p.get("Qualifier"))
        return {"StatusCode": 204}

    return {
        "CreateFunction": create_function,
        "GetFunction": get_function,
        "GetFunctionConfiguration": get_function_configuration,
        "ListFunctions": list_functions,
        "UpdateFunctionCode": update_function_code,
        "UpdateFunctionConfiguration": update_function_configuration,
        "DeleteFunction": delete_function,
    }
