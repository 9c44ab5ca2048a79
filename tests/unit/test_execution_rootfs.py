"""An environment's root filesystem: the minimal root (default) and the host's root read-only
(``minimal_root=False``), both as root; and what its layers and code look like in each."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lamina.execution.sandbox import ROOT_ETC
from tests.unit.test_execution_support import Harness, make_spec, result, write_code

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mount namespaces need root")

PROBE = """
import os
def attempt(path):
    try:
        return sorted(os.listdir(path))
    except OSError as exc:
        return type(exc).__name__
def handler(event, context):
    return {
        "root": attempt("/"),
        "etc": attempt("/etc"),
        "hidden": attempt(event["hidden"]),
        "own_code": attempt(os.environ["LAMBDA_TASK_ROOT"]),
        "task_root": [os.environ["LAMBDA_TASK_ROOT"], os.getcwd(), __file__],
        "mounts": {m.split()[1]: m.split()[3].split(",")[0] for m in open("/proc/self/mounts")},
    }
"""


@pytest.mark.parametrize("minimal", [True, False])
def test_root_filesystem(tmp_path: Path, minimal: bool) -> None:
    hidden = tmp_path / "hidden"  # stands for the data dir: the engine is told to hide it
    hidden.mkdir()
    (hidden / "secret").write_text("not for functions")
    harness = Harness(tmp_path / "run", hide=[hidden], minimal_root=minimal)
    try:
        spec = make_spec(harness.engine, write_code(tmp_path / "code", PROBE))
        body = result(harness.invoke(spec, {"hidden": str(hidden)}))
    finally:
        harness.close()
    assert body["own_code"] == ["app.py"]  # its code, bound back read-only
    assert body["mounts"]["/"] == "ro" and body["mounts"]["/tmp"] == "rw"
    assert body["hidden"] in ("PermissionError", "FileNotFoundError", [])
    if minimal:  # its code at AWS's /var/task, read-only whatever the code store is on
        assert body["task_root"] == ["/var/task", "/var/task", "/var/task/app.py"]
        assert body["mounts"]["/var/task"] == "ro"
        assert "srv" not in body["root"] and "home" not in body["root"]
        assert set(body["etc"]) <= {entry.split("/")[0] for entry in ROOT_ETC}
        assert "shadow" not in body["etc"]
    else:  # the host's root, read-only, with the hidden dirs covered; the code where it is
        code = str(spec.code_dir)
        assert body["task_root"] == [code, code, f"{code}/app.py"]
        assert {"srv", "home"} <= set(body["root"]) and "shadow" in body["etc"]
