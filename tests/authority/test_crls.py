"""The CRL publisher (authority/crls.py): when a new CRL is due and what it lists
(RFC 5280 5), on SQLite and PostgreSQL, with two replicas where it matters."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.x509.oid import CRLEntryExtensionOID

from acme_ca.authority import crls
from acme_ca.authority.crls import CrlPublisher
from acme_ca.authority.published_crls import PublishedCrls
from acme_ca.errors import PkiError
from acme_ca.pki.hierarchy import fingerprint, renew_intermediate
from acme_ca.pki.publication import Publication
from acme_ca.store import Store
from tests.authority.crl_setup import BACKDATE, BASE, DAY, LIFETIME, PASS, Setup, load, number_of
from tests.conftest import ROOT_PASSPHRASE, Hierarchy, reissue_intermediate


async def test_the_first_round_publishes_a_crl_then_nothing_while_nothing_changes(
    ca: Hierarchy, db: Store
) -> None:
    """RFC 5280 5: a CRL exists from the start (empty, number 1); a round with no
    revocation, no expiry and a young CRL publishes nothing."""
    s = Setup(ca, db)
    assert await s.publisher.publish() == 1
    crl = await s.crl()
    assert (number_of(crl), len(crl)) == (1, 0)
    assert crl.next_update_utc - crl.last_update_utc == LIFETIME
    assert crl.last_update_utc <= s.clock.now()  # backdated
    s.clock.advance(timedelta(hours=11))
    assert await s.publisher.publish() == 0
    assert number_of(await s.crl()) == 1


async def test_a_revocation_is_on_the_next_crl_with_its_reason_and_a_higher_number(
    ca: Hierarchy, db: Store
) -> None:
    """RFC 5280 5.1.2.6, 5.3.1, 5.2.3: the revoked serial, its date and reason, on a CRL
    whose number grew; the unrevoked certificate is not listed."""
    s = Setup(ca, db)
    revoked, kept = await s.sign(), await s.sign()
    await s.publisher.publish()
    s.clock.advance(timedelta(seconds=3))
    await s.revoke(revoked, reason=1)
    assert await s.publisher.publish() == 1
    crl = await s.crl()
    assert number_of(crl) == 2
    entry = crl.get_revoked_certificate_by_serial_number(revoked.serial_number)
    assert entry is not None
    assert entry.revocation_date_utc == s.clock.now().replace(microsecond=0)
    reason = entry.extensions.get_extension_for_oid(CRLEntryExtensionOID.CRL_REASON).value
    assert reason.reason == x509.ReasonFlags.key_compromise
    assert crl.get_revoked_certificate_by_serial_number(kept.serial_number) is None
    assert await s.publisher.publish() == 0


async def test_a_new_base_url_makes_a_new_crl_naming_it(ca: Hierarchy, db: Store) -> None:
    """RFC 5280 5.2.5, 6.3.3 (b)(2)(i): the issuing distribution point must name the URL
    the leaves name (openssl refuses another: "different CRL scope"). After `[revocation]
    base_url` changes (a restart with the new URL), with nothing revoked meanwhile, the
    stored CRL is replaced at once, not half a lifetime later: the new leaves' URL
    first, the old leaves' kept."""
    s = Setup(ca, db)
    await s.publisher.publish()
    moved = Publication("http://pki.bluerobin.local")
    s.publisher = CrlPublisher(db, s.clock, lambda: s.issuer, moved, LIFETIME,
                               backdate=BACKDATE)
    s.clock.advance(timedelta(seconds=5))
    assert await s.publisher.publish() == 1
    crl = await s.crl()
    point = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    assert [n.value for n in point.full_name] == [
        moved.crl_url(s.issuer.fingerprint), Publication(BASE).crl_url(s.issuer.fingerprint)]
    assert number_of(crl) == 2
    assert await s.publisher.publish() == 0


async def test_past_half_its_lifetime_a_crl_is_replaced(ca: Hierarchy, db: Store) -> None:
    """RFC 5280 5.1.2.5: a new CRL before nextUpdate; here once half of the stored one's
    lifetime has passed, with the same entries and the next number."""
    s = Setup(ca, db)
    await s.publisher.publish()
    first = await s.crl()
    s.clock.advance(LIFETIME / 2)
    assert await s.publisher.publish() == 1
    second = await s.crl()
    assert number_of(second) == 2
    assert second.last_update_utc > first.last_update_utc
    assert second.next_update_utc == second.last_update_utc + LIFETIME


async def test_an_expired_revoked_certificate_leaves_after_one_crl_beyond_its_validity(
    ca: Hierarchy, db: Store
) -> None:
    """RFC 5280 5.1.2.6 and 3.3: an entry "MUST NOT be removed from the CRL until it
    appears on one regularly scheduled CRL issued beyond the revoked certificate's
    validity period". Expired, it stays on the next CRL (due at half-life), whose
    thisUpdate is after its notAfter; it leaves the one after that."""
    s = Setup(ca, db)
    short, long = await s.sign(timedelta(hours=2)), await s.sign(7 * DAY)
    await s.revoke(short)
    await s.revoke(long, reason=0)
    await s.publisher.publish()
    listed = await s.crl()
    assert {r.serial_number for r in listed} == {short.serial_number, long.serial_number}
    unspecified = listed.get_revoked_certificate_by_serial_number(long.serial_number)
    assert unspecified is not None and len(unspecified.extensions) == 0  # RFC 5280 5.3.1
    s.clock.advance(timedelta(hours=2, seconds=1))  # 1 s past the short one's notAfter
    assert await s.publisher.publish() == 0           # the expiry alone is not a change
    assert {r.serial_number for r in await s.crl()} == {short.serial_number,
                                                          long.serial_number}
    s.clock.advance(LIFETIME / 2)
    assert await s.publisher.publish() == 1
    beyond = await s.crl()
    assert beyond.last_update_utc > short.not_valid_after_utc
    assert {r.serial_number for r in beyond} == {short.serial_number, long.serial_number}
    s.clock.advance(timedelta(seconds=2))
    assert await s.publisher.publish() == 1
    after = await s.crl()
    assert {r.serial_number for r in after} == {long.serial_number}
    assert number_of(after) == number_of(listed) + 2


async def test_numbers_grow_across_replicas_and_two_at_once_publish_one_crl(
    ca: Hierarchy, replicas: tuple[Store, Store]
) -> None:
    """RFC 5280 5.2.3 (monotonically increasing): two replicas' publishers on one
    database; each number follows the stored one, whoever publishes. Run at once after
    a revocation (a lease holder and a former one), exactly one CRL is published: the
    other finds it already there, or loses the compare-and-set (Conflict, not an error)."""
    first, second = Setup(ca, replicas[0]), Setup(ca, replicas[1])
    second.clock = first.clock
    second.publisher = CrlPublisher(replicas[1], first.clock, lambda: second.issuer,
                                    Publication(BASE), LIFETIME, backdate=BACKDATE)
    assert await first.publisher.publish() == 1
    first.clock.advance(LIFETIME / 2)
    assert await second.publisher.publish() == 1
    assert number_of(await first.crl()) == 2
    cert = await first.sign()
    await first.revoke(cert)
    results = await asyncio.gather(first.publisher.publish(), second.publisher.publish())
    assert sorted(results) == [0, 1]
    crl = await second.crl()
    assert number_of(crl) == 3
    assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None


async def test_an_archived_intermediate_signs_the_crl_of_what_it_issued(
    ca: Hierarchy, db: Store
) -> None:
    """After `intermediate renew` (and a reload), each intermediate has its own CRL:
    a certificate the old one signed, revoked after the renewal, is on the old one's
    CRL, signed by the old key (RFC 5280 5.1.2.3); the new one's CRL lists it not."""
    s = Setup(ca, db)
    old_leaf = await s.sign()
    old = s.issuer
    renew_intermediate(ca.paths, root_passphrase=ROOT_PASSPHRASE, intermediate_passphrase=PASS,
                       now=ca.now, keep_old_key_until=ca.now + 30 * DAY)
    s.issuer = load(ca, ca.now)
    assert s.issuer.fingerprint != old.fingerprint
    await s.revoke(old_leaf)
    assert await s.publisher.publish() == 2
    old_crl = await s.crl(old)
    assert old_crl.issuer == old.certificate.subject
    assert old_crl.get_revoked_certificate_by_serial_number(old_leaf.serial_number) is not None
    new_crl = await s.crl(s.issuer)
    assert len(new_crl) == 0
    served = PublishedCrls(db, lambda: s.issuer, s.clock)
    for issuer in (old, s.issuer):
        record = await served.crl(issuer.fingerprint[:16])
        assert record is not None and record.issuer == issuer.fingerprint
        certificate = served.certificate(issuer.fingerprint[:16])
        assert certificate is not None
        assert x509.load_der_x509_certificate(certificate[0]) == issuer.certificate
    assert await served.crl("0123456789abcdef") is None
    assert served.certificate("0123456789abcdef") is None

    archived_key = next(x.held_at for x in s.issuer.crl_signers() if x.held_at)
    assert archived_key is not None
    archived_key.unlink()  # authority/archived_keys.py destroyed it: no more CRLs from it
    s.clock.advance(LIFETIME)
    assert await s.publisher.publish() == 1
    assert number_of(await s.crl(old)) == number_of(old_crl)
    assert fingerprint(old.certificate) == old.fingerprint


async def test_an_unreadable_archived_key_is_said_once_and_the_rest_is_published(
    ca: Hierarchy, db: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """An archived key the intermediate passphrase does not open (or a damaged file)
    signs no CRL: one warning naming it, not one per round; the current intermediate's
    CRL is published all the same."""
    renew_intermediate(ca.paths, root_passphrase=ROOT_PASSPHRASE, intermediate_passphrase=PASS,
                       now=ca.now, keep_old_key_until=ca.now + 30 * DAY)
    archived = next((ca.paths.intermediate_cert.parent / "archive").glob("*.key"))
    archived.write_bytes(b"damaged")
    s = Setup(ca, db)
    assert len(s.issuer.unreadable) == 1
    with caplog.at_level(logging.WARNING):
        assert await s.publisher.publish() == 1
        s.clock.advance(timedelta(seconds=2))
        assert await s.publisher.publish() == 0
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(said) == 1 and str(archived) in said[0], said
    assert [x.fingerprint for x in s.issuer.crl_signers()] == [s.issuer.fingerprint]


async def test_after_a_same_key_resigning_the_earlier_certificates_revocations_stay_listed(
    ca: Hierarchy, make_hierarchy: Callable[..., Hierarchy], db: Store
) -> None:
    """RFC 5280 5 (and 6.3.3: a CRL is matched to a certificate by issuer name and key):
    after the intermediate is re-signed with the same key and name (an operator's
    SIGHUP: the earlier certificate is not archived), a certificate the earlier one
    signed and that is revoked is on the CRL the intermediate signs now, which was
    otherwise no CRL at all; another CA's revocation in the same store is not."""
    s = Setup(ca, db)
    earlier = await s.sign()
    await s.revoke(earlier, reason=1)
    other = Setup(make_hierarchy("other", intermediate_passphrase=PASS), db)
    stranger = await other.sign()
    await other.revoke(stranger)
    constraints = s.issuer.certificate.extensions.get_extension_for_class(
        x509.NameConstraints).value
    reissue_intermediate(ca.paths, constraints, intermediate_passphrase=PASS)
    before = s.issuer.fingerprint
    s.issuer = load(ca, s.clock.now())
    assert s.issuer.fingerprint != before and before not in s.issuer.earlier
    later = await s.sign()
    s.clock.advance(timedelta(seconds=3))
    await s.revoke(later, reason=4)
    assert await s.publisher.publish() == 1
    crl = await s.crl()
    assert crl.get_revoked_certificate_by_serial_number(earlier.serial_number) is not None
    assert crl.get_revoked_certificate_by_serial_number(later.serial_number) is not None
    assert crl.get_revoked_certificate_by_serial_number(stranger.serial_number) is None
    assert await s.publisher.publish() == 0  # the listing is stable: nothing due


async def test_a_token_that_cannot_sign_a_crl_is_logged_in_one_line(
    ca: Hierarchy, db: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A signer's own failure (PkiError: a PKCS#11 token out of reach, at every round
    while it is away) is one error line with its message, not a traceback as for a bug."""
    failure = "the PKCS#11 token pkcs11:token=acme-ca failed: ObjectHandleInvalid"

    def token_away(*_: object, **__: object) -> x509.CertificateRevocationList:
        raise PkiError(failure)

    monkeypatch.setattr(crls, "build_crl", token_away)
    with caplog.at_level(logging.ERROR, logger="acme_ca"):
        assert await Setup(ca, db).publisher.publish() == 0
    (logged,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert failure in logged.getMessage() and logged.exc_info is None
