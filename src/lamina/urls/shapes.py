"""The event shapes a function URL can send, by ``lamina:url-event-format`` value: each builds
the event from the request and maps the function's result back to the HTTP response.

``function-url`` (the default) is Lambda's payload format 2.0 (``event.py``, ``reply.py``);
``apigateway-rest`` is API Gateway's REST proxy integration, payload format 1.0 (``rest.py``);
``alb`` and ``alb-multivalue`` are an ALB target group's (``alb.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from lamina.urls import formats
from lamina.urls.alb import alb_reply, build_alb_event
from lamina.urls.event import build_event
from lamina.urls.reply import function_reply
from lamina.urls.rest import build_rest_event, rest_reply
from lamina.web.connection import Reply


@dataclass(frozen=True, slots=True)
class EventShape:
    name: str
    # (request, source, now=epoch seconds) -> the event
    build: Callable[..., dict[str, Any]]
    # (result payload, function error or None) -> the HTTP answer
    reply: Callable[[bytes, str | None], Reply]


SHAPES = {
    formats.FUNCTION_URL: EventShape(formats.FUNCTION_URL, build_event, function_reply),
    formats.APIGATEWAY_REST: EventShape(formats.APIGATEWAY_REST, build_rest_event, rest_reply),
    formats.ALB: EventShape(
        formats.ALB,
        partial(build_alb_event, multi_value=False),
        partial(alb_reply, multi_value=False),
    ),
    formats.ALB_MULTIVALUE: EventShape(
        formats.ALB_MULTIVALUE,
        partial(build_alb_event, multi_value=True),
        partial(alb_reply, multi_value=True),
    ),
}
DEFAULT = SHAPES[formats.FUNCTION_URL]


def shape_for(tags: dict[str, str]) -> EventShape:
    """The shape a function's tags ask for (payload 2.0 without the tag)."""
    return SHAPES.get(tags.get(formats.FORMAT_TAG, ""), DEFAULT)
