"""Fixtures of the API tests."""

from __future__ import annotations

import pytest

from tests.api.jws_helpers import FakeServer


@pytest.fixture
def server() -> FakeServer:
    """verify_jws's callbacks: no account yet, the nonces nonce-1 and nonce-2."""
    return FakeServer()
