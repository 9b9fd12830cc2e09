"""Certificate revocation lists (RFC 5280 section 5): what an issuing CA signs to say
which of its unexpired certificates relying parties must refuse.

One full CRL per issuing intermediate, current or archived (each signs the CRL of what
it issued, RFC 5280 5.1.2.3 with no indirect CRL), built from plain values so the
authority can hand it the store's rows and the offline tools could use it alone:

- version 2, the issuer's subject, thisUpdate and nextUpdate (5.1.2.4, 5.1.2.5);
- crlExtensions: the authority key identifier (5.2.1: the issuer's SKI, as its leaves'
  AKI), the CRL number (5.2.3), and a critical issuing distribution point (5.2.5)
  naming every URL the leaves' CRL distribution points carry (the current one, and
  those of before a change of [revocation] base_url: 6.3.3 (b)(2)(i) checks that one
  of them matches the leaf's), with onlyContainsUserCerts (the intermediates sign
  leaves only);
- one entry per revoked certificate: serial, revocationDate, and a reasonCode
  extension unless the reason is unspecified (5.3.1: "the reason code CRL entry
  extension SHOULD be absent instead of using the unspecified (0) reasonCode value");
- signed by the intermediate's ``Signer`` (a key file or a token) through
  ``signer.sign_crl``, with the hash ``keys.signature_hash`` picks for the key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from acme_ca.errors import PkiError
from acme_ca.pki.profiles import authority_key_id
from acme_ca.pki.signer import Signer, sign_crl

# RFC 5280 5.3.1 CRLReason codes; 7 is not used, 8 (removeFromCRL) belongs to delta CRLs.
REASONS: dict[int, x509.ReasonFlags] = {
    0: x509.ReasonFlags.unspecified,
    1: x509.ReasonFlags.key_compromise,
    2: x509.ReasonFlags.ca_compromise,
    3: x509.ReasonFlags.affiliation_changed,
    4: x509.ReasonFlags.superseded,
    5: x509.ReasonFlags.cessation_of_operation,
    6: x509.ReasonFlags.certificate_hold,
    9: x509.ReasonFlags.privilege_withdrawn,
    10: x509.ReasonFlags.aa_compromise,
}
UNSPECIFIED = 0


@dataclass(frozen=True, slots=True)
class CrlEntry:
    """One revoked certificate: its serial number, when, and why (an RFC 5280 code)."""

    serial: int
    revoked_at: datetime
    reason: int = UNSPECIFIED


@dataclass(frozen=True, slots=True)
class CrlSigner:
    """An intermediate that signs CRLs: the current one, or an archived one whose key is
    still kept (``held_at``: the archived key file, or the ``.key-uri`` file naming it
    on its token; once that is gone, so is the CRL).
    ``signer`` signs for ``certificate``: a key file or a key on a token."""

    certificate: x509.Certificate
    fingerprint: str  # hex SHA-256 of the certificate
    signer: Signer
    held_at: Path | None = None  # None: the current intermediate

    def retired(self) -> bool:
        """Whether the archived key was destroyed since it was read."""
        return self.held_at is not None and not self.held_at.exists()


def build_crl(
    signer: CrlSigner,
    *,
    number: int,
    this_update: datetime,
    next_update: datetime,
    entries: Sequence[CrlEntry],
    distribution_point: str,
    earlier_points: Sequence[str] = (),
) -> bytes:
    """The DER of a full CRL of ``signer`` (see the module docstring); its issuing
    distribution point names ``distribution_point``, then each of ``earlier_points``
    (URLs earlier leaves carry, from before [revocation] base_url changed).

    The entries go to the builder in one list: adding them one at a time copies the
    builder each time (quadratic: 80k entries took 11 s, docs/performance.md)."""
    if number < 1:
        raise PkiError(f"a CRL number is a positive integer, not {number}")
    if next_update <= this_update:
        raise PkiError("a CRL's nextUpdate must be later than its thisUpdate")
    idp = x509.IssuingDistributionPoint(
        full_name=[x509.UniformResourceIdentifier(url)
                   for url in dict.fromkeys((distribution_point, *earlier_points))],
        relative_name=None,
        only_contains_user_certs=True,
        only_contains_ca_certs=False,
        only_some_reasons=None,
        indirect_crl=False,
        only_contains_attribute_certs=False,
    )
    builder = (
        x509.CertificateRevocationListBuilder(
            revoked_certificates=[_revoked(entry) for entry in entries]
        )
        .issuer_name(signer.certificate.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(authority_key_id(signer.certificate), critical=False)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(idp, critical=True)
    )
    return sign_crl(builder, signer.signer).public_bytes(Encoding.DER)


def _revoked(entry: CrlEntry) -> x509.RevokedCertificate:
    if entry.reason not in REASONS:
        raise PkiError(f"{entry.reason} is not an RFC 5280 CRLReason code")
    revoked = (
        x509.RevokedCertificateBuilder()
        .serial_number(entry.serial)
        .revocation_date(entry.revoked_at)
    )
    if entry.reason != UNSPECIFIED:
        revoked = revoked.add_extension(x509.CRLReason(REASONS[entry.reason]), critical=False)
    return revoked.build()
