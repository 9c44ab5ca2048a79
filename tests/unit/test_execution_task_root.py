"""Where a function sees its code when the engine asked for /var/task but the process has no
minimal root to bind it in (an unprivileged server: no mount namespace): every path that named
/var/task names the code where it is instead (the Python runtime's ``task_fallback``).  As root the
/var/task side is covered by test_execution_rootfs.py and tests/integration/test_var_task.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from lamina.execution import catalog
from lamina.execution.environment import TASK_ROOT, function_environment
from lamina.execution.types import EnvironmentSpec
from tests.unit.python_runtime import RUNTIME_DIR

# In a process of its own: specialise changes the cwd, os.environ and sys.path
SPECIALISE = """
import json, os, sys
sys.path.insert(0, sys.argv[1])  # the runtime's dir
from lamina_rt_environment import specialise
from lamina_rt_sandbox import mount_private
from lamina_rt_zygote import Preloaded
cfg = json.loads(sys.argv[2])
sandbox = mount_private(None, {"namespaces": False})  # what a process without one gets
specialise(cfg, None, sandbox, [], Preloaded())
print(json.dumps({"cwd": os.getcwd(), "env": dict(os.environ), "path0": sys.path[0],
                  "task_root": cfg["task_root"]}))
"""


def test_without_a_minimal_root_the_paths_name_the_code_where_it_is(tmp_path: Path) -> None:
    code = tmp_path / "code" / "abc123"
    code.mkdir(parents=True)
    spec = EnvironmentSpec(
        function_name="fn",
        function_arn="arn:aws:lambda:us-east-1:123456789012:function:fn",
        version="$LATEST",
        revision="r1",
        runtime="python3.11",
        interpreter=sys.executable,
        handler="app.handler",
        code_dir=code,
        memory_mb=128,
        timeout_s=3,
        region="us-east-1",
        account_id="123456789012",
        log_group="/aws/lambda/fn",
        # the user's own (neither is reserved): paths under /var/task follow the code, others stay
        environment={
            "AWS_LAMBDA_EXEC_WRAPPER": "/var/task/wrap.sh",
            "PYTHONPATH": "/var/task/vendor:/var/taskx",
        },
    )
    env = function_environment(
        spec, log_stream="s", runtime_dir=catalog.PYTHON_BOOTSTRAP.parent, task_root=TASK_ROOT
    )
    assert env["LAMBDA_TASK_ROOT"] == "/var/task"  # what the engine asks for
    cfg = {
        "environment": env,
        "task_root": TASK_ROOT,
        "code_dir": str(code),
        "extra_paths": ["/opt/python"],
        "tmp_dir": str(tmp_path),
    }
    out = subprocess.run(
        [sys.executable, "-I", "-c", SPECIALISE, str(RUNTIME_DIR), json.dumps(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    got = json.loads(out.stdout)
    where = str(code)
    assert got["task_root"] == got["cwd"] == got["path0"] == where
    seen = got["env"]
    assert seen["LAMBDA_TASK_ROOT"] == where
    assert seen["PYTHONPATH"] == f"{where}/vendor:/var/taskx"
    assert seen["LD_LIBRARY_PATH"].startswith(f"{where}:{where}/lib:")
    assert seen["AWS_LAMBDA_EXEC_WRAPPER"] == f"{where}/wrap.sh"
    assert "/var/task" not in json.dumps(seen).replace("/var/taskx", "")
