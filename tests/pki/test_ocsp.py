"""pki/ocsp.py: the delegated responder certificate, requests read, responses signed
(RFC 6960; nonces RFC 8954). Requests are made by cryptography's builder and by
`openssl ocsp -reqout`, responses read back by cryptography and linted by pkilint."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID
from pkilint import loader
from pkilint import pkix as pkilint_pkix
from pkilint.cabf import serverauth
from pkilint.cabf.serverauth.serverauth_constants import CertificateType
from pkilint.pkix import extension, name
from pkilint.pkix import ocsp as pkilint_ocsp

from acme_ca.pki import files
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.keys import KeyType, generate_key
from acme_ca.pki.ocsp import (
    GOOD,
    RESPONDER_VALIDITY,
    UNKNOWN,
    MalformedRequest,
    build_responder,
    names_issuer,
    read_request,
    responder_request,
    revoked,
    sign_response,
    unsuccessful,
)
from acme_ca.pki.profiles import SERVER_AUTH, LeafRequest
from acme_ca.pki.publication import Publication
from acme_ca.pki.serials import random_serial
from tests.conftest import Hierarchy, load_issuer
from tests.required import require_program
from tests.test_pkilint import _document, _findings, lint_cabf, lint_chain, lint_pkix, not_allowed


def _responder(issuer: Issuer,
               now: datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    request = responder_request(key, now - timedelta(minutes=1), now + RESPONDER_VALIDITY,
                                random_serial())
    return build_responder(issuer.certificate, issuer.key, request), key


def _leaf(issuer: Issuer, now: datetime) -> x509.Certificate:
    key = generate_key(KeyType.EC_P256)
    return issuer.issue(LeafRequest(
        public_key=key.public_key(), dns_names=("a.bluerobin.local",), ip_addresses=(),
        not_before=now, not_after=now + timedelta(days=1), extended_key_usages=SERVER_AUTH))


def _request(leaf: x509.Certificate, issuer: x509.Certificate, *, nonce: bytes | None = None,
             algorithm: hashes.HashAlgorithm | None = None) -> bytes:
    # SHA-1 CertIDs are what clients send (RFC 5019 2.1.1); they name, they do not sign
    algorithm = algorithm or hashes.SHA1()  # noqa: S303
    builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, algorithm)
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(Encoding.DER)


def _verify(response: ocsp.OCSPResponse, responder: x509.Certificate) -> None:
    public = responder.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(hashes.SHA256()))


def test_the_responder_certificate_is_a_delegated_ocsp_signer(issuer: Issuer,
                                                               now: datetime) -> None:
    """RFC 6960 4.2.2.2: issued by the CA itself, id-kp-OCSPSigning; 4.2.2.2.1:
    id-pkix-ocsp-nocheck; CA/B BR 7.1.2.8: keyUsage digitalSignature only, CA:FALSE,
    AKI/SKI, no SAN/AIA/CDP; a short life and an ECDSA P-256 key."""
    cert, key = _responder(issuer, now)
    cert.verify_directly_issued_by(issuer.certificate)
    ext = cert.extensions
    assert ext.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.OCSP_SIGNING])
    assert isinstance(ext.get_extension_for_class(x509.OCSPNoCheck).value, x509.OCSPNoCheck)
    usage = ext.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature
    assert not usage.value.key_cert_sign and not usage.value.crl_sign
    basic = ext.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca is False
    ext.get_extension_for_class(x509.SubjectKeyIdentifier)
    aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = issuer.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    for absent in (x509.SubjectAlternativeName, x509.AuthorityInformationAccess,
                   x509.CRLDistributionPoints):
        with pytest.raises(x509.ExtensionNotFound):
            ext.get_extension_for_class(absent)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == RESPONDER_VALIDITY + timedelta(
        minutes=1)
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    assert cert.public_key() == key.public_key()


def test_the_responder_certificate_is_lint_clean_as_an_ocsp_responder(
        issuer: Issuer, now: datetime) -> None:
    """pkilint: RFC 5280 clean, the chain intermediate -> responder clean, and the CA/B
    BR OCSP responder profile (7.1.2.8) clean: pkilint recognises it as one."""
    cert, _ = _responder(issuer, now)
    assert lint_pkix(cert) == []
    assert lint_chain(issuer.certificate, cert) == []
    document = _document(cert, "certificate")
    assert serverauth.determine_certificate_type(document) is CertificateType.OCSP_RESPONDER
    assert not_allowed(lint_cabf(cert)) == []


def test_the_responder_never_outlives_its_intermediate(
        make_hierarchy, now: datetime) -> None:  # type: ignore[no-untyped-def]
    """RFC 5280 6.1: nothing valid after the CA that signed it; cut at its notAfter."""
    h: Hierarchy = make_hierarchy("short", intermediate_validity=timedelta(days=2))
    issuer = load_issuer(h)
    cert, _ = _responder(issuer, now)
    assert cert.not_valid_after_utc == issuer.certificate.not_valid_after_utc


@pytest.mark.parametrize("algorithm", [hashes.SHA1(), hashes.SHA256()],  # noqa: S303
                         ids=lambda a: a.name)
def test_a_good_response_is_signed_by_the_responder_and_echoes_the_certid(
        issuer: Issuer, now: datetime, algorithm: hashes.HashAlgorithm) -> None:
    """RFC 6960 4.2.1/4.2.2.1: a successful basic response, the CertID of the request
    (in the request's hash algorithm), thisUpdate/nextUpdate as given, responderID by
    key, the responder certificate in certs, signed with SHA-256 by its key."""
    responder, key = _responder(issuer, now)
    leaf = _leaf(issuer, now)
    query = read_request(_request(leaf, issuer.certificate, algorithm=algorithm))
    assert names_issuer(query, issuer.certificate)
    assert query.serial == leaf.serial_number and query.nonce is None
    der = sign_response(query, GOOD, responder, key, this_update=now,
                        next_update=now + timedelta(hours=24))
    response = ocsp.load_der_ocsp_response(der)
    assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert response.serial_number == leaf.serial_number
    assert response.hash_algorithm.name == algorithm.name
    assert response.this_update_utc == now
    assert response.next_update_utc == now + timedelta(hours=24)
    assert response.certificates == [responder]
    assert response.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(
        key.public_key()).digest
    assert response.signature_hash_algorithm.name == "sha256"  # type: ignore[union-attr]
    _verify(response, responder)
    assert len(response.extensions) == 0


def test_revoked_carries_the_time_and_reason_and_unknown_is_unknown(
        issuer: Issuer, now: datetime) -> None:
    """RFC 6960 2.2 / 4.2.1 RevokedInfo: revocationTime and revocationReason (absent for
    unspecified, RFC 5280 5.3.1)."""
    responder, key = _responder(issuer, now)
    query = read_request(_request(_leaf(issuer, now), issuer.certificate))
    when = now - timedelta(minutes=5)
    times = {"this_update": now, "next_update": now + timedelta(hours=1)}
    gone = ocsp.load_der_ocsp_response(sign_response(query, revoked(when, 1), responder, key,
                                                     **times))
    assert gone.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert gone.revocation_time_utc == when
    assert gone.revocation_reason is x509.ReasonFlags.key_compromise
    plain = ocsp.load_der_ocsp_response(sign_response(query, revoked(when, 0), responder, key,
                                                      **times))
    assert plain.revocation_reason is None
    unknown = ocsp.load_der_ocsp_response(sign_response(query, UNKNOWN, responder, key, **times))
    assert unknown.certificate_status is ocsp.OCSPCertStatus.UNKNOWN
    _verify(unknown, responder)


def test_the_nonce_is_echoed_and_one_over_32_octets_is_malformed(
        issuer: Issuer, now: datetime) -> None:
    """RFC 8954 2.1 and 3: a nonce of 1 to 32 octets is echoed in the response's
    extensions; a longer one (or an empty one) is rejected as malformedRequest."""
    responder, key = _responder(issuer, now)
    leaf = _leaf(issuer, now)
    query = read_request(_request(leaf, issuer.certificate, nonce=b"\x01" * 16))
    response = ocsp.load_der_ocsp_response(sign_response(
        query, GOOD, responder, key, this_update=now, next_update=now + timedelta(hours=1)))
    assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"\x01" * 16
    read_request(_request(leaf, issuer.certificate, nonce=b"\x02" * 32))
    for bad in (b"\x03" * 33, b""):
        with pytest.raises(MalformedRequest, match="nonce"):
            read_request(_request(leaf, issuer.certificate, nonce=bad))


@pytest.mark.parametrize("body", [b"", b"\x30\x03\x02\x01\x01", b"not DER at all"],
                         ids=["empty", "a-sequence", "text"])
def test_what_is_not_an_ocsp_request_is_malformed(body: bytes) -> None:
    """RFC 6960 2.3: malformedRequest for what the responder cannot read."""
    with pytest.raises(MalformedRequest):
        read_request(body)


def _openssl_request(tmp_path: Path, issuer: x509.Certificate, *serials: int) -> bytes:
    openssl = require_program("openssl")
    issuer_path = tmp_path / "issuer.pem"
    issuer_path.write_bytes(files.pem(issuer))
    out = tmp_path / "req.der"
    args = [a for s in serials for a in ("-serial", str(s))]
    subprocess.run([openssl, "ocsp", "-issuer", str(issuer_path),
                    *args, "-reqout", str(out)], check=True, capture_output=True)
    return out.read_bytes()


def test_an_openssl_request_is_read_and_two_certificates_in_one_are_malformed(
        issuer: Issuer, now: datetime, tmp_path: Path) -> None:
    """openssl's request (SHA-1 CertID, a 16-octet nonce) names the issuer it was
    given; RFC 5019 2.1.1: one certificate per request, so two are malformedRequest."""
    leaf = _leaf(issuer, now)
    query = read_request(_openssl_request(tmp_path, issuer.certificate, leaf.serial_number))
    assert names_issuer(query, issuer.certificate)
    assert query.serial == leaf.serial_number
    assert query.nonce is not None and len(query.nonce) == 16
    with pytest.raises(MalformedRequest):
        read_request(_openssl_request(tmp_path, issuer.certificate, 1, 2))


def test_another_issuer_is_not_named(make_hierarchy, now: datetime) -> None:  # type: ignore[no-untyped-def]
    """The CertID's issuerNameHash and issuerKeyHash name one CA (RFC 6960 4.1.1), an
    RSA one included (its key hash is over the PKCS#1 key, not the whole SPKI)."""
    first = load_issuer(make_hierarchy("one"))
    other = load_issuer(make_hierarchy("rsa", intermediate_key_type=KeyType.RSA2048))
    query = read_request(_request(_leaf(first, now), first.certificate))
    assert not names_issuer(query, other.certificate)
    rsa_query = read_request(_request(_leaf(other, now), other.certificate))
    assert names_issuer(rsa_query, other.certificate)
    assert not names_issuer(rsa_query, first.certificate)


def test_unsuccessful_responses_carry_only_their_status() -> None:
    """RFC 6960 4.2.1: an unsuccessful response has no responseBytes."""
    for status in (ocsp.OCSPResponseStatus.MALFORMED_REQUEST,
                   ocsp.OCSPResponseStatus.UNAUTHORIZED, ocsp.OCSPResponseStatus.TRY_LATER):
        assert ocsp.load_der_ocsp_response(unsuccessful(status)).response_status is status


def test_a_response_is_lint_clean(issuer: Issuer, now: datetime) -> None:
    """pkilint's RFC 6960 OCSP response linter (lint_ocsp_response): nothing above INFO
    (a SHA-1 responder key hash, certs present, a sane validity period)."""
    responder, key = _responder(issuer, now)
    query = read_request(_request(_leaf(issuer, now), issuer.certificate, nonce=b"n" * 16))
    der = sign_response(query, revoked(now, 4), responder, key, this_update=now,
                        next_update=now + timedelta(hours=24))
    validator = pkilint_ocsp.create_pkix_ocsp_response_validator_container(
        [pkilint_ocsp.create_response_decoder(),
         pkilint_pkix.create_attribute_decoder(name.ATTRIBUTE_TYPE_MAPPINGS),
         pkilint_pkix.create_extension_decoder(extension.EXTENSION_MAPPINGS)], [])
    document = loader.RFC6960OCSPResponseDocumentLoader().load_der_document(der, "response")
    assert _findings("ocsp", validator.validate(document.root)) == []
    assert datetime.now(UTC) - ocsp.load_der_ocsp_response(der).produced_at_utc < timedelta(
        minutes=1)


def test_with_ocsp_on_a_leaf_names_the_responder_and_stays_lint_clean(
        issuer: Issuer, now: datetime) -> None:
    """RFC 5280 4.2.2.1: id-ad-ocsp in the leaf's AIA, beside caIssuers, when
    [revocation] ocsp = true; without it, caIssuers alone."""
    base = "http://ca.bluerobin.local:8556"
    for on in (True, False):
        publishing = replace(issuer, publication=Publication(base, ocsp=on))
        leaf = _leaf(publishing, now)
        aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
        methods = {d.access_method: d.access_location.value for d in aia}
        assert methods.get(AuthorityInformationAccessOID.OCSP) == (base + "/ocsp" if on else None)
        assert AuthorityInformationAccessOID.CA_ISSUERS in methods
        assert lint_pkix(leaf) == []
        assert lint_chain(issuer.certificate, leaf) == []
        assert not_allowed(lint_cabf(leaf)) == []
