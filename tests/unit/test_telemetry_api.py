"""Telemetry API 2022-07-01: subscription checks, and delivery to a real listener on loopback."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httptools
import pytest

from lamina.execution.runtime_api import RuntimeApiServer
from lamina.execution.telemetry_api import (
    Buffering,
    Destination,
    SubscriptionInvalidError,
    TelemetryHub,
    parse_subscription,
)
from tests.unit.test_extensions_api import EVENT_NEXT, as_extension, register
from tests.unit.test_runtime_api import NEXT, TIMEOUT_S, Client, Response, error, run, started

TELEMETRY = "/2022-07-01/telemetry"


def request(port: int, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schemaVersion": "2022-12-13",
        "types": ["platform", "function"],
        "buffering": {"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 25},
        "destination": {"protocol": "HTTP", "URI": f"http://sandbox.localdomain:{port}/telemetry"},
    }
    body.update(overrides)
    return body


# -- validation ------------------------------------------------------------------------------------


def test_defaults_and_limits() -> None:
    sub = parse_subscription(
        json.dumps(
            {
                "schemaVersion": "2022-07-01",
                "types": ["extension"],
                "destination": {"protocol": "HTTP", "URI": "http://sandbox:8080"},
            }
        ).encode()
    )
    assert sub.buffering == Buffering(max_items=10_000, max_bytes=262_144, timeout_ms=1_000)
    assert sub.destination == Destination("HTTP", 8080, "/", "sandbox:8080")
    assert sub.types == ("extension",)
    tcp = parse_subscription(json.dumps(request(0, destination={"protocol": "TCP", "port": 4243})).encode())
    assert tcp.destination == Destination("TCP", 4243)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"types": []}, "schema validation error: types: expected a non-empty array"),
        ({"types": ["logs"]}, "schema validation error: types: value must be one of"),
        ({"schemaVersion": "2020-01-01"}, "schema validation error: schemaVersion: value must be one of"),
        (
            {"buffering": {"maxItems": 999}},
            "schema validation error: buffering.maxItems: must be between 1000",
        ),
        (
            {"buffering": {"maxBytes": 2_000_000}},
            "schema validation error: buffering.maxBytes: must be between",
        ),
        (
            {"buffering": {"timeoutMs": 24}},
            "schema validation error: buffering.timeoutMs: must be between 25",
        ),
        (
            {"buffering": {"timeoutMs": 100.0}},
            "schema validation error: buffering.timeoutMs: expected integer",
        ),
        ({"destination": {"protocol": "HTTPS", "URI": "x"}}, "schema validation error: destination.protocol"),
        (
            {"destination": {"protocol": "HTTP", "URI": "http://example.com:80"}},
            "Invalid destination: destination.URI host must be sandbox.localdomain",
        ),
        (
            {"destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain/x"}},
            "Invalid destination: destination.URI port is not provided",
        ),
    ],
)
def test_invalid_subscriptions(change: dict[str, Any], message: str) -> None:
    with pytest.raises(SubscriptionInvalidError) as caught:
        parse_subscription(json.dumps(request(9, **change)).encode())
    assert str(caught.value).startswith(message)


def test_missing_properties() -> None:
    with pytest.raises(SubscriptionInvalidError) as caught:
        parse_subscription(b'{"schemaVersion": "2022-07-01"}')
    assert str(caught.value) == "schema validation error: missing properties: 'types', 'destination'"


# -- a listener, as an extension runs one ------------------------------------------------------------


@dataclass
class Listener:
    """An HTTP (or TCP) telemetry listener: records what arrives; answers with ``statuses`` first."""

    statuses: list[int] = field(default_factory=list)
    posts: asyncio.Queue[tuple[dict[str, str], bytes]] = field(default_factory=asyncio.Queue)
    lines: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)
    port: int = 0
    server: asyncio.Server | None = None

    async def start(self, *, tcp: bool = False) -> Listener:
        handler = self._tcp if tcp else self._http
        self.server = await asyncio.start_server(handler, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            self.lines.put_nowait(line)
        writer.close()

    async def _http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        listener = self
        done: list[tuple[dict[str, str], bytes]] = []

        class Callbacks:
            headers: dict[str, str]
            body: list[bytes]

            def on_message_begin(self) -> None:
                self.headers, self.body = {}, []

            def on_header(self, name: bytes, value: bytes) -> None:
                self.headers[name.decode().lower()] = value.decode()

            def on_url(self, url: bytes) -> None:
                self.headers[":path"] = self.headers.get(":path", "") + url.decode()

            def on_body(self, body: bytes) -> None:
                self.body.append(body)

            def on_message_complete(self) -> None:
                done.append((self.headers, b"".join(self.body)))

        parser = httptools.HttpRequestParser(Callbacks())
        while data := await reader.read(65536):
            parser.feed_data(data)
            while done:
                headers, body = done.pop(0)
                status = listener.statuses.pop(0) if listener.statuses else 200
                listener.posts.put_nowait((headers, body))
                writer.write(b"HTTP/1.1 %d X\r\nContent-Length: 2\r\n\r\nok" % status)
        writer.close()

    async def post(self) -> tuple[dict[str, str], list[dict[str, Any]]]:
        headers, body = await self.posts.get()
        return headers, json.loads(body)

    async def events(self, count: int) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        while len(got) < count:
            got += (await self.post())[1]
        return got

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def subscribed_extension(
    server: RuntimeApiServer, address: str, body: dict[str, Any]
) -> tuple[Client, list[tuple[str, str]], Response]:
    client = await Client.connect(address)
    me = as_extension(await register(client, "ext"))
    got = await client.request("PUT", TELEMETRY, json.dumps(body).encode(), me)
    return client, me, got


def types(events: list[dict[str, Any]]) -> Iterator[str]:
    return (event["type"] for event in events)


def test_subscribe_and_receive() -> None:
    async def scenario() -> None:
        listener = await Listener().start()
        server, address = await started(expected_extensions=["ext"])
        hub = server.telemetry()
        hub.emit(
            {"time": "2024-01-01T00:00:00.000Z", "type": "platform.initStart", "record": {"phase": "init"}}
        )
        _, _, got = await subscribed_extension(server, address, request(listener.port))
        assert (got.status, got.body) == (200, b'"OK"')
        hub.emit({"type": "function", "record": "hello from the handler"})
        hub.emit({"type": "extension", "record": "not subscribed to these"})
        headers, events = await listener.post()
        while len(events) < 3:
            events += (await listener.post())[1]
        assert headers[":path"] == "/telemetry"
        assert headers["content-type"] == "application/json"
        assert headers["host"] == f"sandbox.localdomain:{listener.port}"
        assert list(types(events)) == ["platform.initStart", "platform.telemetrySubscription", "function"]
        assert events[0] == {
            "time": "2024-01-01T00:00:00.000Z",
            "type": "platform.initStart",
            "record": {"phase": "init"},
        }
        assert events[1]["record"] == {
            "name": "ext",
            "state": "Subscribed",
            "types": ["platform", "function"],
        }
        assert events[2]["record"] == "hello from the handler" and events[2]["time"].endswith("Z")
        listener.close()
        await server.close()

    run(scenario())


def test_sequence_id_is_the_body_digest() -> None:
    async def scenario() -> None:
        listener = await Listener().start()
        hub = TelemetryHub()
        hub.subscribe("ext", json.dumps(request(listener.port)).encode())
        hub.close_subscriptions()
        headers, body = await listener.posts.get()
        assert headers["sequence-id"] == base64.b64encode(hashlib.sha256(body).digest()).decode()
        await hub.close()
        listener.close()

    run(scenario())


def test_a_full_batch_goes_at_once() -> None:
    async def scenario() -> None:
        listener = await Listener().start()
        hub = TelemetryHub()
        body = request(listener.port, types=["function"], buffering={"maxItems": 1000, "timeoutMs": 30000})
        hub.subscribe("ext", json.dumps(body).encode())
        hub.close_subscriptions()
        for n in range(1000):  # maxItems reached: no waiting for the 30 s timeout
            hub.emit({"time": "t", "type": "function", "record": f"line {n}"})
        _, events = await listener.post()
        assert [event["record"] for event in events] == [f"line {n}" for n in range(1000)]
        await hub.close()
        listener.close()

    run(scenario())


def test_flush_sends_what_is_buffered() -> None:
    async def scenario() -> None:
        listener = await Listener().start()
        hub = TelemetryHub()
        hub.subscribe(
            "ext",
            json.dumps(request(listener.port, types=["function"], buffering={"timeoutMs": 30000})).encode(),
        )
        hub.close_subscriptions()
        hub.emit({"time": "t", "type": "function", "record": "last words"})
        await hub.flush(10.0)
        assert listener.posts.qsize() == 1
        assert (await listener.post())[1][0]["record"] == "last words"
        await hub.close()
        listener.close()

    run(scenario())


def test_failed_deliveries_are_retried_then_reported_dropped() -> None:
    async def scenario() -> None:
        listener = await Listener(statuses=[500, 500, 500]).start()
        hub = TelemetryHub()
        hub.subscribe("ext", json.dumps(request(listener.port)).encode())  # its own subscription event
        hub.close_subscriptions()
        for _ in range(3):
            await listener.posts.get()  # three attempts, three 500s
        _, events = await listener.post()
        assert list(types(events)) == ["platform.logsDropped"]
        assert events[0]["record"] == {
            "droppedBytes": events[0]["record"]["droppedBytes"],
            "droppedRecords": 1,
            "reason": "could not send events: http request failed with status 500",
        }
        await hub.close()
        listener.close()

    run(scenario())


def test_tcp_destination_gets_ndjson() -> None:
    async def scenario() -> None:
        listener = await Listener().start(tcp=True)
        hub = TelemetryHub()
        body = request(0, types=["function"], destination={"protocol": "TCP", "port": listener.port})
        hub.subscribe("ext", json.dumps(body).encode())
        hub.close_subscriptions()
        hub.emit({"time": "t", "type": "function", "record": "one"})
        hub.emit({"time": "t", "type": "function", "record": "two"})
        lines = [json.loads(await listener.lines.get()) for _ in range(2)]
        assert [line["record"] for line in lines] == ["one", "two"]
        await hub.close()
        listener.close()

    run(scenario())


def test_subscribe_refusals() -> None:
    async def scenario() -> None:
        server, address = await started(expected_extensions=["ext"])
        client = await Client.connect(address)
        got = await client.request("PUT", TELEMETRY, json.dumps(request(1)).encode())
        assert got.body == error(
            "Missing Lambda-Extension-Identifier header", "Extension.MissingExtensionIdentifier"
        )
        unknown = [("Lambda-Extension-Identifier", "8fbd9df4-3ab6-4c2f-9d34-5f3ad1a2b9e1")]
        got = await client.request("PUT", TELEMETRY, json.dumps(request(1)).encode(), unknown)
        assert got.body == error(
            "Unknown extension 8fbd9df4-3ab6-4c2f-9d34-5f3ad1a2b9e1", "Extension.UnknownExtensionIdentifier"
        )
        me = as_extension(await register(client, "ext"))
        bad = json.dumps(request(1, types=[])).encode()
        got = await client.request("PUT", TELEMETRY + "/", bad, me)  # AWS's docs spell it with a slash
        assert got.status == 400
        assert got.body == (
            b'{"errorType": "ValidationError", "errorMessage": "schema validation error: types: '
            b'expected a non-empty array"}'
        )
        assert (await client.request("PUT", TELEMETRY, json.dumps(request(1)).encode(), me)).status == 200
        again = await client.request("PUT", TELEMETRY, json.dumps(request(1)).encode(), me)
        assert again.body == error("Internal Server Error", "InternalServerError")
        await server.close()

    run(scenario())


def test_subscriptions_close_after_init() -> None:
    async def scenario() -> None:
        server, address = await started(expected_extensions=["ext"])
        client = await Client.connect(address)
        me = as_extension(await register(client, "ext"))
        client.send("GET", EVENT_NEXT, headers=me)
        runtime = await Client.connect(address)
        runtime.send("GET", NEXT)
        await server.expect_init()
        other = await Client.connect(address)
        got = await other.request("PUT", TELEMETRY, json.dumps(request(1)).encode(), me)
        assert got.body == error("Telemetry API subscription is closed", "Telemetry.SubscriptionClosed")
        await server.close()

    run(scenario())


def test_nothing_is_serialised_without_subscribers() -> None:
    async def scenario() -> None:
        hub = TelemetryHub()
        hub.close_subscriptions()

        hub.emit({"type": "function", "record": {(1, 2): "tuple keys do not serialise as JSON"}})
        await hub.close()

    run(scenario())


def test_flush_gives_up_on_a_dead_listener() -> None:
    async def scenario() -> None:
        probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = probe.sockets[0].getsockname()[1]
        probe.close()
        await probe.wait_closed()  # nothing listens there any more
        hub = TelemetryHub()
        hub.subscribe("ext", json.dumps(request(port, buffering={"timeoutMs": 30000})).encode())
        hub.close_subscriptions()
        await hub.flush(TIMEOUT_S * 2)  # returns after the retries, not at the timeout
        assert hub.subscribers[0]._failures == 1
        await hub.close()

    run(scenario())


def test_shutdown_delivers_telemetry_before_shutdown() -> None:
    async def scenario() -> None:
        listener = await Listener().start()
        server, address = await started(expected_extensions=["ext"])
        body = request(listener.port, types=["platform"], buffering={"timeoutMs": 30000})
        client, me, got = await subscribed_extension(server, address, body)
        assert got.status == 200
        client.send("GET", EVENT_NEXT, headers=me)
        runtime = await Client.connect(address)
        runtime.send("GET", NEXT)
        await server.expect_init()
        server.telemetry().emit({"type": "platform.report", "record": {"requestId": "r"}})
        shutdown = asyncio.ensure_future(server.shutdown("spindown", 10.0))
        event = await client.response()
        assert event.json()["eventType"] == "SHUTDOWN"
        assert listener.posts.qsize() == 1  # delivered before SHUTDOWN went out
        assert "platform.report" in types((await listener.post())[1])
        client.send("GET", EVENT_NEXT, headers=me)
        await shutdown
        listener.close()
        await server.close()

    run(scenario())
