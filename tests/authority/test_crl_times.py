"""The CRL publisher (authority/crls.py) where time and change make it subtle: when an
expired entry may leave, thisUpdate against clocks that step and revocations that are
newer than the backdate, the URLs its issuing distribution point names after
[revocation] base_url changed, a replica that has not reloaded, and an archived key
that cannot be read. SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from acme_ca.authority.crls import CrlPublisher, unsigned_crl_problem
from acme_ca.authority.published_crls import PublishedCrls
from acme_ca.domain.models import CertificateRecord, CrlRecord, RevokedEntry
from acme_ca.errors import StoreUnavailable
from acme_ca.pki.hierarchy import renew_intermediate
from acme_ca.pki.publication import Publication
from acme_ca.store import Store
from tests.authority.crl_setup import BACKDATE, BASE, DAY, LIFETIME, PASS, Setup, load
from tests.conftest import ROOT_PASSPHRASE, Hierarchy


async def test_an_expired_entry_stays_until_a_crl_beyond_its_validity_even_after_downtime(
    ca: Hierarchy, db: Store
) -> None:
    """RFC 5280 5.1.2.6 and 3.3: the entry must appear on one CRL issued beyond the
    certificate's validity before it leaves. The publisher down for three days (past
    the CRL's lifetime): the first CRL after it still lists the entry, dated after
    the notAfter; only the next one drops it."""
    s = Setup(ca, db)
    leaf = await s.sign(timedelta(hours=2))
    await s.revoke(leaf)
    await s.publisher.publish()
    s.clock.advance(3 * DAY)
    assert await s.publisher.publish() == 1
    beyond = await s.crl()
    assert beyond.last_update_utc > leaf.not_valid_after_utc
    assert beyond.get_revoked_certificate_by_serial_number(leaf.serial_number) is not None
    s.clock.advance(timedelta(seconds=2))
    assert await s.publisher.publish() == 1
    assert (await s.crl()).get_revoked_certificate_by_serial_number(leaf.serial_number) is None


async def test_this_update_is_never_before_a_revocation_it_lists(ca: Hierarchy, db: Store) -> None:
    """RFC 5280 5.1.2.4 and 5.1.2.6: a revocationDate later than the CRL's thisUpdate
    (backdated a minute) reads as a CRL issued before the revocation; thisUpdate is
    moved up to it, and never after the clock."""
    s = Setup(ca, db)
    leaf = await s.sign()
    s.clock.advance(timedelta(seconds=30))
    await s.revoke(leaf)
    await s.publisher.publish()
    crl = await s.crl()
    entry = crl.get_revoked_certificate_by_serial_number(leaf.serial_number)
    assert entry is not None
    assert entry.revocation_date_utc <= crl.last_update_utc <= s.clock.now()


async def test_this_update_never_goes_back_when_the_clock_steps_back(
    ca: Hierarchy, db: Store
) -> None:
    """RFC 5280 5.1.2.4 and 5.2.3: a newer CRL (higher number) must not look older. The
    lease moves from a replica whose clock is 90 s ahead to one whose clock is right:
    the next thisUpdate follows the stored one (plus a second), not the backdated clock."""
    s = Setup(ca, db)
    leaf = await s.sign()
    s.clock.advance(timedelta(seconds=90))
    await s.publisher.publish()
    first = await db.get_crl(s.issuer.fingerprint)
    s.clock.set_wall(s.clock.now() - timedelta(seconds=30))
    await s.revoke(leaf)
    assert await s.publisher.publish() == 1
    second = await db.get_crl(s.issuer.fingerprint)
    assert first is not None and second is not None
    assert first.this_update < second.this_update <= s.clock.now()


async def test_a_crl_dated_in_the_future_is_replaced_at_once(ca: Hierarchy, db: Store) -> None:
    """RFC 5280 5.1.2.4: a relying party refuses a CRL whose thisUpdate is still to come
    (openssl: "CRL is not yet valid"). Signed by a lease holder whose clock ran 6 h
    ahead, it is replaced by the first round whose clock is right, dated now at the
    latest (the one time thisUpdate goes back: the listener revalidates by number)."""
    s = Setup(ca, db)
    s.clock.set_wall(s.clock.now() + timedelta(hours=6))
    await s.publisher.publish()
    s.clock.set_wall(s.clock.now() - timedelta(hours=6) + timedelta(seconds=10))
    assert await s.publisher.publish() == 1
    stored = await db.get_crl(s.issuer.fingerprint)
    assert stored is not None and stored.this_update <= s.clock.now()
    assert stored.number == 2


async def test_the_distribution_point_keeps_the_url_of_before_a_base_url_change(
    ca: Hierarchy, db: Store
) -> None:
    """RFC 5280 5.2.5 and 6.3.3 (b)(2)(i): the CRL's critical issuing distribution point
    must share a name with the leaf's CRL distribution point. After [revocation]
    base_url changes, leaves signed before carry the old URL: the CRL names the new
    URL first and keeps the old one, so both old and new leaves are in its scope."""
    s = Setup(ca, db)
    old_leaf = await s.sign()
    await s.publisher.publish()
    moved = Publication("http://crl.example.net")
    s.publisher = CrlPublisher(db, s.clock, lambda: s.issuer, moved, LIFETIME,
                               backdate=BACKDATE)
    await s.revoke(old_leaf)
    assert await s.publisher.publish() == 1
    s.clock.advance(LIFETIME / 2)
    assert await s.publisher.publish() == 1  # and on every CRL after that
    idp = (await s.crl()).extensions.get_extension_for_class(x509.IssuingDistributionPoint)
    assert idp.critical
    assert [n.value for n in idp.value.full_name] == [moved.crl_url(s.issuer.fingerprint),
                                                      Publication(BASE).crl_url(
                                                          s.issuer.fingerprint)]
    cdp = old_leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert set(idp.value.full_name) & set(cdp[0].full_name)


async def test_a_replica_that_has_not_reloaded_serves_the_new_intermediates_crl(
    ca: Hierarchy, db: Store
) -> None:
    """RFC 5280 4.2.1.13: during a rolling `intermediate renew`, leaves of the new
    intermediate name its CRL at once; a replica not yet reloaded finds it in the
    shared store by its issuer id instead of answering 404."""
    s = Setup(ca, db)
    stale = s.issuer
    renew_intermediate(ca.paths, root_passphrase=ROOT_PASSPHRASE, intermediate_passphrase=PASS,
                       now=ca.now, keep_old_key_until=ca.now + 30 * DAY)
    s.issuer = load(ca, ca.now)
    await s.publisher.publish()
    served = await PublishedCrls(db, lambda: stale, s.clock).crl(s.issuer.fingerprint[:16])
    assert served is not None and served.issuer == s.issuer.fingerprint


async def test_an_unreadable_archived_key_with_unexpired_certificates_stops_serve(
    ca: Hierarchy, db: Store
) -> None:
    """RFC 5280 5.1.2.3 and 3.3: while a certificate the archived intermediate signed is
    unexpired, only its key can list its revocation. Unreadable, `serve` refuses to
    start (and a reload keeps the issuer it had) in one line naming the key file; once
    nothing it signed is unexpired, it is only the publisher's warning."""
    s = Setup(ca, db)
    leaf = await s.sign(7 * DAY)
    renew_intermediate(ca.paths, root_passphrase=ROOT_PASSPHRASE, intermediate_passphrase=PASS,
                       now=ca.now, keep_old_key_until=ca.now + 30 * DAY)
    archived = next((ca.paths.intermediate_cert.parent / "archive").glob("*.key"))
    archived.write_bytes(b"damaged")
    s.issuer = load(ca, ca.now)
    problem = await unsigned_crl_problem(db, s.issuer, s.clock.now())
    assert problem is not None and "\n" not in problem and str(archived) in problem
    after = leaf.not_valid_after_utc + timedelta(seconds=1)
    assert await unsigned_crl_problem(db, s.issuer, after) is None
    readable = load(ca, ca.now)
    assert await unsigned_crl_problem(db, readable, s.clock.now()) is not None
    archived.unlink()
    assert await unsigned_crl_problem(db, load(ca, ca.now), s.clock.now()) is None


async def test_an_archived_key_behind_a_symbolic_link_is_not_read(ca: Hierarchy, db: Store) -> None:
    """A key planted in the archive as a symbolic link (as authority/archived_keys.py
    never follows one to destroy a key, pki/archive.py) is not read: it signs no CRL
    and is named as unreadable."""
    renew_intermediate(ca.paths, root_passphrase=ROOT_PASSPHRASE, intermediate_passphrase=PASS,
                       now=ca.now, keep_old_key_until=ca.now + 30 * DAY)
    archived = next((ca.paths.intermediate_cert.parent / "archive").glob("*.key"))
    moved = archived.with_name("elsewhere.pem")
    archived.rename(moved)
    archived.symlink_to(moved)
    issuer = load(ca, ca.now)
    assert [x.fingerprint for x in issuer.crl_signers()] == [issuer.fingerprint]
    assert "symbolic link" in next(iter(issuer.unreadable.values()))


class FailingFor:
    """The store, out of reach for one intermediate's CRL alone."""

    def __init__(self, inner: Store, fingerprint: str) -> None:
        self._inner, self._fingerprint = inner, fingerprint

    async def get_crl(self, issuer: str, *, der: bool = True) -> CrlRecord | None:
        if issuer == self._fingerprint:
            raise StoreUnavailable("cut")
        return await self._inner.get_crl(issuer, der=der)

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


async def test_one_crl_failing_leaves_the_others_of_the_round(
    ca: Hierarchy, db: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """The archived intermediate's CRL cannot be published this round (logged): the
    current intermediate's CRL is published all the same."""
    s = Setup(ca, db)
    old = s.issuer
    renew_intermediate(ca.paths, root_passphrase=ROOT_PASSPHRASE, intermediate_passphrase=PASS,
                       now=ca.now, keep_old_key_until=ca.now + 30 * DAY)
    s.issuer = load(ca, ca.now)
    publisher = CrlPublisher(FailingFor(db, old.fingerprint), s.clock,  # type: ignore[arg-type]
                             lambda: s.issuer, Publication(BASE), LIFETIME,
                             backdate=BACKDATE)
    with caplog.at_level(logging.ERROR):
        assert await publisher.publish() == 1
    assert await db.get_crl(s.issuer.fingerprint) is not None
    assert any(old.fingerprint[:16] in r.getMessage() for r in caplog.records)


async def test_an_expiry_makes_one_more_crl_the_round_after_one_beyond_its_validity(
    ca: Hierarchy, db: Store
) -> None:
    """RFC 5280 5.1.2.6 and 3.3 (module docstring of authority/crls.py): an expiry alone
    makes no CRL due (2 h on, past the notAfter: nothing), but once a CRL dated beyond
    the notAfter is stored (the one due by time, past half its lifetime), the next
    round publishes one more CRL without the entry; then nothing again."""
    s = Setup(ca, db)
    leaf = await s.sign(timedelta(hours=1))
    await s.revoke(leaf)
    assert await s.publisher.publish() == 1
    s.clock.advance(timedelta(hours=2))
    assert await s.publisher.publish() == 0
    s.clock.advance(timedelta(hours=11))
    assert await s.publisher.publish() == 1
    assert (await s.crl()).get_revoked_certificate_by_serial_number(leaf.serial_number)
    s.clock.advance(timedelta(seconds=2))
    assert await s.publisher.publish() == 1
    assert len(await s.crl()) == 0
    s.clock.advance(timedelta(seconds=2))
    assert await s.publisher.publish() == 0


class Counting:
    """The store, counting the reads a round of the publisher makes."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner
        self.calls: Counter[str] = Counter()

    async def get_crl(self, issuer: str, *, der: bool = True) -> CrlRecord | None:
        self.calls["get_crl" if der else "get_crl without der"] += 1
        return await self._inner.get_crl(issuer, der=der)

    async def revoked_certificates(self, issuer: str, *,
                                   expiring_after: datetime) -> list[RevokedEntry]:
        self.calls["revoked_certificates"] += 1
        return await self._inner.revoked_certificates(issuer, expiring_after=expiring_after)

    async def get_certificate(self, serial: str) -> CertificateRecord:
        self.calls["get_certificate"] += 1
        return await self._inner.get_certificate(serial)

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


async def test_a_round_with_nothing_changed_reads_neither_the_entries_nor_the_der(
    ca: Hierarchy, db: Store
) -> None:
    """RFC 5280 5 (a CRL on a schedule, not on every round): a round reads the revoked
    entries only when the CRL is due by time or their count and latest revocation, the
    URL, the cut or the stored number (another replica published) changed; the stored
    DER only to build a CRL. A revoked certificate whose unknown issuer names no signer
    is read once, not every round."""
    s = Setup(ca, db)
    stranger = CertificateRecord(
        serial="ffee01", issuer="ef" * 32, names=("old.bluerobin.local",), profile="server",
        not_before=ca.now, not_after=ca.now + 7 * DAY, created_at=ca.now)
    await db.reserve_serial(stranger)
    await db.store_certificate("ffee01", s.issuer.certificate.public_bytes(Encoding.DER))
    await db.revoke_certificate("ffee01", 1, ca.now)
    counting = Counting(db)
    s.publisher = CrlPublisher(counting, s.clock, lambda: s.issuer,  # type: ignore[arg-type]
                               Publication(BASE), LIFETIME, backdate=BACKDATE)
    assert await s.publisher.publish() == 1
    counting.calls.clear()
    for _ in range(3):
        s.clock.advance(timedelta(seconds=2))
        assert await s.publisher.publish() == 0
    assert counting.calls == {"get_crl without der": 3}
    other = CrlPublisher(db, s.clock, lambda: s.issuer, Publication(BASE), LIFETIME,
                         backdate=BACKDATE)
    s.clock.advance(LIFETIME / 2)
    assert await other.publish() == 1
    s.clock.advance(timedelta(seconds=2))
    assert await s.publisher.publish() == 0  # another replica published: read again
    assert counting.calls["revoked_certificates"] == 1
    await s.revoke(await s.sign())
    s.clock.advance(timedelta(seconds=2))
    assert await s.publisher.publish() == 1
    assert counting.calls["get_crl"] == 1 and counting.calls["get_certificate"] == 0
