"""What relying parties learn of revocation and clients of renewal: the revoked
certificates a CRL lists, the CRLs every replica serves, and the operator's marks for
early renewal (ARI, RFC 9773).

A CRL is built by whichever process holds the background lease
(``authority/crls.py``) and published here, so every replica serves the same one; its
number only grows, across replicas and restarts (RFC 5280 5.2.3), because publishing
is a compare-and-set on it: of two builders of the same number (a former lease
holder still running), the second to publish gets ``Conflict``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from acme_ca.domain.models import CertificateRecord, CrlRecord, RevokedEntry


class RevocationStore(Protocol):
    async def revoked_certificates(
        self, issuer: str, *, expiring_after: datetime
    ) -> list[RevokedEntry]:
        """The REVOKED certificates that the CA certificate with fingerprint ``issuer``
        signed and whose notAfter is later than ``expiring_after`` (an expired
        certificate leaves the CRL), ordered by serial. One range read of an index of
        the revoked rows alone, whatever the number of certificates issued."""

    async def revoked_issuers(self, *, expiring_after: datetime) -> dict[str, str]:
        """Each CA certificate fingerprint (``issuer``) that signed a REVOKED certificate
        whose notAfter is later than ``expiring_after``, with the least such serial: a
        fingerprint the server no longer knows (an intermediate re-signed with the same
        key and name) is told apart by that certificate's issuer and AKI. One read of
        the index of the revoked rows alone."""

    async def revoked_summary(
        self, issuer: str, *, expiring_after: datetime
    ) -> tuple[int, datetime | None]:
        """How many rows ``revoked_certificates`` would return and their latest
        ``revoked_at`` (None when there are none): a CRL builder learns whether the list
        changed without reading it (a revocation adds a row; only a revocation adds
        one). One aggregate over the same range of the index of the revoked rows."""

    async def get_crl(self, issuer: str, *, der: bool = True) -> CrlRecord | None:
        """The last CRL published for ``issuer``; None before the first. With
        ``der=False`` its DER is not read (the record holds ``b""``): enough to tell
        whether a new CRL is due, without reading megabytes every round."""

    async def crl_number(self, issuer_id: str) -> tuple[str, int] | None:
        """The fingerprint and number of the CRL stored for the intermediate whose
        fingerprint starts with ``issuer_id`` (its first 16 hex digits, the id in CRL
        URLs); None if none is stored. A cheap read (no DER): a replica checks with it
        whether the CRL it holds is still the latest, and finds the CRL of an
        intermediate another replica already signs with."""

    async def publish_crl(self, crl: CrlRecord) -> None:
        """Store ``crl`` as its issuer's current CRL if its number is greater than the
        stored one's (or none is stored); ``Conflict`` otherwise, and nothing changes."""

    async def mark_renew_early(self, serial: str, at: datetime) -> CertificateRecord:
        """Mark the certificate for early renewal at ``at`` (its renewal information
        then suggests a window in the past); a mark already there is kept (the earlier
        one stands). The record as it is now; ``NotFound`` for an unknown serial,
        ``Conflict`` for a serial reserved but never signed."""

    async def mark_renew_early_issued_before(
        self, before: datetime, at: datetime, *, unexpired_at: datetime
    ) -> int:
        """``mark_renew_early`` for every signed certificate (ISSUED or REVOKED) created
        before ``before`` that is not expired at ``unexpired_at`` and not yet marked (an
        intermediate rotated, a key compromised); how many were marked. Safe to run
        twice: the second marks none."""
