"""SQLite writes are all or nothing: a failure between the first statement and the
COMMIT leaves nothing written, and no transaction open."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

import acme_ca.store.sqlite.store as sqlite_module
from acme_ca.domain.models import AuthorizationStatus, ChallengeStatus, Order, OrderStatus
from acme_ca.errors import NotFound, StoreError
from acme_ca.store import SqliteStore
from tests.store.conftest import T0, make_order, reservation, two_name_order


async def test_a_failure_inside_a_write_rolls_all_of_it_back(
    acme_store: SqliteStore, monkeypatch: pytest.MonkeyPatch
):
    """start_issuance moves the order and reserves the serial, then maps the order row,
    all before its COMMIT: a failure there undoes both statements."""
    await acme_store.create_order(make_order("o", [], status=OrderStatus.READY), [])

    def broken(row: sqlite3.Row) -> Order:
        raise RuntimeError("failed after the UPDATE, before the COMMIT")

    monkeypatch.setattr(sqlite_module, "to_order", broken)
    with pytest.raises(RuntimeError, match="before the COMMIT"):
        await acme_store.start_issuance("o", reservation("1a2b3c", "o"))
    monkeypatch.undo()

    assert (await acme_store.get_order("o")).status is OrderStatus.READY
    with pytest.raises(NotFound):
        await acme_store.get_certificate("1a2b3c")
    started = await acme_store.start_issuance("o", reservation("1a2b3c", "o"))
    assert started.status is OrderStatus.PROCESSING  # no transaction left open


async def test_record_validation_is_one_transaction(acme_store: SqliteStore, db_file: Path):
    """If the order update fails, the challenge and authorization are not written either."""
    await two_name_order(acme_store)
    with contextlib.closing(sqlite3.connect(db_file)) as conn:
        conn.execute("CREATE TRIGGER no_order_changes BEFORE UPDATE ON orders "
                     "BEGIN SELECT RAISE(ABORT, 'orders are read-only today'); END")
    with pytest.raises(StoreError, match="read-only today"):
        await acme_store.record_validation(
            "az-a-http-01", valid=True, error=None, validated_at=T0, authorization_expires=None)
    assert (await acme_store.get_challenge("az-a-http-01")).status is ChallengeStatus.PROCESSING
    assert (await acme_store.get_authorization("az-a")).status is AuthorizationStatus.PENDING
