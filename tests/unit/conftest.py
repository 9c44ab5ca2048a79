"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest
from botocore.model import ServiceModel

from lamina.protocol import RestRouter, load_service_model


@pytest.fixture(scope="session")
def model() -> ServiceModel:
    """botocore's Lambda model, loaded once."""
    return load_service_model("lambda")


@pytest.fixture(scope="session")
def router(model: ServiceModel) -> RestRouter:
    return RestRouter(model)
