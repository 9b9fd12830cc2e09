"""The state rules of RFC 8555 7.1.6 (acme_ca/domain/states.py), as pure functions of
an order, its authorizations and the time."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acme_ca.domain.models import (
    Authorization,
    AuthorizationStatus,
    Challenge,
    ChallengeStatus,
    Identifier,
    Order,
    OrderStatus,
)
from acme_ca.domain.states import (
    OrderChange,
    authorization_status,
    expiry_problem,
    order_change,
    settled,
    unusable_error,
)

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
HOUR = timedelta(hours=1)
FAILED = '{"type":"urn:ietf:params:acme:error:incorrectResponse","detail":"wrong token"}'


def authz(authz_id: str, status: AuthorizationStatus = AuthorizationStatus.PENDING, *,
          expires: datetime = NOW + HOUR, error: str | None = None) -> Authorization:
    """An authorization for ``<authz_id>.example.test``; ``error`` makes its challenge
    INVALID with that problem."""
    challenge = Challenge(f"{authz_id}-http", authz_id, "http-01", "token")
    if error is not None:
        challenge = replace(challenge, status=ChallengeStatus.INVALID, error=error)
    return Authorization(
        id=authz_id, account_id="acct", identifier=Identifier("dns", f"{authz_id}.example.test"),
        status=status, expires=expires, created_at=NOW - HOUR, challenges=(challenge,))


def order(*authorizations: Authorization, status: OrderStatus = OrderStatus.PENDING,
          **changes: object) -> Order:
    made = Order(
        id="order", account_id="acct", status=status,
        identifiers=tuple(a.identifier for a in authorizations),
        authorization_ids=tuple(a.id for a in authorizations),
        expires=NOW + HOUR, created_at=NOW - HOUR)
    return replace(made, **changes)  # type: ignore[arg-type]


def problem_type(document: str | None) -> str:
    assert document is not None
    return json.loads(document)["type"].rsplit(":", 1)[1]


VALID, PENDING = AuthorizationStatus.VALID, AuthorizationStatus.PENDING
FINAL = [AuthorizationStatus.INVALID, AuthorizationStatus.DEACTIVATED,
         AuthorizationStatus.REVOKED, AuthorizationStatus.EXPIRED]


# --- challenges and authorizations -------------------------------------------------------


def test_a_validation_settles_the_challenge_and_its_authorization():
    """7.1.6: a challenge valid makes its authorization valid; a client that fails a
    challenge makes the authorization invalid (the server does not retry it)."""
    assert (settled(True).challenge, settled(True).authorization) == (
        ChallengeStatus.VALID, AuthorizationStatus.VALID)
    assert (settled(False).challenge, settled(False).authorization) == (
        ChallengeStatus.INVALID, AuthorizationStatus.INVALID)


@pytest.mark.parametrize("status", [PENDING, VALID])
def test_a_pending_or_valid_authorization_is_expired_from_its_expiry_on(status):
    """7.1.6: "Time after expires" moves pending and valid authorizations to expired;
    the row need not be written for a client to see it."""
    fresh = authz("a", status, expires=NOW + timedelta(microseconds=1))
    assert authorization_status(fresh, NOW) is status
    assert authorization_status(replace(fresh, expires=NOW), NOW) is AuthorizationStatus.EXPIRED


@pytest.mark.parametrize("status", FINAL)
def test_a_final_authorization_keeps_its_status_after_its_expiry(status):
    """invalid, deactivated, revoked and expired are final (7.1.6): time changes nothing."""
    assert authorization_status(authz("a", status, expires=NOW - HOUR), NOW) is status


def test_a_usable_authorization_gives_no_error():
    assert unusable_error(authz("a", PENDING), NOW) is None
    assert unusable_error(authz("a", VALID), NOW) is None


def test_an_authorization_invalid_by_a_failed_challenge_passes_on_the_challenge_problem():
    """7.1.6: the order fails because the challenge failed; its error is the challenge's
    problem document, unchanged (what the client must fix)."""
    failed = authz("a", AuthorizationStatus.INVALID, error=FAILED)
    assert unusable_error(failed, NOW) == FAILED


@pytest.mark.parametrize("status", [AuthorizationStatus.INVALID, AuthorizationStatus.DEACTIVATED,
                                    AuthorizationStatus.REVOKED])
def test_an_authorization_no_longer_usable_otherwise_is_unauthorized(status):
    """7.1.6 final states other than valid; unauthorized, as Boulder's
    ra.checkOrderAuthorizations: the account is no longer authorized for the name."""
    error = unusable_error(authz("a", status), NOW)
    assert problem_type(error) == "unauthorized"
    assert json.loads(error or "")["detail"] == f"the authorization for a.example.test is {status}"


def test_an_expired_authorization_is_unauthorized_and_says_it_expired():
    error = unusable_error(authz("a", VALID, expires=NOW), NOW)
    assert problem_type(error) == "unauthorized"
    assert "expired" in json.loads(error or "")["detail"]


# --- orders --------------------------------------------------------------------------


def test_time_makes_an_order_invalid_when_it_expires_or_its_not_after_passes():
    """7.1.3 expires and notAfter; malformed, as Boulder answers a finalize of an expired
    order (RFC 8555 names no type)."""
    assert expiry_problem(order(), NOW) is None
    assert expiry_problem(order(), NOW + HOUR) is not None
    late = order(not_after=NOW)
    problem = expiry_problem(late, NOW)
    assert problem is not None and problem.type.value == "malformed"
    assert "notAfter" in problem.detail


def test_a_pending_order_becomes_ready_once_every_authorization_is_valid():
    """7.1.6: "Once all of the authorizations listed in the order object are in the
    'valid' state, the order transitions to the 'ready' state"."""
    a, b = authz("a", VALID), authz("b", PENDING)
    pending = order(a, b)
    assert order_change(pending, [a, b], NOW) is None
    assert order_change(pending, [a, replace(b, status=VALID)], NOW) == OrderChange(
        OrderStatus.READY)


def test_a_ready_order_whose_authorizations_stay_valid_does_not_change():
    a = authz("a", VALID)
    assert order_change(order(a, status=OrderStatus.READY), [a], NOW) is None


@pytest.mark.parametrize("status", [OrderStatus.PENDING, OrderStatus.READY])
def test_an_open_order_with_an_unusable_authorization_becomes_invalid(status):
    """7.1.6: the order moves to invalid when "one of its authorizations enters a final
    state other than 'valid'"; its error says why."""
    a, b = authz("a", VALID), authz("b", AuthorizationStatus.DEACTIVATED)
    change = order_change(order(a, b, status=status), [a, b], NOW)
    assert change is not None and change.status is OrderStatus.INVALID
    assert problem_type(change.error) == "unauthorized"


def test_an_order_failed_by_a_challenge_carries_the_challenge_problem():
    a, b = authz("a", PENDING), authz("b", AuthorizationStatus.INVALID, error=FAILED)
    assert order_change(order(a, b), [a, b], NOW) == OrderChange(OrderStatus.INVALID, FAILED)


def test_an_authorization_that_expired_makes_the_order_invalid_even_if_its_row_says_valid():
    a = authz("a", VALID, expires=NOW)
    change = order_change(order(a, status=OrderStatus.READY), [a], NOW)
    assert change is not None and change.status is OrderStatus.INVALID
    assert "expired" in json.loads(change.error or "")["detail"]
    # and a pending order whose only authorization expired is not made ready by it
    change = order_change(order(a), [a], NOW)
    assert change is not None and change.status is OrderStatus.INVALID


def test_an_expired_order_is_invalid_whatever_its_authorizations():
    """7.1.6: "The order also moves to the 'invalid' state if it expires"; its own expiry
    is the reason given, before any authorization's."""
    a, b = authz("a", VALID), authz("b", AuthorizationStatus.REVOKED)
    change = order_change(order(a, b, expires=NOW), [a, b], NOW)
    assert change is not None and change.status is OrderStatus.INVALID
    assert problem_type(change.error) == "malformed"


@pytest.mark.parametrize("status", [OrderStatus.PROCESSING, OrderStatus.VALID,
                                    OrderStatus.INVALID])
def test_an_order_past_ready_changes_only_through_issuance(status):
    """processing -> valid | invalid is issuance's; a valid or invalid order is final."""
    a = authz("a", AuthorizationStatus.REVOKED)
    assert order_change(order(a, status=status, expires=NOW - HOUR), [a], NOW) is None


def test_the_reason_given_is_the_first_unusable_authorization_the_order_lists():
    a = authz("a", AuthorizationStatus.INVALID, error=FAILED)
    b = authz("b", AuthorizationStatus.DEACTIVATED)
    assert order_change(order(b, a), [a, b], NOW) == order_change(order(b, a), [b, a], NOW)
    change = order_change(order(b, a), [a, b], NOW)
    assert change is not None and problem_type(change.error) == "unauthorized"
    assert order_change(order(a, b), [b, a], NOW) == OrderChange(OrderStatus.INVALID, FAILED)


def test_every_authorization_the_order_lists_must_be_given():
    a, b = authz("a", VALID), authz("b", VALID)
    with pytest.raises(ValueError, match="'b'"):
        order_change(order(a, b), [a], NOW)
    other = authz("other", AuthorizationStatus.REVOKED)  # not listed: no effect
    assert order_change(order(a, b), [a, b, other], NOW) == OrderChange(OrderStatus.READY)


STATUSES = st.sampled_from(list(AuthorizationStatus))


@given(statuses=st.lists(STATUSES, min_size=1, max_size=5),
       order_status=st.sampled_from([OrderStatus.PENDING, OrderStatus.READY]),
       order_expired=st.booleans(), seed=st.randoms(use_true_random=False))
def test_the_change_follows_from_the_listed_authorizations_alone(
    statuses, order_status, order_expired, seed
):
    """Whatever the statuses: invalid exactly when the order expired or an authorization
    is not pending or valid; ready exactly when a pending order's are all valid; and the
    order in which the authorizations are given does not matter."""
    listed = [authz(f"a{n}", status) for n, status in enumerate(statuses)]
    made = order(*listed, status=order_status,
                 expires=NOW - HOUR if order_expired else NOW + HOUR)
    shuffled = list(listed)
    seed.shuffle(shuffled)
    change = order_change(made, shuffled, NOW)
    assert change == order_change(made, listed, NOW)
    unusable = order_expired or any(s not in (PENDING, VALID) for s in statuses)
    if unusable:
        assert change is not None and change.status is OrderStatus.INVALID and change.error
    elif order_status is OrderStatus.PENDING and all(s is VALID for s in statuses):
        assert change == OrderChange(OrderStatus.READY)
    else:
        assert change is None
