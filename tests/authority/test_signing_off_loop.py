"""What the server signs, it signs in the signing pool (``pki/signer.off_loop``), never
on the event loop: a slow key (RSA-4096, a PKCS#11 token's round trip) must not stall
every other request. The intermediate's signer is wrapped in one that records the
thread of each signature (tests/signers.py); the test itself runs on the loop's thread.

Covered here: the CRLs, the OCSP responder certificates and responses, and the
server's own TLS certificate (a leaf through ACME: tests/protocol/test_signing_threads.py).
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
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
from acme_ca.authority import ocsp as ocsp_authority
from acme_ca.authority.crls import CrlPublisher
from acme_ca.authority.ocsp import OcspResponder
from acme_ca.authority.ocsp_responders import ResponderCertificates
from acme_ca.authority.server_tls import ServerTls
from acme_ca.clock import FakeClock
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.profiles import SERVER_AUTH, LeafRequest
from acme_ca.pki.publication import Publication
from acme_ca.store import Store, open_store
from tests.conftest import Hierarchy, load_issuer
from tests.signers import Recording

LIFETIME = timedelta(hours=24)


@pytest.fixture
async def store(tmp_path: Path, hierarchy: Hierarchy) -> AsyncIterator[Store]:
    opened = await open_store(f"sqlite:///{tmp_path / 'db.sqlite'}",
                              clock=FakeClock(hierarchy.now))
    yield opened
    await opened.close()


def recorded(hierarchy: Hierarchy) -> tuple[Issuer, Recording]:
    """The hierarchy's intermediate, signing through a ``Recording`` of its key file."""
    issuer = load_issuer(hierarchy)
    recording = Recording(issuer.signer)
    return replace(issuer, signer=recording), recording


def off_the_loop(threads: list[int]) -> bool:
    """Whether there were signatures, none of them in this (the event loop's) thread."""
    return bool(threads) and threading.get_ident() not in threads


async def leaf(store: Store, issuer: Issuer, clock: FakeClock) -> x509.Certificate:
    now = clock.now()
    request = LeafRequest(ec.generate_private_key(ec.SECP256R1()).public_key(),
                          ("web.bluerobin.local",), (), now - timedelta(minutes=1),
                          now + timedelta(days=7), SERVER_AUTH)
    return await issuance.issue(store, issuer, request, now, profile="server")


async def test_the_crls_are_signed_off_the_event_loop(hierarchy: Hierarchy,
                                                      store: Store) -> None:
    """authority/crls.py: build_crl runs in the signing pool; the CRL verifies."""
    issuer, recording = recorded(hierarchy)
    clock = FakeClock(hierarchy.now)
    publisher = CrlPublisher(store, clock, lambda: issuer, Publication("http://127.0.0.1:8556"),
                             LIFETIME, backdate=timedelta(minutes=1))
    assert await publisher.publish() == 1
    stored = await store.get_crl(issuer.fingerprint)
    assert stored is not None and x509.load_der_x509_crl(stored.der).is_signature_valid(
        issuer.certificate.public_key())  # type: ignore[arg-type]
    assert off_the_loop(recording.threads), recording.threads


async def test_ocsp_responder_certificates_and_responses_are_signed_off_the_event_loop(
        hierarchy: Hierarchy, store: Store, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """authority/ocsp_responders.py: the intermediate signs the responder certificate
    in the pool (through ``issuance.issue``); authority/ocsp.py: the responder's key
    signs each response in the pool. The responder's key is a file (RFC 6960 4.2.2.2,
    ``sign_ocsp_response``), so the response's thread is seen by wrapping the real
    ``sign_response`` (it still signs; the response is verified)."""
    issuer, recording = recorded(hierarchy)
    clock = FakeClock(hierarchy.now)
    certificates = ResponderCertificates(store=store, signers=lambda: [issuer],
                                         directory=tmp_path / "ocsp", clock=clock)
    await certificates.start()
    assert off_the_loop(recording.threads), recording.threads

    response_threads: list[int] = []
    real = ocsp_authority.sign_response

    def sign_response(*args: Any, **kwargs: Any) -> bytes:
        response_threads.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(ocsp_authority, "sign_response", sign_response)
    responder = OcspResponder(store, certificates, clock, LIFETIME)
    signed = await leaf(store, issuer, clock)
    request = ocsp.OCSPRequestBuilder().add_certificate(
        signed, issuer.certificate, hashes.SHA256()).build()
    answer = await responder.answer(request.public_bytes(Encoding.DER))
    response = ocsp.load_der_ocsp_response(answer.der)
    assert response.certificate_status is ocsp.OCSPCertStatus.GOOD
    (responder_cert,) = response.certificates
    responder_cert.verify_directly_issued_by(issuer.certificate)
    responder_cert.public_key().verify(  # type: ignore[call-arg, union-attr]
        response.signature, response.tbs_response_bytes, ec.ECDSA(hashes.SHA256()))
    assert off_the_loop(response_threads), response_threads


async def test_the_servers_own_certificate_is_signed_off_the_event_loop(
        make_hierarchy: Callable[..., Hierarchy], tmp_path: Path) -> None:
    """authority/server_tls.py: its certificate, signed through ``issuance.issue``."""
    hierarchy = make_hierarchy("pki", permitted_domains=None)
    issuer, recording = recorded(hierarchy)
    clock = FakeClock(hierarchy.now)
    store = await open_store(f"sqlite:///{tmp_path / 'tls.sqlite'}", clock=clock)
    try:
        tls = ServerTls(store=store, issuer=lambda: issuer, dns_names=("ca.bluerobin.local",),
                        ip_addresses=(ipaddress.ip_address("127.0.0.1"),),
                        directory=tmp_path / "tls", clock=clock)
        await tls.start()
    finally:
        await store.close()
    assert tls.certificate is not None
    tls.certificate.verify_directly_issued_by(issuer.certificate)
    assert off_the_loop(recording.threads), recording.threads
