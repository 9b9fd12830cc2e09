"""Authorizations and challenges (RFC 8555 7.1.4, 7.1.5, 7.5): reuse, revocation's
lookup, compare-and-set, and the challenges whose validation is in flight. What a
validation result changes is in ``test_validation.py``."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from acme_ca.domain.models import AuthorizationStatus, Challenge, ChallengeStatus, Identifier
from acme_ca.errors import Conflict, NotFound
from acme_ca.store import Store
from tests.store.conftest import (
    ACCOUNT,
    OTHER,
    T0,
    make_authorization,
    make_order,
    valid_authorization,
    validating,
)


async def test_reusable_authorization_is_the_latest_expiring_valid_one_that_fits(store: Store):
    """RFC 8555 7.1.3/7.4: a server may reuse a valid authorization in a new order."""
    www, later = Identifier("dns", "www.example.test"), T0 + timedelta(days=2)
    await valid_authorization(store, "az-late", www.value, expires=T0 + timedelta(days=30))
    await valid_authorization(store, "az-soon", www.value, expires=T0 + timedelta(days=3))
    await valid_authorization(store, "az-old", www.value, expires=T0 + timedelta(days=1))
    await valid_authorization(store, "az-wild", www.value, wildcard=True,
                              expires=T0 + timedelta(days=60))
    await valid_authorization(store, "az-other", www.value, account_id=OTHER,
                              expires=T0 + timedelta(days=90))
    pending = make_authorization("az-pending", www.value, expires=T0 + timedelta(days=99))
    await store.create_order(make_order("o", [pending]), [pending])

    found = await store.find_reusable_authorization(ACCOUNT, www, False, later)
    assert found is not None and found.id == "az-late"
    assert found.challenges == (await store.get_authorization("az-late")).challenges
    wild = await store.find_reusable_authorization(ACCOUNT, www, True, later)
    assert wild is not None and wild.id == "az-wild"
    theirs = await store.find_reusable_authorization(OTHER, www, False, later)
    assert theirs is not None and theirs.id == "az-other"
    after_30_days = T0 + timedelta(days=30)  # expires must be strictly later
    assert await store.find_reusable_authorization(ACCOUNT, www, False, after_30_days) is None
    ip = Identifier("ip", www.value)
    assert await store.find_reusable_authorization(ACCOUNT, ip, False, later) is None
    assert await store.find_reusable_authorization(
        ACCOUNT, Identifier("dns", "example.test"), False, later) is None


async def test_valid_authorizations_for_a_set_of_names(store: Store):
    """RFC 8555 7.6: revocation by an account holding authorizations for every name."""
    await valid_authorization(store, "az-www", "www.example.test")
    await valid_authorization(store, "az-api", "api.example.test")
    await valid_authorization(store, "az-gone", "old.example.test",
                              expires=T0 + timedelta(hours=1))
    await valid_authorization(store, "az-wild", "example.test", wildcard=True)
    await valid_authorization(store, "az-other", "mail.example.test", account_id=OTHER)
    names = [Identifier("dns", n) for n in
             ("www.example.test", "old.example.test", "mail.example.test", "*.example.test",
              "example.test")]
    found = await store.valid_authorizations(ACCOUNT, names, T0 + timedelta(hours=2))
    assert sorted(a.id for a in found) == ["az-wild", "az-www"]
    assert await store.valid_authorizations(ACCOUNT, [], T0) == []


async def test_authorization_and_challenge_compare_and_set(store: Store):
    """RFC 8555 7.5.1/7.5.2: pending -> processing once; deactivation of a pending one."""
    authz = make_authorization("az-1", types=("http-01", "dns-01"))
    await store.create_order(make_order("o", [authz]), [authz])
    started = await validating(store, "az-1-http-01")
    assert started == replace(authz.challenges[0], status=ChallengeStatus.PROCESSING)
    with pytest.raises(Conflict, match="processing, not pending"):
        await validating(store, "az-1-http-01")
    with pytest.raises(NotFound):
        await validating(store, "nothing")
    assert await store.processing_challenges(T0, limit=10) == [started]

    later = T0 + timedelta(days=30)
    moved = await store.update_authorization_status(
        "az-1", expected=AuthorizationStatus.PENDING, status=AuthorizationStatus.DEACTIVATED,
        expires=later)
    assert (moved.status, moved.expires) == (AuthorizationStatus.DEACTIVATED, later)
    assert moved.challenges[0] == started and moved == await store.get_authorization("az-1")
    with pytest.raises(Conflict, match="deactivated, not pending"):
        await store.update_authorization_status(
            "az-1", expected=AuthorizationStatus.PENDING, status=AuthorizationStatus.VALID)
    with pytest.raises(NotFound):
        await store.update_authorization_status(
            "nothing", expected=AuthorizationStatus.PENDING, status=AuthorizationStatus.VALID)
    unchanged = await store.update_authorization_status(
        "az-1", expected=AuthorizationStatus.DEACTIVATED, status=AuthorizationStatus.DEACTIVATED)
    assert unchanged.expires == later


async def test_processing_challenges_are_those_started_before_oldest_first(
    store: Store, other: Store
):
    """The validations to resume (RFC 8555 7.5.1: a challenge stays processing until it is
    validated): processing since ``started_before`` or earlier, the bound included.

    Decided here, where ``ReadStore.processing_challenges`` leaves it open: a challenge
    with no ``processing_since`` (a row from before migration 0005) is the oldest of all,
    so it comes first; a challenge no longer processing is never listed, whatever its
    ``processing_since``."""
    authorizations = [make_authorization(f"az-{n}", f"n{n}.example.test") for n in range(6)]
    await store.create_order(make_order("o", authorizations), authorizations)
    minute = timedelta(minutes=1)
    await validating(store, "az-1-http-01", T0 + 2 * minute)
    await validating(store, "az-0-http-01")  # no processing_since: an old row
    await validating(store, "az-3-http-01", T0 + minute)
    await validating(other, "az-2-http-01", T0)
    await validating(store, "az-5-http-01", T0 - minute)
    await store.record_validation("az-5-http-01", valid=True, error=None, validated_at=T0,
                                  authorization_expires=None)  # az-4 stays pending

    def ids(challenges: list[Challenge]) -> list[str]:
        assert all(c.status is ChallengeStatus.PROCESSING for c in challenges)
        return [c.authorization_id for c in challenges]

    assert ids(await other.processing_challenges(T0 + minute, limit=10)) == [
        "az-0", "az-2", "az-3"]
    assert ids(await store.processing_challenges(T0 + minute, limit=2)) == ["az-0", "az-2"]
    assert ids(await store.processing_challenges(T0 - timedelta(microseconds=1),
                                                 limit=10)) == ["az-0"]
    assert ids(await store.processing_challenges(T0 + 3 * minute, limit=10)) == [
        "az-0", "az-2", "az-3", "az-1"]
    with pytest.raises(ValueError, match="limit"):
        await store.processing_challenges(T0, limit=0)


async def test_order_authorizations_reads_every_authorization_an_order_lists(store: Store):
    """One read gives what ``states.order_change`` needs (RFC 8555 7.1.6): every
    authorization the order lists, with its challenges, reused ones included; nothing
    for an order that does not exist."""
    first, second = make_authorization("a1"), make_authorization("a2", "b.example.test")
    await store.create_order(make_order("o1", [first]), [first])
    await store.create_order(make_order("o2", [second, first]), [second])
    found = await store.order_authorizations("o2")
    assert sorted(found, key=lambda authz: authz.id) == [
        await store.get_authorization("a1"), await store.get_authorization("a2")]
    assert all(authz.challenges for authz in found)
    assert await store.order_authorizations("no-such-order") == []
    assert await store.order_authorizations("o\x00") == []
