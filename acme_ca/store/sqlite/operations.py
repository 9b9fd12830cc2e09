"""What operators look at, in SQLite (``OperationsStore``; the indexes each list and
count reads are in ``store/operations.py``): one statement each on the reader
connection. The UTC hour of a certificate is the first 13 characters of its
fixed-width time text (``2026-01-01T12``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from acme_ca.domain.models import (
    Account,
    AccountStatus,
    CertificateRecord,
    Order,
    OrderStatus,
)
from acme_ca.store import guards
from acme_ca.store.operations import (
    ACCOUNTS_PAGE,
    COUNT_ACCOUNTS,
    FailedValidations,
    list_query,
    list_terms,
)
from acme_ca.store.sqlite.base import SqliteBase, to_text
from acme_ca.store.sqlite.rows import ORDER_COLUMNS, to_account, to_certificate, to_order

_ORDERS = list_query("orders", ORDER_COLUMNS, "{}")
_ISSUANCE = """
SELECT substr(created_at, 1, 13) AS hour, COUNT(*) AS count FROM certificates
WHERE status IN ('issued', 'revoked') AND created_at >= ?
GROUP BY hour ORDER BY hour"""
# A problem document without a type is "about:blank" (RFC 7807 3.1), as is a challenge
# left invalid without one.
_FAILED = """
SELECT type, COALESCE(CASE WHEN json_valid(error) THEN json_extract(error, '$.type') END,
                      'about:blank') AS problem,
       COUNT(*) AS count
FROM challenges WHERE status = 'invalid' AND validated_at >= ?
GROUP BY type, problem ORDER BY count DESC, type, problem"""
# certificates_revoked_latest (0010), walked backwards; the expired skipped in the index.
_LATEST_REVOCATIONS = """
SELECT * FROM certificates WHERE status = 'revoked' AND not_after > ?
ORDER BY revoked_at DESC, serial DESC LIMIT ?"""
_COUNT_REVOCATIONS = """
SELECT COUNT(*) AS count FROM certificates WHERE status = 'revoked' AND not_after > ?"""


def _texts(values: list[object]) -> list[object]:
    """``values`` as parameters: a datetime as its text (``base.to_text``)."""
    return [to_text(value) if isinstance(value, datetime) else value for value in values]


class OperationsMethods(SqliteBase):
    async def list_accounts(
        self, *, status: AccountStatus | None = None, before: datetime | None = None,
        before_id: str | None = None, limit: int = 100,
    ) -> list[Account]:
        guards.check_limit(limit)
        where, values = list_terms(before, before_id, {"status": status and status.value})
        rows = await self._read(ACCOUNTS_PAGE.format(where), (*_texts(values), limit))
        return [to_account(row) for row in rows]

    async def count_accounts(self) -> dict[AccountStatus, int]:
        rows = await self._read(COUNT_ACCOUNTS)
        return {AccountStatus(row["status"]): row["count"] for row in rows}

    async def list_orders(
        self, *, account_id: str | None = None, status: OrderStatus | None = None,
        before: datetime | None = None, before_id: str | None = None, limit: int = 100,
    ) -> list[Order]:
        guards.check_limit(limit)
        where, values = list_terms(before, before_id, {
            "account_id": account_id, "status": status and status.value})
        rows = await self._read(_ORDERS.format(where), (*_texts(values), limit))
        return [to_order(row) for row in rows]

    async def issuance_counts(self, since: datetime) -> dict[datetime, int]:
        rows = await self._read(_ISSUANCE, (to_text(since),))
        return {datetime.fromisoformat(row["hour"]).replace(tzinfo=UTC): row["count"]
                for row in rows}

    async def failed_validations(self, since: datetime) -> list[FailedValidations]:
        rows = await self._read(_FAILED, (to_text(since),))
        return [FailedValidations(row["type"], str(row["problem"]), row["count"])
                for row in rows]

    async def latest_revocations(self, *, expiring_after: datetime,
                                 limit: int) -> list[CertificateRecord]:
        guards.check_limit(limit)
        rows = await self._read(_LATEST_REVOCATIONS, (to_text(expiring_after), limit))
        return [to_certificate(row) for row in rows]

    async def count_revocations(self, *, expiring_after: datetime) -> int:
        (row,) = await self._read(_COUNT_REVOCATIONS, (to_text(expiring_after),))
        return int(row["count"])
