"""The CA's public certificates, as clients download them; follows intermediate reloads."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from acme_ca.pki import files
from acme_ca.pki.hierarchy import fingerprint
from acme_ca.pki.issuer import Issuer


class CaCertificates:
    def __init__(self, issuer: Callable[[], Issuer]) -> None:
        self._issuer = issuer

    def root_pem(self) -> bytes:
        """The root, for clients to trust (the guide's root-ca.crt)."""
        return files.pem(self._issuer().root)

    def chain_pem(self) -> bytes:
        """Intermediate then root (the guide's ca-chain.pem)."""
        return files.pem(*self._issuer().chain)

    def intermediate_not_after(self) -> datetime:
        return self._issuer().certificate.not_valid_after_utc

    def expiries(self) -> list[tuple[str, str, datetime]]:
        """(role, SHA-256 fingerprint, notAfter) of the root, the current intermediate
        and the archived intermediates it replaced: what the expiry metric shows."""
        issuer = self._issuer()
        found = [("root", fingerprint(issuer.root), issuer.root.not_valid_after_utc),
                 ("intermediate", issuer.fingerprint, issuer.certificate.not_valid_after_utc)]
        found += [("archived intermediate", archived, chain[0].not_valid_after_utc)
                  for archived, chain in sorted(issuer.earlier.items())]
        return found
