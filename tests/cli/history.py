"""A CA's database with some history, for the operator's commands (`accounts`, `orders`,
`certs revoke --account`): three accounts, three orders, five certificates, at times
relative to now.

    acct-1  valid        created 3 days ago   orders: order-b (pending, 2 days ago),
                                              order-a (valid, 3 days ago, cert a1)
            certificates a1 (3 days ago), a2 (an hour ago), a3 (expired)
    acct-2  valid        created 2 days ago   order-c (invalid);  certificate b1
    acct-3  deactivated  created a day ago,   with the EAB key kid-team
    no account (sign-csr): certificate 5c1
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from acme_ca.domain.models import AccountStatus, EabKey, OrderStatus
from acme_ca.store import open_store
from acme_ca.store.base import Store
from tests.store.conftest import DER, make_account, make_authorization, make_order, make_record

NOW = datetime.now(UTC)
DAY, HOUR = timedelta(days=1), timedelta(hours=1)
CERTIFICATES = {  # serial: account, created, lifetime
    "a1": ("acct-1", NOW - 3 * DAY, 7 * DAY),
    "a2": ("acct-1", NOW - HOUR, 7 * DAY),
    "a3": ("acct-1", NOW - 10 * DAY, 7 * DAY),  # expired 3 days ago
    "b1": ("acct-2", NOW - 2 * DAY, 7 * DAY),
    "5c1": (None, NOW - 5 * DAY, 30 * DAY),
}


async def seed(store: Store) -> None:
    await store.create_account(make_account("acct-1", created_at=NOW - 3 * DAY,
                                            contact=("mailto:ops@bluerobin.local",)))
    await store.create_account(make_account("acct-2", created_at=NOW - 2 * DAY, contact=()))
    await store.create_eab_key(EabKey(kid="kid-team", label="team", hmac_key=bytes(32),
                                      created_at=NOW - 2 * DAY))
    await store.create_account(make_account("acct-3", created_at=NOW - DAY,
                                            status=AccountStatus.DEACTIVATED,
                                            eab_kid="kid-team"))
    for serial, (account, created, lifetime) in CERTIFICATES.items():
        await store.reserve_serial(make_record(
            serial, account_id=account, order_id=None, created_at=created,
            not_before=created, not_after=created + lifetime,
            names=(f"{serial}.bluerobin.local",)))
        await store.store_certificate(serial, DER)
    orders = [("order-a", "acct-1", OrderStatus.VALID, NOW - 3 * DAY, "a1"),
              ("order-b", "acct-1", OrderStatus.PENDING, NOW - 2 * DAY, None),
              ("order-c", "acct-2", OrderStatus.INVALID, NOW - 2 * DAY + HOUR, None)]
    for order_id, account, status, created, serial in orders:
        authz = make_authorization(f"az-{order_id}", f"{order_id}.bluerobin.local",
                                   account_id=account, created_at=created, expires=NOW + DAY)
        await store.create_order(make_order(order_id, [authz], account_id=account,
                                            status=status, created_at=created,
                                            expires=NOW + DAY, certificate_serial=serial),
                                 [authz])


async def seed_url(url: str) -> None:
    store = await open_store(url)
    try:
        await seed(store)
    finally:
        await store.close()
