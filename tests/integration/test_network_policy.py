"""The network policy (``lamina:network`` tag) against a real `lamina serve`.

A default function reaches what the host reaches (a listener the test opens on the host's
loopback, the lamina API, the host's abstract Unix sockets); a function tagged
``lamina:network`` = ``none`` reaches none of it and sees only its own loopback -- and still
runs on every runtime path: lamina's Python runtime, custom runtimes and Node over the Runtime
API, extensions and the Telemetry API.  Changing the tag replaces the function's environments.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import LaminaServer, create_function, wait_for_log
from .test_custom_runtimes import PY_BOOTSTRAP, SHELL_BOOTSTRAP, executable_zip, provided
from .test_extensions import HANDLER, make_layer
from .test_nodejs import MAJOR

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need a root server")

NO_NETWORK = {"lamina:network": "none"}

PROBE = """
import errno, os, socket


def attempt(fn):
    try:
        return "ok:" + str(fn())
    except OSError as exc:
        return f"{type(exc).__name__}:{errno.errorcode.get(exc.errno, exc.errno)}"


def tcp(host, port):
    def go():
        with socket.create_connection((host, port), timeout=3):
            return "connected"
    return attempt(go)


def abstract(name):
    def go():
        with socket.socket(socket.AF_UNIX) as s:
            s.connect("\\0" + name)
            return "connected"
    return attempt(go)


def own_loopback():
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        with socket.create_connection(srv.getsockname(), timeout=3):
            return "connected"


def handler(event, context):
    out = {
        "host_listener": tcp("127.0.0.1", event["port"]),
        "api": tcp("127.0.0.1", event["api_port"]),
        "abstract": abstract(event["abstract"]),
        "interfaces": sorted(name for _, name in socket.if_nameindex()),
        "own_loopback": attempt(own_loopback),
        "pid": os.getpid(),
        "init": os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE"),
    }
    if event.get("outside"):
        out["outside"] = tcp(event["outside"], 53)
        out["dns"] = attempt(lambda: socket.getaddrinfo("example.com", 443)[0][4][0])
    return out
"""


@pytest.fixture(scope="module")
def netsrv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaminaServer]:
    srv = LaminaServer(tmp_path_factory.mktemp("netpolicy") / "data", extra_args=["--idle-timeout", "60"])
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def lam(netsrv: LaminaServer) -> Any:
    return netsrv.client()


@pytest.fixture(scope="module")
def host_services() -> Iterator[dict[str, Any]]:
    """A TCP listener on the host's loopback and an abstract Unix socket of the host's namespace."""
    name = f"lamina-nettest-{uuid.uuid4().hex[:8]}"
    with socket.socket() as tcp, socket.socket(socket.AF_UNIX) as unix:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen(64)  # connections complete in the backlog: nobody needs to accept them
        unix.bind("\0" + name)
        unix.listen(64)
        yield {"port": tcp.getsockname()[1], "abstract": name}


def probe(lam: Any, name: str, event: dict[str, Any], qualifier: str | None = None) -> dict[str, Any]:
    kw = {"Qualifier": qualifier} if qualifier else {}
    resp = lam.invoke(FunctionName=name, Payload=json.dumps(event), **kw)
    body = json.loads(resp["Payload"].read())
    assert "FunctionError" not in resp, body
    return body


def event_for(netsrv: LaminaServer, host_services: dict[str, Any], **extra: Any) -> dict[str, Any]:
    ports = {"port": host_services["port"], "api_port": netsrv.port}
    return {**ports, "abstract": host_services["abstract"], **extra}


def assert_networked(seen: dict[str, Any]) -> None:
    assert seen["host_listener"] == "ok:connected", seen
    assert seen["api"] == "ok:connected", seen
    assert seen["abstract"] == "ok:connected", seen
    assert len(seen["interfaces"]) > 1, seen  # lo and the host's others


def assert_isolated(seen: dict[str, Any]) -> None:
    # nothing listens on those ports in its own namespace; the host's are elsewhere
    assert seen["host_listener"] == "ConnectionRefusedError:ECONNREFUSED", seen
    assert seen["api"] == "ConnectionRefusedError:ECONNREFUSED", seen
    assert seen["abstract"] == "ConnectionRefusedError:ECONNREFUSED", seen
    assert seen["interfaces"] == ["lo"], seen
    assert seen["own_loopback"] == "ok:connected", seen  # its own loopback is up and its own


def test_a_default_function_reaches_the_hosts_network(
    lam: Any, netsrv: LaminaServer, host_services: dict[str, Any]
) -> None:
    name = create_function(lam, PROBE)
    assert_networked(probe(lam, name, event_for(netsrv, host_services)))


def test_a_no_network_function_sees_only_its_own_loopback(
    lam: Any, netsrv: LaminaServer, host_services: dict[str, Any]
) -> None:
    name = create_function(lam, PROBE, Tags=NO_NETWORK)
    seen = probe(lam, name, event_for(netsrv, host_services, outside="192.0.2.1"))
    assert_isolated(seen)
    assert seen["outside"] == "OSError:ENETUNREACH", seen  # no route anywhere
    assert not seen["dns"].startswith("ok:"), seen
    # warm, and a second environment (a concurrent one would be the same: each its own namespace)
    assert_isolated(probe(lam, name, event_for(netsrv, host_services)))


def test_the_tag_is_validated_with_aws_errors(lam: Any) -> None:
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as err:
        create_function(lam, PROBE, Tags={"lamina:network": "off"})
    assert "lamina:network must be one of default, none" in str(err.value)
    name = create_function(lam, PROBE)
    arn = lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as err:
        lam.tag_resource(Resource=arn, Tags={"lamina:network": "None"})
    assert err.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    lam.tag_resource(Resource=arn, Tags={"lamina:network": "default"})
    assert lam.list_tags(Resource=arn)["Tags"] == {"lamina:network": "default"}


def test_changing_the_tag_replaces_warm_environments(
    lam: Any, netsrv: LaminaServer, host_services: dict[str, Any]
) -> None:
    name = create_function(lam, PROBE)
    arn = lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    event = event_for(netsrv, host_services)
    before = probe(lam, name, event)
    assert_networked(before)
    assert probe(lam, name, event)["pid"] == before["pid"]  # warm
    lam.tag_resource(Resource=arn, Tags=NO_NETWORK)
    isolated = probe(lam, name, event)  # the very next invoke: a new environment
    assert_isolated(isolated)
    lam.untag_resource(Resource=arn, TagKeys=["lamina:network"])
    assert_networked(probe(lam, name, event))


def test_provisioned_environments_follow_the_tag(
    lam: Any, netsrv: LaminaServer, host_services: dict[str, Any]
) -> None:
    name = create_function(lam, PROBE)
    arn = lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    version = lam.publish_version(FunctionName=name)["Version"]
    lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier=version, ProvisionedConcurrentExecutions=1
    )
    wait_ready(lam, name, version)
    event = event_for(netsrv, host_services)
    served = probe(lam, name, event, version)
    assert_networked(served)
    assert served["init"] == "provisioned-concurrency", served
    lam.tag_resource(Resource=arn, Tags=NO_NETWORK)  # tags are the function's: every version's
    assert_isolated(probe(lam, name, event, version))
    wait_ready(lam, name, version)
    # the provisioned environment serving it now is a no-network one
    served = probe(lam, name, event, version)
    assert_isolated(served)
    assert served["init"] == "provisioned-concurrency", served


def wait_ready(lam: Any, name: str, version: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        cfg = lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier=version)
        if cfg["Status"] == "READY" or time.monotonic() > deadline:
            assert cfg["Status"] == "READY", cfg
            return
        time.sleep(0.05)  # poll-with-timeout for the background INIT


def test_a_no_network_custom_runtime_serves_invokes(lam: Any) -> None:
    name = provided(lam, {"bootstrap": PY_BOOTSTRAP}, Tags=NO_NETWORK)
    for i in range(2):
        body = probe(lam, name, {"n": i})
        assert body["event"] == {"n": i} and body["count"] == i + 1
        assert body["api"] == "127.0.0.1:9001"  # AWS's address, in its own namespace
    err = lam.invoke(FunctionName=name, Payload=json.dumps({"action": "error"}))
    assert err["FunctionError"] == "Unhandled"
    assert json.loads(err["Payload"].read())["errorType"] == "Custom.Bad"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_a_no_network_shell_runtime_serves_invokes(lam: Any) -> None:
    name = provided(lam, {"bootstrap": SHELL_BOOTSTRAP}, Tags=NO_NETWORK)
    assert probe(lam, name, {"k": 1}) == {"echo": {"k": 1}, "shell": True}


NODE_HANDLER = """
const os = require("os");
const net = require("net");
exports.handler = async (event) => {
  const reach = await new Promise((resolve) => {
    const s = net.connect({host: "127.0.0.1", port: event.port}, () => {
      s.destroy();
      resolve("connected");
    });
    s.on("error", (e) => resolve(e.code));
  });
  return {event, interfaces: Object.keys(os.networkInterfaces()).sort(), reach};
};
"""


@pytest.mark.skipif(MAJOR is None or MAJOR < 18, reason="no node >= 18 on this host")
def test_a_no_network_node_function_serves_invokes(lam: Any, host_services: dict[str, Any]) -> None:
    name = create_function(
        lam, {"index.js": NODE_HANDLER}, Runtime=f"nodejs{MAJOR}.x", Handler="index.handler", Tags=NO_NETWORK
    )
    event = {"port": host_services["port"]}
    for _ in range(2):
        body = probe(lam, name, event)
        assert body == {"event": event, "interfaces": ["lo"], "reach": "ECONNREFUSED"}


@pytest.mark.parametrize("runtime", ["python3.11", "provided.al2023"])
def test_extensions_and_telemetry_work_without_network(lam: Any, netsrv: LaminaServer, runtime: str) -> None:
    layer = make_layer(lam)
    if runtime == "provided.al2023":
        code: Any = executable_zip({"bootstrap": PY_BOOTSTRAP})
        name = create_function(
            lam, code, Runtime=runtime, Handler="x.y", Layers=[layer], Timeout=30, Tags=NO_NETWORK
        )
    else:
        name = create_function(lam, HANDLER, Runtime=runtime, Layers=[layer], Timeout=30, Tags=NO_NETWORK)
    group = f"/aws/lambda/{name}"
    rids = []
    for _ in range(2):
        resp = lam.invoke(FunctionName=name, Payload=json.dumps({"x": 1}))
        assert "FunctionError" not in resp, resp["Payload"].read()
        rids.append(resp["ResponseMetadata"]["RequestId"])
    messages = wait_for_log(netsrv.data_dir, group, f"[ext] INVOKE {rids[1]}")
    assert f"[ext] registered 200 {name}" in messages
    assert "[ext] subscribed 200" in messages
    # the Telemetry API reached the extension's listener inside the namespace
    wait_for_log(netsrv.data_dir, group, f"[ext] telemetry report {rids[0]}")
    lam.update_function_configuration(FunctionName=name, Timeout=25)
    wait_for_log(netsrv.data_dir, group, "[ext] SHUTDOWN spindown")
