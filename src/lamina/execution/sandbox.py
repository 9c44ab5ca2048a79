"""The sandbox's settings on the engine's side (what each process does to itself is in the
bootstrap: ``prepare_spare``, ``mount_private``, ``drop_privileges``).  See docs/security.md.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterable
from pathlib import Path

# One uid per live environment (gid the same), far above any distribution's users and the usual
# subordinate-id ranges (100000-...).  Each server holds a block of UIDS_PER_SERVER of them, locked
# for its life in UID_LOCK_DIR, so two servers on one host never share a uid.  Freed uids are
# reused only once the environment's cgroup -- every process it started -- is gone.
UID_BASE = 1_900_000_000
UIDS_PER_SERVER = 65_536
UID_BLOCKS = 3_500  # UID_BASE + 3,500 blocks stays below 2**31
UID_LOCK_DIR = Path("/run/lamina/uid-blocks")
NOFILE = 1024  # RLIMIT_NOFILE, soft and hard: AWS's limit
# Hidden from every environment, like the data dir: home dirs, and the host's world-writable
# /run/lock (on disk here); /var/tmp is the environment's own /tmp (bootstrap's mount_private)
HOME_DIRS = ("/root", "/home", "/run/lock")
DEFAULT_TMP_MB = 512  # EphemeralStorage's default: a spare's /tmp size until claimed

# The minimal root filesystem of an environment (bootstrap's ``minimal_root``): a tmpfs holding
# only these, read-only, plus its /tmp, /var/tmp, /dev, /proc, /opt (its layers), the runtimes'
# install dirs and its own code (at /var/task, as on AWS: environment.TASK_ROOT).  Missing
# entries are skipped; a symlink (merged /usr: /bin -> usr/bin) is recreated as a symlink.  See
# docs/security.md for why each is there.
ROOT_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ROOT_ETC = (
    "passwd", "group",  # user and group names (getpwuid, ls -l, whoami)
    "nsswitch.conf", "host.conf", "hosts", "resolv.conf", "gai.conf",  # name resolution (DNS)
    "services", "protocols", "networks",  # getservbyname, getprotobyname, getnetbyname
    "ssl/certs", "ssl/openssl.cnf", "pki", "crypto-policies",  # TLS trust (Debian; RHEL-likes)
    "localtime", "timezone",  # the host's zone (functions get TZ=:UTC, as on AWS)
    "ld.so.cache", "ld.so.conf", "ld.so.conf.d",  # the dynamic linker: multiarch library dirs
    "alternatives",  # Debian's /usr/bin/<tool> -> /etc/alternatives/<tool> links
    "mime.types", "os-release",  # Python's mimetypes; platform.freedesktop_os_release
)  # fmt: skip
# Read-only too: a function can read its own cgroup limits (pids.max, cpu.cfs_quota_us)
ROOT_EXTRA = ("/sys/fs/cgroup",)


def root_layout() -> dict[str, list[str]]:
    """What the bootstrap builds an environment's root from (the spawn config's ``root``)."""
    return {"system": list(ROOT_SYSTEM_DIRS), "etc": list(ROOT_ETC), "extra": list(ROOT_EXTRA)}


def runtime_prefixes(executables: Iterable[str]) -> list[str]:
    """The installation dirs of the runtimes' binaries (``<prefix>/bin/python3.12`` ->
    ``<prefix>``), real paths: environments must still reach them where a hidden dir holds them
    (a pyenv under /root), to exec a runtime or import the stdlib lazily."""
    found: dict[str, None] = {}
    for path in executables:
        real = os.path.realpath(path)
        found[os.path.dirname(os.path.dirname(real))] = None
    return [p for p in found if p not in ("/", "/usr", "")]


class UidBlock:
    """A block of uids this server alone hands out: ``flock`` on ``<dir>/<n>``, held while it lives
    (the kernel releases it when the server dies, however it dies)."""

    def __init__(self, base: int, fd: int) -> None:
        self.base = base
        self._fd = fd
        self._free: list[int] = []
        self._next = 0

    @classmethod
    def acquire(cls, uid_base: int, lock_dir: Path = UID_LOCK_DIR) -> UidBlock:
        lock_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        for block in range(UID_BLOCKS):
            fd = os.open(lock_dir / str(block), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return cls(uid_base + block * UIDS_PER_SERVER, fd)
        raise OSError(f"every block of uids in {lock_dir} is held by a running server")

    def take(self) -> int:
        if self._free:
            return self._free.pop()
        if self._next + 1 >= UIDS_PER_SERVER:
            raise OSError("this server's uids are all held by live environments")
        self._next += 1
        return self.base + self._next

    def give_back(self, uid: int) -> None:
        self._free.append(uid)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)
