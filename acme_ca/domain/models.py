"""What the CA persists, as plain immutable values."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class CertificateStatus(StrEnum):
    RESERVED = "reserved"  # serial stored, certificate not yet signed (or signing failed)
    ISSUED = "issued"
    REVOKED = "revoked"


def serial_hex(serial: int) -> str:
    """The canonical text form of a serial number: lowercase hex, no leading zeros."""
    return format(serial, "x")


SERIAL_HEX_DIGITS = 40  # RFC 5280 4.1.2.2: a serial number is at most 20 octets


def serial_from_text(text: str) -> str:
    """A serial number as an operator pastes it, in its canonical form (``serial_hex``):
    as ``certs list`` prints it (lowercase hex), or as openssl does (``x509 -serial``:
    upper case; ``x509 -text``: bytes joined by colons, a leading 00 when the first bit
    is set), with or without a leading 0x. ``ValueError`` for anything else, and for
    more than ``SERIAL_HEX_DIGITS`` significant digits; the message never repeats more
    than the input's first 48 characters."""
    cleaned = text.strip().replace(":", "")
    if cleaned[:2].lower() == "0x":
        cleaned = cleaned[2:]
    if not cleaned or any(c not in "0123456789abcdefABCDEF" for c in cleaned):
        raise ValueError(f"{_shortened(text)} is not a serial number in hex (as `acme-ca "
                         "certs list` or `openssl x509 -serial` prints it)")
    digits = len(cleaned.lstrip("0"))
    if digits > SERIAL_HEX_DIGITS:
        raise ValueError(f"{_shortened(text)} has {digits} hex digits; a serial number has "
                         f"at most {SERIAL_HEX_DIGITS} (20 octets, RFC 5280 4.1.2.2)")
    return serial_hex(int(cleaned, 16))


def _shortened(text: str, limit: int = 48) -> str:
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


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
    profile: str  # the profile it was issued under ([profiles.NAME]; "both" before mtls)
    not_before: datetime
    not_after: datetime
    created_at: datetime
    status: CertificateStatus = CertificateStatus.RESERVED
    der: bytes | None = None
    account_id: str | None = None  # None for certificates issued by `acme-ca sign-csr`
    order_id: str | None = None
    revoked_at: datetime | None = None
    revocation_reason: int | None = None  # RFC 5280 CRLReason code
    # ARI (RFC 9773): when an operator marked it for early renewal (`acme-ca certs
    # renew-early`), and the order that replaced it (set when that order became valid).
    renew_early_at: datetime | None = None
    replaced_by: str | None = None


@dataclass(frozen=True, slots=True)
class RevokedEntry:
    """One line of a CRL (RFC 5280 5.1.2.6): a revoked certificate's serial, when, why."""

    serial: str  # serial_hex()
    revoked_at: datetime
    reason: int  # RFC 5280 CRLReason code (0: unspecified, left out of the CRL entry)
    not_after: datetime


@dataclass(frozen=True, slots=True)
class CrlRecord:
    """The last CRL published for one issuing CA certificate (RFC 5280 5), as every
    replica serves it. ``number`` only grows (``Store.publish_crl``); ``entries`` is a
    digest of the revoked serials it lists, which tells a builder whether a new CRL is
    due before ``next_update``."""

    issuer: str  # hex SHA-256 fingerprint of the CA certificate that signed it
    number: int
    this_update: datetime
    next_update: datetime
    entries: str
    der: bytes = field(repr=False)


# --- ACME resources (RFC 8555 section 7.1) -------------------------------------------


class AccountStatus(StrEnum):
    VALID = "valid"
    DEACTIVATED = "deactivated"
    REVOKED = "revoked"


class OrderStatus(StrEnum):
    PENDING = "pending"
    READY = "ready"
    PROCESSING = "processing"
    VALID = "valid"
    INVALID = "invalid"


class AuthorizationStatus(StrEnum):
    PENDING = "pending"
    VALID = "valid"
    INVALID = "invalid"
    DEACTIVATED = "deactivated"
    EXPIRED = "expired"
    REVOKED = "revoked"


class ChallengeStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    VALID = "valid"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class Identifier:
    type: str  # "dns" or "ip"
    value: str  # normalised: lowercase, no trailing dot; a wildcard keeps its "*."


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    status: AccountStatus
    jwk: str  # the account public key as JSON (RFC 7517)
    thumbprint: str  # RFC 7638 SHA-256 thumbprint, base64url: unique among accounts
    contact: tuple[str, ...]
    terms_agreed: bool
    created_at: datetime
    eab_kid: str | None = None  # the External Account Binding key it was created with


@dataclass(frozen=True, slots=True)
class Challenge:
    id: str
    authorization_id: str
    type: str  # "http-01", "dns-01", "tls-alpn-01"
    token: str
    status: ChallengeStatus = ChallengeStatus.PENDING
    validated_at: datetime | None = None
    error: str | None = None  # an RFC 7807 problem document, JSON


@dataclass(frozen=True, slots=True)
class Authorization:
    id: str
    account_id: str
    identifier: Identifier  # the base name: a wildcard order's authorization drops the "*."
    status: AuthorizationStatus
    expires: datetime
    created_at: datetime
    wildcard: bool = False
    challenges: tuple[Challenge, ...] = ()


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    account_id: str
    status: OrderStatus
    identifiers: tuple[Identifier, ...]
    authorization_ids: tuple[str, ...]
    expires: datetime
    created_at: datetime
    not_before: datetime | None = None
    not_after: datetime | None = None
    error: str | None = None  # an RFC 7807 problem document, JSON
    certificate_serial: str | None = None
    profile: str = "server"  # the certificate profile (draft-ietf-acme-profiles)
    replaces: str | None = None  # serial of the certificate it replaces (RFC 9773 5)


@dataclass(frozen=True, slots=True)
class EabKey:
    """An External Account Binding key (RFC 8555 7.3.4), and what the account it binds
    may get: ``profiles`` and ``domains`` (empty: whatever the CA allows) and rate limit
    overrides (``limits``: limit name, "COUNT/DURATION"). A key binds one account
    (``account_id``, once a newAccount used it); a revoked key stops that account's new
    orders."""

    kid: str
    label: str
    hmac_key: bytes = field(repr=False)
    created_at: datetime
    profiles: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    limits: tuple[tuple[str, str], ...] = ()
    expires: datetime | None = None
    revoked_at: datetime | None = None
    account_id: str | None = None  # the account it bound, read from accounts.eab_kid
