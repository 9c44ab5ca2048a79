"""AWS's ``json`` protocol (CloudWatch Logs, Scheduler …), driven by botocore's service model.

A request is ``POST /`` with ``X-Amz-Target: <targetPrefix>.<Operation>`` and a JSON body of the
input members; the answer is the output structure as JSON (``application/x-amz-json-1.x``).  The
same decoder, validator and encoder as rest-json do the typing: only where members live differs.

A service behind the one endpoint is any object with ``handle(operation, body, ctx) -> bytes``
(``JsonService``): the HTTP layer routes by the target's prefix and renders ``AwsError`` with
``render_json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from botocore.model import OperationModel, ServiceModel

from lamina.errors import AwsError
from lamina.protocol.jsonbody import BodyTypeError, decoder
from lamina.protocol.response import encoder
from lamina.protocol.validate import validate
from lamina.types import RequestContext

ErrorFactory = Callable[[str, str], AwsError]


class JsonService(Protocol):
    async def handle(self, operation: str, body: bytes, ctx: RequestContext) -> bytes: ...


class JsonProtocol:
    """Parse and serialize the operations of one json-protocol ``model``.

    ``validation_code`` is the error a constraint violation answers (CloudWatch Logs says
    ``InvalidParameterException`` where Lambda says ``ValidationException``); ``error`` builds the
    service's errors so their HTTP status follows the service's own table.
    """

    def __init__(self, model: ServiceModel, *, validation_code: str, error: ErrorFactory = AwsError) -> None:
        self.model = model
        self.target_prefix: str = model.metadata["targetPrefix"]
        self.content_type = f"application/x-amz-json-{model.metadata.get('jsonVersion', '1.0')}"
        self._validation_code = validation_code
        self._error = error
        self._ops = frozenset(model.operation_names)

    def operation(self, name: str) -> OperationModel:
        """The operation named by a target's suffix; UnknownOperationException if the model lacks it."""
        if name not in self._ops:
            raise self._error(
                "UnknownOperationException", f"{self.target_prefix}.{name} is not an operation."
            )
        return self.model.operation_model(name)

    def parse(self, op: OperationModel, body: bytes) -> dict[str, Any]:
        """The validated input members of ``op`` (by model name) from a JSON body."""
        shape = op.input_shape
        if shape is None:
            return {}
        if not body or body.isspace():
            document: Any = {}
        else:
            try:
                document = json.loads(body)
            except (UnicodeDecodeError, ValueError) as exc:
                problem = f"Could not parse the request body as JSON: {exc}"
                raise self._error("SerializationException", problem) from None
        if not isinstance(document, Mapping):
            raise self._error("SerializationException", "The request body must be a JSON object.")
        try:
            params: dict[str, Any] = decoder(shape)(dict(document))
        except BodyTypeError as exc:
            raise self._error("SerializationException", str(exc)) from None
        problems = validate(shape, params)
        if problems:
            n = len(problems)
            noun = "error" if n == 1 else "errors"
            raise self._error(
                self._validation_code, f"{n} validation {noun} detected: " + "; ".join(problems)
            )
        return params

    def serialize(self, op: OperationModel, result: Mapping[str, Any] | None) -> bytes:
        """The response body: the output members as JSON; empty for an operation without output."""
        shape = op.output_shape
        if shape is None or result is None:
            return b""
        document = encoder(shape)(result)
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
