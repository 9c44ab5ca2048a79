"""lamina's Python runtime: one environment, from the zygote's fork to its invoke loop -- a spare
prepared ahead of need, specialised into the function's environment, INIT, or an exec'd runtime.

Part of the runtime bootstrap.py imports at start-up (see its docstring); standard library only."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import importlib.util
import json
import os
import resource
import signal
import socket
import struct
import sys
import time

import lamina_rt_seccomp
from lamina_rt_aws import ResultEncoder, flush_stdio, init_fault, load_handler, setup_log_format
from lamina_rt_invoke import TraceVar, install_streaming_module, invoke, invoke_loop
from lamina_rt_sandbox import (
    CLONE_NEWNET,
    PR_SET_PDEATHSIG,
    bind_back,
    drop_privileges,
    hidden_root,
    keep_task_root,
    make_dirs,
    mount_opt,
    mount_private,
    mount_task,
    opt_fallback,
    resize_tmp,
    task_fallback,
)
from lamina_rt_wire import FRAME_JSON, SCAN, Channel, LogPipe

SECCOMP = lamina_rt_seccomp.for_host()  # built once, here in the zygote: each environment installs it


def set_stdio(log_fd):
    """fds 1 and 2 on the log pipe; ``log_fd`` itself stays open (``LogPipe``)."""
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    # Line-buffered text streams on the pipe, alive as long as the process.
    sys.stdout = sys.__stdout__ = open(1, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = sys.__stderr__ = open(  # noqa: SIM115
        2, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False
    )


def prepare_spare(cfg, libc, log_fd, preloaded):
    """Everything that does not depend on the function: done before a function needs it.

    Order matters: cgroups first, so all later memory counts.  Returns ``mount_private``'s answer.
    """
    for procs in cfg.get("cgroup_procs") or ():
        with open(procs, "w") as f:
            f.write(str(os.getpid()))
    if cfg.get("nofile"):
        resource.setrlimit(resource.RLIMIT_NOFILE, (cfg["nofile"], cfg["nofile"]))
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != cfg["zygote_pid"]:  # the zygote died before prctl took effect
        os._exit(70)
    os.setsid()  # own process group: the engine can kill the env and its children at once
    sandbox = mount_private(libc, cfg)
    if sandbox.private:
        # What this interpreter reads lazily (its stdlib, a preloaded package's lazy imports)
        # must stay visible when it lives under a hidden dir (a pyenv under /root).
        for path in {*runtime_prefixes(), *(cfg.get("expose") or ()), *preloaded.paths}:
            with contextlib.suppress(OSError):
                bind_back(libc, sandbox, path)
    parent = cfg.get("code_parent")
    if sandbox.private and parent and hidden_root(sandbox, parent):
        # Code under a hidden dir is bound back (keep_task_root) onto a dir made here; its
        # parents (the code store's path, ~4 mkdirs, 0.15 ms) are made now, off the cold start.
        with contextlib.suppress(OSError):
            make_dirs(parent)
    set_stdio(log_fd)
    warm_up()
    return sandbox


# ----------------------------------------------------------------------------- no network
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
IFREQ_FLAGS = struct.Struct("16sh14x")  # struct ifreq: the name, then ifr_flags (40 bytes)
RUNTIME_API_PORT = 9001  # AWS's AWS_LAMBDA_RUNTIME_API is 127.0.0.1:9001


def isolate_network(libc, net_fd):
    """No network for this environment (a function tagged ``lamina:network`` = ``none``).

    A network namespace of its own, whose only interface is loopback: the host's interfaces,
    its loopback services (the lamina API, other processes' ports), the internet and the
    host's abstract Unix sockets are all out of reach.  ``lo`` is brought up so the function
    can use 127.0.0.1 within itself -- and so that the Runtime API can live there: we listen on
    127.0.0.1:9001 *inside* the namespace and hand the listening socket (with an fd of the
    namespace, for the Telemetry API's connections out to an extension) to the engine over
    ``net_fd`` (SCM_RIGHTS).  The engine accepts on it; only processes in this namespace --
    this environment's own -- can ever connect.  Fails closed: without a namespace the spare
    reports a failure rather than run a no-network function with the host's network.
    """
    line = socket.socket(fileno=net_fd)
    try:
        if libc.unshare(CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "cannot make a network namespace")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            flags = IFREQ_FLAGS.unpack(fcntl.ioctl(probe, SIOCGIFFLAGS, IFREQ_FLAGS.pack(b"lo", 0)))[1]
            fcntl.ioctl(probe, SIOCSIFFLAGS, IFREQ_FLAGS.pack(b"lo", flags | IFF_UP))
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
            listener.bind(("127.0.0.1", RUNTIME_API_PORT))
            listener.listen(64)
            netns = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                socket.send_fds(line, [b"netns"], [listener.fileno(), netns])
            finally:
                os.close(netns)  # the engine has its copies: the function gets neither
    finally:
        line.close()


def runtime_prefixes():
    """The dirs this interpreter runs from (real paths): they must stay visible in the sandbox."""
    found = {os.path.realpath(p) for p in (sys.base_prefix, sys.prefix, sys.exec_prefix)}
    found.add(os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))))
    return sorted(found)


WARM_UP_SOURCE = "def handler(event, context):\n    return {'event': event, 'id': context.aws_request_id}\n"


def warm_up():
    """Walk, as a spare, the paths specialisation, INIT and a first invoke take.

    After the fork every page the zygote had is shared; the first write to one (a refcount is
    enough) costs a copy-on-write fault, 3-5 us here.  A cold start hit ~170 of them; made here,
    they are off its path.  They cost no memory they would not have cost anyway -- the same
    pages are written in INIT -- and they are charged to this environment's cgroup already.
    """
    os.environ.clear()  # the function's variables come with the init frame
    os.environ.update({"TZ": ":UTC", "LAMINA_WARM_UP": "1"})
    time.tzset()  # AWS's TZ; tzset with an unchanged TZ is nearly free in INIT
    del os.environ["LAMINA_WARM_UP"]
    importlib.util.find_spec("lamina_warm_up_absent")  # the path finders, their caches
    module = {}
    exec(compile(WARM_UP_SOURCE, "<warm-up>", "exec"), module)  # our own constant: compile and def
    header = {"id": "warm-up", "deadline": 0, "arn": ""}
    invoke(module["handler"], header, b'{"a": [1, 2.5, "x", null, true]}', ResultEncoder(True))
    SCAN(FRAME_JSON.encode(header), 0)


def specialise(cfg, libc, sandbox, stdlib_paths, preloaded):
    """Become the function's environment: /tmp, variables, cwd, import path."""
    private = sandbox.private
    opt_dir = cfg.get("opt_dir")
    opt_mounted = bool(private and opt_dir and mount_opt(libc, sandbox, opt_dir))
    env = dict(cfg["environment"])
    code_dir = cfg.get("code_dir") or cfg["task_root"]
    if code_dir != cfg["task_root"]:  # the engine asked for /var/task (a minimal root)
        if sandbox.host_root is not None:
            mount_task(libc, sandbox, code_dir, cfg["task_root"])
        else:
            task_fallback(env, cfg["task_root"], code_dir)
            cfg["task_root"] = code_dir
    if private:
        resize_tmp(libc, sandbox, cfg.get("tmp_mb") or sandbox.tmp_mb)
        keep_task_root(libc, sandbox, [cfg["task_root"], *cfg.get("runtime_paths", ())])
    extra_paths = cfg["extra_paths"]
    if opt_dir and not opt_mounted:
        extra_paths = opt_fallback(env, extra_paths, opt_dir)
    # Where this function's layers are seen (None: it has none, and the host's /opt is not theirs)
    cfg["opt_root"] = None if not opt_dir else "/opt" if opt_mounted else opt_dir
    if not private:
        env["TMPDIR"] = cfg["tmp_dir"]
    os.environ.clear()
    os.environ.update(env)
    time.tzset()
    os.chdir(cfg["task_root"])
    sys.path[:] = [cfg["task_root"], *extra_paths, *stdlib_paths, *preloaded.paths]
    if preloaded.modules and shadows_preloaded(preloaded, [cfg["task_root"], *extra_paths]):
        for name in preloaded.modules:  # it imports exactly as it would without preloading
            sys.modules.pop(name, None)
    return private


def shadows_preloaded(preloaded, own_dirs):
    """Do the function's code or layers provide a module (top-level name) preloading brought in?

    If so, every preloaded module is dropped from this environment's sys.modules, not only
    that one: a preloaded boto3 holds the preloaded botocore, so keeping it beside the zip's
    botocore would mix versions.  One listdir per dir; the import system only for a name that
    matches (a namespace-package dir alone does not shadow a regular package).
    """
    import importlib.machinery  # only with preloading: not in the zygote's heap otherwise

    names = set()
    for path in own_dirs:
        try:
            names.update(entry.partition(".")[0] for entry in os.listdir(path))
        except OSError:
            continue
    for name in names & preloaded.top_names:
        spec = importlib.machinery.PathFinder.find_spec(name, own_dirs)
        if spec is not None and spec.origin is not None:
            return True
    return False


def escapes_unicode(execution_env):
    """AWS's Python runtimes escape non-ASCII in results up to 3.11 and send it as is from 3.12 on."""
    prefix = "AWS_Lambda_python3."
    minor = execution_env[len(prefix) :] if execution_env.startswith(prefix) else ""
    return not (minor.isdigit() and int(minor) >= 12)


def run_environment(spawn_cfg, chan_fd, log_fd, state, libc, stdlib_paths, preloaded):
    chan = Channel(chan_fd)
    logs = LogPipe(log_fd)
    try:
        sandbox = prepare_spare(spawn_cfg, libc, log_fd, preloaded)
        if spawn_cfg.get("net_fd") is not None:
            isolate_network(libc, spawn_cfg.pop("net_fd"))
    except Exception as exc:
        chan.write({"t": "fail", "error": f"{type(exc).__name__}: {exc}"})
        return 70
    header, _ = chan.read()  # a spare until the engine sends the function to run
    if header is None:
        return 0
    cfg = header["cfg"]
    cfg["tmp_dir"] = spawn_cfg["tmp_dir"]
    try:
        private = specialise(cfg, libc, sandbox, stdlib_paths, preloaded)
        drop_privileges(libc, spawn_cfg)
        if spawn_cfg.get("seccomp"):  # last: mounts and the privilege drop need what it refuses
            if isinstance(SECCOMP, Exception):
                raise SECCOMP  # fail closed: no environment without the filter it was promised
            SECCOMP.install(libc)
    except Exception as exc:
        chan.write({"t": "fail", "error": f"{type(exc).__name__}: {exc}"})
        return 70
    opt_root = cfg["opt_root"]
    if opt_root and cfg.get("extensions"):
        paths = [f"{opt_root}/extensions/{name}" for name in cfg["extensions"]]
        if not start_extensions(chan, paths):
            return 0
    if cfg.get("exec") is not None:
        return exec_runtime(chan, cfg["exec"], cfg["task_root"], opt_root)
    encoder = ResultEncoder(ensure_ascii=escapes_unicode(os.environ.get("AWS_EXECUTION_ENV", "")))
    setup_log_format(state, encoder)
    install_streaming_module()
    try:
        handler = load_handler(cfg["handler"])
    except Exception as exc:
        error = init_fault(exc)
        chan.write({"t": "init_error", "rss_kb": max_rss_kb()}, json.dumps(error).encode())
        return 1
    flush_stdio()
    ready = {"t": "ready", "pid": os.getpid(), "private_tmp": private, "rss_kb": max_rss_kb()}
    ready["log_bytes"] = logs.unread()  # last: after everything INIT wrote
    chan.write(ready)
    invoke_loop(chan, logs, handler, encoder, state, TraceVar(libc))
    return 0


def start_extensions(chan, paths):
    """Start the external extensions (executables in /opt/extensions), then wait for the engine.

    They run in this sandbox (cgroup, namespaces, process group, log pipe) with the function's
    variables.  The engine answers ``go`` once every one has registered with the Extensions API
    (AWS starts the runtime only then); False if the engine went away instead.
    """
    pids = []
    for path in paths:
        try:
            pids.append(os.posix_spawn(path, [path], os.environ))
        except OSError as exc:
            sys.stderr.write(f"Extension {os.path.basename(path)} failed to start: {exc.strerror}\n")
    flush_stdio()
    chan.write({"t": "extensions", "pids": pids})
    header, _ = chan.read()
    return header is not None


def exec_runtime(chan, launch, task_root, opt_root):
    """Become the runtime (a custom runtime's bootstrap, node): execve in this sandbox.

    ``launch["argv"]`` is the command; empty for provided.* runtimes, whose command is the zip's
    executable ``bootstrap`` or else a layer's /opt/bootstrap.  Everything set up so far --
    cgroup, namespaces, process group, /tmp, /opt, stdout/stderr on the log pipe, variables,
    cwd -- survives the exec; the channel and the zygote's fds are close-on-exec, so the engine
    sees the channel close at the exec and talks to the runtime over the Runtime API from then
    on.  What AWS reports as Runtime.InvalidEntrypoint is sent on the channel instead.
    """
    argv = list(launch.get("argv") or ())
    if not argv:
        candidates = [os.path.join(task_root, "bootstrap"), os.path.join(opt_root or "/opt", "bootstrap")]
        found = [c for i, c in enumerate(candidates) if (i == 0 or opt_root) and os.path.isfile(c)]
        if not found:
            error = f"Couldn't find valid bootstrap(s): [{' '.join(candidates)}]"
            chan.write({"t": "entrypoint_error", "error": error})
            return 1
        argv = [found[0]]
    wrapper = os.environ.get("AWS_LAMBDA_EXEC_WRAPPER") if launch.get("wrapper") else None
    if wrapper:
        argv = [wrapper, *argv]
    # Python ignores these at start-up; an ignored disposition would survive the exec.
    for name in ("SIGPIPE", "SIGXFSZ", "SIGINT", "SIGTERM"):
        signal.signal(getattr(signal, name), signal.SIG_DFL)
    flush_stdio()
    try:
        os.execve(argv[0], argv, os.environ)
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        chan.write({"t": "entrypoint_error", "error": f"fork/exec {argv[0]}: {reason}"})
        return 1


def max_rss_kb():
    """The process's peak RSS (VmHWM): Max Memory Used counts it (see environment.py)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
