"""Invoke: RequestResponse, Event (durable 202) and DryRun; InvokeWithResponseStream."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from lamina.execution.types import InvocationInput
from lamina.functions.service import FunctionService
from lamina.ids import IdFactory
from lamina.invocation import streaming
from lamina.invocation.service import (
    ASYNC_PAYLOAD_MAX,
    SYNC_PAYLOAD_MAX,
    InvocationService,
    check_payload,
    decode_client_context,
)
from lamina.model.function import FunctionVersion
from lamina.types import Handler, Output, Params, RequestContext


def prepare_invocation(
    functions: FunctionService,
    ids: IdFactory,
    *,
    region: str,
    function_name: str,
    qualifier: str | None,
    payload: bytes,
    kind: str,
    request_id: str,
    trace_id: str | None,
    client_context: str | None = None,
) -> tuple[FunctionVersion, InvocationInput]:
    """The version an invoke runs and what it is given: shared by the Invoke handler and the
    express lane (``lamina.api.invoke_express``), so both build exactly the same invocation."""
    # An alias's weights are drawn here, per invoke: the version that runs is the one reported.
    fv = functions.resolve(region, function_name, qualifier, routed=True)
    check_payload(payload, ASYNC_PAYLOAD_MAX if kind == "Event" else SYNC_PAYLOAD_MAX)
    context = decode_client_context(client_context)
    # The ARN as the caller named it: qualified only when they qualified it.
    qualifier = qualifier or (function_name.split("function:")[-1].partition(":")[2] or None)
    inv = InvocationInput(
        request_id=request_id,
        payload=payload or b"{}",
        invoked_function_arn=fv.arn(functions.account_id) + (f":{qualifier}" if qualifier else ""),
        client_context=context,
        trace_id=trace_id or ids.trace_id(),
        trace_generated=trace_id is None,
    )
    return fv, inv


def handlers(
    functions: FunctionService, invocations: InvocationService, ids: IdFactory
) -> dict[str, Handler]:
    def prepare(ctx: RequestContext, p: Params, kind: str) -> tuple[FunctionVersion, InvocationInput]:
        return prepare_invocation(
            functions,
            ids,
            region=ctx.region,
            function_name=p["FunctionName"],
            qualifier=p.get("Qualifier"),
            payload=p.get("Payload") or b"",
            kind=kind,
            request_id=ctx.request_id,
            trace_id=ctx.trace_id,
            client_context=p.get("ClientContext"),
        )

    async def invoke(ctx: RequestContext, p: Params) -> Output:
        kind = p.get("InvocationType") or "RequestResponse"
        fv, inv = prepare(ctx, p, kind)
        if kind == "DryRun":
            return {"StatusCode": 204}
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
        """The response as an event stream (lamina.invocation.streaming): chunks as a streaming
        runtime sends them, or the whole response as one chunk; then InvokeComplete."""
        kind = p.get("InvocationType") or "RequestResponse"
        fv, inv = prepare(ctx, p, kind)
        if kind == "DryRun":
            return {"StatusCode": 204, "ExecutedVersion": fv.version}
        queue = streaming.ChunkQueue()
        task = asyncio.ensure_future(
            invocations.invoke(fv, replace(inv, stream=queue), tail=p.get("LogType") == "Tail")
        )
        out: Output = {"StatusCode": 200, "ExecutedVersion": fv.version}
        if await queue.started(task):  # errors before any chunk (throttles, ...) raise here
            out["EventStream"] = streaming.streamed_events(queue, task)
        else:
            result = task.result()
            out["EventStream"] = streaming.whole_events(
                result.function_error, result.payload, result.log_tail
            )
        return out

    return {"Invoke": invoke, "InvokeWithResponseStream": invoke_with_response_stream}
