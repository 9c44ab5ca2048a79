"""A fake cgroupfs in a tmp dir, for lamina's cgroup code to run against v1 and v2 as the kernel has them.

``fake_cgroupfs`` returns the mount point as a ``Path`` subclass: every path lamina derives from
it (``/``, ``.parent``, ``iterdir``) is one too, so what the kernel does on ``mkdir``, ``rmdir``
and writes to ``cgroup.subtree_control`` / ``cgroup.kill``, and what reading ``cgroup.procs``
shows, can be done here.  What it models, from the kernel's cgroup-v2.rst (and cgroup-v1's
memory.rst for v1):

- ``mkdir`` makes a group's interface files, with their defaults: the core ``cgroup.*`` files
  (``cgroup.kill`` only on kernels >= 5.14, ``kill=False`` for older), and, on v2, the files of
  each controller the *parent* enables in its ``cgroup.subtree_control`` (``memory.peak`` only
  on kernels >= 5.19: ``peak=False``; ``memory.swap.max`` only with swap accounting: ``swap``);
  on v1 those of the hierarchy's controller;
- ``cgroup.subtree_control``: ``+name`` only for a controller in the group's own
  ``cgroup.controllers`` (ENOENT), never in a non-root group with processes (EBUSY, the "no
  internal process" rule), all or nothing for a multi-word write; the children's
  ``cgroup.controllers`` and files follow;
- ``cgroup.procs`` lists live processes only (an exited one, a zombie, is not there) -- and
  only the test's own (``live``): the pids are read back as written, not as the kernel would
  translate them from the writer's pid namespace;
- ``rmdir`` fails with EBUSY while the group has live processes or child groups;
- ``cgroup.kill``: SIGKILL to every process of the group and its descendants.

Values written to the other files (limits) stay as written, for the tests to read back.  The
same core rules are checked against the real kernel in test_execution_cgroup.py, where a
cgroup2 hierarchy is mounted.
"""

from __future__ import annotations

import errno
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_V2 = ("cpu", "memory", "pids")
V1_UNLIMITED = "9223372036854771712"  # what v1's limit_in_bytes reads when unlimited (4K pages)


@dataclass
class Kernel:
    """What the fake kernel offers; the hierarchies it has mounted, by mount point."""

    v2_controllers: tuple[str, ...] = DEFAULT_V2
    kill: bool = True  # cgroup.kill: Linux >= 5.14
    peak: bool = True  # memory.peak: Linux >= 5.19
    swap: bool = True  # memory.swap.max (v2) / memory.memsw.* (v1): swap accounting on
    read_only: bool = False  # mkdir refused (a cgroupfs this process may not write)
    v2_roots: dict[Path, bool] = field(default_factory=dict)  # mount point -> is the real root
    v1_roots: dict[Path, str] = field(default_factory=dict)  # mount point -> its controller


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()  # [state, ppid, ...]


def live(pid: int) -> bool:
    """A live (not zombie) process of this test's own tree.  Only those: a pid a process wrote
    from inside its pid namespace (2, say) names another process out here, which the fake must
    never list, let alone kill -- the kernel would have resolved it in the writer's namespace."""
    try:
        if _stat(pid)[0] == "Z":
            return False
        for _ in range(64):
            if pid == os.getpid():
                return True
            if pid <= 1:
                return False
            pid = int(_stat(pid)[1])
    except (OSError, IndexError, ValueError):
        return False
    return False


class _CgroupPath(type(Path())):
    kernel: Kernel  # set on the per-tree subclass

    # ---------------------------------------------------------------- where a path is
    def _hierarchy(self) -> tuple[Path, int] | None:
        for ancestor in (Path(self), *Path(self).parents):
            if ancestor in self.kernel.v2_roots:
                return ancestor, 2
            if ancestor in self.kernel.v1_roots:
                return ancestor, 1
        return None

    def _live_pids(self) -> list[int]:
        text = Path.read_text(Path(self) / "cgroup.procs")
        return [int(p) for p in text.split() if live(int(p))]

    def _groups(self) -> list[Any]:
        return [c for c in self.iterdir() if Path.is_dir(c)]

    # ---------------------------------------------------------------- the kernel's side
    def mkdir(self, mode: int = 0o777, parents: bool = False, exist_ok: bool = False) -> None:
        where = self._hierarchy()
        if where is None or Path(self) == where[0]:
            return super().mkdir(mode, parents, exist_ok)
        if self.kernel.read_only:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        created = not self.exists()
        super().mkdir(mode, parents=False, exist_ok=exist_ok)
        if not created:
            return
        files = {"cgroup.procs": "", "cgroup.events": "populated 0\nfrozen 0\n"}
        if where[1] == 2:
            enabled = Path.read_text(self.parent / "cgroup.subtree_control").split()
            files.update(
                {
                    "cgroup.controllers": " ".join(enabled),
                    "cgroup.subtree_control": "",
                    "cgroup.type": "domain",
                }
            )
            files["cpu.stat"] = "usage_usec 0\nuser_usec 0\nsystem_usec 0\n"
            if self.kernel.kill:
                files["cgroup.kill"] = ""
            for name in enabled:
                files.update(self._v2_files(name))
        else:
            files.update({"tasks": "", "notify_on_release": "0"})
            files.update(self._v1_files(self.kernel.v1_roots[where[0]]))
        for name, text in files.items():
            Path.write_text(Path(self) / name, text)

    def _v2_files(self, controller: str) -> dict[str, str]:
        if controller == "memory":
            files = {"memory.max": "max", "memory.high": "max", "memory.current": "0", "memory.stat": ""}
            files["memory.events"] = "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n"
            if self.kernel.peak:
                files["memory.peak"] = "0"
            if self.kernel.swap:
                files.update({"memory.swap.max": "max", "memory.swap.current": "0"})
            return files
        if controller == "pids":
            return {"pids.max": "max", "pids.current": "0", "pids.events": "max 0\n"}
        if controller == "cpu":
            return {"cpu.max": "max 100000", "cpu.weight": "100", "cpu.max.burst": "0"}
        return {f"{controller}.stat": ""}

    def _v1_files(self, controller: str) -> dict[str, str]:
        if controller == "memory":
            files = {"memory.limit_in_bytes": V1_UNLIMITED, "memory.max_usage_in_bytes": "0"}
            files.update({"memory.usage_in_bytes": "0", "memory.failcnt": "0"})
            files["memory.oom_control"] = "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"
            if self.kernel.swap:
                files["memory.memsw.limit_in_bytes"] = V1_UNLIMITED
            return files
        if controller == "pids":
            return {"pids.max": "max", "pids.current": "0"}
        if controller == "cpu":
            return {"cpu.cfs_quota_us": "-1", "cpu.cfs_period_us": "100000", "cpu.shares": "1024"}
        return {}

    def rmdir(self) -> None:
        if self._hierarchy() is None or not (Path(self) / "cgroup.procs").exists():
            return super().rmdir()
        if self._groups() or self._live_pids():
            raise OSError(errno.EBUSY, "Device or resource busy", str(self))
        for entry in self.iterdir():
            Path.unlink(entry)
        super().rmdir()

    def read_text(self, encoding: str | None = None, errors: str | None = None) -> str:
        if self.name == "cgroup.procs" and self._hierarchy() is not None:
            return "".join(f"{pid}\n" for pid in self.parent._live_pids())
        return super().read_text(encoding, errors)

    def write_text(
        self, data: str, encoding: str | None = None, errors: str | None = None, newline: str | None = None
    ) -> int:
        if self._hierarchy() is None:
            return super().write_text(data, encoding, errors, newline)
        if self.name == "cgroup.subtree_control":
            self.parent._control(data.split())
            return len(data)
        if self.name == "cgroup.kill":
            if data.strip() != "1":
                raise OSError(errno.EINVAL, "Invalid argument", str(self))
            self.parent._kill_tree()
            return len(data)
        if not self.exists():  # cgroupfs makes no files: only the kernel's are there
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(self))
        return super().write_text(data, encoding, errors, newline)

    def _control(self, words: list[str]) -> None:
        group = Path(self)
        available = Path.read_text(group / "cgroup.controllers").split()
        enabled = Path.read_text(group / "cgroup.subtree_control").split()
        is_real_root = self.kernel.v2_roots.get(group, False)
        for word in words:  # vetted as a whole first: several either all apply or none
            op, name = word[:1], word[1:]
            if op not in "+-" or name not in available:
                raise OSError(errno.ENOENT, "No such file or directory", str(group))
            if op == "+" and not is_real_root and self._live_pids():
                raise OSError(errno.EBUSY, "Device or resource busy", str(group))
        for word in words:
            op, name = word[:1], word[1:]
            if op == "+" and name not in enabled:
                enabled.append(name)
            elif op == "-" and name in enabled:
                enabled.remove(name)
        Path.write_text(group / "cgroup.subtree_control", " ".join(sorted(enabled)))
        for child in self._groups():
            had = Path.read_text(child / "cgroup.controllers").split()
            Path.write_text(child / "cgroup.controllers", " ".join(sorted(enabled)))
            for name in set(enabled) - set(had):
                for file, text in self._v2_files(name).items():
                    Path.write_text(child / file, text)
            for name in set(had) - set(enabled):
                for file in self._v2_files(name):
                    (child / file).unlink(missing_ok=True)

    def _kill_tree(self) -> None:
        for child in self._groups():
            child._kill_tree()
        for pid in self._live_pids():
            os.kill(pid, signal.SIGKILL)


def fake_cgroupfs(
    tmp: Path,
    *,
    version: int,
    real_root: bool = True,
    hybrid_v2: tuple[str, ...] | None = None,
    v1_controllers: tuple[str, ...] = DEFAULT_V2,
    **kernel: Any,
) -> Path:
    """A fake /sys/fs/cgroup: v2 (unified: the mount point is the v2 root; ``real_root=False``:
    it is a container's, a non-root group holding processes) or v1 (a hierarchy per controller,
    plus, ``hybrid_v2``, a cgroup2 at ``unified`` with those controllers)."""
    cls: Any = type("FakeCgroupPath", (_CgroupPath,), {"kernel": Kernel(**kernel)})
    fs = cls(tmp / "cgroup")
    Path(fs).mkdir(parents=True)
    roots: list[tuple[Path, tuple[str, ...]]] = []
    if version == 2:
        fs.kernel.v2_roots[Path(fs)] = real_root
        roots.append((Path(fs), fs.kernel.v2_controllers))
    else:
        for name in v1_controllers:
            fs.kernel.v1_roots[Path(fs) / name] = name
            (Path(fs) / name).mkdir()
            files = {"cgroup.procs": f"{os.getpid()}\n", "tasks": ""}
            files.update(fs._v1_files(name))
            for file, text in files.items():
                Path.write_text(Path(fs) / name / file, text)
        if hybrid_v2 is not None:
            fs.kernel.v2_roots[Path(fs) / "unified"] = True
            roots.append((Path(fs) / "unified", hybrid_v2))
    for root, controllers in roots:
        root.mkdir(exist_ok=True)
        files = {"cgroup.controllers": " ".join(controllers), "cgroup.subtree_control": ""}
        files.update({"cgroup.procs": f"{os.getpid()}\n", "cgroup.max.depth": "max", "cpu.stat": ""})
        for file, text in files.items():
            Path.write_text(root / file, text)
    return fs
