"""Keys (generate, describe, read with a passphrase), safe file writing, loading the issuer."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from acme_ca.errors import PkiError
from acme_ca.pki import files
from acme_ca.pki.archive import archive_dir
from acme_ca.pki.keys import (
    KeyType,
    describe_key,
    generate_key,
    key_pem,
    load_key,
    same_key,
    write_key,
)
from tests.conftest import Hierarchy, load_issuer

PASS = b"key passphrase"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A permissive umask, to show modes are set explicitly and not inherited."""
    old = os.umask(0)
    yield
    os.umask(old)


@pytest.fixture
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.mark.parametrize(
    ("kind", "description"), [(KeyType.EC_P256, "ECDSA P-256"), (KeyType.EC_P384, "ECDSA P-384")]
)
def test_generate_and_describe(kind: KeyType, description: str) -> None:
    generated = generate_key(kind)
    assert describe_key(generated) == description == describe_key(generated.public_key())


def test_describe_other_keys() -> None:
    assert describe_key(rsa.generate_private_key(65537, 2048).public_key()) == "RSA 2048"
    assert describe_key(ec.generate_private_key(ec.SECP521R1())) == "ECDSA P-521"
    assert describe_key(ed25519.Ed25519PrivateKey.generate()) == "Ed25519"


def test_key_pem_is_pkcs8_encrypted_only_with_a_passphrase(key: ec.EllipticCurvePrivateKey) -> None:
    assert key_pem(key, None).startswith(b"-----BEGIN PRIVATE KEY-----")
    assert key_pem(key, PASS).startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")


def test_write_key_is_0600_and_exclusive_refuses(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey, open_umask: None
) -> None:
    path = tmp_path / "keys" / "a.key"
    write_key(path, key, PASS, exclusive=True)
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    before = path.read_bytes()
    with pytest.raises(PkiError, match="already exists; refusing to overwrite"):
        write_key(path, ec.generate_private_key(ec.SECP256R1()), PASS, exclusive=True)
    assert path.read_bytes() == before
    assert same_key(load_key(path, PASS), key)


@pytest.mark.parametrize(
    ("encoding", "fmt"),
    [
        (serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8),
        (serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL),  # SEC1
        (serialization.Encoding.DER, serialization.PrivateFormat.PKCS8),
        (serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL),
    ],
)
def test_load_unencrypted_keys(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey, encoding: object, fmt: object
) -> None:
    path = tmp_path / "k"
    path.write_bytes(key.private_bytes(encoding, fmt, serialization.NoEncryption()))  # type: ignore[arg-type]
    assert same_key(load_key(path, None), key)
    assert same_key(load_key(path, b"ignored for a clear key"), key)


def test_load_a_legacy_encrypted_pkcs1_rsa_key(tmp_path: Path) -> None:
    """What `openssl genrsa -aes256` wrote before OpenSSL 3 (Proc-Type: 4,ENCRYPTED)."""
    rsa_key = rsa.generate_private_key(65537, 2048)
    path = tmp_path / "root-ca.key"
    path.write_bytes(
        rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.BestAvailableEncryption(PASS),
        )
    )
    assert b"Proc-Type: 4,ENCRYPTED" in path.read_bytes()
    assert same_key(load_key(path, PASS), rsa_key)
    with pytest.raises(PkiError, match="wrong passphrase"):
        load_key(path, b"nope")


def test_encrypted_key_messages(tmp_path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path = tmp_path / "k"
    write_key(path, key, PASS, exclusive=True)
    with pytest.raises(PkiError, match=r"is encrypted: a passphrase is needed"):
        load_key(path, None, "root key")
    with pytest.raises(PkiError, match=r"^wrong passphrase for root key "):
        load_key(path, b"nope", "root key")


def test_load_an_encrypted_der_key(tmp_path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path = tmp_path / "k.der"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(PASS),
        )
    )
    assert same_key(load_key(path, PASS), key)


def test_not_a_key(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(PkiError, match="is not a readable private key"):
        load_key(path, None)
    with pytest.raises(PkiError, match="does not exist"):
        load_key(tmp_path / "missing", None)


def test_only_rsa_and_ecdsa_keys_can_sign(tmp_path: Path) -> None:
    path = tmp_path / "k"
    write_file_key = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(write_file_key)
    with pytest.raises(PkiError, match="is a Ed25519 key; only RSA and ECDSA can sign"):
        load_key(path, None)


def test_same_key(key: ec.EllipticCurvePrivateKey) -> None:
    assert same_key(key, key.public_key())
    assert not same_key(key, ec.generate_private_key(ec.SECP256R1()))


# files.py


def test_write_file_sets_the_mode_whatever_the_umask(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "a" / "b" / "cert.pem"
    files.write_file(path, b"data", mode=files.PUBLIC_FILE)
    assert path.read_bytes() == b"data"
    assert mode(path) == 0o644
    assert mode(tmp_path / "a") == mode(tmp_path / "a" / "b") == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["cert.pem"]  # no temporary left


def test_ensure_dir_leaves_existing_directories_alone(tmp_path: Path) -> None:
    existing = tmp_path / "shared"
    existing.mkdir(mode=0o755)
    os.chmod(existing, 0o755)  # noqa: S103 - a shared parent, as /etc is
    files.ensure_dir(existing / "private")
    assert mode(existing) == 0o755 and mode(existing / "private") == 0o700


def test_write_file_replaces_unless_exclusive(tmp_path: Path) -> None:
    path = tmp_path / "f"
    files.write_file(path, b"one", mode=0o600)
    files.write_file(path, b"two", mode=0o600)
    assert path.read_bytes() == b"two"
    with pytest.raises(PkiError, match="already exists"):
        files.write_file(path, b"three", mode=0o600, exclusive=True)
    assert path.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_write_file_under_a_file_is_a_pki_error(tmp_path: Path) -> None:
    """A file on the way, as a folder to make or as the folder itself (where the
    temporary is made), is a one-line PkiError, never a bare OSError."""
    (tmp_path / "plain").write_bytes(b"")
    with pytest.raises(PkiError, match="cannot create directory"):
        files.write_file(tmp_path / "plain" / "sub" / "f", b"x", mode=0o600)
    with pytest.raises(PkiError, match="cannot write"):
        files.write_file(tmp_path / "plain" / "f", b"x", mode=0o600)


def test_load_certificates_pem_der_and_garbage(hierarchy: Hierarchy, tmp_path: Path) -> None:
    chain = files.load_certificates(hierarchy.paths.chain)
    assert chain == [hierarchy.intermediate, hierarchy.root]
    der = tmp_path / "root.der"
    der.write_bytes(hierarchy.root.public_bytes(serialization.Encoding.DER))
    assert files.load_certificate(der) == hierarchy.root
    assert files.pem(*chain) == hierarchy.paths.chain.read_bytes()
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"not a certificate")
    with pytest.raises(PkiError, match=r"does not hold a readable X\.509 certificate"):
        files.load_certificate(garbage, "root certificate")
    with pytest.raises(PkiError, match=r"^root certificate .* does not exist"):
        files.load_certificate(tmp_path / "missing", "root certificate")


# issuer.py: loading the online half (intermediate certificate, key and chain).


def test_issuer_load(hierarchy: Hierarchy) -> None:
    issuer = load_issuer(hierarchy)
    assert issuer.certificate == hierarchy.intermediate
    assert (
        issuer.chain == (hierarchy.intermediate, hierarchy.root) and issuer.root == hierarchy.root
    )
    assert issuer.fingerprint == hierarchy.intermediate.fingerprint(hashes.SHA256()).hex()
    assert issuer.chain_pem() == files.pem(hierarchy.intermediate)  # what a server presents


def test_issuer_load_refusals(hierarchy: Hierarchy, key: ec.EllipticCurvePrivateKey) -> None:
    p = hierarchy.paths
    late = hierarchy.intermediate.not_valid_after_utc
    with pytest.raises(PkiError, match=r"expired on .* `acme-ca intermediate renew`"):
        load_issuer(hierarchy, now=late)
    p.chain.write_bytes(files.pem(hierarchy.root, hierarchy.intermediate))
    with pytest.raises(PkiError, match="does not start with"):
        load_issuer(hierarchy)
    p.intermediate_key.unlink()
    write_key(p.intermediate_key, key, PASS, exclusive=True)
    with pytest.raises(PkiError, match="is encrypted"):
        load_issuer(hierarchy)
    with pytest.raises(PkiError, match=r"intermediate key .* does not match"):
        load_issuer(hierarchy, passphrase=PASS)


def test_issuer_load_refuses_an_archived_intermediate_the_root_did_not_sign(
    hierarchy: Hierarchy, key: ec.EllipticCurvePrivateKey
) -> None:
    """A certificate in ca/archive/ is served as the chain of what it signed: one that
    names our root as issuer but was signed by another key (RFC 5280 6.1.3 (a)(1): the
    signature must verify with the issuer's public key) is refused by name, and
    nothing is loaded until it is moved out."""
    inter = hierarchy.intermediate
    foreign = (
        x509.CertificateBuilder()
        .subject_name(inter.subject)
        .issuer_name(inter.issuer)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(hierarchy.now)
        .not_valid_after(hierarchy.now + timedelta(days=9))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    archived = archive_dir(hierarchy.paths.intermediate_cert) / "intermediate-ca.7.crt"
    files.write_file(archived, files.pem(foreign), mode=files.PUBLIC_FILE)
    root = hierarchy.root.subject.rfc4514_string()
    refusal = f"archived intermediate {archived} was not signed by {root}"
    with pytest.raises(PkiError, match=re.escape(refusal)):
        load_issuer(hierarchy)
    archived.unlink()
    assert load_issuer(hierarchy).earlier == {}
