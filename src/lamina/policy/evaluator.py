"""Evaluate a resource-based policy the way IAM does, for the subset Lambda policies use.

``authorize`` answers whether ``principal`` may perform ``action`` given a policy document (or its
statements): an explicit Deny that matches wins, else any matching Allow grants, else the answer is
no (the implicit deny).  A statement matches when its Principal, Action and every Condition match.

Condition context keys a caller can supply: ``aws:SourceArn``, ``aws:SourceAccount``,
``lambda:FunctionUrlAuthType`` (and ``lambda:InvokedViaFunctionUrl``, true whenever a URL auth type
is given).  Keys are case-insensitive, as in IAM; a key absent from the context fails a positive
operator and satisfies a negated one (``StringNotEquals``…), and ``…IfExists`` operators are true
for an absent key.  An unknown operator never matches (fail closed).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

_ACCOUNT = re.compile(r"\d{12}")
_IAM_ARN = re.compile(r"arn:aws[a-zA-Z-]*:(?:iam|sts)::(?P<account>\d{12}):(?P<rest>.+)")


@lru_cache(maxsize=1024)
def _glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    """IAM wildcards: ``*`` any run of characters (``:`` and ``/`` included), ``?`` one character."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def glob_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    return _glob(pattern, ignore_case).fullmatch(value) is not None


def arn_like(pattern: str, value: str) -> bool:
    """ArnLike: each of the six ``:``-separated components is matched separately, with wildcards."""
    p_parts = pattern.split(":", 5)
    v_parts = value.split(":", 5)
    if len(p_parts) != 6 or len(v_parts) != 6:
        return False
    return all(glob_match(p, v) for p, v in zip(p_parts, v_parts, strict=True))


def principal_account(principal: str) -> str | None:
    """The account a principal belongs to: an account id or an IAM/STS ARN; None for a service."""
    if _ACCOUNT.fullmatch(principal):
        return principal
    if m := _IAM_ARN.fullmatch(principal):
        return m["account"]
    return None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _principal_matches(spec: Any, principal: str) -> bool:
    if spec == "*":
        return True
    if not isinstance(spec, Mapping):
        return False
    for kind, values in spec.items():
        for allowed in _as_list(values):
            if allowed == "*":
                return True
            if kind == "Service" and allowed == principal:
                return True
            if kind == "AWS" and _aws_principal_matches(str(allowed), principal):
                return True
    return False


def _aws_principal_matches(allowed: str, principal: str) -> bool:
    if allowed == principal:
        return True
    # An account id or its root ARN stands for every identity of that account.
    if _ACCOUNT.fullmatch(allowed):
        return principal_account(principal) == allowed
    root = _IAM_ARN.fullmatch(allowed)
    return root is not None and root["rest"] == "root" and principal_account(principal) == root["account"]


def _action_matches(spec: Any, action: str) -> bool:
    return any(glob_match(str(a), action, ignore_case=True) for a in _as_list(spec))


_Compare = Callable[[str, str], bool]
_OPERATORS: dict[str, tuple[_Compare, bool]] = {  # name -> (compare(pattern, value), negated)
    "StringEquals": (lambda p, v: p == v, False),
    "StringNotEquals": (lambda p, v: p == v, True),
    "StringEqualsIgnoreCase": (lambda p, v: p.lower() == v.lower(), False),
    "StringNotEqualsIgnoreCase": (lambda p, v: p.lower() == v.lower(), True),
    "StringLike": (glob_match, False),
    "StringNotLike": (glob_match, True),
    "ArnEquals": (arn_like, False),  # IAM treats ArnEquals and ArnLike alike
    "ArnLike": (arn_like, False),
    "ArnNotEquals": (arn_like, True),
    "ArnNotLike": (arn_like, True),
    "Bool": (lambda p, v: p.lower() == v.lower(), False),
}


def _condition_matches(operator: str, entries: Any, context: Mapping[str, str]) -> bool:
    if_exists = operator.endswith("IfExists")
    base = operator[: -len("IfExists")] if if_exists else operator
    known = _OPERATORS.get(base)
    if known is None or not isinstance(entries, Mapping):
        return False
    compare, negated = known
    for key, patterns in entries.items():
        value = context.get(key.lower())
        if value is None:
            if if_exists or negated:
                continue
            return False
        hit = any(compare(str(p), value) for p in _as_list(patterns))
        if hit == negated:
            return False
    return True


def _statement_matches(
    stmt: Mapping[str, Any], principal: str, action: str, context: Mapping[str, str]
) -> bool:
    if "Principal" in stmt and not _principal_matches(stmt["Principal"], principal):
        return False
    if "NotPrincipal" in stmt and _principal_matches(stmt["NotPrincipal"], principal):
        return False
    if "Action" in stmt and not _action_matches(stmt["Action"], action):
        return False
    if "NotAction" in stmt and _action_matches(stmt["NotAction"], action):
        return False
    if "Principal" not in stmt and "NotPrincipal" not in stmt:
        return False  # a resource policy statement without a principal grants nothing
    if "Action" not in stmt and "NotAction" not in stmt:
        return False
    conditions = stmt.get("Condition") or {}
    if not isinstance(conditions, Mapping):
        return False
    return all(_condition_matches(op, entries, context) for op, entries in conditions.items())


def authorize(
    policy: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None,
    *,
    principal: str,
    action: str,
    source_arn: str | None = None,
    source_account: str | None = None,
    url_auth_type: str | None = None,
) -> bool:
    """True when ``policy`` lets ``principal`` perform ``action`` in this request context."""
    if policy is None:
        return False
    statements = _as_list(policy.get("Statement")) if isinstance(policy, Mapping) else list(policy)
    context: dict[str, str] = {}
    if source_arn is not None:
        context["aws:sourcearn"] = source_arn
    if source_account is not None:
        context["aws:sourceaccount"] = source_account
    if url_auth_type is not None:
        context["lambda:functionurlauthtype"] = url_auth_type
        context["lambda:invokedviafunctionurl"] = "true"
    allowed = False
    for stmt in statements:
        if not isinstance(stmt, Mapping) or not _statement_matches(stmt, principal, action, context):
            continue
        effect = stmt.get("Effect")
        if effect == "Deny":
            return False
        if effect == "Allow":
            allowed = True
    return allowed
