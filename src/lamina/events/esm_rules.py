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
    """ "sqs", "kinesis" or "dynamodb" (a table's stream ARN), else AWS's refusal."""
    m = _ARN.fullmatch(arn)
    if m is None:
        raise _invalid(f"Invalid event source ARN: {arn}")
    service = m.group("service")
    if service in ("sqs", "kinesis") or (service == "dynamodb" and "/stream/" in m.group("rest")):
        return service
    raise _invalid("Unrecognized event source, must be kinesis, dynamodb stream or sqs queue.")


def settings_for_create(source: str, params: dict[str, Any]) -> dict[str, Any]:
    kind = source_type(source)
    if kind == "sqs":
        defaults = {"BatchSize": 10, "MaximumBatchingWindowInSeconds": 0, "FunctionResponseTypes": []}
        return _sqs_settings(defaults, params)
    if not params.get("StartingPosition"):
        raise AwsError(
            "ValidationException",
            "1 validation error detected: Value null at 'startingPosition' failed to satisfy constraint: "
            "Member must not be null",
        )
    return _stream_settings(kind, dict(STREAM_DEFAULTS), params, creating=True)


def settings_for_update(source: str, current: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    kind = source_type(source)
    if kind == "sqs":
        return _sqs_settings(dict(current), params)
    return _stream_settings(kind, dict(current), params, creating=False)


STREAM_DEFAULTS: dict[str, Any] = {
    "BatchSize": 100,
    "MaximumBatchingWindowInSeconds": 0,
    "ParallelizationFactor": 1,
    "DestinationConfig": {"OnFailure": {}},
    "MaximumRecordAgeInSeconds": -1,
    "BisectBatchOnFunctionError": False,
    "MaximumRetryAttempts": -1,
    "TumblingWindowInSeconds": 0,
    "FunctionResponseTypes": [],
}
_STREAM_SETTINGS = (*STREAM_DEFAULTS, "FilterCriteria")
_START_ONLY = ("StartingPosition", "StartingPositionTimestamp")


def _stream_settings(
    kind: str, settings: dict[str, Any], params: dict[str, Any], *, creating: bool
) -> dict[str, Any]:
    if params.get("ScalingConfig"):
        raise _invalid("Unsupported ScalingConfig parameter for given event source type.")
    for member in _STREAM_SETTINGS + (_START_ONLY if creating else ()):
        if params.get(member) is not None:
            settings[member] = params[member]
    stamp = settings.get("StartingPositionTimestamp")
    if stamp is not None and hasattr(stamp, "timestamp"):  # stored as JSON: epoch seconds
        settings["StartingPositionTimestamp"] = stamp.timestamp()
    if settings.get("StartingPosition") == "AT_TIMESTAMP" and (
        kind != "kinesis" or settings.get("StartingPositionTimestamp") is None
    ):
        raise _invalid(
            "StartingPositionTimestamp must be set for AT_TIMESTAMP, which only Kinesis streams take."
        )
    _bounded(settings, "BatchSize", 1, 10_000)
    _bounded(settings, "MaximumBatchingWindowInSeconds", 0, 300)
    _bounded(settings, "ParallelizationFactor", 1, 10)
    _bounded(settings, "MaximumRetryAttempts", -1, 10_000)
    _bounded(settings, "TumblingWindowInSeconds", 0, 900)
    age = settings["MaximumRecordAgeInSeconds"]
    if age != -1 and not 60 <= age <= 604_800:
        raise _invalid("MaximumRecordAgeInSeconds must be -1 or between 60 and 604800.")
    destinations = settings.get("DestinationConfig") or {}
    target = (destinations.get("OnFailure") or {}).get("Destination")
    if target and target.split(":")[2:3] not in (["sqs"], ["sns"], ["s3"]):
        raise _invalid(
            "The OnFailure destination of a stream must be an SQS queue, an SNS topic or an S3 bucket."
        )
    if destinations.get("OnSuccess"):
        raise _invalid(
            "OnSuccess is not supported in CreateEventSourceMapping or UpdateEventSourceMapping requests."
        )
    _response_types(settings)
    if settings.get("FilterCriteria") is not None:
        compile_filters(settings["FilterCriteria"])
    return settings


def _bounded(settings: dict[str, Any], member: str, low: int, high: int) -> None:
    if not low <= settings[member] <= high:
        raise _invalid(f"{member} must be between {low} and {high}.")


def _response_types(settings: dict[str, Any]) -> None:
    for kind in settings.get("FunctionResponseTypes") or []:
        if kind != "ReportBatchItemFailures":
            raise _invalid(f"Unsupported FunctionResponseType: {kind}")


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
    _response_types(settings)
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
