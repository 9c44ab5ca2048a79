"""lamina's Python runtime: an environment's sandbox -- its mount namespace (private /tmp, hidden
dirs, the minimal root, /dev, /proc), its code at /var/task, its layers at /opt, its own user.

Part of the runtime bootstrap.py imports at start-up (see its docstring); standard library only."""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal

# Linux constants (x86_64 and aarch64 agree on these).
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_RDONLY = 1
MS_REMOUNT = 32
MS_MOVE = 8192
MNT_DETACH = 2


class Sandbox:
    """What a spare did to itself that specialisation builds on.

    ``private``: /tmp is its own (a size-limited tmpfs, or the per-environment dir bound there).
    ``hidden``: dirs covered in its mount namespace (the host's /tmp, the data dir, home dirs)
    -> an O_PATH fd of what was there, through which a path under them can be bound back.
    ``host_root``: with a minimal root (``minimal_root``), an O_PATH fd of the host's root, through
    which any host path is bound in; ``shown``: what the new root shows of the host already.
    """

    __slots__ = ("hidden", "host_root", "private", "shown", "tmp_mb")

    def __init__(self, private=False, hidden=None, tmp_mb=None):
        self.private = private
        self.hidden = hidden or {}
        self.tmp_mb = tmp_mb  # the tmpfs's size, None if /tmp is not a tmpfs of ours
        self.host_root = None
        self.shown = []

    def close(self):
        for fd in self.hidden.values():
            os.close(fd)
        self.hidden = {}
        if self.host_root is not None:
            os.close(self.host_root)
            self.host_root = None


def mount_private(libc, cfg):
    """Own mount, IPC and UTS namespaces; /tmp private; the server's dirs and home dirs hidden.

    /tmp is a tmpfs limited to EphemeralStorage (``tmp_mb``: a hint at spare time, set exactly at
    specialisation), else the per-environment dir bound there.  Without mount namespaces
    (unprivileged server) the caller falls back to TMPDIR: Python's tempfile and most tools
    honour it, but a hard-coded '/tmp' path is then shared.
    """
    if cfg.get("namespaces") is False:  # LAMINA_ISOLATION=off: as an unprivileged server's
        return Sandbox()
    if libc.unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS) != 0 and libc.unshare(CLONE_NEWNS) != 0:
        return Sandbox()
    if libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        return Sandbox()
    if cfg.get("root"):
        return minimal_root(libc, cfg)
    sandbox = Sandbox(True)
    # Code kept under /tmp (a data dir there, pytest's tmp_path) would be hidden by the new /tmp;
    # it is bound back (``keep_task_root``) through this fd of the host's /tmp.  (Opened after
    # unshare: a bind source must be a mount of our own namespace.)
    sandbox.hidden["/tmp"] = os.open("/tmp", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    tmp_mb = cfg.get("tmp_mb")
    options = f"size={tmp_mb}m,mode=1777".encode() if tmp_mb else None
    if options and libc.mount(b"tmpfs", b"/tmp", b"tmpfs", MS_NOSUID | MS_NODEV, options) == 0:
        sandbox.tmp_mb = tmp_mb
    elif libc.mount(cfg["tmp_dir"].encode(), b"/tmp", None, MS_BIND | MS_REC, None) != 0:
        sandbox.close()
        return Sandbox()
    # The host's other world-writable scratch dir: the same tmpfs, the same size limit
    scratch = sandbox.tmp_mb is not None and os.path.isdir("/var/tmp")
    if scratch and libc.mount(b"/tmp", b"/var/tmp", None, MS_BIND, None) != 0:
        raise OSError(ctypes.get_errno(), "cannot bind /var/tmp")
    if cfg.get("minimal_dev"):
        minimal_dev(libc)
    if cfg.get("hide_pids"):
        own_proc(libc)
    for path in cfg.get("hide") or ():
        hide(libc, sandbox, path)
    if cfg.get("read_only_root"):
        # The host's root mount read-only in our namespace (its submounts -- /tmp, /dev, /proc,
        # the hides -- keep their own flags; binds made later from it are read-only too)
        if not os.path.isdir("/opt"):
            with contextlib.suppress(OSError):
                os.mkdir("/opt", 0o755)  # mount_opt's mountpoint, while it can still be made
        if libc.mount(None, b"/", None, MS_REMOUNT | MS_BIND | MS_RDONLY, None) != 0:
            raise OSError(ctypes.get_errno(), "cannot make / read-only")
    return sandbox


def mount(libc, source, target, fstype, flags, options=None):
    """mount(2), raising OSError (a ``None`` argument is passed as NULL)."""
    encoded = [None if v is None else v.encode() for v in (source, target, fstype, options)]
    if libc.mount(encoded[0], encoded[1], encoded[2], flags, encoded[3]) != 0:
        raise OSError(ctypes.get_errno(), f"cannot mount {source or fstype} on {target}")


def minimal_root(libc, cfg):
    """A new root of our own: a tmpfs with only what a runtime needs, the host's root out of reach.

    ``cfg["root"]`` (the engine's ``root_layout``) names the system dirs, the /etc entries and
    the extra dirs shown, all read-only: the host's root is remounted read-only in our
    namespace first, so every bind of it is read-only too (each is remounted read-only as well,
    in case it is a filesystem of its own).  The tmpfs is built at /tmp (in our namespace only),
    moved onto / and chrooted into: the host's root stays in our namespace, *under* the new one,
    unreachable by any path, and an O_PATH fd of it (``host_root``) is where the runtimes' dirs,
    the code and the layers are bound from -- at specialisation too, without an unmount on the
    cold start's path.  That fd is closed before user code runs (``keep_task_root``), and the
    process is unprivileged by then: it cannot chroot, mount or reach what is underneath.
    """
    layout = cfg["root"]
    sandbox = Sandbox(True)
    sandbox.host_root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    mount(libc, None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY)
    stage = "/tmp"
    mount(libc, "tmpfs", stage, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    for path in layout["system"]:
        show(libc, sandbox, path, stage + path)
    os.mkdir(stage + "/etc", 0o755)
    for entry in layout["etc"]:
        show(libc, sandbox, "/etc/" + entry, f"{stage}/etc/{entry}")
    for path in layout["extra"]:
        show(libc, sandbox, path, stage + path)
    # /var/task: where the function's code is bound at specialisation (mount_task), as on AWS
    for path in ("/tmp", "/var/tmp", "/var/task", "/dev", "/proc", "/opt"):
        with contextlib.suppress(FileExistsError):
            os.makedirs(stage + path, 0o755)
    os.chdir(stage)
    mount(libc, stage, "/", None, MS_MOVE)
    if libc.chroot(b".") != 0:
        raise OSError(ctypes.get_errno(), "cannot chroot into the new root")
    os.chdir("/")
    tmp_mb = cfg.get("tmp_mb") or 512
    mount(libc, "tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={tmp_mb}m,mode=1777")
    sandbox.tmp_mb = tmp_mb
    mount(libc, "/tmp", "/var/tmp", None, MS_BIND)  # the other scratch dir: the same tmpfs
    own_proc(libc)  # first: the fd paths below go through it
    minimal_dev(libc, f"/proc/self/fd/{sandbox.host_root}/dev")
    return sandbox


def show(libc, sandbox, path, target):
    """Show the host's ``path`` (a dir, a file, a symlink) at ``target`` in the new root, read-only.

    A symlink into what the new root shows (merged /usr's /bin -> usr/bin, /etc/localtime ->
    /usr/share/zoneinfo/...) is recreated as is; one pointing elsewhere (resolv.conf ->
    /run/...) is followed and its target bound.  Missing: skipped.
    """
    source = path
    if os.path.islink(path):
        real = os.path.realpath(path)
        if any(real == d or real.startswith(d + "/") for d in (*sandbox.shown, "/proc")):
            make_dirs(os.path.dirname(target), 0o755)
            os.symlink(os.readlink(path), target)
            return
        source = real
    if os.path.isdir(source):
        make_dirs(target, 0o755)
    elif os.path.isfile(source):
        make_dirs(os.path.dirname(target), 0o755)
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
    else:
        return
    mount(libc, source, target, None, MS_BIND | MS_REC)
    mount(libc, None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY)
    sandbox.shown.append(path)


DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_LINKS = {
    "fd": "/proc/self/fd",
    "stdin": "/proc/self/fd/0",
    "stdout": "/proc/self/fd/1",
    "stderr": "/proc/self/fd/2",
}


def minimal_dev(libc, host_dev_path="/dev"):
    """/dev with only what programs expect: null, zero, full, random, urandom, tty (bound from
    the host's), the fd links and a /dev/shm of our own -- no disks, GPUs or other devices."""
    host_dev = os.open(host_dev_path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if libc.mount(b"tmpfs", b"/dev", b"tmpfs", MS_NOSUID | MS_NOEXEC, b"size=64k,mode=0755") != 0:
            raise OSError(ctypes.get_errno(), "cannot mount /dev")
        for name in DEV_NODES:
            target = f"/dev/{name}"
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o666))
            source = f"/proc/self/fd/{host_dev}/{name}".encode()
            if libc.mount(source, target.encode(), None, MS_BIND, None) != 0:
                raise OSError(ctypes.get_errno(), f"cannot bind {target}")
        for name, target in DEV_LINKS.items():
            os.symlink(target, f"/dev/{name}")
        os.mkdir("/dev/shm", 0o1777)
        os.chmod("/dev/shm", 0o1777)
        if libc.mount(b"tmpfs", b"/dev/shm", b"tmpfs", MS_NOSUID | MS_NODEV, b"size=64m,mode=1777") != 0:
            raise OSError(ctypes.get_errno(), "cannot mount /dev/shm")
    finally:
        os.close(host_dev)


def own_proc(libc):
    """A /proc of our own in which other users' processes are invisible (hidepid; per mount since
    Linux 5.8): with its own uid, the environment sees only its own processes.  /proc/meminfo,
    /proc/cpuinfo and the like stay as they are."""
    flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
    for options in (b"hidepid=invisible", b"hidepid=2"):
        if libc.mount(b"proc", b"/proc", b"proc", flags, options) == 0:
            return
    raise OSError(ctypes.get_errno(), "cannot mount /proc")


def hide(libc, sandbox, path):
    """Cover ``path`` with an empty tmpfs (root's, 0711: nothing to list or write for the
    environment's user), keeping an fd to bind things back from."""
    if path.startswith("/tmp/") or not os.path.isdir(path):
        return  # under the host's /tmp: hidden already
    fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    if libc.mount(b"tmpfs", path.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, b"size=1m,mode=0711") != 0:
        os.close(fd)
        raise OSError(ctypes.get_errno(), f"cannot hide {path}")
    sandbox.hidden[path] = fd


def make_dirs(path, mode=0o711):
    """``os.makedirs`` with every dir made 0711: an unprivileged user can walk to what is bound
    there but not list what else is (os.makedirs applies its mode to the last dir only)."""
    parent = os.path.dirname(path)
    if parent != path and not os.path.isdir(parent):
        make_dirs(parent, mode)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, mode)


def hidden_root(sandbox, path):
    """The hidden dir (or, with a minimal root, "/") ``path`` is under; None if it is visible."""
    if sandbox.host_root is not None:
        shown = any(path == d or path.startswith(d + "/") for d in sandbox.shown)
        return None if shown else "/"
    for root in sandbox.hidden:
        if path.startswith(root + "/"):
            return root
    return None


def bind_back(libc, sandbox, path):
    """Bind ``path`` (under a hidden dir) at the same place in our namespace.  True if done."""
    if hidden_root(sandbox, path) is None:
        return True
    source = source_of(sandbox, path).encode()
    make_dirs(path)
    if libc.mount(source, path.encode(), None, MS_BIND | MS_REC, None) != 0:
        return False
    if sandbox.host_root is not None:
        sandbox.shown.append(path)  # (read-only: bound from the host's root, remounted so)
    return True


def source_of(sandbox, path):
    """Where ``path`` is reachable from our namespace (through a hidden dir's fd if need be)."""
    root = hidden_root(sandbox, path)
    if root is None:
        return path
    if sandbox.host_root is not None:
        return f"/proc/self/fd/{sandbox.host_root}{path}"
    return f"/proc/self/fd/{sandbox.hidden[root]}/{path[len(root) + 1 :]}"


def keep_task_root(libc, sandbox, paths):
    """Bind the task root -- and, for exec'd runtimes, lamina's runtime files -- back at the same
    paths when they live under a hidden dir (a data dir, or a checkout under /tmp): the
    environment must still see them.  Then the fds of the hidden dirs are closed: user code
    never gets a way back to them."""
    try:
        for path in paths:
            if not bind_back(libc, sandbox, path):
                raise OSError(ctypes.get_errno(), f"cannot bind {path} into the sandbox")
        if sandbox.host_root is not None:  # a minimal root: read-only once its last dir is made
            mount(libc, None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY)
    finally:
        sandbox.close()


def mount_task(libc, sandbox, code_dir, task_root):
    """Bind the function's code (its dir in the code store) read-only at ``task_root``: AWS's
    /var/task, a mountpoint made with the minimal root.  Two mounts (~20 us): the remount makes
    it read-only whatever filesystem the code store is on."""
    mount(libc, source_of(sandbox, code_dir), task_root, None, MS_BIND | MS_REC)
    mount(libc, None, task_root, None, MS_REMOUNT | MS_BIND | MS_RDONLY)
    sandbox.shown.append(task_root)  # keep_task_root: nothing to bind back there


# What names the task root: what task_fallback points at the code where it is instead
TASK_VARIABLES = ("LAMBDA_TASK_ROOT", "LD_LIBRARY_PATH", "PYTHONPATH", "NODE_PATH", "AWS_LAMBDA_EXEC_WRAPPER")


def task_fallback(env, task_root, code_dir):
    """No minimal root to bind ``task_root`` (/var/task) in (an unprivileged server, no mount
    namespace): the variables name ``code_dir``, the code where it is, instead."""
    prefix = task_root + "/"
    for key in TASK_VARIABLES:
        if key in env:
            env[key] = ":".join(
                code_dir + p[len(task_root) :] if p == task_root or p.startswith(prefix) else p
                for p in env[key].split(":")
            )


def mount_opt(libc, sandbox, opt_dir):
    """Bind the function's merged layers read-only at /opt, in our own mount namespace.

    A layer tree under a hidden dir is reached through its fd.  Returns False when it cannot:
    the caller then points the /opt paths at ``opt_dir`` itself.
    """
    source = source_of(sandbox, opt_dir)
    if not os.path.isdir("/opt"):
        try:
            os.mkdir("/opt", 0o755)  # the mountpoint only; nothing is written to the host's /opt
        except OSError:
            return False
    if libc.mount(source.encode(), b"/opt", None, MS_BIND | MS_REC, None) != 0:
        return False
    if libc.mount(b"none", b"/opt", None, MS_REMOUNT | MS_BIND | MS_RDONLY, None) != 0:
        libc.umount2(b"/opt", MNT_DETACH)
        return False
    return True


def resize_tmp(libc, sandbox, size_mb):
    """The tmpfs at /tmp to the function's EphemeralStorage (a remount: ~20 us)."""
    if sandbox.tmp_mb is None or size_mb == sandbox.tmp_mb:
        return
    options = f"size={size_mb}m,mode=1777".encode()
    if libc.mount(b"tmpfs", b"/tmp", b"tmpfs", MS_REMOUNT | MS_NOSUID | MS_NODEV, options) != 0:
        raise OSError(ctypes.get_errno(), "cannot size /tmp")
    sandbox.tmp_mb = size_mb


def drop_privileges(libc, cfg):
    """Become the environment's own unprivileged user (no groups), still dying with the zygote.

    Changing credentials clears the parent-death signal: it is set again, and the parent checked.
    """
    uid = cfg.get("uid")
    if uid is None:
        return
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    if cfg.get("nproc"):  # no pids cgroup: the uid is the environment's own, so this counts it alone
        resource.setrlimit(resource.RLIMIT_NPROC, (cfg["nproc"], cfg["nproc"]))
    os.setresuid(uid, uid, uid)
    # Changing credentials made us non-dumpable: our /proc entries root's, our own children
    # unable to see us.  The uid is this environment's alone, so being dumpable exposes nothing.
    libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != cfg["zygote_pid"]:
        os._exit(70)


OPT_VARIABLES = ("PATH", "LD_LIBRARY_PATH", "PYTHONPATH", "NODE_PATH")


def opt_fallback(env, extra_paths, opt_dir):
    """No /opt mount: the layer paths name the merged tree where it is."""
    for key in OPT_VARIABLES:
        if key in env:
            env[key] = ":".join(opt_dir + p[4:] if p.startswith("/opt/") else p for p in env[key].split(":"))
    return [opt_dir + p[4:] if p.startswith("/opt/") else p for p in extra_paths]
