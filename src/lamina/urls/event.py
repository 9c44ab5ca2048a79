"""The request event of a function URL: API Gateway's payload format 2.0, as Lambda builds it.

Source: AWS Lambda developer guide, "Invoking Lambda function URLs" -> "Request payload format",
and LocalStack's function URL router (whose tests were recorded against AWS).  Built from the
request as the front parsed it; pure, no I/O.

* ``headers``: names lower-cased, repeats joined with ``,``; ``cookie`` moves to ``cookies``;
  ``connection`` is dropped; Lambda adds ``x-amzn-trace-id`` and the ``x-forwarded-*`` trio
  (``x-forwarded-for`` gets the client's address appended to what a proxy sent).  AWS's
  ``x-amzn-tls-*`` headers are left out: lamina's URLs are plain HTTP.
* ``queryStringParameters``: decoded, repeated keys joined with ``,``; absent with no query.
* ``body``: absent when empty; text when the content type is textual and the bytes are UTF-8,
  base64 (``isBase64Encoded``) otherwise.
* ``requestContext.accountId`` is ``anonymous`` for AuthType NONE (the caller's account for
  AWS_IAM, with ``authorizer.iam``); ``pathParameters`` and ``stageVariables`` are absent.
"""

from __future__ import annotations

import base64
import ipaddress
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

from lamina.web.connection import Request

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DROPPED = frozenset({"connection", "cookie"})
_TEXT_SUBTYPES = ("json", "xml", "javascript")


@dataclass(frozen=True, slots=True)
class EventSource:
    """What the event needs beyond the request itself."""

    url_id: str
    port: int
    request_id: str
    trace_id: str
    iam: dict[str, Any] | None = None  # requestContext.authorizer.iam for AWS_IAM URLs
    # The URL's owner, for the API Gateway REST and ALB shapes (lamina.urls.shapes).
    account_id: str = ""
    region: str = ""
    function_name: str = ""


@lru_cache(maxsize=4)
def _clf_second(epoch_s: int) -> str:
    t = time.gmtime(epoch_s)
    clock = f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    return f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:{clock} +0000"


def clf_time(epoch_s: float) -> str:
    """``12/Mar/2020:19:03:58 +0000`` (English month names whatever the locale), made once a second."""
    return _clf_second(int(epoch_s))


def is_text(content_type: str) -> bool:
    """Whether a body of this content type goes to the function as text (else base64)."""
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime.startswith("text/"):
        return True
    subtype = mime.partition("/")[2]
    return any(subtype == s or subtype.endswith("+" + s) for s in _TEXT_SUBTYPES)


@lru_cache(maxsize=256)  # a URL sees few Host values; parsing an IP address is not free
def domain_prefix(host: str, url_id: str) -> str:
    """The first label of the host name, as API Gateway computes it; the URL id for an IP address
    or a single-label name (on AWS the prefix is always the URL id)."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    name = name.strip("[]")
    try:
        ipaddress.ip_address(name)
    except ValueError:
        if "." in name:
            return name.split(".", 1)[0]
    return url_id


def source_ip(peer: str) -> str:
    """The client's address; an IPv4 client of a dual-stack listener as plain IPv4."""
    return peer[7:] if peer.startswith("::ffff:") and "." in peer else peer


def _headers(req: Request, src: EventSource) -> tuple[dict[str, str], list[str]]:
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for raw_name, raw_value in req.headers:
        name = raw_name.decode("latin-1")
        value = raw_value.decode("latin-1")
        if name == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
        if name in _DROPPED:
            continue
        seen = headers.get(name)
        headers[name] = value if seen is None else f"{seen},{value}"
    forwarded = headers.get("x-forwarded-for")
    ip = source_ip(req.peer)
    headers["x-forwarded-for"] = f"{forwarded}, {ip}" if forwarded else ip
    headers["x-forwarded-proto"] = "http"
    headers["x-forwarded-port"] = str(src.port)
    headers["x-amzn-trace-id"] = src.trace_id
    return headers, cookies


def _query(raw: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        out[key] = f"{out[key]},{value}" if key in out else value
    return out


def build_event(req: Request, src: EventSource, *, now: float) -> dict[str, Any]:
    """The event a function URL request becomes (see the module docstring)."""
    headers, cookies = _headers(req, src)
    raw_path = req.path.decode("latin-1")
    raw_query = req.query.decode("latin-1")
    host = headers.get("host", "")
    http = {
        "method": req.method,
        "path": raw_path,
        "protocol": f"HTTP/{req.version}",
        "sourceIp": source_ip(req.peer),
        "userAgent": headers.get("user-agent", ""),
    }
    context: dict[str, Any] = {
        "accountId": src.iam["accountId"] if src.iam else "anonymous",
        "apiId": src.url_id,
    }
    if src.iam is not None:
        context["authorizer"] = {"iam": src.iam}
    context.update(
        {
            "domainName": host,
            "domainPrefix": domain_prefix(host, src.url_id),
            "http": http,
            "requestId": src.request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": clf_time(now),
            "timeEpoch": int(now * 1000),
        }
    )
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    if raw_query:
        event["queryStringParameters"] = _query(raw_query)
    event["requestContext"] = context
    if req.body:
        event["body"], encoded = body_field(req.body, headers.get("content-type", ""))
    else:
        encoded = False
    event["isBase64Encoded"] = encoded
    return event


def body_field(body: bytes, content_type: str) -> tuple[str, bool]:
    """A request body as the event carries it: ``(text, False)`` for a textual content type and
    UTF-8 bytes, else ``(base64, True)`` (the rule is the same for payload 1.0, 2.0 and ALB)."""
    if is_text(content_type):
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode(), True
