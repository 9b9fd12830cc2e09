"""What the dashboard shows (``api/dashboard.py`` renders it, issue 13 item 6): the
certificates expiring soon and those issued lately, the issuance rate hour by hour over
the last day, the recent revocations, the accounts and EAB keys, the failed validations
by reason, one certificate; and the one thing it changes, a revocation by the operator
(``RevocationService.revoke_by_operator``, which the audit log records with the admin
the request's ``Origin`` names).

Every read goes through the store's read contracts (``ReadStore``, ``RevocationStore``,
``EabStore``, ``OperationsStore``); each page costs a bounded number of reads, whatever
the size of the database: lists stop at a limit and say when they did.

The key of the confirmation forms (``form_key``) lives in the data directory: every
worker process of a host reads the same one, so a form shown by one worker is accepted
by another.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Generic, TypeVar

from cryptography import x509

from acme_ca.authority.revocation import OPERATOR_REASONS, RevocationService
from acme_ca.clock import Clock
from acme_ca.domain.models import (
    Account,
    AccountStatus,
    CertificateRecord,
    CertificateStatus,
    EabKey,
    OrderStatus,
    RevokedEntry,
)
from acme_ca.errors import PkiError
from acme_ca.pki.files import PRIVATE_FILE, write_file
from acme_ca.pki.keys import describe_key
from acme_ca.store.base import Store
from acme_ca.store.operations import FailedValidations

EXPIRING_WITHIN = timedelta(days=30)  # "expiring soon"
EXPIRING_READ = 200  # expiring certificates read at most (the oldest issued first)
RATE_HOURS = 24  # the issuance chart: the last day, hour by hour
LIST_LIMIT = 50  # rows of a list page
OVERVIEW_ROWS = 8  # rows of each list on the overview
FAILURE_WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7),
                   "30d": timedelta(days=30)}
FORM_KEY_FILE = "dashboard.key"
FORM_KEY_BYTES = 32
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class HourCount:
    """Certificates signed in the hour starting at ``start`` (UTC)."""

    start: datetime
    count: int


@dataclass(frozen=True, slots=True)
class Revocation:
    """A revoked certificate that has not expired (a CRL lists it), with its names."""

    serial: str
    revoked_at: datetime
    reason: int
    not_after: datetime
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Partial(Generic[T]):
    """The first rows of a list, and whether there are more than those (``more``)."""

    rows: tuple[T, ...]
    more: bool
    total: int | None = None  # how many there are in all, when that is known


@dataclass(frozen=True, slots=True)
class CertificateDetails:
    """A certificate record and what its DER says (None for a serial never signed)."""

    record: CertificateRecord
    subject: str | None
    issuer: str | None
    key: str | None  # "ECDSA P-256", "RSA 2048"
    sha256: str | None  # the certificate's fingerprint, hex


@dataclass(frozen=True, slots=True)
class Overview:
    now: datetime
    expiring: Partial[CertificateRecord]
    issuance: tuple[HourCount, ...]
    revocations: Partial[Revocation]
    accounts: dict[AccountStatus, int]
    eab_keys: dict[str, int]  # eab_state -> count
    failures: tuple[FailedValidations, ...]  # over the last day


def eab_state(key: EabKey, now: datetime) -> str:
    """revoked, expired, bound (it made an account) or unused."""
    if key.revoked_at is not None:
        return "revoked"
    if key.expires is not None and key.expires <= now:
        return "expired"
    return "bound" if key.account_id is not None else "unused"


def certificate_state(record: CertificateRecord, now: datetime) -> str:
    """reserved, issued, expired (issued, past its notAfter) or revoked."""
    if record.status is CertificateStatus.ISSUED and record.not_after <= now:
        return "expired"
    return record.status.value


def hour_start(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def form_key(data_dir: Path) -> bytes:
    """The key of the dashboard's confirmation forms: ``<data_dir>/dashboard.key`` (0600),
    made on first use. Workers racing to make it all end with the one written first."""
    path = data_dir / FORM_KEY_FILE
    try:
        write_file(path, secrets.token_bytes(FORM_KEY_BYTES), mode=PRIVATE_FILE,
                   exclusive=True)
    except PkiError:
        if not path.exists():  # not "already exists": the folder cannot be written
            raise
    key = path.read_bytes()
    if len(key) < FORM_KEY_BYTES:
        raise PkiError(f"{path} holds {len(key)} bytes, fewer than {FORM_KEY_BYTES}: "
                       "delete it and it is made anew at the next start")
    return key


class Dashboard:
    """The reads of the dashboard's pages and the operator's revocation."""

    def __init__(self, store: Store, clock: Clock, revocation: RevocationService) -> None:
        self._store = store
        self._clock = clock
        self._revocation = revocation

    def now(self) -> datetime:
        return self._clock.now()

    async def overview(self) -> Overview:
        now = self._clock.now()
        expiring = await self.expiring()
        revocations = await self.revocations(OVERVIEW_ROWS)
        return Overview(
            now=now,
            expiring=Partial(expiring.rows[:OVERVIEW_ROWS],
                             expiring.more or len(expiring.rows) > OVERVIEW_ROWS,
                             None if expiring.more else len(expiring.rows)),
            issuance=await self.issuance(),
            revocations=revocations,
            accounts=await self._store.count_accounts(),
            eab_keys=dict(Counter(eab_state(k, now) for k in await self._store.list_eab_keys())),
            failures=tuple(await self.failed_validations("24h")),
        )

    async def expiring(self, within: timedelta = EXPIRING_WITHIN) -> Partial[CertificateRecord]:
        """Issued certificates whose notAfter is within ``within`` from now, the soonest
        first. At most ``EXPIRING_READ`` are read, the oldest issued first (with one
        lifetime per profile, those expire first); ``more`` says when there are others."""
        now = self._clock.now()
        records = await self._store.list_certificates(
            status=CertificateStatus.ISSUED, expiring=(now, now + within),
            limit=EXPIRING_READ + 1)
        soonest = sorted(records[:EXPIRING_READ], key=lambda r: (r.not_after, r.serial))
        return Partial(tuple(soonest), len(records) > EXPIRING_READ)

    async def recent_certificates(self, limit: int = LIST_LIMIT) -> tuple[CertificateRecord, ...]:
        """The certificates of the latest valid orders, newest first (those of `acme-ca
        sign-csr`, which belong to no order, are on no list: find them by serial)."""
        orders = await self._store.list_orders(status=OrderStatus.VALID, limit=limit)
        serials = [o.certificate_serial for o in orders if o.certificate_serial]
        return tuple([await self._store.get_certificate(s) for s in serials])

    async def issuance(self) -> tuple[HourCount, ...]:
        """Certificates signed in each of the last ``RATE_HOURS`` hours, the current
        (partial) hour last; an hour with none counts 0."""
        current = hour_start(self._clock.now())
        first = current - timedelta(hours=RATE_HOURS - 1)
        counts = await self._store.issuance_counts(first)
        return tuple(HourCount(hour, counts.get(hour, 0))
                     for hour in (first + timedelta(hours=n) for n in range(RATE_HOURS)))

    async def revocations(self, limit: int = LIST_LIMIT) -> Partial[Revocation]:
        """The revoked certificates not yet expired (what the CRLs list), the latest
        revoked first, at most ``limit`` with their names; ``total``: how many."""
        now = self._clock.now()
        entries: list[RevokedEntry] = []
        for issuer in await self._store.revoked_issuers(expiring_after=now):
            entries += await self._store.revoked_certificates(issuer, expiring_after=now)
        entries.sort(key=lambda e: (e.revoked_at, e.serial), reverse=True)
        rows = tuple([Revocation(e.serial, e.revoked_at, e.reason, e.not_after,
                                 (await self._store.get_certificate(e.serial)).names)
                      for e in entries[:limit]])
        return Partial(rows, len(entries) > limit, len(entries))

    async def accounts(self, status: AccountStatus | None = None,
                       before: tuple[datetime, str] | None = None) -> Partial[Account]:
        """Accounts newest first, a page of ``LIST_LIMIT``; ``before``: the
        ``created_at`` and ``id`` of the last account of the page before."""
        when, last = before or (None, None)
        found = await self._store.list_accounts(status=status, before=when, before_id=last,
                                                limit=LIST_LIMIT + 1)
        return Partial(tuple(found[:LIST_LIMIT]), len(found) > LIST_LIMIT)

    async def account_counts(self) -> dict[AccountStatus, int]:
        return await self._store.count_accounts()

    async def eab_keys(self) -> tuple[EabKey, ...]:
        """Every EAB key, the newest first (an operator makes them by hand: a few)."""
        keys = await self._store.list_eab_keys()
        return tuple(sorted(keys, key=lambda k: (k.created_at, k.kid), reverse=True))

    async def failed_validations(self, window: str) -> list[FailedValidations]:
        """Challenges that became invalid within ``window`` (a key of
        ``FAILURE_WINDOWS``), by challenge type and problem type, the most first."""
        return await self._store.failed_validations(
            self._clock.now() - FAILURE_WINDOWS[window])

    async def certificate(self, serial: str) -> CertificateDetails:
        """``NotFound`` for a serial the CA does not know."""
        record = await self._store.get_certificate(serial)
        if record.der is None:
            return CertificateDetails(record, None, None, None, None)
        try:
            certificate = x509.load_der_x509_certificate(record.der)
        except ValueError:  # stored by something else than this CA's signer
            return CertificateDetails(record, None, None, None, hashlib.sha256(record.der)
                                      .hexdigest())
        return CertificateDetails(
            record, certificate.subject.rfc4514_string(), certificate.issuer.rfc4514_string(),
            describe_key(certificate.public_key()),  # type: ignore[arg-type]
            hashlib.sha256(record.der).hexdigest())

    async def revoke(self, serial: str, reason: str) -> CertificateRecord:
        """Revoke as the operator, for ``reason`` (a name of ``OPERATOR_REASONS``);
        ``ValueError`` for another reason, ``NotFound`` or ``Conflict`` (one line an
        operator can act on) for a serial that cannot be revoked."""
        if reason not in OPERATOR_REASONS:
            raise ValueError(f"{reason!r} is not a reason an operator may give")
        return await self._revocation.revoke_by_operator(serial, OPERATOR_REASONS[reason])

