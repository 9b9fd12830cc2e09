"""The OCSP responder (RFC 6960), on when ``[revocation] ocsp = true``.

Each request is answered from the store's record of the certificate, read by serial
every time (a primary-key read), so a revocation is seen at once by every process and
replica:

    ISSUED                         good
    REVOKED                        revoked, with its time and reason
    RESERVED, or no such serial    unknown (never signed, or pruned after it expired)
    signed by another intermediate unknown (the CertID names this issuer, not that one)

"Signed by this intermediate" means by its name and key, as the CertID names it: a
certificate that an earlier certificate of the same name and key signed (the
intermediate re-signed) is answered for too (``signed_by``).

The CertID's issuer must be an intermediate that signs now (``ResponderCertificates``);
another issuer is ``unauthorized``; what cannot be read ``malformedRequest``; one whose
responder certificate this process has not loaded yet, or the database out of reach,
``tryLater`` (RFC 6960 2.3); an archived one with nothing unexpired left to answer for
``unauthorized`` (it is served no more). Never an HTTP error.

A response is good from ``thisUpdate`` (now, backdated by ``[policy] backdate`` for
relying parties' clocks, but never before the revocation it reports) to ``nextUpdate``
(``[revocation] ocsp_lifetime`` later, never after the responder certificate ends).
Signed responses are cached per process by (responder certificate's serial, CertID
hash algorithm, serial, status) until a third of their lifetime is left: a revocation
changes the status, hence the key, so a cached response is never stale. Responses to a
request with a nonce echo it (RFC 8954) and are signed each time, in the signing pool
(``pki/signer.off_loop``), never on the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.x509 import ocsp

from acme_ca.authority.ocsp_responders import Responder, ResponderCertificates, SigningCa
from acme_ca.clock import Clock
from acme_ca.domain.models import CertificateRecord, CertificateStatus, serial_hex
from acme_ca.errors import NotFound, StoreUnavailable
from acme_ca.pki.ocsp import (
    GOOD,
    UNKNOWN,
    CertStatus,
    MalformedRequest,
    OcspQuery,
    names_issuer,
    read_request,
    revoked,
    sign_response,
    unsuccessful,
)
from acme_ca.pki.profiles import names_as_issuer
from acme_ca.pki.publication import OCSP_ROUTE
from acme_ca.pki.signer import off_loop
from acme_ca.store.reads import ReadStore

__all__ = ["INTERNAL_ERROR", "MALFORMED", "OCSP_ROUTE", "OcspAnswer", "OcspResponder"]

log = logging.getLogger(__name__)

CACHE_SIZE = 10_000  # signed responses kept per process (each about 600 octets)


@dataclass(frozen=True, slots=True)
class OcspAnswer:
    """An OCSP response, DER, and what HTTP caching needs to know of it: its
    thisUpdate and nextUpdate (None: an unsuccessful response), and whether it echoes
    a nonce (then it answers one request only)."""

    der: bytes
    this_update: datetime | None = None
    next_update: datetime | None = None
    nonce: bool = False


def _failure(status: ocsp.OCSPResponseStatus) -> OcspAnswer:
    return OcspAnswer(unsuccessful(status))


MALFORMED = _failure(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
UNAUTHORIZED = _failure(ocsp.OCSPResponseStatus.UNAUTHORIZED)
TRY_LATER = _failure(ocsp.OCSPResponseStatus.TRY_LATER)
INTERNAL_ERROR = _failure(ocsp.OCSPResponseStatus.INTERNAL_ERROR)


class OcspResponder:
    def __init__(
        self,
        store: ReadStore,
        responders: ResponderCertificates,
        clock: Clock,
        lifetime: timedelta,
        *,
        backdate: timedelta = timedelta(minutes=1),
        cache_size: int = CACHE_SIZE,
    ) -> None:
        self._store = store
        self.responders = responders  # for serve: start, renew or follow them
        self._clock = clock
        self._backdate = backdate
        self._lifetime = lifetime
        self._cache: dict[Hashable, OcspAnswer] = {}
        self._cache_size = cache_size

    async def answer(self, der: bytes) -> OcspAnswer:
        """The response to the DER request ``der``."""
        try:
            query = read_request(der)
        except MalformedRequest as exc:
            log.debug("malformed OCSP request: %s", exc)
            return MALFORMED
        signer = next((s for s in self.responders.signers()
                       if names_issuer(query, s.certificate)), None)
        if signer is None:
            return UNAUTHORIZED
        responder = self.responders.responder(signer.fingerprint)
        try:
            if responder is None:
                return await self._without_responder(signer)
            status = _status(await self._record(query.serial), signer)
        except StoreUnavailable as exc:
            log.warning("OCSP: the database cannot be reached (%s): tryLater", exc)
            return TRY_LATER
        return await self._signed(query, status, responder)

    async def _without_responder(self, signer: SigningCa) -> OcspAnswer:
        """unauthorized for an archived intermediate that answers for nothing now (and
        never will again); tryLater while this process waits for a responder."""
        if await self.responders.ended(signer):
            log.debug("intermediate %s has nothing unexpired: unauthorized",
                      signer.fingerprint[:16])
            return UNAUTHORIZED
        log.debug("no OCSP responder certificate for intermediate %s: tryLater",
                  signer.fingerprint[:16])
        return TRY_LATER

    async def _record(self, serial: int) -> CertificateRecord | None:
        try:
            return await self._store.get_certificate(serial_hex(serial))
        except NotFound:
            return None

    async def _signed(self, query: OcspQuery, status: CertStatus,
                      responder: Responder) -> OcspAnswer:
        now = self._clock.now()
        key = (responder.certificate.serial_number, query.algorithm.name, query.serial, status)
        if query.nonce is None:
            cached = self._cache.get(key)
            if cached is not None and cached.next_update is not None and (
                    now < cached.next_update - self._lifetime / 3):
                return cached
        this_update = now.replace(microsecond=0) - self._backdate
        if status.revoked_at is not None:  # never a time before it was revoked
            this_update = max(this_update, status.revoked_at)
        next_update = min(this_update + self._lifetime,
                          responder.certificate.not_valid_after_utc)
        der = await off_loop(sign_response, query, status, responder.certificate,
                             responder.signer, this_update=this_update,
                             next_update=next_update)
        answer = OcspAnswer(der, this_update, next_update, nonce=query.nonce is not None)
        if query.nonce is None:
            self._keep(key, answer)
        return answer

    def _keep(self, key: Hashable, answer: OcspAnswer) -> None:
        self._cache.pop(key, None)
        while len(self._cache) >= self._cache_size:
            del self._cache[next(iter(self._cache))]  # the oldest
        self._cache[key] = answer


def signed_by(record: CertificateRecord, signer: SigningCa) -> bool:
    """Whether ``signer``'s CA signed ``record``'s certificate: its record says so
    (``issuer``), or the stored certificate names it (``names_as_issuer``) after the
    intermediate was re-signed with the same key and name, whose earlier certificate's
    fingerprint the record keeps (RFC 6960 4.1.1: the CertID names a name and a key)."""
    if record.issuer == signer.fingerprint:
        return True
    if record.der is None:
        return False
    return names_as_issuer(x509.load_der_x509_certificate(record.der), signer.certificate)


def _status(record: CertificateRecord | None, signer: SigningCa) -> CertStatus:
    """What to say of ``record`` asked about under the intermediate ``signer``."""
    if record is None or not signed_by(record, signer):
        return UNKNOWN
    if record.status is CertificateStatus.ISSUED:
        return GOOD
    if record.status is CertificateStatus.REVOKED and record.revoked_at is not None:
        # X.509 times carry whole seconds (RFC 5280 4.1.2.5.2), as the CRL lists it
        return revoked(record.revoked_at.replace(microsecond=0), record.revocation_reason or 0)
    return UNKNOWN  # RESERVED: never signed (or its signature never stored)
