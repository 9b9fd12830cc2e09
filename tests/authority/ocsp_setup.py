"""What the OCSP tests share (test_ocsp.py, test_ocsp_responders.py, and
tests/api/test_ocsp.py): a responder over a real SQLite store on a fake clock, with
the delegated responder certificates of this host (the ``setup`` fixture, which
tests/authority/conftest.py makes every authority test's), and the check that a
response is signed by a responder certificate the intermediate issued (RFC 6960
4.2.2.2)."""

from __future__ import annotations

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
from acme_ca.authority.ocsp_responders import ResponderCertificates, SigningCa, responder_validity
from acme_ca.clock import FakeClock
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.profiles import SERVER_AUTH, LeafRequest
from acme_ca.store import Store, open_store
from tests.conftest import load_issuer

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
