"""``PostgresStore.bulk_insert``: many rows in one transaction, for seeding a database
with a long history (benchmarks), read back as the Store methods wrote them."""

from __future__ import annotations

from dataclasses import replace

import pytest

from acme_ca.domain.models import AuthorizationStatus, CertificateStatus, OrderStatus
from acme_ca.errors import Conflict, NotFound
from acme_ca.store.postgres import PostgresStore
from tests.store.conftest import (
    ACCOUNT,
    DER,
    make_account,
    make_authorization,
    make_order,
    reservation,
)


async def test_rows_inserted_in_bulk_read_back_as_values(pg_store: PostgresStore):
    authzs = [replace(make_authorization(f"bulk-{i}", f"n{i}.example.test",
                                         types=("http-01", "dns-01")),
                      status=AuthorizationStatus.VALID) for i in range(3)]
    certificate = replace(reservation("b0", "bulk-order"), status=CertificateStatus.ISSUED,
                          der=DER)
    order = make_order("bulk-order", authzs, status=OrderStatus.VALID,
                       certificate_serial="b0")
    await pg_store.bulk_insert(accounts=[make_account()], certificates=[certificate],
                               authorizations=authzs, orders=[order])
    assert await pg_store.get_account(ACCOUNT) == make_account()
    assert await pg_store.get_certificate("b0") == certificate
    assert [await pg_store.get_authorization(a.id) for a in authzs] == authzs
    assert await pg_store.get_order("bulk-order") == order


async def test_one_bad_row_inserts_nothing(pg_store: PostgresStore):
    with pytest.raises(Conflict):
        await pg_store.bulk_insert(accounts=[make_account("a"), make_account("a")])
    with pytest.raises(NotFound):
        await pg_store.get_account("a")
