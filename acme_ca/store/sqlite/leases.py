"""Named leases in SQLite (``LeaseStore``): the one process of ``serve --workers N``
that runs the background work, until its lease expires.

``hold_lease`` is one statement: it inserts the lease, or takes it over when it
expired or renews it for its holder; when another holder has it unexpired the
``ON CONFLICT ... DO UPDATE ... WHERE`` changes nothing and no row comes back. Writes
are serialised (``base``), so of two racers exactly one gets it. Time is this
machine's system clock, in UTC, which every process on one SQLite file shares, read
once the write lock is held: a lease is never handed out already expired.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

from acme_ca.clock import SystemClock
from acme_ca.store.sqlite.base import SqliteBase, from_text, to_text
from acme_ca.store.sqlite.connection import Connection

_HOLD = """
INSERT INTO leases (name, holder, expires) VALUES (?1, ?2, ?3)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires
WHERE leases.holder = excluded.holder OR leases.expires <= ?4
RETURNING expires"""
_RELEASE = "DELETE FROM leases WHERE name = ? AND holder = ?"
_HOLDER = "SELECT holder FROM leases WHERE name = ? AND expires > ?"


class LeaseMethods(SqliteBase):
    async def hold_lease(self, name: str, holder: str, ttl: timedelta) -> datetime | None:
        async def hold(conn: Connection) -> list[sqlite3.Row]:
            now = SystemClock().now()  # once the write lock is ours, however long it took
            return list(await conn.execute_fetchall(
                _HOLD, (name, holder, to_text(now + ttl), to_text(now))))

        rows = await self._transaction(hold)
        return from_text(rows[0]["expires"]) if rows else None

    async def release_lease(self, name: str, holder: str) -> None:
        await self._write(_RELEASE, (name, holder))

    async def lease_holder(self, name: str) -> str | None:
        rows = await self._read(_HOLDER, (name, to_text(SystemClock().now())))
        return str(rows[0]["holder"]) if rows else None
