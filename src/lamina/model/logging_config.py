"""A function's LoggingConfig (advanced logging controls) with AWS's rules.

botocore's model checks the enums (LogFormat JSON|Text, ApplicationLogLevel TRACE..FATAL,
SystemLogLevel DEBUG|INFO|WARN) and the LogGroup pattern; what it cannot say is here:

- log levels only with ``LogFormat: JSON`` (AWS's InvalidParameterValueException, worded as
  AWS words it);
- with JSON, a level left out is INFO, and GetFunctionConfiguration returns both levels;
- UpdateFunctionConfiguration merges into what is set: a LoggingConfig naming only LogGroup
  keeps the format and levels; switching to Text drops the levels.

Stored (in ``FunctionVersion.extra["LoggingConfig"]``) as what was set, normalised: LogFormat
always, both levels with JSON, LogGroup only when the function has its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lamina.errors import AwsError

JSON = "JSON"
TEXT = "Text"
DEFAULT_LEVEL = "INFO"  # what AWS sets for a level left out with JSON
LEVEL_KEYS = ("ApplicationLogLevel", "SystemLogLevel")

LEVEL_WITH_TEXT = (
    'LogLevel is not supported when LogFormat is set to "Text". Remove LogLevel from your '
    'request or change the LogFormat to "Json" and try again.'
)


def default_log_group(function_name: str) -> str:
    return f"/aws/lambda/{function_name}"


def merge(requested: Mapping[str, Any] | None, current: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The stored LoggingConfig after a write: ``requested`` (the API member) over ``current``."""
    stored = dict(current or {})
    requested = {k: v for k, v in (requested or {}).items() if v is not None}
    log_format = requested.get("LogFormat", stored.get("LogFormat", TEXT))
    if log_format != JSON:
        if any(key in requested for key in LEVEL_KEYS):
            raise AwsError("InvalidParameterValueException", LEVEL_WITH_TEXT)
        for key in LEVEL_KEYS:  # from JSON to Text: the levels go with it
            stored.pop(key, None)
    stored.update(requested)
    stored["LogFormat"] = log_format
    if log_format == JSON:
        for key in LEVEL_KEYS:
            stored.setdefault(key, DEFAULT_LEVEL)
    return stored


def to_api(stored: Mapping[str, Any] | None, function_name: str) -> dict[str, Any]:
    """The LoggingConfig member of FunctionConfiguration, in AWS's order."""
    stored = stored or {}
    out: dict[str, Any] = {"LogFormat": stored.get("LogFormat", TEXT)}
    if out["LogFormat"] == JSON:
        for key in LEVEL_KEYS:
            out[key] = stored.get(key, DEFAULT_LEVEL)
    out["LogGroup"] = log_group(stored, function_name)
    return out


def log_group(stored: Mapping[str, Any] | None, function_name: str) -> str:
    """Where the function's logs go: its own LogGroup, or /aws/lambda/<name>."""
    return (stored or {}).get("LogGroup") or default_log_group(function_name)


def json_levels(stored: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """(ApplicationLogLevel, SystemLogLevel) when the format is JSON; None for Text."""
    stored = stored or {}
    if stored.get("LogFormat") != JSON:
        return None
    return stored.get("ApplicationLogLevel", DEFAULT_LEVEL), stored.get("SystemLogLevel", DEFAULT_LEVEL)
