"""The delegated OCSP responder certificates of this host (RFC 6960 4.2.2.2,
authority/ocsp_responders.py): issued through the store, their keys kept private,
reused and renewed like the server's own TLS certificate, replaced at once when
revoked (4.2.2.2.1: id-pkix-ocsp-nocheck), ending with what an archived intermediate
signed, and issued as soon as a new intermediate is loaded. The responses they sign:
test_ocsp.py."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from acme_ca.authority.ocsp import OcspResponder
from acme_ca.authority.ocsp_responders import PROFILE, responder_validity
from acme_ca.domain.models import CertificateStatus, serial_hex
from acme_ca.pki.ocsp import RESPONDER_VALIDITY
from tests.authority.ocsp_setup import LIFETIME, Setup, responders, verify
from tests.conftest import load_issuer
from tests.waiting import until


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
        setup.certificates.wake()  # within the deadline, far below the 60 s period
        await until(lambda: setup.certificates.responder(new.fingerprint) is not None,
                    "worker 0 issued the new intermediate's responder")
        follower.wake()
        await until(lambda: follower.responder(new.fingerprint) is not None,
                    "the follower loaded the new intermediate's responder")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def test_a_responder_outlives_three_response_lifetimes() -> None:
    assert responder_validity(timedelta(hours=24)) == RESPONDER_VALIDITY
    assert responder_validity(timedelta(days=7)) == timedelta(days=21)

