"""The Application Load Balancer target shape for a function URL, multi-value headers off or on.

For functions written for an ALB target group and tagged ``lamina:url-event-format=alb`` (or
``alb-multivalue``).  Source: the Elastic Load Balancing guide, "Lambda functions as targets":

* the event is ``requestContext.elb.targetGroupArn``, ``httpMethod``, ``path``,
  ``queryStringParameters`` and ``headers`` -- or, with multi-value headers on,
  ``multiValueQueryStringParameters`` and ``multiValueHeaders`` instead -- ``body`` (``""`` when
  there is none) and ``isBase64Encoded``;
* query parameters are passed as the client sent them: "If the query parameters are URL-encoded,
  the load balancer does not decode them"; without multi-value headers a repeated header or
  parameter keeps its last value;
* the response is ``statusCode``, ``statusDescription``, ``headers`` (``multiValueHeaders`` when
  they are on), ``body`` and ``isBase64Encoded``; a function error, a malformed response or one
  over 1 MB is a ``502 Bad Gateway`` from the load balancer.

lamina's HTTP front writes its own reason phrase, so ``statusDescription`` is accepted and not
sent.  The target group ARN is made up per URL (``targetgroup/lamina-<function>/<16 hex>``).
Pure, no I/O.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from lamina.urls.event import EventSource, body_field
from lamina.urls.rest import multi_headers, response_body, response_headers
from lamina.web.connection import Reply, Request

RESPONSE_MAX = 1024 * 1024  # "The maximum size of the response JSON ... is 1 MB"
_BAD_GATEWAY = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)


def bad_gateway() -> Reply:
    """The load balancer's own 502 page."""
    return 502, [(b"server", b"awselb/2.0"), (b"content-type", b"text/html")], _BAD_GATEWAY


def target_group_arn(src: EventSource) -> str:
    digest = hashlib.sha256(src.url_id.encode()).hexdigest()[:16]
    name = f"lamina-{src.function_name}"[:32].rstrip("-")
    return f"arn:aws:elasticloadbalancing:{src.region}:{src.account_id}:targetgroup/{name}/{digest}"


def _query(raw: str) -> dict[str, list[str]]:
    """Key -> values, not decoded (the load balancer passes them as sent)."""
    out: dict[str, list[str]] = {}
    for part in raw.split("&"):
        if part:
            key, _, value = part.partition("=")
            out.setdefault(key, []).append(value)
    return out


def build_alb_event(req: Request, src: EventSource, *, now: float, multi_value: bool) -> dict[str, Any]:
    """The event an ALB target group sends (``now`` is unused: ALB's event carries no time)."""
    headers = multi_headers(req, src)
    query = _query(req.query.decode("latin-1"))
    event: dict[str, Any] = {
        "requestContext": {"elb": {"targetGroupArn": target_group_arn(src)}},
        "httpMethod": req.method,
        "path": req.path.decode("latin-1"),
    }
    if multi_value:
        event["multiValueQueryStringParameters"] = query
        event["multiValueHeaders"] = headers
    else:
        event["queryStringParameters"] = {k: v[-1] for k, v in query.items()}
        event["headers"] = {k: v[-1] for k, v in headers.items()}
    body, encoded = ("", False)
    if req.body:
        body, encoded = body_field(req.body, headers.get("content-type", [""])[-1])
    event["body"] = body
    event["isBase64Encoded"] = encoded
    return event


def alb_reply(payload: bytes, function_error: str | None, *, multi_value: bool) -> Reply:
    """The load balancer's mapping of the function's result (see the module docstring)."""
    if function_error is not None or len(payload) > RESPONSE_MAX:
        return bad_gateway()
    try:
        result = json.loads(payload) if payload else None
        status = int(result["statusCode"]) if isinstance(result, dict) else 0
    except (ValueError, UnicodeDecodeError, KeyError, TypeError):
        return bad_gateway()
    if not isinstance(result, dict) or not 100 <= status <= 599:
        return bad_gateway()
    headers = response_headers(result, single=not multi_value, multi=multi_value)
    body = response_body(result)
    if headers is None or body is None:
        return bad_gateway()
    return status, headers, body
