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
NODE_BOOTSTRAP = Path(__file__).resolve().parent.parent / "runtimes" / "nodejs" / "bootstrap.mjs"


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


def _version(runtime: str) -> tuple[int, ...]:
    return tuple(int(p) for p in runtime.removeprefix("python").split(".") if p.isdigit())


def is_node(runtime: str) -> bool:
    return runtime.startswith("nodejs")


def is_python(runtime: str) -> bool:
    return runtime.startswith("python")
