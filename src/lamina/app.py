"""The one HTTP endpoint's application: routing, SigV4, the botocore-model protocol, errors.

It is served by lamina's own HTTP/1.1 front (``lamina.web``), which asks it twice per request:
``admit`` once the head is parsed -- route (cheap, tells the body limit) and refuse unsigned or
declared-too-large requests before their body is read -- and ``handle`` with the whole body:
SigV4 -> parse and validate from the model -> handler -> serialize.  Every failure is turned into
AWS's error shape here, at this one boundary; nothing else writes error responses.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote

from lamina.api import events_view
from lamina.api.invoke_express import ExpressInvoke
from lamina.errors import AwsError, render_json, render_rest_json
from lamina.protocol import parse_request, serialize_response
from lamina.protocol.cloudwatch_wire import protocol_of as cloudwatch_protocol  # issue 7 item 4
from lamina.protocol.response import EVENT_STREAM
from lamina.types import RequestContext
from lamina.web.connection import Reply, Request, Streamed

if TYPE_CHECKING:  # the platform imports the app
    from botocore.model import OperationModel

    from lamina.auth.sigv4 import SignedIdentity
    from lamina.platform import Platform

log = logging.getLogger("lamina.http")

# Bodies over these are refused while reading, never buffered in full.
INVOKE_BODY_MAX = 6 * 1024 * 1024
DEFAULT_BODY_MAX = 69905067  # AWS: 50 MB of zip, base64-encoded in the JSON body
UNROUTED_BODY_MAX = 1024 * 1024
# lamina's own read API (not AWS's): signed like every API request, unlike the rest of /_lamina/.
LAMINA_API_PREFIX = "/_lamina/functions/"
LAMINA_SCHEDULES = "/_lamina/schedules"  # issue 9: `lamina schedules` (next and last firings)
_INTERNAL = b"/_lamina/"
_LAMINA_API = LAMINA_API_PREFIX.encode()
_SIGNED_LAMINA = (_LAMINA_API, LAMINA_SCHEDULES.encode())
_JSON_TYPE = [(b"content-type", b"application/json")]

Route = tuple["OperationModel", dict[str, str]]


def _too_large(op_name: str, limit: int) -> AwsError:
    code = "RequestTooLargeException" if op_name == "Invoke" else "RequestEntityTooLargeException"
    name = "InvokeFunction" if op_name == "Invoke" else op_name
    return AwsError(code, f"Request must be smaller than {limit} bytes for the {name} operation")


def _declared(req: Request) -> int | None:
    value = req.hmap.get(b"content-length")
    return int(value) if value is not None and value.isdigit() else None


class LaminaApp:
    def __init__(self, platform: Platform) -> None:
        self._p = platform
        self._express = ExpressInvoke(verify=self._verify, scope_of=platform.tenant, ids=platform.ids)

    # -- the front's questions -------------------------------------------------------------

    def admit(self, req: Request) -> int | Reply:
        """The body limit of ``req``'s route; or its refusal: unsigned requests and declared
        oversized bodies are answered before a byte of the body is read (or buffered)."""
        path = req.path
        if path.startswith(_INTERNAL) and not path.startswith(_SIGNED_LAMINA):
            return UNROUTED_BODY_MAX
        # issue 7 item 4: /metrics and CloudWatch check their own auth and answer in their own shapes
        if path == b"/metrics":
            return UNROUTED_BODY_MAX
        protocol = cloudwatch_protocol(req.method, path, req.hmap)
        if protocol is not None:
            return self._p.cloudwatch.admit(protocol, req.hmap, req.query, self._p.ids.request_id())
        hmap = req.hmap
        try:
            if b"authorization" not in hmap and b"X-Amz-Signature" not in req.query:
                # nobody may send one: the verifier says why (missing token, ...)
                self._p.verifier.verify(req.method, path, req.query, req.headers, b"")
            limit, op_name = UNROUTED_BODY_MAX, "Unknown"
            if b"x-amz-target" not in hmap and not path.startswith(_SIGNED_LAMINA):
                route = self._p.router.match(req.method, path.decode("latin-1"), req.query.decode("latin-1"))
                req.route = route
                if route is not None:
                    op_name = route[0].name
                    limit = INVOKE_BODY_MAX if op_name == "Invoke" else DEFAULT_BODY_MAX
            declared = _declared(req)
            if declared is not None and declared > limit:
                raise _too_large(op_name, limit)
        except AwsError as err:
            return self._error(req, err, self._p.ids.request_id())
        return limit

    def too_large(self, req: Request, limit: int) -> Reply:
        route = req.route
        op_name = route[0].name if isinstance(route, tuple) else "Unknown"
        return self._error(req, _too_large(op_name, limit), self._p.ids.request_id())

    async def handle(self, req: Request) -> Reply | Streamed:
        request_id = self._p.ids.request_id()
        path = req.path
        try:
            route = req.route
            # A route is only ever found (admit) for a signed, non-internal request that is neither
            # /metrics nor CloudWatch's: none of the tests below apply to it.
            if type(route) is tuple and route[0].name == "Invoke":
                target = ExpressInvoke.eligible(req, route[1])
                if target is not None:
                    return await self._express.invoke(req, request_id, *target)
            if path.startswith(_INTERNAL):
                if path.startswith(_SIGNED_LAMINA):
                    return await self._lamina_api(req, request_id)
                return await self._internal(req)
            # -- issue 7 item 4 (metrics): Prometheus exposition and CloudWatch's metric API --
            if path == b"/metrics":
                return self._p.metrics_http.handle(req.method, path, req.query, req.headers, req.hmap)
            protocol = cloudwatch_protocol(req.method, path, req.hmap)
            if protocol is not None:
                return await self._p.cloudwatch.handle(
                    protocol, method=req.method, raw_path=path, raw_query=req.query, headers=req.headers,
                    hmap=req.hmap, body=req.body, request_id=request_id,
                )  # fmt: skip
            # -- end issue 7 item 4 --
            return await self._api(req, request_id)
        except AwsError as err:
            return self._error(req, err, request_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("unhandled error", extra={"request_id": request_id})
            return self._error(
                req, AwsError("ServiceException", "The service encountered an internal error."), request_id
            )

    def _error(self, req: Request, err: AwsError, request_id: str) -> Reply:
        renderer = render_json if b"x-amz-target" in req.hmap else render_rest_json
        status, headers, body = renderer(err)
        headers.append((b"x-amzn-requestid", request_id.encode()))
        return status, headers, body

    # -- AWS's API -------------------------------------------------------------------------

    async def _api(self, req: Request, request_id: str) -> Reply | Streamed:
        p = self._p
        method = req.method
        raw_path, raw_query, body = req.path, req.query, req.body
        identity = await self._verify(req)
        tenant = p.tenant(identity.access_key_id)
        hmap = {k.decode("latin-1"): v.decode("latin-1") for k, v in req.hmap.items()}
        target = hmap.get("x-amz-target")
        prefix, _, operation = (target or "").partition(".")
        service = tenant.json_services.get(prefix)
        if service is not None:  # json-protocol services (CloudWatch Logs): one handle() each
            host = hmap.get("host") or f"{p.settings.host}:{p.settings.port}"
            jctx = RequestContext(request_id, identity.region, identity.access_key_id, f"http://{host}")
            out = await service.handle(operation, body, jctx)
            json_type = (b"content-type", b"application/x-amz-json-1.1")
            return 200, [json_type, (b"x-amzn-requestid", request_id.encode())], out
        route: Route | None = req.route  # type: ignore[assignment]  # admit put it there
        if route is None:
            if target:
                raise AwsError("UnknownOperationException", f"Operation {target} is not supported by lamina.")
            raise AwsError(
                "UnknownOperationException",
                f"No Lambda operation matches {method} {raw_path.decode('latin-1')}.",
            )
        op, labels = route
        handler = tenant.handlers.get(op.name)
        if handler is None:
            raise AwsError(
                "NotImplementedException", f"lamina does not implement the {op.name} operation yet."
            )
        params = parse_request(op, labels, raw_query.decode("latin-1"), hmap, body)
        if "FunctionName" in params or "Resource" in params or "LayerName" in params or "Arn" in params:
            # it may name another account's resource (routing.py: only through that one's policy)
            owner = p.accounts.route(tenant, op.name, identity.region, params)
            if owner is not tenant:
                handler = owner.handlers[op.name]
        host = hmap.get("host") or f"{p.settings.host}:{p.settings.port}"
        ctx = RequestContext(
            request_id=request_id,
            region=identity.region,
            access_key_id=identity.access_key_id,
            base_url=f"http://{host}",
            trace_id=hmap.get("x-amzn-trace-id"),
        )
        result = await handler(ctx, params)
        events = result.get("EventStream")
        if events is not None and not isinstance(events, bytes):  # an event stream, as it comes
            status, out_headers, _ = serialize_response(op, {**result, "EventStream": None})
            out_headers += [(b"content-type", EVENT_STREAM), (b"x-amzn-requestid", request_id.encode())]
            return Streamed(status, out_headers, events)
        status, out_headers, out_body = serialize_response(op, result)
        out_headers.append((b"x-amzn-requestid", request_id.encode()))
        return status, out_headers, out_body

    async def _lamina_api(self, req: Request, request_id: str) -> Reply:
        """lamina's own reads (``GET /_lamina/functions/{name}/events``), SigV4-verified."""
        p = self._p
        identity = await self._verify(req)
        tenant = p.tenant(identity.access_key_id)
        path = req.path.decode("latin-1")
        if path == LAMINA_SCHEDULES and req.method == "GET":  # issue 9
            view = {"Timers": tenant.scheduler.view(identity.region)}
            return 200, [*_JSON_TYPE, (b"x-amzn-requestid", request_id.encode())], json.dumps(view).encode()
        parts = path[len(LAMINA_API_PREFIX) :].split("/")
        if req.method != "GET" or len(parts) != 2 or not parts[0] or parts[1] != "events":
            raise AwsError("UnknownOperationException", f"No lamina operation matches {req.method} {path}.")
        result = await events_view.function_events(
            tenant.functions, tenant.store, identity.region, unquote(parts[0])
        )
        return 200, [*_JSON_TYPE, (b"x-amzn-requestid", request_id.encode())], json.dumps(result).encode()

    async def _verify(self, req: Request) -> SignedIdentity:
        """SigV4; a key nobody has makes the accounts file be read again once (a new account's
        first request), then the verdict stands."""
        verifier = self._p.verifier
        try:
            return verifier.verify(req.method, req.path, req.query, req.headers, req.body, req.hmap)
        except AwsError as err:
            if err.code != "UnrecognizedClientException":
                raise
        # Verified again even when this call found the file unchanged: the poller may have just
        # applied it (this call waited for it to finish).
        await self._p.accounts.unknown_key()
        return verifier.verify(req.method, req.path, req.query, req.headers, req.body)

    async def _internal(self, req: Request) -> Reply:
        """Unsigned paths: health, and code downloads authorised by their signed URL."""
        path = req.path.decode("latin-1")
        if path == "/_lamina/health":
            return 200, list(_JSON_TYPE), b'{"status":"ok"}'
        if path.startswith("/_lamina/code/") and path.endswith(".zip") and req.method == "GET":
            q = parse_qs(req.query.decode("latin-1"))
            hex_digest = path[len("/_lamina/code/") : -len(".zip")]
            # Any account's service answers: the code store and the URL-signing key are shared.
            blob = self._p.accounts.root.functions.code_download_path(
                hex_digest, q.get("expires", [""])[0], q.get("signature", [""])[0]
            )
            if blob is not None:
                data = await asyncio.to_thread(_read_file, blob)
                return 200, [(b"content-type", b"application/zip")], data
            return (
                403,
                [(b"content-type", b"application/xml")],
                b"<Error><Code>AccessDenied</Code>"
                b"<Message>Request has expired or is not signed</Message></Error>",
            )
        return 404, list(_JSON_TYPE), b'{"message":"Not Found"}'


def _read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()
