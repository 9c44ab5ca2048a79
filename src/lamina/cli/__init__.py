"""The ``lamina`` command: ``serve`` runs the platform; the other verbs are clients of its API."""

from __future__ import annotations

import click

from lamina.cli.accounts import accounts
from lamina.cli.client import register_client_commands
from lamina.cli.serve import serve


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lamina")
def main() -> None:
    """lamina: a self-hosted AWS Lambda."""


main.add_command(serve)
main.add_command(accounts)
register_client_commands(main)
