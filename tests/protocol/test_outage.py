"""A database out of reach (issue 10, item 3): every request that needs it is answered
at once with 503, Retry-After and a serverInternal problem (RFC 8555 6.7; RFC 7231
6.6.4 and 7.1.3), never a 500 with a traceback, never a request that hangs; when the
database is back, the same server answers again, without a restart.

The outage is real: the server's PostgreSQL store reaches its database through a TCP
relay (``tests/relay.py``) that the test cuts, resetting every connection and refusing
new ones, as a database restart or a failover does; no method of the store is replaced.
On SQLite, the outage is another process holding the file's write lock past the busy
timeout ("database is locked").
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest

from acme_ca.authority import sweeper
from acme_ca.cli.wiring import BACKGROUND
from acme_ca.store.sqlite import base as sqlite_base
from tests.acme_client import BASE, Response
from tests.protocol.conftest import AcmeServer
from tests.protocol.helpers import (
    INDEX_LINK,
    NEW_ORDER,
    finalize,
    media_type,
    ready_order,
    registered,
)
from tests.relay import Relay
from tests.store.pg import pg_url, through  # noqa: F401
from tests.waiting import within

PROMPTLY = 5.0  # seconds: far beyond an answer that does not wait on the database
STALE_NONCES = timedelta(minutes=4)  # past a tenth of their lifetime: no nonce is ready


@pytest.fixture
async def server(server_factory: Callable[..., Any], pg_url: str,  # noqa: F811
                 relay: Relay) -> AsyncIterator[AcmeServer]:
    """The in-process server on PostgreSQL, through the relay."""
    acme = await server_factory(**{"storage.url": through(pg_url, relay)})
    yield acme
    await acme.http.close()
    await acme.store.close()


def assert_unavailable(response: Response) -> None:
    """503, Retry-After in seconds, problem+json of type serverInternal, the index link."""
    assert response.status == 503, (response.status, response.body)
    assert response.headers.get("Retry-After") == "5", response.headers
    assert media_type(response) == "application/problem+json"
    doc = response.json()
    assert doc["type"] == "urn:ietf:params:acme:error:serverInternal", doc
    assert doc["status"] == 503 and "database" in doc["detail"], doc
    assert INDEX_LINK in response.headers.getall("Link", []), response.headers


async def answered(server: AcmeServer, method: str, path: str) -> Response:
    response = await within(server.http.request(method, path), f"{method} {path}", PROMPTLY)
    return Response(response.status, response.headers, await response.read())


async def test_an_outage_is_503_with_retry_after_and_the_server_recovers_by_itself(
    server: AcmeServer, relay: Relay, caplog: pytest.LogCaptureFixture
) -> None:
    client = await registered(server)
    await relay.cut()

    order = await within(client.post(NEW_ORDER, {"identifiers": []}), "newOrder", PROMPTLY)
    assert_unavailable(order)  # its nonce cannot be checked
    assert order.headers.get("Replay-Nonce"), "a nonce stored before the outage"
    server.clock.advance(STALE_NONCES)
    nonce = await answered(server, "GET", "/acme/new-nonce")
    assert_unavailable(nonce)  # none can be stored: 503, never a success without one
    assert "Replay-Nonce" not in nonce.headers
    assert_unavailable(await answered(server, "GET", "/directory"))
    assert (await answered(server, "GET", "/health")).status == 200  # needs no database
    api = [r for r in caplog.records if r.name == "acme_ca.api"]
    assert api and all(r.levelno == logging.WARNING and r.exc_info is None for r in api), \
        [(r.levelname, r.getMessage()) for r in api]

    await relay.mend()
    assert (await answered(server, "HEAD", "/acme/new-nonce")).status == 200
    client.nonce = None
    created = await within(client.new_order("back.bluerobin.local"), "newOrder", PROMPTLY)
    assert created.status == 201, created.body


async def test_many_requests_during_an_outage_are_each_answered_promptly(
    server: AcmeServer, relay: Relay
) -> None:
    """Responses waiting for a nonce together share one failed refill: none waits for
    the failures of the others."""
    await relay.cut()
    server.clock.advance(STALE_NONCES)
    responses = await within(
        asyncio.gather(*(server.http.head("/acme/new-nonce") for _ in range(50))),
        "50 answers", PROMPTLY)
    assert [r.status for r in responses] == [503] * 50
    client = server.client()
    client.nonce = "A" * 22
    assert_unavailable(await within(client.post(f"{BASE}/acme/order/x"), "an order",
                                    PROMPTLY))


class SeveredWhileSigning:
    """The server's real intermediate; while it signs, the database goes away (the
    relay is cut): the signature is made, the certificate cannot be stored."""

    def __init__(self, issuer: Any, relay: Relay) -> None:
        self._issuer = issuer
        self._relay = relay

    def __getattr__(self, name: str) -> Any:
        return getattr(self._issuer, name)

    def issue(self, request: Any) -> Any:
        certificate = self._issuer.issue(request)
        self._relay.sever()
        return certificate


async def test_an_outage_during_issuance_is_503_and_the_sweeper_ends_the_order(
    server: AcmeServer, relay: Relay
) -> None:
    """RFC 8555 7.4: the database goes away between the order's move to processing and
    the certificate's storage. The finalize is answered 503 with Retry-After (not 500
    "issuance failed"), and the order is left processing, as the database leaves it:
    the holder of the background lease ends it once the database is back (invalid
    here, since the certificate was never stored), as for an issuance that stopped."""
    client = await registered(server)
    order, order_url = await ready_order(server, client, "cut.bluerobin.local")
    server.issuers.current = SeveredWhileSigning(server.issuer, relay)
    finalized, _ = await within(finalize(client, order, "cut.bluerobin.local"),
                                "finalize", PROMPTLY)
    assert_unavailable(finalized)
    await relay.mend()
    client.nonce = None
    assert (await client.post(order_url)).json()["status"] == "processing"
    server.clock.advance(sweeper.DEADLINE)
    assert await server.app[BACKGROUND].step()
    ended = (await client.post(order_url)).json()
    assert ended["status"] == "invalid" and "certificate" not in ended, ended
    assert ended["error"]["type"] == "urn:ietf:params:acme:error:serverInternal", ended


async def test_sqlite_locked_past_its_busy_timeout_is_503_with_retry_after(
    server_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Another process (``acme-ca`` run beside ``serve``, a backup) holds SQLite's write
    lock for longer than the store waits: the request is answered 503 with Retry-After,
    one warning line and no traceback, and the next one once the lock is free succeeds."""
    monkeypatch.setattr(sqlite_base, "BUSY_TIMEOUT_MS", 200)  # not 5 s in a test
    server = await server_factory()
    try:
        client = await registered(server)
        other = sqlite3.connect(urlsplit(server.config.storage.url).path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            assert_unavailable(await within(client.new_order("locked.bluerobin.local"),
                                            "newOrder", PROMPTLY))
        finally:
            other.close()
        api = [r for r in caplog.records if r.name == "acme_ca.api"]
        assert api and all(r.levelno == logging.WARNING and r.exc_info is None for r in api)
        created = await within(client.new_order("free.bluerobin.local"), "newOrder", PROMPTLY)
        assert created.status == 201, created.body
    finally:
        await server.store.close()
