"""Anti-replay nonces (acme_ca/authority/nonces.py) over an in-memory store."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from acme_ca.authority.nonces import NonceService
from acme_ca.clock import FakeClock


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
