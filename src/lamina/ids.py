"""Identifiers minted on the hot path.

Request ids and trace ids are correlation handles, not secrets, so they come from the process's
PRNG (seeded from the OS at start) instead of ``os.urandom``: one system call less per id, on
every invoke.  Random bytes are hex-encoded once and sliced (formatting a 128-bit integer as
hex costs more than the bytes themselves).
"""

from __future__ import annotations

import random
import time

# The RFC 4122 variant's hex digit for each random one: 10xx in binary, so 8, 9, a or b.
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


class IdFactory:
    def __init__(self) -> None:
        self._rand = random.Random()  # seeded from os.urandom by the constructor
        self._root_second = -1
        self._root_prefix = ""  # "Root=1-<epoch second, 8 hex>-" of that second

    def request_id(self) -> str:
        """A random (version 4) UUID in its canonical text form."""
        h = self._rand.randbytes(16).hex()
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"

    def trace_id(self) -> str:
        """An X-Ray trace header like the one Lambda gives every invocation that comes without one."""
        now = int(time.time())
        if now != self._root_second:
            self._root_second, self._root_prefix = now, f"Root=1-{now:08x}-"
        h = self._rand.randbytes(20).hex()  # 96 bits of root id, then a 64-bit parent id
        return f"{self._root_prefix}{h[:24]};Parent={h[24:]};Sampled=0"
