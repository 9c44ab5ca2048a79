"""Extensions API 2020-01-01: who registered, in what state each extension is, what it is owed.

State only: the HTTP side (parsing, rendering, parking a request) is ``runtime_http``'s, which
calls in here from its router and renders ``ApiError`` as AWS's ``{"errorMessage", "errorType"}``.
Behaviour follows AWS's Runtime Interface Emulator (``lambda/rapi/handler/agent*.go``,
``lambda/core/externalagent*.go``, ``internalagent*.go``, ``registrations.go``): the error types,
messages and state names below are theirs.

*External* extensions are the executables under ``/opt/extensions``: the server is told their
names up front and each may register once.  A name it was not told is an *internal* extension (one
that runs inside the runtime process, registered by a wrapper or an agent library), as in AWS;
internal extensions may not subscribe to SHUTDOWN.  Registration closes when the runtime first
asks for an invocation.

Each extension has a FIFO of rendered events.  An event is handed over when the extension is
parked on ``event/next`` (state Ready); otherwise it waits in the queue and is handed over at the
next ``event/next``.  ``outstanding`` is true from the hand-over until the extension calls
``event/next`` again -- that call is how it says it has finished with the event.

Concurrency invariants: one event loop, no threads; nothing here awaits.
"""

from __future__ import annotations

import json
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

INVOKE = "INVOKE"
SHUTDOWN = "SHUTDOWN"
MAX_EXTENSIONS = 10  # core.MaxAgentsAllowed

# State names (lambda/core/agent_state_names.go)
STARTED = "Started"
REGISTERED = "Registered"
READY = "Ready"
RUNNING = "Running"
INIT_ERROR = "InitError"
EXIT_ERROR = "ExitError"
EXITED = "Exited"
NOT_ALLOWED = "State transition is not allowed"  # core.ErrNotAllowed

# Error types (lambda/rapi/handler/constants.go)
ERR_ID_MISSING = "Extension.MissingExtensionIdentifier"
ERR_ID_INVALID = "Extension.InvalidExtensionIdentifier"
ERR_NAME_INVALID = "Extension.InvalidExtensionName"
ERR_REGISTRATION_CLOSED = "Extension.RegistrationClosed"
ERR_ID_UNKNOWN = "Extension.UnknownExtensionIdentifier"
ERR_INVALID_STATE = "Extension.InvalidExtensionState"
ERR_MISSING_HEADER = "Extension.MissingHeader"
ERR_TOO_MANY = "Extension.TooManyExtensions"
ERR_INVALID_EVENT = "Extension.InvalidEventType"
ERR_INVALID_REQUEST = "InvalidRequestFormat"

FUNCTION_ERROR_TYPE_HEADER = "Lambda-Extension-Function-Error-Type"


class ApiError(Exception):
    """A request the API refuses: rendered as ``{"errorMessage", "errorType"}`` with ``status``."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


def forbidden(error_type: str, message: str) -> ApiError:
    return ApiError(403, error_type, message)


class EventSink(Protocol):
    """A parked ``event/next`` request: the connection it came on."""

    def deliver_event(self, body: bytes) -> None:
        """Answer the parked request with event ``body`` (a rendered JSON event)."""

    def sink_open(self) -> bool:
        """Can the request still be answered (its connection is open)?"""


@dataclass(eq=False, slots=True)
class Extension:
    name: str
    internal: bool
    id: str = ""
    state: str = STARTED
    events: frozenset[str] = frozenset()
    error_type: str | None = None
    init_ready: bool = False  # has called event/next at least once (counts for INIT)
    outstanding: bool = False  # handed an event, has not called event/next since
    queue: deque[bytes] = field(default_factory=deque)
    sink: EventSink | None = None

    @property
    def live(self) -> bool:
        return self.state not in (INIT_ERROR, EXIT_ERROR)

    def settled(self) -> bool:
        """Nothing queued and nothing handed over that it has not finished with."""
        return not self.queue and not self.outstanding


def parse_register_body(body: bytes) -> list[str]:
    """The ``events`` of a register request, or ApiError as AWS's handler refuses it."""
    if not body.strip():
        raise forbidden(ERR_INVALID_REQUEST, "unexpected end of JSON input")
    try:
        data: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise forbidden(ERR_INVALID_REQUEST, f"invalid JSON: {exc}") from None
    if data is None:
        return []  # Go's json.Unmarshal of null into a struct: a no-op
    if not isinstance(data, dict):
        raise forbidden(ERR_INVALID_REQUEST, "json: cannot unmarshal non-object into register request")
    events = data.get("events")
    keys = data.get("configurationKeys")
    for name, value in (("events", events), ("configurationKeys", keys)):
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            raise forbidden(
                ERR_INVALID_REQUEST, f"json: cannot unmarshal {name}: expected an array of strings"
            )
    if keys:
        raise forbidden(
            ERR_INVALID_REQUEST, "configurationKeys are deprecated; use environment variables instead"
        )
    return list(events or ())


def accepts_account_id(header: str | None) -> bool:
    """``Lambda-Extension-Accept-Feature: accountId`` (a comma-separated list)."""
    return header is not None and any(part.strip() == "accountId" for part in header.split(","))


class ExtensionsRegistry:
    def __init__(self, expected: Sequence[str], *, allow_internal: bool = True) -> None:
        self._by_name: dict[str, Extension] = {
            name: Extension(name=name, internal=False) for name in dict.fromkeys(expected)
        }
        self._by_id: dict[str, Extension] = {}
        self._allow_internal = allow_internal
        self.registration_open = True

    # -- queries ---------------------------------------------------------------------------

    def registered(self) -> list[Extension]:
        return list(self._by_id.values())

    def all_expected_registered(self) -> bool:
        return all(ext.state != STARTED for ext in self._by_name.values() if not ext.internal)

    def all_init_ready(self) -> bool:
        """Every registered extension still alive has called event/next once."""
        return all(ext.init_ready for ext in self._by_id.values() if ext.live)

    def settled(self, event: str) -> bool:
        """Every live extension subscribed to ``event`` has finished with what it was handed."""
        return all(ext.settled() for ext in self._by_id.values() if event in ext.events and ext.live)

    def has_subscribers(self, event: str) -> bool:
        return any(event in ext.events and ext.live for ext in self._by_id.values())

    def identify(self, header: str | None) -> tuple[str, Extension | None]:
        """(normalised id, the extension or None) from ``Lambda-Extension-Identifier``.

        Missing or malformed identifiers are refused here, as AWS's middleware does before any
        handler runs; an unknown one is the handler's to refuse (each words it differently).
        """
        if not header:
            raise forbidden(ERR_ID_MISSING, "Missing Lambda-Extension-Identifier header")
        ext = self._by_id.get(header)
        if ext is not None:
            return header, ext
        try:
            agent_id = str(uuid.UUID(header))
        except ValueError:
            raise forbidden(ERR_ID_INVALID, "Invalid Lambda-Extension-Identifier") from None
        return agent_id, self._by_id.get(agent_id)

    # -- transitions ---------------------------------------------------------------------------

    def close_registration(self) -> None:
        self.registration_open = False

    def register(self, name: str | None, events: list[str]) -> Extension:
        """Register ``name`` for ``events`` (agentregister.go); the caller parsed the body."""
        if not name:
            raise forbidden(ERR_NAME_INVALID, "Empty extension name")
        ext = self._by_name.get(name)
        if ext is None or ext.internal:
            return self._register_internal(name, events)
        for event in events:
            if event not in (INVOKE, SHUTDOWN):
                raise forbidden(ERR_INVALID_EVENT, f"{event}: ErrorInvalidEventType")
        if ext.state != STARTED:
            raise forbidden(
                ERR_INVALID_STATE,
                f"State transition from {ext.state} to {REGISTERED} failed for extension {name}. "
                f"Error: {NOT_ALLOWED}",
            )
        if not self.registration_open:  # AWS starts the runtime only once every extension registered
            raise forbidden(ERR_REGISTRATION_CLOSED, "Extension registration closed already")
        return self._admit(ext, events)

    def _register_internal(self, name: str, events: list[str]) -> Extension:
        for event in events:
            if event == SHUTDOWN:
                raise forbidden(ERR_INVALID_EVENT, f"{event}: ShutdownEventNotSupportedForInternalExtension")
            if event != INVOKE:
                raise forbidden(ERR_INVALID_EVENT, f"{event}: ErrorInvalidEventType")
        if not self.registration_open:
            raise forbidden(ERR_REGISTRATION_CLOSED, "Extension registration closed already")
        if not self._allow_internal:
            raise forbidden(ERR_NAME_INVALID, f"Unknown extension name {name}")
        if len(self._by_name) >= MAX_EXTENSIONS:
            raise forbidden(ERR_TOO_MANY, f"Extension limit ({MAX_EXTENSIONS}) reached")
        if name in self._by_name:
            raise forbidden(ERR_INVALID_STATE, "Extension with this name already registered")
        ext = Extension(name=name, internal=True)
        self._by_name[name] = ext
        return self._admit(ext, events)

    def _admit(self, ext: Extension, events: list[str]) -> Extension:
        ext.id = str(uuid.uuid4())
        ext.events = frozenset(events)
        ext.state = REGISTERED
        self._by_id[ext.id] = ext
        return ext

    def next(self, header: str | None, sink: EventSink) -> Extension:
        """``event/next``: hand over the oldest queued event at once, or park ``sink``."""
        agent_id, ext = self.identify(header)
        if ext is None:
            raise forbidden(ERR_ID_UNKNOWN, f"Unknown extension {agent_id}")
        state = ext.state
        if state == REGISTERED:
            ext.init_ready = True
        elif state == RUNNING:
            ext.outstanding = False
        elif state != READY or (ext.sink is not None and ext.sink.sink_open()):
            # READY with no open parked request: that request's connection went away; this replaces it
            raise forbidden(
                ERR_INVALID_STATE,
                f"State transition from {state} to {READY} failed for extension {agent_id}. "
                f"Error: {NOT_ALLOWED}",
            )
        ext.state = READY
        if ext.queue:
            self._hand_over(ext, sink, ext.queue.popleft())
        else:
            ext.sink = sink
        return ext

    def init_error(self, header: str | None, error_type: str | None) -> Extension:
        """``init/error`` (agentiniterror.go)."""
        agent_id, ext = self.identify(header)
        if not error_type:
            raise forbidden(ERR_MISSING_HEADER, f"{FUNCTION_ERROR_TYPE_HEADER} not found")
        if ext is None:
            raise forbidden(ERR_ID_UNKNOWN, "Unknown Lambda-Extension-Identifier")
        if ext.state == REGISTERED:
            self._terminate(ext, INIT_ERROR, error_type)
        elif ext.state != INIT_ERROR:  # repeated calls are accepted; the first error stands
            raise forbidden(
                ERR_INVALID_STATE,
                f"State transition from {ext.state} to {INIT_ERROR} failed for extension {agent_id}. "
                f"Error: {NOT_ALLOWED}",
            )
        return ext

    def exit_error(self, header: str | None, error_type: str | None) -> Extension:
        """``exit/error`` (agentexiterror.go)."""
        agent_id, ext = self.identify(header)
        if not error_type:
            raise forbidden(ERR_MISSING_HEADER, f"{FUNCTION_ERROR_TYPE_HEADER} not found")
        if ext is None:
            raise forbidden(ERR_ID_UNKNOWN, "Unknown Lambda-Extension-Identifier")
        if ext.state in (REGISTERED, READY, RUNNING):
            self._terminate(ext, EXIT_ERROR, error_type)
        elif ext.state != EXIT_ERROR:
            raise forbidden(
                ERR_INVALID_STATE,
                f"State transition from {ext.state} to {EXITED} failed for extension {agent_id}. "
                f"Error: {NOT_ALLOWED}",
            )
        return ext

    @staticmethod
    def _terminate(ext: Extension, state: str, error_type: str) -> None:
        ext.state = state
        ext.error_type = error_type
        ext.queue.clear()  # it will not take them: nobody waits on it any more
        ext.outstanding = False

    def push(self, event: str, body: bytes) -> list[Extension]:
        """Give ``body`` to every live extension subscribed to ``event``; returns them."""
        targets = [ext for ext in self._by_id.values() if event in ext.events and ext.live]
        for ext in targets:
            sink = ext.sink
            if sink is not None and ext.state == READY and not ext.queue and sink.sink_open():
                self._hand_over(ext, sink, body)
            else:
                ext.queue.append(body)
        return targets

    @staticmethod
    def _hand_over(ext: Extension, sink: EventSink, body: bytes) -> None:
        ext.sink = None
        ext.state = RUNNING
        ext.outstanding = True
        sink.deliver_event(body)

    def forget_sink(self, sink: EventSink) -> None:
        """The connection behind ``sink`` closed: nothing may be handed to it any more."""
        for ext in self._by_id.values():
            if ext.sink is sink:
                ext.sink = None
