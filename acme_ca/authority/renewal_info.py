"""ACME Renewal Information (RFC 9773): when a certificate should be renewed, and the
orders that say which certificate they replace.

A certificate is named by its CertID (4.1): the base64url (no padding) of its Authority
Key Identifier's keyIdentifier, ".", the base64url of the content octets of its serial
number's DER INTEGER. Only the one canonical spelling is accepted (``encoding``'s
strict base64url; no leading 0x00 the INTEGER does not need; a positive serial of at
most 20 octets, RFC 5280 4.1.2.2), so a CertID the CA accepted is byte for byte the
one it rebuilds from the certificate (``cert_id_of``), which is how an order echoes its
``replaces`` (RFC 9773 5) while the store keeps only the serial.

The suggested window (4.2), ``suggested_window``:

- ordinarily centred at two thirds of the certificate's lifetime, as Pebble and
  Boulder centre theirs, and scaled with it: a 90-day certificate around day 60, a
  24-hour one around hour 16, a 1-hour one around minute 40. Its width is a fifteenth
  of the lifetime (6 days; 96 minutes; 4 minutes): wide enough that the renewals of
  certificates issued together spread out (a client picks a uniform random time in
  it, 4.2: the load spreading ARI is for), narrow enough that it ends at 70 % of the
  lifetime, leaving the last 30 % for the client's retries. A fixed width does not
  scale: Pebble's ±24 hours would cover a 24-hour certificate whole.
- in the past for a revoked certificate (ending when it was revoked) and for one an
  operator marked (``CertificateRecord.renew_early_at``, `acme-ca certs renew-early`:
  ending at the mark), so that a client renews on its next look (4.2 step 3).

The Retry-After of every answer is ``[revocation] renewal_info_retry_after`` (6 hours
by default, the RFC's own example), at most the window's width (a client looking
less often than that could sleep through a short-lived certificate's whole window, and
would learn of a mark too late), jittered by up to ±10 % so that clients started
together drift apart, never under a minute (4.3.2 treats less as a minute).

``replaces`` in newOrder (5), ``RenewalInfo.replacement``: the certificate must be one
this CA signed, the account's own (unauthorized otherwise, as Pebble and Boulder
answer), share an identifier with the order (malformed), and not be replaced already
(409 alreadyReplaced; the store's ``create_order`` settles the race). An order is
exempt from ``certificates_per_names`` (Boulder's rule) only as the renewal ARI asked
for (``Replacement.exempt``, ``RenewalInfo.exempt`` at finalize, one rule ``_exempt``):

- the replaced certificate's ordinary window has begun, or an operator marked it;
  not its revocation: a subscriber revokes at will, and a revoked certificate's window
  is in the past, so revoke-and-replace would otherwise issue without end. A revoked
  certificate may still be replaced (RFC 9773 5 allows it); the order is charged;
- it has not expired (an expired certificate is no renewal's business: a chain of
  replacements of old certificates would escape the limit too);
- the order's names are among the certificate's: the order only needs one name in
  common to replace it, but a name it adds is a new certificate for that name.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509

from acme_ca.clock import Clock
from acme_ca.domain.models import (
    Account,
    CertificateRecord,
    CertificateStatus,
    Identifier,
    serial_hex,
)
from acme_ca.domain.problems import AcmeProblem, ProblemType, malformed, unauthorized
from acme_ca.encoding import b64url_decode, b64url_encode
from acme_ca.errors import NotFound
from acme_ca.pki.profiles import key_identifier_of
from acme_ca.store.reads import ReadStore

WINDOW_AT = 2 / 3  # of the lifetime: the window's middle
WINDOW_SHARE = 15  # the window is lifetime / WINDOW_SHARE wide
MAX_SERIAL_OCTETS = 20  # RFC 5280 4.1.2.2
MAX_KEY_IDENTIFIER_OCTETS = 64  # a SHA-1 one has 20, a SHA-512 one 64: more is no CertID
MIN_RETRY_AFTER = 60  # seconds (RFC 9773 4.3.2)
JITTER = 10  # percent either way


@dataclass(frozen=True, slots=True)
class CertId:
    """A parsed CertID: the issuer's key identifier and the serial it names."""

    key_identifier: bytes
    serial: int

    @property
    def serial_hex(self) -> str:
        return serial_hex(self.serial)

    def __str__(self) -> str:
        return cert_id(self.key_identifier, self.serial)


@dataclass(frozen=True, slots=True)
class Window:
    """A suggested renewal window (RFC 9773 4.2), whole seconds, ``end`` after ``start``."""

    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Answer:
    """What a renewalInfo GET answers: the window and the Retry-After in seconds."""

    window: Window
    retry_after: int


@dataclass(frozen=True, slots=True)
class Replacement:
    """A newOrder's accepted ``replaces``: the certificate's serial, and whether the
    order is exempt from ``certificates_per_names`` (``_exempt``)."""

    serial: str
    exempt: bool


# --- CertID (RFC 9773 4.1) ----------------------------------------------------------------


def serial_octets(serial: int) -> bytes:
    """The content octets of ``serial`` as a DER INTEGER (two's complement, minimal)."""
    return serial.to_bytes(serial.bit_length() // 8 + 1, "big", signed=True)


def cert_id(key_identifier: bytes, serial: int) -> str:
    return f"{b64url_encode(key_identifier)}.{b64url_encode(serial_octets(serial))}"


def cert_id_of(certificate: x509.Certificate) -> str:
    """The CertID of a certificate; ValueError if it has no AKI keyIdentifier (RFC 9773
    3 assumes one: every leaf this CA signs has it)."""
    key_identifier = key_identifier_of(certificate)
    if key_identifier is None:
        raise ValueError("the certificate has no Authority Key Identifier keyIdentifier")
    return cert_id(key_identifier, certificate.serial_number)


@functools.lru_cache(maxsize=1024)
def stored_cert_id(der: bytes) -> str:
    """``cert_id_of`` the stored certificate ``der``: parsed once, not on every
    renewalInfo GET (a client polls each of its certificates every few hours)."""
    return cert_id_of(x509.load_der_x509_certificate(der))


def parse_cert_id(text: object, what: str = "CertID") -> CertId:
    """The one canonical spelling of a CertID, else malformed (400) naming ``what``."""
    if not isinstance(text, str):
        raise malformed(f"{what} must be a string: base64url(AKI keyIdentifier) \".\" "
                        "base64url(serial) (RFC 9773 4.1)")
    parts = text.split(".")
    if len(parts) != 2 or not all(parts):
        raise malformed(f"{what} {text[:100]!r} is not two base64url parts joined by "
                        "\".\" (RFC 9773 4.1)")
    try:
        key_identifier = b64url_decode(parts[0])
    except ValueError as exc:
        raise malformed(f"{what}: the key identifier {exc}") from None
    if len(key_identifier) > MAX_KEY_IDENTIFIER_OCTETS:
        raise malformed(f"{what}: a key identifier has at most "
                        f"{MAX_KEY_IDENTIFIER_OCTETS} octets here")
    try:
        octets = b64url_decode(parts[1])
    except ValueError as exc:
        raise malformed(f"{what}: the serial {exc}") from None
    return CertId(key_identifier, _serial(octets, what))


def _serial(octets: bytes, what: str) -> int:
    """The serial whose DER INTEGER has these content octets: minimal (X.690 8.3.2: no
    leading 0x00 before a byte under 0x80), positive, at most 20 octets."""
    if len(octets) > 1 and octets[0] == 0 and octets[1] < 0x80:
        raise malformed(f"{what}: the serial has a leading zero octet DER does not allow")
    serial = int.from_bytes(octets, "big", signed=True)
    if serial <= 0:
        raise malformed(f"{what}: a serial number is positive (RFC 5280 4.1.2.2)")
    if len(octets) > MAX_SERIAL_OCTETS:
        raise malformed(f"{what}: a serial number has at most 20 octets (RFC 5280 4.1.2.2)")
    return serial


# --- the suggested window (RFC 9773 4.2) -------------------------------------------------


def _whole_seconds(start: datetime, end: datetime) -> Window:
    """Start rounded down, end up, to the second (RFC 3339 on the wire, without
    fractions): the window never shrinks to nothing (4.2: end after start)."""
    start = start.replace(microsecond=0)
    if end.microsecond:
        end = end.replace(microsecond=0) + timedelta(seconds=1)
    return Window(start, max(end, start + timedelta(seconds=1)))


def window_width(not_before: datetime, not_after: datetime) -> timedelta:
    return (not_after - not_before) / WINDOW_SHARE


def ordinary_window(not_before: datetime, not_after: datetime) -> Window:
    """Centred at two thirds of the lifetime, a fifteenth of it wide (module docstring)."""
    middle = not_before + (not_after - not_before) * WINDOW_AT
    half = window_width(not_before, not_after) / 2
    return _whole_seconds(middle - half, middle + half)


def suggested_window(record: CertificateRecord) -> Window:
    """The ordinary window; for a revoked or marked certificate, one that ends when it
    was revoked or marked (in the past: renew now), if that comes before the ordinary
    window ends."""
    ordinary = ordinary_window(record.not_before, record.not_after)
    due = [at for at in (record.renew_early_at,
                         record.revoked_at if record.status is CertificateStatus.REVOKED
                         else None) if at is not None]
    if not due or min(due) >= ordinary.end:
        return ordinary
    end = min(due)
    return _whole_seconds(end - window_width(record.not_before, record.not_after), end)


# --- the service ---------------------------------------------------------------------------


class RenewalInfo:
    """renewalInfo GETs, and the ``replaces`` of newOrder and finalize."""

    def __init__(self, store: ReadStore, clock: Clock, retry_after: timedelta) -> None:
        self._store = store
        self._clock = clock
        self._retry_after = retry_after  # [revocation] renewal_info_retry_after

    def retry_after(self, width: timedelta | None = None) -> int:
        """Seconds for Retry-After: the configured interval, at most ``width`` (the
        window's), jittered by up to ±10 %, at least a minute."""
        base = self._retry_after if width is None else min(self._retry_after, width)
        seconds = int(base.total_seconds())
        spread = seconds * JITTER // 100
        return max(MIN_RETRY_AFTER, seconds - spread + secrets.randbelow(2 * spread + 1))

    async def answer(self, text: str) -> Answer:
        """The window of the certificate ``text`` names; malformed (400) for a CertID
        that is not one, malformed 404 for a certificate the CA does not know (RFC 9773
        names no type; Boulder and Pebble answer so: RFC 8555 has no notFound)."""
        wanted = parse_cert_id(text)
        record = await self._find(wanted)
        if record is None:
            raise malformed("no certificate with this CertID was issued by this CA", status=404)
        return Answer(suggested_window(record),
                      self.retry_after(window_width(record.not_before, record.not_after)))

    async def _find(self, wanted: CertId) -> CertificateRecord | None:
        """The signed certificate with the serial whose own AKI is the CertID's: one of
        this CA's intermediates, the one that signed it (a serial under another CA's
        key identifier names another certificate). None for anything else, a serial
        only reserved included."""
        try:
            record = await self._store.get_certificate(wanted.serial_hex)
        except NotFound:
            return None
        if record.der is None or record.status is CertificateStatus.RESERVED:
            return None
        if stored_cert_id(record.der) != str(wanted):
            return None
        return record

    async def cert_id(self, serial: str) -> str | None:
        """The CertID of a stored certificate (an order's ``replaces``, echoed)."""
        try:
            record = await self._store.get_certificate(serial)
        except NotFound:
            return None
        if record.der is None:
            return None
        return stored_cert_id(record.der)

    # --- replaces (RFC 9773 5) -------------------------------------------------------------

    async def replacement(self, account: Account, identifiers: Sequence[Identifier],
                          replaces: object) -> Replacement | None:
        """The checks of a newOrder's ``replaces`` (None: the order has none)."""
        if replaces is None:
            return None
        record = await self._find(parse_cert_id(replaces, "replaces"))
        if record is None:
            raise malformed("replaces names no certificate this CA issued")
        if record.account_id != account.id:
            raise unauthorized("replaces names a certificate this account was not issued")
        wanted = {i.value for i in identifiers}
        if not wanted & set(record.names):
            raise malformed("the order shares no identifier with the certificate it replaces")
        if record.replaced_by is not None:
            raise already_replaced(record.serial)
        return Replacement(record.serial, self._exempt(record, identifiers))

    async def exempt(self, replaces: str | None, identifiers: Sequence[Identifier]) -> bool:
        """Whether finalize of an order for ``identifiers`` replacing ``replaces`` (a
        serial) is exempt from ``certificates_per_names`` (``_exempt``: time has passed
        since newOrder, the certificate may have expired meanwhile)."""
        if replaces is None:
            return False
        try:
            record = await self._store.get_certificate(replaces)
        except NotFound:
            return False
        return self._exempt(record, identifiers)

    def _exempt(self, record: CertificateRecord, identifiers: Sequence[Identifier]) -> bool:
        """The renewal ARI asks for (module docstring): the order's names among the
        certificate's, which has not expired and whose ordinary window has begun or
        which an operator marked. Its revocation counts for nothing here."""
        now = self._clock.now()
        if now >= record.not_after or not {i.value for i in identifiers} <= set(record.names):
            return False
        if record.renew_early_at is not None and record.renew_early_at <= now:
            return True
        return now >= ordinary_window(record.not_before, record.not_after).start


def already_replaced(serial: str) -> AcmeProblem:
    """409 alreadyReplaced (RFC 9773 5, 7.4)."""
    return AcmeProblem(ProblemType.ALREADY_REPLACED,
                       f"the certificate {serial} is already replaced, or an order that is "
                       "not invalid replaces it")
