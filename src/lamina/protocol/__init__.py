"""AWS rest-json, driven by botocore's service model: routing, request parsing, validation and
response serialization. Real clients are built from the same model, so this is the spec."""

from __future__ import annotations

from lamina.protocol.model import load_service_model
from lamina.protocol.response import serialize_response
from lamina.protocol.restjson import parse_request
from lamina.protocol.router import RestRouter
from lamina.protocol.validate import validate

__all__ = ["RestRouter", "load_service_model", "parse_request", "serialize_response", "validate"]
