"""Anti-replay nonces (acme_ca/authority/nonces.py) over an in-memory nonce store; their
purge over a real SQLite store."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from acme_ca.authority.nonces import NonceService
from acme_ca.clock import FakeClock
from acme_ca.errors import StoreUnavailable
from acme_ca.store import Store, open_store


class MemoryNonces:
    """The NonceStore contract, as a dict: single use, nothing after expiry."""

    def __init__(self) -> None:
        self.expiry: dict[str, datetime] = {}

    async def add_nonce(self, nonce: str, expires: datetime) -> None:
        self.expiry[nonce] = expires

    async def add_nonces(self, nonces: list[str], expires: datetime) -> None:
        for nonce in nonces:
            await self.add_nonce(nonce, expires)

    async def consume_nonce(self, nonce: str, now: datetime) -> bool:
        expires = self.expiry.pop(nonce, None)
        return expires is not None and now < expires

    async def purge_expired_nonces(self, now: datetime, *, limit: int) -> int:
        expired = [nonce for nonce, expires in self.expiry.items() if expires <= now][:limit]
        for nonce in expired:
            del self.expiry[nonce]
        return len(expired)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store() -> MemoryNonces:
    return MemoryNonces()


async def test_nonce_is_base64url_with_128_bits(store: MemoryNonces, clock: FakeClock) -> None:
    """RFC 8555 6.5.1: a nonce is base64url; 16 random bytes are 22 characters."""
    service = NonceService(store, clock)
    nonces = {await service.new() for _ in range(50)}
    assert len(nonces) == 50
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", n) for n in nonces)


async def test_nonce_is_stored_with_its_expiry(store: MemoryNonces, clock: FakeClock) -> None:
    """RFC 8555 6.5: a nonce is known to the store (any replica) before it is handed out."""
    service = NonceService(store, clock, lifetime=timedelta(minutes=5), batch=4)
    nonce = await service.new()
    assert store.expiry[nonce] == clock.now() + timedelta(minutes=5)
    assert len(store.expiry) == 4  # stored a batch at a time


async def test_a_stale_batch_is_not_handed_out(store: MemoryNonces, clock: FakeClock) -> None:
    """Nonces kept ready too long are dropped: no response carries a nearly expired one."""
    service = NonceService(store, clock, lifetime=timedelta(minutes=10), batch=4)
    first = await service.new()
    clock.advance(timedelta(minutes=2))  # more than a tenth of the lifetime
    second = await service.new()
    assert store.expiry[second] == clock.now() + timedelta(minutes=10)
    assert store.expiry[first] < store.expiry[second]
    assert len(store.expiry) == 8


async def test_nonce_is_single_use(store: MemoryNonces, clock: FakeClock) -> None:
    """RFC 8555 6.5: the server MUST NOT accept a nonce twice."""
    service = NonceService(store, clock)
    nonce = await service.new()
    assert await service.consume(nonce) is True
    assert await service.consume(nonce) is False


async def test_unknown_nonce_is_refused(store: MemoryNonces, clock: FakeClock) -> None:
    """RFC 8555 6.5: only nonces this server issued are accepted."""
    assert await NonceService(store, clock).consume("never-issued") is False


async def test_nonce_expires(store: MemoryNonces, clock: FakeClock) -> None:
    """RFC 8555 6.5: a server may refuse old nonces (here after the lifetime)."""
    service = NonceService(store, clock, lifetime=timedelta(minutes=30))
    young, old = await service.new(), await service.new()
    clock.advance(timedelta(minutes=29))
    assert await service.consume(young) is True
    clock.advance(timedelta(minutes=1))
    assert await service.consume(old) is False


def test_lifetime_must_be_positive(store: MemoryNonces, clock: FakeClock) -> None:
    with pytest.raises(ValueError):
        NonceService(store, clock, lifetime=timedelta(0))


class Unreachable(MemoryNonces):
    """A nonce store whose database is out of reach: each write fails after a wait (a
    connection attempt timing out), until ``back``."""

    def __init__(self, wait: float) -> None:
        super().__init__()
        self.wait = wait
        self.tries = 0
        self.back = False

    async def add_nonces(self, nonces: list[str], expires: datetime) -> None:
        self.tries += 1
        if not self.back:
            await asyncio.sleep(self.wait)
            raise StoreUnavailable("connection timed out")
        await super().add_nonces(nonces, expires)


async def test_responses_waiting_for_a_nonce_share_one_failed_refill(clock: FakeClock) -> None:
    """Issue 10 (a request never hangs): 20 responses find no nonce ready while the
    database is out of reach. They wait for one refill together and all hear its failure
    after one timeout, not one after the other (the last after 20 timeouts); once the
    database is back, nonces are issued again."""
    store = Unreachable(wait=0.2)
    service = NonceService(store, clock, batch=4)
    started = time.monotonic()
    outcomes = await asyncio.gather(*(service.new() for _ in range(20)),
                                    return_exceptions=True)
    assert time.monotonic() - started < 2 * store.wait + 1
    assert all(isinstance(o, StoreUnavailable) for o in outcomes), outcomes
    assert store.tries == 1
    store.back = True
    assert await service.new() in store.expiry


async def test_a_waiter_that_gives_up_leaves_the_refill_to_the_others(
    store: MemoryNonces, clock: FakeClock
) -> None:
    """A response cancelled while its nonce is being stored (the server stopping) does
    not cancel the refill the others wait for."""
    slow = Unreachable(wait=0)
    slow.back = True
    service = NonceService(slow, clock, batch=2)
    first = asyncio.ensure_future(service.new())
    second = asyncio.ensure_future(service.new())
    await asyncio.sleep(0)
    first.cancel()
    assert await second in slow.expiry
    assert slow.tries == 1


class Purges:
    """A real store's purge, each statement recorded with how often the event loop ran
    other tasks before it (``ticks``)."""

    def __init__(self, store: Store, ticks: list[int]) -> None:
        self.store = store
        self.ticks = ticks
        self.statements: list[tuple[int, int, int]] = []  # (limit, deleted, ticks)

    async def purge_expired_nonces(self, now: datetime, *, limit: int) -> int:
        ticks = self.ticks[0]
        deleted = await self.store.purge_expired_nonces(now, limit=limit)
        self.statements.append((limit, deleted, ticks))
        return deleted


async def test_expired_nonces_are_purged_a_bounded_batch_at_a_time(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Issue 10 review: every response mints a nonce, so millions may have expired; one
    DELETE of them all held the event loop for seconds. The purge deletes ``batch`` per
    statement and lets other tasks run between two statements; unexpired nonces stay."""
    store = await open_store(f"sqlite:///{tmp_path / 'acme.db'}")
    try:
        now = clock.now()
        await store.add_nonces([f"old-{n}" for n in range(2500)], now)
        await store.add_nonces(["fresh"], now + timedelta(minutes=1))
        ticks = [0]

        async def tick() -> None:
            while True:
                ticks[0] += 1
                await asyncio.sleep(0)

        ticker = asyncio.create_task(tick())
        purges = Purges(store, ticks)
        try:
            deleted = await NonceService(purges, clock).purge_expired(batch=1000)  # type: ignore[arg-type]
        finally:
            ticker.cancel()
        assert deleted == 2500
        assert [(limit, n) for limit, n, _ in purges.statements] == [
            (1000, 1000), (1000, 1000), (1000, 500)]
        between = [later[2] - earlier[2] for earlier, later in pairwise(purges.statements)]
        assert all(n > 0 for n in between), between
        assert await store.consume_nonce("fresh", now) is True
    finally:
        await store.close()
