"""A database out of reach (issue 10, item 3): every request that needs it is answered
at once with 503, Retry-After and a serverInternal problem (RFC 8555 6.7; RFC 7231
6.6.4 and 7.1.3), never a 500 with a traceback, never a request that hangs.

The database is made unreachable for real: the store is closed under the running app
(what a replica sees when its database is gone), no method of it is replaced.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.acme_client import BASE, Response
from tests.protocol.conftest import AcmeServer
from tests.protocol.helpers import INDEX_LINK, NEW_ORDER, media_type, registered
from tests.waiting import within

PROMPTLY = 5.0  # seconds: far beyond an answer that does not wait for the database


def assert_unavailable(response: Response) -> None:
    """503, Retry-After in seconds, problem+json of type serverInternal, the index link;
    no nonce (none could be stored), which RFC 8555 6.5 only recommends on errors."""
    assert response.status == 503, (response.status, response.body)
    assert response.headers.get("Retry-After") == "5", response.headers
    assert media_type(response) == "application/problem+json"
    doc = response.json()
    assert doc["type"] == "urn:ietf:params:acme:error:serverInternal", doc
    assert doc["status"] == 503 and "database" in doc["detail"], doc
    assert INDEX_LINK in response.headers.getall("Link", []), response.headers
    assert "Replay-Nonce" not in response.headers


async def answered(server: AcmeServer, method: str, path: str) -> Response:
    response = await within(server.http.request(method, path), f"{method} {path}", PROMPTLY)
    return Response(response.status, response.headers, await response.read())


async def test_requests_are_answered_503_with_retry_after_when_the_database_is_gone(
    server: AcmeServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = await registered(server)
    assert client.nonce  # a nonce in hand, issued while the database was there
    await server.store.close()
    assert_unavailable(await answered(server, "HEAD", "/acme/new-nonce"))
    assert_unavailable(await answered(server, "GET", "/directory"))
    order = await within(client.post(NEW_ORDER, {"identifiers": []}), "newOrder", PROMPTLY)
    assert_unavailable(order)
    client.nonce = "A" * 22  # the first failure left the client without one
    assert_unavailable(await within(client.post(f"{BASE}/acme/order/x"), "an order",
                                    PROMPTLY))
    assert (await answered(server, "GET", "/health")).status == 200  # needs no database
    api = [r for r in caplog.records if r.name == "acme_ca.api"]
    assert api and all(r.levelno == logging.WARNING and r.exc_info is None for r in api), \
        [(r.levelname, r.getMessage()) for r in api]


async def test_many_requests_during_the_outage_are_each_answered_promptly(
    server: AcmeServer,
) -> None:
    """Responses waiting for a nonce together share one failed refill: none waits for
    the failures of the others."""
    await server.store.close()
    responses = await within(
        asyncio.gather(*(server.http.head("/acme/new-nonce") for _ in range(50))),
        "50 answers", PROMPTLY)
    assert [r.status for r in responses] == [503] * 50
