"""Certificate signing requests: parse, check the signature and the key, extract the names."""

from __future__ import annotations

import ipaddress
import warnings
from collections.abc import Collection
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from acme_ca.errors import PkiError
from acme_ca.pki.goodkey import check_key_not_weak, check_rsa_exponent
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


def load_csr(data: bytes, *, allow_pem: bool = False) -> x509.CertificateSigningRequest:
    """A DER CSR, or with `allow_pem` (a file for sign-csr) a PEM one too; PkiError for
    anything else. ACME takes DER alone: the finalize "csr" field is the base64url of
    the DER CSR (RFC 8555 7.4)."""
    if len(data) > MAX_CSR_BYTES:
        raise PkiError(f"the CSR is larger than {MAX_CSR_BYTES} bytes")
    try:
        if allow_pem and b"-----BEGIN" in data:
            return x509.load_pem_x509_csr(data)
        return x509.load_der_x509_csr(data)
    except (ValueError, x509.InvalidVersion):  # InvalidVersion is no ValueError
        encodings = "PEM or DER" if allow_pem else "DER"
        raise PkiError(f"not a readable certificate signing request ({encodings})") from None


def check_public_key(key: PublicKey) -> None:
    """Allowed leaf keys: RSA 2048 to 4096 bits (e = 65537), ECDSA P-256 or P-384."""
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size not in RSA_SIZES or key.key_size % 8:
            raise PkiError(f"RSA key of {key.key_size} bits: allowed are 2048 to 4096 bits")
        check_rsa_exponent(key)
        return
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in EC_CURVES:
            raise PkiError(f"ECDSA curve {key.curve.name}: allowed are P-256 and P-384")
        return
    raise PkiError(f"{describe_key(key)} keys are not allowed: use RSA or ECDSA")


def _common_name(csr: x509.CertificateSigningRequest) -> str | None:
    """The subject's first common name, or None; PkiError for a subject that cannot be
    read (a CN of invalid UTF-8 in a UTF8String, a TeletexString that is not ASCII, a
    BIT STRING: cryptography raises ValueError or TypeError) or a CN that is no string."""
    try:
        with warnings.catch_warnings():  # cryptography warns of a CN over 64 characters:
            warnings.simplefilter("ignore", UserWarning)  # it is read; the caller decides
            cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except (ValueError, TypeError) as exc:
        raise PkiError(f"the CSR subject is malformed: {exc}") from None
    if not cns:
        return None
    if not isinstance(cns[0].value, str):
        raise PkiError("the CSR subject's common name is not a string")
    return _name(cns[0].value, "common name")


def _name(value: str, what: str) -> str:
    """A dNSName or common name as compared: ASCII, lowercased, no trailing dot.

    RFC 5280 4.2.1.6: a dNSName is an IA5String in the preferred name syntax, with
    internationalised names as A-labels. Unicode case folding would turn other names
    into ours (KELVIN SIGN "\u212a" lowercases to "k"), so a name that is not ASCII is
    refused, not folded; a trailing dot is refused as newOrder refuses it
    (``authority.policy.normalize_dns_name``), not stripped.
    """
    if not value.isascii():
        raise PkiError(f"the CSR {what} {value!r} is not ASCII: write an internationalised "
                       "name as its A-label (xn--...)")
    if value.endswith("."):
        raise PkiError(f"the CSR {what} {value!r} ends in a dot: give the name without it")
    return value.lower()


def read_csr(csr: x509.CertificateSigningRequest, *, cn_as_san: bool = True,
             blocked_keys: Collection[bytes] = frozenset()) -> CsrContents:
    """Check the self-signature and key, and collect the requested names.

    The key must be allowed (check_public_key) and not weak (goodkey: not in
    `blocked_keys`, the [policy] blocklist, and no easily factored RSA modulus).

    Names must be ASCII without a trailing dot (``_name``), and are lowercased and
    de-duplicated in order. A CSR with a common name but no
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
    check_key_not_weak(key, blocked_keys)  # type: ignore[arg-type]
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
                dns.append(_name(name.value, "dNSName"))
            elif isinstance(name, x509.IPAddress) and not isinstance(
                name.value, ipaddress.IPv4Network | ipaddress.IPv6Network
            ):
                ips.append(name.value)
            else:
                raise PkiError(
                    f"the CSR asks for a {type(name).__name__} name; "
                    "only DNS names and IP addresses are allowed"
                )
    common_name = _common_name(csr)
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
