"""Server lifecycle: persistence across restarts, clean shutdown, generated credentials, durable events."""

from __future__ import annotations

import json
import os
import signal
import stat
import threading
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from ..unit.test_execution_support import alive
from .conftest import LaminaServer, create_function, log_messages, unique, wait_for_log

SLEEPY = "import time\ndef handler(e, c):\n    time.sleep(e.get('sleep', 0))\n    return 'done'\n"


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat_line = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat_line.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def test_state_survives_restart_and_no_process_left(tmp_path: Path) -> None:
    srv = LaminaServer(tmp_path / "data")
    srv.start()
    lam = srv.client()
    name = unique()
    create_function(lam, SLEEPY, name=name, Environment={"Variables": {"KK": "V"}})
    assert json.loads(lam.invoke(FunctionName=name)["Payload"].read()) == "done"
    assert srv.proc is not None
    procs = descendants(srv.proc.pid)
    assert procs, "the server should have environment/zygote processes"
    assert srv.stop() == 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(p) for p in procs):
        time.sleep(0.05)
    assert not [p for p in procs if alive(p)]

    srv.start()
    try:
        lam = srv.client()
        cfg = lam.get_function_configuration(FunctionName=name)
        assert cfg["Environment"] == {"Variables": {"KK": "V"}}
        assert json.loads(lam.invoke(FunctionName=name)["Payload"].read()) == "done"
    finally:
        srv.stop()


def test_inflight_invoke_finishes_on_sigterm(tmp_path: Path) -> None:
    srv = LaminaServer(tmp_path / "data", extra_args=["--shutdown-grace", "20"])
    srv.start()
    lam = srv.client()
    name = unique()
    create_function(lam, SLEEPY, name=name, Timeout=30)
    lam.invoke(FunctionName=name)  # warm, so the next one is in flight quickly
    result: dict[str, Any] = {}

    def call() -> None:
        resp = lam.invoke(FunctionName=name, Payload=json.dumps({"sleep": 2}).encode())
        result["payload"] = json.loads(resp["Payload"].read())

    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.5)  # let the invoke reach the environment (no observable event to wait on from here)
    assert srv.proc is not None
    srv.proc.send_signal(signal.SIGTERM)
    t.join(30)
    assert result.get("payload") == "done"
    assert srv.proc.wait(30) == 0


def test_inflight_invoke_gets_error_after_grace(tmp_path: Path) -> None:
    srv = LaminaServer(tmp_path / "data", extra_args=["--shutdown-grace", "1"])
    srv.start()
    lam = srv.client()
    name = unique()
    create_function(lam, SLEEPY, name=name, Timeout=60)
    lam.invoke(FunctionName=name)
    result: dict[str, Any] = {}

    def call() -> None:
        try:
            resp = lam.invoke(FunctionName=name, Payload=json.dumps({"sleep": 50}).encode())
            result["error"] = resp.get("FunctionError")
        except Exception as exc:  # a closed connection is also "an error", not a hang
            result["exc"] = exc

    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.5)
    assert srv.proc is not None
    start = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    t.join(30)
    assert not t.is_alive()
    assert result.get("error") == "Unhandled" or "exc" in result
    assert srv.proc.wait(30) == 0
    assert time.monotonic() - start < 15


def test_generated_credentials(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env_backup = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("LAMINA_")}
    try:
        srv = LaminaServer(data)
        # no LAMINA_ACCESS_KEY_ID/SECRET: the server generates a pair
        srv.extra_env = {}
        import subprocess
        import sys

        port = srv.port
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LAMINA_", "AWS_"))}
        log = open(tmp_path / "log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "lamina", "serve", "--port", str(port), "--data-dir", str(data)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            creds_file = data / "credentials.json"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not creds_file.exists():
                time.sleep(0.05)
            creds = json.loads(creds_file.read_text())
            assert stat.S_IMODE(creds_file.stat().st_mode) == 0o600
            lam = boto3.client(
                "lambda",
                endpoint_url=f"http://127.0.0.1:{port}",
                region_name="us-east-1",
                aws_access_key_id=creds["access_key_id"],
                aws_secret_access_key=creds["secret_access_key"],
                config=Config(retries={"max_attempts": 10, "mode": "standard"}),
            )
            deadline = time.monotonic() + 30
            while True:
                try:
                    lam.list_functions()
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            output = (tmp_path / "log").read_text()
            assert creds["access_key_id"] in output
            assert creds["secret_access_key"] not in output
        finally:
            proc.terminate()
            proc.wait(30)
    finally:
        os.environ.update(env_backup)


def test_event_survives_kill_9(tmp_path: Path) -> None:
    srv = LaminaServer(tmp_path / "data")
    srv.start()
    lam = srv.client()
    name = unique()
    code = (
        "import time\ndef handler(e, c):\n    time.sleep(e.get('sleep', 0))\n"
        "    print('finished', c.aws_request_id)\n"
    )
    create_function(lam, code, name=name, Timeout=30)
    ids = [
        lam.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"sleep": 5}).encode())[
            "ResponseMetadata"
        ]["RequestId"]
        for _ in range(3)
    ]
    srv.stop(signal.SIGKILL)  # the events are accepted (202) but cannot have finished
    assert not any(
        f"finished {i}" in m for m in log_messages(srv.data_dir, f"/aws/lambda/{name}") for i in ids
    )
    srv.start()
    try:
        for rid in ids:
            wait_for_log(srv.data_dir, f"/aws/lambda/{name}", f"finished {rid}", timeout=60)
    finally:
        srv.stop()


def test_configurable_account_id(tmp_path: Path) -> None:
    srv = LaminaServer(tmp_path / "data", extra_args=["--account-id", "210987654321"])
    srv.start()
    try:
        lam = srv.client(region_name="eu-west-1")
        name = create_function(lam, SLEEPY)
        arn = lam.get_function_configuration(FunctionName=name)["FunctionArn"]
        assert arn == f"arn:aws:lambda:eu-west-1:210987654321:function:{name}"
    finally:
        srv.stop()


def test_bad_account_id_is_refused_at_start(tmp_path: Path) -> None:
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "lamina", "serve", "--data-dir", str(tmp_path / "d"), "--account-id", "12ab"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "12 digits" in r.stderr and "Traceback" not in r.stderr


def test_second_server_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    import subprocess
    import sys

    srv = LaminaServer(tmp_path / "data")
    srv.start()
    try:
        r = subprocess.run(
            [sys.executable, "-m", "lamina", "serve", "--data-dir", str(srv.data_dir), "--port", "1"],
            capture_output=True,
            text=True,
            timeout=60,
            env={k: v for k, v in os.environ.items() if not k.startswith("LAMINA_")},
        )
        assert r.returncode == 2
        assert "another lamina server" in r.stderr
        assert "Functions" in srv.client().list_functions()  # the first one is untouched
    finally:
        srv.stop()
