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
from lamina.functions.layers import GET_LAYER_VERSION
from lamina.model.function import function_arn
from lamina.model.layer import LayerVersion

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


# Layer operations another account may perform when the layer version's policy allows it.
LAYER_ACTIONS = {"GetLayerVersion": GET_LAYER_VERSION, "GetLayerVersionByArn": GET_LAYER_VERSION}


def target_account(params: Mapping[str, Any]) -> str | None:
    """The account an ARN in the request names (its function, the tagged resource, a layer), if any."""
    ident = (
        params.get("FunctionName") or params.get("Resource") or params.get("LayerName") or params.get("Arn")
    )
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


class _Layers(Protocol):
    def get_by_arn(self, region: str, arn: str) -> LayerVersion: ...

    def check_shared(self, lv: LayerVersion, caller_account: str) -> None: ...


class Owner(Protocol):
    @property
    def account_id(self) -> str: ...

    @property
    def policies(self) -> _Policies: ...

    @property
    def layers(self) -> _Layers: ...


T = TypeVar("T", bound=Owner)


def route(by_account: Mapping[str, T], caller: T, op_name: str, region: str, params: Mapping[str, Any]) -> T:
    """``caller`` unless ``params`` names another account's resource; then that account's tenant
    when its policy allows ``caller``, else AWS's AccessDeniedException."""
    account = target_account(params)
    if account is None or account == caller.account_id:
        return caller
    principal = caller_principal(caller.account_id)
    if "FunctionName" not in params and "Resource" not in params:
        return _layer(by_account, caller, account, op_name, region, params)
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


def _layer(
    by_account: Mapping[str, T], caller: T, account: str, op_name: str, region: str, params: Mapping[str, Any]
) -> T:
    """A layer of another account: readable (GetLayerVersion) where its version's policy allows."""
    ident = params.get("Arn") or params.get("LayerName") or ""
    version = params.get("VersionNumber")
    resource = ident if version is None else f"{ident}:{version}"
    principal = caller_principal(caller.account_id)
    action = LAYER_ACTIONS.get(op_name) or f"lambda:{op_name}"
    owner = by_account.get(account)
    if owner is None or op_name not in LAYER_ACTIONS:
        raise denied(principal, action, resource)
    try:
        lv = owner.layers.get_by_arn(region, resource)
    except AwsError:  # missing looks refused: nothing to probe
        raise denied(principal, action, resource) from None
    owner.layers.check_shared(lv, caller.account_id)
    return owner
