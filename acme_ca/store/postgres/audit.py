"""The audit log in PostgreSQL (``AuditStore``): appended under a lock that replicas
share, read a page at a time.

An append is one transaction of three statements: take the audit lock, read the newest
entry, insert the next one (``store.audit.next_entry``). The lock serialises appends
across every connection of every replica, so ``seq`` runs 1, 2, 3 ... without gaps and
each ``prev_hash`` is the hash of the entry before: the chain never forks. The newest
entry is read in a statement after the one that waited for the lock; under READ
COMMITTED that statement's snapshot is taken once the lock is held, and PostgreSQL
makes a transaction's commit visible before it releases its locks, so it sees the
append that held the lock before. The primary key on ``seq`` is the backstop: a second
entry with one ``seq`` would fail, not fork the chain.

The lock is ``pg_advisory_xact_lock(AUDIT_LOCK)``, not ``LOCK TABLE audit_log IN SHARE
ROW EXCLUSIVE MODE``, which would serialise appends as well, because:

- a table lock in that mode needs UPDATE, DELETE or TRUNCATE on the table; the
  advisory lock needs no privilege, so an operator may leave the CA's role only
  INSERT and SELECT on audit_log (an append-only log that the CA itself cannot edit);
- SHARE ROW EXCLUSIVE conflicts with the SHARE UPDATE EXCLUSIVE lock of (auto)vacuum,
  ANALYZE and CREATE INDEX CONCURRENTLY on the table: appends would queue behind them
  (autovacuum gives way only after ``deadlock_timeout``), a pause in every request
  that records something; the advisory lock conflicts with nothing but itself.

Like any transaction-level lock it is released at commit or rollback, also when the
connection breaks (the server ends the transaction), so it can never be left held; its
wait is bounded by the pool's ``lock_timeout`` (``pool.py``: then ``StoreUnavailable``,
and nothing was written). Readers take no lock.

``at`` is ``timestamptz`` (microseconds, as ``domain.audit.time_text`` hashes it) and
reads back as a UTC datetime, so an entry read back hashes as it was appended.
"""

from __future__ import annotations

from datetime import datetime

from acme_ca.domain.audit import AuditEntry, AuditEvent, time_text
from acme_ca.store import guards
from acme_ca.store.audit import entry_values, next_entry, stored_entry
from acme_ca.store.postgres.base import Connection, PostgresBase, Record, aware

# The key of the audit lock: "acme-ca\1" as a bigint (the migration lock is "acme-ca\0").
AUDIT_LOCK = int.from_bytes(b"acme-ca\x01", "big", signed=True)
_LOCK = "SELECT pg_advisory_xact_lock($1)"
_LAST = "SELECT * FROM audit_log ORDER BY seq DESC LIMIT 1"
_INSERT = """
INSERT INTO audit_log (seq, at, action, actor, client_ip, identifiers, serial, details,
                       prev_hash, hash)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"""
# Pages of the primary key, from after_seq on. With `since`, from the first entry at or
# after it, found in audit_log_by_time, not from after_seq through every older entry;
# none since: an empty page.
_PAGE = "SELECT * FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
_PAGE_SINCE = """
SELECT * FROM audit_log
WHERE seq > GREATEST($1, COALESCE((SELECT min(seq) FROM audit_log WHERE at >= $2),
                                  9223372036854775807) - 1)
  AND at >= $2
ORDER BY seq LIMIT $3"""


def to_entry(row: Record) -> AuditEntry:
    return stored_entry(row, row["at"])


class AuditMethods(PostgresBase):
    async def append_audit(self, event: AuditEvent, at: datetime) -> AuditEntry:
        time_text(at)  # a naive time: ValueError before anything is written

        async def append(conn: Connection) -> AuditEntry:
            await conn.execute(_LOCK, AUDIT_LOCK)
            last = await conn.fetchrow(_LAST)  # a snapshot taken with the lock held
            entry = next_entry(event, at, None if last is None else to_entry(last))
            await conn.execute(_INSERT, *entry_values(entry, entry.at))
            return entry

        return await self._transaction(append)

    async def audit_entries(
        self, *, after_seq: int = 0, since: datetime | None = None, limit: int = 1000
    ) -> list[AuditEntry]:
        guards.check_limit(limit)
        if since is None:
            rows = await self._read(_PAGE, after_seq, limit)
        else:
            rows = await self._read(_PAGE_SINCE, after_seq, aware(since), limit)
        return [to_entry(row) for row in rows]

    async def last_audit_entry(self) -> AuditEntry | None:
        rows = await self._read(_LAST)
        return to_entry(rows[0]) if rows else None
