"""Orders left PROCESSING (RFC 8555 7.1.6, 7.4): found by when their serial was reserved,
and moved on by a compare-and-set that exactly one of several sweepers wins."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest

from acme_ca.domain.models import CertificateStatus, Order, OrderStatus
from acme_ca.errors import Conflict, NotFound
from acme_ca.store import SqliteStore
from tests.store.conftest import DER, PROBLEM, T0, make_order, reservation

MINUTE = timedelta(minutes=1)


async def processing(store: SqliteStore, order_id: str, serial: str,
                     since: timedelta = timedelta(0)) -> Order:
    """An order moved to PROCESSING by finalize at T0 + since (its serial reserved then)."""
    await store.create_order(make_order(order_id, [], status=OrderStatus.READY), [])
    record = replace(reservation(serial, order_id), created_at=T0 + since)
    return await store.start_issuance(order_id, record)


async def test_processing_orders_are_found_by_when_their_serial_was_reserved(
    acme_store: SqliteStore,
):
    await processing(acme_store, "o", "0a")
    await processing(acme_store, "p", "0b", since=MINUTE)
    await acme_store.create_order(make_order("r", [], status=OrderStatus.READY), [])
    await processing(acme_store, "v", "0c")
    await acme_store.finish_order("v", "0c", DER)

    assert await acme_store.processing_orders(T0 - timedelta(microseconds=1), limit=10) == []
    (found,) = await acme_store.processing_orders(T0, limit=10)
    order, record = found
    assert (order.id, order.status) == ("o", OrderStatus.PROCESSING)
    assert record == await acme_store.get_certificate("0a")
    both = await acme_store.processing_orders(T0 + MINUTE, limit=10)
    assert [(o.id, r.serial if r else None) for o, r in both] == [("o", "0a"), ("p", "0b")]
    assert len(await acme_store.processing_orders(T0 + MINUTE, limit=1)) == 1
    with pytest.raises(ValueError, match="limit"):
        await acme_store.processing_orders(T0, limit=0)


async def test_an_order_processing_without_a_serial_counts_from_its_creation(
    acme_store: SqliteStore,
):
    """update_order_status may move an order to PROCESSING with no serial reserved:
    such an order is found too, as processing since it was created."""
    await acme_store.create_order(make_order("o", [], status=OrderStatus.PROCESSING,
                                             created_at=T0 + MINUTE), [])
    assert await acme_store.processing_orders(T0, limit=10) == []
    ((order, record),) = await acme_store.processing_orders(T0 + MINUTE, limit=10)
    assert (order.id, record) == ("o", None)


async def test_complete_order_points_the_order_at_its_stored_certificate(
    acme_store: SqliteStore,
):
    """RFC 8555 7.1.3: a valid order has its certificate URL; complete_order gives it the
    certificate already stored for it, and nothing else."""
    await processing(acme_store, "o", "0a")
    with pytest.raises(Conflict, match="0a is reserved, not stored"):
        await acme_store.complete_order("o", "0a")
    await processing(acme_store, "p", "0b")
    await acme_store.store_certificate("0b", DER)
    with pytest.raises(Conflict, match="0b belongs to order p, not o"):
        await acme_store.complete_order("o", "0b")
    with pytest.raises(NotFound):
        await acme_store.complete_order("o", "ff")
    await acme_store.reserve_serial(reservation("0c", "nothing"))
    await acme_store.store_certificate("0c", DER)
    with pytest.raises(NotFound):
        await acme_store.complete_order("nothing", "0c")
    assert (await acme_store.get_order("o")).status is OrderStatus.PROCESSING

    done = await acme_store.complete_order("p", "0b")
    assert (done.status, done.certificate_serial) == (OrderStatus.VALID, "0b")
    assert await acme_store.get_order("p") == done
    with pytest.raises(Conflict, match="valid, not processing"):
        await acme_store.complete_order("p", "0b")
    assert (await acme_store.get_certificate("0b")).status is CertificateStatus.ISSUED


async def test_of_two_stores_moving_one_processing_order_exactly_one_wins(
    acme_store: SqliteStore, second_store: SqliteStore
):
    """Two `serve --workers` processes sweeping at once: each move is a compare-and-set."""
    await processing(acme_store, "o", "0a")
    await acme_store.store_certificate("0a", DER)
    await processing(acme_store, "p", "0b")
    results = await asyncio.gather(
        *(store.complete_order("o", "0a") for store in (acme_store, second_store) * 2),
        *(store.update_order_status("p", expected=OrderStatus.PROCESSING,
                                    status=OrderStatus.INVALID, error=PROBLEM)
          for store in (acme_store, second_store) * 2),
        return_exceptions=True,
    )
    assert sum(isinstance(r, Order) for r in results) == 2, results
    assert sum(isinstance(r, Conflict) for r in results) == 6, results
    assert (await second_store.get_order("o")).status is OrderStatus.VALID
    assert (await second_store.get_order("p")).status is OrderStatus.INVALID
    assert (await second_store.get_certificate("0b")).status is CertificateStatus.RESERVED
