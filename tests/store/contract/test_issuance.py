"""Issuance (RFC 8555 7.4): finalize moves a ready order to processing and reserves the
serial in one write (Boulder's ISSUANCE-CYCLE: the serial is stored before it is
signed); the signed certificate and the valid order are stored together; orders left
processing are found and ended by a compare-and-set that exactly one sweeper wins.

Of two finalizes of one order, through two replicas, exactly one reserves a serial,
so the order gets exactly one certificate.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest

from acme_ca.domain.models import CertificateStatus, Order, OrderStatus
from acme_ca.errors import Conflict, NotFound, StoreError
from acme_ca.store import Store
from tests.store.conftest import DER, PROBLEM, T0, make_order, reservation

MINUTE = timedelta(minutes=1)


async def ready(store: Store, order_id: str) -> None:
    await store.create_order(make_order(order_id, [], status=OrderStatus.READY), [])


async def processing(store: Store, order_id: str, serial: str,
                     since: timedelta = timedelta(0)) -> Order:
    """An order moved to PROCESSING by finalize at T0 + since (its serial reserved then)."""
    await ready(store, order_id)
    record = replace(reservation(serial, order_id), created_at=T0 + since)
    return await store.start_issuance(order_id, record)


# --- finalize: start_issuance -----------------------------------------------------------


async def test_start_issuance_moves_the_order_and_reserves_the_serial_together(store: Store):
    """RFC 8555 7.4: ready -> processing on finalize; the serial is stored before it is
    signed (Boulder's ISSUANCE-CYCLE), in the same transaction."""
    await ready(store, "o")
    started = await store.start_issuance("o", reservation("0a", "o"))
    assert started.status is OrderStatus.PROCESSING
    assert (await store.get_certificate("0a")).status is CertificateStatus.RESERVED
    finished = await store.finish_order("o", "0a", DER)
    assert finished.status is OrderStatus.VALID


async def test_start_issuance_writes_nothing_unless_the_order_is_ready(store: Store):
    await store.create_order(make_order("o", [], status=OrderStatus.PENDING), [])
    with pytest.raises(Conflict, match="pending, not ready"):
        await store.start_issuance("o", reservation("0a", "o"))
    with pytest.raises(NotFound):
        await store.get_certificate("0a")
    with pytest.raises(NotFound):
        await store.start_issuance("nothing", reservation("0b", "nothing"))
    with pytest.raises(ValueError, match="for order p"):
        await store.start_issuance("o", reservation("0c", "p"))
    await ready(store, "r")
    await store.reserve_serial(reservation("0d", "r"))
    with pytest.raises(StoreError, match="0d already exists"):  # the order stays ready
        await store.start_issuance("r", reservation("0d", "r"))
    assert (await store.get_order("r")).status is OrderStatus.READY


async def test_start_issuance_with_a_serial_another_store_reserved_writes_nothing(
    store: Store, other: Store
):
    """A serial is never reused, even when the finalize runs on another replica than the
    one that reserved it. The error is a ``StoreError`` but not a ``Conflict``: the
    authority reads ``Conflict`` from ``start_issuance`` as "the order is not ready"
    (orders.py), which would hide a serial collision from the log."""
    await processing(store, "o", "0a")
    await ready(store, "r")
    taken = await store.get_certificate("0a")
    with pytest.raises(StoreError, match="0a") as caught:
        await other.start_issuance("r", reservation("0a", "r"))
    assert not isinstance(caught.value, Conflict)
    assert (await store.get_order("r")).status is OrderStatus.READY
    assert await store.get_certificate("0a") == taken


async def test_two_orders_finalized_at_once_with_one_serial_get_it_once(
    store: Store, other: Store
):
    """Two replicas drawing the same serial for two orders at the same moment: one
    order has it; the other finalize writes nothing (``StoreError``, not ``Conflict``),
    its order stays ready."""
    for round_ in range(10):
        first, second, serial = f"o-{round_}", f"p-{round_}", f"{round_ + 1:02x}"
        await ready(store, first)
        await ready(store, second)
        results = await asyncio.gather(
            store.start_issuance(first, reservation(serial, first)),
            other.start_issuance(second, reservation(serial, second)),
            return_exceptions=True)
        won = [r for r in results if isinstance(r, Order)]
        lost = [r for r in results if isinstance(r, StoreError)]
        assert len(won) == 1 and len(lost) == 1, results
        assert not isinstance(lost[0], Conflict), results
        loser = second if won[0].id == first else first
        assert (await store.get_certificate(serial)).order_id == won[0].id
        assert (await other.get_order(loser)).status is OrderStatus.READY


async def test_one_start_issuance_of_eight_over_two_stores_wins(store: Store, other: Store):
    """Concurrent finalize requests, in two processes: exactly one reserves a serial."""
    await ready(store, "o")
    results = await asyncio.gather(
        *(each.start_issuance("o", reservation(f"0{n}", "o"))
          for n, each in enumerate((store, other) * 4)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, Order) for r in results) == 1, results
    assert sum(isinstance(r, Conflict) for r in results) == 7, results
    reserved = await store.list_certificates(status=CertificateStatus.RESERVED)
    assert len(reserved) == 1


async def test_two_finalizes_of_each_order_through_two_stores_give_one_certificate(
    store: Store, other: Store
):
    """RFC 8555 7.4 across replicas, over 20 orders finalized twice at once: for each,
    one finalize wins and the other gets ``Conflict``; one serial is reserved, and
    ``finish_order`` leaves one certificate and a valid order pointing at it."""
    orders = [f"order-{n:02d}" for n in range(20)]
    for order_id in orders:
        await ready(store, order_id)
    results = await asyncio.gather(
        *(each.start_issuance(order_id, reservation(f"{n + 1:02x}{m}", order_id))
          for n, order_id in enumerate(orders) for m, each in ((1, store), (2, other))),
        return_exceptions=True)
    pairs = [results[i:i + 2] for i in range(0, len(results), 2)]
    for pair in pairs:
        assert sorted(type(r).__name__ for r in pair) == ["Conflict", "Order"], pair
    reserved = await other.list_certificates(status=CertificateStatus.RESERVED)
    assert sorted(r.order_id or "" for r in reserved) == orders
    finished = await asyncio.gather(
        *(store.finish_order(r.order_id or "", r.serial, DER) for r in reserved))
    assert all(o.status is OrderStatus.VALID for o in finished)
    issued = await other.list_certificates(status=CertificateStatus.ISSUED)
    assert sorted((r.order_id, r.serial) for r in issued) == sorted(
        (o.id, o.certificate_serial) for o in finished)
    assert await other.list_certificates(status=CertificateStatus.RESERVED) == []


# --- the certificate and the valid order: finish_order, complete_order ------------------


async def test_finish_order_issues_and_validates_together(store: Store):
    """RFC 8555 7.4: processing -> valid, with the certificate URL, in one step."""
    await store.create_order(make_order("o", [], status=OrderStatus.PROCESSING), [])
    await store.reserve_serial(reservation("0a", "o"))
    finished = await store.finish_order("o", "0a", DER)
    assert (finished.status, finished.certificate_serial) == (OrderStatus.VALID, "0a")
    assert await store.get_order("o") == finished
    record = await store.get_certificate("0a")
    assert (record.status, record.der) == (CertificateStatus.ISSUED, DER)


@pytest.mark.parametrize("order_status", [OrderStatus.READY, OrderStatus.INVALID])
async def test_finish_order_on_an_order_no_longer_processing_stores_the_certificate_alone(
    store: Store, order_status: OrderStatus
):
    """Boulder's rule (the store knows every certificate signed): a certificate signed for
    an order that a sweeper ended meanwhile is stored all the same; the order is left as
    it is (an invalid order never becomes valid, RFC 8555 7.1.6) and comes back so."""
    await store.create_order(make_order("o", [], status=order_status), [])
    await store.reserve_serial(reservation("0a", "o"))
    unchanged = await store.get_order("o")
    assert await store.finish_order("o", "0a", DER) == unchanged
    record = await store.get_certificate("0a")
    assert (record.status, record.der) == (CertificateStatus.ISSUED, DER)
    assert await store.get_order("o") == unchanged


async def test_finish_order_needs_a_certificate_reserved_for_that_order(store: Store):
    await store.create_order(make_order("o", [], status=OrderStatus.PROCESSING), [])
    await store.create_order(make_order("p", [], status=OrderStatus.PROCESSING), [])
    await store.reserve_serial(reservation("0a", "o"))
    await store.reserve_serial(reservation("0b", "p"))
    with pytest.raises(Conflict, match="reserved for order p"):
        await store.finish_order("o", "0b", DER)
    await store.finish_order("p", "0b", DER)
    with pytest.raises(Conflict, match="issued, not reserved"):
        await store.finish_order("o", "0b", DER)
    with pytest.raises(NotFound):
        await store.finish_order("o", "ff", DER)
    await store.reserve_serial(reservation("0c", "nothing"))
    with pytest.raises(NotFound):
        await store.finish_order("nothing", "0c", DER)
    assert (await store.get_certificate("0c")).status is CertificateStatus.RESERVED
    assert (await store.get_order("o")).status is OrderStatus.PROCESSING
    assert (await store.get_certificate("0a")).status is CertificateStatus.RESERVED


async def test_complete_order_points_the_order_at_its_stored_certificate(store: Store):
    """RFC 8555 7.1.3: a valid order has its certificate URL; complete_order gives it the
    certificate already stored for it, and nothing else."""
    await processing(store, "o", "0a")
    with pytest.raises(Conflict, match="0a is reserved, not stored"):
        await store.complete_order("o", "0a")
    await processing(store, "p", "0b")
    await store.store_certificate("0b", DER)
    with pytest.raises(Conflict, match="0b belongs to order p, not o"):
        await store.complete_order("o", "0b")
    with pytest.raises(NotFound):
        await store.complete_order("o", "ff")
    await store.reserve_serial(reservation("0c", "nothing"))
    await store.store_certificate("0c", DER)
    with pytest.raises(NotFound):
        await store.complete_order("nothing", "0c")
    assert (await store.get_order("o")).status is OrderStatus.PROCESSING

    done = await store.complete_order("p", "0b")
    assert (done.status, done.certificate_serial) == (OrderStatus.VALID, "0b")
    assert await store.get_order("p") == done
    with pytest.raises(Conflict, match="valid, not processing"):
        await store.complete_order("p", "0b")
    assert (await store.get_certificate("0b")).status is CertificateStatus.ISSUED


# --- orders left processing: processing_orders and the sweepers -------------------------


async def test_processing_orders_are_found_by_when_their_serial_was_reserved(store: Store):
    await processing(store, "o", "0a")
    await processing(store, "p", "0b", since=MINUTE)
    await ready(store, "r")
    await processing(store, "v", "0c")
    await store.finish_order("v", "0c", DER)

    assert await store.processing_orders(T0 - timedelta(microseconds=1), limit=10) == []
    (found,) = await store.processing_orders(T0, limit=10)
    order, record = found
    assert (order.id, order.status) == ("o", OrderStatus.PROCESSING)
    assert record == await store.get_certificate("0a")
    both = await store.processing_orders(T0 + MINUTE, limit=10)
    assert [(o.id, r.serial if r else None) for o, r in both] == [("o", "0a"), ("p", "0b")]
    assert len(await store.processing_orders(T0 + MINUTE, limit=1)) == 1
    with pytest.raises(ValueError, match="limit"):
        await store.processing_orders(T0, limit=0)


async def test_an_order_processing_without_a_serial_counts_from_its_creation(store: Store):
    """update_order_status may move an order to PROCESSING with no serial reserved:
    such an order is found too, as processing since it was created."""
    await store.create_order(make_order("o", [], status=OrderStatus.PROCESSING,
                                        created_at=T0 + MINUTE), [])
    assert await store.processing_orders(T0, limit=10) == []
    ((order, record),) = await store.processing_orders(T0 + MINUTE, limit=10)
    assert (order.id, record) == ("o", None)


async def test_of_two_stores_moving_one_processing_order_exactly_one_wins(
    store: Store, other: Store
):
    """Two processes or replicas sweeping at once: each move is a compare-and-set."""
    await processing(store, "o", "0a")
    await store.store_certificate("0a", DER)
    await processing(store, "p", "0b")
    results = await asyncio.gather(
        *(each.complete_order("o", "0a") for each in (store, other) * 2),
        *(each.update_order_status("p", expected=OrderStatus.PROCESSING,
                                   status=OrderStatus.INVALID, error=PROBLEM)
          for each in (store, other) * 2),
        return_exceptions=True,
    )
    assert sum(isinstance(r, Order) for r in results) == 2, results
    assert sum(isinstance(r, Conflict) for r in results) == 6, results
    assert (await other.get_order("o")).status is OrderStatus.VALID
    assert (await other.get_order("p")).status is OrderStatus.INVALID
    assert (await other.get_certificate("0b")).status is CertificateStatus.RESERVED
