"""pki/ocsp.py: the delegated responder certificate, requests read, responses signed
(RFC 6960; nonces RFC 8954). Requests are made by cryptography's builder and by
`openssl ocsp -reqout`, responses read back by cryptography and linted by pkilint."""

from __future__ import annotations

import hashlib
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
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID
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
    _key_bits,
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
from acme_ca.pki.signer import FileSigner
from tests.conftest import Hierarchy, load_issuer
from tests.required import require_program
from tests.test_pkilint import _document, _findings, lint_cabf, lint_chain, lint_pkix, not_allowed


def _responder(issuer: Issuer, now: datetime) -> tuple[x509.Certificate, FileSigner]:
    key = ec.generate_private_key(ec.SECP256R1())
    request = responder_request(key, now - timedelta(minutes=1), now + RESPONDER_VALIDITY,
                                random_serial())
    return build_responder(issuer.certificate, issuer.signer, request), FileSigner(key)


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
    assert cert.public_key() == key.public_key


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
        key.public_key).digest
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


def _tlv(tag: int, content: bytes) -> bytes:
    size = len(content)
    length = (bytes([size]) if size < 0x80
              else bytes([0x80 | ((size.bit_length() + 7) // 8)])
              + size.to_bytes((size.bit_length() + 7) // 8, "big"))
    return bytes([tag]) + length + content


def _seq(*items: bytes) -> bytes:
    return _tlv(0x30, b"".join(items))


def _extension(oid: x509.ObjectIdentifier, value: bytes, *, critical: bool = False) -> bytes:
    arcs = [int(a) for a in oid.dotted_string.split(".")]
    body = bytes([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        groups = [arc & 0x7F]
        while arc := arc >> 7:
            groups.append(arc & 0x7F | 0x80)
        body += bytes(reversed(groups))
    encoded = _tlv(0x06, body)
    return _seq(encoded, *([b"\x01\x01\xff"] if critical else []), _tlv(0x04, value))


def _raw_request(issuer: x509.Certificate, serial: int, *extensions: bytes) -> bytes:
    """An OCSP request built by hand (RFC 6960 4.1.1), for what no library would write:
    a negative serial, an extension twice."""
    algorithm = _seq(_tlv(0x06, bytes.fromhex("2b0e03021a")), b"\x05\x00")  # SHA-1
    name_hash = hashlib.sha1(issuer.subject.public_bytes()).digest()  # noqa: S324
    key_hash = hashlib.sha1(_key_bits(issuer.public_key())).digest()  # noqa: S324
    serial_der = _tlv(0x02, serial.to_bytes(serial.bit_length() // 8 + 1, "big", signed=True))
    cert_id = _seq(algorithm, _tlv(0x04, name_hash), _tlv(0x04, key_hash), serial_der)
    tbs = [_seq(_seq(cert_id))]
    if extensions:
        tbs.append(_tlv(0xA2, _seq(*extensions)))
    return _seq(_seq(*tbs))


NONCE = x509.oid.OCSPExtensionOID.NONCE
OTHER = x509.ObjectIdentifier("1.3.6.1.4.1.55555.1")


def test_the_hand_built_request_reads_as_one(issuer: Issuer) -> None:
    """The builder below writes what cryptography writes (so each case breaks one rule)."""
    query = read_request(_raw_request(issuer.certificate, 0x1234,
                                      _extension(NONCE, _tlv(0x04, b"n" * 16))))
    assert (query.serial, query.nonce) == (0x1234, b"n" * 16)
    assert names_issuer(query, issuer.certificate)


@pytest.mark.parametrize("extensions", [
    (_extension(NONCE, _tlv(0x04, b"a" * 16)), _extension(NONCE, _tlv(0x04, b"b" * 16))),
    (_extension(OTHER, b"\x05\x00"), _extension(OTHER, b"\x05\x00")),
], ids=["nonce-twice", "unknown-twice"])
def test_an_extension_twice_is_malformed(issuer: Issuer, extensions: tuple[bytes, ...]) -> None:
    """RFC 5280 4.2 (and RFC 6960 4.1.1's Extensions): an extension appears at most
    once; a request that repeats one is malformedRequest (RFC 6960 2.3), not a crash."""
    with pytest.raises(MalformedRequest):
        read_request(_raw_request(issuer.certificate, 0x1234, *extensions))


def test_a_negative_serial_is_malformed(issuer: Issuer) -> None:
    """RFC 5280 4.1.2.2: a serial is a positive integer; no certificate has a negative
    one and no response can name it: malformedRequest (RFC 6960 2.3)."""
    with pytest.raises(MalformedRequest, match="negative"):
        read_request(_raw_request(issuer.certificate, -5))


def test_an_unknown_critical_extension_is_malformed(issuer: Issuer) -> None:
    """RFC 6960 4.4: a responder that does not understand a critical extension must not
    answer as if it did; an unknown non-critical one is ignored."""
    with pytest.raises(MalformedRequest, match="critical"):
        read_request(_raw_request(issuer.certificate, 7,
                                  _extension(OTHER, b"\x05\x00", critical=True)))
    assert read_request(_raw_request(issuer.certificate, 7,
                                     _extension(OTHER, b"\x05\x00"))).serial == 7
    nonce = _extension(NONCE, _tlv(0x04, b"n" * 16), critical=True)  # known: understood
    assert read_request(_raw_request(issuer.certificate, 7, nonce)).nonce == b"n" * 16


def _intermediate(now: datetime, *attributes: x509.NameAttribute
                  ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([*attributes, x509.NameAttribute(NameOID.COMMON_NAME, "Bluerobin CA")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(random_serial())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=90))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def test_the_responder_takes_o_and_c_from_its_intermediate_and_invents_none(
        now: datetime) -> None:
    """RFC 5280 clean either way. The CA/B BR OCSP responder profile (7.1.2.8, subject
    as 7.1.4.3) wants C and O: the responder copies them from its intermediate
    (`acme-ca init --org --country`), and is then BR clean with no exception; with a
    CN-only intermediate (the bootstrap's) the two absent attributes are the only
    findings, the ones tests/test_pkilint.py allows a private CA (the operator's to
    set), never invented values (an O the CA never verified)."""
    for attributes, expected in (
        ((), {"cabf.serverauth.ca.country_attribute_absent",
              "cabf.serverauth.ca.organization_name_attribute_absent"}),
        ((x509.NameAttribute(NameOID.COUNTRY_NAME, "NL"),
          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Bluerobin")), set()),
    ):
        ca, ca_key = _intermediate(now, *attributes)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = build_responder(ca, FileSigner(ca_key), responder_request(
            key, now, now + RESPONDER_VALIDITY, random_serial()))
        kept = [a for a in cert.subject if a.oid != NameOID.COMMON_NAME]
        assert kept == list(attributes)
        assert lint_pkix(cert) == []
        assert {f.code for f in lint_cabf(cert)} == expected
        assert not_allowed(lint_cabf(cert)) == []
