"""botocore's service model as the spec: loading it, and small shared helpers over its shapes.

Compiled artefacts (routes, parse plans, validators) are cached on the botocore objects they were
built from: ``ServiceModel`` hands out the same ``OperationModel`` and ``Shape`` objects on every
access, so the object itself is the natural owner of its cache and nothing lives at module level.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import formatdate, parsedate_to_datetime
from typing import Any, TypeVar

from botocore.loaders import Loader
from botocore.model import ServiceModel, Shape
from botocore.utils import parse_timestamp

T = TypeVar("T")

# Attribute prefix for artefacts attached to botocore objects; namespaced so it cannot collide.
_ATTR = "_lamina_"

SCALAR_TYPES = frozenset({"string", "integer", "long", "boolean", "float", "double", "blob", "timestamp"})


def load_service_model(service: str, api_version: str | None = None) -> ServiceModel:
    """The botocore model lamina serves; real clients are built from the very same file."""
    raw = Loader().load_service_model(service, "service-2", api_version)
    return ServiceModel(raw, service_name=service)


def cached_on(obj: Any, key: str, build: Callable[[], T]) -> T:
    """``build()`` once per botocore object, stored on that object (see module docstring)."""
    attrs: dict[str, Any] = vars(obj)
    name = _ATTR + key
    found = attrs.get(name)
    if found is None:
        found = build()
        attrs[name] = found
    return found


def lower_camel(name: str) -> str:
    """AWS reports paths in the wire model's member casing: ``KMSKeyArn`` -> ``kMSKeyArn``."""
    return name[:1].lower() + name[1:]


def is_sensitive(shape: Shape) -> bool:
    return bool(shape.metadata.get("sensitive"))


def is_event_stream(shape: Shape) -> bool:
    return bool(shape.serialization.get("eventstream"))


def is_document(shape: Shape) -> bool:
    return bool(getattr(shape, "is_document_type", False))


# ---- timestamps -------------------------------------------------------------------------------


def to_utc(value: datetime) -> datetime:
    """Aware UTC; a naive datetime is taken to be UTC already (as botocore does)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_wire_timestamp(value: str | float, fmt: str) -> datetime:
    """A timestamp as it arrived in a query string, header or JSON body, in ``fmt`` if it fits.

    Raises ``ValueError`` on anything unparseable. Other spellings are accepted too (botocore's
    own parser is as lenient), because a client with a non-default format must not be refused.
    """
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    text = value.strip()
    if fmt == "rfc822":
        try:
            return to_utc(parsedate_to_datetime(text))
        except (TypeError, ValueError, IndexError):
            pass
    elif fmt == "unixtimestamp":
        try:
            return datetime.fromtimestamp(float(text), UTC)
        except (ValueError, OverflowError):
            pass
    elif text.endswith("Z") and "T" in text:
        try:
            return to_utc(datetime.fromisoformat(text[:-1] + "+00:00"))
        except ValueError:
            pass
    parsed = parse_timestamp(text)
    if not isinstance(parsed, datetime):
        raise ValueError(text)
    return to_utc(parsed)


def _as_datetime(value: datetime | str | float) -> datetime:
    if isinstance(value, datetime):
        return to_utc(value)
    return parse_wire_timestamp(value, "iso8601")


def format_timestamp(value: datetime | str | float, fmt: str) -> str | int | float:
    """A result timestamp in the wire format: epoch seconds (number), ISO 8601 or HTTP-date."""
    if fmt == "unixtimestamp" and isinstance(value, int | float) and not isinstance(value, bool):
        return value
    dt = _as_datetime(value)
    if fmt == "unixtimestamp":
        seconds = calendar.timegm(dt.utctimetuple())
        if dt.microsecond:
            return seconds + round(dt.microsecond / 1_000_000, 3)
        return seconds
    if fmt == "rfc822":
        return formatdate(calendar.timegm(dt.utctimetuple()), usegmt=True)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
