"""Concurrency limits: the account's pool per region, reserved pools per function, invoke leases.

AWS's model (developer guide, "Lambda function scaling" and "Configuring reserved concurrency"):
each region has an account limit (1000 by default); a function may reserve part of it with
PutFunctionConcurrency, and then runs at most that many invocations at once whatever else runs;
every function without a reservation shares what is left, limit - sum(reserved).  An invocation that
finds its pool full is throttled: 429 TooManyRequestsException with a ``Reason``.

Concurrency invariant: the server is one process with one event loop and every method here is
synchronous, so a check-then-increment never interleaves with another and no lock is needed.  A
lease is taken right before the engine call and released in ``finally``, so ``running`` is exact
at every await point.  A reservation change moves the function's in-flight count between its own
counter and its region's shared pool, so a release always balances the pool the function is in
*now*, whichever pool it acquired from.
"""

from __future__ import annotations

from lamina.errors import AwsError

THROTTLE_MESSAGE = "Rate Exceeded."  # Lambda's message for concurrency throttles
RESERVED_EXCEEDED = "ReservedFunctionConcurrentInvocationLimitExceeded"
ACCOUNT_EXCEEDED = "ConcurrentInvocationLimitExceeded"
# Lambda's model carries Retry-After on TooManyRequestsException; a slot can free at any moment,
# so the shortest whole number of seconds is the honest hint (AWS's own async retries start at 1 s).
RETRY_AFTER_S = "1"


def throttled(reason: str) -> AwsError:
    """Lambda's 429: the body's ``Reason`` and ``message`` (the shape's members) and Retry-After."""
    return AwsError(
        "TooManyRequestsException",
        THROTTLE_MESSAGE,
        fields={"Reason": reason, "message": THROTTLE_MESSAGE},
        headers={"Retry-After": RETRY_AFTER_S},
    )


class RegionPool:
    """The shared (unreserved) pool of one region: the account limit minus every reservation."""

    __slots__ = ("limit", "running")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running = 0


class FunctionSlots:
    """One function's concurrency state, and the lease ``acquire`` hands out (``release`` it)."""

    __slots__ = ("pool", "reserved", "running")

    def __init__(self, pool: RegionPool) -> None:
        self.pool = pool
        self.reserved: int | None = None  # None: the function draws on its region's shared pool
        self.running = 0

    def release(self) -> None:
        self.running -= 1
        if self.reserved is None:
            self.pool.running -= 1


class ConcurrencyLimiter:
    def __init__(self, account_limit: int) -> None:
        if account_limit < 1:
            raise ValueError(f"the account concurrency limit must be at least 1, got {account_limit}")
        self.account_limit = account_limit
        self._pools: dict[str, RegionPool] = {}
        # Created on a function's first invoke or reservation; dropped when the function is deleted.
        self._functions: dict[tuple[str, str], FunctionSlots] = {}

    # -- the invoke path: a dict lookup, two compares, two increments -------------------------------
    def acquire(self, region: str, name: str) -> FunctionSlots:
        """A lease on one concurrent execution of the function, or AWS's 429."""
        slots = self._functions.get((region, name))
        if slots is None:
            slots = self._track(region, name)
        reserved = slots.reserved
        if reserved is None:
            pool = slots.pool
            if pool.running >= pool.limit:
                raise throttled(ACCOUNT_EXCEEDED)
            pool.running += 1
        elif slots.running >= reserved:
            raise throttled(RESERVED_EXCEEDED)
        slots.running += 1
        return slots

    def _track(self, region: str, name: str) -> FunctionSlots:
        pool = self._pools.get(region)
        if pool is None:
            pool = self._pools[region] = RegionPool(self.account_limit)
        slots = self._functions[(region, name)] = FunctionSlots(pool)
        return slots

    # -- reservations (PutFunctionConcurrency / DeleteFunctionConcurrency) -------------------------
    def reserved(self, region: str, name: str) -> int | None:
        slots = self._functions.get((region, name))
        return None if slots is None else slots.reserved

    def unreserved(self, region: str) -> int:
        """UnreservedConcurrentExecutions: the account limit minus the region's reservations."""
        pool = self._pools.get(region)
        return self.account_limit if pool is None else pool.limit

    def set_reserved(self, region: str, name: str, value: int | None) -> None:
        """Reserve ``value`` executions for the function (None: back to the shared pool)."""
        slots = self._functions.get((region, name)) or self._track(region, name)
        pool = slots.pool
        if slots.reserved is None:
            pool.running -= slots.running  # its in-flight executions leave the shared pool...
        else:
            pool.limit += slots.reserved
        if value is None:
            pool.running += slots.running  # ...or join it
        else:
            pool.limit -= value
        slots.reserved = value

    def forget(self, region: str, name: str) -> None:
        """The function was deleted: its reservation returns to the pool; leases still balance."""
        if (region, name) in self._functions:
            self.set_reserved(region, name, None)
            del self._functions[(region, name)]

    def running(self, region: str, name: str) -> int:
        slots = self._functions.get((region, name))
        return 0 if slots is None else slots.running
