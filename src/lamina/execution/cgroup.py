"""Cgroups: one per environment, limit = MemorySize, peak per REPORT, OOM read at death; and,
where the controllers are writable, pids <= 1024 and CPU proportional to memory.

Layout: ``<controller root>/lamina/<server pid>-<random>/<env id>``.  v1 (one hierarchy per
controller: ``memory``, and ``pids`` and ``cpu`` when writable) and v2 (unified, with the memory
controller, and pids and cpu when they can be enabled) are both handled.  Everything here touches
cgroupfs pseudo-files only: these calls do not block on disk, so the engine makes them on the
event loop.

Where cgroupfs is mounted (``fs``, /sys/fs/cgroup) is a parameter: tests point it at a fake tree
(tests/unit/test_execution_cgroup.py).  v2's rules, from the kernel's cgroup-v2.rst, that shape
this code: a controller can be enabled in a group's ``cgroup.subtree_control`` only if its parent
enabled it (top-down), and only in a group without processes of its own (the root excepted: "no
internal processes") -- so ``lamina`` and the server's group stay empty and only the environments'
groups, the leaves, hold processes.  ``memory.peak`` exists from Linux 5.19 and ``cgroup.kill``
from 5.14; both are used when there and replaced when not.
"""

from __future__ import annotations

import contextlib
import enum
import os
import secrets
import signal
import time
from pathlib import Path

CGROUP_FS = Path("/sys/fs/cgroup")  # v1: one dir per hierarchy; v2: the unified root itself
CONTROLLERS = ("memory", "pids", "cpu")  # what lamina enables in a v2 subtree, in this order

PIDS_MAX = 1024  # processes and threads per environment (the fork bomb's ceiling)
MB_PER_VCPU = 1769  # AWS: a function gets one vCPU at 1,769 MB, proportionally below and above
CFS_PERIOD_US = 100_000


def cpu_quota_us(memory_mb: int, cpus: int) -> int:
    """CFS quota per 100 ms period: MemorySize / 1,769 MB vCPUs, capped at the host's CPUs."""
    share = min(memory_mb / MB_PER_VCPU, float(cpus))
    return max(1000, int(share * CFS_PERIOD_US))  # the kernel's floor is 1 ms


class CgroupVersion(enum.Enum):
    V1 = 1
    V2 = 2


def _writable(root: Path) -> bool:
    probe = root / f"lamina-probe-{os.getpid()}-{secrets.token_hex(3)}"
    try:
        probe.mkdir()
    except OSError:
        return False
    with contextlib.suppress(OSError):
        probe.rmdir()
    return True


def detect_memory_root(fs: Path = CGROUP_FS) -> tuple[Path, CgroupVersion] | None:
    """The writable memory cgroup root under ``fs``, or None.

    v1 first (``fs/memory``); then v2, unified (``fs`` is the cgroup2 mount) or hybrid (v1
    hierarchies, plus cgroup2 at ``fs/unified``, which has the memory controller only when no v1
    hierarchy took it, e.g. booted with ``cgroup_no_v1=memory``).
    """
    v1 = fs / "memory"
    if (v1 / "memory.limit_in_bytes").exists() and _writable(v1):
        return v1, CgroupVersion.V1
    for v2 in (fs, fs / "unified"):
        if "memory" in _read_words(v2 / "cgroup.controllers") and _writable(v2):
            return v2, CgroupVersion.V2
    return None


class CgroupUnavailableError(OSError):
    """The memory controller could not be set up: the engine falls back to RSS polling."""


def _read_words(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except OSError:
        return []


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _read_keyed(path: Path, key: str) -> int | None:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        return None
    return None


def kill_procs(group: Path) -> int:
    """SIGKILL every process of ``group``.  Returns how many it had.

    v2's ``cgroup.kill`` (Linux 5.14+) does it in one write that no fork can race.  Without it
    (v1, older kernels, or a write that fails), every pid in ``cgroup.procs``, again while forks
    race us.
    """
    kill_file = group / "cgroup.kill"
    if kill_file.exists():
        pids = _read_words(group / "cgroup.procs")
        try:
            kill_file.write_text("1")
            return len(pids)
        except OSError:
            pass  # (a threaded group refuses it) the loop below does it
    killed: set[int] = set()  # a process is listed until it has exited, which SIGKILL is not yet
    for _ in range(16):
        try:
            pids_now = [int(p) for p in (group / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            break
        if not pids_now:
            break
        for pid in pids_now:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
    return len(killed)


class EnvCgroup:
    """One environment's cgroup: memory, and the pids and cpu groups beside it (v1) or in it (v2)."""

    def __init__(
        self,
        path: Path,
        version: CgroupVersion,
        *,
        pids: Path | None = None,
        cpu: Path | None = None,
        cpus: int = 1,
    ) -> None:
        self.path = path
        self.version = version
        self.pids = pids  # the group holding pids.max (v1: in the pids hierarchy; v2: path)
        self.cpu = cpu  # the group holding the CFS quota (v1: cpu hierarchy; v2: path)
        self.cpus = cpus
        self.limit_mb: int | None = None  # None: no limit of its own
        self.cpu_mb: int | None = None  # the MemorySize the CPU quota is for; None: no quota
        self._peak_fd: int | None = None
        self._peak_name = "memory.max_usage_in_bytes" if version is CgroupVersion.V1 else "memory.peak"
        if version is CgroupVersion.V2 and not (path / "memory.peak").exists():
            self._peak_name = "memory.current"  # before Linux 5.19: the usage now, a floor of the peak
        # False: the process's own peak RSS must be read too (no kernel-kept peak to rely on)
        self.peak_exact = self._peak_name != "memory.current"
        # v1: without memsw (swap accounting off), swap could let the env exceed its limit
        self._memsw = version is CgroupVersion.V1 and (path / "memory.memsw.limit_in_bytes").exists()

    @property
    def procs_file(self) -> Path:
        return self.path / "cgroup.procs"

    @property
    def join_files(self) -> list[Path]:
        """Every ``cgroup.procs`` a process writes its pid to, to be in all of its groups."""
        groups = [self.path] + [g for g in (self.pids, self.cpu) if g is not None and g != self.path]
        return [g / "cgroup.procs" for g in groups]

    def peak_bytes(self) -> int | None:
        """Peak usage (``peak_exact``; else the usage now); the file stays open and is pread
        (0.4 us, vs 16 us for open+read)."""
        try:
            if self._peak_fd is None:
                self._peak_fd = os.open(self.path / self._peak_name, os.O_RDONLY | os.O_CLOEXEC)
            return int(os.pread(self._peak_fd, 32, 0))
        except (OSError, ValueError):
            return None

    def set_limit(self, memory_mb: int, *, cpu_capped: bool = True) -> None:
        """Limit the group to ``memory_mb`` (no write if it already is: ~50 us of writes if not),
        and its CPU to that MemorySize's share -- or, with ``cpu_capped=False``, not yet (the burst
        of an on-demand INIT, capped by ``cap_cpu`` once it is over)."""
        if memory_mb != self.limit_mb:
            limit = str(memory_mb * 1024 * 1024).encode()
            if self.version is CgroupVersion.V2:
                names = ["memory.max"]
            else:  # memsw may never be below the memory limit: lower memory first, raise it last
                names = ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"][: 2 if self._memsw else 1]
                if self.limit_mb is not None and memory_mb > self.limit_mb:
                    names.reverse()
            for name in names:
                _write(self.path / name, limit)
            self.limit_mb = memory_mb
        self._set_cpu(memory_mb if cpu_capped else None)

    def cap_cpu(self) -> None:
        """The CPU quota of the group's MemorySize, from now on (no write if it is already on)."""
        if self.limit_mb is not None:
            self._set_cpu(self.limit_mb)

    def _set_cpu(self, memory_mb: int | None) -> None:
        if self.cpu is None or memory_mb == self.cpu_mb:
            return
        if self.version is CgroupVersion.V2:
            quota = "max" if memory_mb is None else str(cpu_quota_us(memory_mb, self.cpus))
            _write(self.cpu / "cpu.max", f"{quota} {CFS_PERIOD_US}".encode())
        else:
            quota = "-1" if memory_mb is None else str(cpu_quota_us(memory_mb, self.cpus))
            _write(self.cpu / "cpu.cfs_quota_us", quota.encode())
        self.cpu_mb = memory_mb

    def oom_killed(self) -> bool:
        """Did the kernel's OOM killer act in this group (or did it hit its limit)?"""
        if self.version is CgroupVersion.V1:
            kills = _read_keyed(self.path / "memory.oom_control", "oom_kill")
            if kills is not None:
                return kills > 0
            return (_read_int(self.path / "memory.failcnt") or 0) > 0
        return (_read_keyed(self.path / "memory.events", "oom_kill") or 0) > 0

    def kill(self) -> int:
        return kill_procs(self.path)

    def remove(self) -> bool:
        """rmdir the groups; False while processes still hold one (caller retries)."""
        if self._peak_fd is not None:
            os.close(self._peak_fd)
            self._peak_fd = None
        done = True
        for group in {self.path, self.pids, self.cpu}:
            if group is None:
                continue
            try:
                group.rmdir()
            except FileNotFoundError:
                continue
            except OSError:
                done = False
        return done


def _write(path: Path, value: bytes) -> None:
    # O_TRUNC as a shell's ``echo v > file``: cgroupfs ignores it, and with it a plain file (a
    # fake tree's) holds just ``value`` too.  No O_CREAT: cgroupfs makes no files.
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    try:
        os.write(fd, value)
    finally:
        os.close(fd)


class MemoryCgroups:
    """This engine's cgroup subtree (memory, and pids and cpu where writable)."""

    def __init__(
        self, root: Path, version: CgroupVersion, *, cpus: int | None = None, fs: Path = CGROUP_FS
    ) -> None:
        self.root = root
        self.fs = fs  # v1: where the pids and cpu hierarchies are
        self.version = version
        self.lamina = root / "lamina"
        self.name = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.base = self.lamina / self.name
        self.cpus = cpus or os.cpu_count() or 1
        # v1: the pids and cpu hierarchies' own subtrees (None: not writable here); v2: flags
        self.pids_base: Path | None = None
        self.cpu_base: Path | None = None
        self.v2_pids = False
        self.v2_cpu = False

    def setup(self) -> None:
        """Make this server's group (v2: controllers enabled at each level, top-down, in groups
        that hold no process).  CgroupUnavailableError if v2's memory controller cannot reach it."""
        self.lamina.mkdir(exist_ok=True)
        if self.version is CgroupVersion.V2:
            for group in (self.root, self.lamina):
                self._enable(group, *CONTROLLERS)
        self.remove_stale()
        self.base.mkdir()
        if self.version is CgroupVersion.V2:
            self._enable(self.base, *CONTROLLERS)
            enabled = _read_words(self.base / "cgroup.subtree_control")
            if "memory" not in enabled:
                with contextlib.suppress(OSError):
                    self.base.rmdir()
                raise CgroupUnavailableError(self._why_no_memory())
            self.v2_pids = "pids" in enabled
            self.v2_cpu = "cpu" in enabled
            return
        self.pids_base = self._v1_base(self.fs / "pids", "pids.max")
        self.cpu_base = self._v1_base(self.fs / "cpu", "cpu.cfs_quota_us")

    def _why_no_memory(self) -> str:
        """Where on the way down v2's memory controller stopped, and the kernel's reason."""
        for group in (self.root, self.lamina):
            if "memory" in _read_words(group / "cgroup.subtree_control"):
                continue
            if _read_words(group / "cgroup.procs"):
                return (
                    f"the memory controller cannot be enabled in {group}: it holds processes and is not "
                    "the hierarchy's root (cgroup v2 lets only a group without processes of its own "
                    "enable controllers for its children; e.g. in a container, move its processes "
                    "into a child group first)"
                )
            return f"the memory controller cannot be enabled in {group} (not in its cgroup.controllers?)"
        return f"the memory controller cannot be enabled in {self.base}"

    def _v1_base(self, root: Path, probe: str) -> Path | None:
        """This engine's subtree in another v1 hierarchy, or None if it cannot be made."""
        if not (root / "cgroup.procs").exists():
            return None
        lamina = root / "lamina"
        try:
            lamina.mkdir(exist_ok=True)
            remove_stale_groups(lamina)
            base = lamina / self.name
            base.mkdir()
        except OSError:
            return None
        if not (base / probe).exists():
            with contextlib.suppress(OSError):
                base.rmdir()
            return None
        return base

    @staticmethod
    def _enable(group: Path, *controllers: str) -> None:
        for name in controllers:  # one at a time: an unavailable one must not stop the others (a
            # write of several either enables them all or none)
            with contextlib.suppress(OSError):
                (group / "cgroup.subtree_control").write_text(f"+{name}")

    @property
    def limits(self) -> dict[str, bool]:
        """Which limits beyond memory the kernel enforces here (pids, cpu)."""
        return {
            "pids": self.pids_base is not None or self.v2_pids,
            "cpu": self.cpu_base is not None or self.v2_cpu,
        }

    def remove_stale(self) -> int:
        return remove_stale_groups(self.lamina)

    def create(self, env_id: str) -> EnvCgroup:
        """Groups with no memory limit of their own yet (``EnvCgroup.set_limit`` sets it), pids
        capped at ``PIDS_MAX``."""
        path = self.base / env_id
        path.mkdir()
        pids = cpu = None
        if self.version is CgroupVersion.V2:
            pids = path if self.v2_pids else None
            cpu = path if self.v2_cpu else None
        else:
            pids = self.pids_base / env_id if self.pids_base is not None else None
            cpu = self.cpu_base / env_id if self.cpu_base is not None else None
        group = EnvCgroup(path, self.version, pids=pids, cpu=cpu, cpus=self.cpus)
        try:
            for extra in {pids, cpu} - {path, None}:
                assert extra is not None
                extra.mkdir()
            if pids is not None:
                _write(pids / "pids.max", str(PIDS_MAX).encode())
            if cpu is not None and self.version is CgroupVersion.V1:
                _write(cpu / "cpu.cfs_period_us", str(CFS_PERIOD_US).encode())
            swap = path / "memory.swap.max"
            if self.version is CgroupVersion.V2 and swap.exists():
                swap.write_text("0")  # without it, swap would let the env exceed its limit
        except OSError:
            group.remove()
            raise
        return group

    def remove_base(self) -> None:
        """At close: kill what is left in this server's groups and remove them."""
        for base in (self.base, self.pids_base, self.cpu_base):
            if base is not None and base.exists():
                _kill_and_remove(base)


def remove_stale_groups(lamina: Path) -> int:
    """Remove ``lamina/<pid>-*`` groups whose server is gone (killing what is left in them)."""
    removed = 0
    for group in lamina.iterdir():
        pid_text = group.name.partition("-")[0]
        if not group.is_dir() or not pid_text.isdigit() or _alive(int(pid_text)):
            continue
        removed += _kill_and_remove(group)
    return removed


def _kill_and_remove(group: Path) -> bool:
    """Kill every process of ``group`` and its child groups and rmdir them all (children first).

    Only at start and close: it waits (up to ~0.5 s, blocking) for the killed to exit, as a
    group cannot be removed before -- a SIGKILL (or v2's cgroup.kill) is not an exit.
    """
    for child in group.iterdir():
        if child.is_dir():
            _kill_and_remove(child)
    for _ in range(100):
        kill_procs(group)
        try:
            group.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError:
            time.sleep(0.005)
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
