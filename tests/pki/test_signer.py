"""pki/signer.py, the one place that signs: a signer that is not a key file (a token, as
``pki/signer.py`` sees one) gets the same certificates and CRLs as a key file, checked
by openssl and pkilint; a signer that signs with another key is refused; OCSP
responses take key files only; and the signing pool works again in a forked worker.

RFC 5280 4.1.1.3: the signatureValue is computed over the DER of tbsCertificate, and
4.1.1.2 the signatureAlgorithm must equal the signature field inside it; 5.1.1.3 and
5.1.1.2 say the same of tbsCertList. The stand-in path builds with a throwaway key of
the same algorithm and replaces only the BIT STRING: these tests check that nothing
else of the DER changes.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import warnings
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from acme_ca.errors import PkiError
from acme_ca.pkcs11_uri import Pkcs11Uri
from acme_ca.pki import files
from acme_ca.pki.crl import CrlEntry, CrlSigner, build_crl
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.keys import KeyType, PrivateKey, load_key
from acme_ca.pki.ocsp import GOOD, OcspQuery, sign_response
from acme_ca.pki.profiles import (
    SERVER_AUTH,
    LeafRequest,
    build_intermediate,
    build_leaf,
    build_root,
)
from acme_ca.pki.serials import random_serial
from acme_ca.pki.signer import (
    FileSigner,
    Signer,
    load_signer,
    off_loop,
    sign_certificate,
    sign_crl,
    verify_signature,
)
from acme_ca.pki.token import generate_token_key
from acme_ca.pki.token_session import close_modules
from tests.conftest import Hierarchy, load_issuer
from tests.required import require_program
from tests.signers import KeySigner
from tests.softhsm import SoftHsm
from tests.test_pkilint import lint_chain, lint_crl, lint_pkix

KEY_TYPES = [KeyType.EC_P256, KeyType.EC_P384, KeyType.RSA2048, KeyType.RSA3072]


def _fields(der: bytes) -> list[bytes]:
    """The TLVs inside the outer SEQUENCE of a Certificate or CertificateList
    (tbs, signatureAlgorithm, signatureValue), each with its header."""
    def header(at: int) -> tuple[int, int]:  # (header length, value length)
        first = der[at + 1]
        if first < 0x80:
            return 2, first
        size = first & 0x7F
        return 2 + size, int.from_bytes(der[at + 2:at + 2 + size], "big")

    outer_header, outer_length = header(0)
    assert outer_header + outer_length == len(der)
    fields, at = [], outer_header
    while at < len(der):
        head, length = header(at)
        fields.append(der[at:at + head + length])
        at += head + length
    return fields


def _leaf_request(now: datetime) -> LeafRequest:
    key = ec.generate_private_key(ec.SECP256R1())
    return LeafRequest(public_key=key.public_key(), dns_names=("web.bluerobin.local",),
                       ip_addresses=(), not_before=now - timedelta(minutes=1),
                       not_after=now + timedelta(days=7), extended_key_usages=SERVER_AUTH,
                       serial=random_serial())


def _crl(issuer: Issuer, signer: Signer, now: datetime) -> bytes:
    return build_crl(CrlSigner(issuer.certificate, issuer.fingerprint, signer), number=7,
                     this_update=now, next_update=now + timedelta(days=1),
                     entries=[CrlEntry(12345, now - timedelta(hours=1), 1)],
                     distribution_point="http://127.0.0.1:8556/crl/x.crl")


def _openssl(*args: object) -> str:
    done = subprocess.run([require_program("openssl"), *map(str, args)],
                          capture_output=True, text=True, check=False, timeout=30)
    return f"{done.returncode}: {done.stdout}{done.stderr}"


@pytest.fixture(params=KEY_TYPES, ids=str)
def made(request: pytest.FixtureRequest,
         make_hierarchy: Callable[..., Hierarchy]) -> tuple[Hierarchy, Issuer, PrivateKey]:
    """A hierarchy whose intermediate key is of each type, its issuer, and that key."""
    hierarchy = make_hierarchy("pki", intermediate_key_type=request.param)
    return (hierarchy, load_issuer(hierarchy),
            load_key(hierarchy.paths.intermediate_key, None))


def test_a_certificate_signed_by_a_non_file_signer_verifies_and_lints_clean(
        made: tuple[Hierarchy, Issuer, PrivateKey], tmp_path: Path) -> None:
    """RFC 5280 4.1.1.3: the signer's signature over the DER tbsCertificate; openssl
    verifies the chain root -> intermediate -> leaf, pkilint finds nothing (RFC 5280,
    and the issuer/subject linter, which checks the signature too); and the DER is the
    file-signed one's but for the signatureValue (RSA PKCS#1 v1.5 is deterministic:
    there, byte for byte the same)."""
    hierarchy, issuer, key = made
    request = _leaf_request(hierarchy.now)
    leaf = build_leaf(issuer.certificate, KeySigner(key), request)
    by_file = build_leaf(issuer.certificate, FileSigner(key), request)

    leaf.verify_directly_issued_by(issuer.certificate)
    paths = {"root.pem": hierarchy.root, "intermediate.pem": issuer.certificate,
             "leaf.pem": leaf}
    for name, cert in paths.items():
        (tmp_path / name).write_bytes(files.pem(cert))
    assert _openssl("verify", "-CAfile", tmp_path / "root.pem", "-untrusted",
                    tmp_path / "intermediate.pem", tmp_path / "leaf.pem") == \
        f"0: {tmp_path / 'leaf.pem'}: OK\n"
    assert lint_pkix(leaf) == []
    assert lint_chain(issuer.certificate, leaf) == []

    ours, theirs = _fields(leaf.public_bytes(Encoding.DER)), _fields(
        by_file.public_bytes(Encoding.DER))
    assert len(ours) == len(theirs) == 3
    assert ours[:2] == theirs[:2]  # tbsCertificate and signatureAlgorithm (4.1.1.2)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        assert ours[2] == theirs[2]


def test_a_crl_signed_by_a_non_file_signer_verifies_and_lints_clean(
        made: tuple[Hierarchy, Issuer, PrivateKey], tmp_path: Path) -> None:
    """RFC 5280 5.1.1.3: the signer's signature over the DER tbsCertList; `openssl crl
    -verify` says "verify OK" with the intermediate (OpenSSL 3.0 exits 0 on "verify
    failure" too, so the words are what is checked); pkilint's CRL linter is clean; the
    DER is the file-signed one's but for the signatureValue."""
    hierarchy, issuer, key = made
    der = _crl(issuer, KeySigner(key), hierarchy.now)
    by_file = _crl(issuer, FileSigner(key), hierarchy.now)

    (tmp_path / "crl.der").write_bytes(der)
    (tmp_path / "intermediate.pem").write_bytes(files.pem(issuer.certificate))
    checked = _openssl("crl", "-verify", "-inform", "DER", "-in", tmp_path / "crl.der",
                       "-CAfile", tmp_path / "intermediate.pem", "-noout")
    assert checked == "0: verify OK\n"
    assert lint_crl(der) == []
    assert x509.load_der_x509_crl(der).is_signature_valid(
        issuer.certificate.public_key())  # type: ignore[arg-type]

    ours, theirs = _fields(der), _fields(by_file)
    assert len(ours) == len(theirs) == 3
    assert ours[:2] == theirs[:2]  # tbsCertList and signatureAlgorithm (5.1.1.2)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        assert ours[2] == theirs[2]


def test_openssl_refuses_a_crl_of_another_key(
        make_hierarchy: Callable[..., Hierarchy], tmp_path: Path) -> None:
    """The check above can fail: a CRL signed by another P-256 key, as a key file (so
    nothing in signer.py looks), reads "verify failure"."""
    hierarchy = make_hierarchy("pki")
    issuer = load_issuer(hierarchy)
    other = load_key(make_hierarchy("other").paths.intermediate_key, None)
    (tmp_path / "crl.der").write_bytes(_crl(issuer, FileSigner(other), hierarchy.now))
    (tmp_path / "intermediate.pem").write_bytes(files.pem(issuer.certificate))
    checked = _openssl("crl", "-verify", "-inform", "DER", "-in", tmp_path / "crl.der",
                       "-CAfile", tmp_path / "intermediate.pem", "-noout")
    assert "verify OK" not in checked and "verify failure" in checked


@pytest.mark.parametrize("kind", [KeyType.EC_P256, KeyType.RSA2048], ids=str)
def test_a_signer_that_signs_with_another_key_is_refused_never_returned(
        make_hierarchy: Callable[..., Hierarchy], kind: KeyType) -> None:
    """A token whose URI names another key of the same type: every signature is
    checked with the certificate's key before the DER is returned (RFC 5280 4.1.1.3,
    5.1.1.3), so the caller gets PkiError naming the key, never a certificate or a
    CRL that no relying party can verify."""
    hierarchy = make_hierarchy("pki", intermediate_key_type=kind)
    issuer = load_issuer(hierarchy)
    key = load_key(hierarchy.paths.intermediate_key, None)
    other = load_key(make_hierarchy("other", intermediate_key_type=kind)
                     .paths.intermediate_key, None)
    wrong = KeySigner(other, claimed=key)
    request = _leaf_request(hierarchy.now)
    with pytest.raises(PkiError, match="signed with a key that is not") as raised:
        build_leaf(issuer.certificate, wrong, request)
    assert "\n" not in str(raised.value) and wrong.describe() in str(raised.value)
    with pytest.raises(PkiError, match="signed with a key that is not"):
        replace(issuer, signer=wrong).issue(request)
    with pytest.raises(PkiError, match="signed with a key that is not"):
        _crl(issuer, wrong, hierarchy.now)
    builder = x509.CertificateRevocationListBuilder().issuer_name(
        issuer.certificate.subject).last_update(hierarchy.now).next_update(
        hierarchy.now + timedelta(days=1))
    with pytest.raises(PkiError, match="signed with a key that is not"):
        sign_crl(builder, wrong)
    # and the same signer with the right key passes: the refusal is the key's
    assert sign_crl(builder, KeySigner(key)).is_signature_valid(key.public_key())  # type: ignore[arg-type]


def test_ocsp_responses_are_signed_by_a_responder_key_file_only(issuer: Issuer,
                                                                now: datetime) -> None:
    """RFC 6960 4.2.2.2: a delegated responder's key signs responses; cryptography's
    OCSP builder checks the responder certificate against the key that signs, so a
    non-file signer is refused with PkiError, not signed with a stand-in."""
    key = ec.generate_private_key(ec.SECP256R1())
    responder = sign_certificate(
        x509.CertificateBuilder().subject_name(issuer.certificate.subject)
        .issuer_name(issuer.certificate.subject).public_key(key.public_key())
        .serial_number(random_serial()).not_valid_before(now)
        .not_valid_after(now + timedelta(days=1)), issuer.signer)
    query = OcspQuery(b"\x00" * 32, b"\x01" * 32, hashes.SHA256(), 42)
    times: dict[str, Any] = {"this_update": now, "next_update": now + timedelta(hours=1)}
    with pytest.raises(PkiError, match="key file") as raised:
        sign_response(query, GOOD, responder, KeySigner(key), **times)
    assert "\n" not in str(raised.value)
    assert sign_response(query, GOOD, responder, FileSigner(key), **times)  # a file signs


def test_load_signer_opens_a_key_file_and_checks_it_against_the_certificate(
        hierarchy: Hierarchy) -> None:
    """A Path is a key file (``[ca] intermediate_key = "…/intermediate-ca.key"``): its
    key must be the certificate's; one line naming the file otherwise."""
    p = hierarchy.paths
    signer = load_signer(p.intermediate_key, None, hierarchy.intermediate)
    assert isinstance(signer, FileSigner) and signer.path == p.intermediate_key
    assert verify_signature(hierarchy.intermediate.public_key(),  # type: ignore[arg-type]
                            signer.sign(b"x"), b"x", signer.hash_algorithm)
    with pytest.raises(PkiError, match=r"does not match its certificate") as raised:
        load_signer(p.intermediate_key, None, hierarchy.root)
    assert str(p.intermediate_key) in str(raised.value)


def test_an_rsassa_pss_certificate_is_refused(tmp_path: Path) -> None:
    """RFC 4055 1.2: a public key whose algorithm is id-RSASSA-PSS "MUST only be used"
    with RSASSA-PSS; the CA signs RSA with PKCS #1 v1.5 (sha256WithRSAEncryption), and
    cryptography loads such a key as any RSA key: refused, one line, not signed with."""
    require_program("openssl")
    key, cert = tmp_path / "pss.key", tmp_path / "pss.crt"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA-PSS", "-pkeyopt",
                    "rsa_keygen_bits:2048", "-out", str(key)], check=True, capture_output=True)
    subprocess.run(["openssl", "req", "-x509", "-new", "-key", str(key), "-subj", "/CN=pss",
                    "-days", "1", "-out", str(cert)], check=True, capture_output=True)
    certificate = x509.load_pem_x509_certificate(cert.read_bytes())
    with pytest.raises(PkiError, match="RSASSA-PSS") as raised:
        load_signer(key, None, certificate)
    assert "\n" not in str(raised.value)


def test_the_signing_pool_is_made_again_in_a_forked_child() -> None:
    """serve forks its workers after the parent signed through the pool (its TLS
    certificate): a pool inherited through fork has no threads, and without a new one
    the child's first signature would wait forever (the child gives it 10 s). The
    child signs through ``off_loop`` in a thread of its own and exits 0."""
    signer = FileSigner(ec.generate_private_key(ec.SECP256R1()))

    def sign() -> tuple[int, bytes]:
        return threading.get_ident(), signer.sign(b"forked")

    async def signed() -> tuple[int, bytes]:
        return await asyncio.wait_for(off_loop(sign), 10)

    parent, _ = asyncio.run(signed())  # the pool now has a thread, in this process
    assert parent != threading.get_ident()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
        pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            thread, signature = asyncio.run(signed())
            ok = thread != threading.get_ident() and verify_signature(
                signer.public_key, signature, b"forked", signer.hash_algorithm)
            code = 0 if ok else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_issuer_load_opens_a_key_on_a_token_for_a_pkcs11_uri(softhsm: SoftHsm,
                                                             tmp_path: Path) -> None:
    """``[ca] intermediate_key`` as an RFC 7512 URI: ``Issuer.load`` (through
    ``load_signer``) opens the key on the token with ``[ca] pkcs11_module``, and the
    leaves it signs (the stand-in path, in the signing pool) verify with the
    intermediate; no key file is read or written for it."""
    require_program("softhsm2-util")
    close_modules()  # the library reads this test's SOFTHSM2_CONF
    try:
        uri = Pkcs11Uri.parse(softhsm.uri("intermediate"))
        public_key, _ = generate_token_key(uri, softhsm.module, KeyType.EC_P256)
        root_key = ec.generate_private_key(ec.SECP384R1())
        now = datetime.now(UTC).replace(microsecond=0)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Token Root")])
        root = build_root(root_key, name, now - timedelta(minutes=1))
        intermediate = build_intermediate(
            root_cert=root, root_key=root_key, public_key=public_key,
            subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Token CA")]),
            not_before=now - timedelta(minutes=1))
        (tmp_path / "intermediate.crt").write_bytes(files.pem(intermediate))
        (tmp_path / "chain.pem").write_bytes(files.pem(intermediate, root))
        issuer = Issuer.load(tmp_path / "intermediate.crt", uri, tmp_path / "chain.pem",
                             None, now, pkcs11_module=softhsm.module)
        assert not isinstance(issuer.signer, FileSigner)
        leaf = asyncio.run(off_loop(issuer.issue, _leaf_request(now)))
        leaf.verify_directly_issued_by(intermediate)
        assert not list(tmp_path.glob("*.key"))
    finally:
        close_modules()
