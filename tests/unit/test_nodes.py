"""Discovery of the host's node binaries (lamina.execution.nodes), with fake nodes in tmp_path."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from lamina.execution import interpreters, nodes


def fake_node(path: Path, version: str, *, exit_code: int = 0, sleep: bool = False) -> Path:
    """A script answering the probe like `node -p` would: its real path, then its version."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "exec sleep 30\n" if sleep else f'echo "$(realpath "$0")"\necho "{version}"\nexit {exit_code}\n'
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


@pytest.fixture
def no_host_nodes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Nothing on PATH, an empty home: only what a test creates is found."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: home))
    return home


def test_runtimes() -> None:
    assert nodes.RUNTIMES == ("nodejs18.x", "nodejs20.x", "nodejs22.x", "nodejs24.x")
    assert [nodes.major_of(r) for r in nodes.RUNTIMES] == ["18", "20", "22", "24"]
    assert nodes.major_of("python3.12") is None


def test_overrides_are_probed_and_a_wrong_major_is_refused(tmp_path: Path) -> None:
    v20 = fake_node(tmp_path / "a" / "node", "20.11.1")
    v22 = fake_node(tmp_path / "b" / "node", "22.3.0")
    found = asyncio.run(
        nodes.discover({"nodejs20.x": str(v20), "nodejs22.x": str(v20), "nodejs24.x": str(v22)})
    )
    assert found["nodejs20.x"] == str(v20.resolve())
    assert "nodejs22.x" not in found  # a node 20 is not a nodejs22.x, and nothing else replaces it
    assert "nodejs24.x" not in found


def test_symlinks_resolve_to_the_real_binary(tmp_path: Path) -> None:
    real = fake_node(tmp_path / "real" / "node", "18.20.4")
    link = tmp_path / "bin" / "node18"
    link.parent.mkdir()
    link.symlink_to(real)
    found = asyncio.run(nodes.discover({"nodejs18.x": str(link)}))
    assert found["nodejs18.x"] == str(real.resolve())
    assert os.path.isabs(found["nodejs18.x"])


def test_broken_missing_and_hanging_candidates_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(interpreters, "PROBE_TIMEOUT_S", 0.5)  # run_probe is shared
    failing = fake_node(tmp_path / "failing", "20.1.0", exit_code=1)
    hanging = fake_node(tmp_path / "hanging", "", sleep=True)
    overrides = {
        "nodejs18.x": str(tmp_path / "missing"),
        "nodejs20.x": str(failing),
        "nodejs22.x": str(hanging),
    }
    found = asyncio.run(nodes.discover(overrides))
    assert not set(found) & set(overrides)


def test_candidates_order_which_then_version_managers(
    no_host_nodes: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    on_path = {"node20": "/p/node20", "node": "/p/node", "nodejs": "/p/node"}
    monkeypatch.setattr(shutil, "which", lambda name: on_path.get(name))
    nvm = no_host_nodes / ".nvm" / "versions" / "node"
    for version in ("v20.1.0", "v20.10.0", "v18.19.0"):
        fake_node(nvm / version / "bin" / "node", version.removeprefix("v"))
    found = nodes.candidates("nodejs20.x", {}, home=no_host_nodes)
    assert found[:4] == [
        "/p/node20",
        "/p/node",
        str(nvm / "v20.10.0" / "bin" / "node"),  # newest of the major first
        str(nvm / "v20.1.0" / "bin" / "node"),
    ]
    assert not any("v18" in path for path in found)
    assert nodes.candidates("nodejs20.x", {"nodejs20.x": "/x/node"}) == ["/x/node"]


def test_each_runtime_gets_the_first_candidate_of_its_major(
    no_host_nodes: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    system = fake_node(tmp_path / "usr" / "bin" / "node", "18.19.1")
    monkeypatch.setattr(shutil, "which", lambda name: str(system) if name == "node" else None)
    nvm = no_host_nodes / ".nvm" / "versions" / "node"
    v20 = fake_node(nvm / "v20.12.2" / "bin" / "node", "20.12.2")
    v22 = fake_node(nvm / "v22.1.0" / "bin" / "node", "22.1.0")
    found = asyncio.run(nodes.discover())
    assert found["nodejs18.x"] == str(system.resolve())
    assert found["nodejs20.x"] == str(v20.resolve())
    assert found["nodejs22.x"] == str(v22.resolve())
    assert "nodejs24.x" not in found or not found["nodejs24.x"].startswith(str(tmp_path))
