"""What relying parties learn of revocation, and clients of renewal, in PostgreSQL
(``RevocationStore``): the revoked certificates a CRL lists, the CRLs every replica
serves, and the operator's marks for early renewal (ARI, RFC 9773).

Each write is one guarded statement. Publishing a CRL is ``INSERT ... ON CONFLICT
(issuer) DO UPDATE ... WHERE excluded.number > crls.number``: of two replicas
publishing at once, the second waits for the first's row (or for its insert to
commit), then evaluates the WHERE on the row the first left, so the CRL number only
grows (RFC 5280 5.2.3) and the loser gets ``Conflict``. A mark for early renewal only
moves a certificate's mark earlier, so marking twice changes nothing.
"""

from __future__ import annotations

from datetime import datetime

from acme_ca.domain.models import CertificateRecord, CrlRecord, RevokedEntry
from acme_ca.store import guards
from acme_ca.store.postgres.base import PostgresBase, Record, affected, aware, first
from acme_ca.store.postgres.rows import to_certificate

# A range of certificates_revoked (0009): one issuer's revoked rows not yet expired.
_REVOKED = """
SELECT serial, revoked_at, COALESCE(revocation_reason, 0) AS reason, not_after
FROM certificates
WHERE issuer = $1 AND status = 'revoked' AND not_after > $2
ORDER BY serial"""
# The issuers in certificates_revoked (0009), each with one of its unexpired revoked rows.
_REVOKED_ISSUERS = """
SELECT issuer, MIN(serial) AS serial FROM certificates
WHERE status = 'revoked' AND not_after > $1
GROUP BY issuer"""
# The same range of certificates_revoked as _REVOKED, counted.
_SUMMARY = """
SELECT COUNT(*) AS count, MAX(revoked_at) AS latest FROM certificates
WHERE issuer = $1 AND status = 'revoked' AND not_after > $2"""
_CRL = "SELECT * FROM crls WHERE issuer = $1"
_CRL_STATE = """
SELECT issuer, number, this_update, next_update, entries, ''::bytea AS der FROM crls
WHERE issuer = $1"""
_PUBLISH = """
INSERT INTO crls (issuer, number, this_update, next_update, entries, der)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (issuer) DO UPDATE SET
    number = excluded.number, this_update = excluded.this_update,
    next_update = excluded.next_update, entries = excluded.entries, der = excluded.der
WHERE excluded.number > crls.number
RETURNING number"""
_NUMBER = "SELECT number FROM crls WHERE issuer = $1"
# The CRL of the issuer a fingerprint prefix (an issuer id) names: the crls table
# holds a row per intermediate, so a scan is a handful of rows.
_BY_ID = """
SELECT issuer, number FROM crls WHERE substr(issuer, 1, 16) = $1
ORDER BY issuer LIMIT 1"""
# A signed certificate's mark, moved earlier only.
_MARK = """
UPDATE certificates SET renew_early_at = $2
WHERE serial = $1 AND status IN ('issued', 'revoked')
  AND (renew_early_at IS NULL OR renew_early_at > $2)
RETURNING *"""
_BY_SERIAL = "SELECT * FROM certificates WHERE serial = $1"
# The signed certificates created before $2, still valid at $3, not yet marked.
_MARK_ISSUED_BEFORE = """
UPDATE certificates SET renew_early_at = $1
WHERE status IN ('issued', 'revoked') AND created_at < $2 AND not_after > $3
  AND renew_early_at IS NULL"""


def _to_crl(row: Record) -> CrlRecord:
    return CrlRecord(issuer=row["issuer"], number=row["number"],
                     this_update=row["this_update"], next_update=row["next_update"],
                     entries=row["entries"], der=bytes(row["der"]))


class RevocationMethods(PostgresBase):
    async def revoked_certificates(
        self, issuer: str, *, expiring_after: datetime
    ) -> list[RevokedEntry]:
        rows = await self._lookup(_REVOKED, issuer, aware(expiring_after))
        return [RevokedEntry(serial=row["serial"], revoked_at=row["revoked_at"],
                             reason=row["reason"], not_after=row["not_after"])
                for row in rows]

    async def revoked_issuers(self, *, expiring_after: datetime) -> dict[str, str]:
        rows = await self._lookup(_REVOKED_ISSUERS, aware(expiring_after))
        return {row["issuer"]: row["serial"] for row in rows}

    async def revoked_summary(
        self, issuer: str, *, expiring_after: datetime
    ) -> tuple[int, datetime | None]:
        rows = await self._lookup(_SUMMARY, issuer, aware(expiring_after))
        return (rows[0]["count"], rows[0]["latest"]) if rows else (0, None)

    async def get_crl(self, issuer: str, *, der: bool = True) -> CrlRecord | None:
        rows = await self._lookup(_CRL if der else _CRL_STATE, issuer)
        return _to_crl(rows[0]) if rows else None

    async def crl_number(self, issuer_id: str) -> tuple[str, int] | None:
        rows = await self._lookup(_BY_ID, issuer_id)
        return (rows[0]["issuer"], rows[0]["number"]) if rows else None

    async def publish_crl(self, crl: CrlRecord) -> None:
        values = (crl.issuer, crl.number, aware(crl.this_update), aware(crl.next_update),
                  crl.entries, crl.der)
        if not await self._write(_PUBLISH, *values):
            raise guards.crl_number_refused(crl, first(await self._read(_NUMBER, crl.issuer)))

    async def mark_renew_early(self, serial: str, at: datetime) -> CertificateRecord:
        if "\x00" in serial:  # no row can hold it (base._lookup)
            raise guards.not_found("certificate", serial)
        rows = await self._write(_MARK, serial, aware(at))
        if not rows:  # already marked earlier, or not signed, or absent
            rows = await self._lookup(_BY_SERIAL, serial)
        return guards.check_markable(serial, to_certificate(rows[0]) if rows else None)

    async def mark_renew_early_issued_before(
        self, before: datetime, at: datetime, *, unexpired_at: datetime
    ) -> int:
        status = await self._run(lambda conn: conn.execute(
            _MARK_ISSUED_BEFORE, aware(at), aware(before), aware(unexpired_at)))
        return affected(status)
