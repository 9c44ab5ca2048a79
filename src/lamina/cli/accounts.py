"""``lamina accounts``: the operator's verbs for additional accounts (docs/accounts.md).

They write ``<data-dir>/accounts.json`` directly, so they work whether or not a server is
running: a running server reads the file again on a new key's first request and within half a
second of any change (a deleted account's key is refused from then on).  The secret is printed
once, by ``create``, and otherwise only ever sits in the 0600 file.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

import click

from lamina.accounts import store
from lamina.accounts.store import AccountError
from lamina.auth.credentials import read_credentials
from lamina.cli.client import DEFAULT_DATA_DIR, DEFAULT_ENDPOINT, DEFAULT_REGION, CliError, render_table
from lamina.config import Settings

_data_dir_option = click.option(
    "--data-dir",
    envvar="LAMINA_DATA_DIR",
    default=DEFAULT_DATA_DIR,
    show_default=True,
    show_envvar=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The server's data dir, where accounts.json lives.",
)


def _root_account_id() -> str:
    # The operator's account id is the server's setting, not stored: the same variable names it here.
    return os.environ.get("LAMINA_ACCOUNT_ID") or Settings.account_id


@click.group()
def accounts() -> None:
    """Create, list and delete accounts: extra credentials, each with its own account id."""


@accounts.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the account (with its secret) as JSON.")
@click.option(
    "--export",
    "export",
    is_flag=True,
    help="Print shell exports of its credentials (AWS_ACCESS_KEY_ID, ...).",
)
@_data_dir_option
def create(name: str, *, as_json: bool, export: bool, data_dir: Path) -> None:
    """Create account NAME; prints its account id, access key id and secret access key."""
    try:
        acc = store.create(data_dir, name, reserved_ids=frozenset({_root_account_id()}))
    except (AccountError, OSError) as exc:
        raise CliError(str(exc)) from None
    if as_json:
        click.echo(json.dumps(acc.to_json(), indent=2))
    elif export:
        click.echo(f"export AWS_ACCESS_KEY_ID={shlex.quote(acc.access_key_id)}")
        click.echo(f"export AWS_SECRET_ACCESS_KEY={shlex.quote(acc.secret_access_key)}")
        click.echo(f"export AWS_DEFAULT_REGION={DEFAULT_REGION}")
        click.echo(
            f"export AWS_ENDPOINT_URL={shlex.quote(os.environ.get('LAMINA_ENDPOINT_URL', DEFAULT_ENDPOINT))}"
        )
    else:
        click.echo(f"Account:           {acc.name}")
        click.echo(f"Account id:        {acc.account_id}")
        click.echo(f"Access key id:     {acc.access_key_id}")
        click.echo(f"Secret access key: {acc.secret_access_key}")
        click.echo(f"(kept in {store.accounts_path(data_dir).resolve()}, readable by you only)", err=True)


@accounts.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print the accounts as JSON (without secrets).")
@_data_dir_option
def list_accounts(*, as_json: bool, data_dir: Path) -> None:
    """List the accounts: the operator's (root) first, then those created, oldest first."""
    try:
        stored = store.load(data_dir)
        root = read_credentials(data_dir)
    except (AccountError, ValueError, OSError) as exc:
        raise CliError(str(exc)) from None
    rows = [
        {
            "Name": store.ROOT_NAME,
            "AccountId": _root_account_id(),
            "AccessKeyId": root.access_key_id
            if root is not None
            else os.environ.get("LAMINA_ACCESS_KEY_ID") or "(none yet: the server makes it at first start)",
            "Created": "",
        }
    ]
    rows += [
        {"Name": a.name, "AccountId": a.account_id, "AccessKeyId": a.access_key_id, "Created": a.created}
        for a in stored
    ]
    if as_json:
        click.echo(json.dumps({"Accounts": rows}, indent=2))
        return
    headers = ["NAME", "ACCOUNT ID", "ACCESS KEY ID", "CREATED"]
    click.echo(
        render_table(headers, [[r["Name"], r["AccountId"], r["AccessKeyId"], r["Created"]] for r in rows])
    )


@accounts.command()
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@_data_dir_option
def delete(name: str, *, yes: bool, data_dir: Path) -> None:
    """Delete account NAME: its key stops working and all its resources are deleted."""
    if not yes and sys.stdin.isatty():
        click.confirm(f"Delete account {name} and every function, layer and log of it?", abort=True, err=True)
    try:
        acc = store.delete(data_dir, name)
    except (AccountError, OSError) as exc:
        raise CliError(str(exc)) from None
    click.echo(
        f"Deleted account {acc.name} ({acc.account_id}); a running server refuses its key within a second "
        "and removes its resources (or the next server start does)",
        err=True,
    )
