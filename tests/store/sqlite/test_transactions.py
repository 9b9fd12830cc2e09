"""SQLite writes are all or nothing: a failure between the first statement and the
COMMIT leaves nothing written, and no transaction open."""

from __future__ import annotations

import sqlite3

import pytest

import acme_ca.store.sqlite.authorizations as authz_module
import acme_ca.store.sqlite.store as sqlite_module
from acme_ca.domain.models import (
    AuthorizationStatus,
    CertificateRecord,
    CertificateStatus,
    ChallengeStatus,
)
from acme_ca.errors import StoreError
from acme_ca.store import SqliteStore
from tests.store.conftest import DER, T0, make_record, two_name_order


async def test_a_failure_inside_a_write_rolls_all_of_it_back(
    acme_store: SqliteStore, monkeypatch: pytest.MonkeyPatch
):
    await acme_store.reserve_serial(make_record())

    def broken(row: sqlite3.Row) -> CertificateRecord:
        raise RuntimeError("failed after the UPDATE, before the COMMIT")

    monkeypatch.setattr(sqlite_module, "_to_record", broken)
    with pytest.raises(RuntimeError, match="before the COMMIT"):
        await acme_store.store_certificate("1a2b3c", DER)
    monkeypatch.undo()

    record = await acme_store.get_certificate("1a2b3c")
    assert (record.status, record.der) == (CertificateStatus.RESERVED, None)
    stored = await acme_store.store_certificate("1a2b3c", DER)  # no transaction left open
    assert stored.der == DER


async def test_record_validation_is_one_transaction(
    acme_store: SqliteStore, monkeypatch: pytest.MonkeyPatch
):
    """If the order update fails, the challenge and authorization are not written either."""
    await two_name_order(acme_store)
    failing = "UPDATE orders SET status = 'bogus' WHERE id <> ?"
    monkeypatch.setattr(authz_module, "_ORDERS_READY", failing)
    with pytest.raises(StoreError, match="CHECK"):
        await acme_store.record_validation(
            "az-a-http-01", valid=True, error=None, validated_at=T0, authorization_expires=None)
    assert (await acme_store.get_challenge("az-a-http-01")).status is ChallengeStatus.PROCESSING
    assert (await acme_store.get_authorization("az-a")).status is AuthorizationStatus.PENDING
