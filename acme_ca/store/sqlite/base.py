"""What every part of the SQLite backend shares: its concurrency contract, the
connections, the explanation of a refused compare-and-set, and time as text.

The concurrency contract of the engine (``connection``, ``commits``, ``opening``):

- Who shares what. Several stores may open one file: the processes of ``serve
  --workers N``, a command run beside the server, tests' second store. Each store
  has three connections: a writer, a reader, and one to the nonce file.
- What a reader sees. ``_read`` runs one statement on the reader connection (WAL,
  ``query_only``, autocommit): it sees the last state committed when the statement
  began, whoever wrote it, and never a write still in progress, not even its own
  store's. Two reads may see two different committed states. A write returns only
  once committed, so a read issued after a write returned sees it, in any process.
  (``:memory:``: reader and writer are one connection; a batch runs and commits
  without yielding to another task, so no read sees it half-done.)
- How writers are serialised. In a process, every write goes through the store's
  ``GroupCommit`` queue: one batch at a time, its writers in arrival order, each in a
  SAVEPOINT of one ``BEGIN IMMEDIATE`` transaction. Across processes, ``BEGIN
  IMMEDIATE`` takes the file's single write lock, waited for without sleeping on the
  event loop (tried again between its other tasks) up to ``BUSY_TIMEOUT_MS`` (then
  ``StoreUnavailable``: see below). So one writer body runs at a time on the whole
  file, and what it reads inside its transaction is what it changes: writers are
  serialisable.
- What group commit promises. A writer's statements are kept all or none (its
  savepoint); a writer hears its outcome, success or its own failure, only after the
  COMMIT holding its batch returned (``synchronous = FULL``: it survives power loss);
  if the batch fails, every writer of it gets ``StoreError`` and nothing is kept.
- Why compare-and-sets are enough. Each change names the state it expects (``UPDATE
  ... WHERE status = ? RETURNING``) and runs alone (above): of two racers the second
  finds the state the first left and changes nothing, and ``_compare_and_set`` reads
  why in the same transaction (``guards.refused``). A change that depends on other
  rows (``record_validation``: the orders listing an authorization and all their
  authorizations) reads them in the transaction that changes them, so nothing changes
  them in between; a backend whose writers run concurrently must lock those rows first
  (``Store`` contract, base.py). SQL decides no state: ``domain/states.py`` does.
- Nonces. A file of their own, autocommit, no fsync (``opening``, ``nonces``): one
  ``DELETE ... RETURNING`` under that file's write lock consumes a nonce, so exactly one
  of two consumers, in any process, gets it. Nonces outlive a restart, not a reboot.

Statements run on the event loop's thread, except those that wait on the disk
(COMMIT): no connection has a busy handler, and a lock another process holds is tried
for again between the loop's other tasks (``connection``), no call queued behind it.
A UNIQUE or PRIMARY KEY violation becomes ``Conflict`` ("it already exists"); a lock
still held elsewhere after ``BUSY_TIMEOUT_MS`` ("database is locked": SQLITE_BUSY,
or SQLITE_LOCKED) becomes ``StoreUnavailable``, since it passes as a
database restart does (the API answers 503 with Retry-After, and nothing was written);
any other sqlite3 error becomes ``StoreError``.

``SqliteStore`` is assembled from one class per group of entities (certificates in
``store.py``, then ``accounts``, ``orders``, ``authorizations``, ``nonces`` and
``leases``); each inherits ``SqliteBase``, whose ways to reach the database are:
``_read`` (above), ``_write`` (one statement as a transaction of its own),
``_compare_and_set`` (one guarded statement, its refusal explained) and
``_transaction`` (``body(conn)``: several statements as one transaction).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from acme_ca.errors import Conflict, StoreError, StoreUnavailable
from acme_ca.store import guards
from acme_ca.store.sqlite.commits import GroupCommit
from acme_ca.store.sqlite.connection import Connection
from acme_ca.store.sqlite.opening import BUSY_TIMEOUT_MS, Connections

T = TypeVar("T")
Params = Iterable[object]

_ALREADY_EXISTS = frozenset(
    {sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY}
)
# Primary result codes of a lock held by another connection past the busy timeout.
_LOCKED = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
# The state of a row, by the kind ``guards`` names it with.
_STATE_OF = {
    "account": "SELECT status FROM accounts WHERE id = ?",
    "order": "SELECT status FROM orders WHERE id = ?",
    "authorization": "SELECT status FROM authorizations WHERE id = ?",
    "challenge": "SELECT status FROM challenges WHERE id = ?",
    "certificate": "SELECT status FROM certificates WHERE serial = ?",
}


class SqliteBase:
    """The writer (through group commit), the reader and the nonce connection."""

    def __init__(self, connections: Connections, path: str) -> None:
        """Use ``await SqliteStore.open(path)``; this only wraps open connections."""
        self._connections = connections
        self._reader = connections.reader
        self._nonce_conn = connections.nonces
        self._path = path
        self._commits = GroupCommit(connections.writer, busy_timeout_ms=BUSY_TIMEOUT_MS,
                                    name=path, errors=self._error)
        self._closed = False

    async def close(self) -> None:
        """Finish the queued writes, then close; closing twice is harmless, and a close
        that was cancelled while writes finished is completed by the next one."""
        self._closed = True
        await self._commits.close()
        await self._connections.close()

    async def _read(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        return await self._unslept(self._reader,
                                   lambda raw: raw.execute(sql, params).fetchall())

    async def _unslept(self, conn: Connection, call: Callable[[sqlite3.Connection], T]) -> T:
        """``call(raw conn)`` on the loop, a lock held elsewhere tried for again between
        the loop's other tasks (``Connection.without_sleeping``); errors mapped."""
        self._check_open()
        try:
            return await conn.without_sleeping(call, BUSY_TIMEOUT_MS / 1000)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    async def _write(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        async def statement(conn: Connection) -> list[sqlite3.Row]:
            return list(await conn.execute_fetchall(sql, params))

        return await self._transaction(statement)

    async def _compare_and_set(
        self, sql: str, params: Params, kind: str, row_id: str, expected: str
    ) -> sqlite3.Row:
        """The row a guarded statement returned; when it changed nothing, the refusal
        (``guards.refused``), read in the same transaction."""

        async def guarded(conn: Connection) -> sqlite3.Row:
            rows = list(await conn.execute_fetchall(sql, params))
            if not rows:
                raise await refusal(conn, kind, row_id, expected)
            return rows[0]

        return await self._transaction(guarded)

    async def _transaction(self, body: Callable[[Connection], Awaitable[T]]) -> T:
        """``body(writer)`` atomically, returning once that is durable; any exception
        from ``body`` undoes what it wrote."""
        self._check_open()

        async def mapped(conn: Connection) -> T:
            try:
                return await body(conn)
            except sqlite3.Error as exc:
                raise self._error(exc) from exc

        return await self._commits.run(mapped)

    async def _move_each(self, select: str, values: Sequence[object],
                         change: Callable[[sqlite3.Row], Sequence[object] | None],
                         update: str) -> int:
        """In one write transaction: the rows ``select`` reads (a batch), each updated
        by ``update`` with the parameters ``change`` decides for it (None: left as it
        is); how many rows ``update`` changed (it returns them, a compare-and-set)."""

        async def move(conn: Connection) -> int:
            moved = 0
            for row in await conn.execute_fetchall(select, values):
                params = change(row)
                if params is not None:
                    moved += len(list(await conn.execute_fetchall(update, params)))
            return moved

        return await self._transaction(move)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"{self._path}: the store is closed")

    def _error(self, exc: sqlite3.Error) -> StoreError:
        """The store's error for a sqlite3 error (see the module docstring)."""
        code = getattr(exc, "sqlite_errorcode", None)
        if isinstance(exc, sqlite3.IntegrityError) and code in _ALREADY_EXISTS:
            return Conflict(f"the row already exists ({exc})")
        if code is not None and code & 0xFF in _LOCKED:
            return StoreUnavailable(f"{self._path}: {exc} (another process held the lock "
                                    f"for over {BUSY_TIMEOUT_MS} ms)")
        return StoreError(f"{self._path}: {exc}")


async def refusal(conn: Connection, kind: str, row_id: str, expected: str) -> StoreError:
    """Inside a transaction whose compare-and-set on the ``kind`` row ``row_id`` changed
    nothing: why (``NotFound`` or ``Conflict``, worded by ``guards.refused``)."""
    rows = list(await conn.execute_fetchall(_STATE_OF[kind], (row_id,)))
    return guards.refused(kind, row_id, str(rows[0]["status"]) if rows else None, expected)


def to_text(moment: datetime) -> str:
    """A timezone-aware datetime as fixed-width ISO 8601 UTC text."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}: the store needs timezone-aware UTC")
    utc = moment.astimezone(UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"


def from_text(text: str) -> datetime:
    """The inverse of ``to_text``: a timezone-aware UTC datetime."""
    return datetime.fromisoformat(text)  # Python 3.11 reads the "Z" as UTC


def optional_text(moment: datetime | None) -> str | None:
    return None if moment is None else to_text(moment)


def optional_time(text: str | None) -> datetime | None:
    return None if text is None else from_text(text)
