"""What the CA persists, as plain immutable values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class CertificateStatus(StrEnum):
    RESERVED = "reserved"  # serial stored, certificate not yet signed (or signing failed)
    ISSUED = "issued"
    REVOKED = "revoked"


def serial_hex(serial: int) -> str:
    """The canonical text form of a serial number: lowercase hex, no leading zeros."""
    return format(serial, "x")


@dataclass(frozen=True, slots=True)
class CertificateRecord:
    """One certificate, from the moment its serial is reserved.

    The serial is stored before anything is signed (Boulder's issuance cycle), so a
    crash between signing and storing can never leave a certificate the CA does not
    know about: at worst a reserved serial with no DER.
    """

    serial: str  # serial_hex() of the certificate's serial number
    issuer: str  # hex SHA-256 fingerprint of the issuing CA certificate
    names: tuple[str, ...]  # the subjectAltName values, DNS names and IP addresses
    profile: str  # "server", "client" or "both"
    not_before: datetime
    not_after: datetime
    created_at: datetime
    status: CertificateStatus = CertificateStatus.RESERVED
    der: bytes | None = None
    account_id: str | None = None  # None for certificates issued by `acme-ca sign-csr`
    order_id: str | None = None
    revoked_at: datetime | None = None
    revocation_reason: int | None = None  # RFC 5280 CRLReason code
