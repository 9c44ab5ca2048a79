"""Event invoke configs: Put/Update/Get/Delete/ListFunctionEventInvokeConfig(s), AWS's rules.

A config belongs to one qualifier of a function: $LATEST (a call without a qualifier), a
published version or an alias.  Put replaces the qualifier's config ("If you exclude any settings,
they are removed"), Update changes only the settings it names and needs an existing config.  The
messages are AWS's as LocalStack's snapshot tests recorded them.  Destinations are validated and
stored; ``lamina.invocation.destinations`` delivers records to them.

The async queue asks ``policy_for`` for the retry policy of an event: the invoked qualifier's
config, else the unqualified function's ($LATEST's), else AWS's defaults.

Concurrency invariant: writes hold the function's lock (so a put never races DeleteFunction) and
change the in-memory map only after the store committed; the drop hook runs under that lock.
"""

from __future__ import annotations

import re
import time
from typing import Any

from lamina.errors import AwsError
from lamina.functions.arns import parse_function_ref, resolve_qualifier
from lamina.functions.qualifier_pages import qualifier_page
from lamina.functions.service import FunctionService
from lamina.invocation.retries import RetryPolicy
from lamina.model.function import LATEST, function_arn
from lamina.store.event_invoke import EventInvokeConfig
from lamina.store.metadata import MetadataStore

SETTINGS = ("MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig")
NOTHING_SET = "You must specify at least one of error handling or destination setting."
NO_FUNCTION = "The function doesn't exist."
_ARN = re.compile(
    r"arn:aws[a-zA-Z0-9-]*:(?P<service>[a-zA-Z0-9-]+):[a-z0-9-]*:(?P<account>\d{12})?:(?P<rest>.*)"
)
# The destination kinds AWS accepts; S3 buckets only for failures ("S3 buckets are supported only
# for on-failure destinations").
_KINDS = {
    "OnSuccess": {"lambda", "sqs", "sns", "events"},
    "OnFailure": {"lambda", "sqs", "sns", "events", "s3"},
}


def _invalid(message: str) -> AwsError:
    return AwsError("InvalidParameterValueException", message)


class EventInvokeService:
    def __init__(self, *, functions: FunctionService, store: MetadataStore) -> None:
        self._functions = functions
        self._store = store
        self._configs: dict[tuple[str, str], dict[str, EventInvokeConfig]] = {}

    async def load(self) -> None:
        """Stored configs into memory; rows whose qualifier is gone (a crash between commits) go."""
        for config in await self._store.call(self._store.load_event_invoke_configs):
            if self._exists(config.region, config.function_name, config.qualifier):
                self._configs.setdefault((config.region, config.function_name), {})[config.qualifier] = config
            else:
                await self._store.call(
                    self._store.delete_event_invoke_configs,
                    config.region,
                    config.function_name,
                    config.qualifier,
                )

    # -- the API ----------------------------------------------------------------------------------
    async def put(
        self, region: str, ident: str, qualifier: str | None, params: dict[str, Any]
    ) -> dict[str, Any]:
        return await self._write(region, ident, qualifier, params, merge=False)

    async def update(
        self, region: str, ident: str, qualifier: str | None, params: dict[str, Any]
    ) -> dict[str, Any]:
        return await self._write(region, ident, qualifier, params, merge=True)

    def get(self, region: str, ident: str, qualifier: str | None) -> dict[str, Any]:
        ref = parse_function_ref(ident)
        qual = resolve_qualifier(ref, qualifier) or LATEST
        config = self._configs.get((region, ref.name), {}).get(qual) if self._ours(ref.account) else None
        if config is None:
            raise self._missing(region, ref.name, qual)
        return self._describe(config)

    async def delete(self, region: str, ident: str, qualifier: str | None) -> None:
        ref = parse_function_ref(ident)
        named = resolve_qualifier(ref, qualifier)
        qual = named or LATEST
        async with self._functions.lock(region, ref.name):
            if not self._ours(ref.account) or qual not in self._configs.get((region, ref.name), {}):
                raise self._missing(region, ref.name, named)  # AWS names the ARN as it was given
            await self._store.call(self._store.delete_event_invoke_configs, region, ref.name, qual)
            del self._configs[(region, ref.name)][qual]

    def list(self, region: str, ident: str, marker: str | None, max_items: int | None) -> dict[str, Any]:
        ref = parse_function_ref(ident)
        if not self._ours(ref.account) or not self._exists(region, ref.name):
            raise AwsError("ResourceNotFoundException", NO_FUNCTION)
        configs = self._configs.get((region, ref.name), {})
        page, next_marker = qualifier_page(configs, marker, max_items)
        out: dict[str, Any] = {"FunctionEventInvokeConfigs": [self._describe(configs[q]) for q in page]}
        if next_marker is not None:
            out["NextMarker"] = next_marker
        return out

    # -- the async queue and hooks ----------------------------------------------------------------
    def policy_for(self, region: str, name: str, qualifier: str | None) -> RetryPolicy:
        """The retry policy of an event invoked with ``qualifier``: its config, else $LATEST's."""
        configs = self._configs.get((region, name), {})
        config = configs.get(qualifier or LATEST) or configs.get(LATEST)
        if config is None:
            return RetryPolicy()
        defaults = RetryPolicy()
        return RetryPolicy(
            max_retry_attempts=config.data.get("MaximumRetryAttempts", defaults.max_retry_attempts),
            max_event_age_s=config.data.get("MaximumEventAgeInSeconds", defaults.max_event_age_s),
            destinations=dict(config.data.get("DestinationConfig") or {}),
        )

    async def forget(self, region: str, name: str, qualifier: str | None) -> None:
        """``FunctionService.on_drop``: a deleted function, version or alias takes its config with it
        (a function's rows went with it in ``delete_function``; a qualifier's go here)."""
        if qualifier is None:
            self._configs.pop((region, name), None)
            return
        configs = self._configs.get((region, name), {})
        if qualifier in configs:
            await self._store.call(self._store.delete_event_invoke_configs, region, name, qualifier)
            del configs[qualifier]

    # -- internals --------------------------------------------------------------------------------
    async def _write(
        self, region: str, ident: str, qualifier: str | None, params: dict[str, Any], *, merge: bool
    ) -> dict[str, Any]:
        given = {k: params[k] for k in SETTINGS if params.get(k) is not None}
        if not given:
            raise _invalid(NOTHING_SET)
        ref = parse_function_ref(ident)
        qual = resolve_qualifier(ref, qualifier) or LATEST
        async with self._functions.lock(region, ref.name):
            if not self._ours(ref.account) or not self._exists(region, ref.name, qual):
                raise AwsError("ResourceNotFoundException", NO_FUNCTION)
            current = self._configs.get((region, ref.name), {}).get(qual)
            if merge and current is None:
                raise self._missing(region, ref.name, qual)
            if "DestinationConfig" in given:
                given["DestinationConfig"] = self._destinations(region, ref.name, given["DestinationConfig"])
            data = {**current.data, **given} if merge and current is not None else given
            config = EventInvokeConfig(region, ref.name, qual, data, round(time.time(), 3))
            await self._store.call(self._store.put_event_invoke_config, config)
            self._configs.setdefault((region, ref.name), {})[qual] = config
        return self._describe(config)

    def _destinations(self, region: str, name: str, given: dict[str, Any]) -> dict[str, Any]:
        """The DestinationConfig to store, or AWS's error for a destination it would refuse."""
        out: dict[str, Any] = {}
        bad = False
        for member in ("OnSuccess", "OnFailure"):
            arn = (given.get(member) or {}).get("Destination")
            if not arn:
                continue
            out[member] = {"Destination": arn}
            m = _ARN.fullmatch(arn)
            if m is None or m["service"] not in _KINDS[member]:
                bad = True
            elif m["service"] == "lambda":
                self._check_function_destination(region, name, arn)
        if bad:
            success = (out.get("OnSuccess") or {}).get("Destination")
            failure = (out.get("OnFailure") or {}).get("Destination")
            on_success = f"OnSuccess(destination={success})" if success else "null"
            on_failure = f"OnFailure(destination={failure})" if failure else "null"
            raise _invalid(
                f"The provided destination config DestinationConfig(onSuccess={on_success}, "
                f"onFailure={on_failure}) is invalid."
            )
        return out

    def _check_function_destination(self, region: str, name: str, arn: str) -> None:
        try:
            ref = parse_function_ref(arn)
        except AwsError as exc:
            raise _invalid(f"The destination ARN {arn} is invalid.") from exc
        if not self._ours(ref.account):
            # Another account's function: its owner's resource policy decides at delivery time
            # (cross-account destinations); whether it exists is not this account's to probe.
            return
        if not self._exists(region, ref.name):
            raise _invalid(f"The destination ARN {arn} is invalid.")
        if ref.name == name:
            raise _invalid("You can't specify the function as a destination for itself.")

    def _describe(self, config: EventInvokeConfig) -> dict[str, Any]:
        arn = function_arn(config.region, self._functions.account_id, config.function_name, config.qualifier)
        out: dict[str, Any] = {"LastModified": config.last_modified, "FunctionArn": arn}
        for key in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds"):
            if key in config.data:
                out[key] = config.data[key]
        # AWS always answers both members, empty when unset.
        destinations = config.data.get("DestinationConfig") or {}
        out["DestinationConfig"] = {
            "OnSuccess": dict(destinations.get("OnSuccess") or {}),
            "OnFailure": dict(destinations.get("OnFailure") or {}),
        }
        return out

    def _missing(self, region: str, name: str, qualifier: str | None) -> AwsError:
        arn = function_arn(region, self._functions.account_id, name, qualifier)
        return AwsError("ResourceNotFoundException", f"The function {arn} doesn't have an EventInvokeConfig")

    def _ours(self, account: str | None) -> bool:
        return account is None or account == self._functions.account_id

    def _exists(self, region: str, name: str, qualifier: str | None = None) -> bool:
        try:
            versions = self._functions.versions_of(region, name)
        except AwsError:
            return False
        if qualifier is None or qualifier == LATEST or qualifier.isdigit():
            return qualifier is None or qualifier in versions
        return qualifier in self._functions.aliases.get((region, name), {})
