"""The retry schedule of async events, and the seam where their final outcome goes (``FinalHook``;
``lamina.invocation.destinations`` delivers it to destinations and dead-letter queues).

AWS ("Configuring error handling for asynchronous invocation"): a function error is retried up
to MaximumRetryAttempts times (0-2, default 2), after 1 and then 2 minutes; an event older than
MaximumEventAgeInSeconds (60 s-6 h, default 6 h) is discarded; system errors (Lambda's own,
not the function's) are retried with exponential backoff, 1 s doubling up to 5 minutes, and do
not count as attempts.  Throttles are the queue's business (``AsyncQueue``), on the same curve.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from lamina.store.metadata import QueuedEvent

log = logging.getLogger("lamina.async")

DEFAULT_RETRY_DELAYS = (60.0, 120.0)
MAX_EVENT_AGE_S = 21600
SYSTEM_BACKOFF_MIN_S = 1.0
SYSTEM_BACKOFF_MAX_S = 300.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """An event's settings: its qualifier's event invoke config, or AWS's defaults."""

    max_retry_attempts: int = 2
    max_event_age_s: int = MAX_EVENT_AGE_S
    destinations: dict[str, Any] = field(default_factory=dict)  # DestinationConfig, for on_final


class FinalCondition(enum.Enum):
    """Why an event left the queue (the ``condition`` of AWS's invocation record)."""

    SUCCESS = "Success"
    RETRIES_EXHAUSTED = "RetriesExhausted"
    EVENT_AGE_EXCEEDED = "EventAgeExceeded"


@dataclass(frozen=True, slots=True)
class FinalResult:
    """What the event's last run left: the invocation record's responseContext and payload, and
    where the function's DeadLetterConfig sends discarded events."""

    executed_version: str
    dead_letter_arn: str | None = None
    ran: bool = True  # False: discarded before this run (EventAgeExceeded), no response to report
    payload: bytes = b""
    function_error: str | None = None


# Awaited once per event when it leaves the queue for good: (event, why, its policy, its result).
# The event is removed from the queue only after it returns, so what it commits is never lost.
FinalHook = Callable[[QueuedEvent, "FinalCondition", "RetryPolicy", FinalResult], Awaitable[None]]


def expired(received_at: float, policy: RetryPolicy, now: float) -> bool:
    """The event waited longer than MaximumEventAgeInSeconds since it was accepted: AWS drops it."""
    return now - received_at > policy.max_event_age_s


def function_error_delay(attempts: int, policy: RetryPolicy, delays: tuple[float, ...]) -> float | None:
    """Seconds until the next try after ``attempts`` tries ended in a function error; None: no more."""
    if attempts > policy.max_retry_attempts:
        return None
    return delays[min(attempts, len(delays)) - 1]


def system_error_delay(errors: int) -> float:
    """Seconds until the next try after the ``errors``-th consecutive system error."""
    return float(min(SYSTEM_BACKOFF_MIN_S * 2.0 ** max(errors - 1, 0), SYSTEM_BACKOFF_MAX_S))


def log_final(event: QueuedEvent, condition: FinalCondition) -> None:
    """An event is done for good: logged, so a discarded event is never silent (the destinations
    hook, ``lamina.invocation.destinations``, calls this first)."""
    success = condition is FinalCondition.SUCCESS
    log.log(
        logging.DEBUG if success else logging.WARNING,
        "async event finished" if success else "async event discarded",
        extra={
            "request_id": event.request_id,
            "function_arn": event.invoked_arn,
            "condition": condition.value,
            "attempts": event.attempts,
            "age_s": round(time.time() - event.received_at, 3),
        },
    )


async def only_log_final(
    event: QueuedEvent, condition: FinalCondition, policy: RetryPolicy, result: FinalResult
) -> None:
    """The ``on_final`` hook without destinations (unit tests, embedders)."""
    log_final(event, condition)
