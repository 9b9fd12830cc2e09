"""What every backend checks the same way: preconditions of the ``Store`` methods, and
the explanation of a compare-and-set that changed nothing.

A backend runs its guarded UPDATE; when no row changed, it reads the row's current
state and hands it to ``refused``, which says ``NotFound`` (no row) or ``Conflict``
(a row in another state) in the one wording every backend shares. A certificate that
``finish_order`` or ``complete_order`` could not use is explained by
``certificate_refused``, from its status and the order it is for. An order that
``replaces`` a certificate (RFC 9773 5) is refused by ``already_replaced``, unless the
order in its way has lapsed (``lapsed_replacement``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal, overload

from acme_ca.domain import states
from acme_ca.domain.models import (
    Authorization,
    CertificateRecord,
    CertificateStatus,
    CrlRecord,
    EabKey,
    Order,
)
from acme_ca.errors import AlreadyReplaced, CeilingReached, Conflict, NotFound, StoreError

# How each kind of row is named in a message, by its id.
_NOT_FOUND = {
    "certificate": "no certificate with serial {id}",
    "account": "no account {id}",
    "order": "no order {id}",
    "authorization": "no authorization {id}",
    "challenge": "no challenge {id}",
    "eab key": "no external account key {id}",
}


def not_found(kind: str, row_id: str) -> NotFound:
    """``NotFound`` for the row ``kind`` ("order", "certificate", ...) ``row_id``."""
    return NotFound(_NOT_FOUND[kind].format(id=row_id))


def refused(kind: str, row_id: str, found: str | None, expected: str) -> StoreError:
    """Why a compare-and-set from ``expected`` changed nothing: ``NotFound`` if the row
    does not exist (``found`` None), else ``Conflict`` naming the state it is in."""
    if found is None:
        return not_found(kind, row_id)
    if kind == "certificate" and found == CertificateStatus.REVOKED.value:
        return Conflict(f"certificate {row_id} is already revoked")
    return Conflict(f"{kind} {row_id} is {found}, not {expected}")


# Its status and the order it is for: a certificate row as the explanations read it.
CertificateState = tuple[str, str | None]


@overload
def certificate_refused(serial: str, found: CertificateState | None, order_id: str,
                        *, stored: Literal[False]) -> StoreError: ...
@overload
def certificate_refused(serial: str, found: CertificateState | None, order_id: str,
                        *, stored: Literal[True]) -> StoreError | None: ...
def certificate_refused(
    serial: str, found: CertificateState | None, order_id: str, *, stored: bool
) -> StoreError | None:
    """Why the certificate ``serial`` (``found``: its status and the order it is for, or
    None if there is none) cannot serve order ``order_id``. In ``finish_order``
    (``stored`` False) it must be RESERVED for that order, and the refusal is always
    its fault; in ``complete_order`` (``stored`` True) it must be stored for that order,
    and None says it is: the order is to blame (``refused("order", ...)``)."""
    if found is None:
        return not_found("certificate", serial)
    status, owner = found
    reserved = status == CertificateStatus.RESERVED.value
    if not stored:
        if reserved:
            return Conflict(f"certificate {serial} was reserved for order {owner}, "
                            f"not {order_id}")
        return refused("certificate", serial, status, "reserved")
    if owner != order_id:
        return Conflict(f"certificate {serial} belongs to order {owner}, not {order_id}")
    if reserved:
        return Conflict(f"certificate {serial} is reserved, not stored")
    return None


def check_limit(limit: int) -> None:
    """A page size: at least 1 (``ValueError`` otherwise)."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")


def check_reservation(record: CertificateRecord, order_id: str | None = None) -> None:
    """A reservation is a RESERVED record without DER; with ``order_id``, one for that
    order (``ValueError`` otherwise: a programming error)."""
    if record.status is not CertificateStatus.RESERVED or record.der is not None:
        raise ValueError("a reservation is a RESERVED record without DER")
    if order_id is not None and record.order_id != order_id:
        raise ValueError(f"the reserved serial is for order {record.order_id}, not {order_id}")


def check_pending_ceiling(pending: int, adding: int, ceiling: int,
                          first_expires: datetime | None) -> None:
    """``CeilingReached`` if ``pending`` authorizations and ``adding`` more are over
    ``ceiling`` (create_order's ``pending_ceiling``)."""
    if pending + adding > ceiling:
        raise CeilingReached(f"{pending} authorizations pending and {adding} more are "
                             f"over the ceiling of {ceiling}", pending, first_expires)


def check_new_order(order: Order, new_authorizations: Sequence[Authorization]) -> None:
    """Programming errors the schema would not catch, or would catch less clearly."""
    listed = order.authorization_ids
    if len(set(listed)) != len(listed):
        raise ValueError(f"order {order.id} lists an authorization twice")
    for authz in new_authorizations:
        if authz.id not in listed:
            raise ValueError(f"new authorization {authz.id} is not listed by order {order.id}")
        if authz.account_id != order.account_id:
            raise ValueError(f"new authorization {authz.id} belongs to another account")
        for challenge in authz.challenges:
            if challenge.authorization_id != authz.id:
                raise ValueError(f"challenge {challenge.id} names authorization "
                                 f"{challenge.authorization_id}, not {authz.id}")


def eab_key_refused(kid: str, found: EabKey | None, at: datetime) -> StoreError | None:
    """Why ``create_account`` may not bind the External Account Binding key ``kid``
    (``found``: the key, with the account it bound, read in the binding's transaction)
    at ``at``: ``NotFound`` if there is none, ``Conflict`` if it is already bound,
    revoked, or expired by then; None if it may bind."""
    if found is None:
        return not_found("eab key", kid)
    if found.account_id is not None:
        return Conflict(f"external account key {kid} is already bound to account "
                        f"{found.account_id}")
    if found.revoked_at is not None:
        return Conflict(f"external account key {kid} was revoked")
    if found.expires is not None and found.expires <= at:
        return Conflict(f"external account key {kid} expired")
    return None


def already_replaced(serial: str, by: str) -> AlreadyReplaced:
    """``create_order`` refused: the order ``by`` replaced, or is replacing, ``serial``."""
    return AlreadyReplaced(f"certificate {serial} is already replaced by order {by}")


def lapsed_replacement(older: Order, now: datetime) -> str | None:
    """Inside ``create_order``, for an order ``older`` (not INVALID) that replaces the
    certificate a new order created at ``now`` replaces too: the error document to move
    it to INVALID with, if it is open but past its ``expires`` (or its notAfter), as
    ``expire_orders`` would move it (``domain.states.expiry_problem``); None if it still
    stands in the way (``already_replaced``)."""
    if older.status not in states.OPEN_ORDER:
        return None
    problem = states.expiry_problem(older, now)
    return None if problem is None else problem.dumps()


def crl_number_refused(crl: CrlRecord, stored: int) -> Conflict:
    """``publish_crl`` refused: its issuer's published CRL has number ``stored``, and a
    CRL number only grows (RFC 5280 5.2.3)."""
    return Conflict(f"CRL number {crl.number} for issuer {crl.issuer} is not greater "
                    f"than the published one's ({stored})")


def check_markable(serial: str, found: CertificateRecord | None) -> CertificateRecord:
    """``mark_renew_early``'s answer, from the record read after its update: the record;
    ``NotFound`` if there is none, ``Conflict`` if it was only reserved, never signed."""
    if found is None:
        raise not_found("certificate", serial)
    if found.status is CertificateStatus.RESERVED:
        raise Conflict(f"certificate {serial} is reserved, never signed: nothing to renew")
    return found
