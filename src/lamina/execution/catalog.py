"""Which runtimes this host can run, and how an environment of each is launched.

Three families, one launch path: every environment process is forked from a Python zygote
(``zygote.py``) and set up in its sandbox there (cgroup, namespaces, /tmp, /opt, log pipe).
- ``python3.x``: lamina's own Python runtime keeps running in that process (the fast path:
  no exec, the private channel instead of HTTP).
- ``nodejs<N>.x``: the process execs the host's node of that major on lamina's Node runtime
  (``runtimes/nodejs/bootstrap.mjs``), which speaks the Runtime API.
- ``provided.al2023`` / ``provided.al2`` / ``provided``: the process execs the function's own
  executable ``bootstrap`` (the zip's, else a layer's /opt/bootstrap).
The exec'd families need some Python zygote to fork from: the lowest Python found.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PROVIDED = ("provided.al2023", "provided.al2", "provided")
RUNTIMES_DIR = Path(__file__).resolve().parent.parent / "runtimes"
PYTHON_BOOTSTRAP = RUNTIMES_DIR / "python" / "bootstrap.py"
NODE_BOOTSTRAP = RUNTIMES_DIR / "nodejs" / "bootstrap.mjs"
EXEC_WRAPPER = "AWS_LAMBDA_EXEC_WRAPPER"


@dataclass(frozen=True, slots=True)
class RuntimeLaunch:
    interpreter: str  # the Python whose zygote forks this runtime's environments
    # None: lamina's Python runtime in that interpreter; (): the function's own bootstrap;
    # else the argv to exec.
    command: tuple[str, ...] | None
    served_by: str  # what `lamina runtimes` shows

    @property
    def execs(self) -> bool:
        return self.command is not None


def build(pythons: Mapping[str, str], nodes: Mapping[str, str]) -> dict[str, RuntimeLaunch]:
    """Runtime identifier -> launch, from the Pythons and nodes discovered on this host."""
    launches = {name: RuntimeLaunch(path, None, path) for name, path in pythons.items()}
    if not pythons:
        return launches  # nothing to fork from
    launcher = pythons[min(pythons, key=_version)]
    for name, node in nodes.items():
        launches[name] = RuntimeLaunch(launcher, (node, str(NODE_BOOTSTRAP)), node)
    for name in PROVIDED:
        launches[name] = RuntimeLaunch(launcher, (), "the function's bootstrap (zip or layer)")
    return launches


def with_environment(launch: RuntimeLaunch, runtime: str, variables: Mapping[str, str]) -> RuntimeLaunch:
    """The launch for a function with these variables.

    AWS_LAMBDA_EXEC_WRAPPER (internal extensions' wrapper scripts) wraps the command of a managed
    runtime: for Python that means running lamina's runtime as a process of its own, over the
    Runtime API (``python -S bootstrap.py``: the script last, as wrappers expect), instead of in
    the forked environment.  The wrapper itself is prepended inside the environment, where /opt is.
    """
    if is_python(runtime) and variables.get(EXEC_WRAPPER):
        return RuntimeLaunch(
            launch.interpreter, (launch.interpreter, "-S", str(PYTHON_BOOTSTRAP)), launch.served_by
        )
    return launch


def _version(runtime: str) -> tuple[int, ...]:
    return tuple(int(p) for p in runtime.removeprefix("python").split(".") if p.isdigit())


def is_node(runtime: str) -> bool:
    return runtime.startswith("nodejs")


def is_python(runtime: str) -> bool:
    return runtime.startswith("python")
