"""Where relying parties find what the CA publishes over plain HTTP, and the paths it
serves them at: the one place that names the URLs placed in every leaf.

    <base>/crl/<issuer id>.crl   the full CRL of one issuing CA certificate (DER)
    <base>/ca/<issuer id>.crt    that CA certificate (DER), the leaves' caIssuers
    <base>/ocsp                  the OCSP responder (RFC 6960 A.1: POST, or GET + request)

``<issuer id>`` is the first 16 hex digits of the CA certificate's SHA-256 fingerprint:
each intermediate, current or archived after `acme-ca intermediate renew`, has its own
CRL at its own URL for as long as a certificate it signed is unexpired.
"""

from __future__ import annotations

from dataclasses import dataclass

ISSUER_ID_LENGTH = 16

# aiohttp route patterns of the plain-HTTP listener (api/publication.py builds on them)
CRL_ROUTE = "/crl/{issuer}.crl"
ISSUER_ROUTE = "/ca/{issuer}.crt"
OCSP_ROUTE = "/ocsp"


def issuer_id(fingerprint: str) -> str:
    """The short name of an issuing CA certificate in URLs (its fingerprint's start)."""
    return fingerprint[:ISSUER_ID_LENGTH]


@dataclass(frozen=True, slots=True)
class Publication:
    """The URLs that go into a leaf: ``base_url`` is ``[revocation] base_url`` (http://,
    no trailing slash); ``ocsp``: whether the responder runs (its URL in the AIA)."""

    base_url: str
    ocsp: bool = False

    def crl_url(self, fingerprint: str) -> str:
        return self.base_url + CRL_ROUTE.format(issuer=issuer_id(fingerprint))

    def issuer_url(self, fingerprint: str) -> str:
        return self.base_url + ISSUER_ROUTE.format(issuer=issuer_id(fingerprint))

    def ocsp_url(self) -> str | None:
        return self.base_url + OCSP_ROUTE if self.ocsp else None
