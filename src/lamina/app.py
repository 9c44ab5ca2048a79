"""The one HTTP endpoint: a raw ASGI app (no framework: the invoke path is measured in microseconds).

Order of work for an API request: route (cheap, tells the body limit) -> read the body within that
limit -> SigV4 -> parse and validate from the model -> handler -> serialize.  Every failure is
turned into AWS's error shape here, at this one boundary; nothing else writes error responses.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

from lamina.api import events_view
from lamina.errors import AwsError, render_json, render_rest_json
from lamina.protocol import parse_request, serialize_response
from lamina.types import RequestContext

if TYPE_CHECKING:  # the platform imports the app
    from lamina.platform import Platform

log = logging.getLogger("lamina.http")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Bodies over these are refused while reading, never buffered in full.
INVOKE_BODY_MAX = 6 * 1024 * 1024
DEFAULT_BODY_MAX = 69905067  # AWS: 50 MB of zip, base64-encoded in the JSON body
UNROUTED_BODY_MAX = 1024 * 1024
# lamina's own read API (not AWS's): signed like every API request, unlike the rest of /_lamina/.
LAMINA_API_PREFIX = "/_lamina/functions/"


class _ClientGone(Exception):
    pass


async def _read_body(receive: Receive, limit: int, op_name: str, declared: int | None) -> bytes:
    def too_large() -> AwsError:
        code = "RequestTooLargeException" if op_name == "Invoke" else "RequestEntityTooLargeException"
        name = "InvokeFunction" if op_name == "Invoke" else op_name
        # The rest of the body is still on its way: answer, then close, so it is never read as a
        # next request on this keep-alive connection.
        return AwsError(
            code,
            f"Request must be smaller than {limit} bytes for the {name} operation",
            headers={"Connection": "close"},
        )

    if declared is not None and declared > limit:
        raise too_large()
    chunks: list[bytes] = []
    size = 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise _ClientGone
        chunk = msg.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large()
        chunks.append(chunk)
        if not msg.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class LaminaApp:
    def __init__(self, platform: Platform) -> None:
        self._p = platform

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                try:
                    await self._p.start()
                except Exception as exc:
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await self._p.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = self._p.ids.request_id()
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        path = raw_path.decode("latin-1")
        if path.startswith("/_lamina/") and not path.startswith(LAMINA_API_PREFIX):
            await self._internal(scope, path, send)
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        hmap = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers}
        renderer = render_rest_json
        try:
            try:
                if path.startswith(LAMINA_API_PREFIX):
                    await self._lamina_api(scope, raw_path, hmap, request_id, receive, send)
                else:
                    await self._api(scope, raw_path, hmap, request_id, receive, send)
                return
            except AwsError as err:
                if "x-amz-target" in hmap:
                    renderer = render_json
                status, out_headers, body = renderer(err)
            except _ClientGone:
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("unhandled error", extra={"request_id": request_id})
                status, out_headers, body = renderer(
                    AwsError("ServiceException", "The service encountered an internal error.")
                )
            out_headers.append((b"x-amzn-requestid", request_id.encode()))
            await _send(send, status, out_headers, body)
        except (OSError, RuntimeError):
            return  # the client went away while we answered

    async def _api(
        self,
        scope: Scope,
        raw_path: bytes,
        hmap: dict[str, str],
        request_id: str,
        receive: Receive,
        send: Send,
    ) -> None:
        p = self._p
        method: str = scope["method"]
        path = raw_path.decode("latin-1")
        raw_query: bytes = scope.get("query_string", b"")
        query = raw_query.decode("latin-1")
        declared = int(hmap["content-length"]) if hmap.get("content-length", "").isdigit() else None
        if "authorization" not in hmap and b"X-Amz-Signature" not in raw_query:
            self._refuse_unsigned(scope, raw_path, raw_query, declared)
        target = hmap.get("x-amz-target")
        matched = None if target else p.router.match(method, path, query)
        if matched is None:
            body = await _read_body(receive, UNROUTED_BODY_MAX, "Unknown", declared)
            p.verifier.verify(method, raw_path, raw_query, scope["headers"], body)
            if target:
                raise AwsError("UnknownOperationException", f"Operation {target} is not supported by lamina.")
            raise AwsError("UnknownOperationException", f"No Lambda operation matches {method} {path}.")
        op, labels = matched
        limit = INVOKE_BODY_MAX if op.name == "Invoke" else DEFAULT_BODY_MAX
        body = await _read_body(receive, limit, op.name, declared)
        identity = p.verifier.verify(method, raw_path, raw_query, scope["headers"], body)
        handler = p.handlers.get(op.name)
        if handler is None:
            raise AwsError(
                "NotImplementedException", f"lamina does not implement the {op.name} operation yet."
            )
        params = parse_request(op, labels, query, hmap, body)
        host = hmap.get("host") or f"{p.settings.host}:{p.settings.port}"
        ctx = RequestContext(
            request_id=request_id,
            region=identity.region,
            access_key_id=identity.access_key_id,
            base_url=f"http://{host}",
            trace_id=hmap.get("x-amzn-trace-id"),
        )
        result = await handler(ctx, params)
        status, out_headers, out_body = serialize_response(op, result)
        out_headers.append((b"x-amzn-requestid", request_id.encode()))
        await _send(send, status, out_headers, out_body)

    def _refuse_unsigned(self, scope: Scope, raw_path: bytes, raw_query: bytes, declared: int | None) -> None:
        """An unsigned request is refused before its body is read (and buffered): nobody is
        allowed to send one.  With a body declared the connection closes, so that unread body is
        never parsed as a next request.  (Raises: the verifier's AWS error for a missing signature.)"""
        try:
            self._p.verifier.verify(scope["method"], raw_path, raw_query, scope["headers"], b"")
        except AwsError as err:
            if declared:
                err.headers["Connection"] = "close"
            raise

    async def _lamina_api(
        self,
        scope: Scope,
        raw_path: bytes,
        hmap: dict[str, str],
        request_id: str,
        receive: Receive,
        send: Send,
    ) -> None:
        """lamina's own reads (``GET /_lamina/functions/{name}/events``), SigV4-verified."""
        p = self._p
        method: str = scope["method"]
        raw_query: bytes = scope.get("query_string", b"")
        declared = int(hmap["content-length"]) if hmap.get("content-length", "").isdigit() else None
        if "authorization" not in hmap and b"X-Amz-Signature" not in raw_query:
            self._refuse_unsigned(scope, raw_path, raw_query, declared)
        body = await _read_body(receive, UNROUTED_BODY_MAX, "Unknown", declared)
        identity = p.verifier.verify(method, raw_path, raw_query, scope["headers"], body)
        path = raw_path.decode("latin-1")
        parts = path[len(LAMINA_API_PREFIX) :].split("/")
        if method != "GET" or len(parts) != 2 or not parts[0] or parts[1] != "events":
            raise AwsError("UnknownOperationException", f"No lamina operation matches {method} {path}.")
        result = await events_view.function_events(p.functions, p.store, identity.region, unquote(parts[0]))
        out = json.dumps(result).encode()
        headers = [(b"content-type", b"application/json"), (b"x-amzn-requestid", request_id.encode())]
        await _send(send, 200, headers, out)

    async def _internal(self, scope: Scope, path: str, send: Send) -> None:
        """Unsigned paths: health, and code downloads authorised by their signed URL."""
        if path == "/_lamina/health":
            await _send(send, 200, [(b"content-type", b"application/json")], b'{"status":"ok"}')
            return
        if path.startswith("/_lamina/code/") and path.endswith(".zip") and scope["method"] == "GET":
            q = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            hex_digest = path[len("/_lamina/code/") : -len(".zip")]
            blob = self._p.functions.code_download_path(
                hex_digest, q.get("expires", [""])[0], q.get("signature", [""])[0]
            )
            if blob is not None:
                data = await asyncio.to_thread(_read_file, blob)
                await _send(send, 200, [(b"content-type", b"application/zip")], data)
                return
            await _send(
                send,
                403,
                [(b"content-type", b"application/xml")],
                b"<Error><Code>AccessDenied</Code>"
                b"<Message>Request has expired or is not signed</Message></Error>",
            )
            return
        await _send(send, 404, [(b"content-type", b"application/json")], b'{"message":"Not Found"}')


def _read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()
