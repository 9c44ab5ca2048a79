"""lamina's Python runtime (src/lamina/runtimes/python) for tests: its modules as the zygote has them.

bootstrap.py imports every ``lamina_rt_*`` module at start-up, with its dir on sys.path for those
imports only; ``runtime_module`` loads it once the same way and takes the module from sys.modules.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from types import ModuleType

from lamina.execution import catalog

RUNTIME_DIR = catalog.PYTHON_BOOTSTRAP.parent


@functools.cache
def bootstrap() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lamina_bootstrap_under_test", catalog.PYTHON_BOOTSTRAP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def runtime_module(name: str) -> ModuleType:
    """The runtime's module ``name`` (``lamina_rt_wire``, ``lamina_rt_aws``, ...)."""
    bootstrap()
    return sys.modules[name]
