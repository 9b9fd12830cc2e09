"""The Server header names the product, never the Python and aiohttp versions behind it
(RFC 9110 10.2.4: a server "SHOULD NOT generate a Server header field containing
needlessly fine-grained detail"), on every response, errors included."""

from __future__ import annotations

import asyncio

import pytest

from tests.protocol.conftest import AcmeServer

SERVER = "acme-ca"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/directory", 200),
        ("GET", "/health", 200),
        ("GET", "/roots/chain.pem", 200),
        ("HEAD", "/acme/new-nonce", 200),
        ("POST", "/acme/new-order", 415),  # not application/jose+json: a problem document
        ("GET", "/acme/new-account", 405),  # the router's 405
        ("GET", "/no/such/resource", 404),  # the router's 404
    ],
)
async def test_every_routed_response_says_only_acme_ca(
        server: AcmeServer, method: str, path: str, status: int) -> None:
    response = await server.http.request(method, path, data=b"{}" if method == "POST" else None)
    assert response.status == status
    assert response.headers.getall("Server") == [SERVER]


async def test_the_parsers_own_error_says_only_acme_ca(server: AcmeServer) -> None:
    """A request that is not HTTP never reaches a route or a middleware: aiohttp answers
    400 itself, and that answer must not name the versions either."""
    reader, writer = await asyncio.open_connection(server.http.host, server.http.port)
    try:
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        head = (await reader.read()).split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    finally:
        writer.close()
        await writer.wait_closed()
    assert head[0].split()[1] == "400", head
    servers = [line.split(":", 1)[1].strip() for line in head[1:]
               if line.lower().startswith("server:")]
    assert servers == [SERVER], head
