"""Anti-replay nonces in SQLite (RFC 8555 6.5): ``NonceStore`` for ``SqliteStore``.

Every POST consumes one nonce and every response issues one, so these are the
most frequent writes of all, and the only ones that need not survive a crash (a
client that loses its nonce gets badNonce and retries with a fresh one). They live
in a database file of their own, written without fsync (``opening``), shared by
every process of the store, so a nonce issued by one process can be consumed by
another, and kept across restarts; the file forgets them all when it is opened in
another boot than the one it was written in (``opening``).

``consume_nonce`` is one ``DELETE ... RETURNING``: SQLite runs it under the write
lock, so of two concurrent consumers of one nonce exactly one gets the row back.
An expired nonce is deleted as well, and answers False.

``purge_expired_nonces`` deletes a bounded batch: its statements run on the event
loop's thread (``SqliteBase._unslept``), so one unbounded DELETE of a million expired
rows would stall every request of the process for seconds and hold the file's write
lock meanwhile. The table is WITHOUT ROWID, keyed by nonce: the batch is the first
``limit`` keys of the expiry index, deleted by key.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

from acme_ca.store import guards
from acme_ca.store.sqlite.base import SqliteBase, to_text

T = TypeVar("T")

_ADD = "INSERT INTO nonces (nonce, expires) VALUES (?, ?)"
_CONSUME = "DELETE FROM nonces WHERE nonce = ? RETURNING expires"
_PURGE = """
DELETE FROM nonces WHERE nonce IN (
    SELECT nonce FROM nonces INDEXED BY nonces_by_expiry WHERE expires <= ? LIMIT ?)"""


class NonceMethods(SqliteBase):
    async def add_nonce(self, nonce: str, expires: datetime) -> None:
        values = (nonce, to_text(expires))
        await self._on_nonces(lambda raw: raw.execute(_ADD, values))

    async def add_nonces(self, nonces: Sequence[str], expires: datetime) -> None:
        moment = to_text(expires)
        rows = [(nonce, moment) for nonce in nonces]
        await self._on_nonces(lambda raw: _in_one_transaction(raw, _ADD, rows))

    async def consume_nonce(self, nonce: str, now: datetime) -> bool:
        moment = to_text(now)
        rows = await self._on_nonces(lambda raw: raw.execute(_CONSUME, (nonce,)).fetchall())
        return bool(rows) and rows[0]["expires"] > moment

    async def purge_expired_nonces(self, now: datetime, *, limit: int) -> int:
        guards.check_limit(limit)
        values = (to_text(now), limit)
        return await self._on_nonces(lambda raw: raw.execute(_PURGE, values).rowcount)

    async def _on_nonces(self, call: Callable[[sqlite3.Connection], T]) -> T:
        return await self._unslept(self._nonce_conn, call)


def _in_one_transaction(raw: sqlite3.Connection, sql: str,
                        rows: Sequence[tuple[str, str]]) -> None:
    """All the rows or none, so that a retry after SQLITE_BUSY inserts nothing twice."""
    raw.execute("BEGIN IMMEDIATE")
    try:
        raw.executemany(sql, rows)
        raw.execute("COMMIT")
    except BaseException:
        if raw.in_transaction:  # SQLite may have rolled back already (SQLITE_FULL)
            raw.execute("ROLLBACK")
        raise
