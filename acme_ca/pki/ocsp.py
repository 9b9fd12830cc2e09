"""OCSP (RFC 6960): the delegated responder certificate, requests read, responses signed.

The intermediate does not sign OCSP responses itself: it issues a short-lived
*delegated responder* certificate (RFC 6960 4.2.2.2: id-kp-OCSPSigning, issued directly
by the CA whose certificates it answers for) whose key signs them. The responder
certificate carries id-pkix-ocsp-nocheck (4.2.2.2.1): relying parties do not check its
own revocation, which is why it lives days, not years (CA/B BR 7.1.2.8). Each response
includes it, so a client that knows only the intermediate can verify the signature.
Both are signed through pki/signer.py: the responder certificate by the
intermediate's signer (a key file or a key on a token), each response by the
responder's own key file.

One request names one certificate (RFC 5019 2.1.1, as Let's Encrypt and Boulder): the
issuer by the hashes of its name and key (the CertID), and the serial. What the
responder cannot read is answered ``malformedRequest``, an issuer it does not serve
``unauthorized`` (RFC 6960 2.3); never an HTTP error.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from acme_ca.pki.crl import REASONS
from acme_ca.pki.der import header_length, tlv_length
from acme_ca.pki.keys import PublicKey
from acme_ca.pki.profiles import LeafRequest, authority_key_id, leaf_not_after
from acme_ca.pki.signer import Signer, sign_certificate, sign_ocsp_response

RESPONDER_VALIDITY = timedelta(days=4)  # short: ocsp-nocheck means it is never revoked
MAX_NONCE = 32  # octets (RFC 8954 2.1)


class MalformedRequest(ValueError):
    """The body is not one OCSP request this responder can read (RFC 6960 2.3)."""


def responder_name(issuer: x509.Certificate) -> x509.Name:
    """``<the intermediate's CN> OCSP Responder``, with the intermediate's O and C.

    Nothing is invented: the CA/B BR want C and O in a responder's subject (7.1.2.8),
    but those Requirements bind publicly trusted CAs; here they are the operator's to
    set on the intermediate (`acme-ca init --org --country`), and the responder is BR
    clean exactly when its intermediate is (RFC 5280 clean always)."""
    kept = [a for a in issuer.subject if a.oid != NameOID.COMMON_NAME]
    cn = issuer.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common_name = f"{cn[0].value} OCSP Responder" if cn else "OCSP Responder"
    return x509.Name([*kept, x509.NameAttribute(NameOID.COMMON_NAME, str(common_name)[:64])])


def build_responder(
    issuer_cert: x509.Certificate, issuer: Signer, request: LeafRequest
) -> x509.Certificate:
    """The delegated responder certificate for ``request``'s key, serial and window
    (cut at the issuer's notAfter): EKU id-kp-OCSPSigning alone, ocsp-nocheck,
    keyUsage digitalSignature (critical), CA:FALSE (critical), AKI and SKI; no SAN,
    no AIA, no CRL distribution point (CA/B BR 7.1.2.8.2). Signed by the intermediate's
    ``issuer`` (a key file or a token) through ``signer.sign_certificate``."""
    if request.serial is None:
        raise ValueError("a responder certificate needs the serial its record reserved")
    builder = (
        x509.CertificateBuilder()
        .subject_name(responder_name(issuer_cert))
        .issuer_name(issuer_cert.subject)
        .public_key(request.public_key)
        .serial_number(request.serial)
        .not_valid_before(request.not_before)
        .not_valid_after(leaf_not_after(issuer_cert, request.not_after))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]),
                       critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(request.public_key),
                       critical=False)
        .add_extension(authority_key_id(issuer_cert), critical=False)
    )
    return sign_certificate(builder, issuer)


def responder_request(key: ec.EllipticCurvePrivateKey, not_before: datetime,
                      not_after: datetime, serial: int | None = None) -> LeafRequest:
    """What ``build_responder`` reads, as the request ``authority/issuance.issue``
    records (which gives it the serial it reserves when ``serial`` is None)."""
    return LeafRequest(public_key=key.public_key(), dns_names=(), ip_addresses=(),
                       not_before=not_before, not_after=not_after,
                       extended_key_usages=(ExtendedKeyUsageOID.OCSP_SIGNING,), serial=serial)


@dataclass(frozen=True, slots=True)
class OcspQuery:
    """One request: which certificate (the CertID), and the nonce to echo, if any."""

    issuer_name_hash: bytes
    issuer_key_hash: bytes
    algorithm: hashes.HashAlgorithm  # of the CertID's hashes; the response uses it too
    serial: int
    nonce: bytes | None = None


def read_request(der: bytes) -> OcspQuery:
    """The request in ``der``; ``MalformedRequest`` if it is not one single-certificate
    OCSP request (RFC 6960 4.1.1), its CertID hash is unknown, its serial negative
    (RFC 5280 4.1.2.2), an extension appears twice (RFC 5280 4.2), one it does not know
    is critical (RFC 6960 4.4), or its nonce is empty or longer than 32 octets
    (RFC 8954 2.1: rejected as malformedRequest)."""
    try:
        request = ocsp.load_der_ocsp_request(der)
        algorithm = request.hash_algorithm
        extensions = request.extensions
    # NotImplementedError: more than one certificate in the request
    except (ValueError, UnsupportedAlgorithm, NotImplementedError,
            x509.DuplicateExtension) as exc:
        raise MalformedRequest(str(exc) or "not an OCSP request") from None
    if request.serial_number < 0:  # no certificate has one (and it cannot be answered)
        raise MalformedRequest("a negative serial number")
    unknown = [e.oid.dotted_string for e in extensions
               if e.critical and not isinstance(e.value, x509.OCSPNonce)]
    if unknown:
        raise MalformedRequest(f"unknown critical extension {', '.join(unknown)}")
    nonce = None
    with contextlib.suppress(x509.ExtensionNotFound):
        nonce = extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    if nonce is not None and not 1 <= len(nonce) <= MAX_NONCE:
        raise MalformedRequest(f"a nonce of {len(nonce)} octets (RFC 8954: 1 to {MAX_NONCE})")
    return OcspQuery(request.issuer_name_hash, request.issuer_key_hash, algorithm,
                     request.serial_number, nonce)


def names_issuer(query: OcspQuery, issuer: x509.Certificate) -> bool:
    """Whether the CertID's issuer hashes are those of ``issuer`` (RFC 6960 4.1.1:
    the hash of its DER subject, and of its subjectPublicKey BIT STRING's value)."""
    return _issuer_hashes(issuer, type(query.algorithm)) == (query.issuer_name_hash,
                                                             query.issuer_key_hash)


@functools.lru_cache(maxsize=64)
def _issuer_hashes(issuer: x509.Certificate,
                   algorithm: type[hashes.HashAlgorithm]) -> tuple[bytes, bytes]:
    """(name hash, key hash) of ``issuer`` under ``algorithm``: computed once per
    intermediate and algorithm, not on every OCSP request."""
    return (_digest(algorithm(), issuer.subject.public_bytes()),
            _digest(algorithm(), _key_bits(issuer.public_key())))


def reason_flag(code: int) -> x509.ReasonFlags:
    """The CRLReason of an RFC 5280 5.3.1 code, as the CRL lists it (one the CRL has
    no name for: unspecified)."""
    return REASONS.get(code, x509.ReasonFlags.unspecified)


@dataclass(frozen=True, slots=True)
class CertStatus:
    """What a response says of a certificate (RFC 6960 2.2): good, unknown, or revoked
    at ``revoked_at`` for ``reason`` (an RFC 5280 CRLReason code)."""

    kind: ocsp.OCSPCertStatus
    revoked_at: datetime | None = None
    reason: int = 0


GOOD = CertStatus(ocsp.OCSPCertStatus.GOOD)
UNKNOWN = CertStatus(ocsp.OCSPCertStatus.UNKNOWN)


def revoked(at: datetime, reason: int) -> CertStatus:
    return CertStatus(ocsp.OCSPCertStatus.REVOKED, at, reason)


def sign_response(
    query: OcspQuery,
    status: CertStatus,
    responder: x509.Certificate,
    responder_signer: Signer,
    *,
    this_update: datetime,
    next_update: datetime,
) -> bytes:
    """A successful basic response (RFC 6960 4.2.1) giving ``status`` for ``query``'s
    certificate, under the CertID it asked with; signed SHA-256 by ``responder``, which
    it includes and names by key hash; the request's nonce echoed (RFC 8954 3).
    ``responder_signer`` is the responder's key file (a ``FileSigner``):
    ``signer.sign_ocsp_response`` refuses any other with PkiError."""
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response_by_hash(
            query.issuer_name_hash, query.issuer_key_hash, query.serial, query.algorithm,
            status.kind, this_update, next_update, status.revoked_at,
            # RFC 5280 5.3.1: reasonCode unspecified (0) SHOULD be absent
            reason_flag(status.reason) if status.revoked_at and status.reason else None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, responder)
        .certificates([responder])
    )
    if query.nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(query.nonce), critical=False)
    return sign_ocsp_response(builder, responder_signer, hashes.SHA256())


def unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    """An unsigned error response (RFC 6960 2.3): malformedRequest, unauthorized, ..."""
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(Encoding.DER)


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    digest = hashes.Hash(algorithm)
    digest.update(data)
    return digest.finalize()


def _key_bits(key: PublicKey) -> bytes:
    """The value of SubjectPublicKeyInfo's subjectPublicKey BIT STRING (RFC 5280
    4.1.2.7), without its unused-bits octet: what issuerKeyHash hashes."""
    spki = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    offset = header_length(spki, 0)  # into the outer SEQUENCE
    algorithm_end = offset + tlv_length(spki, offset)  # skip the AlgorithmIdentifier
    bits_start = algorithm_end + header_length(spki, algorithm_end)
    return spki[bits_start + 1:]  # BIT STRING is last; its first octet: unused bits (0)

