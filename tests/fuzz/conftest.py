"""The in-process ACME server of the protocol tests, for the HTTP fuzz tests."""

from tests.protocol.conftest import server_factory  # noqa: F401
