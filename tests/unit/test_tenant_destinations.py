"""Destination records for functions go to the account the ARN names, never by name elsewhere."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

import pytest

from lamina.accounts.tenant import Shared, Tenant
from lamina.errors import AwsError


class Queue:
    def __init__(self) -> None:
        self.queued: list[str] = []

    async def enqueue_arn(self, arn: str, payload: bytes) -> None:
        self.queued.append(arn)


def tenant(account_id: str) -> Tenant:
    t = Tenant(name=account_id, account_id=account_id, home=Path("/nonexistent"), shared=cast(Shared, None))
    t.invocations = cast(Any, Queue())
    return t


def test_own_records_queue_here_and_another_accounts_only_where_routed() -> None:
    mine, theirs = tenant("111111111111"), tenant("222222222222")
    own = "arn:aws:lambda:us-east-1:111111111111:function:f"
    other = "arn:aws:lambda:us-east-1:222222222222:function:f"
    asyncio.run(mine._record_to_function(own, b"{}"))
    assert cast(Queue, mine.invocations).queued == [own]
    # Before the registry wires the route (an outbox delivering right after a restart): refused,
    # so the outbox retries -- never queued as this account's own function "f".
    with pytest.raises(AwsError) as err:
        asyncio.run(mine._record_to_function(other, b"{}"))
    assert err.value.code == "ResourceNotFoundException"
    assert cast(Queue, mine.invocations).queued == [own]
    mine.route = lambda caller, op, region, params: theirs  # what Accounts.route answers when allowed
    asyncio.run(mine._record_to_function(other, b"{}"))
    assert cast(Queue, theirs.invocations).queued == [other]
