"""What the store changes: every write of the ``Store`` contract (see ``base.py``).

Every state change is a compare-and-set naming the state it expects; ``Conflict`` when
the row is in another state, ``NotFound`` when there is no row; a write happens
completely or not at all. Which state follows which is decided in ``acme_ca.domain``
(``domain/states.py``), never in SQL: the SQL keeps only the guards.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from acme_ca.domain.limits import Spend
from acme_ca.domain.models import (
    Account,
    AccountStatus,
    Authorization,
    AuthorizationStatus,
    CertificateRecord,
    Challenge,
    ChallengeStatus,
    Order,
    OrderStatus,
)


class WriteStore(Protocol):
    """Every change to certificates, accounts, orders, authorizations and challenges."""

    # --- certificates: reserved, issued, revoked; never deleted -----------------------

    async def reserve_serial(self, record: CertificateRecord) -> None:
        """Insert ``record`` as RESERVED, before the certificate is signed.

        ``record.status`` must be RESERVED and ``record.der`` None (``ValueError``
        otherwise). Raises ``Conflict`` if a row with this serial already exists,
        whatever its state.
        """

    async def store_certificate(self, serial: str, der: bytes) -> CertificateRecord:
        """Compare-and-set RESERVED -> ISSUED, attaching the signed DER.

        Returns the updated record. Raises ``NotFound`` if no row has this serial
        and ``Conflict`` if the row is not RESERVED (already stored, or revoked).
        """

    async def revoke_certificate(
        self, serial: str, reason: int, revoked_at: datetime
    ) -> CertificateRecord:
        """Compare-and-set ISSUED -> REVOKED with an RFC 5280 CRLReason code.

        Returns the updated record. Raises ``NotFound`` if no row has this serial,
        ``Conflict`` ("already revoked") if it is REVOKED, and ``Conflict`` if it
        is only RESERVED (nothing was issued, so there is nothing to revoke).
        """

    # --- accounts ---------------------------------------------------------------------

    async def create_account(self, account: Account) -> Account:
        """Insert; ``Conflict`` if an account with this key thumbprint (or this id)
        exists (the caller then looks it up: two racing newAccount calls with one key
        get one account). Returns the account as stored.

        With ``account.eab_kid``, the account binds that External Account Binding key
        in the same transaction: ``Conflict`` (and nothing written) if the key is
        already bound to an account, revoked, or expired at ``account.created_at``;
        ``NotFound`` if there is no such key."""

    async def update_account(
        self,
        account_id: str,
        *,
        expected_status: AccountStatus,
        status: AccountStatus | None = None,
        contact: Sequence[str] | None = None,
    ) -> Account:
        """Compare-and-set on status: change status and/or contact (None: unchanged).

        ``NotFound`` if absent; ``Conflict`` if the status is not ``expected_status``.
        """

    async def change_account_key(
        self, account_id: str, *, old_thumbprint: str, jwk: str, thumbprint: str
    ) -> Account:
        """Replace the key of a VALID account whose key is still ``old_thumbprint``.

        ``Conflict`` if another account already has ``thumbprint`` (RFC 8555 7.3.5)
        or if the account's key or status changed meanwhile; ``NotFound`` if absent.
        """

    # --- orders -----------------------------------------------------------------------

    async def create_order(
        self, order: Order, new_authorizations: Sequence[Authorization], *,
        pending_ceiling: int | None = None, spend: Spend | None = None,
    ) -> Order:
        """Insert the order and its new authorizations (with their challenges) at once.

        ``pending_ceiling``: the most authorizations the account may have PENDING and
        unexpired at ``order.created_at`` with the new ones (None: no ceiling); over it,
        ``CeilingReached`` and nothing is written. Counted inside the write, so that of
        concurrent orders of one account through any stores the ceiling holds.
        ``spend``: a rate limit's spend at ``order.created_at``, in the same write
        (``LimitStore.spend_limit``'s rules), checked after the ceiling; if it does not
        fit, ``LimitReached`` and nothing is written.

        ``order.replaces`` (RFC 9773 5): the serial of a certificate the order
        replaces. ``AlreadyReplaced`` (a ``Conflict``) and nothing is written when a
        valid order replaced it already (``CertificateRecord.replaced_by``) or another
        order replacing it is not invalid (an order past its ``expires`` counts as
        invalid, as ``domain.states`` judges it); concurrent orders replacing one
        certificate through any stores create one. ``NotFound`` if no certificate has
        that serial. Whose certificate it is, and whether it shares a name with the
        order, the caller checks before.

        ``order.authorization_ids`` may also name existing (reused) authorizations;
        their order is kept. ``Conflict`` if the order, an authorization or a
        challenge id already exists, and then nothing is written. ``ValueError``
        if a new authorization is not listed by the order, belongs to another
        account, or holds a challenge naming another authorization.
        """

    async def update_order_status(
        self,
        order_id: str,
        *,
        expected: OrderStatus,
        status: OrderStatus,
        error: str | None = None,
    ) -> Order:
        """Compare-and-set the order's status (and set its error document; None:
        unchanged). ``NotFound`` if absent, ``Conflict`` if not ``expected``.

        Not for VALID (``ValueError``): an order becomes valid only together with
        its certificate, through ``finish_order``.
        """

    async def start_issuance(self, order_id: str, record: CertificateRecord, *,
                             spend: Spend | None = None) -> Order:
        """In one transaction: move the order READY -> PROCESSING and reserve the serial
        of the certificate about to be signed for it (``record``: RESERVED, no DER,
        ``order_id`` this order), so the store knows the serial before it is signed;
        and ``spend`` a rate limit's spend at ``record.created_at``, if given.

        ``Conflict`` if the order is not READY, ``NotFound`` if it does not exist, then
        ``LimitReached`` if the spend does not fit; nothing is written then. A serial
        that already exists is a ``StoreError``.
        """

    async def finish_order(self, order_id: str, serial: str, der: bytes) -> Order:
        """In one transaction: store the certificate reserved under ``serial``
        (RESERVED -> ISSUED) and, if the order is still PROCESSING, move it to VALID
        pointing at it; the order comes back as it then is.

        A certificate is signed before this call, so it is stored even when the order
        is no longer PROCESSING (a sweeper ended it meanwhile): the store knows every
        certificate signed (Boulder's rule), and that order is left as it is (an
        invalid order never becomes valid) and comes back unchanged. An order that
        becomes VALID and ``replaces`` a certificate marks it replaced by this order
        (``CertificateRecord.replaced_by``), in the same transaction.
        ``Conflict`` if the serial is not RESERVED for this order
        (``CertificateRecord.order_id``); ``NotFound`` if there is no such order or
        serial; nothing is written then.
        """

    async def complete_order(self, order_id: str, serial: str) -> Order:
        """Compare-and-set the order PROCESSING -> VALID, pointing at the certificate
        already stored (ISSUED or REVOKED) under ``serial`` for this order; the
        certificate it ``replaces``, if any, is marked replaced as by ``finish_order``.

        ``Conflict`` if the order is not PROCESSING, or the certificate belongs to another
        order or is only RESERVED; ``NotFound`` if there is no such order or serial.
        """

    async def expire_orders(self, now: datetime, *, limit: int) -> int:
        """Move at most ``limit`` PENDING or READY orders whose ``expires`` is ``now`` or
        earlier to INVALID, the earliest first; how many moved.

        Each gets the error document ``domain.states.expiry_problem(order, now)`` gives,
        the problem a read of it at ``now`` would give (RFC 8555 7.1.6). Each move is a
        compare-and-set on the status the order was read in, so two stores expiring at
        once move each order once, and an order that changed meanwhile (finalized,
        settled by a validation) is left as it now is. ``ValueError`` if ``limit`` is
        not positive.
        """

    async def expire_authorizations(self, now: datetime, *, limit: int) -> int:
        """Move at most ``limit`` PENDING or VALID authorizations whose ``expires`` is
        ``now`` or earlier to EXPIRED (``domain.states.authorization_status``, RFC 8555
        7.1.6), the earliest first; how many moved.

        Each move is a compare-and-set on the status the authorization was read in, so
        two stores expiring at once move each authorization once. The orders listing it
        are left as they are (a read judges them: ``domain.states.order_change``; an
        expired order, ``expire_orders``). ``ValueError`` if ``limit`` is not positive.
        """

    # --- authorizations and challenges ------------------------------------------------

    async def update_authorization_status(
        self,
        authorization_id: str,
        *,
        expected: AuthorizationStatus,
        status: AuthorizationStatus,
        expires: datetime | None = None,
    ) -> Authorization:
        """Compare-and-set; optionally move ``expires`` (a valid authorization gets the
        reuse lifetime). ``NotFound`` if absent, ``Conflict`` if not ``expected``."""

    async def update_challenge(
        self,
        challenge_id: str,
        *,
        expected: ChallengeStatus,
        status: ChallengeStatus,
        error: str | None = None,
        validated_at: datetime | None = None,
        processing_since: datetime | None = None,
    ) -> Challenge:
        """Compare-and-set the challenge's status; only one of two racers wins.

        ``error``, ``validated_at`` and ``processing_since`` (when the validation
        started, for ``processing_challenges``) are set when given (None: unchanged).
        ``NotFound`` if absent, ``Conflict`` if not ``expected``.
        """

    async def record_validation(
        self,
        challenge_id: str,
        *,
        valid: bool,
        error: str | None,
        validated_at: datetime,
        authorization_expires: datetime | None,
    ) -> tuple[Challenge, Authorization]:
        """Record a validation result in one transaction (RFC 8555 7.1.6):

        - the challenge PROCESSING -> VALID or INVALID (with ``error``);
        - its authorization PENDING -> VALID (``expires`` moved to
          ``authorization_expires`` when given) or INVALID;
        - every PENDING order listing that authorization -> what
          ``domain.states.order_change`` makes of it at ``validated_at``: READY when
          all of its authorizations are now VALID, INVALID when this one failed (the
          order's error is then ``error``, the challenge's problem document) or
          another is unusable. The backend locks those orders before it reads their
          authorizations, so two validations of one order's authorizations at the
          same moment leave it ready.

        So an order is ready no later than its last authorization turns valid.

        An authorization no longer PENDING (another of its challenges was validated
        first, or the client deactivated it, 7.5.2) is left as it is, and so are its
        orders; the challenge still ends with its own result (valid, or invalid with
        ``error``): a challenge ends valid or invalid, never processing for good.

        ``Conflict`` only if the challenge was not PROCESSING (another validation of it
        won); nothing is written then. ``NotFound`` if there is no such challenge.
        Returns the new challenge and its authorization as it now is.
        """
