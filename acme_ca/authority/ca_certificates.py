"""The CA's public certificates, as clients download them; follows intermediate reloads."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from acme_ca.pki import files
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
