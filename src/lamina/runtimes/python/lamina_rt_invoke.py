"""lamina's Python runtime: an environment's invocations -- the invoke loop, one invoke, the trace
id variable, response streaming (the ``lamina_streaming`` module handlers import).

Part of the runtime bootstrap.py imports at start-up (see its docstring); standard library only."""

from __future__ import annotations

import ctypes
import json
import os
import resource
import sys
import types

from lamina_rt_aws import Fault, LambdaContext, fault_from_exc, flush_stdio, log_error, make_error


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
        if len(raw) > self.SIZE or raw.find(b"\0") >= 0:  # ``in`` raises and clears a TypeError
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


_SCAN = json.JSONDecoder().scan_once  # json.loads's own C scanner, without its Python wrappers


def load_event(payload):
    """``json.loads(payload)``, the short way for a UTF-8 object or array (the C scanner alone,
    ~1.5 us less per invoke); anything else, and any doubt, goes to json.loads itself, whose
    errors are the ones reported."""
    if payload[:1] in (b"{", b"[") and not (len(payload) > 1 and payload[1] == 0):
        try:
            text = payload.decode("utf-8")
            value, end = _SCAN(text, 0)
        except (ValueError, StopIteration, RecursionError):
            pass
        else:
            if end == len(text) or not text[end:].strip(" \t\n\r"):
                return value
    return json.loads(payload)


def invoke(handler, header, payload, encoder, send_chunk=None):
    request_id = header["id"]
    try:
        context = LambdaContext(header)
        try:
            event = load_event(payload) if payload else {}
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
# ``lamina_streaming.stream_response`` (a module this runtime provides): the handler returns
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
