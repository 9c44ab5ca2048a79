"""The client verbs (``deploy``, ``invoke``, ``ls``, ``rm``, ``credentials``; ``publish`` and
``alias`` live in lamina.cli.versions, ``events`` in lamina.cli.events).

They speak to ``lamina serve`` exactly as any AWS SDK would: a boto3 ``lambda`` client signed
with SigV4, so the CLI exercises the same API surface users' own tools do.  The decisions are
pure functions (credential resolution, request building, rendering); the click commands only
wire them to the network and the terminal.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import os
import re
import shlex
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeAlias

import botocore.session
import click
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ReadTimeoutError,
    WaiterError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from lamina.auth.credentials import credentials_path, read_credentials
from lamina.cli.packaging import Package, PackagingError, human_size, package_directory
from lamina.config import Settings

# botocore builds clients at runtime; there are no static types for them here.
LambdaClient: TypeAlias = Any

DEFAULT_ENDPOINT = "http://127.0.0.1:9000"
DEFAULT_REGION = "us-east-1"
DEFAULT_DATA_DIR = "./.lamina"
DEFAULT_RUNTIME = "python3.12"
DEFAULT_HANDLER = "app.handler"
DEFAULT_MEMORY_MB = 128
DEFAULT_TIMEOUT_S = 3
# Lambda's longest timeout plus slack: a synchronous invoke legitimately holds the socket that long.
INVOKE_READ_TIMEOUT_S = 900 + 60
CONTROL_READ_TIMEOUT_S = 60
ENV_KEY_PATTERN = re.compile(r"[a-zA-Z][a-zA-Z0-9_]+")


class CliError(click.ClickException):
    """A failure reported as one ``error: ...`` line on stderr, exit status 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


# --- connection and credentials ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Connection:
    endpoint_url: str
    region: str
    data_dir: Path


@dataclass(frozen=True, slots=True)
class ResolvedCredentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    # Where they came from, for `lamina credentials`: a file path or the variable names.
    source: str = ""


def read_credentials_file(data_dir: Path) -> ResolvedCredentials | None:
    """The pair the server wrote on first start, or None when there is no such file."""
    try:
        creds = read_credentials(data_dir)
    except (ValueError, OSError) as exc:
        # Both name the file and never its content (the secret).
        raise CliError(str(exc)) from None
    if creds is None:
        return None
    return ResolvedCredentials(creds.access_key_id, creds.secret_access_key, str(credentials_path(data_dir)))


def resolve_credentials(env: Mapping[str, str], data_dir: Path) -> ResolvedCredentials | None:
    """First complete source wins: LAMINA_* variables, the server's file, then AWS_* variables."""
    lamina_key, lamina_secret = env.get("LAMINA_ACCESS_KEY_ID"), env.get("LAMINA_SECRET_ACCESS_KEY")
    if lamina_key and lamina_secret:
        return ResolvedCredentials(
            lamina_key, lamina_secret, "environment (LAMINA_ACCESS_KEY_ID, LAMINA_SECRET_ACCESS_KEY)"
        )
    if lamina_key or lamina_secret:
        # The server refuses half a pair too; silently using other credentials would only confuse.
        given = "LAMINA_ACCESS_KEY_ID" if lamina_key else "LAMINA_SECRET_ACCESS_KEY"
        raise CliError(f"{given} is set but its partner is not: set both LAMINA_* variables, or neither")
    from_file = read_credentials_file(data_dir)
    if from_file is not None:
        return from_file
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        return ResolvedCredentials(
            env["AWS_ACCESS_KEY_ID"],
            env["AWS_SECRET_ACCESS_KEY"],
            "environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)",
        )
    return None


def require_credentials(env: Mapping[str, str], data_dir: Path) -> ResolvedCredentials:
    creds = resolve_credentials(env, data_dir)
    if creds is None:
        raise CliError(
            f"no credentials found: {credentials_path(data_dir)} does not exist. Start the server "
            f"(`lamina serve --data-dir {data_dir}`) or pass the --data-dir it uses, or set "
            "LAMINA_ACCESS_KEY_ID and LAMINA_SECRET_ACCESS_KEY."
        )
    return creds


def make_client(
    conn: Connection,
    creds: ResolvedCredentials,
    *,
    read_timeout: int = CONTROL_READ_TIMEOUT_S,
    service: str = "lambda",
) -> Any:
    config = Config(
        connect_timeout=5,
        read_timeout=read_timeout,
        # One attempt: the server is local, and a retried Invoke would run the function twice.
        retries={"total_max_attempts": 1, "mode": "standard"},
        user_agent_extra="lamina-cli",
    )
    try:
        return botocore.session.Session().create_client(
            service,
            endpoint_url=conn.endpoint_url,
            region_name=conn.region,
            aws_access_key_id=creds.access_key_id,
            aws_secret_access_key=creds.secret_access_key,
            config=config,
        )
    except (ValueError, BotoCoreError) as exc:
        raise CliError(f"cannot set up a client for {conn.endpoint_url}: {exc}") from None


def waiter_failure(exc: WaiterError) -> str:
    """The most useful sentence a failed waiter carries: the server's reason, if it gave one."""
    resp: Mapping[str, Any] = exc.last_response or {}
    error = resp.get("Error")
    if isinstance(error, Mapping):
        return f"{error.get('Code', 'Error')}: {error.get('Message', '')}"
    config = resp.get("Configuration") or {}
    if str(exc.kwargs.get("reason", "")).startswith("Max attempts exceeded"):
        state = config.get("LastUpdateStatus") or config.get("State") or "unknown"
        return f"gave up waiting for the function to be ready (last status: {state})"
    reason = config.get("StateReason") or config.get("LastUpdateStatusReason")
    if reason:
        code = config.get("StateReasonCode") or config.get("LastUpdateStatusReasonCode") or "Failed"
        return f"{code}: {reason}"
    return str(exc)


@contextmanager
def reporting_errors(endpoint_url: str) -> Iterator[None]:
    """Turn what botocore and packaging raise into one-line errors instead of tracebacks."""
    try:
        yield
    except ClientError as exc:
        err = exc.response.get("Error", {})
        raise CliError(f"{err.get('Code', 'Error')}: {err.get('Message', '')}") from None
    except BotoConnectionError:  # refused, unresolvable, or connect timeout
        raise CliError(f"cannot reach lamina at {endpoint_url} — is `lamina serve` running?") from None
    except (ReadTimeoutError, ConnectionClosedError) as exc:
        raise CliError(f"lost the connection to lamina at {endpoint_url}: {exc}") from None
    except WaiterError as exc:
        raise CliError(waiter_failure(exc)) from None
    except PackagingError as exc:
        raise CliError(str(exc)) from None
    except BotoCoreError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:  # e.g. an unreadable file while packaging
        raise CliError(str(exc)) from None


def connection_options(f: Callable[..., None]) -> Callable[..., None]:
    """Add --endpoint-url/--region/--data-dir and hand the command one ``conn: Connection``.

    click resolves the environment-variable defaults when the command runs, not at import.
    """

    @functools.wraps(f)
    def wrapper(*args: Any, endpoint_url: str, region: str, data_dir: str, **kwargs: Any) -> None:
        conn = Connection(endpoint_url.rstrip("/"), region, Path(data_dir))
        f(*args, conn=conn, **kwargs)

    options = (
        click.option(
            "--endpoint-url",
            envvar="LAMINA_ENDPOINT_URL",
            default=DEFAULT_ENDPOINT,
            show_default=True,
            show_envvar=True,
            help="URL of the lamina server.",
        ),
        click.option(
            "--region",
            envvar=["AWS_REGION", "AWS_DEFAULT_REGION"],
            default=DEFAULT_REGION,
            show_default=True,
            show_envvar=True,
            help="Region to sign requests for.",
        ),
        click.option(
            "--data-dir",
            envvar="LAMINA_DATA_DIR",
            default=DEFAULT_DATA_DIR,
            show_default=True,
            show_envvar=True,
            type=click.Path(file_okay=False),
            help="The server's data dir, where it keeps credentials.json.",
        ),
    )
    decorated: Callable[..., None] = wrapper
    for option in reversed(options):
        decorated = option(decorated)
    return decorated


def connect(conn: Connection, *, read_timeout: int = CONTROL_READ_TIMEOUT_S) -> LambdaClient:
    client: LambdaClient = make_client(
        conn, require_credentials(os.environ, conn.data_dir), read_timeout=read_timeout
    )
    return client


# --- deploy -----------------------------------------------------------------------------------


def parse_env_pairs(pairs: Sequence[str]) -> dict[str, str]:
    """``K=V`` strings to a dict (a later K wins); raises ValueError naming the bad item."""
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"expected KEY=VALUE, got {pair!r}")
        # Lambda's own rule, checked here so a bad name fails before packaging and uploading.
        if not ENV_KEY_PATTERN.fullmatch(key):
            raise ValueError(f"{key!r} is not a valid variable name (a letter, then letters, digits or _)")
        env[key] = value
    return env


def _env_callback(_ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]) -> dict[str, str]:
    try:
        return parse_env_pairs(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@dataclass(frozen=True, slots=True)
class DeploySpec:
    """What the user asked for; None means "not given" (create fills defaults, update keeps)."""

    name: str
    runtime: str | None = None
    handler: str | None = None
    memory_mb: int | None = None
    timeout_s: int | None = None
    description: str | None = None
    role: str | None = None
    # None: --env not given, keep the function's variables; a dict replaces them all.
    environment: dict[str, str] | None = None
    # None: --layer not given, keep the function's layers; a tuple replaces them.
    layers: tuple[str, ...] | None = None


def default_role(account_id: str) -> str:
    return f"arn:aws:iam::{account_id}:role/lamina"


def create_params(spec: DeploySpec, zip_bytes: bytes, *, account_id: str) -> dict[str, Any]:
    params: dict[str, Any] = {
        "FunctionName": spec.name,
        "Runtime": spec.runtime or DEFAULT_RUNTIME,
        "Handler": spec.handler or DEFAULT_HANDLER,
        "Role": spec.role or default_role(account_id),
        "MemorySize": spec.memory_mb if spec.memory_mb is not None else DEFAULT_MEMORY_MB,
        "Timeout": spec.timeout_s if spec.timeout_s is not None else DEFAULT_TIMEOUT_S,
        "PackageType": "Zip",
        "Code": {"ZipFile": zip_bytes},
    }
    if spec.description is not None:
        params["Description"] = spec.description
    if spec.environment is not None:
        params["Environment"] = {"Variables": spec.environment}
    if spec.layers is not None:
        params["Layers"] = list(spec.layers)
    return params


def config_update_params(spec: DeploySpec) -> dict[str, Any] | None:
    """UpdateFunctionConfiguration arguments for only what was given; None when nothing was."""
    given: dict[str, Any] = {
        key: value
        for key, value in (
            ("Runtime", spec.runtime),
            ("Handler", spec.handler),
            ("MemorySize", spec.memory_mb),
            ("Timeout", spec.timeout_s),
            ("Description", spec.description),
            ("Role", spec.role),
        )
        if value is not None
    }
    if spec.environment is not None:
        given["Environment"] = {"Variables": spec.environment}
    if spec.layers is not None:
        given["Layers"] = list(spec.layers)
    return {"FunctionName": spec.name, **given} if given else None


def function_exists(client: LambdaClient, name: str) -> dict[str, Any] | None:
    """The function's configuration, or None when GetFunction says it does not exist."""
    try:
        config: dict[str, Any] = client.get_function(FunctionName=name)["Configuration"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return None
        raise
    return config


def deploy_function(
    client: LambdaClient,
    spec: DeploySpec,
    package: Package,
    *,
    exists: bool,
    account_id: str,
    progress: Callable[[str], None],
) -> str:
    """Create or update the function and wait until it can be invoked; returns its ARN."""
    if not exists:
        progress(f"Creating {spec.name}…")
        arn: str = client.create_function(**create_params(spec, package.data, account_id=account_id))[
            "FunctionArn"
        ]
        client.get_waiter("function_active_v2").wait(FunctionName=spec.name)
        progress(f"Active: {arn}")
        return arn
    progress(f"Updating code of {spec.name}…")
    arn = client.update_function_code(FunctionName=spec.name, ZipFile=package.data)["FunctionArn"]
    # A configuration update is refused while the code update is still in progress.
    client.get_waiter("function_updated_v2").wait(FunctionName=spec.name)
    update = config_update_params(spec)
    if update is not None:
        progress(f"Updating configuration of {spec.name}…")
        arn = client.update_function_configuration(**update)["FunctionArn"]
        client.get_waiter("function_updated_v2").wait(FunctionName=spec.name)
    progress(f"Updated: {arn}")
    return arn


def runtime_mismatch_note(runtime: str | None) -> str | None:
    """Vendoring uses lamina's own interpreter; say so when the function runs another one."""
    here = f"python{sys.version_info.major}.{sys.version_info.minor}"
    if runtime is None or runtime == here:
        return None
    return (
        f"note: requirements are installed with {here} for runtime {runtime}; "
        "packages with compiled extensions may not load"
    )


def _progress(message: str) -> None:
    click.echo(message, err=True)


@click.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--name", "-n", required=True, help="Function name.")
@click.option("--runtime", help=f"Runtime identifier.  [default on create: {DEFAULT_RUNTIME}]")
@click.option("--handler", help=f"module.function to call.  [default on create: {DEFAULT_HANDLER}]")
@click.option(
    "--memory",
    type=click.IntRange(128, 10240),
    help=f"Memory in MB.  [default on create: {DEFAULT_MEMORY_MB}]",
)
@click.option(
    "--timeout",
    type=click.IntRange(1, 900),
    help=f"Timeout in seconds.  [default on create: {DEFAULT_TIMEOUT_S}]",
)
@click.option(
    "--env",
    "environment",
    multiple=True,
    metavar="KEY=VALUE",
    callback=_env_callback,
    help="Environment variable (repeatable).  Given on update, replaces all of the function's variables.",
)
@click.option("--description", help="Function description.")
@click.option("--role", help="Execution role ARN.  [default on create: arn:aws:iam::<account>:role/lamina]")
@click.option(
    "--layer",
    "layers",
    multiple=True,
    metavar="ARN",
    help="Layer version ARN (repeatable, in order).  Given on update, replaces the function's layers.",
)
@click.option("--publish", is_flag=True, help="Publish a version after deploying; prints its number.")
@connection_options
def deploy(
    directory: Path,
    *,
    name: str,
    runtime: str | None,
    handler: str | None,
    memory: int | None,
    timeout: int | None,
    environment: dict[str, str],
    description: str | None,
    role: str | None,
    layers: tuple[str, ...],
    publish: bool,
    conn: Connection,
) -> None:
    """Package DIRECTORY (vendoring its requirements.txt) and create or update function NAME."""
    spec = DeploySpec(
        name=name,
        runtime=runtime,
        handler=handler,
        memory_mb=memory,
        timeout_s=timeout,
        description=description,
        role=role,
        environment=environment or None,
        layers=layers or None,
    )
    account_id = os.environ.get("LAMINA_ACCOUNT_ID") or Settings.account_id
    with reporting_errors(conn.endpoint_url):
        client = connect(conn)
        existing = function_exists(client, name)
        if (directory / "requirements.txt").is_file():
            note = runtime_mismatch_note(runtime or (existing or {}).get("Runtime") or DEFAULT_RUNTIME)
            if note:
                _progress(note)
        with tempfile.TemporaryDirectory(prefix="lamina-build-") as build_dir:
            package = package_directory(
                directory, Path(build_dir), exclude=[conn.data_dir], progress=_progress
            )
        _progress(f"Uploading {human_size(len(package.data))} (CodeSha256 {package.code_sha256})…")
        arn = deploy_function(
            client,
            spec,
            package,
            exists=existing is not None,
            account_id=account_id,
            progress=_progress,
        )
        if publish:
            published = client.publish_version(FunctionName=name)
            _progress(f"Published {published['FunctionArn']}")
            arn = published["Version"]  # what a script wants next: the version number
    click.echo(arn)


# --- invoke -----------------------------------------------------------------------------------


def read_payload(payload: str, stdin: Callable[[], str]) -> bytes:
    """The request payload: JSON text, or ``-`` for stdin; raises ValueError when not JSON."""
    text = stdin() if payload == "-" else payload
    try:
        json.loads(text)
    except ValueError as exc:
        raise ValueError(f"payload is not JSON: {exc}") from None
    return text.encode("utf-8")


def render_payload(data: bytes) -> str | bytes:
    """Pretty JSON when the response is JSON; otherwise the bytes as the function sent them."""
    try:
        doc = json.loads(data)
    except ValueError:
        return data
    return json.dumps(doc, indent=2, ensure_ascii=False)


def decode_log_tail(log_result: str) -> str:
    try:
        return base64.b64decode(log_result).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return ""


@click.command()
@click.argument("name")
@click.argument("payload", default="{}", required=False)
@click.option("--logs", is_flag=True, help="Print the tail of the invocation's log to stderr.")
@click.option("--qualifier", "-q", help="Version or alias to invoke.")
@click.option("--async", "is_async", is_flag=True, help="Queue the event (InvocationType=Event).")
@connection_options
def invoke(
    name: str, payload: str, *, logs: bool, qualifier: str | None, is_async: bool, conn: Connection
) -> None:
    """Invoke function NAME with PAYLOAD (JSON text, default {}; - reads stdin)."""
    if logs and is_async:
        raise click.UsageError("--logs needs a synchronous invoke; drop --async")
    try:
        body = read_payload(payload, lambda: sys.stdin.read())
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="PAYLOAD") from None
    params: dict[str, Any] = {
        "FunctionName": name,
        "Payload": body,
        "InvocationType": "Event" if is_async else "RequestResponse",
    }
    if logs:
        params["LogType"] = "Tail"
    if qualifier:
        params["Qualifier"] = qualifier
    with reporting_errors(conn.endpoint_url):
        resp = connect(conn, read_timeout=INVOKE_READ_TIMEOUT_S).invoke(**params)
        data: bytes = resp["Payload"].read() if "Payload" in resp else b""
    if is_async:
        click.echo(f"{resp['StatusCode']} Accepted")
        return
    if logs and resp.get("LogResult"):
        tail = decode_log_tail(resp["LogResult"])
        click.echo(tail, err=True, nl=not tail.endswith("\n"))
    if data:
        click.echo(render_payload(data))
    if resp.get("FunctionError"):
        raise CliError(f"function {name} failed ({resp['FunctionError']})")


# --- ls ---------------------------------------------------------------------------------------


def format_last_modified(value: str) -> str:
    """Lambda's ``2024-05-01T12:00:00.000+0000`` as ``2024-05-01 12:00:00``; other text as is."""
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z").strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return value


def format_table(functions: Sequence[Mapping[str, Any]]) -> str:
    headers = ("NAME", "RUNTIME", "MEMORY", "TIMEOUT", "LAST MODIFIED", "STATE")
    rows = [
        (
            str(fn.get("FunctionName", "")),
            str(fn.get("Runtime") or "-"),
            f"{fn['MemorySize']}MB" if "MemorySize" in fn else "-",
            f"{fn['Timeout']}s" if "Timeout" in fn else "-",
            format_last_modified(str(fn.get("LastModified", "-"))),
            str(fn.get("State") or "-"),
        )
        for fn in sorted(functions, key=lambda fn: str(fn.get("FunctionName", "")))
    ]
    return render_table(headers, rows)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns two spaces apart, a header line first."""
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    )


def list_functions(client: LambdaClient) -> list[dict[str, Any]]:
    functions: list[dict[str, Any]] = []
    for page in client.get_paginator("list_functions").paginate():
        functions.extend(page.get("Functions", []))
    return functions


def with_states(client: LambdaClient, functions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """ListFunctions may omit State (AWS's does); fetch it per function when it is missing."""
    out = []
    for fn in functions:
        if "State" not in fn:
            try:
                state = client.get_function_configuration(FunctionName=fn["FunctionName"]).get("State")
            except ClientError:
                state = None  # deleted meanwhile: show "-" rather than fail the whole listing
            fn = {**fn, "State": state}
        out.append(fn)
    return out


@click.command(name="ls")
@click.option("--json", "as_json", is_flag=True, help="Print ListFunctions' configurations as JSON.")
@connection_options
def ls(*, as_json: bool, conn: Connection) -> None:
    """List functions."""
    with reporting_errors(conn.endpoint_url):
        client = connect(conn)
        functions = list_functions(client)
        if as_json:
            click.echo(json.dumps(functions, indent=2, default=str))
            return
        functions = with_states(client, functions)
    if not functions:
        click.echo("no functions", err=True)
        return
    click.echo(format_table(functions))


# --- rm ---------------------------------------------------------------------------------------


@click.command(name="rm")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@connection_options
def rm(name: str, *, yes: bool, conn: Connection) -> None:
    """Delete function NAME."""
    with reporting_errors(conn.endpoint_url):
        client = connect(conn)
        if not yes and sys.stdin.isatty():
            click.confirm(f"Delete function {name}?", abort=True, err=True)
        client.delete_function(FunctionName=name)
    click.echo(f"Deleted {name}", err=True)


# --- credentials ------------------------------------------------------------------------------


def export_lines(creds: ResolvedCredentials, conn: Connection) -> list[str]:
    return [
        f"export AWS_ACCESS_KEY_ID={shlex.quote(creds.access_key_id)}",
        f"export AWS_SECRET_ACCESS_KEY={shlex.quote(creds.secret_access_key)}",
        f"export AWS_DEFAULT_REGION={shlex.quote(conn.region)}",
        f"export AWS_ENDPOINT_URL={shlex.quote(conn.endpoint_url)}",
    ]


@click.command()
@click.option(
    "--export",
    "export",
    is_flag=True,
    help='Print shell exports for `eval "$(lamina credentials --export)"`.',
)
@connection_options
def credentials(*, export: bool, conn: Connection) -> None:
    """Show the access key id in use (the secret only with --export)."""
    creds = require_credentials(os.environ, conn.data_dir)
    if export:
        click.echo("\n".join(export_lines(creds, conn)))
        return
    click.echo(f"Access key id:    {creds.access_key_id}")
    click.echo(f"Credentials file: {credentials_path(conn.data_dir).resolve()}")
    if creds.source != str(credentials_path(conn.data_dir)):
        click.echo(f"In use from:      {creds.source}")


def register_client_commands(group: click.Group) -> None:
    from lamina.cli.events import events  # it imports this module
    from lamina.cli.logs import logs  # it imports this module
    from lamina.cli.runtimes import runtimes
    from lamina.cli.schedules import schedules
    from lamina.cli.sources import sources
    from lamina.cli.versions import register_version_commands  # it imports this module

    for command in (deploy, invoke, ls, rm, credentials, runtimes, events, logs, sources, schedules):
        group.add_command(command)
    register_version_commands(group)
