"""Invoke: RequestResponse, Event (durable 202) and DryRun."""

from __future__ import annotations

import json

from lamina.execution.types import InvocationInput
from lamina.functions.service import FunctionService
from lamina.ids import IdFactory
from lamina.invocation.service import (
    ASYNC_PAYLOAD_MAX,
    SYNC_PAYLOAD_MAX,
    InvocationService,
    check_payload,
    decode_client_context,
)
from lamina.protocol import eventstream
from lamina.types import Handler, Output, Params, RequestContext


def handlers(
    functions: FunctionService, invocations: InvocationService, ids: IdFactory
) -> dict[str, Handler]:
    account = functions.account_id

    async def invoke(ctx: RequestContext, p: Params) -> Output:
        # An alias's weights are drawn here, per invoke: the version that runs is the one reported.
        fv = functions.resolve(ctx.region, p["FunctionName"], p.get("Qualifier"), routed=True)
        kind = p.get("InvocationType") or "RequestResponse"
        payload: bytes = p.get("Payload") or b""
        check_payload(payload, ASYNC_PAYLOAD_MAX if kind == "Event" else SYNC_PAYLOAD_MAX)
        client_context = decode_client_context(p.get("ClientContext"))
        if kind == "DryRun":
            return {"StatusCode": 204}
        # The ARN as the caller named it: qualified only when they qualified it.
        qualifier = p.get("Qualifier") or (p["FunctionName"].split("function:")[-1].partition(":")[2] or None)
        inv = InvocationInput(
            request_id=ctx.request_id,
            payload=payload or b"{}",
            invoked_function_arn=fv.arn(account) + (f":{qualifier}" if qualifier else ""),
            client_context=client_context,
            trace_id=ctx.trace_id or ids.trace_id(),
            trace_generated=ctx.trace_id is None,
        )
        if kind == "Event":
            await invocations.enqueue(fv, inv, fv.version)
            return {"StatusCode": 202}
        result = await invocations.invoke(fv, inv, tail=p.get("LogType") == "Tail")
        out: Output = {"StatusCode": 200, "Payload": result.payload, "ExecutedVersion": fv.version}
        if result.function_error:
            out["FunctionError"] = result.function_error
        if result.log_tail is not None:
            out["LogResult"] = result.log_tail
        return out

    async def invoke_with_response_stream(ctx: RequestContext, p: Params) -> Output:
        """The response as an event stream: PayloadChunk events, then InvokeComplete (with the
        error, if the function failed, and the log tail when asked for).  Functions answer whole
        today, so the payload is one chunk."""
        kind = p.get("InvocationType") or "RequestResponse"
        if kind == "DryRun":
            fv = functions.resolve(ctx.region, p["FunctionName"], p.get("Qualifier"), routed=True)
            return {"StatusCode": 204, "ExecutedVersion": fv.version}
        out = await invoke(ctx, {**p, "InvocationType": "RequestResponse"})
        payload: bytes = out["Payload"]
        complete: dict[str, str] = {}
        events = []
        if "FunctionError" in out:
            complete["ErrorCode"] = out["FunctionError"]
            complete["ErrorDetails"] = payload.decode(errors="replace")
        elif payload:
            events.append(eventstream.event("PayloadChunk", payload, "application/octet-stream"))
        if "LogResult" in out:
            complete["LogResult"] = out["LogResult"]
        events.append(eventstream.event("InvokeComplete", json.dumps(complete).encode(), "application/json"))
        return {"StatusCode": 200, "ExecutedVersion": out["ExecutedVersion"], "EventStream": b"".join(events)}

    return {"Invoke": invoke, "InvokeWithResponseStream": invoke_with_response_stream}
