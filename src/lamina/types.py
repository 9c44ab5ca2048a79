"""Type aliases and small values shared across packages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

Params = dict[str, Any]
Output = dict[str, Any]


@dataclass(slots=True)
class RequestContext:
    """What a handler knows about the request beyond its parameters."""

    request_id: str  # x-amzn-RequestId of the response (and aws_request_id of a sync invoke)
    region: str  # from the SigV4 credential scope
    access_key_id: str
    base_url: str  # scheme://host[:port] as the client reached us, for URLs we hand out
    trace_id: str | None = None  # X-Amzn-Trace-Id as sent
    response_headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[RequestContext, Params], Awaitable[Output]]
