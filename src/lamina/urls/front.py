"""The HTTP side of one function URL: the ``FrontApp`` its own port serves.

Per request: the URL's current config (an update applies to the next request) -> auth (AuthType
NONE: the resource policy must grant ``lambda:InvokeFunctionUrl`` to ``*`` for auth type NONE;
AWS_IAM: a SigV4 signature for service ``lambda`` in the URL's region, from a principal the policy
allows -- lamina's own credentials are the owner's) -> a CORS preflight is answered here, anything
else becomes the payload 2.0 event -> the sync invoke path -> the response Lambda infers -> CORS
headers; every answer gets ``x-amzn-RequestId`` and ``X-Amzn-Trace-Id``.

Lambda's own refusals are ``{"Message": ...}`` bodies: 403 (AWS's current wording, with the
troubleshooting link), 413 for a request over 6 MB, 429 for a throttle, 502 for a function error.
Any Host header is accepted: the port alone names the URL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from lamina.auth.sigv4 import SigV4Verifier
from lamina.errors import AwsError, render_message
from lamina.execution.types import InvocationInput
from lamina.functions.service import FunctionService
from lamina.ids import IdFactory
from lamina.invocation.service import SYNC_PAYLOAD_MAX, InvocationService
from lamina.invocation.streaming import ChunkQueue
from lamina.model.function import LATEST, function_arn
from lamina.policy.service import PolicyService
from lamina.store.policy import UNQUALIFIED
from lamina.store.urls import UrlConfig
from lamina.urls import cors
from lamina.urls.event import EventSource
from lamina.urls.formats import FUNCTION_URL
from lamina.urls.reply import http_date
from lamina.urls.service import FunctionUrlService, UrlKey
from lamina.urls.streamed import streamed_reply
from lamina.web.connection import Reply, Request, Streamed

log = logging.getLogger("lamina.urls")

FORBIDDEN = (
    "Forbidden. For troubleshooting Function URL authorization issues, see: "
    "https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html"
)
INVOKE_URL = "lambda:InvokeFunctionUrl"
_encode = json.JSONEncoder(separators=(",", ":")).encode  # json.dumps would build one per call


class Refused(Exception):
    def __init__(self, reply: Reply) -> None:
        super().__init__(reply[0])
        self.reply = reply


def forbidden() -> Reply:
    return render_message(AwsError("AccessDeniedException", FORBIDDEN))


def no_such_url() -> Reply:
    """AWS's answer on a URL that does not exist (AWS-validated in LocalStack's tests)."""
    return (
        403,
        [(b"content-type", b"application/json"), (b"x-amzn-errortype", b"AccessDeniedException")],
        (b'{"Message":null}'),
    )


def too_large_reply(limit: int) -> Reply:
    return render_message(
        AwsError(
            "RequestTooLargeException",
            f"Request must be smaller than {limit} bytes for the InvokeFunction operation",
        )
    )


@dataclass(frozen=True, slots=True)
class UrlDeps:
    """What every URL's front shares."""

    urls: FunctionUrlService
    functions: FunctionService
    invocations: InvocationService
    policies: PolicyService
    verifier: SigV4Verifier
    ids: IdFactory
    # Also require lambda:InvokeFunction (AWS's rule for URLs created since October 2025).
    require_invoke_function: bool = False
    # The account a verified access key belongs to (AWS_IAM URLs): None for the owner's alone.
    account_of: Callable[[str], str | None] | None = None


class UrlFront:
    def __init__(self, deps: UrlDeps, key: UrlKey) -> None:
        self._d = deps
        self._key = key
        # Once per URL, not per request: the invoked ARN, the policy's key, the last allowed
        # (config, policy, principal) -- both immutable objects, replaced on any change.
        region, name, qual = key
        qualifier = None if qual == LATEST else qual
        self._arn = function_arn(region, deps.functions.account_id, name, qualifier)
        self._policy_key = (region, name, qualifier or UNQUALIFIED)
        self._allowed: tuple[UrlConfig, object, str] | None = None

    def admit(self, req: Request) -> int | Reply:
        declared = req.hmap.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > SYNC_PAYLOAD_MAX:
            return too_large_reply(SYNC_PAYLOAD_MAX)
        return SYNC_PAYLOAD_MAX

    def too_large(self, req: Request, limit: int) -> Reply:
        return too_large_reply(limit)

    async def handle(self, req: Request) -> Reply | Streamed:
        d = self._d
        request_id = d.ids.request_id()
        sent_trace = req.hmap.get(b"x-amzn-trace-id")
        trace_id = sent_trace.decode("latin-1") if sent_trace else d.ids.trace_id()
        reply = await self._answer(req, request_id, trace_id)
        headers = reply.headers if isinstance(reply, Streamed) else reply[1]
        headers.append((b"date", http_date()))
        headers.append((b"x-amzn-requestid", request_id.encode()))
        headers.append((b"x-amzn-trace-id", trace_id.encode("latin-1")))
        return reply

    async def _answer(self, req: Request, request_id: str, trace_id: str) -> Reply | Streamed:
        """Auth first -- a refusal carries no CORS headers, and an AWS_IAM URL refuses the
        preflights browsers cannot sign -- then the preflight, or the function's answer."""
        config = self._d.urls.config(self._key)
        if config is None:  # deleted while this connection stayed open
            return no_such_url()
        try:
            iam = self._authorize(req, config)
        except Refused as refused:
            return refused.reply
        if config.cors is not None and cors.is_preflight(req.method, req.hmap):
            return cors.preflight(config.cors, req.hmap)
        reply: Reply | Streamed
        try:
            generated = b"x-amzn-trace-id" not in req.hmap
            reply = await self._invoke(req, config, request_id, trace_id, iam, generated=generated)
        except AwsError as err:
            if err.code == "TooManyRequestsException":
                reply = render_message(AwsError(err.code, "Rate Exceeded."))
            else:
                log.warning("function URL invoke failed", extra={"error": err.code, "request_id": request_id})
                reply = self._failed()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("function URL request failed", extra={"request_id": request_id})
            reply = self._failed()
        if isinstance(reply, Streamed):
            if config.cors is not None:
                reply.headers += cors.response_headers(config.cors, req.hmap.get(b"origin"))
            return reply
        return cors.apply(config.cors, req.hmap.get(b"origin"), reply)

    def _failed(self) -> Reply:
        """The 502 of the URL's event shape (Lambda's, API Gateway's or the load balancer's)."""
        return self._d.urls.shape(self._key).reply(b"", "Unhandled")

    def _authorize(self, req: Request, config: UrlConfig) -> dict[str, Any] | None:
        """None for AuthType NONE, else ``requestContext.authorizer.iam``; raises Refused."""
        d = self._d
        region, name, qual = self._key
        qualifier = None if qual == LATEST else qual
        account = d.functions.account_id
        iam: dict[str, Any] | None = None
        if config.auth_type == "NONE":
            principal = "*"
        else:
            try:
                identity = d.verifier.verify(req.method, req.path, req.query, req.headers, req.body)
            except AwsError as err:
                if err.code == "MissingAuthenticationTokenException":
                    raise Refused(forbidden()) from None
                raise Refused(render_message(err, status=403)) from None
            if identity.service != "lambda" or identity.region != region:
                raise Refused(forbidden())
            # Each lamina key is its account's root; another account's needs the policy's grant.
            caller = account if d.account_of is None else d.account_of(identity.access_key_id)
            if caller is None:
                raise Refused(forbidden())
            principal = f"arn:aws:iam::{caller}:root"
            iam = {
                "accessKey": identity.access_key_id,
                "accountId": caller,
                "callerId": caller,
                "cognitoIdentity": None,
                "principalOrgId": None,
                "userArn": principal,
                "userId": caller,
            }
        policy = d.policies.current(self._policy_key)
        memo = self._allowed
        if memo is not None and memo[0] is config and memo[1] is policy and memo[2] == principal:
            return iam  # the same decision as the last request's
        actions = (INVOKE_URL, "lambda:InvokeFunction") if d.require_invoke_function else (INVOKE_URL,)
        try:
            for action in actions:
                d.policies.check_invoke(
                    region,
                    name,
                    qualifier,
                    principal=principal,
                    action=action,
                    url_auth_type=config.auth_type,
                )
        except AwsError:
            raise Refused(forbidden()) from None
        self._allowed = (config, policy, principal)
        return iam

    async def _invoke(
        self,
        req: Request,
        config: UrlConfig,
        request_id: str,
        trace_id: str,
        iam: dict[str, Any] | None,
        *,
        generated: bool,
    ) -> Reply | Streamed:
        d = self._d
        region, name, qual = self._key
        qualifier = None if qual == LATEST else qual
        fv = d.functions.resolve(region, name, qualifier, routed=True)
        source = EventSource(
            url_id=config.url_id,
            port=config.port,
            request_id=request_id,
            trace_id=trace_id,
            iam=iam,
            account_id=d.functions.account_id,
            region=region,
            function_name=name,
        )
        shape = d.urls.shape(self._key)  # payload 2.0, or lamina:url-event-format's (shapes.py)
        event = shape.build(req, source, now=time.time())
        payload = _encode(event).encode()
        if len(payload) > SYNC_PAYLOAD_MAX:
            return too_large_reply(SYNC_PAYLOAD_MAX)
        inv = InvocationInput(
            request_id=request_id,
            payload=payload,
            invoked_function_arn=self._arn,
            trace_id=trace_id,
            trace_generated=generated,
        )
        if config.data.get("InvokeMode") == "RESPONSE_STREAM" and shape.name == FUNCTION_URL:
            queue = ChunkQueue()
            task = asyncio.ensure_future(d.invocations.invoke(fv, replace(inv, stream=queue)))
            if await queue.started(task):  # errors before the first byte raise here, as buffered
                return await streamed_reply(queue, task)
            result = task.result()
        else:
            result = await d.invocations.invoke(fv, inv)
        return shape.reply(result.payload, result.function_error)
