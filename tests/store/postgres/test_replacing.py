"""PostgreSQL's locks around "replaces" (RFC 9773 5): ``create_order`` holds the
replaced certificate's row while it checks the orders replacing it, and never waits
for one of those orders (``store/postgres/orders.py``): a finish_order holding that
order would wait for the certificate in turn, and the two would deadlock."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest

from acme_ca.domain.models import OrderStatus
from acme_ca.errors import AlreadyReplaced
from acme_ca.store.postgres import PostgresStore
from tests.store.conftest import DER, T0, make_order, make_record, with_accounts

DAY = timedelta(days=1)


async def test_a_lapsed_order_another_transaction_holds_stands_in_the_way(
    pg_store: PostgresStore, pg_url: str
):
    """The older order is past its expiry but another transaction holds its row (a
    finalize or a validation changing it): the new order is alreadyReplaced at once,
    without waiting, and the older order is left to that transaction."""
    store = await with_accounts(pg_store)
    await store.reserve_serial(make_record("0a"))
    await store.store_certificate("0a", DER)
    await store.create_order(make_order("older", [], replaces="0a", expires=T0 + DAY), [])
    holder = await asyncpg.connect(pg_url)
    try:
        async with holder.transaction():
            await holder.execute("SELECT 1 FROM orders WHERE id = 'older' FOR NO KEY UPDATE")
            renewal = make_order("newer", [], replaces="0a", created_at=T0 + DAY)
            with pytest.raises(AlreadyReplaced, match="older"):
                await asyncio.wait_for(store.create_order(renewal, []), 3)
    finally:
        await holder.close()
    assert (await store.get_order("older")).status is OrderStatus.PENDING
    renewal = make_order("newer", [], replaces="0a", created_at=T0 + DAY)
    assert (await store.create_order(renewal, [])).replaces == "0a"  # once it is free
    assert (await store.get_order("older")).status is OrderStatus.INVALID
