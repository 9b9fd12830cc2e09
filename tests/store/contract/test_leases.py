"""Leases (``LeaseStore``): the cluster's background work runs in one process at a time,
and passes to another within seconds when its holder stops renewing.

Leases run on the database's clock (or the machine's, for SQLite), not on an injected
one, so these tests use real time: short ttls, and waits bounded by a deadline.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from acme_ca.clock import SystemClock
from acme_ca.store import Store
from tests.store.contract.conftest import Backend

HOUR = timedelta(hours=1)
SHORT = timedelta(milliseconds=300)
# Between this machine's clock and the database's (the same machine here).
SLACK = timedelta(seconds=1)
DEADLINE = 10.0  # seconds


async def test_a_free_lease_is_taken_until_ttl_from_now_and_renewed_by_its_holder(
    store: Store, other: Store
):
    """Decided here, where ``LeaseStore`` leaves it open: a holder is the name it gives,
    not the store it asks through (both backends agree)."""
    clock = SystemClock()
    before = clock.now()
    expiry = await store.hold_lease("background", "replica-a", HOUR)
    after = clock.now()
    assert expiry is not None and expiry.utcoffset() == timedelta(0)
    assert before + HOUR - SLACK <= expiry <= after + HOUR + SLACK
    assert await other.hold_lease("background", "replica-b", HOUR) is None
    renewed = await store.hold_lease("background", "replica-a", 2 * HOUR)
    assert renewed is not None and renewed >= expiry + HOUR - SLACK
    again = await other.hold_lease("background", "replica-a", 2 * HOUR)
    assert again is not None and again >= renewed
    assert await other.hold_lease("background", "replica-b", HOUR) is None
    assert await other.hold_lease("other work", "replica-b", HOUR) is not None  # by name


async def test_of_two_stores_racing_for_a_lease_exactly_one_gets_it(store: Store, other: Store):
    """20 free leases, then the same 20 expired, each raced for by two stores at once:
    one holder each time (a backend that read, then wrote, would hand out two)."""
    names = [f"lease-{n:02d}" for n in range(20)]

    racers = (("replica-a", store), ("replica-b", other))

    async def race() -> list[tuple[str, Store]]:
        """Who won each lease, and through which store."""
        results = await asyncio.gather(
            *(each.hold_lease(name, holder, HOUR) for name in names for holder, each in racers))
        pairs = [results[i:i + 2] for i in range(0, len(results), 2)]
        assert [sum(r is not None for r in pair) for pair in pairs] == [1] * len(names)
        return [racers[0] if pair[0] is not None else racers[1] for pair in pairs]

    await race()
    for name in names:  # handed to a third holder that stops renewing at once
        await store.release_lease(name, "replica-a")
        await other.release_lease(name, "replica-b")
        assert await store.hold_lease(name, "replica-c", SHORT) is not None
    await asyncio.sleep((SHORT + SLACK / 10).total_seconds())  # let them expire
    for name, (holder, through) in zip(names, await race(), strict=True):
        assert await store.hold_lease(name, "replica-c", HOUR) is None
        assert await through.hold_lease(name, holder, HOUR) is not None  # a renewal


async def test_a_lease_not_renewed_passes_to_another_after_it_expires(
    store: Store, other: Store
):
    """The holder died: it stops renewing, and a survivor takes over once the lease
    expires, not before; the dead holder's late renewal or release changes nothing."""
    expiry = await store.hold_lease("background", "replica-a", SHORT)
    assert expiry is not None
    assert await other.hold_lease("background", "replica-b", HOUR) is None
    end = time.monotonic() + DEADLINE
    while (taken := await other.hold_lease("background", "replica-b", HOUR)) is None:
        assert time.monotonic() < end, "the lease never passed to replica-b"
        await asyncio.sleep(0.02)
    assert SystemClock().now() >= expiry - SLACK
    assert taken > expiry
    assert await store.hold_lease("background", "replica-a", HOUR) is None
    await store.release_lease("background", "replica-a")
    assert await store.hold_lease("background", "replica-c", HOUR) is None


async def test_a_released_lease_is_free_at_once_and_only_its_holder_releases_it(
    store: Store, other: Store
):
    """At shutdown the holder releases its lease, so another process takes over without
    waiting for the expiry; releasing a lease one does not hold does nothing."""
    assert await store.hold_lease("background", "replica-a", HOUR) is not None
    await other.release_lease("background", "replica-b")
    await other.release_lease("never held", "replica-b")
    assert await other.hold_lease("background", "replica-b", HOUR) is None
    await store.release_lease("background", "replica-a")
    await store.release_lease("background", "replica-a")  # twice: nothing
    assert await other.hold_lease("background", "replica-b", HOUR) is not None
    assert await store.hold_lease("background", "replica-a", HOUR) is None


@asynccontextmanager
async def write_locked(backend: Backend, name: str) -> AsyncIterator[None]:
    """Another session holds what ``hold_lease(name)`` must lock: on PostgreSQL the lease's
    row (a renewal in flight, a replica paused inside its statement, autovacuum), on
    SQLite the file's write lock (another process writing)."""
    if backend.name == "postgresql":
        import asyncpg

        conn = await asyncpg.connect(backend.url)
        try:
            async with conn.transaction():
                await conn.execute("SELECT * FROM leases WHERE name = $1 FOR UPDATE", name)
                yield
        finally:
            await conn.close()
    else:
        conn = sqlite3.connect(backend.url.removeprefix("sqlite:///"), isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield
            conn.execute("ROLLBACK")
        finally:
            conn.close()


async def test_a_lease_taken_after_a_long_wait_for_its_lock_runs_ttl_from_then(
    backend: Backend, store: Store, other: Store
):
    """``hold_lease`` grants the lease until ``ttl`` from when it is granted: after a wait
    for the lock longer than ``ttl``, a lease timed from the call would be handed out
    already expired (its holder would believe it holds it, and the next caller would
    take it at once)."""
    assert await store.hold_lease("background", "replica-a", SHORT) is not None
    async with write_locked(backend, "background"):
        taking = asyncio.create_task(other.hold_lease("background", "replica-b", SHORT))
        await asyncio.sleep(3 * SHORT.total_seconds())  # replica-a's lease expires meanwhile
        assert not taking.done()
    granted = await taking
    assert granted is not None and granted > SystemClock().now()
    assert await store.hold_lease("background", "replica-a", SHORT) is None


async def test_lease_holder_names_the_unexpired_holder_and_nobody_once_free_or_expired(
    store: Store, other: Store
):
    """Issue 13 item 1: /readyz asks whether some process of the cluster holds the
    background lease; the answer is the same through any store, None when the lease is
    free, released or expired, and reading it takes nothing."""
    assert await other.lease_holder("background") is None
    assert await store.hold_lease("background", "replica-a", HOUR) is not None
    assert await other.lease_holder("background") == "replica-a"
    assert await store.lease_holder("other work") is None
    await store.release_lease("background", "replica-a")
    assert await other.lease_holder("background") is None
    assert await store.hold_lease("background", "replica-b", SHORT) is not None
    assert await store.lease_holder("background") == "replica-b"
    await asyncio.sleep((SHORT + SLACK / 10).total_seconds())
    assert await other.lease_holder("background") is None
    assert await other.hold_lease("background", "replica-c", HOUR) is not None  # still free
