"""``lamina sources [NAME]``: event source mappings with their state and last result."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import click

from lamina.cli.client import Connection, connect, connection_options, render_table, reporting_errors


def format_sources(mappings: Sequence[Mapping[str, Any]]) -> str:
    headers = ("UUID", "FUNCTION", "SOURCE", "STATE", "BATCH", "LAST RESULT")
    rows = [
        (
            str(m.get("UUID", "")),
            str(m.get("FunctionArn", "")).split(":function:")[-1],
            str(m.get("EventSourceArn", "")).split(":")[-1],
            str(m.get("State", "-")),
            str(m.get("BatchSize", "-")),
            str(m.get("LastProcessingResult") or "-"),
        )
        for m in mappings
    ]
    return render_table(headers, rows)


@click.command()
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print ListEventSourceMappings' answer as JSON.")
@connection_options
def sources(name: str | None, *, as_json: bool, conn: Connection) -> None:
    """List event source mappings (of function NAME, or all) with their state and last result."""
    with reporting_errors(conn.endpoint_url):
        client = connect(conn)
        found: list[dict[str, Any]] = []
        kwargs = {"FunctionName": name} if name else {}
        for page in client.get_paginator("list_event_source_mappings").paginate(**kwargs):
            found.extend(page.get("EventSourceMappings", []))
    if as_json:
        click.echo(json.dumps(found, indent=2, default=str))
    elif not found:
        click.echo("no event source mappings", err=True)
    else:
        click.echo(format_sources(found))
