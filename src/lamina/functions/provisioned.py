"""Provisioned concurrency configs: Put/Get/Delete/ListProvisionedConcurrencyConfigs, AWS's rules.

A config belongs to a published version or an alias (never $LATEST) and asks for that many
environments initialised ahead (the engine's ``provision``).  AWS's rules ("Configuring
provisioned concurrency", and the messages LocalStack's snapshot tests recorded from AWS):
- a version can have one config, directly or through an alias: an alias and the version it
  routes to, or two aliases routing to one version, cannot both have one (ResourceConflict);
- it counts towards the function's reserved concurrency (the sum of its configs may not exceed
  it) or, for a function without one, towards the account's: the unreserved rest may not drop
  below its minimum (100);
- an alias's config follows the alias: UpdateAlias moves it to the new version, and an alias
  with routing weights splits it between its two versions by weight;
- status and counts are the engine's reality: IN_PROGRESS until every environment is
  initialised, READY, or FAILED with a StatusReason (``FUNCTION_ERROR_INIT_FAILURE``).
Configs are stored in ``lamina.sqlite3`` and provisioned again at every start.

Concurrency invariant: writes hold the account-wide concurrency lock, then the function's lock
(the order ConcurrencyService uses), and update the limiter and the engine only after the store
committed.  The drop and alias hooks run under the function's lock already and take no other.
"""

from __future__ import annotations

import builtins  # the class has a ``list`` method: annotations inside it need the builtin's name
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from lamina.errors import AwsError
from lamina.execution.types import EnvironmentSpec, ExecutionEngine, ProvisionedState, ProvisionStatus
from lamina.functions.arns import parse_function_ref, resolve_qualifier
from lamina.functions.concurrency import ConcurrencyService
from lamina.functions.qualifier_pages import qualifier_page
from lamina.functions.service import FunctionService
from lamina.invocation.concurrency import ConcurrencyLimiter
from lamina.model.alias import Alias
from lamina.model.function import LATEST, FunctionVersion, function_arn
from lamina.store.metadata import MetadataStore
from lamina.store.provisioned import ProvisionedConfig

UNPUBLISHED = "Provisioned Concurrency Configs cannot be applied to unpublished function versions."
NOT_PUBLISHED = "The function resource provided must be an alias or a published version."
ALIAS_ON_PROVISIONED = (
    "Alias can't be used for Provisioned Concurrency configuration on an already Provisioned version"
)
VERSION_UNDER_ALIAS = "Version is pointed by a Provisioned Concurrency alias"
ABOVE_RESERVED = (
    "Requested Provisioned Concurrency should not be greater than the reservedConcurrentExecution "
    "for function"
)


def _invalid(message: str) -> AwsError:
    return AwsError("InvalidParameterValueException", message)


def split(alias: Alias, requested: int) -> dict[str, int]:
    """An alias's config by version: all on its version, or shared with the extra one by weight."""
    out = {alias.function_version: requested}
    for version, weight in alias.weights.items():
        extra = min(requested, math.floor(requested * weight + 0.5))
        out[alias.function_version] -= extra
        out[version] = extra
    return {v: n for v, n in out.items() if n > 0}


class ProvisionedService:
    def __init__(
        self,
        *,
        functions: FunctionService,
        store: MetadataStore,
        concurrency: ConcurrencyService,
        limiter: ConcurrencyLimiter,
        engine: ExecutionEngine,
        specs: Callable[[FunctionVersion], EnvironmentSpec],
    ) -> None:
        self._functions = functions
        self._store = store
        self._concurrency = concurrency
        self._limiter = limiter
        self._engine = engine
        self._specs = specs
        self._configs: dict[tuple[str, str], dict[str, ProvisionedConfig]] = {}
        # What the engine was asked for, by function: version -> (its spec, count).  Kept here
        # because a deleted version or function is gone from the registry when its hook runs.
        self._targets: dict[tuple[str, str], dict[str, tuple[EnvironmentSpec, int]]] = {}
        self._errors: dict[tuple[str, str, str], str] = {}  # (region, name, version) -> why FAILED

    async def load(self) -> None:
        """Every stored config back into the limiter and the engine (IN_PROGRESS until allocated);
        rows whose version or alias is gone (a crash between two commits) are dropped."""
        for config in await self._store.call(self._store.load_provisioned):
            key = (config.region, config.function_name)
            if self._exists(config.region, config.function_name, config.qualifier):
                self._configs.setdefault(key, {})[config.qualifier] = config
            else:
                await self._store.call(
                    self._store.delete_provisioned, config.region, config.function_name, config.qualifier
                )
        for region, name in list(self._configs):
            await self._apply(region, name)

    # -- the API ----------------------------------------------------------------------------------
    async def put(self, region: str, ident: str, qualifier: str, requested: int) -> dict[str, Any]:
        name, qual = self._target(region, ident, qualifier, UNPUBLISHED)
        async with self._concurrency.account_lock, self._functions.lock(region, name):
            name, qual = self._target(region, ident, qualifier, UNPUBLISHED)  # deleted meanwhile?
            versions = self._versions_of(region, name, qual, requested)  # an alias on $LATEST: refused
            self._check_limits(region, name, qual, requested)
            self._check_conflicts(region, name, qual, versions)
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")
            config = ProvisionedConfig(region, name, qual, requested, stamp)
            await self._store.call(self._store.put_provisioned, config)
            self._configs[(region, name)] = {**self._configs.get((region, name), {}), qual: config}
            await self._apply(region, name, retry=set(versions))  # a FAILED one starts over
        # Allocation goes on in the background: AWS answers IN_PROGRESS whatever it already has.
        out = self._describe(config)
        out.pop("StatusReason", None)
        return {**out, "Status": ProvisionStatus.IN_PROGRESS.value}

    def get(self, region: str, ident: str, qualifier: str) -> dict[str, Any]:
        name, qual = self._target(region, ident, qualifier, NOT_PUBLISHED)
        config = self._configs.get((region, name), {}).get(qual)
        if config is None:
            raise AwsError(
                "ProvisionedConcurrencyConfigNotFoundException",
                "No Provisioned Concurrency Config found for this function",
            )
        return self._describe(config)

    async def delete(self, region: str, ident: str, qualifier: str) -> None:
        name, qual = self._target(region, ident, qualifier, NOT_PUBLISHED)
        async with self._concurrency.account_lock, self._functions.lock(region, name):
            name, qual = self._target(region, ident, qualifier, NOT_PUBLISHED)
            if qual not in self._configs.get((region, name), {}):
                return  # AWS answers 204 when there is none
            await self._store.call(self._store.delete_provisioned, region, name, qual)
            del self._configs[(region, name)][qual]
            await self._apply(region, name)

    def list(self, region: str, ident: str, marker: str | None, max_items: int | None) -> dict[str, Any]:
        ref = parse_function_ref(ident)
        if not self._exists(region, ref.name) or (ref.account and ref.account != self._functions.account_id):
            arn = function_arn(region, self._functions.account_id, ref.name)
            raise AwsError("ResourceNotFoundException", f"Function not found: {arn}")
        configs = self._configs.get((region, ref.name), {})
        page, next_marker = qualifier_page(configs, marker, max_items)
        account = self._functions.account_id
        items = [
            {"FunctionArn": function_arn(region, account, ref.name, q), **self._describe(configs[q])}
            for q in page
        ]
        out: dict[str, Any] = {"ProvisionedConcurrencyConfigs": items}
        if next_marker is not None:
            out["NextMarker"] = next_marker
        return out

    def utilisation(self) -> builtins.list[tuple[str, str, str, int, int]]:
        """(region, name, qualifier, busy, provisioned) of every config, for the metrics'
        ProvisionedConcurrencyUtilization (read once a second, off the invoke path)."""
        out = []
        for (region, name), configs in self._configs.items():
            running = self._limiter.provisioned_running(region, name)
            for qualifier, config in configs.items():
                try:
                    versions = self._versions_of(region, name, qualifier, config.requested)
                except AwsError:
                    continue
                busy = sum(running.get(v, 0) for v in versions)
                out.append((region, name, qualifier, busy, sum(versions.values())))
        return out

    # -- hooks ------------------------------------------------------------------------------------
    async def forget(self, region: str, name: str, qualifier: str | None) -> None:
        """``FunctionService.on_drop``: a deleted function, version or alias takes its configs and
        their environments with it (the function's rows went with it; a qualifier's go here)."""
        if qualifier is None:
            self._configs.pop((region, name), None)
            await self._apply(region, name, limiter=False)  # the limiter forgets the function itself
            return
        configs = self._configs.get((region, name), {})
        if qualifier in configs:
            await self._store.call(self._store.delete_provisioned, region, name, qualifier)
            del configs[qualifier]
        await self._apply(region, name)  # a deleted version loses its environments either way

    def check_alias(self, alias: Alias) -> None:
        """``AliasService`` before an update: an alias with a config must still point at published
        versions nobody else provisions."""
        config = self._configs.get((alias.region, alias.function_name), {}).get(alias.name)
        if config is not None:
            versions = split(alias, config.requested)
            if LATEST in versions:
                raise _invalid(UNPUBLISHED)
            self._check_conflicts(alias.region, alias.function_name, alias.name, versions)

    async def alias_changed(self, alias: Alias) -> None:
        """``AliasService`` after an update: its config moves with it (AWS deallocates from the old
        version and allocates to the new one)."""
        if alias.name in self._configs.get((alias.region, alias.function_name), {}):
            await self._apply(alias.region, alias.function_name)

    async def respec(self, region: str, name: str) -> None:
        """The function's environment specs changed without a new version (its network policy
        tag): its provisioned environments are replaced by ones of the new spec."""
        if (region, name) in self._configs:
            await self._apply(region, name)

    # -- internals --------------------------------------------------------------------------------
    def _exists(self, region: str, name: str, qualifier: str | None = None) -> bool:
        try:
            versions = self._functions.versions_of(region, name)
        except AwsError:
            return False
        if qualifier is None:
            return True
        if qualifier.isdigit():
            return qualifier in versions
        return qualifier in self._functions.aliases.get((region, name), {})

    def _target(self, region: str, ident: str, qualifier: str, latest_message: str) -> tuple[str, str]:
        """(function name, qualifier) of an existing published version or alias, else AWS's error."""
        ref = parse_function_ref(ident)
        qual = resolve_qualifier(ref, qualifier) or ""
        if qual == LATEST:
            raise _invalid(latest_message)
        account = self._functions.account_id
        if (ref.account and ref.account != account) or not self._exists(region, ref.name, qual):
            arn = function_arn(region, account, ref.name, qual)
            if qual.isdigit():
                raise AwsError("ResourceNotFoundException", f"Function not found: {arn}")
            raise AwsError("ResourceNotFoundException", f"Cannot find alias arn: {arn}")
        return ref.name, qual

    def _versions_of(self, region: str, name: str, qualifier: str, requested: int) -> dict[str, int]:
        """The versions a config on ``qualifier`` provisions, and how many environments each."""
        if qualifier.isdigit():
            return {qualifier: requested}
        versions = split(self._functions.aliases[(region, name)][qualifier], requested)
        if LATEST in versions:
            raise _invalid(UNPUBLISHED)
        return versions

    def _check_conflicts(self, region: str, name: str, qualifier: str, versions: dict[str, int]) -> None:
        for other, config in self._configs.get((region, name), {}).items():
            if other == qualifier or not self._exists(region, name, other):
                continue
            if set(self._versions_of(region, name, other, config.requested)) & set(versions):
                raise AwsError(
                    "ResourceConflictException",
                    VERSION_UNDER_ALIAS if qualifier.isdigit() else ALIAS_ON_PROVISIONED,
                )

    def _check_limits(self, region: str, name: str, qualifier: str, requested: int) -> None:
        configs = self._configs.get((region, name), {})
        others = sum(c.requested for q, c in configs.items() if q != qualifier)
        reserved = self._limiter.reserved(region, name)
        if reserved is not None and reserved < others + requested:
            raise _invalid(ABOVE_RESERVED)
        limit = self._limiter.account_limit
        if requested > limit:
            raise _invalid(
                "Specified ConcurrentExecutions for function is greater than account's unreserved "
                f"concurrency [{limit}]."
            )
        if reserved is None:  # it comes out of the account's unreserved concurrency
            current = configs[qualifier].requested if qualifier in configs else 0
            minimum = self._concurrency.minimum_unreserved()
            if self._limiter.unreserved(region) + current - requested < minimum:
                raise _invalid(
                    "Specified ConcurrentExecutions for function decreases account's "
                    f"UnreservedConcurrentExecution below its minimum value of [{minimum}]."
                )

    def _wanted(self, region: str, name: str) -> dict[str, int]:
        """Environments wanted per version, over every config of the function."""
        wanted: dict[str, int] = {}
        for qualifier, config in self._configs.get((region, name), {}).items():
            try:
                versions = self._versions_of(region, name, qualifier, config.requested)
            except AwsError:
                continue  # an alias moved to $LATEST by a crash between commits: nothing to keep warm
            for version, count in versions.items():
                wanted[version] = wanted.get(version, 0) + count
        return wanted

    async def _apply(
        self, region: str, name: str, *, limiter: bool = True, retry: set[str] | None = None
    ) -> None:
        """The limiter and the engine to what the function's configs now ask for (``retry``:
        versions to provision again even if their count did not change)."""
        wanted = self._wanted(region, name)
        if limiter:
            self._limiter.set_provisioned(region, name, wanted)
        before = self._targets.pop((region, name), {})
        after: dict[str, tuple[EnvironmentSpec, int]] = {}
        versions = self._functions.versions_of(region, name) if self._exists(region, name) else {}
        for stale in [k for k in self._errors if k[:2] == (region, name)]:
            del self._errors[stale]
        for version, count in wanted.items():
            fv = versions.get(version)
            if fv is None:
                continue  # (only a crash between two commits leaves a config on a missing version)
            try:
                after[version] = (self._specs(fv), count)
            except AwsError as exc:  # its runtime is not on this host (any more)
                self._errors[(region, name, version)] = exc.message
        for version, (spec, _) in before.items():
            if version not in after or after[version][0] != spec:  # gone, or now another spec
                await self._engine.provision(spec, 0)
        for version, (spec, count) in after.items():
            same = before.get(version, (None, 0))[1] == count and self._engine.provisioned(spec) is not None
            if not same or (retry is not None and version in retry):
                await self._engine.provision(spec, count)
        if after:
            self._targets[(region, name)] = after

    def _describe(self, config: ProvisionedConfig) -> dict[str, Any]:
        """The config as GetProvisionedConcurrencyConfig shows it: the engine's reality."""
        region, name = config.region, config.function_name
        try:
            versions = self._versions_of(region, name, config.qualifier, config.requested)
        except AwsError:
            versions = {}
        targets = self._targets.get((region, name), {})
        states: list[ProvisionedState] = []
        reasons: list[str] = []
        for version in versions:
            if (region, name, version) in self._errors:
                reasons.append(self._errors[(region, name, version)])
            elif version in targets:
                state = self._engine.provisioned(targets[version][0])
                if state is not None:
                    states.append(state)
        statuses = {s.status for s in states}
        reasons += [s.reason for s in states if s.status is ProvisionStatus.FAILED and s.reason]
        if reasons or ProvisionStatus.FAILED in statuses:
            status = ProvisionStatus.FAILED
        elif statuses == {ProvisionStatus.READY} and len(states) == len(versions):
            status = ProvisionStatus.READY
        else:
            status = ProvisionStatus.IN_PROGRESS
        out: dict[str, Any] = {
            "RequestedProvisionedConcurrentExecutions": config.requested,
            "AvailableProvisionedConcurrentExecutions": sum(s.available for s in states),
            "AllocatedProvisionedConcurrentExecutions": sum(s.allocated for s in states),
            "Status": status.value,
            "LastModified": config.last_modified,
        }
        if status is ProvisionStatus.FAILED:
            out["StatusReason"] = reasons[0] if reasons else "FUNCTION_ERROR_INIT_FAILURE"
        return out
