"""The OCSP responder (RFC 6960) over a real store: status from the certificate's
record read at each request, responses cached until they near their nextUpdate and
never past a revocation, and the delegated responder certificates of this host
issued, reused and renewed like the server's own TLS certificate."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from acme_ca.authority import issuance
from acme_ca.authority.ocsp import OcspResponder
from acme_ca.authority.ocsp_responders import (
    PROFILE,
    ResponderCertificates,
    SigningCa,
    responder_validity,
)
from acme_ca.clock import FakeClock
from acme_ca.domain.models import CertificateStatus, serial_hex
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.ocsp import RESPONDER_VALIDITY
from acme_ca.pki.profiles import SERVER_AUTH, LeafRequest
from acme_ca.store import Store, open_store
from tests.conftest import load_issuer, reissue_intermediate
from tests.relay import Relay
from tests.store.pg import pg_url, through  # noqa: F401 (pg_url: a fixture)

LIFETIME = timedelta(hours=24)


@dataclass
class Setup:
    store: Store
    clock: FakeClock
    issuer: Issuer
    signers: list[SigningCa]
    certificates: ResponderCertificates
    responder: OcspResponder
    directory: Path

    async def leaf(self, issuer: Issuer | None = None) -> x509.Certificate:
        issuer = issuer or self.issuer
        now = self.clock.now()
        key = ec.generate_private_key(ec.SECP256R1())
        request = LeafRequest(public_key=key.public_key(), dns_names=("a.bluerobin.local",),
                              ip_addresses=(), not_before=now, not_after=now + timedelta(days=1),
                              extended_key_usages=SERVER_AUTH)
        return await issuance.issue(self.store, issuer, request, now, profile="server")

    async def ask(self, leaf: x509.Certificate, issuer: x509.Certificate | None = None, *,
                  nonce: bytes | None = None) -> ocsp.OCSPResponse:
        builder = ocsp.OCSPRequestBuilder().add_certificate(
            leaf, issuer or self.issuer.certificate, hashes.SHA256())
        if nonce is not None:
            builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
        answer = await self.responder.answer(builder.build().public_bytes(Encoding.DER))
        return ocsp.load_der_ocsp_response(answer.der)


def responders(store: Store, clock: FakeClock, signers: list[SigningCa],
               directory: Path) -> ResponderCertificates:
    return ResponderCertificates(store=store, signers=lambda: signers, directory=directory,
                                 clock=clock, validity=responder_validity(LIFETIME))


@pytest.fixture
async def setup(make_hierarchy: Callable[..., Any], tmp_path: Path) -> AsyncIterator[Setup]:
    hierarchy = make_hierarchy("pki")
    clock = FakeClock(hierarchy.now)
    issuer = load_issuer(hierarchy)
    store = await open_store(f"sqlite:///{tmp_path / 'db.sqlite'}", clock=clock)
    signers: list[SigningCa] = [issuer]
    certificates = responders(store, clock, signers, tmp_path / "ocsp")
    try:
        await certificates.start()
        yield Setup(store, clock, issuer, signers, certificates,
                    OcspResponder(store, certificates, clock, LIFETIME), tmp_path / "ocsp")
    finally:
        await store.close()


def verify(response: ocsp.OCSPResponse, issuer: Issuer) -> x509.Certificate:
    """RFC 6960 4.2.2.2: signed by the responder certificate it carries, which the
    intermediate issued for OCSP signing."""
    (responder,) = response.certificates
    responder.verify_directly_issued_by(issuer.certificate)
    eku = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [x509.oid.ExtendedKeyUsageOID.OCSP_SIGNING]
    public = responder.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(hashes.SHA256()))
    return responder


async def test_the_responder_certificate_is_issued_recorded_and_kept_private(
        setup: Setup) -> None:
    """Issued through the store (its serial reserved first, like every certificate the
    intermediate signs), its key 0600 in <data>/ocsp/<issuer id>.key."""
    responder = setup.certificates.responder(setup.issuer.fingerprint)
    assert responder is not None
    record = await setup.store.get_certificate(serial_hex(responder.certificate.serial_number))
    assert record.status is CertificateStatus.ISSUED and record.profile == PROFILE
    assert record.issuer == setup.issuer.fingerprint
    cert_path, key_path = setup.certificates.paths(setup.issuer.fingerprint)
    assert cert_path.name == setup.issuer.fingerprint[:16] + ".crt"
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    assert (responder.certificate.not_valid_after_utc - responder.certificate.not_valid_before_utc
            == RESPONDER_VALIDITY + timedelta(minutes=1))


async def test_good_then_revoked_at_once_despite_the_cache(setup: Setup) -> None:
    """RFC 6960 2.2: good for an issued certificate; revoked, with its time and reason,
    on the very next request after the revocation (the cache is keyed by status).
    thisUpdate now (a minute back), nextUpdate + [revocation] ocsp_lifetime."""
    leaf = await setup.leaf()
    first = await setup.ask(leaf)
    assert first.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert first.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert first.serial_number == leaf.serial_number
    assert first.this_update_utc == setup.clock.now() - timedelta(minutes=1)
    assert first.next_update_utc == first.this_update_utc + LIFETIME
    verify(first, setup.issuer)
    again = await setup.ask(leaf)
    assert again.tbs_response_bytes == first.tbs_response_bytes  # cached: the same bytes

    when = setup.clock.now().replace(microsecond=0)
    await setup.store.revoke_certificate(serial_hex(leaf.serial_number), 1, when)
    gone = await setup.ask(leaf)
    assert gone.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert gone.revocation_time_utc == when
    assert gone.revocation_reason is x509.ReasonFlags.key_compromise
    assert gone.this_update_utc == when  # not the minute back: it was good then
    verify(gone, setup.issuer)


async def test_a_cached_response_is_renewed_when_a_third_of_its_life_is_left(
        setup: Setup) -> None:
    leaf = await setup.leaf()
    first = await setup.ask(leaf)
    setup.clock.advance(LIFETIME / 2)
    assert (await setup.ask(leaf)).tbs_response_bytes == first.tbs_response_bytes
    setup.clock.advance(LIFETIME / 6 + timedelta(seconds=1))
    later = await setup.ask(leaf)
    assert later.this_update_utc > first.this_update_utc
    assert later.certificate_status is ocsp.OCSPCertStatus.GOOD


async def test_unknown_for_a_serial_never_issued_or_only_reserved(setup: Setup) -> None:
    """RFC 6960 2.2 unknown: no record (a serial this CA never signed), or a RESERVED
    one (the serial stored before signing, the certificate never stored)."""
    leaf = await setup.leaf()
    await setup.store.reserve_serial(issuance.reservation(
        setup.issuer, LeafRequest(
            public_key=leaf.public_key(), dns_names=("b.bluerobin.local",),  # type: ignore[arg-type]
            ip_addresses=(), not_before=setup.clock.now(),
            not_after=setup.clock.now() + timedelta(days=1), extended_key_usages=SERVER_AUTH,
            serial=leaf.serial_number + 1),
        setup.clock.now(), profile="server")[0])
    for serial in (leaf.serial_number + 1, leaf.serial_number + 2):
        builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
            *_issuer_hashes(leaf, setup.issuer.certificate), serial, hashes.SHA256())
        answer = await setup.responder.answer(builder.build().public_bytes(Encoding.DER))
        response = ocsp.load_der_ocsp_response(answer.der)
        assert response.certificate_status is ocsp.OCSPCertStatus.UNKNOWN
        assert response.serial_number == serial
        verify(response, setup.issuer)


def _issuer_hashes(leaf: x509.Certificate, issuer: x509.Certificate) -> tuple[bytes, bytes]:
    request = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA256()).build()
    return request.issuer_name_hash, request.issuer_key_hash


async def test_another_issuer_is_unauthorized_and_a_serial_of_another_is_unknown(
        setup: Setup, make_hierarchy: Callable[..., Any]) -> None:
    """RFC 6960 2.3 unauthorized: a CertID naming a CA this responder does not serve.
    With two signing intermediates (after `intermediate renew`), each answers for
    its own certificates: a serial the other signed is unknown under this one's
    CertID, and good under its own, signed by its own responder."""
    other = load_issuer(make_hierarchy("other"))
    theirs = await setup.leaf(other)
    stranger = await setup.ask(theirs, other.certificate)
    assert stranger.response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED

    setup.signers.append(other)  # it signs now too (an archived intermediate, say)
    await setup.certificates.renew_due()
    own = await setup.ask(theirs, other.certificate)
    assert own.certificate_status is ocsp.OCSPCertStatus.GOOD
    verify(own, other)
    crossed = await setup.ask(theirs, setup.issuer.certificate)
    assert crossed.certificate_status is ocsp.OCSPCertStatus.UNKNOWN
    verify(crossed, setup.issuer)


async def test_after_the_intermediate_is_resigned_its_earlier_leaves_are_still_answered(
        make_hierarchy: Callable[..., Any], tmp_path: Path) -> None:
    """RFC 6960 4.1.1: a CertID names its issuer by the hashes of its name and key, so
    an intermediate re-signed with the same key and name (an operator's SIGHUP) answers
    for the leaves its earlier certificate signed: revoked stays revoked, good good,
    under either certificate's CertID, and a leaf of another CA stays unknown."""
    hierarchy = make_hierarchy("pki")
    clock = FakeClock(hierarchy.now)
    before = load_issuer(hierarchy)
    store = await open_store(f"sqlite:///{tmp_path / 'db.sqlite'}", clock=clock)
    try:
        earlier = Setup(store, clock, before, [before], None, None, tmp_path)  # type: ignore[arg-type]
        revoked_leaf, good_leaf = await earlier.leaf(), await earlier.leaf()
        await store.revoke_certificate(serial_hex(revoked_leaf.serial_number), 1,
                                       clock.now().replace(microsecond=0))
        other = load_issuer(make_hierarchy("other"))
        stranger = await earlier.leaf(other)
        constraints = before.certificate.extensions.get_extension_for_class(
            x509.NameConstraints).value
        reissue_intermediate(hierarchy.paths, constraints)
        after = load_issuer(hierarchy)  # what serve holds after SIGHUP
        assert after.fingerprint != before.fingerprint
        certificates = responders(store, clock, [after], tmp_path / "ocsp")
        await certificates.start()
        now = Setup(store, clock, after, [after], certificates,
                    OcspResponder(store, certificates, clock, LIFETIME), tmp_path / "ocsp")
        for ca in (before.certificate, after.certificate):
            answered = await now.ask(revoked_leaf, ca)
            assert answered.certificate_status is ocsp.OCSPCertStatus.REVOKED
            assert answered.revocation_reason is x509.ReasonFlags.key_compromise
            assert (await now.ask(good_leaf, ca)).certificate_status is (
                ocsp.OCSPCertStatus.GOOD)
            verify(answered, after)
            assert (await now.ask(stranger, ca)).certificate_status is (
                ocsp.OCSPCertStatus.UNKNOWN)
    finally:
        await store.close()


async def test_malformed_and_nonce(setup: Setup) -> None:
    """RFC 6960 2.3 malformedRequest for what is not a request; RFC 8954 a nonce
    echoed, in a response signed for that request alone (not cached)."""
    malformed = ocsp.load_der_ocsp_response((await setup.responder.answer(b"\x30\x00")).der)
    assert malformed.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    leaf = await setup.leaf()
    first = await setup.ask(leaf, nonce=b"a" * 16)
    second = await setup.ask(leaf, nonce=b"b" * 16)
    for response, nonce in ((first, b"a" * 16), (second, b"b" * 16)):
        assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
        verify(response, setup.issuer)
    plain = await setup.ask(leaf)
    assert len(plain.extensions) == 0


async def test_try_later_until_this_process_has_the_responder(setup: Setup,
                                                                tmp_path: Path) -> None:
    """A worker that has not loaded a responder certificate (worker 0 has not written
    it yet) answers tryLater (RFC 6960 2.3), then signs once it follows the file."""
    follower = responders(setup.store, setup.clock, setup.signers, tmp_path / "elsewhere")
    responder = OcspResponder(setup.store, follower, setup.clock, LIFETIME)
    leaf = await setup.leaf()
    der = ocsp.OCSPRequestBuilder().add_certificate(
        leaf, setup.issuer.certificate, hashes.SHA256()).build().public_bytes(Encoding.DER)
    waiting = ocsp.load_der_ocsp_response((await responder.answer(der)).der)
    assert waiting.response_status is ocsp.OCSPResponseStatus.TRY_LATER
    follower = responders(setup.store, setup.clock, setup.signers, setup.directory)
    follower.load()
    responder = OcspResponder(setup.store, follower, setup.clock, LIFETIME)
    answered = ocsp.load_der_ocsp_response((await responder.answer(der)).der)
    assert answered.certificate_status is ocsp.OCSPCertStatus.GOOD


async def test_this_update_is_backdated_by_the_configured_policy_backdate(
        setup: Setup) -> None:
    """RFC 6960 4.2.2.1 thisUpdate: backdated by [policy] backdate (the one backdate of
    the CA, relying parties' clocks lag), not a fixed minute."""
    responder = OcspResponder(setup.store, setup.certificates, setup.clock, LIFETIME,
                              backdate=timedelta(minutes=7))
    leaf = await setup.leaf()
    der = ocsp.OCSPRequestBuilder().add_certificate(
        leaf, setup.issuer.certificate, hashes.SHA256()).build().public_bytes(Encoding.DER)
    answered = ocsp.load_der_ocsp_response((await responder.answer(der)).der)
    assert answered.this_update_utc == (setup.clock.now().replace(microsecond=0)
                                        - timedelta(minutes=7))


async def test_the_responder_is_reused_then_renewed_with_a_third_of_its_life_left(
        setup: Setup) -> None:
    """Reused on restart while fresh; renewed by worker 0 once a third of its life is
    left; a follower loads the new one; a response never outlives the responder."""
    first = setup.certificates.responder(setup.issuer.fingerprint)
    assert first is not None
    restarted = responders(setup.store, setup.clock, setup.signers, setup.directory)
    await restarted.start()
    again = restarted.responder(setup.issuer.fingerprint)
    assert again is not None and again.certificate == first.certificate

    life = first.certificate.not_valid_after_utc - first.certificate.not_valid_before_utc
    setup.clock.advance(life * 2 / 3 - timedelta(minutes=2))
    await setup.certificates.renew_due()
    same = setup.certificates.responder(setup.issuer.fingerprint)
    assert same is not None and same.certificate == first.certificate
    assert setup.certificates.seconds_until_due() > 1
    setup.clock.advance(timedelta(minutes=2))
    assert setup.certificates.seconds_until_due() == 1.0
    await setup.certificates.renew_due()
    renewed = setup.certificates.responder(setup.issuer.fingerprint)
    assert renewed is not None and renewed.certificate != first.certificate
    restarted.load()  # what `follow` does when the file changes
    followed = restarted.responder(setup.issuer.fingerprint)
    assert followed is not None and followed.certificate == renewed.certificate

    response = await setup.ask(await setup.leaf())
    assert verify(response, setup.issuer) == renewed.certificate
    assert response.next_update_utc is not None
    assert response.next_update_utc <= renewed.certificate.not_valid_after_utc


async def test_an_archived_intermediates_responder_ends_with_what_it_signed(
        setup: Setup, make_hierarchy: Callable[..., Any]) -> None:
    """An archived intermediate (signing, not first) gets a responder only while a
    certificate it signed is unexpired, and none that ends later: its responders are
    certificates it signed, and archived_keys.py keeps its key until every such
    certificate expires, so a responder renewed for 4 days each time would keep it
    for ever."""
    old = load_issuer(make_hierarchy("old"))
    empty = load_issuer(make_hierarchy("empty"))
    leaf = await setup.leaf(old)  # ends in a day
    setup.signers.extend([old, empty])
    await setup.certificates.renew_due()
    assert setup.certificates.responder(empty.fingerprint) is None  # nothing to answer for
    responder = setup.certificates.responder(old.fingerprint)
    assert responder is not None
    assert responder.certificate.not_valid_after_utc == leaf.not_valid_after_utc
    assert (await setup.ask(leaf, old.certificate)).certificate_status is (
        ocsp.OCSPCertStatus.GOOD)

    setup.clock.advance(timedelta(hours=20))  # due, but nothing it signed ends later
    await setup.certificates.renew_due()
    kept = setup.certificates.responder(old.fingerprint)
    assert kept is not None and kept.certificate == responder.certificate
    current = setup.certificates.responder(setup.issuer.fingerprint)
    assert current is not None  # the current one's is never cut so
    assert setup.certificates.seconds_until_due() > 3600  # the archived one waits no more
    latest = await setup.store.latest_expiry(old.fingerprint, after=setup.clock.now())
    assert latest == leaf.not_valid_after_utc

    setup.clock.advance(timedelta(hours=5))  # the last certificate it signed has expired
    assert setup.certificates.responder(old.fingerprint) is None  # never signs expired


async def test_an_archived_intermediate_with_nothing_unexpired_is_unauthorized(
        setup: Setup, make_hierarchy: Callable[..., Any], tmp_path: Path) -> None:
    """RFC 6960 2.3: once an archived intermediate has nothing unexpired, its CertID is
    one this responder serves no more (unauthorized), not one to ask again later
    (tryLater): in worker 0 and in a follower that never saw it renewed; the current
    intermediate without a responder yet stays tryLater."""
    old = load_issuer(make_hierarchy("old"))
    empty = load_issuer(make_hierarchy("empty"))
    leaf = await setup.leaf(old)  # ends in a day
    setup.signers.extend([old, empty])
    await setup.certificates.renew_due()
    assert (await setup.ask(leaf, old.certificate)).certificate_status is (
        ocsp.OCSPCertStatus.GOOD)
    never = await setup.ask(await setup.leaf(), empty.certificate)
    assert never.response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED

    setup.clock.advance(timedelta(days=1, hours=1))  # all it signed has expired
    await setup.certificates.renew_due()
    follower = responders(setup.store, setup.clock, setup.signers, setup.directory)
    follower.load()
    for certificates in (setup.certificates, follower):
        responder = OcspResponder(setup.store, certificates, setup.clock, LIFETIME)
        der = ocsp.OCSPRequestBuilder().add_certificate(
            leaf, old.certificate, hashes.SHA256()).build().public_bytes(Encoding.DER)
        late = ocsp.load_der_ocsp_response((await responder.answer(der)).der)
        assert late.response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED


async def test_a_revoked_responder_certificate_is_replaced_at_once(setup: Setup) -> None:
    """RFC 6960 4.2.2.2.1: with id-pkix-ocsp-nocheck no relying party checks the
    responder's revocation, so revoking its record must stop it here: the next
    renewal round (and a start) replaces it with a new one, however fresh."""
    first = setup.certificates.responder(setup.issuer.fingerprint)
    assert first is not None
    await setup.store.revoke_certificate(serial_hex(first.certificate.serial_number), 1,
                                         setup.clock.now().replace(microsecond=0))
    restarted = responders(setup.store, setup.clock, setup.signers, setup.directory)
    await restarted.start()  # on load
    replaced = restarted.responder(setup.issuer.fingerprint)
    assert replaced is not None and replaced.certificate != first.certificate
    await setup.certificates.renew_due()  # on renewal (worker 0 running all along)
    renewed = setup.certificates.responder(setup.issuer.fingerprint)
    assert renewed is not None and renewed.certificate != first.certificate
    response = await setup.ask(await setup.leaf())
    assert verify(response, setup.issuer) == renewed.certificate


async def test_an_archived_intermediates_revoked_responder_is_replaced_within_its_end(
        setup: Setup, make_hierarchy: Callable[..., Any]) -> None:
    """The replacement of an archived intermediate's revoked responder still ends with
    the last certificate it signed (archived_keys.py waits for those)."""
    old = load_issuer(make_hierarchy("old"))
    leaf = await setup.leaf(old)
    setup.signers.append(old)
    await setup.certificates.renew_due()
    responder = setup.certificates.responder(old.fingerprint)
    assert responder is not None
    await setup.store.revoke_certificate(serial_hex(responder.certificate.serial_number), 1,
                                         setup.clock.now().replace(microsecond=0))
    setup.clock.advance(timedelta(hours=23))
    await setup.certificates.renew_due()
    replaced = setup.certificates.responder(old.fingerprint)
    assert replaced is not None and replaced.certificate != responder.certificate
    assert replaced.certificate.not_valid_after_utc == leaf.not_valid_after_utc
    assert verify(await setup.ask(leaf, old.certificate), old) == replaced.certificate


async def test_a_new_intermediate_gets_its_responder_as_soon_as_worker_0_is_woken(
        setup: Setup, make_hierarchy: Callable[..., Any]) -> None:
    """After `intermediate renew` and SIGHUP (serve calls ``wake``) the new
    intermediate's leaves are answered at once, not tryLater (RFC 6960 2.3) until the
    renewal loop's next period: worker 0 issues its responder now, a follower loads
    it now."""
    follower = responders(setup.store, setup.clock, setup.signers, setup.directory)
    follower.load()
    tasks = [asyncio.create_task(setup.certificates.run_renewals(every=60.0)),
             asyncio.create_task(follower.follow(every=60.0))]
    try:
        await asyncio.sleep(0.1)  # both asleep for their period
        new = load_issuer(make_hierarchy("new"))
        setup.signers.insert(0, new)  # the reload
        setup.certificates.wake()
        for _ in range(20):
            await asyncio.sleep(0.05)
            if setup.certificates.responder(new.fingerprint) is not None:
                break
        assert setup.certificates.responder(new.fingerprint) is not None
        follower.wake()
        for _ in range(20):
            await asyncio.sleep(0.05)
            if follower.responder(new.fingerprint) is not None:
                break
        assert follower.responder(new.fingerprint) is not None
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def test_a_responder_outlives_three_response_lifetimes() -> None:
    assert responder_validity(timedelta(hours=24)) == RESPONDER_VALIDITY
    assert responder_validity(timedelta(days=7)) == timedelta(days=21)


async def test_a_revocation_through_one_replica_is_answered_by_another(
        replicas: tuple[Store, Store], make_hierarchy: Callable[..., Any],
        tmp_path: Path) -> None:
    """Every replica reads the record at each request (SQLite and PostgreSQL)."""
    first, second = replicas
    hierarchy = make_hierarchy("pki")
    issuer = load_issuer(hierarchy)
    clock = FakeClock(hierarchy.now)
    certificates = responders(second, clock, [issuer], tmp_path / "ocsp")
    await certificates.start()
    setup = Setup(second, clock, issuer, [issuer], certificates,
                  OcspResponder(second, certificates, clock, LIFETIME), tmp_path / "ocsp")
    leaf = await setup.leaf()
    assert (await setup.ask(leaf)).certificate_status is ocsp.OCSPCertStatus.GOOD
    await first.revoke_certificate(serial_hex(leaf.serial_number), 4,
                                   clock.now().replace(microsecond=0))
    response = await setup.ask(leaf)
    assert response.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert response.revocation_reason is x509.ReasonFlags.superseded



async def test_the_database_out_of_reach_is_try_later_then_answered_again(
        make_hierarchy: Callable[..., Any], tmp_path: Path, pg_url: str,  # noqa: F811
        relay: Relay) -> None:
    """RFC 6960 2.3 tryLater when the record cannot be read (a real outage: the
    PostgreSQL store behind a relay the test cuts), never a response made up without
    it; answered again once the database is back."""
    hierarchy = make_hierarchy("pki")
    issuer = load_issuer(hierarchy)
    clock = FakeClock(hierarchy.now)
    store = await open_store(through(pg_url, relay), clock=clock)
    try:
        certificates = responders(store, clock, [issuer], tmp_path / "ocsp")
        await certificates.start()
        setup = Setup(store, clock, issuer, [issuer], certificates,
                      OcspResponder(store, certificates, clock, LIFETIME), tmp_path / "ocsp")
        leaf = await setup.leaf()
        await relay.cut()
        assert (await setup.ask(leaf)).response_status is ocsp.OCSPResponseStatus.TRY_LATER
        await relay.mend()
        assert (await setup.ask(leaf)).certificate_status is ocsp.OCSPCertStatus.GOOD
    finally:
        await store.close()
