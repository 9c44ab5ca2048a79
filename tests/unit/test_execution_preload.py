"""Packages preloaded in the zygote: in every environment without an import, and never in the way
of the function's own copy.

The preloaded package is a fake one made in a tmp dir (a stdlib module would prove nothing: the
runtime imports many of them anyway).  ``lamina_fake_pre`` imports ``lamina_fake_dep`` (what
botocore is to boto3) and has a submodule nobody imports at preload time (what s3transfer is).
"""

from __future__ import annotations

import logging
import os
import signal
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.test_execution_support import Harness, make_spec, poll, result, seen_at, write_code

PRELOADED = "lamina_fake_pre"
ABSENT = "lamina_fake_absent"


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return root


def fake_site(root: Path) -> Path:
    return write_tree(
        root / "site",
        {
            f"{PRELOADED}/__init__.py": """
                import lamina_fake_dep
                ORIGIN = "preloaded"
                DEP_ORIGIN = lamina_fake_dep.ORIGIN
            """,
            f"{PRELOADED}/lazy.py": "VALUE = 'lazy from the preload dir'\n",
            "lamina_fake_dep.py": "ORIGIN = 'preloaded'\n",
        },
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fake_site(tmp_path_factory.mktemp("preload"))


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory, site: Path) -> Iterator[Harness]:
    harness = Harness(
        tmp_path_factory.mktemp("run"), uvloop=True, preload=[PRELOADED, ABSENT], preload_paths=[site]
    )
    yield harness
    harness.close()


def code_with(root: Path, handler: str, files: dict[str, str] | None = None) -> Path:
    code = write_code(root, handler)
    write_tree(code, files or {})
    return code


def test_a_preloaded_package_is_in_memory_without_being_imported(
    h: Harness, tmp_path: Path, site: Path
) -> None:
    code = code_with(
        tmp_path,
        f"""
        import sys
        def handler(event, context):
            mod = sys.modules.get("{PRELOADED}")
            return {{
                "origin": mod and mod.ORIGIN,
                "dep": "lamina_fake_dep" in sys.modules,
                "lazy": "{PRELOADED}.lazy" in sys.modules,
                "path_tail": sys.path[-1],
            }}
        """,
    )
    spec = make_spec(h.engine, code)
    assert result(h.invoke(spec)) == {
        "origin": "preloaded",
        "dep": True,
        "lazy": False,
        "path_tail": str(site),
    }
    assert h.engine._zygotes[spec.interpreter].preloaded == [PRELOADED]


def test_a_preloaded_packages_lazy_imports_still_resolve(h: Harness, tmp_path: Path, site: Path) -> None:
    # The preload dir is under /tmp here, which the environment's private /tmp hides: bound back
    code = code_with(
        tmp_path,
        f"""
        import {PRELOADED}.lazy
        def handler(event, context):
            return [{PRELOADED}.lazy.VALUE, {PRELOADED}.lazy.__file__]
        """,
    )
    value, path = result(h.invoke(make_spec(h.engine, code)))
    assert value == "lazy from the preload dir" and path == str(site / PRELOADED / "lazy.py")


def test_the_zips_own_copy_wins(h: Harness, tmp_path: Path) -> None:
    code = code_with(
        tmp_path,
        f"""
        import sys
        import {PRELOADED}
        def handler(event, context):
            return [{PRELOADED}.ORIGIN, {PRELOADED}.__file__, "lamina_fake_dep" in sys.modules]
        """,
        {f"{PRELOADED}/__init__.py": "ORIGIN = 'zip'\n"},
    )
    origin, path, dep = result(h.invoke(make_spec(h.engine, code)))
    assert origin == "zip" and path == f"{seen_at(code)}/{PRELOADED}/__init__.py"
    assert dep is False  # everything preloading brought in was dropped: none of it is mixed in


def test_a_zip_that_ships_only_a_dependency_gets_it_under_the_preloaded_package(
    h: Harness, tmp_path: Path
) -> None:
    # As without preloading: the package comes from the preload dir, its dependency from the zip
    code = code_with(
        tmp_path,
        f"""
        import {PRELOADED}
        def handler(event, context):
            return [{PRELOADED}.ORIGIN, {PRELOADED}.DEP_ORIGIN]
        """,
        {"lamina_fake_dep.py": "ORIGIN = 'zip'\n"},
    )
    assert result(h.invoke(make_spec(h.engine, code))) == ["preloaded", "zip"]


def test_a_namespace_dir_of_the_same_name_does_not_shadow(h: Harness, tmp_path: Path) -> None:
    code = code_with(
        tmp_path,
        f"""
        import sys
        def handler(event, context):
            return sys.modules["{PRELOADED}"].ORIGIN
        """,
        {f"{PRELOADED}/data.txt": "not a package\n"},
    )
    assert result(h.invoke(make_spec(h.engine, code))) == "preloaded"


def test_a_missing_package_is_skipped_with_one_warning(
    tmp_path: Path, site: Path, caplog: pytest.LogCaptureFixture
) -> None:
    absent = f"lamina_fake_absent_{uuid.uuid4().hex[:8]}"
    with caplog.at_level(logging.WARNING, logger="lamina.execution.zygote"):
        harness = Harness(tmp_path / "run", preload=[absent, PRELOADED], preload_paths=[site])
        try:
            spec = make_spec(harness.engine, write_code(tmp_path, "def handler(e, c):\n    return 1\n"))
            zygote = harness.engine._zygotes[spec.interpreter]
            assert zygote.preloaded == [PRELOADED]
            old_pid = zygote.pid
            assert old_pid is not None
            os.kill(old_pid, signal.SIGKILL)  # a restarted zygote preloads again, warns no more
            assert harness.run(poll(lambda: zygote.pid != old_pid and zygote.state.value == "running"))
            assert result(harness.invoke(spec)) == 1
        finally:
            harness.close()
    warnings = [r.getMessage() for r in caplog.records if absent in r.getMessage()]
    assert len(warnings) == len(harness.engine._zygotes)  # one per interpreter, not one per start
    assert all("ModuleNotFoundError" in w and "skipped" in w for w in warnings)
