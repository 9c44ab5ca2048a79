"""Parameters of CloudWatch requests as any of its three protocols decode them (CBOR: numbers and
datetimes; JSON: numbers; query: strings), coerced to what the handlers use, and CloudWatch's
errors for those that do not fit."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from lamina.telemetry.harvest import Dims, Stats

Params = dict[str, Any]

_YEAR_10000 = 253402300800.0


class CloudWatchError(Exception):
    """An error in CloudWatch's terms: the query-protocol code (``InvalidParameterValue``); the
    protocol layer maps it to its modelled shape name and status."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def invalid(message: str) -> CloudWatchError:
    return CloudWatchError("InvalidParameterValue", message)


def required(params: Params, name: str, where: str = "") -> Any:
    value = params.get(name)
    if value is None or value == "":
        raise CloudWatchError("MissingParameter", f"The parameter {where}{name} is required.")
    return value


def timestamp(value: Any, name: str) -> float:
    """Epoch seconds of a CBOR datetime, a JSON number or a query ISO 8601 string."""
    t = _epoch(value, name)
    if not 0 <= t < _YEAR_10000:  # also refuses NaN and infinities
        raise invalid(f"The parameter {name} must be a timestamp between 1970 and 9999.")
    return t


def _epoch(value: Any, name: str) -> float:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise invalid(f"The parameter {name} must be a timestamp, not '{value}'.") from None
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    raise invalid(f"The parameter {name} must be a timestamp.")


def integer(value: Any, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise invalid(f"The parameter {name} must be an integer, not '{value}'.") from None
    return number


def period_of(value: Any, name: str) -> int:
    period = integer(value, name)
    if period < 60 or period % 60:
        raise invalid(f"The parameter {name} must be a multiple of 60 (lamina keeps 1-minute data).")
    return period


def members(value: Any, where: str) -> list[Any]:
    """A list parameter (absent: empty)."""
    if value is None or value == "":
        return []
    if not isinstance(value, list):
        raise invalid(f"The parameter {where} must be a list.")
    return value


def structure(value: Any, where: str) -> Params:
    if not isinstance(value, dict):
        raise invalid(f"The parameter {where} must be a structure.")
    return value


def dimensions(value: Any, where: str) -> Dims:
    pairs = []
    for i, item in enumerate(members(value, where), 1):
        d = structure(item, f"{where}.member.{i}")
        pairs.append(
            (
                str(required(d, "Name", f"{where}.member.{i}.")),
                str(required(d, "Value", f"{where}.member.{i}.")),
            )
        )
    if len(pairs) > 30:
        raise invalid(f"The collection {where} must not have more than 30 members.")
    return tuple(sorted(pairs))


def statistic(stats: Stats, name: str) -> float:
    count, total, lo, hi = stats
    if name == "Average":
        return total / count if count else 0.0
    return {"SampleCount": count, "Sum": total, "Minimum": lo}.get(name, hi)


def next_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode()


def offset_of(token: Any) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(str(token).encode()))["o"]
        if isinstance(offset, int) and offset >= 0:
            return offset
    except (ValueError, KeyError, TypeError, binascii.Error, RecursionError):
        pass
    raise CloudWatchError("InvalidNextToken", "The service cannot process the NextToken.")
