"""tls-alpn-01 challenge certificates (RFC 8737 3), the validator and its check, shared
by the validation tests (test_tlsalpn01, test_no_probe); the TLS servers themselves are
the fixture ``tls_server`` in conftest.py."""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from acme_ca.domain.models import Identifier
from acme_ca.validation.base import ValidationResult, key_authorization
from acme_ca.validation.network import AddressPolicy
from acme_ca.validation.resolver import Resolver
from acme_ca.validation.tlsalpn01 import TlsAlpn01Validator

NAME = "tls.bluerobin.local"
IDENT = Identifier("dns", NAME)
IP_IDENT = Identifier("ip", "127.0.0.1")
TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
KEY_AUTH = key_authorization(TOKEN, "9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI")
DIGEST = hashlib.sha256(KEY_AUTH.encode()).digest()
ACME_IDENTIFIER = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31")
KEY = ec.generate_private_key(ec.SECP256R1())
ACME = ["acme-tls/1"]


@dataclass
class Server:
    port: int
    connections: int = 0  # TCP connections accepted, TLS or not
    snis: list[str | None] = field(default_factory=list)


Start = Callable[..., Awaitable[Server]]


def challenge_cert(
    sans: list[x509.GeneralName] | None = None,
    acme_value: bytes | None = b"\x04\x20" + DIGEST,
    critical: bool = True,
) -> x509.Certificate:
    """RFC 8737 section 3: a self-signed certificate with the SAN and acmeIdentifier."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "acme challenge")])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(KEY.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
    )
    if sans is None:
        sans = [x509.DNSName(NAME)]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if acme_value is not None:
        extension = x509.UnrecognizedExtension(ACME_IDENTIFIER, acme_value)
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(KEY, hashes.SHA256())


def validator(
    port: int, policy: AddressPolicy | None = None, timeout: float = 5
) -> TlsAlpn01Validator:
    resolver = Resolver(hosts={NAME: "127.0.0.1"}, resolvers=[])
    return TlsAlpn01Validator(resolver, port=port, policy=policy, timeout=timeout)


async def check(v: TlsAlpn01Validator, ident: Identifier = IDENT) -> ValidationResult:
    return await v.validate(ident, TOKEN, KEY_AUTH)
