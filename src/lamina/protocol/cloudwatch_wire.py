"""CloudWatch's three wire protocols, request in and response (or error) out.

CloudWatch (``monitoring``, API 2010-08-01) is served in every protocol its clients speak:
- ``cbor``: Smithy rpcv2Cbor, what botocore >= 1.40 (boto3, the aws CLI) sends: ``POST
  /service/GraniteServiceVersion20100801/operation/<Op>``, ``smithy-protocol: rpc-v2-cbor``;
- ``json``: awsJson1_0, ``X-Amz-Target: GraniteServiceVersion20100801.<Op>`` (SDKs of 2023-25);
- ``query``: ``Action=<Op>&Version=2010-08-01`` form-encoded (older SDKs and CLIs), XML answers.
The service is "query compatible": JSON and CBOR errors carry ``x-amzn-query-error:
<query code>;<Sender|Receiver>`` so clients report the same codes (``InvalidParameterValue``) as with query.
Parameters are decoded without the model: query's flattened ``A.member.1.B`` keys become lists and
maps of strings, and the handlers coerce (``lamina.api.cloudwatch``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from lamina.protocol import cbor

TARGET_PREFIX = "GraniteServiceVersion20100801"
_CBOR_PATH = f"/service/{TARGET_PREFIX}/operation/".encode()
_TARGET = f"{TARGET_PREFIX}.".encode()
XML_NAMESPACE = "http://monitoring.amazonaws.com/doc/2010-08-01/"
SHAPE_PREFIX = "com.amazonaws.cloudwatch#"

Headers = list[tuple[bytes, bytes]]

# Query code -> (modelled exception shape, HTTP status).  Codes not here keep their own name.
ERROR_SHAPES: dict[str, tuple[str, int]] = {
    "InvalidParameterValue": ("InvalidParameterValueException", 400),
    "MissingParameter": ("MissingRequiredParameterException", 400),
    "InvalidParameterCombination": ("InvalidParameterCombinationException", 400),
    "InvalidNextToken": ("InvalidNextToken", 400),
    "InternalServiceError": ("InternalServiceFault", 500),
}
# The HTTP status of the other codes (the fault is Receiver from 500 up, else Sender).
STATUS: dict[str, int] = {
    "ValidationError": 400,
    "InvalidAction": 400,
    "NotImplemented": 501,
    "MalformedInput": 400,
    "RequestEntityTooLarge": 413,
    "MissingAuthenticationToken": 403,
    "InvalidClientTokenId": 403,
    "SignatureDoesNotMatch": 403,
    "IncompleteSignature": 400,
    "AccessDenied": 403,
}


class MalformedRequest(ValueError):
    pass


def protocol_of(method: str, path: bytes, hmap: Mapping[bytes, bytes]) -> str | None:
    """Which CloudWatch protocol a request speaks, or None (asked of every request: kept cheap)."""
    if path.startswith(_CBOR_PATH):
        return "cbor"
    target = hmap.get(b"x-amz-target")
    if target is not None:
        return "json" if target.startswith(_TARGET) else None
    if path != b"/" or method != "POST":
        return None
    form = hmap.get(b"content-type", b"").startswith(b"application/x-www-form-urlencoded")
    return "query" if form else None


def parse(protocol: str, path: bytes, hmap: Mapping[bytes, bytes], body: bytes) -> tuple[str, dict[str, Any]]:
    """(operation, parameters) of a request; raises ``MalformedRequest``."""
    try:
        if protocol == "cbor":
            op = path[len(_CBOR_PATH) :].decode()
            params = cbor.loads(body) if body else {}
        elif protocol == "json":
            op = hmap[b"x-amz-target"][len(_TARGET) :].decode()
            params = json.loads(body) if body.strip() else {}
        else:
            form = dict(parse_qsl(body.decode(), keep_blank_values=True))
            op = form.pop("Action", "")
            form.pop("Version", None)
            params = unflatten(form)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise MalformedRequest(f"The request body could not be parsed as {protocol}: {exc}") from exc
    if not isinstance(params, dict):
        raise MalformedRequest("The request body must be a structure.")
    return op, params


def unflatten(form: Mapping[str, str]) -> dict[str, Any]:
    """Query's ``Dimensions.member.1.Name=x`` -> ``{"Dimensions": [{"Name": "x"}]}``."""
    root: dict[str, Any] = {}
    for key, value in form.items():
        parts = key.split(".")
        node = root
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    out: dict[str, Any] = _lists(root)
    return out


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if set(node) == {"member"} and isinstance(node["member"], dict):
        members = node["member"]
        ordered = sorted(((k, v) for k, v in members.items() if k.isdigit()), key=lambda kv: int(kv[0]))
        return [_lists(v) for _, v in ordered]
    return {k: _lists(v) for k, v in node.items()}


# ------------------------------------------------------------------------------------------ out
def _plain(value: Any) -> Any:
    """JSON's view: timestamps as epoch seconds."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _xml(name: str, value: Any, out: list[str]) -> None:
    if isinstance(value, dict):
        out.append(f"<{name}>")
        for k, v in value.items():
            _xml(k, v, out)
        out.append(f"</{name}>")
    elif isinstance(value, list):
        out.append(f"<{name}>")
        for v in value:
            _xml("member", v, out)
        out.append(f"</{name}>")
    elif isinstance(value, datetime):
        out.append(f"<{name}>{value.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}Z</{name}>")
    elif isinstance(value, bool):
        out.append(f"<{name}>{'true' if value else 'false'}</{name}>")
    else:
        out.append(f"<{name}>{escape(str(value))}</{name}>")


def render(protocol: str, op: str, result: dict[str, Any], request_id: str) -> tuple[int, Headers, bytes]:
    if protocol == "cbor":
        return (
            200,
            [(b"content-type", b"application/cbor"), (b"smithy-protocol", b"rpc-v2-cbor")],
            cbor.dumps(result),
        )
    if protocol == "json":
        return 200, [(b"content-type", b"application/x-amz-json-1.0")], json.dumps(_plain(result)).encode()
    out = [f'<{op}Response xmlns="{XML_NAMESPACE}">']
    _xml(f"{op}Result", result, out)
    out.append(
        f"<ResponseMetadata><RequestId>{escape(request_id)}</RequestId></ResponseMetadata></{op}Response>"
    )
    return 200, [(b"content-type", b"text/xml")], "".join(out).encode()


def render_error(protocol: str, code: str, message: str, request_id: str) -> tuple[int, Headers, bytes]:
    shape, status = ERROR_SHAPES.get(code, (code, STATUS.get(code, 400)))
    fault = "Receiver" if status >= 500 else "Sender"
    if protocol == "query":
        body = (
            f'<ErrorResponse xmlns="{XML_NAMESPACE}"><Error><Type>{fault}</Type><Code>{escape(code)}</Code>'
            f"<Message>{escape(message)}</Message></Error><RequestId>{escape(request_id)}</RequestId></ErrorResponse>"
        )
        return status, [(b"content-type", b"text/xml")], body.encode()
    headers: Headers = [(b"x-amzn-query-error", f"{code};{fault}".encode())]
    error = {"__type": SHAPE_PREFIX + shape, "message": message}
    if protocol == "cbor":
        headers += [(b"content-type", b"application/cbor"), (b"smithy-protocol", b"rpc-v2-cbor")]
        return status, headers, cbor.dumps(error)
    headers.append((b"content-type", b"application/x-amz-json-1.0"))
    return status, headers, json.dumps(error).encode()
