"""AddPermission's parameters as the policy statement AWS renders, and the policy document around them.

AWS's rendering is compact JSON with keys in a fixed order (Sid, Effect, Principal, Action,
Resource, Condition) and condition operators StringEquals, ArnLike, Bool in that order; clients
compare these strings, so the order here is part of the wire format.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from lamina.errors import AwsError

MAX_POLICY_BYTES = 20 * 1024

_ACCOUNT = re.compile(r"\d{12}")


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def render_principal(principal: str) -> str | dict[str, str]:
    """``*``, an account id (its root), an ARN, or a service principal, as AWS writes them."""
    if principal == "*":
        return "*"
    if _ACCOUNT.fullmatch(principal):
        return {"AWS": f"arn:aws:iam::{principal}:root"}
    if principal.startswith("arn:"):
        return {"AWS": principal}
    if "." in principal:
        return {"Service": principal}
    raise AwsError(
        "InvalidParameterValueException",
        "The provided principal was invalid. Please check the principal and try again.",
    )


def build_statement(params: Mapping[str, Any], resource: str) -> dict[str, Any]:
    string_equals: dict[str, str] = {}
    if params.get("SourceAccount"):
        string_equals["AWS:SourceAccount"] = params["SourceAccount"]
    if params.get("PrincipalOrgID"):
        string_equals["aws:PrincipalOrgID"] = params["PrincipalOrgID"]
    if params.get("EventSourceToken"):
        string_equals["lambda:EventSourceToken"] = params["EventSourceToken"]
    if params.get("FunctionUrlAuthType"):
        string_equals["lambda:FunctionUrlAuthType"] = params["FunctionUrlAuthType"]
    condition: dict[str, dict[str, str]] = {}
    if string_equals:
        condition["StringEquals"] = string_equals
    if params.get("SourceArn"):
        condition["ArnLike"] = {"AWS:SourceArn": params["SourceArn"]}
    if params.get("InvokedViaFunctionUrl"):
        condition["Bool"] = {"lambda:InvokedViaFunctionUrl": "true"}
    stmt: dict[str, Any] = {
        "Sid": params["StatementId"],
        "Effect": "Allow",
        "Principal": render_principal(params["Principal"]),
        "Action": params["Action"],
        "Resource": resource,
    }
    if condition:
        stmt["Condition"] = condition
    return stmt


def document(statements: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Id": "default", "Statement": list(statements)}


def check_size(statements: Sequence[Mapping[str, Any]]) -> None:
    size = len(dumps(document(statements)).encode())
    if size > MAX_POLICY_BYTES:
        raise AwsError(
            "PolicyLengthExceededException",
            f"The final policy size ({size}) is bigger than the limit ({MAX_POLICY_BYTES}).",
        )
