"""Orders (RFC 8555 7.1.3, 7.1.2.1): created with their new authorizations in one write,
listed by account, moved by compare-and-set. Issuance is in ``test_issuance.py``."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, timedelta, timezone

import pytest

from acme_ca.domain.models import Challenge, Order, OrderStatus
from acme_ca.errors import Conflict, NotFound, StoreError
from acme_ca.store import Store
from tests.store.conftest import (
    ACCOUNT,
    DER,
    OTHER,
    PROBLEM,
    T0,
    make_authorization,
    make_order,
    make_record,
    valid_authorization,
)


async def test_order_round_trip_with_new_authorizations_and_challenges(store: Store):
    plus_two = timezone(timedelta(hours=2))
    authz = make_authorization("az-1", types=("tls-alpn-01", "http-01", "dns-01"),
                               expires=(T0 + timedelta(days=7)).astimezone(plus_two))
    order = make_order("order-1", [authz], not_before=T0, not_after=T0 + timedelta(days=30),
                       created_at=T0.astimezone(plus_two))
    created = await store.create_order(order, [authz])
    normalised = replace(order, created_at=T0)
    assert created == await store.get_order("order-1") == normalised
    fetched = await store.get_authorization("az-1")
    assert fetched == replace(authz, expires=T0 + timedelta(days=7))
    assert [c.type for c in fetched.challenges] == ["tls-alpn-01", "http-01", "dns-01"]
    assert fetched.expires.tzinfo is UTC and created.created_at.tzinfo is UTC
    assert await store.get_challenge("az-1-dns-01") == authz.challenges[2]
    with pytest.raises(NotFound):
        await store.get_order("nothing")
    with pytest.raises(NotFound):
        await store.get_authorization("nothing")
    with pytest.raises(NotFound):
        await store.get_challenge("nothing")


async def test_order_keeps_its_authorizations_in_order(store: Store):
    """RFC 8555 7.1.3: authorizations is an array; reused and new ones keep their places."""
    await valid_authorization(store, "az-m", "m.example.test")
    new = [make_authorization(authz_id, f"{authz_id}.example.test")
           for authz_id in ("az-z", "az-a", "az-q")]
    ids = ("az-z", "az-m", "az-a", "az-q")
    order = make_order("order-2", new, authorization_ids=ids, created_at=T0 + timedelta(1))
    await store.create_order(order, new)
    assert (await store.get_order("order-2")).authorization_ids == ids
    listing = await store.orders_for_authorization("az-m")
    assert [o.id for o in listing] == ["order-az-m", "order-2"]
    assert listing[1].authorization_ids == ids
    assert await store.orders_for_authorization("nothing") == []


async def test_create_order_writes_all_or_nothing(store: Store):
    first = make_authorization("az-1")
    await store.create_order(make_order("order-1", [first]), [first])
    # The second challenge of az-3 reuses an existing id: the last insert fails.
    clash = replace(first.challenges[0], authorization_id="az-3")
    new = [make_authorization("az-2"),
           replace(make_authorization("az-3", types=("dns-01",)),
                   challenges=(Challenge("az-3-dns-01", "az-3", "dns-01", "t"), clash))]
    with pytest.raises(Conflict, match="order-2"):
        await store.create_order(make_order("order-2", new), new)
    for read, row_id in ((store.get_order, "order-2"), (store.get_authorization, "az-2"),
                         (store.get_authorization, "az-3"),
                         (store.get_challenge, "az-2-http-01"),
                         (store.get_challenge, "az-3-dns-01")):
        with pytest.raises(NotFound):
            await read(row_id)  # type: ignore[operator]
    assert await store.orders_for_authorization("az-2") == []
    assert [o.id for o in await store.orders_for_authorization("az-1")] == ["order-1"]
    assert await store.get_challenge("az-1-http-01") == first.challenges[0]
    with pytest.raises(Conflict):  # an order id is used once
        await store.create_order(make_order("order-1", []), [])


async def test_create_order_refuses_inconsistent_input(store: Store):
    """A reused authorization that does not exist is refused by the schema's foreign key:
    a plain ``StoreError`` naming it, not a ``Conflict``."""
    authz = make_authorization("az-1")
    with pytest.raises(ValueError, match="not listed"):
        await store.create_order(make_order("o", []), [authz])
    with pytest.raises(ValueError, match="another account"):
        await store.create_order(make_order("o", [authz], account_id=OTHER), [authz])
    with pytest.raises(ValueError, match="twice"):
        await store.create_order(make_order("o", [authz, authz]), [authz])
    stray = replace(authz, challenges=(replace(authz.challenges[0], authorization_id="x"),))
    with pytest.raises(ValueError, match="names authorization x"):
        await store.create_order(make_order("o", [stray]), [stray])
    with pytest.raises(StoreError, match=r"(?i)foreign key") as caught:
        await store.create_order(make_order("o", [authz]), [])
    assert not isinstance(caught.value, Conflict)
    with pytest.raises(NotFound):
        await store.get_order("o")


async def test_orders_list_pages_by_creation_without_overlap(store: Store):
    """RFC 8555 7.1.2.1: the orders list, paginated (here oldest first, pages of 100)."""
    expected = []
    for n in range(250):  # created out of id order, ten at each instant (the id breaks ties)
        order_id = f"order-{(n * 37) % 250:03d}"
        created_at = T0 + timedelta(seconds=n // 10)
        expected.append((created_at, order_id))
        await store.create_order(make_order(order_id, [], created_at=created_at), [])
    await store.create_order(make_order("theirs", [], account_id=OTHER), [])
    pages = [await store.list_account_orders(ACCOUNT, limit=100)]
    while len(pages[-1]) == 100:
        pages.append(await store.list_account_orders(ACCOUNT, limit=100, after=pages[-1][-1]))
    assert [len(page) for page in pages] == [100, 100, 50]
    assert [i for page in pages for i in page] == [i for _, i in sorted(expected)]
    assert await store.list_account_orders(OTHER, limit=100) == ["theirs"]
    assert await store.list_account_orders(OTHER, limit=5, after="order-000") == []
    assert await store.list_account_orders(ACCOUNT, limit=5, after="nothing") == []
    with pytest.raises(ValueError, match="limit"):
        await store.list_account_orders(ACCOUNT, limit=0)


async def test_order_status_is_a_compare_and_set(store: Store):
    """RFC 8555 7.1.6: ready -> processing once; invalid carries an error document."""
    await store.create_order(make_order("o", [], status=OrderStatus.READY), [])
    moved = await store.update_order_status(
        "o", expected=OrderStatus.READY, status=OrderStatus.PROCESSING)
    assert moved.status is OrderStatus.PROCESSING and moved.error is None
    with pytest.raises(Conflict, match="processing, not ready"):
        await store.update_order_status(
            "o", expected=OrderStatus.READY, status=OrderStatus.PROCESSING)
    failed = await store.update_order_status(
        "o", expected=OrderStatus.PROCESSING, status=OrderStatus.INVALID, error=PROBLEM)
    assert await store.get_order("o") == failed and failed.error == PROBLEM
    with pytest.raises(NotFound):
        await store.update_order_status(
            "nothing", expected=OrderStatus.READY, status=OrderStatus.PROCESSING)
    with pytest.raises(ValueError, match="finish_order"):
        await store.update_order_status(
            "o", expected=OrderStatus.PROCESSING, status=OrderStatus.VALID)


async def test_one_finalize_of_eight_over_two_stores_wins(store: Store, other: Store):
    """RFC 8555 7.4: concurrent finalize requests: exactly one moves ready -> processing."""
    await store.create_order(make_order("o", [], status=OrderStatus.READY), [])
    results = await asyncio.gather(
        *(each.update_order_status("o", expected=OrderStatus.READY,
                                   status=OrderStatus.PROCESSING)
          for each in (store, other) * 4),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, Order)]
    assert len(winners) == 1 and sum(isinstance(r, Conflict) for r in results) == 7, results
    assert await other.get_order("o") == winners[0]


async def test_order_keeps_its_profile_through_every_write(store: Store):
    """draft-ietf-acme-profiles 4: the order's profile is stored, echoed on every read,
    and kept as the order moves (ready, processing, valid), for finalize to check it."""
    authz = make_authorization("az-1")
    order = make_order("order-1", [authz], profile="client")
    assert (await store.create_order(order, [authz])).profile == "client"
    assert (await store.get_order("order-1")).profile == "client"
    ready = await store.update_order_status("order-1", expected=OrderStatus.PENDING,
                                            status=OrderStatus.READY)
    assert ready.profile == "client"
    started = await store.start_issuance("order-1",
                                         make_record("0a", profile="client"))
    assert started.profile == "client"
    finished = await store.finish_order("order-1", "0a", DER)
    assert (finished.status, finished.profile) == (OrderStatus.VALID, "client")
    assert (await store.get_certificate("0a")).profile == "client"
    assert [o.profile for o in await store.orders_for_authorization("az-1")] == ["client"]
