"""Settings, built once from flags and the environment and passed in explicitly.

Nothing reads the environment at import time; ``Settings.from_env`` is called by the CLI.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lamina.execution.placement import check_setting, plan
from lamina.telemetry.tracing import TracingSettings


def parse_port_range(text: str) -> tuple[int, int] | None:
    """``LAMINA_URL_PORTS``: ``first-last`` (inclusive), e.g. "9100-9199"; empty: any free port."""
    if not text.strip():
        return None
    first, sep, last = text.partition("-")
    try:
        lo, hi = int(first), int(last if sep else first)
    except ValueError:
        raise ValueError(f"function URL ports must be 'first-last', got {text!r}") from None
    if not 0 < lo <= hi < 65536:
        raise ValueError(f"function URL ports must be 'first-last' within 1-65535, got {text!r}")
    return lo, hi


def parse_delays(text: str) -> tuple[float, ...]:
    """``LAMINA_ASYNC_RETRY_DELAYS``: comma-separated seconds, e.g. "60,120"."""
    delays = tuple(float(part) for part in text.split(",") if part.strip())
    if not delays or any(d < 0 for d in delays):
        raise ValueError(f"async retry delays must be non-negative seconds, got {text!r}")
    return delays


# boto3 service name -> the standard variable that overrides its endpoint.
_ENDPOINT_VARIABLES = {
    "sqs": "AWS_ENDPOINT_URL_SQS",
    "sns": "AWS_ENDPOINT_URL_SNS",
    "events": "AWS_ENDPOINT_URL_EVENTS",
    "s3": "AWS_ENDPOINT_URL_S3",
    "kinesis": "AWS_ENDPOINT_URL_KINESIS",
    "dynamodbstreams": "AWS_ENDPOINT_URL_DYNAMODB_STREAMS",
}


def aws_endpoints(env: Mapping[str, str]) -> dict[str, str]:
    """Endpoints of the services lamina calls (destinations, event sources): the service's own
    variable, else AWS_ENDPOINT_URL, else none (AWS).  DynamoDB Streams also takes DynamoDB's own
    variable: the compatible servers (moto, LocalStack, DynamoDB Local) serve both on one port."""
    out = {}
    for service, variable in _ENDPOINT_VARIABLES.items():
        url = env.get(variable) or env.get("AWS_ENDPOINT_URL")
        if service == "dynamodbstreams":
            url = env.get(variable) or env.get("AWS_ENDPOINT_URL_DYNAMODB") or env.get("AWS_ENDPOINT_URL")
        if url:
            out[service] = url
    return out


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 9000
    account_id: str = "123456789012"
    default_region: str = "us-east-1"
    # Credentials; None means "load or generate under data_dir".
    access_key_id: str | None = None
    secret_access_key: str | None = None
    # How long an idle warm environment is kept before it is reclaimed.
    idle_timeout_s: float = 300.0
    # Interpreters by runtime identifier override discovery (e.g. {"python3.12": "/usr/bin/python3.12",
    # "nodejs20.x": "/usr/bin/node"}).
    interpreters: Mapping[str, str] = field(default_factory=dict)
    log_level: str = "info"
    # The account's concurrent executions per region (AWS's default quota); reservations come out of it.
    account_concurrency: int = 1000
    # Environments are admitted while the sum of their MemorySize stays within host memory x this
    # ratio; 1.0 never overcommits, 2.0 (the default) bets that functions stay below half their
    # MemorySize (docs/execution.md, "Host capacity").
    overcommit_ratio: float = 2.0
    # Modules every Python zygote imports before it forks environments (e.g. ("boto3",)), and
    # extra dirs to find them in before each interpreter's site-packages.
    preload: tuple[str, ...] = ()
    preload_paths: tuple[Path, ...] = ()
    # Seconds before the 1st, 2nd ... retry of an async event whose function failed (AWS: 1 and 2 min).
    async_retry_delays: tuple[float, ...] = (60.0, 120.0)
    # Endpoints of the services destinations and dead-letter queues are delivered to, by boto3
    # service name ("sqs", "sns", "events", "s3"), from AWS's standard AWS_ENDPOINT_URL_<SERVICE> (or
    # AWS_ENDPOINT_URL) variables; a service not named here is real AWS.
    aws_endpoints: Mapping[str, str] = field(default_factory=dict)
    # OpenTelemetry export of invoke spans (OTEL_EXPORTER_OTLP_* variables); None: off.
    tracing: TracingSettings | None = None
    # The bearer token of GET /metrics (docs/metrics.md); None: the one in <data-dir>/metrics-token,
    # generated on first start.  Never in a repr (settings get logged).
    metrics_token: str | None = field(default=None, repr=False)
    # Log store bounds per log group, i.e. per function (docs/logs.md): retention in days for the
    # groups lamina creates (None: kept until deleted, as AWS), the most it holds (its oldest
    # events go first), and the bytes per second it takes in (0: no cap; over it, lines are dropped
    # and counted).
    log_retention_days: int | None = None
    log_max_mb: float = 256.0
    log_rate_kb_s: float = 8192.0
    # Function URLs (docs/urls.md): the host their URLs name (LAMINA_URL_HOST; default the
    # --host, 127.0.0.1 for a wildcard address) and the ports they may take (LAMINA_URL_PORTS,
    # "first-last"; default any free port).
    url_host: str | None = None
    url_ports: tuple[int, int] | None = None
    # LAMINA_URL_REQUIRE_INVOKE_FUNCTION=1: a URL call also needs lambda:InvokeFunction (granted
    # with InvokedViaFunctionUrl), as AWS requires for new URLs since October 2025.
    url_require_invoke_function: bool = False
    # LAMINA_ISOLATION=off: environments run as plain forked processes -- no namespaces, no
    # minimal root, no uid of their own, no cgroups (memory by RSS polling).  For measuring what
    # the sandbox costs (bench/isolation.py) and debugging; never to host untrusted code.
    isolation: bool = True
    # LAMINA_LOOP_CPU (execution/placement.py): "auto" keeps one CPU free of environments for the
    # event loop when the server may run on two or more; "off" lets environments use them all;
    # a number keeps that CPU.
    loop_cpu: str = "auto"

    @property
    def function_url_host(self) -> str:
        if self.url_host:
            return self.url_host
        return "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host

    @property
    def db_path(self) -> Path:
        return self.data_dir / "lamina.sqlite3"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def code_dir(self) -> Path:
        return self.data_dir / "code"

    @property
    def runtime_dir(self) -> Path:
        """Per-server-run scratch: environment /tmp dirs, sockets. Wiped at start."""
        return self.data_dir / "run"

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from ``LAMINA_*`` variables, then explicit overrides (CLI flags) on top."""
        e = os.environ if env is None else env
        values: dict[str, object] = {
            "data_dir": Path(e.get("LAMINA_DATA_DIR", ".lamina")),
            "account_id": e.get("LAMINA_ACCOUNT_ID", cls.account_id),
            "default_region": e.get("LAMINA_REGION", cls.default_region),
            "access_key_id": e.get("LAMINA_ACCESS_KEY_ID") or None,
            "secret_access_key": e.get("LAMINA_SECRET_ACCESS_KEY") or None,
            "idle_timeout_s": float(e.get("LAMINA_IDLE_TIMEOUT", cls.idle_timeout_s)),
            "account_concurrency": int(e.get("LAMINA_ACCOUNT_CONCURRENCY", cls.account_concurrency)),
            "overcommit_ratio": float(e.get("LAMINA_OVERCOMMIT_RATIO", cls.overcommit_ratio)),
            "preload": tuple(n.strip() for n in e.get("LAMINA_PRELOAD", "").split(",") if n.strip()),
            "preload_paths": tuple(Path(p) for p in e.get("LAMINA_PRELOAD_PATH", "").split(os.pathsep) if p),
            "async_retry_delays": parse_delays(e.get("LAMINA_ASYNC_RETRY_DELAYS", "60,120")),
            "metrics_token": e.get("LAMINA_METRICS_TOKEN") or None,
            "log_retention_days": _optional_int(e.get("LAMINA_LOG_RETENTION_DAYS")),
            "log_max_mb": float(e.get("LAMINA_LOG_MAX_MB", cls.log_max_mb)),
            "log_rate_kb_s": float(e.get("LAMINA_LOG_RATE_KB", cls.log_rate_kb_s)),
            "url_host": e.get("LAMINA_URL_HOST") or None,
            "url_ports": parse_port_range(e.get("LAMINA_URL_PORTS", "")),
            "url_require_invoke_function": e.get("LAMINA_URL_REQUIRE_INVOKE_FUNCTION", "") in ("1", "true"),
            "isolation": e.get("LAMINA_ISOLATION", "on").lower() not in ("off", "0", "false", "no"),
            "loop_cpu": check_setting(e.get("LAMINA_LOOP_CPU", cls.loop_cpu)),
        }
        values["aws_endpoints"] = aws_endpoints(e)
        values["tracing"] = TracingSettings.from_env(e)
        interp = {}
        for key, val in e.items():
            # LAMINA_PYTHON_3_12=/usr/bin/python3.12 pins the interpreter for python3.12
            if key.startswith("LAMINA_PYTHON_") and val:
                interp["python" + key[len("LAMINA_PYTHON_") :].replace("_", ".")] = val
            # LAMINA_NODEJS_20_X=/usr/local/bin/node20 pins the node for nodejs20.x
            elif key.startswith("LAMINA_NODEJS_") and val:
                interp["nodejs" + key[len("LAMINA_NODEJS_") :].lower().replace("_", ".")] = val
        values["interpreters"] = interp
        values.update({k: v for k, v in overrides.items() if v is not None})
        values["data_dir"] = Path(str(values["data_dir"])).resolve()
        settings = cls(**values)  # type: ignore[arg-type]
        if not (len(settings.account_id) == 12 and settings.account_id.isdigit()):
            raise ValueError(f"account id must be 12 digits, got {settings.account_id!r}")
        if not settings.overcommit_ratio > 0:
            raise ValueError(f"overcommit ratio must be positive, got {settings.overcommit_ratio}")
        _check_log_settings(settings)
        plan(settings.loop_cpu, os.sched_getaffinity(0))  # a CPU this server may not run on: said now
        if settings.account_concurrency < 1:
            raise ValueError(f"account concurrency must be at least 1, got {settings.account_concurrency}")
        return settings


def _check_log_settings(settings: Settings) -> None:
    from lamina.telemetry.logmaint import RETENTION_DAYS  # SQLAlchemy: only when settings are built

    days = settings.log_retention_days
    if days is not None and days not in RETENTION_DAYS:
        raise ValueError(f"log retention must be one of CloudWatch's periods {RETENTION_DAYS}, got {days}")
    if settings.log_max_mb < 0 or settings.log_rate_kb_s < 0:
        raise ValueError("log size and rate limits must be non-negative (0: unbounded)")


def _optional_int(text: str | None) -> int | None:
    return int(text) if text and text.strip() else None
