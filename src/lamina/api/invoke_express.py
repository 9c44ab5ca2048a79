"""The express lane of Invoke: the common synchronous invoke without the model-driven protocol.

Almost every invoke is the same shape: ``POST /2015-03-31/functions/<name>/invocations``, maybe
``?Qualifier=<version or alias>``, a JSON body, no invocation type other than RequestResponse, no
log tail, no client context.  For that shape botocore's model has nothing to parse or validate
beyond the name and the qualifier, and the response is three headers and the payload -- yet the
general path (``parse_request`` -> handler -> ``serialize_response``) spent ~40 us of the event
loop's time per invoke building and walking dicts for it.

``eligible`` recognises the shape from the parsed request alone (no signature check yet) and
declines everything else, which then takes the general path: that path stays the one authority on
validation and errors.  What both paths share is the rest -- SigV4 (``SigV4Verifier``), resolving
the version and building the invocation (``invoke.prepare_invocation``), running it
(``InvocationService.invoke``) -- so the express lane cannot drift on meaning, only on the shape of
a successful reply, which ``tests/integration/test_invoke_express.py`` compares byte for byte
with the general path's.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Protocol

from lamina.api.invoke import prepare_invocation
from lamina.web.connection import Reply, Request

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from lamina.auth.sigv4 import SignedIdentity
    from lamina.functions.service import FunctionService
    from lamina.ids import IdFactory
    from lamina.invocation.service import InvocationService


class InvokeScope(Protocol):
    """Where a key's invokes run: its account's functions and invocation service (a Tenant)."""

    functions: FunctionService
    invocations: InvocationService


# A plain function name (the model's pattern also takes ARNs and "name:qualifier": general path)
# and a plain qualifier (a version or an alias; "$LATEST" arrives percent-encoded: general path).
_NAME = re.compile(rb"[a-zA-Z0-9_-]{1,64}")
_QUALIFIER = re.compile(rb"[a-zA-Z0-9_-]{1,128}")
_QUALIFIER_PARAM = b"Qualifier="
# Headers of Invoke's other members (and a JSON-protocol target): their presence means the
# general path, which parses and validates them.
_DECLINE = (
    b"x-amz-log-type",
    b"x-amz-client-context",
    b"x-amz-durable-execution-name",
    b"x-amz-tenant-id",
    b"x-amz-target",
)
_JSON = (b"content-type", b"application/json")


class ExpressInvoke:
    def __init__(
        self,
        *,
        verify: Callable[[Request], Awaitable[SignedIdentity]],
        scope_of: Callable[[str], InvokeScope],
        ids: IdFactory,
    ) -> None:
        self._verify = verify  # the app's SigV4 check (it also follows new accounts' keys)
        self._scope_of = scope_of  # access key id -> its account's services
        self._ids = ids

    @staticmethod
    def eligible(req: Request, labels: dict[str, str]) -> tuple[str, str | None] | None:
        """(function name, qualifier) when ``req`` is a plain synchronous invoke; else None."""
        hmap = req.hmap
        kind = hmap.get(b"x-amz-invocation-type")
        if kind is not None and kind != b"RequestResponse":
            return None
        for header in _DECLINE:
            if header in hmap:
                return None
        if req.repeated_headers:
            return None
        name = labels.get("FunctionName", "")
        if not _NAME.fullmatch(name.encode()):
            return None
        query = req.query
        if not query:
            return name, None
        if not query.startswith(_QUALIFIER_PARAM):
            return None
        qualifier = query[len(_QUALIFIER_PARAM) :]
        if not _QUALIFIER.fullmatch(qualifier):
            return None
        return name, qualifier.decode()

    async def invoke(self, req: Request, request_id: str, name: str, qualifier: str | None) -> Reply:
        """Run the invoke; AwsError propagates to the app, which renders it as for any request."""
        identity = await self._verify(req)
        # A plain name is always the signer's own account's: no cross-account routing to do.
        scope = self._scope_of(identity.access_key_id)
        trace = req.hmap.get(b"x-amzn-trace-id")
        fv, inv = prepare_invocation(
            scope.functions,
            self._ids,
            region=identity.region,
            function_name=name,
            qualifier=qualifier,
            payload=req.body,
            kind="RequestResponse",
            request_id=request_id,
            trace_id=None if trace is None else trace.decode("latin-1"),
        )
        result = await scope.invocations.invoke(fv, inv)
        # serialize_response's order for Invoke's output headers, then the request id.
        headers = [
            (b"x-amz-executed-version", fv.version.encode()),
            _JSON,
            (b"x-amzn-requestid", request_id.encode()),
        ]
        if result.function_error:
            headers.insert(0, (b"x-amz-function-error", result.function_error.encode()))
        return 200, headers, result.payload
