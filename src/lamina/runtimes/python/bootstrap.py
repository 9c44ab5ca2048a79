"""lamina's Python runtime: the zygote and, after each fork, one environment.

This file and its ``lamina_rt_*`` modules run INSIDE the function's interpreter (CPython
3.11-3.14), started by the engine as ``<python> -I -S bootstrap.py zygote <fd>``.  They must use
the standard library only and must not import lamina: the target interpreter has neither lamina
nor its dependencies.

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

Modules: this file is the entry point (``main``) and the Runtime API client; the rest lives in
sibling modules named ``lamina_*``, a prefix of lamina's own (AWS's runtime is the
``awslambdaric`` package), all imported here at start-up -- before a function's dirs are on
sys.path, so none of its modules can stand in for them:
- ``lamina_rt_wire``: the channel's frame codec and the log pipe;
- ``lamina_rt_aws``: awslambdaric's behaviour -- errors, logging, JSON, the context, handlers;
- ``lamina_rt_sandbox``: mounts, the minimal root, /dev, /proc, /var/task, /opt, privileges;
- ``lamina_rt_environment``: a spare, its specialisation, INIT, extensions, exec'd runtimes;
- ``lamina_rt_invoke``: the invoke loop, one invoke, the trace id, response streaming;
- ``lamina_rt_zygote``: preloading, the control socket, forks, pid namespaces, reaping.
- ``lamina_rt_seccomp``: the seccomp filter each environment installs (``lamina_rt_environment``).

Concurrency: the zygote is single-threaded; SIGCHLD only wakes its selector (set_wakeup_fd), so
reaping and all socket writes happen in the main loop and never interleave.  An environment
handles one invocation at a time, in its main thread.
"""

from __future__ import annotations

import json
import os
import sys

# The runtime's own modules, beside this file, are all imported now, before any fork: an
# environment enters a sandbox (a minimal root, dropped privileges) in which this dir may not be
# visible, so nothing is imported from it later.  The zygote runs with -I (the script's dir is
# not on sys.path): it is put there for these imports only, and sys.path is left as it was.
_RUNTIME_DIR = os.path.dirname(os.path.abspath(__file__))
_SYS_PATH = list(sys.path)
sys.path.insert(0, _RUNTIME_DIR)
try:
    from lamina_rt_aws import (
        RequestState,
        ResultEncoder,
        flush_stdio,
        init_fault,
        load_handler,
        setup_log_format,
        setup_logging,
    )
    from lamina_rt_environment import escapes_unicode, set_stdio
    from lamina_rt_invoke import install_streaming_module, invoke
    from lamina_rt_zygote import Zygote
finally:
    sys.path[:] = _SYS_PATH
    if _RUNTIME_DIR not in sys.path:  # nor a finder cached for it
        sys.path_importer_cache.pop(_RUNTIME_DIR, None)


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
