"""Faults between the serial's reservation and the certificate's storage (RFC 8555 7.1.6,
7.4): whatever happens there, the order ends (valid or invalid), never stays processing."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from acme_ca.api.context import SERVICES
from acme_ca.cli.wiring import build_app
from acme_ca.domain.models import CertificateStatus, OrderStatus
from acme_ca.errors import StoreError
from tests.acme_client import AcmeTestClient, b64, make_csr
from tests.protocol.conftest import AcmeServer
from tests.protocol.helpers import (
    ERROR_PREFIX,
    assert_problem,
    finalize,
    ready_order,
    registered,
)

NAME = "web.bluerobin.local"
WAIT = 5.0  # seconds: a bound on waiting for an event, never a pause


def order_id(order_url: str) -> str:
    return order_url.rsplit("/", 1)[-1]


async def test_a_cancelled_finalize_still_ends_the_order(
    server: AcmeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RFC 8555 7.4: once finalize moved the order to processing, the server must take it
    to valid or invalid. A finalize cancelled (client gone, server stopping) while its
    certificate is being stored still stores it: the order ends valid."""
    client = await registered(server)
    _, url = await ready_order(server, client, NAME)
    account = await server.store.find_account_by_thumbprint(client.thumbprint())
    entered, release, stored = asyncio.Event(), asyncio.Event(), asyncio.Event()
    real_finish = server.store.finish_order

    async def gated_finish(*args: Any) -> Any:
        entered.set()
        await release.wait()
        finished = await real_finish(*args)
        stored.set()
        return finished

    monkeypatch.setattr(server.store, "finish_order", gated_finish)
    csr, _ = make_csr([NAME])
    orders = server.app[SERVICES].orders
    request = asyncio.create_task(orders.finalize(account, order_id(url), {"csr": b64(csr)}))
    await asyncio.wait_for(entered.wait(), WAIT)
    request.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await request
    try:
        await asyncio.wait_for(stored.wait(), WAIT)
    except TimeoutError:
        pytest.fail("the cancelled finalize never stored its certificate")
    after = (await client.post(url)).json()
    assert after["status"] == "valid" and "certificate" in after, after


async def test_a_failed_status_write_leaves_no_order_processing_after_a_restart(
    server: AcmeServer, monkeypatch: pytest.MonkeyPatch, aiohttp_client: Any
) -> None:
    """RFC 8555 7.1.6 (processing -> invalid) and 6.7 serverInternal: the database fails
    both the certificate's storage and the order's move to invalid, so the order is left
    processing. A minute later a restarted server finds it and makes it invalid with
    serverInternal; the serial reserved before signing stays on record."""
    client = await registered(server)
    order, url = await ready_order(server, client, NAME)

    async def disk_error(*args: Any, **kwargs: Any) -> Any:
        raise StoreError("disk I/O error")

    monkeypatch.setattr(server.store, "finish_order", disk_error)
    monkeypatch.setattr(server.store, "update_order_status", disk_error)
    response, _ = await finalize(client, order, NAME)
    assert_problem(response, 500, "serverInternal")
    assert (await client.post(url)).json()["status"] == "processing"
    monkeypatch.undo()  # the disk is back

    server.clock.advance(timedelta(minutes=1))
    app = build_app(server.config, server.store, lambda: server.issuer, server.clock,
                    {"http-01": server.validator})
    restarted = AcmeTestClient(await aiohttp_client(app), key=client.key, kid=client.kid)
    after = (await restarted.post(url)).json()
    assert after["status"] == "invalid", after
    assert after["error"]["type"] == ERROR_PREFIX + "serverInternal", after
    (record,) = await server.store.list_certificates()
    assert (record.status, record.order_id) == (CertificateStatus.RESERVED, order_id(url))
    assert (await server.store.get_order(order_id(url))).status is OrderStatus.INVALID
