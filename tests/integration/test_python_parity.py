"""One behaviour for every Python path: lamina's python3.11 runtime and provided.al2023 + awslambdaric.

The same handlers, deployed once on the built-in runtime and once as a custom runtime that runs
the official awslambdaric (vendored in the zip, as users do), must give identical results, error
shapes and types, and identical log lines between START and END (request ids, times and paths
normalised).  awslambdaric runs on the interpreter behind the test venv: same Python version as
the python3.11 function, so both encode results alike.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import os
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from .conftest import LaminaServer, create_function, unique, wait_for_log

BASE_PYTHON = os.path.realpath(sys.executable)
RUNTIME = f"python{sys.version_info.major}.{sys.version_info.minor}"
# awslambdaric on provided.* (no AWS_EXECUTION_ENV) escapes unicode as AWS's python3.11 does
SAME_PYTHON = pytest.mark.skipif(RUNTIME != "python3.11", reason="the test venv is not Python 3.11")

HANDLERS = """
import decimal
import logging

logger = logging.getLogger()
logger.setLevel(logging.INFO)
STATE = {"calls": 0}


def ok(event, context):
    STATE["calls"] += 1
    print("hello from print")
    print("two\\nlines")
    logger.info("info %s", event.get("k"))
    logger.warning("careful")
    return {
        "event": event,
        "unicode": "caf\\u00e9 \\u2713",
        "decimal": decimal.Decimal("3"),
        "fn": context.function_name,
        "remaining": context.get_remaining_time_in_millis() > 0,
        "calls": STATE["calls"],
    }


def fails(event, context):
    print("about to fail")
    raise ValueError("boom: " + str(event.get("k")))


class CustomError(Exception):
    pass


def custom(event, context):
    raise CustomError("mine")


def unserialisable(event, context):
    return {"x": object()}


def returns_none(event, context):
    return None


def returns_string(event, context):
    return "just a string"


class Opaque:
    def __str__(self):
        return "opaque"


def structured(event, context):
    named = logging.getLogger("app.named")
    named.debug("not at INFO")
    named.info({"a dict": ["stays", "an object"], "n": 1})
    named.warning("with extras %s", "here", extra={"order": 7, "obj": Opaque()})
    try:
        {}["missing"]
    except KeyError:
        named.exception("caught caf\u00e9")
    print("plain print")
    return {"ok": True}
"""

CASES = [
    ("app.ok", {"k": "v"}),
    ("app.fails", {"k": 1}),
    ("app.custom", {}),
    ("app.unserialisable", {}),
    ("app.returns_none", {}),
    ("app.returns_string", {}),
    ("app.missing", {}),
    ("nomodule.handler", {}),
    ("broken.handler", {}),
    ("nodot", {}),
]


# LoggingConfig JSON: both runtimes read AWS_LAMBDA_LOG_FORMAT/AWS_LAMBDA_LOG_LEVEL (set by lamina
# from the function's configuration).  Multi-line records only in JSON (one line each there):
# awslambdaric writes a Text record's traceback as several lines outside AWS's framed log fd.
JSON_CASES = [
    ("app.ok", {"k": "v"}),
    ("app.fails", {"k": 1}),
    ("app.structured", {}),
    ("app.unserialisable", {}),
    ("app.missing", {}),
    ("broken.handler", {}),
]


def vendored_awslambdaric() -> dict[str, bytes]:
    """awslambdaric and its dependencies, copied from the test venv's site-packages."""
    files: dict[str, bytes] = {}
    for module in ("awslambdaric", "simplejson", "snapshot_restore_py", "runtime_client"):
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin is not None, module
        origin = Path(spec.origin)
        if origin.name == "__init__.py":
            for path in origin.parent.rglob("*"):
                if path.is_file() and "__pycache__" not in path.parts:
                    files[str(path.relative_to(origin.parent.parent))] = path.read_bytes()
        else:
            files[origin.name] = origin.read_bytes()
    return files


def zip_of(files: dict[str, str | bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o100755 if name == "bootstrap" else 0o100644) << 16
            zf.writestr(info, content)
    return buf.getvalue()


def normalise(text: str, request_id: str, name: str) -> str:
    text = text.replace(request_id, "<rid>").replace(name, "<fn>")
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "<time>", text)
    text = re.sub(r"/[^\s\"']*/code/[0-9a-f]{64}/", "<task>/", text)  # code dirs differ (different zips)
    return re.sub(r"Unable to import module 'broken': .*", "Unable to import module 'broken': <why>", text)


def function_lines(messages: list[str], request_id: str, name: str) -> list[str]:
    """The function's own lines of one invocation: between its START and END."""
    start = next(i for i, m in enumerate(messages) if m.startswith(f"START RequestId: {request_id}"))
    end = next(i for i, m in enumerate(messages) if m.startswith(f"END RequestId: {request_id}"))
    return [normalise(m, request_id, name) for m in messages[start + 1 : end]]


def run_case(lam: Any, server: LaminaServer, name: str, event: Any) -> tuple[Any, list[str], str | None]:
    resp = lam.invoke(FunctionName=name, Payload=json.dumps(event))
    rid = resp["ResponseMetadata"]["RequestId"]
    payload = normalise(resp["Payload"].read().decode(), rid, name)
    messages = wait_for_log(server.data_dir, f"/aws/lambda/{name}", f"REPORT RequestId: {rid}")
    return json.loads(payload), function_lines(messages, rid, name), resp.get("FunctionError")


@pytest.mark.skipif(
    RUNTIME != "python3.11", reason="the vendored awslambdaric wheel matches the venv's Python"
)
@pytest.mark.parametrize(("handler", "event"), CASES)
def test_builtin_and_awslambdaric_behave_alike(
    lam: Any, server: LaminaServer, handler: str, event: Any
) -> None:
    code: dict[str, str | bytes] = {"app.py": HANDLERS, "broken.py": "def handler(:\n"}
    builtin = create_function(lam, zip_of(code), name=unique("py"), Runtime=RUNTIME, Handler=handler)
    ric_files: dict[str, str | bytes] = {
        **code,
        **vendored_awslambdaric(),
        "bootstrap": f'#!/bin/sh\nexec {BASE_PYTHON} -m awslambdaric "$_HANDLER"\n',
    }
    ric = create_function(
        lam,
        zip_of(ric_files),
        name=unique("ric"),
        Runtime="provided.al2023",
        Handler=handler,  # no AWS_EXECUTION_ENV on provided.*: awslambdaric escapes as on <= 3.11
    )
    for _ in range(2):  # cold, then warm
        got_builtin = run_case(lam, server, builtin, event)
        got_ric = run_case(lam, server, ric, event)
        assert got_builtin == got_ric
        if handler == "app.ok":  # the comparison covers real lines, not two empty lists
            payload, lines, _ = got_builtin
            assert payload["unicode"] == "caf\u00e9 \u2713" and "hello from print" in lines
            assert any(line.startswith("[INFO]\t<time>\t<rid>\tinfo v") for line in lines), lines


def run_json_case(lam: Any, name: str, event: Any) -> tuple[Any, list[str], list[str], str | None]:
    """(payload, the function's lines, the platform records' types, FunctionError) from the tail."""
    resp = lam.invoke(FunctionName=name, Payload=json.dumps(event), LogType="Tail")
    rid = resp["ResponseMetadata"]["RequestId"]
    payload = normalise(resp["Payload"].read().decode(), rid, name)
    lines = base64.b64decode(resp["LogResult"]).decode().splitlines()
    platform = [json.loads(line)["type"] for line in lines if line.startswith('{"time":')]
    own = [normalise(line, rid, name) for line in lines if not line.startswith('{"time":')]
    return json.loads(payload), own, platform, resp.get("FunctionError")


@pytest.mark.skipif(
    RUNTIME != "python3.11", reason="the vendored awslambdaric wheel matches the venv's Python"
)
@pytest.mark.parametrize(("handler", "event"), JSON_CASES)
def test_json_log_format_alike(lam: Any, handler: str, event: Any) -> None:
    code: dict[str, str | bytes] = {"app.py": HANDLERS, "broken.py": "def handler(:\n"}
    logging_config = {"LogFormat": "JSON", "ApplicationLogLevel": "DEBUG"}
    builtin = create_function(
        lam, zip_of(code), name=unique("py"), Runtime=RUNTIME, Handler=handler, LoggingConfig=logging_config
    )
    ric_files: dict[str, str | bytes] = {
        **code,
        **vendored_awslambdaric(),
        "bootstrap": f'#!/bin/sh\nexec {BASE_PYTHON} -m awslambdaric "$_HANDLER"\n',
    }
    ric = create_function(
        lam,
        zip_of(ric_files),
        name=unique("ric"),
        Runtime="provided.al2023",
        Handler=handler,
        LoggingConfig=logging_config,
    )
    for _ in range(2):  # cold, then warm
        got_builtin = run_json_case(lam, builtin, event)
        got_ric = run_json_case(lam, ric, event)
        assert got_builtin == got_ric
        _, lines, platform, _ = got_builtin
        assert "platform.start" in platform and platform[-1] == "platform.report"
        records = [json.loads(line) for line in lines if line.startswith("{")]
        if handler == "app.structured":  # real records compared, not two empty lists
            assert [r["level"] for r in records] == ["INFO", "WARNING", "ERROR"]
            assert records[0]["message"] == {"a dict": ["stays", "an object"], "n": 1}
            assert records[1]["order"] == 7 and records[1]["obj"] == "opaque"  # json's default=str
            assert records[2]["errorType"] == "KeyError" and records[2]["message"] == "caught caf\u00e9"
            assert "plain print" in lines
        if handler == "app.fails":
            assert records[-1]["errorType"] == "ValueError" and records[-1]["requestId"] == "<rid>"


@SAME_PYTHON
def test_awslambdaric_serves_many_invokes(lam: Any) -> None:
    files: dict[str, str | bytes] = {
        "app.py": HANDLERS,
        **vendored_awslambdaric(),
        "bootstrap": f'#!/bin/sh\nexec {BASE_PYTHON} -m awslambdaric "$_HANDLER"\n',
    }
    name = create_function(lam, zip_of(files), Runtime="provided.al2023", Handler="app.ok")
    for i in range(1, 41):
        resp = lam.invoke(FunctionName=name, Payload=json.dumps({"k": i}))
        body = json.loads(resp["Payload"].read())
        assert "FunctionError" not in resp, body
        assert body["event"] == {"k": i} and body["calls"] == i  # one warm runtime, in order
