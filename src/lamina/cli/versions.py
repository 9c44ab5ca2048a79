"""The version verbs: ``publish`` (PublishVersion) and ``alias`` (CreateAlias or UpdateAlias).

Like the other client verbs they speak the Lambda API through boto3; the parsing is pure.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import click
from botocore.exceptions import ClientError

from lamina.cli.client import Connection, LambdaClient, connect, connection_options, reporting_errors

_VERSION = re.compile(r"[1-9][0-9]*")


def parse_weights(items: Sequence[str]) -> dict[str, float]:
    """``VERSION=WEIGHT`` strings (``2=0.1``; a ``V`` before the number is allowed) to a dict.

    Raises ValueError naming the bad item: a missing ``=``, a version that is not a published
    version number, or a weight that is not a number from 0 to 1.
    """
    weights: dict[str, float] = {}
    for item in items:
        version, sep, text = item.partition("=")
        version = version.strip()
        if version[:1] in ("v", "V"):
            version = version[1:]
        if not sep or not _VERSION.fullmatch(version):
            raise ValueError(f"expected VERSION=WEIGHT (e.g. 2=0.1), got {item!r}")
        try:
            weight = float(text)
        except ValueError:
            raise ValueError(f"weight of version {version} is not a number: {text!r}") from None
        if not math.isfinite(weight) or not 0.0 <= weight <= 1.0:
            raise ValueError(f"weight of version {version} must be between 0 and 1, got {text!r}")
        weights[version] = weight
    return weights


def _weights_callback(
    _ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]
) -> dict[str, float]:
    try:
        return parse_weights(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def alias_params(
    name: str, alias: str, version: str, weights: dict[str, float], description: str | None
) -> dict[str, Any]:
    """CreateAlias/UpdateAlias arguments; the routing is always set, so no --weight clears it."""
    params: dict[str, Any] = {
        "FunctionName": name,
        "Name": alias,
        "FunctionVersion": version,
        "RoutingConfig": {"AdditionalVersionWeights": weights},
    }
    if description is not None:
        params["Description"] = description
    return params


def put_alias(client: LambdaClient, params: dict[str, Any]) -> str:
    """Update the alias if it exists, else create it; returns its ARN."""
    try:
        client.get_alias(FunctionName=params["FunctionName"], Name=params["Name"])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise
        return str(client.create_alias(**params)["AliasArn"])
    return str(client.update_alias(**params)["AliasArn"])


def publish_version(client: LambdaClient, name: str, description: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {"FunctionName": name}
    if description is not None:
        params["Description"] = description
    out: dict[str, Any] = client.publish_version(**params)
    return out


@click.command()
@click.argument("name")
@click.option("--description", help="Description of the version.")
@connection_options
def publish(name: str, *, description: str | None, conn: Connection) -> None:
    """Publish $LATEST of function NAME as a new version; prints the version number."""
    with reporting_errors(conn.endpoint_url):
        out = publish_version(connect(conn), name, description)
    click.echo(f"Published {out['FunctionArn']}", err=True)
    click.echo(out["Version"])


@click.command()
@click.argument("name")
@click.argument("alias_name", metavar="ALIAS")
@click.argument("version")
@click.option(
    "--weight",
    "weights",
    multiple=True,
    metavar="VERSION=WEIGHT",
    callback=_weights_callback,
    help="Send this share (0-1) of invokes to another version, e.g. --weight 2=0.1.",
)
@click.option("--description", help="Description of the alias.")
@connection_options
def alias(
    name: str,
    alias_name: str,
    version: str,
    *,
    weights: dict[str, float],
    description: str | None,
    conn: Connection,
) -> None:
    """Point alias ALIAS of function NAME at VERSION (creating the alias if needed); prints its ARN."""
    params = alias_params(name, alias_name, version, weights, description)
    with reporting_errors(conn.endpoint_url):
        arn = put_alias(connect(conn), params)
    click.echo(arn)


def register_version_commands(group: click.Group) -> None:
    for command in (publish, alias):
        group.add_command(command)
