"""What the CloudWatch Logs handlers share: their error type, ARNs, names and opaque tokens."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from lamina.errors import AwsError

# CloudWatch Logs answers client errors with 400 whatever the code (Lambda's ResourceNotFound is 404).
_STATUS: Mapping[str, int] = {
    "ServiceUnavailableException": 503,
    "NotImplementedException": 501,
    "ServiceException": 500,
}
NO_GROUP = "The specified log group does not exist."
NO_STREAM = "The specified log stream does not exist."
BAD_TOKEN = "The specified nextToken is invalid."


class LogsError(AwsError):
    """An AwsError with CloudWatch Logs' HTTP statuses."""

    @property
    def status(self) -> int:
        return _STATUS.get(self.code, 400)


def invalid(message: str) -> LogsError:
    return LogsError("InvalidParameterException", message)


def not_found(message: str = NO_GROUP) -> LogsError:
    return LogsError("ResourceNotFoundException", message)


def group_arn(region: str, account_id: str, group: str) -> str:
    return f"arn:aws:logs:{region}:{account_id}:log-group:{group}"


def group_name(params: Mapping[str, Any]) -> str:
    """``logGroupName``, or the name in ``logGroupIdentifier`` (a name or a log group ARN)."""
    name = params.get("logGroupName")
    ident = params.get("logGroupIdentifier")
    if name is not None and ident is not None:
        raise invalid("LogGroup name and LogGroup ARN are mutually exclusive parameters.")
    if name is not None:
        return str(name)
    if ident is None:
        raise invalid("Either logGroupName or logGroupIdentifier must be specified.")
    ident = str(ident)
    if not ident.startswith("arn:"):
        return ident
    parts = ident.split(":", 6)
    if len(parts) < 7 or parts[2] != "logs" or parts[5] != "log-group":
        raise invalid(f"Invalid logGroupIdentifier: {ident}")
    return parts[6].removesuffix(":*")


def encode_token(kind: str, value: Any) -> str:
    """An opaque pagination token: ``kind`` ties it to the operation that issued it."""
    raw = json.dumps([kind, value], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(kind: str, token: str) -> Any:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        found, value = json.loads(raw)
    except (binascii.Error, ValueError, TypeError, RecursionError):
        raise invalid(BAD_TOKEN) from None
    if found != kind:
        raise invalid(BAD_TOKEN)
    return value
