"""Which event shape a function URL sends: lamina's setting, a function tag.

AWS's FunctionUrlConfig has no such member (a function URL always sends payload format 2.0), so
functions written for API Gateway REST APIs (payload format 1.0) or for an Application Load
Balancer target group opt in with the tag ``lamina:url-event-format`` on the function, read when
the URL is served; every URL of the function (its own and its aliases') uses it.  No imports:
the tag rules (``lamina.functions.tags``) check values against ``FORMATS``.
"""

from __future__ import annotations

FORMAT_TAG = "lamina:url-event-format"
FUNCTION_URL = "function-url"  # payload format 2.0, Lambda's own (the default)
APIGATEWAY_REST = "apigateway-rest"  # API Gateway REST API, Lambda proxy integration (payload 1.0)
ALB = "alb"  # an ALB target group, multi-value headers off
ALB_MULTIVALUE = "alb-multivalue"  # an ALB target group, multi-value headers on
FORMATS = (FUNCTION_URL, APIGATEWAY_REST, ALB, ALB_MULTIVALUE)


def bad_format_message(value: str) -> str | None:
    """Why ``value`` is not a valid ``lamina:url-event-format`` tag value, or None."""
    if value in FORMATS:
        return None
    return f"Tag {FORMAT_TAG} must be one of {', '.join(FORMATS)}: {value!r}"
