"""Concurrency handlers: thin — the rules live in lamina.functions.concurrency.

GetAccountSettings lives here because its AccountLimit is mostly concurrency: the limit and what
reservations leave unreserved; the code-size numbers come from the function service.
"""

from __future__ import annotations

from lamina.functions.concurrency import ConcurrencyService
from lamina.functions.service import FunctionService
from lamina.types import Handler, Output, Params, RequestContext


def handlers(concurrency: ConcurrencyService, functions: FunctionService) -> dict[str, Handler]:
    async def put_function_concurrency(ctx: RequestContext, p: Params) -> Output:
        value = await concurrency.put(ctx.region, p["FunctionName"], p["ReservedConcurrentExecutions"])
        return {"ReservedConcurrentExecutions": value}

    async def get_function_concurrency(ctx: RequestContext, p: Params) -> Output:
        value = concurrency.get(ctx.region, p["FunctionName"])
        return {} if value is None else {"ReservedConcurrentExecutions": value}

    async def delete_function_concurrency(ctx: RequestContext, p: Params) -> Output:
        await concurrency.delete(ctx.region, p["FunctionName"])
        return {}

    async def get_account_settings(ctx: RequestContext, p: Params) -> Output:
        return functions.account_settings(ctx.region, concurrency.limits(ctx.region))

    return {
        "PutFunctionConcurrency": put_function_concurrency,
        "GetFunctionConcurrency": get_function_concurrency,
        "DeleteFunctionConcurrency": delete_function_concurrency,
        "GetAccountSettings": get_account_settings,
    }
