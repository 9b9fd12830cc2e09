"""The sweeper of orders left processing (RFC 8555 7.1.6, 7.4), on a real SQLite store with
an injected clock. When it sweeps (a job of the background lease's holder, and what a
failed sweep does) is tested in test_background.py."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from acme_ca.authority.sweeper import DEADLINE, IssuanceSweeper
from acme_ca.clock import FakeClock
from acme_ca.domain.models import CertificateStatus, OrderStatus
from acme_ca.store import SqliteStore
from tests.store.conftest import DER, T0, make_order, reservation, with_accounts

SERVER_INTERNAL = "urn:ietf:params:acme:error:serverInternal"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
async def store(store: SqliteStore) -> SqliteStore:
    """The authority tests' store, with the accounts its orders reference."""
    return await with_accounts(store)


async def processing(store: SqliteStore, clock: FakeClock, order_id: str, serial: str) -> None:
    """What finalize leaves when the process dies before the certificate is stored: the
    order PROCESSING, its serial RESERVED at the clock's present."""
    await store.create_order(make_order(order_id, [], status=OrderStatus.READY), [])
    record = replace(reservation(serial, order_id), created_at=clock.now())
    await store.start_issuance(order_id, record)


async def assert_invalid_keeping_serial(store: SqliteStore, order_id: str, serial: str) -> None:
    order = await store.get_order(order_id)
    assert order.status is OrderStatus.INVALID and order.certificate_serial is None
    assert json.loads(order.error or "{}")["type"] == SERVER_INTERNAL, order.error
    record = await store.get_certificate(serial)
    assert (record.status, record.order_id) == (CertificateStatus.RESERVED, order_id)


async def test_an_order_past_the_deadline_becomes_invalid_keeping_its_serial(
    store: SqliteStore, clock: FakeClock
) -> None:
    """processing -> invalid (7.1.6) with serverInternal (6.7); the serial is evidence."""
    sweeper = IssuanceSweeper(store, clock)
    await processing(store, clock, "o", "0a")
    clock.advance(DEADLINE - timedelta(microseconds=1))
    assert await sweeper.sweep() == 0  # an issuance may still be running
    assert (await store.get_order("o")).status is OrderStatus.PROCESSING
    clock.advance(timedelta(microseconds=1))
    assert await sweeper.sweep() == 1
    await assert_invalid_keeping_serial(store, "o", "0a")
    assert await sweeper.sweep() == 0


async def test_an_order_whose_certificate_was_stored_is_completed(
    store: SqliteStore, clock: FakeClock
) -> None:
    """processing -> valid (7.1.6) when the certificate is in the store: it was signed and
    kept, only the order's move is missing."""
    await processing(store, clock, "o", "0a")
    await store.store_certificate("0a", DER)
    clock.advance(DEADLINE)
    assert await IssuanceSweeper(store, clock).sweep() == 1
    order = await store.get_order("o")
    assert (order.status, order.certificate_serial) == (OrderStatus.VALID, "0a")


async def test_a_completed_order_s_certificate_is_recorded_in_the_audit_log(
    store: SqliteStore, clock: FakeClock
) -> None:
    """Issue 13 item 4, review finding F2: the issuance appends its certificate.issued
    entry only once ``finish_order`` answered; an order the sweeper completes had none,
    so the sweeper appends it (actor system, completed_by sweeper). An order it fails
    issued nothing and gets no entry."""
    await processing(store, clock, "o", "0a")
    await store.store_certificate("0a", DER)
    await processing(store, clock, "p", "0b")
    clock.advance(DEADLINE)
    assert await IssuanceSweeper(store, clock).sweep() == 2
    (entry,) = await store.audit_entries()
    record = await store.get_certificate("0a")
    assert (entry.action, entry.actor, entry.serial, entry.identifiers, entry.at) == (
        "certificate.issued", "system", "0a", record.names, clock.now())
    assert dict(entry.details) == {"profile": record.profile, "order": "o",
                                   "account": record.account_id, "completed_by": "sweeper"}


async def test_a_sweep_takes_every_stale_order_batch_after_batch(
    store: SqliteStore, clock: FakeClock
) -> None:
    for n in range(5):
        await processing(store, clock, f"o{n}", f"a{n}")
    clock.advance(DEADLINE)
    assert await IssuanceSweeper(store, clock, batch=2).sweep() == 5
    for n in range(5):
        await assert_invalid_keeping_serial(store, f"o{n}", f"a{n}")


async def test_two_workers_sweeping_at_once_move_each_order_once(
    store: SqliteStore, clock: FakeClock, db_path: Path
) -> None:
    """`serve --workers 2`: two processes on one database sweep at the same moment."""
    for n in range(4):
        await processing(store, clock, f"o{n}", f"a{n}")
    await store.store_certificate("a0", DER)
    clock.advance(DEADLINE)
    other = await SqliteStore.open(db_path)
    try:
        moved = await asyncio.gather(IssuanceSweeper(store, clock).sweep(),
                                     IssuanceSweeper(other, clock).sweep())
    finally:
        await other.close()
    assert sum(moved) == 4, moved
    assert (await store.get_order("o0")).status is OrderStatus.VALID
    for n in range(1, 4):
        await assert_invalid_keeping_serial(store, f"o{n}", f"a{n}")


async def test_orders_whose_issuance_is_in_flight_here_are_left_alone(
    store: SqliteStore, clock: FakeClock
) -> None:
    """An issuance still running in this process (held past the deadline: a lock wait, a
    paused process) ends its order itself (RFC 8555 7.4); the sweeper skips it, and the
    orders behind it are swept all the same, even with a batch of one."""
    await processing(store, clock, "a-running", "0a")
    await processing(store, clock, "b-dead", "0b")
    clock.advance(DEADLINE)
    sweeper = IssuanceSweeper(store, clock, batch=1, in_flight={"a-running"})
    assert await sweeper.sweep() == 1
    assert (await store.get_order("a-running")).status is OrderStatus.PROCESSING
    await assert_invalid_keeping_serial(store, "b-dead", "0b")
