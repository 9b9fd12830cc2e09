"""The three kinds of certificate the CA signs: root, intermediate and leaf (RFC 5280).

Each function returns a signed certificate and nothing else: no files, no storage.
All sign through pki/signer.py: the root and intermediate certificates with the root
key (a private key the offline commands, init and renew, read from its file), a leaf
with the intermediate's ``Signer`` (a key file or a key on a token).
Every certificate gets a CSPRNG serial of at least 64 bits, a SHA-256 or SHA-384
signature, a subject key identifier, and (below the root) an authority key
identifier; CA certificates get critical basicConstraints and keyUsage.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from acme_ca.errors import PkiError
from acme_ca.pki.keys import PrivateKey, PublicKey
from acme_ca.pki.serials import random_serial
from acme_ca.pki.signer import FileSigner, Signer, sign_certificate

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# RFC 5280 A.1 ub-common-name: a longer commonName cannot be encoded (cryptography's
# NameAttribute refuses it), so callers leave such a name out of the subject.
UB_COMMON_NAME = 64

ROOT_VALIDITY = timedelta(days=3650)
INTERMEDIATE_VALIDITY = timedelta(days=1825)


# What a TLS server's certificate carries (RFC 5280 4.2.1.12 id-kp-serverAuth).
SERVER_AUTH: tuple[x509.ObjectIdentifier, ...] = (ExtendedKeyUsageOID.SERVER_AUTH,)
# What an admin certificate carries: a TLS client only (4.2.1.12 id-kp-clientAuth).
CLIENT_AUTH: tuple[x509.ObjectIdentifier, ...] = (ExtendedKeyUsageOID.CLIENT_AUTH,)

# An operator's name in an admin certificate: one label, no dot, no "@". The
# intermediate's name constraints then never apply to it: the subject's commonName is
# checked against dNSName constraints by OpenSSL only when it looks like a host name
# with two labels or more (v3_ncons.c cn2dnsid), and against rfc822Name ones nowhere;
# with no subjectAltName there is nothing else to check (RFC 5280 4.2.1.10).
ADMIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,49}")
# The mark of an admin certificate, which only ``admin_request`` writes: its subject is
# CN="acme-ca admin NAME" alone. No other certificate of the CA, in any release, has
# such a subject: an ACME or sign-csr certificate's CN is one of its DNS names or IP
# addresses (no spaces), the server's TLS certificate has none, an OCSP responder's is
# "<intermediate CN> OCSP Responder". A name with spaces is no host name either (OpenSSL's
# cn2dnsid leaves it out of the name-constraint check), and no login a relying party
# mapping CNs to users (PostgreSQL clientcert=verify-full) would take for one of its own.
# (A private certificate-policy OID was the alternative: with no registered arc of our
# own, only an X.667 2.25 UUID OID is, and its 128-bit arc fails pkilint and the Go
# parsers of the Prometheus that scrapes with an admin certificate.)
ADMIN_CN_PREFIX = "acme-ca admin "


def ca_name(common_name: str, organization: str | None, country: str | None) -> x509.Name:
    attributes = []
    if country:
        attributes.append(x509.NameAttribute(NameOID.COUNTRY_NAME, country))
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,  # lets the CA sign OCSP responses itself
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def build_root(
    key: PrivateKey, subject: x509.Name, not_before: datetime, validity: timedelta = ROOT_VALIDITY
) -> x509.Certificate:
    """A self-signed root: CA:TRUE (critical), keyCertSign+cRLSign (critical), SKI."""
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(random_serial())
        .not_valid_before(not_before)
        .not_valid_after(not_before + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    return sign_certificate(builder, FileSigner(key))


def name_constraints(
    domains: Sequence[str], ip_networks: Sequence[IpNetwork] = ()
) -> x509.NameConstraints:
    """Permit only `domains` (and their subdomains) and `ip_networks`.

    With no IP network permitted, every IP address is excluded: a name constraint on
    DNS names alone leaves IP addresses unconstrained (RFC 5280 4.2.1.10).
    """
    permitted: list[x509.GeneralName] = [x509.DNSName(d) for d in domains]
    permitted += [x509.IPAddress(n) for n in ip_networks]
    excluded: list[x509.GeneralName] | None = None
    if not ip_networks:
        excluded = [
            x509.IPAddress(ipaddress.ip_network("0.0.0.0/0")),
            x509.IPAddress(ipaddress.ip_network("::/0")),
        ]
    return x509.NameConstraints(permitted_subtrees=permitted, excluded_subtrees=excluded)


def build_intermediate(
    *,
    root_cert: x509.Certificate,
    root_key: PrivateKey,
    public_key: PublicKey,
    subject: x509.Name,
    not_before: datetime,
    validity: timedelta = INTERMEDIATE_VALIDITY,
    constraints: x509.NameConstraints | None = None,
) -> x509.Certificate:
    """An issuing CA under the root: pathLen 0, AKI/SKI, optional (critical) name constraints.

    Its validity never outlasts the root's.
    """
    not_after = min(not_before + validity, root_cert.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(root_cert.subject)
        .public_key(public_key)
        .serial_number(random_serial())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(authority_key_id(root_cert), critical=False)
    )
    if constraints is not None:
        builder = builder.add_extension(constraints, critical=True)
    return sign_certificate(builder, FileSigner(root_key))


@dataclass(frozen=True, slots=True)
class LeafRequest:
    """What goes into an end-entity certificate; validity and extended key usages
    already decided by policy (the caller's profile)."""

    public_key: PublicKey
    dns_names: tuple[str, ...]
    ip_addresses: tuple[IpAddress, ...]
    not_before: datetime
    not_after: datetime
    extended_key_usages: tuple[x509.ObjectIdentifier, ...]
    common_name: str | None = None
    serial: int | None = None  # None: a fresh random serial
    # Where relying parties learn of its revocation (RFC 5280 4.2.1.13 CRL distribution
    # points; 4.2.2.1 AIA: OCSP responder, caIssuers); None: left out. Issuer.issue
    # fills them in from its Publication.
    crl_url: str | None = None
    ocsp_url: str | None = None
    ca_issuers_url: str | None = None


def admin_request(public_key: PublicKey, name: str, not_before: datetime,
                  not_after: datetime) -> LeafRequest:
    """The leaf of an operator (``acme-ca admin-cert``): subject CN="acme-ca admin
    ``name``" (``ADMIN_CN_PREFIX``), no subjectAltName (RFC 5280 4.2.1.6: the subject
    names it), clientAuth only; its CRL and AIA pointers are filled in by
    ``Issuer.issue`` as for every leaf. PkiError for a name ``ADMIN_NAME`` refuses."""
    if not ADMIN_NAME.fullmatch(name):
        raise PkiError(f"admin name {name[:UB_COMMON_NAME]!r}: use 1 to 50 letters, digits, "
                       "'-' and '_' (no dot: the CA's name constraints would apply to it)")
    return LeafRequest(public_key=public_key, dns_names=(), ip_addresses=(),
                       not_before=not_before, not_after=not_after,
                       extended_key_usages=CLIENT_AUTH, common_name=ADMIN_CN_PREFIX + name)


def admin_name(certificate: x509.Certificate) -> str | None:
    """The operator an admin certificate names: NAME when its subject is exactly
    CN="acme-ca admin NAME" (``ADMIN_CN_PREFIX``, ``ADMIN_NAME``); None otherwise. A
    ValueError for a subject that cannot be parsed."""
    subject = list(certificate.subject)
    if len(subject) != 1 or subject[0].oid != NameOID.COMMON_NAME:
        return None
    common_name = str(subject[0].value)
    name = common_name.removeprefix(ADMIN_CN_PREFIX)
    if common_name == name or not ADMIN_NAME.fullmatch(name):
        return None
    return name


def leaf_not_after(issuer_cert: x509.Certificate, not_after: datetime) -> datetime:
    """The notAfter a leaf asking for `not_after` gets: never after its issuer's own
    (RFC 5280 6.1: a chain is valid only while every certificate in it is)."""
    return min(not_after, issuer_cert.not_valid_after_utc)


def build_leaf(
    issuer_cert: x509.Certificate, issuer: Signer, request: LeafRequest
) -> x509.Certificate:
    """An end-entity certificate: SANs (critical when the subject is empty; none at all
    for a request with a common name and no name, an admin certificate: RFC 5280
    4.2.1.6 forbids an empty one), EKU, AKI/SKI, and the request's CRL distribution
    point and AIA URLs when it has them.

    keyUsage is digitalSignature, plus keyEncipherment for RSA keys (TLS 1.2 RSA key
    exchange). The validity is cut at the issuer's own notAfter. Signed by ``issuer``
    through ``signer.sign_certificate``: a blocking call (run it ``off_loop``).
    """

    names: list[x509.GeneralName] = [x509.DNSName(n) for n in request.dns_names]
    names += [x509.IPAddress(a) for a in request.ip_addresses]
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, request.common_name)]
        if request.common_name
        else []
    )
    is_rsa = isinstance(request.public_key, rsa.RSAPublicKey)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject)
        .public_key(request.public_key)
        .serial_number(request.serial or random_serial())
        .not_valid_before(request.not_before)
        .not_valid_after(leaf_not_after(issuer_cert, request.not_after))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=is_rsa,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(list(request.extended_key_usages)),
                       critical=False)
    )
    if names or not request.common_name:
        builder = builder.add_extension(x509.SubjectAlternativeName(names),
                                        critical=not request.common_name)
    builder = (
        builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(request.public_key), critical=False
        )
        .add_extension(authority_key_id(issuer_cert), critical=False)
    )
    for extension in _revocation_pointers(request):
        builder = builder.add_extension(extension, critical=False)
    return sign_certificate(builder, issuer)


def _revocation_pointers(request: LeafRequest) -> list[x509.ExtensionType]:
    """Where relying parties check the leaf: its CRL distribution point (RFC 5280
    4.2.1.13) and its authority information access (4.2.2.1: the OCSP responder when
    there is one, the issuer's certificate as caIssuers); non-critical, as 4.2.1.13 and
    4.2.2.1 ask. A URL left None leaves its part out."""
    pointers: list[x509.ExtensionType] = []
    if request.crl_url:
        pointers.append(x509.CRLDistributionPoints([x509.DistributionPoint(
            full_name=[x509.UniformResourceIdentifier(request.crl_url)],
            relative_name=None, reasons=None, crl_issuer=None)]))
    access = []
    if request.ocsp_url:
        access.append(x509.AccessDescription(
            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(request.ocsp_url)))
    if request.ca_issuers_url:
        access.append(x509.AccessDescription(
            AuthorityInformationAccessOID.CA_ISSUERS,
            x509.UniformResourceIdentifier(request.ca_issuers_url)))
    if access:
        pointers.append(x509.AuthorityInformationAccess(access))
    return pointers


def authority_key_id(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """The issuer's own SKI when it has one (an imported CA may not), else derived from its key."""
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key())  # type: ignore[arg-type]
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def key_identifier_of(cert: x509.Certificate) -> bytes | None:
    """The keyIdentifier of ``cert``'s Authority Key Identifier (RFC 5280 4.2.1.1);
    None when it has none, or the extension cannot be read."""
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except (x509.ExtensionNotFound, ValueError):
        return None
    return aki.key_identifier or None


def names_as_issuer(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """Whether ``cert`` names ``ca`` as its issuer: its issuer name is ``ca``'s subject
    and its AKI keyIdentifier ``ca``'s SKI (RFC 5280 4.2.1.1). True too for a
    certificate that another certificate of the same CA (same name and key: one
    re-signed) issued, which is what an OCSP CertID (RFC 6960 4.1.1) and a CRL's
    scope (RFC 5280 5) name: the CA, not one certificate of it."""
    key_identifier = key_identifier_of(cert)
    return (key_identifier is not None and cert.issuer == ca.subject
            and key_identifier == authority_key_id(ca).key_identifier)
