"""``lamina schedules``: EventBridge Scheduler schedules and scheduled rules, with their state,
next and last firing and the last firing's result.

AWS's APIs do not say when a schedule fires next or fired last, so this reads lamina's own
``GET /_lamina/schedules``, SigV4-signed like ``lamina events``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import click

from lamina.cli.client import Connection, connection_options, render_table, require_credentials
from lamina.cli.events import signed_get

RESULT_MAX = 60


def _when(ts: float | None, now: float) -> str:
    if ts is None:
        return "-"
    stamp = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")
    delta = ts - now
    rel = f"in {delta:.0f}s" if delta >= 0 else f"{-delta:.0f}s ago"
    if abs(delta) >= 120:
        rel = f"in {delta / 60:.0f}m" if delta >= 0 else f"{-delta / 60:.0f}m ago"
    return f"{stamp} ({rel})"


def format_schedules(timers: Sequence[Mapping[str, Any]], now: float) -> str:
    headers = ("KIND", "NAME", "STATE", "EXPRESSION", "NEXT FIRING", "LAST FIRING", "LAST RESULT")
    rows = []
    for t in timers:
        scope = t.get("Group") or "default"
        name = str(t.get("Name", "")) if scope == "default" else f"{scope}/{t.get('Name', '')}"
        expr = str(t.get("ScheduleExpression") or "-")
        if t.get("Timezone") not in (None, "UTC"):
            expr += f" {t['Timezone']}"
        result = " ".join(str(t.get("LastResult") or "-").split())
        if len(result) > RESULT_MAX:
            result = result[: RESULT_MAX - 1] + "…"
        rows.append(
            (
                str(t.get("Kind", "")),
                name,
                str(t.get("State", "")),
                expr,
                _when(t.get("NextFire"), now),
                _when(t.get("LastFire"), now),
                result,
            )
        )
    return render_table(headers, rows)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the server's answer as JSON.")
@connection_options
def schedules(*, as_json: bool, conn: Connection) -> None:
    """List schedules (EventBridge Scheduler) and scheduled rules with next and last firings."""
    creds = require_credentials(os.environ, conn.data_dir)
    view = signed_get(conn, creds, "/_lamina/schedules")
    if as_json:
        click.echo(json.dumps(view, indent=2))
    elif not view.get("Timers"):
        click.echo("no schedules or scheduled rules", err=True)
    else:
        click.echo(format_schedules(view["Timers"], time.time()))
