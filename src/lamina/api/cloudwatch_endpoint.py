"""The CloudWatch endpoint as the HTTP app sees it: one call per request, answered whole.

``handle`` verifies the SigV4 signature (scoped to service ``monitoring``), decodes the request in
its protocol, runs the operation and renders the result or the error in that same protocol
(``lamina.protocol.cloudwatch_wire``), so the app needs no CloudWatch-specific error handling.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from lamina.api.cloudwatch import CloudWatchApi
from lamina.api.cloudwatch_params import CloudWatchError
from lamina.auth.sigv4 import SigV4Verifier
from lamina.errors import AwsError
from lamina.protocol import cloudwatch_wire as wire
from lamina.protocol.model import load_service_model

log = logging.getLogger("lamina.http")

SERVICE = "monitoring"  # CloudWatch's signing name
BODY_MAX = 1024 * 1024  # CloudWatch's request size limit (PutMetricData's 1 MB)

# The verifier's (Lambda-named) codes as CloudWatch, a query-protocol service, names them.
_AUTH_CODES = {
    "MissingAuthenticationTokenException": "MissingAuthenticationToken",
    "UnrecognizedClientException": "InvalidClientTokenId",
    "InvalidSignatureException": "SignatureDoesNotMatch",
    "IncompleteSignatureException": "IncompleteSignature",
    "AccessDeniedException": "AccessDenied",
}

Operation = Callable[[CloudWatchApi, str, dict[str, Any]], Awaitable[dict[str, Any]]]


async def _list_metrics(api: CloudWatchApi, region: str, params: dict[str, Any]) -> dict[str, Any]:
    return api.list_metrics(region, params)


_OPERATIONS: dict[str, Operation] = {
    "GetMetricStatistics": CloudWatchApi.get_metric_statistics,
    "GetMetricData": CloudWatchApi.get_metric_data,
    "ListMetrics": _list_metrics,
}


class CloudWatchEndpoint:
    def __init__(
        self,
        api: CloudWatchApi,
        verifier: SigV4Verifier,
        *,
        api_for: Callable[[str], CloudWatchApi | None] | None = None,
    ) -> None:
        """``api_for``: the metrics of the signer's account, by access key id (None: ``api``'s)."""
        self._verifier = verifier
        self._api = api
        self._api_for = api_for
        self._all_ops: frozenset[str] | None = None  # CloudWatch's operations, from the model (lazily)

    @staticmethod
    def protocol_of(method: str, path: bytes, hmap: Mapping[bytes, bytes]) -> str | None:
        return wire.protocol_of(method, path, hmap)

    def admit(
        self, protocol: str, hmap: Mapping[bytes, bytes], raw_query: bytes, request_id: str
    ) -> int | tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Before the body is read: its size limit, or the refusal of an unsigned request or of a
        body declared too large (so neither is ever buffered)."""
        if b"authorization" not in hmap and b"X-Amz-Signature" not in raw_query:
            reply = wire.render_error(
                protocol, "MissingAuthenticationToken", "Request is missing Authentication Token", request_id
            )
        else:
            declared = hmap.get(b"content-length", b"")
            if not declared.isdigit() or int(declared) <= BODY_MAX:
                return BODY_MAX
            reply = wire.render_error(
                protocol,
                "RequestEntityTooLarge",
                f"Request must be smaller than {BODY_MAX} bytes.",
                request_id,
            )
        reply[1].append((b"x-amzn-requestid", request_id.encode()))
        return reply

    async def handle(
        self,
        protocol: str,
        *,
        method: str,
        raw_path: bytes,
        raw_query: bytes,
        headers: list[tuple[bytes, bytes]],
        hmap: Mapping[bytes, bytes],
        body: bytes,
        request_id: str,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        try:
            identity = self._verifier.verify(method, raw_path, raw_query, headers, body)
            if identity.service != SERVICE:
                raise CloudWatchError(
                    "SignatureDoesNotMatch", f"Credential should be scoped to correct service: '{SERVICE}'."
                )
            try:
                op, params = wire.parse(protocol, raw_path, hmap, body)
            except wire.MalformedRequest as exc:
                raise CloudWatchError("MalformedInput", str(exc)) from None
            api = self._api if self._api_for is None else self._api_for(identity.access_key_id)
            if api is None:  # its account was deleted since the signature was checked
                raise AwsError(
                    "UnrecognizedClientException", "The security token included in the request is invalid."
                )
            handler = _OPERATIONS.get(op)
            if handler is None:
                raise self._unsupported(op)
            result = await handler(api, identity.region, params)
            reply = wire.render(protocol, op, result, request_id)
        except AwsError as err:
            reply = wire.render_error(protocol, _AUTH_CODES.get(err.code, err.code), err.message, request_id)
        except CloudWatchError as err:
            reply = wire.render_error(protocol, err.code, err.message, request_id)
        except Exception:
            log.exception("unhandled error in a CloudWatch request", extra={"request_id": request_id})
            reply = wire.render_error(protocol, "InternalServiceError", "Internal service error.", request_id)
        reply[1].append((b"x-amzn-requestid", request_id.encode()))
        return reply

    def _unsupported(self, op: str) -> CloudWatchError:
        if self._all_ops is None:
            self._all_ops = frozenset(load_service_model("cloudwatch").operation_names)
        if op in self._all_ops:
            return CloudWatchError(
                "NotImplemented",
                f"lamina does not implement the CloudWatch {op} operation; it answers GetMetricStatistics, "
                "GetMetricData and ListMetrics for the AWS/Lambda namespace.",
            )
        return CloudWatchError(
            "InvalidAction", f"The action {op or '(none)'} is not valid for this web service."
        )
