"""What operators look at, in PostgreSQL (``OperationsStore``; the indexes each list
and count reads are in ``store/operations.py``): one statement each. The hour of a
certificate is ``date_trunc('hour', created_at, 'UTC')``: its UTC hour whatever the
session's time zone, a ``timestamptz`` that reads back as an aware datetime.
"""

from __future__ import annotations

from datetime import datetime

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
from acme_ca.store.postgres.base import PostgresBase, aware
from acme_ca.store.postgres.rows import ORDER_COLUMNS, to_account, to_certificate, to_order

_ORDERS = list_query("orders", ORDER_COLUMNS, "{}")
_ISSUANCE = """
SELECT date_trunc('hour', created_at, 'UTC') AS hour, count(*) AS count FROM certificates
WHERE status IN ('issued', 'revoked') AND created_at >= $1
GROUP BY hour ORDER BY hour"""
# A problem document without a type is "about:blank" (RFC 7807 3.1), as is a challenge
# left invalid without one. The store keeps only problem documents (JSON) in `error`;
# one that is not JSON counts as about:blank (problem_type, migration 0010), as on
# SQLite (json_valid), rather than failing the whole read.
_FAILED = """
SELECT type, COALESCE(problem_type(error), 'about:blank') AS problem, count(*) AS count
FROM challenges WHERE status = 'invalid' AND validated_at >= $1
GROUP BY type, problem ORDER BY count DESC, type, problem"""
# certificates_revoked_latest (0010), walked backwards; the expired skipped in the index.
_LATEST_REVOCATIONS = """
SELECT * FROM certificates WHERE status = 'revoked' AND not_after > $1
ORDER BY revoked_at DESC, serial DESC LIMIT $2"""
_COUNT_REVOCATIONS = """
SELECT count(*) AS count FROM certificates WHERE status = 'revoked' AND not_after > $1"""


def _numbered(template: str, where: str) -> str:
    """``template`` with the WHERE clause ``where``, each ``?`` numbered ($1, $2 ...)."""
    pieces = template.format(where).split("?")
    return "".join(f"{piece}${n}" for n, piece in enumerate(pieces[:-1], 1)) + pieces[-1]


def _aware(values: list[object]) -> list[object]:
    """``values`` as parameters: a naive datetime refused (``base.aware``)."""
    return [aware(value) if isinstance(value, datetime) else value for value in values]


class OperationsMethods(PostgresBase):
    async def list_accounts(
        self, *, status: AccountStatus | None = None, before: datetime | None = None,
        before_id: str | None = None, limit: int = 100,
    ) -> list[Account]:
        guards.check_limit(limit)
        where, values = list_terms(before, before_id, {"status": status and status.value})
        rows = await self._lookup(_numbered(ACCOUNTS_PAGE, where), *_aware(values), limit)
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
        rows = await self._lookup(_numbered(_ORDERS, where), *_aware(values), limit)
        return [to_order(row) for row in rows]

    async def issuance_counts(self, since: datetime) -> dict[datetime, int]:
        rows = await self._read(_ISSUANCE, aware(since))
        return {row["hour"]: row["count"] for row in rows}

    async def failed_validations(self, since: datetime) -> list[FailedValidations]:
        rows = await self._read(_FAILED, aware(since))
        return [FailedValidations(row["type"], row["problem"], row["count"]) for row in rows]

    async def latest_revocations(self, *, expiring_after: datetime,
                                 limit: int) -> list[CertificateRecord]:
        guards.check_limit(limit)
        rows = await self._read(_LATEST_REVOCATIONS, aware(expiring_after), limit)
        return [to_certificate(row) for row in rows]

    async def count_revocations(self, *, expiring_after: datetime) -> int:
        rows = await self._read(_COUNT_REVOCATIONS, aware(expiring_after))
        return int(rows[0]["count"])
