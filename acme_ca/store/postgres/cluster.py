"""What replicas share besides the data, in PostgreSQL: nonces and leases
(``store/cluster.py`` has the contract).

Nonces (RFC 8555 6.5) live in an UNLOGGED table (migration 0003): their writes skip
the write-ahead log, and crash recovery empties the table, so a consumption lost in
a crash can never let a request be replayed; a clean restart of the server, or of
any replica, keeps them all. ``consume_nonce`` is one ``DELETE ... RETURNING``: of
two replicas consuming one nonce, the second waits for the first's row lock and then
finds no row, so exactly one gets it.

A lease is a row ``(name, holder, expires)``, ``expires`` on the database server's
clock, so replicas whose clocks drift still agree. ``hold_lease`` is one
``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` statement: it takes a free or expired
lease, renews the holder's own, and changes nothing (no row back) when another holder
has it; of two racers the second waits for the first's row and then sees its holder.
The expiry is ``ttl`` from the moment the lock on the row is granted, however long
the wait for it: a lease is never handed out already expired.

Why not a PostgreSQL advisory lock, as issue 10 first suggested: a session advisory
lock is held as long as the session's TCP connection stays open, so a replica that
is frozen (SIGSTOP, a VM paused) or cut off by a partition whose connection the
server has not yet noticed keeps the background work from every survivor, for
as long as TCP keepalives take. A lease row expires on its own after its ttl,
whatever its holder's state. And it is the shape SQLite has (``serve --workers
N``), so one contract suite tests both.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from acme_ca.store import guards
from acme_ca.store.postgres.base import PostgresBase, affected, aware, first

_ADD = "INSERT INTO nonces (nonce, expires) VALUES ($1, $2)"
_ADD_MANY = "INSERT INTO nonces (nonce, expires) SELECT unnest($1::text[]), $2"
_CONSUME = "DELETE FROM nonces WHERE nonce = $1 RETURNING expires"
# A bounded batch through the expiry index; rows another purger is deleting are skipped
# rather than waited for.
_PURGE = """
DELETE FROM nonces WHERE nonce IN (
    SELECT nonce FROM nonces WHERE expires <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)"""

# The expiry is read from the clock in DO UPDATE SET, evaluated once the row's lock is
# granted: VALUES is evaluated before ON CONFLICT waits for that lock, and a lease
# computed there could be granted already expired after a long wait.
_HOLD = """
INSERT INTO leases AS lease (name, holder, expires)
VALUES ($1, $2, clock_timestamp() + $3::interval)
ON CONFLICT (name) DO UPDATE
SET holder = excluded.holder, expires = clock_timestamp() + $3::interval
WHERE lease.holder = excluded.holder OR lease.expires <= clock_timestamp()
RETURNING expires"""
_RELEASE = "DELETE FROM leases WHERE name = $1 AND holder = $2"
_HOLDER = "SELECT holder FROM leases WHERE name = $1 AND expires > clock_timestamp()"


class ClusterMethods(PostgresBase):
    async def add_nonce(self, nonce: str, expires: datetime) -> None:
        await self._write(_ADD, nonce, aware(expires))

    async def add_nonces(self, nonces: Sequence[str], expires: datetime) -> None:
        await self._write(_ADD_MANY, list(nonces), aware(expires))

    async def consume_nonce(self, nonce: str, now: datetime) -> bool:
        aware(now)
        expires: datetime | None = first(await self._write(_CONSUME, nonce))
        return expires is not None and expires > now

    async def purge_expired_nonces(self, now: datetime, *, limit: int) -> int:
        guards.check_limit(limit)
        moment = aware(now)
        status: str = await self._run(lambda conn: conn.execute(_PURGE, moment, limit))
        return affected(status)

    async def hold_lease(self, name: str, holder: str, ttl: timedelta) -> datetime | None:
        if ttl <= timedelta(0):
            raise ValueError(f"a lease's ttl must be positive, not {ttl}")
        expires: datetime | None = first(await self._write(_HOLD, name, holder, ttl))
        return expires

    async def release_lease(self, name: str, holder: str) -> None:
        await self._write(_RELEASE, name, holder)

    async def lease_holder(self, name: str) -> str | None:
        holder: str | None = first(await self._read(_HOLDER, name))
        return holder
