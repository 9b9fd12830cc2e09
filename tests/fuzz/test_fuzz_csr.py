"""Fuzz: CSR handling (acme_ca/pki/csr.py) raises PkiError and nothing else.

load_csr takes the bytes a client sent (finalize's "csr", sign-csr's file); read_csr
then checks the signature and the key and collects the names. Inputs: arbitrary
bytes, and real CSRs (EC, RSA, with DNS and IP names, with a common name) with a few
bytes mutated, in DER and in PEM.
"""

from __future__ import annotations

import base64
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from hypothesis import example, given
from hypothesis import strategies as st

from acme_ca.errors import PkiError
from acme_ca.pki.csr import load_csr, read_csr
from tests.fuzz.strategies import fuzz, mutated_bytes, only_raises


def _csr(key: object, names: list[x509.GeneralName], cn: str | None) -> bytes:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(Encoding.DER)  # type: ignore[arg-type]


SEEDS = (
    _csr(ec.generate_private_key(ec.SECP256R1()),
         [x509.DNSName("web.bluerobin.local"), x509.DNSName("*.bluerobin.local")], None),
    _csr(ec.generate_private_key(ec.SECP384R1()),
         [x509.IPAddress(ipaddress.ip_address("10.0.0.5")),
          x509.IPAddress(ipaddress.ip_address("fd00::5"))], "10.0.0.5"),
    _csr(rsa.generate_private_key(public_exponent=65537, key_size=2048),
         [x509.DNSName("db.bluerobin.local")], "db.bluerobin.local"),
    _csr(ec.generate_private_key(ec.SECP256R1()), [], "postgres.bluerobin.local"),
    _csr(ed25519.Ed25519PrivateKey.generate(), [x509.DNSName("ed.bluerobin.local")], None),
)


def pem(der: bytes) -> bytes:
    body = base64.encodebytes(der)
    return b"-----BEGIN CERTIFICATE REQUEST-----\n" + body + b"-----END CERTIFICATE REQUEST-----\n"


def handle(data: bytes) -> None:
    """What finalize (DER only) and sign-csr (PEM or DER) do with the bytes: load, then
    read both ways."""
    for allow_pem in (False, True):
        csr = only_raises(lambda allow_pem=allow_pem: load_csr(data, allow_pem=allow_pem),
                          PkiError)
        if csr is not None:
            only_raises(lambda csr=csr: read_csr(csr), PkiError)
            only_raises(lambda csr=csr: read_csr(csr, cn_as_san=False), PkiError)


@fuzz()
@given(st.binary(max_size=400))
def test_any_bytes(data: bytes) -> None:
    handle(data)


@fuzz(2)
@given(st.sampled_from(SEEDS).flatmap(mutated_bytes))
@example(SEEDS[0].replace(b"\x02\x01\x00", b"\x02\x01\x01", 1))  # v2: InvalidVersion
def test_mutated_der(data: bytes) -> None:
    handle(data)


@fuzz()
@given(st.sampled_from(SEEDS).map(pem).flatmap(mutated_bytes))
def test_mutated_pem(data: bytes) -> None:
    handle(data)


def test_the_seeds_are_readable() -> None:
    """The mutations start from CSRs that load; all but the Ed25519 one are accepted."""
    for seed in SEEDS[:-1]:
        assert read_csr(load_csr(seed)).public_key is not None
        assert load_csr(pem(seed), allow_pem=True) == load_csr(seed)
