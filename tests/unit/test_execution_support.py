"""Shared helpers for the execution tests: specs, handler code in tmp dirs, a loop-owning harness.

(No tests here; the other ``test_execution_*`` modules import it -- pytest's default import mode
puts this directory on sys.path.)
"""

from __future__ import annotations

import asyncio
import json
import os
import textwrap
import uuid
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any, TypeVar

from lamina.execution.engine import PythonEngine
from lamina.execution.types import EnvironmentSpec, InvocationInput, InvocationOutcome

T = TypeVar("T")
ACCOUNT = "123456789012"
REGION = "us-east-1"


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:  # the process may go between open and read: ESRCH then, not ENOENT
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def host_pid(engine: PythonEngine, outcome: InvocationOutcome) -> int:
    """The host pid of the live environment that answered ``outcome``: a handler's own
    ``os.getpid()`` is a pid of its environment's pid namespace (2), the same in every one."""
    env_id = outcome.log_stream.rsplit("]", 1)[1]
    pid = engine._envs[env_id].pid
    assert pid is not None
    return pid


# A handler answering with an id of its own environment (process), unique across environments
ENV_ID_CODE = "import os\nENV = os.urandom(8).hex()\ndef handler(event, context):\n    return ENV\n"


def write_code(root: Path, source: str, *, module: str = "app") -> Path:
    code = root / f"code-{uuid.uuid4().hex[:8]}"
    code.mkdir(parents=True)
    (code / f"{module}.py").write_text(textwrap.dedent(source))
    return code


def seen_at(code: Path) -> str:
    """Where an environment sees ``code``: AWS's /var/task in the minimal root (a root engine),
    else (no mount namespace) where it is."""
    return "/var/task" if os.geteuid() == 0 else str(code)


def make_spec(
    engine: PythonEngine,
    code: Path,
    *,
    handler: str = "app.handler",
    runtime: str = "python3.11",
    name: str | None = None,
    memory_mb: int = 128,
    timeout_s: int = 3,
    environment: Mapping[str, str] | None = None,
    version: str = "$LATEST",
) -> EnvironmentSpec:
    name = name or f"fn-{uuid.uuid4().hex[:8]}"
    return EnvironmentSpec(
        function_name=name,
        function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}",
        version=version,
        revision=uuid.uuid4().hex,
        runtime=runtime,
        interpreter=engine.available_runtimes()[runtime],
        handler=handler,
        code_dir=code,
        memory_mb=memory_mb,
        timeout_s=timeout_s,
        region=REGION,
        account_id=ACCOUNT,
        log_group=f"/aws/lambda/{name}",
        environment=dict(environment or {}),
    )


def make_input(spec: EnvironmentSpec, payload: Any = None, **kwargs: Any) -> InvocationInput:
    body = payload if isinstance(payload, bytes) else json.dumps({} if payload is None else payload).encode()
    return InvocationInput(
        request_id=str(uuid.uuid4()), payload=body, invoked_function_arn=spec.function_arn, **kwargs
    )


def messages(outcome: InvocationOutcome) -> list[str]:
    return [e.message for e in outcome.log_events]


def result(outcome: InvocationOutcome) -> Any:
    return json.loads(outcome.payload)


class Harness:
    """Owns an event loop and a started engine across the tests of one module."""

    def __init__(self, runtime_dir: Path, *, uvloop: bool = False, **engine_kwargs: Any) -> None:
        self.loop = asyncio.new_event_loop()
        if uvloop:  # the server runs uvloop: most tests run the engine on it
            import uvloop as uv

            self.loop.close()
            self.loop = uv.new_event_loop()
        self.engine = PythonEngine(runtime_dir=runtime_dir, **engine_kwargs)
        self.run(self.engine.start())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(asyncio.wait_for(coro, 60))

    def invoke(self, spec: EnvironmentSpec, payload: Any = None, **kwargs: Any) -> InvocationOutcome:
        return self.run(self.engine.invoke(spec, make_input(spec, payload, **kwargs)))

    def close(self) -> None:
        try:
            self.run(self.engine.close())
        finally:
            self.loop.close()


async def poll(predicate: Any, *, timeout_s: float = 10.0, interval_s: float = 0.01) -> bool:
    """Poll-with-timeout (never a fixed sleep as synchronisation)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(interval_s)
    return bool(predicate())
