"""lamina's Python runtime: the zygote -- preloading, the control socket, a fork per environment
(each in a pid namespace of its own), reaping and exit reports.

Part of the runtime bootstrap.py imports at start-up (see its docstring); standard library only."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import json
import os
import select
import selectors
import signal
import socket
import sys
import traceback

from lamina_rt_aws import RequestState, flush_stdio, setup_logging
from lamina_rt_environment import run_environment
from lamina_rt_sandbox import CLONE_NEWPID, PR_SET_PDEATHSIG


class PidNamespace:
    """Each environment in a pid namespace of its own, with an init of ours as its pid 1.

    ``unshare(CLONE_NEWPID)`` only changes the namespace the zygote's *next* children are born
    in: the first fork is pid 1 there (``pid_init``), the second -- the environment -- pid 2.
    Both stay the zygote's children, so the zygote reaps the environment itself and reports its
    exact exit status, and the engine knows it by its host pid (cgroup, kill, peers, RSS) as
    before.  ``setns`` to the zygote's own namespace then puts later forks back where they were.
    When the environment is reaped, its init is SIGKILLed, and the kernel kills whatever is
    left in the namespace: orphans and daemons cannot outlive the environment, cgroups or not.
    Not root (unshare fails): None, and the environment is forked as before.
    """

    def __init__(self, libc):
        self.libc = libc
        self.inits = set()  # pids of live inits (reaped silently: they are not environments)
        self.own = self.zygote = None
        try:
            self.zygote = os.pidfd_open(os.getpid())  # what an init watches: see pid_init
            self.own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        except (OSError, AttributeError):  # Linux < 5.3: no pid namespaces, as before
            self.close()

    def enter(self):
        """A new pid namespace for the next fork, with its init forked already; None if not."""
        if self.own is None or self.libc.unshare(CLONE_NEWPID) != 0:
            return None
        try:
            init = os.fork()
        except OSError:
            self.leave()
            return None
        if init == 0:
            pid_init(self.libc, self.zygote)
        self.inits.add(init)
        return init

    def leave(self):
        if self.libc.setns(self.own, CLONE_NEWPID) != 0:  # never fork into an old namespace
            raise OSError(ctypes.get_errno(), "cannot return to the zygote's pid namespace")

    def close(self):
        """In a child: these fds are the zygote's business."""
        for fd in (self.own, self.zygote):
            if fd is not None:
                os.close(fd)
        self.own = self.zygote = None


# What an init execs once set up: any program that just waits.  Its ignored SIGCHLD and its
# parent-death signal survive the exec; its memory is a few pages of the program's instead of
# the ~1.2 MB of the zygote's heap a forked Python touches (bench/density.py).
INIT_SLEEPERS = ("/usr/bin/sleep", "/bin/sleep")
INIT_ARGV = ["lamina-init", "2147483647"]  # seconds: 68 years (GNU's "infinity" is not POSIX)


def pid_init(libc, zygote_pidfd):
    """pid 1 of an environment's pid namespace: reaps orphans, lives as long as the zygote.

    SIGCHLD ignored: the kernel reaps the children it inherits (orphans reparented to pid 1)
    without a wait loop.  It runs as root in the host's mount namespace and is not in the
    environment's cgroup: the environment (another uid) can neither see nor signal it, and it
    runs nothing but a wait (``INIT_SLEEPERS``, else this Python loop).  It ends when the zygote
    kills it (its environment exited) or when the zygote itself exits (the parent-death signal;
    the zygote's pidfd covers a death before the prctl).  Never returns.
    """
    try:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)
        os.closerange(3, zygote_pidfd)  # nothing of the zygote's: not its sockets, not the env's fds
        os.closerange(zygote_pidfd + 1, 1 << 20)
        if select.select([zygote_pidfd], [], [], 0)[0]:
            return  # the zygote died before the prctl
        for path in INIT_SLEEPERS:
            with contextlib.suppress(OSError):
                os.execv(path, INIT_ARGV)
        while not select.select([zygote_pidfd], [], [])[0]:
            pass
    finally:
        os._exit(0)


class Zygote:
    def __init__(self, control_fd, options):
        self.ctl = socket.socket(fileno=control_fd)
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.children = {}  # pid -> env id
        self.inits = {}  # env pid -> the pid of its pid namespace's init (PidNamespace)
        self.pid_namespace = PidNamespace(self.libc)
        self.state = RequestState()
        self.stdlib_paths = list(sys.path)  # before preloading appends its dirs
        self.options = options
        self.preloaded = Preloaded()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.selector = selectors.DefaultSelector()

    def send(self, message):
        self.ctl.send(json.dumps(message).encode())

    def serve(self):
        self.libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # dies with the engine, not with Ctrl-C
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # wakes the selector only
        setup_logging(self.state)
        self.selector.register(self.ctl, selectors.EVENT_READ)
        self.selector.register(self.wake_r, selectors.EVENT_READ)
        names = self.options.get("preload") or ()
        self.preloaded = preload_modules(names, self.options.get("preload_paths") or ())
        gc.collect()
        gc.freeze()  # keep the pre-imported heap shared (copy-on-write) across forks
        hello = {"t": "hello", "pid": os.getpid(), "version": list(sys.version_info[:2])}
        hello["preloaded"] = [name for name in names if name not in self.preloaded.skipped]
        hello["skipped"] = self.preloaded.skipped
        self.send(hello)
        while True:
            for key, _ in self.selector.select():
                if key.fileobj is self.ctl:
                    if not self.on_control():
                        self.shutdown()
                        return
                else:
                    self.reap()

    def on_control(self):
        msg, fds, _flags, _addr = socket.recv_fds(self.ctl, 65536, 4)
        if not msg:
            for fd in fds:
                os.close(fd)
            return False
        request = json.loads(msg)
        if request.get("t") == "spawn" and len(fds) in (2, 3):
            if len(fds) == 3:  # a no-network spare's line back to the engine (isolate_network)
                request["cfg"]["net_fd"] = fds.pop()
            self.spawn(request, fds[0], fds[1])
        else:
            for fd in fds:
                os.close(fd)
        return True

    def spawn(self, request, chan_fd, log_fd):
        cfg = request["cfg"]
        init = self.pid_namespace.enter() if cfg.get("pid_ns") else None
        # The parent as the child sees it: outside its pid namespace, the zygote is pid 0 to it
        cfg["zygote_pid"] = os.getpid() if init is None else 0
        try:
            pid = os.fork()
        except BaseException:
            if init is not None:
                self.pid_namespace.leave()
                self.kill_init(init)
            raise
        if pid == 0:
            os._exit(self.child(cfg, chan_fd, log_fd))
        if init is not None:
            self.pid_namespace.leave()
            self.inits[pid] = init
        os.close(chan_fd)
        os.close(log_fd)
        if cfg.get("net_fd") is not None:
            os.close(cfg["net_fd"])
        self.children[pid] = request["id"]
        self.send({"t": "spawned", "id": request["id"], "pid": pid})

    def kill_init(self, init):
        """End a pid namespace: the kernel kills whatever is left in it (orphans, daemons)."""
        with contextlib.suppress(OSError):
            os.kill(init, signal.SIGKILL)

    def child(self, cfg, chan_fd, log_fd):
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self.selector.close()
            self.ctl.close()
            os.close(self.wake_r)
            os.close(self.wake_w)
            self.pid_namespace.close()
            code = run_environment(
                cfg, chan_fd, log_fd, self.state, self.libc, self.stdlib_paths, self.preloaded
            )
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            traceback.print_exc()
        flush_stdio()
        return code

    def reap(self):
        try:
            while os.read(self.wake_r, 512):
                pass
        except BlockingIOError:
            pass
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in self.pid_namespace.inits:  # an init, killed below when its env exited
                self.pid_namespace.inits.discard(pid)
                continue
            init = self.inits.pop(pid, None)
            if init is not None:
                self.kill_init(init)
            env_id = self.children.pop(pid, None)
            code = os.waitstatus_to_exitcode(status)
            report = {"t": "exit", "id": env_id, "pid": pid}
            if code < 0:
                report["signal"] = -code
            else:
                report["code"] = code
            self.send(report)

    def shutdown(self):
        for pid in list(self.children):
            for kill in (os.killpg, os.kill):  # the env's process group, then the env itself
                with contextlib.suppress(OSError):
                    kill(pid, signal.SIGKILL)
        for init in self.pid_namespace.inits:
            self.kill_init(init)
        for pid in [*self.children, *self.pid_namespace.inits]:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


# ----------------------------------------------------------------------------- preloading
class Preloaded:
    """What the zygote imported for ``preload`` (``preload_modules``), shared by every fork."""

    __slots__ = ("modules", "paths", "skipped", "top_names")

    def __init__(self, modules=(), paths=(), skipped=None):
        self.modules = frozenset(modules)  # every name preloading added to sys.modules
        self.top_names = frozenset(name.partition(".")[0] for name in self.modules)
        self.paths = list(paths)  # where they came from: last on environments' sys.path
        self.skipped = skipped or {}  # requested name -> why it could not be imported


def preload_modules(names, paths):
    """Import ``names`` in the zygote, before gc.freeze(): every environment forks with them.

    Looked up in ``paths``, then the interpreter's own site-packages (not on sys.path: -S), both
    after the stdlib.  A module that fails to import is skipped, never fatal.  The dirs that
    provided any module stay on sys.path, last, in the zygote and in environments: a preloaded
    package's lazy imports (boto3 imports s3transfer only for S3) must still resolve, and a
    function's own copy (task root, layers) comes first, as /var/runtime's boto3 does on AWS.
    """
    if not names:
        return Preloaded()
    import site  # with -S this changes nothing (3.3+): it only says where site-packages is

    search = []
    for path in [*paths, *site.getsitepackages()]:
        path = os.path.abspath(path)
        if os.path.isdir(path) and path not in search and path not in sys.path:
            search.append(path)
    sys.path.extend(search)
    before = set(sys.modules)
    skipped = {}
    for name in names:
        try:
            importlib.import_module(name)
        except (Exception, SystemExit) as exc:
            skipped[name] = f"{type(exc).__name__}: {exc}"
    added = [name for name in sys.modules if name not in before]
    files = [getattr(sys.modules[name], "__file__", None) or "" for name in added]
    used = [d for d in search if any(f.startswith(d + os.sep) for f in files)]
    sys.path[:] = [p for p in sys.path if p not in search or p in used]
    return Preloaded(added, used, skipped)
