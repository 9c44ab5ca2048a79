"""PythonEngine behaviour against AWS's: results, context, environment, logs, init errors, reuse."""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lamina.execution.types import InvocationOutcome
from tests.unit.test_execution_support import (
    Harness,
    make_input,
    make_spec,
    messages,
    result,
    seen_at,
    write_code,
)

MARKER = "LAMINA_TEST_SERVER_SECRET"
STREAM_RE = re.compile(r"^\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}$")
REPORT_RE = re.compile(
    r"^REPORT RequestId: (?P<id>[0-9a-f-]+)\tDuration: \d+\.\d{2} ms\tBilled Duration: \d+ ms\t"
    r"Memory Size: 128 MB\tMax Memory Used: \d+ MB\t(Init Duration: \d+\.\d{2} ms\t)?$"
)
AWS_KEYS = {
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_EXECUTION_ENV", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
    "_HANDLER", "TZ", "LANG", "PATH", "LD_LIBRARY_PATH", "PYTHONPATH", "NODE_PATH",
}  # fmt: skip


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    os.environ[MARKER] = "must-not-leak"
    try:
        harness = Harness(tmp_path_factory.mktemp("run"), uvloop=True)
        yield harness
        harness.close()
    finally:
        os.environ.pop(MARKER, None)


@pytest.fixture
def code_root(tmp_path: Path) -> Path:
    return tmp_path


HELLO = """
def handler(event, context):
    return {"hello": event.get("name", "world")}
"""


def test_hello_world_cold_then_warm(h: Harness, code_root: Path) -> None:
    spec = make_spec(h.engine, write_code(code_root, HELLO))
    cold = h.invoke(spec, {"name": "lamina"})
    assert result(cold) == {"hello": "lamina"}
    assert cold.function_error is None
    assert STREAM_RE.match(cold.log_stream)
    assert cold.init_duration_ms is not None and cold.init_duration_ms > 0
    lines = messages(cold)
    assert lines[0].startswith("INIT_START Runtime Version: python:3.11.v1\tRuntime Version ARN: ")
    assert lines[0].endswith("arn:aws:lambda:us-east-1::runtime:lamina-python3.11")
    warm = h.invoke(spec)
    assert result(warm) == {"hello": "world"}
    assert warm.log_stream == cold.log_stream
    assert warm.init_duration_ms is None
    assert not any(m.startswith("INIT_START") for m in messages(warm))
    assert warm.billed_duration_ms >= 1 and warm.max_memory_used_mb >= 1


def test_start_end_report_lines(h: Harness, code_root: Path) -> None:
    spec = make_spec(h.engine, write_code(code_root, HELLO))
    for cold in (True, False):
        out = h.invoke(spec)
        lines = messages(out)
        rid = REPORT_RE.match(lines[-1])
        assert rid is not None, lines[-1]
        assert ("Init Duration" in lines[-1]) is cold
        request_id = rid.group("id")
        start = lines.index(f"START RequestId: {request_id} Version: $LATEST")
        assert lines[-2] == f"END RequestId: {request_id}"
        assert start == (1 if cold else 0)


def test_event_and_context(h: Harness, code_root: Path) -> None:
    code = write_code(
        code_root,
        """
        import time
        def handler(event, context):
            first = context.get_remaining_time_in_millis()
            time.sleep(0.02)
            cc, ident = context.client_context, context.identity
            context.log("via context.log")
            return {
                "event": event,
                "aws_request_id": context.aws_request_id,
                "function_name": context.function_name,
                "function_version": context.function_version,
                "invoked_function_arn": context.invoked_function_arn,
                "memory_limit_in_mb": context.memory_limit_in_mb,
                "log_group_name": context.log_group_name,
                "log_stream_name": context.log_stream_name,
                "identity": [ident.cognito_identity_id, ident.cognito_identity_pool_id],
                "client": None if cc is None else [cc.client.installation_id, cc.client.app_title,
                    cc.client.app_version_name, cc.client.app_version_code, cc.client.app_package_name],
                "custom": None if cc is None else cc.custom,
                "env": None if cc is None else cc.env,
                "remaining": [first, context.get_remaining_time_in_millis()],
            }
        """,
    )
    spec = make_spec(h.engine, code, timeout_s=3)
    client_context = {
        "client": {"installation_id": "i-1", "app_title": "App", "app_version_name": "1.0",
                   "app_version_code": "100", "app_package_name": "com.example"},
        "custom": {"k": "v"},
        "env": {"platform": "linux"},
    }  # fmt: skip
    inv = make_input(
        spec,
        {"n": [1, 2.5, "x", None, True]},
        client_context=json.dumps(client_context),
        cognito_identity=json.dumps({"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"}),
    )
    out = h.run(h.engine.invoke(spec, inv))
    got = result(out)
    assert got["event"] == {"n": [1, 2.5, "x", None, True]}
    assert got["aws_request_id"] == inv.request_id
    assert got["function_name"] == spec.function_name
    assert got["function_version"] == "$LATEST"
    assert got["invoked_function_arn"] == spec.function_arn
    assert got["memory_limit_in_mb"] == "128"
    assert got["log_group_name"] == spec.log_group
    assert got["log_stream_name"] == out.log_stream
    assert got["identity"] == ["id-1", "pool-1"]
    assert got["client"] == ["i-1", "App", "1.0", "100", "com.example"]
    assert got["custom"] == {"k": "v"} and got["env"] == {"platform": "linux"}
    first, second = got["remaining"]
    assert 0 < second < first <= 3000
    assert "via context.log" in messages(out)
    bare = result(h.invoke(spec))
    assert bare["identity"] == [None, None] and bare["client"] is None and bare["event"] == {}


def test_environment_variables_exact(h: Harness, code_root: Path) -> None:
    code = write_code(
        code_root,
        """
        import os, sys, time
        def handler(event, context):
            return {"env": dict(os.environ), "cwd": os.getcwd(), "path": sys.path[:3],
                    "tz": time.strftime("%Z"), "whole_path": sys.path}
        """,
    )
    user = {"MY_VAR": "1", "AWS_REGION": "eu-west-1", "TZ": "Europe/Paris"}
    spec = make_spec(h.engine, code, environment=user)
    got = result(h.invoke(spec, trace_id="Root=1-abc-def"))
    env = got["env"]
    tmp_fallback = {"TMPDIR"} if "TMPDIR" in env else set()
    assert set(env) == AWS_KEYS | {"MY_VAR", "_X_AMZN_TRACE_ID"} | tmp_fallback
    assert MARKER not in env
    assert env["MY_VAR"] == "1"
    assert env["AWS_REGION"] == "us-east-1"  # reserved: the user's value does not win
    assert env["TZ"] == "Europe/Paris"  # not reserved
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.11"
    assert env["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "128"
    task = seen_at(spec.code_dir)
    assert env["LAMBDA_TASK_ROOT"] == task == got["cwd"]
    assert env["PYTHONPATH"].split(":")[0] == task and env["LD_LIBRARY_PATH"].startswith(f"{task}:")
    assert env["_HANDLER"] == "app.handler"
    assert env["_X_AMZN_TRACE_ID"] == "Root=1-abc-def"
    assert env["PATH"] == "/usr/local/bin:/usr/bin:/bin:/opt/bin"
    assert Path(env["LAMBDA_RUNTIME_DIR"], "bootstrap.py").is_file()
    assert got["path"][0] == task and "/opt/python" in got["path"]
    assert env["LAMBDA_RUNTIME_DIR"] not in got["whole_path"]  # lamina's runtime files: not importable
    again = result(h.invoke(spec))["env"]  # no trace id: the variable is removed (awslambdaric)
    assert "_X_AMZN_TRACE_ID" not in again
    default_tz = make_spec(h.engine, code)
    got = result(h.invoke(default_tz))
    assert got["env"]["TZ"] == ":UTC" and got["tz"] == "UTC"


def test_tmp_private_per_env_and_persistent(h: Harness, code_root: Path) -> None:
    code = write_code(
        code_root,
        """
        import os, tempfile
        def handler(event, context):
            tmp = tempfile.gettempdir()
            if event.get("write"):
                with open(os.path.join(tmp, event["write"]), "w") as f:
                    f.write("x")
            return {"files": sorted(n for n in os.listdir(tmp) if n.startswith("lamina-t-")), "tmp": tmp}
        """,
    )
    spec = make_spec(h.engine, code)
    names = [f"lamina-t-{uuid.uuid4().hex}" for _ in range(2)]

    async def both() -> list[InvocationOutcome]:
        return list(
            await asyncio.gather(*(h.engine.invoke(spec, make_input(spec, {"write": n})) for n in names))
        )

    first, second = h.run(both())
    assert first.log_stream != second.log_stream  # two environments
    assert result(first)["files"] == [names[0]]
    assert result(second)["files"] == [names[1]]  # does not see the other env's file
    warm = h.invoke(spec)
    assert len(result(warm)["files"]) == 1  # persisted in its own env only
    private = result(warm)["tmp"] == "/tmp"
    if private:
        assert not any(Path("/tmp", n).exists() for n in names)


def test_init_runs_once(h: Harness, code_root: Path) -> None:
    code = write_code(
        code_root,
        """
        INITS = 0
        INITS += 1
        CALLS = 0
        def handler(event, context):
            global CALLS
            CALLS += 1
            return [INITS, CALLS]
        """,
    )
    spec = make_spec(h.engine, code)
    assert [result(h.invoke(spec)) for _ in range(3)] == [[1, 1], [1, 2], [1, 3]]


def test_handler_exception_shape_and_one_log_event(h: Harness, code_root: Path) -> None:
    code = write_code(
        code_root,
        """
        def handler(event, context):
            raise ValueError("boom")
        """,
    )
    spec = make_spec(h.engine, code)
    inv = make_input(spec)
    out = h.run(h.engine.invoke(spec, inv))
    assert out.function_error == "Unhandled"
    err = result(out)
    assert list(err) == ["errorMessage", "errorType", "requestId", "stackTrace"]
    assert err["errorMessage"] == "boom" and err["errorType"] == "ValueError"
    assert err["requestId"] == inv.request_id
    assert len(err["stackTrace"]) == 1
    assert err["stackTrace"][0].startswith(f'  File "{seen_at(code)}/app.py", line 3, in handler\n')
    assert 'raise ValueError("boom")' in err["stackTrace"][0]
    errors = [m for m in messages(out) if m.startswith("[ERROR]")]
    assert len(errors) == 1
    assert errors[0].startswith("[ERROR] ValueError: boom\rTraceback (most recent call last):\r")
    assert f'\u00a0\u00a0File "{seen_at(code)}/app.py", line 3, in handler\r' in errors[0]
    assert result(h.invoke(spec))["errorType"] == "ValueError"  # env kept warm
    assert h.invoke(spec).log_stream == out.log_stream


def test_marshal_error_and_special_results(h: Harness, code_root: Path) -> None:
    code = write_code(
        code_root,
        """
        import decimal
        def handler(event, context):
            if event.get("kind") == "set":
                return {1, 2}
            if event.get("kind") == "bytes":
                return b"raw bytes"
            return {"d": decimal.Decimal("1.5"), "i": decimal.Decimal("10"), "u": "é"}
        """,
    )
    spec = make_spec(h.engine, code)
    inv = make_input(spec, {"kind": "set"})
    out = h.run(h.engine.invoke(spec, inv))
    assert out.function_error == "Unhandled"
    assert result(out) == {
        "errorMessage": "Unable to marshal response: Object of type set is not JSON serializable",
        "errorType": "Runtime.MarshalError",
        "requestId": inv.request_id,
        "stackTrace": [],
    }
    assert h.invoke(spec, {"kind": "bytes"}).payload == b"raw bytes"
    plain = h.invoke(spec)
    assert plain.payload == b'{"d": 1.5, "i": 10, "u": "\\u00e9"}'  # ASCII escapes except on 3.12


def test_print_and_logging_in_order(h: Harness, code_root: Path) -> None:
    code = write_code(
        code_root,
        """
        import logging, sys
        print("import time")
        log = logging.getLogger()
        def handler(event, context):
            print("one")
            log.info("not shown: root stays at WARNING")
            log.warning("two")
            sys.stderr.write("three\\n")
            log.error("multi\\nline")
            log.setLevel(logging.INFO)
            log.info("four")
            log.setLevel(logging.WARNING)
            print("no newline at end", end="")
            return None
        """,
    )
    spec = make_spec(h.engine, code)
    inv = make_input(spec)
    out = h.run(h.engine.invoke(spec, inv))
    assert out.payload == b"null"
    lines = messages(out)
    body = lines[lines.index(f"START RequestId: {inv.request_id} Version: $LATEST") + 1 : -2]
    assert lines[1] == "import time"
    ts = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z"
    rid = re.escape(inv.request_id)
    assert body[0] == "one"
    assert re.fullmatch(rf"\[WARNING\]\t{ts}\t{rid}\ttwo", body[1]), body[1]
    assert body[2] == "three"
    assert re.fullmatch(rf"\[ERROR\]\t{ts}\t{rid}\tmulti\rline", body[3]), body[3]
    assert re.fullmatch(rf"\[INFO\]\t{ts}\t{rid}\tfour", body[4]), body[4]
    assert body[5:] == ["no newline at end"]


def test_six_megabyte_payload_round_trip(h: Harness, code_root: Path) -> None:
    spec = make_spec(h.engine, write_code(code_root, "def handler(event, context):\n    return event\n"))
    big = {"data": "x" * (6 * 1024 * 1024 - 100)}
    body = json.dumps(big).encode()
    out = h.invoke(spec, body)
    assert out.function_error is None
    assert json.loads(out.payload) == big


def test_concurrent_invokes_get_separate_environments(h: Harness, code_root: Path) -> None:
    code = write_code(
        code_root,
        """
        import os
        ENV = os.urandom(8).hex()  # an id of this process (its pid is 2 in every environment)
        def handler(event, context):
            return ENV
        """,
    )
    spec = make_spec(h.engine, code)

    async def four() -> list[InvocationOutcome]:
        return list(await asyncio.gather(*(h.engine.invoke(spec, make_input(spec)) for _ in range(4))))

    outs = h.run(four())
    assert len({o.log_stream for o in outs}) == 4
    assert len({o.payload for o in outs}) == 4
    mine = [e for e in h.engine.environments() if e[1] == spec.function_arn]
    assert len(mine) == 4 and all(state == "idle" for _, _, state in mine)


def test_retire_gives_a_new_environment(h: Harness, code_root: Path) -> None:
    spec = make_spec(h.engine, write_code(code_root, HELLO))
    first = h.invoke(spec)
    assert h.invoke(spec).log_stream == first.log_stream
    h.run(h.engine.retire(spec.function_arn))
    assert not [e for e in h.engine.environments() if e[1] == spec.function_arn]
    after = h.invoke(spec)
    assert after.log_stream != first.log_stream and after.init_duration_ms is not None


INIT_ERRORS = [
    (
        "app.handler",
        None,
        {"errorMessage": "Unable to import module 'app': No module named 'app'",
         "errorType": "Runtime.ImportModuleError", "requestId": "", "stackTrace": []},
    ),
    (
        "app.nope",
        "def handler(event, context):\n    return 1\n",
        {"errorMessage": "Handler 'nope' missing on module 'app'",
         "errorType": "Runtime.HandlerNotFound", "requestId": "", "stackTrace": []},
    ),
    (
        "x",
        "def handler(event, context):\n    return 1\n",
        {"errorMessage": "Bad handler 'x': not enough values to unpack (expected 2, got 1)",
         "errorType": "Runtime.MalformedHandlerName", "requestId": "", "stackTrace": []},
    ),
]  # fmt: skip


@pytest.mark.parametrize(("handler", "source", "expected"), INIT_ERRORS)
def test_init_errors(
    h: Harness, code_root: Path, handler: str, source: str | None, expected: dict[str, object]
) -> None:
    code = write_code(code_root, source or "", module="app" if source else "other")
    spec = make_spec(h.engine, code, handler=handler)
    out = h.invoke(spec)
    assert out.function_error == "Unhandled"
    assert result(out) == expected
    lines = messages(out)
    error = f"[ERROR] {expected['errorType']}: {expected['errorMessage']}\rTraceback (most recent call last):"
    assert error in lines
    assert any(m.startswith("LAMBDA_WARNING: Unhandled exception.") or "LAMBDA_WARNING" in m for m in lines)
    report = next(m for m in lines if m.startswith("INIT_REPORT"))
    pattern = r"INIT_REPORT Init Duration: \d+\.\d\d ms\tPhase: init\tStatus: error\tError Type: "
    assert re.fullmatch(pattern + re.escape(str(expected["errorType"])), report)
    assert lines[-1].endswith(f"Status: error\tError Type: {expected['errorType']}\t")
    again = h.invoke(spec)  # the env was destroyed: a new one inits again
    assert again.log_stream != out.log_stream and result(again) == expected


def test_syntax_error(h: Harness, code_root: Path) -> None:
    code = write_code(code_root, "x = 1\n\ndef handler(event, context)\n    return 1\n")
    out = h.invoke(make_spec(h.engine, code))
    err = result(out)
    assert err["errorType"] == "Runtime.UserCodeSyntaxError"
    assert err["errorMessage"].startswith("Syntax error in module 'app': ")
    assert err["errorMessage"].endswith("(app.py, line 3)")
    assert err["stackTrace"] == [f'  File "{seen_at(code)}/app.py" Line 3\n    def handler(event, context)\n']
    assert err["requestId"] == ""


def test_exception_during_import(h: Harness, code_root: Path) -> None:
    code = write_code(code_root, "def f():\n    raise KeyError('cfg')\n\nf()\n")
    out = h.invoke(make_spec(h.engine, code))
    err = result(out)
    assert err["errorType"] == "KeyError" and err["errorMessage"] == "'cfg'" and err["requestId"] == ""
    assert any(f'File "{seen_at(code)}/app.py", line 2, in f' in frame for frame in err["stackTrace"])
    assert not any(own in err["stackTrace"][0] for own in ("/bootstrap.py", "/lamina_rt_"))


def test_output_of_c_code_and_subprocesses_is_captured_in_order(h: Harness, code_root: Path) -> None:
    code = write_code(
        code_root,
        """
        import os, subprocess
        def handler(event, context):
            print("python")
            os.write(1, b"fd 1\\n")  # what C code does: no Python buffer, no flush
            subprocess.run(["/bin/sh", "-c", "echo child; echo child-err >&2"], check=True)
            os.write(2, b"fd 2\\n")
            return 1
        """,
    )
    spec = make_spec(h.engine, code)
    for _ in range(3):  # cold, then warm: the same lines, each time in this invocation's events
        lines = messages(h.invoke(spec))
        start = next(i for i, line in enumerate(lines) if line.startswith("START RequestId: "))
        assert lines[start + 1 : -2] == ["python", "fd 1", "child", "child-err", "fd 2"]


def test_max_memory_used_counts_the_whole_process(h: Harness, code_root: Path) -> None:
    code = write_code(
        code_root,
        """
        def hwm_kb():
            with open("/proc/self/status") as f:
                return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
        def handler(event, context):
            hog = bytearray(event["mb"] * 1024 * 1024) + b"x"  # touched: really resident
            del hog
            return hwm_kb()
        """,
    )
    spec = make_spec(h.engine, code, memory_mb=256)
    small = h.invoke(spec, {"mb": 0})
    # At least the process's own peak -- give or take the kernel's accounting: ru_maxrss (what the
    # runtime reports) reads the per-CPU-batched RSS counters, VmHWM (what the handler read) their
    # exact sum, ~0.2 MB apart even in a bare process; whether ceil-to-MB hides that is luck.
    assert small.max_memory_used_mb * 1024 >= result(small) - 512
    assert small.max_memory_used_mb >= 8  # an interpreter's footprint, not the 1-2 MB it allocated
    big = h.invoke(spec, {"mb": 100})
    assert big.max_memory_used_mb >= 100 + small.max_memory_used_mb - 2
    assert f"Max Memory Used: {big.max_memory_used_mb} MB" in messages(big)[-1]


def test_a_deferred_report_is_written_by_complete(h: Harness, code_root: Path) -> None:
    """``defer_report``: the caller gets the result with START and the handler's lines; END and
    REPORT -- Max Memory Used read then -- come with ``complete``; a timeout never waits for it."""
    code = write_code(
        code_root,
        """
        import time
        def handler(event, context):
            print("working")
            if event.get("sleep"):
                time.sleep(event["sleep"])
            return {"ok": True}
        """,
    )
    spec = make_spec(h.engine, code, timeout_s=1)
    h.invoke(spec)  # warm
    inv = make_input(spec)
    out = h.run(h.engine.invoke(spec, inv, defer_report=True))
    assert result(out) == {"ok": True} and out.pending is not None
    assert messages(out) == [] and out.max_memory_used_mb == 0  # nothing written yet
    assert out.complete() is out and out.pending is None
    lines = messages(out)
    assert lines[0] == f"START RequestId: {inv.request_id} Version: $LATEST" and lines[1] == "working"
    assert lines[-2] == f"END RequestId: {inv.request_id}" and REPORT_RE.match(lines[-1])
    assert out.max_memory_used_mb >= 8 and f"Max Memory Used: {out.max_memory_used_mb} MB" in lines[-1]
    out.complete()  # once only
    assert len(messages(out)) == len(lines)
    slow = h.run(h.engine.invoke(spec, make_input(spec, {"sleep": 5}), defer_report=True))
    assert slow.pending is None and "Status: timeout" in messages(slow)[-1]
