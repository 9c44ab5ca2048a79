"""Extensions API 2020-01-01 against AWS's emulator: registration, events, errors, INIT and SHUTDOWN."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from lamina.execution.extensions_api import READY, RUNNING, ApiError, ExtensionsRegistry, parse_register_body
from lamina.execution.runtime_api import RuntimeAnswer
from tests.unit.test_runtime_api import NEXT, Client, Response, error, invocation, invoke, run, started, until

REGISTER = "/2020-01-01/extension/register"
EVENT_NEXT = "/2020-01-01/extension/event/next"
INIT_ERROR = "/2020-01-01/extension/init/error"
EXIT_ERROR = "/2020-01-01/extension/exit/error"
BOTH = b'{"events":["INVOKE","SHUTDOWN"]}'


async def register(client: Client, name: str, body: bytes = BOTH, *extra: tuple[str, str]) -> Response:
    return await client.request("POST", REGISTER, body, [("Lambda-Extension-Name", name), *extra])


def as_extension(response: Response) -> list[tuple[str, str]]:
    return [("Lambda-Extension-Identifier", response.headers["lambda-extension-identifier"])]


def test_register() -> None:
    async def scenario() -> None:
        server, address = await started(expected_extensions=["ext-a", "ext-b"])
        client = await Client.connect(address)
        registered = server.extensions_registered()
        got = await register(client, "ext-a")
        assert got.status == 200
        assert (
            str(uuid.UUID(got.headers["lambda-extension-identifier"]))
            == got.headers["lambda-extension-identifier"]
        )
        assert got.headers["content-type"] == "application/json"
        assert got.body == b'{"functionName":"fn","functionVersion":"$LATEST","handler":"index.handler"}\n'
        assert not registered.done()
        got = await register(client, "ext-b", BOTH, ("Lambda-Extension-Accept-Feature", "other, accountId"))
        assert got.json() == {
            "accountId": "123456789012",
            "functionName": "fn",
            "functionVersion": "$LATEST",
            "handler": "index.handler",
        }
        assert got.body.startswith(b'{"accountId":"123456789012",')  # Go's field order
        await registered
        await server.close()

    run(scenario())


def test_register_refusals() -> None:
    async def scenario() -> None:
        server, address = await started(expected_extensions=["ext"])
        client = await Client.connect(address)
        got = await client.request("POST", REGISTER, BOTH)
        assert (got.status, got.body) == (
            403,
            error("Empty extension name", "Extension.InvalidExtensionName"),
        )
        got = await register(client, "ext", b'{"events":["INVOKE","FOO"]}')
        assert got.body == error("FOO: ErrorInvalidEventType", "Extension.InvalidEventType")
        got = await register(client, "ext", b'{"configurationKeys":["a"]}')
        assert got.body == error(
            "configurationKeys are deprecated; use environment variables instead", "InvalidRequestFormat"
        )
        assert (await register(client, "ext", b"")).json()["errorType"] == "InvalidRequestFormat"
        assert (await register(client, "ext")).status == 200
        got = await register(client, "ext")
        assert got.body == error(
            "State transition from Registered to Registered failed for extension ext. "
            "Error: State transition is not allowed",
            "Extension.InvalidExtensionState",
        )
        # a name we were not told of is an internal extension: no SHUTDOWN for those
        got = await register(client, "inside")
        assert got.body == error(
            "SHUTDOWN: ShutdownEventNotSupportedForInternalExtension", "Extension.InvalidEventType"
        )
        assert (await register(client, "inside", b'{"events":["INVOKE"]}')).status == 200
        got = await register(client, "inside", b'{"events":["INVOKE"]}')
        assert got.body == error(
            "Extension with this name already registered", "Extension.InvalidExtensionState"
        )
        # registration closes when the runtime asks for work
        runtime = await Client.connect(address)
        runtime.send("GET", NEXT)
        await until(lambda: not server._registry.registration_open)
        got = await register(client, "late", b'{"events":["INVOKE"]}')
        assert got.body == error("Extension registration closed already", "Extension.RegistrationClosed")
        await server.close()

    run(scenario())


def test_too_many_extensions() -> None:
    registry = ExtensionsRegistry([f"e{i}" for i in range(9)])
    registry.register("tenth", ["INVOKE"])
    with pytest.raises(ApiError) as caught:
        registry.register("eleventh", [])
    assert (caught.value.error_type, caught.value.message) == (
        "Extension.TooManyExtensions",
        "Extension limit (10) reached",
    )


def test_parse_register_body() -> None:
    assert parse_register_body(b"null") == []
    assert parse_register_body(b"{}") == []
    assert parse_register_body(BOTH) == ["INVOKE", "SHUTDOWN"]
    for bad in (b"[]", b'{"events":"INVOKE"}', b"{", b'{"events":[1]}'):
        with pytest.raises(ApiError) as caught:
            parse_register_body(bad)
        assert (caught.value.status, caught.value.error_type) == (403, "InvalidRequestFormat")


def test_identifier_refusals() -> None:
    async def scenario() -> None:
        server, address = await started()
        client = await Client.connect(address)
        got = await client.request("GET", EVENT_NEXT)
        assert got.body == error(
            "Missing Lambda-Extension-Identifier header", "Extension.MissingExtensionIdentifier"
        )
        got = await client.request("GET", EVENT_NEXT, headers=[("Lambda-Extension-Identifier", "nope")])
        assert got.body == error(
            "Invalid Lambda-Extension-Identifier", "Extension.InvalidExtensionIdentifier"
        )
        unknown = str(uuid.uuid4())
        got = await client.request(
            "GET", EVENT_NEXT, headers=[("Lambda-Extension-Identifier", unknown.upper())]
        )
        assert got.body == error(f"Unknown extension {unknown}", "Extension.UnknownExtensionIdentifier")
        headers = [
            ("Lambda-Extension-Identifier", unknown),
            ("Lambda-Extension-Function-Error-Type", "Extension.X"),
        ]
        got = await client.request("POST", INIT_ERROR, b"{}", headers)
        assert got.body == error(
            "Unknown Lambda-Extension-Identifier", "Extension.UnknownExtensionIdentifier"
        )
        await server.close()

    run(scenario())


def test_init_invoke_and_shutdown() -> None:
    async def scenario() -> None:
        server, address = await started(expected_extensions=["ext"])
        ext = await Client.connect(address)
        me = as_extension(await register(ext, "ext"))
        await server.extensions_registered()
        ext.send("GET", EVENT_NEXT, headers=me)  # INIT done for the extension: parks
        runtime = await Client.connect(address)
        runtime.send("GET", NEXT)
        assert await server.expect_init() == RuntimeAnswer("ready")

        inv = invocation(trace_id="Root=1-abc;Sampled=1")
        answer = server.send_invoke(inv)
        event = await ext.response()
        assert event.status == 200
        assert event.headers["content-type"] == "application/json"
        uuid.UUID(event.headers["lambda-extension-event-identifier"])
        assert event.body == (
            b'{"eventType":"INVOKE","deadlineMs":1700000000000,"requestId":"req-1",'
            b'"invokedFunctionArn":"arn:aws:lambda:us-east-1:123456789012:function:fn",'
            b'"tracing":{"type":"X-Amzn-Trace-Id","value":"Root=1-abc;Sampled=1"}}'
        )
        assert (await runtime.response()).body == inv.payload
        await runtime.request("POST", "/2018-06-01/runtime/invocation/req-1/response", b"ok")
        assert (await answer).body == b"ok"
        idle = server.extensions_idle()
        assert not idle.done()  # the extension has not said it is done with the event
        ext.send("GET", EVENT_NEXT, headers=me)
        await idle
        assert server.extensions_idle().done()

        shutdown = asyncio.ensure_future(server.shutdown("spindown", 10.0))
        event = await ext.response()
        body = event.json()
        assert list(body) == ["eventType", "deadlineMs", "shutdownReason"]
        assert (body["eventType"], body["shutdownReason"]) == ("SHUTDOWN", "spindown")
        assert not shutdown.done()
        ext.send("GET", EVENT_NEXT, headers=me)  # done with SHUTDOWN
        await shutdown
        await server.close()

    run(scenario())


def test_events_queue_while_an_extension_is_busy() -> None:
    async def scenario() -> None:
        server, address = await started(expected_extensions=["ext"])
        ext = await Client.connect(address)
        me = as_extension(await register(ext, "ext", b'{"events":["INVOKE"]}'))
        ext.send("GET", EVENT_NEXT, headers=me)
        runtime = await Client.connect(address)
        runtime.send("GET", NEXT)
        await server.expect_init()
        for n in (1, 2):  # the extension takes neither before the runtime is done with both
            await invoke(server, runtime, invocation(f"r{n}"))
            await runtime.request("POST", f"/2018-06-01/runtime/invocation/r{n}/response", b"ok")
            runtime.send("GET", NEXT)
        first = await ext.response()
        assert first.json()["requestId"] == "r1"
        idle = server.extensions_idle()
        second = await ext.request("GET", EVENT_NEXT, headers=me)
        assert second.json()["requestId"] == "r2"
        assert not idle.done()
        ext.send("GET", EVENT_NEXT, headers=me)
        await idle
        await server.close()

    run(scenario())


def test_init_waits_for_every_extension() -> None:
    async def scenario() -> None:
        server, address = await started(expected_extensions=["slow"])
        ext = await Client.connect(address)
        me = as_extension(await register(ext, "slow"))
        runtime = await Client.connect(address)
        runtime.send("GET", NEXT)
        await until(lambda: server._state == READY)
        assert not server.expect_init().done()
        answer = server.send_invoke(invocation())  # held back: INIT is not over
        ext.send("GET", EVENT_NEXT, headers=me)
        assert await server.expect_init() == RuntimeAnswer("ready")
        assert (await runtime.response()).headers["lambda-runtime-aws-request-id"] == "req-1"
        assert (await ext.response()).json()["eventType"] == "INVOKE"
        assert not answer.done()
        await server.close()

    run(scenario())


def test_double_next_is_refused() -> None:
    async def scenario() -> None:
        server, address = await started(expected_extensions=["ext"])
        client = await Client.connect(address)
        me = as_extension(await register(client, "ext"))
        agent_id = me[0][1]
        client.send("GET", EVENT_NEXT, headers=me)
        await until(lambda: server.extensions[0].state == READY)
        other = await Client.connect(address)
        got = await other.request("GET", EVENT_NEXT, headers=me)
        assert got.body == error(
            f"State transition from Ready to Ready failed for extension {agent_id}. "
            "Error: State transition is not allowed",
            "Extension.InvalidExtensionState",
        )
        # once the parked request's connection is gone, a new next takes its place
        client.close()
        await until(lambda: server.extensions[0].sink is None)
        other.send("GET", EVENT_NEXT, headers=me)
        await until(lambda: server.extensions[0].sink is not None)
        await server.close()

    run(scenario())


def test_extension_init_error() -> None:
    async def scenario() -> None:
        server, address = await started(expected_extensions=["ext"])
        client = await Client.connect(address)
        me = as_extension(await register(client, "ext"))
        got = await client.request("POST", INIT_ERROR, b"{}", me)
        assert got.body == error("Lambda-Extension-Function-Error-Type not found", "Extension.MissingHeader")
        body = b'{"errorMessage":"no config","errorType":"Extension.ConfigMissing"}'
        got = await client.request(
            "POST",
            INIT_ERROR,
            body,
            [*me, ("Lambda-Extension-Function-Error-Type", "Extension.ConfigMissing")],
        )
        assert (got.status, got.body) == (202, b'{"status":"OK"}\n')
        assert await server.expect_init() == RuntimeAnswer("init_error", body, "Extension.ConfigMissing")
        again = await client.request(
            "POST", INIT_ERROR, b"", [*me, ("Lambda-Extension-Function-Error-Type", "Extension.Y")]
        )
        assert again.status == 202  # repeated calls are accepted; the first error stands
        assert server.extensions[0].error_type == "Extension.ConfigMissing"
        got = await client.request("GET", EVENT_NEXT, headers=me)
        assert json.loads(got.body)["errorMessage"].startswith(
            "State transition from InitError to Ready failed"
        )
        await server.close()

    run(scenario())


def test_extension_exit_error() -> None:
    async def scenario() -> None:
        server, address = await started(expected_extensions=["ext"])
        client = await Client.connect(address)
        me = as_extension(await register(client, "ext"))
        client.send("GET", EVENT_NEXT, headers=me)
        runtime = await Client.connect(address)
        runtime.send("GET", NEXT)
        await server.expect_init()
        other = await Client.connect(address)
        headers = [*me, ("Lambda-Extension-Function-Error-Type", "Extension.Fatal")]
        assert (await other.request("POST", EXIT_ERROR, b"{}", headers)).status == 202
        assert server.fatal_error == "Extension.Fatal"
        assert server.extensions_idle().done()  # an extension that gave up is not waited for
        got = await other.request("POST", INIT_ERROR, b"{}", headers)
        assert json.loads(got.body)["errorMessage"].startswith("State transition from ExitError to InitError")
        await server.close()

    run(scenario())


def test_shutdown_gives_up_at_its_timeout() -> None:
    async def scenario() -> None:
        server, address = await started(expected_extensions=["ext"])
        client = await Client.connect(address)
        me = as_extension(await register(client, "ext"))
        client.send("GET", EVENT_NEXT, headers=me)
        await server.shutdown("timeout", 0.05)  # the extension takes SHUTDOWN and never comes back
        assert server.extensions[0].outstanding  # returned without it
        assert (await client.response()).json()["shutdownReason"] == "timeout"
        await server.close()

    run(scenario())


def test_runtime_that_is_not_a_client() -> None:
    async def scenario() -> None:  # lamina's own Python runtime never calls this API
        server, address = await started(expected_extensions=["ext"])
        client = await Client.connect(address)
        me = as_extension(await register(client, "ext", b'{"events":["INVOKE"]}'))
        client.send("GET", EVENT_NEXT, headers=me)
        server.runtime_initialized()
        assert (await server.expect_init()).kind == "ready"
        server.notify_extensions(invocation("direct"))
        assert (await client.response()).json()["requestId"] == "direct"
        assert server.extensions[0].state == RUNNING
        idle = server.extensions_idle()
        client.send("GET", EVENT_NEXT, headers=me)
        await idle
        await server.close()

    run(scenario())
