"""The CA's signing keys behind one small interface, and the one place that signs.

A ``Signer`` is a key that signs: a key file the server read (``FileSigner``), or a key
that never leaves a PKCS#11 token (``pki/token.py``). Everything the CA signs goes
through the three functions here: certificates (``sign_certificate``), CRLs
(``sign_crl``) and OCSP responses (``sign_ocsp_response``: a delegated responder's key
file); the callers never see a key. ``load_signer`` is the one place that turns a
configured key location (a file path, or a PKCS#11 URI) into a Signer.

cryptography's builders sign only with its own key types. For any other signer the
builder signs with a throwaway *stand-in* key of the same algorithm (so that the DER
carries the right signatureAlgorithm), and the stand-in's signature is replaced by the
signer's signature over the to-be-signed bytes (RFC 5280 4.1.1.3: the signature is
computed over the DER of tbsCertificate; 5.1.1.3 likewise for tbsCertList). Each
result is verified with the signer's public key before it is returned: a token that
signs with another key is caught here, not by a client.

Signing is CPU work (an RSA-4096 signature takes milliseconds) or a round trip to a
device: the server runs it off the event loop, in this module's pool (``off_loop``).
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import PublicKeyAlgorithmOID

from acme_ca.errors import PkiError
from acme_ca.pkcs11_uri import Pkcs11Uri
from acme_ca.pki.der import header_length, tlv, tlv_length
from acme_ca.pki.keys import PrivateKey, PublicKey, load_key, same_key, signature_hash

T = TypeVar("T")

SIGNING_THREADS = 4  # at most this many signatures at once, per process


@runtime_checkable
class Signer(Protocol):
    """A key that signs for the CA."""

    @property
    def public_key(self) -> PublicKey:
        """The public half: what the CA certificate of this key carries."""

    @property
    def hash_algorithm(self) -> hashes.HashAlgorithm:
        """The hash it signs with (``keys.signature_hash``: SHA-384 for P-384, else SHA-256)."""

    def sign(self, data: bytes) -> bytes:
        """The signature over ``data`` as X.509 carries it in a BIT STRING: a DER
        ECDSA-Sig-Value (RFC 3279 2.2.3) or an RSASSA-PKCS1-v1_5
        signature (RFC 8017 8.2). PkiError when the key cannot sign now."""

    def describe(self) -> str:
        """Where the key is, for messages: a file path, or a PKCS#11 URI without its PIN."""


@dataclass(frozen=True, slots=True)
class FileSigner:
    """A key read from a file (or made in memory): cryptography's builders use it as it is."""

    key: PrivateKey
    path: Path | None = None

    @property
    def public_key(self) -> PublicKey:
        return self.key.public_key()

    @property
    def hash_algorithm(self) -> hashes.HashAlgorithm:
        return signature_hash(self.key)

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.key, rsa.RSAPrivateKey):
            return self.key.sign(data, padding.PKCS1v15(), self.hash_algorithm)
        return self.key.sign(data, ec.ECDSA(self.hash_algorithm))

    def describe(self) -> str:
        return str(self.path) if self.path is not None else "a key in memory"


def load_file_signer(path: Path, passphrase: bytes | None, certificate: x509.Certificate,
                     what: str = "intermediate key") -> FileSigner:
    """The key in ``path``, checked against the certificate it signs for."""
    key = load_key(path, passphrase, what)
    if not same_key(key, certificate.public_key()):  # type: ignore[arg-type]
        raise PkiError(f"{what} {path} does not match its certificate")
    return FileSigner(key, path)


def load_signer(location: Path | Pkcs11Uri, passphrase: bytes | None,
                certificate: x509.Certificate, module: Path | None = None,
                what: str = "intermediate key") -> Signer:
    """The Signer of the key at ``location``, checked against ``certificate``: a key file
    (``passphrase`` decrypts it), or a key on a PKCS#11 token (``module``: the library,
    else the URI's module-path; pki/token.py, imported here since it imports this
    module; python-pkcs11, the ``hsm`` extra, is imported at a token's first use).
    PkiError in one line when it cannot be used, or when the certificate's key is an
    RSASSA-PSS key (RFC 4055 1.2: only ever used with PSS; the CA signs RSA with
    PKCS #1 v1.5)."""
    if certificate.public_key_algorithm_oid == PublicKeyAlgorithmOID.RSASSA_PSS:
        raise PkiError(f"the certificate of {what} has an RSASSA-PSS key (RFC 4055 1.2), "
                       "which signs with PSS only: this CA signs RSA with PKCS #1 v1.5")
    if isinstance(location, Pkcs11Uri):
        from acme_ca.pki.token import open_token_signer

        return open_token_signer(location, module, certificate)
    return load_file_signer(location, passphrase, certificate, what)


def verify_signature(public_key: PublicKey, signature: bytes, data: bytes,
                     algorithm: hashes.HashAlgorithm) -> bool:
    """Whether ``signature`` (as ``Signer.sign`` returns it) is ``public_key``'s over ``data``."""
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(algorithm))
        else:
            return False
    except InvalidSignature:
        return False
    return True


# --- signing through the builders -------------------------------------------------------


def sign_certificate(builder: x509.CertificateBuilder, signer: Signer) -> x509.Certificate:
    """``builder`` signed by ``signer`` (RFC 5280 4.1)."""
    if isinstance(signer, FileSigner):
        return builder.sign(signer.key, signer.hash_algorithm)
    draft = builder.sign(_stand_in(signer.public_key), signer.hash_algorithm)
    der = _resign(draft.public_bytes(Encoding.DER), draft.tbs_certificate_bytes, signer)
    return x509.load_der_x509_certificate(der)


def sign_crl(builder: x509.CertificateRevocationListBuilder,
             signer: Signer) -> x509.CertificateRevocationList:
    """``builder`` signed by ``signer`` (RFC 5280 5.1)."""
    if isinstance(signer, FileSigner):
        return builder.sign(signer.key, signer.hash_algorithm)
    draft = builder.sign(_stand_in(signer.public_key), signer.hash_algorithm)
    der = _resign(draft.public_bytes(Encoding.DER), draft.tbs_certlist_bytes, signer)
    return x509.load_der_x509_crl(der)


def sign_ocsp_response(builder: ocsp.OCSPResponseBuilder, signer: Signer,
                       algorithm: hashes.HashAlgorithm) -> bytes:
    """The DER of a successful OCSP response: ``builder`` signed by ``signer`` with
    ``algorithm`` (RFC 6960 4.2.1). OCSP responses are signed by a delegated responder
    (RFC 6960 4.2.2.2), whose key is always a file (authority/ocsp_responders.py): the
    builder checks the responder certificate against the very key that signs, so a
    stand-in cannot sign here, and a token key is refused."""
    if not isinstance(signer, FileSigner):
        raise PkiError("OCSP responses are signed by a delegated responder's key file, "
                       f"not by {signer.describe()}")
    return builder.sign(signer.key, algorithm).public_bytes(Encoding.DER)


# --- off the event loop -----------------------------------------------------------------

_pool: tuple[int, ThreadPoolExecutor] | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    """This process's signing pool. Made at first use and again in a forked worker: a
    pool inherited through fork has no threads behind it (serve forks its workers after
    the parent signed its TLS certificate)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), ThreadPoolExecutor(SIGNING_THREADS,
                                                     thread_name_prefix="acme-ca-signing"))
        return _pool[1]


async def off_loop(fn: Callable[..., T], *args: object, **kwargs: object) -> T:
    """``fn(*args, **kwargs)`` in the signing pool: what signs never stalls the event loop."""
    return await asyncio.get_running_loop().run_in_executor(
        _executor(), functools.partial(fn, *args, **kwargs))


# --- the stand-in and the DER it leaves -----------------------------------------------

_stand_ins: dict[str, PrivateKey] = {}
_stand_ins_lock = threading.Lock()


def _stand_in(public_key: PublicKey) -> PrivateKey:
    """A throwaway key of the same algorithm as ``public_key``: its signature only makes
    the builder write the signatureAlgorithm, and is always replaced. The algorithm
    identifier depends on the hash alone (ecdsa-with-SHA384, sha256WithRSAEncryption),
    so one small key per algorithm does."""
    kind = "rsa" if isinstance(public_key, rsa.RSAPublicKey) else "ec"
    if kind == "ec" and not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise PkiError(f"a {type(public_key).__name__} cannot sign certificates here")
    with _stand_ins_lock:
        if kind not in _stand_ins:
            # never a signature anyone sees: the smallest key that is quick to use
            _stand_ins[kind] = (rsa.generate_private_key(65537, 1024)  # noqa: S505
                                if kind == "rsa"
                                else ec.generate_private_key(ec.SECP256R1()))
        return _stand_ins[kind]


def _resign(der: bytes, tbs: bytes, signer: Signer) -> bytes:
    """``der`` (SEQUENCE { tbs, AlgorithmIdentifier, BIT STRING }) with the signature
    replaced by ``signer``'s over ``tbs``, verified before it is returned."""
    signature = signer.sign(tbs)
    if not verify_signature(signer.public_key, signature, tbs, signer.hash_algorithm):
        raise PkiError(f"the key {signer.describe()} signed with a key that is not the "
                       "CA certificate's: check the key it names")
    body_start = header_length(der, 0)
    if der[body_start:body_start + len(tbs)] != tbs:
        raise PkiError("a signed structure does not start with its to-be-signed part")
    algorithm_at = body_start + len(tbs)
    algorithm_end = algorithm_at + tlv_length(der, algorithm_at)  # the BIT STRING is last
    return tlv(0x30, der[body_start:algorithm_end] + tlv(0x03, b"\x00" + signature))

