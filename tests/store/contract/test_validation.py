"""A validation result (RFC 8555 7.1.6), recorded in one write: the challenge, its
authorization, and every pending order that lists the authorization.

The race that decides whether a backend keeps this contract: the two authorizations of
one order validated at the same moment, by two replicas. Each transaction sees the
other authorization still pending unless the backend makes them decide one after the
other; a backend that relied on a single writer (SQLite's) would leave such orders
pending for good on a database that runs them side by side.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from acme_ca.domain.models import AuthorizationStatus, ChallengeStatus, OrderStatus
from acme_ca.errors import Conflict, NotFound
from acme_ca.store import Store
from tests.store.conftest import (
    PROBLEM,
    T0,
    make_authorization,
    make_order,
    two_name_order,
    validating,
)


async def test_an_order_is_ready_when_its_last_authorization_becomes_valid(store: Store):
    """RFC 8555 7.1.6: pending -> ready once all authorizations are valid, in one write."""
    await two_name_order(store)
    lifetime = T0 + timedelta(days=30)
    challenge, authz = await store.record_validation(
        "az-a-http-01", valid=True, error=None, validated_at=T0, authorization_expires=lifetime)
    assert (challenge.status, challenge.validated_at, challenge.error) == (
        ChallengeStatus.VALID, T0, None)
    assert (authz.status, authz.expires, authz.challenges) == (
        AuthorizationStatus.VALID, lifetime, (challenge,))
    assert await store.get_authorization("az-a") == authz
    assert await store.get_challenge("az-a-http-01") == challenge
    assert (await store.get_order("order-1")).status is OrderStatus.PENDING
    assert (await store.get_order("order-2")).status is OrderStatus.READY

    await store.record_validation(
        "az-b-http-01", valid=True, error=None, validated_at=T0, authorization_expires=None)
    assert (await store.get_order("order-1")).status is OrderStatus.READY
    assert (await store.get_authorization("az-b")).expires == T0 + timedelta(days=7)
    assert await store.processing_challenges(T0 + timedelta(days=1), limit=10) == []


async def test_a_failed_validation_invalidates_the_pending_orders_with_its_error(store: Store):
    """RFC 8555 7.1.6: an invalid authorization makes its pending orders invalid.

    Only pending orders can list an authorization still pending (a ready order's are all
    valid), so whether a backend also looks at ready orders (``domain.states.order_change``
    would make one invalid) cannot be seen: the contract leaves it open."""
    await two_name_order(store)
    challenge, authz = await store.record_validation(
        "az-b-http-01", valid=False, error=PROBLEM, validated_at=T0,
        authorization_expires=None)
    assert (challenge.status, challenge.error) == (ChallengeStatus.INVALID, PROBLEM)
    assert authz.status is AuthorizationStatus.INVALID
    failed = await store.get_order("order-1")
    assert (failed.status, failed.error) == (OrderStatus.INVALID, PROBLEM)
    assert (await store.get_order("order-2")).status is OrderStatus.PENDING  # not listed


async def test_a_pending_order_is_made_invalid_by_another_authorization_that_expired(
    store: Store,
):
    """record_validation applies the whole rule of 7.1.6 (``domain.states.order_change``)
    to the pending orders listing the authorization, at ``validated_at`` (the docstring
    names no moment; both backends take that one): an order whose other authorization
    has expired by then becomes invalid, and its error says so."""
    fresh = make_authorization("az-fresh", "fresh.example.test")
    stale = make_authorization("az-stale", "stale.example.test",
                               expires=T0 + timedelta(seconds=1))
    await store.create_order(make_order("o", [fresh, stale]), [fresh, stale])
    await validating(store, fresh.challenges[0].id)
    await store.record_validation(fresh.challenges[0].id, valid=True, error=None,
                                  validated_at=T0 + timedelta(minutes=1),
                                  authorization_expires=None)
    order = await store.get_order("o")
    assert order.status is OrderStatus.INVALID
    assert order.error is not None and "stale.example.test expired" in order.error


async def test_recording_twice_is_a_conflict_and_changes_nothing(store: Store):
    """RFC 8555 7.1.6: a settled challenge or authorization is final."""
    await two_name_order(store)
    await store.record_validation(
        "az-a-http-01", valid=True, error=None, validated_at=T0, authorization_expires=None)
    before = (await store.get_authorization("az-a"), await store.get_order("order-1"))
    with pytest.raises(Conflict, match="valid, not processing"):
        await store.record_validation(
            "az-a-http-01", valid=False, error=PROBLEM, validated_at=T0 + timedelta(1),
            authorization_expires=None)
    assert (await store.get_authorization("az-a"), await store.get_order("order-1")) == before
    with pytest.raises(NotFound):
        await store.record_validation(
            "nothing", valid=True, error=None, validated_at=T0, authorization_expires=None)


async def test_a_challenge_of_a_deactivated_authorization_still_ends_with_its_result(
    store: Store,
):
    """RFC 8555 7.5.2 and 7.1.6: the client deactivated the authorization while one of
    its challenges was processing. The challenge still ends (valid, or invalid with its
    problem: a challenge ends valid or invalid, never processing for good), and the
    authorization stays deactivated, its expiry and its orders untouched."""
    await two_name_order(store)
    deactivated = await store.update_authorization_status(
        "az-b", expected=AuthorizationStatus.PENDING, status=AuthorizationStatus.DEACTIVATED)
    orders = [await store.get_order(o) for o in ("order-1", "order-2")]
    challenge, authz = await store.record_validation(
        "az-b-http-01", valid=True, error=None, validated_at=T0,
        authorization_expires=T0 + timedelta(days=30))
    assert (challenge.status, challenge.validated_at, challenge.error) == (
        ChallengeStatus.VALID, T0, None)
    assert (authz.status, authz.expires, authz.challenges) == (
        AuthorizationStatus.DEACTIVATED, deactivated.expires, (challenge,))
    assert await store.get_authorization("az-b") == authz
    assert [await store.get_order(o) for o in ("order-1", "order-2")] == orders
    assert await store.processing_challenges(T0 + timedelta(days=1), limit=10) == [
        await store.get_challenge("az-a-http-01")]

    await store.update_authorization_status(
        "az-a", expected=AuthorizationStatus.PENDING, status=AuthorizationStatus.DEACTIVATED)
    failed, authz = await store.record_validation(
        "az-a-http-01", valid=False, error=PROBLEM, validated_at=T0,
        authorization_expires=None)
    assert (failed.status, failed.error) == (ChallengeStatus.INVALID, PROBLEM)
    assert authz.status is AuthorizationStatus.DEACTIVATED
    assert [await store.get_order(o) for o in ("order-1", "order-2")] == orders
    assert await store.processing_challenges(T0 + timedelta(days=1), limit=10) == []


async def test_the_second_challenge_of_a_settled_authorization_ends_and_changes_nothing_else(
    store: Store,
):
    """RFC 8555 7.1.6: the client answered two challenges of one authorization and one
    validated first (the authorization valid, its order ready). The other still ends
    with its own result, invalid with its problem here, and leaves the authorization
    valid and the order ready; recording it again is a Conflict (it is no longer
    processing)."""
    authz = make_authorization("az", "two.example.test", types=("http-01", "dns-01"))
    await store.create_order(make_order("order", [authz]), [authz])
    for challenge in authz.challenges:
        await validating(store, challenge.id)
    lifetime = T0 + timedelta(days=30)
    _, first = await store.record_validation(
        "az-dns-01", valid=True, error=None, validated_at=T0, authorization_expires=lifetime)
    ready = await store.get_order("order")
    assert (first.status, ready.status) == (AuthorizationStatus.VALID, OrderStatus.READY)

    later = T0 + timedelta(seconds=3)
    challenge, settled = await store.record_validation(
        "az-http-01", valid=False, error=PROBLEM, validated_at=later,
        authorization_expires=None)
    assert (challenge.status, challenge.error, challenge.validated_at) == (
        ChallengeStatus.INVALID, PROBLEM, later)
    assert (settled.status, settled.expires) == (AuthorizationStatus.VALID, lifetime)
    assert {c.id: c.status for c in settled.challenges} == {
        "az-http-01": ChallengeStatus.INVALID, "az-dns-01": ChallengeStatus.VALID}
    assert await store.get_authorization("az") == settled
    assert await store.get_order("order") == ready
    with pytest.raises(Conflict, match="invalid, not processing"):
        await store.record_validation(
            "az-http-01", valid=True, error=None, validated_at=later,
            authorization_expires=None)


async def test_two_stores_recording_one_challenge_exactly_one_wins(store: Store, other: Store):
    """RFC 8555 7.1.6 with two processes validating the same challenge."""
    await two_name_order(store)
    results = await asyncio.gather(
        store.record_validation("az-a-http-01", valid=True, error=None,
                                validated_at=T0, authorization_expires=None),
        other.record_validation("az-a-http-01", valid=False, error=PROBLEM,
                                validated_at=T0, authorization_expires=None),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, tuple)]
    assert len(winners) == 1 and sum(isinstance(r, Conflict) for r in results) == 1, results
    challenge, authz = winners[0]
    assert await other.get_authorization("az-a") == authz
    assert await other.get_challenge("az-a-http-01") == challenge
    won = authz.status is AuthorizationStatus.VALID
    expected = OrderStatus.READY if won else OrderStatus.INVALID
    assert (await store.get_order("order-2")).status is expected


ORDERS = 30


async def orders_of_two(store: Store) -> None:
    """ORDERS pending orders, order-n needing az-n-a and az-n-b, whose challenges
    (az-n-a-http-01, az-n-b-http-01) are being validated."""
    for n in range(ORDERS):
        pair = [make_authorization(f"az-{n}-{side}", f"{side}{n}.example.test")
                for side in "ab"]
        await store.create_order(make_order(f"order-{n}", pair), pair)
        for authz in pair:
            await validating(store, authz.challenges[0].id)


async def test_two_authorizations_validated_at_once_through_two_stores_leave_the_order_ready(
    store: Store, other: Store
):
    """RFC 8555 7.1.6: "ready" once all authorizations are valid, even when the last two
    turn valid at the same moment on two replicas. 30 orders of two authorizations, all
    60 validations gathered at once (one store takes the first authorization of each
    order, the other the second), so that the transactions overlap."""
    await orders_of_two(store)
    results = await asyncio.gather(
        *(each.record_validation(f"az-{n}-{side}-http-01", valid=True, error=None,
                                 validated_at=T0, authorization_expires=None)
          for n in range(ORDERS) for side, each in (("a", store), ("b", other))),
        return_exceptions=True)
    assert [r for r in results if not isinstance(r, tuple)] == []
    statuses = [(await other.get_order(f"order-{n}")).status for n in range(ORDERS)]
    assert statuses == [OrderStatus.READY] * ORDERS


async def test_a_failure_beside_a_success_at_once_leaves_the_order_invalid(
    store: Store, other: Store
):
    """RFC 8555 7.1.6: one authorization failing makes its order invalid with that
    challenge's problem, whatever the other's validation did at the same moment on
    another replica (30 orders, all 60 validations gathered at once)."""
    await orders_of_two(store)
    await asyncio.gather(*(
        validation
        for n in range(ORDERS)
        for validation in (
            store.record_validation(f"az-{n}-a-http-01", valid=True, error=None,
                                    validated_at=T0, authorization_expires=None),
            other.record_validation(f"az-{n}-b-http-01", valid=False, error=PROBLEM,
                                    validated_at=T0, authorization_expires=None))))
    for n in range(ORDERS):
        order = await other.get_order(f"order-{n}")
        assert (order.status, order.error) == (OrderStatus.INVALID, PROBLEM)


async def test_a_result_without_an_error_keeps_the_error_the_challenge_has(store: Store):
    """An error recorded on a processing challenge (a failed validation attempt before
    the one that settles it, RFC 8555 8.2) stays when the result brings none, as with
    ``update_challenge`` (None: unchanged); a result's own error replaces it. Every
    backend agrees."""
    await two_name_order(store)
    earlier = '{"type":"urn:ietf:params:acme:error:connection","detail":"retrying"}'
    for challenge_id in ("az-a-http-01", "az-b-http-01"):
        await store.update_challenge(challenge_id, expected=ChallengeStatus.PROCESSING,
                                     status=ChallengeStatus.PROCESSING, error=earlier)
    valid, _ = await store.record_validation(
        "az-a-http-01", valid=True, error=None, validated_at=T0, authorization_expires=None)
    invalid, _ = await store.record_validation(
        "az-b-http-01", valid=False, error=PROBLEM, validated_at=T0, authorization_expires=None)
    assert (valid.status, valid.error, valid.validated_at) == (ChallengeStatus.VALID, earlier, T0)
    assert (invalid.status, invalid.error) == (ChallengeStatus.INVALID, PROBLEM)
    assert await store.get_challenge("az-a-http-01") == valid
