"""Function identifiers as AWS accepts them: name, partial or full ARN, with an optional qualifier."""

from __future__ import annotations

import re
from dataclasses import dataclass

from lamina.errors import AwsError

_NAME = re.compile(r"[a-zA-Z0-9\-_]{1,64}")
_QUALIFIER = re.compile(r"\$LATEST|[a-zA-Z0-9\-_]{1,128}")
_FULL = re.compile(
    r"arn:(?P<partition>aws[a-zA-Z-]*):lambda:(?P<region>[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d):"
    r"(?P<account>\d{12}):function:(?P<rest>.+)"
)
_PARTIAL = re.compile(r"(?P<account>\d{12}):function:(?P<rest>.+)")


@dataclass(slots=True)  # not frozen: made per invoke; a frozen __init__ costs 2-4x as much
class FunctionRef:
    name: str
    qualifier: str | None
    region: str | None = None
    account: str | None = None


def parse_function_ref(ident: str) -> FunctionRef:
    """Split a FunctionName parameter; raise AWS's error for forms AWS would reject."""
    if ":" not in ident and _NAME.fullmatch(ident):
        # A plain name (every invoke by name): neither ARN form nor a qualifier can be in it, so
        # only the name's own check applies -- two failing regex matches less per invoke.
        return FunctionRef(name=ident, qualifier=None)
    region = account = None
    rest = ident
    if m := _FULL.fullmatch(ident):
        region, account, rest = m["region"], m["account"], m["rest"]
    elif m := _PARTIAL.fullmatch(ident):
        account, rest = m["account"], m["rest"]
    name, _, qualifier = rest.partition(":")
    if not _NAME.fullmatch(name) or (qualifier and not _QUALIFIER.fullmatch(qualifier)):
        raise AwsError(
            "ValidationException",
            f"1 validation error detected: Value '{ident}' at 'functionName' failed to satisfy constraint: "
            "Member must satisfy regular expression pattern: "
            r"(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\d{1}:)?(\d{12}:)?(function:)?"
            r"([a-zA-Z0-9-_\.]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?",
        )
    return FunctionRef(name=name, qualifier=qualifier or None, region=region, account=account)


def resolve_qualifier(ref: FunctionRef, qualifier: str | None) -> str | None:
    """Combine a qualifier in the name with the Qualifier parameter, as AWS does."""
    if ref.qualifier and qualifier and ref.qualifier != qualifier:
        raise AwsError(
            "InvalidParameterValueException",
            "The derived qualifier from the function name does not match the specified qualifier.",
        )
    return qualifier or ref.qualifier
