"""Expiring orders and authorizations in the background (RFC 8555 7.1.6: an order or
authorization past its ``expires`` is invalid, expired): ``Store.expire_orders`` and
``Store.expire_authorizations`` write down what a read would judge, a bounded batch at
a time, each row moved once however many stores expire at once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from acme_ca.domain import states
from acme_ca.domain.models import AuthorizationStatus, OrderStatus
from acme_ca.store import Store
from tests.store.conftest import DER, T0, make_authorization, make_order, reservation

NOW = T0 + timedelta(days=7)
PAST, FUTURE = NOW - timedelta(seconds=1), NOW + timedelta(seconds=1)


async def authorization(store: Store, authz_id: str, status: AuthorizationStatus,
                        expires: object) -> None:
    """An authorization in ``status`` expiring at ``expires``, listed by an order that
    does not expire."""
    authz = make_authorization(authz_id, f"{authz_id}.example.test", status=status,
                               expires=expires)
    order = make_order(f"order-{authz_id}", [authz], expires=NOW + timedelta(days=30))
    await store.create_order(order, [authz])


async def order(store: Store, order_id: str, status: OrderStatus, expires: object) -> None:
    """An order without authorizations in ``status`` expiring at ``expires``."""
    await store.create_order(make_order(order_id, [], status=status, expires=expires), [])


async def statuses(store: Store, ids: list[str], kind: str) -> dict[str, str]:
    get = store.get_order if kind == "order" else store.get_authorization
    return {each: (await get(each)).status.value for each in ids}


async def test_expired_authorizations_move_and_no_others(store: Store):
    """Pending or valid past (or at) ``expires``: expired. Not yet expired, or in a final
    state (invalid, deactivated, revoked): left alone."""
    S = AuthorizationStatus
    rows = {
        "pending-past": (S.PENDING, PAST), "valid-past": (S.VALID, PAST),
        "valid-now": (S.VALID, NOW), "pending-future": (S.PENDING, FUTURE),
        "valid-future": (S.VALID, FUTURE), "invalid-past": (S.INVALID, PAST),
        "deactivated-past": (S.DEACTIVATED, PAST), "revoked-past": (S.REVOKED, PAST),
    }
    for authz_id, (status, expires) in rows.items():
        await authorization(store, authz_id, status, expires)
    assert await store.expire_authorizations(NOW, limit=100) == 3
    assert await statuses(store, list(rows), "authorization") == {
        "pending-past": "expired", "valid-past": "expired", "valid-now": "expired",
        "pending-future": "pending", "valid-future": "valid", "invalid-past": "invalid",
        "deactivated-past": "deactivated", "revoked-past": "revoked",
    }
    expired = await store.get_authorization("valid-past")
    assert expired.expires == PAST and len(expired.challenges) == 1  # only the status moved
    assert await store.expire_authorizations(NOW, limit=100) == 0


async def test_expired_orders_become_invalid_with_the_problem_a_read_gives(store: Store):
    """Pending or ready past (or at) ``expires``: invalid, with the error document
    ``domain.states.expiry_problem`` gives. Not yet expired, processing, valid or
    invalid: left alone, error included."""
    S = OrderStatus
    rows = {
        "pending-past": (S.PENDING, PAST), "ready-now": (S.READY, NOW),
        "pending-future": (S.PENDING, FUTURE), "ready-future": (S.READY, FUTURE),
        "processing-past": (S.PROCESSING, PAST), "invalid-past": (S.INVALID, PAST),
    }
    for order_id, (status, expires) in rows.items():
        await order(store, order_id, status, expires)
    await order(store, "valid-past", S.READY, PAST + timedelta(days=-1, seconds=1))
    await store.start_issuance("valid-past", reservation("5e", "valid-past"))
    await store.finish_order("valid-past", "5e", DER)
    before = await store.get_order("pending-past")

    assert await store.expire_orders(NOW, limit=100) == 2
    assert await statuses(store, [*rows, "valid-past"], "order") == {
        "pending-past": "invalid", "ready-now": "invalid", "pending-future": "pending",
        "ready-future": "ready", "processing-past": "processing", "invalid-past": "invalid",
        "valid-past": "valid",
    }
    expired = await store.get_order("pending-past")
    problem = states.expiry_problem(before, NOW)
    assert problem is not None and expired.error == problem.dumps()
    assert (await store.get_order("invalid-past")).error is None
    assert await store.expire_orders(NOW, limit=100) == 0


async def test_the_limit_holds_the_earliest_first(store: Store):
    for n in range(5):
        await order(store, f"order-{n}", OrderStatus.PENDING, PAST - timedelta(minutes=n))
        await authorization(store, f"az-{n}", AuthorizationStatus.PENDING,
                            PAST - timedelta(minutes=n))
    orders = [f"order-{n}" for n in range(5)]
    authzs = [f"az-{n}" for n in range(5)]
    assert await store.expire_orders(NOW, limit=2) == 2
    assert await statuses(store, orders, "order") == {
        "order-0": "pending", "order-1": "pending", "order-2": "pending",
        "order-3": "invalid", "order-4": "invalid"}
    assert await store.expire_authorizations(NOW, limit=2) == 2
    assert await statuses(store, authzs, "authorization") == {
        "az-0": "pending", "az-1": "pending", "az-2": "pending",
        "az-3": "expired", "az-4": "expired"}
    assert [await store.expire_orders(NOW, limit=2) for _ in range(3)] == [2, 1, 0]
    assert [await store.expire_authorizations(NOW, limit=2) for _ in range(3)] == [2, 1, 0]
    for method in (store.expire_orders, store.expire_authorizations):
        with pytest.raises(ValueError):
            await method(NOW, limit=0)


async def test_two_stores_expiring_at_once_move_each_row_once(store: Store, other: Store):
    """Two processes or replicas (a former lease holder still running its job): the
    counts add up to the rows there were, and every row moved."""
    count = 30
    for n in range(count):
        await order(store, f"order-{n}", OrderStatus.PENDING, PAST)
        await authorization(store, f"az-{n}", AuthorizationStatus.VALID, PAST)

    async def drain(expire, batch: int) -> int:  # type: ignore[no-untyped-def]
        total = 0
        while moved := await expire(NOW, limit=batch):
            total += moved
        return total

    moved = await asyncio.gather(drain(store.expire_orders, 4), drain(other.expire_orders, 7),
                                 drain(store.expire_authorizations, 4),
                                 drain(other.expire_authorizations, 7))
    assert moved[0] + moved[1] == count and moved[2] + moved[3] == count
    orders = await statuses(other, [f"order-{n}" for n in range(count)], "order")
    authzs = await statuses(store, [f"az-{n}" for n in range(count)], "authorization")
    assert set(orders.values()) == {"invalid"} and set(authzs.values()) == {"expired"}
