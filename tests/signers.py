"""Signers for tests: a key that is not a ``FileSigner`` (what a token looks like to
``pki/signer.py``), and a wrapper that records which thread each signature ran in.

``KeySigner`` wraps a cryptography key behind the ``Signer`` interface only, so
``sign_certificate`` and ``sign_crl`` take the stand-in path (the builder signs with
a throwaway key, the signature is replaced by this one's over the to-be-signed bytes).
The SoftHSM2 tests (pki/token.py) cover a real token; this covers the DER re-signing
on its own, for every key type, without one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes

from acme_ca.pki.keys import PrivateKey, PublicKey, signature_hash
from acme_ca.pki.signer import FileSigner, Signer


@dataclass(frozen=True)
class KeySigner:
    """Signs with ``key``; claims ``claimed``'s public key when given (a signer that
    signs with the wrong key: a token whose URI names another object)."""

    key: PrivateKey
    claimed: PrivateKey | None = None

    @property
    def public_key(self) -> PublicKey:
        return (self.claimed or self.key).public_key()

    @property
    def hash_algorithm(self) -> hashes.HashAlgorithm:
        return signature_hash(self.claimed or self.key)

    def sign(self, data: bytes) -> bytes:
        return FileSigner(self.key).sign(data)

    def describe(self) -> str:
        return "a key of the test's (not a file signer)"


@dataclass(frozen=True)
class Recording:
    """``inner`` (a Signer), noting the thread of each signature in ``threads``."""

    inner: Signer
    threads: list[int] = field(default_factory=list)

    @property
    def public_key(self) -> PublicKey:
        return self.inner.public_key

    @property
    def hash_algorithm(self) -> hashes.HashAlgorithm:
        return self.inner.hash_algorithm

    def sign(self, data: bytes) -> bytes:
        self.threads.append(threading.get_ident())
        return self.inner.sign(data)

    def describe(self) -> str:
        return self.inner.describe()
