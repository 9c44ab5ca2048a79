"""Integration fixtures: the real `lamina serve` in a subprocess on a free loopback port, driven by boto3."""

from __future__ import annotations

import http.client
import io
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

ACCESS_KEY = "LKIATESTTESTTEST0001"
SECRET_KEY = "test-secret-key-for-lamina-integration-tests"
REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/lamina-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LaminaServer:
    data_dir: Path
    port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LAMINA_", "AWS_"))}
        env.update(
            LAMINA_ACCESS_KEY_ID=ACCESS_KEY,
            LAMINA_SECRET_ACCESS_KEY=SECRET_KEY,
            LAMINA_TEST_MARKER_SHOULD_NOT_LEAK="server-secret-env",
            **self.extra_env,
        )
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"
        log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lamina",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                *self.extra_args,
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"lamina exited with {self.proc.returncode}: {self.log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/_lamina/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.05)  # poll-with-timeout for the port to open
        raise RuntimeError(f"lamina did not start in {timeout}s: {self.log_path.read_text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def client(self, service: str = "lambda", **kw: Any) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=kw.pop("region_name", REGION),
            aws_access_key_id=kw.pop("aws_access_key_id", ACCESS_KEY),
            aws_secret_access_key=kw.pop("aws_secret_access_key", SECRET_KEY),
            config=Config(retries={"max_attempts": 1, "mode": "standard"}, read_timeout=120, **kw),
        )

    def logs_text(self) -> str:
        return self.log_path.read_text() if self.log_path else ""


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaminaServer]:
    srv = LaminaServer(tmp_path_factory.mktemp("lamina") / "data", extra_args=["--idle-timeout", "60"])
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def lam(server: LaminaServer) -> Any:
    return server.client()


def make_zip(files: dict[str, str | bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return buf.getvalue()


def unique(prefix: str = "fn") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create_function(lam: Any, code: str | bytes | dict[str, str | bytes], **kw: Any) -> str:
    """Create a python function from app.py source, a file map or a ready zip; return its name."""
    name = kw.pop("name", None) or unique()
    if isinstance(code, bytes):
        zipped = code
    else:
        zipped = make_zip({"app.py": code} if isinstance(code, str) else code)
    lam.create_function(
        FunctionName=name,
        Runtime=kw.pop("Runtime", "python3.11"),
        Role=ROLE,
        Handler=kw.pop("Handler", "app.handler"),
        Code={"ZipFile": zipped},
        **kw,
    )
    return name


@pytest.fixture
def create_fn(lam: Any) -> Callable[..., str]:
    """``create_function`` bound to the session's client."""

    def _create(code: str | bytes | dict[str, str | bytes], **kw: Any) -> str:
        return create_function(lam, code, **kw)

    return _create


def log_messages(data_dir: Path, group: str) -> list[str]:
    """Messages of a log group, read straight from the server's log store (a real SQLite file)."""
    db = data_dir / "logs.sqlite3"
    if not db.exists():
        return []
    with sqlite3.connect(db, timeout=5) as conn:
        rows = conn.execute(
            "SELECT e.message FROM log_events e JOIN log_streams s ON s.id = e.stream_id "
            "WHERE s.group_name = ? ORDER BY e.timestamp_ms, e.rowid",
            (group,),
        ).fetchall()
    return [r[0] for r in rows]


def wait_for_log(data_dir: Path, group: str, text: str, timeout: float = 30.0) -> list[str]:
    """Poll the log store until a message containing ``text`` is there; return the group's messages."""
    deadline = time.monotonic() + timeout
    while True:
        messages = log_messages(data_dir, group)
        if any(text in m for m in messages) or time.monotonic() > deadline:
            assert any(text in m for m in messages), f"{text!r} not logged in {group}: {messages[-20:]}"
            return messages
        time.sleep(0.05)


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """moto's server for one test module (tests/integration/peers.py)."""
    pytest.importorskip("moto.server")
    from .peers import Moto

    m = Moto(free_port(), tmp_path_factory.mktemp("moto") / "moto.log")
    m.start()
    try:
        yield m
    finally:
        m.stop()


def signed(
    server: Any, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    req = AWSRequest(method=method, url=server.endpoint + path, data=body, headers=headers or {})
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "lambda", REGION).add_auth(req)
    u = urlsplit(server.endpoint)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=dict(req.headers.items()))
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()
