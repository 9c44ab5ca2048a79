"""Provisioned concurrency's rules without a server: leases, pools, alias splits, status lifecycle."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lamina.errors import AwsError
from lamina.execution.provisioned import IllegalProvisionTransitionError, ProvisionedPool
from lamina.execution.types import EnvironmentSpec, ProvisionStatus
from lamina.functions.provisioned import split
from lamina.invocation.concurrency import (
    ACCOUNT_EXCEEDED,
    RESERVED_EXCEEDED,
    ConcurrencyLimiter,
    FunctionSlots,
    VersionSlots,
)
from lamina.model.alias import Alias
from tests.unit.test_execution_support import ACCOUNT, REGION

R = REGION


def reason(exc: pytest.ExceptionInfo[AwsError]) -> str:
    return str(exc.value.fields["Reason"])


def test_provisioned_slots_first_then_spill_over_to_the_shared_pool() -> None:
    lim = ConcurrencyLimiter(1000)
    lim.set_provisioned(R, "f", {"1": 2})
    assert lim.unreserved(R) == 998 and lim.claim(R, "f") == 2
    a, b = lim.acquire(R, "f", "1"), lim.acquire(R, "f", "1")
    assert isinstance(a, VersionSlots) and isinstance(b, VersionSlots)
    spilled = lim.acquire(R, "f", "1")
    assert isinstance(spilled, FunctionSlots)  # an on-demand execution from the shared pool
    assert isinstance(lim.acquire(R, "f"), FunctionSlots)  # $LATEST is never provisioned
    assert lim.running(R, "f") == 4
    a.release()
    assert isinstance(lim.acquire(R, "f", "1"), VersionSlots)  # its slot is free again


def test_with_a_reservation_provisioned_is_carved_out_of_it() -> None:
    lim = ConcurrencyLimiter(1000)
    lim.set_reserved(R, "f", 3)
    lim.set_provisioned(R, "f", {"1": 2})
    assert lim.unreserved(R) == 997  # counted once: inside the reservation
    held = [lim.acquire(R, "f", "1"), lim.acquire(R, "f", "1")]
    on_demand = lim.acquire(R, "f")  # 3 - 2 = 1 left for everything else
    with pytest.raises(AwsError) as exc:
        lim.acquire(R, "f")
    assert reason(exc) == RESERVED_EXCEEDED
    with pytest.raises(AwsError) as exc:
        lim.acquire(R, "f", "1")  # spill-over finds the rest taken too
    assert reason(exc) == RESERVED_EXCEEDED
    for lease in [*held, on_demand]:
        lease.release()
    # Provisioned adding up to the reservation throttles $LATEST (AWS's note).
    lim.set_provisioned(R, "f", {"1": 3})
    with pytest.raises(AwsError):
        lim.acquire(R, "f")
    lim.acquire(R, "f", "1").release()


def test_claims_follow_reservation_changes_and_forget() -> None:
    lim = ConcurrencyLimiter(10)
    lim.set_provisioned(R, "f", {"1": 2, "2": 1})
    assert lim.unreserved(R) == 7
    lim.set_reserved(R, "f", 5)
    assert lim.unreserved(R) == 5
    lim.set_reserved(R, "f", None)
    assert lim.unreserved(R) == 7
    lease = lim.acquire(R, "f", "1")
    lim.set_provisioned(R, "f", {"1": 1})  # same object kept: the lease still balances
    assert lim.unreserved(R) == 9
    others = [lim.acquire(R, f"o{i}") for i in range(9)]  # the shared 9; f's lease is not in it
    with pytest.raises(AwsError) as exc:
        lim.acquire(R, "o9")
    assert reason(exc) == ACCOUNT_EXCEEDED
    lease.release()
    assert isinstance(lim.acquire(R, "f", "1"), VersionSlots)
    for other in others:
        other.release()
    lim.forget(R, "f")
    assert lim.unreserved(R) == 10


def test_hot_path_with_provisioned_versions_is_cheap() -> None:
    lim = ConcurrencyLimiter(1000)
    lim.set_provisioned(R, "f", {"1": 5})
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(100_000):
            lim.acquire(R, "f", "1").release()
        best = min(best, (time.perf_counter() - start) / 100_000)
    assert best < 5e-6, f"{best * 1e9:.0f} ns per acquire+release"


def alias(version: str, weights: dict[str, float] | None = None) -> Alias:
    return Alias(R, "f", "live", version, "rev", weights=weights or {})


def test_an_alias_config_follows_its_routing_weights() -> None:
    assert split(alias("1"), 4) == {"1": 4}
    assert split(alias("1", {"2": 0.25}), 4) == {"1": 3, "2": 1}
    assert split(alias("1", {"2": 0.1}), 1) == {"1": 1}  # rounding never leaves a version below 0
    assert split(alias("1", {"2": 1.0}), 2) == {"2": 2}


def spec_pool() -> ProvisionedPool:
    spec = EnvironmentSpec(
        function_name="f",
        function_arn=f"arn:aws:lambda:{R}:{ACCOUNT}:function:f",
        version="1",
        revision="r",
        runtime="python3.11",
        interpreter="python3.11",
        handler="app.handler",
        code_dir=Path("/nonexistent"),
        memory_mb=128,
        timeout_s=3,
        region=R,
        account_id=ACCOUNT,
        log_group="/aws/lambda/f",
    )
    return ProvisionedPool(spec, "key")


def test_status_lifecycle_is_guarded() -> None:
    pool = spec_pool()
    pool.target = 1
    assert pool.status is ProvisionStatus.IN_PROGRESS
    pool.transition(ProvisionStatus.FAILED, "FUNCTION_ERROR_INIT_FAILURE")
    assert pool.state().reason == "FUNCTION_ERROR_INIT_FAILURE"
    pool.settle_status()  # FAILED stays FAILED until a new target
    assert pool.status is ProvisionStatus.FAILED
    with pytest.raises(IllegalProvisionTransitionError):
        pool.transition(ProvisionStatus.READY)
    pool.transition(ProvisionStatus.IN_PROGRESS)
    assert pool.reason is None
    pool.target = 0
    pool.settle_status()  # nothing to allocate: READY
    assert pool.state().status is ProvisionStatus.READY
