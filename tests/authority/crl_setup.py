"""What the CRL tests share (test_crls.py, test_crl_times.py): a hierarchy whose
intermediate key has a passphrase, an issuer loaded as serve loads it, and a publisher
on a fake clock."""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from acme_ca.authority import issuance
from acme_ca.authority.crls import CrlPublisher
from acme_ca.clock import FakeClock
from acme_ca.config import PolicyConfig
from acme_ca.domain.models import serial_hex
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.profiles import SERVER_AUTH, LeafRequest
from acme_ca.pki.publication import Publication
from acme_ca.store import Store
from tests.conftest import Hierarchy

BASE = "http://127.0.0.1:8556"
LIFETIME = timedelta(hours=24)
BACKDATE = PolicyConfig().backdate  # [policy] backdate
DAY = timedelta(days=1)
PASS = b"intermediate pass"


def load(h: Hierarchy, now: datetime) -> Issuer:
    p = h.paths
    return Issuer.load(p.intermediate_cert, p.intermediate_key, p.chain, PASS, now,
                       publication=Publication(BASE), archived_keys=True)


class Setup:
    def __init__(self, h: Hierarchy, store: Store) -> None:
        self.hierarchy = h
        self.store = store
        self.clock = FakeClock(h.now)
        self.issuer = load(h, h.now)
        self.publisher = CrlPublisher(store, self.clock, lambda: self.issuer,
                                      Publication(BASE), LIFETIME, backdate=BACKDATE)

    async def sign(self, lifetime: timedelta = 7 * DAY) -> x509.Certificate:
        now = self.clock.now()
        request = LeafRequest(ec.generate_private_key(ec.SECP256R1()).public_key(),
                              ("web.bluerobin.local",), (), now - timedelta(minutes=1),
                              now + lifetime, SERVER_AUTH)
        return await issuance.issue(self.store, self.issuer, request, now, profile="server")

    async def revoke(self, cert: x509.Certificate, reason: int = 1) -> None:
        await self.store.revoke_certificate(serial_hex(cert.serial_number), reason,
                                            self.clock.now())

    async def crl(self, issuer: Issuer | None = None) -> x509.CertificateRevocationList:
        issuer = issuer or self.issuer
        stored = await self.store.get_crl(issuer.fingerprint)
        assert stored is not None
        crl = x509.load_der_x509_crl(stored.der)
        assert crl.is_signature_valid(issuer.certificate.public_key())  # type: ignore[arg-type]
        number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        assert number == stored.number
        return crl


def number_of(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
