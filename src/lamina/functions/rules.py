"""AWS's configuration rules that botocore's model does not carry (its bounds are wider than Lambda's)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from lamina.errors import AwsError, validation_error

MEMORY_MIN, MEMORY_MAX = 128, 10240
TIMEOUT_MIN, TIMEOUT_MAX = 1, 900
EPHEMERAL_MIN, EPHEMERAL_MAX = 512, 10240
ENV_MAX_BYTES = 4096

# Variables Lambda sets itself; a function may not override them (AWS's list).
RESERVED_ENV = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
    }
)


def _bound(problems: list[str], value: int | None, path: str, lo: int, hi: int) -> None:
    if value is None:
        return
    if value < lo:
        problems.append(
            f"Value '{value}' at '{path}' failed to satisfy constraint: "
            f"Member must have value greater than or equal to {lo}"
        )
    elif value > hi:
        problems.append(
            f"Value '{value}' at '{path}' failed to satisfy constraint: "
            f"Member must have value less than or equal to {hi}"
        )


def check_configuration(params: Mapping[str, Any]) -> None:
    """Bounds and environment rules for CreateFunction / UpdateFunctionConfiguration params."""
    problems: list[str] = []
    _bound(problems, params.get("MemorySize"), "memorySize", MEMORY_MIN, MEMORY_MAX)
    _bound(problems, params.get("Timeout"), "timeout", TIMEOUT_MIN, TIMEOUT_MAX)
    eph = (params.get("EphemeralStorage") or {}).get("Size")
    _bound(problems, eph, "ephemeralStorage.size", EPHEMERAL_MIN, EPHEMERAL_MAX)
    if problems:
        raise validation_error(problems)
    env = (params.get("Environment") or {}).get("Variables")
    if env is None:
        return
    reserved = sorted(k for k in env if k in RESERVED_ENV)
    if reserved:
        raise AwsError(
            "InvalidParameterValueException",
            "Lambda was unable to configure your environment variables because the environment "
            "variables you have provided contains reserved keys that are currently not supported for "
            f"modification. Reserved keys used in this request: {', '.join(reserved)}",
        )
    # AWS measures the JSON text of the map; the message names the size, never the values.
    measured = len(json.dumps(env, separators=(",", ":")).encode())
    if measured > ENV_MAX_BYTES:
        raise AwsError(
            "InvalidParameterValueException",
            "Lambda was unable to configure your environment variables because the environment "
            f"variables you have provided exceeded the 4KB limit. String measured: {measured} bytes",
        )


def check_runtime(runtime: str | None, handler: str | None, available: Mapping[str, str]) -> None:
    if not runtime or not handler:
        raise AwsError(
            "InvalidParameterValueException",
            "Runtime and Handler are mandatory parameters for functions created with deployment packages.",
        )
    if runtime not in available:
        have = ", ".join(sorted(available)) or "none"
        raise AwsError(
            "InvalidParameterValueException",
            f"The runtime parameter of {runtime} is not available on this lamina host. "
            f"Runtimes this host can run: {have} (see `lamina runtimes`).",
        )
