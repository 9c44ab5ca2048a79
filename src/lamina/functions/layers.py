"""Layer versions: publish, read, list, delete, their resource policies; resolving a function's Layers.

Concurrency invariant: every write runs under the one layer lock, and the registry is updated
only after the store committed, so readers (which do no I/O) never see a non-durable layer.
Blobs are never removed here: a function keeps using a deleted layer version's copy; the code
store's start-up sweep drops what nothing refers to any more.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lamina.errors import AwsError
from lamina.functions.codestore import CodeStore
from lamina.functions.echo import now_iso
from lamina.model.layer import LayerVersion, layer_arn
from lamina.policy.evaluator import authorize
from lamina.store.layers import LayerRows
from lamina.store.metadata import MetadataStore

MAX_LAYERS = 5
GET_LAYER_VERSION = "lambda:GetLayerVersion"


def layer_name(ident: str) -> str:
    """A layer name from a name or a layer ARN (the model's pattern already checked the form)."""
    return ident.rsplit(":", 1)[-1] if ident.startswith("arn:") else ident


def _marker(after: str) -> str:
    return base64.urlsafe_b64encode(after.encode()).decode()


def _unmarker(marker: str) -> str:
    try:
        return base64.b64decode(marker.encode(), altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise AwsError("InvalidParameterValueException", "Invalid marker.") from exc


class LayerService:
    def __init__(self, *, store: MetadataStore, rows: LayerRows, code: CodeStore, account_id: str) -> None:
        self._store = store
        self._rows = rows
        self._code = code
        self.account_id = account_id
        self._layers: dict[tuple[str, str], dict[int, LayerVersion]] = {}
        self._lock = asyncio.Lock()
        # Another account's layers, by account id (set by the accounts registry): a function may
        # use a layer version of another account whose policy grants this one GetLayerVersion.
        self.others: Callable[[str], LayerService | None] = lambda _account: None

    async def load(self) -> None:
        for row in await self._store.call(self._rows.load):
            lv = LayerVersion.from_row(row)
            self._layers.setdefault((lv.region, lv.name), {})[lv.version] = lv

    def live_hexes(self) -> set[str]:
        return {lv.code_hex for versions in self._layers.values() for lv in versions.values()}

    # -- reads ------------------------------------------------------------------------------------
    def get(self, region: str, ident: str, version: int) -> LayerVersion:
        lv = self._layers.get((region, layer_name(ident)), {}).get(version)
        if lv is None:
            raise AwsError("ResourceNotFoundException", "The resource you requested does not exist.")
        return lv

    def check_shared(self, lv: LayerVersion, caller_account: str) -> None:
        """Raise AWS's AccessDeniedException unless ``lv``'s policy lets ``caller_account`` read it."""
        principal = f"arn:aws:iam::{caller_account}:root"
        doc = {"Statement": list(lv.policy.get("statements") or [])}
        if not authorize(doc, principal=principal, action=GET_LAYER_VERSION):
            raise AwsError(
                "AccessDeniedException",
                f"User: {principal} is not authorized to perform: {GET_LAYER_VERSION} on resource: "
                f"{lv.arn(self.account_id)} because no resource-based policy allows the "
                f"{GET_LAYER_VERSION} action",
            )

    def _any_account(self, region: str, arn: str) -> tuple[LayerVersion, str]:
        """A layer version ARN of this account, or of another whose policy shares it with this one;
        (the version, its owner's account id)."""
        parts = arn.split(":")
        owner = parts[4] if len(parts) == 8 else self.account_id
        if owner == self.account_id:
            return self.get_by_arn(region, arn), owner
        other = self.others(owner)
        try:
            if other is None:
                raise AwsError("ResourceNotFoundException", "The resource you requested does not exist.")
            lv = other.get_by_arn(region, arn)
        except AwsError:  # another account's missing layer looks refused: nothing to probe
            raise AwsError(
                "AccessDeniedException",
                f"User: arn:aws:iam::{self.account_id}:root is not authorized to perform: "
                f"{GET_LAYER_VERSION} on resource: {arn} because no resource-based policy allows the "
                f"{GET_LAYER_VERSION} action",
            ) from None
        other.check_shared(lv, self.account_id)
        return lv, owner

    def get_by_arn(self, region: str, arn: str) -> LayerVersion:
        parts = arn.split(":")
        if len(parts) != 8 or parts[4] != self.account_id or not parts[7].isdigit():
            raise AwsError("ResourceNotFoundException", "The resource you requested does not exist.")
        return self.get(parts[3], parts[6], int(parts[7]))

    def describe(self, lv: LayerVersion, location: str) -> dict[str, Any]:
        """The GetLayerVersion / PublishLayerVersion response."""
        out = lv.list_item(self.account_id)
        out.update(
            {
                "Content": {"Location": location, "CodeSha256": lv.code_sha256, "CodeSize": lv.code_size},
                "LayerArn": layer_arn(lv.region, self.account_id, lv.name),
            }
        )
        return out

    @staticmethod
    def _matches(lv: LayerVersion, runtime: str | None, arch: str | None) -> bool:
        return (runtime is None or runtime in lv.compatible_runtimes) and (
            arch is None or arch in lv.compatible_architectures
        )

    def list_layers(self, region: str, p: Mapping[str, Any]) -> dict[str, Any]:
        runtime, arch = p.get("CompatibleRuntime"), p.get("CompatibleArchitecture")
        after = _unmarker(p["Marker"]) if p.get("Marker") else ""
        items: list[dict[str, Any]] = []
        for (r, name), versions in sorted(self._layers.items()):
            if r != region or name <= after:
                continue
            match = [lv for lv in versions.values() if self._matches(lv, runtime, arch)]
            if match:
                latest = max(match, key=lambda lv: lv.version)
                items.append(
                    {
                        "LayerName": name,
                        "LayerArn": layer_arn(region, self.account_id, name),
                        "LatestMatchingVersion": latest.list_item(self.account_id),
                    }
                )
        limit = p.get("MaxItems") or 50
        out: dict[str, Any] = {"Layers": items[:limit]}
        if len(items) > limit:
            out["NextMarker"] = _marker(items[limit - 1]["LayerName"])
        return out

    def list_versions(self, region: str, p: Mapping[str, Any]) -> dict[str, Any]:
        runtime, arch = p.get("CompatibleRuntime"), p.get("CompatibleArchitecture")
        versions = self._layers.get((region, layer_name(p["LayerName"])), {})
        match = sorted(
            (lv for lv in versions.values() if self._matches(lv, runtime, arch)),
            key=lambda lv: -lv.version,
        )  # newest first, as AWS lists them
        if p.get("Marker"):
            below = _unmarker(p["Marker"])
            if not below.isdigit():
                raise AwsError("InvalidParameterValueException", "Invalid marker.")
            match = [lv for lv in match if lv.version < int(below)]
        limit = p.get("MaxItems") or 50
        out: dict[str, Any] = {"LayerVersions": [lv.list_item(self.account_id) for lv in match[:limit]]}
        if len(match) > limit:
            out["NextMarker"] = _marker(str(match[limit - 1].version))
        return out

    def resolve(self, region: str, arns: Sequence[str]) -> tuple[dict[str, Any], ...]:
        """A function's Layers parameter, checked as AWS checks it, as the refs the function keeps."""
        if len(arns) > MAX_LAYERS:
            raise AwsError(
                "InvalidParameterValueException", f"Cannot reference more than {MAX_LAYERS} layers."
            )
        refs: list[dict[str, Any]] = []
        seen: set[str] = set()
        for arn in arns:
            try:
                lv, owner = self._any_account(region, arn)
            except AwsError as err:
                if err.code == "AccessDeniedException":
                    raise
                raise AwsError(
                    "InvalidParameterValueException", f"Layer version {arn} does not exist."
                ) from None
            unversioned = layer_arn(lv.region, owner, lv.name)
            if unversioned in seen:
                raise AwsError(
                    "InvalidParameterValueException",
                    "Two different versions of the same layer are not allowed to be referenced in the "
                    "same function. Duplicate layer: " + unversioned,
                )
            seen.add(unversioned)
            refs.append(
                {
                    "arn": lv.arn(owner),
                    "code_size": lv.code_size,
                    "hex": lv.code_hex,
                    "unzipped_size": lv.unzipped_size,
                }
            )
        return tuple(refs)

    # -- writes -----------------------------------------------------------------------------------
    async def publish(self, region: str, p: Mapping[str, Any]) -> LayerVersion:
        content = p.get("Content") or {}
        if content.get("S3Bucket") or content.get("S3Key"):
            raise AwsError(
                "InvalidParameterValueException",
                "lamina does not read code from S3; upload the package as ZipFile.",
            )
        if content.get("ZipFile") is None:
            raise AwsError("InvalidParameterValueException", "Please provide a source for layer code.")
        code = await asyncio.to_thread(self._code.store, content["ZipFile"])
        name = layer_name(p["LayerName"])
        draft = LayerVersion(
            region=region,
            name=name,
            version=0,
            code_sha256=code.sha256_b64,
            code_hex=code.hex,
            code_size=code.size,
            unzipped_size=code.unzipped_size,
            created=now_iso(),
            description=p.get("Description") or "",
            compatible_runtimes=tuple(p.get("CompatibleRuntimes") or ()),
            compatible_architectures=tuple(p.get("CompatibleArchitectures") or ()),
            license_info=p.get("LicenseInfo"),
        )
        async with self._lock:
            version = await self._store.call(self._rows.publish, region, name, draft.to_row())
            lv = draft.replace(version=version)
            self._layers.setdefault((region, name), {})[version] = lv
        return lv

    async def delete(self, region: str, ident: str, version: int) -> None:
        name = layer_name(ident)
        async with self._lock:
            versions = self._layers.get((region, name), {})
            if version not in versions:
                return  # AWS answers 204 for a version that is not there
            await self._store.call(self._rows.delete, region, name, version)
            del versions[version]
            if not versions:
                del self._layers[(region, name)]

    # -- the resource policy ----------------------------------------------------------------------
    def policy(self, region: str, ident: str, version: int) -> dict[str, Any]:
        lv = self.get(region, ident, version)
        if not lv.policy.get("statements"):
            raise AwsError("ResourceNotFoundException", "No policy is associated with the given resource.")
        return {"Policy": self._policy_json(lv), "RevisionId": lv.policy["revision_id"]}

    def _policy_json(self, lv: LayerVersion) -> str:
        doc = {"Version": "2012-10-17", "Id": "default", "Statement": lv.policy["statements"]}
        return json.dumps(doc, separators=(",", ":"))

    @staticmethod
    def _check_revision(lv: LayerVersion, revision_id: str | None) -> None:
        if revision_id is not None and revision_id != lv.policy.get("revision_id"):
            raise AwsError(
                "PreconditionFailedException",
                "The Revision Id provided does not match the latest Revision Id. "
                "Call the GetLayerPolicy API to retrieve the latest Revision Id",
            )

    async def add_permission(self, region: str, p: Mapping[str, Any]) -> dict[str, Any]:
        """Store a statement.  Grants to other lamina accounts (or ``*``) apply to GetLayerVersion
        and to their functions' Layers; a grant conditioned on an organisation matches nobody (no
        organisations here)."""
        async with self._lock:
            lv = self.get(region, p["LayerName"], p["VersionNumber"])
            self._check_revision(lv, p.get("RevisionId"))
            statements = list(lv.policy.get("statements") or [])
            sid = p["StatementId"]
            if any(s["Sid"] == sid for s in statements):
                raise AwsError(
                    "ResourceConflictException",
                    f"The statement id ({sid}) provided already exists. Please provide a new statement "
                    "id, or remove the existing statement.",
                )
            principal: Any = p["Principal"]
            if principal != "*":  # an account id or an account's root ARN: AWS shows the ARN
                arn = principal if principal.startswith("arn:") else f"arn:aws:iam::{principal}:root"
                principal = {"AWS": arn}
            statement: dict[str, Any] = {
                "Sid": sid,
                "Effect": "Allow",
                "Principal": principal,
                "Action": p["Action"],
                "Resource": lv.arn(self.account_id),
            }
            if p.get("OrganizationId"):
                statement["Condition"] = {"StringEquals": {"aws:PrincipalOrgID": p["OrganizationId"]}}
            policy = {"revision_id": str(uuid.uuid4()), "statements": [*statements, statement]}
            await self._save_policy(lv, policy)
        return {
            "Statement": json.dumps(statement, separators=(",", ":")),
            "RevisionId": policy["revision_id"],
        }

    async def remove_permission(self, region: str, p: Mapping[str, Any]) -> None:
        async with self._lock:
            lv = self.get(region, p["LayerName"], p["VersionNumber"])
            self._check_revision(lv, p.get("RevisionId"))
            statements = list(lv.policy.get("statements") or [])
            kept = [s for s in statements if s["Sid"] != p["StatementId"]]
            if len(kept) == len(statements):
                raise AwsError(
                    "ResourceNotFoundException",
                    f"Statement {p['StatementId']} is not found in resource policy.",
                )
            await self._save_policy(lv, {"revision_id": str(uuid.uuid4()), "statements": kept})

    async def _save_policy(self, lv: LayerVersion, policy: dict[str, Any]) -> None:
        new = lv.replace(policy=policy)
        await self._store.call(self._rows.put, new.region, new.name, new.version, new.to_row())
        self._layers[(new.region, new.name)][new.version] = new
