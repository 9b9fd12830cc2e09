"""The sweeper against an issuance that is still running (RFC 8555 7.1.6, 7.4).

The sweeper ends orders processing past its deadline, but a deadline only guesses that
the issuance stopped (a COMMIT can wait on a lock, a process can be paused). Three
layers keep a late sweep harmless: the sweeper leaves alone the issuances in flight in
its own process; an issuance checks that its order is still processing just before
signing; and a certificate signed for an order ended meanwhile is stored all the same,
so the store knows every certificate the intermediate signed (Boulder's rule).

"Another process" is a second ``IssuanceSweeper`` on the same store that knows nothing
of this process's issuances, as a sweeper in another ``serve --workers`` process.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from acme_ca.authority.sweeper import DEADLINE, IssuanceSweeper
from acme_ca.cli.wiring import SWEEPER
from acme_ca.domain.models import CertificateStatus, OrderStatus
from acme_ca.pki.issuer import Issuer
from tests.protocol.conftest import AcmeServer
from tests.protocol.helpers import ERROR_PREFIX, finalize, ready_order, registered
from tests.waiting import within

NAME = "web.bluerobin.local"
LATE = DEADLINE + timedelta(seconds=1)


def signatures(monkeypatch: pytest.MonkeyPatch) -> list[x509.Certificate]:
    """Every certificate the intermediate signs from now on, in order."""
    signed: list[x509.Certificate] = []
    real_issue = Issuer.issue

    def counting_issue(self: Issuer, request: Any) -> x509.Certificate:
        certificate = real_issue(self, request)
        signed.append(certificate)
        return certificate

    monkeypatch.setattr(Issuer, "issue", counting_issue)
    return signed


async def finalize_held(server: AcmeServer, monkeypatch: pytest.MonkeyPatch, name: str,
                        *, before: bool = False) -> tuple[asyncio.Task[Any], asyncio.Event]:
    """A finalize over HTTP, held in the store method ``name`` once it committed (or,
    ``before``, once it is called): (the request, the event that releases it)."""
    client = await registered(server)
    order, _ = await ready_order(server, client, NAME)
    entered, release = asyncio.Event(), asyncio.Event()
    real: Callable[..., Any] = getattr(server.store, name)

    async def held(*args: Any, **kwargs: Any) -> Any:
        if before:
            entered.set()
            await release.wait()
            return await real(*args, **kwargs)
        done = await real(*args, **kwargs)
        entered.set()
        await release.wait()
        return done

    monkeypatch.setattr(server.store, name, held)
    request = asyncio.create_task(finalize(client, order, NAME))
    try:
        await within(entered.wait(), f"the finalize to be held in {name}")
    except BaseException:
        release.set()
        raise
    return request, release


async def sweep_in_another_process(server: AcmeServer, release: asyncio.Event) -> None:
    """Past the deadline, a sweeper that does not know this process's issuances ends the
    held order; then the issuance is released."""
    try:
        server.clock.advance(LATE)
        assert await IssuanceSweeper(server.store, server.clock).sweep() == 1
    finally:
        release.set()


async def test_the_sweeper_leaves_an_issuance_in_flight_in_its_process_alone(
    server: AcmeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RFC 8555 7.4: an order moved to processing ends valid once its certificate is
    issued. The issuance is held past the sweeper's deadline after start_issuance
    (a lock wait, a paused process); the app's own sweeper must not end it."""
    signed = signatures(monkeypatch)
    request, release = await finalize_held(server, monkeypatch, "start_issuance")
    try:
        server.clock.advance(LATE)
        assert await server.app[SWEEPER].sweep() == 0
    finally:
        release.set()
    response, _ = await within(request, "the finalize")
    assert response.status == 200, response.body
    assert response.json()["status"] == "valid", response.json()
    (record,) = await server.store.list_certificates()
    assert len(signed) == 1 and record.status is CertificateStatus.ISSUED
    assert int(record.serial, 16) == signed[0].serial_number


async def test_an_order_ended_by_another_process_before_signing_is_not_signed(
    server: AcmeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RFC 8555 7.1.6: an invalid order never becomes valid, so nothing is signed for it.
    Another process's sweeper ends the order between start_issuance and the signature:
    the issuance signs nothing, the serial stays reserved, and the client gets the
    order as it is (200, invalid with serverInternal, 7.4), not a 500."""
    signed = signatures(monkeypatch)
    request, release = await finalize_held(server, monkeypatch, "start_issuance")
    await sweep_in_another_process(server, release)
    response, _ = await within(request, "the finalize")
    assert signed == []
    assert response.status == 200, response.body
    body = response.json()
    assert body["status"] == "invalid" and "certificate" not in body, body
    assert body["error"]["type"] == ERROR_PREFIX + "serverInternal", body
    (record,) = await server.store.list_certificates()
    assert (record.status, record.der) == (CertificateStatus.RESERVED, None)


async def test_a_certificate_signed_for_an_order_ended_meanwhile_is_stored(
    server: AcmeServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Boulder's rule: the store knows every certificate the intermediate signed. Another
    process's sweeper ends the order after the signature, before finish_order: the
    certificate is stored (issued, for its order), the order stays invalid without a
    certificate URL (7.1.3), the client gets that order (200), and a warning names both."""
    signed = signatures(monkeypatch)
    request, release = await finalize_held(server, monkeypatch, "finish_order", before=True)
    await sweep_in_another_process(server, release)
    response, _ = await within(request, "the finalize")
    assert response.status == 200, response.body
    assert response.json()["status"] == "invalid", response.json()
    (certificate,) = signed
    (record,) = await server.store.list_certificates()
    assert record.status is CertificateStatus.ISSUED and record.order_id
    assert record.der == certificate.public_bytes(Encoding.DER)
    stored = await server.store.get_order(record.order_id or "")
    assert (stored.status, stored.certificate_serial) == (OrderStatus.INVALID, None)
    assert json.loads(stored.error or "{}")["type"] == ERROR_PREFIX + "serverInternal"
    (warning,) = [r.getMessage() for r in caplog.records
                  if r.name == "acme_ca.authority.issuance" and r.levelno == logging.WARNING]
    assert f"order {record.order_id}" in warning and record.serial in warning, warning
