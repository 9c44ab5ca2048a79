"""Function lifecycle: create, read, update, delete, with AWS's rules; owns the in-memory registry.

Concurrency invariant: all mutations of one function are serialised by that function's lock, and
the registry is updated only after the store committed, so the invoke path (which reads the
registry without any I/O) never sees a configuration that is not durable.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from lamina.errors import AwsError
from lamina.functions import optdir
from lamina.functions.arns import parse_function_ref, resolve_qualifier
from lamina.functions.codestore import MAX_UNZIPPED, MAX_ZIPPED, CodeStore, StoredCode
from lamina.functions.echo import echoed, now_iso
from lamina.functions.layers import LayerService
from lamina.functions.routing import pick_version
from lamina.functions.rules import check_configuration, check_runtime
from lamina.functions.tags import check_tags
from lamina.model import logging_config
from lamina.model.alias import Alias
from lamina.model.function import LATEST, FunctionVersion, function_arn
from lamina.store.metadata import MetadataStore

_CODE_URL_TTL_S = 600  # AWS's pre-signed code URLs last 10 minutes


class FunctionService:
    def __init__(
        self,
        *,
        store: MetadataStore,
        code: CodeStore,
        account_id: str,
        runtimes: Callable[[], Mapping[str, str]],
        on_change: Callable[[str], Awaitable[None]],
        url_key: bytes,
    ) -> None:
        self._store = store
        self._code = code
        self.account_id = account_id
        self._runtimes = runtimes
        self._on_change = on_change  # called with the unqualified ARN after every update/delete
        self._url_key = url_key
        self._registry: dict[tuple[str, str], dict[str, FunctionVersion]] = {}
        # Mutated only by AliasService, under the function's lock, after the store committed.
        self.aliases: dict[tuple[str, str], dict[str, Alias]] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self.layers: LayerService | None = None  # set by the platform before load()
        # Called as (region, name, qualifier or None for the whole function) after a function,
        # version or alias was deleted, under the function's lock (e.g. to drop its policies).
        self.on_drop: list[Callable[[str, str, str | None], Awaitable[None]]] = []
        # Called as (region, name, tags) once CreateFunction committed the function with its Tags
        # (e.g. its network policy); later changes go through TagService's hooks.
        self.on_create: list[Callable[[str, str, Mapping[str, str]], object]] = []

    async def dropped(self, region: str, name: str, qualifier: str | None) -> None:
        for hook in self.on_drop:
            await hook(region, name, qualifier)

    async def load(self) -> None:
        versions = await self._store.call(self._store.load_versions)
        for fv in versions:
            self._registry.setdefault((fv.region, fv.name), {})[fv.version] = fv
        for alias in await self._store.call(self._store.load_aliases):
            self.aliases.setdefault((alias.region, alias.function_name), {})[alias.name] = alias

    def live_code(self) -> set[str]:
        """The code store entries this service's functions and layers use.  The code store is
        shared by every account, so only the platform, with every account's set, collects it."""
        versions = [fv for by_version in self._registry.values() for fv in by_version.values()]
        live = {fv.code_hex for fv in versions} | optdir.live_entries(fv.layers for fv in versions)
        return live | (self.layers.live_hexes() if self.layers is not None else set())

    def names(self) -> list[tuple[str, str]]:
        """Every function, as (region, name)."""
        return list(self._registry)

    def unqualified_arn(self, region: str, name: str) -> str:
        return function_arn(region, self.account_id, name)

    def lock(self, region: str, name: str) -> asyncio.Lock:
        return self._locks.setdefault((region, name), asyncio.Lock())

    def not_found(self, region: str, name: str, qualifier: str | None = None) -> AwsError:
        arn = function_arn(region, self.account_id, name, qualifier)
        return AwsError("ResourceNotFoundException", f"Function not found: {arn}")

    # -- reads (no I/O: the invoke path uses these) ---------------------------------------------
    def resolve(
        self, region: str, ident: str, qualifier: str | None = None, *, routed: bool = False
    ) -> FunctionVersion:
        """The version a name/ARN + qualifier designates; an alias gives its primary version, or
        with ``routed`` a version drawn by the alias's weights (what an invoke runs)."""
        ref = parse_function_ref(ident)
        qual = resolve_qualifier(ref, qualifier)
        if ref.account and ref.account != self.account_id:
            raise self.not_found(region, ref.name, qual)
        versions = self._registry.get((region, ref.name))
        if versions is None:
            raise self.not_found(region, ref.name, qual)
        version = qual or LATEST
        if version != LATEST and not version.isdigit():
            alias = self.aliases.get((region, ref.name), {}).get(version)
            if alias is None:
                raise self.not_found(region, ref.name, qual)
            version = pick_version(alias) if routed else alias.function_version
        fv = versions.get(version)
        if fv is None:
            raise self.not_found(region, ref.name, qual)
        return fv

    def versions_of(self, region: str, name: str) -> dict[str, FunctionVersion]:
        """The live version map of a function (mutate only under its lock, after the store)."""
        versions = self._registry.get((region, name))
        if versions is None:
            raise self.not_found(region, name)
        return versions

    def list(self, region: str, marker: str | None, max_items: int | None) -> dict[str, Any]:
        names = sorted(n for (r, n) in self._registry if r == region)
        start = 0
        if marker:
            try:
                after = base64.b64decode(marker.encode(), altchars=b"-_", validate=True).decode()
            except (ValueError, UnicodeDecodeError) as exc:  # binascii.Error is a ValueError
                raise AwsError("InvalidParameterValueException", "Invalid marker.") from exc
            start = next((i for i, n in enumerate(names) if n > after), len(names))
        limit = max_items or 50
        page = names[start : start + limit]
        out: dict[str, Any] = {
            "Functions": [self._registry[(region, n)][LATEST].to_configuration(self.account_id) for n in page]
        }
        if start + limit < len(names):
            out["NextMarker"] = base64.urlsafe_b64encode(page[-1].encode()).decode()
        return out

    async def tags(self, fv: FunctionVersion) -> dict[str, str]:
        return await self._store.call(self._store.get_tags, fv.region, fv.name)

    def code_location(self, fv: FunctionVersion, base_url: str) -> str:
        return self.blob_location(fv.code_hex, base_url)

    def blob_location(self, hex_digest: str, base_url: str) -> str:
        """A signed download URL of a stored zip (function code or a layer)."""
        expires = int(time.time()) + _CODE_URL_TTL_S
        signature = self._sign(hex_digest, expires)
        return f"{base_url}/_lamina/code/{hex_digest}.zip?expires={expires}&signature={signature}"

    def _sign(self, hex_digest: str, expires: int) -> str:
        return hmac.new(self._url_key, f"{hex_digest}:{expires}".encode(), hashlib.sha256).hexdigest()

    def code_download_path(self, hex_digest: str, expires: str, signature: str) -> str | None:
        """The zip's path if the signed URL is genuine and unexpired, else None."""
        try:
            exp = int(expires)
        except ValueError:
            return None
        if exp < time.time() or not hmac.compare_digest(self._sign(hex_digest, exp), signature):
            return None
        path = self._code.blob_path(hex_digest)
        return str(path) if path.is_file() else None

    def account_settings(self, region: str, concurrency: Mapping[str, int]) -> dict[str, Any]:
        """GetAccountSettings; ``concurrency`` is AccountLimit's concurrency part (from the limiter)."""
        fns = [v for (r, _), v in self._registry.items() if r == region]
        return {
            "AccountLimit": {
                "TotalCodeSize": 80530636800,
                "CodeSizeUnzipped": MAX_UNZIPPED,
                "CodeSizeZipped": MAX_ZIPPED,
                **concurrency,
            },
            "AccountUsage": {
                # Every version keeps its own package on AWS, so each one counts.
                "TotalCodeSize": sum(fv.code_size for versions in fns for fv in versions.values()),
                "FunctionCount": len(fns),
            },
        }

    # -- writes -------------------------------------------------------------------------------
    async def _store_code(self, params: Mapping[str, Any]) -> StoredCode:
        zip_file = params.get("ZipFile")
        if params.get("ImageUri"):
            raise AwsError(
                "InvalidParameterValueException",
                "lamina runs .zip packages; container images are not supported.",
            )
        if params.get("S3Bucket") or params.get("S3Key"):
            raise AwsError(
                "InvalidParameterValueException",
                "lamina does not read code from S3; upload the package as ZipFile.",
            )
        if zip_file is None:
            raise AwsError("InvalidParameterValueException", "Please provide a source for function code.")
        return await asyncio.to_thread(self._code.store, zip_file)

    async def create(self, region: str, params: Mapping[str, Any]) -> FunctionVersion:
        name = parse_function_ref(params["FunctionName"]).name
        if params.get("PackageType", "Zip") != "Zip":
            raise AwsError(
                "InvalidParameterValueException",
                "lamina runs .zip packages; container images are not supported.",
            )
        check_configuration(params)
        check_runtime(params.get("Runtime"), params.get("Handler"), self._runtimes())
        check_tags(params.get("Tags") or {})
        extra = echoed(params)
        extra["LoggingConfig"] = logging_config.merge(params.get("LoggingConfig"))
        layers = self._resolve_layers(region, params)
        async with self.lock(region, name):
            if (region, name) in self._registry:
                raise AwsError("ResourceConflictException", f"Function already exist: {name}")
            code = await self._store_code(params.get("Code") or {})
            await self._prepare_layers(code.unzipped_size, code.hex, layers)
            fv = FunctionVersion(
                region=region,
                name=name,
                version=LATEST,
                runtime=params["Runtime"],
                handler=params["Handler"],
                role=params["Role"],
                code_sha256=code.sha256_b64,
                code_hex=code.hex,
                code_size=code.size,
                revision_id=str(uuid.uuid4()),
                last_modified=now_iso(),
                description=params.get("Description", ""),
                memory_size=params.get("MemorySize", 128),
                timeout=params.get("Timeout", 3),
                environment=dict((params.get("Environment") or {}).get("Variables") or {}),
                ephemeral_storage=(params.get("EphemeralStorage") or {}).get("Size", 512),
                architectures=tuple(params.get("Architectures") or ("x86_64",)),
                layers=layers,
                extra=extra,
            )
            tags = dict(params.get("Tags") or {})
            await self._store.call(self._store.create_function, fv, tags)
            for hook in self.on_create:
                hook(region, name, tags)
            self._registry[(region, name)] = {LATEST: fv}
        return fv

    def _resolve_layers(self, region: str, params: Mapping[str, Any]) -> tuple[dict[str, Any], ...]:
        arns = params.get("Layers") or []
        if not arns:
            return ()
        if self.layers is None:
            raise AwsError("InvalidParameterValueException", f"Layer version {arns[0]} does not exist.")
        return self.layers.resolve(region, arns)

    async def _prepare_layers(self, unzipped: int | None, code_hex: str, layers: tuple[Any, ...]) -> None:
        """The combined size limit, then the merged /opt built before any environment needs it."""
        if not layers:
            return
        if unzipped is None:
            unzipped = await asyncio.to_thread(optdir.tree_size, self._code.code_path(code_hex))
        optdir.check_combined_size(unzipped, layers)
        await asyncio.to_thread(optdir.build_opt, self._code, layers)

    def _latest(self, region: str, ident: str) -> FunctionVersion:
        """$LATEST, for a write: published versions are frozen, so a qualified name is refused."""
        fv = self.resolve(region, ident)
        if fv.version != LATEST:
            raise AwsError(
                "InvalidParameterValueException",
                "Current operation does not support versions other than $LATEST. "
                "Please set version to $LATEST or do not set a version in your request.",
            )
        return fv

    def _check_revision(self, fv: FunctionVersion, params: Mapping[str, Any]) -> None:
        rev = params.get("RevisionId")
        if rev is not None and rev != fv.revision_id:
            raise AwsError(
                "PreconditionFailedException",
                "The Revision Id provided does not match the latest Revision Id. "
                "Call the GetFunction/GetAlias API to retrieve the latest Revision Id",
            )

    async def _replace(self, fv: FunctionVersion) -> FunctionVersion:
        await self._store.call(self._store.put_version, fv)
        self._registry[(fv.region, fv.name)][fv.version] = fv
        await self._on_change(fv.arn(self.account_id))
        return fv

    async def update_code(self, region: str, params: Mapping[str, Any]) -> FunctionVersion:
        current = self._latest(region, params["FunctionName"])
        async with self.lock(region, current.name):
            current = self._latest(region, params["FunctionName"])
            self._check_revision(current, params)
            code = await self._store_code(params)
            optdir.check_combined_size(code.unzipped_size, current.layers)
            if params.get("DryRun"):
                return current.replace(code_sha256=code.sha256_b64, code_size=code.size)
            return await self._replace(
                current.replace(
                    code_sha256=code.sha256_b64,
                    code_hex=code.hex,
                    code_size=code.size,
                    architectures=tuple(params.get("Architectures") or current.architectures),
                    revision_id=str(uuid.uuid4()),
                    last_modified=now_iso(),
                )
            )

    async def update_configuration(self, region: str, params: Mapping[str, Any]) -> FunctionVersion:
        current = self._latest(region, params["FunctionName"])
        check_configuration(params)
        async with self.lock(region, current.name):
            current = self._latest(region, params["FunctionName"])
            self._check_revision(current, params)
            runtime = params.get("Runtime", current.runtime)
            handler = params.get("Handler", current.handler)
            if "Runtime" in params or "Handler" in params:
                check_runtime(runtime, handler, self._runtimes())
            extra = {**current.extra, **echoed(params)}
            if "LoggingConfig" in params:
                extra["LoggingConfig"] = logging_config.merge(
                    params["LoggingConfig"], current.extra.get("LoggingConfig")
                )
            changes: dict[str, Any] = {
                "runtime": runtime,
                "handler": handler,
                "role": params.get("Role", current.role),
                "description": params.get("Description", current.description),
                "memory_size": params.get("MemorySize", current.memory_size),
                "timeout": params.get("Timeout", current.timeout),
                "extra": extra,
                "revision_id": str(uuid.uuid4()),
                "last_modified": now_iso(),
            }
            if "Layers" in params:
                changes["layers"] = self._resolve_layers(region, params)
                await self._prepare_layers(None, current.code_hex, changes["layers"])
            if "Environment" in params:
                changes["environment"] = dict((params["Environment"] or {}).get("Variables") or {})
            if params.get("EphemeralStorage"):
                changes["ephemeral_storage"] = params["EphemeralStorage"]["Size"]
            return await self._replace(current.replace(**changes))

    async def delete(self, region: str, ident: str, qualifier: str | None) -> None:
        ref = parse_function_ref(ident)
        qual = resolve_qualifier(ref, qualifier)
        if qual == LATEST:
            raise AwsError(
                "InvalidParameterValueException",
                "$LATEST version cannot be deleted without deleting the function.",
            )
        fv = self.resolve(region, ident, qualifier)
        async with self.lock(region, fv.name):
            if (region, fv.name) not in self._registry:
                raise self.not_found(region, fv.name)
            await self._store.call(self._store.delete_function, region, fv.name)
            del self._registry[(region, fv.name)]
            self.aliases.pop((region, fv.name), None)
            await self.dropped(region, fv.name, None)
        self._locks.pop((region, fv.name), None)  # waiters still hold it; new callers see "not found"
        await self._on_change(fv.arn(self.account_id))
