"""lamina's Python runtime: the zygote and, after each fork, one environment.

This file runs INSIDE the function's interpreter (CPython 3.11-3.14), started by the engine as
``<python> -I -S bootstrap.py zygote <fd>``.  It must use the standard library only and must not
import lamina: the target interpreter has neither lamina nor its dependencies.

Roles
- zygote: pre-imports what the runtime needs (and the packages configured to be preloaded, see
  ``preload_modules``), then loops on its control socket (SOCK_SEQPACKET):
  a ``spawn`` message carries a JSON description plus two fds (the environment's channel end and
  the write end of its log pipe) via SCM_RIGHTS; the zygote forks, answers ``spawned`` with the
  pid, reaps its children on SIGCHLD and reports every ``exit`` so the engine can tell
  "exit status 1" from "signal: killed".  EOF on the control socket means the engine is gone
  or closing: kill every child, reap them, exit.
- environment (the forked child), in two steps.  As a *spare*, ahead of need: join its cgroup
  (slow on cgroup v1: ~15 ms), die with the zygote, own process group, a mount namespace with
  its private /tmp, logs on fds 1 and 2, a warm-up; then block on its channel.  On the ``init``
  frame (the function it is to run): AWS's environment variables, INIT (import the handler),
  ``ready``, then the invoke loop.  Every frame it sends says how many bytes of the log pipe
  are still unread (``log_bytes``) and its peak RSS (``rss_kb``).

Behaviour (error objects, log lines, context, JSON encoding) mirrors AWS's Python runtime
interface client (awslambdaric) so functions see what they see on AWS.

Concurrency: the zygote is single-threaded; SIGCHLD only wakes its selector (set_wakeup_fd), so
reaping and all socket writes happen in the main loop and never interleave.  An environment
handles one invocation at a time, in its main thread.
"""

from __future__ import annotations

import array
import contextlib
import ctypes
import decimal
import fcntl
import gc
import importlib
import importlib.util
import json
import logging
import math
import os
import resource
import select
import selectors
import signal
import socket
import struct
import sys
import termios
import time
import traceback
import types
from json.decoder import JSONDecoder
from json.encoder import c_make_encoder, encode_basestring, encode_basestring_ascii

# The runtime's own modules sit beside this file (lamina_*.py).  Run as a script its dir is
# sys.path[0] already; imported by path (tests) it is not.  Imported here, at start-up: the
# environment's sandbox may not show this dir any more by the time they run.
_RUNTIME_DIR = os.path.dirname(os.path.abspath(__file__))
if _RUNTIME_DIR not in sys.path:
    sys.path.insert(0, _RUNTIME_DIR)
import lamina_seccomp  # noqa: E402

SECCOMP = lamina_seccomp.for_host()  # built once, here in the zygote: each environment installs it

# The frame codec is duplicated in lamina/execution/channel.py: this file cannot import lamina.
# A unit test checks both sides agree.  Frame: !II (JSON header length, payload length), the
# JSON header, then the raw payload bytes (never re-encoded).
FRAME_HEADER = struct.Struct("!II")
SMALL_FRAME = 64 * 1024
FRAME_JSON = json.JSONEncoder(separators=(",", ":"))  # one encoder, not one per json.dumps call
SCAN = JSONDecoder().scan_once  # the C scanner: json.loads' wrappers cost more than a header's parse

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

ERROR_LOG_IDENT = "\u00a0"  # awslambdaric indents traceback lines with NO-BREAK SPACE
LAMBDA_WARNING = (
    "LAMBDA_WARNING: Unhandled exception. The most likely cause is an issue in the function code. "
    "However, in rare cases, a Lambda runtime update can cause unexpected function behavior. "
    "For functions using managed runtimes, runtime updates can be triggered by a function change, "
    "or can be applied automatically. To determine if the runtime has been updated, check the "
    "runtime version in the INIT_START log entry. If this error correlates with a change in the "
    "runtime version, you may be able to mitigate this error by temporarily rolling back to the "
    "previous runtime version. For more information, see "
    "https://docs.aws.amazon.com/lambda/latest/dg/runtimes-update.html"
)


# ----------------------------------------------------------------------------- frame codec
def encode_frame(header, payload=b""):
    body = FRAME_JSON.encode(header).encode()
    return FRAME_HEADER.pack(len(body), len(payload)) + body, payload


class Channel:
    """The environment's end of its private socketpair (blocking; one frame at a time)."""

    def __init__(self, fd):
        os.set_inheritable(fd, False)  # a user's subprocess must not hold the channel open
        self.sock = socket.socket(fileno=fd)
        self.rfile = self.sock.makefile("rb", buffering=SMALL_FRAME)

    def read(self):
        rfile = self.rfile
        head = rfile.read(FRAME_HEADER.size)
        if len(head) < FRAME_HEADER.size:
            return None, b""
        hlen, plen = FRAME_HEADER.unpack(head)
        header = SCAN(rfile.read(hlen).decode(), 0)[0]  # the engine's own JSON: no need to check
        payload = rfile.read(plen) if plen else b""
        if len(payload) < plen:
            return None, b""
        return header, payload

    def write(self, header, payload=b""):
        self.write_raw(FRAME_JSON.encode(header).encode(), payload)

    def write_raw(self, body, payload=b""):
        """A frame whose JSON header ``body`` is already encoded."""
        head = FRAME_HEADER.pack(len(body), len(payload)) + body
        if len(payload) < SMALL_FRAME:
            self.sock.sendall(head + payload)
        else:  # do not copy a large payload just to save a syscall
            self.sock.sendall(head)
            self.sock.sendall(payload)


class LogPipe:
    """How many bytes of the log pipe the engine has not read yet (FIONREAD on our copy of it).

    Sent with every frame, after a flush: when it is 0 the engine has already read everything
    written before the frame -- by Python, C code or a subprocess alike -- and can skip a read.
    Our own copy of the write end, so a user's dup2 over fd 1 or 2 cannot blind it.
    """

    def __init__(self, fd):
        os.set_inheritable(fd, False)
        self.fd = fd
        self.buf = array.array("i", [0])

    def unread(self):
        try:
            fcntl.ioctl(self.fd, termios.FIONREAD, self.buf, True)
        except OSError:
            return 1  # unknown: let the engine read
        return self.buf[0]


# ----------------------------------------------------------------------------- AWS behaviour
class Fault(Exception):
    def __init__(self, error_type, msg, trace=None):
        super().__init__(msg)
        self.error_type = error_type
        self.msg = msg
        self.trace = trace


def make_error(message, error_type, stack_trace, request_id=None):
    return {
        "errorMessage": message or "",
        "errorType": error_type or "",
        "requestId": request_id if request_id is not None else "",
        "stackTrace": stack_trace or [],
    }


def fault_from_exc(exc, request_id=None):
    """awslambdaric's build_fault_result: drop the runtime's own leading frames."""
    frames = [(f.filename, f.lineno, f.name, f.line) for f in traceback.extract_tb(exc.__traceback__)]
    for i, frame in enumerate(frames):
        if "/bootstrap.py" not in frame[0]:
            frames = frames[i:]
            break
    return make_error(str(exc), type(exc).__name__, traceback.format_list(frames), request_id)


def _indent(line):
    stripped = line.lstrip(" ")
    return ERROR_LOG_IDENT * (len(line) - len(stripped)) + stripped


class ErrorLog:
    """How handler and INIT errors are logged: awslambdaric's '[ERROR]' text lines, or with
    AWS_LAMBDA_LOG_FORMAT=JSON one JSON object (``setup_log_format``).  Per process: set once,
    when the environment's variables are known, as awslambdaric decides at import."""

    json_encoder = None  # a ResultEncoder (awslambdaric's to_json) when the format is JSON


def log_error(error):
    """One log event: '[ERROR] Type: message' and the traceback, lines joined by '\\r'."""
    encoder = ErrorLog.json_encoder
    if encoder is not None:  # awslambdaric's JSON log_error: timestamp and level first
        stamp = time.strftime(JSON_DATETIME, time.gmtime(time.time()))
        sys.stdout.write(encoder.encode({"timestamp": stamp, "level": "ERROR", **error}) + "\n")
        return
    description = "[ERROR]"
    if error.get("errorType"):
        description += " " + error["errorType"]
    if error.get("errorMessage"):
        if error.get("errorType"):
            description += ":"
        description += " " + error["errorMessage"]
    lines = [description]
    if error.get("stackTrace") is not None:
        lines.append("Traceback (most recent call last):")
        for element in error["stackTrace"]:
            lines.extend([_indent(x) for x in element.splitlines()] if element else [""])
    sys.stdout.write("\r".join(lines) + "\n")


def one_event(text):
    """A multi-line message stays one log event: inner newlines become '\\r' (awslambdaric)."""
    if text.endswith("\n"):
        text = text[:-1]
    return text.replace("\n", "\r") + "\n"


class RequestState:
    """The request id the logging filter stamps on records (empty during INIT), and the root
    logger's handler (``setup_log_format`` may give it the JSON formatter)."""

    request_id = ""
    handler = None


class LambdaLogFilter(logging.Filter):
    def __init__(self, state):
        super().__init__()
        self.state = state

    def filter(self, record):
        record.aws_request_id = self.state.request_id
        return True


class LambdaLogHandler(logging.Handler):
    """Writes to the current sys.stdout (the log pipe), one event per record."""

    def emit(self, record):
        try:
            sys.stdout.write(one_event(self.format(record)))
        except Exception:
            self.handleError(record)


def setup_logging(state):
    logging.Formatter.converter = time.gmtime
    handler = LambdaLogHandler()
    handler.setFormatter(
        logging.Formatter(
            "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
            "%Y-%m-%dT%H:%M:%S",
        )
    )
    handler.addFilter(LambdaLogFilter(state))
    logging.getLogger().addHandler(handler)  # root stays at WARNING, as on AWS
    state.handler = handler


# awslambdaric's lambda_runtime_log_utils: JSON records, their time format, the LogRecord
# attributes that are not ``extra`` fields.
JSON_DATETIME = "%Y-%m-%dT%H:%M:%SZ"
JSON_RESERVED = frozenset(
    {
        "name", "msg", "args", "levelname", "levelno", "pathname", "filename", "module",
        "exc_info", "exc_text", "stack_info", "lineno", "funcName", "created", "msecs",
        "relativeCreated", "thread", "threadName", "processName", "process", "aws_request_id",
        "tenant_id", "_frame_type",
    }
)  # fmt: skip


class JsonFormatter(logging.Formatter):
    """awslambdaric's JsonFormatter: one JSON object per record, key for key."""

    def __init__(self):
        super().__init__(datefmt=JSON_DATETIME)
        # default=str: a value json cannot encode is written as its str(), not lost with the record
        self.encode = json.JSONEncoder(ensure_ascii=False, default=str).encode

    def format(self, record):
        record.levelno = min(50, max(0, record.levelno)) // 10 * 10
        record.levelname = logging.getLevelName(record.levelno)
        exc_info = record.exc_info
        msg = record.msg
        result = {
            "timestamp": self.formatTime(record, self.datefmt),
            "level": record.levelname,
            "message": msg if isinstance(msg, dict) and not record.args else record.getMessage(),
            "logger": record.name,
            "stackTrace": traceback.format_tb(exc_info[2]) if exc_info else None,
            "errorType": exc_info[0].__name__ if exc_info else None,
            "errorMessage": str(exc_info[1]) if exc_info else None,
            "requestId": getattr(record, "aws_request_id", None),
            "location": f"{record.pathname}:{record.funcName}:{record.lineno}" if exc_info else None,
        }
        for key, value in record.__dict__.items():
            if key not in JSON_RESERVED and key not in result:
                result[key] = value
        return self.encode({k: v for k, v in result.items() if v is not None}) + "\n"


def log_level_from_env(value):
    """awslambdaric's reading of AWS_LAMBDA_LOG_LEVEL: TRACE is DEBUG to Python's logging."""
    return {None: "", "TRACE": "DEBUG"}.get(value, value).upper()


def setup_log_format(state, encoder):
    """AWS_LAMBDA_LOG_FORMAT / AWS_LAMBDA_LOG_LEVEL (Lambda sets them from the function's
    LoggingConfig), as awslambdaric applies them: JSON records and errors, the root level."""
    environ = os.environ
    if (environ.get("AWS_LAMBDA_LOG_FORMAT") or "").upper() == "JSON":
        state.handler.setFormatter(JsonFormatter())
        ErrorLog.json_encoder = encoder
    level = log_level_from_env(environ.get("AWS_LAMBDA_LOG_LEVEL"))
    if level in logging._nameToLevel:  # what awslambdaric checks
        logging.getLogger().setLevel(level)


class Encoder(json.JSONEncoder):
    """awslambdaric's encoder: Decimal as a number; non-ASCII kept for python3.12 only (as AWS)."""

    def default(self, o):
        if isinstance(o, decimal.Decimal):
            if o.is_nan():
                return math.nan
            if o.is_finite() and o == o.to_integral_value():
                return int(o)
            return float(o)
        return super().default(o)


class ResultEncoder:
    """``Encoder(...).encode`` without rebuilding the C encoder on every call (~1 us saved).

    Same output: the C encoder JSONEncoder.encode builds, with its separators and ``default``.
    Its markers dict (cycle detection) is empty after a successful call; after a failure it may
    not be, so the C encoder is rebuilt.
    """

    def __init__(self, ensure_ascii):
        self.encoder = Encoder(ensure_ascii=ensure_ascii)
        self.basestring = encode_basestring_ascii if ensure_ascii else encode_basestring
        self.reset()

    def reset(self):
        self.c_encode = None
        if c_make_encoder is not None:
            with contextlib.suppress(TypeError):  # another signature, some day: the plain path
                self.c_encode = c_make_encoder(
                    {}, self.encoder.default, self.basestring, None, ": ", ", ", False, False, True
                )

    def encode(self, o):
        if isinstance(o, str):
            return self.basestring(o)
        if self.c_encode is None:
            return self.encoder.encode(o)
        try:
            return "".join(self.c_encode(o, 0))
        except BaseException:
            self.reset()
            raise


class CognitoIdentity:
    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self, data):
        self.cognito_identity_id = data.get("cognitoIdentityId")
        self.cognito_identity_pool_id = data.get("cognitoIdentityPoolId")


class Client:
    __slots__ = ("app_package_name", "app_title", "app_version_code", "app_version_name", "installation_id")

    def __init__(self, data):
        for name in self.__slots__:
            setattr(self, name, data.get(name))


class ClientContext:
    __slots__ = ("client", "custom", "env")

    def __init__(self, data):
        client = data.get("client")
        self.client = Client(client) if client is not None else None
        self.custom = data.get("custom")
        self.env = data.get("env")


def parse_json_header(text, name):
    try:
        return json.loads(text)
    except Exception as exc:
        raise Fault("Runtime.LambdaContextUnmarshalError", f"Unable to parse {name} JSON: {exc}") from None


class LambdaContext:
    def __init__(self, header):
        env = os.environ
        self.aws_request_id = header["id"]
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME")
        self.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.invoked_function_arn = header.get("arn")
        self.tenant_id = None
        cc = header.get("cc")
        self.client_context = ClientContext(parse_json_header(cc, "Client Context")) if cc else None
        ci = header.get("ci")
        self.identity = CognitoIdentity(parse_json_header(ci, "Cognito Identity") if ci else {})
        self._deadline_ms = header["deadline"]

    def get_remaining_time_in_millis(self):
        remaining = self._deadline_ms - int(time.time() * 1000)
        return remaining if remaining > 0 else 0

    def log(self, msg):
        sys.stdout.write(one_event(str(msg)))

    def __repr__(self):
        return (
            f"LambdaContext([aws_request_id={self.aws_request_id},log_group_name={self.log_group_name},"
            f"log_stream_name={self.log_stream_name},function_name={self.function_name},"
            f"memory_limit_in_mb={self.memory_limit_in_mb},function_version={self.function_version},"
            f"invoked_function_arn={self.invoked_function_arn},client_context={self.client_context},"
            f"identity={self.identity},tenant_id={self.tenant_id}])"
        )


def load_handler(handler):
    """awslambdaric's _get_handler, fault for fault."""
    try:
        modname, fname = handler.rsplit(".", 1)
    except ValueError as exc:
        raise Fault("Runtime.MalformedHandlerName", f"Bad handler '{handler}': {exc}") from None
    try:
        if modname.split(".")[0] in sys.builtin_module_names:
            raise Fault(
                "Runtime.BuiltInModuleConflict", f"Cannot use built-in module {modname} as a handler module"
            )
        module = importlib.import_module(modname.replace("/", "."))
    except ImportError as exc:
        raise Fault("Runtime.ImportModuleError", f"Unable to import module '{modname}': {exc}") from None
    except SyntaxError as exc:
        trace = [f'  File "{exc.filename}" Line {exc.lineno}\n    {exc.text}']
        raise Fault(
            "Runtime.UserCodeSyntaxError", f"Syntax error in module '{modname}': {exc}", trace
        ) from None
    try:
        return getattr(module, fname)
    except AttributeError:
        raise Fault("Runtime.HandlerNotFound", f"Handler '{fname}' missing on module '{modname}'") from None


# ----------------------------------------------------------------------------- environment
def init_fault(exc):
    """INIT failed (the handler did not load): AWS's warning and error lines; the error object."""
    fault = isinstance(exc, Fault)
    error = make_error(exc.msg, exc.error_type, exc.trace) if fault else fault_from_exc(exc)
    # awslambdaric's literal ends with '\r': a JSON record keeps it (a text line never showed it)
    logging.warning(LAMBDA_WARNING + "\r" if ErrorLog.json_encoder is not None else LAMBDA_WARNING)
    log_error(error)
    flush_stdio()
    return error


def flush_stdio():
    # Not contextlib.suppress: this is on every invocation's path, and suppress costs 0.3 us.
    try:  # noqa: SIM105
        sys.stdout.flush()
    except Exception:
        pass
    try:  # noqa: SIM105
        sys.stderr.flush()
    except Exception:
        pass


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


class TraceVar:
    """``_X_AMZN_TRACE_ID`` for each invocation, as awslambdaric sets it -- in ``os.environ`` and in
    the C environment (subprocesses, C extensions) -- but without glibc's ``setenv`` (what
    ``os.environ[...] = v`` calls), which keeps a copy of every value it was ever given: with a new
    trace id per invocation that is ~140 bytes per invoke (42 MB after 300,000), all charged to the
    function's memory until a long-lived warm environment is killed for it.  Instead one buffer is
    handed to ``putenv`` (which keeps the pointer and copies nothing) and overwritten in place, and
    ``os.environ``'s own mapping is updated to match.
    """

    NAME = "_X_AMZN_TRACE_ID"
    SIZE = 1024  # the longest value kept in place; a longer one goes through os.environ (never seen)

    def __init__(self, libc):
        self.putenv = libc.putenv
        self.prefix = (self.NAME + "=").encode()
        self.buf = ctypes.create_string_buffer(len(self.prefix) + self.SIZE + 1)
        environ = os.environ
        self.data = environ._data  # what os.environ and os.getenv read (encoded keys and values)
        self.key = environ.encodekey(self.NAME)
        self.encode = environ.encodevalue
        self.ours = None  # the value last put in place (None: not put yet, or not ours any more)

    def set(self, value):
        raw = self.encode(value)
        if len(raw) > self.SIZE or b"\0" in raw:
            os.environ[self.NAME] = value
            self.ours = None
            return
        self.buf.value = self.prefix + raw  # in place: C's environ points here once put
        data = self.data
        # putenv again only when the variable is not ours any more: user code set or deleted it
        # (os.environ's setenv/unsetenv drop our pointer), or this is the first value
        ours = self.ours
        if (ours is None or data.get(self.key) is not ours) and self.putenv(self.buf) != 0:
            os.environ[self.NAME] = value
            self.ours = None
            return
        data[self.key] = self.ours = raw

    def clear(self):
        if self.NAME in os.environ:  # as awslambdaric does when an invocation has no trace id
            del os.environ[self.NAME]


def invoke_loop(chan, logs, handler, encoder, state, trace_var):
    read, write, unread = chan.read, chan.write_raw, logs.unread

    def send_chunk(chunk):
        flush_stdio()  # what the handler printed before this chunk is in the pipe first
        write(CHUNK_HEADER, chunk)

    while True:
        header, payload = read()
        if header is None:
            return
        state.request_id = header["id"]
        trace = header.get("trace")
        if trace:
            trace_var.set(trace)
        else:
            trace_var.clear()
        kind, body = invoke(handler, header, payload, encoder, send_chunk)
        flush_stdio()  # everything printed is in the pipe before the engine sees the result
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        write(f'{{"t":"{kind}","rss_kb":{rss},"log_bytes":{unread()}}}'.encode(), body)


def invoke(handler, header, payload, encoder, send_chunk=None):
    request_id = header["id"]
    try:
        context = LambdaContext(header)
        try:
            event = json.loads(payload) if payload else {}
        except Exception as exc:
            raise Fault("Runtime.UnmarshalError", f"Unable to unmarshal input: {exc}") from None
        response = handler(event, context)
        if getattr(handler, STREAM_MARK, False):
            if send_chunk is None:  # no stream to the caller here: the chunks make the response
                parts = []
                stream_chunks(response, parts.append)
                return "result", b"".join(parts)
            stream_chunks(response, send_chunk)
            return "result", b""
        if isinstance(response, bytes):
            return "result", response
        try:
            return "result", encoder.encode(response).encode()
        except Exception as exc:
            raise Fault("Runtime.MarshalError", f"Unable to marshal response: {exc}") from None
    except Fault as fault:
        error = make_error(fault.msg, fault.error_type, fault.trace, request_id)
    except Exception as exc:
        error = fault_from_exc(exc, request_id)
    log_error(error)
    return "error", json.dumps(error).encode()


# ----------------------------------------------------------------------------- response streaming
# AWS's Python runtimes do not stream; lamina offers it to handlers marked with
# ``lamina_streaming.stream_response`` (a module this bootstrap provides): the handler returns
# (or is) a generator of bytes/str chunks, each sent to the caller as it is produced.
STREAM_MARK = "__lamina_stream_response__"
CHUNK_HEADER = b'{"t":"chunk"}'


def stream_response(handler):
    """Mark ``handler`` as a streaming handler: what it yields is the response, chunk by chunk."""
    setattr(handler, STREAM_MARK, True)
    return handler


def stream_chunks(response, send_chunk):
    for chunk in response:
        if isinstance(chunk, str):
            chunk = chunk.encode()
        elif not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise Fault(
                "Runtime.MarshalError", f"A streamed chunk must be bytes or str, not {type(chunk).__name__}"
            )
        if chunk:
            send_chunk(bytes(chunk))


def install_streaming_module():
    module = types.ModuleType("lamina_streaming")
    module.stream_response = stream_response
    module.__doc__ = "lamina's response streaming for Python handlers (docs/urls.md)."
    sys.modules["lamina_streaming"] = module


# ----------------------------------------------------------------------------- zygote
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


# ----------------------------------------------------------------------------- Runtime API client
class RuntimeApiClient:
    """A keep-alive HTTP connection to the Runtime API at ``AWS_LAMBDA_RUNTIME_API``."""

    def __init__(self, address):
        import http.client  # only this mode needs it: not in the zygote's pre-imported heap

        host, _, port = address.rpartition(":")
        self.conn = http.client.HTTPConnection(host, int(port))

    def call(self, method, path, body=None, headers=None):
        self.conn.request(method, "/2018-06-01/runtime" + path, body=body, headers=headers or {})
        resp = self.conn.getresponse()
        return resp.status, resp.headers, resp.read()

    def post_error(self, path, error):
        headers = {"Lambda-Runtime-Function-Error-Type": error.get("errorType") or "Runtime.Unknown"}
        return self.call("POST", path, json.dumps(error).encode(), headers)


def run_api_client(address):
    """lamina's Python runtime exec'd as a process of its own, over the Runtime API.

    That is how it runs under AWS_LAMBDA_EXEC_WRAPPER (the wrapper execs ``python bootstrap.py``):
    the same handler loading, invoke, error objects and log lines as the in-process runtime,
    only the transport differs.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0] or ".") == here:
        del sys.path[0]  # the script's own dir is not on AWS's path
    set_stdio(1)
    state = RequestState()
    setup_logging(state)
    client = RuntimeApiClient(address)
    environ = os.environ
    encoder = ResultEncoder(ensure_ascii=escapes_unicode(environ.get("AWS_EXECUTION_ENV", "")))
    setup_log_format(state, encoder)
    install_streaming_module()
    try:
        handler = load_handler(environ.get("_HANDLER", ""))
    except Exception as exc:
        error = init_fault(exc)
        client.post_error("/init/error", error)
        return 1
    while True:
        _, headers, payload = client.call("GET", "/invocation/next")
        request_id = headers.get("Lambda-Runtime-Aws-Request-Id", "")
        header = {
            "id": request_id,
            "deadline": int(headers.get("Lambda-Runtime-Deadline-Ms") or 0),
            "arn": headers.get("Lambda-Runtime-Invoked-Function-Arn"),
            "cc": headers.get("Lambda-Runtime-Client-Context"),
            "ci": headers.get("Lambda-Runtime-Cognito-Identity"),
        }
        state.request_id = request_id
        trace = headers.get("Lambda-Runtime-Trace-Id")
        if trace:
            environ["_X_AMZN_TRACE_ID"] = trace
        elif "_X_AMZN_TRACE_ID" in environ:
            del environ["_X_AMZN_TRACE_ID"]
        kind, body = invoke(handler, header, payload, encoder)
        flush_stdio()
        if kind == "result":
            client.call("POST", f"/invocation/{request_id}/response", body)
        else:
            client.post_error(f"/invocation/{request_id}/error", json.loads(body))


def main(argv):
    if len(argv) >= 3 and argv[1] == "zygote":
        Zygote(int(argv[2]), json.loads(argv[3]) if len(argv) > 3 else {}).serve()
        return 0
    if len(argv) == 1 and os.environ.get("AWS_LAMBDA_RUNTIME_API"):
        return run_api_client(os.environ["AWS_LAMBDA_RUNTIME_API"])
    sys.stderr.write(
        "usage: bootstrap.py zygote <control fd> [<options JSON>]  (or, in an environment: bootstrap.py)\n"
    )
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
