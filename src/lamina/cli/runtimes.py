"""``lamina runtimes``: which Lambda runtimes this host can run, and what serves each.

It runs the same discovery the server runs at start (``lamina.execution.interpreters``) with the
same ``LAMINA_PYTHON_3_X`` overrides, so what it lists is what CreateFunction will accept here.
"""

from __future__ import annotations

import asyncio
import json
import os

import click

from lamina.config import Settings
from lamina.execution import interpreters


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object runtime -> interpreter.")
def runtimes(as_json: bool) -> None:
    """List the runtimes this host can run and the interpreter that serves each."""
    overrides = Settings.from_env(os.environ).interpreters
    found = asyncio.run(interpreters.discover(overrides))
    if as_json:
        click.echo(json.dumps(found, indent=2, sort_keys=True))
        return
    for runtime in interpreters.RUNTIMES:
        click.echo(f"{runtime:<12} {found.get(runtime, '(not on this host)')}")
    if not found:
        click.echo("No supported interpreter found; install python3.11+ or set LAMINA_PYTHON_3_X.", err=True)
