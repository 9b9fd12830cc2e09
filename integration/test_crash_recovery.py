"""A server killed (SIGKILL) in the middle of an issuance, then started again: the order it
left processing is ended by the new server, seen through the ACME API (RFC 8555 7.1.6).

The server is killed with an order pending, and the test then writes what a kill between
``start_issuance`` and ``finish_order`` leaves, through the same ``start_issuance`` that
finalize runs (one transaction: the order PROCESSING, its serial RESERVED). It does not
kill a real finalize in that window because nothing makes the window wait for the test:
between the commit of ``start_issuance`` and ``finish_order`` serve only reads the order
and signs (milliseconds, no lock to wait on), so a test that polls for "processing" and
then takes SQLite's write lock (``BEGIN IMMEDIATE``) races serve's ``finish_order`` and
usually loses; taking the lock before the finalize blocks ``start_issuance`` instead.
Holding the window open needs a hook inside serve, which this test, run against the
unmodified server, will not add. The in-process tests hold it with events
(tests/protocol/test_issuance_faults.py, test_issuance_races.py).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import josepy as jose
import pytest
from acme import crypto_util, messages
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from acme_ca.domain.models import CertificateRecord, CertificateStatus, OrderStatus
from acme_ca.store import SqliteStore
from integration.clients import NAMES, serving_acme
from integration.conftest import serving_config, until
from integration.test_acme_library import connect

pytestmark = pytest.mark.integration

# seconds: the killed server's background lease expires (10 s after its last renewal) and
# the restarted one takes it at its next try (every 2 s), then sweeps
SWEPT_WITHIN = 20.0


async def leave_processing(db: Path, order_id: str, started: datetime) -> str:
    """What a finalize leaves when its process dies between reserving the serial and
    storing the certificate: the order PROCESSING, its serial RESERVED (at `started`)."""
    store = await SqliteStore.open(db)
    try:
        order = await store.update_order_status(order_id, expected=OrderStatus.PENDING,
                                                status=OrderStatus.READY)
        record = CertificateRecord(
            serial=secrets.token_hex(16).lstrip("0") or "1", issuer="ab" * 32,
            names=tuple(i.value for i in order.identifiers), profile="server",
            not_before=started, not_after=started + timedelta(days=7), created_at=started,
            account_id=order.account_id, order_id=order_id)
        await store.start_issuance(order_id, record)
        return record.serial
    finally:
        await store.close()


async def certificate_status(db: Path, serial: str) -> CertificateStatus:
    store = await SqliteStore.open(db)
    try:
        return (await store.get_certificate(serial)).status
    finally:
        await store.close()


def test_an_order_a_killed_server_left_processing_is_ended_after_the_restart(
    tmp_path: Path,
) -> None:
    workdir = tmp_path / "acme-ca"
    data_dir = workdir / "data"
    key = jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    csr_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    with serving_acme(workdir) as first:
        acme = connect(first, key, jose.ES256)
        regr = acme.new_account(
            messages.NewRegistration.from_data(terms_of_service_agreed=True))
        orderr = acme.new_order(crypto_util.make_csr(csr_key, list(NAMES)))
        os.kill(first.server.process.pid, signal.SIGKILL)
        assert first.server.process.wait(timeout=10) == -signal.SIGKILL
    order_id = orderr.uri.rsplit("/", 1)[-1]
    db = data_dir / "acme-ca.db"
    crashed_at = datetime.now(UTC) - timedelta(minutes=1)  # a restart a minute later
    serial = asyncio.run(leave_processing(db, order_id, crashed_at))

    with serving_config(workdir / "acme-ca.toml", data_dir, first.server.port) as second:
        acme = connect(first._replace(server=second), key, jose.ES256)
        acme.net.account = regr
        seen: list[dict[str, Any]] = []

        def swept() -> bool:
            seen.append(acme._post_as_get(orderr.uri).json())
            return seen[-1]["status"] != "processing"

        until(swept, "the restarted server ended the order left processing", SWEPT_WITHIN)
        order = seen[-1]
        assert order["status"] == "invalid", (order, second.log("stderr"))
        assert order["error"]["type"] == "urn:ietf:params:acme:error:serverInternal", order
        assert "certificate" not in order
        # The sweeper logs after its move commits, so the read above can come first.
        until(lambda: f"order {order_id} was left processing" in second.log("stderr"),
              "the restarted server logged the order it ended", 5.0)
    assert asyncio.run(certificate_status(db, serial)) is CertificateStatus.RESERVED
