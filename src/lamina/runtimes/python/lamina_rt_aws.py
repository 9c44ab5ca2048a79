"""lamina's Python runtime: what a function sees of AWS's Python runtime interface client
(awslambdaric) -- error objects, log lines and records, the context, JSON encoding, handler loading.

Part of the runtime bootstrap.py imports at start-up (see its docstring); standard library only."""

from __future__ import annotations

import contextlib
import decimal
import importlib
import json
import logging
import math
import os
import sys
import time
import traceback
from json.encoder import c_make_encoder, encode_basestring, encode_basestring_ascii

# The runtime's own files, as awslambdaric tells its frames (invoke, handler loading) from the
# function's: "/bootstrap.py" as awslambdaric checks it, and this runtime's other modules.
OWN_FILES = ("/bootstrap.py", "/lamina_rt_")
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
        if not any(own in frame[0] for own in OWN_FILES):
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


def _environ_reader(name):
    """``os.environ.get(name)`` read from os.environ's own mapping with the key encoded once:
    still read per invocation, as awslambdaric does (a handler may change them), at half the cost."""
    environ = os.environ
    key, decode = environ.encodekey(name), environ.decodevalue

    def read():
        try:  # whatever os.environ is now (a handler could even replace it)
            value = os.environ._data.get(key)
        except AttributeError:
            return os.environ.get(name)
        return None if value is None else decode(value)

    return read


_LOG_GROUP = _environ_reader("AWS_LAMBDA_LOG_GROUP_NAME")
_LOG_STREAM = _environ_reader("AWS_LAMBDA_LOG_STREAM_NAME")
_FUNCTION_NAME = _environ_reader("AWS_LAMBDA_FUNCTION_NAME")
_MEMORY_SIZE = _environ_reader("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
_FUNCTION_VERSION = _environ_reader("AWS_LAMBDA_FUNCTION_VERSION")


class LambdaContext:
    def __init__(self, header):
        self.aws_request_id = header["id"]
        self.log_group_name = _LOG_GROUP()
        self.log_stream_name = _LOG_STREAM()
        self.function_name = _FUNCTION_NAME()
        self.memory_limit_in_mb = _MEMORY_SIZE()
        self.function_version = _FUNCTION_VERSION()
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
