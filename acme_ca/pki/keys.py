"""Keys: the types the CA makes, reading them with a passphrase, writing them 0600, and
the public key in any file that holds one (`acme-ca keys hash`)."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)

from acme_ca.errors import PkiError
from acme_ca.pki.files import PRIVATE_FILE, read_bytes, write_file

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = CertificatePublicKeyTypes


class KeyType(StrEnum):
    RSA2048 = "rsa2048"
    RSA3072 = "rsa3072"
    RSA4096 = "rsa4096"
    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"


_CURVES: dict[KeyType, ec.EllipticCurve] = {
    KeyType.EC_P256: ec.SECP256R1(),
    KeyType.EC_P384: ec.SECP384R1(),
}


def generate_key(kind: KeyType) -> PrivateKey:
    if kind in _CURVES:
        return ec.generate_private_key(_CURVES[kind])
    return rsa.generate_private_key(public_exponent=65537, key_size=int(kind.value[3:]))


def describe_key(key: PublicKey | PrivateKey) -> str:
    """'RSA 4096', 'ECDSA P-384', ... for messages."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return {
            "secp256r1": "ECDSA P-256",
            "secp384r1": "ECDSA P-384",
            "secp521r1": "ECDSA P-521",
        }.get(key.curve.name, f"ECDSA {key.curve.name}")
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "Ed25519"
    return type(key).__name__


def signature_hash(key: CertificateIssuerPrivateKeyTypes | PublicKey) -> hashes.HashAlgorithm:
    """SHA-384 for P-384 (and larger) issuers, SHA-256 otherwise: never weaker than the key
    (a private key, or the public half of one that stays on a token)."""
    if (isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey)
            and key.curve.key_size >= 384):
        return hashes.SHA384()
    return hashes.SHA256()


def key_pem(key: PrivateKey, passphrase: bytes | None) -> bytes:
    """PKCS#8 PEM, encrypted (AES-256-CBC, PBKDF2) when a passphrase is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def write_key(path: Path, key: PrivateKey, passphrase: bytes | None, *, exclusive: bool) -> None:
    write_file(path, key_pem(key, passphrase), mode=PRIVATE_FILE, exclusive=exclusive)


def load_key(path: Path, passphrase: bytes | None, what: str = "private key") -> PrivateKey:
    """Read a PEM or DER private key (PKCS#1, SEC1 or PKCS#8, encrypted or not).

    The messages distinguish a wrong passphrase from a missing one and from a file
    that is not a key at all.
    """
    return parse_key(read_bytes(path, what), passphrase, f"{what} {path}")


def parse_key(data: bytes, passphrase: bytes | None, name: str) -> PrivateKey:
    """`load_key` for bytes already read; `name` ("intermediate key /path") for messages."""
    loader = (
        serialization.load_pem_private_key
        if b"-----BEGIN" in data
        else serialization.load_der_private_key
    )
    try:
        key = loader(data, password=None)
    except TypeError:  # encrypted: cryptography says "Password was not given"
        if not passphrase:
            raise PkiError(f"{name} is encrypted: a passphrase is needed") from None
        try:
            key = loader(data, password=passphrase)
        except (ValueError, TypeError):
            raise PkiError(f"wrong passphrase for {name}") from None
    except ValueError as exc:
        raise PkiError(f"{name} is not a readable private key ({exc})") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise PkiError(f"{name} is a {describe_key(key)} key; only RSA and ECDSA can sign")
    return key


def public_bytes(key: PublicKey | PrivateKey) -> bytes:
    public = key.public_key() if hasattr(key, "private_bytes") else key
    return public.public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def same_key(a: PublicKey | PrivateKey, b: PublicKey | PrivateKey) -> bool:
    return public_bytes(a) == public_bytes(b)


def public_key_in(data: bytes, name: str) -> PublicKey:
    """The public key in a PEM or DER public key, unencrypted private key, certificate
    or CSR (the first such block of a PEM file); PkiError naming `name` otherwise."""
    pem = b"-----BEGIN" in data
    readers: tuple[Callable[[bytes], Any], ...] = (
        (serialization.load_pem_public_key, _pem_private_key,
         x509.load_pem_x509_certificate, x509.load_pem_x509_csr) if pem else
        (serialization.load_der_public_key, _der_private_key,
         x509.load_der_x509_certificate, x509.load_der_x509_csr))
    for read in readers:
        try:
            found = read(data)
        except TypeError:  # cryptography: "Password was not given but ... is encrypted"
            raise PkiError(f"{name} is an encrypted private key: give its public key "
                           "(openssl pkey -pubout), certificate or CSR instead") from None
        except (ValueError, UnsupportedAlgorithm):
            continue
        return found if read is readers[0] else found.public_key()  # type: ignore[no-any-return]
    raise PkiError(f"{name} holds no public key, private key, certificate or CSR "
                   "(PEM or DER) that can be read")


def _pem_private_key(data: bytes) -> Any:
    return serialization.load_pem_private_key(data, password=None)


def _der_private_key(data: bytes) -> Any:
    return serialization.load_der_private_key(data, password=None)
