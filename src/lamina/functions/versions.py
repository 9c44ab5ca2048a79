"""Published versions: PublishVersion, ListVersionsByFunction, DeleteFunction of one version.

A published version is a frozen copy of $LATEST's code and configuration; numbers come from a
per-function counter in the store and are never reused.  Every write holds the function's lock
and updates the registry only after the store committed (FunctionService's invariant).
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

from lamina.errors import AwsError
from lamina.functions.arns import parse_function_ref, resolve_qualifier
from lamina.functions.echo import now_iso
from lamina.functions.service import FunctionService
from lamina.model.function import LATEST, FunctionVersion
from lamina.store.metadata import MetadataStore

# Fields that may differ between $LATEST and a version without $LATEST having "changed".
_NOT_CONFIG = ("version", "revision_id", "last_modified", "description")


def _same_content(a: FunctionVersion, b: FunctionVersion) -> bool:
    left, right = a.to_row(), b.to_row()
    for key in _NOT_CONFIG:
        left.pop(key), right.pop(key)
    return left == right


def _order(version: str) -> int:
    return -1 if version == LATEST else int(version)


class VersionService:
    def __init__(self, *, functions: FunctionService, store: MetadataStore) -> None:
        self._functions = functions
        self._store = store

    async def publish(
        self,
        region: str,
        ident: str,
        *,
        code_sha256: str | None = None,
        description: str | None = None,
        revision_id: str | None = None,
    ) -> FunctionVersion:
        name = parse_function_ref(ident).name
        self._functions.versions_of(region, name)  # 404 before waiting on a lock
        async with self._functions.lock(region, name):
            versions = self._functions.versions_of(region, name)
            latest = versions[LATEST]
            if code_sha256 is not None and code_sha256 != latest.code_sha256:
                raise AwsError(
                    "InvalidParameterValueException",
                    f"CodeSHA256 ({code_sha256}) is different from current CodeSHA256 in $LATEST. "
                    "Please try again with the CodeSHA256 in $LATEST.",
                )
            if revision_id is not None and revision_id != latest.revision_id:
                raise AwsError(
                    "PreconditionFailedException",
                    "The Revision Id provided does not match the latest Revision Id. "
                    "Call the GetFunction/GetAlias API to retrieve the latest Revision Id",
                )
            published = [v for k, v in versions.items() if k != LATEST]
            if published:
                newest = max(published, key=lambda v: int(v.version))
                if _same_content(newest, latest):
                    return newest  # AWS answers an unchanged $LATEST with the version it already has
            snapshot = latest.replace(
                revision_id=str(uuid.uuid4()),
                last_modified=now_iso(),
                description=latest.description if description is None else description,
            )
            fv = await self._store.call(self._store.publish_version, snapshot)
            versions[fv.version] = fv
        return fv

    def list(self, region: str, ident: str, marker: str | None, max_items: int | None) -> dict[str, Any]:
        versions = self._functions.versions_of(region, parse_function_ref(ident).name)
        ordered = sorted(versions.values(), key=lambda v: _order(v.version))
        start = 0
        if marker:
            try:
                after = _order(base64.urlsafe_b64decode(marker.encode()).decode())
            except (ValueError, UnicodeDecodeError) as exc:
                raise AwsError("InvalidParameterValueException", "Invalid marker.") from exc
            start = next((i for i, v in enumerate(ordered) if _order(v.version) > after), len(ordered))
        limit = max_items or 50
        page = ordered[start : start + limit]
        account = self._functions.account_id
        out: dict[str, Any] = {"Versions": [v.to_configuration(account) for v in page]}
        if start + limit < len(ordered):
            out["NextMarker"] = base64.urlsafe_b64encode(page[-1].version.encode()).decode()
        return out

    async def delete(self, region: str, ident: str, qualifier: str | None) -> None:
        """DeleteFunction: the whole function unqualified, else the one published version named."""
        ref = parse_function_ref(ident)
        qual = resolve_qualifier(ref, qualifier)
        if qual is None or qual == LATEST:
            await self._functions.delete(region, ident, qualifier)
            return
        if not qual.isdigit():
            raise AwsError(
                "InvalidParameterValueException",
                "Deletion of aliases is not supported through DeleteFunction; use DeleteAlias.",
            )
        fv = self._functions.resolve(region, ident, qualifier)
        async with self._functions.lock(region, fv.name):
            versions = self._functions.versions_of(region, fv.name)
            if qual not in versions:
                raise self._functions.not_found(region, fv.name, qual)
            users = sorted(
                a.name for a in self._functions.aliases.get((region, fv.name), {}).values() if a.targets(qual)
            )
            if users:
                raise AwsError(
                    "ResourceConflictException",
                    "Unable to delete version because the following aliases reference it: ["
                    + ", ".join(users)
                    + "]",
                )
            await self._store.call(self._store.delete_version, region, fv.name, qual)
            del versions[qual]
            await self._functions.dropped(region, fv.name, qual)
