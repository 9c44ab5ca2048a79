"""``lamina serve``: the whole platform in one foreground process."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from lamina.config import Settings


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=9000, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where all state lives (default: $LAMINA_DATA_DIR or ./.lamina).",
)
@click.option("--account-id", default=None, help="12-digit account id in ARNs (default 123456789012).")
@click.option("--idle-timeout", type=float, default=None, help="Seconds an idle environment is kept warm.")
@click.option(
    "--shutdown-grace",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds in-flight invokes may run after SIGTERM before their environments are stopped.",
)
@click.option(
    "--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"])
)
def serve(
    host: str,
    port: int,
    data_dir: Path | None,
    account_id: str | None,
    idle_timeout: float | None,
    shutdown_grace: float,
    log_level: str,
) -> None:
    """Run lamina: the Lambda API, executions and logs, on one endpoint."""
    from lamina import logs, server
    from lamina.platform import DataDirLocked, Platform

    logs.configure(log_level)
    try:
        settings = Settings.from_env(
            host=host, port=port, data_dir=data_dir, account_id=account_id, idle_timeout_s=idle_timeout
        )
        platform = Platform(settings)
        _creds, created = platform.prepare()
    except (ValueError, DataDirLocked) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    if created:
        click.echo("Generated new credentials for this lamina.", err=True)
        click.echo(platform.usage(), err=True)
    click.echo(f"lamina listening on {settings.endpoint_url} (data dir {settings.data_dir})", err=True)
    sys.exit(server.run(platform, grace_s=shutdown_grace))
