"""``lamina events NAME``: a function's queued, in-flight, retrying and failed async events.

AWS has no API for this, so it reads lamina's own ``GET /_lamina/functions/{name}/events``,
signed with SigV4 by botocore exactly as the Lambda client signs (same credentials, region and
service), so the server verifies it like any other request.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import click
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from lamina.cli.client import (
    CONTROL_READ_TIMEOUT_S,
    CliError,
    Connection,
    ResolvedCredentials,
    connection_options,
    render_table,
    require_credentials,
)

GROUPS = ("queued", "in_flight", "retrying", "failed")
REASON_MAX = 80  # characters of an error message in the table (--json has it all)


def signed_get(conn: Connection, creds: ResolvedCredentials, path: str) -> dict[str, Any]:
    """GET ``path`` from the server, signed for the ``lambda`` service; the JSON answer."""
    url = conn.endpoint_url + path
    request = AWSRequest(method="GET", url=url)
    signer = Credentials(creds.access_key_id, creds.secret_access_key)
    SigV4Auth(signer, "lambda", conn.region).add_auth(request)
    req = urllib.request.Request(url, headers=dict(request.headers.items()), method="GET")
    try:
        with urllib.request.urlopen(req, timeout=CONTROL_READ_TIMEOUT_S) as resp:
            doc: dict[str, Any] = json.loads(resp.read())
            return doc
    except urllib.error.HTTPError as exc:
        try:
            err = json.loads(exc.read())
        except ValueError:
            err = {}
        code = (exc.headers.get("x-amzn-errortype") or str(exc.code)).split(":")[0]
        message = err.get("Message") or err.get("message") or exc.reason
        raise CliError(f"{code}: {message}") from None
    except (urllib.error.URLError, OSError):
        raise CliError(f"cannot reach lamina at {conn.endpoint_url} — is `lamina serve` running?") from None


def _age(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _reason(kind: str | None, message: str | None) -> str:
    text = ": ".join(part for part in (kind, message) if part)
    text = " ".join(text.split())  # one line per event
    return text if len(text) <= REASON_MAX else text[: REASON_MAX - 1] + "…"


def event_rows(view: Mapping[str, Any], now: float) -> list[tuple[str, ...]]:
    """One row per event: request id, state, attempts, age, and the next attempt / reason."""
    rows: list[tuple[str, ...]] = []
    for group in GROUPS:
        for ev in view.get(group, []):
            attempts = str(ev.get("Attempts", 0))
            age = _age(now - float(ev.get("ReceivedAt", now)))
            if group == "failed":
                why = _reason(ev.get("Condition"), _reason(ev.get("ErrorType"), ev.get("ErrorMessage")))
            else:
                why = _reason(ev.get("LastErrorType"), ev.get("LastErrorMessage"))
                if ev.get("NextAttemptAt") is not None:
                    why = f"next in {_age(float(ev['NextAttemptAt']) - now)}" + (f" ({why})" if why else "")
            rows.append((str(ev.get("RequestId", "")), group.replace("_", "-"), attempts, age, why or "-"))
    return rows


def format_events(view: Mapping[str, Any], now: float) -> str:
    counts = view.get("counts", {})
    summary = ", ".join(f"{counts.get(g, 0)} {g.replace('_', '-')}" for g in GROUPS)
    rows: Sequence[tuple[str, ...]] = event_rows(view, now)
    if not rows:
        return summary
    headers = ("REQUEST ID", "STATE", "ATTEMPTS", "AGE", "NEXT ATTEMPT / REASON")
    return render_table(headers, rows) + "\n" + summary


@click.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the server's answer as JSON.")
@connection_options
def events(name: str, *, as_json: bool, conn: Connection) -> None:
    """Show the queued, in-flight, retrying and failed async events of function NAME."""
    creds = require_credentials(os.environ, conn.data_dir)
    view = signed_get(conn, creds, f"/_lamina/functions/{quote(name, safe='')}/events")
    if as_json:
        click.echo(json.dumps(view, indent=2))
        return
    click.echo(format_events(view, time.time()))
