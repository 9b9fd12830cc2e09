"""What the store answers: every read of the ``Store`` contract (see ``base.py``).

Reads never change a row. They see what is committed; a value read may be stale by
the time it is used, which is why every write names the state it expects.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from acme_ca.domain.models import (
    Account,
    Authorization,
    CertificateRecord,
    CertificateStatus,
    Challenge,
    Identifier,
    Order,
)


class ReadStore(Protocol):
    """Certificates, accounts, orders, authorizations and challenges, as values."""

    # --- certificates -----------------------------------------------------------------

    async def get_certificate(self, serial: str) -> CertificateRecord:
        """The record with this serial; ``NotFound`` if there is none."""

    async def list_certificates(
        self,
        *,
        status: CertificateStatus | None = None,
        limit: int = 100,
        after_serial: str | None = None,
        expiring: tuple[datetime, datetime] | None = None,
    ) -> list[CertificateRecord]:
        """At most ``limit`` records, optionally only those in ``status``, and only
        those whose notAfter is within ``expiring`` (after its first, at or before its
        second: ``certs list --expiring-within``).

        Ordered by ``created_at``, then ``serial`` (oldest first). Pages are
        keyset-paginated: pass the serial of the last record of one page as
        ``after_serial`` to get the next page; rows inserted meanwhile never shift
        a page. An ``after_serial`` that does not exist raises ``NotFound``;
        ``limit`` below 1 raises ``ValueError``.
        """

    async def latest_expiry(self, issuer: str, *, after: datetime) -> datetime | None:
        """The latest notAfter later than ``after`` among the certificates the CA
        certificate with fingerprint ``issuer`` signed, in any state (RESERVED ones
        too: signing may be under way); None if there is none.
        """

    # --- accounts (RFC 8555 7.1.2) ----------------------------------------------------

    async def get_account(self, account_id: str) -> Account:
        """``NotFound`` if absent."""

    async def find_account_by_thumbprint(self, thumbprint: str) -> Account:
        """The account whose current key has this RFC 7638 thumbprint; ``NotFound``."""

    # --- orders (RFC 8555 7.1.3) ------------------------------------------------------

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

    async def orders_for_authorization(self, authorization_id: str) -> list[Order]:
        """Every order that lists this authorization (an authorization may be reused),
        oldest first; an empty list for an unknown authorization."""

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

    # --- authorizations and challenges (RFC 8555 7.1.4, 7.1.5) ------------------------

    async def get_authorization(self, authorization_id: str) -> Authorization:
        """With its challenges, in the order they were created; ``NotFound`` if absent."""

    async def order_authorizations(self, order_id: str) -> list[Authorization]:
        """Every authorization the order lists, each with its challenges, in one read, in
        no particular order (``states.order_change`` needs no order); an empty list for
        an unknown order."""

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

    async def get_challenge(self, challenge_id: str) -> Challenge:
        """``NotFound`` if absent."""

    async def processing_challenges(
        self, started_before: datetime, *, limit: int
    ) -> list[Challenge]:
        """Challenges PROCESSING since ``started_before`` or earlier (``processing_since``;
        a challenge with none counts as processing forever), oldest first, at most
        ``limit`` (``ValueError`` below 1): validations whose process stopped, to be
        validated again by the holder of the background lease. A backend finds these
        without reading every challenge."""
