"""The in-process ACME server of the protocol tests, and the world the HTTP fuzz acts on."""

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.fuzz.world import TERMS, World
from tests.protocol.conftest import server_factory  # noqa: F401


@pytest.fixture
async def world(server_factory: Callable[..., Any]) -> AsyncIterator[World]:  # noqa: F811
    server = await server_factory(**{"policy.allowed_ip_networks": ["10.0.0.0/8"],
                                     "acme.terms_of_service": TERMS})
    yield await World.create(server)
    await server.store.close()
