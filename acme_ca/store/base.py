"""The storage interface: one async Protocol for everything the CA persists.

The contract every backend keeps:

- Records go in and come out as immutable values (``acme_ca.domain.models``); a
  backend keeps its row mapping private and never hands out shared mutable state.
- Datetimes are timezone-aware and come back in UTC; a naive datetime is a
  programming error and raises ``ValueError``.
- Every state change is a compare-and-set: the update names the state it expects
  (``WHERE status = 'reserved'``) and fails with ``Conflict`` when the row is in any
  other state. Several processes, or several replicas sharing one database, can
  therefore run the same code; exactly one of two racing writers wins and the
  other gets ``Conflict``, which is a normal outcome, not a crash.
- A write either happens completely or not at all.
- ``NotFound`` means the row does not exist; ``Conflict`` means it exists but is
  not in the state the operation needs, or it already exists; any other failure
  of the database is a plain ``StoreError``. None of them carries anything HTTP.

The interface is split by entity: ``CertificateStore`` here, and the ACME
resources in ``acme_base`` (``NonceStore``, ``AccountStore``, ``OrderStore``,
``AuthorizationStore``, the last covering challenges too); ``Store`` inherits them
all. Code that needs one entity only may depend on the narrower Protocol.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from acme_ca.domain.models import CertificateRecord, CertificateStatus
from acme_ca.store.acme_base import AccountStore, AuthorizationStore, NonceStore, OrderStore


class CertificateStore(Protocol):
    """Certificates, from the reservation of their serial to their revocation.

    The life of a row: ``reserve_serial`` (RESERVED, no DER) before anything is
    signed, then ``store_certificate`` (ISSUED, with DER), then optionally
    ``revoke_certificate`` (REVOKED). A serial is never reused, and rows are
    never deleted: a RESERVED row whose signing failed stays as evidence.
    """

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

    async def get_certificate(self, serial: str) -> CertificateRecord:
        """The record with this serial; ``NotFound`` if there is none."""

    async def revoke_certificate(
        self, serial: str, reason: int, revoked_at: datetime
    ) -> CertificateRecord:
        """Compare-and-set ISSUED -> REVOKED with an RFC 5280 CRLReason code.

        Returns the updated record. Raises ``NotFound`` if no row has this serial,
        ``Conflict`` ("already revoked") if it is REVOKED, and ``Conflict`` if it
        is only RESERVED (nothing was issued, so there is nothing to revoke).
        """

    async def latest_expiry(self, issuer: str, *, after: datetime) -> datetime | None:
        """The latest notAfter later than ``after`` among the certificates the CA
        certificate with fingerprint ``issuer`` signed, in any state (RESERVED ones
        too: signing may be under way); None if there is none.
        """

    async def list_certificates(
        self,
        *,
        status: CertificateStatus | None = None,
        limit: int = 100,
        after_serial: str | None = None,
    ) -> list[CertificateRecord]:
        """At most ``limit`` records, optionally only those in ``status``.

        Ordered by ``created_at``, then ``serial`` (oldest first). Pages are
        keyset-paginated: pass the serial of the last record of one page as
        ``after_serial`` to get the next page; rows inserted meanwhile never shift
        a page. An ``after_serial`` that does not exist raises ``NotFound``;
        ``limit`` below 1 raises ``ValueError``.
        """


class Store(
    CertificateStore, NonceStore, AccountStore, OrderStore, AuthorizationStore, Protocol
):
    """Everything the CA persists, behind one async interface."""

    async def close(self) -> None:
        """Wait for the operation in progress, then release the database.

        Any later call raises ``StoreError``. Closing twice is harmless.
        """

    async def schema_version(self) -> int:
        """The number of the newest migration applied to the database."""
