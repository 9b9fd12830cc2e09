"""Certificate signing requests: parse, check the signature and the key, extract the names."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from acme_ca.errors import PkiError
from acme_ca.pki.keys import PublicKey, describe_key
from acme_ca.pki.profiles import IpAddress

MAX_CSR_BYTES = 64 * 1024
MAX_NAMES = 100
RSA_SIZES = range(2048, 4097)
EC_CURVES = ("secp256r1", "secp384r1")


@dataclass(frozen=True, slots=True)
class CsrContents:
    public_key: PublicKey
    dns_names: tuple[str, ...]
    ip_addresses: tuple[IpAddress, ...]
    common_name: str | None


def load_csr(data: bytes) -> x509.CertificateSigningRequest:
    """A PEM or DER CSR; PkiError for anything else."""
    if len(data) > MAX_CSR_BYTES:
        raise PkiError(f"the CSR is larger than {MAX_CSR_BYTES} bytes")
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_csr(data)
        return x509.load_der_x509_csr(data)
    except (ValueError, x509.InvalidVersion):  # InvalidVersion is no ValueError
        raise PkiError("not a readable certificate signing request (PEM or DER)") from None


def check_public_key(key: PublicKey) -> None:
    """Allowed leaf keys: RSA 2048 to 4096 bits, ECDSA P-256 or P-384."""
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size not in RSA_SIZES or key.key_size % 8:
            raise PkiError(f"RSA key of {key.key_size} bits: allowed are 2048 to 4096 bits")
        if key.public_numbers().e != 65537:
            raise PkiError("RSA public exponent must be 65537")
        return
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in EC_CURVES:
            raise PkiError(f"ECDSA curve {key.curve.name}: allowed are P-256 and P-384")
        return
    raise PkiError(f"{describe_key(key)} keys are not allowed: use RSA or ECDSA")


def read_csr(csr: x509.CertificateSigningRequest, *, cn_as_san: bool = True) -> CsrContents:
    """Check the self-signature and key, and collect the requested names.

    Names are lowercased and de-duplicated in order. A CSR with a common name but no
    SAN (the guide's postgres.csr) gets the CN as its one SAN when `cn_as_san`.
    """
    try:
        valid = csr.is_signature_valid
    except Exception:
        valid = False
    if not valid:
        raise PkiError("the CSR signature does not verify")
    key = csr.public_key()
    check_public_key(key)  # type: ignore[arg-type]
    dns: list[str] = []
    ips: list[IpAddress] = []
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    except (ValueError, x509.DuplicateExtension) as exc:
        raise PkiError(f"the CSR has malformed extensions: {exc}") from None
    if san is not None:
        for name in san:
            if isinstance(name, x509.DNSName):
                dns.append(name.value.lower().rstrip("."))
            elif isinstance(name, x509.IPAddress) and not isinstance(
                name.value, ipaddress.IPv4Network | ipaddress.IPv6Network
            ):
                ips.append(name.value)
            else:
                raise PkiError(
                    f"the CSR asks for a {type(name).__name__} name; "
                    "only DNS names and IP addresses are allowed"
                )
    cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common_name = str(cns[0].value).lower().rstrip(".") if cns else None
    if common_name and cn_as_san and common_name not in dns and not san:
        try:
            ips.append(ipaddress.ip_address(common_name))
        except ValueError:
            dns.append(common_name)
    dns = list(dict.fromkeys(dns))
    ips = list(dict.fromkeys(ips))
    if not dns and not ips:
        raise PkiError("the CSR names no DNS name or IP address")
    if len(dns) + len(ips) > MAX_NAMES:
        raise PkiError(f"the CSR asks for {len(dns) + len(ips)} names; at most {MAX_NAMES}")
    return CsrContents(key, tuple(dns), tuple(ips), common_name)  # type: ignore[arg-type]
