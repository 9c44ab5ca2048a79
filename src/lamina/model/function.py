"""A function version's configuration as stored: a frozen value, no I/O."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from lamina.model import logging_config

LATEST = "$LATEST"


def function_arn(region: str, account_id: str, name: str, qualifier: str | None = None) -> str:
    arn = f"arn:aws:lambda:{region}:{account_id}:function:{name}"
    return f"{arn}:{qualifier}" if qualifier else arn


@dataclass(frozen=True, slots=True)
class FunctionVersion:
    """One version ($LATEST or a published number) of one function in one region."""

    region: str
    name: str
    version: str
    runtime: str
    handler: str
    role: str
    code_sha256: str  # base64 of the zip's sha256, as AWS reports it
    code_hex: str  # hex sha256: the blob's content address
    code_size: int
    revision_id: str
    last_modified: str  # 2024-01-01T00:00:00.000+0000
    description: str = ""
    memory_size: int = 128
    timeout: int = 3
    environment: dict[str, str] = field(default_factory=dict)
    ephemeral_storage: int = 512
    architectures: tuple[str, ...] = ("x86_64",)
    package_type: str = "Zip"
    state: str = "Active"
    last_update_status: str = "Successful"
    # Layers as frozen with this version: ({"arn", "code_size", "hex", "unzipped_size"}, ...)
    layers: tuple[dict[str, Any], ...] = ()
    # Stored and echoed configuration (TracingConfig, DeadLetterConfig, VpcConfig, ...): kept so
    # GetFunctionConfiguration round-trips; LoggingConfig is kept here too, normalised by
    # functions/logging_config.py, and acted on (format, levels, log group).
    extra: dict[str, Any] = field(default_factory=dict)

    def arn(self, account_id: str, qualified: bool = False) -> str:
        return function_arn(self.region, account_id, self.name, self.version if qualified else None)

    def replace(self, **changes: Any) -> FunctionVersion:
        return dataclasses.replace(self, **changes)

    def to_configuration(self, account_id: str) -> dict[str, Any]:
        """The FunctionConfiguration shape of the Lambda API."""
        cfg: dict[str, Any] = {
            "FunctionName": self.name,
            "FunctionArn": self.arn(account_id, qualified=self.version != LATEST),
            "Runtime": self.runtime,
            "Role": self.role,
            "Handler": self.handler,
            "CodeSize": self.code_size,
            "Description": self.description,
            "Timeout": self.timeout,
            "MemorySize": self.memory_size,
            "LastModified": self.last_modified,
            "CodeSha256": self.code_sha256,
            "Version": self.version,
            "TracingConfig": {"Mode": "PassThrough"},
            "RevisionId": self.revision_id,
            "State": self.state,
            "LastUpdateStatus": self.last_update_status,
            "PackageType": self.package_type,
            "Architectures": list(self.architectures),
            "EphemeralStorage": {"Size": self.ephemeral_storage},
            "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
        }
        if self.layers:
            cfg["Layers"] = [{"Arn": ly["arn"], "CodeSize": ly["code_size"]} for ly in self.layers]
        if self.environment:
            cfg["Environment"] = {"Variables": dict(self.environment)}
        cfg.update(self.extra)
        cfg["LoggingConfig"] = logging_config.to_api(self.extra.get("LoggingConfig"), self.name)
        return cfg

    def to_row(self) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        row["architectures"] = list(self.architectures)
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> FunctionVersion:
        values = dict(row)
        values["architectures"] = tuple(values.get("architectures") or ("x86_64",))
        values["layers"] = tuple(values.get("layers") or ())
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})
