"""A function alias as stored: a frozen value, no I/O."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from lamina.model.function import function_arn


@dataclass(frozen=True, slots=True)
class Alias:
    """A named pointer to a version, optionally splitting traffic with one more version."""

    region: str
    function_name: str
    name: str
    function_version: str
    revision_id: str
    description: str = ""
    weights: dict[str, float] = field(default_factory=dict)  # AdditionalVersionWeights

    def arn(self, account_id: str) -> str:
        return function_arn(self.region, account_id, self.function_name, self.name)

    def targets(self, version: str) -> bool:
        """Whether invoking this alias can run ``version``."""
        return version == self.function_version or version in self.weights

    def replace(self, **changes: Any) -> Alias:
        return dataclasses.replace(self, **changes)

    def to_output(self, account_id: str) -> dict[str, Any]:
        """The AliasConfiguration shape of the Lambda API."""
        out: dict[str, Any] = {
            "AliasArn": self.arn(account_id),
            "Name": self.name,
            "FunctionVersion": self.function_version,
            "Description": self.description,
            "RevisionId": self.revision_id,
        }
        if self.weights:
            out["RoutingConfig"] = {"AdditionalVersionWeights": dict(self.weights)}
        return out

    def to_row(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Alias:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in row.items() if k in names})
