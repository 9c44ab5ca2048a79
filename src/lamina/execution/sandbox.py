"""The sandbox's settings on the engine's side (what each process does to itself is in the
bootstrap: ``prepare_spare``, ``mount_private``, ``drop_privileges``).  See docs/security.md.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

# One uid per live environment, from this base up (gid the same): far above any distribution's
# users and the usual subordinate-id ranges (100000-...).  Freed uids are reused only once the
# environment's cgroup -- every process it started -- is gone.
UID_BASE = 1_900_000_000
NOFILE = 1024  # RLIMIT_NOFILE, soft and hard: AWS's limit
# Hidden from every environment, like the data dir: home dirs, and the host's world-writable
# /run/lock (on disk here); /var/tmp is the environment's own /tmp (bootstrap's mount_private)
HOME_DIRS = ("/root", "/home", "/run/lock")
DEFAULT_TMP_MB = 512  # EphemeralStorage's default: a spare's /tmp size until claimed


def runtime_prefixes(executables: Iterable[str]) -> list[str]:
    """The installation dirs of the runtimes' binaries (``<prefix>/bin/python3.12`` ->
    ``<prefix>``), real paths: environments must still reach them where a hidden dir holds them
    (a pyenv under /root), to exec a runtime or import the stdlib lazily."""
    found: dict[str, None] = {}
    for path in executables:
        real = os.path.realpath(path)
        found[os.path.dirname(os.path.dirname(real))] = None
    return [p for p in found if p not in ("/", "/usr", "")]
