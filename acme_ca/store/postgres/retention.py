"""Retention in PostgreSQL (``RetentionStore``): pruning what expired long ago, a bounded
batch per transaction, and the size of each table.

A prune locks its batch first (``FOR UPDATE SKIP LOCKED``, through an index of 0008 or
``rate_limits_by_tat``), then deletes what hangs off the rows (an order's list of
authorizations, an authorization's challenges: the foreign keys want them gone first),
then the rows, in one transaction. A second store pruning at once skips the rows the
first holds and takes the next ones: every row is deleted once, and neither waits for
the other (nor fails). A prune waits for no lock either (it skips them), so it takes
part in no deadlock with ``record_validation`` (``authorizations``), whose locks it
never wants: it skips the orders that one holds, and it leaves alone any authorization
with a challenge still processing, the only kind ``record_validation`` moves.

An authorization is deleted only when no order lists it. That is read when its batch
is locked and read again once the locks are held, in a statement of its own: a new
order that reuses an authorization (the link's foreign key takes a share lock on it)
either committed before, and is seen then, or waits for our commit. A reused
authorization is one still valid, so none of those this prunes, but the read is cheap.

Certificates are never deleted; ``certificates.order_id`` keeps the id of an order
that is gone (it has no foreign key).
"""

from __future__ import annotations

from datetime import datetime

from acme_ca.store import guards
from acme_ca.store.postgres.base import Connection, PostgresBase, affected, aware
from acme_ca.store.postgres.pool import broken
from acme_ca.store.retention import TableStats

# The oldest orders expired before $1, of any status but processing (being signed:
# finish_order must find it; ``sweeper.py`` ends it, and a later round prunes it): a
# range of orders_by_expiry. The lock's recheck reads the row as start_issuance left it, so
# an order it moved to processing meanwhile is skipped.
LOCK_PRUNABLE_ORDERS = """
SELECT id FROM orders WHERE expires < $1 AND status <> 'processing'
ORDER BY expires, id LIMIT $2
FOR UPDATE SKIP LOCKED"""
# The oldest authorizations expired before $1 that no order lists and no validation is
# settling: a range of authorizations_by_expiry.
LOCK_PRUNABLE_AUTHORIZATIONS = """
SELECT id FROM authorizations AS a
WHERE expires < $1
  AND NOT EXISTS (SELECT 1 FROM order_authorizations WHERE authorization_id = a.id)
  AND NOT EXISTS (SELECT 1 FROM challenges
                  WHERE authorization_id = a.id AND status = 'processing')
ORDER BY expires, id LIMIT $2
FOR UPDATE OF a SKIP LOCKED"""
_UNLISTED = """
SELECT id FROM unnest($1::text[]) AS locked (id)
WHERE NOT EXISTS (SELECT 1 FROM order_authorizations WHERE authorization_id = locked.id)"""
_DELETE_LINKS = "DELETE FROM order_authorizations WHERE order_id = ANY($1::text[])"
_DELETE_ORDERS = "DELETE FROM orders WHERE id = ANY($1::text[])"
_DELETE_CHALLENGES = "DELETE FROM challenges WHERE authorization_id = ANY($1::text[])"
_DELETE_AUTHORIZATIONS = "DELETE FROM authorizations WHERE id = ANY($1::text[])"
# Full buckets (their TAT has passed: the same as no row). The lock's recheck reads the
# row as a concurrent spender left it, so a bucket just spent again is kept.
PRUNE_LIMITS = """
DELETE FROM rate_limits WHERE (name, key) IN (
    SELECT name, key FROM rate_limits WHERE tat <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)"""

# A table's own name, and quote_ident's for the count (a name with a quote or a capital
# letter is quoted, its quotes doubled).
_TABLES = """
SELECT c.relname AS name, quote_ident(c.relname) AS quoted,
       pg_total_relation_size(c.oid) AS bytes
FROM pg_class AS c
WHERE c.relkind IN ('r', 'p') AND c.relnamespace = current_schema()::regnamespace"""


class RetentionMethods(PostgresBase):
    async def prune_orders(self, expired_before: datetime, *, limit: int) -> int:
        guards.check_limit(limit)
        return await self._prune(LOCK_PRUNABLE_ORDERS, aware(expired_before), limit,
                                 _DELETE_LINKS, _DELETE_ORDERS)

    async def prune_authorizations(self, expired_before: datetime, *, limit: int) -> int:
        guards.check_limit(limit)
        return await self._prune(LOCK_PRUNABLE_AUTHORIZATIONS, aware(expired_before), limit,
                                 _DELETE_CHALLENGES, _DELETE_AUTHORIZATIONS, keep=_UNLISTED)

    async def prune_limits(self, now: datetime, *, limit: int) -> int:
        guards.check_limit(limit)
        moment = aware(now)
        status: str = await self._run(lambda conn: conn.execute(PRUNE_LIMITS, moment, limit))
        return affected(status)

    async def table_stats(self) -> list[TableStats]:
        async def count(conn: Connection) -> list[TableStats]:
            found = []
            for row in await conn.fetch(_TABLES):
                rows = await conn.fetchval(f"SELECT count(*) FROM {row['quoted']}")  # noqa: S608
                found.append(TableStats(row["name"], rows, row["bytes"]))
            return sorted(found, key=lambda table: table.name)  # as SQLite's: not collated

        return await self._run(count, retry=broken)  # a read: safe to try again

    async def _prune(self, lock: str, cut: datetime, limit: int, *deletes: str,
                     keep: str | None = None) -> int:
        """The ids ``lock`` locks, those of them ``keep`` keeps (read once the locks are
        held), then each of ``deletes`` on them, in one transaction; how many ids."""

        async def prune(conn: Connection) -> int:
            ids = [row["id"] for row in await conn.fetch(lock, cut, limit)]
            if ids and keep is not None:
                ids = [row["id"] for row in await conn.fetch(keep, ids)]
            for sql in deletes if ids else ():
                await conn.execute(sql, ids)
            return len(ids)

        return await self._transaction(prune)
