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
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

from acme_ca.store.sqlite.base import SqliteBase, to_text

T = TypeVar("T")

_ADD = "INSERT INTO nonces (nonce, expires) VALUES (?, ?)"
_CONSUME = "DELETE FROM nonces WHERE nonce = ? RETURNING expires"
_PURGE = "DELETE FROM nonces WHERE expires <= ? RETURNING 1"


class NonceMethods(SqliteBase):
    #: every how many ``consume_nonce`` calls (per store) expired nonces are purged
    purge_every = 1000
    _consumed = 0

    async def add_nonce(self, nonce: str, expires: datetime) -> None:
        values = (nonce, to_text(expires))
        await self._on_nonces(lambda raw: raw.execute(_ADD, values))

    async def add_nonces(self, nonces: Sequence[str], expires: datetime) -> None:
        moment = to_text(expires)
        rows = [(nonce, moment) for nonce in nonces]
        await self._on_nonces(lambda raw: _in_one_transaction(raw, _ADD, rows))

    async def consume_nonce(self, nonce: str, now: datetime) -> bool:
        moment = to_text(now)
        self._consumed += 1
        rows = await self._on_nonces(lambda raw: raw.execute(_CONSUME, (nonce,)).fetchall())
        if self._consumed % self.purge_every == 0:
            await self.purge_nonces(now)
        return bool(rows) and rows[0]["expires"] > moment

    async def purge_nonces(self, now: datetime) -> int:
        """Delete the nonces expired at ``now``; returns how many. Not in the Protocol."""
        moment = to_text(now)
        return len(await self._on_nonces(lambda raw: raw.execute(_PURGE, (moment,)).fetchall()))

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
