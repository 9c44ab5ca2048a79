"""``lamina runtimes``: which Lambda runtimes this host can run, and what serves each.

It runs the same discovery the server runs at start (``lamina.execution.interpreters`` and
``nodes``, built into ``catalog``) with the same ``LAMINA_PYTHON_3_X`` / ``LAMINA_NODEJS_<N>_X``
overrides, so what it lists is what CreateFunction will accept here.
"""

from __future__ import annotations

import asyncio
import json
import os

import click

from lamina.config import Settings
from lamina.execution import catalog, interpreters, nodes


async def _discover(overrides: dict[str, str]) -> dict[str, catalog.RuntimeLaunch]:
    pythons, found_nodes = await asyncio.gather(
        interpreters.discover({k: v for k, v in overrides.items() if not catalog.is_node(k)}),
        nodes.discover({k: v for k, v in overrides.items() if catalog.is_node(k)}),
    )
    return catalog.build(pythons, found_nodes)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object runtime -> what serves it.")
def runtimes(as_json: bool) -> None:
    """List the runtimes this host can run and the interpreter or binary that serves each."""
    overrides = dict(Settings.from_env(os.environ).interpreters)
    found = asyncio.run(_discover(overrides))
    if as_json:
        click.echo(json.dumps({k: v.served_by for k, v in found.items()}, indent=2, sort_keys=True))
        return
    for runtime in (*interpreters.RUNTIMES, *nodes.RUNTIMES, *catalog.PROVIDED):
        launch = found.get(runtime)
        click.echo(f"{runtime:<16} {launch.served_by if launch else '(not on this host)'}")
    if not found:
        click.echo("No supported interpreter found; install python3.11+ or set LAMINA_PYTHON_3_X.", err=True)
