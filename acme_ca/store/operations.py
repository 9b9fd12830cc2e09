"""What operators look at (the admin CLI, the dashboard): lists and counts over the
ACME resources, read without changing anything.

Each backend reads a range of one index for each (migration 0010 adds them, in both
dialects; the plans are checked with EXPLAIN in
``tests/store/{sqlite,postgres}/test_operations_plans.py``):

- ``list_accounts``: ``accounts_by_created``, walked backwards (newest first) until
  the page is full;
- ``list_orders``: ``orders_by_account`` (0002) for one account, else
  ``orders_by_created``, backwards;
- ``issuance_counts``: a range of ``created_at`` in ``certificates_by_status`` or
  ``certificates_by_created`` (0001);
- ``failed_validations``: ``challenges_invalid``, partial on status 'invalid', a range
  of ``validated_at``;
- ``latest_revocations`` and ``count_revocations``: ``certificates_revoked_latest``,
  partial on status 'revoked', walked backwards until the page is full, or counted
  without reading the table (it holds ``not_after``).

``list_terms`` builds the WHERE clause of both lists and ``list_query`` their SELECT,
for both backends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from acme_ca.domain.models import (
    Account,
    AccountStatus,
    CertificateRecord,
    Order,
    OrderStatus,
)


@dataclass(frozen=True, slots=True)
class FailedValidations:
    """Challenges that ended invalid, by challenge type and problem type."""

    challenge_type: str  # "http-01", "dns-01", "tls-alpn-01"
    problem_type: str  # the RFC 8555 problem type URN of the challenge's error
    count: int


def list_terms(before: datetime | None, before_id: str | None,
               equal: dict[str, object]) -> tuple[str, list[object]]:
    """The WHERE clause of a list (a ``?`` for each value) and its values in order: the
    page's end (``before``, ``before_id``: ``ValueError`` for an id without a time),
    then each column of ``equal`` whose value is not None."""
    if before_id is not None and before is None:
        raise ValueError("a page that ends before an id also needs the time (before)")
    terms: list[str] = []
    values: list[object] = []
    if before is not None:
        terms.append("created_at < ?" if before_id is None else "(created_at, id) < (?, ?)")
        values += [before] if before_id is None else [before, before_id]
    for column, value in equal.items():
        if value is not None:
            terms.append(f"{column} = ?")
            values.append(value)
    return " AND ".join(terms) or "1 = 1", values


def list_query(table: str, columns: str, where: str) -> str:
    """The SELECT of one page of a list: ``columns`` of ``table``'s rows that match
    ``where`` (``list_terms``'s, or ``{}`` for a template), newest first, the page's
    size the last ``?``."""
    return (f"SELECT {columns} FROM {table} WHERE {where} "  # noqa: S608
            "ORDER BY created_at DESC, id DESC LIMIT ?")


# The same text in both dialects (list_terms's ``?`` are numbered for PostgreSQL).
ACCOUNTS_PAGE = list_query("accounts", "*", "{}")
COUNT_ACCOUNTS = "SELECT status, count(*) AS count FROM accounts GROUP BY status"


class OperationsStore(Protocol):
    """Lists are newest first (``created_at``, then ``id``, descending) and paged by
    keyset: the next page is the one ``before`` the last row read (its ``created_at``)
    and, so that rows created in one microsecond are neither skipped nor repeated,
    ``before_id`` (its ``id``). With ``before`` alone, a page holds only rows created
    strictly earlier. ``ValueError`` if ``limit`` < 1, for ``before_id`` without
    ``before``, or for a naive datetime."""

    async def list_accounts(
        self, *, status: AccountStatus | None = None, before: datetime | None = None,
        before_id: str | None = None, limit: int = 100,
    ) -> list[Account]:
        """Accounts (of ``status`` if given), newest first, created before ``before`` if
        given (the next page: the last one's ``created_at`` and ``id``), at most
        ``limit``."""

    async def count_accounts(self) -> dict[AccountStatus, int]:
        """How many accounts there are in each status (a status with none is left out)."""

    async def list_orders(
        self, *, account_id: str | None = None, status: OrderStatus | None = None,
        before: datetime | None = None, before_id: str | None = None, limit: int = 100,
    ) -> list[Order]:
        """Orders (of ``account_id``, of ``status``, if given), newest first, created
        before ``before`` (and ``before_id``) if given, at most ``limit``."""

    async def issuance_counts(self, since: datetime) -> dict[datetime, int]:
        """Certificates signed (ISSUED or REVOKED, not reserved) since ``since``, counted
        by the UTC hour they were created in (the hour's start, timezone-aware UTC ->
        count; hours with none are left out), oldest hour first."""

    async def failed_validations(self, since: datetime) -> list[FailedValidations]:
        """Challenges that became invalid since ``since`` (by ``validated_at``), grouped
        by challenge type and the ``type`` of their ``error`` ("about:blank" when it has
        none, as RFC 7807 3.1 reads a problem without one), the largest count first
        (then by challenge type and problem type)."""

    async def latest_revocations(self, *, expiring_after: datetime,
                                 limit: int) -> list[CertificateRecord]:
        """The REVOKED certificates whose notAfter is later than ``expiring_after`` (what
        the CRLs list), the latest revoked first (``revoked_at``, then ``serial``,
        descending), at most ``limit`` (``ValueError`` if < 1): the rows read stop at
        the limit, however many certificates are revoked."""

    async def count_revocations(self, *, expiring_after: datetime) -> int:
        """How many REVOKED certificates have a notAfter later than ``expiring_after``
        (what the CRLs list, over every issuer). One count of an index of the revoked
        rows alone; no table row is read."""
