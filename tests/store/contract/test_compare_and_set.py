"""Every write is a compare-and-set (``base.py``): of racers through two stores on one
database (two replicas), exactly one wins and every other one gets ``Conflict``: not
another error, not a second win, and not a silent success that changed nothing.

One case per write method of ``WriteStore`` and ``NonceStore``; inserts race on the id
or the key that must stay unique. Four racers, two through each store, gathered at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest

from acme_ca.domain.models import (
    AccountStatus,
    AuthorizationStatus,
    ChallengeStatus,
    OrderStatus,
)
from acme_ca.errors import Conflict
from acme_ca.store import Store
from tests.store.conftest import (
    ACCOUNT,
    DER,
    T0,
    make_account,
    make_authorization,
    make_order,
    make_record,
    reservation,
    validating,
)

RACERS = 4


async def nothing(store: Store) -> None:
    """No setup."""


async def reserved(store: Store) -> None:
    await store.reserve_serial(make_record("0a"))


async def issued(store: Store) -> None:
    await reserved(store)
    await store.store_certificate("0a", DER)


async def pending_order(store: Store) -> None:
    authz = make_authorization("az")
    await store.create_order(make_order("o", [authz]), [authz])


async def ready_order(store: Store) -> None:
    await store.create_order(make_order("o", [], status=OrderStatus.READY), [])


async def issuing(store: Store) -> None:
    """Order o processing, its serial 0a reserved."""
    await ready_order(store)
    await store.start_issuance("o", reservation("0a", "o"))


async def signed(store: Store) -> None:
    """Order o processing, its certificate 0a stored (the order not yet valid)."""
    await issuing(store)
    await store.store_certificate("0a", DER)


async def validation_in_flight(store: Store) -> None:
    await pending_order(store)
    await validating(store, "az-http-01")


@dataclass(frozen=True)
class Case:
    setup: Callable[[Store], Awaitable[None]]
    call: Callable[[Store, int], Awaitable[object]]  # racer n through this store


CASES = {
    "reserve_serial": Case(nothing, lambda s, n: s.reserve_serial(
        make_record("0a", order_id=f"order-{n}"))),
    "store_certificate": Case(reserved, lambda s, n: s.store_certificate("0a", bytes([n]))),
    "revoke_certificate": Case(issued, lambda s, n: s.revoke_certificate("0a", n, T0)),
    "create_account": Case(nothing, lambda s, n: s.create_account(
        make_account(f"acct-new-{n}", thumbprint="thumb-new"))),
    "update_account": Case(nothing, lambda s, n: s.update_account(
        ACCOUNT, expected_status=AccountStatus.VALID, status=AccountStatus.DEACTIVATED)),
    "change_account_key": Case(nothing, lambda s, n: s.change_account_key(
        ACCOUNT, old_thumbprint="thumb-acct-1", jwk="{}", thumbprint=f"thumb-new-{n}")),
    "create_order": Case(nothing, lambda s, n: s.create_order(
        make_order("o", [make_authorization(f"az-{n}")]), [make_authorization(f"az-{n}")])),
    "update_order_status": Case(ready_order, lambda s, n: s.update_order_status(
        "o", expected=OrderStatus.READY, status=OrderStatus.PROCESSING)),
    "start_issuance": Case(ready_order, lambda s, n: s.start_issuance(
        "o", reservation(f"0{n + 1}", "o"))),
    "finish_order": Case(issuing, lambda s, n: s.finish_order("o", "0a", DER)),
    "complete_order": Case(signed, lambda s, n: s.complete_order("o", "0a")),
    "update_authorization_status": Case(pending_order, lambda s, n: s.update_authorization_status(
        "az", expected=AuthorizationStatus.PENDING, status=AuthorizationStatus.DEACTIVATED)),
    "update_challenge": Case(pending_order, lambda s, n: s.update_challenge(
        "az-http-01", expected=ChallengeStatus.PENDING, status=ChallengeStatus.PROCESSING,
        processing_since=T0)),
    "record_validation": Case(validation_in_flight, lambda s, n: s.record_validation(
        "az-http-01", valid=n % 2 == 0, error=None if n % 2 == 0 else "{}", validated_at=T0,
        authorization_expires=None)),
    "add_nonce": Case(nothing, lambda s, n: s.add_nonce("nonce", T0 + timedelta(minutes=5))),
}


@pytest.mark.parametrize("method", CASES)
async def test_of_racers_through_two_stores_one_wins_and_the_others_get_conflict(
    store: Store, other: Store, method: str
):
    case = CASES[method]
    await case.setup(store)
    results = await asyncio.gather(
        *(case.call(store if n % 2 == 0 else other, n) for n in range(RACERS)),
        return_exceptions=True)
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(losers) == RACERS - 1, results
    assert all(type(r) is Conflict for r in losers), results
