"""Rate limits' buckets in PostgreSQL (``LimitStore``): one row per limit and key
holding its theoretical arrival time (``domain/limits.py``), shared by every replica.

A spend is one transaction: ``INSERT ... ON CONFLICT (name, key) DO UPDATE SET tat =
rate_limits.tat RETURNING tat`` (``SPEND_ROW``) creates the bucket's row if there is
none (the TAT ``now``: a full bucket, as no row is) or locks the one there, and reads
its TAT, in one statement; ``domain.limits.decide`` decides, and an ``UPDATE`` stores
the new TAT when the spend fits. Of two replicas spending at once, the second waits
for the first's row lock (or, for a row the first is inserting, for its insert to
commit) and then reads the TAT the first left: a bucket of N lets N through. The
retention prune (``PRUNE_LIMITS``, ``FOR UPDATE SKIP LOCKED``) skips a row a spend
holds, and a row it deleted first is inserted again: a spend is never lost to it (an
``INSERT ... DO NOTHING`` then ``SELECT ... FOR UPDATE`` would lose it: the prune
could delete between the two). One row per transaction: no two wait for each other.
An ask (cost 0) is one plain read. A refund locks with ``SELECT ... FOR UPDATE``: a
row gone is a full bucket, with nothing to give back. ``spend_in`` is the same spend
inside another write's transaction (``create_order``, ``start_issuance``), its bucket's
row locked last (after the account's or the order's), so no two writes wait for each
other: refused, ``LimitReached`` rolls that write back.

Retries follow ``base``: the transaction is tried again only when asyncpg provably did
not send it; a connection that broke mid-way is ``StoreUnavailable``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from acme_ca.domain import limits
from acme_ca.domain.limits import LimitDecision, PendingAuthorizations, Spend
from acme_ca.errors import LimitReached
from acme_ca.store.postgres.base import Connection, PostgresBase, aware, first

_TAT = "SELECT tat FROM rate_limits WHERE name = $1 AND key = $2"
SPEND_ROW = """
INSERT INTO rate_limits (name, key, tat) VALUES ($1, $2, $3)
ON CONFLICT (name, key) DO UPDATE SET tat = rate_limits.tat
RETURNING tat"""
LOCK = "SELECT tat FROM rate_limits WHERE name = $1 AND key = $2 FOR UPDATE"
SET = "UPDATE rate_limits SET tat = $3 WHERE name = $1 AND key = $2"
# A range of authorizations_pending (0008): one account's pending ones, by expiry;
# create_order counts them too.
PENDING_COUNT = """
SELECT COUNT(*) AS pending, MIN(expires) AS first_expires FROM authorizations
WHERE account_id = $1 AND status = 'pending' AND expires > $2"""


class LimitMethods(PostgresBase):
    async def spend_limit(self, name: str, key: str, now: datetime, *, count: int,
                          period: timedelta, cost: int = 1) -> LimitDecision:
        limits.decide(None, now, count=count, period=period, cost=cost)  # ValueError first
        if cost == 0:
            tat = first(await self._lookup(_TAT, name, key))
            return limits.decide(tat, now, count=count, period=period, cost=0)

        async def spend(conn: Connection) -> LimitDecision:
            return await _spend(conn, Spend(name, key, count, period, cost), now)

        return await self._transaction(spend)

    async def refund_limit(self, name: str, key: str, now: datetime, *, count: int,
                           period: timedelta, cost: int = 1) -> None:
        limits.refund(None, now, count=count, period=period, cost=cost)  # ValueError first

        async def give_back(conn: Connection) -> None:  # no row: a full bucket already
            refunded = limits.refund(first(await conn.fetch(LOCK, name, key)), now,
                                     count=count, period=period, cost=cost)
            if refunded is not None:
                await conn.execute(SET, name, key, refunded)

        await self._transaction(give_back)

    async def count_pending_authorizations(self, account_id: str, now: datetime
                                           ) -> PendingAuthorizations:
        rows = await self._read(PENDING_COUNT, account_id, aware(now))
        return PendingAuthorizations(rows[0]["pending"], rows[0]["first_expires"])


async def spend_in(conn: Connection, spend: Spend, now: datetime) -> None:
    """``spend`` at ``now`` inside the caller's transaction; ``LimitReached`` if it
    does not fit, which rolls the caller's write back."""
    decision = await _spend(conn, spend, now)
    if not decision.allowed:
        raise LimitReached(f"{spend.name} {spend.key}: over the limit",
                           decision.retry_at, decision.resets_at)


async def _spend(conn: Connection, spend: Spend, now: datetime) -> LimitDecision:
    """The bucket's row created or locked and its TAT read (``SPEND_ROW``), decided,
    and the new TAT stored if the spend fits."""
    tat = await conn.fetchval(SPEND_ROW, spend.name, spend.key, now)  # locked, or new: full
    decision = limits.decide(tat, now, count=spend.count, period=spend.period,
                             cost=spend.cost)
    if decision.allowed:
        await conn.execute(SET, spend.name, spend.key, decision.tat)
    return decision
