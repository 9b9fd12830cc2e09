"""Faults between the serial's reservation and the certificate's storage (RFC 8555 7.1.6,
7.4): whatever happens there, the order ends (valid or invalid), never stays processing."""

from __future__ import annotations

import asyncio
import gc
import logging
from datetime import timedelta
from typing import Any

import pytest

from acme_ca.api.context import SERVICES
from acme_ca.authority import issuance
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
from tests.waiting import within

NAME = "web.bluerobin.local"


def order_id(order_url: str) -> str:
    return order_url.rsplit("/", 1)[-1]


async def start_finalize(server: AcmeServer, client: AcmeTestClient,
                         orders: Any = None) -> tuple[asyncio.Task[Any], str]:
    """Finalize a fresh ready order as its handler does, in a task a test may cancel:
    (that task, the order URL)."""
    _, url = await ready_order(server, client, NAME)
    account = await server.store.find_account_by_thumbprint(client.thumbprint())
    csr, _ = make_csr([NAME])
    orders = orders or server.app[SERVICES]().orders
    finalizing = orders.finalize(account, order_id(url), {"csr": b64(csr)})
    return asyncio.create_task(finalizing), url


async def cancel_held(request: asyncio.Task[Any], entered: asyncio.Event,
                      release: asyncio.Event) -> None:
    """Once the issuance is held (``entered``), cancel its request, then release it."""
    await within(entered.wait(), "the issuance to be held")
    request.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await request


async def test_a_cancelled_finalize_still_ends_the_order(
    server: AcmeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RFC 8555 7.4: once finalize moved the order to processing, the server must take it
    to valid or invalid. A finalize cancelled while its certificate is being stored (the
    server stopping: aiohttp cancels the handlers still running after its shutdown
    timeout; a client going away cancels nothing) still stores it: the order ends valid."""
    client = await registered(server)
    entered, release, stored = asyncio.Event(), asyncio.Event(), asyncio.Event()
    real_finish = server.store.finish_order

    async def gated_finish(*args: Any) -> Any:
        entered.set()
        await release.wait()
        finished = await real_finish(*args)
        stored.set()
        return finished

    monkeypatch.setattr(server.store, "finish_order", gated_finish)
    request, url = await start_finalize(server, client)
    await cancel_held(request, entered, release)
    await within(stored.wait(), "the cancelled finalize to store its certificate")
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

    await server.http.close()  # the server stops (giving the background lease up)...
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


async def test_the_failure_of_a_cancelled_finalize_is_logged_with_its_order(
    server: AcmeServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """RFC 8555 7.4 leaves the order to the server once finalize began; when the request
    that began it is gone, the log is the only witness of a failure. start_issuance fails
    (the database) after the request was cancelled: one error line names the order and
    the failure, and asyncio never reports an exception nobody retrieved."""
    client = await registered(server)
    entered, release = asyncio.Event(), asyncio.Event()

    async def locked(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        await release.wait()
        raise StoreError("database is locked")

    monkeypatch.setattr(server.store, "start_issuance", locked)
    request, url = await start_finalize(server, client)
    await cancel_held(request, entered, release)
    await within(server.app[SERVICES]().orders.drain(), "the drain")
    gc.collect()
    errors = [r for r in caplog.records
              if r.levelno == logging.ERROR and r.name == "acme_ca.authority.issuance"]
    assert len(errors) == 1, caplog.text
    assert order_id(url) in errors[0].getMessage(), errors[0].getMessage()
    assert "database is locked" in errors[0].getMessage()
    assert "never retrieved" not in caplog.text


async def test_drain_waits_for_a_held_issuance_before_the_store_closes(
    server: AcmeServer, monkeypatch: pytest.MonkeyPatch, aiohttp_client: Any
) -> None:
    """RFC 8555 7.4: an issuance running when the server stops still ends. The app's
    cleanup (what serve runs before it closes the store) waits for the certificate:
    finish_order is held until the cleanup starts draining, and the certificate is
    stored when the drain returns; the order is valid."""
    app = build_app(server.config, server.store, lambda: server.issuer, server.clock,
                    {"http-01": server.validator})
    http = await aiohttp_client(app)
    client = AcmeTestClient(http)
    assert (await client.new_account()).status == 201
    orders = app[SERVICES]().orders
    draining, entered = asyncio.Event(), asyncio.Event()
    real_finish, real_drain = server.store.finish_order, orders.drain
    stored_when_drained: list[CertificateStatus] = []

    async def held_finish(*args: Any) -> Any:
        entered.set()
        await draining.wait()
        return await real_finish(*args)

    async def observed_drain(limit: float | None = None) -> None:
        draining.set()
        await real_drain(limit)
        stored_when_drained.extend(r.status for r in await server.store.list_certificates())

    monkeypatch.setattr(server.store, "finish_order", held_finish)
    monkeypatch.setattr(orders, "drain", observed_drain)
    request, _ = await start_finalize(server, client, orders)
    await within(entered.wait(), "finish_order to be held")
    await within(http.close(), "the app's cleanup")
    assert stored_when_drained == [CertificateStatus.ISSUED]
    assert (await within(request, "the finalize")).status is OrderStatus.VALID


async def test_drain_gives_up_on_a_stuck_issuance_after_its_limit(
    server: AcmeServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Shutdown is never blocked by a stuck issuance (a COMMIT that never returns): the
    drain stops waiting after its limit, says how many it left, and cancels them; the
    sweeper ends their orders after the restart (RFC 8555 7.1.6)."""
    client = await registered(server)
    entered, never = asyncio.Event(), asyncio.Event()

    async def stuck(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        await never.wait()

    monkeypatch.setattr(server.store, "start_issuance", stuck)
    monkeypatch.setattr(issuance, "DRAIN_LIMIT", 0.05, raising=False)
    request, _ = await start_finalize(server, client)
    await within(entered.wait(), "the issuance to be stuck")
    try:
        await within(server.app[SERVICES]().orders.drain(), "the drain to give up")
    finally:
        never.set()
    assert "1 issuance(s) still running" in caplog.text, caplog.text
    with pytest.raises(asyncio.CancelledError):
        await within(request, "the cancelled finalize")
