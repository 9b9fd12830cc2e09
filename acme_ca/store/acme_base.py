"""The storage contract for ACME resources: nonces, accounts, orders, authorizations, challenges.

Same rules as ``base.py``: values in, values out; timezone-aware UTC datetimes;
every state change a compare-and-set naming the state it expects (``Conflict`` when
the row is in another state, ``NotFound`` when there is no row); a write happens
completely or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from acme_ca.domain.models import (
    Account,
    AccountStatus,
    Authorization,
    AuthorizationStatus,
    CertificateRecord,
    Challenge,
    ChallengeStatus,
    Identifier,
    Order,
    OrderStatus,
)


class NonceStore(Protocol):
    """Anti-replay nonces (RFC 8555 6.5), shared by every process and replica.

    Nonces need not survive a crash (a client that loses one gets badNonce and
    retries), so a backend may store them without durable commits.
    """

    async def add_nonce(self, nonce: str, expires: datetime) -> None:
        """Remember a freshly issued nonce until ``expires``; ``Conflict`` if known."""

    async def add_nonces(self, nonces: Sequence[str], expires: datetime) -> None:
        """``add_nonce`` for many at once, in one statement."""

    async def forget_nonces(self) -> None:
        """Forget every nonce: at server start, so that no nonce outlives the server
        that issued it (after a power loss, a nonce store without durable commits may
        have lost the consumption of a nonce but kept the nonce)."""

    async def consume_nonce(self, nonce: str, now: datetime) -> bool:
        """Delete the nonce; True only if it existed and had not expired.

        Of two concurrent calls with the same nonce exactly one returns True.
        An expired nonce is deleted too (and answers False). Expired nonces may be
        purged as a side effect.
        """


class AccountStore(Protocol):
    """ACME accounts (RFC 8555 7.1.2, 7.3), one per key."""

    async def create_account(self, account: Account) -> Account:
        """Insert; ``Conflict`` if an account with this key thumbprint (or this id)
        exists (the caller then looks it up: two racing newAccount calls with one key
        get one account). Returns the account as stored."""

    async def get_account(self, account_id: str) -> Account:
        """``NotFound`` if absent."""

    async def find_account_by_thumbprint(self, thumbprint: str) -> Account:
        """The account whose current key has this RFC 7638 thumbprint; ``NotFound``."""

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


class OrderStore(Protocol):
    """ACME orders (RFC 8555 7.1.3, 7.4) and the authorizations they list."""

    async def create_order(
        self, order: Order, new_authorizations: Sequence[Authorization]
    ) -> Order:
        """Insert the order and its new authorizations (with their challenges) at once.

        ``order.authorization_ids`` may also name existing (reused) authorizations;
        their order is kept. ``Conflict`` if the order, an authorization or a
        challenge id already exists, and then nothing is written. ``ValueError``
        if a new authorization is not listed by the order, belongs to another
        account, or holds a challenge naming another authorization.
        """

    async def get_order(self, order_id: str) -> Order:
        """``NotFound`` if absent."""

    async def list_account_orders(
        self, account_id: str, *, limit: int, after: str | None = None
    ) -> list[str]:
        """Ids of the account's orders (RFC 8555 7.1.2.1), oldest first (creation
        time, then id), at most ``limit`` (``ValueError`` below 1).

        Keyset-paginated: ``after`` is the id of the last order of the previous
        page; orders created meanwhile never shift a page. An ``after`` that is not
        one of this account's orders gives an empty page.
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

    async def start_issuance(self, order_id: str, record: CertificateRecord) -> Order:
        """In one transaction: move the order READY -> PROCESSING and reserve the serial
        of the certificate about to be signed for it (``record``: RESERVED, no DER,
        ``order_id`` this order), so the store knows the serial before it is signed.

        ``Conflict`` if the order is not READY, ``NotFound`` if it does not exist; nothing
        is written then. A serial that already exists is a ``StoreError``.
        """

    async def finish_order(self, order_id: str, serial: str, der: bytes) -> Order:
        """In one transaction: store the certificate reserved under ``serial``
        (RESERVED -> ISSUED) and, if the order is still PROCESSING, move it to VALID
        pointing at it; the order comes back as it then is.

        A certificate is signed before this call, so it is stored even when the order
        is no longer PROCESSING (a sweeper ended it meanwhile): the store knows every
        certificate signed (Boulder's rule), and that order is left as it is (an
        invalid order never becomes valid) and comes back unchanged.
        ``Conflict`` if the serial is not RESERVED for this order
        (``CertificateRecord.order_id``); ``NotFound`` if there is no such order or
        serial; nothing is written then.
        """

    async def processing_orders(
        self, started_before: datetime, *, limit: int
    ) -> list[tuple[Order, CertificateRecord | None]]:
        """Orders PROCESSING since ``started_before`` or earlier, oldest first, at most
        ``limit`` (``ValueError`` below 1): for the sweeper of issuances that never ended.

        An order is processing since the ``created_at`` of the serial reserved for it
        (``start_issuance``), which comes with it: RESERVED if nothing was stored, ISSUED
        (or REVOKED) if the certificate was. An order that no serial names (moved by
        ``update_order_status``) is processing since its own ``created_at`` and comes
        with None. A backend finds these without reading every order.
        """

    async def complete_order(self, order_id: str, serial: str) -> Order:
        """Compare-and-set the order PROCESSING -> VALID, pointing at the certificate
        already stored (ISSUED or REVOKED) under ``serial`` for this order.

        ``Conflict`` if the order is not PROCESSING, or the certificate belongs to another
        order or is only RESERVED; ``NotFound`` if there is no such order or serial.
        """

    async def orders_for_authorization(self, authorization_id: str) -> list[Order]:
        """Every order that lists this authorization (an authorization may be reused),
        oldest first; an empty list for an unknown authorization."""


class AuthorizationStore(Protocol):
    """ACME authorizations and their challenges (RFC 8555 7.1.4, 7.5)."""

    async def get_authorization(self, authorization_id: str) -> Authorization:
        """With its challenges, in the order they were created; ``NotFound`` if absent."""

    async def find_reusable_authorization(
        self, account_id: str, identifier: Identifier, wildcard: bool, valid_after: datetime
    ) -> Authorization | None:
        """A VALID authorization of this account for this identifier (and wildcard
        flag) that expires after ``valid_after``, the latest-expiring one; else None.

        ``identifier`` is as the authorization holds it: the base name, without "*."
        (the wildcard flag says whether it was for ``*.`` of that name).
        """

    async def valid_authorizations(
        self, account_id: str, identifiers: Sequence[Identifier], now: datetime
    ) -> list[Authorization]:
        """The account's unexpired VALID authorizations for any of ``identifiers``.

        The identifiers are names as a certificate or an order has them: a name
        ``*.example.com`` is matched by a wildcard authorization for
        ``example.com``, a plain name by a non-wildcard one.
        """

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

    async def get_challenge(self, challenge_id: str) -> Challenge:
        """``NotFound`` if absent."""

    async def update_challenge(
        self,
        challenge_id: str,
        *,
        expected: ChallengeStatus,
        status: ChallengeStatus,
        error: str | None = None,
        validated_at: datetime | None = None,
    ) -> Challenge:
        """Compare-and-set the challenge's status; only one of two racers wins.

        ``error`` and ``validated_at`` are set when given (None: unchanged).
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
        - every PENDING order listing that authorization -> READY when all of its
          authorizations are now VALID, or -> INVALID when this one failed (the
          order's error is then ``error``, the challenge's problem document).

        So an order is ready no later than its last authorization turns valid.
        ``Conflict`` if the challenge was not PROCESSING or the authorization not
        PENDING (another validation won); nothing is written then. ``NotFound``
        if there is no such challenge. Returns the new challenge and authorization.
        """

    async def processing_challenges(self) -> list[Challenge]:
        """Challenges left PROCESSING (by a process that stopped): to validate again."""
