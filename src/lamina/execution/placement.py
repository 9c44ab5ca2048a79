"""Where environments run on the host's CPUs: off the one the event loop needs.

Every invoke passes through the server's one event-loop thread, so under load that thread is
the bottleneck, and everything that runs on its CPU slows every invoke.  Left to the scheduler,
environments drift onto it: the loop wakes an environment with each request (a socket write), and
the scheduler's wake-affine placement puts the wakee next to its waker.  Measured on a 2-vCPU host
with 16 concurrent connections (docs/benchmarks.md): fresh environments served ~13k invokes/s,
and within 10 s -- as the scheduler learned that pattern -- throughput sank to ~10.5k and stayed
there, the loop's CPU per invoke up 10 % and the environments' up 20 % from sharing its caches.
With environments kept off one CPU, the same load held ~13.5-14k from the first second to the
last.

So by default (``auto``) lamina keeps one CPU of those it may run on -- the highest-numbered --
free of environments: its zygotes are confined to the others, and every environment they fork
inherits that.  The server's own threads are not confined; the loop, with no environment to
compete with there, settles on the kept CPU.  Nothing is kept on a single-CPU host.

The price: all environments together may use one CPU fewer.  With cgroups each environment is
capped at its MemorySize's share of a CPU anyway (1,769 MB = one vCPU, as on AWS), so this binds
only when the running environments' shares add up to more than the other CPUs -- e.g. two
concurrent 2-vCPU functions on a 2-CPU host.  ``LAMINA_LOOP_CPU=off`` gives every CPU to them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Set
from dataclasses import dataclass

log = logging.getLogger("lamina.execution")

AUTO = "auto"
OFF = "off"


@dataclass(frozen=True, slots=True)
class Placement:
    """``env_cpus``: the CPUs environments may run on (None: wherever the scheduler puts them);
    ``loop_cpu``: the one kept for the event loop (None: none kept)."""

    loop_cpu: int | None = None
    env_cpus: frozenset[int] | None = None

    def confine(self, pid: int) -> None:
        """Confine process ``pid`` (not yet forking) to ``env_cpus``; its children inherit it."""
        if self.env_cpus is None:
            return
        try:
            os.sched_setaffinity(pid, self.env_cpus)
        except OSError as exc:  # not ours to move (another uid, no CAP_SYS_NICE): left as it is
            log.warning(
                "could not keep a zygote off the event loop's CPU", extra={"pid": pid, "error": str(exc)}
            )


def check_setting(value: str) -> str:
    """``auto``, ``off`` or a CPU number (ValueError otherwise), normalised."""
    text = value.strip().lower()
    if text in (AUTO, OFF) or (text.isascii() and text.isdigit() and len(text) < 6):
        return text
    raise ValueError(f"LAMINA_LOOP_CPU must be 'auto', 'off' or a CPU number, got {value!r}")


def plan(setting: str, allowed: Set[int]) -> Placement:
    """The placement for ``setting`` on a server allowed to run on ``allowed``.

    ``auto`` keeps the highest-numbered CPU when there are at least two; a number keeps that CPU
    (ValueError if the server may not run on it); ``off``, or a single CPU, keeps none."""
    setting = check_setting(setting)
    if setting == OFF or len(allowed) < 2:
        return Placement()
    if setting == AUTO:
        kept = max(allowed)
    else:
        kept = int(setting)
        if kept not in allowed:
            raise ValueError(f"LAMINA_LOOP_CPU={kept}: this server may only run on CPUs {sorted(allowed)}")
    return Placement(loop_cpu=kept, env_cpus=frozenset(allowed - {kept}))
