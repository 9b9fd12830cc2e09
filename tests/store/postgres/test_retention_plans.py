"""The PostgreSQL prunes (``store/postgres/retention.py``) find their batch through an
index (0008's, and 0007's ``rate_limits_by_tat``), as SQLite's do
(``tests/store/sqlite/test_schema.py``): a prune reads what it deletes, not the table.
So does the count of an account's pending authorizations (``store/postgres/limits.py``,
0008's partial ``authorizations_pending``), which every new order of a limited account
runs.

The tables are nearly empty here, where a sequential scan is the cheapest plan, so the
planner is told to avoid one (``enable_seqscan``) and must show it has an index to use.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from acme_ca.store.postgres import PostgresStore, limits, retention

NOW = datetime(2026, 1, 1, tzinfo=UTC)
PLANS = [
    (retention.LOCK_PRUNABLE_ORDERS, (NOW, 100), "orders_by_expiry"),
    (retention.LOCK_PRUNABLE_AUTHORIZATIONS, (NOW, 100), "authorizations_by_expiry"),
    (retention.PRUNE_LIMITS, (NOW, 100), "rate_limits_by_tat"),
    (limits.PENDING_COUNT, ("acct-1", NOW), "authorizations_pending"),
]


@pytest.mark.parametrize(("sql", "args", "index"), PLANS)
async def test_every_prune_finds_its_batch_through_an_index(
        pg_store: PostgresStore, pg_url: str, sql: str, args: tuple[object, ...], index: str):
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("ANALYZE")
        await conn.execute("SET enable_seqscan = off")
        plan = "\n".join(row[0] for row in await conn.fetch(f"EXPLAIN {sql}", *args))
    finally:
        await conn.close()
    assert f"using {index}" in plan, plan
    assert "Seq Scan" not in plan, plan
