"""PostgreSQL: a spend racing the retention prune of its bucket is never lost (RFC 8555
6.6: a limit of N lets N through, prune or not).

The prune deletes full buckets (``retention.PRUNE_LIMITS``, ``FOR UPDATE SKIP
LOCKED``); a spend that read its bucket without holding it (``INSERT ... ON CONFLICT DO
NOTHING``, then ``SELECT ... FOR UPDATE``) could see the row deleted between the two,
decide on a full bucket and update no row: allowed, and never recorded. The spend's
statements are replayed here on one connection, the prune run on another between them,
in the order that lost it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from acme_ca.store.postgres import limits
from acme_ca.store.postgres.retention import PRUNE_LIMITS


async def test_a_spend_racing_the_prune_of_its_bucket_is_recorded(pg_store, pg_url):
    now = datetime.now(UTC)
    spender, pruner = await asyncpg.connect(pg_url), await asyncpg.connect(pg_url)
    try:
        await spender.execute("INSERT INTO rate_limits (name, key, tat) VALUES ('n', 'k', $1)",
                              now - timedelta(days=1))  # a full bucket: the prune's
        async with spender.transaction():
            tat = await spender.fetchval(limits.SPEND_ROW, "n", "k", now)
            assert tat == now - timedelta(days=1)
            assert await pruner.execute(PRUNE_LIMITS, now, 200) == "DELETE 0"  # held: skipped
            assert await spender.execute(limits.SET, "n", "k", now + timedelta(hours=1)) \
                == "UPDATE 1"
        assert await pruner.execute(PRUNE_LIMITS, now, 200) == "DELETE 0"  # not full now
        assert await pruner.fetchval("SELECT tat FROM rate_limits") == now + timedelta(hours=1)
    finally:
        await spender.close()
        await pruner.close()

