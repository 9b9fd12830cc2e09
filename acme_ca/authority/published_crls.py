"""What the plain-HTTP listener (``api/publication.py``) serves of the CRLs the lease
holder publishes (``authority/crls.py``): the CRL of an intermediate named by its issuer
id, from a per-process cache, and the certificate of an intermediate this process knows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

from cryptography.hazmat.primitives.serialization import Encoding

from acme_ca.clock import Clock
from acme_ca.domain.models import CrlRecord
from acme_ca.errors import StoreUnavailable
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.publication import CRL_ROUTE, ISSUER_ID_LENGTH, ISSUER_ROUTE, issuer_id
from acme_ca.store.revocation import RevocationStore

__all__ = ["CRL_ROUTE", "ISSUER_ROUTE", "PublishedCrls"]

REFRESH = 5.0  # seconds a replica serves the CRL it holds before checking its number
_ISSUER_ID = re.compile(f"[0-9a-f]{{{ISSUER_ID_LENGTH}}}")


class PublishedCrls:
    """What the plain-HTTP listener serves, by issuer id (``pki/publication.py``): the
    CRL last published and the certificate of each intermediate, current or archived.

    CRLs come from a per-process cache: a relying party's GET reads nothing from the
    database while the CRL held is less than ``refresh`` seconds old, then only the
    stored number (``Store.crl_number``), and the DER only when the number changed.
    With the database out of reach, the CRL held is served while its nextUpdate has
    not passed (it is still what the CA says); after that, ``StoreUnavailable``.
    An issuer id this process does not know is looked up in the store too: another
    replica may already sign with an intermediate this one has not reloaded yet.
    """

    def __init__(self, store: RevocationStore, issuer: Callable[[], Issuer], clock: Clock,
                 *, refresh: float = REFRESH) -> None:
        self._store = store
        self._issuer = issuer
        self._clock = clock
        self._refresh = refresh
        self._held: dict[str, tuple[CrlRecord, float]] = {}  # issuer id: CRL, checked at

    def _fingerprint(self, short: str) -> str | None:
        issuer = self._issuer()
        for known in (issuer.fingerprint, *issuer.earlier):
            if issuer_id(known) == short:
                return known
        return None

    async def crl(self, short: str) -> CrlRecord | None:
        """The CRL of the intermediate ``short`` names; None for an unknown one or before
        its first CRL."""
        if not _ISSUER_ID.fullmatch(short):
            return None
        held = self._held.get(short)
        checked = self._clock.monotonic()
        if held is not None and 0 <= checked - held[1] < self._refresh:
            return held[0]
        try:
            found = await self._latest(short, held[0] if held else None)
        except StoreUnavailable:
            if held is not None and held[0].next_update > self._clock.now():
                return held[0]
            raise
        if found is None:
            self._held.pop(short, None)
        else:
            self._held[short] = (found, checked)
        return found

    async def _latest(self, short: str, held: CrlRecord | None) -> CrlRecord | None:
        stored = await self._store.crl_number(short)
        if stored is None:
            return None
        fingerprint, number = stored
        if held is not None and (held.issuer, held.number) == (fingerprint, number):
            return held
        return await self._store.get_crl(fingerprint)

    def certificate(self, short: str) -> tuple[bytes, datetime] | None:
        """The DER of the intermediate ``short`` names and its notBefore; None if unknown."""
        issuer = self._issuer()
        fingerprint = self._fingerprint(short)
        if fingerprint is None:
            return None
        cert = (issuer.certificate if fingerprint == issuer.fingerprint
                else issuer.earlier[fingerprint][0])
        return cert.public_bytes(Encoding.DER), cert.not_valid_before_utc
