"""The sweeper of orders left processing (RFC 8555 7.1.6, 7.4), on a real SQLite store with
an injected clock; its periodic wait is injected too, so each test says when it wakes."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from acme_ca.authority.sweeper import DEADLINE, PERIOD, IssuanceSweeper
from acme_ca.clock import FakeClock
from acme_ca.domain.models import CertificateStatus, OrderStatus
from acme_ca.errors import StoreError
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


class Naps:
    """An injected sleep: records each period it is asked to wait, wakes when told."""

    def __init__(self) -> None:
        self.asked: asyncio.Queue[float] = asyncio.Queue()
        self._wake: asyncio.Queue[None] = asyncio.Queue()

    async def sleep(self, seconds: float) -> None:
        self.asked.put_nowait(seconds)
        await self._wake.get()

    def wake(self) -> None:
        self._wake.put_nowait(None)


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


async def test_the_sweeper_sweeps_at_start_then_every_period(
    store: SqliteStore, clock: FakeClock
) -> None:
    """At start, orders a stopped server left behind; then, every period, those whose
    deadline passed since: none stays processing for more than deadline + period."""
    await processing(store, clock, "before", "0a")
    clock.advance(DEADLINE)
    naps = Naps()
    sweeper = IssuanceSweeper(store, clock, sleep=naps.sleep)
    await sweeper.start()
    await assert_invalid_keeping_serial(store, "before", "0a")
    assert await naps.asked.get() == PERIOD
    await processing(store, clock, "later", "0b")
    clock.advance(DEADLINE)
    naps.wake()
    assert await naps.asked.get() == PERIOD  # the second sweep is done
    await assert_invalid_keeping_serial(store, "later", "0b")
    await sweeper.close()
    await sweeper.close()  # twice is harmless


class FailingOnce:
    """The store, whose first look for processing orders fails (the disk, a lock)."""

    def __init__(self, inner: SqliteStore) -> None:
        self.inner = inner
        self.failed = False

    async def processing_orders(self, *args: Any, **kwargs: Any) -> Any:
        if not self.failed:
            self.failed = True
            raise StoreError("database is locked")
        return await self.inner.processing_orders(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_a_failed_sweep_is_logged_and_the_next_period_sweeps_again(
    store: SqliteStore, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    await processing(store, clock, "o", "0a")
    clock.advance(DEADLINE)
    naps = Naps()
    sweeper = IssuanceSweeper(FailingOnce(store), clock, sleep=naps.sleep)  # type: ignore[arg-type]
    await sweeper.start()  # the failure does not stop the server from starting
    assert "database is locked" in caplog.text
    assert (await store.get_order("o")).status is OrderStatus.PROCESSING
    await naps.asked.get()
    naps.wake()
    await naps.asked.get()
    await assert_invalid_keeping_serial(store, "o", "0a")
    await sweeper.close()


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
