"""Identifiers minted on the hot path.

Request ids and trace ids are correlation handles, not secrets, so they come from the process's
PRNG (seeded from the OS at start) instead of ``os.urandom``: one system call less per id, on
every invoke.  Random bytes are drawn and hex-encoded 2 KB at a time and sliced (a randbytes call
per id, a Python-level wrapper, cost more than the id's formatting).
"""

from __future__ import annotations

import random
import time

# The RFC 4122 variant's hex digit for each random one: 10xx in binary, so 8, 9, a or b.
_POOL_BYTES = 2048
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


class IdFactory:
    def __init__(self) -> None:
        self._rand = random.Random()  # seeded from os.urandom by the constructor
        self._root_second = -1
        self._root_prefix = ""  # "Root=1-<epoch second, 8 hex>-" of that second
        self._hex = ""  # random hex digits, taken from the front
        self._pos = 0

    def _digits(self, n: int) -> str:
        """``n`` fresh random hex digits (never handed out twice)."""
        pos = self._pos
        end = pos + n
        if end > len(self._hex):
            self._hex = self._rand.randbytes(_POOL_BYTES).hex()
            pos, end = 0, n
        self._pos = end
        return self._hex[pos:end]

    def request_id(self) -> str:
        """A random (version 4) UUID in its canonical text form."""
        h = self._digits(32)
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"

    def trace_id(self) -> str:
        """An X-Ray trace header like the one Lambda gives every invocation that comes without one."""
        now = int(time.time())
        if now != self._root_second:
            self._root_second, self._root_prefix = now, f"Root=1-{now:08x}-"
        h = self._digits(40)  # 96 bits of root id, then a 64-bit parent id
        return f"{self._root_prefix}{h[:24]};Parent={h[24:]};Sampled=0"
