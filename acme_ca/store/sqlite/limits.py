"""Rate limits' buckets in SQLite (``LimitStore``): one row per limit and key holding
its theoretical arrival time (``domain/limits.py``).

A spend reads the TAT, decides with ``domain.limits.decide`` and writes the new TAT
in one write transaction: writers are serialised on the whole file (``base``: one
``BEGIN IMMEDIATE`` at a time, across the processes of ``serve --workers N``), so of
concurrent spends each sees the TAT the one before it left, and a bucket of N lets N
through. An ask (cost 0) only reads, on the reader connection. A refund is the same
read-decide-write as a spend. ``spend_in`` is the spend inside another write's
transaction (``create_order``, ``start_issuance``): refused, ``LimitReached`` rolls
that write back.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

from acme_ca.domain import limits
from acme_ca.domain.limits import LimitDecision, PendingAuthorizations, Spend
from acme_ca.errors import LimitReached
from acme_ca.store.sqlite.base import SqliteBase, from_text, optional_time, to_text
from acme_ca.store.sqlite.connection import Connection

_TAT = "SELECT tat FROM rate_limits WHERE name = ? AND key = ?"
_SET = """
INSERT INTO rate_limits (name, key, tat) VALUES (?, ?, ?)
ON CONFLICT (name, key) DO UPDATE SET tat = excluded.tat"""
# A range of authorizations_pending (0008): one account's pending ones, by expiry;
# create_order counts them too.
PENDING_COUNT = """
SELECT COUNT(*) AS pending, MIN(expires) AS first_expires FROM authorizations
WHERE account_id = ? AND status = 'pending' AND expires > ?"""


class LimitMethods(SqliteBase):
    async def spend_limit(self, name: str, key: str, now: datetime, *, count: int,
                          period: timedelta, cost: int = 1) -> LimitDecision:
        limits.decide(None, now, count=count, period=period, cost=cost)  # ValueError first
        if cost == 0:
            rows = await self._read(_TAT, (name, key))
            return limits.decide(_tat(rows), now, count=count, period=period, cost=0)
        spend = Spend(name, key, count=count, period=period, cost=cost)
        return await self._transaction(lambda conn: _spend(conn, spend, now))

    async def refund_limit(self, name: str, key: str, now: datetime, *, count: int,
                           period: timedelta, cost: int = 1) -> None:
        limits.refund(None, now, count=count, period=period, cost=cost)  # ValueError first

        async def refund(conn: Connection) -> None:
            tat = _tat(list(await conn.execute_fetchall(_TAT, (name, key))))
            refunded = limits.refund(tat, now, count=count, period=period, cost=cost)
            if refunded is not None:
                await conn.execute(_SET, (name, key, to_text(refunded)))

        await self._transaction(refund)

    async def count_pending_authorizations(self, account_id: str, now: datetime
                                           ) -> PendingAuthorizations:
        rows = await self._read(PENDING_COUNT, (account_id, to_text(now)))
        return PendingAuthorizations(rows[0]["pending"], optional_time(rows[0]["first_expires"]))


async def _spend(conn: Connection, spend: Spend, now: datetime) -> LimitDecision:
    """``spend`` decided on the bucket's TAT and written if it fits, in the caller's write
    transaction (the write lock is held: no other writer reads the TAT meanwhile)."""
    tat = _tat(list(await conn.execute_fetchall(_TAT, (spend.name, spend.key))))
    decision = limits.decide(tat, now, count=spend.count, period=spend.period,
                             cost=spend.cost)
    if decision.allowed:
        await conn.execute(_SET, (spend.name, spend.key, to_text(decision.tat)))
    return decision


async def spend_in(conn: Connection, spend: Spend, now: datetime) -> None:
    """``spend`` at ``now`` inside the caller's write transaction; ``LimitReached`` if it
    does not fit, which rolls the caller's write back."""
    decision = await _spend(conn, spend, now)
    if not decision.allowed:
        raise LimitReached(f"{spend.name} {spend.key}: over the limit",
                           decision.retry_at, decision.resets_at)


def _tat(rows: list[sqlite3.Row]) -> datetime | None:
    return from_text(rows[0]["tat"]) if rows else None
