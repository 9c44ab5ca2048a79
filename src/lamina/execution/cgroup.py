"""Memory cgroups: one per environment, limit = MemorySize, peak per REPORT, OOM read at death.

Layout: ``<memory cgroup root>/lamina/<server pid>-<random>/<env id>``.  v1 (``memory`` hierarchy)
and v2 (unified, memory controller enabled) are both handled.  Everything here touches cgroupfs
pseudo-files only: these calls do not block on disk, so the engine makes them on the event loop.
"""

from __future__ import annotations

import contextlib
import enum
import os
import secrets
import signal
from pathlib import Path

V1_ROOT = Path("/sys/fs/cgroup/memory")
V2_ROOT = Path("/sys/fs/cgroup")


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


def detect_memory_root() -> tuple[Path, CgroupVersion] | None:
    """The writable memory cgroup root of this host, or None."""
    if (V1_ROOT / "memory.limit_in_bytes").exists() and _writable(V1_ROOT):
        return V1_ROOT, CgroupVersion.V1
    controllers = V2_ROOT / "cgroup.controllers"
    if controllers.exists() and "memory" in controllers.read_text().split() and _writable(V2_ROOT):
        return V2_ROOT, CgroupVersion.V2
    return None


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
    """SIGKILL every process of ``group``; repeat while forks race us.  Returns how many."""
    killed = 0
    kill_file = group / "cgroup.kill"  # v2, kernel >= 5.14: atomic
    if kill_file.exists():
        with contextlib.suppress(OSError):
            kill_file.write_text("1")
    for _ in range(16):
        try:
            pids = [int(p) for p in (group / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return killed
        if not pids:
            return killed
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
    return killed


class EnvCgroup:
    """One environment's memory cgroup."""

    def __init__(self, path: Path, version: CgroupVersion) -> None:
        self.path = path
        self.version = version
        self.limit_mb: int | None = None  # None: no limit of its own
        self._peak_fd: int | None = None
        # v1: without memsw (swap accounting off), swap could let the env exceed its limit
        self._memsw = version is CgroupVersion.V1 and (path / "memory.memsw.limit_in_bytes").exists()

    @property
    def procs_file(self) -> Path:
        return self.path / "cgroup.procs"

    def peak_bytes(self) -> int | None:
        """Peak usage; the file stays open and is pread (0.4 us, vs 16 us for open+read)."""
        try:
            if self._peak_fd is None:
                name = "memory.max_usage_in_bytes" if self.version is CgroupVersion.V1 else "memory.peak"
                self._peak_fd = os.open(self.path / name, os.O_RDONLY | os.O_CLOEXEC)
            return int(os.pread(self._peak_fd, 32, 0))
        except (OSError, ValueError):
            return None

    def set_limit(self, memory_mb: int) -> None:
        """Limit the group to ``memory_mb``: no write if it already is (~50 us of writes if not)."""
        if memory_mb == self.limit_mb:
            return
        limit = str(memory_mb * 1024 * 1024).encode()
        if self.version is CgroupVersion.V2:
            names = ["memory.max"]
        else:  # memsw may never be below the memory limit: lower memory first, raise it last
            names = ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"][: 2 if self._memsw else 1]
            if self.limit_mb is not None and memory_mb > self.limit_mb:
                names.reverse()
        for name in names:
            fd = os.open(self.path / name, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, limit)
            finally:
                os.close(fd)
        self.limit_mb = memory_mb

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
        """rmdir the group; False while processes still hold it (caller retries)."""
        if self._peak_fd is not None:
            os.close(self._peak_fd)
            self._peak_fd = None
        try:
            self.path.rmdir()
        except FileNotFoundError:
            return True
        except OSError:
            return False
        return True


class MemoryCgroups:
    """This engine's cgroup subtree."""

    def __init__(self, root: Path, version: CgroupVersion) -> None:
        self.root = root
        self.version = version
        self.lamina = root / "lamina"
        self.base = self.lamina / f"{os.getpid()}-{secrets.token_hex(4)}"

    def setup(self) -> None:
        self.lamina.mkdir(exist_ok=True)
        if self.version is CgroupVersion.V2:
            self._enable_memory(self.root)
            self._enable_memory(self.lamina)
        self.remove_stale()
        self.base.mkdir()
        if self.version is CgroupVersion.V2:
            self._enable_memory(self.base)

    @staticmethod
    def _enable_memory(group: Path) -> None:
        with contextlib.suppress(OSError):
            (group / "cgroup.subtree_control").write_text("+memory")

    def remove_stale(self) -> int:
        """Remove ``lamina/<pid>-*`` groups whose server is gone (killing what is left in them)."""
        removed = 0
        for group in self.lamina.iterdir():
            pid_text = group.name.partition("-")[0]
            if not group.is_dir() or not pid_text.isdigit() or _alive(int(pid_text)):
                continue
            for child in group.iterdir():
                if child.is_dir():
                    kill_procs(child)
                    with contextlib.suppress(OSError):
                        child.rmdir()
            kill_procs(group)
            with contextlib.suppress(OSError):
                group.rmdir()
                removed += 1
        return removed

    def create(self, env_id: str) -> EnvCgroup:
        """A group with no limit of its own yet: ``EnvCgroup.set_limit`` sets it."""
        path = self.base / env_id
        path.mkdir()
        if self.version is CgroupVersion.V2:
            swap = path / "memory.swap.max"
            try:
                if swap.exists():  # without it, swap would let the env exceed its limit
                    swap.write_text("0")
            except OSError:
                with contextlib.suppress(OSError):
                    path.rmdir()
                raise
        return EnvCgroup(path, self.version)

    def remove_base(self) -> None:
        for child in self.base.iterdir() if self.base.exists() else ():
            if child.is_dir():
                kill_procs(child)
                with contextlib.suppress(OSError):
                    child.rmdir()
        with contextlib.suppress(OSError):
            self.base.rmdir()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
