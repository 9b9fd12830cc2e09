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
# Keyset pagination on (created_at, serial); each uses an index ending in those columns.
_PAGE_KEY = "SELECT created_at, serial FROM certificates WHERE serial = $1"
_FIRST_PAGE = "SELECT * FROM certificates ORDER BY created_at, serial LIMIT $1"
_NEXT_PAGE = """
SELECT * FROM certificates WHERE (created_at, serial) > ($2, $3)
ORDER BY created_at, serial LIMIT $1"""
_FIRST_PAGE_IN = """
SELECT * FROM certificates WHERE status = $2
ORDER BY created_at, serial LIMIT $1"""
_NEXT_PAGE_IN = """
SELECT * FROM certificates WHERE status = $4 AND (created_at, serial) > ($2, $3)
ORDER BY created_at, serial LIMIT $1"""


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
    ) -> list[CertificateRecord]:
        guards.check_limit(limit)
        if after_serial is None:
            if status is None:
                rows = await self._read(_FIRST_PAGE, limit)
            else:
                rows = await self._read(_FIRST_PAGE_IN, limit, status.value)
        else:
            found = await self._lookup(_PAGE_KEY, after_serial)
            if not found:
                raise guards.not_found("certificate", after_serial)
            key = (found[0]["created_at"], found[0]["serial"])
            if status is None:
                rows = await self._read(_NEXT_PAGE, limit, *key)
            else:
                rows = await self._read(_NEXT_PAGE_IN, limit, *key, status.value)
        return [to_certificate(row) for row in rows]
