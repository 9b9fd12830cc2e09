"""Orders that replace a certificate (RFC 9773 5, "replaces" in newOrder): at most one
order that is not invalid replaces a certificate, however the orders race; once one of
them is valid the certificate counts as replaced (``replaced_by``) and no order may
replace it again (alreadyReplaced). An order that lapsed (open, past its expiry) no
longer stands in the way: it is made invalid as the expiry sweep would (RFC 8555
7.1.6)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest

from acme_ca.domain import states
from acme_ca.domain.models import CertificateStatus, Order, OrderStatus
from acme_ca.errors import AlreadyReplaced, Conflict, NotFound
from acme_ca.store import Store
from tests.store.conftest import DER, PROBLEM, T0, make_authorization, make_order, make_record
from tests.store.contract.conftest import Backend

OLD = "0a"  # the certificate being replaced
DAY = timedelta(days=1)


@pytest.fixture
async def old(store: Store) -> Store:
    """``store`` holding the issued certificate OLD."""
    await store.reserve_serial(make_record(OLD))
    await store.store_certificate(OLD, DER)
    return store


def renewal(order_id: str, **changes: object) -> Order:
    return make_order(order_id, [], **{"replaces": OLD, **changes})


async def valid_renewal(store: Store, order_id: str, serial: str) -> Order:
    """A renewal order taken READY -> PROCESSING -> VALID with the certificate ``serial``."""
    await store.create_order(renewal(order_id, status=OrderStatus.READY), [])
    await store.start_issuance(order_id, make_record(serial, order_id=order_id))
    return await store.finish_order(order_id, serial, DER)


async def test_an_order_keeps_the_serial_it_replaces(old: Store, other: Store):
    """RFC 9773 5: the order echoes "replaces"."""
    created = await old.create_order(renewal("order-r"), [])
    assert created.replaces == OLD
    assert (await other.get_order("order-r")).replaces == OLD
    assert (await other.get_certificate(OLD)).replaced_by is None  # not valid yet
    await old.create_order(make_order("order-plain", []), [])
    assert (await old.get_order("order-plain")).replaces is None


@pytest.mark.parametrize("first", [OrderStatus.PENDING, OrderStatus.READY,
                                   OrderStatus.PROCESSING])
async def test_a_second_order_replacing_one_certificate_is_already_replaced(
    old: Store, first: OrderStatus
):
    """RFC 9773 5: a certificate that another order, not invalid, replaces is refused
    with alreadyReplaced, and nothing of the second order is written."""
    await old.create_order(renewal("order-1", status=first), [])
    authz = make_authorization("az-2")
    with pytest.raises(AlreadyReplaced, match=f"{OLD} is already replaced by order order-1"):
        await old.create_order(renewal("order-2", authorization_ids=("az-2",)), [authz])
    for lookup, key in ((old.get_order, "order-2"), (old.get_authorization, "az-2")):
        with pytest.raises(NotFound):
            await lookup(key)


async def test_an_invalid_order_does_not_stand_in_the_way(old: Store):
    await old.create_order(renewal("order-1", status=OrderStatus.INVALID, error=PROBLEM), [])
    assert (await old.create_order(renewal("order-2"), [])).replaces == OLD


@pytest.mark.parametrize("status", [OrderStatus.PENDING, OrderStatus.READY])
async def test_a_lapsed_order_is_made_invalid_and_the_new_one_gets_in(
    old: Store, other: Store, status: OrderStatus
):
    """An open order past its expiry is invalid (RFC 8555 7.1.6) whether or not the
    sweep moved it yet: it is moved in the new order's write, with the problem the sweep
    gives it, and the new order replaces the certificate."""
    lapsed = await old.create_order(renewal("order-1", status=status, expires=T0 + DAY), [])
    created = await other.create_order(renewal("order-2", created_at=T0 + DAY), [])
    assert created.replaces == OLD
    moved = await old.get_order("order-1")
    problem = states.expiry_problem(lapsed, T0 + DAY)
    assert problem is not None
    assert (moved.status, moved.error) == (OrderStatus.INVALID, problem.dumps())
    with pytest.raises(AlreadyReplaced, match="order-2"):  # the new one stands in the way
        await old.create_order(renewal("order-3", created_at=T0 + 2 * DAY), [])


async def test_an_order_not_yet_expired_still_stands_in_the_way(old: Store):
    await old.create_order(renewal("order-1", expires=T0 + DAY), [])
    with pytest.raises(AlreadyReplaced):
        await old.create_order(renewal("order-2", created_at=T0 + DAY - timedelta(seconds=1)),
                               [])
    assert (await old.get_order("order-1")).status is OrderStatus.PENDING


async def test_replacing_an_unknown_certificate_is_not_found_and_writes_nothing(store: Store):
    with pytest.raises(NotFound, match="no certificate with serial 0a"):
        await store.create_order(renewal("order-1"), [])
    with pytest.raises(NotFound):
        await store.create_order(renewal("order-2", replaces="0a\x00"), [])
    with pytest.raises(NotFound):
        await store.get_order("order-1")


async def test_a_duplicate_order_id_is_still_a_plain_conflict(old: Store):
    """The duplicate id is a Conflict, not alreadyReplaced: only the orders_replacing
    rule says alreadyReplaced."""
    await old.reserve_serial(make_record("0b"))
    await old.store_certificate("0b", DER)
    await old.create_order(renewal("order-1"), [])
    with pytest.raises(Conflict, match="already exists") as caught:
        await old.create_order(renewal("order-1", replaces="0b"), [])
    assert not isinstance(caught.value, AlreadyReplaced)
    assert (await old.create_order(renewal("order-2", replaces="0b"), [])).replaces == "0b"


async def test_finish_order_marks_the_certificate_replaced(old: Store, other: Store):
    """RFC 9773 5: the certificate counts as replaced once the replacing order is valid;
    no order may replace it again, even one created after the first lapsed."""
    finished = await valid_renewal(old, "order-r", "0b")
    assert finished.status is OrderStatus.VALID and finished.replaces == OLD
    assert (await other.get_certificate(OLD)).replaced_by == "order-r"
    assert (await other.get_certificate("0b")).replaced_by is None
    with pytest.raises(AlreadyReplaced, match="order-r"):
        await other.create_order(renewal("order-again", created_at=T0 + 30 * DAY), [])


async def test_complete_order_marks_the_certificate_replaced(old: Store):
    """The sweeper's path to VALID (a certificate stored, the order left processing)
    marks the replaced certificate as finish_order does (RFC 9773 5)."""
    await old.create_order(renewal("order-r", status=OrderStatus.READY), [])
    await old.start_issuance("order-r", make_record("0b", order_id="order-r"))
    await old.store_certificate("0b", DER)
    assert (await old.get_certificate(OLD)).replaced_by is None
    completed = await old.complete_order("order-r", "0b")
    assert completed.status is OrderStatus.VALID
    assert (await old.get_certificate(OLD)).replaced_by == "order-r"


async def test_an_order_that_does_not_become_valid_marks_nothing(old: Store):
    """finish_order stores the certificate of an order a sweeper ended meanwhile, and
    leaves that order invalid: it replaced nothing."""
    await old.create_order(renewal("order-r", status=OrderStatus.READY), [])
    await old.start_issuance("order-r", make_record("0b", order_id="order-r"))
    await old.update_order_status("order-r", expected=OrderStatus.PROCESSING,
                                  status=OrderStatus.INVALID, error=PROBLEM)
    ended = await old.finish_order("order-r", "0b", DER)
    assert ended.status is OrderStatus.INVALID
    assert (await old.get_certificate("0b")).status is CertificateStatus.ISSUED
    assert (await old.get_certificate(OLD)).replaced_by is None
    assert (await old.create_order(renewal("order-2"), [])).replaces == OLD


async def test_a_certificate_marked_replaced_is_refused_without_its_order(
    backend: Backend, old: Store
):
    """replaced_by outlives the order that replaced it (retention prunes orders): the
    mark alone refuses a new order (RFC 9773 5)."""
    await old.bulk_insert(certificates=[replace(  # type: ignore[attr-defined]
        make_record("0c"), status=CertificateStatus.ISSUED, der=DER, replaced_by="gone")])
    assert (await old.get_certificate("0c")).replaced_by == "gone"
    with pytest.raises(AlreadyReplaced, match="0c is already replaced by order gone"):
        await old.create_order(renewal("order-1", replaces="0c"), [])


async def test_orders_racing_to_replace_one_certificate_create_one(
    backend: Backend, old: Store, other: Store
):
    """RFC 9773 5 across replicas: two newOrders naming one certificate in "replaces"
    at the same moment create one order; the other is alreadyReplaced."""
    third = await backend.open()
    for round_ in range(5):
        serial = f"1{round_}"
        await old.reserve_serial(make_record(serial))
        await old.store_certificate(serial, DER)
        if round_ % 2:  # a lapsed order to move out of the way, by both racers
            await old.create_order(renewal(f"lapsed-{round_}", replaces=serial,
                                           expires=T0 + DAY), [])
        racers = [each.create_order(renewal(f"o{round_}-{n}", replaces=serial,
                                            created_at=T0 + DAY), [])
                  for n, each in enumerate((old, other, third))]
        results = await asyncio.gather(*racers, return_exceptions=True)
        won = [r for r in results if isinstance(r, Order)]
        lost = [r for r in results if not isinstance(r, Order)]
        assert len(won) == 1, results
        assert all(isinstance(r, AlreadyReplaced) for r in lost), results
        assert (await other.get_order(won[0].id)).replaces == serial
