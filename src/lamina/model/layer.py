"""A layer version as stored: a frozen value, no I/O."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


def layer_arn(region: str, account_id: str, name: str, version: int | None = None) -> str:
    arn = f"arn:aws:lambda:{region}:{account_id}:layer:{name}"
    return f"{arn}:{version}" if version is not None else arn


@dataclass(frozen=True, slots=True)
class LayerVersion:
    region: str
    name: str
    version: int
    code_sha256: str  # base64, as AWS reports it
    code_hex: str  # the blob's content address
    code_size: int
    unzipped_size: int
    created: str  # 2024-01-01T00:00:00.000+0000
    description: str = ""
    compatible_runtimes: tuple[str, ...] = ()
    compatible_architectures: tuple[str, ...] = ()
    license_info: str | None = None
    # The resource policy: {"revision_id": str, "statements": [statement, ...]} or empty.
    policy: dict[str, Any] = field(default_factory=dict)

    def replace(self, **changes: Any) -> LayerVersion:
        return dataclasses.replace(self, **changes)

    def arn(self, account_id: str) -> str:
        return layer_arn(self.region, account_id, self.name, self.version)

    def list_item(self, account_id: str) -> dict[str, Any]:
        """The LayerVersionsListItem shape."""
        item: dict[str, Any] = {
            "LayerVersionArn": self.arn(account_id),
            "Version": self.version,
            "Description": self.description,
            "CreatedDate": self.created,
        }
        if self.compatible_runtimes:
            item["CompatibleRuntimes"] = list(self.compatible_runtimes)
        if self.compatible_architectures:
            item["CompatibleArchitectures"] = list(self.compatible_architectures)
        if self.license_info is not None:
            item["LicenseInfo"] = self.license_info
        return item

    def to_row(self) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        row["compatible_runtimes"] = list(self.compatible_runtimes)
        row["compatible_architectures"] = list(self.compatible_architectures)
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> LayerVersion:
        values = dict(row)
        values["compatible_runtimes"] = tuple(values.get("compatible_runtimes") or ())
        values["compatible_architectures"] = tuple(values.get("compatible_architectures") or ())
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})
