"""Anti-replay nonces (RFC 8555 6.5), shared by every process and replica: a nonce
issued anywhere is accepted anywhere, exactly once, until it expires; a restart voids
none."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from acme_ca.errors import Conflict
from acme_ca.store import Store
from tests.store.conftest import T0
from tests.store.contract.conftest import Backend

LATER = T0 + timedelta(minutes=30)


async def test_a_nonce_is_good_once_and_only_before_it_expires(store: Store):
    """RFC 8555 6.5: a nonce is accepted once; an unknown one is refused (badNonce)."""
    expires = T0 + timedelta(minutes=30)
    await store.add_nonce("n1", expires)
    await store.add_nonce("n2", expires)
    assert await store.consume_nonce("n1", T0) is True
    assert await store.consume_nonce("n1", T0) is False
    assert await store.consume_nonce("never", T0) is False
    assert await store.consume_nonce("n2", expires) is False  # expired at that instant
    await store.add_nonce("n2", expires)  # the expired one was deleted
    with pytest.raises(Conflict):
        await store.add_nonce("n2", expires)
    with pytest.raises(ValueError, match="naive"):
        await store.add_nonce("n3", expires.replace(tzinfo=None))


async def test_nonces_are_shared_and_consumed_once_across_stores(store: Store, other: Store):
    await store.add_nonce("shared", T0 + timedelta(minutes=1))
    results = await asyncio.gather(
        *(each.consume_nonce("shared", T0) for each in (other, store) * 5))
    assert sorted(results) == [False] * 9 + [True]


async def test_many_nonces_consumed_at_once_through_two_stores_are_each_accepted_once(
    store: Store, other: Store
):
    """RFC 8555 6.5 across replicas: 100 nonces issued by one, each presented twice to
    each store at the same moment (a replayed request racing the original): one
    acceptance per nonce, never two."""
    nonces = [f"nonce-{n:03d}" for n in range(100)]
    await store.add_nonces(nonces, LATER)
    results = await asyncio.gather(
        *(each.consume_nonce(nonce, T0) for nonce in nonces for each in (store, other) * 2))
    accepted = [results[i:i + 4].count(True) for i in range(0, len(results), 4)]
    assert accepted == [1] * len(nonces)


async def test_a_nonce_another_store_issued_cannot_be_issued_again(store: Store, other: Store):
    await other.add_nonces(["a", "b"], LATER)
    with pytest.raises(Conflict):
        await store.add_nonce("a", LATER)
    assert await store.consume_nonce("b", T0) is True
    assert await other.consume_nonce("a", T0) is True


async def test_an_expired_nonce_is_refused_by_another_store_and_forgotten(
    store: Store, other: Store
):
    await store.add_nonce("old", T0)
    assert await other.consume_nonce("old", T0) is False
    await store.add_nonce("old", T0 + timedelta(seconds=1))  # it was deleted
    with pytest.raises(Conflict):
        await other.add_nonce("old", T0)


async def test_a_nonce_survives_stores_opened_later_and_a_restart(
    backend: Backend, store: Store
):
    """Starting a replica voids nobody's nonces (NonceStore): a store opened after the
    nonce was issued accepts it, and so does one opened after its issuer closed."""
    await store.add_nonces(["first", "second"], LATER)
    later = await backend.open()
    assert await later.consume_nonce("first", T0) is True
    await store.close()
    await later.close()
    restarted = await backend.open()
    assert await restarted.consume_nonce("second", T0) is True
    assert await restarted.consume_nonce("first", T0) is False


async def test_expired_nonces_are_purged_at_most_limit_at_a_time(store: Store):
    """Nonces expired at ``now`` (the instant included, as consume_nonce refuses them) go,
    at most ``limit`` per call; unexpired ones stay, good once as before."""
    now = T0 + timedelta(minutes=5)
    expired = [f"old-{n}" for n in range(7)]
    await store.add_nonces(expired[:6], T0)
    await store.add_nonce(expired[6], now)
    await store.add_nonces(["fresh-1", "fresh-2"], LATER)
    assert await store.purge_expired_nonces(now, limit=3) == 3
    assert await store.purge_expired_nonces(now, limit=3) == 3
    assert await store.purge_expired_nonces(now, limit=3) == 1
    assert await store.purge_expired_nonces(now, limit=3) == 0
    for nonce in expired:  # gone: each may be added again
        await store.add_nonce(nonce, LATER)
    assert await store.consume_nonce("fresh-1", now) is True
    assert await store.purge_expired_nonces(LATER, limit=100) == len(expired) + 1
    assert await store.consume_nonce("fresh-2", now) is False
    with pytest.raises(ValueError, match="at least 1"):
        await store.purge_expired_nonces(now, limit=0)


async def test_two_stores_purging_at_once_delete_each_expired_nonce_once(
    store: Store, other: Store
):
    """Two processes purging together (a paused former holder of the background lease
    and the new one): every expired nonce is counted by exactly one of them, and the
    unexpired ones are left."""
    await store.add_nonces([f"old-{n:03d}" for n in range(300)], T0)
    await store.add_nonce("fresh", LATER)
    now = T0 + timedelta(minutes=1)

    async def purge(each: Store) -> int:
        total = 0
        while (deleted := await each.purge_expired_nonces(now, limit=7)) > 0:
            total += deleted
        return total

    counts = await asyncio.gather(*(purge(each) for each in (store, other) * 2))
    assert sum(counts) == 300
    assert await other.consume_nonce("fresh", now) is True
