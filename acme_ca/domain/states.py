"""The state rules of RFC 8555 7.1.6, in one place: what status follows for an order or
an authorization, given what it is made of and the time.

Every backend applies them inside the transaction that changes what they depend on
(``Store.record_validation``), and the authority applies them when it reads an order
(time passes without any write). The SQL of a backend keeps only compare-and-set
guards: it never decides which status comes next.

    authorization: pending --(a challenge valid)--> valid --(expires)--> expired
                      |  (a challenge invalid) --> invalid
    order: pending --(every authorization valid)--> ready --> processing --> valid
              |  an authorization unusable, the order expired: invalid

A problem is made as data (an ``AcmeProblem`` with its type) and kept as the document
it becomes; a failed challenge's document passes to its orders unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from acme_ca.domain.models import (
    Authorization,
    AuthorizationStatus,
    ChallengeStatus,
    Order,
    OrderStatus,
)
from acme_ca.domain.problems import AcmeProblem, malformed, unauthorized

# An order may still become ready (or be finalized) only in these states.
OPEN_ORDER = frozenset({OrderStatus.PENDING, OrderStatus.READY})
# An order may rely on an authorization only in these states (and before it expires).
USABLE_AUTHORIZATION = frozenset({AuthorizationStatus.PENDING, AuthorizationStatus.VALID})


@dataclass(frozen=True, slots=True)
class Settled:
    """What one validation result makes of a challenge and its authorization."""

    challenge: ChallengeStatus
    authorization: AuthorizationStatus


def settled(valid: bool) -> Settled:
    """A validated challenge makes its authorization valid, a failed one invalid
    (7.1.6: the server does not retry a challenge; the client makes a new order)."""
    if valid:
        return Settled(ChallengeStatus.VALID, AuthorizationStatus.VALID)
    return Settled(ChallengeStatus.INVALID, AuthorizationStatus.INVALID)


def authorization_status(authz: Authorization, now: datetime) -> AuthorizationStatus:
    """The status a client sees: a pending or valid authorization past ``expires`` is
    expired (7.1.6), whatever the row says."""
    if authz.status in USABLE_AUTHORIZATION and authz.expires <= now:
        return AuthorizationStatus.EXPIRED
    return authz.status


@dataclass(frozen=True, slots=True)
class OrderChange:
    """The status an open order moves to, and an invalid order's error: the problem
    document the store keeps (made from an ``AcmeProblem``, or a failed challenge's
    document as it was stored)."""

    status: OrderStatus
    error: str | None = None


def expiry_problem(order: Order, now: datetime) -> AcmeProblem | None:
    """Why time has made ``order`` invalid, or None: it expired, or the notAfter its
    client asked for (7.1.3) has passed, so no certificate can honour it.

    malformed, as Boulder answers a finalize of an expired order (wfe2 FinalizeOrder:
    "Order ... is expired"); RFC 8555 names no type for it.
    """
    if order.expires <= now:
        return malformed("the order expired")
    if order.not_after is not None and order.not_after <= now:
        return malformed("the order's requested notAfter has passed")
    return None


def unusable_error(authz: Authorization, now: datetime) -> str | None:
    """Why an order can no longer rely on this authorization (a problem document), or
    None.

    unauthorized, whatever the reason (invalid, deactivated, revoked, expired), as
    Boulder's ra.checkOrderAuthorizations says; an authorization made invalid by a
    failed challenge gives that challenge's problem instead (what the client must fix).
    """
    status = authorization_status(authz, now)
    if status in USABLE_AUTHORIZATION:
        return None
    if status is AuthorizationStatus.INVALID:
        failed = next((c for c in authz.challenges
                       if c.status is ChallengeStatus.INVALID and c.error), None)
        if failed is not None:
            return failed.error
    name = authz.identifier.value
    if status is AuthorizationStatus.EXPIRED:
        return unauthorized(f"the authorization for {name} expired").dumps()
    return unauthorized(f"the authorization for {name} is {status.value}").dumps()


def order_change(
    order: Order, authorizations: Sequence[Authorization], now: datetime
) -> OrderChange | None:
    """What ``order`` becomes given its authorizations (all of them, in any order) at
    ``now``, or None if it stays as it is.

    Only an open order (pending or ready) changes here: it becomes invalid if it
    expired or one of its authorizations is unusable (the first one's problem), and a
    pending order becomes ready once every authorization is valid. Processing, valid
    and invalid orders change only through issuance.
    """
    if order.status not in OPEN_ORDER:
        return None
    problem = expiry_problem(order, now)
    if problem is not None:
        return OrderChange(OrderStatus.INVALID, problem.dumps())
    by_id = {authz.id: authz for authz in authorizations}
    missing = [authz_id for authz_id in order.authorization_ids if authz_id not in by_id]
    if missing:
        raise ValueError(f"order {order.id}: authorizations {missing} were not given")
    listed = [by_id[authz_id] for authz_id in order.authorization_ids]
    for authz in listed:
        error = unusable_error(authz, now)
        if error is not None:
            return OrderChange(OrderStatus.INVALID, error)
    if order.status is OrderStatus.PENDING and all(
        authz.status is AuthorizationStatus.VALID for authz in listed
    ):
        return OrderChange(OrderStatus.READY)
    return None
