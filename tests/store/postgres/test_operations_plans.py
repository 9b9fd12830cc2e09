"""The indexes behind what operators look at (issue 13 items 4-6) in PostgreSQL, as
SQLite's (``tests/store/sqlite/test_operations_plans.py``): the lists walk an index
newest first and stop at their limit, the counts of the last day read a range of one
index, the audit log's pages start where they should.

Unlike ``test_retention_plans``, the planner is not told to avoid sequential scans: the
tables hold 90 days of a small CA (20 000 rows each, ANALYZEd), and the plan it picks
for the dashboard's "last day" must be the index's on its own.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from acme_ca.store.operations import ACCOUNTS_PAGE
from acme_ca.store.postgres import PostgresStore, audit, operations

END = datetime(2026, 4, 1, tzinfo=UTC)  # the history runs 90 days up to here
DAY_AGO = END - timedelta(days=1)
ROWS = 20_000
# ($1: END, $2: ROWS) one row per step of 90 days / ROWS (about 6.5 minutes).
HISTORY = """
CREATE TEMP TABLE steps AS
SELECT n, $1::timestamptz - (n * interval '90 days' / $2) AS at
FROM generate_series(1, $2) AS n"""
FILL = [
    """INSERT INTO accounts (id, status, jwk, thumbprint, terms_agreed, created_at)
       SELECT 'a' || n, CASE WHEN n % 10 = 0 THEN 'deactivated' ELSE 'valid' END, '{}',
              't' || n, true, at FROM steps""",
    """INSERT INTO orders (id, account_id, status, identifiers, expires, created_at)
       SELECT 'o' || n, 'a' || n, CASE WHEN n % 3 = 0 THEN 'ready' ELSE 'pending' END,
              '[]', at + interval '7 days', at FROM steps""",
    """INSERT INTO certificates (serial, issuer, names, profile, not_before, not_after,
                                created_at, status, der, revoked_at, revocation_reason)
       SELECT to_hex(n), 'ab', '{}', 'server', at, at + interval '90 days', at,
              CASE WHEN n % 5 = 0 THEN 'revoked' ELSE 'issued' END, '\\x30'::bytea,
              CASE WHEN n % 5 = 0 THEN at + interval '1 hour' END,
              CASE WHEN n % 5 = 0 THEN 1 END
       FROM steps""",
    """INSERT INTO authorizations (id, account_id, identifier_type, identifier_value,
                                  wildcard, status, expires, created_at)
       SELECT 'z' || n, 'a' || n, 'dns', 'n' || n, false, 'valid', at, at FROM steps""",
    """INSERT INTO order_authorizations (order_id, authorization_id, position)
       SELECT 'o' || n, 'z' || n, 0 FROM steps""",
    """INSERT INTO challenges (id, authorization_id, position, type, token, status,
                              validated_at, error)
       SELECT 'c' || n, 'z' || n, 0, 'http-01', 't',
              CASE WHEN n % 20 = 0 THEN 'invalid' ELSE 'valid' END, at,
              CASE WHEN n % 20 = 0 THEN '{"type":"urn:ietf:params:acme:error:dns"}' END
       FROM steps""",
    """INSERT INTO audit_log (seq, at, action, actor, identifiers, details, prev_hash, hash)
       SELECT (SELECT max(n) FROM steps) + 1 - n, at, 'account.created', 'system', '[]',
              '{}', '', ''
       FROM steps""",
]


def accounts(where: str, *values: object) -> tuple[str, tuple[object, ...]]:
    return operations._numbered(ACCOUNTS_PAGE, where), (*values, 50)


def orders(where: str, *values: object) -> tuple[str, tuple[object, ...]]:
    return operations._numbered(operations._ORDERS, where), (*values, 50)


PLANS = [
    (*accounts("1 = 1"), "Index Scan Backward using accounts_by_created"),
    (*accounts("(created_at, id) < (?, ?) AND status = ?", DAY_AGO, "a9", "valid"),
     "Index Scan Backward using accounts_by_created"),
    (*orders("1 = 1"), "Index Scan Backward using orders_by_created"),
    (*orders("created_at < ? AND status = ?", DAY_AGO, "ready"),
     "Index Scan Backward using orders_by_created"),
    (*orders("(created_at, id) < (?, ?) AND account_id = ?", END, "o9", "a9"),
     "using orders_by_account"),
    # A range of created_at: of the index on it alone, or of the one with the status.
    (operations._ISSUANCE, (DAY_AGO,), " certificates_by_"),
    (operations._FAILED, (DAY_AGO,), "using challenges_invalid"),
    (operations._LATEST_REVOCATIONS, (DAY_AGO, 8),
     "Index Scan Backward using certificates_revoked_latest"),
    (audit._PAGE, (ROWS - 100, 50), "Index Scan using audit_log_pkey"),
    (audit._PAGE_SINCE, (0, DAY_AGO, 50), "using audit_log_by_time"),
    (audit._LAST, (), "Index Scan Backward using audit_log_pkey"),
]


async def test_operations_read_through_an_index(pg_store: PostgresStore, pg_url: str):
    """Each statement of PLANS, EXPLAINed on the history (filled once: every plan is
    checked, and every one that does not use its index is reported)."""
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(HISTORY, END, ROWS)
        for sql in FILL:
            await conn.execute(sql)
        await conn.execute("ANALYZE")
        wrong = []
        for sql, args, index in PLANS:
            plan = "\n".join(row[0] for row in await conn.fetch(f"EXPLAIN {sql}", *args))
            if index not in plan or "Seq Scan" in plan:
                wrong.append(f"{sql}\n-- not {index!r}:\n{plan}")
    finally:
        await conn.close()
    assert not wrong, "\n\n".join(wrong)
