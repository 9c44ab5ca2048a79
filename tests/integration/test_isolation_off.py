"""LAMINA_ISOLATION=off (bench/isolation.py's baseline): environments are plain forked processes.

The sandbox's own tests (test_hostile.py) show what isolation does; these show the switch really
turns it off -- so the benchmark compares isolation against nothing -- and that functions still run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import LaminaServer, create_function

PROBE = """
import os
def handler(event, context):
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return {"pid": os.getpid(), "uid": os.getuid(), "root": sorted(os.listdir("/")),
            "netns": os.readlink("/proc/self/ns/net"), "mntns": os.readlink("/proc/self/ns/mnt"),
            "seccomp": status["Seccomp"].strip()}
"""


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaminaServer]:
    srv = LaminaServer(tmp_path_factory.mktemp("plain") / "data", extra_env={"LAMINA_ISOLATION": "off"})
    srv.start()
    yield srv
    srv.stop()


def probe(lam: Any) -> dict[str, Any]:
    name = create_function(lam, PROBE)
    resp = lam.invoke(FunctionName=name)
    assert "FunctionError" not in resp
    return dict(json.loads(resp["Payload"].read()))


@pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox needs root: without it both sides are plain")
def test_isolation_off_runs_plain_processes(plain: LaminaServer, lam: Any) -> None:
    isolated = probe(lam)  # the default server
    bare = probe(plain.client())
    assert isolated["pid"] == 2 and isolated["uid"] != 0 and isolated["seccomp"] == "2"
    assert isolated["mntns"] != os.readlink("/proc/self/ns/mnt")
    assert bare["pid"] != 2 and bare["uid"] == os.getuid() and bare["seccomp"] == "0"
    assert bare["mntns"] == os.readlink("/proc/self/ns/mnt")  # the host's mounts, the host's root
    assert bare["netns"] == os.readlink("/proc/self/ns/net")
    assert sorted(os.listdir("/")) == bare["root"]


BOMB = """
def handler(event, context):
    if event.get("where"):
        return open("/proc/self/cgroup").read()
    hog = []
    for _ in range(64):  # bounded (1 GB): nothing but the poll stops it here
        hog.append(bytearray(16 * 1024 * 1024) + b"x")  # touched pages: really resident
    return "not stopped"
"""


def test_without_cgroups_a_memory_bomb_is_still_out_of_memory(plain: LaminaServer, lam: Any) -> None:
    """No cgroup (docs/execution.md, "Without a writable cgroup"): the server polls each busy
    environment's RSS every 50 ms and kills it past MemorySize -- Runtime.OutOfMemory, as with a
    cgroup -- and the other functions go on."""
    client = plain.client()
    name = create_function(client, BOMB, MemorySize=128)
    where = json.loads(client.invoke(FunctionName=name, Payload=b'{"where": true}')["Payload"].read())
    assert "/lamina/" not in where  # in no cgroup of lamina's: the poll is all there is
    resp = client.invoke(FunctionName=name, Payload=b"{}")
    body = json.loads(resp["Payload"].read())
    assert resp["FunctionError"] == "Unhandled" and body["errorType"] == "Runtime.OutOfMemory", body
    assert probe(client)["uid"] == os.getuid()  # another function, unharmed
    again = client.invoke(FunctionName=name, Payload=b'{"where": true}')
    assert "FunctionError" not in again  # and the bomb's function itself, in a fresh environment
