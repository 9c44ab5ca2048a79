"""Aliases: CreateAlias, GetAlias, UpdateAlias, DeleteAlias, ListAliases, with AWS's rules.

The alias registry lives in ``FunctionService.aliases`` (the invoke path resolves through it with
no I/O); this module is its only writer, under the function's lock, after the store committed.
An update is shown to ``watcher`` (provisioned concurrency follows its alias) before the store,
which may refuse it, and after the registry, which it then acts on.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from typing import Any, Protocol

from lamina.errors import AwsError
from lamina.functions.arns import parse_function_ref
from lamina.functions.service import FunctionService
from lamina.model.alias import Alias
from lamina.model.function import LATEST, function_arn
from lamina.store.metadata import MetadataStore


class AliasWatcher(Protocol):
    def check_alias(self, alias: Alias) -> None:
        """Raise AwsError to refuse an update (before anything is written)."""

    async def alias_changed(self, alias: Alias) -> None:
        """After an update is committed and in the registry (under the function's lock)."""


def _invalid(message: str) -> AwsError:
    return AwsError("InvalidParameterValueException", message)


class AliasService:
    def __init__(self, *, functions: FunctionService, store: MetadataStore) -> None:
        self._functions = functions
        self._store = store
        self.watcher: AliasWatcher | None = None  # set by the platform

    def _table(self, region: str, ident: str) -> tuple[str, dict[str, Alias]]:
        name = parse_function_ref(ident).name
        self._functions.versions_of(region, name)  # the function must exist
        return name, self._functions.aliases.setdefault((region, name), {})

    def _missing(self, region: str, function: str, alias: str) -> AwsError:
        arn = function_arn(region, self._functions.account_id, function, alias)
        return AwsError("ResourceNotFoundException", f"Alias not found: {arn}")

    def _check_targets(self, region: str, function: str, primary: str, weights: Mapping[str, float]) -> None:
        versions = self._functions.versions_of(region, function)
        if primary not in versions:
            raise self._functions.not_found(region, function, primary)
        if not weights:
            return
        if len(weights) > 1:
            raise _invalid("Number of items in AdditionalVersionWeights must not exceed 1.")
        if primary == LATEST:
            raise _invalid("$LATEST is not supported for an alias pointing to more than 1 version")
        for version in weights:
            if version == primary:
                raise _invalid(
                    f"Invalid function version {version}. Function version {version} is already "
                    "included in routing configuration."
                )
            if version not in versions:
                raise self._functions.not_found(region, function, version)

    def get(self, region: str, ident: str, alias: str) -> Alias:
        function, table = self._table(region, ident)
        found = table.get(alias)
        if found is None:
            raise self._missing(region, function, alias)
        return found

    async def create(self, region: str, params: Mapping[str, Any]) -> Alias:
        function, _ = self._table(region, params["FunctionName"])
        weights = dict((params.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {})
        async with self._functions.lock(region, function):
            _, table = self._table(region, function)
            alias = params["Name"]
            if alias in table:
                arn = function_arn(region, self._functions.account_id, function, alias)
                raise AwsError("ResourceConflictException", f"Alias already exists: {arn}")
            self._check_targets(region, function, params["FunctionVersion"], weights)
            created = Alias(
                region=region,
                function_name=function,
                name=alias,
                function_version=params["FunctionVersion"],
                revision_id=str(uuid.uuid4()),
                description=params.get("Description") or "",
                weights=weights,
            )
            await self._store.call(self._store.put_alias, created)
            table[alias] = created
        return created

    async def update(self, region: str, params: Mapping[str, Any]) -> Alias:
        current = self.get(region, params["FunctionName"], params["Name"])
        async with self._functions.lock(region, current.function_name):
            current = self.get(region, params["FunctionName"], params["Name"])
            rev = params.get("RevisionId")
            if rev is not None and rev != current.revision_id:
                raise AwsError(
                    "PreconditionFailedException",
                    "The Revision Id provided does not match the latest Revision Id. "
                    "Call the GetFunction/GetAlias API to retrieve the latest Revision Id",
                )
            primary = params.get("FunctionVersion") or current.function_version
            weights = current.weights
            if "RoutingConfig" in params:
                weights = dict((params["RoutingConfig"] or {}).get("AdditionalVersionWeights") or {})
            self._check_targets(region, current.function_name, primary, weights)
            updated = current.replace(
                function_version=primary,
                weights=weights,
                description=params.get("Description", current.description),
                revision_id=str(uuid.uuid4()),
            )
            if self.watcher is not None:
                self.watcher.check_alias(updated)
            await self._store.call(self._store.put_alias, updated)
            self._functions.aliases[(region, current.function_name)][updated.name] = updated
            if self.watcher is not None:
                await self.watcher.alias_changed(updated)
        return updated

    async def delete(self, region: str, ident: str, alias: str) -> None:
        function, _ = self._table(region, ident)
        async with self._functions.lock(region, function):
            _, table = self._table(region, function)
            if alias in table:  # AWS answers 204 for an alias that is not there
                await self._store.call(self._store.delete_alias, region, function, alias)
                del table[alias]
                await self._functions.dropped(region, function, alias)

    def list(
        self, region: str, ident: str, version: str | None, marker: str | None, max_items: int | None
    ) -> dict[str, Any]:
        _, table = self._table(region, ident)
        names = sorted(n for n, a in table.items() if version is None or a.targets(version))
        start = 0
        if marker:
            try:
                after = base64.urlsafe_b64decode(marker.encode()).decode()
            except (ValueError, UnicodeDecodeError) as exc:
                raise _invalid("Invalid marker.") from exc
            start = next((i for i, n in enumerate(names) if n > after), len(names))
        limit = max_items or 50
        page = names[start : start + limit]
        account = self._functions.account_id
        out: dict[str, Any] = {"Aliases": [table[n].to_output(account) for n in page]}
        if start + limit < len(names):
            out["NextMarker"] = base64.urlsafe_b64encode(page[-1].encode()).decode()
        return out
