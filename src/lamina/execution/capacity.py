"""Host capacity: how much MemorySize this host may hand to execution environments at once.

Every environment's memory cgroup is limited to its function's MemorySize, so the kernel can
only run out of memory globally -- and OOM-kill the server or an innocent function -- when the
limits of the live environments add up to more than the host has.  The engine therefore admits
a new environment only while ``sum(MemorySize of live environments) + its MemorySize`` stays
within ``host memory x overcommit ratio``; the engine evicts idle environments (least recently
used first) to make room, and throttles when even that is not enough (``host_full_error``).

Host memory is ``MemTotal`` (/proc/meminfo), or the memory limit of the cgroup lamina itself
runs in (or of any of its ancestors) when that is lower: in a container the container's limit
is what the kernel enforces.  Everything here reads small pseudo-files once, at engine start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lamina.errors import AwsError

MEMINFO = Path("/proc/meminfo")
SELF_CGROUP = Path("/proc/self/cgroup")
CGROUP_FS = Path("/sys/fs/cgroup")
MB = 1024 * 1024
RETRY_AFTER_S = "1"  # capacity comes back when an invocation ends: soon, but not predictably


@dataclass(frozen=True, slots=True)
class HostCapacity:
    """The engine's admission figures (for tests, metrics and error messages)."""

    host_memory_mb: int  # MemTotal, or lamina's own cgroup limit if lower
    overcommit_ratio: float
    total_mb: int  # host_memory_mb x overcommit_ratio: what environments may hold in all
    admitted_mb: int  # sum of MemorySize of the live environments (idle, busy, initialising)
    environments: int  # how many live environments hold it
    cpus: int  # CPUs this server may run on (its affinity mask)


def meminfo_total_mb(meminfo: Path = MEMINFO) -> int:
    for line in meminfo.read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024  # kB
    raise OSError(f"no MemTotal in {meminfo}")


def own_cgroup_limit_mb(self_cgroup: Path = SELF_CGROUP, fs: Path = CGROUP_FS) -> int | None:
    """The lowest memory limit on the path from lamina's own cgroup to the root, or None.

    A limit applies to the whole subtree, so an ancestor's counts as much as our own group's.
    v1: the ``memory`` hierarchy's ``memory.limit_in_bytes``; v2: ``memory.max`` ("max" is none).
    """
    try:
        lines = self_cgroup.read_text().splitlines()
    except OSError:
        return None
    v1_path = v2_path = None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            v1_path = path
        elif controllers == "" and line.startswith("0:"):
            v2_path = path
    if v1_path is not None:
        root, path, name = fs / "memory", v1_path, "memory.limit_in_bytes"
    elif v2_path is not None:
        root, path, name = fs, v2_path, "memory.max"
    else:
        return None
    lowest: int | None = None
    group = root / path.strip("/")
    while True:
        try:
            text = (group / name).read_text().strip()
        except OSError:  # not there (v2's root group has none) or not visible from here
            text = "max"
        if text.isdigit() and (lowest is None or int(text) < lowest):
            lowest = int(text)
        if group == root or root not in group.parents:
            break
        group = group.parent
    return None if lowest is None else lowest // MB


def host_memory_mb(meminfo: Path = MEMINFO, self_cgroup: Path = SELF_CGROUP, fs: Path = CGROUP_FS) -> int:
    """MemTotal, or lamina's own cgroup limit when that is lower (v1 says "no limit" with ~2^63)."""
    total = meminfo_total_mb(meminfo)
    limit = own_cgroup_limit_mb(self_cgroup, fs)
    return total if limit is None or limit >= total else limit


def host_cpus() -> int:
    return len(os.sched_getaffinity(0))


def host_full_error(*, need_mb: int, held_mb: int, capacity: HostCapacity) -> AwsError:
    """The throttle: AWS's code and Reason (what clients retry on), a message naming the cause.

    AWS has no reason for "the machine is full"; ``ConcurrentInvocationLimitExceeded`` is what
    SDKs and the async path already treat as "retry later", which is exactly what to do here.
    """
    message = (
        f"Rate Exceeded. This lamina host's memory is fully committed: execution environments that "
        f"are busy or starting hold {held_mb} MB of the {capacity.total_mb} MB it admits (host memory "
        f"{capacity.host_memory_mb} MB x overcommit ratio {capacity.overcommit_ratio:g}), and a new "
        f"environment for this function needs {need_mb} MB (its MemorySize). Retry later, lower the "
        "function's MemorySize or the number of concurrent invocations, or raise the host's "
        "overcommit ratio."
    )
    return AwsError(
        "TooManyRequestsException",
        message,
        fields={"Reason": "ConcurrentInvocationLimitExceeded", "message": message},  # the shape's members
        headers={"Retry-After": RETRY_AFTER_S},
    )
