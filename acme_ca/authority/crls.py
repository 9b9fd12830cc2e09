"""The CRLs relying parties fetch (RFC 5280 5): built under the cluster lease, served by
every replica.

``CrlPublisher.publish`` is a background job (``background.py``: every 2 s, in the one
process holding the lease). For each intermediate that signs CRLs (the current one and
every archived one whose key is still kept: ``Issuer.crl_signers``) it reads the
revoked certificates that intermediate signed and that must still be listed, and
publishes a new full CRL when

- none is stored yet;
- the list changed: a revocation, or a revoked certificate that leaves the CRL; or its
  URL did ([revocation] base_url, named in its issuing distribution point: a relying
  party refuses a CRL that does not name its leaf's URL) (the stored CRL keeps a digest
  of both);
- more than half of the stored CRL's lifetime has passed, so a fresh one is always
  there long before its nextUpdate ([revocation] crl_lifetime);
- the stored CRL's thisUpdate is in the future (it was signed by a process whose
  clock ran ahead): relying parties refuse it as not yet valid, so it is replaced
  as soon as this process's clock says so, not half a lifetime later.

Which entries: a revoked certificate stays until it has been on a CRL whose thisUpdate
is after its notAfter (RFC 5280 5.1.2.6 and 3.3: an entry "MUST NOT" leave before it
appears on "one regularly scheduled CRL issued beyond the revoked certificate's
validity period"). The cut is the stored CRL's own thisUpdate: a certificate that
expired before it was on that CRL (it was listed then, and that CRL was issued beyond
its validity), so it may leave the next one; one that expires later stays. Taking the
cut from the stored CRL rather than from the clock holds whatever the time between
two CRLs (the publisher down for a day, a lease that moved): nothing leaves unseen. An
expiry does not itself make a CRL due: the entry leaves with the next CRL due anyway.

thisUpdate: the clock less ``BACKDATE`` (relying parties' clocks lag), but never
before the latest revocationDate it lists (5.1.2.6: a revocation dated after the
CRL's own time reads as not yet revoked), never before the stored CRL's thisUpdate
plus a second (a clock stepped back, or a lease moved to a replica whose clock is
slower, must not make a newer CRL look older, to caches and to relying parties that
keep the newest), and never after the clock: a CRL dated in the future is refused.
When the stored thisUpdate is itself in the future, the last rule wins and thisUpdate
goes back once; the listener's caching therefore goes by the CRL number (ETag), not
by date (``api/publication.py``).

The issuing distribution point names the current CRL URL and every URL the stored CRL
named ([revocation] base_url changed: leaves signed before still carry the old URL,
and RFC 5280 6.3.3 (b)(2)(i) needs one name in common; the old URL must keep serving
the CRL, docs/deployment.md).

Its number is the stored number plus one: publishing is a compare-and-set on it
(``Store.publish_crl``), so numbers grow across replicas and restarts, and a former
lease holder that publishes first makes this one's attempt a ``Conflict``, a normal
outcome. A revocation is on the CRL within a period or two. Signing runs off the event
loop. One intermediate's CRL failing (its key, the database) is logged and the others
of the round still run.

``PublishedCrls`` is what the plain-HTTP listener (``api/publication.py``) reads: the
CRL of an intermediate named by its issuer id, from a per-process cache, and the
certificate of an intermediate this process knows.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from acme_ca.clock import Clock
from acme_ca.domain.models import CrlRecord, RevokedEntry
from acme_ca.errors import Conflict, StoreUnavailable
from acme_ca.pki.crl import CrlEntry, CrlSigner, build_crl
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.profiles import names_as_issuer
from acme_ca.pki.publication import (
    CRL_ROUTE,
    ISSUER_ROUTE,
    OCSP_ROUTE,
    Publication,
    issuer_id,
)
from acme_ca.store.base import Store
from acme_ca.store.reads import ReadStore
from acme_ca.store.revocation import RevocationStore

__all__ = ["CRL_ROUTE", "ISSUER_ROUTE", "OCSP_ROUTE", "CrlPublisher", "PublishedCrls",
           "unsigned_crl"]

log = logging.getLogger(__name__)

BACKDATE = timedelta(minutes=1)  # thisUpdate this far back: relying parties' clocks lag
SECOND = timedelta(seconds=1)  # a CRL's times are whole seconds (UTCTime)
REFRESH = 5.0  # seconds a replica serves the CRL it holds before checking its number
_ISSUER_ID = re.compile(r"[0-9a-f]{16}")


async def unsigned_crl(store: ReadStore, issuer: Issuer, now: datetime) -> str | None:
    """Why ``issuer`` cannot be served with: an archived intermediate whose key could
    not be read still has unexpired certificates, so their revocations would never
    reach a CRL and its last CRL would go stale (one line naming the key file); None
    when every such intermediate signed nothing still valid (its key is only kept
    longer than needed: a warning, ``CrlPublisher.publish``)."""
    for signed_by, why in issuer.unreadable.items():
        latest = await store.latest_expiry(signed_by, after=now)
        if latest is not None:
            return (f"{why}: intermediate {issuer_id(signed_by)} signed certificates valid "
                    f"until {latest:%Y-%m-%d %H:%M} UTC, whose revocations its CRL must "
                    "list; restore the key or its passphrase")
    return None


def entries_digest(entries: Sequence[RevokedEntry], distribution_point: str) -> str:
    """What a CRL says, as one hex SHA-256: its issuing distribution point, then serial,
    revocation time and reason of each entry. The point is in it because a relying party
    refuses a CRL whose point is not the one its leaf names (openssl: "different CRL
    scope"): a changed ``[revocation] base_url`` makes a new CRL at once."""
    digest = hashlib.sha256(f"{distribution_point}\n".encode())
    for entry in entries:
        digest.update(f"{entry.serial} {entry.revoked_at.isoformat()} {entry.reason}\n"
                      .encode())
    return digest.hexdigest()


class CrlPublisher:
    def __init__(
        self,
        store: Store,
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
        self._owners: dict[str, str] = {}  # unknown issuer fingerprint -> its signer's

    async def publish(self) -> int:
        """One round: a new CRL for every signer whose CRL is due; how many published."""
        issuer = self._issuer()
        for problem in set(issuer.unreadable.values()) - self._said:
            log.warning("%s: the CRL of that archived intermediate is not signed", problem)
        self._said = set(issuer.unreadable.values())
        published = 0
        for signer in issuer.crl_signers():
            try:
                published += await self.publish_for(signer)
            except Exception:  # one CRL failing leaves the others of the round to run
                log.exception("the CRL of intermediate %s was not published",
                              issuer_id(signer.fingerprint))
        return published

    async def publish_for(self, signer: CrlSigner) -> int:
        """A new CRL for ``signer`` if one is due (module docstring): 1 if published, 0
        if none was due or another process published first."""
        now = self._clock.now()
        stored = await self._store.get_crl(signer.fingerprint)
        entries = await self._entries(signer, self._listed_after(stored, now))
        current = self._publication.crl_url(signer.fingerprint)
        digest = entries_digest(entries, current)
        if stored is not None and not self._due(stored, digest, now):
            return 0
        number = stored.number + 1 if stored is not None else 1
        this_update = self._this_update(stored, entries, now)
        next_update = this_update + self._lifetime
        der = await asyncio.to_thread(
            _build, signer, stored, number=number, this_update=this_update,
            next_update=next_update,
            entries=[CrlEntry(int(e.serial, 16), e.revoked_at, e.reason) for e in entries],
            distribution_point=current,
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

    def _listed_after(self, stored: CrlRecord | None, now: datetime) -> datetime:
        """The entries a new CRL lists end after this (module docstring): those that
        expired before the stored CRL's thisUpdate have been on a CRL issued beyond
        their validity. With no CRL yet, one lifetime back; with a stored thisUpdate
        in the future (a clock ahead), that CRL does not count beyond now."""
        if stored is None:
            return now - self._lifetime
        return min(stored.this_update, now) - timedelta(microseconds=1)

    def _this_update(self, stored: CrlRecord | None, entries: Sequence[RevokedEntry],
                     now: datetime) -> datetime:
        """now - backdate, but not before the latest revocation it lists nor before
        the stored CRL's thisUpdate plus a second, and never after now."""
        moment = now - self._backdate
        if entries:
            moment = max(moment, max(e.revoked_at for e in entries))
        if stored is not None:
            moment = max(moment, stored.this_update + SECOND)
        return min(moment, now).replace(microsecond=0)

    async def _entries(self, signer: CrlSigner, after: datetime) -> list[RevokedEntry]:
        """The revoked certificates ``signer`` signed that end after ``after``, with
        those of each earlier certificate of the same name and key (the intermediate
        re-signed) whose fingerprint the server holds no more: theirs would reach no CRL
        otherwise, and this CRL's issuer name and key are theirs too (RFC 5280 5)."""
        entries = await self._store.revoked_certificates(signer.fingerprint,
                                                         expiring_after=after)
        for fingerprint in await self._same_ca(signer, after):
            entries += await self._store.revoked_certificates(fingerprint,
                                                              expiring_after=after)
        return sorted(entries, key=lambda entry: entry.serial)

    async def _same_ca(self, signer: CrlSigner, after: datetime) -> list[str]:
        """The unknown issuer fingerprints of revoked certificates ending after
        ``after`` whose stored certificate names ``signer`` (issuer name and AKI:
        ``names_as_issuer``); each mapped once to the first signer that matches."""
        issuer = self._issuer()
        signers = list(issuer.crl_signers())
        known = {issuer.fingerprint, *issuer.earlier, *(s.fingerprint for s in signers)}
        found = []
        for fingerprint, serial in (await self._store.revoked_issuers(
                expiring_after=after)).items():
            if fingerprint in known:
                continue
            owner = self._owners.get(fingerprint)
            if owner is None or owner not in {s.fingerprint for s in signers}:
                der = (await self._store.get_certificate(serial)).der
                cert = x509.load_der_x509_certificate(der) if der else None
                owner = next((s.fingerprint for s in signers
                              if cert is not None and names_as_issuer(cert, s.certificate)), "")
                self._owners[fingerprint] = owner
            if owner == signer.fingerprint:
                found.append(fingerprint)
        return found

    @staticmethod
    def _due(stored: CrlRecord, digest: str, now: datetime) -> bool:
        half_life = (stored.next_update - stored.this_update) / 2
        return (stored.entries != digest or now >= stored.this_update + half_life
                or stored.this_update > now)


def _build(signer: CrlSigner, stored: CrlRecord | None, *, distribution_point: str,
           **crl: object) -> bytes:
    """``build_crl``, its distribution point naming also every URL the stored CRL
    named (module docstring)."""
    return build_crl(signer, distribution_point=distribution_point,
                     earlier_points=distribution_points(stored.der) if stored else (),
                     **crl)  # type: ignore[arg-type]


def distribution_points(der: bytes) -> tuple[str, ...]:
    """The URLs the issuing distribution point of the CRL ``der`` names."""
    crl = x509.load_der_x509_crl(der)
    try:
        idp = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(name.value for name in idp.full_name or ()
                 if isinstance(name, x509.UniformResourceIdentifier))


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
