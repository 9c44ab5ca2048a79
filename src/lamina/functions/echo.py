"""Small configuration helpers shared by function writes and version publishing."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

# Configuration members stored verbatim and echoed back (lamina does not act on them yet).
_ECHOED = ("DeadLetterConfig", "KMSKeyArn", "TracingConfig", "VpcConfig", "FileSystemConfigs")


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


def echoed(params: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in _ECHOED:
        if key in params and params[key] is not None:
            out[key] = params[key]
    if "VpcConfig" in out:
        vpc = out["VpcConfig"]
        out["VpcConfig"] = {
            "SubnetIds": vpc.get("SubnetIds", []),
            "SecurityGroupIds": vpc.get("SecurityGroupIds", []),
            "VpcId": "",
        }
    if "TracingConfig" in out:
        out["TracingConfig"] = {"Mode": out["TracingConfig"].get("Mode", "PassThrough")}
    return out
