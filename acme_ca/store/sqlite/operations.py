"""What operators look at, in SQLite (``OperationsStore``): lists and counts, each one
read statement on the reader connection.

Each statement reads a range of one index (checked with EXPLAIN QUERY PLAN in
``tests/store/sqlite/test_operations_plans.py``):

- ``list_accounts``: ``accounts_by_created`` (0010), backwards: newest first;
- ``list_orders``: ``orders_by_account`` (0002) for one account, else
  ``orders_by_created`` (0010), backwards;
- ``issuance_counts``: ``certificates_by_status`` (0001), which holds every column it
  reads (status, created_at): two ranges, one per signed status, no table row read;
  the UTC hour is the first 13 characters of the fixed-width time text
  (``2026-01-01T12``);
- ``failed_validations``: ``challenges_invalid`` (0010), partial on status 'invalid',
  a range on ``validated_at``.

A page ends at a moment (``before``) and, to step over several rows created in one
microsecond, at the id of the last row read (``before_id``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from acme_ca.domain.models import Account, AccountStatus, Order, OrderStatus
from acme_ca.store import guards
from acme_ca.store.operations import FailedValidations, page_ids
from acme_ca.store.sqlite.base import SqliteBase, to_text
from acme_ca.store.sqlite.rows import ORDER_COLUMNS, to_account, to_order

_ACCOUNTS = "SELECT * FROM accounts WHERE {} ORDER BY created_at DESC, id DESC LIMIT ?"
_ORDERS = (f"SELECT {ORDER_COLUMNS} FROM orders WHERE {{}} "  # noqa: S608
           "ORDER BY created_at DESC, id DESC LIMIT ?")
_COUNT_ACCOUNTS = "SELECT status, COUNT(*) AS count FROM accounts GROUP BY status"
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


def _before(before: datetime | None, before_id: str | None) -> tuple[list[str], list[object]]:
    """The terms and values of a page that ends before (``before``, ``before_id``)."""
    page_ids(before, before_id)
    if before is None:
        return [], []
    if before_id is None:
        return ["created_at < ?"], [to_text(before)]
    return ["(created_at, id) < (?, ?)"], [to_text(before), before_id]


class OperationsMethods(SqliteBase):
    async def list_accounts(
        self, *, status: AccountStatus | None = None, before: datetime | None = None,
        before_id: str | None = None, limit: int = 100,
    ) -> list[Account]:
        guards.check_limit(limit)
        terms, values = _before(before, before_id)
        if status is not None:
            terms.append("status = ?")
            values.append(status.value)
        sql = _ACCOUNTS.format(" AND ".join(terms) or "1")
        return [to_account(row) for row in await self._read(sql, (*values, limit))]

    async def count_accounts(self) -> dict[AccountStatus, int]:
        rows = await self._read(_COUNT_ACCOUNTS)
        return {AccountStatus(row["status"]): row["count"] for row in rows}

    async def list_orders(
        self, *, account_id: str | None = None, status: OrderStatus | None = None,
        before: datetime | None = None, before_id: str | None = None, limit: int = 100,
    ) -> list[Order]:
        guards.check_limit(limit)
        terms, values = _before(before, before_id)
        if account_id is not None:
            terms.append("account_id = ?")
            values.append(account_id)
        if status is not None:
            terms.append("status = ?")
            values.append(status.value)
        sql = _ORDERS.format(" AND ".join(terms) or "1")
        return [to_order(row) for row in await self._read(sql, (*values, limit))]

    async def issuance_counts(self, since: datetime) -> dict[datetime, int]:
        rows = await self._read(_ISSUANCE, (to_text(since),))
        return {datetime.fromisoformat(row["hour"]).replace(tzinfo=UTC): row["count"]
                for row in rows}

    async def failed_validations(self, since: datetime) -> list[FailedValidations]:
        rows = await self._read(_FAILED, (to_text(since),))
        return [FailedValidations(row["type"], str(row["problem"]), row["count"])
                for row in rows]
