"""What relying parties learn of revocation, and clients of renewal, in SQLite
(``RevocationStore``): the revoked certificates a CRL lists, the CRLs published, and
the operator's marks for early renewal (ARI, RFC 9773).

Each write is one guarded statement: publishing a CRL is an upsert whose update holds
only for a greater number (RFC 5280 5.2.3: the number only grows), so of two builders
the later number wins and the other gets ``Conflict``; a mark for early renewal only
moves a certificate's mark earlier, so marking twice changes nothing.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from acme_ca.domain.models import CertificateRecord, CrlRecord, RevokedEntry
from acme_ca.store import guards
from acme_ca.store.sqlite.base import SqliteBase, from_text, to_text
from acme_ca.store.sqlite.connection import Connection
from acme_ca.store.sqlite.rows import to_certificate

# A range of certificates_revoked (0009): one issuer's revoked rows not yet expired.
_REVOKED = """
SELECT serial, revoked_at, COALESCE(revocation_reason, 0) AS reason, not_after
FROM certificates
WHERE issuer = ? AND status = 'revoked' AND not_after > ?
ORDER BY serial"""
# The issuers in certificates_revoked (0009), each with one of its unexpired revoked rows.
_REVOKED_ISSUERS = """
SELECT issuer, MIN(serial) AS serial FROM certificates
WHERE status = 'revoked' AND not_after > ?
GROUP BY issuer"""
# The same range of certificates_revoked as _REVOKED, counted.
_SUMMARY = """
SELECT COUNT(*) AS count, MAX(revoked_at) AS latest FROM certificates
WHERE issuer = ? AND status = 'revoked' AND not_after > ?"""
_CRL = "SELECT * FROM crls WHERE issuer = ?"
_CRL_STATE = """
SELECT issuer, number, this_update, next_update, entries, x'' AS der FROM crls
WHERE issuer = ?"""
_PUBLISH = """
INSERT INTO crls (issuer, number, this_update, next_update, entries, der)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (issuer) DO UPDATE SET
    number = excluded.number, this_update = excluded.this_update,
    next_update = excluded.next_update, entries = excluded.entries, der = excluded.der
WHERE excluded.number > crls.number
RETURNING number"""
_NUMBER = "SELECT number FROM crls WHERE issuer = ?"
# The CRL of the issuer a fingerprint prefix (an issuer id) names: the crls table
# holds a row per intermediate, so a scan is a handful of rows.
_BY_ID = """
SELECT issuer, number FROM crls WHERE substr(issuer, 1, 16) = ?
ORDER BY issuer LIMIT 1"""
# (at, serial): a signed certificate's mark, moved earlier only.
_MARK = """
UPDATE certificates SET renew_early_at = ?1
WHERE serial = ?2 AND status IN ('issued', 'revoked')
  AND (renew_early_at IS NULL OR renew_early_at > ?1)
RETURNING *"""
_BY_SERIAL = "SELECT * FROM certificates WHERE serial = ?"
# (at, before, unexpired_at): the signed certificates created before, still valid, unmarked.
_MARK_ISSUED_BEFORE = """
UPDATE certificates SET renew_early_at = ?1
WHERE status IN ('issued', 'revoked') AND created_at < ?2 AND not_after > ?3
  AND renew_early_at IS NULL"""


def _to_crl(row: sqlite3.Row) -> CrlRecord:
    return CrlRecord(issuer=row["issuer"], number=row["number"],
                     this_update=from_text(row["this_update"]),
                     next_update=from_text(row["next_update"]), entries=row["entries"],
                     der=bytes(row["der"]))


class RevocationMethods(SqliteBase):
    async def revoked_certificates(
        self, issuer: str, *, expiring_after: datetime
    ) -> list[RevokedEntry]:
        rows = await self._read(_REVOKED, (issuer, to_text(expiring_after)))
        return [RevokedEntry(serial=row["serial"], revoked_at=from_text(row["revoked_at"]),
                             reason=row["reason"], not_after=from_text(row["not_after"]))
                for row in rows]

    async def revoked_issuers(self, *, expiring_after: datetime) -> dict[str, str]:
        rows = await self._read(_REVOKED_ISSUERS, (to_text(expiring_after),))
        return {row["issuer"]: row["serial"] for row in rows}

    async def revoked_summary(
        self, issuer: str, *, expiring_after: datetime
    ) -> tuple[int, datetime | None]:
        (row,) = await self._read(_SUMMARY, (issuer, to_text(expiring_after)))
        latest = row["latest"]
        return row["count"], from_text(latest) if latest is not None else None

    async def get_crl(self, issuer: str, *, der: bool = True) -> CrlRecord | None:
        rows = await self._read(_CRL if der else _CRL_STATE, (issuer,))
        return _to_crl(rows[0]) if rows else None

    async def crl_number(self, issuer_id: str) -> tuple[str, int] | None:
        rows = await self._read(_BY_ID, (issuer_id,))
        return (rows[0]["issuer"], rows[0]["number"]) if rows else None

    async def publish_crl(self, crl: CrlRecord) -> None:
        values = (crl.issuer, crl.number, to_text(crl.this_update),
                  to_text(crl.next_update), crl.entries, crl.der)

        async def publish(conn: Connection) -> None:
            if not list(await conn.execute_fetchall(_PUBLISH, values)):
                (stored,) = await conn.execute_fetchall(_NUMBER, (crl.issuer,))
                raise guards.crl_number_refused(crl, stored["number"])

        await self._transaction(publish)

    async def mark_renew_early(self, serial: str, at: datetime) -> CertificateRecord:
        async def mark(conn: Connection) -> CertificateRecord:
            rows = list(await conn.execute_fetchall(_MARK, (to_text(at), serial)))
            if not rows:  # already marked earlier, or not signed, or absent
                rows = list(await conn.execute_fetchall(_BY_SERIAL, (serial,)))
            found = to_certificate(rows[0]) if rows else None
            return guards.check_markable(serial, found)

        return await self._transaction(mark)

    async def mark_renew_early_issued_before(
        self, before: datetime, at: datetime, *, unexpired_at: datetime
    ) -> int:
        async def mark(conn: Connection) -> int:
            values = (to_text(at), to_text(before), to_text(unexpired_at))
            async with conn.execute(_MARK_ISSUED_BEFORE, values) as cursor:
                return int(cursor.rowcount)

        return await self._transaction(mark)
