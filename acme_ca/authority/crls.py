"""The CRLs relying parties fetch (RFC 5280 5): built under the cluster lease, served by
every replica.

``CrlPublisher.publish`` is a background job (``background.py``: every 2 s, in the one
process holding the lease). For each intermediate that signs CRLs (the current one and
every archived one whose key is still kept: ``Issuer.crl_signers``) it reads the
revoked certificates that intermediate signed and that have not expired, and publishes
a new full CRL when

- none is stored yet;
- the list changed: a revocation, or a revoked certificate that expired and leaves the
  CRL (the stored CRL keeps a digest of its entries);
- more than half of the stored CRL's lifetime has passed, so a fresh one is always
  there long before its nextUpdate ([revocation] crl_lifetime).

Its number is the stored number plus one: publishing is a compare-and-set on it
(``Store.publish_crl``), so numbers grow across replicas and restarts, and a former
lease holder that publishes first makes this one's attempt a ``Conflict``, a normal
outcome. A revocation is on the CRL within a period or two. Signing runs off the event
loop.

``PublishedCrls`` is what the plain-HTTP listener (``api/publication.py``) reads: the
stored CRL and the certificate of an intermediate named by its issuer id.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.serialization import Encoding

from acme_ca.clock import Clock
from acme_ca.domain.models import CrlRecord, RevokedEntry
from acme_ca.errors import Conflict
from acme_ca.pki.crl import CrlEntry, CrlSigner, build_crl
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.publication import (
    CRL_ROUTE,
    ISSUER_ROUTE,
    OCSP_ROUTE,
    Publication,
    issuer_id,
)
from acme_ca.store.revocation import RevocationStore

__all__ = ["CRL_ROUTE", "ISSUER_ROUTE", "OCSP_ROUTE", "CrlPublisher", "PublishedCrls"]

log = logging.getLogger(__name__)

BACKDATE = timedelta(minutes=1)  # thisUpdate this far back: relying parties' clocks lag


def entries_digest(entries: Sequence[RevokedEntry]) -> str:
    """What a CRL lists, as one hex SHA-256: serial, revocation time and reason of each."""
    digest = hashlib.sha256()
    for entry in entries:
        digest.update(f"{entry.serial} {entry.revoked_at.isoformat()} {entry.reason}\n"
                      .encode())
    return digest.hexdigest()


class CrlPublisher:
    def __init__(
        self,
        store: RevocationStore,
        clock: Clock,
        issuer: Callable[[], Issuer],
        publication: Publication,
        lifetime: timedelta,
        *,
        backdate: timedelta = BACKDATE,
    ) -> None:
        self._store = store
        self._clock = clock
        self._issuer = issuer
        self._publication = publication
        self._lifetime = lifetime
        self._backdate = backdate
        self._said: set[str] = set()

    async def publish(self) -> int:
        """One round: a new CRL for every signer whose CRL is due; how many published."""
        issuer = self._issuer()
        for problem in set(issuer.unreadable) - self._said:
            log.warning("%s: the CRL of that archived intermediate is not signed", problem)
        self._said = set(issuer.unreadable)
        published = 0
        for signer in issuer.crl_signers():
            published += await self.publish_for(signer)
        return published

    async def publish_for(self, signer: CrlSigner) -> int:
        """A new CRL for ``signer`` if one is due (module docstring): 1 if published, 0
        if none was due or another process published first."""
        now = self._clock.now()
        entries = await self._store.revoked_certificates(signer.fingerprint,
                                                         expiring_after=now)
        digest = entries_digest(entries)
        stored = await self._store.get_crl(signer.fingerprint)
        if stored is not None and not self._due(stored, digest, now):
            return 0
        number = stored.number + 1 if stored is not None else 1
        this_update = (now - self._backdate).replace(microsecond=0)
        next_update = this_update + self._lifetime
        der = await asyncio.to_thread(
            build_crl, signer, number=number, this_update=this_update,
            next_update=next_update,
            entries=[CrlEntry(int(e.serial, 16), e.revoked_at, e.reason) for e in entries],
            distribution_point=self._publication.crl_url(signer.fingerprint),
        )
        try:
            await self._store.publish_crl(CrlRecord(signer.fingerprint, number, this_update,
                                                    next_update, digest, der))
        except Conflict:
            log.info("CRL %d of intermediate %s: another process published first",
                     number, issuer_id(signer.fingerprint))
            return 0
        log.info("published CRL %d of intermediate %s: %d revoked, next update %s UTC",
                 number, issuer_id(signer.fingerprint), len(entries),
                 f"{next_update:%Y-%m-%d %H:%M:%S}")
        return 1

    @staticmethod
    def _due(stored: CrlRecord, digest: str, now: datetime) -> bool:
        half_life = (stored.next_update - stored.this_update) / 2
        return stored.entries != digest or now >= stored.this_update + half_life


class PublishedCrls:
    """What the plain-HTTP listener serves, by issuer id (``pki/publication.py``): the
    CRL last published and the certificate of each intermediate, current or archived."""

    def __init__(self, store: RevocationStore, issuer: Callable[[], Issuer]) -> None:
        self._store = store
        self._issuer = issuer

    def _fingerprint(self, short: str) -> str | None:
        issuer = self._issuer()
        for known in (issuer.fingerprint, *issuer.earlier):
            if issuer_id(known) == short:
                return known
        return None

    async def crl(self, short: str) -> CrlRecord | None:
        """The CRL of the intermediate ``short`` names; None for an unknown one or before
        its first CRL."""
        fingerprint = self._fingerprint(short)
        return None if fingerprint is None else await self._store.get_crl(fingerprint)

    def certificate(self, short: str) -> tuple[bytes, datetime] | None:
        """The DER of the intermediate ``short`` names and its notBefore; None if unknown."""
        issuer = self._issuer()
        fingerprint = self._fingerprint(short)
        if fingerprint is None:
            return None
        cert = (issuer.certificate if fingerprint == issuer.fingerprint
                else issuer.earlier[fingerprint][0])
        return cert.public_bytes(Encoding.DER), cert.not_valid_before_utc
