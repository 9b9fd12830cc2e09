"""The audit log in PostgreSQL (``AuditStore``): appended under a lock that replicas
share, a batch at a time, and read a page at a time.

Appends are one transaction of three statements: take the audit lock, read the newest
entry, insert the next ones (``store.audit.next_entry``). The lock serialises appends
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

The lock is held until the COMMIT has reached the disk (the next holder must see the
entry before it), so one append transaction at a time commits on the whole cluster: at
one entry per transaction, appends would top out near one per commit's fsync (about
150/s here, ``bench/audit_appends.py``), which a busy replica's issuances could reach.
So a store writes the appends its requests ask for while a batch is being written as
the next batch (``_Appends``, at most ``BATCH``), in one transaction, as SQLite's group
commit does: 8 appends in flight at once in one store went from 117 to 511-1176 per
second (3 runs of 2000; one writer alone: 134-155). A batch fails or succeeds whole;
an appender hears its entry only once it is committed. Closing the store first writes
the appends asked for. A batch that fails for anything but an outage (``check_event``
lets nothing through that the driver refuses, but a bug would fail all of its batch's
appends) is written again one append at a time, so only the bad append fails.

Like any transaction-level lock it is released at commit or rollback, also when the
connection breaks (the server ends the transaction), so it can never be left held; its
wait is bounded by the pool's ``lock_timeout`` (``pool.py``: then ``StoreUnavailable``,
and nothing was written). Readers take no lock.

``at`` is ``timestamptz`` (microseconds, as ``domain.audit.time_text`` hashes it) and
reads back as a UTC datetime, so an entry read back hashes as it was appended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from acme_ca.domain.audit import AuditEntry, AuditEvent
from acme_ca.errors import StoreError, StoreUnavailable
from acme_ca.store import guards
from acme_ca.store.audit import check_event, entry_values, next_entry, stored_entry, witness
from acme_ca.store.postgres.base import Connection, PostgresBase, Record, aware

# The key of the audit lock: "acme-ca\1" as a bigint (the migration lock is "acme-ca\0").
AUDIT_LOCK = int.from_bytes(b"acme-ca\x01", "big", signed=True)
_LOCK = "SELECT pg_advisory_xact_lock($1)"
BATCH = 500  # appends at most in one transaction
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
    return stored_entry(row, _as_read)


def _as_read(at: datetime) -> datetime:
    return at


def _interrupted() -> StoreError:
    return StoreError("the audit append was interrupted (the store's task was cancelled)")


@dataclass
class _Append:
    event: AuditEvent
    at: datetime
    done: asyncio.Future[AuditEntry]


class _Appends:
    """One store's appends, written a batch at a time: those that arrive while a batch
    holds the lock form the next one (see the module docstring)."""

    def __init__(self, write: Callable[[list[_Append]], Awaitable[list[AuditEntry]]]) -> None:
        self._write = write
        self._queue: list[_Append] = []
        self._writer: asyncio.Task[None] | None = None

    async def append(self, event: AuditEvent, at: datetime) -> AuditEntry:
        pending = _Append(event, at, asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_batches())
        return await pending.done

    async def drain(self) -> None:
        """Wait for the batches queued (closing the store)."""
        if self._writer is not None:
            await asyncio.shield(self._writer)

    async def _write_batches(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[:BATCH], self._queue[BATCH:]
                await self._write_batch(batch)
        finally:
            self._writer = None
            for pending in self._queue:  # only if this task itself was cancelled
                _settle(pending, _interrupted())
            self._queue = []


    async def _write_batch(self, batch: list[_Append]) -> None:
        """Write ``batch`` and tell its appenders. A batch that fails for anything but
        an outage (an event a driver refuses) is written again one append at a time,
        so that only the bad one fails."""
        try:
            entries = await self._write(batch)
        except BaseException as exc:  # cancelled: it may or may not have committed
            if len(batch) > 1 and isinstance(exc, Exception) \
                    and not isinstance(exc, StoreUnavailable):
                for pending in batch:
                    await self._write_batch([pending])
                return
            for pending in batch:
                _settle(pending, exc if isinstance(exc, Exception) else _interrupted())
            if not isinstance(exc, Exception):
                raise
        else:
            for pending, entry in zip(batch, entries, strict=True):
                _settle(pending, entry)
                witness(entry)


def _settle(pending: _Append, outcome: AuditEntry | Exception) -> None:
    """Tell the appender (unless it stopped waiting: cancelled)."""
    if pending.done.done():
        return
    if isinstance(outcome, Exception):
        pending.done.set_exception(outcome)
    else:
        pending.done.set_result(outcome)


class AuditMethods(PostgresBase):
    _appends: _Appends | None = None  # made at the first append

    async def append_audit(self, event: AuditEvent, at: datetime) -> AuditEntry:
        check_event(event, at)
        self._check_open()
        if self._appends is None:
            self._appends = _Appends(self._append_batch)
        return await self._appends.append(event, at)

    async def close(self) -> None:
        if self._appends is not None:
            await self._appends.drain()
        await super().close()

    async def _append_batch(self, batch: list[_Append]) -> list[AuditEntry]:
        """``batch`` appended in one transaction, under the audit lock."""

        async def append(conn: Connection) -> list[AuditEntry]:
            await conn.execute(_LOCK, AUDIT_LOCK)
            last = await conn.fetchrow(_LAST)  # a snapshot taken with the lock held
            entry = None if last is None else to_entry(last)
            entries = []
            for pending in batch:
                entry = next_entry(pending.event, pending.at, entry)
                entries.append(entry)
            await conn.executemany(_INSERT, [entry_values(e, e.at) for e in entries])
            return entries

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
