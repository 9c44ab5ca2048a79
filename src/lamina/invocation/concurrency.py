"""Concurrency limits: the account's pool per region, reserved pools per function, invoke leases.

AWS's model (developer guide, "Lambda function scaling" and "Configuring reserved concurrency"):
each region has an account limit (1000 by default); a function may reserve part of it with
PutFunctionConcurrency, and then runs at most that many invocations at once whatever else runs;
every function without a reservation shares what is left, limit - sum(reserved).  An invocation that
finds its pool full is throttled: 429 TooManyRequestsException with a ``Reason``.

Provisioned concurrency ("Configuring provisioned concurrency": it "counts towards a function's
reserved concurrency and Regional quotas") is a reservation per published version, carved out of
the function's own reservation when it has one (its other invocations get reserved - provisioned;
"if the amount of provisioned concurrency ... adds up to the function's reserved concurrency, all
invocations run on provisioned concurrency", $LATEST is throttled), else out of the shared pool.
An invocation of a provisioned version takes one of its version's slots while one is free and
spills over to the function's on-demand pool (own or shared) when they are all taken.

Concurrency invariant: the server is one process with one event loop and every method here is
synchronous, so a check-then-increment never interleaves with another and no lock is needed.  A
lease is taken right before the engine call and released in ``finally``, so ``running`` is exact
at every await point.  A reservation change moves the function's in-flight count between its own
counter and its region's shared pool, so a release always balances the pool the function is in
*now*, whichever pool it acquired from.  A function's claim on its region's shared pool is its
reservation if it has one, else its provisioned total; every change moves ``pool.limit`` by the
claim's difference.  A version's slots (``VersionSlots``) keep their object while the version
stays provisioned, so leases in flight release into the counter they took; a version whose
provisioned concurrency goes away takes its in-flight count with it -- those invocations stop
counting a little before they end.
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


class VersionSlots:
    """One published version's provisioned concurrency, and the lease of an invocation on it."""

    __slots__ = ("limit", "running")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running = 0

    def release(self) -> None:
        self.running -= 1


class FunctionSlots:
    """One function's concurrency state, and the lease ``acquire`` hands out (``release`` it)."""

    __slots__ = ("cap", "pool", "provisioned_total", "reserved", "running", "versions")

    def __init__(self, pool: RegionPool) -> None:
        self.pool = pool
        self.reserved: int | None = None  # None: the function draws on its region's shared pool
        self.cap: int | None = None  # on-demand executions allowed: reserved - provisioned_total
        self.running = 0  # on-demand executions in flight (provisioned ones count in versions)
        self.versions: dict[str, VersionSlots] = {}  # provisioned concurrency by version
        self.provisioned_total = 0

    def claim(self) -> int:
        """What this function takes out of its region's shared pool."""
        return self.provisioned_total if self.reserved is None else self.reserved

    def release(self) -> None:
        self.running -= 1
        if self.reserved is None:
            self.pool.running -= 1


Lease = FunctionSlots | VersionSlots


class ConcurrencyLimiter:
    def __init__(self, account_limit: int) -> None:
        if account_limit < 1:
            raise ValueError(f"the account concurrency limit must be at least 1, got {account_limit}")
        self.account_limit = account_limit
        self._pools: dict[str, RegionPool] = {}
        # Created on a function's first invoke or reservation; dropped when the function is deleted.
        self._functions: dict[tuple[str, str], FunctionSlots] = {}

    # -- the invoke path: a dict lookup, two compares, two increments -------------------------------
    def acquire(self, region: str, name: str, version: str = "$LATEST") -> Lease:
        """A lease on one concurrent execution of the function's ``version``, or AWS's 429."""
        slots = self._functions.get((region, name))
        if slots is None:
            slots = self._track(region, name)
        if slots.versions:
            provisioned = slots.versions.get(version)
            if provisioned is not None and provisioned.running < provisioned.limit:
                provisioned.running += 1
                return provisioned
        cap = slots.cap
        if cap is None:
            pool = slots.pool
            if pool.running >= pool.limit:
                raise throttled(ACCOUNT_EXCEEDED)
            pool.running += 1
        elif slots.running >= cap:
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

    def claim(self, region: str, name: str) -> int:
        """What the function takes from the shared pool: its reservation, else its provisioned total."""
        slots = self._functions.get((region, name))
        return 0 if slots is None else slots.claim()

    def provisioned_total(self, region: str, name: str) -> int:
        slots = self._functions.get((region, name))
        return 0 if slots is None else slots.provisioned_total

    def unreserved(self, region: str) -> int:
        """UnreservedConcurrentExecutions: the account limit minus the region's reservations (and
        the provisioned concurrency of functions without one)."""
        pool = self._pools.get(region)
        return self.account_limit if pool is None else pool.limit

    def set_reserved(self, region: str, name: str, value: int | None) -> None:
        """Reserve ``value`` executions for the function (None: back to the shared pool)."""
        slots = self._functions.get((region, name)) or self._track(region, name)
        pool = slots.pool
        claim = slots.claim()
        if slots.reserved is None:
            pool.running -= slots.running  # its in-flight executions leave the shared pool...
        if value is None:
            pool.running += slots.running  # ...or join it
        slots.reserved = value
        self._settle(slots, claim)

    def set_provisioned(self, region: str, name: str, versions: dict[str, int]) -> None:
        """The function's provisioned concurrency, by published version (all its configs)."""
        slots = self._functions.get((region, name)) or self._track(region, name)
        claim = slots.claim()
        old = slots.versions
        slots.versions = {}
        for version, count in versions.items():
            kept = old.get(version)  # kept: its leases in flight release into it
            if kept is None:
                kept = VersionSlots(count)
            kept.limit = count
            slots.versions[version] = kept
        slots.provisioned_total = sum(versions.values())
        self._settle(slots, claim)

    @staticmethod
    def _settle(slots: FunctionSlots, old_claim: int) -> None:
        """After a change: the on-demand cap and the shared pool's limit follow the new claim."""
        slots.cap = None if slots.reserved is None else slots.reserved - slots.provisioned_total
        slots.pool.limit += old_claim - slots.claim()

    def forget(self, region: str, name: str) -> None:
        """The function was deleted: its reservation returns to the pool; leases still balance."""
        if (region, name) in self._functions:
            self.set_reserved(region, name, None)
            self.set_provisioned(region, name, {})
            del self._functions[(region, name)]

    def provisioned_running(self, region: str, name: str) -> dict[str, int]:
        """In-flight invocations on each provisioned version's slots (for the metrics)."""
        slots = self._functions.get((region, name))
        return {} if slots is None else {v: s.running for v, s in slots.versions.items()}

    def running(self, region: str, name: str) -> int:
        slots = self._functions.get((region, name))
        if slots is None:
            return 0
        return slots.running + sum(v.running for v in slots.versions.values())
