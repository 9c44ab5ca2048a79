"""``GET /_lamina/functions/{name}/events``: a function's async events as ``lamina events`` shows
them.  Not an AWS operation (AWS has no such view), but signed and region-scoped like one."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the platform builds both; only their methods are used here
    from lamina.functions.service import FunctionService
    from lamina.store.metadata import MetadataStore


async def function_events(
    functions: FunctionService, store: MetadataStore, region: str, ident: str
) -> dict[str, Any]:
    """Queued, in-flight, retrying and failed events of the function ``ident`` names (a name or an
    ARN); AWS's ResourceNotFoundException when there is no such function."""
    fv = functions.resolve(region, ident)
    view = await store.call(store.function_events, region, fv.name, time.time())
    return {"FunctionName": fv.name, "FunctionArn": fv.arn(functions.account_id), **view}
