"""Anti-replay nonces in SQLite (RFC 8555 6.5): ``NonceStore`` for ``SqliteStore``.

Every POST consumes one nonce and every response issues one, so these are the
most frequent writes of all, and the only ones that need not survive a crash (a
client that loses its nonce gets badNonce and retries with a fresh one). On a
database file they therefore go through a second connection opened with
``PRAGMA synchronous = OFF``: a commit there is not fsynced. The nonces still
live in the shared file, so every process and replica of the store sees them,
and a nonce issued by one process can be consumed by another.

Two rules keep the durable writes of the main connection durable:

- the nonce connection never checkpoints (``wal_autocheckpoint = 0``): a
  checkpoint without fsync could drop committed data of the main connection
  from the database file once the WAL is reused;
- instead, at each purge of expired nonces the main connection (synchronous =
  FULL) runs a passive checkpoint, so that a stretch of nonce-only traffic cannot
  grow the WAL without bound.

``consume_nonce`` is one ``DELETE ... RETURNING``: SQLite runs it under the write
lock, so of two concurrent consumers of one nonce exactly one gets the row back.
An expired nonce is deleted as well, and answers False.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from acme_ca.store.sqlite_base import SqliteBase, to_text

_ADD = "INSERT INTO nonces (nonce, expires) VALUES (?, ?)"
_CONSUME = "DELETE FROM nonces WHERE nonce = ? RETURNING expires"
_PURGE = "DELETE FROM nonces WHERE expires <= ?"
_CHECKPOINT = "PRAGMA wal_checkpoint(PASSIVE)"


class NonceMethods(SqliteBase):
    #: every how many ``consume_nonce`` calls (per store) expired nonces are purged
    purge_every = 1000
    _consumed = 0

    async def add_nonce(self, nonce: str, expires: datetime) -> None:
        values = (nonce, to_text(expires))
        async with self._nonces() as conn:
            await conn.execute_fetchall(_ADD, values)

    async def add_nonces(self, nonces: Sequence[str], expires: datetime) -> None:
        moment = to_text(expires)
        async with self._nonces() as conn:
            await conn.executemany(_ADD, [(nonce, moment) for nonce in nonces])

    async def consume_nonce(self, nonce: str, now: datetime) -> bool:
        moment = to_text(now)
        self._consumed += 1
        async with self._nonces() as conn:
            rows = list(await conn.execute_fetchall(_CONSUME, (nonce,)))
        if self._consumed % self.purge_every == 0:
            await self.purge_nonces(now)
        return bool(rows) and rows[0]["expires"] > moment

    async def purge_nonces(self, now: datetime) -> int:
        """Delete the nonces expired at ``now``; returns how many. Not in the Protocol."""
        moment = to_text(now)
        async with self._nonces() as conn, conn.execute(_PURGE, (moment,)) as cursor:
            purged = cursor.rowcount
        if self._nonce_conn is not self._conn:
            async with self._reading() as conn:
                await conn.execute_fetchall(_CHECKPOINT)
        return purged
