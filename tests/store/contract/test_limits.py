"""Rate limits' buckets (``LimitStore``), shared by every process and replica: a spend
through any store counts against the one bucket, a limit of N lets N through however
many stores spend at once, and a refused spend, an ask (cost 0) and a refund of a full
bucket change nothing (RFC 8555 6.6 rateLimited is decided on these)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest

from acme_ca.domain.limits import Spend
from acme_ca.domain.models import AuthorizationStatus, Identifier, OrderStatus
from acme_ca.errors import CeilingReached, Conflict, LimitReached, NotFound
from acme_ca.store import Store
from tests.store.conftest import (
    ACCOUNT,
    OTHER,
    T0,
    make_authorization,
    make_order,
    reservation,
)

HOUR = timedelta(hours=1)
LIMIT = {"count": 3, "period": 3 * HOUR}  # one back an hour


async def spends(store: Store, n: int, *, name: str = "orders", key: str = ACCOUNT,
                 at: timedelta = timedelta(0)) -> list[bool]:
    return [(await store.spend_limit(name, key, T0 + at, **LIMIT)).allowed for _ in range(n)]


async def test_a_bucket_is_spent_through_one_store_and_seen_through_another(
    store: Store, other: Store
):
    assert await spends(store, 2) == [True, True]
    decision = await other.spend_limit("orders", ACCOUNT, T0, **LIMIT)
    assert decision.allowed and decision.tat == T0 + 3 * HOUR
    refused = await store.spend_limit("orders", ACCOUNT, T0 + HOUR / 2, **LIMIT)
    assert not refused.allowed
    assert refused.retry_at == T0 + HOUR and refused.resets_at == T0 + 3 * HOUR
    assert await spends(other, 2, at=HOUR) == [True, False]  # one came back
    assert await spends(store, 3, at=10 * HOUR) == [True] * 3  # full again


async def test_buckets_are_by_name_and_key(store: Store):
    assert await spends(store, 4) == [True] * 3 + [False]
    assert await spends(store, 1, key=OTHER) == [True]
    assert await spends(store, 1, name="certificates") == [True]
    assert await spends(store, 1, key=ACCOUNT.upper()) == [True]  # keys are exact


async def test_an_ask_costs_nothing_and_writes_nothing(store: Store, other: Store):
    for _ in range(5):
        asked = await store.spend_limit("orders", ACCOUNT, T0, **LIMIT, cost=0)
        assert asked.allowed
    assert await spends(other, 4) == [True] * 3 + [False]
    asked = await store.spend_limit("orders", ACCOUNT, T0, **LIMIT, cost=0)
    assert not asked.allowed and asked.retry_at == T0 + HOUR


async def test_a_spend_of_several_is_all_or_nothing(store: Store):
    assert (await store.spend_limit("orders", ACCOUNT, T0, **LIMIT, cost=2)).allowed
    assert not (await store.spend_limit("orders", ACCOUNT, T0, **LIMIT, cost=2)).allowed
    assert await spends(store, 2) == [True, False]


async def test_a_refund_gives_back_a_spend_never_more_than_the_bucket_holds(
    store: Store, other: Store
):
    assert await spends(store, 4) == [True] * 3 + [False]
    await other.refund_limit("orders", ACCOUNT, T0, **LIMIT)
    assert await spends(store, 2) == [True, False]
    await store.refund_limit("orders", ACCOUNT, T0, **LIMIT, cost=3)
    await store.refund_limit("orders", ACCOUNT, T0, **LIMIT, cost=3)  # full already
    await store.refund_limit("never spent", ACCOUNT, T0, **LIMIT)
    assert await spends(other, 4) == [True] * 3 + [False]


async def test_of_concurrent_spends_through_two_stores_exactly_the_limit_pass(
    store: Store, other: Store
):
    """Two replicas spend from one bucket of 10 at once, 40 times each, on 5 buckets
    (one new, so its row is created by the race): exactly 10 pass per bucket. A backend
    that read the TAT, decided, then wrote without holding the row (or the write lock)
    would let both racers through on the same TAT."""
    limit = {"count": 10, "period": HOUR}
    keys = [f"key-{n}" for n in range(5)]
    await store.spend_limit("race", keys[1], T0 - 2 * HOUR, **limit)  # an old, full row
    await store.spend_limit("race", keys[2], T0 - timedelta(minutes=6), **limit)  # just full

    async def spend(each: Store, key: str) -> bool:
        return (await each.spend_limit("race", key, T0, **limit)).allowed

    results = await asyncio.gather(
        *(spend(each, key) for key in keys for _ in range(40) for each in (store, other)))
    passed = [results[i:i + 80].count(True) for i in range(0, len(results), 80)]
    assert passed == [10] * len(keys)


async def test_concurrent_refunds_each_give_one_back(store: Store, other: Store):
    limit = {"count": 10, "period": HOUR}
    for _ in range(10):
        await store.spend_limit("race", ACCOUNT, T0, **limit)
    await asyncio.gather(*(each.refund_limit("race", ACCOUNT, T0, **limit)
                           for each in (store, other) * 3))
    results = [(await other.spend_limit("race", ACCOUNT, T0, **limit)).allowed
               for _ in range(8)]
    assert results == [True] * 6 + [False] * 2


async def test_wrong_arguments_are_refused_before_the_database(store: Store):
    with pytest.raises(ValueError, match="naive"):
        await store.spend_limit("orders", ACCOUNT, T0.replace(tzinfo=None), **LIMIT)
    with pytest.raises(ValueError, match="cost"):
        await store.spend_limit("orders", ACCOUNT, T0, **LIMIT, cost=4)
    with pytest.raises(ValueError, match="count"):
        await store.refund_limit("orders", ACCOUNT, T0, count=0, period=HOUR)
    with pytest.raises(ValueError, match="naive"):
        await store.count_pending_authorizations(ACCOUNT, T0.replace(tzinfo=None))


async def test_pending_authorizations_are_counted_per_account_while_unexpired(store: Store):
    """pending_authorizations_per_account reads the authorizations themselves: only
    PENDING ones of the account, unexpired; and when the first of them expires."""
    nothing = await store.count_pending_authorizations(ACCOUNT, T0)
    assert (nothing.count, nothing.first_expires) == (0, None)
    made = [
        make_authorization("az-1", "a.example.test", expires=T0 + 2 * HOUR),
        make_authorization("az-2", "b.example.test", expires=T0 + HOUR),
        make_authorization("az-3", "c.example.test", status=AuthorizationStatus.VALID),
        make_authorization("az-4", "d.example.test", status=AuthorizationStatus.INVALID),
        make_authorization("az-5", "e.example.test", expires=T0 - HOUR),  # expired
    ]
    others = [make_authorization("az-6", "a.example.test", account_id=OTHER)]
    await store.create_order(make_order("o-1", made), made)
    await store.create_order(make_order("o-2", others, account_id=OTHER), others)
    pending = await store.count_pending_authorizations(ACCOUNT, T0)
    assert (pending.count, pending.first_expires) == (2, T0 + HOUR)
    later = await store.count_pending_authorizations(ACCOUNT, T0 + HOUR)
    assert (later.count, later.first_expires) == (1, T0 + 2 * HOUR)
    assert (await store.count_pending_authorizations(OTHER, T0)).count == 1
    assert (await store.count_pending_authorizations("nobody", T0)).count == 0
    ip = make_authorization("az-7", "192.0.2.1")
    ip = replace(ip, identifier=Identifier("ip", "192.0.2.1"))
    await store.create_order(make_order("o-3", [ip]), [ip])
    assert (await store.count_pending_authorizations(ACCOUNT, T0)).count == 3


async def test_create_order_holds_the_pending_ceiling(store: Store):
    """RFC 8555 6.6: pending_authorizations_per_account is counted again inside the
    order's write (at ``order.created_at``): over the ceiling, ``CeilingReached`` with
    the count and the first expiry, and nothing written."""
    first = [make_authorization(f"az-{n}", f"{n}.example.test", expires=T0 + HOUR * (n + 1))
             for n in range(2)]
    await store.create_order(make_order("o-1", first), first, pending_ceiling=2)
    third = [make_authorization("az-3", "c.example.test")]
    with pytest.raises(CeilingReached) as refused:
        await store.create_order(make_order("o-2", third), third, pending_ceiling=2)
    assert (refused.value.pending, refused.value.first_expires) == (2, T0 + HOUR)
    assert (await store.count_pending_authorizations(ACCOUNT, T0)).count == 2
    with pytest.raises(NotFound):
        await store.get_order("o-2")
    await store.create_order(make_order("o-2", third), third, pending_ceiling=3)
    await store.create_order(make_order("o-3", []), [], pending_ceiling=0)  # adds none
    other = [make_authorization("az-4", "c.example.test", account_id=OTHER)]
    await store.create_order(make_order("o-4", other, account_id=OTHER), other,
                             pending_ceiling=1)  # per account


async def test_of_concurrent_orders_of_one_account_the_ceiling_holds(
    store: Store, other: Store
):
    """Six orders of one account, one new authorization each, created at once through
    two stores under a ceiling of 2: exactly two are written. A backend that counted
    before its write without holding anything would let them all through."""
    async def create(each: Store, n: int) -> bool:
        made = [make_authorization(f"race-{n}", f"{n}.example.test")]
        try:
            await each.create_order(make_order(f"race-o-{n}", made), made, pending_ceiling=2)
        except CeilingReached:
            return False
        return True

    results = await asyncio.gather(*(create(each, n)
                                     for n, each in enumerate((store, other) * 3)))
    assert sorted(results) == [False] * 4 + [True] * 2
    assert (await store.count_pending_authorizations(ACCOUNT, T0)).count == 2


# --- a spend inside the write it pays for ------------------------------------------------

ORDERS = Spend("orders", ACCOUNT, count=2, period=2 * HOUR)


async def test_create_order_spends_in_its_own_write(store: Store, other: Store):
    """RFC 8555 6.6: new_orders_per_account spent by ``create_order`` itself, at
    ``order.created_at``: the order and the spend are written together, and a spend
    that does not fit refuses the order (``LimitReached`` with the decision) and
    writes neither. The bucket is the one ``spend_limit`` spends from."""
    for n in range(2):
        made = [make_authorization(f"az-{n}", f"{n}.example.test")]
        await store.create_order(make_order(f"o-{n}", made), made, spend=ORDERS)
    third = [make_authorization("az-3", "c.example.test")]
    with pytest.raises(LimitReached) as refused:
        await other.create_order(make_order("o-3", third), third, spend=ORDERS)
    assert refused.value.retry_at == T0 + HOUR
    with pytest.raises(NotFound):
        await store.get_order("o-3")
    assert (await store.count_pending_authorizations(ACCOUNT, T0)).count == 2
    asked = await store.spend_limit("orders", ACCOUNT, T0, count=2, period=2 * HOUR, cost=0)
    assert not asked.allowed
    later = make_order("o-3", third, created_at=T0 + HOUR)  # one came back
    await other.create_order(later, third, spend=ORDERS)


async def test_an_order_refused_by_its_ceiling_or_a_conflict_spends_nothing(store: Store):
    made = [make_authorization("az-1", "a.example.test")]
    with pytest.raises(CeilingReached):  # the ceiling is held before the spend
        await store.create_order(make_order("o-1", made), made, pending_ceiling=0,
                                 spend=ORDERS)
    await store.create_order(make_order("o-1", made), made, spend=ORDERS)
    with pytest.raises(Conflict):
        await store.create_order(make_order("o-1", []), [], spend=ORDERS)
    asked = await store.spend_limit("orders", ACCOUNT, T0, count=2, period=2 * HOUR, cost=0)
    assert asked.allowed and asked.tat == T0 + HOUR  # one spent, by the order created


async def test_of_concurrent_orders_spending_one_bucket_the_limit_holds(
    store: Store, other: Store
):
    """Six orders of one account at once through two stores, each spending from a
    bucket of 2 inside its write: exactly two are created (a spend that read the TAT
    outside the write's lock would let more through)."""
    async def create(each: Store, n: int) -> bool:
        try:
            await each.create_order(make_order(f"race-o-{n}", []), [], spend=ORDERS)
        except LimitReached:
            return False
        return True

    results = await asyncio.gather(*(create(each, n)
                                     for n, each in enumerate((store, other) * 3)))
    assert sorted(results) == [False] * 4 + [True] * 2


CERTIFICATES = Spend("certificates", "names", count=1, period=HOUR)


async def test_start_issuance_spends_in_its_own_write(store: Store):
    """RFC 8555 6.6: certificates_per_names spent by ``start_issuance`` itself, at the
    reservation's ``created_at``: refused, ``LimitReached``, the order stays ready and
    no serial is reserved; an order not ready is a ``Conflict`` that spends nothing
    (a finalize losing the order to another keeps no certificate)."""
    for order_id in ("o-1", "o-2"):
        await store.create_order(make_order(order_id, [], status=OrderStatus.READY), [])
    await store.start_issuance("o-1", reservation("0a", "o-1"), spend=CERTIFICATES)
    with pytest.raises(LimitReached) as refused:
        await store.start_issuance("o-2", reservation("0b", "o-2"), spend=CERTIFICATES)
    assert refused.value.retry_at == T0 + HOUR
    assert (await store.get_order("o-2")).status is OrderStatus.READY
    with pytest.raises(NotFound):
        await store.get_certificate("0b")
    await store.refund_limit("certificates", "names", T0, count=1, period=HOUR)
    with pytest.raises(Conflict):  # o-1 is processing: nothing spent
        await store.start_issuance("o-1", reservation("0c", "o-1"), spend=CERTIFICATES)
    started = await store.start_issuance("o-2", reservation("0b", "o-2"), spend=CERTIFICATES)
    assert started.status is OrderStatus.PROCESSING


async def test_of_concurrent_issuances_spending_one_bucket_the_limit_holds(
    store: Store, other: Store
):
    """Six ready orders finalized at once through two stores, each spending from a
    bucket of 2 in its ``start_issuance``: exactly two start, the others stay ready."""
    two = replace(CERTIFICATES, count=2, period=2 * HOUR)
    ids = [f"race-o-{n}" for n in range(6)]
    for order_id in ids:
        await store.create_order(make_order(order_id, [], status=OrderStatus.READY), [])

    async def start(each: Store, order_id: str) -> bool:
        try:
            await each.start_issuance(order_id, reservation(f"0{order_id[-1]}", order_id),
                                      spend=two)
        except LimitReached:
            return False
        return True

    stores = (store, other) * 3
    results = await asyncio.gather(*(start(each, order_id)
                                     for order_id, each in zip(ids, stores, strict=True)))
    assert sorted(results) == [False] * 4 + [True] * 2
    statuses = sorted([(await store.get_order(order_id)).status.value for order_id in ids])
    assert statuses == ["processing"] * 2 + ["ready"] * 4
