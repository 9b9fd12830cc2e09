"""The audit log in SQLite (``AuditStore``): appended in one write transaction, read a
page at a time.

An append reads the newest entry and inserts the next one in the same writer body
(``base._transaction``). Writers run one at a time on the whole file (``base``: group
commit in a process, ``BEGIN IMMEDIATE`` across processes), so no other append comes
between the read and the insert: ``seq`` runs 1, 2, 3 ... and every ``prev_hash`` is
the hash of the entry before. If the batch that holds an append fails, none of it is
kept and the next append reads the same last entry again: no gap. ``seq`` is the
table's INTEGER PRIMARY KEY, so a second entry with one ``seq`` could not be stored
anyway.

``at`` is kept as ``base.to_text`` (UTC, microseconds), the precision of
``domain.audit.time_text``, so an entry read back hashes as it was appended; a stored
time that is not that text (another offset for the same moment) marks the entry
(``store.audit.stored_entry``). UPDATE and DELETE on audit_log are refused by triggers
(migration 0010).
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from acme_ca.domain.audit import AuditEntry, AuditEvent
from acme_ca.store import guards
from acme_ca.store.audit import check_event, entry_values, next_entry, stored_entry, witness
from acme_ca.store.sqlite.base import SqliteBase, from_text, to_text
from acme_ca.store.sqlite.connection import Connection

_PAST_EVERY_SEQ = 2**63 - 1
_LAST = "SELECT * FROM audit_log ORDER BY seq DESC LIMIT 1"
_INSERT = """
INSERT INTO audit_log (seq, at, action, actor, client_ip, identifiers, serial, details,
                       prev_hash, hash)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""
# Pages of the primary key, from after_seq on. With `since`, from the first entry at
# or after it, found in audit_log_by_time (which holds seq: the rowid), not from
# after_seq through every older entry; none since: an empty page.
_PAGE = "SELECT * FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?"
_PAGE_SINCE = f"""
SELECT * FROM audit_log
WHERE seq > max(?1, COALESCE((SELECT MIN(seq) FROM audit_log INDEXED BY audit_log_by_time
                                   WHERE at >= ?2), {_PAST_EVERY_SEQ}) - 1)
  AND at >= ?2
ORDER BY seq LIMIT ?3"""  # noqa: S608


def to_entry(row: sqlite3.Row) -> AuditEntry:
    return stored_entry(row, from_text, to_text)


class AuditMethods(SqliteBase):
    async def append_audit(self, event: AuditEvent, at: datetime) -> AuditEntry:
        check_event(event, at)

        async def append(conn: Connection) -> AuditEntry:
            rows = list(await conn.execute_fetchall(_LAST))
            entry = next_entry(event, at, to_entry(rows[0]) if rows else None)
            await conn.execute(_INSERT, entry_values(entry, to_text(entry.at)))
            return entry

        entry = await self._transaction(append)
        witness(entry)
        return entry

    async def audit_entries(
        self, *, after_seq: int = 0, since: datetime | None = None, limit: int = 1000
    ) -> list[AuditEntry]:
        guards.check_limit(limit)
        if since is None:
            rows = await self._read(_PAGE, (after_seq, limit))
        else:
            rows = await self._read(_PAGE_SINCE, (after_seq, to_text(since), limit))
        return [to_entry(row) for row in rows]

    async def last_audit_entry(self) -> AuditEntry | None:
        rows = await self._read(_LAST)
        return to_entry(rows[0]) if rows else None
