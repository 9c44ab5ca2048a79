"""The Runtime API's messages: what the engine hands in and gets back, and AWS's wire formats.

``ApiInvocation``, ``RuntimeAnswer`` and ``ApiIdentity`` are what the engine and
``runtime_api.RuntimeApiServer`` exchange (``runtime_api`` re-exports them; import them from
there).  The rest renders and reads what goes over the wire beyond plain HTTP (``runtime_http``):
the invocation's headers for the runtime's ``GET next``, the extensions' INVOKE and SHUTDOWN
events, error types and error-cause bodies, and the constant replies of the Runtime API routes,
each as AWS's Runtime Interface Emulator writes it (``lambda/rapi/rendering``, ``model``).

Concurrency invariants: none needed -- frozen data, pure functions and constant bytes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from typing import Any

from lamina.execution.runtime_http import error_response, go_json, http_response


@dataclass(frozen=True, slots=True)
class ApiInvocation:
    request_id: str
    payload: bytes
    deadline_ms: int  # epoch milliseconds
    invoked_function_arn: str
    trace_id: str | None = None
    client_context: str | None = None  # JSON text
    cognito_identity: str | None = None  # JSON text


@dataclass(frozen=True, slots=True)
class RuntimeAnswer:
    kind: str  # "ready" | "init_error" | "result" | "error"
    body: bytes = b""  # result bytes, or the error JSON
    error_type: str | None = None


@dataclass(frozen=True, slots=True)
class ApiIdentity:
    function_name: str
    function_version: str
    handler: str
    account_id: str


NOT_ALLOWED = "State transition is not allowed"
ERROR_CAUSE_CONTENT_TYPE = b"application/vnd.aws.lambda.error.cause+json"
_VALID_ERROR_TYPE = re.compile(r"(Runtime|Function)\.[A-Z][a-zA-Z]+")
_HEADER_UNSAFE = re.compile(r"[\r\n\0]")


def valid_runtime_error_type(header: str | None) -> str:
    """fatalerror.GetValidRuntimeOrFunctionErrorType."""
    if header and _VALID_ERROR_TYPE.search(header):
        return header
    if header and header.startswith("Function."):
        return "Function.Unknown"
    return "Runtime.Unknown"


def _header_value(value: str) -> str:
    # A value with CR/LF would break the response's framing.  Client contexts are JSON, where a raw
    # CR/LF can only be whitespace between tokens, so a space keeps their meaning.
    return _HEADER_UNSAFE.sub(" ", value) if _HEADER_UNSAFE.search(value) else value


def render_invocation_head(inv: ApiInvocation) -> bytes:
    """Status line and headers of the runtime's ``GET next`` answer (renderInvokeHeaders)."""
    parts = [
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        f"Lambda-Runtime-Aws-Request-Id: {_header_value(inv.request_id)}\r\n"
        f"Lambda-Runtime-Deadline-Ms: {inv.deadline_ms}\r\n"
        f"Lambda-Runtime-Invoked-Function-Arn: {_header_value(inv.invoked_function_arn)}\r\n"
    ]
    if inv.trace_id:
        parts.append(f"Lambda-Runtime-Trace-Id: {_header_value(inv.trace_id)}\r\n")
    if inv.client_context:
        parts.append(f"Lambda-Runtime-Client-Context: {_header_value(inv.client_context)}\r\n")
    if inv.cognito_identity:
        parts.append(f"Lambda-Runtime-Cognito-Identity: {_header_value(inv.cognito_identity)}\r\n")
    parts.append(f"Content-Length: {len(inv.payload)}\r\n\r\n")
    return "".join(parts).encode()


def render_invoke_event(inv: ApiInvocation) -> bytes:
    """The extensions' INVOKE event (model.AgentInvokeEvent; tracing only when there is a trace)."""
    esc = encode_basestring_ascii
    tracing = f',"tracing":{{"type":"X-Amzn-Trace-Id","value":{esc(inv.trace_id)}}}' if inv.trace_id else ""
    return (
        f'{{"eventType":"INVOKE","deadlineMs":{inv.deadline_ms},"requestId":{esc(inv.request_id)},'
        f'"invokedFunctionArn":{esc(inv.invoked_function_arn)}{tracing}}}'
    ).encode()


def render_shutdown_event(reason: str, deadline_ms: int) -> bytes:
    reason_json = encode_basestring_ascii(reason)
    return f'{{"eventType":"SHUTDOWN","deadlineMs":{deadline_ms},"shutdownReason":{reason_json}}}'.encode()


def error_cause_body(body: bytes) -> bytes:
    """The answer's body for an ``application/vnd.aws.lambda.error.cause+json`` error.

    AWS keeps errorMessage, errorType and stackTrace and drops errorCause (it goes to X-Ray); a
    body that does not parse becomes the JSON string "Invalid error body" (invocationerror.go).
    """
    try:
        data: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return b'"Invalid error body"'
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return b'"Invalid error body"'
    message, kind, trace = data.get("errorMessage"), data.get("errorType"), data.get("stackTrace")
    if not isinstance(message, str | None) or not isinstance(kind, str | None):
        return b'"Invalid error body"'
    if trace is not None and (not isinstance(trace, list) or not all(isinstance(t, str) for t in trace)):
        return b'"Invalid error body"'
    out: dict[str, Any] = {"errorMessage": message or "", "errorType": kind or ""}
    if trace:
        out["stackTrace"] = trace
    return go_json(out)


ACCEPTED = http_response(202, b'{"status":"OK"}\n')
INVALID_REQUEST_ID = error_response(400, "InvalidRequestID", "Invalid request ID")
INVALID_RESPONSE_MODE = error_response(400, "InvalidFunctionResponseMode", "Invalid function response mode")
LOGS_API_STUB = error_response(202, "Logs.NotSupported", "Logs API is not supported")
TELEMETRY_OK = http_response(200, b'"OK"')


def state_forbidden(state: str, to: str) -> bytes:
    return error_response(
        403,
        "InvalidStateTransition",
        f"State transition from {state} to {to} failed for runtime. Error: {NOT_ALLOWED}",
    )


def too_large(max_bytes: int) -> bytes:
    """The 413 for a request body over ``max_bytes``."""
    return error_response(
        413, "RequestEntityTooLarge", f"Exceeded maximum allowed payload size ({max_bytes} bytes)."
    )


def too_large_payload(size: int, max_bytes: int) -> bytes:
    """The answer's body (Function.ResponseSizeTooLarge) for a response of ``size`` bytes."""
    message = (
        f"Response payload size ({size} bytes) exceeded maximum allowed payload size ({max_bytes} bytes)."
    )
    return go_json({"errorType": "Function.ResponseSizeTooLarge", "errorMessage": message})
