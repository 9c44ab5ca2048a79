"""AWS's rules for event source mapping settings, per source type, and FilterCriteria compilation.

The settings a mapping keeps are the members AWS returns for that source type, with AWS's
defaults filled in; what does not apply to a source is refused as AWS refuses it.
"""

from __future__ import annotations

import re
from typing import Any

from lamina.errors import AwsError
from lamina.events.patterns import Matcher, PatternError, compile_pattern

_ARN = re.compile(
    r"arn:aws[a-zA-Z-]*:(?P<service>[a-z0-9-]+):(?P<region>[a-z0-9-]+):(?P<account>\d{12}):(?P<rest>.+)"
)
MAX_FILTERS = 5
# Members that only stream sources (Kinesis, DynamoDB) take.
_STREAM_ONLY = (
    "StartingPosition",
    "StartingPositionTimestamp",
    "ParallelizationFactor",
    "BisectBatchOnFunctionError",
    "MaximumRetryAttempts",
    "MaximumRecordAgeInSeconds",
    "TumblingWindowInSeconds",
    "DestinationConfig",
)
_SQS_SETTINGS = (
    "BatchSize",
    "MaximumBatchingWindowInSeconds",
    "FunctionResponseTypes",
    "FilterCriteria",
    "ScalingConfig",
)


def _invalid(message: str) -> AwsError:
    return AwsError("InvalidParameterValueException", message)


def source_type(arn: str) -> str:
    m = _ARN.fullmatch(arn)
    if m is None:
        raise _invalid(f"Invalid event source ARN: {arn}")
    service = m.group("service")
    if service == "sqs":
        return "sqs"
    if service in ("kinesis", "dynamodb"):
        raise _invalid(
            f"lamina does not poll {'Kinesis' if service == 'kinesis' else 'DynamoDB'} streams yet; "
            "SQS queues are supported."
        )
    raise _invalid("Unrecognized event source, must be kinesis, dynamodb stream or sqs queue.")


def settings_for_create(source: str, params: dict[str, Any]) -> dict[str, Any]:
    source_type(source)
    return _sqs_settings(
        {"BatchSize": 10, "MaximumBatchingWindowInSeconds": 0, "FunctionResponseTypes": []}, params
    )


def settings_for_update(source: str, current: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    source_type(source)
    return _sqs_settings(dict(current), params)


def _sqs_settings(settings: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    for member in _STREAM_ONLY:
        if params.get(member) is not None:
            raise _invalid(f"Unsupported {member} parameter for given event source type.")
    for member in _SQS_SETTINGS:
        if member in params and params[member] is not None:
            settings[member] = params[member]
    batch, window = settings["BatchSize"], settings["MaximumBatchingWindowInSeconds"]
    if not 1 <= batch <= 10_000:
        raise _invalid("BatchSize must be between 1 and 10000 for SQS event sources.")
    if batch > 10 and not window:
        raise _invalid(
            "Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10"
        )
    if not 0 <= window <= 300:
        raise _invalid("MaximumBatchingWindowInSeconds must be between 0 and 300.")
    for kind in settings.get("FunctionResponseTypes") or []:
        if kind != "ReportBatchItemFailures":
            raise _invalid(f"Unsupported FunctionResponseType: {kind}")
    scaling = settings.get("ScalingConfig")
    if scaling:
        most = scaling.get("MaximumConcurrency")
        if most is not None and not 2 <= most <= 1000:
            raise _invalid("MaximumConcurrency must be between 2 and 1000.")
    if settings.get("FilterCriteria") is not None:
        compile_filters(settings["FilterCriteria"])
    return settings


def compile_filters(criteria: dict[str, Any] | None) -> list[Matcher]:
    """FilterCriteria's patterns as matchers (none: every record passes)."""
    if not criteria:
        return []
    filters = criteria.get("Filters") or []
    if len(filters) > MAX_FILTERS:
        raise _invalid(f"A FilterCriteria holds at most {MAX_FILTERS} filters.")
    out = []
    for item in filters:
        try:
            out.append(compile_pattern(item.get("Pattern") or ""))
        except PatternError as exc:
            raise _invalid(f"Invalid filter pattern definition. {exc}") from None
    return out
