"""Function URL configs: Create/Get/Update/Delete/ListFunctionUrlConfig(s), AWS's rules.

A URL belongs to the function itself (stored under ``$LATEST``) or to one alias; AWS refuses
version numbers and ``$LATEST`` as a qualifier with a ValidationException, and a second URL for
the same qualifier with a ResourceConflictException.  Messages are AWS's as LocalStack's snapshot
tests recorded them.  Each URL is served on its own port (``lamina.urls.listeners``): the
listener is opened before the row is committed (the row records its port) and closed after the
row is gone.

Concurrency invariant: writes hold the function's lock (so a create never races DeleteFunction)
and change the in-memory map only after the store committed; the drop hook runs under that lock.
The URL front reads ``config`` without I/O.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import string
import time
from collections.abc import Mapping
from typing import Any, Protocol

from lamina.errors import AwsError
from lamina.functions.arns import parse_function_ref, resolve_qualifier
from lamina.functions.qualifier_pages import qualifier_page
from lamina.functions.service import FunctionService
from lamina.model.function import LATEST, function_arn
from lamina.store.metadata import MetadataStore
from lamina.store.urls import UrlConfig
from lamina.urls.shapes import DEFAULT, EventShape, shape_for

log = logging.getLogger("lamina.urls")

UrlKey = tuple[str, str, str]  # region, function name, qualifier ($LATEST or an alias)
NO_FUNCTION = "Function does not exist"
NO_RESOURCE = "The resource you requested does not exist."
_QUALIFIER_PATTERN = r"((?!^\d+$)^[0-9a-zA-Z-_]+$)"
_ID_CHARS = string.ascii_lowercase + string.digits


class UrlListeners(Protocol):
    async def open(self, key: UrlKey, port: int | None) -> int:
        """Serve the URL of ``key``; on ``port`` if given and free, else on a new one (returned)."""
        ...

    async def close(self, key: UrlKey) -> None: ...


def wire_time(epoch_s: float) -> str:
    """CreationTime / LastModifiedTime as Lambda's URL API writes them: ``2021-10-31T18:26:40.123456Z``."""
    t = time.gmtime(epoch_s)
    micros = round((epoch_s % 1) * 1_000_000) % 1_000_000
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{micros:06d}Z"


def new_url_id() -> str:
    """32 lower-case letters and digits, like AWS's ``<url-id>``."""
    return "".join(secrets.choice(_ID_CHARS) for _ in range(32))


def _bad_qualifier(value: str) -> AwsError:
    return AwsError(
        "ValidationException",
        f"1 validation error detected: Value '{value}' at 'qualifier' failed to satisfy constraint: "
        f"Member must satisfy regular expression pattern: {_QUALIFIER_PATTERN}",
    )


class FunctionUrlService:
    def __init__(
        self,
        *,
        functions: FunctionService,
        store: MetadataStore,
        listeners: UrlListeners,
        url_host: str,
    ) -> None:
        self._functions = functions
        self._store = store
        self._listeners = listeners
        self._url_host = f"[{url_host}]" if ":" in url_host else url_host  # an IPv6 literal
        self._configs: dict[UrlKey, UrlConfig] = {}
        # (region, function) -> the event shape its ``lamina:url-event-format`` tag asks for; kept
        # current by ``tags_changed`` so the front reads it without I/O.
        self._shapes: dict[tuple[str, str], EventShape] = {}

    async def load(self) -> None:
        """Serve every stored URL on its stored port (a new one if that port is taken)."""
        for config in await self._store.call(self._store.load_url_configs):
            key = (config.region, config.function_name, config.qualifier)
            if not self._exists(config.region, config.function_name, config.qualifier):
                await self._store.call(self._store.delete_url_configs, *key)
                continue
            self._configs[key] = config
            await self._load_shape(config.region, config.function_name)
            port = await self._listeners.open(key, config.port)
            if port != config.port:
                log.error(
                    "function URL port taken: serving it on a new port",
                    extra={"function": config.function_name, "old_port": config.port, "port": port},
                )
                config = dataclasses.replace(config, port=port)
                await self._store.call(self._store.put_url_config, config)
                self._configs[key] = config

    def config(self, key: UrlKey) -> UrlConfig | None:
        return self._configs.get(key)

    def shape(self, key: UrlKey) -> EventShape:
        """The event shape the URL sends (``lamina.urls.formats``)."""
        return self._shapes.get((key[0], key[1]), DEFAULT)

    def tags_changed(self, region: str, name: str, tags: Mapping[str, str]) -> None:
        """``TagService.on_change``: a tag update applies to the next request."""
        self._shapes[(region, name)] = shape_for(dict(tags))

    async def _load_shape(self, region: str, name: str) -> None:
        tags = await self._store.call(self._store.get_tags, region, name)
        self._shapes[(region, name)] = shape_for(tags)

    def url_of(self, config: UrlConfig) -> str:
        return f"http://{self._url_host}:{config.port}/"

    # -- the API ------------------------------------------------------------------------------
    async def create(
        self, region: str, ident: str, qualifier: str | None, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        name, qual = self._name_and_qualifier(ident, qualifier)
        key = (region, name, qual)
        async with self._functions.lock(region, name):
            if not self._exists(region, name):
                raise AwsError("ResourceNotFoundException", NO_FUNCTION)
            current = self._configs.get(key)
            if current is not None:
                raise AwsError(
                    "ResourceConflictException",
                    f"Failed to create function url config for [functionArn = {self._arn(current)}]. "
                    "Error message:  FunctionUrlConfig exists for this Lambda function",
                )
            if not self._exists(region, name, qual):
                raise AwsError("ResourceNotFoundException", NO_FUNCTION)
            now = wire_time(time.time())
            data = {"AuthType": params["AuthType"], "InvokeMode": params.get("InvokeMode") or "BUFFERED"}
            if params.get("Cors") is not None:
                data["Cors"] = dict(params["Cors"])
            await self._load_shape(region, name)
            port = await self._listeners.open(key, None)
            config = UrlConfig(region, name, qual, new_url_id(), port, now, now, data)
            try:
                await self._store.call(self._store.put_url_config, config)
            except BaseException:
                await self._listeners.close(key)
                raise
            self._configs[key] = config
        out = self._describe(config)
        del out["LastModifiedTime"]  # CreateFunctionUrlConfig's answer has no LastModifiedTime
        return out

    async def update(
        self, region: str, ident: str, qualifier: str | None, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        name, qual = self._name_and_qualifier(ident, qualifier)
        key = (region, name, qual)
        async with self._functions.lock(region, name):
            if not self._exists(region, name) or not self._exists(region, name, qual):
                raise AwsError("ResourceNotFoundException", NO_FUNCTION)
            current = self._configs.get(key)
            if current is None:
                raise AwsError("ResourceNotFoundException", NO_RESOURCE)
            data = dict(current.data)
            for member in ("AuthType", "Cors", "InvokeMode"):
                if params.get(member) is not None:
                    data[member] = params[member]
            config = dataclasses.replace(current, data=data, last_modified_time=wire_time(time.time()))
            await self._store.call(self._store.put_url_config, config)
            self._configs[key] = config
        return self._describe(config)

    def get(self, region: str, ident: str, qualifier: str | None) -> dict[str, Any]:
        name, qual = self._name_and_qualifier(ident, qualifier, NO_RESOURCE)
        config = self._configs.get((region, name, qual))
        if config is None:
            raise AwsError("ResourceNotFoundException", NO_RESOURCE)
        return self._describe(config)

    async def delete(self, region: str, ident: str, qualifier: str | None) -> None:
        name, qual = self._name_and_qualifier(ident, qualifier, NO_RESOURCE)
        key = (region, name, qual)
        async with self._functions.lock(region, name):
            if key not in self._configs:
                raise AwsError("ResourceNotFoundException", NO_RESOURCE)
            await self._store.call(self._store.delete_url_configs, *key)
            del self._configs[key]
            await self._listeners.close(key)

    def list(self, region: str, ident: str, marker: str | None, max_items: int | None) -> dict[str, Any]:
        ref = parse_function_ref(ident)
        if not self._ours(ref.account) or not self._exists(region, ref.name):
            raise AwsError("ResourceNotFoundException", NO_FUNCTION)
        mine = {k[2]: c for k, c in self._configs.items() if k[0] == region and k[1] == ref.name}
        page, next_marker = qualifier_page(mine, marker, max_items)
        out: dict[str, Any] = {"FunctionUrlConfigs": [self._describe(mine[q]) for q in page]}
        if next_marker is not None:
            out["NextMarker"] = next_marker
        return out

    async def forget(self, region: str, name: str, qualifier: str | None) -> None:
        """``FunctionService.on_drop``: a deleted function (``qualifier`` None) or alias takes its
        URLs with it; a deleted version has none."""
        keys = [k for k in self._configs if k[0] == region and k[1] == name and qualifier in (None, k[2])]
        if not keys:
            return
        await self._store.call(self._store.delete_url_configs, region, name, qualifier)
        if qualifier is None:
            self._shapes.pop((region, name), None)
        for key in keys:
            del self._configs[key]
            await self._listeners.close(key)

    # -- internals ----------------------------------------------------------------------------
    def _name_and_qualifier(
        self, ident: str, qualifier: str | None, missing: str = NO_FUNCTION
    ) -> tuple[str, str]:
        ref = parse_function_ref(ident)
        qual = resolve_qualifier(ref, qualifier)
        if qual is not None and (qual == LATEST or qual.isdigit()):
            raise _bad_qualifier(qual)
        if not self._ours(ref.account):
            raise AwsError("ResourceNotFoundException", missing)
        return ref.name, qual or LATEST

    def _arn(self, config: UrlConfig) -> str:
        qualifier = None if config.qualifier == LATEST else config.qualifier
        return function_arn(config.region, self._functions.account_id, config.function_name, qualifier)

    def _describe(self, config: UrlConfig) -> dict[str, Any]:
        out: dict[str, Any] = {
            "FunctionUrl": self.url_of(config),
            "FunctionArn": self._arn(config),
            "AuthType": config.auth_type,
        }
        if config.cors is not None:
            out["Cors"] = config.cors
        out["CreationTime"] = config.creation_time
        out["LastModifiedTime"] = config.last_modified_time
        out["InvokeMode"] = config.data.get("InvokeMode", "BUFFERED")
        return out

    def _ours(self, account: str | None) -> bool:
        return account is None or account == self._functions.account_id

    def _exists(self, region: str, name: str, qualifier: str | None = None) -> bool:
        try:
            self._functions.versions_of(region, name)
        except AwsError:
            return False
        if qualifier is None or qualifier == LATEST:
            return True
        return qualifier in self._functions.aliases.get((region, name), {})
