"""The network policy: the tag's rules, the policy registry, and the namespace hand-off between
the Python runtime's ``isolate_network`` (lamina_rt_environment.py) and the engine's ``PrivateNetwork``."""

from __future__ import annotations

import asyncio
import ctypes
import fcntl
import os
import socket
from types import ModuleType

import pytest

from lamina.errors import AwsError
from lamina.execution.netns import NETWORK_DEFAULT, NETWORK_NONE, PrivateNetwork
from lamina.functions.network import NetworkPolicies
from lamina.functions.tags import check_tags
from tests.unit.python_runtime import runtime_module


def test_the_tag_takes_default_or_none_only() -> None:
    check_tags({"lamina:network": "none"})
    check_tags({"lamina:network": "default"})
    for bad in ("None", "off", "", "none "):
        with pytest.raises(AwsError) as err:
            check_tags({"lamina:network": bad})
        assert err.value.code == "InvalidParameterValueException"
        assert "lamina:network must be one of default, none" in err.value.message


def test_policies_follow_the_tags() -> None:
    policies = NetworkPolicies()
    policies.load([("us-east-1", "a", {"lamina:network": "none"}), ("us-east-1", "b", {"x": "y"})])
    assert policies.of("us-east-1", "a") == NETWORK_NONE
    assert policies.of("us-east-1", "b") == NETWORK_DEFAULT
    assert policies.of("eu-west-1", "a") == NETWORK_DEFAULT  # per region
    assert policies.set("us-east-1", "a", {"lamina:network": "none", "other": "1"}) is False
    assert policies.set("us-east-1", "a", {}) is True  # untagged: the host's network again
    assert policies.of("us-east-1", "a") == NETWORK_DEFAULT
    assert policies.set("us-east-1", "b", {"lamina:network": "none"}) is True
    policies.forget("us-east-1", "b")
    assert policies.of("us-east-1", "b") == NETWORK_DEFAULT


@pytest.fixture(scope="module")
def environment() -> ModuleType:
    return runtime_module("lamina_rt_environment")


SIOCGSKNS = 0x894C  # an fd of the network namespace a socket belongs to


def _socket_netns(sock: socket.socket) -> int:
    fd = fcntl.ioctl(sock.fileno(), SIOCGSKNS)
    try:
        return os.fstat(fd).st_ino
    finally:
        os.close(fd)


@pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
def test_the_listener_and_connections_live_in_the_environments_namespace(environment: ModuleType) -> None:
    async def scenario() -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:  # the spare's side, as the zygote's child runs it
            code = 1
            try:
                mine.close()
                environment.isolate_network(ctypes.CDLL(None, use_errno=True), theirs.detach())
                code = 0
            finally:
                os._exit(code)
        theirs.close()
        network = PrivateNetwork(mine)
        try:
            listener = await asyncio.wait_for(network.listener(), 10)
            assert listener.getsockname() == ("127.0.0.1", 9001)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
            # The listener lives in a namespace that is not ours (the host's) ...
            ours = os.stat("/proc/self/ns/net").st_ino
            assert _socket_netns(listener) != ours
            # ... and a connection made through the engine's side is made inside it
            _, writer = await asyncio.wait_for(network.open_connection(9001), 10)
            client = writer.get_extra_info("socket")
            assert _socket_netns(client) == _socket_netns(listener)
            loop = asyncio.get_running_loop()
            accepted, peer = await asyncio.wait_for(loop.sock_accept(listener), 10)
            accepted.close()
            assert peer[0] == "127.0.0.1"
            writer.close()
        finally:
            network.close()

    asyncio.run(scenario())


@pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
def test_a_closed_line_fails_the_listener() -> None:
    async def scenario() -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        theirs.close()  # the spare died before it made its namespace
        network = PrivateNetwork(mine)
        with pytest.raises(OSError, match="could not make its network namespace"):
            await asyncio.wait_for(network.listener(), 10)
        network.close()

    asyncio.run(scenario())
