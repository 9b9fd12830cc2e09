"""Retention (issue 11, item 4): ``Store.prune_orders``, ``prune_authorizations``,
``prune_limits`` and ``table_stats`` keep a busy CA's database bounded.

Orders and authorizations are deleted some time after they expire (RFC 8555 7.1.6:
past ``expires`` they are invalid, and no client can use them), a bounded batch at a
time, each row once however many stores prune at once. A certificate outlives its
order (RFC 8555 7.6: revocation and status must still find it); an authorization
outlives its expiry while an order still lists it (a valid authorization may expire
before an order that reuses it, RFC 8555 7.1.4)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from acme_ca.domain.models import OrderStatus
from acme_ca.errors import NotFound
from acme_ca.store import Store
from acme_ca.store.sqlite.base import to_text
from tests.store.conftest import (
    DER,
    T0,
    make_authorization,
    make_order,
    reservation,
    validating,
)
from tests.store.contract.conftest import Backend

CUT = T0 + timedelta(days=40)  # now - grace
BEFORE, AFTER = CUT - timedelta(microseconds=1), CUT + timedelta(microseconds=1)


async def order(store: Store, order_id: str, expires: datetime, *authz_ids: str,
                status: OrderStatus = OrderStatus.PENDING) -> None:
    """An order expiring at ``expires`` with new authorizations ``authz_ids`` (expiring
    with it)."""
    authzs = [make_authorization(a, f"{a}.example.test", expires=expires) for a in authz_ids]
    await store.create_order(make_order(order_id, authzs, status=status, expires=expires),
                             authzs)


async def gone(store: Store, order_ids: list[str] = (), authz_ids: list[str] = ()) -> set[str]:  # type: ignore[assignment]
    """Which of these are no longer found."""
    missing = set()
    for each, get in [*((o, store.get_order) for o in order_ids),
                      *((a, store.get_authorization) for a in authz_ids)]:
        try:
            await get(each)
        except NotFound:
            missing.add(each)
    return missing


async def test_orders_expired_before_the_cut_are_pruned_unless_processing(store: Store):
    """Expired before the cut: pruned, whatever its status but processing. At the cut or
    after: kept. A processing order is being signed (RFC 8555 7.1.6): finish_order must
    find it, or a certificate the CA signed goes unrecorded; the sweeper ends those that
    stay processing (``sweeper.py``), and a later round prunes them."""
    S = OrderStatus
    await order(store, "pending-before", BEFORE, status=S.PENDING)
    await order(store, "ready-before", BEFORE - timedelta(days=3), status=S.READY)
    await order(store, "invalid-before", BEFORE, status=S.INVALID)
    await order(store, "processing-before", BEFORE - timedelta(days=4), status=S.READY)
    await store.start_issuance("processing-before", reservation("5e", "processing-before"))
    await order(store, "pending-at", CUT)
    await order(store, "invalid-after", AFTER, status=S.INVALID)
    every = ["pending-before", "ready-before", "invalid-before", "processing-before",
             "pending-at", "invalid-after"]
    assert await store.prune_orders(CUT, limit=1) == 1  # the oldest it may delete
    assert await gone(store, every) == {"ready-before"}
    assert await store.prune_orders(CUT, limit=100) == 2
    assert await gone(store, every) == {"pending-before", "ready-before", "invalid-before"}
    assert await store.prune_orders(CUT, limit=100) == 0
    await store.finish_order("processing-before", "5e", DER)  # signed: on record
    assert (await store.get_certificate("5e")).der == DER
    assert await store.prune_orders(CUT, limit=100) == 1  # valid now: pruned


async def test_an_order_pruned_keeps_its_certificate(store: Store):
    """RFC 8555 7.6: a certificate can be revoked, and its status asked, as long as it
    lives; it keeps the id of the order it came from."""
    await order(store, "done", BEFORE, status=OrderStatus.READY)
    await store.start_issuance("done", reservation("5e", "done"))
    await store.finish_order("done", "5e", DER)
    assert (await store.get_order("done")).status is OrderStatus.VALID
    assert await store.prune_orders(CUT, limit=10) == 1
    assert await gone(store, ["done"]) == {"done"}
    kept = await store.get_certificate("5e")
    assert kept.order_id == "done" and kept.der == DER


async def test_an_authorization_is_pruned_with_its_challenges_once_no_order_lists_it(
        store: Store):
    """The authorization az-kept expired before the cut, but order "reuser" (expiring
    after it) still lists it: kept until that order goes too."""
    await order(store, "first", BEFORE, "az-kept", "az-alone")
    await order(store, "at-cut", CUT, "az-at-cut")
    reused = make_authorization("az-kept", "az-kept.example.test", expires=BEFORE)
    await store.create_order(make_order("reuser", [reused], expires=CUT + timedelta(days=1)), [])
    assert await store.prune_authorizations(CUT, limit=10) == 0  # every one still listed
    assert await store.prune_orders(CUT, limit=10) == 1  # "first"
    assert await store.prune_authorizations(CUT, limit=10) == 1
    assert await gone(store, authz_ids=["az-kept", "az-alone", "az-at-cut"]) == {"az-alone"}
    with pytest.raises(NotFound):
        await store.get_challenge("az-alone-http-01")
    assert [a.id for a in await store.order_authorizations("reuser")] == ["az-kept"]

    assert await store.prune_orders(CUT + timedelta(days=2), limit=10) == 2
    assert await store.prune_authorizations(CUT, limit=10) == 1  # az-at-cut: at the cut
    assert await gone(store, authz_ids=["az-kept", "az-at-cut"]) == {"az-kept"}
    with pytest.raises(NotFound):
        await store.get_challenge("az-kept-http-01")


async def test_an_authorization_whose_challenge_is_processing_is_kept(store: Store):
    """A validation still settling it (``record_validation``) finds it there."""
    await order(store, "o", BEFORE, "az-busy", "az-idle")
    await validating(store, "az-busy-http-01", T0)
    await store.prune_orders(CUT, limit=10)
    assert await store.prune_authorizations(CUT, limit=10) == 1
    assert await gone(store, authz_ids=["az-busy", "az-idle"]) == {"az-idle"}


async def test_the_limit_holds_the_oldest_first(store: Store):
    for n in range(5):
        await order(store, f"order-{n}", BEFORE - timedelta(minutes=n), f"az-{n}")
    orders = [f"order-{n}" for n in range(5)]
    authzs = [f"az-{n}" for n in range(5)]
    assert await store.prune_orders(CUT, limit=2) == 2
    assert await gone(store, orders) == {"order-3", "order-4"}
    assert await store.prune_authorizations(CUT, limit=1) == 1
    assert await gone(store, authz_ids=authzs) == {"az-4"}
    assert [await store.prune_orders(CUT, limit=2) for _ in range(3)] == [2, 1, 0]
    assert [await store.prune_authorizations(CUT, limit=2) for _ in range(3)] == [2, 2, 0]
    for method in (store.prune_orders, store.prune_authorizations, store.prune_limits):
        with pytest.raises(ValueError):
            await method(CUT, limit=0)


async def test_two_stores_pruning_at_once_delete_each_row_once(store: Store, other: Store):
    """Two processes or replicas (a former lease holder still running its job): neither
    fails, and the counts add up to the rows there were."""
    count = 40
    for n in range(count):
        await order(store, f"order-{n}", BEFORE - timedelta(seconds=n), f"az-{n}", f"bz-{n}")

    async def drain(prune, batch: int) -> int:  # type: ignore[no-untyped-def]
        total = 0
        while done := await prune(CUT, limit=batch):
            total += done
        return total

    pruned = await asyncio.gather(drain(store.prune_orders, 3), drain(other.prune_orders, 5))
    assert sum(pruned) == count
    pruned = await asyncio.gather(drain(store.prune_authorizations, 4),
                                  drain(other.prune_authorizations, 7))
    assert sum(pruned) == 2 * count
    assert {t.name: t.rows for t in await other.table_stats()
            if t.name in ("orders", "authorizations", "challenges", "order_authorizations")
            } == {"orders": 0, "authorizations": 0, "challenges": 0, "order_authorizations": 0}


async def test_orders_and_authorizations_pruned_at_once_by_two_stores(store: Store,
                                                                      other: Store):
    """One store deletes orders (and their lists of authorizations) while the other
    deletes the authorizations no order lists any more: neither trips on what the other
    is deleting (PostgreSQL's foreign keys), and once both are done nothing is left."""
    count = 30
    for n in range(count):
        await order(store, f"order-{n}", BEFORE - timedelta(seconds=n), f"az-{n}")

    async def orders() -> None:
        while await store.prune_orders(CUT, limit=2):
            await asyncio.sleep(0)

    async def authorizations() -> int:
        total = 0
        for _ in range(count):
            total += await other.prune_authorizations(CUT, limit=2)
            await asyncio.sleep(0)
        return total

    _, early = await asyncio.gather(orders(), authorizations())
    assert early + await other.prune_authorizations(CUT, limit=100) == count
    assert {t.name: t.rows for t in await store.table_stats()
            if t.name in ("orders", "authorizations", "order_authorizations")
            } == {"orders": 0, "authorizations": 0, "order_authorizations": 0}


@contextlib.contextmanager
def _sqlite(url: str) -> Iterator[sqlite3.Connection]:
    with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn, conn:
        yield conn


async def put_buckets(backend: Backend, buckets: dict[str, datetime]) -> None:
    """Rate-limit rows (name "orders", key -> TAT), written as the limits' store would."""
    if backend.name == "sqlite":
        with _sqlite(backend.url) as conn:
            conn.executemany("INSERT INTO rate_limits VALUES ('orders', ?, ?)",
                             [(key, to_text(tat)) for key, tat in buckets.items()])
        return
    import asyncpg

    conn = await asyncpg.connect(backend.url)
    try:
        await conn.executemany("INSERT INTO rate_limits VALUES ('orders', $1, $2)",
                               list(buckets.items()))
    finally:
        await conn.close()


async def test_full_rate_limit_buckets_are_pruned(backend: Backend, store: Store):
    """A bucket whose TAT has passed (or is now) is full: the same as no row
    (``domain/limits.py``)."""
    now = T0
    await put_buckets(backend, {"past": now - timedelta(hours=1), "now": now,
                                "future": now + timedelta(microseconds=1),
                                "later": now + timedelta(hours=1)})
    rows = {t.name: t.rows for t in await store.table_stats()}
    assert rows["rate_limits"] == 4
    assert await store.prune_limits(now, limit=1) == 1
    assert await store.prune_limits(now, limit=10) == 1
    assert await store.prune_limits(now, limit=10) == 0
    rows = {t.name: t.rows for t in await store.table_stats()}
    assert rows["rate_limits"] == 2


async def test_table_stats_count_every_table(store: Store):
    await order(store, "o", AFTER, "az-1", "az-2")
    stats = {t.name: t for t in await store.table_stats()}
    assert {"accounts", "orders", "authorizations", "challenges", "order_authorizations",
            "certificates", "nonces", "leases", "rate_limits", "eab_keys"} <= set(stats)
    assert stats["accounts"].rows == 2 and stats["orders"].rows == 1
    assert stats["authorizations"].rows == 2 and stats["order_authorizations"].rows == 2
    assert stats["certificates"].rows == 0
    # This SQLite has dbstat (Debian's and python.org's builds do); PostgreSQL always
    # tells: every table takes at least a page, once it or its indexes hold a row.
    assert stats["orders"].bytes is not None and stats["orders"].bytes > 0
    assert [t.name for t in stats.values()] == sorted(stats)


async def make_table(backend: Backend, name: str) -> None:
    """A table of the operator's own in the CA's database, with one row."""
    quoted = '"' + name.replace('"', '""') + '"'
    if backend.name == "sqlite":
        with _sqlite(backend.url) as conn:
            conn.execute(f"CREATE TABLE {quoted} (x INTEGER)")
            conn.execute(f"INSERT INTO {quoted} VALUES (1)")  # noqa: S608
        return
    import asyncpg

    conn = await asyncpg.connect(backend.url)
    try:
        await conn.execute(f"CREATE TABLE {quoted} (x INTEGER)")
        await conn.execute(f"INSERT INTO {quoted} VALUES (1)")  # noqa: S608
    finally:
        await conn.close()


async def test_table_stats_count_a_table_whose_name_needs_quoting(backend: Backend,
                                                                  store: Store):
    """Any table of the database is counted under its own name, even one whose name
    holds a double quote (an identifier is quoted, its quotes doubled)."""
    await make_table(backend, 'audit "old" ; x')
    stats = {t.name: t.rows for t in await store.table_stats()}
    assert stats['audit "old" ; x'] == 1
