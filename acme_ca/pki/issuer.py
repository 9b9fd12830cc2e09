"""The online half of the CA: the intermediate certificate and key that sign leaves.

This is all the server loads from the hierarchy; it never sees the root key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509

from acme_ca.errors import PkiError
from acme_ca.pki import files
from acme_ca.pki.hierarchy import fingerprint
from acme_ca.pki.keys import PrivateKey, load_key, same_key
from acme_ca.pki.profiles import LeafRequest, build_leaf


@dataclass(frozen=True, slots=True)
class Issuer:
    certificate: x509.Certificate
    key: PrivateKey
    chain: tuple[x509.Certificate, ...]  # the intermediate, then up to the root
    fingerprint: str  # hex SHA-256 of the intermediate certificate
    # Other chains to offer after a leaf (e.g. the intermediate cross-signed by another
    # root): each starts with a certificate for the intermediate's own name and key.
    alternates: tuple[tuple[x509.Certificate, ...], ...] = ()

    @classmethod
    def load(
        cls,
        cert_path: Path,
        key_path: Path,
        chain_path: Path,
        passphrase: bytes | None,
        now: datetime,
        alternate_paths: Sequence[Path] = (),
    ) -> Issuer:
        """Load and check the intermediate: key matches, CA, valid now, chain starts with it."""
        cert = files.load_certificate(cert_path, "intermediate certificate")
        key = load_key(key_path, passphrase, "intermediate key")
        if not same_key(key, cert.public_key()):  # type: ignore[arg-type]
            raise PkiError(f"intermediate key {key_path} does not match {cert_path}")
        if cert.not_valid_after_utc <= now:
            raise PkiError(
                f"intermediate certificate {cert_path} expired on "
                f"{cert.not_valid_after_utc:%Y-%m-%d} UTC: renew it with "
                "`acme-ca intermediate renew`"
            )
        chain = tuple(files.load_certificates(chain_path, "CA chain"))
        if chain[0] != cert:
            raise PkiError(f"CA chain {chain_path} does not start with {cert_path}")
        alternates = tuple(_alternate(cert, path) for path in alternate_paths)
        return cls(cert, key, chain, fingerprint(cert), alternates)

    @property
    def root(self) -> x509.Certificate:
        return self.chain[-1]

    def issue(self, request: LeafRequest) -> x509.Certificate:
        return build_leaf(self.certificate, self.key, request)

    def chain_pem(self, leaf: x509.Certificate | None = None, alternate: int = 0) -> bytes:
        """PEM of the leaf (if given) and the intermediate(s) a TLS server presents:
        the default chain, or alternate chain number `alternate` (1-based)."""
        extra = self.chain[:-1] if alternate == 0 else self.alternates[alternate - 1]
        return files.pem(*([leaf] if leaf is not None else []), *extra)


def _alternate(intermediate: x509.Certificate, path: Path) -> tuple[x509.Certificate, ...]:
    certs = tuple(files.load_certificates(path, "alternate chain"))
    first = certs[0]
    if first.subject != intermediate.subject or first.public_key() != intermediate.public_key():
        raise PkiError(
            f"alternate chain {path} does not start with a certificate for the "
            "intermediate's name and key"
        )
    return certs
