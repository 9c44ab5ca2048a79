"""Telemetry API 2022-07-01: subscriptions, and the sender that delivers events to subscribers.

The engine hands every telemetry event (``platform.*``, ``function`` and ``extension`` log
records, each ``{"time", "type", "record"}``) to ``TelemetryHub.emit``.  Each is serialised once;
every subscriber to its category (the part of ``type`` before the dot) appends the bytes to its
current batch.  A batch is sent -- a JSON array POSTed to the subscriber's listener for HTTP,
newline-delimited JSON for TCP -- when it holds ``maxItems`` events or ``maxBytes`` bytes, or
``timeoutMs`` after its first event.  Behaviour follows AWS's Runtime Interface Emulator
(``internal/lambda-managed-instances/aws-lambda-rie/internal/telemetry``: subscription schema,
``sandbox.localdomain`` destinations, ``Sequence-Id`` header, ``platform.telemetrySubscription``
and ``platform.logsDropped`` records, init events replayed to subscribers that come later) and
AWS's documented buffering defaults and limits (telemetry-api-reference).

Where this differs from the emulator, to lose less: while a batch is in flight the next one keeps
filling up to twice the limits (AWS documents payloads "as large as 2 * maxBytes") instead of being
dropped whole; a failed delivery is retried twice with a short backoff (AWS documents retries)
before its events are reported dropped; a URI's path is kept.

Concurrency invariants: one event loop, no threads.  Each subscriber has at most one sender task
(``_sending``); events that arrive meanwhile go to the next batch, and ``_due`` records that it
should go as soon as the task is free.  ``emit`` never awaits.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httptools

log = logging.getLogger("lamina.telemetry_api")

TELEMETRY_PATH = "/2022-07-01/telemetry"
SCHEMA_VERSIONS = ("2022-07-01", "2022-12-13", "2025-01-29")
CATEGORIES = ("platform", "function", "extension")
SANDBOX_HOSTS = ("sandbox.localdomain", "sandbox")

# telemetry-api-reference: limits; the emulator's defaults (BufferingConfig in subscription_api.go)
MAX_ITEMS = (1_000, 10_000)
MAX_BYTES = (262_144, 1_048_576)
TIMEOUT_MS = (25, 30_000)

SEND_ATTEMPTS = 3
SEND_BACKOFF_S = 0.05
SEND_TIMEOUT_S = 10.0
INIT_BUFFER_BYTES = 4 << 20  # events kept for subscribers that subscribe later during INIT

SLOW_CONSUMER = (
    "Some logs were dropped because the downstream consumer is slower than the logs production rate"
)


@dataclass(frozen=True, slots=True)
class Buffering:
    max_items: int = 10_000
    max_bytes: int = 262_144
    timeout_ms: int = 1_000


@dataclass(frozen=True, slots=True)
class Destination:
    protocol: str  # "HTTP" | "TCP"
    port: int
    path: str = "/"  # HTTP only
    host: str = "sandbox.localdomain"  # what the Host header says; we always connect to 127.0.0.1


@dataclass(frozen=True, slots=True)
class Subscription:
    schema_version: str
    types: tuple[str, ...]
    destination: Destination
    buffering: Buffering


class SubscriptionInvalidError(Exception):
    """400 ValidationError; the message is the ``errorMessage``."""


class SubscriptionsClosedError(Exception):
    """Subscriptions are accepted during INIT only."""

    error_type = "Telemetry.SubscriptionClosed"
    message = "Telemetry API subscription is closed"


class AlreadySubscribedError(Exception):
    """The emulator's store refuses a second subscription by the same extension."""


def validation_error_body(message: str) -> bytes:
    """The emulator's 400 body: ``{"errorType": "ValidationError", "errorMessage": ...}``."""
    return json.dumps({"errorType": "ValidationError", "errorMessage": message}).encode()


def _int_in(value: Any, name: str, bounds: tuple[int, int]) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SubscriptionInvalidError(f"schema validation error: {name}: expected integer")
    if not bounds[0] <= value <= bounds[1]:
        raise SubscriptionInvalidError(
            f"schema validation error: {name}: must be between {bounds[0]} and {bounds[1]}, got {value}"
        )
    return value


def _destination(raw: Any) -> Destination:
    if not isinstance(raw, dict):
        raise SubscriptionInvalidError("schema validation error: destination: expected object")
    protocol = raw.get("protocol")
    if protocol == "TCP":
        if "port" not in raw:
            raise SubscriptionInvalidError("schema validation error: destination: missing properties: 'port'")
        return Destination("TCP", _int_in(raw["port"], "destination.port", (1, 65_535)))
    if protocol != "HTTP":
        raise SubscriptionInvalidError(
            "schema validation error: destination.protocol: value must be one of 'HTTP', 'TCP'"
        )
    uri = raw.get("URI")
    if not isinstance(uri, str) or not uri:
        raise SubscriptionInvalidError("schema validation error: destination: missing properties: 'URI'")
    try:
        parts = urllib.parse.urlsplit(uri)
        port = parts.port
    except ValueError as exc:
        raise SubscriptionInvalidError(
            f"Invalid destination: could not parse destination.URI: {exc}"
        ) from None
    if parts.hostname not in SANDBOX_HOSTS:
        raise SubscriptionInvalidError(
            "Invalid destination: destination.URI host must be sandbox.localdomain"
        )
    if parts.scheme != "http":
        raise SubscriptionInvalidError("Invalid destination: destination.URI scheme must be http")
    if port is None:
        raise SubscriptionInvalidError("Invalid destination: destination.URI port is not provided")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Destination("HTTP", port, path, f"{parts.hostname}:{port}")


def parse_subscription(body: bytes) -> Subscription:
    """Validate a subscribe request as the emulator's JSON schema does."""
    try:
        data: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise SubscriptionInvalidError(f"failed to parse JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SubscriptionInvalidError("failed to parse JSON: expected a JSON object")
    missing = [key for key in ("schemaVersion", "types", "destination") if key not in data]
    if missing:
        names = ", ".join(f"'{key}'" for key in missing)
        raise SubscriptionInvalidError(f"schema validation error: missing properties: {names}")
    version = data["schemaVersion"]
    if version not in SCHEMA_VERSIONS:
        allowed = ", ".join(f"'{v}'" for v in SCHEMA_VERSIONS)
        raise SubscriptionInvalidError(
            f"schema validation error: schemaVersion: value must be one of {allowed}"
        )
    types = data["types"]
    if not isinstance(types, list) or not types:
        raise SubscriptionInvalidError("schema validation error: types: expected a non-empty array")
    for kind in types:
        if kind not in CATEGORIES:
            raise SubscriptionInvalidError(
                "schema validation error: types: value must be one of 'platform', 'function', 'extension'"
            )
    buffering = Buffering()
    raw = data.get("buffering")
    if raw is not None:
        if not isinstance(raw, dict):
            raise SubscriptionInvalidError("schema validation error: buffering: expected object")
        buffering = Buffering(
            _int_in(raw["maxItems"], "buffering.maxItems", MAX_ITEMS)
            if "maxItems" in raw
            else buffering.max_items,
            _int_in(raw["maxBytes"], "buffering.maxBytes", MAX_BYTES)
            if "maxBytes" in raw
            else buffering.max_bytes,
            _int_in(raw["timeoutMs"], "buffering.timeoutMs", TIMEOUT_MS)
            if "timeoutMs" in raw
            else buffering.timeout_ms,
        )
    return Subscription(version, tuple(dict.fromkeys(types)), _destination(data["destination"]), buffering)


def _now_iso() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


class _ResponseReader:
    """httptools callbacks for one HTTP response: we need its status and its end only."""

    __slots__ = ("complete",)

    def __init__(self) -> None:
        self.complete = False

    def on_message_complete(self) -> None:
        self.complete = True


# How a hub reaches 127.0.0.1:<port> in its environment: the host's loopback by default, or
# from inside a no-network environment's own namespace (netns.PrivateNetwork.open_connection).
Connector = Callable[[int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


async def _host_loopback(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


class _Link:
    """The connection to one subscriber's listener (127.0.0.1 only), kept across batches."""

    def __init__(self, destination: Destination, connect: Connector) -> None:
        self.destination = destination
        self._connect = connect
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def send(self, events: list[bytes]) -> None:
        if self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await self._connect(self.destination.port)
        assert self._reader is not None and self._writer is not None
        if self.destination.protocol == "TCP":
            self._writer.write(b"".join(event + b"\n" for event in events))
            await self._writer.drain()
            return
        body = b"[" + b",".join(events) + b"]"
        sequence = base64.b64encode(hashlib.sha256(body).digest()).decode()
        head = (
            f"POST {self.destination.path} HTTP/1.1\r\nHost: {self.destination.host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Sequence-Id: {sequence}\r\n\r\n"
        ).encode()
        self._writer.write(head + body)
        await self._writer.drain()
        reader = _ResponseReader()
        parser = httptools.HttpResponseParser(reader)
        while not reader.complete:
            data = await self._reader.read(65536)
            if not data:  # a response without a length ends with the connection
                with contextlib.suppress(httptools.HttpParserError):
                    status = parser.get_status_code()
                    if status:
                        self.close()
                        break
                raise ConnectionError("connection closed before a response")
            parser.feed_data(data)
        status = parser.get_status_code()
        if not parser.should_keep_alive():
            self.close()
        if status >= 400:
            raise RuntimeError(f"http request failed with status {status}")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


class Subscriber:
    """One extension's subscription: its current batch and its sender task."""

    def __init__(self, hub: TelemetryHub, name: str, subscription: Subscription) -> None:
        self.hub = hub
        self.name = name
        self.subscription = subscription
        self.categories = frozenset(subscription.types)
        cfg = subscription.buffering
        self._max_items = cfg.max_items
        self._max_bytes = cfg.max_bytes
        self._timeout_s = cfg.timeout_ms / 1000
        self._link = _Link(subscription.destination, hub.connect)
        self._batch: list[bytes] = []
        self._bytes = 0
        self._timer: asyncio.TimerHandle | None = None
        self._sending: asyncio.Task[None] | None = None
        self._due = False
        self._dropped_records = 0
        self._dropped_bytes = 0
        self._failures = 0  # deliveries given up on
        self._closed = False

    def add(self, event: bytes) -> None:
        size = len(event)
        batch = self._batch
        if self._sending is not None and (
            len(batch) >= 2 * self._max_items or self._bytes + size > 2 * self._max_bytes
        ):
            self._dropped_records += 1
            self._dropped_bytes += size
            return
        batch.append(event)
        self._bytes += size
        if len(batch) == 1:
            self._timer = asyncio.get_running_loop().call_later(self._timeout_s, self._on_timer)
        if len(batch) >= self._max_items or self._bytes >= self._max_bytes:
            self._kick()

    def _on_timer(self) -> None:
        self._timer = None
        self._kick()

    def _kick(self) -> None:
        if self._closed:
            return
        if self._sending is None:
            self._sending = asyncio.get_running_loop().create_task(self._run())
        else:
            self._due = True

    def _take(self) -> list[bytes]:
        batch, self._batch, self._bytes, self._due = self._batch, [], 0, False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return batch

    def _full(self) -> bool:
        return len(self._batch) >= self._max_items or self._bytes >= self._max_bytes

    async def _run(self) -> None:
        try:
            while True:
                batch = self._take()
                if batch:
                    await self._deliver(batch)
                if self._dropped_records:
                    records, size = self._dropped_records, self._dropped_bytes
                    self._dropped_records = self._dropped_bytes = 0
                    self.hub.logs_dropped(records, size, SLOW_CONSUMER)
                if not (self._batch and (self._due or self._full())):
                    break
        finally:
            self._sending = None

    async def _deliver(self, batch: list[bytes]) -> None:
        error: BaseException | None = None
        for attempt in range(SEND_ATTEMPTS):
            if attempt:
                await asyncio.sleep(SEND_BACKOFF_S * (2 ** (attempt - 1)))  # backoff, not synchronisation
            try:
                async with asyncio.timeout(SEND_TIMEOUT_S):
                    await self._link.send(batch)
                return
            except (OSError, RuntimeError, TimeoutError, httptools.HttpParserError) as exc:
                self._link.close()
                error = exc
        self._failures += 1
        log.warning("telemetry: could not deliver %d events to %s: %s", len(batch), self.name, error)
        self.hub.logs_dropped(len(batch), sum(map(len, batch)), f"could not send events: {error}")

    async def drain(self) -> None:
        """Send everything buffered now, and return once it has gone (or been given up on)."""
        failures = self._failures
        # a failed delivery reports itself in a new event: stop there, or a dead listener would
        # keep us here until the caller's timeout
        while (self._batch or self._sending is not None) and not self._closed and self._failures == failures:
            if self._sending is None:
                self._kick()
            else:
                self._due = True
            task = self._sending
            if task is not None:
                await asyncio.wait({task})

    def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._sending is not None:
            self._sending.cancel()
        self._link.close()


class TelemetryHub:
    """Every subscriber of one execution environment, and what the engine emits to them."""

    def __init__(self, connect: Connector | None = None) -> None:
        self.connect: Connector = connect or _host_loopback
        self._subscribers: dict[str, Subscriber] = {}
        self._open = True  # subscriptions accepted (INIT)
        self._init_events: list[tuple[str, bytes]] = []  # replayed to later INIT subscribers
        self._init_bytes = 0
        self._closed = False

    @property
    def subscribers(self) -> list[Subscriber]:
        return list(self._subscribers.values())

    def emit(self, event: Mapping[str, Any]) -> None:
        """Queue ``event`` (``{"time", "type", "record"}``; ``time`` added if missing) for subscribers."""
        if not self._subscribers and not self._open:
            return  # the common case: nobody listens, nothing to serialise
        kind = str(event.get("type", ""))
        if "time" not in event:
            event = {"time": _now_iso(), **event}
        data = json.dumps(event, separators=(",", ":"), ensure_ascii=False, default=str).encode()
        self._fan_out(kind.partition(".")[0], data)

    def _fan_out(self, category: str, data: bytes) -> None:
        if self._closed:
            return
        for sub in self._subscribers.values():
            if category in sub.categories:
                sub.add(data)
        if self._open and self._init_bytes + len(data) <= INIT_BUFFER_BYTES:
            self._init_events.append((category, data))
            self._init_bytes += len(data)

    def subscribe(self, extension_name: str, body: bytes) -> Subscription:
        """Subscribe ``extension_name`` to what ``body`` asks for.

        Raises SubscriptionInvalidError (400), SubscriptionsClosedError (403, after INIT) or
        AlreadySubscribedError (the emulator's store refuses a second subscription: 500).
        """
        subscription = parse_subscription(body)
        if not self._open or self._closed:
            raise SubscriptionsClosedError
        if extension_name in self._subscribers:
            raise AlreadySubscribedError(extension_name)
        sub = Subscriber(self, extension_name, subscription)
        self._subscribers[extension_name] = sub
        for category, data in self._init_events:
            if category in sub.categories:
                sub.add(data)
        self.emit(
            {
                "type": "platform.telemetrySubscription",
                "record": {"name": extension_name, "state": "Subscribed", "types": list(subscription.types)},
            }
        )
        return subscription

    def close_subscriptions(self) -> None:
        """INIT is over: no more subscriptions, and no more need to keep INIT's events."""
        self._open = False
        self._init_events = []
        self._init_bytes = 0

    def logs_dropped(self, records: int, size: int, reason: str) -> None:
        self.emit(
            {
                "type": "platform.logsDropped",
                "record": {"droppedBytes": size, "droppedRecords": records, "reason": reason},
            }
        )

    async def flush(self, timeout_s: float) -> None:
        """Deliver what every subscriber has buffered, waiting at most ``timeout_s``."""
        if not self._subscribers or timeout_s <= 0:
            return
        drains = [asyncio.ensure_future(sub.drain()) for sub in self._subscribers.values()]
        _, pending = await asyncio.wait(drains, timeout=timeout_s)
        for task in pending:
            task.cancel()

    async def close(self) -> None:
        """Stop every sender; what is still buffered is lost."""
        self._closed = True
        self._open = False
        self._init_events = []
        tasks = [sub._sending for sub in self._subscribers.values() if sub._sending is not None]
        for sub in self._subscribers.values():
            sub.close()
        if tasks:
            await asyncio.wait(tasks)
