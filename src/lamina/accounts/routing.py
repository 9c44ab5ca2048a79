"""Which account serves a request: the signer's own, or -- when the request names another
account's function by ARN -- that account, if and only if its resource policy allows the signer.

AWS lets other accounts use a function only through its resource-based policy; lamina has no
identity policies, so each key is its account's root and may do anything to its own resources,
and nothing to another's beyond what the owner's policy grants, for the operations below.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

from lamina.errors import AwsError
from lamina.functions.arns import parse_function_ref
from lamina.model.function import function_arn

# Operations another account may perform on a function when its resource policy allows the
# action (AWS's cross-account list, restricted to what lamina implements); any other operation
# naming another account's resource is denied.
CROSS_ACCOUNT_ACTIONS = {
    "Invoke": "lambda:InvokeFunction",
    "InvokeWithResponseStream": "lambda:InvokeFunction",
    "GetFunction": "lambda:GetFunction",
    "GetFunctionConfiguration": "lambda:GetFunctionConfiguration",
    "GetAlias": "lambda:GetAlias",
    "ListAliases": "lambda:ListAliases",
    "ListVersionsByFunction": "lambda:ListVersionsByFunction",
}


def caller_principal(account_id: str) -> str:
    """The identity an account's credentials stand for: lamina's keys are each account's root."""
    return f"arn:aws:iam::{account_id}:root"


def denied(principal: str, action: str, resource: str) -> AwsError:
    return AwsError(
        "AccessDeniedException",
        f"User: {principal} is not authorized to perform: {action} on resource: {resource} "
        f"because no resource-based policy allows the {action} action",
    )


def _action(op_name: str) -> str:
    return CROSS_ACCOUNT_ACTIONS.get(op_name) or f"lambda:{op_name}"


def target_account(params: Mapping[str, Any]) -> str | None:
    """The account an ARN in the request names (its function, or the tagged resource), if any."""
    ident = params.get("FunctionName") or params.get("Resource")
    if not isinstance(ident, str) or ":" not in ident:
        return None
    parts = ident.split(":")
    if ident.startswith("arn:") and len(parts) > 4:
        account = parts[4]
    elif len(parts) > 1 and parts[1] == "function":  # the partial form 123456789012:function:f
        account = parts[0]
    else:
        return None
    return account or None


class _Policies(Protocol):
    def check_invoke(
        self, region: str, ident: str, qualifier: str | None = None, *, principal: str, action: str = ...
    ) -> None: ...


class Owner(Protocol):
    @property
    def account_id(self) -> str: ...

    @property
    def policies(self) -> _Policies: ...


T = TypeVar("T", bound=Owner)


def route(by_account: Mapping[str, T], caller: T, op_name: str, region: str, params: Mapping[str, Any]) -> T:
    """``caller`` unless ``params`` names another account's resource; then that account's tenant
    when its policy allows ``caller``, else AWS's AccessDeniedException."""
    account = target_account(params)
    if account is None or account == caller.account_id:
        return caller
    principal = caller_principal(caller.account_id)
    action = _action(op_name)
    ident = params.get("FunctionName") or params.get("Resource") or ""
    try:
        ref = parse_function_ref(ident)
    except AwsError:
        return caller  # not an identifier at all: the caller's handler answers AWS's 400 for it
    resource = function_arn(region, account, ref.name, params.get("Qualifier") or ref.qualifier)
    owner = by_account.get(account)
    if owner is None or op_name not in CROSS_ACCOUNT_ACTIONS:
        raise denied(principal, action, resource)
    try:
        owner.policies.check_invoke(
            region, ident, params.get("Qualifier"), principal=principal, action=action
        )
    except AwsError as err:
        if err.code == "AccessDeniedException":
            raise
        # Another account's missing function looks like a refused one: no probing across accounts.
        raise denied(principal, action, resource) from None
    return owner
