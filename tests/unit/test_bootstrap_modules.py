"""lamina's Python runtime is bootstrap.py and its ``lamina_*`` modules.  An environment runs in a
sandbox (a minimal root, another user) where their dir may not be visible: bootstrap.py imports every
one of them at start-up, in the zygote, and leaves the import path as it found it."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

from lamina.execution import catalog
from tests.unit.python_runtime import RUNTIME_DIR

# Started as the engine starts a zygote (-I -S: the script's dir is not on sys.path)
PROBE = """
import importlib.util, json, sys
before = list(sys.path)
spec = importlib.util.spec_from_file_location("lamina_bootstrap_probe", sys.argv[1])
spec.loader.exec_module(importlib.util.module_from_spec(spec))
print(json.dumps({"before": before, "after": sys.path, "cached": sorted(sys.path_importer_cache),
                  "modules": sorted(name for name in sys.modules if name.startswith("lamina"))}))
"""


def test_every_module_is_imported_at_start_up_and_sys_path_is_left_alone() -> None:
    argv = [sys.executable, "-I", "-S", "-c", PROBE, str(catalog.PYTHON_BOOTSTRAP)]
    got = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout)
    names = sorted(path.stem for path in RUNTIME_DIR.glob("lamina_*.py"))
    assert len(names) >= 7 and "lamina_rt_seccomp" in names
    assert got["modules"] == names
    assert got["after"] == got["before"]
    assert str(RUNTIME_DIR) not in got["after"] and str(RUNTIME_DIR) not in got["cached"]


def test_no_module_of_the_runtime_is_imported_lazily() -> None:
    """Only at module level: inside a function, an import could run in the sandbox."""
    for path in RUNTIME_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            for inner in ast.walk(node):
                names = [alias.name for alias in inner.names] if isinstance(inner, ast.Import) else []
                if isinstance(inner, ast.ImportFrom):
                    names = [inner.module or ""]
                assert not any(n.startswith("lamina_") for n in names), f"{path.name}:{inner.lineno}"
