"""Discover the Node.js binaries this host can run: nodejs18.x ... nodejs24.x, each on a node of that major.

Candidates per runtime, in order: the caller's override (``{"nodejs20.x": "/path/node"}``, passed in
as a mapping: this module reads no environment of its own), ``shutil.which("node20")``,
``shutil.which("node")``, ``shutil.which("nodejs")``, then version-manager installs: nvm
(``~/.nvm/versions/node/v20.*/bin/node``), n (``/usr/local/n/versions/node/20.*/bin/node``) and
``/opt/nodejs*/bin/node``-style trees (``/opt/node-v20*``, ``/usr/local/lib/nodejs/node-v20*``).
Every distinct candidate is run once, all concurrently (``node -p``), to resolve the real
executable (``process.execPath``) and read its version; a runtime gets the first candidate of
its major.  An override of the wrong major is refused (and logged), never replaced by another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

from lamina.execution.interpreters import run_probe

RUNTIMES = ("nodejs18.x", "nodejs20.x", "nodejs22.x", "nodejs24.x")
PROBE = "process.execPath + '\\n' + process.versions.node"
RUNTIME_RE = re.compile(r"^nodejs(\d+)\.x$")

log = logging.getLogger(__name__)


def major_of(runtime: str) -> str | None:
    match = RUNTIME_RE.match(runtime)
    return match.group(1) if match else None


def _sorted_installs(pattern_root: Path, pattern: str) -> list[str]:
    """Installs matching ``pattern`` under ``pattern_root``, newest version first."""
    with contextlib.suppress(OSError):
        found = [p for p in pattern_root.glob(pattern) if p.is_file()]
        return [str(p) for p in sorted(found, key=_version_key, reverse=True)]
    return []


def _version_key(path: Path) -> tuple[int, ...]:
    for part in path.parts:
        numbers = re.findall(r"\d+", part)
        if re.match(r"^(node-)?v?\d+\.\d+", part) and numbers:
            return tuple(int(n) for n in numbers[:3])
    return ()


def candidates(runtime: str, overrides: Mapping[str, str], home: Path | None = None) -> list[str]:
    if runtime in overrides:
        return [overrides[runtime]]
    major = major_of(runtime)
    if major is None:
        return []
    found: list[str] = []
    for name in (f"node{major}", "node", "nodejs"):
        which = shutil.which(name)
        if which:
            found.append(which)
    home = home if home is not None else Path.home()
    found += _sorted_installs(home / ".nvm" / "versions" / "node", f"v{major}.*/bin/node")
    found += _sorted_installs(Path("/usr/local/n/versions/node"), f"{major}.*/bin/node")
    found += _sorted_installs(Path("/opt"), f"node*-v{major}.*/bin/node")
    found += _sorted_installs(Path("/opt"), f"nodejs{major}/bin/node")
    found += _sorted_installs(Path("/usr/local/lib/nodejs"), f"node-v{major}.*/bin/node")
    return list(dict.fromkeys(found))  # de-duplicated, order kept


def _real(path: str) -> str:
    """``path`` with its symlinks resolved (a bare name is looked up on PATH first)."""
    found = path if os.sep in path else shutil.which(path)
    return os.path.realpath(found) if found else path


async def probe(path: str) -> tuple[str, str] | None:
    """Run ``path`` once: (real executable, "20.11.1"), or None if it does not start."""
    lines = await run_probe([path, "-p", PROBE])
    if lines is None or len(lines) != 2 or not lines[0]:
        return None
    return str(Path(lines[0]).resolve()), lines[1].strip()


async def discover(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Runtime identifier -> absolute node path, for every runtime found."""
    overrides = overrides or {}
    names = sorted(set(RUNTIMES) | {k for k in overrides if major_of(k)}, key=lambda n: int(major_of(n) or 0))
    # Each distinct binary is probed once (node and nodejs are often one file).
    wanted = {name: [_real(p) for p in candidates(name, overrides)] for name in names}
    paths = list(dict.fromkeys(path for found in wanted.values() for path in found))
    results = dict(zip(paths, await asyncio.gather(*(probe(p) for p in paths)), strict=True))
    nodes: dict[str, str] = {}
    for name, found in wanted.items():
        major = major_of(name)
        for path in found:
            result = results[path]
            if result is None:
                if name in overrides:
                    log.warning("%s: %s does not run", name, path)
                continue
            executable, version = result
            if version.split(".")[0] == major:
                nodes[name] = executable
                break
            if name in overrides:
                log.warning("%s at %s is Node.js %s, not %s.x", name, path, version, major)
    return nodes
