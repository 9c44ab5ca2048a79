"""Start and stop a real ``lamina serve`` for the benchmark: temp data dir, free port, own credentials.

The server runs in its own session (process group) with an environment stripped of every
``LAMINA_*`` and ``AWS_*`` variable except the credentials set here.  ``stop`` asks it to shut down
(SIGTERM), waits, then kills whatever is left of the group it started; the data dir is removed.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from client import REGION, free_port, wait_http_ok

HOST = "127.0.0.1"
ROLE = "arn:aws:iam::123456789012:role/lamina-bench"
NOOP_SOURCE = "def handler(e, c):\n    return None\n"


def noop_zip(source: str = NOOP_SOURCE) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("app.py", source)
    return buf.getvalue()


class LaminaServer:
    def __init__(
        self,
        *,
        startup_timeout: float = 60.0,
        extra_args: list[str] | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.endpoint = f"http://{HOST}:{self.port}"
        self.access_key = "LKIA" + "".join(
            secrets.choice(string.ascii_uppercase + "234567") for _ in range(16)
        )
        self.secret_key = secrets.token_urlsafe(30)
        self._startup_timeout = startup_timeout
        self._extra_args = extra_args or []
        self._extra_env = dict(extra_env or {})  # LAMINA_* settings for this run only
        self._root = Path(tempfile.mkdtemp(prefix="lamina-bench-"))
        self.data_dir = self._root / "data"
        self.log_path = self._root / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LAMINA_", "AWS_"))}
        env["LAMINA_ACCESS_KEY_ID"] = self.access_key
        env["LAMINA_SECRET_ACCESS_KEY"] = self.secret_key
        env.update(self._extra_env)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "lamina",
                    "serve",
                    "--host",
                    HOST,
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                    "--shutdown-grace",
                    "2",
                    *self._extra_args,
                ],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"lamina exited with {self.proc.returncode}:\n{self.log_tail()}")
            if wait_http_ok(HOST, self.port, "/_lamina/health", timeout=1.0):
                return
        raise RuntimeError(
            f"lamina did not become healthy in {self._startup_timeout:.0f}s:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 20.0) -> None:
        proc = self.proc
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            # Anything the server left behind in its own process group (environments, zygotes).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            self.proc = None
        shutil.rmtree(self._root, ignore_errors=True)

    def __enter__(self) -> LaminaServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def client(self, *, read_timeout: float = 60.0) -> Any:
        return boto3.client(
            "lambda",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(retries={"max_attempts": 1, "mode": "standard"}, read_timeout=read_timeout),
        )

    def create_noop(
        self, client: Any, name: str, *, runtime: str = "python3.11", tags: dict[str, str] | None = None
    ) -> None:
        client.create_function(
            FunctionName=name,
            Runtime=runtime,
            Role=ROLE,
            Handler="app.handler",
            Code={"ZipFile": noop_zip()},
            Timeout=30,
            Tags=tags or {},
        )
