"""AddPermission, RemovePermission, GetPolicy, and ``check_invoke`` — the enforcement hook.

Policies live per resource: the function itself (unqualified, which also covers ``$LATEST``) and
each published version or alias separately, as on AWS.  The in-memory table mirrors the store.

Concurrency invariant: a policy is written only under its function's lock (the one every
function, version and alias mutation holds), and the table is updated after the store committed;
the function's own deletions call ``forget`` under that lock, so a concurrent AddPermission that
waited on the lock finds the function gone instead of resurrecting its policy.  ``check_invoke``
reads the table without I/O.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lamina.errors import AwsError
from lamina.functions.arns import parse_function_ref, resolve_qualifier
from lamina.functions.service import FunctionService
from lamina.model.function import LATEST, function_arn
from lamina.policy.evaluator import authorize, principal_account
from lamina.policy.statements import build_statement, check_size, document, dumps
from lamina.store.metadata import MetadataStore
from lamina.store.policy import UNQUALIFIED, PolicyKey

_PRECONDITION = (
    "The Revision Id provided does not match the latest Revision Id. "
    "Call the GetPolicy API to retrieve the latest Revision Id"
)


@dataclass(frozen=True, slots=True)
class FunctionPolicy:
    revision_id: str
    statements: tuple[dict[str, Any], ...]

    def to_row(self) -> dict[str, Any]:
        return {"revision_id": self.revision_id, "statements": list(self.statements)}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> FunctionPolicy:
        return cls(revision_id=row["revision_id"], statements=tuple(row["statements"]))

    def document(self) -> dict[str, Any]:
        return document(self.statements)


@dataclass(frozen=True, slots=True)
class _Target:
    key: PolicyKey
    resource: str  # the ARN statements name as their Resource
    revision_id: str  # of the function version or alias: what RevisionId matches before any policy


class PolicyService:
    def __init__(self, *, functions: FunctionService, store: MetadataStore) -> None:
        self._functions = functions
        self._store = store
        self._policies: dict[PolicyKey, FunctionPolicy] = {}

    async def load(self) -> None:
        """Read every policy; drop those whose resource is gone (a crash between deletions)."""
        rows = await self._store.call(self._store.load_policies)
        for key, row in rows.items():
            if self._exists(key):
                self._policies[key] = FunctionPolicy.from_row(row)
            else:
                await self._store.call(self._store.put_policy, key, None)

    def _exists(self, key: PolicyKey) -> bool:
        region, name, qualifier = key
        try:
            self._functions.resolve(region, name, qualifier or None)
        except AwsError:
            return False
        return True

    # -- resolution -------------------------------------------------------------------------------
    def _target(self, region: str, ident: str, qualifier: str | None) -> _Target:
        """The policy a FunctionName + Qualifier designates; 404 if the function/qualifier is absent."""
        ref = parse_function_ref(ident)
        qual = resolve_qualifier(ref, qualifier)
        if qual == LATEST:
            qual = None  # $LATEST has no policy of its own: the function's applies
        fv = self._functions.resolve(region, ident, qualifier)  # raises AWS's 404
        revision = fv.revision_id
        if qual is not None and not qual.isdigit():
            revision = self._functions.aliases[(region, fv.name)][qual].revision_id
        account = self._functions.account_id
        return _Target(
            key=(region, fv.name, qual or UNQUALIFIED),
            resource=function_arn(region, account, fv.name, qual),
            revision_id=revision,
        )

    def current(self, key: PolicyKey) -> FunctionPolicy | None:
        """One resource's policy as it is now.  Policies are immutable (a change replaces the
        object), so a caller may memoise a decision on the object's identity (function URLs do)."""
        return self._policies.get(key)

    def _check_revision(self, target: _Target, revision_id: str | None) -> None:
        if revision_id is None:
            return
        current = self._policies.get(target.key)
        expected = current.revision_id if current else target.revision_id
        if revision_id != expected:
            raise AwsError("PreconditionFailedException", _PRECONDITION)

    async def _write(self, key: PolicyKey, statements: tuple[dict[str, Any], ...]) -> None:
        if not statements:
            await self._store.call(self._store.put_policy, key, None)
            self._policies.pop(key, None)
            return
        policy = FunctionPolicy(revision_id=str(uuid.uuid4()), statements=statements)
        await self._store.call(self._store.put_policy, key, policy.to_row())
        self._policies[key] = policy

    # -- API ----------------------------------------------------------------------------------------
    async def add(self, region: str, params: Mapping[str, Any]) -> dict[str, Any]:
        ref = parse_function_ref(params["FunctionName"])
        if resolve_qualifier(ref, params.get("Qualifier")) == LATEST:
            raise AwsError(
                "InvalidParameterValueException", "We currently do not support adding policies for $LATEST."
            )
        self._target(region, params["FunctionName"], params.get("Qualifier"))  # 404 before the lock
        async with self._functions.lock(region, ref.name):
            target = self._target(region, params["FunctionName"], params.get("Qualifier"))
            self._check_revision(target, params.get("RevisionId"))
            current = self._policies.get(target.key)
            existing = current.statements if current else ()
            sid = params["StatementId"]
            if any(s.get("Sid") == sid for s in existing):
                raise AwsError(
                    "ResourceConflictException",
                    f"The statement id ({sid}) provided already exists. Please provide a new statement id, "
                    "or remove the existing statement.",
                )
            statement = build_statement(params, target.resource)
            statements = (*existing, statement)
            check_size(statements)
            await self._write(target.key, statements)
        return statement

    async def remove(
        self, region: str, ident: str, sid: str, *, qualifier: str | None, revision_id: str | None
    ) -> None:
        name = parse_function_ref(ident).name
        self._target(region, ident, qualifier)
        async with self._functions.lock(region, name):
            target = self._target(region, ident, qualifier)
            self._check_revision(target, revision_id)
            current = self._policies.get(target.key)
            if current is None or not any(s.get("Sid") == sid for s in current.statements):
                raise AwsError(
                    "ResourceNotFoundException", f"Statement {sid} is not found in resource policy."
                )
            await self._write(target.key, tuple(s for s in current.statements if s.get("Sid") != sid))

    def get(self, region: str, ident: str, qualifier: str | None) -> dict[str, Any]:
        target = self._target(region, ident, qualifier)
        current = self._policies.get(target.key)
        if current is None:
            raise AwsError("ResourceNotFoundException", "The resource you requested does not exist.")
        return {"Policy": dumps(current.document()), "RevisionId": current.revision_id}

    async def forget(self, region: str, name: str, qualifier: str | None) -> None:
        """Drop the policies of a deleted function (``qualifier`` None) or of a deleted version/alias.

        Called under the function's lock by the code that deleted it, after the store committed.
        """
        await self._store.call(self._store.delete_policies, region, name, qualifier)
        if qualifier is None:
            for key in [k for k in self._policies if k[0] == region and k[1] == name]:
                del self._policies[key]
        else:
            self._policies.pop((region, name, qualifier), None)

    # -- enforcement --------------------------------------------------------------------------------
    def policy_of(self, region: str, ident: str, qualifier: str | None = None) -> dict[str, Any] | None:
        """The policy document of a function/version/alias, or None (no I/O)."""
        found = self._policies.get(self._target(region, ident, qualifier).key)
        return found.document() if found else None

    def check_invoke(
        self,
        region: str,
        ident: str,
        qualifier: str | None = None,
        *,
        principal: str,
        action: str = "lambda:InvokeFunction",
        source_arn: str | None = None,
        source_account: str | None = None,
        url_auth_type: str | None = None,
    ) -> None:
        """Raise AccessDeniedException unless ``principal`` may ``action`` the resource invoked.

        ``ident``/``qualifier`` are what the caller invoked (an alias, not the version it routes
        to): the policy of exactly that resource applies.  Identities of the owner account are
        always allowed (lamina has no identity policies); services and other accounts need a grant.
        """
        target = self._target(region, ident, qualifier)
        if principal_account(principal) == self._functions.account_id:
            return
        found = self._policies.get(target.key)
        if found is not None and authorize(
            found.document(),
            principal=principal,
            action=action,
            source_arn=source_arn,
            source_account=source_account,
            url_auth_type=url_auth_type,
        ):
            return
        raise AwsError(
            "AccessDeniedException",
            f"User: {principal} is not authorized to perform: {action} on resource: {target.resource} "
            f"because no resource-based policy allows the {action} action",
        )
