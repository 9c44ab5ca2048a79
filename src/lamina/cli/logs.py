"""``lamina logs NAME [--follow] [--since 10m] [--filter PATTERN]``: a function's CloudWatch logs.

It reads them as ``aws logs tail`` does: FilterLogEvents on ``/aws/lambda/NAME`` through a boto3
``logs`` client signed like the other verbs, all pages; with ``--follow`` it polls again every
``--interval`` seconds from the newest timestamp seen (less a few seconds, for lines that reach
the store out of order), skipping event ids already printed.  START/END/REPORT lines are dimmed,
errors red; click drops the colours when stdout is not a terminal.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import click

from lamina.cli.client import (
    CliError,
    Connection,
    connect,
    connection_options,
    make_client,
    reporting_errors,
    require_credentials,
)

_SINCE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PLATFORM = ("START ", "END ", "REPORT ", "INIT_START ", "INIT_REPORT ", "EXTENSION ", "TELEMETRY ")
_ERROR = re.compile(
    r"\[ERROR\]|Traceback \(most recent call last\)|Task timed out|\bERROR\b|errorType|Error: "
)
REORDER_MS = 5000  # how far back each follow poll looks again, for lines stored out of order


def parse_since(text: str, now: float) -> int:
    """``10m``, ``90s``, ``2h``, ``1d``, ``1w``, or an ISO 8601 time: epoch milliseconds."""
    m = _SINCE.fullmatch(text.strip())
    if m:
        return int((now - float(m.group(1)) * _UNIT_S[m.group(2)]) * 1000)
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"expected e.g. 10m, 2h, 1d or an ISO time, got {text!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def group_for(name: str) -> str:
    """A function name (or ARN) is ``/aws/lambda/<name>``; a name starting with ``/`` is a group."""
    if name.startswith("/"):
        return name
    if name.startswith("arn:"):
        name = name.split(":")[6] if len(name.split(":")) > 6 else name
    return f"/aws/lambda/{name}"


def configured_group(conn: Connection, name: str) -> str | None:
    """The LogGroup of the function's LoggingConfig, when it can be read (else None: the default)."""
    try:
        config = connect(conn).get_function_configuration(FunctionName=name)
    except Exception:  # no such function (its old logs may remain), unreachable: the default group
        return None
    group = (config.get("LoggingConfig") or {}).get("LogGroup")
    return str(group) if group else None


def style_line(message: str) -> str:
    """The message coloured by what it is: platform lines dim, errors red, drop notices yellow."""
    if message.startswith(_PLATFORM):
        return click.style(message, fg="cyan", dim=message.startswith(("START ", "END ")))
    if message.startswith("LOGS_DROPPED "):
        return click.style(message, fg="yellow")
    if _ERROR.search(message):
        return click.style(message, fg="red")
    return message


def format_event(event: Mapping[str, Any]) -> str:
    stamp = datetime.fromtimestamp(int(event["timestamp"]) / 1000, UTC)
    when = stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"
    return f"{click.style(when, dim=True)} {style_line(str(event.get('message', '')).rstrip(chr(10)))}"


def fetch(client: Any, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every event FilterLogEvents answers for ``params``, following nextToken."""
    token: str | None = None
    while True:
        page = client.filter_log_events(**params, **({"nextToken": token} if token else {}))
        yield from page.get("events", [])
        token = page.get("nextToken")
        if not token:
            return


def follow_events(
    client: Any,
    params: dict[str, Any],
    *,
    sleep: Callable[[float], None],
    interval: float,
    polls: int | None = None,
) -> Iterator[dict[str, Any]]:
    """The events for ``params`` now, then new ones every ``interval`` s (``polls`` rounds, or forever)."""
    seen: dict[str, int] = {}  # event id -> timestamp, for the events in the look-back window
    newest = int(params.get("startTime", 0))
    done = 0
    while polls is None or done < polls:
        if done:
            sleep(interval)
        done += 1
        query = {**params, "startTime": max(int(params.get("startTime", 0)), newest - REORDER_MS)}
        for event in sorted(fetch(client, query), key=lambda e: (e["timestamp"], e.get("eventId", ""))):
            event_id = str(event.get("eventId", ""))
            if event_id in seen:
                continue
            seen[event_id] = int(event["timestamp"])
            newest = max(newest, int(event["timestamp"]))
            yield event
        horizon = newest - REORDER_MS
        for event_id in [k for k, ts in seen.items() if ts < horizon]:
            del seen[event_id]


def make_logs_client(conn: Connection) -> Any:
    return make_client(conn, require_credentials(os.environ, conn.data_dir), service="logs")


@click.command(name="logs")
@click.argument("name")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events until interrupted.")
@click.option(
    "--since",
    default="10m",
    show_default=True,
    help="Start this long ago (30s, 10m, 2h, 1d) or at an ISO time.",
)
@click.option(
    "--filter", "pattern", help="CloudWatch filter pattern, e.g. ERROR or '{ $.level = \"ERROR\" }'."
)
@click.option(
    "--interval",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds between polls with --follow.",
)
@connection_options
def logs(
    name: str, *, follow: bool, since: str, pattern: str | None, interval: float, conn: Connection
) -> None:
    """Print the logs of function NAME (its log group: /aws/lambda/NAME unless its LoggingConfig
    names another; a NAME starting with / is a group)."""
    group = group_for(name)
    if not name.startswith("/"):
        group = configured_group(conn, name) or group
    params: dict[str, Any] = {"logGroupName": group, "startTime": parse_since(since, time.time())}
    if pattern:
        params["filterPattern"] = pattern
    client = make_logs_client(conn)
    events = follow_events(client, params, sleep=time.sleep, interval=interval, polls=None if follow else 1)
    try:
        with reporting_errors(conn.endpoint_url):
            for event in events:
                click.echo(format_event(event))
    except CliError as exc:
        if "ResourceNotFoundException" in exc.message:
            raise CliError(
                f"no logs for {name}: log group {group} does not exist (not invoked yet?)"
            ) from None
        raise
    except KeyboardInterrupt:
        return
