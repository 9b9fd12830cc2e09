"""Certificates in PostgreSQL: reserved before signing, issued, revoked; never deleted.

Every change is one compare-and-set statement; when it changed nothing, a second
query finds out why (``guards.refused``).
"""

from __future__ import annotations

from datetime import datetime

from acme_ca.domain.models import CertificateRecord, CertificateStatus
from acme_ca.errors import Conflict
from acme_ca.store import guards
from acme_ca.store.postgres.base import PostgresBase, aware, first
from acme_ca.store.postgres.rows import CERTIFICATE_INSERT, certificate_row, to_certificate

RESERVE = CERTIFICATE_INSERT + "\nON CONFLICT (serial) DO NOTHING RETURNING serial"
_BY_SERIAL = "SELECT * FROM certificates WHERE serial = $1"
_STATUS = "SELECT status FROM certificates WHERE serial = $1"
_STORE = """
UPDATE certificates SET status = 'issued', der = $2
WHERE serial = $1 AND status = 'reserved'
RETURNING *"""
_REVOKE = """
UPDATE certificates SET status = 'revoked', revoked_at = $2, revocation_reason = $3
WHERE serial = $1 AND status = 'issued'
RETURNING *"""
# Only certificates still valid after a moment: a range of certificates_by_not_after.
_LATEST_EXPIRY = "SELECT MAX(not_after) FROM certificates WHERE not_after > $1 AND issuer = $2"
# Keyset pagination on (created_at, serial): certificates_by_created, or
# certificates_by_status for one status; a notAfter range (`expiring`) may instead be
# read from certificates_by_not_after and sorted, when the planner finds it narrower.
# A page's statement is these terms joined by AND, their parameters numbered in turn.
_PAGE_KEY = "SELECT created_at, serial FROM certificates WHERE serial = $1"
_IN_STATUS = "status = ${}"
_EXPIRING = "not_after > ${} AND not_after <= ${}"
_AFTER_KEY = "(created_at, serial) > (${}, ${})"
_LIST = "SELECT * FROM certificates WHERE {} ORDER BY created_at, serial LIMIT $1"

class CertificateMethods(PostgresBase):
    async def reserve_serial(self, record: CertificateRecord) -> None:
        guards.check_reservation(record)
        if not await self._write(RESERVE, *certificate_row(record)):
            raise Conflict(f"certificate serial {record.serial} already exists")

    async def store_certificate(self, serial: str, der: bytes) -> CertificateRecord:
        return to_certificate(await self._compare_and_set(
            _STORE, (serial, der), state=_STATUS, kind="certificate", row_id=serial,
            expected="reserved"))

    async def revoke_certificate(
        self, serial: str, reason: int, revoked_at: datetime
    ) -> CertificateRecord:
        return to_certificate(await self._compare_and_set(
            _REVOKE, (serial, aware(revoked_at), reason), state=_STATUS, kind="certificate",
            row_id=serial, expected="issued"))

    async def get_certificate(self, serial: str) -> CertificateRecord:
        rows = await self._lookup(_BY_SERIAL, serial)
        if not rows:
            raise guards.not_found("certificate", serial)
        return to_certificate(rows[0])

    async def latest_expiry(self, issuer: str, *, after: datetime) -> datetime | None:
        latest: datetime | None = first(await self._read(_LATEST_EXPIRY, aware(after), issuer))
        return latest

    async def list_certificates(
        self,
        *,
        status: CertificateStatus | None = None,
        limit: int = 100,
        after_serial: str | None = None,
        expiring: tuple[datetime, datetime] | None = None,
    ) -> list[CertificateRecord]:
        guards.check_limit(limit)
        terms: list[tuple[str, tuple[object, ...]]] = []
        if status is not None:
            terms.append((_IN_STATUS, (status.value,)))
        if expiring is not None:
            terms.append((_EXPIRING, (aware(expiring[0]), aware(expiring[1]))))
        if after_serial is not None:
            found = await self._lookup(_PAGE_KEY, after_serial)
            if not found:
                raise guards.not_found("certificate", after_serial)
            terms.append((_AFTER_KEY, (found[0]["created_at"], found[0]["serial"])))
        where: list[str] = ["TRUE"]
        values: list[object] = [limit]
        for term, args in terms:
            numbers = range(len(values) + 1, len(values) + 1 + len(args))
            where.append(term.format(*numbers))
            values.extend(args)
        rows = await self._read(_LIST.format(" AND ".join(where)), *values)
        return [to_certificate(row) for row in rows]
