"""A schedule whose target cannot be invoked: its event reaches the SQS dead-letter queue (moto's
server as the peer) with Scheduler's attributes -- never dropped silently."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from .conftest import LaminaServer, free_port, unique
from .test_destinations import ACCOUNT, REGION, Moto, delivery_env, make_queue, receive
from .test_schedules import ROLE, at_in

pytest.importorskip("moto.server")


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    m = Moto(free_port(), tmp_path_factory.mktemp("moto-sched") / "moto.log")
    m.start()
    yield m
    m.stop()


@pytest.fixture(scope="module")
def dlq_server(tmp_path_factory: pytest.TempPathFactory, moto: Moto) -> Iterator[LaminaServer]:
    srv = LaminaServer(tmp_path_factory.mktemp("sched-dlq") / "data", extra_env=delivery_env(moto.url))
    srv.start()
    yield srv
    srv.stop()


def test_missing_function_sends_the_event_to_the_dead_letter_queue(
    dlq_server: LaminaServer, moto: Moto
) -> None:
    url, queue_arn = make_queue(moto)
    missing = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{unique('gone')}"
    marker = unique("dl")
    name = unique("orphan")
    arn = dlq_server.client("scheduler").create_schedule(
        Name=name,
        ScheduleExpression=at_in(2),
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={
            "Arn": missing,
            "RoleArn": ROLE,
            "Input": json.dumps({"marker": marker}),
            "DeadLetterConfig": {"Arn": queue_arn},
        },
    )["ScheduleArn"]
    message = receive(moto, url)
    assert json.loads(message["Body"]) == {"marker": marker}
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes["ERROR_CODE"] == "ResourceNotFoundException"
    assert attributes["SCHEDULE_ARN"] == arn
    assert attributes["TARGET_ARN"] == missing
    assert attributes["EXHAUSTED_RETRY_CONDITION"] == "NonRetryableError"
    assert attributes["RETRY_ATTEMPTS"] == "0"
