"""What every part of the SQLite backend shares: the connections, their locks, time text.

``SqliteStore`` is assembled from one class per group of entities (certificates in
``sqlite.py``, then ``sqlite_accounts``, ``sqlite_orders``, ``sqlite_authz`` and
``sqlite_nonces``); each of them inherits ``SqliteBase`` for the plumbing below.

Three ways to reach the database, all serialised by the store's ``asyncio.Lock``:

- ``_statement(sql, params)``: one statement in autocommit mode, its rows returned.
  A single statement is atomic on its own, so a compare-and-set ``UPDATE ...
  WHERE status = ? RETURNING ...`` needs nothing more: one round trip.
- ``_writing()``: several statements in one ``BEGIN IMMEDIATE`` transaction.
- ``_reading()``: the raw connection, for the certificate code.

A UNIQUE or PRIMARY KEY violation becomes ``Conflict`` ("it already exists");
any other sqlite3 error becomes ``StoreError``.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from acme_ca.errors import Conflict, StoreError
from acme_ca.store.migrations import sqlite_immediate
from acme_ca.store.sqlite_connection import Connection

Params = Iterable[object]

_ALREADY_EXISTS = frozenset(
    {sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY}
)


class SqliteBase:
    """The main connection, and the one nonces go through (the same one for :memory:)."""

    def __init__(
        self,
        conn: Connection,
        path: str,
        nonce_conn: Connection | None = None,
    ) -> None:
        """Use ``await SqliteStore.open(path)``; this only wraps open connections."""
        self._conn = conn
        self._path = path
        self._lock = asyncio.Lock()
        self._closed = False
        self._nonce_conn = nonce_conn or conn
        self._nonce_lock = asyncio.Lock() if nonce_conn is not None else self._lock

    async def close(self) -> None:
        async with self._lock:
            if self._nonce_conn is not self._conn:
                async with self._nonce_lock:
                    await self._nonce_conn.close()
            self._closed = True
            await self._conn.close()

    async def _statement(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """Run one statement on its own (autocommit: atomic) and return all its rows."""
        async with self._reading() as conn:
            return list(await conn.execute_fetchall(sql, params))

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[Connection]:
        """The connection, for single statements (each is atomic on its own)."""
        async with self._lock:
            self._check_open()
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise self._error(exc) from exc

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[Connection]:
        """The connection inside BEGIN IMMEDIATE ... COMMIT; any exception rolls back."""
        async with self._lock:
            self._check_open()
            try:
                async with sqlite_immediate(self._conn) as conn:
                    yield conn
            except sqlite3.Error as exc:
                raise self._error(exc) from exc

    @asynccontextmanager
    async def _nonces(self) -> AsyncIterator[Connection]:
        """The nonce connection (no fsync on commit), for single statements."""
        async with self._nonce_lock:
            self._check_open()
            try:
                yield self._nonce_conn
            except sqlite3.Error as exc:
                raise self._error(exc) from exc

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
    return datetime.fromisoformat(text.removesuffix("Z")).replace(tzinfo=UTC)


def optional_text(moment: datetime | None) -> str | None:
    return None if moment is None else to_text(moment)


def optional_time(text: str | None) -> datetime | None:
    return None if text is None else from_text(text)
