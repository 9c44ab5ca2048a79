"""The contract between the invocation service and the execution layer.

The invocation service resolves a function to an ``EnvironmentSpec`` (everything an environment
needs, frozen) and hands an ``InvocationInput`` to ``ExecutionEngine.invoke``; it gets back an
``InvocationOutcome`` whose ``log_events`` already hold Lambda's START/END/REPORT lines.  The
engine owns environments (creation from zygotes, warm reuse, idle reaping, kill on timeout/OOM);
the service owns routing, concurrency and logs storage.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Protocol

from lamina.execution.catalog import RuntimeLaunch


class JsonLogging(NamedTuple):
    """A function's LoggingConfig with ``LogFormat: JSON``: its two levels, as AWS names them."""

    application_level: str  # TRACE DEBUG INFO WARN ERROR FATAL
    system_level: str  # DEBUG INFO WARN


@dataclass(frozen=True, slots=True)
class EnvironmentSpec:
    """What an environment for one function version/configuration needs.

    Two specs that compare equal may share warm environments; any change to code or
    configuration produces a different ``revision`` so old environments never serve it.
    """

    function_name: str
    function_arn: str  # unqualified: arn:aws:lambda:<region>:<account>:function:<name>
    version: str  # "$LATEST" or a published version number
    revision: str  # RevisionId of the configuration + code this spec was built from
    runtime: str  # e.g. "python3.12"
    interpreter: str  # the python whose zygote forks the environment (the runtime's own, for python)
    handler: str  # "module.function" (module may be a dotted or slashed path)
    code_dir: Path  # the unzipped code; environments must not write to it
    memory_mb: int
    timeout_s: int
    region: str
    account_id: str
    log_group: str  # /aws/lambda/<name>, or the function's own LoggingConfig.LogGroup
    environment: Mapping[str, str] = field(default_factory=dict)  # the user's variables
    ephemeral_storage_mb: int = 512
    # The merged, read-only tree of the function's layers, mounted at /opt (None: no layers).
    # Part of the pool key like every field: a layer change never reuses an old environment.
    opt_dir: Path | None = None
    # An exec'd runtime speaking the Runtime API: None for lamina's Python runtime, () for the
    # function's own bootstrap (provided.*), else the argv (node ...).  See catalog.py.
    command: tuple[str, ...] | None = None
    # External extensions: the executables in <opt_dir>/extensions, by name, in start order.
    extensions: tuple[str, ...] = ()
    # LoggingConfig: None for LogFormat Text (lamina's lines as they always were); with JSON,
    # the levels, and Lambda's own lines become AWS's JSON platform records (jsonlogs.py).
    json_logging: JsonLogging | None = None
    # "default": the host's network, as on Lambda; "none": a network namespace with only its own
    # loopback (the function's ``lamina:network`` tag; execution/netns.py, docs/security.md).
    network: str = "default"


class StreamSink(Protocol):
    """Where a streamed response goes while the function produces it."""

    def begin(self, content_type: str) -> None:
        """The stream starts, with the content type the runtime gave it."""

    def put(self, chunk: bytes) -> None: ...


@dataclass(slots=True)  # not frozen: made per invoke; a frozen __init__ costs 2-4x as much
class InvocationInput:
    request_id: str
    payload: bytes
    invoked_function_arn: str  # as the caller named it (qualified if they qualified it)
    client_context: str | None = None  # the decoded JSON text of X-Amz-Client-Context
    cognito_identity: str | None = None  # JSON text, when present
    trace_id: str | None = None
    trace_generated: bool = False  # lamina made trace_id up (the caller sent none)
    # Response streaming: where the function's response bytes go as the runtime produces them
    # (a runtime that streams; the outcome's payload still holds them all).  None: buffered.
    stream: StreamSink | None = None


@dataclass(slots=True)  # not frozen: made per invoke; a frozen __init__ costs 2-4x as much
class LogEvent:
    timestamp_ms: int
    message: str  # one CloudWatch log event (no trailing newline)


@dataclass(slots=True)  # not frozen: made per invoke; a frozen __init__ costs 2-4x as much
class InvocationOutcome:
    payload: bytes  # the function's JSON result, or AWS's error object
    function_error: str | None  # "Unhandled" when the payload is an error object, else None
    log_stream: str  # YYYY/MM/DD/[$LATEST]<32 hex> of the environment that ran it
    log_events: tuple[LogEvent, ...]  # this invocation's lines, START ... REPORT included
    duration_ms: float
    billed_duration_ms: int
    max_memory_used_mb: int
    init_duration_ms: float | None  # set on the invocation that paid a cold start
    # END and REPORT (and Max Memory Used) still to be written: the engine leaves them for after
    # the reply when asked (``PythonEngine.invoke(defer_report=True)``); ``complete`` writes them.
    pending: Callable[[], None] | None = field(default=None, compare=False, repr=False)

    def complete(self) -> InvocationOutcome:
        """With its END and REPORT lines (now, if the engine left them for later)."""
        pending, self.pending = self.pending, None
        if pending is not None:
            pending()
        return self


# Where lines an environment wrote outside any invocation go (log group, log stream, lines).
LogSink = Callable[[str, str, Sequence[LogEvent]], None]


class ProvisionStatus(enum.Enum):
    """Lambda's ProvisionedConcurrencyStatusEnum: where the allocation of a spec's environments is."""

    IN_PROGRESS = "IN_PROGRESS"
    READY = "READY"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class ProvisionedState:
    """What ``ExecutionEngine.provision`` keeps for one spec, as it really is right now."""

    requested: int
    allocated: int  # initialised and alive (idle or busy), including any being retired
    available: int  # initialised, alive and staying: what invocations can count on
    status: ProvisionStatus
    reason: str | None = None  # why, when FAILED


class ExecutionEngine(Protocol):
    """Runs invocations in environments; one invocation per environment at a time."""

    async def start(self) -> None:
        """Start zygotes and background reapers."""

    def set_log_sink(self, sink: LogSink) -> None:
        """Lines written between invocations (extensions, threads, SHUTDOWN) are delivered there."""

    async def invoke(
        self, spec: EnvironmentSpec, inv: InvocationInput, *, defer_report: bool = False
    ) -> InvocationOutcome:
        """Run one invocation in a warm environment for ``spec``, or a new one.

        Never raises for the function's own failures (those come back as an outcome with
        ``function_error``); raises ``lamina.errors.AwsError`` only for platform errors.
        ``defer_report``: the outcome may leave its END and REPORT lines to its ``complete``.
        """

    async def retire(self, function_arn: str) -> None:
        """Stop every on-demand environment of that function (after an update or a delete).

        Provisioned environments are left alone: they belong to published versions, which never
        change, and ``provision(spec, 0)`` is how they go.
        """

    async def provision(self, spec: EnvironmentSpec, count: int) -> ProvisionedState:
        """Keep ``count`` environments for ``spec`` initialised ahead of invocations (0: none).

        Returns once the target is set and any surplus retired (idle first); new environments
        are initialised in the background -- poll ``provisioned`` for READY or FAILED.
        Invocations of ``spec`` take an idle provisioned environment first, then on-demand ones.
        """

    def provisioned(self, spec: EnvironmentSpec) -> ProvisionedState | None:
        """The provisioned state of ``spec`` (None: nothing provisioned for it)."""

    async def close(self) -> None:
        """Kill every environment and zygote; no process is left behind."""

    def available_runtimes(self) -> Mapping[str, str]:
        """Runtime identifier -> what serves it, for the runtimes this host can run."""

    def launches(self) -> Mapping[str, RuntimeLaunch]:
        """Runtime identifier -> how its environments are launched."""
