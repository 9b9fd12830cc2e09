"""What the processes sharing one SQLite file share besides the data (migration 0005):
when challenges started processing, leases, and the order rule applied inside
record_validation however the validations interleave."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from acme_ca.domain.models import ChallengeStatus, OrderStatus
from acme_ca.store import SqliteStore
from tests.store.conftest import T0, make_authorization, make_order

SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)


async def four_challenges(store: SqliteStore) -> list[str]:
    authorizations = [make_authorization(f"az-{n}", f"n{n}.example.test") for n in range(4)]
    await store.create_order(make_order("o", authorizations), authorizations)
    return [authz.challenges[0].id for authz in authorizations]


async def test_processing_challenges_started_before_a_moment_oldest_first(
    acme_store: SqliteStore,
):
    """The validations a stopped process left behind: processing since ``started_before``
    or earlier; one set processing without a time counts as the oldest."""
    old, late, early, pending = await four_challenges(acme_store)
    for challenge_id, since in ((old, None), (late, T0 + 2 * SECOND), (early, T0 + SECOND)):
        await acme_store.update_challenge(challenge_id, expected=ChallengeStatus.PENDING,
                                          status=ChallengeStatus.PROCESSING,
                                          processing_since=since)

    async def ids(started_before: datetime, limit: int = 10) -> list[str]:
        found = await acme_store.processing_challenges(started_before, limit=limit)
        return [challenge.id for challenge in found]

    assert await ids(T0) == [old]
    assert await ids(T0 + SECOND) == [old, early]
    assert await ids(T0 + MINUTE) == [old, early, late]
    assert await ids(T0 + MINUTE, limit=2) == [old, early]
    await acme_store.record_validation(early, valid=True, error=None, validated_at=T0 + MINUTE,
                                       authorization_expires=None)
    assert await ids(T0 + MINUTE) == [old, late]
    assert pending not in await ids(datetime.max.replace(tzinfo=UTC))
    with pytest.raises(ValueError, match="limit"):
        await ids(T0, limit=0)


async def test_two_authorizations_of_one_order_validated_at_once_leave_it_ready(
    acme_store: SqliteStore, second_store: SqliteStore
):
    """RFC 8555 7.1.6, with the last two validations of an order recorded at the same
    moment by two processes: whichever commits second sees the other's authorization
    valid, so the order is ready."""
    for attempt in range(10):
        authorizations = [make_authorization(f"az-{attempt}-{n}", f"n{n}.example.test")
                          for n in range(2)]
        order = make_order(f"o-{attempt}", authorizations)
        await acme_store.create_order(order, authorizations)
        challenges = [authz.challenges[0].id for authz in authorizations]
        for challenge_id in challenges:
            await acme_store.update_challenge(challenge_id, expected=ChallengeStatus.PENDING,
                                              status=ChallengeStatus.PROCESSING)
        await asyncio.gather(*(
            store.record_validation(challenge_id, valid=True, error=None, validated_at=T0,
                                    authorization_expires=None)
            for store, challenge_id in zip((acme_store, second_store), challenges, strict=True)
        ))
        assert (await acme_store.get_order(order.id)).status is OrderStatus.READY


async def test_a_pending_order_is_made_invalid_by_another_authorization_that_expired(
    acme_store: SqliteStore,
):
    """record_validation applies the whole rule of 7.1.6 (domain/states.py) to the
    pending orders listing the authorization: one of them with another authorization
    already expired becomes invalid, whose error says so."""
    fresh = make_authorization("az-fresh", "fresh.example.test")
    stale = make_authorization("az-stale", "stale.example.test", expires=T0 + SECOND)
    await acme_store.create_order(make_order("o", [fresh, stale]), [fresh, stale])
    await acme_store.update_challenge(fresh.challenges[0].id, expected=ChallengeStatus.PENDING,
                                      status=ChallengeStatus.PROCESSING)
    await acme_store.record_validation(fresh.challenges[0].id, valid=True, error=None,
                                       validated_at=T0 + MINUTE, authorization_expires=None)
    order = await acme_store.get_order("o")
    assert order.status is OrderStatus.INVALID
    assert order.error is not None and "stale.example.test expired" in order.error


# --- leases --------------------------------------------------------------------------


async def test_a_lease_has_one_holder_until_it_expires_or_is_released(
    acme_store: SqliteStore, second_store: SqliteStore
):
    before = datetime.now(UTC)
    expires = await acme_store.hold_lease("background", "worker-1", MINUTE)
    assert expires is not None and before + MINUTE <= expires <= datetime.now(UTC) + MINUTE
    assert await second_store.hold_lease("background", "worker-2", MINUTE) is None
    assert await second_store.hold_lease("other-work", "worker-2", MINUTE) is not None
    renewed = await second_store.hold_lease("background", "worker-1", 2 * MINUTE)  # its holder
    assert renewed is not None and renewed > expires
    await second_store.release_lease("background", "worker-2")  # not its holder: nothing
    assert await second_store.hold_lease("background", "worker-2", MINUTE) is None
    await acme_store.release_lease("background", "worker-1")
    assert await second_store.hold_lease("background", "worker-2", MINUTE) is not None


async def test_an_expired_lease_passes_to_the_next_that_asks(
    acme_store: SqliteStore, second_store: SqliteStore
):
    assert await acme_store.hold_lease("background", "worker-1", timedelta(milliseconds=1))
    await asyncio.sleep(0.01)
    assert await second_store.hold_lease("background", "worker-2", MINUTE) is not None
    assert await acme_store.hold_lease("background", "worker-1", MINUTE) is None


async def test_of_racing_holders_exactly_one_gets_the_lease(
    acme_store: SqliteStore, second_store: SqliteStore
):
    results = await asyncio.gather(*(
        store.hold_lease("background", f"worker-{n}", MINUTE)
        for n, store in enumerate((acme_store, second_store) * 4)
    ))
    assert sum(result is not None for result in results) == 1, results
