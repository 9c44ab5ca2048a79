"""Every AWS error lamina can answer: one table, one exception type, rendered in one place.

Handlers raise ``AwsError(code, message)``; the HTTP layer turns it into AWS's wire shape.  The
table holds what is fixed per code (HTTP status, ``Type``) so a handler cannot get them wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# code -> (HTTP status, Lambda's "Type" field: "User" for caller mistakes, "Service" for ours)
ERROR_TABLE: dict[str, tuple[int, str]] = {
    # authentication (SigV4)
    "MissingAuthenticationTokenException": (403, "User"),
    "UnrecognizedClientException": (403, "User"),
    "InvalidSignatureException": (403, "User"),
    "AccessDeniedException": (403, "User"),
    "IncompleteSignatureException": (400, "User"),
    # request shape / validation
    "ValidationException": (400, "User"),
    "InvalidParameterValueException": (400, "User"),
    "InvalidRequestContentException": (400, "User"),
    "UnsupportedMediaTypeException": (415, "User"),
    "RequestTooLargeException": (413, "User"),
    "RequestEntityTooLargeException": (413, "User"),
    "SerializedRequestEntityTooLargeException": (413, "User"),
    "InvalidZipFileException": (502, "User"),
    "CodeStorageExceededException": (400, "User"),
    "InvalidRuntimeException": (502, "User"),
    # resources
    "ResourceNotFoundException": (404, "User"),
    "ProvisionedConcurrencyConfigNotFoundException": (404, "User"),
    "ResourceConflictException": (409, "User"),
    "ResourceInUseException": (400, "User"),
    "ResourceNotReadyException": (502, "Service"),
    "PreconditionFailedException": (412, "User"),
    "PolicyLengthExceededException": (400, "User"),
    "TooManyRequestsException": (429, "User"),
    # EventBridge Scheduler (rest-json; statuses from its model) and EventBridge (json: 400s)
    "ConflictException": (409, "User"),
    "ServiceQuotaExceededException": (402, "User"),
    "ThrottlingException": (429, "User"),
    "InternalServerException": (500, "Service"),
    "ResourceAlreadyExistsException": (400, "User"),
    "LimitExceededException": (400, "User"),
    "InvalidEventPatternException": (400, "User"),
    "ManagedRuleException": (400, "User"),
    "ConcurrentModificationException": (400, "User"),
    "InternalException": (500, "Service"),
    # routing / not implemented
    "UnknownOperationException": (404, "User"),
    "NotImplementedException": (501, "User"),
    # ours
    "ServiceException": (500, "Service"),
}


@dataclass
class AwsError(Exception):
    """An error with AWS's code; ``fields`` adds members of the error shape (e.g. ``Reason``)."""

    code: str
    message: str
    fields: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(f"{self.code}: {self.message}")

    @property
    def status(self) -> int:
        return ERROR_TABLE.get(self.code, (400, "User"))[0]

    @property
    def error_type(self) -> str:
        return ERROR_TABLE.get(self.code, (400, "User"))[1]


class EventsError(AwsError):
    """An error of EventBridge's json API, which answers every client error with 400 (Lambda's
    and Scheduler's ResourceNotFoundException is 404); server errors keep the table's status."""

    @property
    def status(self) -> int:
        status = ERROR_TABLE.get(self.code, (400, "User"))[0]
        return status if status >= 500 else 400


def render_rest_json(err: AwsError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """AWS Lambda's (rest-json) error: code in ``x-amzn-ErrorType``, body with Type and Message.

    botocore reads the code from the header (or ``__type``) and the message from ``message`` /
    ``Message``; other SDKs read ``__type``, so both are present.
    """
    body: dict[str, Any] = {"Type": err.error_type, "Message": err.message, "__type": err.code}
    body.update(err.fields)
    headers = [
        (b"content-type", b"application/json"),
        (b"x-amzn-errortype", err.code.encode()),
    ]
    headers.extend((k.lower().encode(), v.encode()) for k, v in err.headers.items())
    return err.status, headers, json.dumps(body).encode()


def render_json(err: AwsError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The ``json`` protocol's error (CloudWatch Logs, Scheduler): ``__type`` and ``message``."""
    body: dict[str, Any] = {"__type": err.code, "message": err.message}
    body.update(err.fields)
    headers = [
        (b"content-type", b"application/x-amz-json-1.1"),
        (b"x-amzn-errortype", err.code.encode()),
    ]
    return err.status, headers, json.dumps(body).encode()


def render_message(
    err: AwsError, *, status: int | None = None
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Lambda's own answers on a function URL (403, 413, 429): ``{"Message": ...}`` and the code in
    ``x-amzn-ErrorType``; ``status`` overrides the table's (a URL refuses every auth error with 403)."""
    body = json.dumps({"Message": err.message}, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"x-amzn-errortype", err.code.encode())]
    return status or err.status, headers, body


def validation_error(problems: list[str]) -> AwsError:
    """AWS's aggregated validation message: ``1 validation error detected: Value ... at ...``."""
    n = len(problems)
    noun = "error" if n == 1 else "errors"
    return AwsError("ValidationException", f"{n} validation {noun} detected: " + "; ".join(problems))
