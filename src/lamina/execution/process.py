"""One environment process as the OS sees it: pid, channel, log pipe, cgroup, exit status.

A process is forked from its zygote before any function needs it (a *spare*, see ``spares.py``):
it joins its own memory cgroup, enters its own process group and a mount namespace with its own
/tmp, puts its stdout/stderr on the log pipe, warms up, and then blocks on its channel until an
``Environment`` sends it the function to become (``init``).  Only that last step is on a cold
start's path.

Concurrency invariants: everything runs on the event loop.  ``exit_status`` is resolved once,
by the zygote's exit report (or by the zygote's own death).  ``dispose`` is called once, by the
engine's tracked destroy task.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from pathlib import Path
from typing import Any

from lamina.execution.cgroup import EnvCgroup
from lamina.execution.channel import EnvChannel
from lamina.execution.logs import LogCapture
from lamina.execution.netns import NETWORK_NONE, PrivateNetwork
from lamina.execution.zygote import ExitStatus, Zygote

EXIT_WAIT_S = 5.0  # how long to wait for the zygote's exit report after a channel EOF
CGROUP_RELEASE_TRIES = 100  # x 10 ms: the kernel may hold an emptied group a moment after the exit


class EnvProcess:
    def __init__(
        self,
        *,
        proc_id: str,
        zygote: Zygote,
        cgroup: EnvCgroup | None,
        tmp_dir: Path,
        sandbox: dict[str, Any] | None = None,
    ) -> None:
        self.id = proc_id
        self.zygote = zygote
        self.cgroup = cgroup
        self.tmp_dir = tmp_dir  # bound onto its /tmp as a spare already; the engine removes it
        self.code_parent: str | None = None  # where code dirs were lately: see prepare_spare
        # What the process does to itself (bootstrap's prepare_spare): uid, nofile, hide, ...
        self.sandbox: dict[str, Any] = sandbox or {}
        self.pid: int | None = None
        self.loop = asyncio.get_running_loop()
        self.exit_status: asyncio.Future[ExitStatus] = self.loop.create_future()
        self.channel: EnvChannel | None = None
        self.logs: LogCapture | None = None
        self.killed = False  # a SIGKILL was sent (timeout, OOM watch, dispose): no graceful stop
        # A no-network process's namespace (its Runtime API listener): netns.py
        self.network: PrivateNetwork | None = None

    @property
    def exited(self) -> bool:
        return self.exit_status.done()

    async def spawn(self) -> None:
        """Ask the zygote for the process; returns once it is forked (it then joins its cgroup)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        read_fd, write_fd = os.pipe()
        self.logs = LogCapture(read_fd)  # owns read_fd from here on (closed by dispose)
        fds = [theirs.fileno(), write_fd]
        net_line = None
        if self.sandbox.get("network") == NETWORK_NONE:
            mine, net_line = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            self.network = PrivateNetwork(mine)
            fds.append(net_line.fileno())
        try:
            _, self.channel = await self.loop.create_unix_connection(EnvChannel, sock=ours)
            config = {
                **self.sandbox,
                "cgroup_procs": [str(f) for f in self.cgroup.join_files] if self.cgroup is not None else [],
                "tmp_dir": str(self.tmp_dir),
                "code_parent": self.code_parent,
            }
            self.pid = await self.zygote.spawn(self.id, config, fds)
        except BaseException:
            if self.channel is None:
                ours.close()
            raise
        finally:  # the zygote has its own copies now (or never will)
            theirs.close()
            os.close(write_fd)
            if net_line is not None:
                net_line.close()

    def on_exit(self, status: ExitStatus) -> None:
        if not self.exit_status.done():
            self.exit_status.set_result(status)

    def kill(self) -> None:
        self.killed = True
        if self.cgroup is not None:
            self.cgroup.kill()
        if self.pid is not None and not self.exit_status.done():
            for kill in (os.killpg, os.kill):  # its process group (its children), then itself
                with contextlib.suppress(OSError):
                    kill(self.pid, signal.SIGKILL)

    async def wait_exit(self) -> ExitStatus:
        try:
            return await asyncio.wait_for(asyncio.shield(self.exit_status), EXIT_WAIT_S)
        except TimeoutError:
            # Channel closed but the process lingers (or no report came): kill it.
            self.kill()
            return ExitStatus(signal=signal.SIGKILL)

    async def dispose(self) -> None:
        """Kill, wait for the exit, release the channel, log pipe and cgroup."""
        self.kill()
        if self.pid is not None:
            await self.wait_exit()
        if self.channel is not None:
            self.channel.close()
        if self.network is not None:
            self.network.close()
        if self.logs is not None:
            self.logs.drain()  # the last lines (a SHUTDOWN handler's) are the engine's to deliver
            self.logs.flush_partial()
            self.logs.close()
        if self.cgroup is not None:
            for _ in range(CGROUP_RELEASE_TRIES):
                if self.cgroup.remove():
                    break
                self.cgroup.kill()
                await asyncio.sleep(0.01)  # no event tells when the kernel lets go of the group
