"""The OCSP responder (RFC 6960) over a real store: status from the certificate's
record read at each request (RFC 6960 2.2: good, revoked, unknown; 2.3:
unauthorized, malformedRequest, tryLater), responses cached until they near their
nextUpdate and never past a revocation, a nonce echoed (RFC 8954), and replicas
sharing one database. The delegated responder certificates: test_ocsp_responders.py."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from acme_ca.authority import issuance
from acme_ca.authority.ocsp import OcspResponder
from acme_ca.clock import FakeClock
from acme_ca.domain.models import serial_hex
from acme_ca.pki.profiles import SERVER_AUTH, LeafRequest
from acme_ca.store import Store, open_store
from tests.authority.ocsp_setup import LIFETIME, Setup, responders, verify
from tests.conftest import load_issuer, reissue_intermediate
from tests.relay import Relay
from tests.store.pg import pg_url, through  # noqa: F401 (pg_url: a fixture)


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
