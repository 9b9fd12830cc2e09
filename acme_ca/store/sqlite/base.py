"""What every part of the SQLite backend shares: the connections, and time as text.

``SqliteStore`` is assembled from one class per group of entities (certificates in
``store.py``, then ``accounts``, ``orders``, ``authorizations`` and
``nonces``); each of them inherits ``SqliteBase`` for the plumbing below.
The connections themselves are opened in ``opening``.

Four ways to reach the database:

- ``_read(sql, params)``: one statement on the reader connection, its rows returned;
  it sees what is committed, and never waits for a writer.
- ``_write(sql, params)``: one statement as a transaction of its own, so a
  compare-and-set ``UPDATE ... WHERE status = ? RETURNING ...`` needs nothing more.
- ``_transaction(body)``: ``body(conn)`` runs several statements as one transaction.
  Both writes return once their transaction is durable (``commits``: commits
  are shared by the writers of a batch).
- ``_nonce_conn``: the nonce database (``nonces``).

Statements run on the event loop's thread unless they wait on the disk (see
``connection``), so one statement's effects are never interleaved with
another coroutine's. A UNIQUE or PRIMARY KEY violation becomes ``Conflict`` ("it
already exists"); any other sqlite3 error becomes ``StoreError``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import TypeVar

from acme_ca.errors import Conflict, StoreError
from acme_ca.store.sqlite.commits import GroupCommit
from acme_ca.store.sqlite.connection import Connection
from acme_ca.store.sqlite.opening import BUSY_TIMEOUT_MS, Connections

T = TypeVar("T")
Params = Iterable[object]

_ALREADY_EXISTS = frozenset(
    {sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY}
)


class SqliteBase:
    """The writer (through group commit), the reader and the nonce connection."""

    def __init__(self, connections: Connections, path: str) -> None:
        """Use ``await SqliteStore.open(path)``; this only wraps open connections."""
        self._connections = connections
        self._reader = connections.reader
        self._nonce_conn = connections.nonces
        self._path = path
        self._commits = GroupCommit(connections.writer, busy_timeout_ms=BUSY_TIMEOUT_MS,
                                    name=path)
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
        """``call(raw conn)`` on the loop, a lock held elsewhere waited for in the
        connection's thread (``Connection.without_sleeping``); errors mapped."""
        self._check_open()
        try:
            return await conn.without_sleeping(call, BUSY_TIMEOUT_MS / 1000)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    async def _write(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        async def statement(conn: Connection) -> list[sqlite3.Row]:
            return list(await conn.execute_fetchall(sql, params))

        return await self._transaction(statement)

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

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"{self._path}: the store is closed")

    def _error(self, exc: sqlite3.Error) -> StoreError:
        if (
            isinstance(exc, sqlite3.IntegrityError)
            and getattr(exc, "sqlite_errorcode", None) in _ALREADY_EXISTS
        ):
            return Conflict(f"the row already exists ({exc})")
        return StoreError(f"{self._path}: {exc}")


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
