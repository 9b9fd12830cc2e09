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
two CRLs (the publisher down for a day, a lease that moved): nothing leaves unseen.
An expiry alone does not make a CRL due, but once a CRL dated beyond a notAfter is
stored its cut has moved past that entry, the list without it differs, and the next
round publishes one more CRL without it (so a CRL carries no entry longer than needed).

A round that publishes nothing reads little, whatever the number of revocations: each
stored CRL without its DER (``get_crl(der=False)``), ``revoked_issuers`` once, and per
signer the count and latest revocation date of the entries it would list
(``revoked_summary``). The entries themselves are read (and digested) only when the
CRL is due by time, or when that summary, the URL, the cut or the stored number
(another replica published) differ from what the signer's last check saw (after
publishing, that check is made from the entries in hand); the stored DER only when a
CRL is built (the URLs it named).

thisUpdate: the clock less [policy] backdate (relying parties' clocks lag), but never
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
outcome. A revocation is on the CRL within a period or two. Building and signing run
off the event loop, in the signing pool (``pki/signer.off_loop``). One intermediate's
CRL failing (its key, the database) is logged and the others of the round still run.

What every replica serves of it is ``published_crls.py``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from cryptography import x509

from acme_ca.clock import Clock
from acme_ca.domain.models import CrlRecord, RevokedEntry
from acme_ca.errors import AcmeCaError, Conflict
from acme_ca.pki.crl import CrlEntry, CrlSigner, build_crl
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.profiles import names_as_issuer
from acme_ca.pki.publication import Publication, issuer_id
from acme_ca.pki.signer import off_loop
from acme_ca.store.base import Store
from acme_ca.store.reads import ReadStore

__all__ = ["CrlPublisher", "unsigned_crl_problem"]

log = logging.getLogger(__name__)

SECOND = timedelta(seconds=1)  # a CRL's times are whole seconds (UTCTime)


async def unsigned_crl_problem(store: ReadStore, issuer: Issuer, now: datetime) -> str | None:
    """The reason serve must refuse ``issuer``: an archived intermediate whose key could
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


@dataclass(frozen=True)
class _Checked:
    """What one signer's last check saw, when it found no CRL due: while all of it is
    the same and the CRL is not due by time, the entries are not read again."""

    number: int  # the stored CRL's (another replica publishing moves it)
    summary: tuple[int, datetime | None]  # revoked_summary over every fingerprint listed
    url: str  # the distribution point
    cut: datetime  # entries ending after it are listed
    fingerprints: tuple[str, ...]  # the signer's and those of the same CA (_same_ca)


@contextmanager
def _logged(signer: CrlSigner) -> Iterator[None]:
    """One CRL failing (its key, the database) is logged and leaves the others of the
    round to run: an AcmeCaError (a token out of reach, the database) in one line,
    anything else with its traceback (a bug)."""
    try:
        yield
    except AcmeCaError as exc:
        log.error("the CRL of intermediate %s was not published: %s",
                  issuer_id(signer.fingerprint), exc)
    except Exception:
        log.exception("the CRL of intermediate %s was not published",
                      issuer_id(signer.fingerprint))


class CrlPublisher:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        issuer: Callable[[], Issuer],
        publication: Publication,
        lifetime: timedelta,
        *,
        backdate: timedelta,
    ) -> None:
        self._store = store
        self._clock = clock
        self._issuer = issuer
        self._publication = publication
        self._lifetime = lifetime
        self._backdate = backdate  # [policy] backdate: relying parties' clocks lag
        self._said: set[str] = set()
        self._owners: dict[str, str] = {}  # unknown issuer fingerprint -> its signer's, or ""
        self._checked: dict[str, _Checked] = {}  # signer fingerprint -> its last check

    async def publish(self) -> int:
        """One round: a new CRL for every signer whose CRL is due; how many published."""
        issuer = self._issuer()
        for problem in set(issuer.unreadable.values()) - self._said:
            log.warning("%s: the CRL of that archived intermediate is not signed", problem)
        self._said = set(issuer.unreadable.values())
        now = self._clock.now()
        states: dict[str, CrlRecord | None] = {}
        for signer in issuer.crl_signers():
            with _logged(signer):
                states[signer.fingerprint] = await self._store.get_crl(signer.fingerprint,
                                                                       der=False)
        if not states:
            return 0
        earliest = min(self._listed_after(state, now) for state in states.values())
        revoked_issuers = await self._store.revoked_issuers(expiring_after=earliest)
        published = 0
        for signer in issuer.crl_signers():
            if signer.fingerprint in states:
                with _logged(signer):
                    published += await self.publish_for(signer, states[signer.fingerprint],
                                                        revoked_issuers, now)
        return published

    async def publish_for(self, signer: CrlSigner, state: CrlRecord | None,
                          revoked_issuers: dict[str, str], now: datetime) -> int:
        """A new CRL for ``signer`` if one is due (module docstring), given its stored
        CRL without the DER and the round's ``revoked_issuers`` (read with a cut no later
        than this signer's): 1 if published, 0 if none was due or another process
        published first."""
        cut = self._listed_after(state, now)
        current = self._publication.crl_url(signer.fingerprint)
        fingerprints = (signer.fingerprint,
                        *await self._same_ca(signer, revoked_issuers))
        checked = None
        if state is not None:
            checked = _Checked(state.number, await self._summary(fingerprints, cut), current,
                               cut, fingerprints)
            if not self._due_by_time(state, now) and self._checked.get(
                    signer.fingerprint) == checked:
                return 0
        entries = await self._entries(fingerprints, cut)
        digest = entries_digest(entries, current)
        if state is not None and not self._due(state, digest, now):
            if checked is not None:
                self._checked[signer.fingerprint] = checked
            return 0
        published = await self._publish(signer, state, entries, digest, current, now)
        if published is not None:
            self._remember(signer, published, entries, current, fingerprints, now)
        return 1 if published is not None else 0

    def _remember(self, signer: CrlSigner, published: CrlRecord,
                  entries: Sequence[RevokedEntry], url: str, fingerprints: tuple[str, ...],
                  now: datetime) -> None:
        """The check the next round would make against the CRL just published, from the
        entries in hand, so that it reads them again only if something changed since;
        not when an entry is past the new cut (it leaves with one more CRL)."""
        cut = self._listed_after(published, now)
        if all(entry.not_after > cut for entry in entries):
            latest = max((entry.revoked_at for entry in entries), default=None)
            self._checked[signer.fingerprint] = _Checked(
                published.number, (len(entries), latest), url, cut, fingerprints)

    async def _publish(self, signer: CrlSigner, state: CrlRecord | None,
                       entries: Sequence[RevokedEntry], digest: str, current: str,
                       now: datetime) -> CrlRecord | None:
        """Build, sign and store the next CRL: the record (without its DER) if stored,
        None if another process published first."""
        number = state.number + 1 if state is not None else 1
        this_update = self._this_update(state, entries, now)
        next_update = this_update + self._lifetime
        stored = await self._store.get_crl(signer.fingerprint) if state is not None else None
        der = await off_loop(
            build_crl, signer, number=number, this_update=this_update,
            next_update=next_update,
            entries=[CrlEntry(int(e.serial, 16), e.revoked_at, e.reason) for e in entries],
            distribution_point=current,
            earlier_points=distribution_points(stored.der) if stored is not None else (),
        )
        record = CrlRecord(signer.fingerprint, number, this_update, next_update, digest, der)
        try:
            await self._store.publish_crl(record)
        except Conflict:
            log.info("CRL %d of intermediate %s: another process published first",
                     number, issuer_id(signer.fingerprint))
            return None
        log.info("published CRL %d of intermediate %s: %d revoked, next update %s UTC",
                 number, issuer_id(signer.fingerprint), len(entries),
                 f"{next_update:%Y-%m-%d %H:%M:%S}")
        return replace(record, der=b"")

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

    async def _summary(self, fingerprints: Sequence[str],
                       after: datetime) -> tuple[int, datetime | None]:
        """``revoked_summary`` over the entries ``_entries`` would read."""
        count, latest = 0, None
        for fingerprint in fingerprints:
            more, newest = await self._store.revoked_summary(fingerprint,
                                                             expiring_after=after)
            count += more
            if newest is not None and (latest is None or newest > latest):
                latest = newest
        return count, latest

    async def _entries(self, fingerprints: Sequence[str],
                       after: datetime) -> list[RevokedEntry]:
        """The revoked certificates signed by the signer's fingerprint and the others of
        the same CA (``_same_ca``) that end after ``after``, by serial."""
        entries = []
        for fingerprint in fingerprints:
            entries += await self._store.revoked_certificates(fingerprint,
                                                              expiring_after=after)
        return sorted(entries, key=lambda entry: entry.serial)

    async def _same_ca(self, signer: CrlSigner,
                       revoked_issuers: dict[str, str]) -> list[str]:
        """The issuer fingerprints of ``revoked_issuers`` the server holds no more whose
        stored certificate names ``signer`` (issuer name and AKI: ``names_as_issuer``):
        an earlier certificate of the same name and key (the intermediate re-signed),
        whose revocations would reach no CRL otherwise, and this CRL's issuer name and
        key are theirs too (RFC 5280 5). Each is mapped once to the first signer that
        matches, or to none (remembered as ``""`` while the signers stay the same)."""
        issuer = self._issuer()
        signers = list(issuer.crl_signers())
        fingerprints = {s.fingerprint for s in signers}
        known = {issuer.fingerprint, *issuer.earlier, *fingerprints}
        found = []
        for fingerprint, serial in revoked_issuers.items():
            if fingerprint in known:
                continue
            owner = self._owners.get(fingerprint)
            if owner is None or (owner and owner not in fingerprints):
                der = (await self._store.get_certificate(serial)).der
                cert = x509.load_der_x509_certificate(der) if der else None
                owner = next((s.fingerprint for s in signers
                              if cert is not None and names_as_issuer(cert, s.certificate)), "")
                self._owners[fingerprint] = owner
            if owner == signer.fingerprint:
                found.append(fingerprint)
        return found

    @staticmethod
    def _due_by_time(stored: CrlRecord, now: datetime) -> bool:
        half_life = (stored.next_update - stored.this_update) / 2
        return now >= stored.this_update + half_life or stored.this_update > now

    @classmethod
    def _due(cls, stored: CrlRecord, digest: str, now: datetime) -> bool:
        return stored.entries != digest or cls._due_by_time(stored, now)


def distribution_points(der: bytes) -> tuple[str, ...]:
    """The URLs the issuing distribution point of the CRL ``der`` names."""
    crl = x509.load_der_x509_crl(der)
    try:
        idp = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(name.value for name in idp.full_name or ()
                 if isinstance(name, x509.UniformResourceIdentifier))
