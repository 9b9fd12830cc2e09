"""Two replicas on one PostgreSQL database, at READ COMMITTED: the races of issue 10.

Two ``PostgresStore`` instances on one database are two replicas as far as
PostgreSQL can tell (separate pools, separate connections). Each test runs many
races at once, so that a backend that decided on stale reads would lose some.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from acme_ca.domain.models import ChallengeStatus, OrderStatus
from acme_ca.errors import Conflict
from acme_ca.store.postgres import PostgresStore
from tests.store.conftest import (
    PROBLEM,
    T0,
    make_authorization,
    make_order,
    reservation,
    with_accounts,
)

RACES = 40


@pytest.fixture
async def replicas(pg_url: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    first = await PostgresStore.open(pg_url, pool_size=8)
    second = await PostgresStore.open(pg_url, pool_size=8)
    try:
        await with_accounts(first)
        yield first, second
    finally:
        await asyncio.gather(first.close(), second.close())


async def orders_of_two(store: PostgresStore, count: int) -> list[tuple[str, str, str]]:
    """``count`` pending orders of two authorizations each, every challenge processing:
    (order id, first challenge id, second challenge id)."""
    made = []
    for i in range(count):
        authzs = [make_authorization(f"a{i}-{k}", f"n{k}.o{i}.example.test") for k in (1, 2)]
        await store.create_order(make_order(f"o{i}", authzs), authzs)
        challenges = [authz.challenges[0].id for authz in authzs]
        for challenge_id in challenges:
            await store.update_challenge(challenge_id, expected=ChallengeStatus.PENDING,
                                         status=ChallengeStatus.PROCESSING,
                                         processing_since=T0)
        made.append((f"o{i}", *challenges))
    return made


async def test_two_authorizations_validated_at_once_leave_the_order_ready(replicas):
    """RFC 8555 7.1.6: the order is ready once every authorization is valid, even when
    the last two become valid at the same moment on two replicas, neither seeing the
    other's uncommitted change (record_validation locks the order, then re-reads)."""
    first, second = replicas
    made = await orders_of_two(first, RACES)
    validations = [
        store.record_validation(challenge_id, valid=True, error=None, validated_at=T0,
                                authorization_expires=T0 + timedelta(days=30))
        for _, one, two in made
        for store, challenge_id in ((first, one), (second, two))
    ]
    await asyncio.gather(*validations)
    statuses = [(await first.get_order(order_id)).status for order_id, _, _ in made]
    assert statuses == [OrderStatus.READY] * RACES


async def test_one_failure_beside_a_success_leaves_the_order_invalid(replicas):
    """One authorization failing makes its order invalid with that challenge's problem,
    whatever the other's validation did at the same moment."""
    first, second = replicas
    made = await orders_of_two(first, RACES)
    await asyncio.gather(*(
        coroutine
        for _, one, two in made
        for coroutine in (
            first.record_validation(one, valid=True, error=None, validated_at=T0,
                                    authorization_expires=None),
            second.record_validation(two, valid=False, error=PROBLEM, validated_at=T0,
                                     authorization_expires=None),
        )
    ))
    for order_id, _, _ in made:
        order = await first.get_order(order_id)
        assert (order.status, order.error) == (OrderStatus.INVALID, PROBLEM)


async def test_one_of_two_racing_validations_of_a_challenge_wins(replicas):
    """The loser of a compare-and-set says Conflict; the first result stands."""
    first, second = replicas
    made = await orders_of_two(first, RACES)
    outcomes = await asyncio.gather(*(
        store.record_validation(one, valid=valid, error=None if valid else PROBLEM,
                                validated_at=T0, authorization_expires=None)
        for _, one, _ in made
        for store, valid in ((first, True), (second, False))
    ), return_exceptions=True)
    for pair in zip(outcomes[::2], outcomes[1::2], strict=True):
        assert sorted(type(outcome).__name__ for outcome in pair) == ["Conflict", "tuple"]


async def test_two_finalizes_of_one_order_reserve_one_serial(replicas):
    """Only one of two start_issuance calls moves a ready order to processing."""
    first, second = replicas
    made = await orders_of_two(first, RACES)
    for _, one, two in made:
        for challenge_id in (one, two):
            await first.record_validation(challenge_id, valid=True, error=None,
                                          validated_at=T0, authorization_expires=None)
    outcomes = await asyncio.gather(*(
        store.start_issuance(order_id, reservation(f"{i:x}{k}", order_id))
        for i, (order_id, _, _) in enumerate(made)
        for store, k in ((first, "a"), (second, "b"))
    ), return_exceptions=True)
    for pair in zip(outcomes[::2], outcomes[1::2], strict=True):
        assert sorted(type(outcome).__name__ for outcome in pair) == ["Conflict", "Order"]
    assert len(await first.list_certificates(limit=1000)) == RACES


async def test_a_nonce_is_accepted_once_across_replicas(replicas):
    """RFC 8555 6.5: of two replicas consuming one nonce at once, exactly one gets it."""
    first, second = replicas
    nonces = [f"nonce-{i}" for i in range(RACES * 5)]
    await first.add_nonces(nonces, T0 + timedelta(hours=1))
    answers = await asyncio.gather(*(
        store.consume_nonce(nonce, T0) for nonce in nonces for store in (first, second)
    ))
    assert [a + b for a, b in zip(answers[::2], answers[1::2], strict=True)] == [1] * len(nonces)


async def test_an_expired_nonce_is_refused_and_forgotten(replicas):
    first, second = replicas
    await first.add_nonce("old", T0)
    assert not await second.consume_nonce("old", T0)
    await first.add_nonce("old", T0 + timedelta(seconds=1))  # it was deleted
    with pytest.raises(Conflict):
        await second.add_nonce("old", T0)


async def test_one_replica_holds_a_lease_until_it_expires_or_is_released(replicas):
    """Of many replicas asking at once, one gets the lease; the others get it only
    once it expires (on the database's clock) or its holder releases it."""
    first, second = replicas
    ttl = timedelta(seconds=30)
    asks = await asyncio.gather(*(
        store.hold_lease("background", f"{name}-{i}", ttl)
        for i in range(RACES) for store, name in ((first, "first"), (second, "second"))
    ))
    assert sum(answer is not None for answer in asks) == 1
    holder = next(f"{'first' if k % 2 == 0 else 'second'}-{k // 2}"
                  for k, answer in enumerate(asks) if answer is not None)
    renewed = await second.hold_lease("background", holder, ttl)
    assert renewed is not None and renewed >= next(a for a in asks if a is not None)
    assert await first.hold_lease("background", "someone-else", ttl) is None
    await first.release_lease("background", "someone-else")  # not the holder: nothing
    assert await first.hold_lease("background", "someone-else", ttl) is None
    await second.release_lease("background", holder)
    assert await first.hold_lease("background", "someone-else", ttl) is not None


async def test_an_expired_lease_passes_to_another_holder(replicas):
    first, second = replicas
    assert await first.hold_lease("sweeper", "dead", timedelta(milliseconds=50)) is not None
    assert await second.hold_lease("sweeper", "survivor", timedelta(seconds=5)) is None
    await asyncio.sleep(0.1)
    assert await second.hold_lease("sweeper", "survivor", timedelta(seconds=5)) is not None
    assert await first.hold_lease("sweeper", "dead", timedelta(seconds=5)) is None
