"""Each environment sees its own code at /var/task (read-only) and its layers at /opt, as on AWS.

With the minimal root (a root server, isolation on) the code is bound read-only at /var/task at
specialisation, and LAMBDA_TASK_ROOT, the cwd, sys.path / PYTHONPATH, NODE_PATH, LD_LIBRARY_PATH,
a custom runtime's bootstrap and AWS_LAMBDA_EXEC_WRAPPER all name it; tracebacks show it.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

import pytest

from .conftest import create_function, unique
from .test_custom_runtimes import executable_zip, provided
from .test_layers import layer_zip
from .test_nodejs import MAJOR

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the minimal root needs a root server")

PYTHON_PROBE = """
import errno, os, sys
import helper
import mylib

def write_fails(path):
    try:
        with open(path, "w") as f:
            f.write("x")
    except OSError as exc:
        return errno.errorcode[exc.errno]
    return "written"

def handler(event, context):
    return {
        "task_root": os.environ["LAMBDA_TASK_ROOT"],
        "cwd": os.getcwd(),
        "listed": sorted(os.listdir("/var/task")),
        "write": write_fails("/var/task/new.txt"),
        "overwrite": write_fails("/var/task/helper.py"),
        "helper": helper.__file__,
        "layer": mylib.__file__,
        "opt_write": write_fails("/opt/python/new.txt"),
        "path0": sys.path[0],
        "pythonpath": os.environ["PYTHONPATH"],
        "ld_library_path": os.environ["LD_LIBRARY_PATH"],
        "wrapped": os.environ.get("WRAPPED_BY"),
    }
"""

WRAPPER = """#!/bin/sh
export WRAPPED_BY="$0"
exec "$@"
"""

DENIED = ("EROFS", "EACCES")


def invoke(lam: Any, name: str, event: Any = None) -> tuple[dict[str, Any], Any]:
    resp = lam.invoke(FunctionName=name, Payload=json.dumps(event if event is not None else {}))
    return resp, json.loads(resp["Payload"].read())


def with_layer(lam: Any) -> str:
    layer = lam.publish_layer_version(
        LayerName=unique("layer"), Content={"ZipFile": layer_zip({"python/mylib.py": "VALUE = 1\n"})}
    )
    return str(layer["LayerVersionArn"])


def check_python_view(body: dict[str, Any]) -> None:
    assert body["task_root"] == body["cwd"] == body["path0"] == "/var/task"
    assert body["listed"] == ["app.py", "helper.py", "wrapper.sh"]
    assert body["write"] in DENIED and body["overwrite"] in DENIED, body
    assert body["helper"] == "/var/task/helper.py"
    assert body["layer"] == "/opt/python/mylib.py" and body["opt_write"] in DENIED
    assert body["pythonpath"].split(":")[0] == "/var/task"
    assert body["ld_library_path"].startswith("/var/task:/var/task/lib:")


def test_a_python_function_sees_its_code_at_var_task(lam: Any) -> None:
    files = {"app.py": PYTHON_PROBE, "helper.py": "X = 1\n", "wrapper.sh": WRAPPER}
    name = create_function(lam, executable_zip(files), Layers=[with_layer(lam)])
    resp, body = invoke(lam, name)
    assert "FunctionError" not in resp, body
    check_python_view(body)
    assert body["wrapped"] is None


def test_an_exec_wrapper_in_the_code_runs_from_var_task(lam: Any) -> None:
    files = {"app.py": PYTHON_PROBE, "helper.py": "X = 1\n", "wrapper.sh": WRAPPER}
    name = create_function(
        lam,
        executable_zip(files),
        Layers=[with_layer(lam)],
        Environment={"Variables": {"AWS_LAMBDA_EXEC_WRAPPER": "/var/task/wrapper.sh"}},
    )
    resp, body = invoke(lam, name)
    assert "FunctionError" not in resp, body
    check_python_view(body)  # lamina's runtime as its own process, under the wrapper
    assert body["wrapped"] == "/var/task/wrapper.sh"


def test_tracebacks_name_var_task(lam: Any) -> None:
    raising = "def handler(event, context):\n    raise ValueError('boom')\n"
    resp, body = invoke(lam, create_function(lam, raising))
    assert resp["FunctionError"] == "Unhandled"
    assert body["stackTrace"][0].startswith('  File "/var/task/app.py", line 2, in handler\n'), body
    broken = "x = 1\n\ndef handler(event, context)\n    return 1\n"
    _, body = invoke(lam, create_function(lam, broken))
    assert body["errorType"] == "Runtime.UserCodeSyntaxError"
    assert body["stackTrace"] == ['  File "/var/task/app.py" Line 3\n    def handler(event, context)\n']
    at_import = "import json\njson.loads('{')\n"
    _, body = invoke(lam, create_function(lam, at_import))
    assert any(frame.startswith('  File "/var/task/app.py", line 2') for frame in body["stackTrace"]), body


SHELL_PROBE = """#!/bin/sh
set -eu
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation"
if touch /var/task/new 2>/dev/null; then WRITE=written; else WRITE=denied; fi
LISTED="$(ls /var/task | tr '\\n' ' ')"
while true; do
  HEADERS="$(mktemp)"
  curl -sS -o /dev/null -LD "$HEADERS" "$API/next"
  ID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)
  rm -f "$HEADERS"
  curl -sS -o /dev/null "$API/$ID/response" -d "{\\"task_root\\": \\"$LAMBDA_TASK_ROOT\\", \\
\\"cwd\\": \\"$(pwd)\\", \\"self\\": \\"$0\\", \\"listed\\": \\"$LISTED\\", \\"write\\": \\"$WRITE\\", \\
\\"opt\\": \\"$(cat /opt/layer.txt)\\"}"
done
"""


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_a_custom_runtime_runs_its_bootstrap_from_var_task(lam: Any) -> None:
    layer = lam.publish_layer_version(
        LayerName=unique("layer"), Content={"ZipFile": layer_zip({"layer.txt": "from the layer"})}
    )
    name = provided(lam, {"bootstrap": SHELL_PROBE, "data.txt": "x"}, Layers=[layer["LayerVersionArn"]])
    resp, body = invoke(lam, name)
    assert "FunctionError" not in resp, body
    assert body["task_root"] == body["cwd"] == "/var/task"
    assert body["self"] == "/var/task/bootstrap"  # AWS execs $LAMBDA_TASK_ROOT/bootstrap
    assert body["listed"].split() == ["bootstrap", "data.txt"]
    assert body["write"] == "denied"
    assert body["opt"] == "from the layer"


NODE_INDEX = """
const fs = require("fs");
const path = require("path");
const util = require("./lib/util");
const again = require(path.join(__dirname, "lib", "util.js"));
exports.handler = async () => {
  let write = "written";
  try { fs.writeFileSync("/var/task/new.txt", "x"); } catch (e) { write = e.code; }
  return {
    cwd: process.cwd(), dirname: __dirname, filename: __filename, util: util.where, same: util === again,
    taskRoot: process.env.LAMBDA_TASK_ROOT, nodePath: process.env.NODE_PATH, write,
    listed: fs.readdirSync("/var/task").sort(),
  };
};
"""


@pytest.mark.skipif(MAJOR is None or MAJOR < 18, reason="no node >= 18 on this host")
def test_a_node_function_sees_its_code_at_var_task(lam: Any) -> None:
    files = {"src/index.js": NODE_INDEX, "src/lib/util.js": "exports.where = __filename;\n"}
    name = create_function(lam, files, Runtime=f"nodejs{MAJOR}.x", Handler="src/index.handler")
    resp, body = invoke(lam, name)
    assert "FunctionError" not in resp, body
    assert body["cwd"] == body["taskRoot"] == "/var/task"
    assert body["dirname"] == "/var/task/src" and body["filename"] == "/var/task/src/index.js"
    assert body["util"] == "/var/task/src/lib/util.js" and body["same"] is True
    assert body["nodePath"].split(":")[-1] == "/var/task"  # as AWS's Node runtimes set it
    assert body["nodePath"].startswith(f"/opt/nodejs/node{MAJOR}/node_modules:/opt/nodejs/node_modules:")
    assert body["write"] in DENIED
    assert body["listed"] == ["src"]
