"""Discover the Python interpreters this host can run: python3.11 ... python3.14.

Candidates per runtime: the caller's override (``LAMINA_PYTHON_3_12=path``, passed in as a
mapping: this module reads no environment of its own), then ``shutil.which("python3.12")``, then
-- for pyenv shims, which refuse versions that are installed but not selected -- the matching
``<pyenv root>/versions/3.12.*/bin/python3.12``.  Each candidate is run once (all concurrently)
to resolve the real executable (``sys.executable``) and check its version.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

RUNTIMES = ("python3.11", "python3.12", "python3.13", "python3.14")
PROBE = "import sys; print(sys.executable); print('%d.%d' % sys.version_info[:2])"
PROBE_TIMEOUT_S = 15.0

log = logging.getLogger(__name__)


def candidates(runtime: str, overrides: Mapping[str, str]) -> list[str]:
    found: list[str] = []
    if runtime in overrides:
        return [overrides[runtime]]
    which = shutil.which(runtime)
    if which:
        found.append(which)
        shim = Path(which)
        if shim.parent.name == "shims":  # pyenv: <root>/shims/python3.12
            version = runtime.removeprefix("python")
            pattern = f"versions/{version}.*/bin/{runtime}"
            found.extend(str(p) for p in sorted(shim.parent.parent.glob(pattern), reverse=True))
    return found


async def run_probe(argv: Sequence[str]) -> list[str] | None:
    """Run a candidate binary once (killed past PROBE_TIMEOUT_S): its stdout lines, or None if
    it does not start or fails.  Shared with ``nodes.py``."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError:
        return None
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), PROBE_TIMEOUT_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return None
    return out.decode(errors="replace").splitlines() if proc.returncode == 0 else None


async def probe(path: str) -> tuple[str, str] | None:
    """Run ``path`` once: (real executable, "3.12"), or None if it does not start."""
    lines = await run_probe([path, "-I", "-S", "-c", PROBE])
    if lines is None or len(lines) != 2:
        return None
    return lines[0].strip(), lines[1].strip()


async def resolve(runtime: str, overrides: Mapping[str, str]) -> str | None:
    wanted = runtime.removeprefix("python")
    for path in candidates(runtime, overrides):
        result = await probe(path)
        if result is None:
            continue
        executable, version = result
        if version == wanted and executable:
            return executable
        log.warning("%s at %s is Python %s, not %s", runtime, path, version, wanted)
    return None


async def discover(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Runtime identifier -> absolute interpreter path, for every runtime found."""
    overrides = overrides or {}
    names = sorted(set(RUNTIMES) | {k for k in overrides if k.startswith("python3.")})
    paths = await asyncio.gather(*(resolve(name, overrides) for name in names))
    return {name: path for name, path in zip(names, paths, strict=True) if path}
